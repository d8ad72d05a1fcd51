#!/usr/bin/env bash
# Runs every test: installs the Python client (nats-py) into ./.venv and the JavaScript client
# (nats.js) into tests/js/node_modules, then the Rust test suite, which drives async-nats, nats.py
# and nats.js against real agents, control plane and S3 on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
export INFINISTREAM_TEST_PYTHON="$PWD/.venv/bin/python"

# nats.js at the versions in tests/js/package-lock.json, installed when missing or older than it.
if [ ! -f tests/js/node_modules/.package-lock.json ] ||
  [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
  (cd tests/js && npm ci --loglevel=error --no-audit --no-fund)
fi

cargo test --locked --all-targets "$@"
