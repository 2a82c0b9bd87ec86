//! `GET /ws`: the API over a WebSocket. One text message is one request
//! or batch; replies and subscribed events come back as text messages.
//!
//! A browser cannot set headers on a WebSocket, and a token in the URL
//! would end up in logs, so the client logs in with `auth.login` as its
//! first call, as on the TCP port. The session, its bounded outbound queue
//! and the event forwarder are the socket's own ([`Session`]): a client
//! that stops reading stalls only itself. The server pings every
//! [`PING_EVERY`]; a client silent for [`IDLE_MAX`] is dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use axum::routing::get;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ConnInfo;
use crate::api::conn::{IN_FLIGHT, OUT_QUEUE, handle_line, mentions_login};
use crate::api::listener::next_conn_id;
use crate::api::rpc::{self, MAX_LINE, RpcError, code};
use crate::api::session::{Outbound, Peer, Session};
use crate::app::App;

/// How often the server pings (browsers answer pings by themselves).
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A client from which nothing (not even a pong) arrives this long is
/// dropped.
pub const IDLE_MAX: Duration = Duration::from_secs(60);
/// A client that accepts no message for this long is dropped.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// The route.
pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(
    State(app): State<Arc<App>>,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(MAX_LINE)
        .max_frame_size(MAX_LINE)
        .on_upgrade(move |socket| serve(socket, app, conn))
}

async fn serve(socket: WebSocket, app: Arc<App>, conn: ConnInfo) {
    // Held until the socket closes: the WebSocket counts against
    // max_clients like the connection it came from, and shutdown waits
    // for it.
    let _held = conn.held.clone();
    let session = Arc::new(Session::new(
        next_conn_id(),
        Peer::Tcp(conn.peer),
        None,
        OUT_QUEUE,
    ));
    let Some(rx) = session.take_receiver() else {
        return;
    };
    tracing::debug!(conn = session.id, peer = %conn.peer, "websocket open");
    let (sink, stream) = socket.split();
    let going_away = conn.shutdown.clone();
    let writer = tokio::spawn(write_loop(sink, rx, session.closed.clone(), going_away));
    read_loop(stream, &app, &session, &conn.shutdown).await;
    session.closed.cancel();
    let _ = writer.await;
    tracing::debug!(conn = session.id, "websocket closed");
}

async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    app: &Arc<App>,
    session: &Arc<Session>,
    shutdown: &CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let calls = TaskTracker::new();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = session.closed.cancelled() => break,
            m = tokio::time::timeout(IDLE_MAX, stream.next()) => m,
        };
        let text = match msg {
            Err(_) => {
                tracing::debug!(conn = session.id, "websocket idle; dropping it");
                break;
            }
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Err(e))) => {
                // Oversized messages end here too: tungstenite refuses
                // them before buffering them.
                tracing::debug!(conn = session.id, error = %e, "websocket read failed");
                let err = RpcError::new(
                    code::INVALID_REQUEST,
                    format!("message refused ({e}); at most {MAX_LINE} bytes; closing"),
                )
                .with_data(json!({ "limit": MAX_LINE }));
                let _ = session
                    .out
                    .try_send(Outbound::Owned(rpc::failure(&Value::Null, &err)));
                break;
            }
            Ok(Some(Ok(Message::Text(t)))) => Bytes::from(t),
            Ok(Some(Ok(Message::Binary(b)))) => b,
            Ok(Some(Ok(_))) => continue, // ping/pong: proof of life
        };
        // As on the socket: a login (and everything before the first)
        // runs in order; later calls run side by side, bounded.
        if session.role().is_none() || mentions_login(&text) {
            if let Some(reply) = handle_line(app, session, text).await {
                let _ = session.out.send(Outbound::Owned(reply)).await;
            }
            continue;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (app, session) = (app.clone(), session.clone());
        calls.spawn(async move {
            let _permit = permit;
            if let Some(reply) = handle_line(&app, &session, text).await {
                let _ = session.out.send(Outbound::Owned(reply)).await;
            }
        });
    }
    calls.close();
    calls.wait().await;
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    closed: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => Message::Text(m.as_str().into()),
                None => break,
            },
            _ = ping.tick() => Message::Ping(Bytes::new()),
            // After close, send what is queued and stop.
            _ = closed.cancelled() => match rx.try_recv() {
                Ok(m) => Message::Text(m.as_str().into()),
                Err(_) => break,
            },
        };
        match tokio::time::timeout(WRITE_STALL, sink.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                closed.cancel();
                return;
            }
        }
    }
    let frame = if shutdown.is_cancelled() {
        CloseFrame {
            code: close_code::AWAY,
            reason: "posbridge is shutting down".into(),
        }
    } else {
        CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        }
    };
    let _ = tokio::time::timeout(WRITE_STALL, sink.send(Message::Close(Some(frame)))).await;
}
