//! The postings every operation is made of: transaction rows with their
//! origin, entries, lots taken and accrued, expiries, balances and
//! summaries, and the replay of an idempotency key. Each works inside the
//! caller's transaction on any [`Db`].

use serde::Serialize;
use time::OffsetDateTime;

use super::{AccountSummary, LedgerError, NextExpiry, TxResult, points, ts};
use crate::ledger::db::{Db, DbError, Dialect, Row, args};
use crate::ledger::origin::Origin;
use crate::ledger::rules::{AccountOverrides, CategoryOverride, Programme};
use crate::ledger::types::Replayable;

/// An account's own percentages; unreadable values count as unset. The
/// one place an account's overrides are computed (quote and commit both
/// come here).
pub(super) fn overrides_of(db: &dyn Db, account: i64) -> Result<AccountOverrides, DbError> {
    let (a, cp, cats): (Option<String>, Option<String>, Option<String>) = db.query_row(
        "SELECT accrual_pct, cap_pct, category_overrides FROM accounts WHERE id = ?1",
        args![account],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(parse_overrides(a, cp, cats))
}

/// The account's own percentages from their stored columns
/// (`accrual_pct`, `cap_pct`, `category_overrides`).
fn parse_overrides(
    a: Option<String>,
    cp: Option<String>,
    cats: Option<String>,
) -> AccountOverrides {
    AccountOverrides {
        accrual_percent: a.and_then(|s| s.parse().ok()),
        cap_percent: cp.and_then(|s| s.parse().ok()),
        categories: cats
            .and_then(|s| {
                serde_json::from_str::<std::collections::BTreeMap<String, CategoryOverride>>(&s)
                    .ok()
            })
            .unwrap_or_default(),
    }
}

/// [`overrides_of`] with the account's tier merged in (per-customer
/// setting > tier > programme default): what quote and commit price with.
pub(super) fn priced_overrides(
    db: &dyn Db,
    p: &Programme,
    account: i64,
) -> Result<AccountOverrides, DbError> {
    priced_overrides_from(db, p, account, overrides_of(db, account)?)
}

/// [`priced_overrides`] from the account's own percentages read already.
pub(super) fn priced_overrides_from(
    db: &dyn Db,
    p: &Programme,
    account: i64,
    mut own: AccountOverrides,
) -> Result<AccountOverrides, DbError> {
    crate::ledger::tiers::merge_overrides(db, p, account, &mut own)?;
    Ok(own)
}

/// Adds `amount` units (> 0) that `txn` gives the account: its debt is paid
/// first (a `debt_repay` entry without a lot), the rest becomes a new lot
/// posted as a `kind` entry, held until `available` when that is set (the
/// accrual window). Returns the lot, if any, and the units repaid.
#[allow(clippy::too_many_arguments)]
pub(crate) fn accrue(
    db: &dyn Db,
    txn: i64,
    account: i64,
    amount: i64,
    kind: &str,
    expires: Option<&str>,
    available: Option<&str>,
    stamp: &str,
) -> Result<(Option<i64>, i64), DbError> {
    let debt = debt_units(db, account)?;
    accrue_owing(
        db, txn, account, amount, debt, kind, expires, available, stamp,
    )
}

/// [`accrue`] for a caller that knows the account's `debt` (read in this
/// transaction, after the account was taken): one read fewer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn accrue_owing(
    db: &dyn Db,
    txn: i64,
    account: i64,
    amount: i64,
    debt: i64,
    kind: &str,
    expires: Option<&str>,
    available: Option<&str>,
    stamp: &str,
) -> Result<(Option<i64>, i64), DbError> {
    let repay = debt.min(amount).max(0);
    if repay > 0 {
        db.execute(
            "UPDATE accounts SET debt = debt - ?1 WHERE id = ?2",
            args![repay, account],
        )?;
        entry(db, txn, account, None, "debt_repay", repay, stamp)?;
    }
    let rest = amount - repay;
    if rest <= 0 {
        return Ok((None, repay));
    }
    let lot = insert_lot(db, txn, account, rest, expires, available, stamp)?;
    entry(db, txn, account, Some(lot), kind, rest, stamp)?;
    Ok((Some(lot), repay))
}

