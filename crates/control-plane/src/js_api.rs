//! The `$JS.API` requests the control plane answers, as a pure function from (api subject
//! suffix, request payload) to the exact response payload nats-server would send.
//!
//! Owns: dispatch on the subject, request parsing, nats-server's check order per request, the
//! response envelopes and the API counters. Does not own: storage (`store`) or transport.

use infinistream_api::jetstream::gojson::{self, is_empty_request, is_json_object_or_array};
use infinistream_api::jetstream::types::*;
use infinistream_api::jetstream::{ApiError, StreamConfig, StreamConfigRequest};

use super::consumers::Backend;
use super::store::{StateDetail, StoreError, StreamView};

/// Facts about the request that are not in its payload.
#[derive(Debug, Clone)]
pub struct JsContext {
    /// Reported as the stream leader in STREAM.INFO (the agent that relayed the request).
    pub server_name: String,
    /// Unix nanos used for `created` and `ts`.
    pub now: i64,
    /// Consumers per stream, filled in by `handle`.
    pub consumer_counts: std::collections::HashMap<String, usize>,
}

/// Answers one `$JS.API.<api>` request. Never fails: storage failures become API errors.
pub fn handle(backend: &mut Backend, api: &str, body: &[u8], ctx: &JsContext) -> Vec<u8> {
    let tokens: Vec<&str> = api.split('.').collect();
    backend.consumers.sweep(ctx.now);
    let mut ctx = ctx.clone();
    ctx.consumer_counts = backend.consumers.counts();
    let ctx = &ctx;
    let (json, is_error) = match tokens.as_slice() {
        ["INFO"] => account_info(backend),
        ["STREAM", "CREATE", name] => stream_create(backend, name, body, ctx),
        ["STREAM", "UPDATE", name] => stream_update(backend, name, body, ctx),
        ["STREAM", "DELETE", name] => stream_delete(backend, name, body),
        ["STREAM", "INFO", name] => stream_info(backend, name, body, ctx),
        ["STREAM", "NAMES"] => stream_names(backend, body),
        ["STREAM", "LIST"] => stream_list(backend, body, ctx),
        ["STREAM", "PURGE", name] => stream_purge(backend, name, body),
        ["STREAM", "MSG", "DELETE", name] => msg_delete(backend, name, body),
        ["CONSUMER", rest @ ..] => match super::consumers::handle(backend, rest, body, ctx.now) {
            Some(out) => out,
            None => encode(&ApiResponse {
                kind: SYSTEM_RESPONSE.to_string(),
                error: Some(ApiError::bad_request()),
            }),
        },
        _ => encode(&ApiResponse {
            kind: SYSTEM_RESPONSE.to_string(),
            error: Some(ApiError::bad_request()),
        }),
    };
    backend.api_total += 1;
    if is_error {
        backend.api_errors += 1;
    }
    json
}

/// Response envelopes that may carry an `error` member.
trait Envelope: serde::Serialize {
    fn has_error(&self) -> bool;
}

macro_rules! envelope {
    ($($t:ty),*) => {$(
        impl Envelope for $t {
            fn has_error(&self) -> bool {
                self.error.is_some()
            }
        }
    )*};
}

envelope!(
    ApiResponse,
    AccountInfoResponse,
    StreamCreateResponse,
    StreamUpdateResponse,
    StreamDeleteResponse,
    StreamInfoResponse,
    StreamNamesResponse,
    StreamListResponse,
    StreamPurgeResponse,
    MsgDeleteResponse
);

fn encode<T: Envelope>(value: &T) -> (Vec<u8>, bool) {
    match serde_json::to_vec(value) {
        Ok(v) => (v, value.has_error()),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a jetstream api response");
            (Vec::new(), true)
        }
    }
}

/// Maps a store failure to the API error nats-server uses for that request kind.
fn api_error(e: StoreError, general: fn(String) -> ApiError) -> ApiError {
    match e {
        StoreError::Api(e) => e,
        other => {
            tracing::error!(error = %other, "control plane store failure in jetstream api");
            general(other.to_string())
        }
    }
}

