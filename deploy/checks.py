"""Consistency checks of the deployment files that no schema can express.

Run by scripts/check-deploy.sh with the venv's Python (PyYAML comes with yamllint):

    python deploy/checks.py COMPOSE_JSON RENDERED_K8S_YAML...

    python deploy/checks.py COMPOSE_JSON RENDERED_K8S_YAML... --chart deploy/helm/infinistream \
        --same-agents KUSTOMIZE_AGENTS_YAML HELM_DEFAULTS_YAML

COMPOSE_JSON is the output of `docker-compose config --format json`; the rendered Kubernetes files
are `kubectl kustomize` outputs (or the raw manifests when kubectl is absent) and `helm template`
outputs of the chart: the same checks apply to both deployment paths, so objects are found by their
role (labels, selectors), not by their names, which Helm derives from the release name. --chart
adds the checks of the chart's own files (Chart.yaml, values.yaml, values.schema.json, the
templates' references to values, README.md); --same-agents compares the kustomization's agents
with the chart's, rendered with its defaults. Every check prints one line; any failure exits 1
after all checks ran, so one run shows every problem.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FAILURES: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        FAILURES.append(what)


# --------------------------------------------------------------------------------------------
# The environment variables each subcommand reads, from the CLI grammar itself (src/cmd/cli.rs), so a
# misspelt variable in a deployment file is caught instead of silently ignored by the binary.


def env_vars_by_subcommand() -> dict[str, set[str]]:
    source = (ROOT / "src" / "cmd" / "cli.rs").read_text()
    structs: dict[str, tuple[set[str], set[str]]] = {}
    for match in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", source, re.S):
        name, body = match.group(1), match.group(2)
        envs = set(re.findall(r'env = "(INFINISTREAM_[A-Z_]+)"', body))
        flattened = set(re.findall(r"#\[command\(flatten\)\]\s*pub \w+: (\w+),", body))
        structs[name] = (envs, flattened)

    def closure(name: str) -> set[str]:
        envs, flattened = structs.get(name, (set(), set()))
        out = set(envs)
        for inner in flattened:
            out |= closure(inner)
        return out

    return {"agent": closure("AgentArgs"), "control-plane": closure("ControlPlaneArgs")}


def first(items) -> object:
    """The first element of a list that may be null or absent (Compose prints `command: null`)."""
    return items[0] if items else None


def parse_duration_seconds(value: str) -> float:
    """`60`, `240s`, `250ms`, and Go's compound form that Compose prints (`1m30s`)."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"cannot parse duration {value!r}")
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * scale[u] for n, u in parts)


