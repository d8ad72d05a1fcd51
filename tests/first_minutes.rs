//! The first five minutes of a new user, run as processes: what the playground, the agent and
//! the control plane print on a terminal and off one, how they refuse a directory or a port that
//! is taken (once, before opening any state), and how quiet an agent stays when its control
//! plane is down.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_infinistream");

/// The binary with a clean `INFINISTREAM_*`/`RUST_LOG` environment.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("INFINISTREAM_") || key == "RUST_LOG" || key == "NO_COLOR" {
            cmd.env_remove(key);
        }
    }
    cmd.args(args);
    cmd
}

/// Every listener on a free port.
const FREE_PORTS: [&str; 6] = ["--port", "0", "--http-port", "0", "--peer-port", "0"];

fn playground_args<'a>(dir: &'a str, host: &'a str) -> Vec<&'a str> {
    let mut args = vec!["playground", "--dir", dir, "--host", host];
    args.extend(FREE_PORTS);
    args.extend(["--batch-write", "50ms"]);
    args
}

/// Runs the binary with stdout and stderr on a new pseudo-terminal; its other end is returned.
fn spawn_on_a_terminal(args: &[&str]) -> (Child, std::fs::File) {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let slave: OwnedFd = pty.slave;
    let child = command(args)
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("the binary starts");
    (child, std::fs::File::from(pty.master))
}

/// An agent on loopback, free ports, writing to `bucket_url`.
fn agent_args<'a>(bucket_url: &'a str, control_plane_url: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "agent",
        "--group-id",
        "g",
        "--group-key",
        "k",
        "--bucket-name",
        bucket_url,
        "--control-plane-url",
        control_plane_url,
        "--host",
        "127.0.0.1",
    ];
    args.extend(FREE_PORTS);
    args
}

/// Reads lines from `source` on a thread until `done` says stop; returns what was read.
fn read_lines_until(
    source: impl Read + Send + 'static,
    done: impl Fn(&[String]) -> bool + Send + 'static,
) -> mpsc::Receiver<Vec<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut sent = false;
        for line in BufReader::new(source).lines().map_while(Result::ok) {
            lines.push(line);
            if !sent && done(&lines) {
                let _ = tx.send(lines.clone());
                sent = true;
            }
        }
        if !sent {
            let _ = tx.send(lines);
        }
    });
    rx
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The port of `nats://host:port`, after checking the host.
fn port_of(url: &str, host: &str) -> u16 {
    let rest = url
        .strip_prefix(&format!("nats://{host}:"))
        .unwrap_or_else(|| panic!("{url} is not on {host}"));
    rest.trim().parse().expect("a port")
}

/// The NATS server's INFO arrives on `host:port`.
fn speaks_nats(host: &str, port: u16) {
    let mut stream = std::net::TcpStream::connect((host, port)).expect("connect to the url");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).expect("INFO");
    assert_eq!(&buf, b"INFO ");
}

/// On a terminal: a banner with the real host first, then one readable line per event; no
/// JSON, no framework chatter, no Rust debug strings.
#[test]
fn a_terminal_gets_a_banner_and_readable_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().display().to_string();
    let (child, terminal) = spawn_on_a_terminal(&playground_args(&dir_text, "127.0.0.2"));
    let rx = read_lines_until(terminal, |lines| {
        lines
            .iter()
            .any(|l| l.contains("availability zone membership changed"))
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the playground wrote its first events");
    let lines: Vec<String> = lines.iter().map(|l| l.trim_end().to_owned()).collect();
    let text = lines.join("\n");
    assert_eq!(
        lines[0],
        format!("InfiniStream {} playground", env!("CARGO_PKG_VERSION")),
        "{text}"
    );
    let url = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("NATS").map(|u| u.trim().to_owned()))
        .unwrap_or_else(|| panic!("no NATS row in:\n{text}"));
    speaks_nats("127.0.0.2", port_of(&url, "127.0.0.2"));
    stop(child);
    assert!(
        lines[1].trim_start().starts_with("NATS"),
        "the url is the first row:\n{text}"
    );
    for row in ["monitoring  http://127.0.0.2:", "data", "window      50 ms"] {
        assert!(text.contains(row), "no {row:?} in:\n{text}");
    }
    assert!(text.contains(&dir_text), "{text}");
    for noise in [
        "{\"",
        "starting 2 workers",
        "actix",
        "Some(",
        "PlaygroundConfig",
    ] {
        assert!(!text.contains(noise), "{noise:?} in:\n{text}");
    }
    // One line per event, each starting with the time of day.
    let events: Vec<&String> = lines.iter().skip_while(|l| !l.is_empty()).skip(1).collect();
    assert!(!events.is_empty(), "{text}");
    for line in events {
        let time = line.get(..12).unwrap_or_default();
        assert!(
            time.len() == 12 && time.as_bytes()[2] == b':' && time.as_bytes()[8] == b'.',
            "{line:?} in:\n{text}"
        );
    }
}

