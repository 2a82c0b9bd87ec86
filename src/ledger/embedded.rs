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
use super::rules::{
    self, AccountOverrides, OrderTerms, Programme, Quote, RefundShortfall, SaleLine,
};
use super::types::Replayable;
pub use super::types::{
    AccountRef, AccountSummary, AdjustResult, CommitResult, ExportRow, HISTORY_MAX_LIMIT,
    HistoryEntry, HistoryPage, HistoryTxn, LedgerError, NextExpiry, OverridesResult, RefundResult,
    SaleRef,
};
use crate::store::Store;

mod audit;
mod book;
pub(crate) mod lines;
pub(crate) mod missed;
pub(crate) mod promo;
mod request;
mod sweep;
pub use audit::{export, verify};
use book::{
    Take, balance_units, card_account, card_account_locked, claim_txn, enrol, expire_due, finish,
    overrides_of, priced_overrides, refresh_next_expiry, replay, spendable_units, summary,
    take_from_lots,
};
pub(crate) use book::{accrue, entry, new_lot, new_txn, store_result, touch_account};
pub(crate) use request::commit_request;
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

/// The refund marker stored in a refund's `receipt_id` column.
fn refund_marker_sale(receipt: &str) -> Option<i64> {
    receipt.strip_prefix("refund-of:")?.parse().ok()
}

