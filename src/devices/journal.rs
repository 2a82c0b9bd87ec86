//! The fiscal journal: every fiscal job written durably before the device
//! hears of it, so a receipt is never printed twice.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::now_rfc3339;
use crate::store::{Store, StoreError};

/// A journal entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FiscalJob {
    /// The client's id.
    pub job_id: String,
    /// Fiscal printer name.
    pub printer: String,
    /// `receipt`, `shift_open`, `shift_close`, `x_report`, `cash_in`,
    /// `cash_out`, `correction`.
    pub kind: String,
    /// The request as accepted.
    pub request: Value,
    /// `pending`, `sending`, `done`, `failed`.
    pub state: String,
    /// The last fiscal document number before this job's first byte.
    pub fd_before: Option<i64>,
    /// The result, once done.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<Value>,
}

/// Journal errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The job id exists with another request.
    #[error("job_id already used for a different request")]
    Conflict,
    /// No such job.
    #[error("no such fiscal job")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FiscalJob> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(FiscalJob {
        job_id: r.get(0)?,
        printer: r.get(1)?,
        kind: r.get(2)?,
        request: json(Some(r.get(3)?)).unwrap_or(Value::Null),
        state: r.get(4)?,
        fd_before: r.get(5)?,
        result: json(r.get(6)?),
        error: json(r.get(7)?),
    })
}

const COLUMNS: &str = "job_id, printer, kind, request, state, fd_before, result, error";

/// The journal.
#[derive(Clone)]
pub struct Journal {
    store: Store,
}

impl Journal {
    /// The journal in `store`.
    pub fn new(store: Store) -> Self {
        Journal { store }
    }

    /// Records a job (fsynced); a repeat of the same job returns the
    /// existing entry and `false`.
    pub async fn accept(
        &self,
        job_id: String,
        printer: String,
        kind: &'static str,
        request: Value,
    ) -> Result<(FiscalJob, bool), JournalError> {
        let req = request.to_string();
        let now = now_rfc3339();
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let existing = tx
                    .query_row(
                        &format!("SELECT {COLUMNS} FROM fiscal_jobs WHERE job_id = ?1"),
                        [&job_id],
                        row,
                    )
                    .ok();
                let out = match existing {
                    Some(j) if j.printer == printer && j.kind == kind && j.request == request => {
                        Ok((j, false))
                    }
                    Some(_) => Err(JournalError::Conflict),
                    None => {
                        tx.execute(
                            "INSERT INTO fiscal_jobs (job_id, printer, kind, request, state, created_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
                            rusqlite::params![job_id, printer, kind, req, now],
                        )?;
                        let j = tx.query_row(
                            &format!("SELECT {COLUMNS} FROM fiscal_jobs WHERE job_id = ?1"),
                            [&job_id],
                            row,
                        )?;
                        Ok((j, true))
                    }
                };
                tx.commit()?;
                Ok(out)
            })
            .await?
    }

    /// A job by id.
    pub async fn get(&self, job_id: String) -> Result<FiscalJob, JournalError> {
        self.store
            .with(move |c| {
                match c.query_row(
                    &format!("SELECT {COLUMNS} FROM fiscal_jobs WHERE job_id = ?1"),
                    [&job_id],
                    row,
                ) {
                    Ok(j) => Ok(Some(j)),
                    Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?
            .ok_or(JournalError::NotFound)
    }

    /// The oldest unfinished job of a printer.
    pub async fn next(&self, printer: String) -> Result<Option<FiscalJob>, JournalError> {
        Ok(self
            .store
            .with(move |c| {
                match c.query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM fiscal_jobs
                         WHERE printer = ?1 AND state IN ('pending', 'sending') ORDER BY id LIMIT 1"
                    ),
                    [&printer],
                    row,
                ) {
                    Ok(j) => Ok(Some(j)),
                    Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?)
    }

    /// Unfinished jobs of a printer (`posbridge_fiscal_queue_depth`).
    pub async fn depth(&self, printer: String) -> Result<i64, JournalError> {
        Ok(self
            .store
            .with(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM fiscal_jobs
                     WHERE printer = ?1 AND state IN ('pending', 'sending')",
                    [&printer],
                    |r| r.get(0),
                )
            })
            .await?)
    }

    /// Moves a job on.
    pub async fn set(
        &self,
        job_id: &str,
        state: &'static str,
        fd_before: Option<i64>,
        result: Option<&Value>,
        error: Option<&Value>,
    ) -> Result<(), JournalError> {
        let (id, now) = (job_id.to_owned(), now_rfc3339());
        let result = result.map(Value::to_string);
        let error = error.map(Value::to_string);
        self.store
            .with(move |c| {
                c.execute(
                    "UPDATE fiscal_jobs SET state = ?2, fd_before = COALESCE(?3, fd_before),
                     result = ?4, error = ?5, updated_at = ?6 WHERE job_id = ?1",
                    rusqlite::params![id, state, fd_before, result, error, now],
                )
            })
            .await?;
        Ok(())
    }
}
