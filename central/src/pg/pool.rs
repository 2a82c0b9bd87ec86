//! A small bounded pool of blocking PostgreSQL connections.
//!
//! Our own (a mutex, a condvar, a checkout deadline) rather than r2d2 +
//! r2d2_postgres: each connection carries its prepared-statement cache and
//! a transaction flag, a connection left inside a transaction or closed by
//! the server is dropped instead of pooled, and the whole is ~100 lines
//! with no dependency that lags the `postgres` crate's releases.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use posbridge::ledger::db::DbError;

/// One pooled connection.
pub(crate) struct Conn {
    pub(crate) client: postgres::Client,
    /// Prepared statements by the core's SQL text (`?N` form).
    pub(crate) statements: HashMap<String, postgres::Statement>,
    /// Set from BEGIN until COMMIT/ROLLBACK is answered: a connection
    /// returned with it set is in an unknown state and is closed.
    pub(crate) in_transaction: bool,
}

/// Connections open and idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open, in use or idle.
    pub open: usize,
    /// Idle in the pool.
    pub idle: usize,
}

struct State {
    idle: Vec<Conn>,
    open: usize,
}

pub(crate) struct Pool {
    config: postgres::Config,
    /// Run on every new connection (timeouts).
    session: String,
    max: usize,
    checkout_timeout: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

impl Pool {
    pub(crate) fn new(
        config: postgres::Config,
        session: String,
        max: usize,
        checkout_timeout: Duration,
    ) -> Pool {
        Pool {
            config,
            session,
            max,
            checkout_timeout,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let s = self.lock();
        PoolStats {
            open: s.open,
            idle: s.idle.len(),
        }
    }

    /// An idle connection, a new one while fewer than `max` are open, or
    /// the first one freed before the checkout deadline.
    pub(crate) fn get(&self) -> Result<Pooled<'_>, DbError> {
        let deadline = Instant::now() + self.checkout_timeout;
        let mut state = self.lock();
        loop {
            // Most recently used first: its statements are warm.
            if let Some(conn) = state.idle.pop() {
                if conn.client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DbError::Store(format!(
                    "no PostgreSQL connection free within {:?} (all {} busy)",
                    self.checkout_timeout, self.max
                )));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn connect(&self) -> Result<Conn, DbError> {
        let mut client = self
            .config
            .connect(postgres::NoTls)
            .map_err(|e| DbError::Store(format!("cannot connect to PostgreSQL: {e}")))?;
        client
            .batch_execute(&self.session)
            .map_err(|e| DbError::Store(format!("setting up a PostgreSQL session: {e}")))?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            in_transaction: false,
        })
    }

    fn put(&self, conn: Conn) {
        let mut state = self.lock();
        if conn.in_transaction || conn.client.is_closed() {
            state.open -= 1;
            drop(state);
            // Closing the socket ends the server's side of the transaction.
            drop(conn);
        } else {
            state.idle.push(conn);
        }
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        // Closing a blocking client runs a runtime of its own, which panics
        // on a thread that drives async tasks: the last handle to the
        // books may well be dropped on one.
        std::thread::scope(|s| {
            s.spawn(move || drop(idle));
        });
    }
}

/// A connection checked out of the pool; back in it on drop.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}
