//! `/healthz`, `/readyz` and `/metrics`, for monitoring. No token: they
//! reveal no secret (device names and states, counters), the port is
//! loopback by default, and a monitoring agent should not hold a till's
//! token. See docs/protocol.md, "Health and metrics".

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::app::App;
use crate::devices::DeviceState;

/// The routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// What is not ready: every configured device not connected, and the
/// ledger when it does not answer. Empty when the till is ready.
pub async fn not_ready(app: &App) -> Vec<Value> {
    let mut out: Vec<Value> = app
        .devices
        .list()
        .into_iter()
        .filter(|d| d.status != DeviceState::Connected)
        .map(|d| json!({"device": d.name, "state": d.status, "detail": d.detail}))
        .collect();
    if !crate::metrics::refresh::ledger_up(app).await {
        let mode = if app.sync.is_some() {
            "central"
        } else {
            "local"
        };
        out.push(json!({"ledger": mode, "state": "unreachable"}));
    }
    out
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let missing = not_ready(&app).await;
    if missing.is_empty() {
        (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "not_ready": missing})),
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let m = crate::metrics::global();
    crate::metrics::refresh(&app, m).await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        m.render(),
    )
        .into_response()
}
