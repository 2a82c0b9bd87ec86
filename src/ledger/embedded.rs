//! The embedded ledger: accounts, lots and entries in the daemon's SQLite
//! file.
//!
//! Every state change runs in one `BEGIN IMMEDIATE` transaction on the one
//! writer connection, keyed by the client's idempotency key: a repeat of a
//! key returns the stored result and writes nothing. Amounts are stored as
//! integers in units of 0.0001 point (see the schema in `store`).

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::rules::{
    self, AccountOverrides, CategoryOverride, Programme, Quote, RefundShortfall, RulesError,
    SaleLine,
};
use crate::store::{Store, StoreError};

/// Units per point in the database.
const SCALE: i64 = 10_000;

/// Ledger errors; each maps to a stable API code.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The rules refused (bad line, redemption over a limit).
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// No account holds this card.
    #[error("unknown card")]
    UnknownCard,
    /// The card or account is blocked.
    #[error("the card is {0}")]
    Inactive(String),
    /// The key was used before for a different request.
    #[error("idempotency key already used for a different request")]
    KeyReused,
    /// The sale to refund does not exist.
    #[error("no such sale")]
    UnknownSale,
    /// No account has this id.
    #[error("no such account")]
    UnknownAccount,
    /// A deduction larger than the balance.
    #[error("insufficient balance: {balance} available")]
    InsufficientBalance {
        /// What there is.
        balance: Decimal,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The central ledger refused (its own code) or could not be reached.
    #[error(transparent)]
    Remote(#[from] crate::ledger::RemoteError),
}

/// What a card resolves to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccountSummary {
    /// Account id.
    pub account: i64,
    /// Status (`active`, `blocked`).
    pub status: String,
    /// Points now: what the lots hold minus the debt, so negative while a
    /// refund's unpaid clawback is owed (nothing can be redeemed then).
    #[serde(with = "rust_decimal::serde::str")]
    pub balance: Decimal,
    /// Points owed from refunds under the `debt` policy; later accruals pay
    /// it first.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub debt: Decimal,
    /// The soonest-expiring points: amount and when (RFC 3339, UTC).
    pub next_expiry: Option<NextExpiry>,
    /// The loyalty level held; absent when the programme has no levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// How far the next level is; absent at the top or without levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_progress: Option<super::rules::tiers::Progress>,
}

/// The next points to expire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NextExpiry {
    /// How many points.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// When they are gone.
    pub at: String,
}

/// The result of a committed sale, stored with its key and returned again
/// on a repeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommitResult {
    /// Transaction id.
    pub transaction: i64,
    /// Account id.
    pub account: i64,
    /// The POS's receipt id.
    pub receipt_id: String,
    /// Sale total.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Points spent.
    #[serde(with = "rust_decimal::serde::str")]
    pub redeemed: Decimal,
    /// Money paid.
    #[serde(with = "rust_decimal::serde::str")]
    pub money_paid: Decimal,
    /// Points accrued (including the part that paid a debt).
    #[serde(with = "rust_decimal::serde::str")]
    pub accrued: Decimal,
    /// Of `accrued`, the points that paid the account's debt instead of
    /// becoming spendable.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub debt_repaid: Decimal,
    /// When the accrued points expire (RFC 3339, UTC), if they do.
    pub accrued_expires_at: Option<String>,
    /// Balance before.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_before: Decimal,
    /// Balance after.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    /// The soonest-expiring points right after the sale, as the bonus block
    /// prints them. Stored with the result so a repeat prints the same block.
    #[serde(default)]
    pub next_expiry: Option<NextExpiry>,
    /// The level held right after the sale (the bonus block's `tier` row);
    /// absent when the programme has no levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The level this sale moved the account to, if it did (published as
    /// `account.tier_changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_change: Option<super::tiers::TierChange>,
    /// True when this is the stored result of an earlier call with the same
    /// key (nothing was written now). Not part of the stored or wire result.
    #[serde(skip)]
    pub replayed: bool,
}

/// A stored result a repeated key gets back.
trait Replayable {
    fn mark_replayed(&mut self);
}

impl Replayable for CommitResult {
    fn mark_replayed(&mut self) {
        self.replayed = true;
    }
}
impl Replayable for RefundResult {
    fn mark_replayed(&mut self) {
        self.replayed = true;
    }
}
impl Replayable for AdjustResult {
    fn mark_replayed(&mut self) {
        self.replayed = true;
    }
}
impl Replayable for OverridesResult {
    fn mark_replayed(&mut self) {
        self.replayed = true;
    }
}

/// The embedded ledger.
#[derive(Clone)]
pub struct Embedded {
    store: Store,
    programme: Arc<Programme>,
}

pub(crate) fn units(d: Decimal) -> i64 {
    // Amounts are validated by the rules (≤ 10^12, ≤ 4 places), so this
    // neither overflows nor drops digits.
    (d * Decimal::from(SCALE))
        .trunc()
        .try_into()
        .unwrap_or(i64::MAX)
}