/// Inserts an open lot of `amount` units and keeps the account's next
/// expiry (the earliest expiry of its open lots) right; the caller posts
/// its entry. Returns the lot's id.
pub(crate) fn new_lot(
    db: &dyn Db,
    txn: i64,
    account: i64,
    amount: i64,
    expires: Option<&str>,
    stamp: &str,
) -> Result<i64, DbError> {
    insert_lot(db, txn, account, amount, expires, None, stamp)
}

/// [`new_lot`] held until `available` (the accrual window), if set.
fn insert_lot(
    db: &dyn Db,
    txn: i64,
    account: i64,
    amount: i64,
    expires: Option<&str>,
    available: Option<&str>,
    stamp: &str,
) -> Result<i64, DbError> {
    let lot = db.insert(
        "INSERT INTO lots (account_id, txn_id, amount, remaining, expires_at, created_at,
                           available_at)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6) RETURNING id",
        args![account, txn, amount, expires, stamp, available],
    )?;
    if let Some(at) = expires {
        db.execute(
            "UPDATE accounts SET next_expiry = ?1
             WHERE id = ?2 AND (next_expiry IS NULL OR next_expiry > ?1)",
            args![at, account],
        )?;
    }
    Ok(lot)
}

/// Recomputes the account's next expiry after its lots' remainders
/// changed (taken, expired, returned): one seek in the open-lots index
/// `(account_id, expires_at) WHERE remaining > 0`, however many lots the
/// account has.
/// Returns the new value.
pub(crate) fn refresh_next_expiry(db: &dyn Db, account: i64) -> Result<Option<String>, DbError> {
    db.query_row(
        "UPDATE accounts SET next_expiry =
            (SELECT MIN(expires_at) FROM lots
             WHERE account_id = ?1 AND remaining > 0 AND expires_at IS NOT NULL)
         WHERE id = ?1 RETURNING next_expiry",
        args![account],
        |r| r.get(0),
    )
}

/// Stores an operation's result with its transaction row (what a repeat of
/// its key returns); the runner commits.
pub(super) fn finish<T: Serialize>(db: &dyn Db, txn: i64, result: T) -> TxResult<T> {
    store_result(db, txn, &result)?;
    Ok(Ok(result))
}

/// Stores `result` on the transaction row: what a repeat of its key gets.
pub(crate) fn store_result<T: Serialize>(db: &dyn Db, txn: i64, result: &T) -> Result<(), DbError> {
    let stored = serde_json::to_string(result)
        .map_err(|_| DbError::Invariant("a result that does not serialize"))?;
    db.execute(
        "UPDATE txns SET result = ?1 WHERE id = ?2",
        args![stored, txn],
    )?;
    Ok(())
}

/// Inserts a transaction row (its result is stored later by
/// [`store_result`]) recording where it came from and, for sales and
/// returns, the cashier the POS named; returns its id. An empty store or
/// terminal is stored as NULL (not recorded).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_txn(
    db: &dyn Db,
    key: &str,
    kind: &str,
    account: i64,
    receipt: Option<&str>,
    request: &str,
    stamp: &str,
    origin: &Origin,
    cashier: Option<&str>,
) -> Result<i64, DbError> {
    // A transaction of the account is a write of its row, even one that
    // moves no points (see `card_account_locked`).
    touch_account(db, account)?;
    let store = Some(origin.store.as_str()).filter(|s| !s.is_empty());
    let terminal = Some(origin.terminal.as_str()).filter(|s| !s.is_empty());
    db.insert(
        "INSERT INTO txns (idempotency_key, kind, account_id, receipt_id, request, result,
                           created_at, store_id, terminal_id, cashier)
         VALUES (?1, ?2, ?3, ?4, ?5, '', ?6, ?7, ?8, ?9) RETURNING id",
        args![
            key, kind, account, receipt, request, stamp, store, terminal, cashier
        ],
    )
}

