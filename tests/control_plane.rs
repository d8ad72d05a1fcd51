//! End-to-end tests of the control plane over real HTTP (in-process server on 127.0.0.1:0, the
//! awc-based `ControlPlaneClient`).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use infinistream::config::Secret;
use infinistream::control_plane::{ControlPlaneClient, CpError};
use infinistream_api::control_plane::model::*;
use infinistream_api::jetstream::{PubAckResponse, time::now_nanos};
use infinistream_control_plane::{
    ControlPlaneConfig, ControlPlaneOptions, RunningControlPlane, start_in_process_with,
};
use serde_json::{Value, json};

const GROUP: &str = "group-1";
const KEY: &str = "s3cr3t-key";

fn config(data_dir: Option<PathBuf>) -> ControlPlaneConfig {
    ControlPlaneConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir,
        group_id: GROUP.to_string(),
        group_key: Secret::new(KEY),
    }
}

async fn start_with(
    data_dir: Option<PathBuf>,
    options: ControlPlaneOptions,
) -> (RunningControlPlane, ControlPlaneClient) {
    let cp = start_in_process_with(config(data_dir), options)
        .await
        .expect("control plane starts");
    let client = ControlPlaneClient::new(cp.base_url(), GROUP, &Secret::new(KEY));
    (cp, client)
}

async fn start() -> (RunningControlPlane, ControlPlaneClient) {
    start_with(None, ControlPlaneOptions::default()).await
}

async fn js(c: &ControlPlaneClient, api: &str, body: Value) -> Value {
    let payload = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(serde_json::to_vec(&body).expect("json"))
    };
    let out = c.js_api(api, payload).await.expect("js api call");
    serde_json::from_slice(&out).expect("js api answers json")
}

async fn create(c: &ControlPlaneClient, cfg: Value) -> Value {
    let name = cfg["name"].as_str().expect("a name").to_string();
    js(c, &format!("STREAM.CREATE.{name}"), cfg).await
}

fn msg(subject: &str) -> CommitMessage {
    CommitMessage {
        subject: subject.to_string(),
        size: 10,
        timestamp_nanos: now_nanos(),
        ..CommitMessage::default()
    }
}

fn block(stream: &str, messages: Vec<CommitMessage>) -> CommitBlock {
    CommitBlock {
        stream: stream.to_string(),
        block_offset: 0,
        block_len: 100,
        messages,
        summary: None,
    }
}

async fn commit(c: &ControlPlaneClient, blocks: Vec<CommitBlock>) -> Vec<Vec<PubAckResponse>> {
    let ids = c.object_ids(1).await.expect("object ids");
    let req = CommitRequest {
        agent_id: "agent-a".to_string(),
        object_id: ids[0],
        object_key: format!("objects/{}", ids[0]),
        object_size: 1000,
        blocks,
    };
    let resp = c.commit(&req).await.expect("commit");
    resp.blocks.into_iter().map(|b| b.acks).collect()
}

async fn publish(c: &ControlPlaneClient, stream: &str, m: CommitMessage) -> PubAckResponse {
    commit(c, vec![block(stream, vec![m])])
        .await
        .remove(0)
        .remove(0)
}

fn err_code(ack: &PubAckResponse) -> u16 {
    match ack {
        PubAckResponse::Error { error, .. } => error.err_code,
        PubAckResponse::Ack(a) => panic!("expected an error, got ack {a:?}"),
    }
}

fn err_desc(ack: &PubAckResponse) -> String {
    match ack {
        PubAckResponse::Error { error, .. } => error.description.clone(),
        PubAckResponse::Ack(a) => panic!("expected an error, got ack {a:?}"),
    }
}

async fn state(c: &ControlPlaneClient, stream: &str) -> infinistream_api::jetstream::StreamState {
    c.state(stream)
        .await
        .expect("state answered")
        .expect("stream exists")
}

