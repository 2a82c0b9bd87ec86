//! `[ledger.messages]`: messages to customers who consented to them
//! (issue 21 item 13): the balance after a sale, points burning soon.

use serde::Deserialize;

/// `[ledger.messages]`. Texts are in `[receipt] language`, the language
/// the customer already reads on paper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// After a sale that executed (not a replay), send "balance X, accrued
    /// Y" to a consenting account's phone or e-mail. Off by default.
    pub balance_after_sale: bool,
    /// Warn a consenting account of points expiring within this many days
    /// (daily job), 0 (off) to 365.
    pub burning_within_days: u32,
}

impl MessagesConfig {
    /// The first invalid key and why.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.burning_within_days > 365 {
            return Err(("burning_within_days", "0 (off) to 365 days".into()));
        }
        Ok(())
    }
}
