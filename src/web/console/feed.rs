//! `/console/feed`: the live feed of reads as server-sent events.
//!
//! SSE rather than the WebSocket API: the feed only flows one way, a
//! browser's `EventSource` reconnects by itself, and it is authenticated
//! by the console's HttpOnly cookie, so the page's JavaScript never holds
//! an API token. Each connection lives at most as long as the HTTP
//! connection (`web::CONNECTION_MAX`); the browser then reconnects and the
//! cookie is checked again.
//!
//! Nothing secret leaves: card reads carry the masked number only (never
//! the number, the token or track data), scans only their symbology and
//! length (a scan may be a card), errors their reason (which by contract
//! holds no card data).

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::app::App;

/// The masked form of a bus event, or `None` for topics the feed skips.
pub fn masked(topic: &str, line: &str) -> Option<Value> {
    if !matches!(topic, "card.read" | "scan" | "card.read_error") {
        return None;
    }
    let v: Value = serde_json::from_str(line).ok()?;
    let p = &v["params"];
    let mut out = json!({"topic": topic, "time": p["time"], "reader": p["reader"]});
    match topic {
        "card.read" => out["card"] = p["card_masked"].clone(),
        "scan" => {
            out["symbology"] = p["symbology"].clone();
            out["length"] = json!(p["data"].as_str().map_or(0, str::len));
        }
        _ => out["reason"] = p["reason"].clone(),
    }
    Some(out)
}

/// The event stream for one console page.
pub fn stream(app: &Arc<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let rx = app.bus.subscribe();
    let s = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if let Some(m) = masked(&ev.topic, &ev.line) {
                        let e = Event::default().event("read").data(m.to_string());
                        return Some((Ok(e), rx));
                    }
                }
                // A slow page misses reads; it is a feed, not a record.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(s).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_reads_show_the_masked_number_only() {
        let line = json!({"jsonrpc": "2.0", "method": "event", "params": {
            "topic": "card.read", "time": "t", "reader": "msr",
            "card_number": "6390001234567890", "card_masked": "****7890",
            "card_token": "tok-secret"}})
        .to_string();
        let m = masked("card.read", &line).unwrap().to_string();
        assert!(m.contains("****7890"), "{m}");
        assert!(
            !m.contains("6390001234567890") && !m.contains("tok-secret"),
            "{m}"
        );
    }

    #[test]
    fn scans_show_no_data_and_other_topics_nothing() {
        let line = json!({"params": {"reader": "gun", "data": "6390001234567890",
            "symbology": "ean13"}})
        .to_string();
        let m = masked("scan", &line).unwrap().to_string();
        assert!(
            !m.contains("6390001234567890") && m.contains("\"length\":16"),
            "{m}"
        );
        assert!(masked("ledger.transaction", &line).is_none());
    }
}
