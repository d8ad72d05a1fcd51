//! Running a client library's scenario script (nats.py, nats.js) as a child process: it must exit
//! 0 and print `<name>: ok`, else the test fails with its output.

use std::path::Path;
use std::process::Command;

/// Runs `program script args…` in `dir` and checks the scenario finished.
pub fn run(program: &str, dir: &Path, script: &str, args: &[&str]) {
    let out = Command::new(program)
        .arg(dir.join(script))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(": ok"), "{script} did not finish: {stdout}");
}
