//! The loyalty ledger: programme rules and the money path.
//!
//! [`rules`] is pure arithmetic on `rust_decimal` (quotes, caps, accrual,
//! refund shares, expiry dates); [`embedded`] keeps accounts, lots and
//! entries in the daemon's SQLite file. The API talks to a [`Ledger`]:
//! [`local::Local`] (the books on this till's store) or
//! [`remote::Central`] (the chain's central service, over [`wire`]).

pub mod accounts;
pub mod cashier;
pub mod certs;
pub mod db;
pub mod embedded;
pub mod local;
pub mod offline;
pub mod origin;
pub mod people;
pub mod programmes;
#[cfg(test)]
mod proptests;
pub mod remote;
pub mod report;
pub mod rules;
pub mod tiers;
pub mod types;
pub mod wire;

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use accounts::{
    AccountError, AccountView, Activated, CardRow, CodeWordCheck, GroupView, Issued, Lookup,
    LotView, PendingCode, Registered, Registration, SaleFound, SearchPage, Settings, Update,
};
use certs::{CertError, CertIssued, CertMoved, CertRef, CertView, Validity};
pub use embedded::{
    AccountRef, AccountSummary, AdjustResult, CommitResult, Embedded, HistoryPage, LedgerError,
    OverridesResult, RefundResult, SaleRef,
};
use people::{BirthdayRun, ConsentChange, ConsentView, Erased};
use report::{Report, ReportQuery};
use rules::lines::ReturnLine;
use rules::{AccountOverrides, OrderTerms, Programme, Quote, SaleLine};
use tiers::{TierChange, TierError, TierView};

use crate::redact::Secret;

/// Why a central ledger call failed, as the till sees it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteError {
    /// No answer: connect failure, timeout, 5xx. Nothing is known about
    /// the outcome; a retry with the same idempotency key is safe.
    #[error("the central ledger is unreachable: {0}")]
    Unreachable(String),
    /// The central ledger refused, with the till's own JSON-RPC code.
    #[error("{message}")]
    Remote {
        /// The JSON-RPC error code.
        code: i64,
        /// For humans.
        message: String,
        /// For programs (`null` when none).
        data: serde_json::Value,
    },
}

/// Why a sale that spends with a proof (a one-time code) was refused: the
/// proof's verdict or the money path's.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    /// The code was missing, wrong, expired or used up (or the books
    /// failed while checking it).
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The sale itself was refused (rules, inactive card, key reused).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<db::DbError> for SpendError {
    fn from(e: db::DbError) -> Self {
        SpendError::Ledger(LedgerError::Db(e))
    }
}

impl From<RemoteError> for SpendError {
    fn from(e: RemoteError) -> Self {
        SpendError::Ledger(LedgerError::Remote(e))
    }
}

/// A ledger call in flight; its error is [`LedgerError`] for the money
/// path, [`AccountError`] or [`TierError`] for accounts and tiers.
pub type LedgerFuture<'a, T, E = LedgerError> =
    Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

