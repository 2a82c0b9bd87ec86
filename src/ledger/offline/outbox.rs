//! The till's outbox and card cache, in the daemon's SQLite file (WAL,
//! `synchronous=FULL`; migration 13): an operation is on disk before the POS hears it
//! was accepted, and leaves only once the central ledger has booked it.

use rusqlite::{OptionalExtension, params};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::ledger::embedded::ts;
use crate::ledger::types::AccountSummary;
use crate::store::{Store, StoreError};

/// What kind of operation is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A sale (`offline/commit`).
    Sale,
    /// A return (`offline/refund`).
    Refund,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Sale => "sale",
            Kind::Refund => "refund",
        }
    }
    fn parse(s: &str) -> Kind {
        if s == "refund" {
            Kind::Refund
        } else {
            Kind::Sale
        }
    }
}

/// An operation to queue.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// The POS's idempotency key.
    pub key: String,
    /// Sale or return.
    pub kind: Kind,
    /// The card (sales), for the per-card offline limit.
    pub number: Option<String>,
    /// Points spent (sales).
    pub redeem: Decimal,
    /// The wire arguments without the time (JSON), compared on a repeat.
    pub request: String,
    /// The operation's time (RFC 3339).
    pub at: String,
    /// The pending result the POS was given (JSON), returned on a repeat.
    pub result: String,
    /// The cashier the POS named, sent with the operation when replayed.
    pub cashier: Option<String>,
}

/// A queued or failed operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// Position in the queue (and the id an operator names).
    pub id: i64,
    /// The POS's idempotency key.
    pub key: String,
    /// Sale or return.
    pub kind: Kind,
    /// The wire arguments without the time (JSON).
    #[serde(skip)]
    pub request: String,
    /// The operation's own time (RFC 3339).
    pub at: String,
    /// When it was queued (RFC 3339).
    pub queued_at: String,
    /// Replay attempts so far.
    pub attempts: i64,
    /// On the dead-letter list: the central ledger's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// On the dead-letter list: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On the dead-letter list: when it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
    /// The cashier the POS named, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
}

/// How an enqueue went.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// Queued now.
    New,
    /// The key was queued before for the same request: its stored result.
    Repeat(String),
    /// The key was queued before for another request.
    KeyReused,
    /// The queue holds `queue_limit` operations.
    Full,
}

/// A key found in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The request queued (JSON, without the time).
    pub request: String,
    /// The pending result the POS was given (JSON).
    pub result: String,
    /// On the dead-letter list: the central ledger's code and reason.
    pub refused: Option<(i64, String)>,
}

/// The queue's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Depth {
    /// Operations waiting to be booked.
    pub queued: u64,
    /// Operations the central ledger refused (the dead-letter list).
    pub failed: u64,
    /// When the oldest waiting one was queued.
    pub oldest: Option<String>,
}

const COLUMNS: &str =
    "id, key, kind, request, at, queued_at, attempts, code, reason, failed_at, cashier";

fn item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: Kind::parse(&r.get::<_, String>(2)?),
        request: r.get(3)?,
        at: r.get(4)?,
        queued_at: r.get(5)?,
        attempts: r.get(6)?,
        code: r.get(7)?,
        reason: r.get(8)?,
        failed_at: r.get(9)?,
        cashier: r.get(10)?,
    })
}

fn now() -> String {
    ts(time::OffsetDateTime::now_utc())
}

/// The outbox and card cache on the till's store.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    limit: u64,
}

impl Outbox {
    /// The outbox on `store`, holding at most `limit` operations.
    pub fn new(store: Store, limit: u64) -> Outbox {
        Outbox { store, limit }
    }