/// [`new_txn`] that claims `key`: `None` when a transaction holds it
/// already (the caller answers with [`replay`]). Claiming by insert
/// instead of looking the key up first matters on PostgreSQL: under
/// SERIALIZABLE a lookup of a key not there yet predicate-locks the index
/// page that every concurrent sale's new key goes into, so concurrent sales
/// on different cards conflicted and retried; the insert's own uniqueness
/// check takes no such lock.
#[allow(clippy::too_many_arguments)]
pub(crate) fn claim_txn(
    db: &dyn Db,
    key: &str,
    kind: &str,
    account: i64,
    receipt: Option<&str>,
    request: &str,
    stamp: &str,
    origin: &Origin,
    cashier: Option<&str>,
) -> Result<Option<i64>, DbError> {
    let store = Some(origin.store.as_str()).filter(|s| !s.is_empty());
    let terminal = Some(origin.terminal.as_str()).filter(|s| !s.is_empty());
    db.query_opt(
        "INSERT INTO txns (idempotency_key, kind, account_id, receipt_id, request, result,
                           created_at, store_id, terminal_id, cashier)
         VALUES (?1, ?2, ?3, ?4, ?5, '', ?6, ?7, ?8, ?9)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        args![
            key, kind, account, receipt, request, stamp, store, terminal, cashier
        ],
        |r| r.get(0),
    )
}

/// Posts an entry and adds it to the account's maintained balance (the
/// one place entries are written, so balance = Σ entries holds).
pub(crate) fn entry(
    db: &dyn Db,
    txn: i64,
    account: i64,
    lot: Option<i64>,
    kind: &str,
    amount: i64,
    stamp: &str,
) -> Result<(), DbError> {
    if db.dialect() == Dialect::Postgres {
        // One round trip: the entry and the balance in one statement (a
        // data-modifying WITH, which SQLite does not have).
        db.execute(
            "WITH e AS (INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
                        VALUES (?1, ?2, ?3, ?4, ?5, ?6))
             UPDATE accounts SET balance = balance + ?5 WHERE id = ?2",
            args![txn, account, lot, kind, amount, stamp],
        )?;
        return Ok(());
    }
    db.execute(
        "INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![txn, account, lot, kind, amount, stamp],
    )?;
    db.execute(
        "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
        args![amount, account],
    )?;
    Ok(())
}

/// Which lots a take may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Take {
    /// Only lots spendable at the take's time (a redemption: held points
    /// cannot be spent).
    Spendable,
    /// Held lots too, after the spendable ones would come by expiry (a
    /// refund's clawback, an operator's deduction).
    Any,
}

/// Takes up to `want` units from the account's lots, `first` (a lot id)
/// before the rest, then soonest-expiring first (lots without expiry
/// last). `which` says whether lots still held (`available_at` after
/// `stamp`) may be taken. Returns what it took.
#[allow(clippy::too_many_arguments)]
pub(super) fn take_from_lots(
    db: &dyn Db,
    txn: i64,
    account: i64,
    first: Option<i64>,
    want: i64,
    kind: &str,
    stamp: &str,
    which: Take,
) -> Result<i64, DbError> {
    take_from_lots_tracked(db, txn, account, first, want, kind, stamp, which).map(|(took, _)| took)
}