fn info_of(mut view: StreamView, ctx: &JsContext, dynamic: bool, cluster: bool) -> StreamInfo {
    view.state.consumer_count = ctx
        .consumer_counts
        .get(&view.config.name)
        .copied()
        .unwrap_or(0);
    StreamInfo {
        config: if dynamic {
            view.config.with_dynamic_metadata()
        } else {
            view.config
        },
        created: view.created,
        state: view.state,
        cluster: cluster.then(|| ClusterInfo {
            name: String::new(),
            leader: ctx.server_name.clone(),
        }),
        ts: ctx.now,
    }
}

fn account_info(backend: &mut Backend) -> (Vec<u8>, bool) {
    match backend.store.account_usage() {
        Ok(usage) => encode(&AccountInfoResponse {
            kind: ACCOUNT_INFO_RESPONSE,
            error: None,
            stats: Some(AccountStats {
                memory: usage.memory,
                storage: usage.storage,
                reserved_memory: usage.reserved_memory,
                reserved_storage: usage.reserved_storage,
                streams: usage.streams,
                consumers: backend.consumers.total(),
                limits: AccountLimits::default(),
                api: ApiStats {
                    level: infinistream_api::jetstream::API_LEVEL,
                    total: backend.api_total,
                    errors: backend.api_errors,
                },
            }),
        }),
        Err(e) => encode(&AccountInfoResponse {
            kind: ACCOUNT_INFO_RESPONSE,
            error: Some(api_error(e, ApiError::stream_general)),
            stats: None,
        }),
    }
}

fn create_error(error: ApiError) -> (Vec<u8>, bool) {
    encode(&StreamCreateResponse {
        kind: STREAM_CREATE_RESPONSE,
        error: Some(error),
        info: None,
        did_create: false,
    })
}

fn stream_create(
    backend: &mut Backend,
    name: &str,
    body: &[u8],
    ctx: &JsContext,
) -> (Vec<u8>, bool) {
    let request = match StreamConfigRequest::parse(body) {
        Ok(r) => r,
        Err(e) => return create_error(e),
    };
    let mut cfg = request.config;
    cfg.set_static_metadata();
    if name != cfg.name {
        return create_error(ApiError::stream_mismatch());
    }
    if name.contains(['\\', '/']) {
        return create_error(ApiError::stream_name_contains_path_separators());
    }
    if cfg.sealed {
        return create_error(ApiError::stream_invalid_config(
            "stream configuration for create can not be sealed",
        ));
    }
    if cfg.mirror_direct && cfg.mirror.is_none() {
        return create_error(ApiError::stream_invalid_config(
            "stream has no mirror but does have mirror direct",
        ));
    }
    let cfg = match cfg.checked(request.pedantic) {
        Ok(c) => c,
        Err(e) => return create_error(e),
    };
    match backend.store.create_stream(cfg, ctx.now) {
        Ok(view) => encode(&StreamCreateResponse {
            kind: STREAM_CREATE_RESPONSE,
            error: None,
            info: Some(info_of(view, ctx, true, false)),
            did_create: true,
        }),
        Err(e) => create_error(api_error(e, ApiError::stream_create)),
    }
}

fn update_error(error: ApiError) -> (Vec<u8>, bool) {
    encode(&StreamUpdateResponse {
        kind: STREAM_UPDATE_RESPONSE,
        error: Some(error),
        info: None,
    })
}

