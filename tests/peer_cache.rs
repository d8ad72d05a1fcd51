//! Several agents on loopback sharing one bucket and control plane: the zone's peer cache, its
//! failure modes, and supervision of the SequenceClient and the PeerCache under load.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use common::Stack;
use common::agent::{GROUP_ID, GROUP_KEY};
use futures::future::join_all;
use infinistream::actors::GetMembers;
use infinistream::actors::Restarts;
use infinistream::actors::peer::{self, PeerError, PeerSettings};
use infinistream::config::Secret;

const WAIT: Duration = Duration::from_secs(20);

fn stream_config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        allow_direct: true,
        ..Default::default()
    }
}

async fn js(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.expect("connect"))
}

/// Waits until agent `i` sees `n` members in its zone.
async fn wait_members(stack: &Stack, i: usize, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let members = stack.agents[i]
            .handles
            .membership
            .send(GetMembers)
            .await
            .expect("membership running");
        if members.len() == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agent {i} sees {} members, wanted {n}",
            members.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `n` messages in `windows` separate windows (so several objects, hence blocks);
/// returns seq -> payload and the number of objects written.
async fn publish(
    stack: &Stack,
    js: &jetstream::Context,
    stream: &str,
    n: usize,
    windows: usize,
) -> (BTreeMap<u64, String>, u64) {
    let puts = stack.s3.put_count();
    let mut out = BTreeMap::new();
    for w in 0..windows {
        let mut pending = Vec::new();
        for i in 0..n / windows {
            let payload = format!("{stream}-{w}-{i}");
            pending.push((
                payload.clone(),
                js.publish(format!("{}.{w}", stream.to_lowercase()), payload.into())
                    .await
                    .expect("published"),
            ));
        }
        for (payload, ack) in pending {
            let ack = ack.await.expect("acked");
            out.insert(ack.sequence, payload);
        }
    }
    (out, stack.s3.put_count() - puts)
}

async fn read_all(url: &str, stream: &str, msgs: &BTreeMap<u64, String>) {
    let js = js(url).await;
    let s = js.get_stream(stream).await.expect("stream");
    let reads = msgs.iter().map(|(seq, payload)| {
        let s = s.clone();
        async move {
            let got = if seq % 2 == 0 {
                s.get_raw_message(*seq).await.expect("msg get").payload
            } else {
                s.direct_get(*seq).await.expect("direct get").payload
            };
            assert_eq!(got, payload.as_bytes(), "seq {seq}");
        }
    });
    join_all(reads).await;
}

/// Waits until a supervisor has restarted its child `n` times (a crash sent while the child is
/// down would go nowhere).
async fn wait_restarts<F, Fut>(ask: F, n: u64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, actix::MailboxError>>,
{
    let deadline = Instant::now() + WAIT;
    while ask().await.expect("supervisor running") < n {
        assert!(Instant::now() < deadline, "no restart #{n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the agent at `url` answers DIRECT.GET for `stream`: it subscribes the direct-get
/// subject once its catalog (polled every 250 ms) has seen the stream; until then a direct get
/// is "no responders". Probes a sequence past the end, so no block is read.
async fn wait_direct_get(url: &str, stream: &str) {
    let js = js(url).await;
    let s = js.get_stream(stream).await.expect("stream");
    let deadline = Instant::now() + WAIT;
    while let Err(e) = s.direct_get(u64::MAX / 2).await {
        if !e.to_string().contains("no responders") {
            break;
        }
        assert!(Instant::now() < deadline, "{url} never served DIRECT.GET");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn zones_with_slow_hedge() -> Stack {
    // A generous hedge so the GET counts are exact on a loaded machine.
    Stack::start_zones_with(&["a", "a", "a", "b"], |_, _, t| {
        t.peer_timeout = Duration::from_secs(3)
    })
}

#[tokio::test]
async fn each_block_is_fetched_once_per_zone() {
    let stack = zones_with_slow_hedge();
    for i in 0..3 {
        wait_members(&stack, i, 3).await;
    }
    wait_members(&stack, 3, 1).await;
    let js0 = js(&stack.url(0)).await;
    js0.create_stream(stream_config("ZONE", &["zone.>"]))
        .await
        .expect("stream created");
    let (msgs, objects) = publish(&stack, &js0, "ZONE", 40, 4).await;
    assert!(objects >= 4, "{objects} objects");
    for i in 1..4 {
        wait_direct_get(&stack.url(i), "ZONE").await;
    }

    stack.s3.reset_counts();
    for _ in 0..3 {
        read_all(&stack.url(1), "ZONE", &msgs).await;
        read_all(&stack.url(2), "ZONE", &msgs).await;
    }
    let zone_a = stack.s3.get_count();
    assert!(
        zone_a <= objects,
        "zone a: {zone_a} GETs for {objects} blocks"
    );

    // Zone b has its own cache: at most once more per block, never through zone a's agents.
    read_all(&stack.url(3), "ZONE", &msgs).await;
    read_all(&stack.url(3), "ZONE", &msgs).await;
    let zone_b = stack.s3.get_count() - zone_a;
    assert_eq!(
        zone_b, objects,
        "zone b: {zone_b} GETs for {objects} blocks"
    );

    // INFO lists the zone's agents.
    let client = async_nats::connect(stack.url(1)).await.expect("connect");
    let info = client.server_info();
    assert_eq!(info.connect_urls.len(), 3, "{:?}", info.connect_urls);
    assert!(
        info.connect_urls
            .contains(&format!("127.0.0.1:{}", stack.agents[0].port))
    );
    assert!(
        !info
            .connect_urls
            .contains(&format!("127.0.0.1:{}", stack.agents[3].port))
    );
}

#[tokio::test]
async fn a_dead_owner_does_not_fail_reads() {
    let mut stack = Stack::start_zones(&["a", "a", "a"]);
    for i in 0..3 {
        wait_members(&stack, i, 3).await;
    }
    let js0 = js(&stack.url(0)).await;
    js0.create_stream(stream_config("DEAD", &["dead.>"]))
        .await
        .expect("stream created");
    let (msgs, _) = publish(&stack, &js0, "DEAD", 40, 4).await;
    // Agent 2 owns about a third of the blocks; it goes away without a word.
    drop(stack.agents.remove(2));
    read_all(&stack.url(1), "DEAD", &msgs).await;
    read_all(&stack.url(0), "DEAD", &msgs).await;
}

#[tokio::test]
async fn a_peer_without_the_key_is_refused() {
    let stack = Stack::start_zones(&["a"]);
    let addr = stack.agents[0].handles.peer_addr.to_string();
    let good = peer::connect(
        &addr,
        &PeerSettings::new(GROUP_ID, Secret::new(GROUP_KEY), "friend"),
    )
    .await;
    assert!(good.is_ok(), "{:?}", good.err());
    let wrong_key = peer::connect(
        &addr,
        &PeerSettings::new(GROUP_ID, Secret::new("not-the-key"), "intruder"),
    )
    .await;
    assert!(
        matches!(wrong_key, Err(PeerError::Refused(_))),
        "{:?}",
        wrong_key.err()
    );
    let foreign = peer::connect(
        &addr,
        &PeerSettings::new("other-group", Secret::new(GROUP_KEY), "stranger"),
    )
    .await;
    assert!(
        matches!(foreign, Err(PeerError::Refused(_))),
        "{:?}",
        foreign.err()
    );
}

#[tokio::test]
async fn sequence_client_stops_and_panics_under_load_and_nothing_acked_is_lost() {
    let stack = Stack::start(1);
    let js0 = js(&stack.url(0)).await;
    js0.create_stream(stream_config("CRASH", &["crash.>"]))
        .await
        .expect("stream created");
    let sequencer = stack.agents[0].handles.sequencer.clone();

    let publishers = (0..8).map(|p| {
        let js0 = js0.clone();
        async move {
            let mut acked = Vec::new();
            let mut errors = 0;
            for i in 0..60 {
                let payload = format!("p{p}-{i}");
                let ack = async {
                    js0.publish(format!("crash.{p}"), payload.clone().into())
                        .await?
                        .await
                };
                match tokio::time::timeout(WAIT, ack).await {
                    Ok(Ok(a)) => acked.push((a.sequence, payload)),
                    _ => errors += 1,
                }
            }
            (acked, errors)
        }
    });
    let crasher = async {
        for round in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            sequencer
                .send(infinistream::actors::hooks::SequenceCrash {
                    panic: round % 2 == 0,
                })
                .await
                .expect("supervisor running");
            wait_restarts(|| sequencer.send(Restarts), round + 1).await;
        }
    };
    let (results, ()) = tokio::join!(join_all(publishers), crasher);
    let restarts = sequencer.send(Restarts).await.expect("supervisor running");
    assert!(restarts >= 4, "{restarts} restarts");

    let mut seqs = HashSet::new();
    let mut acked = BTreeMap::new();
    let mut errors = 0;
    for (a, e) in results {
        errors += e;
        for (seq, payload) in a {
            assert!(seqs.insert(seq), "sequence {seq} acked twice");
            acked.insert(seq, payload);
        }
    }
    eprintln!("{} acked, {errors} errors over the crashes", acked.len());
    assert!(acked.len() + errors == 480);
    assert!(acked.len() > 400, "{} acked, {errors} errors", acked.len());
    // Every acked message is stored, with its payload.
    read_all(&stack.url(0), "CRASH", &acked).await;
    // Service continues.
    js0.publish("crash.after", "after".into())
        .await
        .expect("published")
        .await
        .expect("acked after crashes");
}

#[tokio::test]
async fn peer_cache_stops_and_panics_under_load_and_reads_continue() {
    let stack = Stack::start_zones(&["a", "a", "a"]);
    for i in 0..3 {
        wait_members(&stack, i, 3).await;
    }
    let js0 = js(&stack.url(0)).await;
    js0.create_stream(stream_config("PEERS", &["peers.>"]))
        .await
        .expect("stream created");
    let (msgs, objects) = publish(&stack, &js0, "PEERS", 40, 4).await;
    let peer_cache = stack.agents[1].handles.peer_cache.clone();

    let readers = async {
        for _ in 0..6 {
            read_all(&stack.url(1), "PEERS", &msgs).await;
            read_all(&stack.url(2), "PEERS", &msgs).await;
        }
    };
    let crasher = async {
        for round in 0..4 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            peer_cache
                .send(infinistream::actors::peer::Crash {
                    panic: round % 2 == 1,
                })
                .await
                .expect("supervisor running");
            wait_restarts(|| peer_cache.send(Restarts), round + 1).await;
        }
    };
    tokio::join!(readers, crasher);
    let restarts = peer_cache.send(Restarts).await.expect("supervisor running");
    assert!(restarts >= 4, "{restarts} restarts");
    // The restarted peer cache serves its peers again: a fresh block read through agent 2 that
    // agent 1 owns comes from agent 1's cache, so the zone still fetches it once.
    stack.s3.reset_counts();
    let (more, more_objects) = publish(&stack, &js0, "PEERS", 20, 2).await;
    stack.s3.reset_counts();
    read_all(&stack.url(1), "PEERS", &more).await;
    read_all(&stack.url(2), "PEERS", &more).await;
    assert!(
        stack.s3.get_count() <= more_objects,
        "{} GETs for {more_objects} blocks",
        stack.s3.get_count()
    );
    let _ = objects;
}
