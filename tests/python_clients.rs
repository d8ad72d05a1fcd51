//! The same scenarios with nats.py, the Python client, unmodified. The interpreter comes from
//! `INFINISTREAM_TEST_PYTHON` (set by `scripts/test.sh`, which installs nats-py into a venv), else
//! `python3`; a missing nats-py fails the test with what to run.

mod common;

use std::process::Command;

use common::TestAgent;

fn python() -> String {
    std::env::var("INFINISTREAM_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn run_scenario(script: &str, url: &str) {
    run_scenario_with(script, &[url]);
}

fn run_scenario_with(script: &str, args: &[&str]) {
    let py = python();
    let has_nats = Command::new(&py)
        .args(["-c", "import nats"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_nats,
        "{py} cannot import nats (nats-py): run ./scripts/test.sh, which installs it"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    common::scenario::run(&py, &dir, script, args);
}

#[test]
fn nats_py_core_scenario() {
    let agent = TestAgent::start();
    run_scenario("core_scenario.py", &agent.url);
}

#[test]
fn nats_py_jetstream_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("js_scenario.py", &stack.url(0));
}

#[test]
fn nats_py_consumer_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("consumer_scenario.py", &stack.url(0));
}

#[test]
fn nats_py_kv_scenario() {
    let stack = common::Stack::start(1);
    run_scenario("kv_scenario.py", &stack.url(0));
}

/// nats.py's ordered consumer recovers from a gap (one delivery taken at the control plane).
#[test]
fn nats_py_ordered_consumer_recovers_from_a_gap() {
    let stack = common::Stack::start(1);
    run_scenario_with(
        "ordered_gap_scenario.py",
        &[
            &stack.url(0),
            &stack.cp.url,
            common::agent::GROUP_ID,
            common::agent::GROUP_KEY,
        ],
    );
}

/// Purge with filter + keep and filter + seq, `kv.purge_deletes(olderthan=…)` and KV keys with
/// wildcard tokens, against expectations captured from nats-server 2.15.1.
#[test]
fn nats_py_purge_and_kv_exactness() {
    let stack = common::Stack::start(1);
    run_scenario("purge_scenario.py", &stack.url(0));
}