#[actix_rt::test]
async fn auth_refusals() {
    let (cp, good) = start().await;
    let raw = awc::Client::default();

    let mut res = raw
        .get(format!("{}/v1/agents", cp.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().starts_with("unauthorized"));

    let mut res = raw
        .get(format!("{}/v1/agents", cp.base_url()))
        .insert_header((GROUP_ID_HEADER, GROUP))
        .insert_header(("authorization", "Bearer wrong-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(!text.contains("wrong-key"), "the key is never echoed");

    let wrong_key = ControlPlaneClient::new(cp.base_url(), GROUP, &Secret::new("nope"));
    assert!(matches!(
        wrong_key.agents().await,
        Err(CpError::Unauthorized(_))
    ));
    let wrong_group = ControlPlaneClient::new(cp.base_url(), "other", &Secret::new(KEY));
    assert!(matches!(
        wrong_group.js_api("INFO", Bytes::new()).await,
        Err(CpError::Unauthorized(_))
    ));

    // healthz needs no credentials
    let mut res = raw
        .get(format!("{}/healthz", cp.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}));

    assert!(good.agents().await.unwrap().is_empty());
    cp.stop().await;
}

#[actix_rt::test]
async fn stream_crud_and_shapes() {
    let (cp, c) = start().await;

    let r = create(&c, json!({"name": "ORDERS", "subjects": ["orders.>"]})).await;
    assert_eq!(r["type"], "io.nats.jetstream.api.v1.stream_create_response");
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["did_create"], true);
    let cfg = &r["config"];
    assert_eq!(cfg["name"], "ORDERS");
    assert_eq!(cfg["subjects"], json!(["orders.>"]));
    assert_eq!(cfg["retention"], "limits");
    assert_eq!(cfg["max_consumers"], -1);
    assert_eq!(cfg["max_msgs"], -1);
    assert_eq!(cfg["max_bytes"], -1);
    assert_eq!(cfg["max_age"], 0);
    assert_eq!(cfg["max_msgs_per_subject"], -1);
    assert_eq!(cfg["max_msg_size"], -1);
    assert_eq!(cfg["discard"], "old");
    assert_eq!(cfg["storage"], "file");
    assert_eq!(cfg["num_replicas"], 1);
    assert_eq!(cfg["duplicate_window"], 120_000_000_000i64);
    assert_eq!(cfg["compression"], "none");
    assert_eq!(cfg["allow_direct"], false);
    assert_eq!(cfg["mirror_direct"], false);
    assert_eq!(cfg["sealed"], false);
    assert_eq!(cfg["deny_delete"], false);
    assert_eq!(cfg["deny_purge"], false);
    assert_eq!(cfg["allow_rollup_hdrs"], false);
    assert_eq!(cfg["allow_msg_ttl"], false);
    assert_eq!(cfg["consumer_limits"], json!({}));
    assert_eq!(cfg["metadata"]["_nats.req.level"], "0");
    assert!(cfg["metadata"]["_nats.ver"].is_string());
    assert!(cfg["metadata"]["_nats.level"].is_string());
    assert_eq!(r["state"]["messages"], 0);
    assert_eq!(r["state"]["first_seq"], 0);
    assert_eq!(r["state"]["first_ts"], "0001-01-01T00:00:00Z");
    assert_eq!(r["state"]["consumer_count"], 0);
    assert!(r["created"].as_str().unwrap().ends_with('Z'));
    assert!(r["ts"].is_string());

    // identical re-create is fine; a different config is not
    let again = create(&c, json!({"name": "ORDERS", "subjects": ["orders.>"]})).await;
    assert!(again.get("error").is_none(), "{again}");
    let diff = create(
        &c,
        json!({"name": "ORDERS", "subjects": ["orders.>"], "max_msgs": 5}),
    )
    .await;
    assert_eq!(diff["error"]["err_code"], 10058);
    assert_eq!(diff["error"]["code"], 400);
    assert_eq!(
        diff["error"]["description"],
        "stream name already in use with a different configuration"
    );

    let overlap = create(&c, json!({"name": "OTHER", "subjects": ["orders.new"]})).await;
    assert_eq!(overlap["error"]["err_code"], 10065);

    // subjects default to the name
    let plain = create(&c, json!({"name": "PLAIN"})).await;
    assert_eq!(plain["config"]["subjects"], json!(["PLAIN"]));

    let bad = js(&c, "STREAM.CREATE.a.b", json!({"name": "a.b"})).await;
    assert_eq!(bad["type"], "io.nats.jetstream.api.v1.system_response");
    assert_eq!(bad["error"]["err_code"], 10003);
    let bad = create(&c, json!({"name": "a*b"})).await;
    assert_eq!(bad["error"]["err_code"], 10052);
    assert_eq!(
        bad["error"]["description"],
        "stream name is required and can not contain '.', '*', '>', '\\', '/'"
    );
    let mismatch = js(&c, "STREAM.CREATE.X", json!({"name": "Y"})).await;
    assert_eq!(mismatch["error"]["err_code"], 10056);
    // As Go decodes it, `null` leaves the request empty: a name mismatch, not bad JSON.
    let null = js(&c, "STREAM.CREATE.X", Value::Null).await;
    assert_eq!(null["error"]["err_code"], 10056);
    let invalid_json = js(&c, "STREAM.CREATE.X", json!("x")).await;
    assert_eq!(invalid_json["error"]["err_code"], 10025);
    assert_eq!(
        invalid_json["error"]["description"],
        "invalid JSON: json: cannot unmarshal string into Go value of type server.StreamConfigRequest"
    );

    let missing = js(&c, "STREAM.INFO.NOPE", Value::Null).await;
    assert_eq!(
        missing["type"],
        "io.nats.jetstream.api.v1.stream_info_response"
    );
    assert_eq!(missing["error"]["err_code"], 10059);
    assert_eq!(missing["error"]["code"], 404);

    let info = js(&c, "STREAM.INFO.ORDERS", Value::Null).await;
    assert_eq!(info["config"]["name"], "ORDERS");
    assert_eq!(info["cluster"]["leader"], "infinistream");

    let names = js(&c, "STREAM.NAMES", Value::Null).await;
    assert_eq!(names["streams"], json!(["ORDERS", "PLAIN"]));
    assert_eq!(names["total"], 2);
    assert_eq!(names["limit"], 1024);
    let names = js(&c, "STREAM.NAMES", json!({"subject": "orders.x"})).await;
    assert_eq!(names["streams"], json!(["ORDERS"]));
    let names = js(&c, "STREAM.NAMES", json!({"offset": 1})).await;
    assert_eq!(names["streams"], json!(["PLAIN"]));
    assert_eq!(names["offset"], 1);
    let names = js(&c, "STREAM.NAMES", json!({"subject": "nothing"})).await;
    assert_eq!(names["streams"], Value::Null);
    let list = js(&c, "STREAM.LIST", Value::Null).await;
    assert_eq!(
        list["type"],
        "io.nats.jetstream.api.v1.stream_list_response"
    );
    assert_eq!(list["streams"].as_array().unwrap().len(), 2);
    assert_eq!(list["limit"], 256);

    let upd = js(
        &c,
        "STREAM.UPDATE.ORDERS",
        json!({"name": "ORDERS", "subjects": ["orders.>"], "max_msgs": 10}),
    )
    .await;
    assert_eq!(
        upd["type"],
        "io.nats.jetstream.api.v1.stream_update_response"
    );
    assert_eq!(upd["config"]["max_msgs"], 10);
    let upd = js(
        &c,
        "STREAM.UPDATE.GONE",
        json!({"name": "GONE", "subjects": ["gone"]}),
    )
    .await;
    assert_eq!(upd["error"]["err_code"], 10059);
    let upd = js(
        &c,
        "STREAM.UPDATE.ORDERS",
        json!({"name": "ORDERS", "storage": "memory", "subjects": ["orders.>"]}),
    )
    .await;
    assert_eq!(upd["error"]["err_code"], 10052);
    assert_eq!(
        upd["error"]["description"],
        "stream configuration update can not change storage type"
    );

    let acct = js(&c, "INFO", Value::Null).await;
    assert_eq!(
        acct["type"],
        "io.nats.jetstream.api.v1.account_info_response"
    );
    assert_eq!(acct["streams"], 2);
    assert_eq!(acct["reserved_storage"], 0);
    assert_eq!(acct["reserved_memory"], 0);
    assert_eq!(acct["limits"]["max_streams"], -1);
    assert!(acct["api"]["total"].as_u64().unwrap() > 5);
    assert!(acct["api"]["errors"].as_u64().unwrap() > 3);

    let del = js(&c, "STREAM.DELETE.PLAIN", Value::Null).await;
    assert_eq!(
        del,
        json!({"type": "io.nats.jetstream.api.v1.stream_delete_response", "success": true})
    );
    let del = js(&c, "STREAM.DELETE.PLAIN", Value::Null).await;
    assert_eq!(del["error"]["err_code"], 10059);

    cp.stop().await;
}

#[actix_rt::test]
async fn commit_sequences_and_locate() {
    let (cp, c) = start().await;
    create(&c, json!({"name": "A", "subjects": ["a.>"]})).await;
    create(&c, json!({"name": "B", "subjects": ["b.>"]})).await;

    let acks = commit(
        &c,
        vec![
            block("A", vec![msg("a.1"), msg("a.2")]),
            block("B", vec![msg("b.1")]),
            block("A", vec![msg("a.1")]),
            block("GONE", vec![msg("x")]),
        ],
    )
    .await;
    assert_eq!(
        acks[0],
        vec![PubAckResponse::ack("A", 1), PubAckResponse::ack("A", 2)]
    );
    assert_eq!(acks[1], vec![PubAckResponse::ack("B", 1)]);
    assert_eq!(acks[2], vec![PubAckResponse::ack("A", 3)]);
    assert_eq!(err_code(&acks[3][0]), 10059);

    let acks = commit(&c, vec![block("A", vec![msg("a.3")])]).await;
    assert_eq!(acks[0], vec![PubAckResponse::ack("A", 4)]);

    let st = state(&c, "A").await;
    assert_eq!(st.messages, 4);
    assert_eq!(st.first_seq, 1);
    assert_eq!(st.last_seq, 4);
    assert_eq!(st.num_subjects, 3);
    // fileStoreMsgSize without headers: 22 + len(subject) + len(payload) + 8
    assert_eq!(st.bytes, 4 * (22 + 3 + 10 + 8));

    let mut with_hdr = msg("a.h");
    with_hdr.size = 30;
    with_hdr.header_size = 20;
    publish(&c, "A", with_hdr).await;
    let st2 = state(&c, "A").await;
    assert_eq!(st2.bytes - st.bytes, 22 + 3 + 4 + 20 + 10 + 8);

    // locate by sequence
    let loc = c
        .locate("A", &LocateRequest::seq(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loc.seq, 2);
    assert_eq!(loc.subject, "a.2");
    assert_eq!(loc.index, 1);
    assert!(loc.object_key.starts_with("objects/"));
    // last by subject, literal and wildcard
    let loc = c
        .locate("A", &LocateRequest::last_by_subject("a.1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loc.seq, 3);
    let loc = c
        .locate("A", &LocateRequest::last_by_subject("a.*"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loc.seq, 5);
    // next by subject from a sequence
    let loc = c
        .locate("A", &LocateRequest::next_by_subject("a.1", 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loc.seq, 3);
    let loc = c
        .locate("A", &LocateRequest::next_by_subject(">", 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loc.seq, 4);
    let none = c
        .locate("A", &LocateRequest::next_by_subject("a.2", 3))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(none.err_code, 10037);
    let none = c
        .locate("A", &LocateRequest::seq(99))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(none.err_code, 10037);
    let none = c
        .locate("ZZ", &LocateRequest::seq(1))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(none.err_code, 10059);
    let none = c.state("ZZ").await.unwrap().unwrap_err();
    assert_eq!(none.err_code, 10059);

    // index counts rejected messages too
    let mut bad = msg("a.9");
    bad.headers.expected_stream = Some("B".to_string());
    let acks = commit(&c, vec![block("A", vec![bad, msg("a.9")])]).await;
    assert_eq!(err_code(&acks[0][0]), 10060);
    let seq = acks[0][1].seq().unwrap();
    let loc = c
        .locate("A", &LocateRequest::seq(seq))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loc.index, 1);

    cp.stop().await;
}

#[actix_rt::test]
async fn commit_replay_is_idempotent() {
    let (cp, c) = start().await;
    create(&c, json!({"name": "S", "subjects": ["s"]})).await;
    let req = CommitRequest {
        agent_id: "a".into(),
        object_id: c.object_ids(1).await.unwrap()[0],
        object_key: "k".into(),
        object_size: 1,
        blocks: vec![block("S", vec![msg("s"), msg("s")])],
    };
    let first = c.commit(&req).await.unwrap();
    let again = c.commit(&req).await.unwrap();
    assert!(again.replayed);
    assert_eq!(first.blocks, again.blocks);
    assert_eq!(state(&c, "S").await.messages, 2);
    cp.stop().await;
}

#[actix_rt::test]
async fn commit_many_sequences_objects_in_order_and_replays_each() {
    let (cp, c) = start().await;
    create(&c, json!({"name": "S", "subjects": ["s"]})).await;
    create(&c, json!({"name": "T", "subjects": ["t"]})).await;
    let ids = c.object_ids(3).await.unwrap();
    let object = |id: u64, blocks| CommitRequest {
        agent_id: "a".into(),
        object_id: id,
        object_key: format!("k{id}"),
        object_size: 1,
        blocks,
    };
    let first = object(ids[0], vec![block("S", vec![msg("s"), msg("s")])]);
    // Committed alone first: the group must answer it from its stored response.
    let alone = c.commit(&first).await.unwrap();
    let group = CommitManyRequest {
        commits: vec![
            first.clone(),
            object(
                ids[1],
                vec![block("S", vec![msg("s")]), block("T", vec![msg("t")])],
            ),
            object(ids[2], vec![block("S", vec![msg("s"), msg("s")])]),
        ],
    };
    let answers = c.commit_many(&group).await.unwrap();
    assert_eq!(answers.len(), 3);
    assert!(answers[0].replayed);
    assert_eq!(answers[0].blocks, alone.blocks);
    let seqs = |r: &CommitResponse, block: usize| -> Vec<u64> {
        r.blocks[block]
            .acks
            .iter()
            .map(|a| a.seq().expect("an ack"))
            .collect()
    };
    assert_eq!(seqs(&answers[1], 0), vec![3]);
    assert_eq!(seqs(&answers[1], 1), vec![1]);
    assert_eq!(seqs(&answers[2], 0), vec![4, 5]);
    assert!(!answers[1].replayed && !answers[2].replayed);
    // The whole group again: every object is a replay, nothing is stored twice.
    let again = c.commit_many(&group).await.unwrap();
    assert!(again.iter().all(|r| r.replayed));
    assert_eq!(again[2].blocks, answers[2].blocks);
    assert_eq!(state(&c, "S").await.messages, 5);
    assert_eq!(state(&c, "T").await.messages, 1);
    cp.stop().await;
}

#[actix_rt::test]
async fn dedupe_window() {
    let (cp, c) = start().await;
    create(&c, json!({"name": "D", "subjects": ["d"]})).await;
    let mut m = msg("d");
    m.headers.msg_id = Some("id-1".into());
    let first = publish(&c, "D", m.clone()).await;
    assert_eq!(first, PubAckResponse::ack("D", 1));
    publish(&c, "D", msg("d")).await;
    let dup = publish(&c, "D", m.clone()).await;
    assert_eq!(dup, PubAckResponse::duplicate("D", 1));
    assert_eq!(state(&c, "D").await.messages, 2);
    // a publish after the 2 minute window is new again
    m.timestamp_nanos += 121_000_000_000;
    let later = publish(&c, "D", m).await;
    assert_eq!(later, PubAckResponse::ack("D", 3));
    // duplicates inside one commit
    let mut x = msg("d");
    x.headers.msg_id = Some("same".into());
    let acks = commit(&c, vec![block("D", vec![x.clone(), x])]).await;
    assert_eq!(acks[0][0], PubAckResponse::ack("D", 4));
    assert_eq!(acks[0][1], PubAckResponse::duplicate("D", 4));
    cp.stop().await;
}

#[actix_rt::test]
async fn expected_headers() {
    let (cp, c) = start().await;
    create(&c, json!({"name": "E", "subjects": ["e.*"]})).await;
    let mut m = msg("e.a");
    m.headers.msg_id = Some("m1".into());
    publish(&c, "E", m).await;
    publish(&c, "E", msg("e.b")).await; // seq 2, last msg id now ""

    let mut m = msg("e.a");
    m.headers.expected_stream = Some("OTHER".into());
    let a = publish(&c, "E", m).await;
    assert_eq!(err_code(&a), 10060);
    assert_eq!(err_desc(&a), "expected stream does not match");
    let mut m = msg("e.a");
    m.headers.expected_stream = Some("E".into());
    assert!(!publish(&c, "E", m).await.is_error()); // seq 3

    let mut m = msg("e.a");
    m.headers.expected_last_seq = Some(1);
    let a = publish(&c, "E", m).await;
    assert_eq!(err_code(&a), 10071);
    assert_eq!(err_desc(&a), "wrong last sequence: 3");
    let mut m = msg("e.a");
    m.headers.expected_last_seq = Some(3);
    assert_eq!(publish(&c, "E", m).await, PubAckResponse::ack("E", 4));

    let mut m = msg("e.b");
    m.headers.expected_last_subject_seq = Some(1);
    let a = publish(&c, "E", m).await;
    assert_eq!(err_code(&a), 10071);
    assert_eq!(err_desc(&a), "wrong last sequence: 2");
    let mut m = msg("e.b");
    m.headers.expected_last_subject_seq = Some(2);
    assert_eq!(publish(&c, "E", m).await, PubAckResponse::ack("E", 5));
    let mut m = msg("e.new");
    m.headers.expected_last_subject_seq = Some(0);
    assert_eq!(publish(&c, "E", m).await, PubAckResponse::ack("E", 6));
    let mut m = msg("e.x");
    m.headers.expected_last_subject_seq = Some(4);
    m.headers.expected_last_subject_seq_subject = Some("e.a".into());
    assert_eq!(publish(&c, "E", m).await, PubAckResponse::ack("E", 7));
    let mut m = msg("e.x");
    m.headers.expected_last_subject_seq_subject = Some("e.a".into());
    assert_eq!(err_code(&publish(&c, "E", m).await), 10193);

    let mut m = msg("e.a");
    m.headers.msg_id = Some("m2".into());
    publish(&c, "E", m).await; // seq 8 with id m2
    let mut m = msg("e.a");
    m.headers.expected_last_msg_id = Some("m1".into());
    let a = publish(&c, "E", m).await;
    assert_eq!(err_code(&a), 10070);
    assert_eq!(err_desc(&a), "wrong last msg ID: m2");
    let mut m = msg("e.a");
    m.headers.expected_last_msg_id = Some("m2".into());
    assert_eq!(publish(&c, "E", m).await, PubAckResponse::ack("E", 9));

    // the error shape sent to publishers
    let mut m = msg("e.a");
    m.headers.expected_last_seq = Some(1);
    let a = publish(&c, "E", m).await;
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        json!({"error": {"code": 400, "err_code": 10071, "description": "wrong last sequence: 9"}, "stream": "E", "seq": 0})
    );
    cp.stop().await;
}

#[actix_rt::test]
async fn discard_new_limits() {
    let (cp, c) = start().await;
    create(
        &c,
        json!({"name": "N", "subjects": ["n.*"], "discard": "new", "max_msgs": 2}),
    )
    .await;
    publish(&c, "N", msg("n.a")).await;
    publish(&c, "N", msg("n.a")).await;
    let a = publish(&c, "N", msg("n.a")).await;
    assert_eq!(err_code(&a), 10077);
    assert_eq!(err_desc(&a), "maximum messages exceeded");
    assert_eq!(state(&c, "N").await.messages, 2);

    create(
        &c,
        json!({"name": "NB", "subjects": ["nb"], "discard": "new", "max_bytes": 100}),
    )
    .await;
    // each message is 22 + 2 + 10 + 8 = 42 stored bytes
    publish(&c, "NB", msg("nb")).await;
    publish(&c, "NB", msg("nb")).await;
    let a = publish(&c, "NB", msg("nb")).await;
    assert_eq!(err_desc(&a), "maximum bytes exceeded");

    create(
        &c,
        json!({"name": "NP", "subjects": ["np.*"], "discard": "new", "max_msgs_per_subject": 1, "discard_new_per_subject": true}),
    )
    .await;
    publish(&c, "NP", msg("np.a")).await;
    let a = publish(&c, "NP", msg("np.a")).await;
    assert_eq!(err_desc(&a), "maximum messages per subject exceeded");
    assert!(!publish(&c, "NP", msg("np.b")).await.is_error());

    let bad = create(
        &c,
        json!({"name": "BAD", "subjects": ["bad"], "discard_new_per_subject": true}),
    )
    .await;
    assert_eq!(
        bad["error"]["description"],
        "discard new per subject requires discard new policy to be set"
    );

    create(
        &c,
        json!({"name": "SZ", "subjects": ["sz"], "max_msg_size": 5}),
    )
    .await;
    let a = publish(&c, "SZ", msg("sz")).await;
    assert_eq!(err_code(&a), 10054);
    cp.stop().await;
}

#[actix_rt::test]
async fn discard_old_limits() {
    let (cp, c) = start().await;
    create(&c, json!({"name": "O", "subjects": ["o.*"], "max_msgs": 3})).await;
    for _ in 0..5 {
        publish(&c, "O", msg("o.a")).await;
    }
    let st = state(&c, "O").await;
    assert_eq!((st.messages, st.first_seq, st.last_seq), (3, 3, 5));

    create(
        &c,
        json!({"name": "KV", "subjects": ["kv.>"], "max_msgs_per_subject": 1}),
    )
    .await;
    for k in ["kv.a", "kv.b", "kv.a", "kv.a"] {
        publish(&c, "KV", msg(k)).await;
    }
    let st = state(&c, "KV").await;
    assert_eq!((st.messages, st.first_seq, st.last_seq), (2, 2, 4));
    assert_eq!(st.num_deleted, 1);

    create(
        &c,
        json!({"name": "OB", "subjects": ["ob"], "max_bytes": 100}),
    )
    .await;
    for _ in 0..4 {
        publish(&c, "OB", msg("ob")).await;
    }
    let st = state(&c, "OB").await;
    assert_eq!((st.messages, st.bytes, st.first_seq), (2, 84, 3));

    create(
        &c,
        json!({"name": "AGE", "subjects": ["age"], "max_age": 1_000_000_000i64}),
    )
    .await;
    let mut old = msg("age");
    old.timestamp_nanos -= 5_000_000_000;
    publish(&c, "AGE", old).await;
    publish(&c, "AGE", msg("age")).await;
    let st = state(&c, "AGE").await;
    assert_eq!((st.messages, st.first_seq), (1, 2));

    // rollups
    create(
        &c,
        json!({"name": "R", "subjects": ["r.*"], "allow_rollup_hdrs": true}),
    )
    .await;
    for s in ["r.a", "r.a", "r.b"] {
        publish(&c, "R", msg(s)).await;
    }
    let mut m = msg("r.a");
    m.headers.rollup = Some("sub".into());
    publish(&c, "R", m).await;
    assert_eq!(state(&c, "R").await.messages, 2);
    let mut m = msg("r.c");
    m.headers.rollup = Some("all".into());
    publish(&c, "R", m).await;
    let st = state(&c, "R").await;
    assert_eq!((st.messages, st.first_seq), (1, 5));
    let mut m = msg("o.a");
    m.headers.rollup = Some("sub".into());
    assert_eq!(err_desc(&publish(&c, "O", m).await), "rollup not permitted");
    cp.stop().await;
}

#[actix_rt::test]
async fn purge_and_delete() {
    let (cp, c) = start().await;
    create(&c, json!({"name": "P", "subjects": ["p.*"]})).await;
    let fill = |n: usize| {
        (0..n)
            .map(|i| msg(if i % 2 == 0 { "p.even" } else { "p.odd" }))
            .collect::<Vec<_>>()
    };
    commit(&c, vec![block("P", fill(10))]).await;

    let r = js(&c, "STREAM.PURGE.P", json!({"filter": "p.odd"})).await;
    assert_eq!(
        r,
        json!({"type": "io.nats.jetstream.api.v1.stream_purge_response", "success": true, "purged": 5})
    );
    let r = js(&c, "STREAM.PURGE.P", json!({"filter": "p.even", "keep": 2})).await;
    assert_eq!(r["purged"], 3);
    let st = state(&c, "P").await;
    assert_eq!((st.messages, st.first_seq), (2, 7));

    commit(&c, vec![block("P", fill(4))]).await; // 11..14
    let r = js(&c, "STREAM.PURGE.P", json!({"seq": 12})).await;
    assert_eq!(r["purged"], 3); // 7, 9, 11
    assert_eq!(state(&c, "P").await.first_seq, 12);

    let r = js(&c, "STREAM.PURGE.P", json!({"seq": 5, "keep": 1})).await;
    assert_eq!(r["error"]["err_code"], 10003);

    // message delete
    let r = js(&c, "STREAM.MSG.DELETE.P", json!({"seq": 13})).await;
    assert_eq!(
        r,
        json!({"type": "io.nats.jetstream.api.v1.stream_msg_delete_response", "success": true})
    );
    let st = state(&c, "P").await;
    assert_eq!((st.messages, st.num_deleted), (2, 1));
    let r = js(&c, "STREAM.MSG.DELETE.P", json!({"seq": 13})).await;
    assert_eq!(r["error"]["err_code"], 10043);
    assert_eq!(r["error"]["description"], "sequence 13 not found");
    let r = js(&c, "STREAM.MSG.DELETE.P", json!({"seq": 99})).await;
    assert_eq!(r["error"]["err_code"], 10057);
    let r = js(&c, "STREAM.MSG.DELETE.P", Value::Null).await;
    assert_eq!(r["error"]["err_code"], 10003);
    let gone = c
        .locate("P", &LocateRequest::seq(13))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(gone.err_code, 10037);
    let info = js(
        &c,
        "STREAM.INFO.P",
        json!({"deleted_details": true, "subjects_filter": ">"}),
    )
    .await;
    assert_eq!(info["state"]["deleted"], json!([13]));
    assert_eq!(info["state"]["subjects"], json!({"p.odd": 2}));
    assert_eq!(info["total"], 1);

    // purge all
    let r = js(&c, "STREAM.PURGE.P", Value::Null).await;
    assert_eq!(r["purged"], 2);
    let st = state(&c, "P").await;
    assert_eq!((st.messages, st.first_seq, st.last_seq), (0, 15, 14));
    assert_eq!(
        publish(&c, "P", msg("p.x")).await,
        PubAckResponse::ack("P", 15)
    );

    create(
        &c,
        json!({"name": "DP", "subjects": ["dp"], "deny_purge": true, "deny_delete": true}),
    )
    .await;
    let r = js(&c, "STREAM.PURGE.DP", Value::Null).await;
    assert_eq!(r["error"]["err_code"], 10110);
    let r = js(&c, "STREAM.MSG.DELETE.DP", json!({"seq": 1})).await;
    assert_eq!(r["error"]["description"], "message delete not permitted");
    cp.stop().await;
}

#[actix_rt::test]
async fn sealed_stream_refuses_publishes() {
    let (cp, c) = start().await;
    let r = create(
        &c,
        json!({"name": "SL", "subjects": ["sl"], "sealed": true}),
    )
    .await;
    assert_eq!(
        r["error"]["description"],
        "stream configuration for create can not be sealed"
    );
    create(&c, json!({"name": "SL", "subjects": ["sl"]})).await;
    publish(&c, "SL", msg("sl")).await;
    let r = js(
        &c,
        "STREAM.UPDATE.SL",
        json!({"name": "SL", "subjects": ["sl"], "sealed": true}),
    )
    .await;
    assert_eq!(r["config"]["sealed"], true);
    assert_eq!(r["config"]["deny_delete"], true);
    let a = publish(&c, "SL", msg("sl")).await;
    assert_eq!(err_code(&a), 10109);
    cp.stop().await;
}

#[actix_rt::test]
async fn streams_snapshot_versions() {
    let (cp, c) = start().await;
    let s0 = c.streams_since(0).await.unwrap();
    assert!(!s0.changed);
    create(&c, json!({"name": "V", "subjects": ["v"]})).await;
    let s1 = c.streams_since(s0.version).await.unwrap();
    assert!(s1.changed);
    assert_eq!(s1.streams.len(), 1);
    assert_eq!(s1.streams[0].name, "V");
    assert!(!c.streams_since(s1.version).await.unwrap().changed);
    js(&c, "STREAM.DELETE.V", Value::Null).await;
    let s2 = c.streams_since(s1.version).await.unwrap();
    assert!(s2.changed && s2.streams.is_empty() && s2.version > s1.version);
    cp.stop().await;
}

#[actix_rt::test]
async fn orphans_are_recorded() {
    let (cp, c) = start().await;
    c.record_orphan(&OrphanRequest {
        object_key: "objects/1".into(),
        reason: "commit failed".into(),
    })
    .await
    .unwrap();
    let orphans = c.orphans().await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].object_key, "objects/1");
    assert_eq!(orphans[0].reason, "commit failed");
    cp.stop().await;
}

#[actix_rt::test]
async fn restart_with_data_dir_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, c) = start_with(
        Some(dir.path().to_path_buf()),
        ControlPlaneOptions::default(),
    )
    .await;
    create(&c, json!({"name": "K", "subjects": ["k.*"]})).await;
    let mut m = msg("k.a");
    m.headers.msg_id = Some("x".into());
    commit(
        &c,
        vec![block("K", vec![m.clone(), msg("k.b"), msg("k.a")])],
    )
    .await;
    let ids_before = c.object_ids(10).await.unwrap();
    let state_before = state(&c, "K").await;
    cp.stop().await;

    let (cp, c) = start_with(
        Some(dir.path().to_path_buf()),
        ControlPlaneOptions::default(),
    )
    .await;
    assert_eq!(state(&c, "K").await, state_before);
    let info = js(&c, "STREAM.INFO.K", Value::Null).await;
    assert_eq!(info["config"]["subjects"], json!(["k.*"]));
    // dedupe survives the restart, and sequences continue
    assert_eq!(publish(&c, "K", m).await, PubAckResponse::duplicate("K", 1));
    assert_eq!(
        publish(&c, "K", msg("k.c")).await,
        PubAckResponse::ack("K", 4)
    );
    let loc = c
        .locate("K", &LocateRequest::last_by_subject("k.a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loc.seq, 3);
    let ids_after = c.object_ids(10).await.unwrap();
    let all: Vec<u64> = ids_before.iter().chain(ids_after.iter()).copied().collect();
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase: {all:?}"
    );
    cp.stop().await;
}

#[actix_rt::test]
async fn object_ids_unique_and_increasing() {
    let (cp, c) = start().await;
    let mut all = Vec::new();
    for _ in 0..5 {
        all.extend(c.object_ids(100).await.unwrap());
    }
    assert_eq!(all.len(), 500);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    assert!(matches!(
        c.object_ids(0).await,
        Err(CpError::Http { status: 400, .. })
    ));
    cp.stop().await;
}

#[actix_rt::test]
async fn agents_register_list_expire() {
    let options = ControlPlaneOptions {
        agent_expiry: Duration::from_millis(300),
        ..ControlPlaneOptions::default()
    };
    let (cp, c) = start_with(None, options).await;
    let lease = c
        .register(&RegisterRequest {
            agent_id: "a1".into(),
            availability_zone: "az1".into(),
            advertise_address: "10.0.0.1".into(),
            ports: AgentPorts {
                client: 4222,
                peer: 6222,
                http: 8222,
            },
        })
        .await
        .unwrap();
    assert_eq!(lease.expiry_ms, 300);
    assert_eq!(lease.heartbeat_interval_ms, 100);
    c.register(&RegisterRequest {
        agent_id: "a2".into(),
        availability_zone: "az2".into(),
        advertise_address: "10.0.0.2".into(),
        ports: AgentPorts::default(),
    })
    .await
    .unwrap();
    let agents = c.agents().await.unwrap();
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0].ports.client, 4222);
    assert_eq!(agents[1].availability_zone, "az2");

    // a1 keeps heartbeating, a2 goes silent
    for _ in 0..4 {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        assert!(c.heartbeat("a1").await.unwrap().known);
    }
    let agents = c.agents().await.unwrap();
    assert_eq!(
        agents
            .iter()
            .map(|a| a.agent_id.as_str())
            .collect::<Vec<_>>(),
        vec!["a1"]
    );
    assert!(!c.heartbeat("a2").await.unwrap().known);
    assert!(!c.heartbeat("never").await.unwrap().known);
    cp.stop().await;
}

