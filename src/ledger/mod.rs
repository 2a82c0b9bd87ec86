//! The loyalty ledger: programme rules and the money path.
//!
//! [`rules`] is pure arithmetic on `rust_decimal` (quotes, caps, accrual,
//! refund shares, expiry dates); [`embedded`] keeps accounts, lots and
//! entries in the daemon's SQLite file.

pub mod accounts;
pub mod embedded;
#[cfg(test)]
mod proptests;
pub mod rules;

pub use embedded::{AccountRef, AccountSummary, CommitResult, Embedded, HistoryPage, LedgerError};
