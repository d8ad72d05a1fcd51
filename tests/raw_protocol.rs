//! The wire protocol byte for byte over raw TCP: exact `-ERR` texts, and whether the connection is
//! closed afterwards, as nats-server does it.

mod common;

use std::time::Duration;

use common::TestAgent;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

struct Raw {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Raw {
    async fn connect(agent: &TestAgent) -> Self {
        let s = TcpStream::connect(("127.0.0.1", agent.port))
            .await
            .expect("connect to the agent");
        let (r, w) = s.into_split();
        let mut raw = Raw {
            r: BufReader::new(r),
            w,
        };
        let info = raw.line().await;
        assert!(info.starts_with("INFO {"), "got {info:?}");
        // nats-server ends INFO with a space before the line end.
        assert!(info.ends_with("} \r\n"), "got {info:?}");
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.expect("write to the agent");
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = timeout(WAIT, self.r.read_line(&mut line))
            .await
            .expect("line within timeout")
            .expect("read");
        assert!(n > 0, "connection closed while a line was expected");
        line
    }

    async fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        timeout(WAIT, self.r.read_exact(&mut buf))
            .await
            .expect("bytes within timeout")
            .expect("read");
        buf
    }

    /// True when the server closed the connection (EOF or reset) within the timeout.
    async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match timeout(WAIT, self.r.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// The connection still answers PING.
    async fn alive(&mut self) -> bool {
        self.send(b"PING\r\n").await;
        self.line().await == "PONG\r\n"
    }
}

#[tokio::test]
async fn unknown_operation_closes() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"FOO bar\r\n").await;
    assert_eq!(c.line().await, "-ERR 'Unknown Protocol Operation'\r\n");
    assert!(c.closed().await);
}

#[tokio::test]
async fn invalid_subject_keeps_connection_open() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"SUB foo..bar 1\r\n").await;
    assert_eq!(c.line().await, "-ERR 'Invalid Subject'\r\n");
    assert!(c.alive().await);
}

#[tokio::test]
async fn oversized_control_line_closes() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    let mut line = b"PUB ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 5000));
    c.send(&line).await;
    assert_eq!(c.line().await, "-ERR 'maximum control line exceeded'\r\n");
    assert!(c.closed().await);
}

#[tokio::test]
async fn payload_over_max_closes() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"PUB foo 1048577\r\n").await;
    assert_eq!(c.line().await, "-ERR 'Maximum Payload Violation'\r\n");
    assert!(c.closed().await);
}

#[tokio::test]
async fn frames_split_at_every_byte() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    let input = b"CONNECT {\"verbose\":false,\"headers\":true}\r\nsub foo 1\r\nPUB foo 5\r\nhello\r\nhpub foo reply 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n";
    for b in input.iter() {
        c.send(std::slice::from_ref(b)).await;
        c.w.flush().await.unwrap();
    }
    assert_eq!(c.line().await, "MSG foo 1 5\r\n");
    assert_eq!(c.exact(7).await, b"hello\r\n");
    assert_eq!(c.line().await, "HMSG foo 1 reply 12 14\r\n");
    assert_eq!(c.exact(16).await, b"NATS/1.0\r\n\r\nhi\r\n");
    assert_eq!(c.line().await, "PONG\r\n");
}

#[tokio::test]
async fn many_frames_in_one_write_with_headers() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"CONNECT {\"headers\":true,\"verbose\":true}\r\nSUB a.* q1 7\r\nHPUB a.b 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nok\r\nPING\r\n")
        .await;
    assert_eq!(c.line().await, "+OK\r\n");
    assert_eq!(c.line().await, "+OK\r\n");
    assert_eq!(c.line().await, "+OK\r\n");
    assert_eq!(c.line().await, "HMSG a.b 7 18 20\r\n");
    assert_eq!(c.exact(22).await, b"NATS/1.0\r\nK: v\r\n\r\nok\r\n");
    assert_eq!(c.line().await, "PONG\r\n");
}

#[tokio::test]
async fn no_responders_status_goes_to_the_requester() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB _INBOX.abc.* 9\r\nPUB nobody _INBOX.abc.1 0\r\n\r\n")
        .await;
    assert_eq!(c.line().await, "HMSG _INBOX.abc.1 9 38 38\r\n");
    assert_eq!(
        c.exact(40).await,
        b"NATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\n"
    );
}

