//! The same kind of scenarios with nats.js, the JavaScript client, unmodified (`@nats-io/*` 3.x
//! from npm, pinned in `tests/js/package-lock.json`). `node` comes from `INFINISTREAM_TEST_NODE`,
//! else `node` on the PATH; the packages from `tests/js/node_modules`, which `scripts/test.sh`
//! installs with `npm ci`. Either missing fails the test with what to run. Each scenario was
//! written against nats-server 2.15 first (the command is at the top of each script).

mod common;

use std::path::Path;
use std::process::Command;

use common::TestAgent;

fn node() -> String {
    std::env::var("INFINISTREAM_TEST_NODE").unwrap_or_else(|_| "node".to_string())
}

fn run_scenario(script: &str, url: &str) {
    let node = node();
    let has_node = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_node,
        "cannot run {node}: install Node.js 20 or later (or set INFINISTREAM_TEST_NODE)"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    for pkg in ["transport-node", "jetstream", "kv", "obj"] {
        assert!(
            dir.join("node_modules/@nats-io").join(pkg).is_dir(),
            "tests/js/node_modules/@nats-io/{pkg} is missing: run ./scripts/test.sh, \
             which installs nats.js (npm ci in tests/js)"
        );
    }
    common::scenario::run(&node, &dir, script, &[url]);
}

#[test]
fn nats_js_core_scenario() {
    let agent = TestAgent::start();
    run_scenario("core.mjs", &agent.url);
}

#[test]
fn nats_js_stream_management_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("streams.mjs", &stack.url(0));
}

#[test]
fn nats_js_publish_expectations_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("publish.mjs", &stack.url(0));
}

#[test]
fn nats_js_consumers_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("consumers.mjs", &stack.url(0));
}

#[test]
fn nats_js_ordered_consumers_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("ordered.mjs", &stack.url(0));
}

#[test]
fn nats_js_kv_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("kv.mjs", &stack.url(0));
}

#[test]
fn nats_js_object_store_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("obj.mjs", &stack.url(0));
}