fn points(u: i64) -> Decimal {
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

impl Embedded {
    /// A ledger on `store` with `programme`'s rules.
    pub fn new(store: Store, programme: Programme) -> Self {
        Embedded {
            store,
            programme: Arc::new(programme),
        }
    }

    /// The programme in force.
    pub fn programme(&self) -> &Programme {
        &self.programme
    }

    /// The account behind a card, with expired lots posted first.
    pub async fn resolve(&self, number: String) -> Result<Option<AccountSummary>, LedgerError> {
        let now = OffsetDateTime::now_utc();
        let programme = self.programme.clone();
        let r = self
            .store
            .with(move |c| {
                let mut s = resolve_tx(c, &number, now)?;
                if let Some(s) = s.as_mut() {
                    super::tiers::annotate(c, &programme, s, now)?;
                }
                Ok(s)
            })
            .await?;
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
        self.store
            .with(move |c| history_tx(c, &who, cursor, limit, now))
            .await?
    }

    /// Quotes a sale for the card (balance 0 if it has no account yet).
    pub async fn quote(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> Result<(Option<AccountSummary>, Quote), LedgerError> {
        let now = OffsetDateTime::now_utc();
        let programme = self.programme.clone();
        // One trip to the writer: the summary and the overrides together.
        let (summary, overrides) = self
            .store
            .with(move |c| {
                let summary = resolve_tx(c, &number, now)?;
                let overrides = match &summary {
                    Some(s) => priced_overrides(c, &programme, s.account)?,
                    None => AccountOverrides::default(),
                };
                Ok((summary, overrides))
            })
            .await?;
        let balance = summary.as_ref().map_or(Decimal::ZERO, |s| s.balance);
        let q = rules::quote(&self.programme, &overrides, &lines, balance, redeem)?;
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
        self.store
            .with(move |c| replay_commit_tx(c, &key, &receipt_id, &lines, redeem))
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
        self.store
            .with(move |c| set_overrides_tx(c, key.as_deref(), account, &overrides, now))
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
    ) -> Result<CommitResult, LedgerError> {
        let programme = self.programme.clone();
        let now = OffsetDateTime::now_utc();
        self.store
            .with(move |c| {
                commit_tx(
                    c,
                    &programme,
                    &key,
                    &number,
                    &receipt_id,
                    &lines,
                    redeem,
                    now,
                )
            })
            .await?
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
    ) -> Result<RefundResult, LedgerError> {
        let programme = self.programme.clone();
        let now = OffsetDateTime::now_utc();
        self.store
            .with(move |c| refund_tx(c, &programme, &key, &sale, amount, now))
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
        let programme = self.programme.clone();
        let now = OffsetDateTime::now_utc();
        self.store
            .with(move |c| {
                adjust_tx(
                    c, &programme, &key, &number, amount, &reason, &operator, expires_at, now,
                )
            })
            .await?
    }
}

/// [`Embedded::resolve`] at `now`, on the caller's connection.
pub(crate) fn resolve_tx(
    c: &mut Connection,
    number: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<AccountSummary>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some((account, status)) = card_account(&tx, number)? else {
        return Ok(None);
    };
    expire_due(&tx, account, now)?;
    let summary = summary(&tx, account, status, now)?;
    tx.commit()?;
    Ok(Some(summary))
}

/// Whose history: a card number or an account id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRef {
    /// The account holding this card number.
    Number(String),
    /// The account with this id.
    Account(i64),
}

/// The most transactions one history page returns.
pub const HISTORY_MAX_LIMIT: u32 = 500;

/// One page of [`Embedded::history`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryPage {
    /// Account id.
    pub account: i64,
    /// Spendable points now (after posting what was due to expire).
    #[serde(with = "rust_decimal::serde::str")]
    pub balance: Decimal,
    /// Newest first.
    pub transactions: Vec<HistoryTxn>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// One transaction of a history page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryTxn {
    /// Transaction id.
    pub transaction: i64,
    /// `sale`, `refund`, `adjust`, `expire`, `welcome`, `overrides` (a
    /// change of the account's percentages) or `tier` (a change of its
    /// level); the last two post no entries.
    pub kind: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// The POS's receipt id, for sales.
    pub receipt_id: Option<String>,
    /// For refunds: the sale's transaction id.
    pub refund_of: Option<i64>,
    /// The postings, in order.
    pub entries: Vec<HistoryEntry>,
    /// What changed, for `overrides` (the percentages now) and `tier`
    /// (`from`, `to`, `reason`, `trigger`); absent for the others, whose
    /// entries say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// One posting of a history transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    /// `accrue`, `redeem`, `clawback`, `refund_return`, `adjust`, `expire`,
    /// `debt` (a clawback booked as debt) or `debt_repay` (an accrual that
    /// paid it); the last two have no lot.
    pub kind: String,
    /// Signed points: positive adds to the balance.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The lot posted to.
    pub lot: Option<i64>,
    /// When that lot expires (RFC 3339, UTC), if it does.
    pub lot_expires_at: Option<String>,
}

/// The refund marker stored in a refund's `receipt_id` column.
fn refund_marker_sale(receipt: &str) -> Option<i64> {
    receipt.strip_prefix("refund-of:")?.parse().ok()
}

/// [`Embedded::history`] at `now`: transactions of the account older than
/// `cursor` (a transaction id; `None` = the newest), at most `limit`
/// (clamped to 1..=[`HISTORY_MAX_LIMIT`]).
pub(crate) fn history_tx(
    c: &mut Connection,
    who: &AccountRef,
    cursor: Option<i64>,
    limit: u32,
    now: OffsetDateTime,
) -> TxResult<HistoryPage> {
    let limit = limit.clamp(1, HISTORY_MAX_LIMIT);
    // Immediate: posting due expiries writes, and the page must be one
    // consistent snapshot with the balance next to it.
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let account = match who {
        AccountRef::Number(n) => match card_account(&tx, n)? {
            Some((a, _)) => a,
            None => return Ok(Err(LedgerError::UnknownCard)),
        },
        AccountRef::Account(id) => {
            let found: Option<i64> = tx
                .query_row("SELECT id FROM accounts WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            match found {
                Some(a) => a,
                None => return Ok(Err(LedgerError::UnknownAccount)),
            }
        }
    };
    expire_due(&tx, account, now)?;
    let balance = balance_units(&tx, account)?;
    let mut txns: Vec<HistoryTxn> = {
        // One row more than asked tells whether there is a next page.
        let mut stmt = tx.prepare(
            "SELECT id, kind, created_at, receipt_id, result FROM txns
             WHERE account_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![account, cursor.unwrap_or(i64::MAX), i64::from(limit) + 1],
            |r| {
                let kind: String = r.get(1)?;
                let receipt: Option<String> = r.get(3)?;
                let detail = if kind == "overrides" || kind == "tier" {
                    serde_json::from_str(&r.get::<_, String>(4)?).ok()
                } else {
                    None
                };
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
                    entries: Vec::new(),
                    detail,
                })
            },
        )?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let more = txns.len() > limit as usize;
    txns.truncate(limit as usize);
    {
        let mut stmt = tx.prepare(
            "SELECT e.kind, e.amount, e.lot_id, l.expires_at
             FROM entries e LEFT JOIN lots l ON l.id = e.lot_id
             WHERE e.txn_id = ?1 ORDER BY e.id",
        )?;
        for t in &mut txns {
            let rows = stmt.query_map([t.transaction], |r| {
                Ok(HistoryEntry {
                    kind: r.get(0)?,
                    amount: points(r.get(1)?),
                    lot: r.get(2)?,
                    lot_expires_at: r.get(3)?,
                })
            })?;
            t.entries = rows.collect::<rusqlite::Result<_>>()?;
        }
    }
    tx.commit()?;
    Ok(Ok(HistoryPage {
        account,
        balance: points(balance),
        next_cursor: if more {
            txns.last().map(|t| t.transaction)
        } else {
            None
        },
        transactions: txns,
    }))
}

/// One row of [`export`]: a transaction with one of its entries (or with
/// none, for a transaction that posted nothing).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExportRow {
    /// Transaction id.
    pub txn: i64,
    /// Transaction kind.
    pub kind: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// Account id.
    pub account: i64,
    /// As stored: the POS's receipt id for sales, `refund-of:<id>` for
    /// refunds.
    pub receipt_id: Option<String>,
    /// The entry's kind; `None` when the transaction has no entries.
    pub entry_kind: Option<String>,
    /// The entry's signed points.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub amount: Option<Decimal>,
    /// The entry's lot.
    pub lot: Option<i64>,
}