fn stream_update(
    backend: &mut Backend,
    name: &str,
    body: &[u8],
    ctx: &JsContext,
) -> (Vec<u8>, bool) {
    let request = match StreamConfigRequest::parse(body) {
        Ok(r) => r,
        Err(e) => return update_error(e),
    };
    let cfg = match request.config.checked(request.pedantic) {
        Ok(c) => c,
        Err(e) => return update_error(e),
    };
    if name != cfg.name {
        return update_error(ApiError::stream_mismatch());
    }
    let old = match backend.store.stream_config(name) {
        Ok(c) => c,
        Err(e) => return update_error(api_error(e, ApiError::stream_update)),
    };
    let mut new: StreamConfig = request.config;
    new.set_static_metadata();
    let checked = match old.checked_update(&new, request.pedantic) {
        Ok(c) => c,
        Err(e) => return update_error(e),
    };
    match backend.store.update_stream(checked) {
        Ok(view) => encode(&StreamUpdateResponse {
            kind: STREAM_UPDATE_RESPONSE,
            error: None,
            info: Some(info_of(view, ctx, true, false)),
        }),
        Err(e) => update_error(api_error(e, ApiError::stream_update)),
    }
}

fn stream_delete(backend: &mut Backend, name: &str, body: &[u8]) -> (Vec<u8>, bool) {
    let error = if !is_empty_request(body) {
        Some(ApiError::not_empty_request())
    } else {
        backend
            .store
            .delete_stream(name)
            .err()
            .map(|e| api_error(e, ApiError::stream_delete))
    };
    if error.is_none() {
        backend.consumers.remove_stream(name);
    }
    encode(&StreamDeleteResponse {
        kind: STREAM_DELETE_RESPONSE,
        success: error.is_none(),
        error,
    })
}

fn stream_info(backend: &mut Backend, name: &str, body: &[u8], ctx: &JsContext) -> (Vec<u8>, bool) {
    let err = |error| {
        encode(&StreamInfoResponse {
            kind: STREAM_INFO_RESPONSE,
            error: Some(error),
            total: 0,
            offset: 0,
            limit: 0,
            info: None,
        })
    };
    let mut request = StreamInfoRequest::default();
    if is_json_object_or_array(body) {
        match gojson::decode(body, &gojson::STREAM_INFO_REQUEST) {
            Ok(r) => request = r,
            Err(e) => return err(e),
        }
    }
    let detail = StateDetail {
        subjects_filter: Some(request.subjects_filter.clone()).filter(|s| !s.is_empty()),
        deleted: request.deleted_details,
    };
    let view = match backend.store.stream(name, &detail) {
        Ok(v) => v,
        Err(e) => return err(api_error(e, ApiError::stream_general)),
    };
    let mut info = info_of(view, ctx, true, true);
    let (mut total, mut offset, mut limit) = (0, 0, 0);
    if !request.subjects_filter.is_empty() && !info.state.subjects.is_empty() {
        let n = info.state.subjects.len();
        total = n;
        limit = MAX_SUBJECT_DETAILS;
        offset = usize::try_from(request.offset.max(0)).unwrap_or(0).min(n);
        if offset > 0 || n > MAX_SUBJECT_DETAILS {
            info.state.subjects = std::mem::take(&mut info.state.subjects)
                .into_iter()
                .skip(offset)
                .take(MAX_SUBJECT_DETAILS)
                .collect();
        }
    }
    encode(&StreamInfoResponse {
        kind: STREAM_INFO_RESPONSE,
        error: None,
        total,
        offset,
        limit,
        info: Some(info),
    })
}

fn list_request(body: &[u8], ty: &gojson::GoType) -> Result<(usize, String), ApiError> {
    if !is_json_object_or_array(body) {
        return Ok((0, String::new()));
    }
    let request: StreamListRequest = gojson::decode(body, ty)?;
    Ok((
        usize::try_from(request.offset.max(0)).unwrap_or(0),
        request.subject,
    ))
}

fn filtered(backend: &mut Backend, filter: &str) -> Result<Vec<StreamView>, ApiError> {
    let views = backend
        .store
        .streams()
        .map_err(|e| api_error(e, ApiError::stream_general))?;
    Ok(views
        .into_iter()
        .filter(|v| {
            filter.is_empty()
                || v.config
                    .subjects
                    .iter()
                    .any(|s| infinistream_api::subject::overlaps(filter, s))
        })
        .collect())
}

