//! The card service: where reader output meets the rest of the daemon.
//!
//! A reader actor extracts a card number and secret and hands over a
//! [`CardRead`]. Here the secret is put away behind a short-lived
//! `card_token`, bound to this card and this terminal, and `card.read` goes
//! out. POS software passes the token to later ledger calls as proof that
//! the card was physically present; the secret itself never leaves the
//! daemon.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

pub use crate::devices::{CardRead, ReadSource};
use crate::events::EventBus;
use crate::ledger::AccountSummary;
use crate::random::{self, RandomError, Source};
use crate::redact::{CardNumber, Secret};

/// How long a card token stays valid by default.
pub const TOKEN_TTL: Duration = Duration::from_secs(300);
/// Tokens kept at most; the oldest go first. A till reads a few cards a
/// minute, so this is hours of swipes.
const MAX_TOKENS: usize = 4096;

/// What a card token stands for.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// The card.
    pub number: CardNumber,
    /// Its secret, for the ledger's check.
    pub secret: Option<Secret>,
    /// How it was read.
    pub source: ReadSource,
    /// Expiry.
    pub expires: Instant,
}

/// Mints and keeps card tokens, and announces reads.
pub struct Cards {
    bus: EventBus,
    terminal_id: String,
    ttl: Duration,
    tokens: Mutex<HashMap<String, TokenEntry>>,
    random: Source,
}

impl Cards {
    /// A service publishing on `bus`; tokens are bound to `terminal_id`.
    pub fn new(bus: EventBus, terminal_id: String) -> Self {
        Cards {
            bus,
            terminal_id,
            ttl: TOKEN_TTL,
            tokens: Mutex::new(HashMap::new()),
            random: random::system,
        }
    }

    /// The same service drawing its tokens from `source` (tests inject a
    /// failing one).
    pub fn with_random(mut self, source: Source) -> Self {
        self.random = source;
        self
    }

    /// Takes a read: mints its token and publishes `card.read`. Returns the
    /// event payload (also the reply to `card.enter`). Without randomness
    /// no token is minted and nothing is published.
    pub fn accept(
        &self,
        read: CardRead,
        account: Option<AccountSummary>,
    ) -> Result<serde_json::Value, RandomError> {
        let token = format!("ct_{}", random::hex::<16>(self.random)?);
        let now = Instant::now();
        {
            let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens.retain(|_, t| t.expires > now);
            if tokens.len() >= MAX_TOKENS
                && let Some(oldest) = tokens
                    .iter()
                    .min_by_key(|(_, t)| t.expires)
                    .map(|(k, _)| k.clone())
            {
                tokens.remove(&oldest);
            }
            tokens.insert(
                token.clone(),
                TokenEntry {
                    number: read.number.clone(),
                    secret: read.secret.clone(),
                    source: read.source,
                    expires: now + self.ttl,
                },
            );
        }
        tracing::info!(
            reader = %read.reader,
            card = %read.number,
            source = ?read.source,
            has_secret = read.secret.is_some(),
            "card read"
        );
        let payload = json!({
            "reader": read.reader,
            "source": read.source,
            "card_number": read.number.expose(),
            "card_masked": read.number.masked(),
            "has_secret": read.secret.is_some(),
            "symbology": read.symbology,
            "card_token": token,
            "token_expires_in_s": self.ttl.as_secs(),
            "terminal_id": self.terminal_id,
            "account": account,
        });
        self.bus.publish("card.read", payload.clone());
        Ok(payload)
    }

    /// A read that produced no card: publishes `card.read_error`. `reason`
    /// must not contain card data.
    pub fn read_error(&self, reader: &str, reason: &str) {
        tracing::warn!(reader, reason, "card read error");
        self.bus.publish(
            "card.read_error",
            json!({ "reader": reader, "reason": reason }),
        );
    }

    /// The entry behind a token, if it is valid. Tokens are single-terminal
    /// by construction: they exist only in this daemon's memory.
    pub fn resolve(&self, token: &str) -> Option<TokenEntry> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(token)
            .filter(|t| t.expires > Instant::now())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_mints_a_token_and_publishes_without_the_secret() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let cards = Cards::new(bus, "t1".into());
        let payload = cards
            .accept(
                CardRead {
                    reader: "msr".into(),
                    source: ReadSource::Msr,
                    number: CardNumber::new("6035123412341234"),
                    secret: Some(Secret::new("4711")),
                    symbology: None,
                },
                None,
            )
            .unwrap();
        let token = payload["card_token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("ct_") && token.len() == 35);
        let ev = rx.recv().await.unwrap();
        assert_eq!(ev.topic, "card.read");
        assert!(!ev.line.contains("4711"), "the secret never leaves");
        assert!(ev.line.contains("\"has_secret\":true"));
        let entry = cards.resolve(&token).unwrap();
        assert_eq!(entry.secret.unwrap().expose(), "4711");
        assert!(cards.resolve("ct_nope").is_none());
    }

    fn read() -> CardRead {
        CardRead {
            reader: "msr".into(),
            source: ReadSource::Msr,
            number: CardNumber::new("6035123412341234"),
            secret: Some(Secret::new("4711")),
            symbology: None,
        }
    }

    #[test]
    fn tokens_are_random() {
        let cards = Cards::new(EventBus::new(), "t1".into());
        let a = cards.accept(read(), None).unwrap();
        let b = cards.accept(read(), None).unwrap();
        assert_ne!(a["card_token"], b["card_token"]);
    }

    #[tokio::test]
    async fn without_randomness_no_token_is_minted() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let cards = Cards::new(bus, "t1".into()).with_random(random::failing);
        assert!(cards.accept(read(), None).is_err());
        assert!(cards.tokens.lock().unwrap().is_empty(), "nothing kept");
        assert!(rx.try_recv().is_err(), "nothing published");
    }
}
