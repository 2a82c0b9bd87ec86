//! `[ledger.offline]`: what a till in central mode does while the central
//! ledger is out of reach (issue "Offline tills").

use rust_decimal::Decimal;
use serde::Deserialize;

/// `[ledger.offline]`. Read only with `backend = "central"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Accept sales and returns while the central ledger is unreachable
    /// (queued, replayed later). `false`: every call answers 2050 then.
    pub enabled: bool,
    /// Points may be spent offline only this long after the last answer of
    /// the central service, 0 to 86400 seconds (default one hour, the
    /// pharmacy programme's rule).
    pub max_offline_secs: u64,
    /// Points one card may spend offline in all, as a decimal string; "0"
    /// (the default) refuses every offline redemption (2051).
    #[serde(with = "rust_decimal::serde::str")]
    pub redeem_limit: Decimal,
    /// How far this till's wall clock may drift from the central service's
    /// time carried forward on the monotonic clock, 1 to 3600 seconds;
    /// beyond it the clock is taken to have jumped and nothing is spent
    /// offline.
    pub clock_tolerance_secs: u64,
    /// While the link is down and nothing is queued, the central service
    /// is asked whether it answers every this many seconds (5 to 3600).
    pub heartbeat_secs: u64,
    /// The longest wait between two replay attempts, 100 to 600000 ms
    /// (the wait doubles from 250 ms up to it).
    pub retry_max_ms: u64,
    /// The most operations queued; a sale beyond it answers 2050 instead
    /// of queueing (100 to 10000000).
    pub queue_limit: u64,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            enabled: true,
            max_offline_secs: 3600,
            redeem_limit: Decimal::ZERO,
            clock_tolerance_secs: 60,
            heartbeat_secs: 30,
            retry_max_ms: 30_000,
            queue_limit: 100_000,
        }
    }
}

impl OfflineConfig {
    /// The first invalid key and why.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_offline_secs > 86_400 {
            return Err(("max_offline_secs", "0 to 86400 seconds".into()));
        }
        if self.redeem_limit.is_sign_negative() || self.redeem_limit.scale() > 2 {
            return Err((
                "redeem_limit",
                "a decimal string of points, at least \"0\", at most 2 decimals".into(),
            ));
        }
        if !(1..=3600).contains(&self.clock_tolerance_secs) {
            return Err(("clock_tolerance_secs", "1 to 3600 seconds".into()));
        }
        if !(5..=3600).contains(&self.heartbeat_secs) {
            return Err(("heartbeat_secs", "5 to 3600 seconds".into()));
        }
        if !(100..=600_000).contains(&self.retry_max_ms) {
            return Err(("retry_max_ms", "100 to 600000 milliseconds".into()));
        }
        if !(100..=10_000_000).contains(&self.queue_limit) {
            return Err(("queue_limit", "100 to 10000000".into()));
        }
        Ok(())
    }
}