fn stream_names(backend: &mut Backend, body: &[u8]) -> (Vec<u8>, bool) {
    let err = |error| {
        encode(&StreamNamesResponse {
            kind: STREAM_NAMES_RESPONSE,
            error: Some(error),
            total: 0,
            offset: 0,
            limit: 0,
            streams: None,
        })
    };
    let (offset, filter) = match list_request(body, &gojson::STREAM_NAMES_REQUEST) {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    let views = match filtered(backend, &filter) {
        Ok(v) => v,
        Err(e) => return err(e),
    };
    let total = views.len();
    let offset = offset.min(total);
    let names: Vec<String> = views
        .into_iter()
        .skip(offset)
        .take(NAMES_LIMIT)
        .map(|v| v.config.name)
        .collect();
    encode(&StreamNamesResponse {
        kind: STREAM_NAMES_RESPONSE,
        error: None,
        total,
        offset,
        limit: NAMES_LIMIT,
        streams: (!names.is_empty()).then_some(names),
    })
}

fn stream_list(backend: &mut Backend, body: &[u8], ctx: &JsContext) -> (Vec<u8>, bool) {
    let err = |error| {
        encode(&StreamListResponse {
            kind: STREAM_LIST_RESPONSE,
            error: Some(error),
            total: 0,
            offset: 0,
            limit: 0,
            streams: Vec::new(),
        })
    };
    let (offset, filter) = match list_request(body, &gojson::STREAM_LIST_REQUEST) {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    let views = match filtered(backend, &filter) {
        Ok(v) => v,
        Err(e) => return err(e),
    };
    let total = views.len();
    let offset = offset.min(total);
    let streams = views
        .into_iter()
        .skip(offset)
        .take(LIST_LIMIT)
        .map(|v| info_of(v, ctx, false, false))
        .collect();
    encode(&StreamListResponse {
        kind: STREAM_LIST_RESPONSE,
        error: None,
        total,
        offset,
        limit: LIST_LIMIT,
        streams,
    })
}

fn stream_purge(backend: &mut Backend, name: &str, body: &[u8]) -> (Vec<u8>, bool) {
    let err = |error| {
        encode(&StreamPurgeResponse {
            kind: STREAM_PURGE_RESPONSE,
            error: Some(error),
            success: false,
            purged: 0,
        })
    };
    let mut request = StreamPurgeRequest::default();
    if is_json_object_or_array(body) {
        match gojson::decode::<StreamPurgeRequest>(body, &gojson::STREAM_PURGE_REQUEST) {
            Ok(r) => request = r,
            Err(e) => return err(e),
        }
        if request.seq > 0 && request.keep > 0 {
            return err(ApiError::bad_request());
        }
    }
    match backend.store.purge(name, &request) {
        Ok(purged) => encode(&StreamPurgeResponse {
            kind: STREAM_PURGE_RESPONSE,
            error: None,
            success: true,
            purged,
        }),
        Err(e) => err(api_error(e, ApiError::stream_general)),
    }
}

fn msg_delete(backend: &mut Backend, name: &str, body: &[u8]) -> (Vec<u8>, bool) {
    let err = |error| {
        encode(&MsgDeleteResponse {
            kind: STREAM_MSG_DELETE_RESPONSE,
            error: Some(error),
            success: false,
        })
    };
    if is_empty_request(body) {
        return err(ApiError::bad_request());
    }
    let request: MsgDeleteRequest = match gojson::decode(body, &gojson::MSG_DELETE_REQUEST) {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    match backend.store.delete_message(name, request.seq) {
        Ok(()) => encode(&MsgDeleteResponse {
            kind: STREAM_MSG_DELETE_RESPONSE,
            error: None,
            success: true,
        }),
        Err(e) => err(api_error(e, ApiError::stream_msg_delete_failed)),
    }
}
