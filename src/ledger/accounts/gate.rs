//! The one gate every argon2 hash and check goes through, and the per-key
//! locks that make each guess at a secret or code count before its verdict.
//!
//! An argon2id run needs about 19 MiB, so memory is bounded by bounding
//! runs: at most `permits` at once, each keeping its permit until the hash
//! is done (even if the caller went away). They run on `permits` dedicated
//! threads, each reusing one block buffer: freed 19 MiB buffers on many
//! blocking-pool threads would stay resident in the allocator's per-thread
//! arenas (glibc measured 790 MB for 1,000 calls with only 2 at a time).
//! A call that cannot get its turn within the queue timeout is answered
//! [`AccountError::Busy`] instead of piling up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::Duration;

use argon2::{Block, Params};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;

use super::AccountError;
use crate::store::StoreError;

/// One argon2 run, given its worker's block buffer.
type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// Bounds concurrent argon2 runs.
#[derive(Debug, Clone)]
pub(super) struct HashGate {
    permits: Arc<Semaphore>,
    wait: Duration,
    /// To the workers; `None` if no worker thread could be started (then
    /// runs go to the blocking pool, still `permits` at a time).
    jobs: Option<mpsc::Sender<Job>>,
}

/// A worker: runs jobs with its own buffer until every sender is gone.
fn worker(jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut memory = Vec::new();
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { return };
        if memory.is_empty() {
            memory = vec![Block::default(); Params::DEFAULT.block_count()];
        }
        // A panicking job drops its reply sender (the caller sees an
        // error); the worker and its buffer carry on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
    }
}

/// The right to run one hash.
pub(super) struct Turn {
    _permit: OwnedSemaphorePermit,
}

impl HashGate {
    /// `permits` runs at once (at least one); a caller waits `wait` at most.
    pub(super) fn new(permits: usize, wait: Duration) -> Self {
        let permits = permits.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..permits {
            let rx = rx.clone();
            match std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(rx))
            {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start an argon2 worker"),
            }
        }
        HashGate {
            permits: Arc::new(Semaphore::new(permits)),
            wait,
            jobs: (started > 0).then_some(tx),
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

    /// Runs `f` on a worker with its block buffer, holding `turn` until
    /// it returns.
    pub(super) async fn run<T, F>(&self, turn: Turn, f: F) -> Result<T, AccountError>
    where
        T: Send + 'static,
        F: FnOnce(&mut [Block]) -> T + Send + 'static,
    {
        let lost = || AccountError::Store(StoreError::Worker("argon2 worker failed".into()));
        let Some(jobs) = &self.jobs else {
            return tokio::task::spawn_blocking(move || {
                let _turn = turn;
                f(&mut vec![Block::default(); Params::DEFAULT.block_count()])
            })
            .await
            .map_err(|e| AccountError::Store(StoreError::Worker(e.to_string())));
        };
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let out = f(memory);
            drop(turn);
            let _ = tx.send(out);
        });
        jobs.send(job).map_err(|_| lost())?;
        rx.await.map_err(|_| lost())
    }

    /// Waits for a turn (from now) and runs `f` with it.
    pub(super) async fn hash<T, F>(&self, f: F) -> Result<T, AccountError>
    where
        T: Send + 'static,
        F: FnOnce(&mut [Block]) -> T + Send + 'static,
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
        assert_eq!(gate.hash(|m| m.len()).await.unwrap(), 19 * 1024);
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
