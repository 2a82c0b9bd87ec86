//! The HTTP API: `POST /v1/{method}` for every ledger method, `GET
//! /v1/health`, `GET /v1/programme`.
//!
//! A call is authenticated (terminal and key), its `key` argument is
//! prefixed with the terminal so a till can only replay its own
//! operations, and it runs on a ledger that records the terminal's store
//! and id as the origin, taken from the credential, never from the body.
//! Every error is `{"error": {"code", "message", "data"}}` with the till's
//! own JSON-RPC codes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use posbridge::api::rpc::code;
use posbridge::args;
use posbridge::ledger::origin::Origin;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::core::{Core, WireError};
use crate::principals::{AuthError, Authenticator, Principal};
use posbridge::ledger::programmes;
use posbridge::ledger::wire::dispatch;

/// What every request shares.
pub struct Service {
    core: Arc<Core>,
    auth: Authenticator,
    max_body: usize,
}

impl Service {
    /// The service over `core`; bodies above `max_body` bytes are refused;
    /// a terminal's status is trusted for `status_ttl` (see
    /// [`Authenticator::with_status_ttl`]).
    pub fn new(core: Arc<Core>, max_body: usize, status_ttl: std::time::Duration) -> Self {
        let auth = Authenticator::new(core.books().clone(), 4).with_status_ttl(status_ttl);
        Service {
            core,
            auth,
            max_body,
        }
    }
}

/// The router with its limits.
pub fn router(service: Arc<Service>, server: &ServerConfig) -> Router {
    let routes = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/programme", get(programme))
        .route("/v1/{*method}", post(call))
        .fallback(not_found);
    with_limits(routes, server).with_state(service)
}

/// A per-request timeout that also bounds the wait for one of
/// `max_concurrent_requests` slots, so a queue cannot grow old. One
/// semaphore for the whole router: axum applies layers route by route, so
/// tower's `ConcurrencyLimitLayer` would limit each route on its own.
fn with_limits<S: Clone + Send + Sync + 'static>(r: Router<S>, server: &ServerConfig) -> Router<S> {
    let timeout = server.request_timeout();
    let slots = Arc::new(Semaphore::new(server.max_concurrent_requests));
    r.layer(middleware::from_fn(move |req: Request, next: Next| {
        deadline(timeout, slots.clone(), req, next)
    }))
}

/// An error response in the wire's shape.
fn error(status: u16, code: i64, message: impl Into<String>, data: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"code": code, "message": message.into(), "data": data}});
    (status, axum::Json(body)).into_response()
}

fn wire_error(e: WireError) -> Response {
    error(e.status, e.code, e.message, e.data)
}

fn auth_error(e: &AuthError) -> Response {
    let msg = e.to_string();
    match e {
        AuthError::Missing | AuthError::Invalid => {
            let mut r = error(401, code::BAD_TOKEN, msg, Value::Null);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"posbridge-central\""),
            );
            r
        }
        AuthError::Revoked => error(403, code::FORBIDDEN, msg, Value::Null),
        AuthError::Throttled(secs) => error(
            429,
            code::LOGIN_THROTTLED,
            msg,
            json!({ "retry_after": secs }),
        ),
        AuthError::Busy => error(503, code::BUSY, msg, json!({ "retry": true })),
        AuthError::Db(_) => error(
            503,
            code::INTERNAL_ERROR,
            "database unavailable",
            json!({ "retry": true }),
        ),
    }
}

async fn deadline(limit: Duration, slots: Arc<Semaphore>, req: Request, next: Next) -> Response {
    let run = async move {
        // The semaphore is never closed: a permit always comes.
        let _slot = slots.acquire_owned().await;
        next.run(req).await
    };
    match tokio::time::timeout(limit, run).await {
        Ok(r) => r,
        // A write cut off here may still commit; the till retries with the
        // same idempotency key and gets its result.
        Err(_) => error(
            503,
            code::BUSY,
            format!("request took longer than {} ms", limit.as_millis()),
            json!({ "retry": true }),
        ),
    }
}

async fn not_found() -> Response {
    error(404, code::METHOD_NOT_FOUND, "no such endpoint", Value::Null)
}

async fn authenticate(s: &Service, headers: &HeaderMap) -> Result<Principal, Response> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    s.auth.authenticate(h).await.map_err(|e| {
        // The reason only: the header holds the key.
        tracing::info!(reason = %e, "refused a request");
        auth_error(&e)
    })
}

/// `GET /v1/health`: 200 when the database answers `SELECT 1`, with this
/// instance's transaction retries and pool (no secrets: counters only).
async fn health(State(s): State<Arc<Service>>) -> Response {
    let r = s
        .core
        .books()
        .read(|db| db.query_row("SELECT 1", args![], |r| r.get::<i64>(0)))
        .await;
    match r {
        Ok(_) => {
            let mut body = json!({"status": "ok"});
            if let Some((retry, pool)) = s.core.pg_stats() {
                body["transactions"] = json!({
                    "retried": retry.retried,
                    "gave_up": retry.gave_up,
                    "alone": retry.alone,
                });
                body["pool"] = json!({"open": pool.open, "idle": pool.idle});
            }
            axum::Json(body).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            error(
                503,
                code::INTERNAL_ERROR,
                "database unavailable",
                json!({ "retry": true }),
            )
        }
    }
}

