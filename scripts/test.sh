#!/usr/bin/env bash
# Runs every test: installs the Python client (nats-py) into ./.venv, the JavaScript client
# (nats.js) into tests/js/node_modules and Azure's blob emulator (Azurite) into
# tests/azurite/node_modules, then the Rust test suite, which drives async-nats, nats.py and
# nats.js against real agents, control plane, S3 and Azure Blob APIs on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
export INFINISTREAM_TEST_PYTHON="$PWD/.venv/bin/python"

# nats.js and Azurite at the versions in their package-lock.json, installed when missing or
# older than it.
for dir in tests/js tests/azurite; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
    [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --loglevel=error --no-audit --no-fund)
  fi
done

cargo test --locked --workspace --all-targets "$@"