#[actix_rt::test]
async fn metrics_and_unknown_api() {
    let (cp, c) = start().await;
    let r = js(&c, "CONSUMER.NOPE", Value::Null).await;
    assert_eq!(
        r,
        json!({"type": "io.nats.jetstream.api.v1.system_response", "error": {"code": 400, "err_code": 10003, "description": "bad request"}})
    );
    let raw = awc::Client::default();
    let mut res = raw
        .get(format!("{}/metrics", cp.base_url()))
        .insert_header((GROUP_ID_HEADER, GROUP))
        .insert_header(("authorization", format!("Bearer {KEY}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("infinistream_control_plane_requests_total"),
        "{text}"
    );
    assert!(text.contains("/v1/js/{api:.*}"), "{text}");
    cp.stop().await;
}

#[actix_rt::test]
async fn ttl_headers() {
    let (cp, c) = start().await;
    create(&c, json!({"name": "T", "subjects": ["t"]})).await;
    let mut m = msg("t");
    m.headers.ttl = Some("10s".into());
    assert_eq!(err_code(&publish(&c, "T", m).await), 10166);
    create(
        &c,
        json!({"name": "T2", "subjects": ["t2"], "allow_msg_ttl": true}),
    )
    .await;
    let mut m = msg("t2");
    m.headers.ttl = Some("bogus".into());
    assert_eq!(err_code(&publish(&c, "T2", m).await), 10165);
    let mut m = msg("t2");
    m.headers.ttl = Some("1s".into());
    m.timestamp_nanos -= 5_000_000_000;
    assert!(!publish(&c, "T2", m).await.is_error());
    // already past its ttl: gone at the next read
    assert_eq!(state(&c, "T2").await.messages, 0);
    cp.stop().await;
}

#[actix_rt::test]
async fn large_commit_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, c) = start_with(
        Some(dir.path().to_path_buf()),
        ControlPlaneOptions::default(),
    )
    .await;
    for i in 0..10 {
        create(&c, json!({"name": format!("L{i}"), "subjects": [format!("l{i}.>")], "max_msgs_per_subject": 5})).await;
    }
    let blocks: Vec<CommitBlock> = (0..10)
        .map(|i| {
            let msgs = (0..1000)
                .map(|j| {
                    let mut m = msg(&format!("l{i}.k{}", j % 100));
                    m.headers.msg_id = Some(format!("id-{i}-{j}"));
                    m
                })
                .collect();
            block(&format!("L{i}"), msgs)
        })
        .collect();
    let started = std::time::Instant::now();
    let acks = commit(&c, blocks).await;
    let elapsed = started.elapsed();
    eprintln!("10k message commit took {elapsed:?}");
    assert_eq!(acks.len(), 10);
    assert!(
        acks.iter()
            .all(|b| b.len() == 1000 && b.iter().all(|a| !a.is_error()))
    );
    assert_eq!(acks[3][999], PubAckResponse::ack("L3", 1000));
    assert_eq!(state(&c, "L3").await.messages, 500);
    assert!(elapsed < Duration::from_secs(20), "commit took {elapsed:?}");
    cp.stop().await;
}