/// The money path, accounts and tiers, whatever keeps the books. Every
/// state-changing call of the money path carries an idempotency key: a
/// repeat returns the first result and changes nothing. The methods after
/// `history` are [`accounts::Accounts`]' and [`tiers::Tiers`]', with the
/// same meaning (the programme is the ledger's own).
pub trait Ledger: Send + Sync {
    /// The till's own programme's rules (the first it serves).
    fn programme(&self) -> &Programme;
    /// Every programme this ledger knows and the ones the till serves;
    /// by default the one programme.
    fn programmes(&self) -> std::sync::Arc<programmes::Programmes> {
        std::sync::Arc::new(programmes::Programmes::single(self.programme().clone()))
    }
    /// The registration and redemption settings the API reads.
    fn account_settings(&self) -> &Settings;
    /// The account behind a card, if any.
    fn resolve(&self, number: String) -> LedgerFuture<'_, Option<AccountSummary>>;
    /// Rates, caps and the expected accrual for a sale.
    fn quote(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)>;
    /// A paid sale: redeem, then accrue. `cashier` (checked by
    /// [`cashier::check`]) is recorded on the sale; a repeat of the key
    /// keeps the first one.
    fn commit(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
    ) -> LedgerFuture<'_, CommitResult>;
    /// The stored result of the sale committed under `key`, for a retry
    /// whose card token has expired: the card number it was for, and the
    /// result. `None` if the key is unused; [`LedgerError::KeyReused`] if it
    /// was used for another request. The order's own terms are not part of
    /// the comparison: the caller compares them with the result's `terms`.
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
    /// [`Ledger::commit`] booked at the sale's own time `at`: a till's
    /// offline sale, replayed. Refused with [`LedgerError::SaleTime`] when
    /// `at` is out of bounds ([`embedded::late_booking`]).
    #[allow(clippy::too_many_arguments)]
    fn commit_at(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        at: OffsetDateTime,
        cashier: Option<String>,
    ) -> LedgerFuture<'_, CommitResult>;
    /// [`Ledger::refund`] booked at the return's own time `at`.
    #[allow(clippy::too_many_arguments)]
    fn refund_at(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
        at: OffsetDateTime,
        cashier: Option<String>,
        lines: Option<Vec<ReturnLine>>,
    ) -> LedgerFuture<'_, RefundResult>;
    /// A whole or partial return, recording `cashier` as
    /// [`Ledger::commit`] does: by `amount` (a money share of the sale) or
    /// by `lines` (the lines returned, each giving back its own points).
    fn refund(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
        cashier: Option<String>,
        lines: Option<Vec<ReturnLine>>,
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
    /// A past receipt's accrual that the guest did not get (the till lost
    /// its link): the programme's accrual for `lines`, expiring as if
    /// accrued at `sold_at`, booked once per receipt and account as an
    /// adjustment with `reason` and `operator`.
    #[allow(clippy::too_many_arguments)]
    fn accrue_missed(
        &self,
        key: String,
        number: String,
        receipt: String,
        lines: Vec<SaleLine>,
        sold_at: OffsetDateTime,
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

    /// Registers a customer with a card.
    fn register(&self, r: Registration) -> LedgerFuture<'_, Registered, AccountError>;
    /// Records that the pending confirmation code was delivered.
    fn code_delivered(&self, account: i64) -> LedgerFuture<'_, (), AccountError>;
    /// A new confirmation code for a pending account.
    fn new_code(&self, account: i64) -> LedgerFuture<'_, PendingCode, AccountError>;
    /// Activates a pending account with its code.
    fn activate(&self, account: i64, code: Secret) -> LedgerFuture<'_, Activated, AccountError>;
    /// Changes an account's details.
    fn update_account(
        &self,
        account: i64,
        u: Update,
    ) -> LedgerFuture<'_, AccountView, AccountError>;
    /// Whether `word` is the account's code word.
    fn verify_code_word(
        &self,
        account: i64,
        word: Secret,
    ) -> LedgerFuture<'_, CodeWordCheck, AccountError>;
    /// Adds a card to an account.
    fn issue_card(
        &self,
        account: i64,
        card_number: Option<String>,
        secret: Option<Secret>,
    ) -> LedgerFuture<'_, Issued, AccountError>;
    /// An account with its cards.
    fn get_account(&self, by: Lookup) -> LedgerFuture<'_, AccountView, AccountError>;
    /// Customers whose name, phone or e-mail contains `query`, or whose
    /// card ends with it (4+ digits); ids above `cursor`, at most `limit`
    /// (the back office's search).
    fn search_accounts(
        &self,
        query: String,
        cursor: Option<i64>,
        limit: u32,
    ) -> LedgerFuture<'_, SearchPage, AccountError>;
    /// An account's lots that still hold points, soonest to burn first.
    fn lots(&self, account: i64) -> LedgerFuture<'_, Vec<LotView>, AccountError>;
    /// The latest sale with this receipt id, if any (the back office ties a
    /// manual adjustment to a past receipt by it).
    fn find_sale(&self, receipt_id: String) -> LedgerFuture<'_, Option<SaleFound>, AccountError>;
    /// An account's cards with full numbers, in issue order: for a server
    /// that acts on one (the back office blocks by it), never for display.
    fn account_cards(&self, account: i64) -> LedgerFuture<'_, Vec<CardRow>, AccountError>;
    /// Blocks or unblocks a card: `blocked`, `lost` or `active`.
    fn set_card_status(&self, number: String, status: String)
    -> LedgerFuture<'_, (), AccountError>;
    /// A new secret for a card, returned once.
    fn regenerate_secret(&self, number: String) -> LedgerFuture<'_, String, AccountError>;
    /// Checks a card's secret, counting wrong guesses.
    fn verify_secret(
        &self,
        number: String,
        presented: Secret,
    ) -> LedgerFuture<'_, (), AccountError>;
    /// A one-time redemption code for an account.
    fn new_redeem_code(&self, account: i64) -> LedgerFuture<'_, PendingCode, AccountError>;
    /// Records that the redemption code was delivered.
    fn redeem_code_delivered(&self, account: i64) -> LedgerFuture<'_, (), AccountError>;
    /// Uses up an account's outstanding redemption code.
    fn use_redeem_code(&self, account: i64, code: Secret) -> LedgerFuture<'_, (), AccountError>;
    /// A paid sale for `account` that spends points with its one-time
    /// `code`: checked, consumed and committed in one transaction (one
    /// call to a central ledger). A repeat of `key` returns the stored sale.
    /// Returns the card the sale was booked on, and the result. `terms`:
    /// the order's own, as for [`Ledger::commit_terms`].
    #[allow(clippy::too_many_arguments)]
    fn commit_with_code(
        &self,
        key: String,
        account: i64,
        code: Secret,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
        terms: OrderTerms,
    ) -> LedgerFuture<'_, (String, CommitResult), SpendError>;
    /// The card a sale for `account` is booked on.
    fn booking_card(&self, account: i64) -> LedgerFuture<'_, String, AccountError>;
    /// Creates a group.
    fn create_group(
        &self,
        name: String,
        description: Option<String>,
    ) -> LedgerFuture<'_, GroupView, AccountError>;
    /// Every group with its member count.
    fn list_groups(&self) -> LedgerFuture<'_, Vec<GroupView>, AccountError>;
    /// One page of the groups by name, after the name `after` (at most
    /// `limit`, 1 to [`accounts::GROUPS_PAGE_MAX`]).
    fn groups_page(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> LedgerFuture<'_, accounts::GroupPage, AccountError>;
    /// Deletes a group; returns how many accounts left it.
    fn delete_group(&self, name: String, force: bool) -> LedgerFuture<'_, i64, AccountError>;
    /// Replaces an account's groups; returns them.
    fn set_groups(
        &self,
        account: i64,
        groups: Vec<String>,
    ) -> LedgerFuture<'_, Vec<String>, AccountError>;
    /// Re-evaluates one account's level, or every account's, as of `now`
    /// (an admin's run): the number evaluated and the changes.
    fn evaluate_tiers(
        &self,
        account: Option<i64>,
        now: OffsetDateTime,
    ) -> LedgerFuture<'_, (usize, Vec<TierChange>), TierError>;
    /// An account's level and progress at `now`, and its changes.
    fn tier_history(
        &self,
        account: i64,
        limit: u32,
        now: OffsetDateTime,
    ) -> LedgerFuture<'_, (TierView, Vec<TierChange>), TierError>;
    /// The back office's report for `q`, its "now" figures (liability,
    /// points burning soon) at `now`.
    fn report(&self, q: ReportQuery, now: OffsetDateTime) -> LedgerFuture<'_, Report>;
    /// [`Ledger::quote`] with the order's own accrual percentage and cap,
    /// set by the cashier (the API checks them against the admin's limits).
    fn quote_terms(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        terms: OrderTerms,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)>;
    /// [`Ledger::commit`] with the order's own terms, recorded with the
    /// sale ([`CommitResult::terms`]); a repeat of the key with other terms
    /// is [`LedgerError::KeyReused`].
    #[allow(clippy::too_many_arguments)]
    fn commit_terms(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
        terms: OrderTerms,
    ) -> LedgerFuture<'_, CommitResult>;
    /// [`Ledger::quote`] with the promo code the cashier typed: refused
    /// ([`LedgerError::Promo`]) as the commit would refuse it now.
    fn quote_promo(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        promo_code: String,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)>;
    /// [`Ledger::commit`] with a promo code: checked against its limits and
    /// its use counted in the sale's transaction, once for the key. Needs
    /// the books (a till whose central ledger is out of reach refuses it).
    #[allow(clippy::too_many_arguments)]
    fn commit_promo(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
        promo_code: String,
    ) -> LedgerFuture<'_, CommitResult>;
    /// How many sales used each promo code, by code (upper case); codes
    /// never used are left out.
    fn promo_uses(&self) -> LedgerFuture<'_, Vec<(String, i64)>>;

    /// Sells a gift certificate ([`certs`]); `code` imports a pre-printed
    /// one. The code is in the first answer only.
    fn cert_issue(
        &self,
        key: String,
        nominal: Decimal,
        validity: Validity,
        code: Option<Secret>,
        receipt_id: Option<String>,
    ) -> LedgerFuture<'_, CertIssued, CertError>;
    /// A gift certificate's balance and state.
    fn cert_get(&self, by: CertRef) -> LedgerFuture<'_, CertView, CertError>;
    /// Pays `amount` with a gift certificate.
    fn cert_redeem(
        &self,
        key: String,
        by: CertRef,
        amount: Decimal,
        receipt_id: Option<String>,
    ) -> LedgerFuture<'_, CertMoved, CertError>;
    /// Returns a redemption's money (all that is left of it, or `amount`)
    /// to its certificate.
    fn cert_refund(
        &self,
        key: String,
        redemption: i64,
        amount: Option<Decimal>,
        receipt_id: Option<String>,
    ) -> LedgerFuture<'_, CertMoved, CertError>;
    /// Blocks or unblocks a gift certificate.
    fn cert_block(
        &self,
        key: String,
        by: CertRef,
        blocked: bool,
    ) -> LedgerFuture<'_, CertView, CertError>;

    /// Credits the birthday bonuses due at `now` ([`people::People`]): the
    /// daily job's, or an admin's run. Once per account and year.
    fn birthday_run(&self, now: OffsetDateTime) -> LedgerFuture<'_, BirthdayRun>;
    /// Accounts that consented to messages with points expiring in
    /// `[from, until)` (the burning-soon reminder).
    fn burning(
        &self,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> LedgerFuture<'_, Vec<people::Burning>>;
    /// Records a consent given or withdrawn (152-FZ).
    fn set_consent(
        &self,
        account: i64,
        change: ConsentChange,
    ) -> LedgerFuture<'_, ConsentView, AccountError>;
    /// An account's consents in force and their log.
    fn consents(&self, account: i64) -> LedgerFuture<'_, ConsentView, AccountError>;
    /// Erases an account's personal data on request, keeping its books.
    fn erase_account(
        &self,
        account: i64,
        operator: String,
    ) -> LedgerFuture<'_, Erased, AccountError>;
}