/// An agent on a terminal: its banner comes before its first event, even when the first events
/// are warnings about a control plane that is down.
#[test]
fn an_agent_on_a_terminal_prints_its_banner_first() {
    let bucket = tempfile::tempdir().expect("temp dir");
    let bucket_url = format!("file://{}", bucket.path().display());
    let (child, terminal) = spawn_on_a_terminal(&agent_args(&bucket_url, "http://127.0.0.1:1"));
    let rx = read_lines_until(terminal, |lines| lines.iter().any(|l| l.contains("WARN")));
    let lines = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the agent warned");
    stop(child);
    let text = lines.join("\n");
    assert_eq!(
        lines[0].trim_end(),
        format!("InfiniStream {} agent", env!("CARGO_PKG_VERSION")),
        "{text}"
    );
    let url_row = lines.iter().position(|l| l.contains("nats://127.0.0.1:"));
    let first_warning = lines.iter().position(|l| l.contains("WARN"));
    assert!(url_row < first_warning, "{text}");
    assert!(text.contains("control plane  http://127.0.0.1:1"), "{text}");
}

/// Off a terminal: JSON lines only, the started line with the real host's URL; the URL works.
#[test]
fn off_a_terminal_every_line_is_json_with_the_real_host() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().display().to_string();
    let mut child = command(&playground_args(&dir_text, "127.0.0.3"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("playground starts");
    let stdout = child.stdout.take().expect("stdout");
    let rx = read_lines_until(stdout, |lines| {
        lines.iter().any(|l| l.contains("playground started"))
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the playground started");
    let started: serde_json::Value = lines
        .iter()
        .find(|l| l.contains("playground started"))
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("a JSON started line");
    let url = started["url"].as_str().expect("url").to_owned();
    let port = port_of(&url, "127.0.0.3");
    assert_eq!(started["port"], port);
    assert_ne!(started["peer_port"], 0, "{started}");
    assert_eq!(started["dir"], dir_text.as_str());
    assert_eq!(started["clients"], "no authentication, no TLS", "{started}");
    speaks_nats("127.0.0.3", port);
    stop(child);
    for line in &lines {
        assert!(
            !line.contains("beyond loopback"),
            "a loopback host is not exposed: {line}"
        );
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            !v["target"].as_str().unwrap_or("").starts_with("actix"),
            "{line}"
        );
    }
}

fn wait_for_start(child: &mut Child) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout");
    read_lines_until(stdout, |lines| {
        lines.iter().any(|l| l.contains(" started\""))
    })
    .recv_timeout(Duration::from_secs(60))
    .expect("started")
}

fn one_error_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Runs `args` twice on the directory `dir`: the second is refused with the first's pid, and
/// the first keeps running.
fn a_second_owner_is_refused(args: &[&str], dir: &str) {
    let mut first = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("first process");
    wait_for_start(&mut first);
    let second = command(args).output().expect("second process");
    let err = one_error_line(&second);
    assert!(
        err.contains(&format!(
            "{dir} is in use by another infinistream process (pid {})",
            first.id()
        )),
        "{err}"
    );
    assert!(
        first.try_wait().expect("poll").is_none(),
        "the first still runs"
    );
    stop(first);
}

/// A second playground on the same directory is refused.
#[test]
fn one_playground_per_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().display().to_string();
    a_second_owner_is_refused(&playground_args(&dir_text, "127.0.0.1"), &dir_text);
}

