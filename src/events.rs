//! The event bus: what devices and the ledger notice, fanned out to every
//! subscribed connection.
//!
//! `seq` and `time` are stamped here, once, and the notification line is
//! serialized once: 256 subscribers cost one `serde_json` call, not 256.
//! A `broadcast` channel means a slow subscriber never blocks a publisher;
//! it lags, and its connection reports `events.lagged`.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// Events kept for a subscriber that has not caught up yet; beyond this it lags.
pub const BUS_CAPACITY: usize = 1024;

/// One published event, ready to write.
#[derive(Debug)]
pub struct Event {
    /// Topic such as `device.status`.
    pub topic: String,
    /// Position in the daemon-wide sequence, starting at 1.
    pub seq: u64,
    /// The JSON-RPC notification, one line without the newline.
    pub line: Arc<str>,
}

/// Publishes events; cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    // The mutex makes "take the next seq" and "send" one step, so events
    // reach subscribers in seq order.
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    seq: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        EventBus {
            inner: Arc::new(Mutex::new(Inner { seq: 0, tx })),
        }
    }

    /// Publishes `fields` (a JSON object) under `topic`; returns its seq.
    pub fn publish(&self, topic: &str, fields: Value) -> u64 {
        let mut params = Map::new();
        params.insert("topic".into(), Value::String(topic.to_owned()));
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.seq += 1;
        let seq = inner.seq;
        params.insert("seq".into(), json!(seq));
        params.insert("time".into(), Value::String(now_rfc3339()));
        if let Value::Object(map) = fields {
            for (k, v) in map {
                // The envelope keys win: a payload cannot forge them.
                params.entry(k).or_insert(v);
            }
        }
        let note = json!({"jsonrpc": "2.0", "method": "event", "params": params});
        let event = Arc::new(Event {
            topic: topic.to_owned(),
            seq,
            line: note.to_string().into(),
        });
        // No subscribers is not an error.
        let _ = inner.tx.send(event);
        seq
    }

    /// A new receiver that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tx
            .subscribe()
    }
}

/// Current UTC time in RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

/// A set of topic patterns: exact (`card.read`), a family (`device.*`), or `*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics(Vec<String>);

impl Topics {
    /// Checks a pattern's shape.
    pub fn valid_pattern(p: &str) -> bool {
        let body = p.strip_suffix(".*").unwrap_or(p);
        p == "*"
            || (!body.is_empty()
                && body.len() <= 64
                && body.split('.').all(|s| {
                    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }))
    }

    /// Adds patterns (duplicates ignored).
    pub fn add(&mut self, patterns: impl IntoIterator<Item = String>) {
        for p in patterns {
            if !self.0.contains(&p) {
                self.0.push(p);
            }
        }
    }

    /// Removes patterns.
    pub fn remove(&mut self, patterns: &[String]) {
        self.0.retain(|p| !patterns.contains(p));
    }

    /// Removes all patterns.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The patterns, in the order added.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// Whether `topic` matches any pattern.
    pub fn matches(&self, topic: &str) -> bool {
        self.0.iter().any(|p| {
            p == "*"
                || p == topic
                || p.strip_suffix(".*").is_some_and(|prefix| {
                    topic
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns() {
        let mut t = Topics::default();
        t.add(["device.*".to_string(), "card.read".to_string()]);
        assert!(t.matches("device.status"));
        assert!(t.matches("card.read"));
        assert!(!t.matches("card.read_error"));
        assert!(!t.matches("devices.x"));
        assert!(!t.matches("device"));
        t.remove(&["device.*".to_string()]);
        assert!(!t.matches("device.status"));
        t.add(["*".to_string()]);
        assert!(t.matches("anything.at_all"));
        assert!(Topics::valid_pattern("job.status"));
        assert!(Topics::valid_pattern("job.*"));
        assert!(!Topics::valid_pattern("job."));
        assert!(!Topics::valid_pattern(".*"));
        assert!(!Topics::valid_pattern("Job.Status"));
        assert!(!Topics::valid_pattern("job..status"));
    }

    #[tokio::test]
    async fn events_are_stamped_in_order_and_envelope_wins() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        bus.publish("a.b", json!({"x": 1, "seq": 99, "topic": "forged"}));
        bus.publish("a.c", json!({}));
        let e1 = rx.recv().await.unwrap();
        let e2 = rx.recv().await.unwrap();
        assert_eq!((e1.seq, e2.seq), (1, 2));
        let v: Value = serde_json::from_str(&e1.line).unwrap();
        assert_eq!(v["method"], "event");
        assert_eq!(v["params"]["topic"], "a.b");
        assert_eq!(v["params"]["seq"], 1);
        assert_eq!(v["params"]["x"], 1);
        assert!(v["params"]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_instead_of_blocking() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        for _ in 0..BUS_CAPACITY + 10 {
            bus.publish("x.y", json!({}));
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected lag, got {other:?}"),
        }
    }
}