/// A stored origin column: empty means not recorded.
fn recorded(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// [`Embedded::history`] at `now`: transactions of the account older than
/// `cursor` (a transaction id; `None` = the newest), at most `limit`
/// (clamped to 1..=[`HISTORY_MAX_LIMIT`]). Runs in a write transaction:
/// posting due expiries writes, and the page must be one consistent
/// snapshot with the balance next to it.
pub(crate) fn history_tx(
    db: &dyn Db,
    who: &AccountRef,
    cursor: Option<i64>,
    limit: u32,
    now: OffsetDateTime,
    origin: &Origin,
) -> TxResult<HistoryPage> {
    let limit = limit.clamp(1, HISTORY_MAX_LIMIT);
    let account = match who {
        AccountRef::Number(n) => match card_account(db, n)? {
            Some((a, _)) => a,
            None => return Ok(Err(LedgerError::UnknownCard)),
        },
        AccountRef::Account(id) => {
            let found: Option<i64> =
                db.query_opt("SELECT id FROM accounts WHERE id = ?1", args![id], |r| {
                    r.get(0)
                })?;
            match found {
                Some(a) => a,
                None => return Ok(Err(LedgerError::UnknownAccount)),
            }
        }
    };
    expire_due(db, account, now, origin)?;
    let balance = balance_units(db, account)?;
    let held = book::held_units(db, account, now)?.0;
    // One row more than asked tells whether there is a next page.
    let mut txns: Vec<HistoryTxn> = db.query_map(
        // Only an adjustment's request is read (its reason and operator); a
        // sale's carries all its lines.
        "SELECT id, kind, created_at, receipt_id, result, store_id, terminal_id,
                CASE WHEN kind = 'adjust' THEN request END, cashier FROM txns
         WHERE account_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        args![account, cursor.unwrap_or(i64::MAX), i64::from(limit) + 1],
        |r| {
            let kind: String = r.get(1)?;
            let receipt: Option<String> = r.get(3)?;
            let detail = if kind == "overrides" || kind == "tier" {
                serde_json::from_str(&r.get::<String>(4)?).ok()
            } else if kind == "sale" {
                // The order's own terms set by the cashier, if any: only
                // such a result is parsed.
                r.get::<Option<String>>(4)?
                    .filter(|s| s.contains("\"terms\""))
                    .and_then(|s| serde_json::from_str::<CommitResult>(&s).ok())
                    .and_then(|c| c.terms)
                    .and_then(|t| serde_json::to_value(t).ok())
            } else {
                None
            };
            // What the clamp policy forgave lives in the refund's result.
            let clawback_shortfall = if kind == "refund" {
                audit::forgiven(r.get::<Option<String>>(4)?.as_deref())
            } else {
                None
            };
            let (reason, operator) = audit::adjust_note(r.get::<Option<String>>(7)?.as_deref());
            let refund_of = if kind == "refund" {
                receipt.as_deref().and_then(refund_marker_sale)
            } else {
                None
            };
            Ok(HistoryTxn {
                transaction: r.get(0)?,
                created_at: r.get(2)?,
                receipt_id: if refund_of.is_some() { None } else { receipt },
                refund_of,
                kind,
                store: recorded(r.get(5)?),
                terminal: recorded(r.get(6)?),
                reason,
                operator,
                cashier: r.get(8)?,
                clawback_shortfall,
                entries: Vec::new(),
                detail,
            })
        },
    )?;
    let more = txns.len() > limit as usize;
    txns.truncate(limit as usize);
    for t in &mut txns {
        t.entries = db.query_map(
            "SELECT e.kind, e.amount, e.lot_id, l.expires_at, l.available_at
             FROM entries e LEFT JOIN lots l ON l.id = e.lot_id
             WHERE e.txn_id = ?1 ORDER BY e.id",
            args![t.transaction],
            |r| {
                Ok(HistoryEntry {
                    kind: r.get(0)?,
                    amount: points(r.get(1)?),
                    lot: r.get(2)?,
                    lot_expires_at: r.get(3)?,
                    lot_available_at: r.get(4)?,
                })
            },
        )?;
    }
    Ok(Ok(HistoryPage {
        account,
        balance: points(balance - held),
        held: points(held),
        next_cursor: if more {
            txns.last().map(|t| t.transaction)
        } else {
            None
        },
        transactions: txns,
    }))
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

/// [`commit_request`] with the order's own terms and promo code (the
/// code normalized), when the cashier gave any: the same text plus them,
/// so a repeat of the key with other terms or another code is refused
/// (without either, the text stays the old one).
pub(crate) fn commit_request_full(
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    terms: &OrderTerms,
    promo_code: Option<&str>,
) -> String {
    if terms.is_empty() && promo_code.is_none() {
        return commit_request(number, receipt_id, lines, redeem);
    }
    // `json!` objects sort their keys: the same text as the one-extra forms.
    let mut v = json!({"number": number, "receipt_id": receipt_id, "lines": lines,
                       "redeem": redeem.to_string()});
    if !terms.is_empty() {
        v["terms"] = json!(terms);
    }
    if let Some(c) = promo_code {
        v["promo_code"] = json!(rules::campaigns::normalize_code(c));
    }
    v.to_string()
}

/// Whether a stored sale request is `wanted` (a [`commit_request`]) once
/// its order terms are set aside: a retry that can no longer name its
/// card finds its sale whatever terms it had, and the caller compares the
/// terms the stored result records.
fn same_sale_request(stored: &str, wanted: &str) -> bool {
    if stored == wanted {
        return true;
    }
    let Ok(serde_json::Value::Object(mut s)) = serde_json::from_str(stored) else {
        return false;
    };
    if s.remove("terms").is_none() {
        return false;
    }
    serde_json::from_str::<serde_json::Value>(wanted).ok() == Some(serde_json::Value::Object(s))
}

/// The text a return's request is stored as (its exact text is part of
/// every existing database, so it must not change: a return by lines adds
/// its `lines`, a return by amount is written as it always was).
pub(crate) fn refund_request(
    sale: &SaleRef,
    amount: Option<Decimal>,
    lines: Option<&[ReturnLine]>,
) -> String {
    match lines {
        None => json!({"sale": sale, "amount": amount.map(|a| a.to_string())}).to_string(),
        Some(l) => {
            json!({"sale": sale, "amount": amount.map(|a| a.to_string()), "lines": l}).to_string()
        }
    }
}

/// [`Embedded::replay_commit`] in the caller's transaction (it only reads).
pub(crate) fn replay_commit_tx(
    db: &dyn Db,
    key: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
) -> TxResult<Option<(String, CommitResult)>> {
    let row: Option<(String, String, String)> = db.query_opt(
        "SELECT kind, request, result FROM txns WHERE idempotency_key = ?1",
        args![key],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let Some((kind, request, result)) = row else {
        return Ok(Ok(None));
    };
    let stored = serde_json::from_str::<serde_json::Value>(&request).ok();
    let field = |k: &str| {
        stored
            .as_ref()
            .and_then(|v| v.get(k).and_then(|n| n.as_str()).map(str::to_owned))
    };
    let number = field("number");
    let Some(number) = number.filter(|_| kind == "sale") else {
        return Ok(Err(LedgerError::KeyReused));
    };
    // A retry without its card token cannot name the promo code again
    // (the POS may not keep it): it is matched on everything else.
    let promo_code = field("promo_code");
    let wanted = commit_request_full(
        &number,
        receipt_id,
        lines,
        redeem,
        &OrderTerms::default(),
        promo_code.as_deref(),
    );
    if !same_sale_request(&request, &wanted) {
        return Ok(Err(LedgerError::KeyReused));
    }
    match serde_json::from_str::<CommitResult>(&result) {
        Ok(mut r) => {
            r.mark_replayed();
            Ok(Ok(Some((number, r))))
        }
        Err(_) => Ok(Err(LedgerError::KeyReused)),
    }
}

/// [`refund_tx_in`] with one programme (tests).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn refund_tx(
    db: &dyn Db,
    p: &Programme,
    key: &str,
    sale: &SaleRef,
    amount: Option<Decimal>,
    returned: Option<&[ReturnLine]>,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
) -> TxResult<RefundResult> {
    refund_tx_in(
        db,
        &Programmes::single(p.clone()),
        key,
        sale,
        amount,
        returned,
        now,
        origin,
        cashier,
    )
}

/// [`Embedded::refund`] at `now`, in the caller's transaction (tests pick
/// `now` to move through expiry boundaries), by the rules of the sale's
/// account's programme.
#[allow(clippy::too_many_arguments)]
pub(crate) fn refund_tx_in(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    sale: &SaleRef,
    amount: Option<Decimal>,
    returned: Option<&[ReturnLine]>,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
) -> TxResult<RefundResult> {
    // The stored request a repeat of the key is compared with: its exact
    // text is part of every existing database, so it must not change.
    let request = refund_request(sale, amount, returned);
    let request = request.as_str();
    if let Some(r) = replay(db, key, request)? {
        return Ok(r);
    }
    let read = |r: &super::db::Row| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
    let row: Option<(i64, i64, String)> = match sale {
        SaleRef::Transaction(id) => db.query_opt(
            "SELECT id, account_id, result FROM txns WHERE kind = 'sale' AND id = ?1",
            args![id],
            read,
        )?,
        SaleRef::Receipt(rid) => db.query_opt(
            "SELECT id, account_id, result FROM txns WHERE kind = 'sale' AND receipt_id = ?1
             ORDER BY id DESC LIMIT 1",
            args![rid],
            read,
        )?,
    };
    let Some((sale_txn, account, sale_result)) = row else {
        return Ok(Err(LedgerError::UnknownSale));
    };
    let p = match ps.of_account(db, account)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.into())),
    };
    let p = p.as_ref();
    let Ok(original) = serde_json::from_str::<CommitResult>(&sale_result) else {
        return Err(DbError::Invariant("a sale's stored result is unreadable"));
    };
    // What earlier refunds of this sale already covered.
    let marker = format!("refund-of:{sale_txn}");
    let prev: Vec<RefundResult> = db
        .query_map(
            "SELECT result FROM txns WHERE kind = 'refund' AND receipt_id = ?1",
            args![marker],
            |r| r.get::<String>(0),
        )?
        .iter()
        .filter_map(|r| serde_json::from_str::<RefundResult>(r).ok())
        .collect();
    let already: Decimal = prev.iter().map(|prev| prev.refunded).sum();
    let by_lines = match lines::share(
        db,
        sale_txn,
        &prev,
        returned,
        amount,
        p.precision,
        p.accrual_rounding.scale(),
    )? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.into())),
    };
    let (amount, share, returned_lines) = match by_lines {
        Some(s) => (
            s.amount,
            rules::RefundShare {
                clawback: s.clawback,
                return_points: s.return_points,
            },
            s.lines,
        ),
        None => {
            let amount = amount.unwrap_or(original.total - already);
            let share = refund_share_of(p, &original, already, amount);
            match share {
                Ok(s) => (amount, s, Vec::new()),
                Err(e) => return Ok(Err(e.into())),
            }
        }
    };
    // The programme may keep the spent points on a return (seed 004's switch).
    let share = rules::switches::refund_policy(p, share);
    expire_due(db, account, now, origin)?;
    let before = spendable_units(db, account, now)?;
    let stamp = ts(now);
    let txn = new_txn(
        db,
        key,
        "refund",
        account,
        Some(&marker),
        request,
        &stamp,
        origin,
        cashier,
    )?;

    // Claw back the accrual, from the sale's own lot first.
    let sale_lot: Option<i64> = db.query_opt(
        "SELECT id FROM lots WHERE txn_id = ?1",
        args![sale_txn],
        |r| r.get(0),
    )?;
    let want = units(share.clawback);
    // Held points count: inside the window the sale's own lot still holds
    // its whole accrual (nothing could spend it), so the return takes it
    // back with no shortfall and no debt.
    let took = take_from_lots(
        db,
        txn,
        account,
        sale_lot,
        want,
        "clawback",
        &stamp,
        Take::Any,
    )?;
    // What the lots could not give: owed, or forgiven, per the programme.
    let owed = match p.refund_shortfall {
        RefundShortfall::Debt if want > took => {
            let owed = want - took;
            db.execute(
                "UPDATE accounts SET debt = debt + ?1 WHERE id = ?2",
                args![owed, account],
            )?;
            entry(db, txn, account, None, "debt", -owed, &stamp)?;
            owed
        }
        _ => 0,
    };

    // Give spent points back to the lots they came from, newest first.
    let spent: Vec<(i64, i64, Option<String>)> = db.query_map(
        "SELECT e.lot_id, -e.amount, l.expires_at FROM entries e JOIN lots l ON l.id = e.lot_id
         WHERE e.txn_id = ?1 AND e.kind = 'redeem' ORDER BY e.id DESC",
        args![sale_txn],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut left = units(share.return_points);
    let mut expired = 0;
    for (lot, taken, expires) in spent {
        if left == 0 {
            break;
        }
        let room: i64 = db.query_row(
            "SELECT amount - remaining FROM lots WHERE id = ?1",
            args![lot],
            |r| r.get(0),
        )?;
        let give = left.min(taken).min(room);
        if give == 0 {
            continue;
        }
        db.execute(
            "UPDATE lots SET remaining = remaining + ?1 WHERE id = ?2",
            args![give, lot],
        )?;
        entry(db, txn, account, Some(lot), "refund_return", give, &stamp)?;
        if expires.as_deref().is_some_and(|e| e <= stamp.as_str()) {
            // Returned to a lot that has expired meanwhile: it expires now.
            db.execute(
                "UPDATE lots SET remaining = remaining - ?1 WHERE id = ?2",
                args![give, lot],
            )?;
            entry(db, txn, account, Some(lot), "expire", -give, &stamp)?;
            expired += give;
        }
        left -= give;
    }
    // Points given back reopen lots, possibly earlier-expiring ones.
    refresh_next_expiry(db, account)?;
    let after = spendable_units(db, account, now)?;
    let mut result = RefundResult {
        transaction: txn,
        sale_transaction: sale_txn,
        account,
        refunded: amount,
        clawback: points(took + owed),
        clawback_shortfall: points(want - took - owed),
        clawback_debt: points(owed),
        returned: points(units(share.return_points) - left),
        returned_expired: points(expired),
        balance_before: points(before),
        balance_after: points(after),
        tier_change: None,
        replayed: false,
        pending: None,
        lines: returned_lines,
    };
    if !p.tiers.is_empty() {
        // Returned goods no longer count towards the account's level. The
        // evaluation reads refunds from their stored results, so this one's
        // is written first (and again, final, by `finish`).
        store_result(db, txn, &result)?;
        result.tier_change = super::tiers::evaluate_as(db, p, account, now, "refund", origin)?;
    }
    finish(db, txn, result)
}