#[tokio::test]
async fn unsub_with_max_counts_already_delivered() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"CONNECT {\"verbose\":false}\r\nSUB n 1\r\nPUB n 1\r\na\r\nUNSUB 1 1\r\nPUB n 1\r\nb\r\nPING\r\n")
        .await;
    assert_eq!(c.line().await, "MSG n 1 1\r\n");
    assert_eq!(c.exact(3).await, b"a\r\n");
    // The sid had already delivered its one message, so UNSUB 1 1 removed it at once.
    assert_eq!(c.line().await, "PONG\r\n");
}

#[tokio::test]
async fn stale_connection_is_closed() {
    let agent = TestAgent::start_with(|_, t| {
        t.ping_interval = Duration::from_millis(100);
        t.max_pings_out = 2;
    });
    let mut c = Raw::connect(&agent).await;
    assert_eq!(c.line().await, "PING\r\n");
    assert_eq!(c.line().await, "PING\r\n");
    assert_eq!(c.line().await, "-ERR 'Stale Connection'\r\n");
    assert!(c.closed().await);
}

#[tokio::test]
async fn answered_pings_keep_the_connection() {
    let agent = TestAgent::start_with(|_, t| {
        t.ping_interval = Duration::from_millis(50);
        t.max_pings_out = 2;
    });
    let mut c = Raw::connect(&agent).await;
    for _ in 0..6 {
        assert_eq!(c.line().await, "PING\r\n");
        c.send(b"PONG\r\n").await;
    }
    assert!(c.alive().await);
}

#[tokio::test]
async fn slow_consumer_is_dropped_and_nobody_else_notices() {
    use futures::StreamExt;
    let agent = TestAgent::start_with(|_, t| t.max_pending = 4 * 1024 * 1024);
    // The slow client subscribes and then never reads.
    let mut slow = Raw::connect(&agent).await;
    slow.send(b"CONNECT {\"verbose\":false}\r\nSUB data 1\r\nPING\r\n")
        .await;
    assert_eq!(slow.line().await, "PONG\r\n");

    let healthy = async_nats::connect(&agent.url).await.unwrap();
    let mut sub = healthy.subscribe("data").await.unwrap();
    common::sync(&healthy).await;
    let publisher = async_nats::connect(&agent.url).await.unwrap();
    let chunk = bytes::Bytes::from(vec![b'x'; 32 * 1024]);
    // 64 MiB in rounds of 1 MiB; each round waits for the healthy subscriber, so only the client
    // that does not read falls behind.
    const ROUNDS: usize = 64;
    const PER_ROUND: usize = 32;
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            publisher.publish("data", chunk.clone()).await.unwrap();
        }
        common::sync(&publisher).await;
        for _ in 0..PER_ROUND {
            let m = timeout(WAIT, sub.next())
                .await
                .expect("healthy keeps receiving");
            assert!(m.is_some(), "healthy subscription stays open");
        }
    }
    assert!(slow.closed().await, "the slow consumer was disconnected");
    assert!(healthy.connection_state() == async_nats::connection::State::Connected);
}

#[tokio::test]
async fn headers_are_stripped_for_clients_without_them() {
    let agent = TestAgent::start();
    let mut plain = Raw::connect(&agent).await;
    plain
        .send(b"CONNECT {\"verbose\":false}\r\nSUB h 1\r\nPING\r\n")
        .await;
    assert_eq!(plain.line().await, "PONG\r\n");
    let mut hdr = Raw::connect(&agent).await;
    hdr.send(b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n")
        .await;
    assert_eq!(hdr.line().await, "PONG\r\n");
    assert_eq!(plain.line().await, "MSG h 1 2\r\n");
    assert_eq!(plain.exact(4).await, b"hi\r\n");
}

#[tokio::test]
async fn verbose_and_pedantic_are_on_until_connect_turns_them_off() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    // Before CONNECT nats-server acks every op and checks publish subjects.
    c.send(b"PUB foo.* 1\r\na\r\nUNSUB 99\r\n").await;
    assert_eq!(c.line().await, "-ERR 'Invalid Publish Subject'\r\n");
    assert_eq!(c.line().await, "+OK\r\n");
    assert_eq!(c.line().await, "+OK\r\n");
    c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB foo.* 1\r\nPUB foo.* 1\r\na\r\nPING\r\n")
        .await;
    // Not pedantic: a wildcard publish is routed as a literal, as nats-server does.
    assert_eq!(c.line().await, "MSG foo.* 1 1\r\n");
    assert_eq!(c.exact(3).await, b"a\r\n");
    assert_eq!(c.line().await, "PONG\r\n");
}

