//! Random subjects (wildcard tokens, empty tokens, very long, not UTF-8) through every API that
//! takes one, over the wire: core PUB/HPUB/SUB/UNSUB, JetStream publishes (a KV bucket captures
//! `$KV.w.>`), DIRECT.GET by subject, MSG.GET by last/next subject, STREAM.INFO
//! `subjects_filter`, STREAM.PURGE `filter`, CONSUMER.CREATE `filter_subject` and STREAM.CREATE
//! `subjects`. Whatever the agent answers, no input may stop it: after every case a fresh
//! connection still gets its PONG and a JetStream answer. Seeded, so a failure reproduces.

mod common;

use std::time::Duration;

use common::Stack;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);
const CASES: usize = 60;

fn random_subject(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..10) {
        // Very long: many tokens, or one long token.
        0 => vec!["a"; rng.random_range(500..3000)]
            .join(".")
            .into_bytes(),
        1 => vec![b'z'; rng.random_range(1000..4000)],
        // Not UTF-8 somewhere.
        2 => {
            let mut s = b"w.".to_vec();
            s.extend_from_slice(&[0xff, 0xfe, b'x', 0xc3]);
            s
        }
        _ => {
            let tokens = ["a", "b", "*", ">", "", "x>", "*a", "$KV", "\u{e9}"];
            let n = rng.random_range(1..7);
            let picked: Vec<&str> = (0..n)
                .map(|_| tokens[rng.random_range(0..tokens.len())])
                .collect();
            picked.join(".").into_bytes()
        }
    }
}

fn pub_frame(subject: &[u8], reply: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = b"PUB ".to_vec();
    f.extend_from_slice(subject);
    f.push(b' ');
    f.extend_from_slice(reply);
    f.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
    f.extend_from_slice(payload);
    f.extend_from_slice(b"\r\n");
    f
}

/// A JSON body with `subject` spliced in raw (so bytes that are not UTF-8 reach the decoder).
fn json_with(prefix: &str, subject: &[u8], suffix: &str) -> Vec<u8> {
    let escaped: Vec<u8> = subject
        .iter()
        .flat_map(|b| match b {
            b'"' => b"\\\"".to_vec(),
            b'\\' => b"\\\\".to_vec(),
            _ => vec![*b],
        })
        .collect();
    let mut body = prefix.as_bytes().to_vec();
    body.extend_from_slice(&escaped);
    body.extend_from_slice(suffix.as_bytes());
    body
}

/// Every frame of one case, sent on one connection in one write.
fn case_frames(subject: &[u8]) -> Vec<u8> {
    let inbox = b"_INBOX.fuzz";
    let mut out = b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB _INBOX.fuzz 1\r\n".to_vec();
    // Core.
    let mut sub = b"SUB ".to_vec();
    sub.extend_from_slice(subject);
    sub.extend_from_slice(b" 2\r\n");
    out.extend_from_slice(&sub);
    out.extend(pub_frame(subject, inbox, b"core"));
    let mut hpub = b"HPUB ".to_vec();
    hpub.extend_from_slice(subject);
    hpub.extend_from_slice(b" 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n");
    out.extend_from_slice(&hpub);
    out.extend_from_slice(b"UNSUB 2\r\n");
    // JetStream: a KV put of the subject as a key, then reads and filters by it.
    let mut kv = b"$KV.w.".to_vec();
    kv.extend_from_slice(subject);
    out.extend(pub_frame(&kv, inbox, b"kv"));
    let mut direct = b"$JS.API.DIRECT.GET.KV_w.$KV.w.".to_vec();
    direct.extend_from_slice(subject);
    out.extend(pub_frame(&direct, inbox, b""));
    let apis: Vec<(&str, Vec<u8>)> = vec![
        (
            "$JS.API.STREAM.MSG.GET.KV_w",
            json_with("{\"last_by_subj\":\"$KV.w.", subject, "\"}"),
        ),
        (
            "$JS.API.STREAM.MSG.GET.KV_w",
            json_with("{\"seq\":1,\"next_by_subj\":\"", subject, "\"}"),
        ),
        (
            "$JS.API.STREAM.INFO.KV_w",
            json_with("{\"subjects_filter\":\"", subject, "\"}"),
        ),
        (
            "$JS.API.CONSUMER.CREATE.KV_w",
            json_with(
                "{\"stream_name\":\"KV_w\",\"config\":{\"ack_policy\":\"explicit\",\"filter_subject\":\"$KV.w.",
                subject,
                "\"}}",
            ),
        ),
        (
            "$JS.API.STREAM.CREATE.FZ",
            json_with("{\"name\":\"FZ\",\"subjects\":[\"fz.", subject, "\"]}"),
        ),
        (
            "$JS.API.STREAM.PURGE.KV_w",
            json_with("{\"filter\":\"$KV.w.", subject, "\",\"keep\":1}"),
        ),
    ];
    for (api, body) in apis {
        out.extend(pub_frame(api.as_bytes(), inbox, &body));
    }
    out.extend_from_slice(b"PING\r\n");
    out
}

/// Sends one case and reads whatever comes back until its PONG (true) or the connection closes
/// (false).
async fn run_case(port: u16, frames: &[u8]) -> bool {
    let mut c = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    c.write_all(frames).await.expect("write");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match timeout(WAIT, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return false, // closed, as for bytes that are not UTF-8
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(6).any(|w| w == b"PONG\r\n") {
                    return true;
                }
            }
            Err(_) => panic!(
                "no PONG and no close: {:?}",
                String::from_utf8_lossy(&got[got.len().saturating_sub(400)..])
            ),
        }
    }
}

/// The agent still serves core NATS and JetStream.
async fn alive(client: &async_nats::Client) {
    common::sync(client).await;
    let reply = timeout(
        WAIT,
        client.request("$JS.API.STREAM.INFO.KV_w", bytes::Bytes::new()),
    )
    .await
    .expect("answered in time")
    .expect("request");
    let info: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
    assert_eq!(info["config"]["name"], "KV_w", "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_subjects_never_stop_the_agent() {
    let stack = Stack::start(1);
    let port = stack.agents[0].port;
    let (client, js) = common::connect(&stack.url(0)).await;
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "w".into(),
        history: 5,
        ..Default::default()
    })
    .await
    .expect("bucket");
    let mut rng = StdRng::seed_from_u64(12);
    let mut answered = 0;
    for i in 0..CASES {
        let subject = random_subject(&mut rng);
        answered += usize::from(run_case(port, &case_frames(&subject)).await);
        if i % 10 == 9 {
            alive(&client).await;
        }
    }
    alive(&client).await;
    // Most cases are read to their end (only bytes that are not UTF-8 and control lines over
    // the limit close a connection), and their KV puts were stored.
    assert!(
        answered > CASES / 2,
        "only {answered} of {CASES} cases were answered"
    );
    let info = js
        .get_stream("KV_w")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert!(
        info.state.messages > 0,
        "no KV put was stored: {:?}",
        info.state
    );
}