/// A return by amount's money share of `original`'s points (see
/// [`rules::refund_share`]).
fn refund_share_of(
    p: &Programme,
    original: &CommitResult,
    already: Decimal,
    amount: Decimal,
) -> Result<rules::RefundShare, rules::RulesError> {
    rules::refund_share(
        &rules::CommittedSale {
            total: original.total,
            accrued: original.accrued,
            redeemed: original.redeemed,
            precision: p.precision,
            accrual_scale: p.accrual_rounding.scale(),
        },
        already,
        amount,
    )
}

/// [`adjust_tx_in`] with one programme (tests).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn adjust_tx(
    db: &dyn Db,
    p: &Programme,
    key: &str,
    number: &str,
    amount: Decimal,
    reason: &str,
    operator: &str,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    origin: &Origin,
) -> TxResult<AdjustResult> {
    adjust_tx_in(
        db,
        &Programmes::single(p.clone()),
        key,
        number,
        amount,
        reason,
        operator,
        expires_at,
        now,
        origin,
    )
}

/// [`Embedded::adjust`] at `now`, in the caller's transaction, by the
/// rules of the card's account's programme.
#[allow(clippy::too_many_arguments)]
pub(crate) fn adjust_tx_in(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    number: &str,
    amount: Decimal,
    reason: &str,
    operator: &str,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    origin: &Origin,
) -> TxResult<AdjustResult> {
    // Same text as it always was: existing keys must keep replaying.
    let request = json!({
        "number": number, "amount": amount.to_string(), "reason": reason,
        "operator": operator, "expires_at": expires_at.map(ts),
    })
    .to_string();
    let request = request.as_str();
    if let Some(r) = replay(db, key, request)? {
        return Ok(r);
    }
    let Some((account, _)) = card_account(db, number)? else {
        return Ok(Err(LedgerError::UnknownCard));
    };
    let p = match ps.of_account(db, account)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.into())),
    };
    let p = p.as_ref();
    expire_due(db, account, now, origin)?;
    // An operator's deduction may take held points too (correcting an
    // accrual inside its window); the figures shown are spendable ones.
    let total = balance_units(db, account)?;
    let before = spendable_units(db, account, now)?;
    let stamp = ts(now);
    let delta = units(amount);
    if delta < 0 && total < -delta {
        return Ok(Err(LedgerError::InsufficientBalance {
            balance: points(total.max(0)),
        }));
    }
    let txn = new_txn(
        db, key, "adjust", account, None, request, &stamp, origin, None,
    )?;
    let mut expires = None;
    let mut repaid = 0;
    if delta > 0 {
        let at = match expires_at {
            Some(t) => Some(ts(t)),
            // Dated by the account's level, as a sale's points are.
            None => match rules::levels::expiry_for(p, super::tiers::tier_of(db, p, account)?, now)
            {
                Ok(e) => e.map(ts),
                Err(e) => return Ok(Err(e.into())),
            },
        };
        let (lot, r) = accrue(
            db,
            txn,
            account,
            delta,
            "adjust",
            at.as_deref(),
            None,
            &stamp,
        )?;
        repaid = r;
        if lot.is_some() {
            expires = at;
        }
    } else if delta < 0 {
        take_from_lots(db, txn, account, None, -delta, "adjust", &stamp, Take::Any)?;
    }
    let after = spendable_units(db, account, now)?;
    let result = AdjustResult {
        transaction: txn,
        account,
        amount,
        expires_at: expires,
        debt_repaid: points(repaid),
        balance_before: points(before),
        balance_after: points(after),
        replayed: false,
    };
    finish(db, txn, result)
}

