//! The durable print queue: one FIFO per printer in the daemon's SQLite
//! file.
//!
//! States: `queued` → `printing` → `done` | `failed`, with `held` while a
//! connected printer cannot print (paper end, cover open, offline, no status
//! reply) or after a write failed (`disconnected`), and `cancelled` for jobs
//! the POS withdrew. Jobs for a printer that is not connected stay `queued`.
//! Printing is at least once: a job that was `printing` when the link or the
//! daemon went down is printed again from the start. A job is idempotent on its
//! client-chosen `job_id`.

use serde::Serialize;
use serde_json::Value;

use crate::events::now_rfc3339;
use crate::store::{Store, StoreError};

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Job {
    /// The client's id.
    pub job_id: String,
    /// Printer name.
    pub printer: String,
    /// State.
    pub state: String,
    /// Why it is held or failed.
    pub detail: Option<String>,
    /// Characters printed as `?` (not in the printer's code page).
    pub unrepresentable: i64,
    /// Position in the queue (queue-wide, increasing).
    pub seq: i64,
    /// When accepted.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Queue errors.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The job id exists with another printer or document.
    #[error("job_id already used for a different job")]
    Conflict,
    /// No such job.
    #[error("no such job")]
    NotFound,
    /// Only queued or held jobs can be cancelled.
    #[error("the job is {0} and can no longer be cancelled")]
    NotCancellable(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const COLUMNS: &str = "job_id, printer, state, detail, unrepresentable, id, created_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        job_id: r.get(0)?,
        printer: r.get(1)?,
        state: r.get(2)?,
        detail: r.get(3)?,
        unrepresentable: r.get(4)?,
        seq: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// The print queue.
#[derive(Clone)]
pub struct Queue {
    store: Store,
}

impl Queue {
    /// The queue in `store`.
    pub fn new(store: Store) -> Self {
        Queue { store }
    }

    /// Accepts a job durably; a repeat of the same `job_id` with the same
    /// printer and document returns the existing job (second value false)
    /// and queues nothing.
    pub async fn enqueue(
        &self,
        job_id: String,
        printer: String,
        document: Value,
    ) -> Result<(Job, bool), QueueError> {
        let doc = document.to_string();
        let now = now_rfc3339();
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let existing: Option<(String, String)> = tx
                    .query_row(
                        "SELECT printer, document FROM print_jobs WHERE job_id = ?1",
                        [&job_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .ok();
                let created = match existing {
                    Some((p, d)) if p == printer && d == doc => false,
                    Some(_) => return Ok(Err(QueueError::Conflict)),
                    None => {
                        tx.execute(
                            "INSERT INTO print_jobs (job_id, printer, document, state, created_at, updated_at)
                             VALUES (?1, ?2, ?3, 'queued', ?4, ?4)",
                            rusqlite::params![job_id, printer, doc, now],
                        )?;
                        true
                    }
                };
                let job = tx.query_row(
                    &format!("SELECT {COLUMNS} FROM print_jobs WHERE job_id = ?1"),
                    [&job_id],
                    row,
                )?;
                tx.commit()?;
                Ok(Ok((job, created)))
            })
            .await?
    }

    /// A job by id.
    pub async fn get(&self, job_id: String) -> Result<Job, QueueError> {
        self.store
            .with(move |c| {
                c.query_row(
                    &format!("SELECT {COLUMNS} FROM print_jobs WHERE job_id = ?1"),
                    [&job_id],
                    row,
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
            })
            .await?
            .ok_or(QueueError::NotFound)
    }

    /// The oldest unfinished job of `printer` with its document: FIFO, so
    /// a held job blocks the ones behind it.
    pub async fn next(&self, printer: String) -> Result<Option<(Job, String)>, QueueError> {
        Ok(self
            .store
            .with(move |c| {
                c.query_row(
                    &format!(
                        "SELECT {COLUMNS}, document FROM print_jobs
                         WHERE printer = ?1 AND state IN ('queued', 'printing', 'held')
                         ORDER BY id LIMIT 1"
                    ),
                    [&printer],
                    |r| Ok((row(r)?, r.get::<_, String>(8)?)),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
            })
            .await?)
    }

    /// Sets a job's state; returns the job as it is now.
    pub async fn set_state(
        &self,
        job_id: String,
        state: &'static str,
        detail: Option<String>,
        unrepresentable: Option<i64>,
    ) -> Result<Job, QueueError> {
        let now = now_rfc3339();
        let id = job_id.clone();
        self.store
            .with(move |c| {
                c.execute(
                    "UPDATE print_jobs SET state = ?2, detail = ?3,
                     unrepresentable = COALESCE(?4, unrepresentable), updated_at = ?5
                     WHERE job_id = ?1",
                    rusqlite::params![id, state, detail, unrepresentable, now],
                )
            })
            .await?;
        self.get(job_id).await
    }

    /// Cancels a queued or held job.
    pub async fn cancel(&self, job_id: String) -> Result<Job, QueueError> {
        let job = self.get(job_id.clone()).await?;
        if job.state != "queued" && job.state != "held" {
            return Err(QueueError::NotCancellable(job.state));
        }
        self.set_state(job_id, "cancelled", None, None).await
    }

    /// Unfinished jobs per printer.
    pub async fn depth(&self, printer: String) -> Result<i64, QueueError> {
        Ok(self
            .store
            .with(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM print_jobs WHERE printer = ?1
                     AND state IN ('queued', 'printing', 'held')",
                    [&printer],
                    |r| r.get(0),
                )
            })
            .await?)
    }
}