/// [`take_from_lots`], also returning the account's next expiry when the
/// take changed it (`Some`: the new value), `None` when nothing was taken.
#[allow(clippy::too_many_arguments)]
pub(super) fn take_from_lots_tracked(
    db: &dyn Db,
    txn: i64,
    account: i64,
    first: Option<i64>,
    want: i64,
    kind: &str,
    stamp: &str,
    which: Take,
) -> Result<(i64, Option<Option<String>>), DbError> {
    if want <= 0 {
        return Ok((0, None));
    }
    let mut left = want;
    // The sale's own lot first (a refund's clawback).
    if let Some(first) = first {
        let open: Option<i64> = db.query_opt(
            "SELECT remaining FROM lots WHERE id = ?1 AND account_id = ?2 AND remaining > 0",
            args![first, account],
            |r| r.get(0),
        )?;
        if let Some(remaining) = open {
            left -= take_lot(db, txn, account, first, remaining, left, kind, stamp)?;
        }
    }
    // Then soonest-expiring first, a few lots at a time: a lot taken whole
    // leaves the open-lots index, so each page starts at the front again
    // and only the lots actually taken are read, however many the account
    // holds.
    // A held lot is skipped by the filter on `available_at`: held lots are
    // at most the accruals of the window, so the skip stays short.
    let spendable = which == Take::Spendable;
    for dated in [true, false] {
        let sql = match (dated, spendable) {
            (true, false) => {
                "SELECT id, remaining FROM lots
                 WHERE account_id = ?1 AND remaining > 0 AND expires_at IS NOT NULL
                 ORDER BY expires_at, id LIMIT ?2"
            }
            (false, false) => {
                "SELECT id, remaining FROM lots
                 WHERE account_id = ?1 AND remaining > 0 AND expires_at IS NULL
                 ORDER BY id LIMIT ?2"
            }
            (true, true) => {
                "SELECT id, remaining FROM lots
                 WHERE account_id = ?1 AND remaining > 0 AND expires_at IS NOT NULL
                   AND (available_at IS NULL OR available_at <= ?3)
                 ORDER BY expires_at, id LIMIT ?2"
            }
            (false, true) => {
                "SELECT id, remaining FROM lots
                 WHERE account_id = ?1 AND remaining > 0 AND expires_at IS NULL
                   AND (available_at IS NULL OR available_at <= ?3)
                 ORDER BY id LIMIT ?2"
            }
        };
        while left > 0 {
            let page: Vec<(i64, i64)> = if spendable {
                db.query_map(sql, args![account, TAKE_PAGE, stamp], |r: &Row| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
            } else {
                db.query_map(sql, args![account, TAKE_PAGE], |r: &Row| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
            };
            let full = page.len() as i64 == TAKE_PAGE;
            for (lot, remaining) in page {
                if left == 0 {
                    break;
                }
                left -= take_lot(db, txn, account, lot, remaining, left, kind, stamp)?;
            }
            if !full {
                break;
            }
        }
    }
    let next = if left < want {
        Some(refresh_next_expiry(db, account)?)
    } else {
        None
    };
    Ok((want - left, next))
}

/// Lots read per page while taking points.
const TAKE_PAGE: i64 = 16;

/// Takes up to `left` units from one lot holding `remaining`; returns what
/// it took.
#[allow(clippy::too_many_arguments)]
fn take_lot(
    db: &dyn Db,
    txn: i64,
    account: i64,
    lot: i64,
    remaining: i64,
    left: i64,
    kind: &str,
    stamp: &str,
) -> Result<i64, DbError> {
    let take = remaining.min(left);
    if take <= 0 {
        return Ok(0);
    }
    db.execute(
        "UPDATE lots SET remaining = remaining - ?1 WHERE id = ?2",
        args![take, lot],
    )?;
    entry(db, txn, account, Some(lot), kind, -take, stamp)?;
    Ok(take)
}

/// The stored result of `key`, if it was used: the same request gets it
/// back; a different one is refused.
pub(super) fn replay<T: serde::de::DeserializeOwned + Replayable>(
    db: &dyn Db,
    key: &str,
    request: &str,
) -> Result<Option<Result<T, LedgerError>>, DbError> {
    let row: Option<(String, String)> = db.query_opt(
        "SELECT request, result FROM txns WHERE idempotency_key = ?1",
        args![key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
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

pub(super) fn card_account(db: &dyn Db, number: &str) -> Result<Option<(i64, String)>, DbError> {
    db.query_opt(
        "SELECT a.id, CASE WHEN c.status != 'active' THEN c.status ELSE a.status END
         FROM cards c JOIN accounts a ON a.id = c.account_id WHERE c.number = ?1",
        args![number],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// What a sale reads of its account, in the statement that takes it
/// ([`card_account_locked`]).
#[derive(Debug, Clone)]
pub(crate) struct LockedAccount {
    /// The account.
    pub id: i64,
    /// The card's status when not `active`, else the account's.
    pub status: String,
    /// Its programme's stored key (`''`: the default one).
    pub programme: String,
    /// Its maintained balance (units), held points included.
    pub balance: i64,
    /// What it owes (units).
    pub debt: i64,
    /// The earliest expiry of its open lots.
    pub next_expiry: Option<String>,
    /// Its own percentages.
    pub own: AccountOverrides,
}

impl LockedAccount {
    /// An account [`enrol`] has just created (by this transaction, so no
    /// one else can see it to take it): its columns' defaults.
    pub(crate) fn new_enrolled(id: i64, programme: String) -> Self {
        LockedAccount {
            id,
            status: "active".to_owned(),
            programme,
            balance: 0,
            debt: 0,
            next_expiry: None,
            own: parse_overrides(None, None, None),
        }
    }
}

/// The account's stored next expiry.
pub(super) fn next_expiry_of(db: &dyn Db, account: i64) -> Result<Option<String>, DbError> {
    db.query_row(
        "SELECT next_expiry FROM accounts WHERE id = ?1",
        args![account],
        |r| r.get(0),
    )
}

/// The card's account, taken until the transaction ends, with what a
/// sale reads of it, in one round trip: the first statement of a
/// [`Mode::WriteLocking`] closure. On PostgreSQL it is an `UPDATE` that
/// changes nothing but writes a new version of the row: a writer of the
/// account that comes later waits for it (and, if serializable, is
/// refused and runs again, seeing this one's writes); one that came first
/// has committed when this returns, and at READ COMMITTED every later
/// statement sees its writes (and `RETURNING` gives the row as it is
/// after the wait). A lock alone (`FOR UPDATE`) would not do: a
/// serializable transaction that waited on a lock but not on a write
/// carries on with its older snapshot. SQLite has one writer: a plain
/// read.
///
/// The protocol this joins (docs/central.md, "Isolation"): every
/// transaction that writes an account's books writes its row —
/// [`entry`] keeps the balance there, [`new_txn`] calls [`touch_account`].
///
/// [`Mode::WriteLocking`]: crate::ledger::db::Mode::WriteLocking
pub(crate) fn card_account_locked(
    db: &dyn Db,
    number: &str,
) -> Result<Option<LockedAccount>, DbError> {
    // One column list for both spellings: the row is read by one closure.
    macro_rules! columns {
        () => {
            "a.id, CASE WHEN c.status != 'active' THEN c.status ELSE a.status END,
             a.programme, a.balance, a.debt, a.next_expiry,
             a.accrual_pct, a.cap_pct, a.category_overrides"
        };
    }
    let sql = match db.dialect() {
        Dialect::Sqlite => concat!(
            "SELECT ",
            columns!(),
            " FROM cards c JOIN accounts a ON a.id = c.account_id WHERE c.number = ?1"
        ),
        Dialect::Postgres => concat!(
            "UPDATE accounts a SET balance = a.balance FROM cards c
             WHERE c.number = ?1 AND a.id = c.account_id RETURNING ",
            columns!()
        ),
    };
    db.query_opt(sql, args![number], |r| {
        Ok(LockedAccount {
            id: r.get(0)?,
            status: r.get(1)?,
            programme: r.get::<Option<String>>(2)?.unwrap_or_default(),
            balance: r.get(3)?,
            debt: r.get(4)?,
            next_expiry: r.get(5)?,
            own: parse_overrides(r.get(6)?, r.get(7)?, r.get(8)?),
        })
    })
}

/// Takes `account`'s row as [`card_account_locked`] does (PostgreSQL;
/// nothing on SQLite's one writer): before a transaction reads the books
/// of an account it did not start with, and wherever it writes an
/// account's books without moving its balance. Accounts are taken in the
/// order a path meets them; a cycle between two paths is a deadlock
/// PostgreSQL breaks by refusing one, which runs again.
pub(crate) fn touch_account(db: &dyn Db, account: i64) -> Result<(), DbError> {
    if db.dialect() == Dialect::Postgres {
        db.execute(
            "UPDATE accounts SET balance = balance WHERE id = ?1",
            args![account],
        )?;
    }
    Ok(())
}

pub(super) fn debt_units(db: &dyn Db, account: i64) -> Result<i64, DbError> {
    db.query_row(
        "SELECT debt FROM accounts WHERE id = ?1",
        args![account],
        |r| r.get(0),
    )
}

/// A card's first sale: an account without a customer in `programme`
/// (its stored key, `""` for the default one).
pub(super) fn enrol(
    db: &dyn Db,
    number: &str,
    programme: &str,
    now: OffsetDateTime,
) -> Result<i64, DbError> {
    let account = db.insert(
        "INSERT INTO accounts (created_at, programme) VALUES (?1, ?2) RETURNING id",
        args![ts(now), programme],
    )?;
    // Two tills' first sales of one new card at once: at READ COMMITTED
    // the second insert waits for the first and then finds the number
    // taken. Running again finds the card, so that is a conflict to
    // retry, not an error for the cashier.
    let added = db.execute(
        "INSERT INTO cards (number, account_id) VALUES (?1, ?2) ON CONFLICT (number) DO NOTHING",
        args![number, account],
    )?;
    if added == 0 {
        return Err(DbError::Conflict(
            "a concurrent sale enrolled the same card".into(),
        ));
    }
    Ok(account)
}

/// The account's balance: its maintained column (Σ of its entries, which
/// `verify` checks), not a sum over its history.
pub(super) fn balance_units(db: &dyn Db, account: i64) -> Result<i64, DbError> {
    db.query_row(
        "SELECT balance FROM accounts WHERE id = ?1",
        args![account],
        |r| r.get(0),
    )
}

/// Whether the account has open lots whose expiry has come (by its
/// maintained next expiry: one row read).
pub(super) fn has_due(db: &dyn Db, account: i64, now: OffsetDateTime) -> Result<bool, DbError> {
    Ok(next_expiry_of(db, account)?.is_some_and(|at| at <= ts(now)))
}

/// Posts an `expire` entry for every lot whose time has come, in a
/// transaction row of its own per burn time, stamped with the lot's own
/// expiry (or its creation, for a lot added already expired), so the
/// history, the export and the reports show the burn on the day it
/// happened however late the account is next touched or swept. Running it
/// again posts nothing: a posted lot's `remaining` is 0.
pub(crate) fn expire_due(
    db: &dyn Db,
    account: i64,
    now: OffsetDateTime,
    origin: &Origin,
) -> Result<(), DbError> {
    let stamp = ts(now);
    let mut due: Vec<(i64, i64, String)> = db.query_map(
        "SELECT id, remaining,
                CASE WHEN expires_at < created_at THEN created_at ELSE expires_at END
         FROM lots
         WHERE account_id = ?1 AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?2
         ORDER BY expires_at, id",
        args![account, stamp],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    due.sort_by(|a, b| (&a.2, a.0).cmp(&(&b.2, b.0)));
    for group in due.chunk_by(|a, b| a.2 == b.2) {
        let burn = group[0].2.as_str();
        // The first lot's id keeps the key unique: two burns of the same
        // account can share a second (lots added with the same past
        // `expires_at`), and a repeated key would fail the whole operation
        // on the UNIQUE index.
        let key = format!("expire:{account}:{burn}:{}", group[0].0);
        let txn = new_txn(db, &key, "expire", account, None, "", burn, origin, None)?;
        for (lot, remaining, _) in group {
            db.execute("UPDATE lots SET remaining = 0 WHERE id = ?1", args![lot])?;
            entry(db, txn, account, Some(*lot), "expire", -remaining, burn)?;
        }
    }
    if !due.is_empty() {
        refresh_next_expiry(db, account)?;
    }
    Ok(())
}

pub(super) fn summary(
    db: &dyn Db,
    account: i64,
    status: String,
    now: OffsetDateTime,
) -> Result<AccountSummary, DbError> {
    let balance = balance_units(db, account)?;
    summary_with(db, account, status, balance, now)
}

/// The points of the account still held at `now` (the accrual window), in
/// units, with the soonest release (its time and amount). Not a maintained
/// column: a window ends by the clock, with no write to update one, so it
/// is summed from the index `lots_held` `(account_id, available_at)`, whose
/// range `available_at > now` holds only the lots still held (at most the
/// account's sales of the last `hold_days`). Without a window the range is
/// empty: one index seek.
pub(crate) fn held_units(
    db: &dyn Db,
    account: i64,
    now: OffsetDateTime,
) -> Result<(i64, Option<(String, i64)>), DbError> {
    let stamp = ts(now);
    let total: i64 = db.query_row(
        "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM lots
         WHERE account_id = ?1 AND remaining > 0 AND available_at IS NOT NULL
           AND available_at > ?2",
        args![account, stamp],
        |r| r.get(0),
    )?;
    if total == 0 {
        return Ok((0, None));
    }
    let next = db.query_opt(
        "SELECT available_at, CAST(SUM(remaining) AS BIGINT) FROM lots
         WHERE account_id = ?1 AND remaining > 0 AND available_at IS NOT NULL
           AND available_at > ?2
         GROUP BY available_at ORDER BY available_at LIMIT 1",
        args![account, stamp],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((total, next))
}

/// The account's spendable balance at `now` in units: its balance (lots −
/// debt) less the points still held.
pub(super) fn spendable_units(
    db: &dyn Db,
    account: i64,
    now: OffsetDateTime,
) -> Result<i64, DbError> {
    Ok(balance_units(db, account)? - held_units(db, account, now)?.0)
}

/// [`summary`] with the balance (in units, held points included) already
/// known. The summary's `balance` is what can be spent; `held` the rest.
pub(super) fn summary_with(
    db: &dyn Db,
    account: i64,
    status: String,
    balance: i64,
    now: OffsetDateTime,
) -> Result<AccountSummary, DbError> {
    let (debt, maintained): (i64, Option<String>) = db.query_row(
        "SELECT debt, next_expiry FROM accounts WHERE id = ?1",
        args![account],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let held = held_units(db, account, now)?;
    summary_known(db, account, status, balance, debt, maintained, held, now)
}

/// [`summary_with`] for a caller that tracked the account's debt, next
/// expiry and held points through its own writes: only the next expiry's
/// amount is read.
#[allow(clippy::too_many_arguments)]
pub(super) fn summary_known(
    db: &dyn Db,
    account: i64,
    status: String,
    balance: i64,
    debt: i64,
    maintained: Option<String>,
    (held, release): (i64, Option<(String, i64)>),
    now: OffsetDateTime,
) -> Result<AccountSummary, DbError> {
    let stamp = ts(now);
    let next: Option<(String, i64)> = match maintained {
        None => None,
        // The maintained expiry is still ahead: its lots by equality.
        Some(at) if at > stamp => db
            .query_opt(
                "SELECT CAST(SUM(remaining) AS BIGINT) FROM lots
             WHERE account_id = ?1 AND remaining > 0 AND expires_at = ?2",
                args![account, at],
                |r| Ok(r.get::<Option<i64>>(0)?.map(|sum| (at.clone(), sum))),
            )?
            .flatten(),
        // Lots due but not yet swept (a read sees them before the sweep or
        // the next write burns them): the first expiry after now.
        Some(_) => db.query_opt(
            "SELECT expires_at, CAST(SUM(remaining) AS BIGINT) FROM lots
             WHERE account_id = ?1 AND remaining > 0 AND expires_at > ?2
             GROUP BY expires_at ORDER BY expires_at LIMIT 1",
            args![account, stamp],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
    };
    Ok(AccountSummary {
        account,
        status,
        balance: points(balance - held),
        held: points(held),
        next_available: release.map(|(at, amount)| NextExpiry {
            amount: points(amount),
            at,
        }),
        debt: points(debt),
        next_expiry: next.map(|(at, amount)| NextExpiry {
            amount: points(amount),
            at,
        }),
        // Filled in by `tiers::annotate` where the programme is at hand.
        tier: None,
        tier_progress: None,
        as_of: None,
    })
}
