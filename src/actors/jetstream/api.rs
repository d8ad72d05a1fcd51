//! The `$JS.API` responder.
//!
//! `JsApi` owns answering `$JS.API.>` requests: most are relayed verbatim to the control plane,
//! which holds all JetStream metadata; message reads (`STREAM.MSG.GET`, `DIRECT.GET`) are served
//! here from the bucket, since message bytes never go to the control plane. Does not own which
//! streams exist (`write::catalog`).

use std::rc::Rc;

use actix::prelude::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use bytestring::ByteString;
use serde_json::json;

use crate::actors::ingress::router::{InternalMsg, NatsMsg, Router, SubscribeInternal};
use crate::actors::messages::CatchUp;
use crate::actors::messages::Publish;
use crate::actors::read::{Reader, read_record};
use crate::actors::write::catalog::{GetStream, Refresh, StreamCatalog};
use crate::control_plane::client::ControlPlaneClient;
use crate::protocol::headers::Headers;
use infinistream_api::control_plane::model::{LocateRequest, MessageLocation};
use infinistream_api::jetstream::time::format_nanos;
use infinistream_api::jetstream::{ApiError, gojson};

pub struct JsApi {
    client: Rc<ControlPlaneClient>,
    router: Addr<Router>,
    catalog: Addr<StreamCatalog>,
    /// The event feed, asked to catch up after a stream changes through this agent.
    feed: Recipient<CatchUp>,
    /// Reads go through the agent's read cache (or straight to the bucket for a bare store).
    store: Reader,
}

const API_PREFIX: &str = "$JS.API.";

/// `$JS.API` subjects answered by other actors (they subscribe to them themselves).
const OWNED_ELSEWHERE: &[&str] = &["CONSUMER.MSG.NEXT."];

impl JsApi {
    pub fn new(
        client: ControlPlaneClient,
        router: Addr<Router>,
        catalog: Addr<StreamCatalog>,
        feed: Recipient<CatchUp>,
        store: impl Into<Reader>,
    ) -> Self {
        Self {
            client: Rc::new(client),
            router,
            catalog,
            feed,
            store: store.into(),
        }
    }
}

/// The control plane could not be asked: the client is told so with a reference, the cause
/// (which may name the control plane's URL) goes to the log under it.
fn unavailable(api: &str, e: impl std::fmt::Display) -> ApiError {
    let reference = crate::logging::reference();
    tracing::warn!(api, reference = %reference, error = %e, "control plane unreachable for a jetstream request");
    ApiError::new(
        503,
        10008,
        format!("jetstream system temporarily unavailable (ref {reference})"),
    )
}

/// A stored message could not be read: the client gets a reference, the log the object key.
fn unreadable(stream: &str, e: impl std::fmt::Display) -> ApiError {
    let reference = crate::logging::reference();
    tracing::warn!(stream, reference = %reference, error = %e, "stored message unreadable");
    ApiError::stream_general(format!("message unreadable (ref {reference})"))
}

/// Runs one request's future; if it panics, the requester still gets an answer (a 500 JetStream
/// error) and the JsApi actor goes on serving.
async fn guarded(
    (router, reply_to): (Addr<Router>, ByteString),
    fut: impl std::future::Future<Output = ()>,
) {
    if crate::actors::guard::catch_future("jetstream_api", fut)
        .await
        .is_none()
    {
        let error = ApiError::new(500, 10049, "internal error".to_string());
        reply(
            &router,
            reply_to,
            None,
            Bytes::from(json!({ "error": error }).to_string()),
        );
    }
}

fn error_body(kind: &str, e: &ApiError) -> Bytes {
    Bytes::from(json!({"type": kind, "error": e}).to_string())
}

fn reply(router: &Addr<Router>, to: ByteString, headers: Option<Bytes>, payload: Bytes) {
    router.do_send(Publish {
        origin: None,
        msg: NatsMsg {
            subject: to,
            reply: None,
            headers,
            payload,
        },
        original: false,
        permit: None,
    });
}

/// `STREAM.MSG.GET`'s answer: the message with headers and data in base64.
fn msg_get_body(loc: &MessageLocation, headers: Option<&Bytes>, payload: &Bytes) -> Bytes {
    let mut message = json!({
        "subject": loc.subject,
        "seq": loc.seq,
        "time": format_nanos(loc.timestamp_nanos),
    });
    if !payload.is_empty() {
        message["data"] = json!(BASE64.encode(payload));
    }
    if let Some(h) = headers.filter(|h| !h.is_empty()) {
        message["hdrs"] = json!(BASE64.encode(h));
    }
    Bytes::from(
        json!({"type": "io.nats.jetstream.api.v1.stream_msg_get_response", "message": message})
            .to_string(),
    )
}

