#!/usr/bin/env bash
# The architecture's two rules, checked: dependencies point one way (the agent library needs
# neither the control plane's SQLite nor the bench client; the control plane never imports the
# agent), and no crate has modules that import each other in a circle.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-architecture: $*" >&2; exit 1; }

# The agent library's normal dependency tree, without the binary's features.
agent_tree=$(cargo tree --locked -p infinistream -e normal --no-default-features --prefix none)
for dep in rusqlite async-nats infinistream-control-plane infinistream-bench; do
  if grep -q "^$dep v" <<<"$agent_tree"; then
    fail "the agent library depends on $dep (cargo tree -p infinistream -e normal --no-default-features)"
  fi
done
if grep -rlE '\b(rusqlite|async_nats)\b' src; then
  fail "the files above, under src/, name rusqlite or async_nats"
fi

# The control plane and the shared wire types never depend on the agent.
for crate in infinistream-control-plane infinistream-api; do
  if cargo tree --locked -p "$crate" -e normal --prefix none | grep -q '^infinistream v'; then
    fail "$crate depends on the agent (infinistream)"
  fi
done

# The cycle check itself must catch a cycle: two modules that import each other, one of them
# through a parent's re-export and a grouped `use`, and a test-only import that must not count.
fixture=$(mktemp -d)
trap 'rm -rf "$fixture"' EXIT
mkdir -p "$fixture/src/b"
printf 'mod a;\nmod b;\n' >"$fixture/src/lib.rs"
printf 'use crate::b::{Thing, inner::Other};\npub struct Mine;\n' >"$fixture/src/a.rs"
printf 'mod inner;\npub use inner::Thing;\n' >"$fixture/src/b/mod.rs"
printf 'pub struct Thing;\npub struct Other(crate::a::Mine);\n' >"$fixture/src/b/inner.rs"
if python3 scripts/module_cycles.py "$fixture/src/lib.rs" >/dev/null; then
  fail "module_cycles.py missed the cycle a <-> b in its fixture"
fi
printf 'pub struct Thing;\n#[cfg(test)]\nmod tests {\n    use crate::a::Mine;\n}\n' >"$fixture/src/b/inner.rs"
printf 'pub struct Other;\n' >>"$fixture/src/b/inner.rs"
if ! python3 scripts/module_cycles.py "$fixture/src/lib.rs" >/dev/null; then
  fail "module_cycles.py reported a cycle made only by test code"
fi

python3 scripts/module_cycles.py src/lib.rs src/main.rs crates/*/src/lib.rs
echo "check-architecture: ok"
