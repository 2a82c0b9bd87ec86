//! The files the daemon serves itself: `posbridge.js` (the JavaScript
//! client) and the example web POS under `/pos/`. Compiled in, so there
//! is nothing to install or find at run time.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::app::App;

/// The JavaScript client, no build step.
pub const POSBRIDGE_JS: &str = include_str!("../../web/posbridge.js");
/// The example web POS page.
pub const POS_HTML: &str = include_str!("../../web/pos.html");

/// The routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/posbridge.js", get(js))
        .route("/pos", get(|| async { Redirect::permanent("/pos/") }))
        .route("/pos/", get(pos))
}

async fn js() -> Response {
    file("text/javascript; charset=utf-8", POSBRIDGE_JS)
}

async fn pos() -> Response {
    let mut r = file("text/html; charset=utf-8", POS_HTML);
    // The page talks only to this daemon and loads nothing from elsewhere.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
        ),
    );
    r.headers_mut()
        .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn file(kind: &'static str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
        body,
    )
        .into_response()
}