def parse_batch_window_ms(value: str) -> float:
    """INFINISTREAM_BATCH_WRITE: `100` (milliseconds), `100ms`, `0.1s`."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text)
    if not match:
        raise ValueError(f"cannot parse batch window {value!r}")
    return float(match.group(1)) * (1000 if match.group(2) == "s" else 1)


def parse_quantity_bytes(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", str(value))
    if not match:
        raise ValueError(f"cannot parse quantity {value!r}")
    units = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
             "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    return float(match.group(1)) * units[match.group(2)]


# --------------------------------------------------------------------------------------------
# docker-compose.yml and prometheus/prometheus.yml


def check_compose(compose: dict, envs: dict[str, set[str]]) -> None:
    print("compose: services and their wiring")
    services = compose["services"]
    agents = sorted(name for name, s in services.items() if first(s.get("command")) == "agent")
    check(len(agents) >= 2, f"at least two agent services ({', '.join(agents)})")
    for name in ("minio", "minio-create-bucket", "control-plane", "prometheus"):
        check(name in services, f"service {name} exists")

    check("healthcheck" in services.get("minio", {}), "minio has a healthcheck")
    cp = services.get("control-plane", {})
    check(first(cp.get("command")) == "control-plane", "control-plane runs `infinistream control-plane`")
    check("healthcheck" in cp, "control-plane has a healthcheck")
    check(any(v.get("target") == "/data" and v.get("type") == "volume" for v in cp.get("volumes", [])),
          "control-plane keeps its data on a named volume at /data")
    unknown = set(cp.get("environment", {})) - envs["control-plane"]
    check(not unknown, f"control-plane sets only variables it reads (unknown: {sorted(unknown) or 'none'})")

    zones = set()
    for name in agents:
        agent = services[name]
        env = agent.get("environment", {})
        unknown = {k for k in env if k.startswith("INFINISTREAM_")} - envs["agent"]
        check(not unknown, f"{name} sets only variables the agent reads (unknown: {sorted(unknown) or 'none'})")
        for required in ("INFINISTREAM_GROUP_ID", "INFINISTREAM_GROUP_KEY", "INFINISTREAM_BUCKET_NAME",
                         "INFINISTREAM_CONTROL_PLANE_URL", "INFINISTREAM_AVAILABILITY_ZONE"):
            check(bool(env.get(required)), f"{name} sets {required}")
        check(env.get("INFINISTREAM_CONTROL_PLANE_URL") == "http://control-plane:8080",
              f"{name} talks to the compose control plane")
        check(str(env.get("INFINISTREAM_BUCKET_NAME", "")).startswith("s3://")
              and "endpoint=http://minio:9000" in env.get("INFINISTREAM_BUCKET_NAME", ""),
              f"{name} writes to the MinIO bucket")
        zones.add(env.get("INFINISTREAM_AVAILABILITY_ZONE"))
        deps = agent.get("depends_on", {})
        check(deps.get("minio-create-bucket", {}).get("condition") == "service_completed_successfully",
              f"{name} waits for the bucket to exist")
        check(deps.get("control-plane", {}).get("condition") == "service_healthy",
              f"{name} waits for a healthy control plane")
        check("healthcheck" in agent, f"{name} has a healthcheck")
        timeout = parse_duration_seconds(env.get("INFINISTREAM_GRACEFUL_SHUTDOWN_TIMEOUT", "60s"))
        grace = parse_duration_seconds(agent.get("stop_grace_period", "10s"))
        check(grace > timeout, f"{name} stop_grace_period ({grace:g}s) exceeds its drain timeout ({timeout:g}s)")
    check(zones == {"az1"}, f"every agent is in zone az1 ({sorted(z or '' for z in zones)})")

    published = {}
    for name in agents:
        published[name] = {int(p["target"]): int(p["published"]) for p in services[name].get("ports", [])}
    agent_1 = published.get("agent-1", {})
    check(agent_1 == {4222: 4222, 9222: 9222, 8222: 8222}, f"agent-1 publishes 4222, 9222, 8222 as is ({agent_1})")
    host_ports = [port for ports in published.values() for port in ports.values()]
    check(len(host_ports) == len(set(host_ports)), "no two agents publish the same host port")

    print("compose: prometheus targets")
    prom = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom.get("scrape_configs", [])}
    scraped = set()
    for job in jobs.values():
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                host, _, port = target.rpartition(":")
                if host == "localhost":
                    continue
                scraped.add(host)
                ports = {int(p["target"]) for p in services.get(host, {}).get("ports", [])}
                check(host in services and int(port) in ports,
                      f"job {job['job_name']}: target {target} is a service listening on that port")
    for name in agents + ["control-plane"]:
        check(name in scraped, f"prometheus scrapes {name}")
    cp_job = jobs.get("infinistream-control-plane", {})
    mounted = {c["target"] for c in services.get("prometheus", {}).get("configs", [])}
    files = [cp_job.get("authorization", {}).get("credentials_file")]
    files += [f for h in cp_job.get("http_headers", {}).values() for f in h.get("files", [])]
    for path in files:
        check(path in mounted, f"prometheus file {path} is mounted by compose")
    volumes = services.get("prometheus", {}).get("volumes", [])
    check(any(str(v.get("source", "")).endswith("prometheus/prometheus.yml") for v in volumes),
          "prometheus mounts prometheus/prometheus.yml")


# --------------------------------------------------------------------------------------------
# Kubernetes


def check_kubernetes(documents: list[dict], envs: dict[str, set[str]]) -> None:
    print("kubernetes: agent deployment")
    by_kind: dict[str, list[dict]] = {}
    for doc in documents:
        if doc:
            by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    agents = [d for d in deployments.values()
              if d["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "agent"]
    check(len(agents) == 1, f"one agent Deployment (component agent): {[d['metadata']['name'] for d in agents]}")
    if len(agents) != 1:
        return
    agent = agents[0]
    agent_name = agent["metadata"]["name"]
    check(agent_name.endswith("infinistream-agent"), f"the agent Deployment is named …infinistream-agent ({agent_name})")
    spec = agent["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    check(labels.get("app.kubernetes.io/name") == "infinistream-agent",
          "agent pods are labelled app.kubernetes.io/name=infinistream-agent")
    check(spec["selector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "infinistream-agent"
          and all(labels.get(k) == v for k, v in spec["selector"].get("matchLabels", {}).items()),
          "the Deployment selects its pods on app.kubernetes.io/name=infinistream-agent")
    check(spec.get("replicas", 1) >= 2, f"agent replicas ({spec.get('replicas')}) allow a rolling drain")
    rolling = spec.get("strategy", {}).get("rollingUpdate", {})
    check(spec.get("strategy", {}).get("type") == "RollingUpdate" and rolling.get("maxUnavailable") == 0,
          "rolling updates never drop capacity (maxUnavailable 0)")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace >= 300, f"terminationGracePeriodSeconds ({grace}) is at least 300 (slow PUTs under throttling)")
    check(not pod.get("volumes"), "agents mount no volumes (diskless)")
    check(pod.get("enableServiceLinks") is False,
          "enableServiceLinks is false (no INFINISTREAM_* variables from Service names)")
    check(pod.get("automountServiceAccountToken") is False, "no service account token is mounted")
    container = next(c for c in pod["containers"] if c["name"] == "agent")
    check(first(container.get("args")) == "agent", "the container runs `infinistream agent`")

    env = {e["name"]: e for e in container.get("env", [])}
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    config = {}
    for source in container.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        check(name in configmaps, f"envFrom ConfigMap {name} is part of the manifests")
        config.update(configmaps.get(name, {}).get("data", {}))
    names = (set(env) | set(config))
    unknown = {n for n in names if n.startswith("INFINISTREAM_")} - envs["agent"]
    check(not unknown, f"the agent gets only variables it reads (unknown: {sorted(unknown) or 'none'})")
    for required in ("INFINISTREAM_GROUP_ID", "INFINISTREAM_GROUP_KEY", "INFINISTREAM_BUCKET_NAME"):
        check(required in names, f"the agent gets {required}")
    key = env.get("INFINISTREAM_GROUP_KEY", {}).get("valueFrom", {})
    check("secretKeyRef" in key, "the group key comes from a Secret")
    secret_ref = key.get("secretKeyRef", {})
    secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
    if secret_ref.get("name") in secrets:
        secret = secrets[secret_ref["name"]]
        keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        check(secret_ref.get("key") in keys,
              f"the Secret {secret_ref['name']} of the manifests has the key {secret_ref.get('key')}")
    else:
        print(f"  info the group key Secret {secret_ref.get('name')} is made out of band")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef")
        if name in env:
            check(ref is not None and ref.get("name") == secret_ref.get("name") and ref.get("optional") is True,
                  f"{name} is an optional key of the group key's Secret")
    bucket = config.get("INFINISTREAM_BUCKET_NAME", "")
    check("secret_access_key" not in bucket and "secret_key" not in bucket,
          "no S3 secret in the ConfigMap's bucket URL")
    window = config.get("INFINISTREAM_BATCH_WRITE", "250ms")
    try:
        window_ms = parse_batch_window_ms(window)
    except ValueError:
        window_ms = -1
    check(50 <= window_ms <= 500, f"the batch window ({window}) is within 50ms–500ms")
    workers = env.get("INFINISTREAM_WORKERS", {}).get("valueFrom", {}).get("resourceFieldRef", {})
    check(workers.get("resource") == "limits.cpu" and str(workers.get("divisor")) == "1",
          "INFINISTREAM_WORKERS comes from limits.cpu with divisor 1")
    advertise = env.get("INFINISTREAM_ADVERTISE_ADDRESS", {}).get("valueFrom", {}).get("fieldRef", {})
    check(advertise.get("fieldPath") == "status.podIP", "INFINISTREAM_ADVERTISE_ADDRESS is the pod IP")
    check("INFINISTREAM_AVAILABILITY_ZONE" in env, "INFINISTREAM_AVAILABILITY_ZONE is set")

    timeout = parse_duration_seconds(config.get("INFINISTREAM_GRACEFUL_SHUTDOWN_TIMEOUT", "60s"))
    check(timeout < pod.get("terminationGracePeriodSeconds", 30),
          f"drain timeout ({timeout:g}s) is below terminationGracePeriodSeconds")

    resources = container.get("resources", {})
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    cpu = str(limits.get("cpu", ""))
    check(cpu.isdigit() and int(cpu) >= 1, f"CPU limit is whole cores ({cpu})")
    check(str(requests.get("cpu")) == cpu, "CPU request equals the limit")
    if cpu.isdigit():
        memory = parse_quantity_bytes(limits.get("memory", "0"))
        check(memory >= int(cpu) * 4 * 2**30, f"memory limit is at least 4 GiB per vCPU ({limits.get('memory')})")

    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    check(ports == {"nats": 4222, "peer": 9222, "monitoring": 8222}, f"container ports ({ports})")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = container.get(probe, {}).get("httpGet", {})
        port = ports.get(http.get("port"), http.get("port"))
        check(http.get("path") == "/healthz" and port == 8222, f"{probe} is GET /healthz on 8222")
    security = container.get("securityContext", {})
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "pods run as non-root")
    check(security.get("readOnlyRootFilesystem") is True, "the root filesystem is read-only")

    print("kubernetes: services and disruption budget")
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}

    def selects(selector: dict) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    client = services.get(agent_name, {}).get("spec", {})
    check(selects(client.get("selector", {})), f"service {agent_name} selects the agents")
    check(client.get("clusterIP") != "None", f"service {agent_name} is not headless")
    check({p["port"] for p in client.get("ports", [])} == {4222, 8222}, f"service {agent_name} has 4222 and 8222")
    peers = services.get(f"{agent_name}-peers", {}).get("spec", {})
    check(peers.get("clusterIP") == "None" and selects(peers.get("selector", {})),
          f"service {agent_name}-peers is headless and selects the agents")
    check({p["port"] for p in peers.get("ports", [])} == {9222}, "the peer service has 9222")
    for svc in services.values():
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort")
            if isinstance(target, str) and selects(svc["spec"].get("selector", {})):
                check(target in ports, f"service {svc['metadata']['name']}: target port {target} is a container port")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    check(any(selects(p["spec"].get("selector", {}).get("matchLabels", {})) for p in pdbs),
          "a PodDisruptionBudget covers the agents")

    cp = deployments.get("infinistream-control-plane")
    if cp is not None:
        print("kubernetes: mock control plane (testing)")
        cp_spec = cp["spec"]
        cp_pod = cp_spec["template"]["spec"]
        check(cp_spec.get("replicas") == 1, "one control plane replica")
        check(cp_spec.get("strategy", {}).get("type") == "Recreate", "Recreate: never two writers on the database")
        claims = {v["persistentVolumeClaim"]["claimName"] for v in cp_pod.get("volumes", [])
                  if "persistentVolumeClaim" in v}
        pvcs = {p["metadata"]["name"] for p in by_kind.get("PersistentVolumeClaim", [])}
        check(bool(claims) and claims <= pvcs, "its data is on a PersistentVolumeClaim of the manifests")
        container = cp_pod["containers"][0]
        check(first(container.get("args")) == "control-plane", "it runs `infinistream control-plane`")
        unknown = {e["name"] for e in container.get("env", [])} - envs["control-plane"]
        check(not unknown, f"it gets only variables it reads (unknown: {sorted(unknown) or 'none'})")
        url = config.get("INFINISTREAM_CONTROL_PLANE_URL", "")
        cp_services = [s for s in services.values()
                       if all(cp_spec["template"]["metadata"]["labels"].get(k) == v
                              for k, v in s["spec"].get("selector", {}).items())]
        check(any(url == f"http://{s['metadata']['name']}:{p['port']}" for s in cp_services
                  for p in s["spec"]["ports"]),
              f"agents point at the control plane service ({url})")


def check_docs(envs: dict[str, set[str]], paths: list[Path]) -> None:
    known = envs["agent"] | envs["control-plane"] | {"INFINISTREAM_IMAGE", "INFINISTREAM_BUCKET"}
    for path in paths:
        print(path.relative_to(ROOT))
        mentioned = set(re.findall(r"INFINISTREAM_[A-Z_]*[A-Z]", path.read_text()))
        unknown = mentioned - known
        check(not unknown, f"every INFINISTREAM_ variable it names exists (unknown: {sorted(unknown) or 'none'})")


# --------------------------------------------------------------------------------------------
# The Helm chart's own files. Its rendered output goes through check_kubernetes like the
# kustomizations'; these check what a render does not show: the values every template can reach,
# the schema against the defaults, the documentation against both.


def value_paths(values: object, schema: dict, prefix: str = "") -> set[str]:
    """Dotted paths of values.yaml, down to the leaves or to free-form objects (no `properties`
    in the schema: nodeSelector, affinity, ...)."""
    out = set()
    if isinstance(values, dict) and "properties" in schema:
        for key, value in values.items():
            out |= value_paths(value, schema["properties"].get(key, {}), f"{prefix}{key}.")
        return out
    return {prefix.rstrip(".")}


def schema_gaps(values: object, schema: dict, prefix: str = "") -> list[str]:
    """Keys of the defaults the schema does not type, and schema properties without a default."""
    gaps = []
    if not isinstance(values, dict) or "properties" not in schema:
        return gaps
    props = schema["properties"]
    for key in values:
        if key not in props:
            gaps.append(f"{prefix}{key} (not in the schema)")
        else:
            gaps += schema_gaps(values[key], props[key], f"{prefix}{key}.")
    for key in props:
        if key not in values:
            gaps.append(f"{prefix}{key} (no default in values.yaml)")
    if schema.get("additionalProperties", True) is not False:
        gaps.append(f"{prefix.rstrip('.') or '(root)'} (schema allows unknown keys)")
    return gaps


def resolves(values: object, path: list[str]) -> bool:
    """Whether `.Values.<path>` names a default: every step a key of a map, until a leaf or a
    free-form (empty by default) map or list, below which anything the user adds is valid."""
    node = values
    for step in path:
        if isinstance(node, dict) and not node:
            return True
        if not isinstance(node, dict) or step not in node:
            return False
        node = node[step]
    return True


def check_helm_chart(chart: Path, envs: dict[str, set[str]]) -> None:
    print(f"helm chart {chart.relative_to(ROOT)}: its own files")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    check(meta.get("apiVersion") == "v2", "Chart.yaml apiVersion is v2")
    check(meta.get("name") == chart.name, f"the chart's name is its directory's ({meta.get('name')})")
    cargo = (ROOT / "Cargo.toml").read_text()
    crate = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', cargo, re.S | re.M)
    check(bool(crate) and str(meta.get("appVersion")) == crate.group(1),
          f"appVersion ({meta.get('appVersion')}) is the binary's version in Cargo.toml "
          f"({crate.group(1) if crate else '?'})")

    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    gaps = schema_gaps(values, schema)
    check(not gaps, f"values.yaml and values.schema.json have the same keys, none unknown allowed "
                    f"(gaps: {gaps or 'none'})")
    check(values["gracefulShutdownTimeoutSeconds"] < values["terminationGracePeriodSeconds"],
          f"default drain timeout ({values['gracefulShutdownTimeoutSeconds']}s) is below "
          f"terminationGracePeriodSeconds ({values['terminationGracePeriodSeconds']})")

    undefined = set()
    for template in sorted((chart / "templates").iterdir()):
        text = template.read_text()
        for ref in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            if not resolves(values, ref.lstrip(".").split(".")):
                undefined.add(f"{template.name}: .Values{ref}")
        for name in re.findall(r"\b(INFINISTREAM_[A-Z_]*[A-Z])\b", text):
            if name not in envs["agent"]:
                undefined.add(f"{template.name}: {name} (not a variable of `infinistream agent`)")
    check(not undefined, f"the templates reference only values with a default and variables the agent reads "
                         f"(unknown: {sorted(undefined) or 'none'})")

    readme = (chart / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z][A-Za-z0-9_.]*)` \|", readme, re.M))
    paths = value_paths(values, schema)
    missing = sorted(p for p in paths if not any(p == d or p.startswith(d + ".") for d in documented))
    stale = sorted(d for d in documented if not resolves(values, d.split(".")))
    check(not missing, f"README.md documents every value (missing: {missing or 'none'})")
    check(not stale, f"README.md documents only values that exist (stale: {stale or 'none'})")


def agent_objects(documents: list[dict]) -> dict[str, dict]:
    """The agent Deployment's pod and container, its ConfigMap, and the Services and budget that
    select it, keyed by role."""
    docs = [d for d in documents if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment"
                      and d["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "agent")
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "agent")
    config_name = container["envFrom"][0]["configMapRef"]["name"]
    name = deployment["metadata"]["name"]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    return {
        "deployment": deployment, "pod": pod, "container": container,
        "config": by_name.get(("ConfigMap", config_name), {}).get("data", {}),
        "client": by_name.get(("Service", name), {}).get("spec", {}),
        "peers": by_name.get(("Service", f"{name}-peers"), {}).get("spec", {}),
        "pdb": by_name.get(("PodDisruptionBudget", name), {}).get("spec", {}),
    }


def check_same_agents(kustomize_path: str, helm_path: str) -> None:
    """The two deployment paths behave alike: the chart with its default values runs the same agent
    pod as the kustomization (settings, env, ports, probes, resources, security, grace period,
    rollout), behind the same Services. Names, selectors' instance label, the image tag and the
    service account are where they may differ (see deploy/helm/infinistream/README.md)."""
    print(f"kubernetes: {helm_path} runs the same agents as {kustomize_path}")
    ours = agent_objects(list(yaml.safe_load_all(Path(kustomize_path).read_text())))
    chart = agent_objects(list(yaml.safe_load_all(Path(helm_path).read_text())))
    same = [
        ("the ConfigMap's settings", lambda o: o["config"]),
        ("the container's env", lambda o: o["container"].get("env")),
        ("the container's args", lambda o: o["container"].get("args")),
        ("the container's ports", lambda o: o["container"].get("ports")),
        ("the probes", lambda o: [o["container"].get(p) for p in ("startupProbe", "readinessProbe", "livenessProbe")]),
        ("the resources", lambda o: o["container"].get("resources")),
        ("the container's securityContext", lambda o: o["container"].get("securityContext")),
        ("the pod's securityContext", lambda o: o["pod"].get("securityContext")),
        ("terminationGracePeriodSeconds", lambda o: o["pod"].get("terminationGracePeriodSeconds")),
        ("enableServiceLinks and automountServiceAccountToken",
         lambda o: (o["pod"].get("enableServiceLinks"), o["pod"].get("automountServiceAccountToken"))),
        ("replicas, revisionHistoryLimit and the rollout strategy",
         lambda o: [o["deployment"]["spec"].get(k) for k in ("replicas", "revisionHistoryLimit", "strategy")]),
        ("the topology spread (keys and skew)",
         lambda o: [(t["topologyKey"], t["maxSkew"], t["whenUnsatisfiable"]) for t in o["pod"].get("topologySpreadConstraints", [])]),
        ("the pod's prometheus annotations",
         lambda o: {k: v for k, v in o["deployment"]["spec"]["template"]["metadata"].get("annotations", {}).items()
                    if k.startswith("prometheus.io/")}),
        ("the client Service's type and ports", lambda o: (o["client"].get("type"), o["client"].get("ports"))),
        ("the peer Service's ports", lambda o: (o["peers"].get("clusterIP"), o["peers"].get("ports"))),
        ("the PodDisruptionBudget", lambda o: o["pdb"].get("maxUnavailable")),
    ]
    for what, get in same:
        a, b = get(ours), get(chart)
        check(a == b, f"same {what}" + ("" if a == b else f": {a!r} != {b!r}"))


def main(argv: list[str]) -> int:
    envs = env_vars_by_subcommand()
    if not envs["agent"] or not envs["control-plane"]:
        print("FAIL cannot read the environment variables from src/cmd/cli.rs")
        return 1
    args = argv[1:]
    charts = []
    parity = []
    while "--same-agents" in args:
        at = args.index("--same-agents")
        parity.append((args[at + 1], args[at + 2]))
        del args[at:at + 3]
    while "--chart" in args:
        at = args.index("--chart")
        charts.append((ROOT / args[at + 1]).resolve())
        del args[at:at + 2]
    compose = json.loads(Path(args[0]).read_text())
    check_compose(compose, envs)
    for path in args[1:]:
        print(f"-- {path}")
        check_kubernetes(list(yaml.safe_load_all(Path(path).read_text())), envs)
    for kustomize_path, helm_path in parity:
        check_same_agents(kustomize_path, helm_path)
    for chart in charts:
        check_helm_chart(chart, envs)
    check_docs(envs, [ROOT / "docs" / "deploy.md"] + [chart / "README.md" for chart in charts])
    if FAILURES:
        print(f"\n{len(FAILURES)} deployment check(s) failed:")
        for failure in FAILURES:
            print(f"  - {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
