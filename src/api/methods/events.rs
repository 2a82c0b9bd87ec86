//! `events.subscribe` / `events.unsubscribe`, and the per-connection
//! forwarder that copies matching bus events into the client's queue.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::rpc::{self, RpcError};
use crate::api::session::{Outbound, Session};
use crate::app::App;
use crate::events::{Topics, now_rfc3339};

/// Topic patterns one connection may hold, so a client cannot make every
/// event's matching cost grow without bound.
const MAX_PATTERNS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeParams {
    topics: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeParams {
    /// Absent: all.
    topics: Option<Vec<String>>,
}

fn check(topics: &[String]) -> Result<(), RpcError> {
    if topics.len() > MAX_PATTERNS {
        return Err(RpcError::invalid_params(
            "topics",
            format!("at most {MAX_PATTERNS} patterns"),
        ));
    }
    for (i, t) in topics.iter().enumerate() {
        if !Topics::valid_pattern(t) {
            return Err(RpcError::invalid_params(
                &format!("topics[{i}]"),
                format!(
                    "\"{t}\" is not a topic (such as \"card.read\"), a family (\"device.*\") or \"*\""
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn subscribe(
    app: &Arc<App>,
    session: &Arc<Session>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: SubscribeParams = rpc::params(params)?;
    check(&p.topics)?;
    let now = {
        let mut t = session.topics.lock().unwrap_or_else(|e| e.into_inner());
        let mut merged = t.clone();
        merged.add(p.topics);
        if merged.patterns().len() > MAX_PATTERNS {
            return Err(RpcError::invalid_params(
                "topics",
                format!("a connection holds at most {MAX_PATTERNS} patterns"),
            ));
        }
        *t = merged;
        t.patterns().to_vec()
    };
    let mut forwarding = session.forwarding.lock().unwrap_or_else(|e| e.into_inner());
    if !*forwarding {
        *forwarding = true;
        // The receiver exists before the reply is sent: every event
        // published after the client sees the reply reaches it.
        let rx = app.bus.subscribe();
        tokio::spawn(forward(rx, session.clone()));
    }
    Ok(json!({ "topics": now }))
}

pub(super) fn unsubscribe(
    session: &Arc<Session>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: UnsubscribeParams = rpc::params(params)?;
    let mut t = session.topics.lock().unwrap_or_else(|e| e.into_inner());
    match p.topics {
        Some(list) => t.remove(&list),
        None => t.clear(),
    }
    Ok(json!({ "topics": t.patterns() }))
}

async fn forward(
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::events::Event>>,
    session: Arc<Session>,
) {
    loop {
        let next = tokio::select! {
            _ = session.closed.cancelled() => return,
            r = rx.recv() => r,
        };
        let line = match next {
            Ok(ev) => {
                let wanted = session
                    .topics
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .matches(&ev.topic);
                if !wanted {
                    continue;
                }
                Outbound::Shared(ev.line.clone())
            }
            Err(RecvError::Lagged(dropped)) => {
                tracing::warn!(
                    conn = session.id,
                    dropped,
                    "subscriber lagging; events dropped"
                );
                Outbound::Owned(
                    json!({
                        "jsonrpc": "2.0",
                        "method": "events.lagged",
                        "params": {"dropped": dropped, "time": now_rfc3339()},
                    })
                    .to_string(),
                )
            }
            Err(RecvError::Closed) => return,
        };
        // Waiting here is fine: only this client's forwarder waits, and
        // while it does, the bus keeps the backlog and counts the lag.
        tokio::select! {
            _ = session.closed.cancelled() => return,
            r = session.out.send(line) => if r.is_err() { return },
        }
    }
}
