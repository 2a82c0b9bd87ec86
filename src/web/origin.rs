//! The origin check every HTTP request and WebSocket upgrade passes.
//!
//! A browser names the page that makes a request in `Origin` (always on
//! POST, cross-origin fetches and WebSocket upgrades). A request without
//! it comes from a program (curl, monitoring), not from a page, and is
//! let through; its token still decides what it may do. A request with it
//! is let through when the origin is listed in `[web] origins` (and then
//! gets CORS headers) or is the daemon's own origin, i.e. a page the
//! daemon served itself; any other is answered 403.
//!
//! "The daemon's own origin" is `http://` + the `Host` header, trusted
//! only when the host is an IP address or `localhost`: under DNS
//! rebinding a hostile page reaches the port under its own domain name,
//! with `Origin` and `Host` agreeing, so a name never counts as own.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;

/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The middleware.
pub async fn check(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return vary(next.run(req).await);
    };
    let text = origin.to_str().unwrap_or("");
    let listed = !text.is_empty() && app.config().web.allows(text);
    if !listed && !is_own(text, req.headers()) {
        tracing::info!(origin = %text.escape_debug(), path = %req.uri().path(), "web origin refused");
        return refused(text);
    }
    if listed
        && req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(origin);
    }
    let mut r = next.run(req).await;
    if listed {
        allow(r.headers_mut(), origin);
    }
    vary(r)
}

/// Whether `origin` is `http://` + this request's `Host`, with an IP
/// address or `localhost` as the host.
fn is_own(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let literal = name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost");
    literal
        && origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

fn refused(origin: &str) -> Response {
    let body = json!({
        "error": {
            "code": "origin_not_allowed",
            "message": format!(
                "pages from {origin} may not use this API; add the origin to [web] origins"
            ),
        }
    });
    let mut r = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    r
}

fn preflight(origin: HeaderValue) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    allow(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    vary(r)
}

/// The CORS answer for a listed origin. No `Allow-Credentials`: the API
/// takes a bearer token, never cookies.
fn allow(h: &mut HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
}

/// Answers differ by `Origin`, so caches must key on it.
fn vary(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        m
    }

    #[test]
    fn own_origin_only_for_addresses() {
        assert!(is_own("http://127.0.0.1:7450", &host("127.0.0.1:7450")));
        assert!(is_own("http://localhost:7450", &host("localhost:7450")));
        assert!(is_own("http://[::1]:7450", &host("[::1]:7450")));
        assert!(!is_own("http://127.0.0.1:7451", &host("127.0.0.1:7450")));
        assert!(!is_own("https://127.0.0.1:7450", &host("127.0.0.1:7450")));
        // DNS rebinding: a name agreeing with itself is not the daemon.
        assert!(!is_own(
            "http://evil.example:7450",
            &host("evil.example:7450")
        ));
        assert!(!is_own("null", &host("127.0.0.1:7450")));
        assert!(!is_own("http://127.0.0.1:7450", &HeaderMap::new()));
    }
}