/// Calls `f` with every transaction and entry of the ledger, in id order,
/// stopping at the first error `f` returns (the inner result).
pub fn export(
    c: &Connection,
    mut f: impl FnMut(&ExportRow) -> std::io::Result<()>,
) -> rusqlite::Result<std::io::Result<()>> {
    let mut stmt = c.prepare(
        "SELECT t.id, t.kind, t.created_at, t.account_id, t.receipt_id, e.kind, e.amount, e.lot_id
         FROM txns t LEFT JOIN entries e ON e.txn_id = t.id
         ORDER BY t.id, e.id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let row = ExportRow {
            txn: r.get(0)?,
            kind: r.get(1)?,
            created_at: r.get(2)?,
            account: r.get(3)?,
            receipt_id: r.get(4)?,
            entry_kind: r.get(5)?,
            amount: r.get::<_, Option<i64>>(6)?.map(points),
            lot: r.get(7)?,
        };
        if let Err(e) = f(&row) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// A database failure (outer) or a refusal that wrote nothing (inner).
pub(crate) type TxResult<T> = rusqlite::Result<Result<T, LedgerError>>;

/// An account's own percentages; unreadable values count as unset. The
/// one place an account's overrides are computed (quote and commit both
/// come here).
fn overrides_of(c: &Connection, account: i64) -> rusqlite::Result<AccountOverrides> {
    let (a, cp, cats): (Option<String>, Option<String>, Option<String>) = c.query_row(
        "SELECT accrual_pct, cap_pct, category_overrides FROM accounts WHERE id = ?1",
        [account],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(AccountOverrides {
        accrual_percent: a.and_then(|s| s.parse().ok()),
        cap_percent: cp.and_then(|s| s.parse().ok()),
        categories: cats
            .and_then(|s| {
                serde_json::from_str::<std::collections::BTreeMap<String, CategoryOverride>>(&s)
                    .ok()
            })
            .unwrap_or_default(),
    })
}

/// [`overrides_of`] with the account's tier merged in (per-customer
/// setting > tier > programme default): what quote and commit price with.
fn priced_overrides(
    c: &Connection,
    p: &Programme,
    account: i64,
) -> rusqlite::Result<AccountOverrides> {
    let mut o = overrides_of(c, account)?;
    super::tiers::merge_overrides(c, p, account, &mut o)?;
    Ok(o)
}

/// The result of [`Embedded::set_overrides`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OverridesResult {
    /// Account id.
    pub account: i64,
    /// The account's percentages now.
    pub overrides: AccountOverrides,
    /// A repeat of the key (nothing written). Not stored or sent.
    #[serde(skip)]
    pub replayed: bool,
}

/// [`Embedded::set_overrides`] at `now`. The change is a transaction row
/// (kind `overrides`, no entries) so the history shows who got which rates
/// when, and a key can be replayed.
pub(crate) fn set_overrides_tx(
    c: &mut Connection,
    key: Option<&str>,
    account: i64,
    o: &AccountOverrides,
    now: OffsetDateTime,
) -> TxResult<OverridesResult> {
    if let Err(e) = o.validate() {
        return Ok(Err(e.into()));
    }
    let request = json!({"account": account, "overrides": o}).to_string();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(k) = key
        && let Some(r) = replay(&tx, k, &request)?
    {
        return Ok(r);
    }
    let exists: Option<i64> = tx
        .query_row("SELECT id FROM accounts WHERE id = ?1", [account], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_none() {
        return Ok(Err(LedgerError::UnknownAccount));
    }
    let cats = if o.categories.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&o.categories).map_err(|_| rusqlite::Error::InvalidQuery)?)
    };
    tx.execute(
        "UPDATE accounts SET accrual_pct = ?1, cap_pct = ?2, category_overrides = ?3 WHERE id = ?4",
        params![
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
            let next: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM txns", [], |r| {
                r.get(0)
            })?;
            format!("overrides:{account}:{stamp}:{next}")
        }
    };
    let txn = new_txn(&tx, &key, "overrides", account, None, &request, &stamp)?;
    let result = OverridesResult {
        account,
        overrides: overrides_of(&tx, account)?,
        replayed: false,
    };
    finish(tx, txn, result)
}

/// The text a sale's request is stored as, compared on a repeat of its
/// key. Same text as it always was: existing keys must keep replaying.
fn commit_request(number: &str, receipt_id: &str, lines: &[SaleLine], redeem: Decimal) -> String {
    json!({"number": number, "receipt_id": receipt_id, "lines": lines, "redeem": redeem.to_string()}).to_string()
}

/// [`Embedded::replay_commit`] on the caller's connection.
pub(crate) fn replay_commit_tx(
    c: &mut Connection,
    key: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
) -> TxResult<Option<(String, CommitResult)>> {
    let row: Option<(String, String, String)> = c
        .query_row(
            "SELECT kind, request, result FROM txns WHERE idempotency_key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((kind, request, result)) = row else {
        return Ok(Ok(None));
    };
    let number = serde_json::from_str::<serde_json::Value>(&request)
        .ok()
        .and_then(|v| v.get("number").and_then(|n| n.as_str()).map(str::to_owned));
    let Some(number) = number.filter(|_| kind == "sale") else {
        return Ok(Err(LedgerError::KeyReused));
    };
    if commit_request(&number, receipt_id, lines, redeem) != request {
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

/// Adds `amount` units (> 0) that `txn` gives the account: its debt is paid
/// first (a `debt_repay` entry without a lot), the rest becomes a new lot
/// posted as a `kind` entry. Returns the lot, if any, and the units repaid.
#[allow(clippy::too_many_arguments)]
fn accrue(
    tx: &Connection,
    txn: i64,
    account: i64,
    amount: i64,
    kind: &str,
    expires: Option<&str>,
    stamp: &str,
) -> rusqlite::Result<(Option<i64>, i64)> {
    let debt = debt_units(tx, account)?;
    let repay = debt.min(amount).max(0);
    if repay > 0 {
        tx.execute(
            "UPDATE accounts SET debt = debt - ?1 WHERE id = ?2",
            params![repay, account],
        )?;
        entry(tx, txn, account, None, "debt_repay", repay, stamp)?;
    }
    let rest = amount - repay;
    if rest <= 0 {
        return Ok((None, repay));
    }
    tx.prepare_cached(
        "INSERT INTO lots (account_id, txn_id, amount, remaining, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
    )?
    .execute(params![account, txn, rest, expires, stamp])?;
    let lot = tx.last_insert_rowid();
    entry(tx, txn, account, Some(lot), kind, rest, stamp)?;
    Ok((Some(lot), repay))
}

/// Stores an operation's result with its transaction row (what a repeat of
/// its key returns) and commits.
fn finish<T: Serialize>(tx: rusqlite::Transaction<'_>, txn: i64, result: T) -> TxResult<T> {
    store_result(&tx, txn, &result)?;
    tx.commit()?;
    Ok(Ok(result))
}

/// Stores `result` on the transaction row: what a repeat of its key gets.
pub(crate) fn store_result<T: Serialize>(
    tx: &Connection,
    txn: i64,
    result: &T,
) -> rusqlite::Result<()> {
    let stored = serde_json::to_string(result).map_err(|_| rusqlite::Error::InvalidQuery)?;
    tx.prepare_cached("UPDATE txns SET result = ?1 WHERE id = ?2")?
        .execute(params![stored, txn])?;
    Ok(())
}

/// Which sale a refund is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleRef {
    /// By transaction id.
    Transaction(i64),
    /// By the POS's receipt id (the latest sale with it).
    Receipt(String),
}

/// The result of a refund, stored with its key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefundResult {
    /// This refund's transaction id.
    pub transaction: i64,
    /// The sale refunded.
    pub sale_transaction: i64,
    /// Account id.
    pub account: i64,
    /// Money refunded by this refund.
    #[serde(with = "rust_decimal::serde::str")]
    pub refunded: Decimal,
    /// Accrued points taken back.
    #[serde(with = "rust_decimal::serde::str")]
    pub clawback: Decimal,
    /// Points the clawback could not take because they were already spent
    /// (policy `clamp`: the balance stops at zero; the shortfall is only
    /// recorded here).
    #[serde(with = "rust_decimal::serde::str")]
    pub clawback_shortfall: Decimal,
    /// Of `clawback`, the points booked as debt because they were already
    /// spent (policy `debt`).
    #[serde(default, with = "rust_decimal::serde::str")]
    pub clawback_debt: Decimal,
    /// Spent points given back to their lots.
    #[serde(with = "rust_decimal::serde::str")]
    pub returned: Decimal,
    /// Of those, points whose lot had already expired: they expire at once.
    #[serde(with = "rust_decimal::serde::str")]
    pub returned_expired: Decimal,
    /// Balance before.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_before: Decimal,
    /// Balance after.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    /// The level the refund moved the account to, if it did (its spend
    /// fell below the level's threshold); published as
    /// `account.tier_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_change: Option<super::tiers::TierChange>,
    /// A repeat of the key (nothing written). Not stored or sent.
    #[serde(skip)]
    pub replayed: bool,
}

