//! One client connection: read lines, run calls, write replies and events.
//!
//! The reader and the writer are separate tasks joined by a bounded queue,
//! so a client that stops reading can only stall itself: its queue fills,
//! its event forwarder waits, and the bus counts what it misses.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::methods;
use super::rpc::{self, MAX_LINE, RpcError, code};
use super::session::{Outbound, Session};
use crate::app::App;

/// Lines waiting to be written to one client.
pub(crate) const OUT_QUEUE: usize = 256;
/// Calls one client may have running at once; reading pauses beyond it.
pub(crate) const IN_FLIGHT: usize = 32;
/// A client whose socket accepts no bytes for this long is dropped.
const WRITE_STALL: Duration = Duration::from_secs(30);
/// Requests in one batch.
const MAX_BATCH: usize = 256;

/// Serves one connection until the client leaves or `shutdown` fires.
pub async fn serve<S>(stream: S, app: Arc<App>, session: Arc<Session>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let Some(out_rx) = session_queue(&session) else {
        return;
    };
    let writer = tokio::spawn(write_loop(wr, out_rx, session.closed.clone()));

    let mut lines = FramedRead::new(
        rd,
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), MAX_LINE),
    );
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let calls = TaskTracker::new();
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = session.closed.cancelled() => break,
            f = lines.next() => f,
        };
        let line = match frame {
            None => break,
            Some(Ok(line)) => line,
            Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                let err = RpcError::new(
                    code::INVALID_REQUEST,
                    format!("request line exceeds {MAX_LINE} bytes; closing the connection"),
                )
                .with_data(json!({ "limit": MAX_LINE }));
                let _ = session
                    .out
                    .send(Outbound::Owned(rpc::failure(&Value::Null, &err)))
                    .await;
                // Drain what the client is still sending so closing does not
                // reset the connection before it reads the error.
                let mut rest = lines.into_inner();
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let mut sink = vec![0u8; 64 * 1024];
                    while let Ok(n) = rest.read(&mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
                break;
            }
            Some(Err(AnyDelimiterCodecError::Io(e))) => {
                tracing::debug!(conn = session.id, error = %e, "read failed");
                break;
            }
        };
        // A login changes what the calls after it may do, so it (and
        // whatever precedes the first login) runs before the next line is
        // read; pipelined after it, a call sees its outcome.
        if session.role().is_none() || mentions_login(&line) {
            if let Some(reply) = handle_line(&app, &session, line).await {
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
            if let Some(reply) = handle_line(&app, &session, line).await {
                let _ = session.out.send(Outbound::Owned(reply)).await;
            }
        });
    }
    // In-flight calls finish (the caller bounds this with the grace period
    // on shutdown); then the writer flushes and the connection closes.
    calls.close();
    calls.wait().await;
    let out = session.out.clone();
    drop(out);
    session.closed.cancel();
    let _ = writer.await;
}

/// Whether a line may hold an `auth.login` call (a cheap, conservative
/// test: a false positive only runs the line in order).
pub(crate) fn mentions_login(line: &[u8]) -> bool {
    line.windows(b"auth.login".len())
        .any(|w| w == b"auth.login")
}

/// Takes the receiving half stashed in the session's queue slot.
fn session_queue(session: &Session) -> Option<mpsc::Receiver<Outbound>> {
    session.take_receiver().or_else(|| {
        tracing::error!(conn = session.id, "connection served twice");
        None
    })
}

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::Receiver<Outbound>,
    closed: CancellationToken,
) {
    let mut wr = BufWriter::new(wr);
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            // After close, flush what is queued and stop.
            _ = closed.cancelled() => rx.try_recv().ok(),
        };
        let Some(msg) = msg else { break };
        let write = async {
            wr.write_all(msg.as_str().as_bytes()).await?;
            wr.write_all(b"\n").await?;
            // Batch writes while more are queued; flush when idle.
            if rx.is_empty() {
                wr.flush().await?;
            }
            std::io::Result::Ok(())
        };
        match tokio::time::timeout(WRITE_STALL, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                closed.cancel();
                return;
            }
        }
    }
    let _ = tokio::time::timeout(WRITE_STALL, async {
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    })
    .await;
}

/// Handles one line (without its newline, at most `MAX_LINE` bytes): a
/// request, a notification or a batch. Returns the reply line, if any.
/// Public for the fuzz target (`posbridge::fuzzing::rpc_line`), which
/// needs the handler without a socket.
pub async fn handle_line(app: &Arc<App>, session: &Arc<Session>, line: Bytes) -> Option<String> {
    let line = line.strip_suffix(b"\r").unwrap_or(&line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            let err = RpcError::new(code::PARSE_ERROR, format!("parse error: {e}"))
                .with_data(json!({ "line": e.line(), "column": e.column() }));
            return Some(rpc::failure(&Value::Null, &err));
        }
    };
    // The ids as sent, to echo them byte for byte (a Value turns 2^70
    // into a float).
    let raw_items: Vec<Option<&RawValue>> = match std::str::from_utf8(line) {
        Ok(text) if value.is_array() => serde_json::from_str::<Vec<&RawValue>>(text)
            .map(|items| items.into_iter().map(raw_id).collect())
            .unwrap_or_default(),
        Ok(text) => serde_json::from_str::<&RawValue>(text)
            .ok()
            .map(raw_id)
            .into_iter()
            .collect(),
        Err(_) => Vec::new(),
    };
    match value {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                let err = RpcError::new(
                    code::INVALID_REQUEST,
                    format!("a batch holds 1 to {MAX_BATCH} requests"),
                );
                return Some(rpc::failure(&Value::Null, &err));
            }
            let mut replies = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let raw = raw_items.get(i).copied().flatten();
                if let Some(r) = handle_one(app, session, item, raw).await {
                    replies.push(r);
                }
            }
            (!replies.is_empty()).then(|| format!("[{}]", replies.join(",")))
        }
        v => handle_one(app, session, v, raw_items.first().copied().flatten()).await,
    }
}

/// The `id` member of one request object, as written.
fn raw_id(item: &RawValue) -> Option<&RawValue> {
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    serde_json::from_str::<IdOnly>(item.get()).ok()?.id
}

async fn handle_one(
    app: &Arc<App>,
    session: &Arc<Session>,
    v: Value,
    raw: Option<&RawValue>,
) -> Option<String> {
    // The raw text only stands in for an id the request check accepted.
    let exact = |id: &Value| raw.filter(|_| id.is_number() || id.is_string());
    let req = match rpc::parse_request(v) {
        Ok(r) => r,
        Err((id, err)) => {
            return Some(match exact(&id) {
                Some(r) => rpc::failure(r, &err),
                None => rpc::failure(&id, &err),
            });
        }
    };
    let result = methods::dispatch(app, session, &req.method, req.params).await;
    if let Err(e) = &result {
        tracing::debug!(conn = session.id, method = %req.method, code = e.code, "call failed");
    }
    let id = req.id?;
    Some(match (result, exact(&id)) {
        (Ok(v), Some(r)) => rpc::success(r, v),
        (Ok(v), None) => rpc::success(&id, v),
        (Err(e), Some(r)) => rpc::failure(r, &e),
        (Err(e), None) => rpc::failure(&id, &e),
    })
}