/// [`commit_tx_in`] with one programme (tests).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_tx(
    db: &dyn Db,
    p: &Programme,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
) -> TxResult<CommitResult> {
    commit_tx_in(
        db,
        &Programmes::single(p.clone()),
        key,
        number,
        receipt_id,
        lines,
        redeem,
        now,
        origin,
        cashier,
    )
}

/// [`Embedded::commit`] at `now`, in the caller's transaction, by the
/// rules of the card's account's programme (a card without an account
/// joins the programme its range routes to, else the till's own). Without
/// order terms or a promo code: the tests' shorthand for [`commit_full_tx`].
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_tx_in(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
) -> TxResult<CommitResult> {
    let terms = OrderTerms::default();
    commit_full_tx(
        db, ps, key, number, receipt_id, lines, redeem, now, origin, cashier, &terms, None,
    )
}

/// [`commit_tx_in`] with the order's own terms set by the cashier.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_terms_tx(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
    terms: &OrderTerms,
) -> TxResult<CommitResult> {
    commit_full_tx(
        db, ps, key, number, receipt_id, lines, redeem, now, origin, cashier, terms, None,
    )
}

/// The one sale transaction: the order's terms and a promo code (checked
/// against its limits and counted after the key is claimed, so a repeat of
/// the key counts nothing), either or both.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_full_tx(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
    terms: &OrderTerms,
    promo_code: Option<&str>,
) -> TxResult<CommitResult> {
    let request = commit_request_full(number, receipt_id, lines, redeem, terms, promo_code);
    let request = request.as_str();
    // Taken first, with what the sale reads of it: the sale runs at READ
    // COMMITTED on PostgreSQL unless it carries a promo code
    // (`Embedded::commit_full`).
    let (acct, p) = match card_account_locked(db, number)? {
        Some(a) => match ps.of_stored_key(&a.programme) {
            Ok(p) => (a, p),
            // A repeat of a key booked before the till stopped serving
            // the programme is refused too: nothing of it is this till's.
            Err(e) => return Ok(Err(e.into())),
        },
        None => match ps.for_new(None, Some(number)) {
            Ok((key, p)) => {
                let id = enrol(db, number, &key, now)?;
                (book::LockedAccount::new_enrolled(id, key), p)
            }
            Err(e) => return Ok(Err(e.into())),
        },
    };
    let account = acct.id;
    let status = acct.status.clone();
    let p = p.as_ref();
    let stamp = ts(now);
    // The key is claimed by the txn row's insert, not looked up first (see
    // `claim_txn`). A repeat answers from the stored result even if the
    // card is blocked since; a refusal below rolls the claim back.
    let claimed = claim_txn(
        db,
        key,
        "sale",
        account,
        Some(receipt_id),
        request,
        &stamp,
        origin,
        cashier,
    )?;
    let Some(txn) = claimed else {
        return match replay(db, key, request)? {
            Some(r) => Ok(r),
            None => Err(DbError::Invariant("a claimed key without its txn row")),
        };
    };
    if status != "active" {
        return Ok(Err(LedgerError::Inactive(status)));
    }
    // After the claim, so a repeat of a sale booked while the programme
    // ran still answers; at the sale's own time (a late booking's `now`).
    if let Err(e) = rules::switches::check_active(p, now) {
        return Ok(Err(e.into()));
    }
    // After the claim: a repeat must write nothing, not even due burns.
    // The maintained next expiry says whether anything is due (the common
    // case: nothing, and no read of the lots).
    let mut before = acct.balance;
    // The account's next expiry as this sale leaves it; `None`: read it.
    let mut next_expiry = Some(acct.next_expiry.clone());
    if acct
        .next_expiry
        .as_deref()
        .is_some_and(|at| at <= stamp.as_str())
    {
        expire_due(db, account, now, origin)?;
        before = balance_units(db, account)?;
        next_expiry = None;
    }
    // Held points (the accrual window) cannot pay for this sale.
    let held = book::held_units(db, account, now)?;
    let held_before = held.0;
    let spendable = before - held_before;
    let overrides = book::priced_overrides_from(db, p, account, acct.own.clone())?;
    let code = match promo_code {
        Some(c) => match promo::check(db, p, c, Some(account), now)? {
            Ok(code) => Some(code),
            Err(r) => return Ok(Err(r.into())),
        },
        None => None,
    };
    let groups = if p.campaigns.is_empty() {
        Vec::new()
    } else {
        super::accounts::groups_of(db, account)?
    };
    let q = match rules::quote_with(
        p,
        &overrides,
        terms,
        lines,
        points(spendable.max(0)),
        redeem,
    )
    .and_then(|mut q| {
        rules::campaigns::apply(p, lines, &mut q, now, &groups, code.as_ref())?;
        Ok(q)
    }) {
        Ok(q) => q,
        Err(e) => return Ok(Err(e.into())),
    };
    if let Some(code) = &code {
        promo::record(db, code, account, txn, &stamp)?;
    }

    // Redeem: soonest-expiring lots first (lots without expiry last).
    let want = units(q.redeem);
    let (took, next_after_take) = book::take_from_lots_tracked(
        db,
        txn,
        account,
        None,
        want,
        "redeem",
        &stamp,
        Take::Spendable,
    )?;
    if took != want {
        // The balance said yes but the lots say no: a broken invariant.
        return Err(DbError::Invariant("the lots hold less than the balance"));
    }
    if let Some(n) = next_after_take {
        next_expiry = Some(n);
    }

    // Accrue as a new lot.
    let accrued = units(q.accrual);
    // The level that priced the sale dates its points too (one this sale
    // earns applies from the next sale).
    let level = super::tiers::tier_of(db, p, account)?;
    // Held until the window ends, and valid from then (`rules::hold`).
    let dates = match rules::hold::accrual_dates(p, level, now) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e.into())),
    };
    let expires = dates.expires_at.map(ts);
    let available = dates.available_at.map(ts);
    let (lot, repaid) = if accrued > 0 {
        book::accrue_owing(
            db,
            txn,
            account,
            accrued,
            acct.debt,
            "accrue",
            expires.as_deref(),
            available.as_deref(),
            &stamp,
        )?
    } else {
        (None, 0)
    };
    // What the new lot changes of the summary's figures (`insert_lot`
    // keeps the stored next expiry the same way).
    let new_lot = if lot.is_some() { accrued - repaid } else { 0 };
    if new_lot > 0
        && let Some(at) = &expires
        && let Some(known) = &mut next_expiry
        && known.as_ref().is_none_or(|k| at < k)
    {
        *known = Some(at.clone());
    }
    let newly_held = available.as_deref().is_some_and(|at| at > stamp.as_str());
    let held_after = match (held_before, newly_held && new_lot > 0) {
        (_, false) => held,
        (0, true) => (new_lot, available.clone().map(|at| (at, new_lot))),
        // Held lots before and a new one: which is released first is a read.
        (_, true) => book::held_units(db, account, now)?,
    };
    // Each line's share, for returns by lines.
    lines::store(db, txn, lines, &q, p.accrual_rounding.scale())?;
    // The sale counts towards the account's level in the same transaction;
    // a new level prices the next sale, not this one.
    let tier_change = super::tiers::evaluate_as(db, p, account, now, "sale", origin)?;
    // The summary the bonus block prints, from this same transaction: no
    // second trip after the commit. The balance moved by exactly what this
    // sale posted (expiries were posted before `before`).
    let balance_after = before - want + accrued;
    // Tests and the proptests run with debug assertions: they hold this
    // arithmetic to the books.
    #[cfg(debug_assertions)]
    debug_assert_eq!(balance_after, balance_units(db, account)?);
    let next_expiry = match next_expiry {
        Some(n) => n,
        None => book::next_expiry_of(db, account)?,
    };
    let debt_after = acct.debt - repaid;
    #[cfg(debug_assertions)]
    {
        let stored: (i64, Option<String>) = db.query_row(
            "SELECT debt, next_expiry FROM accounts WHERE id = ?1",
            args![account],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        debug_assert_eq!(stored, (debt_after, next_expiry.clone()));
        debug_assert_eq!(held_after, book::held_units(db, account, now)?);
    }
    let mut after = book::summary_known(
        db,
        account,
        status,
        balance_after,
        debt_after,
        next_expiry,
        held_after,
        now,
    )?;
    if !p.tiers.is_empty() {
        super::tiers::annotate(db, p, &mut after, now)?;
    }
    // An invited customer's first purchase pays the referral bonuses, as
    // postings of their own after the sale's (its figures exclude them).
    crate::ledger::people::referral_after_sale(db, p, account, now, origin)?;
    let result = CommitResult {
        transaction: txn,
        account,
        receipt_id: receipt_id.to_owned(),
        total: q.total,
        redeemed: q.redeem,
        money_paid: q.money_paid,
        accrued: q.accrual,
        debt_repaid: points(repaid),
        accrued_expires_at: if lot.is_some() { expires } else { None },
        accrued_available_at: if lot.is_some() { available } else { None },
        balance_before: points(spendable),
        balance_after: after.balance,
        held: after.held,
        next_available: after.next_available,
        next_expiry: after.next_expiry,
        tier: after.tier,
        tier_change,
        replayed: false,
        pending: None,
        terms: (!terms.is_empty()).then(|| terms.clone()),
        campaigns: q.campaigns.iter().map(|c| c.name.clone()).collect(),
        promo_code: q.promo.map(|c| c.code),
    };
    finish(db, txn, result)
}

#[cfg(test)]
mod tests;