#[tokio::test]
async fn bad_connect_json_closes_silently() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"CONNECT {bad\r\nPING\r\n").await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn no_responders_without_headers_is_refused() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"CONNECT {\"verbose\":false,\"no_responders\":true}\r\n")
        .await;
    assert_eq!(
        c.line().await,
        "-ERR 'no responders requires headers support'\r\n"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn garbage_sizes_close_without_error() {
    for input in [
        &b"PUB foo abc\r\n"[..],
        b"PUB foo -1\r\n",
        b"PUB foo\r\n",
        b"SUB foo q q2 1 2\r\n",
    ] {
        let agent = TestAgent::start();
        let mut c = Raw::connect(&agent).await;
        c.send(input).await;
        assert!(
            c.closed().await,
            "{:?} closes",
            String::from_utf8_lossy(input)
        );
    }
}

#[tokio::test]
async fn payload_without_terminator_closes() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"PUB foo 1\r\nabPING\r\n").await;
    assert_eq!(c.line().await, "-ERR 'Unknown Protocol Operation'\r\n");
    assert!(c.closed().await);
}

/// Everything one connection sends takes effect in order: an UNSUB applies only after the
/// earlier PUBs were routed, so both messages come before the PONG (nats-server; nats.js
/// `sub.drain()` depends on it).
#[tokio::test]
async fn unsub_after_pubs_in_one_write_still_delivers_them() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    c.send(b"CONNECT {\"verbose\":false}\r\nSUB raw.x 1\r\nPING\r\n")
        .await;
    assert_eq!(c.line().await, "PONG\r\n");
    c.send(b"PUB raw.x 2\r\nhi\r\nPUB raw.x 2\r\nho\r\nUNSUB 1\r\nPING\r\n")
        .await;
    assert_eq!(c.line().await, "MSG raw.x 1 2\r\n");
    assert_eq!(c.exact(4).await, b"hi\r\n");
    assert_eq!(c.line().await, "MSG raw.x 1 2\r\n");
    assert_eq!(c.exact(4).await, b"ho\r\n");
    assert_eq!(c.line().await, "PONG\r\n");
    // And the UNSUB did apply: nothing more is delivered.
    c.send(b"PUB raw.x 2\r\nno\r\nPING\r\n").await;
    assert_eq!(c.line().await, "PONG\r\n");
    // A sid reused right after its UNSUB is a new subscription.
    c.send(b"UNSUB 1\r\nSUB raw.y 1\r\nPUB raw.y 3\r\nnew\r\nPING\r\n")
        .await;
    assert_eq!(c.line().await, "MSG raw.y 1 3\r\n");
    assert_eq!(c.exact(5).await, b"new\r\n");
    assert_eq!(c.line().await, "PONG\r\n");
}

/// A PONG is written only after every message produced by the connection's earlier commands:
/// 5,000 SUBs, a PUB matching all of them and a PING in one write give 5,000 MSGs, then PONG.
#[tokio::test]
async fn pong_follows_the_messages_of_earlier_commands() {
    let agent = TestAgent::start();
    let mut c = Raw::connect(&agent).await;
    let mut input = b"CONNECT {\"verbose\":false}\r\n".to_vec();
    for sid in 0..5000 {
        input.extend_from_slice(format!("SUB many.x {sid}\r\n").as_bytes());
    }
    input.extend_from_slice(b"PUB many.x 2\r\nhi\r\nPING\r\n");
    c.send(&input).await;
    let mut sids = std::collections::HashSet::new();
    for _ in 0..5000 {
        let line = c.line().await;
        let sid = line
            .strip_prefix("MSG many.x ")
            .and_then(|r| r.strip_suffix(" 2\r\n"))
            .unwrap_or_else(|| panic!("expected a MSG, got {line:?}"))
            .to_string();
        assert_eq!(c.exact(4).await, b"hi\r\n");
        sids.insert(sid);
    }
    assert_eq!(sids.len(), 5000);
    assert_eq!(c.line().await, "PONG\r\n");
}
