"""Consistency checks of the deployment files that no schema can express.

Run by scripts/check-deploy.sh with the venv's Python (PyYAML comes with yamllint):

    python deploy/checks.py COMPOSE_JSON RENDERED_K8S_YAML...

COMPOSE_JSON is the output of `docker-compose config --format json`; the rendered Kubernetes files
are `kubectl kustomize` outputs (or the raw manifests when kubectl is absent). Every check prints
one line; any failure exits 1 after all checks ran, so one run shows every problem.
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
# The environment variables each subcommand reads, from the CLI grammar itself (src/cli.rs), so a
# misspelt variable in a deployment file is caught instead of silently ignored by the binary.


def env_vars_by_subcommand() -> dict[str, set[str]]:
    source = (ROOT / "src" / "cli.rs").read_text()
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
    agent = deployments.get("infinistream-agent")
    check(agent is not None, "deployment infinistream-agent exists")
    if agent is None:
        return
    spec = agent["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    check(spec.get("replicas", 1) >= 2, f"agent replicas ({spec.get('replicas')}) allow a rolling drain")
    check(pod.get("terminationGracePeriodSeconds") == 300, "terminationGracePeriodSeconds is 300")
    check(not pod.get("volumes"), "agents mount no volumes (diskless)")
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
    bucket = config.get("INFINISTREAM_BUCKET_NAME", "")
    check("secret_access_key" not in bucket and "secret_key" not in bucket,
          "no S3 secret in the ConfigMap's bucket URL")
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

    client = services.get("infinistream-agent", {}).get("spec", {})
    check(selects(client.get("selector", {})), "service infinistream-agent selects the agents")
    check({p["port"] for p in client.get("ports", [])} == {4222, 8222}, "service infinistream-agent has 4222 and 8222")
    peers = services.get("infinistream-agent-peers", {}).get("spec", {})
    check(peers.get("clusterIP") == "None" and selects(peers.get("selector", {})),
          "service infinistream-agent-peers is headless and selects the agents")
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


def check_docs(envs: dict[str, set[str]]) -> None:
    print("docs/deploy.md")
    doc = (ROOT / "docs" / "deploy.md").read_text()
    mentioned = set(re.findall(r"INFINISTREAM_[A-Z_]*[A-Z]", doc))
    known = envs["agent"] | envs["control-plane"] | {"INFINISTREAM_IMAGE", "INFINISTREAM_BUCKET"}
    unknown = mentioned - known
    check(not unknown, f"every INFINISTREAM_ variable it names exists (unknown: {sorted(unknown) or 'none'})")


def main(argv: list[str]) -> int:
    envs = env_vars_by_subcommand()
    if not envs["agent"] or not envs["control-plane"]:
        print("FAIL cannot read the environment variables from src/cli.rs")
        return 1
    compose = json.loads(Path(argv[1]).read_text())
    check_compose(compose, envs)
    for path in argv[2:]:
        print(f"-- {path}")
        check_kubernetes(list(yaml.safe_load_all(Path(path).read_text())), envs)
    check_docs(envs)
    if FAILURES:
        print(f"\n{len(FAILURES)} deployment check(s) failed:")
        for failure in FAILURES:
            print(f"  - {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
