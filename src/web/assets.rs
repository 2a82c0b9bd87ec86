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
/// The page's script (a file of its own: the page's CSP allows no inline
/// script).
pub const POS_JS: &str = include_str!("../../web/pos.js");

/// The routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/posbridge.js", get(js))
        .route("/pos", get(|| async { Redirect::permanent("/pos/") }))
        .route("/pos/", get(pos))
        .route("/pos/app.js", get(pos_js))
}

async fn js() -> Response {
    file("text/javascript; charset=utf-8", POSBRIDGE_JS)
}

async fn pos_js() -> Response {
    file("text/javascript; charset=utf-8", POS_JS)
}

async fn pos() -> Response {
    let mut r = file("text/html; charset=utf-8", POS_HTML);
    // The page talks only to this daemon and loads nothing from elsewhere.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
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
