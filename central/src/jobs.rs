//! The chain's daily job: due points expired, birthday bonuses credited
//! and every account's tier re-evaluated, once a day.
//!
//! Several instances serve one database; only the one that takes a
//! PostgreSQL advisory lock (`pg_try_advisory_lock`) runs the job, the
//! others skip that day's run. The lock is a session lock on a connection
//! of its own, so it is released when the run ends or the instance dies.
//!
//! The same run first sweeps expired points: the core also posts an
//! account's expired lots whenever the account is read or written, but an
//! account nobody touches must still show its burn on the day it happened
//! (each expiry is stamped with its lot's own expiry time).

use std::sync::Arc;

use time::{Duration, OffsetDateTime, Time, UtcOffset};
use tokio_util::sync::CancellationToken;

use crate::core::Core;

/// The advisory lock key of the daily job ("pbdaily" in ASCII), distinct
/// from the migrations' lock.
pub const DAILY_LOCK: i64 = 0x0070_6264_6169_6c79;

/// The next time after `now` that reads `at` on the programme's clock.
pub fn next_run(now: OffsetDateTime, offset: UtcOffset, at: (u8, u8)) -> OffsetDateTime {
    let local = now.to_offset(offset);
    let time = Time::from_hms(at.0, at.1, 0).unwrap_or(Time::MIDNIGHT);
    let today = local.replace_time(time);
    if today > local {
        today
    } else {
        today + Duration::days(1)
    }
}

/// Who may run the job now.
pub enum JobLock {
    /// A PostgreSQL session lock, taken on its own connection to `url`.
    Postgres(String),
    /// One process owns the books (the embedded stand-in): always granted.
    Local,
}

impl JobLock {
    /// Runs `job` if the lock is free; `false` if another instance holds it.
    pub async fn run_exclusive<F: Future<Output = ()>>(&self, job: F) -> Result<bool, String> {
        match self {
            JobLock::Local => {
                job.await;
                Ok(true)
            }
            JobLock::Postgres(url) => {
                let url = url.clone();
                let (granted_tx, granted) = tokio::sync::oneshot::channel();
                let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
                // The blocking client lives on its own thread for the whole
                // run: it holds the session (and so the lock) until `done`
                // is sent or dropped, also when this future is cancelled.
                tokio::task::spawn_blocking(move || match try_lock(&url) {
                    Ok(Some(client)) => {
                        let _ = granted_tx.send(Ok(true));
                        let _ = done_rx.blocking_recv();
                        drop(client);
                    }
                    Ok(None) => {
                        let _ = granted_tx.send(Ok(false));
                    }
                    Err(e) => {
                        let _ = granted_tx.send(Err(e));
                    }
                });
                let got = granted
                    .await
                    .map_err(|_| "the lock's thread ended".to_owned())??;
                if got {
                    job.await;
                    let _ = done.send(());
                }
                Ok(got)
            }
        }
    }
}

fn try_lock(url: &str) -> Result<Option<postgres::Client>, String> {
    let mut config: postgres::Config = url.parse().map_err(|e| format!("database.url: {e}"))?;
    config.connect_timeout(std::time::Duration::from_secs(10));
    let mut client = config
        .connect(postgres::NoTls)
        .map_err(|e| format!("connecting for the daily job's lock: {e}"))?;
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&DAILY_LOCK])
        .map_err(|e| format!("pg_try_advisory_lock: {e}"))?
        .get(0);
    Ok(got.then_some(client))
}

/// Runs the daily job at `at` (programme time) until `shutdown`.
pub async fn daily(core: Arc<Core>, lock: JobLock, at: (u8, u8), shutdown: CancellationToken) {
    let offset =
        UtcOffset::from_whole_seconds(core.programme().utc_offset_minutes.saturating_mul(60))
            .unwrap_or(UtcOffset::UTC);
    loop {
        let now = OffsetDateTime::now_utc();
        let wait = (next_run(now, offset, at) - now)
            .try_into()
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let c = core.clone();
        let job = async move {
            // Each batch commits on its own: a run stopped midway has lost
            // nothing and the next one picks up the rest.
            match c.expire_all(OffsetDateTime::now_utc()).await {
                Ok(accounts) => tracing::info!(accounts, "daily expiry sweep"),
                Err(e) => tracing::error!(error = %e, "daily expiry sweep failed"),
            }
            match c.birthday_run(OffsetDateTime::now_utc()).await {
                Ok(n) => tracing::info!(credited = n, "daily birthday bonuses"),
                Err(e) => tracing::error!(error = %e, "daily birthday bonuses failed"),
            }
            match c.evaluate_tiers(OffsetDateTime::now_utc()).await {
                Ok(Some((accounts, changes))) => {
                    tracing::info!(accounts, changes, "daily tier evaluation");
                }
                Ok(None) => tracing::debug!("no tiers configured; daily job idle"),
                Err(e) => tracing::error!(error = %e, "daily tier evaluation failed"),
            }
        };
        let ran = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = lock.run_exclusive(job) => r,
        };
        match ran {
            Ok(true) => {}
            Ok(false) => tracing::info!("daily job: another instance holds the lock; skipped"),
            Err(e) => tracing::error!(error = %e, "daily job: lock unavailable; skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, offset};

    #[test]
    fn the_next_run_is_today_or_tomorrow_on_the_programmes_clock() {
        let msk = offset!(+3);
        assert_eq!(
            next_run(datetime!(2026-03-01 20:00 UTC), msk, (0, 5)),
            datetime!(2026-03-01 21:05 UTC)
        );
        assert_eq!(
            next_run(datetime!(2026-03-01 21:05 UTC), msk, (0, 5)),
            datetime!(2026-03-02 21:05 UTC)
        );
        assert_eq!(
            next_run(datetime!(2026-03-01 10:00 UTC), UtcOffset::UTC, (3, 30)),
            datetime!(2026-03-02 03:30 UTC)
        );
    }
}