/// `DIRECT.GET`'s answer: the stored message with nats-server's `Nats-*` headers added.
fn direct_headers(loc: &MessageLocation, stream: &str, original: Option<&Bytes>) -> Bytes {
    let mut h = original
        .and_then(|raw| Headers::parse(raw).ok())
        .unwrap_or_default();
    h.insert("Nats-Stream", stream);
    h.insert("Nats-Subject", loc.subject.as_str());
    h.insert("Nats-Sequence", loc.seq.to_string());
    h.insert("Nats-Time-Stamp", format_nanos(loc.timestamp_nanos));
    h.encode()
}

const MSG_GET_KIND: &str = "io.nats.jetstream.api.v1.stream_msg_get_response";
const STREAM_STEPDOWN_KIND: &str = "io.nats.jetstream.api.v1.stream_leader_stepdown_response";
const CONSUMER_STEPDOWN_KIND: &str = "io.nats.jetstream.api.v1.consumer_leader_stepdown_response";

/// Whether nats-server subscribes to this `$JS.API.` suffix for a client account; anything else
/// has no responder there.
fn nats_server_answers(api: &str) -> bool {
    let tokens: Vec<&str> = api.split('.').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return false;
    }
    matches!(
        tokens.as_slice(),
        ["INFO"]
            | ["STREAM", "NAMES" | "LIST"]
            | [
                "STREAM",
                "CREATE" | "UPDATE" | "INFO" | "DELETE" | "PURGE" | "SNAPSHOT" | "RESTORE",
                _
            ]
            | ["STREAM", "MSG", "GET" | "DELETE", _]
            | ["STREAM", "LEADER", "STEPDOWN", _]
            | ["STREAM", "PEER", "REMOVE", _]
            | ["CONSUMER", "CREATE", _, ..]
            | ["CONSUMER", "DURABLE", "CREATE", _, _]
            | ["CONSUMER", "NAMES" | "LIST", _]
            | ["CONSUMER", "INFO" | "DELETE" | "PAUSE" | "UNPIN", _, _]
            | ["CONSUMER", "LEADER", "STEPDOWN", _, _]
            | ["DIRECT", "GET", _, ..]
    )
}

/// nats-server's check of `STREAM.MSG.GET` options before it looks the stream up: exactly one
/// of a sequence, a last-by-subject or a next-by-subject (a sequence may pair with the latter).
fn msg_get_options_valid(req: LocateRequest) -> Result<LocateRequest, ApiError> {
    let last = req.last_by_subj.as_deref().is_some_and(|s| !s.is_empty());
    let next = req.next_by_subj.as_deref().is_some_and(|s| !s.is_empty());
    if (req.seq > 0 && last) || (req.seq == 0 && !last && !next) || (last && next) {
        return Err(ApiError::bad_request());
    }
    Ok(req)
}

impl Actor for JsApi {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.router.do_send(SubscribeInternal {
            pattern: "$JS.API.>".to_string(),
            recipient: ctx.address().recipient(),
        });
    }
}

impl Handler<InternalMsg> for JsApi {
    type Result = ();

