//! HTTP and WebSocket on the `[daemon.tcp]` port, for browser-based POS
//! software (a browser cannot open a Unix socket or speak JSON lines).
//!
//! The listener sniffs each TCP connection's first byte ([`sniff`]): an
//! uppercase letter starts an HTTP request line, anything else is a
//! JSON-lines client served as before. HTTP connections are served by
//! hyper with the [`router`]; `POST /rpc` and `GET /ws` run the same
//! method table as the socket ([`crate::api::conn::handle_line`]).
//!
//! Every request passes [`origin`]: a page from a web origin not in
//! `[web] origins` is refused, and CORS headers go only to listed origins.

pub mod assets;
pub mod console;
pub mod health;
pub mod origin;
pub mod rpc;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::app::App;

/// How long the listener waits for a TCP client's first byte to tell HTTP
/// from JSON lines; a client silent that long is served JSON lines, as
/// every client was before the port spoke HTTP.
pub const SNIFF_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest an HTTP connection (keep-alive included, WebSocket not)
/// holds its client slot.
pub const CONNECTION_MAX: Duration = Duration::from_secs(300);
/// The longest one request may take (a body sent slowly included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for HTTP requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a TCP client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// An HTTP request line (`GET `, `POST `, `OPTIONS `...).
    Http,
    /// JSON-RPC lines (`{`, `[`, whitespace, or anything else).
    JsonLines,
}

/// Peeks at the first byte (without consuming it) for up to
/// [`SNIFF_TIMEOUT`]. An HTTP method token is uppercase ASCII; a JSON text
/// never starts with one, so one byte decides.
pub async fn sniff(stream: &TcpStream) -> Proto {
    let mut first = [0u8; 1];
    match tokio::time::timeout(SNIFF_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0].is_ascii_uppercase() => Proto::Http,
        _ => Proto::JsonLines,
    }
}

/// Per-connection facts handed to handlers as an extension.
#[derive(Clone)]
pub struct ConnInfo {
    /// The client's address (login back-off counts per address).
    pub peer: SocketAddr,
    /// Fires on daemon shutdown; WebSockets close then.
    pub shutdown: CancellationToken,
    /// What the connection holds, and a WebSocket keeps after the
    /// upgrade: its `max_clients` permit, so it still counts against the
    /// limit, and its place among the daemon's connections, so shutdown
    /// waits (within the grace period) for its close frame.
    pub held: Arc<Held>,
}

/// See [`ConnInfo::held`]; released on drop.
pub struct Held {
    _slot: OwnedSemaphorePermit,
    _tracked: TaskTrackerToken,
}

/// The routes of the till's HTTP server, with the origin check and the
/// request timeout on every one of them.
pub fn router(app: Arc<App>) -> Router {
    let parts: Vec<Router<Arc<App>>> = vec![
        rpc::routes(),
        ws::routes(),
        assets::routes(),
        // ---- Mount further sub-routers here (one line each), e.g. the
        // technician's console and health/metrics:
        //   console::routes(), health::routes(),
        // Each is a `Router<Arc<App>>`; the origin check and the timeout
        // below apply to them too.
        health::routes(),
        console::routes(),
    ];
    let mut r = Router::new();
    for p in parts {
        r = r.merge(p);
    }
    r.layer(axum::middleware::from_fn(guard))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            origin::check,
        ))
        .with_state(app)
}

/// Times requests out and marks every answer uncacheable and unsniffable.
async fn guard(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out").into_response(),
    };
    let h = r.headers_mut();
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Serves one HTTP connection (already sniffed) until the client leaves,
/// [`CONNECTION_MAX`] passes or `shutdown` fires. Upgrades (WebSocket)
/// continue in their own task, holding `slot` and `tracked`.
pub async fn serve_http(
    stream: TcpStream,
    router: Router,
    peer: SocketAddr,
    (slot, tracked): (OwnedSemaphorePermit, TaskTrackerToken),
    shutdown: CancellationToken,
) {
    let info = ConnInfo {
        peer,
        shutdown: shutdown.clone(),
        held: Arc::new(Held {
            _slot: slot,
            _tracked: tracked,
        }),
    };
    let svc = hyper_util::service::TowerToHyperService::new(
        router
            .layer(axum::Extension(info))
            .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
    );
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = http
        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let end = tokio::time::sleep(CONNECTION_MAX);
    tokio::pin!(end);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(from = %peer, error = %e, "http connection ended");
            }
            return;
        }
        _ = shutdown.cancelled() => {}
        _ = &mut end => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}