/// `GET /v1/programme`: the rules the chain's ledger runs.
async fn programme(State(s): State<Arc<Service>>, headers: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    axum::Json(json!(s.core.programme())).into_response()
}

/// `POST /v1/{method}`.
async fn call(
    State(s): State<Arc<Service>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    // The length first, so an oversized body is refused before it is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_body as u64) {
        return too_large(s.max_body);
    }
    let who = match authenticate(&s, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let bytes: Bytes = match axum::body::to_bytes(body, s.max_body).await {
        Ok(b) => b,
        // Chunked bodies have no length to check up front.
        Err(_) => return too_large(s.max_body),
    };
    let args = match parse_args(&bytes, &who.terminal) {
        Ok(a) => a,
        Err(r) => return r,
    };
    // The programmes the till serves: it books only their accounts.
    let served = headers
        .get(programmes::SERVES_HEADER)
        .map(|v| v.to_str().ok().and_then(programmes::from_header));
    let served = match served {
        None => Vec::new(),
        Some(Some(names)) => names,
        Some(None) => {
            return error(
                400,
                code::INVALID_REQUEST,
                format!(
                    "{}: not a list of programme names",
                    programmes::SERVES_HEADER
                ),
                Value::Null,
            );
        }
    };
    let origin = Origin::new(who.store.clone(), who.terminal.clone());
    let ledger = match s.core.for_till(origin, &served) {
        Ok(l) => l,
        Err(e) => return wire_error(posbridge::api::errors::programme_error(e).into()),
    };
    let result = dispatch(&ledger, &method, args).await;
    let status = result.as_ref().map_or_else(|e| e.status, |_| 200);
    tracing::info!(
        terminal = %who.terminal,
        method = %method,
        status,
        ms = started.elapsed().as_millis() as u64,
        "call"
    );
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => wire_error(e),
    }
}

fn too_large(max: usize) -> Response {
    error(
        413,
        code::INVALID_REQUEST,
        format!("request body larger than {max} bytes"),
        json!({ "max_body_bytes": max }),
    )
}

/// The body as an object of named arguments, its `key` prefixed with the
/// terminal.
#[allow(clippy::result_large_err)]
fn parse_args(bytes: &[u8], terminal: &str) -> Result<Value, Response> {
    let mut v: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        // No body: a method without arguments.
        json!({})
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            let offset = byte_offset(bytes, e.line(), e.column());
            error(
                400,
                code::PARSE_ERROR,
                format!("malformed JSON at byte {offset}: {e}"),
                json!({ "offset": offset }),
            )
        })?
    };
    let Some(obj) = v.as_object_mut() else {
        return Err(error(
            400,
            code::INVALID_PARAMS,
            "the arguments must be a JSON object",
            Value::Null,
        ));
    };
    if let Some(key) = obj.get_mut("key") {
        match key {
            Value::String(k) => *k = format!("{terminal}:{k}"),
            Value::Null => {}
            _ => {
                return Err(error(
                    400,
                    code::INVALID_PARAMS,
                    "key: must be a string",
                    json!({ "field": "key" }),
                ));
            }
        }
    }
    Ok(v)
}

/// serde_json reports line and column (1-based, column in bytes); the byte
/// offset is what a client with the raw body can use.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if i + 1 == line {
            return (offset + column.saturating_sub(1)).min(bytes.len());
        }
        offset += l.len();
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_with_the_terminal() {
        let v = parse_args(br#"{"key": "k1", "number": "1"}"#, "till-1").unwrap();
        assert_eq!(v["key"], "till-1:k1");
        assert_eq!(v["number"], "1");
        let v = parse_args(br#"{"key": null}"#, "till-1").unwrap();
        assert_eq!(v["key"], Value::Null);
        assert!(parse_args(br#"{"key": 5}"#, "t").is_err());
        assert!(parse_args(b"[1]", "t").is_err());
        assert_eq!(parse_args(b"", "t").unwrap(), json!({}));
    }

    #[tokio::test]
    async fn slow_requests_and_queues_time_out_with_a_json_503() {
        use tower::ServiceExt;
        let server = ServerConfig {
            request_timeout_ms: 300,
            max_concurrent_requests: 1,
            ..ServerConfig::default()
        };
        let slow = |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            "done"
        };
        let app = with_limits(
            Router::new()
                .route("/fast", get(move || slow(200)))
                .route("/stuck", get(move || slow(5_000))),
            &server,
        );
        let get = |path: &str| Request::builder().uri(path).body(Body::empty()).unwrap();
        let r = app.clone().oneshot(get("/stuck")).await.unwrap();
        assert_eq!(r.status(), 503);
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], code::BUSY);
        // One slot: the second of two 200 ms requests waits for the first
        // and the wait counts against its 300 ms.
        let (a, b) = tokio::join!(
            app.clone().oneshot(get("/fast")),
            app.clone().oneshot(get("/fast"))
        );
        let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 503]);
    }

    #[test]
    fn offsets_count_bytes_from_the_start() {
        assert_eq!(byte_offset(b"{\n  x", 2, 3), 4);
        assert_eq!(byte_offset(b"{x", 1, 2), 1);
        assert_eq!(byte_offset(b"{", 9, 9), 1);
    }
}
