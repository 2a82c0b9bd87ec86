//! The ledger's book-keeping: accounts, lots and entries, over any store
//! that implements [`Db`] (the daemon's SQLite file for one till,
//! PostgreSQL in the central service for a chain).
//!
//! Every state change runs in one write transaction opened by the books'
//! runner ([`Books::write`]), keyed by the client's idempotency key: a
//! repeat of a key returns the stored result and writes nothing. The
//! functions here never open or commit transactions themselves; a refusal
//! (`Ok(Err(_))`) rolls back whatever the function wrote before it. Amounts
//! are stored as integers in units of 0.0001 point (see the schema in
//! `store`).

use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::db::{Books, Db, DbError, args};
use super::origin::Origin;
use super::programmes::Programmes;
use super::rules::lines::ReturnLine;
use super::rules::{self, AccountOverrides, OrderTerms, Programme, Quote, SaleLine};
pub use super::types::{
    AccountRef, AccountSummary, AdjustResult, CommitResult, ExportRow, HISTORY_MAX_LIMIT,
    HistoryEntry, HistoryPage, HistoryTxn, LedgerError, NextExpiry, OverridesResult, RefundResult,
    SaleRef,
};
use crate::store::Store;

mod adjust;
mod audit;
mod book;
mod history;
pub(crate) mod lines;
pub(crate) mod missed;
pub(crate) mod promo;
mod refund;
mod request;
mod sale;
mod sweep;
#[cfg(test)]
pub(crate) use adjust::adjust_tx;
use adjust::adjust_tx_in;
pub use audit::{export, verify};
use book::{
    Take, balance_units, card_account, card_account_locked, claim_txn, enrol, expire_due, finish,
    overrides_of, priced_overrides, refresh_next_expiry, replay, spendable_units, summary,
    take_from_lots,
};
pub(crate) use book::{accrue, entry, new_lot, new_txn, store_result, touch_account};
use history::history_tx;
pub(crate) use refund::refund_request;
#[cfg(test)]
pub(crate) use refund::refund_tx;
use refund::refund_tx_in;
pub(crate) use request::commit_request;
use sale::commit_full_tx;
#[cfg(test)]
pub(crate) use sale::commit_tx;
pub(crate) use sale::{commit_request_full, commit_terms_tx, replay_commit_tx};
pub use sweep::{DUE_ACCOUNTS_SQL, SWEEP_BATCH};

/// Units per point in the database.
const SCALE: i64 = 10_000;

/// The embedded ledger: the programmes' rules over a set of books, acting
/// for one origin (the till, or the till a central request came from).
/// Each account is priced by its own programme's rules.
#[derive(Clone)]
pub struct Embedded {
    books: Books,
    programmes: Arc<Programmes>,
    origin: Origin,
}

pub(crate) fn units(d: Decimal) -> i64 {
    // Amounts are validated by the rules (≤ 10^12, ≤ 4 places), so this
    // neither overflows nor drops digits.
    (d * Decimal::from(SCALE))
        .trunc()
        .try_into()
        .unwrap_or(i64::MAX)
}

pub(crate) fn points(u: i64) -> Decimal {
    Decimal::new(u, 4).normalize()
}

