//! `POST /rpc`: one JSON-RPC request or batch per HTTP request, through
//! the same handler as the socket's lines.
//!
//! The caller's role comes from `Authorization: Bearer <token>` (checked
//! by `auth.login` itself, so wrong tokens meet the same back-off); no
//! header means an unauthenticated session, which may only do what a TCP
//! client may do before logging in.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::ConnInfo;
use crate::api::conn::handle_line;
use crate::api::listener::next_conn_id;
use crate::api::rpc::{self, MAX_LINE, RpcError, code};
use crate::api::session::{Peer, Session};
use crate::app::App;

/// The route.
pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/rpc", post(call).layer(DefaultBodyLimit::max(MAX_LINE)))
}

async fn call(
    State(app): State<Arc<App>>,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let err = RpcError::new(
                code::INVALID_REQUEST,
                format!("request body exceeds {MAX_LINE} bytes"),
            )
            .with_data(json!({ "limit": MAX_LINE }));
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                rpc::failure(&Value::Null, &err),
            );
        }
        Err(e) => return e.into_response(),
    };
    // A session of its own per request: nothing carries over between
    // requests but what the token grants. Its queue is dropped at once,
    // so a subscription here delivers nothing rather than piling up.
    let session = Arc::new(Session::new(next_conn_id(), Peer::Tcp(conn.peer), None, 1));
    drop(session.take_receiver());
    let answer = async {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty());
            let Some(token) = token else {
                let err =
                    RpcError::new(code::BAD_TOKEN, "Authorization must be \"Bearer <token>\"");
                return unauthorized(StatusCode::UNAUTHORIZED, &err);
            };
            let login = crate::api::methods::dispatch(
                &app,
                &session,
                "auth.login",
                Some(json!({ "token": token })),
            )
            .await;
            if let Err(err) = login {
                let status = if err.code == code::LOGIN_THROTTLED {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::UNAUTHORIZED
                };
                return unauthorized(status, &err);
            }
        }
        match handle_line(&app, &session, body).await {
            Some(text) => reply(StatusCode::OK, text),
            None => StatusCode::NO_CONTENT.into_response(),
        }
    }
    .await;
    session.closed.cancel();
    answer
}

fn reply(status: StatusCode, text: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

fn unauthorized(status: StatusCode, err: &RpcError) -> Response {
    let mut r = reply(status, rpc::failure(&Value::Null, err));
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}
