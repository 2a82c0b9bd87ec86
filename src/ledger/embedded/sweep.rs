//! The daily expiry sweep: every account's due lots posted on time, not
//! only when the account is next touched, so reports see a burn on an
//! account nobody uses.
//!
//! The sweep works in batches of accounts, each batch in its own write
//! transaction (a sale waits for one batch at most). It is idempotent: a
//! posted lot has nothing left, so a second run finds nothing due. A sale
//! racing it cannot post the same lot twice: both post under the books'
//! write transaction (SQLite's one writer; PostgreSQL's `SERIALIZABLE`,
//! whose conflict runs the loser again, which then finds nothing due).

use std::convert::Infallible;

use time::OffsetDateTime;

use super::{Embedded, book::expire_due, ts};
use crate::ledger::db::{Db, DbError, args};
use crate::ledger::origin::Origin;

/// Accounts per write transaction of the sweep.
pub const SWEEP_BATCH: i64 = 200;

/// Accounts with a lot due at `?1`, at most `?2` (public for the plan
/// checks in `central/tests/plans.rs`).
pub const DUE_ACCOUNTS_SQL: &str = "SELECT DISTINCT account_id FROM lots
     WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?1
     ORDER BY account_id LIMIT ?2";

/// Posts the due expiries of up to `batch` accounts; how many it took.
fn sweep_batch(
    db: &dyn Db,
    now: OffsetDateTime,
    origin: &Origin,
    batch: i64,
) -> Result<usize, DbError> {
    // `lots_due` (migration 16) holds only open lots by expiry: this reads
    // the due ones, not every account.
    let accounts: Vec<i64> = db.query_map(DUE_ACCOUNTS_SQL, args![ts(now), batch], |r| r.get(0))?;
    for &a in &accounts {
        expire_due(db, a, now, origin)?;
    }
    Ok(accounts.len())
}

impl Embedded {
    /// Posts every account's expiries due at `now`, [`SWEEP_BATCH`]
    /// accounts per write transaction; returns how many accounts had
    /// something to burn. Each batch leaves its accounts with nothing due,
    /// so the loop ends; stopping midway loses nothing.
    pub async fn expire_all(&self, now: OffsetDateTime) -> Result<usize, DbError> {
        let mut total = 0;
        loop {
            let origin = self.origin.clone();
            let Ok(n) = self
                .books
                .write(move |db| {
                    sweep_batch(db, now, &origin, SWEEP_BATCH).map(Ok::<_, Infallible>)
                })
                .await?;
            total += n;
            if (n as i64) < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }

    /// [`Embedded::expire_all`] on the calling thread, `batch` accounts
    /// per transaction (tests and tools).
    pub fn expire_all_blocking(&self, now: OffsetDateTime, batch: i64) -> Result<usize, DbError> {
        let mut total = 0;
        loop {
            let origin = self.origin.clone();
            let Ok(n) = self.books.write_blocking(|db| {
                sweep_batch(db, now, &origin, batch).map(Ok::<_, Infallible>)
            })?;
            total += n;
            if (n as i64) < batch.max(1) {
                return Ok(total);
            }
        }
    }
}