pub(crate) fn ts(t: OffsetDateTime) -> String {
    // UTC with a fixed width so text comparison in SQL is time order.
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A database failure (outer: the runner rolls back) or a refusal (inner:
/// the runner rolls back what the function wrote before refusing).
pub(crate) type TxResult<T> = Result<Result<T, LedgerError>, DbError>;

impl Embedded {
    /// A ledger on the till's own `store` with `programme`'s rules; its
    /// transactions record the till's terminal id.
    pub fn new(store: Store, programme: Programme) -> Self {
        let origin = Origin::new("", store.terminal_id());
        Embedded::with_books(Books::sqlite(store), programme, origin)
    }

    /// A ledger on `books` acting for `origin` (the central service builds
    /// one over PostgreSQL and gives each request its till's origin).
    pub fn with_books(books: Books, programme: Programme, origin: Origin) -> Self {
        Embedded::with_programmes(books, Programmes::single(programme), origin)
    }

    /// A ledger on `books` with several programmes, each account priced
    /// by its own.
    pub fn with_programmes(books: Books, programmes: Programmes, origin: Origin) -> Self {
        Embedded {
            books,
            programmes: Arc::new(programmes),
            origin,
        }
    }

    /// The same books and origin serving `programmes` instead (the central
    /// service: the programmes a till names).
    pub fn with_served(&self, programmes: Arc<Programmes>) -> Self {
        Embedded {
            books: self.books.clone(),
            programmes,
            origin: self.origin.clone(),
        }
    }

    /// The same ledger acting for another origin: a cheap copy sharing the
    /// books and the programme.
    pub fn with_origin(&self, origin: Origin) -> Self {
        Embedded {
            books: self.books.clone(),
            programmes: self.programmes.clone(),
            origin,
        }
    }

    /// The books this ledger keeps.
    pub fn books(&self) -> &Books {
        &self.books
    }

    /// The till's own programme (the first it serves).
    pub fn programme(&self) -> &Programme {
        self.programmes.first()
    }

    /// Every programme and the ones served.
    pub fn programmes(&self) -> &Arc<Programmes> {
        &self.programmes
    }

    /// The account behind a card, with expired lots posted first.
    pub async fn resolve(&self, number: String) -> Result<Option<AccountSummary>, LedgerError> {
        let now = OffsetDateTime::now_utc();
        let programmes = self.programmes.clone();
        let origin = self.origin.clone();
        // A read first (a reader connection on the embedded store, so a
        // swipe does not queue behind commits); only an account with lots
        // due to expire (its maintained next expiry has passed) needs the
        // write that posts them.
        let (ps, n) = (programmes.clone(), number.clone());
        let read = self
            .books
            .read(move |db| {
                let Some((account, status)) = card_account(db, &n)? else {
                    return Ok(Some(Ok(None)));
                };
                // A foreign programme's card is refused before anything
                // else, even its due burns.
                let p = match ps.of_account(db, account)? {
                    Ok(p) => p,
                    Err(e) => return Ok(Some(Err(e))),
                };
                if book::has_due(db, account, now)? {
                    return Ok(None);
                }
                let mut s = summary(db, account, status, now)?;
                super::tiers::annotate(db, &p, &mut s, now)?;
                Ok(Some(Ok(Some(s))))
            })
            .await?;
        if let Some(r) = read {
            return Ok(r?);
        }
        let r = self
            .books
            .write_always(move |db| {
                let mut s = resolve_tx(db, &number, now, &origin)?;
                if let Some(s) = s.as_mut() {
                    let p = match programmes.of_account(db, s.account)? {
                        Ok(p) => p,
                        Err(e) => return Ok(Err(e)),
                    };
                    super::tiers::annotate(db, &p, s, now)?;
                }
                Ok(Ok(s))
            })
            .await??;
        Ok(r)
    }

    /// One page of an account's transactions, newest first, each with its
    /// entries. Expired lots are posted first so the page shows the balance
    /// the customer would be told at the till.
    pub async fn history(
        &self,
        who: AccountRef,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<HistoryPage, LedgerError> {
        let now = OffsetDateTime::now_utc();
        let origin = self.origin.clone();
        self.books
            .write(move |db| history_tx(db, &who, cursor, limit, now, &origin))
            .await?
    }

    /// Quotes a sale for the card (balance 0 if it has no account yet).
    pub async fn quote(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> Result<(Option<AccountSummary>, Quote), LedgerError> {
        self.quote_full(number, lines, redeem, OrderTerms::default(), None)
            .await
    }

    /// [`Embedded::quote`] with the order's own terms set by the cashier
    /// (checked against the limits by the caller, who knows the role).
    pub async fn quote_terms(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        terms: OrderTerms,
    ) -> Result<(Option<AccountSummary>, Quote), LedgerError> {
        self.quote_full(number, lines, redeem, terms, None).await
    }

    /// [`Embedded::quote`] with the promo code the cashier typed, checked
    /// as the commit will check it (its limits as of now).
    pub async fn quote_promo(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        promo_code: Option<String>,
    ) -> Result<(Option<AccountSummary>, Quote), LedgerError> {
        self.quote_full(number, lines, redeem, OrderTerms::default(), promo_code)
            .await
    }

    /// The one quote behind the three above: the order's terms and a promo
    /// code, either or both.
    async fn quote_full(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        terms: OrderTerms,
        promo_code: Option<String>,
    ) -> Result<(Option<AccountSummary>, Quote), LedgerError> {
        let now = OffsetDateTime::now_utc();
        let programmes = self.programmes.clone();
        let origin = self.origin.clone();
        // One transaction: the summary, the account's programme and
        // overrides, the groups the campaigns look at and the promo code's
        // uses together.
        let (summary, programme, overrides, groups, code) = self
            .books
            .write_always(move |db| {
                let summary = resolve_tx(db, &number, now, &origin)?;
                let (programme, overrides, groups) = match &summary {
                    Some(s) => {
                        let p = match programmes.of_account(db, s.account)? {
                            Ok(p) => p,
                            Err(e) => return Ok(Err(LedgerError::from(e))),
                        };
                        let o = priced_overrides(db, &p, s.account)?;
                        let g = super::accounts::groups_of(db, s.account)?;
                        (p, o, g)
                    }
                    // A card not yet enrolled joins where a sale would
                    // put it.
                    None => match programmes.for_new(None, Some(&number)) {
                        Ok((_, p)) => (p, AccountOverrides::default(), Vec::new()),
                        Err(e) => return Ok(Err(LedgerError::from(e))),
                    },
                };
                let code = match &promo_code {
                    Some(c) => Some(promo::check(
                        db,
                        &programme,
                        c,
                        summary.as_ref().map(|s| s.account),
                        now,
                    )?),
                    None => None,
                };
                Ok(Ok((summary, programme, overrides, groups, code)))
            })
            .await??;
        // A programme off or out of its window quotes nothing.
        rules::switches::check_active(&programme, now)?;
        let code = code.transpose()?;
        let balance = summary.as_ref().map_or(Decimal::ZERO, |s| s.balance);
        let mut q = rules::quote_with(&programme, &overrides, &terms, &lines, balance, redeem)?;
        rules::campaigns::apply(&programme, &lines, &mut q, now, &groups, code.as_ref())?;
        Ok((summary, q))
    }

    /// The stored result of the sale committed under `key`, for a retry
    /// that can no longer name its card (its card token expired): the
    /// request must match the stored one except for the card, which is
    /// returned. `None` when the key was never used.
    pub async fn replay_commit(
        &self,
        key: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> Result<Option<(String, CommitResult)>, LedgerError> {
        self.books
            .read(move |db| replay_commit_tx(db, &key, &receipt_id, &lines, redeem))
            .await?
    }

    /// Replaces an account's own percentages (flat and per category); an
    /// absent one is unset. With an idempotency key a repeat returns the
    /// first result and changes nothing.
    pub async fn set_overrides(
        &self,
        key: Option<String>,
        account: i64,
        overrides: AccountOverrides,
    ) -> Result<OverridesResult, LedgerError> {
        let now = OffsetDateTime::now_utc();
        let origin = self.origin.clone();
        self.books
            .write(move |db| {
                set_overrides_tx(db, key.as_deref(), account, &overrides, now, &origin)
            })
            .await?
    }

    /// Commits a paid sale: redeems from the soonest-expiring lots, accrues
    /// a new lot. A card without an account is enrolled (programmes without
    /// registration; registration itself is the accounts module's).
    pub async fn commit(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
    ) -> Result<CommitResult, LedgerError> {
        self.commit_at(key, number, receipt_id, lines, redeem, None, cashier)
            .await
    }

    /// [`Embedded::commit`] booked at `at` instead of now: a till's offline
    /// sale replayed later. The sale's time decides its expiry and tier
    /// window; a time outside [`late_booking`]'s bounds is refused. A
    /// repeat of the key returns the stored result whatever `at` says (the
    /// request compared leaves the time out, so a sale first sent online
    /// and replayed after its answer was lost is booked once). `cashier`
    /// is recorded on the sale; a repeat keeps the first one.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_at(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        at: Option<OffsetDateTime>,
        cashier: Option<String>,
    ) -> Result<CommitResult, LedgerError> {
        let extras = SaleExtras::default();
        self.commit_full(key, number, receipt_id, lines, redeem, at, cashier, extras)
            .await
    }

    /// [`Embedded::commit_at`] with the order's own terms set by the
    /// cashier, recorded with the sale.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_terms(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        at: Option<OffsetDateTime>,
        cashier: Option<String>,
        terms: OrderTerms,
    ) -> Result<CommitResult, LedgerError> {
        let extras = SaleExtras {
            terms,
            promo_code: None,
        };
        self.commit_full(key, number, receipt_id, lines, redeem, at, cashier, extras)
            .await
    }

    /// [`Embedded::commit_at`] with the promo code the cashier typed: it
    /// is checked and its use counted in the sale's transaction, once for
    /// the key.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_promo_at(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        at: Option<OffsetDateTime>,
        cashier: Option<String>,
        promo_code: Option<String>,
    ) -> Result<CommitResult, LedgerError> {
        let extras = SaleExtras {
            terms: OrderTerms::default(),
            promo_code,
        };
        self.commit_full(key, number, receipt_id, lines, redeem, at, cashier, extras)
            .await
    }

    /// The one commit behind the three above.
    #[allow(clippy::too_many_arguments)]
    async fn commit_full(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        at: Option<OffsetDateTime>,
        cashier: Option<String>,
        extras: SaleExtras,
    ) -> Result<CommitResult, LedgerError> {
        let SaleExtras { terms, promo_code } = extras;
        super::cashier::check_opt(cashier.as_deref())?;
        let now = match late_booking(at, OffsetDateTime::now_utc()) {
            Ok(t) => t,
            Err(e) => {
                // A key booked before answers with its booking whatever the
                // time says: a late replay of a sale already booked is
                // harmless, never a refusal.
                let stored = self.replay_commit(key, receipt_id, lines, redeem).await?;
                return match stored {
                    Some((n, r)) if n == number && r.terms.clone().unwrap_or_default() == terms => {
                        Ok(r)
                    }
                    Some(_) => Err(LedgerError::KeyReused),
                    None => Err(e),
                };
            }
        };
        let programmes = self.programmes.clone();
        let origin = self.origin.clone();
        // A sale locks its account first and reads nothing else another
        // sale changes (`Mode::WriteLocking`), except a promo code's use
        // count, shared by every account: such a sale stays serializable.
        let locking = promo_code.is_none();
        let sale = move |db: &dyn Db| {
            commit_full_tx(
                db,
                &programmes,
                &key,
                &number,
                &receipt_id,
                &lines,
                redeem,
                now,
                &origin,
                cashier.as_deref(),
                &terms,
                promo_code.as_deref(),
            )
        };
        if locking {
            self.books.write_locking(sale).await?
        } else {
            self.books.write(sale).await?
        }
    }

    /// Refunds all or part of a sale: the accrual's share is clawed back
    /// (what the lots cannot cover is clamped and recorded, or booked as
    /// debt, per [`Programme::refund_shortfall`]), the redeemed share goes
    /// back to its lots.
    pub async fn refund(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
        cashier: Option<String>,
        lines: Option<Vec<ReturnLine>>,
    ) -> Result<RefundResult, LedgerError> {
        self.refund_at(key, sale, amount, None, cashier, lines)
            .await
    }

    /// [`Embedded::refund`] booked at `at` (a till's offline return,
    /// replayed), with the bounds of [`late_booking`]. With `lines`, a
    /// return by lines (see [`lines::share`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn refund_at(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
        at: Option<OffsetDateTime>,
        cashier: Option<String>,
        lines: Option<Vec<ReturnLine>>,
    ) -> Result<RefundResult, LedgerError> {
        super::cashier::check_opt(cashier.as_deref())?;
        let now = match late_booking(at, OffsetDateTime::now_utc()) {
            Ok(t) => t,
            Err(e) => {
                // As for a sale: a key booked before answers with it.
                let request = refund_request(&sale, amount, lines.as_deref());
                let stored = self
                    .books
                    .read(move |db| replay::<RefundResult>(db, &key, &request))
                    .await?;
                return stored.unwrap_or(Err(e));
            }
        };
        let programmes = self.programmes.clone();
        let origin = self.origin.clone();
        self.books
            .write(move |db| {
                refund_tx_in(
                    db,
                    &programmes,
                    &key,
                    &sale,
                    amount,
                    lines.as_deref(),
                    now,
                    &origin,
                    cashier.as_deref(),
                )
            })
            .await?
    }

    /// A past receipt's missed accrual (see [`missed::accrue_missed_tx`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn accrue_missed(
        &self,
        key: String,
        number: String,
        receipt: String,
        lines: Vec<SaleLine>,
        sold_at: OffsetDateTime,
        reason: String,
        operator: String,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<AdjustResult, LedgerError> {
        let programmes = self.programmes.clone();
        let now = OffsetDateTime::now_utc();
        let origin = self.origin.clone();
        self.books
            .write(move |db| {
                let m = missed::Missed {
                    number: &number,
                    receipt: &receipt,
                    lines: &lines,
                    sold_at,
                    reason: &reason,
                    operator: &operator,
                    expires_at,
                };
                missed::accrue_missed_tx(db, &programmes, &key, &m, now, &origin)
            })
            .await?
    }

    /// A manual accrual (positive) or deduction (negative), with the reason
    /// and operator recorded in the transaction.
    pub async fn adjust(
        &self,
        key: String,
        number: String,
        amount: Decimal,
        reason: String,
        operator: String,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<AdjustResult, LedgerError> {
        let programmes = self.programmes.clone();
        let now = OffsetDateTime::now_utc();
        let origin = self.origin.clone();
        self.books
            .write(move |db| {
                adjust_tx_in(
                    db,
                    &programmes,
                    &key,
                    &number,
                    amount,
                    &reason,
                    &operator,
                    expires_at,
                    now,
                    &origin,
                )
            })
            .await?
    }
}

/// How far ahead of the ledger's clock a late booking may be: the till
/// derives its time from the central service's own clock plus its
/// monotonic clock, so only the spread between service instances is left.
pub const LATE_AHEAD: time::Duration = time::Duration::minutes(5);
/// The oldest late booking accepted: a till offline for longer has its
/// operations put aside for an operator instead of rewriting a month of
/// history (expiries and levels already settled).
pub const LATE_MAX_AGE: time::Duration = time::Duration::days(30);

/// The time an operation is booked at: `now`, or the till's `at` when it
/// lies within [`LATE_AHEAD`] ahead and [`LATE_MAX_AGE`] behind `now`
/// ([`LedgerError::SaleTime`] otherwise). A time ahead of `now` but within
/// the tolerance is booked at `now`: the books never hold the future.
pub fn late_booking(
    at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, LedgerError> {
    let Some(at) = at else { return Ok(now) };
    let refuse = |reason: &str| LedgerError::SaleTime {
        at: ts(at),
        reason: reason.to_owned(),
    };
    if at > now + LATE_AHEAD {
        return Err(refuse("it is ahead of the ledger's clock"));
    }
    if at < now - LATE_MAX_AGE {
        return Err(refuse(
            "it is older than the oldest late booking accepted (30 days)",
        ));
    }
    Ok(at.min(now))
}

/// [`Embedded::resolve`] at `now`, in the caller's (write) transaction:
/// posting due expiries writes.
pub(crate) fn resolve_tx(
    db: &dyn Db,
    number: &str,
    now: OffsetDateTime,
    origin: &Origin,
) -> Result<Option<AccountSummary>, DbError> {
    let Some((account, status)) = card_account(db, number)? else {
        return Ok(None);
    };
    expire_due(db, account, now, origin)?;
    summary(db, account, status, now).map(Some)
}

/// [`Embedded::set_overrides`] at `now`. The change is a transaction row
/// (kind `overrides`, no entries) so the history shows who got which rates
/// when, and a key can be replayed.
pub(crate) fn set_overrides_tx(
    db: &dyn Db,
    key: Option<&str>,
    account: i64,
    o: &AccountOverrides,
    now: OffsetDateTime,
    origin: &Origin,
) -> TxResult<OverridesResult> {
    if let Err(e) = o.validate() {
        return Ok(Err(e.into()));
    }
    let request = json!({"account": account, "overrides": o}).to_string();
    if let Some(k) = key
        && let Some(r) = replay(db, k, &request)?
    {
        return Ok(r);
    }
    let exists: Option<i64> = db.query_opt(
        "SELECT id FROM accounts WHERE id = ?1",
        args![account],
        |r| r.get(0),
    )?;
    if exists.is_none() {
        return Ok(Err(LedgerError::UnknownAccount));
    }
    let cats = if o.categories.is_empty() {
        None
    } else {
        Some(
            serde_json::to_string(&o.categories)
                .map_err(|_| DbError::Invariant("category overrides do not serialize"))?,
        )
    };
    db.execute(
        "UPDATE accounts SET accrual_pct = ?1, cap_pct = ?2, category_overrides = ?3 WHERE id = ?4",
        args![
            o.accrual_percent.map(|d| d.to_string()),
            o.cap_percent.map(|d| d.to_string()),
            cats,
            account
        ],
    )?;
    let stamp = ts(now);
    // Without a client key the row still needs a unique one.
    let key = match key {
        Some(k) => k.to_owned(),
        None => {
            let next: i64 =
                db.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM txns", args![], |r| {
                    r.get(0)
                })?;
            format!("overrides:{account}:{stamp}:{next}")
        }
    };
    let txn = new_txn(
        db,
        &key,
        "overrides",
        account,
        None,
        &request,
        &stamp,
        origin,
        None,
    )?;
    let result = OverridesResult {
        account,
        overrides: overrides_of(db, account)?,
        replayed: false,
    };
    finish(db, txn, result)
}

/// What a sale may carry beyond its lines: the cashier's terms for the
/// order and a promo code.
#[derive(Default)]
struct SaleExtras {
    terms: OrderTerms,
    promo_code: Option<String>,
}

#[cfg(test)]
mod tests;
