//! The one gate every argon2 hash and check goes through, and the per-key
//! locks that make each guess at a secret or code count before its verdict.
//!
//! An argon2id run holds about 19 MiB while it works, so memory is bounded
//! by bounding runs: at most `permits` at once, each on a blocking thread
//! that keeps its permit until the hash is done (even if the caller went
//! away). A call that cannot get its turn within the queue timeout is
//! answered [`AccountError::Busy`] instead of piling up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::AccountError;
use crate::store::StoreError;

/// Bounds concurrent argon2 runs.
#[derive(Debug, Clone)]
pub(super) struct HashGate {
    permits: Arc<Semaphore>,
    wait: Duration,
}

/// The right to run one hash.
pub(super) struct Turn {
    _permit: OwnedSemaphorePermit,
}

impl HashGate {
    /// `permits` runs at once (at least one); a caller waits `wait` at most.
    pub(super) fn new(permits: usize, wait: Duration) -> Self {
        HashGate {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            wait,
        }
    }

    /// When a call starting now must have had its turn.
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.wait
    }

    /// Waits for a turn until `deadline`, else [`AccountError::Busy`].
    pub(super) async fn turn(&self, deadline: Instant) -> Result<Turn, AccountError> {
        match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(Turn { _permit: p }),
            _ => Err(AccountError::Busy),
        }
    }

    /// Runs `f` on a blocking thread, holding `turn` until it returns.
    pub(super) async fn run<T, F>(&self, turn: Turn, f: F) -> Result<T, AccountError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            f()
        })
        .await
        .map_err(|e| AccountError::Store(StoreError::Worker(e.to_string())))
    }

    /// Waits for a turn (from now) and runs `f` with it.
    pub(super) async fn hash<T, F>(&self, f: F) -> Result<T, AccountError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let turn = self.turn(self.deadline()).await?;
        self.run(turn, f).await
    }
}

/// Dead entries are swept when the map reaches this size (and then at
/// twice what is still alive), so the map holds about as many keys as
/// there are guesses in flight.
const SWEEP_AT: usize = 256;

/// One async mutex per key (a card, an account's code word, an account's
/// pending code), created on demand and forgotten when nobody holds it.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyLocks {
    inner: Arc<Mutex<Locks>>,
}

#[derive(Debug, Default)]
struct Locks {
    map: HashMap<String, Weak<tokio::sync::Mutex<()>>>,
    sweep_at: usize,
}

impl KeyLocks {
    /// Holds `key` until the guard drops; waits until `deadline` at most,
    /// else [`AccountError::Busy`].
    pub(super) async fn lock(
        &self,
        key: String,
        deadline: Instant,
    ) -> Result<OwnedMutexGuard<()>, AccountError> {
        let m = {
            let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if l.map.len() >= l.sweep_at.max(SWEEP_AT) {
                l.map.retain(|_, w| w.strong_count() > 0);
                l.sweep_at = l.map.len() * 2;
            }
            match l.map.get(&key).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    l.map.insert(key, Arc::downgrade(&m));
                    m
                }
            }
        };
        tokio::time::timeout_at(deadline, m.lock_owned())
            .await
            .map_err(|_| AccountError::Busy)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_gate_answers_busy_after_the_wait() {
        let gate = HashGate::new(1, Duration::from_millis(50));
        let held = gate.turn(gate.deadline()).await.unwrap();
        assert!(matches!(
            gate.turn(gate.deadline()).await,
            Err(AccountError::Busy)
        ));
        drop(held);
        assert_eq!(gate.hash(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn one_key_at_a_time_and_the_map_stays_small() {
        let locks = KeyLocks::default();
        let far = Instant::now() + Duration::from_secs(5);
        let a = locks.lock("card:1".into(), far).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(30);
        assert!(matches!(
            locks.lock("card:1".into(), soon).await,
            Err(AccountError::Busy)
        ));
        // Another key is independent.
        drop(locks.lock("card:2".into(), far).await.unwrap());
        drop(a);
        drop(locks.lock("card:1".into(), far).await.unwrap());
        for i in 0..10 * SWEEP_AT {
            drop(locks.lock(format!("k{i}"), far).await.unwrap());
        }
        assert!(locks.len() <= SWEEP_AT, "{}", locks.len());
    }
}