    fn handle(&mut self, m: InternalMsg, ctx: &mut Self::Context) {
        let Some(reply_to) = m.msg.reply.clone() else {
            return;
        };
        let Some(api) = m.msg.subject.strip_prefix(API_PREFIX).map(str::to_string) else {
            return;
        };
        if OWNED_ELSEWHERE.iter().any(|p| api.starts_with(p)) {
            return;
        }
        if !nats_server_answers(&api) {
            // nats-server has no responder there: the request goes unanswered.
            return;
        }
        let stepdown = match api.split('.').collect::<Vec<_>>().as_slice() {
            ["STREAM", "LEADER", "STEPDOWN", _] => Some(STREAM_STEPDOWN_KIND),
            ["CONSUMER", "LEADER", "STEPDOWN", _, _] => Some(CONSUMER_STEPDOWN_KIND),
            _ => None,
        };
        if let Some(kind) = stepdown {
            // There are no stream or consumer leaders to move: an agent answers as a
            // non-clustered nats-server does.
            let e = ApiError::new(503, 10010, "JetStream clustering support required");
            reply(&self.router, reply_to, None, error_body(kind, &e));
            return;
        }
        let client = self.client.clone();
        let router = self.router.clone();
        let catalog = self.catalog.clone();
        let feed = self.feed.clone();
        let store = self.store.clone();
        let body = m.msg.payload;
        let subject = m.msg.subject.clone();

        if let Some(stream) = api.strip_prefix("STREAM.MSG.GET.") {
            let stream = stream.to_string();
            let guard_reply = (router.clone(), reply_to.clone());
            ctx.spawn(
                guarded(guard_reply, async move {
                    // nats-server: an empty request is a bad request, then the Go decoding.
                    let req = if gojson::is_empty_request(&body) {
                        Err(ApiError::bad_request())
                    } else {
                        gojson::decode::<LocateRequest>(&body, &gojson::MSG_GET_REQUEST)
                            .and_then(msg_get_options_valid)
                    };
                    let out = match req {
                        Err(e) => error_body(MSG_GET_KIND, &e),
                        Ok(req) => match client.locate(&stream, &req).await {
                            Err(e) => error_body(MSG_GET_KIND, &unavailable("STREAM.MSG.GET", e)),
                            Ok(Err(api_err)) => error_body(MSG_GET_KIND, &api_err),
                            Ok(Ok(loc)) => match read_record(&store, &loc).await {
                                Ok(rec) => msg_get_body(&loc, rec.headers.as_ref(), &rec.payload),
                                Err(e) => error_body(MSG_GET_KIND, &unreadable(&stream, e)),
                            },
                        },
                    };
                    reply(&router, reply_to, None, out);
                })
                .into_actor(self),
            );
            return;
        }

        if let Some(rest) = api.strip_prefix("DIRECT.GET.") {
            // `DIRECT.GET.<stream>` with a JSON body, or `DIRECT.GET.<stream>.<subject>`.
            let (stream, by_subject) = match rest.split_once('.') {
                Some((s, subj)) => (s.to_string(), Some(subj.to_string())),
                None => (rest.to_string(), None),
            };
            let guard_reply = (router.clone(), reply_to.clone());
            ctx.spawn(
                guarded(guard_reply, async move {
                    let direct = catalog
                        .send(GetStream(stream.clone()))
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|c| c.allow_direct);
                    if !direct {
                        // nats-server has no responder on this subject unless allow_direct is
                        // set: answer what it sends a no_responders client, byte for byte.
                        let mut h = Headers::with_status(503, None);
                        h.insert("Nats-Subject", subject.to_string());
                        reply(&router, reply_to, Some(h.encode()), Bytes::new());
                        return;
                    }
                    let req = match by_subject {
                        Some(subject) => Ok(LocateRequest::last_by_subject(subject)),
                        None => serde_json::from_slice::<LocateRequest>(&body),
                    };
                    let Ok(req) = req else {
                        reply(&router, reply_to, Some(status(408, Some("Bad Request"))), Bytes::new());
                        return;
                    };
                    match client.locate(&stream, &req).await {
                        Ok(Ok(loc)) => match read_record(&store, &loc).await {
                            Ok(rec) => reply(
                                &router,
                                reply_to,
                                Some(direct_headers(&loc, &stream, rec.headers.as_ref())),
                                rec.payload,
                            ),
                            Err(e) => {
                                tracing::warn!(stream = %stream, error = %e, "direct get read failed");
                                reply(&router, reply_to, Some(status(500, Some("Internal Error"))), Bytes::new())
                            }
                        },
                        Ok(Err(_)) => reply(
                            &router,
                            reply_to,
                            Some(status(404, Some("Message Not Found"))),
                            Bytes::new(),
                        ),
                        Err(e) => {
                            tracing::warn!(stream = %stream, error = %e, "direct get locate failed");
                            reply(&router, reply_to, Some(status(503, None)), Bytes::new())
                        }
                    }
                })
                .into_actor(self),
            );
            return;
        }

        let mutates = api.starts_with("STREAM.CREATE.")
            || api.starts_with("STREAM.UPDATE.")
            || api.starts_with("STREAM.DELETE.");
        let guard_reply = (router.clone(), reply_to.clone());
        ctx.spawn(
            guarded(guard_reply, async move {
                let out = match client.js_api(&api, body).await {
                    Ok(out) => out,
                    Err(e) => Bytes::from(json!({"error": unavailable(&api, e)}).to_string()),
                };
                // The stream is routable before its change is answered: the event feed brings
                // the change as a delta; while the feed is down the catalog re-reads the list.
                if mutates && !feed.send(CatchUp).await.unwrap_or(false) {
                    let _ = catalog.send(Refresh).await;
                }
                reply(&router, reply_to, None, out);
            })
            .into_actor(self),
        );
    }
}

fn status(code: u16, description: Option<&str>) -> Bytes {
    crate::protocol::headers::status_only(code, description)
}

impl Handler<crate::actors::Ready> for JsApi {
    type Result = ();
    fn handle(&mut self, _: crate::actors::Ready, _: &mut Self::Context) {}
}
