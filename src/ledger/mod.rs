//! The loyalty ledger: programme rules and the money path.
//!
//! [`rules`] is pure arithmetic on `rust_decimal` (quotes, caps, accrual,
//! refund shares, expiry dates); [`embedded`] keeps accounts, lots and
//! entries in the daemon's SQLite file. The API talks to a [`Ledger`], so a
//! central ledger for store chains can take the embedded one's place.

pub mod accounts;
pub mod db;
pub mod embedded;
pub mod origin;
#[cfg(test)]
mod proptests;
pub mod rules;
pub mod tiers;

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;
use time::OffsetDateTime;

pub use embedded::{
    AccountRef, AccountSummary, AdjustResult, CommitResult, Embedded, HistoryPage, LedgerError,
    OverridesResult, RefundResult, SaleRef,
};
use rules::{AccountOverrides, Programme, Quote, SaleLine};

/// A ledger call in flight.
pub type LedgerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LedgerError>> + Send + 'a>>;

/// The money path, whatever keeps the books. Every state-changing call
/// carries an idempotency key: a repeat returns the first result and
/// changes nothing.
pub trait Ledger: Send + Sync {
    /// The programme's rules.
    fn programme(&self) -> &Programme;
    /// The account behind a card, if any.
    fn resolve(&self, number: String) -> LedgerFuture<'_, Option<AccountSummary>>;
    /// Rates, caps and the expected accrual for a sale.
    fn quote(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)>;
    /// A paid sale: redeem, then accrue.
    fn commit(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, CommitResult>;
    /// The stored result of the sale committed under `key`, for a retry
    /// whose card token has expired: the card number it was for, and the
    /// result. `None` if the key is unused; [`LedgerError::KeyReused`] if it
    /// was used for another request.
    fn replay_commit(
        &self,
        key: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, Option<(String, CommitResult)>>;
    /// Replaces an account's own percentages.
    fn set_overrides(
        &self,
        key: Option<String>,
        account: i64,
        overrides: AccountOverrides,
    ) -> LedgerFuture<'_, OverridesResult>;
    /// A whole or partial return.
    fn refund(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
    ) -> LedgerFuture<'_, RefundResult>;
    /// A manual accrual or deduction.
    fn adjust(
        &self,
        key: String,
        number: String,
        amount: Decimal,
        reason: String,
        operator: String,
        expires_at: Option<OffsetDateTime>,
    ) -> LedgerFuture<'_, AdjustResult>;
    /// An account's transactions, newest first.
    fn history(
        &self,
        who: AccountRef,
        cursor: Option<i64>,
        limit: u32,
    ) -> LedgerFuture<'_, HistoryPage>;
}

impl Ledger for Embedded {
    fn programme(&self) -> &Programme {
        Embedded::programme(self)
    }
    fn resolve(&self, number: String) -> LedgerFuture<'_, Option<AccountSummary>> {
        Box::pin(Embedded::resolve(self, number))
    }
    fn quote(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)> {
        Box::pin(Embedded::quote(self, number, lines, redeem))
    }
    fn commit(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, CommitResult> {
        Box::pin(Embedded::commit(
            self, key, number, receipt_id, lines, redeem,
        ))
    }
    fn replay_commit(
        &self,
        key: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, Option<(String, CommitResult)>> {
        Box::pin(Embedded::replay_commit(
            self, key, receipt_id, lines, redeem,
        ))
    }
    fn set_overrides(
        &self,
        key: Option<String>,
        account: i64,
        overrides: AccountOverrides,
    ) -> LedgerFuture<'_, OverridesResult> {
        Box::pin(Embedded::set_overrides(self, key, account, overrides))
    }
    fn refund(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
    ) -> LedgerFuture<'_, RefundResult> {
        Box::pin(Embedded::refund(self, key, sale, amount))
    }
    fn adjust(
        &self,
        key: String,
        number: String,
        amount: Decimal,
        reason: String,
        operator: String,
        expires_at: Option<OffsetDateTime>,
    ) -> LedgerFuture<'_, AdjustResult> {
        Box::pin(Embedded::adjust(
            self, key, number, amount, reason, operator, expires_at,
        ))
    }
    fn history(
        &self,
        who: AccountRef,
        cursor: Option<i64>,
        limit: u32,
    ) -> LedgerFuture<'_, HistoryPage> {
        Box::pin(Embedded::history(self, who, cursor, limit))
    }
}