fn control_plane_args<'a>(dir: &'a str, listen: &'a str) -> Vec<&'a str> {
    vec![
        "control-plane",
        "--data-dir",
        dir,
        "--listen",
        listen,
        "--group-id",
        "g",
        "--group-key",
        "k",
    ]
}

fn sqlite_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("sqlite"))
                .collect()
        })
        .unwrap_or_default()
}

/// A second control plane on the same data directory is refused before it opens the database.
#[test]
fn one_control_plane_per_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().display().to_string();
    a_second_owner_is_refused(&control_plane_args(&dir_text, "127.0.0.1:0"), &dir_text);
}

/// A port in use: one line, the OS error once, and no database created (the check comes first).
#[test]
fn a_port_in_use_is_reported_once_before_any_state_is_opened() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().display().to_string();
    let mut args = playground_args(&dir_text, "127.0.0.1");
    let at = args.iter().position(|a| *a == "--port").expect("--port") + 1;
    args[at] = &port;
    let out = command(&args).output().expect("playground");
    let err = one_error_line(&out);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(
        sqlite_files(&dir.path().join("control-plane")).is_empty(),
        "the database was opened: {:?}",
        sqlite_files(&dir.path().join("control-plane"))
    );

    let listen = format!("127.0.0.1:{port}");
    let cp_dir = tempfile::tempdir().expect("temp dir");
    let cp_text = cp_dir.path().display().to_string();
    let out = command(&control_plane_args(&cp_text, &listen))
        .output()
        .expect("control plane");
    let err = one_error_line(&out);
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(sqlite_files(cp_dir.path()).is_empty(), "{err}");
    drop(taken);
}

/// With its control plane down, an agent writes a repeated warning once, then again after a
/// quiet second with the count of the ones it held back.
#[test]
fn a_control_plane_that_is_down_does_not_flood_the_log() {
    let bucket = tempfile::tempdir().expect("temp dir");
    let bucket_url = format!("file://{}", bucket.path().display());
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let mut child = command(&agent_args(&bucket_url, &dead_url))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent starts");
    const MESSAGE: &str = "push consumer lease failed";
    let stdout = child.stdout.take().expect("stdout");
    let rx = read_lines_until(stdout, |lines| {
        lines
            .iter()
            .any(|l| l.contains(MESSAGE) && l.contains("\"suppressed\""))
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the agent's output");
    stop(child);
    let repeats: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.contains(MESSAGE))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // The lease is retried every 100 ms: ten a second without the limiter.
    assert_eq!(repeats.len(), 2, "{lines:#?}");
    assert!(repeats[0].get("suppressed").is_none(), "{:?}", repeats[0]);
    let held_back = repeats[1]["suppressed"].as_u64().expect("a count");
    assert!(held_back >= 3, "{:?}", repeats[1]);
    assert!(
        repeats[1]["suppressed_over_ms"].as_u64().expect("a span") >= 1000,
        "{:?}",
        repeats[1]
    );
}

/// Listening beyond loopback without client authentication says so: the started line names how
/// clients are admitted, and a warning follows it.
#[test]
fn listening_beyond_loopback_is_warned_about() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().display().to_string();
    let mut child = command(&playground_args(&dir_text, "0.0.0.0"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("playground starts");
    let stdout = child.stdout.take().expect("stdout");
    let rx = read_lines_until(stdout, |lines| {
        lines.iter().any(|l| l.contains("beyond loopback"))
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the playground warned");
    stop(child);
    let warning = lines
        .iter()
        .find(|l| l.contains("beyond loopback"))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .expect("a JSON warning");
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["host"], "0.0.0.0", "{warning}");
}