#[actix_rt::test]
async fn odd_stream_names_survive_urls() {
    let (cp, c) = start().await;
    for name in ["a?b", "c#d", "e%f", "g+h", "ü$x"] {
        let r = create(
            &c,
            json!({"name": name, "subjects": [format!("odd.{}", name.len())]}),
        )
        .await;
        assert!(r.get("error").is_none(), "{name}: {r}");
        let r = js(&c, &format!("STREAM.INFO.{name}"), Value::Null).await;
        assert_eq!(r["config"]["name"], name);
        assert_eq!(state(&c, name).await.messages, 0);
        let e = c
            .locate(name, &LocateRequest::seq(1))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.err_code, 10037);
        js(&c, &format!("STREAM.DELETE.{name}"), Value::Null).await;
    }
    cp.stop().await;
}

/// `GET /v1/events`: a cursor from nowhere answers at once, a held request wakes on a commit with
/// the stream and its subjects, stream changes carry the catalog version, and a cursor from
/// another epoch (a restarted control plane) says `reset`.
#[actix_rt::test]
async fn events_long_poll() {
    use infinistream_api::control_plane::events::{Event, EventsQuery};
    let (_cp, c) = start().await;
    let start = c.events(&EventsQuery::default()).await.expect("cursor");
    assert!(start.events.is_empty() && !start.reset);
    create(&c, json!({"name": "EV", "subjects": ["ev.>"]})).await;
    let created = c
        .events(&EventsQuery {
            from: Some(start.next),
            epoch: start.epoch,
            wait_ms: 5_000,
        })
        .await
        .expect("stream event");
    let version = c.streams_since(0).await.expect("streams").version;
    match created.events.as_slice() {
        [
            Event::Stream {
                name,
                version: v,
                config: Some(config),
            },
        ] => {
            assert_eq!((name.as_str(), *v), ("EV", version));
            assert_eq!(config.subjects, vec!["ev.>".to_string()]);
        }
        other => panic!("expected one stream event, got {other:?}"),
    }

    // Held open while nothing happens, answered by the next commit.
    let waiter = {
        let c = ControlPlaneClient::new(c.base_url(), GROUP, &Secret::new(KEY));
        let from = created.next;
        let epoch = created.epoch;
        actix_rt::spawn(async move {
            let started = std::time::Instant::now();
            let r = c
                .events(&EventsQuery {
                    from: Some(from),
                    epoch,
                    wait_ms: 20_000,
                })
                .await
                .expect("commit event");
            (r, started.elapsed())
        })
    };
    // The poll is held (nothing to answer yet) until the commit below.
    let idle = c
        .events(&EventsQuery {
            from: Some(created.next),
            epoch: created.epoch,
            wait_ms: 200,
        })
        .await
        .expect("empty answer");
    assert!(idle.events.is_empty() && idle.next == created.next);
    let ack = publish(&c, "EV", msg("ev.a")).await;
    let (woken, waited) = waiter.await.expect("waiter");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(
        woken.events,
        vec![Event::Commit {
            stream: "EV".into(),
            last_seq: ack.seq().expect("acked"),
            subjects: vec!["ev.a".into()],
        }]
    );

    // Another epoch: reset, with the current cursor.
    let other = c
        .events(&EventsQuery {
            from: Some(woken.next),
            epoch: woken.epoch ^ 2,
            wait_ms: 5_000,
        })
        .await
        .expect("reset");
    assert!(other.reset && other.next == woken.next);
}
