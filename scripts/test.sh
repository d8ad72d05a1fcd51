#!/usr/bin/env bash
# Runs every test: installs the Python client (nats-py) into ./.venv, then the Rust test suite,
# which drives async-nats and nats.py against real agents, control plane and S3 on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
export INFINISTREAM_TEST_PYTHON="$PWD/.venv/bin/python"

cargo test --locked --all-targets "$@"