    /// Queues `item` in one transaction (committed, so fsynced, before it
    /// returns), unless its key is queued already.
    pub async fn enqueue(&self, item: NewItem) -> Result<Enqueued, StoreError> {
        let limit = self.limit as i64;
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let old: Option<(String, String)> = tx
                    .query_row(
                        "SELECT request, result FROM sync_outbox WHERE key = ?1",
                        params![item.key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((request, result)) = old {
                    return Ok(if request == item.request {
                        Enqueued::Repeat(result)
                    } else {
                        Enqueued::KeyReused
                    });
                }
                let n: i64 = tx.query_row("SELECT COUNT(*) FROM sync_outbox", [], |r| r.get(0))?;
                if n >= limit {
                    return Ok(Enqueued::Full);
                }
                tx.execute(
                    "INSERT INTO sync_outbox (key, kind, number, redeem, request, at, result,
                                              queued_at, cashier)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        item.key,
                        item.kind.as_str(),
                        item.number,
                        item.redeem.to_string(),
                        item.request,
                        item.at,
                        item.result,
                        now(),
                        item.cashier
                    ],
                )?;
                tx.commit()?;
                Ok(Enqueued::New)
            })
            .await
    }

    /// A key still in the outbox: its request, its stored result, and the
    /// central ledger's refusal if it is on the dead-letter list.
    pub async fn find(&self, key: String) -> Result<Option<Found>, StoreError> {
        self.store
            .with(move |c| {
                c.query_row(
                    "SELECT request, result, code, reason FROM sync_outbox WHERE key = ?1",
                    params![key],
                    |r| {
                        let code: Option<i64> = r.get(2)?;
                        let reason: Option<String> = r.get(3)?;
                        Ok(Found {
                            request: r.get(0)?,
                            result: r.get(1)?,
                            refused: code.map(|c| (c, reason.unwrap_or_default())),
                        })
                    },
                )
                .optional()
            })
            .await
    }

    /// Points `number` spends in operations not yet booked.
    pub async fn pending_redeem(&self, number: String) -> Result<Decimal, StoreError> {
        let amounts: Vec<String> = self
            .store
            .with(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT redeem FROM sync_outbox WHERE kind = 'sale' AND number = ?1",
                )?;
                st.query_map(params![number], |r| r.get(0))?.collect()
            })
            .await?;
        Ok(amounts
            .iter()
            .filter_map(|a| a.parse::<Decimal>().ok())
            .sum())
    }

    /// The oldest operation waiting to be booked.
    pub async fn next(&self) -> Result<Option<Item>, StoreError> {
        self.store
            .with(|c| {
                c.query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM sync_outbox WHERE state = 'queued' ORDER BY id LIMIT 1"
                    ),
                    [],
                    item,
                )
                .optional()
            })
            .await
    }

    /// Whether anything waits to be booked.
    pub async fn has_queued(&self) -> Result<bool, StoreError> {
        Ok(self.depth().await?.queued > 0)
    }

    /// The central ledger booked operation `id`: it leaves the outbox.
    pub async fn done(&self, id: i64) -> Result<(), StoreError> {
        self.store
            .with(move |c| c.execute("DELETE FROM sync_outbox WHERE id = ?1", params![id]))
            .await
            .map(drop)
    }

    /// One more attempt at `id` failed for want of an answer.
    pub async fn attempted(&self, id: i64) -> Result<(), StoreError> {
        self.store
            .with(move |c| {
                c.execute(
                    "UPDATE sync_outbox SET attempts = attempts + 1 WHERE id = ?1",
                    params![id],
                )
            })
            .await
            .map(drop)
    }

    /// The central ledger refused `id`: onto the dead-letter list.
    pub async fn fail(&self, id: i64, code: i64, reason: String) -> Result<(), StoreError> {
        self.store
            .with(move |c| {
                c.execute(
                    "UPDATE sync_outbox SET state = 'failed', attempts = attempts + 1,
                     code = ?2, reason = ?3, failed_at = ?4 WHERE id = ?1",
                    params![id, code, reason, now()],
                )
            })
            .await
            .map(drop)
    }

    /// Puts failed `id` back in the queue, at its old place. False when no
    /// failed operation has this id.
    pub async fn retry(&self, id: i64) -> Result<bool, StoreError> {
        self.store
            .with(move |c| {
                c.execute(
                    "UPDATE sync_outbox SET state = 'queued', code = NULL, reason = NULL,
                     failed_at = NULL WHERE id = ?1 AND state = 'failed'",
                    params![id],
                )
            })
            .await
            .map(|n| n == 1)
    }

    /// Removes failed `id` for good, returning it. `None` when no failed
    /// operation has this id.
    pub async fn drop_failed(&self, id: i64) -> Result<Option<Item>, StoreError> {
        self.store
            .with(move |c| {
                let tx = c.transaction()?;
                let it = tx
                    .query_row(
                        &format!(
                            "SELECT {COLUMNS} FROM sync_outbox WHERE id = ?1 AND state = 'failed'"
                        ),
                        params![id],
                        item,
                    )
                    .optional()?;
                if it.is_some() {
                    tx.execute("DELETE FROM sync_outbox WHERE id = ?1", params![id])?;
                }
                tx.commit()?;
                Ok(it)
            })
            .await
    }

    /// The dead-letter list, oldest first, at most `limit`.
    pub async fn failed(&self, limit: u32) -> Result<Vec<Item>, StoreError> {
        self.store
            .with(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM sync_outbox WHERE state = 'failed' ORDER BY id LIMIT ?1"
                ))?;
                st.query_map(params![limit], item)?.collect()
            })
            .await
    }

    /// The queue's figures.
    pub async fn depth(&self) -> Result<Depth, StoreError> {
        self.store
            .with(|c| {
                // Each from the (state, id) index: counted there, not in
                // the table (this runs after every queued or booked item).
                c.query_row(
                    "SELECT (SELECT COUNT(*) FROM sync_outbox WHERE state = 'queued'),
                            (SELECT COUNT(*) FROM sync_outbox WHERE state = 'failed'),
                            (SELECT queued_at FROM sync_outbox WHERE state = 'queued'
                             ORDER BY id LIMIT 1)",
                    [],
                    |r| {
                        Ok(Depth {
                            queued: r.get::<_, i64>(0)?.max(0) as u64,
                            failed: r.get::<_, i64>(1)?.max(0) as u64,
                            oldest: r.get(2)?,
                        })
                    },
                )
            })
            .await
    }

    /// Keeps the central ledger's view of a card, as of now.
    pub async fn remember(&self, number: String, s: &AccountSummary) -> Result<(), StoreError> {
        let mut s = s.clone();
        s.as_of = None;
        let json = serde_json::to_string(&s).unwrap_or_default();
        self.store
            .with(move |c| {
                c.execute(
                    "INSERT INTO sync_cards (number, summary, as_of) VALUES (?1, ?2, ?3)
                     ON CONFLICT (number) DO UPDATE SET summary = ?2, as_of = ?3",
                    params![number, json, now()],
                )
            })
            .await
            .map(drop)
    }

    /// Sets a remembered card's balance after a booking (the central
    /// ledger's answer carries the new balance, not the summary).
    pub async fn rebalance(&self, number: String, balance: Decimal) -> Result<(), StoreError> {
        let Some(mut s) = self.recall(number.clone()).await? else {
            return Ok(());
        };
        s.balance = balance;
        self.remember(number, &s).await
    }

    /// The last view of a card, with `as_of` set.
    pub async fn recall(&self, number: String) -> Result<Option<AccountSummary>, StoreError> {
        let row: Option<(String, String)> = self
            .store
            .with(move |c| {
                c.query_row(
                    "SELECT summary, as_of FROM sync_cards WHERE number = ?1",
                    params![number],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .await?;
        Ok(row.and_then(|(json, as_of)| {
            let mut s: AccountSummary = serde_json::from_str(&json).ok()?;
            s.as_of = Some(as_of);
            Some(s)
        }))
    }

    /// The hash of the secret last accepted online for a card this till
    /// remembers, and the wrong secrets presented offline since.
    pub async fn secret(&self, number: String) -> Result<Option<(String, i64)>, StoreError> {
        let row: Option<(Option<String>, i64)> = self
            .store
            .with(move |c| {
                c.query_row(
                    "SELECT secret_hash, secret_failures FROM sync_cards WHERE number = ?1",
                    params![number],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .await?;
        Ok(row.and_then(|(h, f)| h.map(|h| (h, f))))
    }

    /// Keeps `hash` as the card's secret (after an online check accepted
    /// it), and clears the offline failures. Nothing for a card not
    /// remembered.
    pub async fn set_secret(&self, number: String, hash: Option<String>) -> Result<(), StoreError> {
        self.store
            .with(move |c| {
                c.execute(
                    "UPDATE sync_cards SET secret_hash = COALESCE(?2, secret_hash),
                     secret_failures = 0 WHERE number = ?1",
                    params![number, hash],
                )
            })
            .await
            .map(drop)
    }

    /// Counts a wrong secret presented offline; returns the count.
    pub async fn secret_failed(&self, number: String) -> Result<i64, StoreError> {
        self.store
            .with(move |c| {
                c.query_row(
                    "UPDATE sync_cards SET secret_failures = secret_failures + 1
                     WHERE number = ?1 RETURNING secret_failures",
                    params![number],
                    |r| r.get(0),
                )
                .optional()
                .map(|n| n.unwrap_or(0))
            })
            .await
    }

    /// What is wrong with the outbox, if anything: each operation's time,
    /// request and stored result readable, its points a decimal ≥ 0, and
    /// a refusal recorded exactly for those on the dead-letter list.
    pub async fn verify(&self) -> Result<Vec<String>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            String,
            String,
            Option<i64>,
        );
        let rows: Vec<Row> = self
            .store
            .with(|c| {
                let mut st = c.prepare(
                    "SELECT id, kind, redeem, request, at, result, state, code FROM sync_outbox",
                )?;
                st.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                })?
                .collect()
            })
            .await?;
        let mut problems = Vec::new();
        for (id, kind, redeem, request, at, result, state, code) in rows {
            let mut bad = |what: &str| problems.push(format!("outbox item {id}: {what}"));
            if super::parse_time(&at).is_none() {
                bad("unreadable time");
            }
            if !redeem
                .parse::<Decimal>()
                .is_ok_and(|d| !d.is_sign_negative())
            {
                bad("points spent are not a decimal of at least 0");
            }
            if serde_json::from_str::<serde_json::Value>(&request).is_err() {
                bad("unreadable request");
            }
            let readable = match kind.as_str() {
                "sale" => {
                    serde_json::from_str::<crate::ledger::types::CommitResult>(&result).is_ok()
                }
                _ => serde_json::from_str::<crate::ledger::types::RefundResult>(&result).is_ok(),
            };
            if !readable {
                bad("unreadable stored result");
            }
            if (state == "failed") != code.is_some() {
                bad("a refusal code without the dead-letter state, or the other way round");
            }
        }
        Ok(problems)
    }
}