/// The result of a manual adjustment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdjustResult {
    /// Transaction id.
    pub transaction: i64,
    /// Account id.
    pub account: i64,
    /// Points added (positive) or deducted (negative).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// When added points expire, if they do.
    pub expires_at: Option<String>,
    /// Of the points added, those that paid the account's debt.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub debt_repaid: Decimal,
    /// Balance before.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_before: Decimal,
    /// Balance after.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    /// A repeat of the key (nothing written). Not stored or sent.
    #[serde(skip)]
    pub replayed: bool,
}

pub(crate) fn new_txn(
    tx: &Connection,
    key: &str,
    kind: &str,
    account: i64,
    receipt: Option<&str>,
    request: &str,
    stamp: &str,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO txns (idempotency_key, kind, account_id, receipt_id, request, result, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, '', ?6)",
        params![key, kind, account, receipt, request, stamp],
    )?;
    Ok(tx.last_insert_rowid())
}

fn entry(
    tx: &Connection,
    txn: i64,
    account: i64,
    lot: Option<i64>,
    kind: &str,
    amount: i64,
    stamp: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![txn, account, lot, kind, amount, stamp])?;
    Ok(())
}

/// Takes up to `want` units from the account's lots, `first` (a lot id)
/// before the rest, then soonest-expiring first. Returns what it took.
fn take_from_lots(
    tx: &Connection,
    txn: i64,
    account: i64,
    first: Option<i64>,
    want: i64,
    kind: &str,
    stamp: &str,
) -> rusqlite::Result<i64> {
    let lots: Vec<(i64, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT id, remaining FROM lots WHERE account_id = ?1 AND remaining > 0
             ORDER BY id != ?2, expires_at IS NULL, expires_at, id",
        )?;
        let rows = stmt.query_map(params![account, first.unwrap_or(-1)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut left = want;
    for (lot, remaining) in lots {
        if left == 0 {
            break;
        }
        let take = remaining.min(left);
        tx.execute(
            "UPDATE lots SET remaining = remaining - ?1 WHERE id = ?2",
            params![take, lot],
        )?;
        entry(tx, txn, account, Some(lot), kind, -take, stamp)?;
        left -= take;
    }
    Ok(want - left)
}

/// [`Embedded::refund`] at `now`, on the caller's connection (tests pick
/// `now` to move through expiry boundaries).
pub(crate) fn refund_tx(
    c: &mut Connection,
    p: &Programme,
    key: &str,
    sale: &SaleRef,
    amount: Option<Decimal>,
    now: OffsetDateTime,
) -> TxResult<RefundResult> {
    // The stored request a repeat of the key is compared with: its exact
    // text is part of every existing database, so it must not change.
    let request = json!({"sale": sale, "amount": amount.map(|a| a.to_string())}).to_string();
    let request = request.as_str();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(r) = replay(&tx, key, request)? {
        return Ok(r);
    }
    let row: Option<(i64, i64, String)> = match sale {
        SaleRef::Transaction(id) => tx
            .query_row(
                "SELECT id, account_id, result FROM txns WHERE kind = 'sale' AND id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?,
        SaleRef::Receipt(rid) => tx
            .query_row(
                "SELECT id, account_id, result FROM txns WHERE kind = 'sale' AND receipt_id = ?1
                 ORDER BY id DESC LIMIT 1",
                [rid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?,
    };
    let Some((sale_txn, account, sale_result)) = row else {
        return Ok(Err(LedgerError::UnknownSale));
    };
    let Ok(original) = serde_json::from_str::<CommitResult>(&sale_result) else {
        return Err(rusqlite::Error::InvalidQuery);
    };
    // What earlier refunds of this sale already covered.
    let marker = format!("refund-of:{sale_txn}");
    let already: Decimal = {
        let mut stmt =
            tx.prepare("SELECT result FROM txns WHERE kind = 'refund' AND receipt_id = ?1")?;
        let rows = stmt.query_map([&marker], |r| r.get::<_, String>(0))?;
        let mut sum = Decimal::ZERO;
        for r in rows {
            if let Ok(prev) = serde_json::from_str::<RefundResult>(&r?) {
                sum += prev.refunded;
            }
        }
        sum
    };
    let amount = amount.unwrap_or(original.total - already);
    let share = match rules::refund_share(
        &rules::CommittedSale {
            total: original.total,
            accrued: original.accrued,
            redeemed: original.redeemed,
            precision: p.precision,
        },
        already,
        amount,
    ) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.into())),
    };
    expire_due(&tx, account, now)?;
    let before = balance_units(&tx, account)?;
    let stamp = ts(now);
    let txn = new_txn(&tx, key, "refund", account, Some(&marker), request, &stamp)?;

    // Claw back the accrual, from the sale's own lot first.
    let sale_lot: Option<i64> = tx
        .query_row("SELECT id FROM lots WHERE txn_id = ?1", [sale_txn], |r| {
            r.get(0)
        })
        .optional()?;
    let want = units(share.clawback);
    let took = take_from_lots(&tx, txn, account, sale_lot, want, "clawback", &stamp)?;
    // What the lots could not give: owed, or forgiven, per the programme.
    let owed = match p.refund_shortfall {
        RefundShortfall::Debt if want > took => {
            let owed = want - took;
            tx.execute(
                "UPDATE accounts SET debt = debt + ?1 WHERE id = ?2",
                params![owed, account],
            )?;
            entry(&tx, txn, account, None, "debt", -owed, &stamp)?;
            owed
        }
        _ => 0,
    };

    // Give spent points back to the lots they came from, newest first.
    let spent: Vec<(i64, i64, Option<String>)> = {
        let mut stmt = tx.prepare(
            "SELECT e.lot_id, -e.amount, l.expires_at FROM entries e JOIN lots l ON l.id = e.lot_id
             WHERE e.txn_id = ?1 AND e.kind = 'redeem' ORDER BY e.id DESC",
        )?;
        let rows = stmt.query_map([sale_txn], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut left = units(share.return_points);
    let mut expired = 0;
    for (lot, taken, expires) in spent {
        if left == 0 {
            break;
        }
        let room: i64 = tx.query_row(
            "SELECT amount - remaining FROM lots WHERE id = ?1",
            [lot],
            |r| r.get(0),
        )?;
        let give = left.min(taken).min(room);
        if give == 0 {
            continue;
        }
        tx.execute(
            "UPDATE lots SET remaining = remaining + ?1 WHERE id = ?2",
            params![give, lot],
        )?;
        entry(&tx, txn, account, Some(lot), "refund_return", give, &stamp)?;
        if expires.as_deref().is_some_and(|e| e <= stamp.as_str()) {
            // Returned to a lot that has expired meanwhile: it expires now.
            tx.execute(
                "UPDATE lots SET remaining = remaining - ?1 WHERE id = ?2",
                params![give, lot],
            )?;
            entry(&tx, txn, account, Some(lot), "expire", -give, &stamp)?;
            expired += give;
        }
        left -= give;
    }
    let after = balance_units(&tx, account)?;
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
    };
    if !p.tiers.is_empty() {
        // Returned goods no longer count towards the account's level. The
        // evaluation reads refunds from their stored results, so this one's
        // is written first (and again, final, by `finish`).
        store_result(&tx, txn, &result)?;
        result.tier_change = super::tiers::evaluate_tx(&tx, p, account, now, "refund")?;
    }
    finish(tx, txn, result)
}

/// [`Embedded::adjust`] at `now`, on the caller's connection.
#[allow(clippy::too_many_arguments)]
pub(crate) fn adjust_tx(
    c: &mut Connection,
    p: &Programme,
    key: &str,
    number: &str,
    amount: Decimal,
    reason: &str,
    operator: &str,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> TxResult<AdjustResult> {
    // Same text as it always was: existing keys must keep replaying.
    let request = json!({
        "number": number, "amount": amount.to_string(), "reason": reason,
        "operator": operator, "expires_at": expires_at.map(ts),
    })
    .to_string();
    let request = request.as_str();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(r) = replay(&tx, key, request)? {
        return Ok(r);
    }
    let Some((account, _)) = card_account(&tx, number)? else {
        return Ok(Err(LedgerError::UnknownCard));
    };
    expire_due(&tx, account, now)?;
    let before = balance_units(&tx, account)?;
    let stamp = ts(now);
    let delta = units(amount);
    if delta < 0 && before < -delta {
        return Ok(Err(LedgerError::InsufficientBalance {
            balance: points(before.max(0)),
        }));
    }
    let txn = new_txn(&tx, key, "adjust", account, None, request, &stamp)?;
    let mut expires = None;
    let mut repaid = 0;
    if delta > 0 {
        let at = match expires_at {
            Some(t) => Some(ts(t)),
            None => match rules::expiry_of(p, now) {
                Ok(e) => e.map(ts),
                Err(e) => return Ok(Err(e.into())),
            },
        };
        let (lot, r) = accrue(&tx, txn, account, delta, "adjust", at.as_deref(), &stamp)?;
        repaid = r;
        if lot.is_some() {
            expires = at;
        }
    } else if delta < 0 {
        take_from_lots(&tx, txn, account, None, -delta, "adjust", &stamp)?;
    }
    let after = balance_units(&tx, account)?;
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
    finish(tx, txn, result)
}

/// [`Embedded::commit`] at `now`, on the caller's connection.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_tx(
    c: &mut Connection,
    p: &Programme,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
) -> TxResult<CommitResult> {
    let request = commit_request(number, receipt_id, lines, redeem);
    let request = request.as_str();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(r) = replay(&tx, key, request)? {
        return Ok(r);
    }
    let (account, status) = match card_account(&tx, number)? {
        Some(a) => a,
        None => (enrol(&tx, number, now)?, "active".to_owned()),
    };
    if status != "active" {
        return Ok(Err(LedgerError::Inactive(status)));
    }
    expire_due(&tx, account, now)?;
    let before = balance_units(&tx, account)?;
    let overrides = priced_overrides(&tx, p, account)?;
    let q = match rules::quote(p, &overrides, lines, points(before.max(0)), redeem) {
        Ok(q) => q,
        Err(e) => return Ok(Err(e.into())),
    };
    let stamp = ts(now);
    tx.prepare_cached(
        "INSERT INTO txns (idempotency_key, kind, account_id, receipt_id, request, result, created_at)
         VALUES (?1, 'sale', ?2, ?3, ?4, '', ?5)",
    )?
    .execute(params![key, account, receipt_id, request, stamp])?;
    let txn = tx.last_insert_rowid();

    // Redeem: soonest-expiring lots first (lots without expiry last).
    let mut left = units(q.redeem);
    if left > 0 {
        let mut lots = Vec::new();
        {
            let mut stmt = tx.prepare(
                "SELECT id, remaining FROM lots WHERE account_id = ?1 AND remaining > 0
                 ORDER BY expires_at IS NULL, expires_at, id",
            )?;
            let rows = stmt.query_map([account], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            for r in rows {
                lots.push(r?);
            }
        }
        for (lot, remaining) in lots {
            if left == 0 {
                break;
            }
            let take = remaining.min(left);
            tx.execute(
                "UPDATE lots SET remaining = remaining - ?1 WHERE id = ?2",
                params![take, lot],
            )?;
            tx.execute(
                "INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
                 VALUES (?1, ?2, ?3, 'redeem', ?4, ?5)",
                params![txn, account, lot, -take, stamp],
            )?;
            left -= take;
        }
        if left != 0 {
            // The balance said yes but the lots say no: a broken invariant.
            return Err(rusqlite::Error::InvalidQuery);
        }
    }

    // Accrue as a new lot.
    let accrued = units(q.accrual);
    let expires = match rules::expiry_of(p, now) {
        Ok(e) => e.map(ts),
        Err(e) => return Ok(Err(e.into())),
    };
    let (lot, repaid) = if accrued > 0 {
        accrue(
            &tx,
            txn,
            account,
            accrued,
            "accrue",
            expires.as_deref(),
            &stamp,
        )?
    } else {
        (None, 0)
    };
    // The sale counts towards the account's level in the same transaction;
    // a new level prices the next sale, not this one.
    let tier_change = super::tiers::evaluate_tx(&tx, p, account, now, "sale")?;
    // The summary the bonus block prints, from this same transaction: no
    // second trip to the writer after the commit. The balance moved by
    // exactly what this sale posted (expiries were posted before `before`).
    let balance_after = before - units(q.redeem) + accrued;
    // Tests and the proptests run with debug assertions: they hold this
    // arithmetic to the books.
    #[cfg(debug_assertions)]
    debug_assert_eq!(balance_after, balance_units(&tx, account)?);
    let mut after = summary_with(&tx, account, status, balance_after, now)?;
    if !p.tiers.is_empty() {
        super::tiers::annotate(&tx, p, &mut after, now)?;
    }
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
        balance_before: points(before),
        balance_after: after.balance,
        next_expiry: after.next_expiry,
        tier: after.tier,
        tier_change,
        replayed: false,
    };
    finish(tx, txn, result)
}

/// The stored result of `key`, if it was used: the same request gets it
/// back; a different one is refused.
fn replay<T: serde::de::DeserializeOwned + Replayable>(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    request: &str,
) -> rusqlite::Result<Option<Result<T, LedgerError>>> {
    let row: Option<(String, String)> = tx
        .prepare_cached("SELECT request, result FROM txns WHERE idempotency_key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.map(|(req, result)| {
        if req != request {
            Err(LedgerError::KeyReused)
        } else {
            let mut r: T = serde_json::from_str(&result).map_err(|_| LedgerError::KeyReused)?;
            r.mark_replayed();
            Ok(r)
        }
    }))
}

fn card_account(tx: &Connection, number: &str) -> rusqlite::Result<Option<(i64, String)>> {
    tx.prepare_cached(
        "SELECT a.id, CASE WHEN c.status != 'active' THEN c.status ELSE a.status END
         FROM cards c JOIN accounts a ON a.id = c.account_id WHERE c.number = ?1",
    )?
    .query_row([number], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

fn debt_units(tx: &Connection, account: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached("SELECT debt FROM accounts WHERE id = ?1")?
        .query_row([account], |r| r.get(0))
}

fn enrol(tx: &Connection, number: &str, now: OffsetDateTime) -> rusqlite::Result<i64> {
    tx.execute("INSERT INTO accounts (created_at) VALUES (?1)", [ts(now)])?;
    let account = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO cards (number, account_id) VALUES (?1, ?2)",
        params![number, account],
    )?;
    Ok(account)
}

// The hot statements of the money path go through SQLite's statement
// cache (`prepare_cached`): parsing them anew on every sale costs more than
// running them.
fn balance_units(tx: &Connection, account: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached("SELECT COALESCE(SUM(amount), 0) FROM entries WHERE account_id = ?1")?
        .query_row([account], |r| r.get(0))
}

/// Posts an `expire` entry for every lot whose time has come, in its own
/// transaction row so the history shows it.
fn expire_due(tx: &Connection, account: i64, now: OffsetDateTime) -> rusqlite::Result<()> {
    let stamp = ts(now);
    let due: Vec<(i64, i64)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, remaining FROM lots
             WHERE account_id = ?1 AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?2",
        )?;
        let rows = stmt.query_map(params![account, stamp], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if due.is_empty() {
        return Ok(());
    }
    // The first lot's id keeps the key unique: two expiries of the same
    // account can fall in the same second (a lot added with a past
    // `expires_at`, then two operations within that second), and a
    // repeated key would fail the whole operation on the UNIQUE index.
    let key = format!("expire:{account}:{stamp}:{}", due[0].0);
    tx.execute(
        "INSERT INTO txns (idempotency_key, kind, account_id, request, result, created_at)
         VALUES (?1, 'expire', ?2, '', '', ?3)",
        params![key, account, stamp],
    )?;
    let txn = tx.last_insert_rowid();
    for (lot, remaining) in due {
        tx.execute("UPDATE lots SET remaining = 0 WHERE id = ?1", [lot])?;
        tx.execute(
            "INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
             VALUES (?1, ?2, ?3, 'expire', ?4, ?5)",
            params![txn, account, lot, -remaining, stamp],
        )?;
    }
    Ok(())
}

fn summary(
    tx: &Connection,
    account: i64,
    status: String,
    now: OffsetDateTime,
) -> rusqlite::Result<AccountSummary> {
    let balance = balance_units(tx, account)?;
    summary_with(tx, account, status, balance, now)
}

/// [`summary`] with the balance (in units) already known.
fn summary_with(
    tx: &Connection,
    account: i64,
    status: String,
    balance: i64,
    now: OffsetDateTime,
) -> rusqlite::Result<AccountSummary> {
    let next: Option<(String, i64)> = tx
        .prepare_cached(
            "SELECT expires_at, SUM(remaining) FROM lots
             WHERE account_id = ?1 AND remaining > 0 AND expires_at > ?2
             GROUP BY expires_at ORDER BY expires_at LIMIT 1",
        )?
        .query_row(params![account, ts(now)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let debt = debt_units(tx, account)?;
    Ok(AccountSummary {
        account,
        status,
        balance: points(balance),
        debt: points(debt),
        next_expiry: next.map(|(at, amount)| NextExpiry {
            amount: points(amount),
            at,
        }),
        // Filled in by `tiers::annotate` where the programme is at hand.
        tier: None,
        tier_progress: None,
    })
}

/// Every invariant of every account: balance = Σ entries = Σ lot
/// remainders − debt, the debt ≥ 0 and equal to what its lot-less entries
/// (`debt`, `debt_repay`) leave owed, each lot's remainder = Σ its entries,
/// no lot below zero or above its amount. Returns the violations found,
/// empty when all hold.
pub fn verify(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut stmt = c.prepare(
        "SELECT a.id,
                (SELECT COALESCE(SUM(amount), 0) FROM entries e WHERE e.account_id = a.id),
                (SELECT COALESCE(SUM(remaining), 0) FROM lots l WHERE l.account_id = a.id),
                a.debt,
                (SELECT COALESCE(SUM(amount), 0) FROM entries e
                 WHERE e.account_id = a.id AND e.lot_id IS NULL)
         FROM accounts a",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for r in rows {
        let (account, entries, lots, debt, lotless) = r?;
        if debt < 0 {
            problems.push(format!("account {account}: debt {} < 0", points(debt)));
        }
        if entries != lots - debt {
            problems.push(format!(
                "account {account}: entries sum to {} but lots hold {} and the debt is {}",
                points(entries),
                points(lots),
                points(debt)
            ));
        }
        if lotless != -debt {
            problems.push(format!(
                "account {account}: debt entries leave {} owed but the debt is {}",
                points(-lotless),
                points(debt)
            ));
        }
    }
    let bad: i64 = c.query_row(
        "SELECT COUNT(*) FROM lots WHERE remaining < 0 OR remaining > amount",
        [],
        |r| r.get(0),
    )?;
    if bad > 0 {
        problems.push(format!("{bad} lots outside 0..=amount"));
    }
    // Every entry names its lot, so each lot's entries must add up to what
    // is left of it; a sum that only matches per account could hide points
    // moved between lots (spent from one, returned to another).
    let mut stmt = c.prepare(
        "SELECT l.id, l.remaining, COALESCE(SUM(e.amount), 0)
         FROM lots l LEFT JOIN entries e ON e.lot_id = l.id
         GROUP BY l.id HAVING l.remaining != COALESCE(SUM(e.amount), 0)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for r in rows {
        let (lot, remaining, sum) = r?;
        problems.push(format!(
            "lot {lot}: entries sum to {} but {} remains",
            points(sum),
            points(remaining)
        ));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sale(total: u32) -> Vec<SaleLine> {
        vec![SaleLine {
            sku: "A1".into(),
            name: "x".into(),
            category: "general".into(),
            qty: Decimal::ONE,
            price: Decimal::from(total),
            discount: Decimal::ZERO,
        }]
    }

    fn open() -> (tempfile::TempDir, Store, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Store::open(&path).unwrap();
        let c = Connection::open(&path).unwrap();
        (dir, store, c)
    }

    const CARD: &str = "6035000011112222";

    #[test]
    fn points_expire_at_local_midnight_after_the_last_valid_day() {
        let (_dir, _store, mut c) = open();
        // Moscow time; 6 months.
        let p = Programme::default();
        assert_eq!(p.utc_offset_minutes, 180);
        // 01:30 on 16 January in Moscow, still 15 January in UTC: the
        // local date is what counts. Last valid day 16 July; gone at
        // 00:00 +03:00 on 17 July = 21:00 UTC on 16 July.
        let accrued_at = datetime!(2026-01-15 22:30:00 UTC);
        let boundary = datetime!(2026-07-17 00:00:00 +03:00);
        let r = commit_tx(
            &mut c,
            &p,
            "k1",
            CARD,
            "R1",
            &sale(1000),
            Decimal::ZERO,
            accrued_at,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.accrued, Decimal::from(50));
        assert_eq!(
            r.accrued_expires_at.as_deref(),
            Some("2026-07-16T21:00:00Z")
        );

        // One second before: all 50 there, and spendable.
        let just_before = boundary - time::Duration::SECOND;
        let s = resolve_tx(&mut c, CARD, just_before).unwrap().unwrap();
        assert_eq!(s.balance, Decimal::from(50));
        let spend = commit_tx(
            &mut c,
            &p,
            "k2",
            CARD,
            "R2",
            &sale(100),
            Decimal::from(20),
            just_before,
        )
        .unwrap()
        .unwrap();
        assert_eq!(spend.redeemed, Decimal::from(20));
        // 5 % of the 80 paid in money.
        assert_eq!(spend.balance_after, Decimal::from(34));

        // At the boundary the first lot's last 30 points are posted as an
        // `expire` entry; the new lot (accrued in July) stays.
        let s = resolve_tx(&mut c, CARD, boundary).unwrap().unwrap();
        assert_eq!(s.balance, Decimal::from(4));
        let page = history_tx(&mut c, &AccountRef::Number(CARD.into()), None, 10, boundary)
            .unwrap()
            .unwrap();
        let newest = &page.transactions[0];
        assert_eq!(newest.kind, "expire");
        assert_eq!(newest.created_at, "2026-07-16T21:00:00Z");
        assert_eq!(newest.entries.len(), 1);
        assert_eq!(newest.entries[0].kind, "expire");
        assert_eq!(newest.entries[0].amount, Decimal::from(-30));
        assert_eq!(
            newest.entries[0].lot_expires_at.as_deref(),
            Some("2026-07-16T21:00:00Z")
        );
        // Nothing more to spend from it: redeeming 5 is over the balance.
        let over = commit_tx(
            &mut c,
            &p,
            "k3",
            CARD,
            "R3",
            &sale(100),
            Decimal::from(5),
            boundary,
        )
        .unwrap();
        assert!(matches!(
            over,
            Err(LedgerError::Rules(RulesError::RedeemTooHigh { .. }))
        ));
        assert!(verify(&c).unwrap().is_empty());
    }

    #[test]
    fn two_expiries_in_one_second_do_not_collide() {
        let (_dir, _store, mut c) = open();
        let p = Programme::default();
        let now = datetime!(2026-03-01 12:00:00 UTC);
        commit_tx(&mut c, &p, "s", CARD, "R", &sale(100), Decimal::ZERO, now)
            .unwrap()
            .unwrap();
        let past = Some(now - time::Duration::HOUR);
        let one = Decimal::ONE;
        adjust_tx(&mut c, &p, "a1", CARD, one, "r", "o", past, now)
            .unwrap()
            .unwrap();
        resolve_tx(&mut c, CARD, now).unwrap();
        adjust_tx(&mut c, &p, "a2", CARD, one, "r", "o", past, now)
            .unwrap()
            .unwrap();
        // Before the fix this second expiry reused the first one's key
        // and failed on the UNIQUE index.
        let s = resolve_tx(&mut c, CARD, now).unwrap().unwrap();
        assert_eq!(s.balance, Decimal::from(5));
        assert!(verify(&c).unwrap().is_empty());
    }

    #[test]
    fn a_refund_of_spent_points_clamps_or_goes_into_debt() {
        let now = datetime!(2026-03-01 12:00:00 UTC);
        for policy in [RefundShortfall::Clamp, RefundShortfall::Debt] {
            let (_dir, _store, mut c) = open();
            let p = Programme {
                refund_shortfall: policy,
                ..Programme::default()
            };
            // 50 accrued, then 40 of them spent elsewhere.
            let sale1 = commit_tx(
                &mut c,
                &p,
                "s1",
                CARD,
                "R1",
                &sale(1000),
                Decimal::ZERO,
                now,
            )
            .unwrap()
            .unwrap();
            assert_eq!(sale1.accrued, Decimal::from(50));
            adjust_tx(
                &mut c,
                &p,
                "a1",
                CARD,
                Decimal::from(-40),
                "r",
                "o",
                None,
                now,
            )
            .unwrap()
            .unwrap();
            let r = refund_tx(
                &mut c,
                &p,
                "f1",
                &SaleRef::Transaction(sale1.transaction),
                None,
                now,
            )
            .unwrap()
            .unwrap();
            assert!(verify(&c).unwrap().is_empty(), "{policy:?}");
            let s = resolve_tx(&mut c, CARD, now).unwrap().unwrap();
            match policy {
                RefundShortfall::Clamp => {
                    assert_eq!(r.clawback, Decimal::from(10));
                    assert_eq!(r.clawback_shortfall, Decimal::from(40));
                    assert_eq!(r.clawback_debt, Decimal::ZERO);
                    assert_eq!(r.balance_after, Decimal::ZERO);
                    assert_eq!((s.balance, s.debt), (Decimal::ZERO, Decimal::ZERO));
                }
                RefundShortfall::Debt => {
                    assert_eq!(r.clawback, Decimal::from(50));
                    assert_eq!(r.clawback_shortfall, Decimal::ZERO);
                    assert_eq!(r.clawback_debt, Decimal::from(40));
                    assert_eq!(r.balance_after, Decimal::from(-40));
                    assert_eq!((s.balance, s.debt), (Decimal::from(-40), Decimal::from(40)));
                    // Nothing to redeem while in debt.
                    let over =
                        commit_tx(&mut c, &p, "s2", CARD, "R2", &sale(100), Decimal::ONE, now)
                            .unwrap();
                    assert!(matches!(
                        over,
                        Err(LedgerError::Rules(RulesError::RedeemTooHigh { .. }))
                    ));
                    // A 1000 sale accrues 50: 40 pay the debt, 10 become a lot.
                    let s3 = commit_tx(
                        &mut c,
                        &p,
                        "s3",
                        CARD,
                        "R3",
                        &sale(1000),
                        Decimal::ZERO,
                        now,
                    )
                    .unwrap()
                    .unwrap();
                    assert_eq!(s3.accrued, Decimal::from(50));
                    assert_eq!(s3.debt_repaid, Decimal::from(40));
                    assert_eq!(s3.balance_after, Decimal::from(10));
                    let page = history_tx(&mut c, &AccountRef::Number(CARD.into()), None, 1, now)
                        .unwrap()
                        .unwrap();
                    let kinds: Vec<(&str, Decimal, bool)> = page.transactions[0]
                        .entries
                        .iter()
                        .map(|e| (e.kind.as_str(), e.amount, e.lot.is_some()))
                        .collect();
                    assert_eq!(
                        kinds,
                        [
                            ("debt_repay", Decimal::from(40), false),
                            ("accrue", Decimal::from(10), true)
                        ]
                    );
                    let s = resolve_tx(&mut c, CARD, now).unwrap().unwrap();
                    assert_eq!((s.balance, s.debt), (Decimal::from(10), Decimal::ZERO));
                    // A manual accrual repays too.
                    let r2 = commit_tx(
                        &mut c,
                        &p,
                        "s4",
                        CARD,
                        "R4",
                        &sale(200),
                        Decimal::from(10),
                        now,
                    )
                    .unwrap()
                    .unwrap();
                    assert_eq!(r2.balance_after, Decimal::from(9));
                    assert!(verify(&c).unwrap().is_empty());
                }
            }
        }
    }

    #[test]
    fn verify_finds_a_debt_that_entries_do_not_explain() {
        let (_dir, _store, mut c) = open();
        let p = Programme::default();
        let now = datetime!(2026-03-01 12:00:00 UTC);
        commit_tx(&mut c, &p, "s", CARD, "R", &sale(100), Decimal::ZERO, now)
            .unwrap()
            .unwrap();
        c.execute("UPDATE accounts SET debt = 10000", []).unwrap();
        let problems = verify(&c).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("the debt is 1"), "{problems:?}");
    }

    #[test]
    fn overrides_are_stored_per_account_and_replayed_by_key() {
        let (_dir, _store, mut c) = open();
        let p = Programme::default();
        let now = datetime!(2026-03-01 12:00:00 UTC);
        let r = commit_tx(&mut c, &p, "s", CARD, "R", &sale(100), Decimal::ZERO, now)
            .unwrap()
            .unwrap();
        let mut o = AccountOverrides {
            cap_percent: Some(Decimal::from(20)),
            ..Default::default()
        };
        o.categories.insert(
            "bar".into(),
            CategoryOverride {
                cap_percent: Some(Decimal::from(100)),
                accrual_percent: None,
            },
        );
        let set = set_overrides_tx(&mut c, Some("o1"), r.account, &o, now)
            .unwrap()
            .unwrap();
        assert!(!set.replayed);
        assert_eq!(overrides_of(&c, r.account).unwrap(), o);
        let again = set_overrides_tx(&mut c, Some("o1"), r.account, &o, now)
            .unwrap()
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.overrides, o);
        let other = set_overrides_tx(
            &mut c,
            Some("o1"),
            r.account,
            &AccountOverrides::default(),
            now,
        )
        .unwrap();
        assert!(matches!(other, Err(LedgerError::KeyReused)));
        // Without a key: cleared.
        set_overrides_tx(&mut c, None, r.account, &AccountOverrides::default(), now)
            .unwrap()
            .unwrap();
        assert_eq!(
            overrides_of(&c, r.account).unwrap(),
            AccountOverrides::default()
        );
        assert!(matches!(
            set_overrides_tx(&mut c, None, 99, &o, now).unwrap(),
            Err(LedgerError::UnknownAccount)
        ));
    }

    #[test]
    fn history_pages_newest_first() {
        let (_dir, _store, mut c) = open();
        let p = Programme::default();
        let now = datetime!(2026-03-01 12:00:00 UTC);
        for i in 0..5 {
            commit_tx(
                &mut c,
                &p,
                &format!("k{i}"),
                CARD,
                &format!("R{i}"),
                &sale(100),
                Decimal::ZERO,
                now,
            )
            .unwrap()
            .unwrap();
        }
        let who = AccountRef::Number(CARD.into());
        let first = history_tx(&mut c, &who, None, 2, now).unwrap().unwrap();
        let ids: Vec<i64> = first.transactions.iter().map(|t| t.transaction).collect();
        assert_eq!(ids, [5, 4]);
        assert_eq!(first.next_cursor, Some(4));
        assert_eq!(first.balance, Decimal::from(25));
        let second = history_tx(&mut c, &who, first.next_cursor, 2, now)
            .unwrap()
            .unwrap();
        assert_eq!(second.next_cursor, Some(2));
        let last = history_tx(&mut c, &who, second.next_cursor, 2, now)
            .unwrap()
            .unwrap();
        assert_eq!(last.transactions.len(), 1);
        assert_eq!(last.transactions[0].receipt_id.as_deref(), Some("R0"));
        assert_eq!(last.next_cursor, None);
        // Exactly a full last page: no cursor to an empty page.
        let all = history_tx(&mut c, &who, None, 5, now).unwrap().unwrap();
        assert_eq!(all.next_cursor, None);
        assert!(matches!(
            history_tx(&mut c, &AccountRef::Account(99), None, 5, now).unwrap(),
            Err(LedgerError::UnknownAccount)
        ));
    }
}
