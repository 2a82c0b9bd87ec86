//! The write connection with group commit, and the pool of WAL readers.
//!
//! Every commit with `synchronous=FULL` pays an fsync. Callers that arrive
//! while another is writing queue on the connection's mutex; instead of one
//! transaction (and one fsync) each, the queue becomes one transaction:
//! each caller that joins runs its work in a `SAVEPOINT` of its own (a
//! caller whose work fails or refuses rolls back only its savepoint; the
//! first caller, alone in the transaction so far, needs none: its refusal
//! rolls the whole transaction back), the last caller of the
//! group (the one that finds nobody else waiting, or the group full)
//! commits once, and every caller of the group returns only after that
//! commit, so nobody is answered before the fsync that makes its write
//! durable. A caller alone commits at once, as before.
//!
//! Reads run on their own read-only connections: in WAL mode a reader sees
//! the last commit and never waits for the writer, so a card swipe does not
//! queue behind a terminal's commit.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::Connection;

/// Callers committed under one fsync at most: bounds a caller's wait.
const MAX_GROUP: usize = 64;

/// Failed groups remembered for their callers still to wake up.
const FAILURES_KEPT: usize = 64;

/// The one write connection, shared by group commit and by direct users
/// of the connection ([`super::Store::with`]).
pub(crate) struct Writer {
    state: Mutex<State>,
    finished: Condvar,
    /// Callers blocked on `state`: a caller that sees one leaves the group
    /// open for it rather than committing.
    waiting: AtomicUsize,
}

/// What the mutex guards: the connection and the open group, if any.
pub(crate) struct State {
    /// The connection. A direct user gets it only with no group open.
    pub(crate) conn: Connection,
    open: Option<Group>,
    last_id: u64,
    /// The last group that finished (committed or failed).
    done: u64,
    failed: VecDeque<(u64, i32, String)>,
}

struct Group {
    id: u64,
    members: usize,
}

impl Writer {
    /// The write connection `conn` (already configured and migrated).
    pub(crate) fn new(conn: Connection) -> Self {
        Writer {
            state: Mutex::new(State {
                conn,
                open: None,
                last_id: 0,
                done: 0,
                failed: VecDeque::new(),
            }),
            finished: Condvar::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    fn acquire(&self) -> MutexGuard<'_, State> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        st
    }

    /// The connection to itself, outside any transaction: an open group is
    /// committed first.
    pub(crate) fn exclusive(&self) -> MutexGuard<'_, State> {
        let mut st = self.acquire();
        self.finish(&mut st);
        st
    }

    /// Runs `f` in the current group's transaction (in a savepoint of its
    /// own when it joins a group others wrote in); `Ok(true)` keeps its
    /// writes, `Ok(false)` and `Err` roll them back.
    /// Returns once the group's commit is durable (or failed: then with
    /// the commit's error, also for a caller whose own work rolled back).
    pub(crate) fn group<E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<bool, E>,
    ) -> Result<(), E> {
        let mut st = self.acquire();
        let (id, first) = match st.open.as_mut() {
            Some(g) => {
                g.members += 1;
                (g.id, false)
            }
            None => {
                control(&st.conn, "BEGIN IMMEDIATE")?;
                st.last_id += 1;
                let id = st.last_id;
                st.open = Some(Group { id, members: 1 });
                (id, true)
            }
        };
        // The first caller writes straight into the transaction: a
        // savepoint copies every page its caller touches (a tenth of a
        // sale's CPU), and with nobody else's writes in the transaction a
        // rollback of the whole is the same as one of a savepoint.
        if !first && let Err(e) = control(&st.conn, "SAVEPOINT caller") {
            self.fail(&mut st, &e);
            return Err(e.into());
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&st.conn)));
        let keep = matches!(outcome, Ok(Ok(true)));
        if st.conn.is_autocommit() {
            // SQLite rolled the whole transaction back itself (an I/O
            // error, a full disk): the group is lost, for every member.
            let e = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back".into()),
            );
            self.fail(&mut st, &e);
        } else if first {
            if !keep {
                self.abandon(&mut st);
            }
        } else {
            let end = if keep {
                control(&st.conn, "RELEASE caller")
            } else {
                control(&st.conn, "ROLLBACK TO caller")
                    .and_then(|()| control(&st.conn, "RELEASE caller"))
            };
            if let Err(e) = end {
                self.fail(&mut st, &e);
            }
        }
        let full = st.open.as_ref().is_some_and(|g| g.members >= MAX_GROUP);
        if st.done < id {
            if self.waiting.load(Ordering::SeqCst) > 0 && !full && outcome.is_ok() {
                // Someone queued behind us joins this group; the group's
                // last member commits it and wakes us.
                while st.done < id {
                    st = self
                        .finished
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            } else {
                self.finish(&mut st);
            }
        }
        let failure = st
            .failed
            .iter()
            .find(|(g, ..)| *g == id)
            .map(|(_, code, msg)| {
                rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(*code), Some(msg.clone()))
            });
        drop(st);
        match outcome {
            Err(panic) => resume_unwind(panic),
            Ok(r) => {
                if let Some(e) = failure {
                    return Err(e.into());
                }
                r.map(|_| ())
            }
        }
    }

    /// Commits the open group, if any, and wakes its members.
    fn finish(&self, st: &mut State) {
        let Some(g) = st.open.take() else {
            return;
        };
        if let Err(e) = control(&st.conn, "COMMIT") {
            if !st.conn.is_autocommit() {
                let _ = st.conn.execute_batch("ROLLBACK");
            }
            remember(st, g.id, &e);
        }
        st.done = g.id;
        self.finished.notify_all();
    }

    /// Rolls back the open group, whose only member refused or failed: as
    /// after a savepoint's rollback it answers without an error (a failing
    /// rollback fails the group).
    fn abandon(&self, st: &mut State) {
        match control(&st.conn, "ROLLBACK") {
            Ok(()) => {
                if let Some(g) = st.open.take() {
                    st.done = g.id;
                    self.finished.notify_all();
                }
            }
            Err(e) => self.fail(st, &e),
        }
    }

    /// Drops the open group after `e`, telling every member.
    fn fail(&self, st: &mut State, e: &rusqlite::Error) {
        let Some(g) = st.open.take() else {
            return;
        };
        if !st.conn.is_autocommit() {
            let _ = st.conn.execute_batch("ROLLBACK");
        }
        remember(st, g.id, e);
        st.done = g.id;
        self.finished.notify_all();
    }
}

/// Runs a transaction-control statement from the connection's statement
/// cache: every caller runs two or three, and parsing them each time
/// (`execute_batch`) was a visible share of a sale.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn remember(st: &mut State, id: u64, e: &rusqlite::Error) {
    let code = e
        .sqlite_error()
        .map(|s| s.extended_code)
        .unwrap_or(rusqlite::ffi::SQLITE_ERROR);
    if st.failed.len() == FAILURES_KEPT {
        st.failed.pop_front();
    }
    st.failed
        .push_back((id, code, format!("group commit failed: {e}")));
}

/// A few read-only connections to the same file; a reader takes a free
/// one, or waits for one.
pub(crate) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// The pool over `conns` (at least one).
    pub(crate) fn new(conns: Vec<Connection>) -> Self {
        Readers {
            conns: conns.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A reader connection: a free one if any, else the next in turn.
    pub(crate) fn get(&self) -> MutexGuard<'_, Connection> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            match self.conns[(start + i) % n].try_lock() {
                Ok(g) => return g,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.conns[start % n]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
impl Writer {
    /// Callers queued for the connection (tests line up a group with it).
    pub(crate) fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn open(path: &std::path::Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c
    }

    fn committed(path: &std::path::Path, k: &str) -> bool {
        let c = Connection::open(path).unwrap();
        c.query_row("SELECT COUNT(*) FROM t WHERE k = ?1", [k], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
            == 1
    }

    /// Three callers in one group: the first holds the connection until
    /// the other two queue, the second fails. The failure rolls back only
    /// its own savepoint, one commit makes the others durable, and each
    /// caller sees its row committed by the time it is answered.
    #[test]
    fn a_failing_caller_rolls_back_only_itself_and_all_wait_for_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let c = open(&path);
        c.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .unwrap();
        let w = Arc::new(Writer::new(c));
        let first = {
            let (w, path) = (w.clone(), path.clone());
            std::thread::spawn(move || {
                let r = w.group(|c| {
                    c.execute("INSERT INTO t VALUES ('a')", [])?;
                    while w.queued() < 2 {
                        std::thread::yield_now();
                    }
                    Ok::<_, rusqlite::Error>(true)
                });
                (r.is_ok(), committed(&path, "a"))
            })
        };
        let spawn = |k: &'static str, fail: bool| {
            let (w, path) = (w.clone(), path.clone());
            std::thread::spawn(move || {
                let r = w.group(|c| {
                    c.execute("INSERT INTO t VALUES (?1)", [k])?;
                    if fail {
                        // A duplicate key: this caller's statement fails.
                        c.execute("INSERT INTO t VALUES (?1)", [k])?;
                    }
                    Ok::<_, rusqlite::Error>(true)
                });
                (r.is_ok(), committed(&path, k))
            })
        };
        // Wait for the first to hold the connection before lining up.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let bad = spawn("b", true);
        while w.queued() < 1 {
            std::thread::yield_now();
        }
        let good = spawn("c", false);
        assert_eq!(first.join().unwrap(), (true, true));
        assert_eq!(bad.join().unwrap(), (false, false));
        assert_eq!(good.join().unwrap(), (true, true));
        let st = w.exclusive();
        assert_eq!(st.last_id, 1, "one group, one commit");
        assert!(st.conn.is_autocommit());
    }

    /// The first caller (no savepoint of its own) refuses while another
    /// queues: only its writes go, the next caller's commit.
    #[test]
    fn a_refusing_first_caller_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let c = open(&path);
        c.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .unwrap();
        let w = Arc::new(Writer::new(c));
        let first = {
            let w = w.clone();
            std::thread::spawn(move || {
                w.group(|c| {
                    c.execute("INSERT INTO t VALUES ('a')", [])?;
                    while w.queued() < 1 {
                        std::thread::yield_now();
                    }
                    Ok::<_, rusqlite::Error>(false)
                })
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        let next = {
            let (w, path) = (w.clone(), path.clone());
            std::thread::spawn(move || {
                let r = w.group(|c| {
                    c.execute("INSERT INTO t VALUES ('b')", [])?;
                    Ok::<_, rusqlite::Error>(true)
                });
                (r.is_ok(), committed(&path, "b"))
            })
        };
        assert!(first.join().unwrap().is_ok());
        assert_eq!(next.join().unwrap(), (true, true));
        assert!(!committed(&path, "a"));
        let st = w.exclusive();
        assert!(st.conn.is_autocommit());
    }

    #[test]
    fn a_refusal_rolls_back_and_a_lone_caller_commits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let c = open(&path);
        c.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .unwrap();
        let w = Writer::new(c);
        w.group(|c| {
            c.execute("INSERT INTO t VALUES ('x')", [])?;
            Ok::<_, rusqlite::Error>(false)
        })
        .unwrap();
        assert!(!committed(&path, "x"));
        w.group(|c| {
            c.execute("INSERT INTO t VALUES ('y')", [])?;
            Ok::<_, rusqlite::Error>(true)
        })
        .unwrap();
        assert!(committed(&path, "y"));
        assert_eq!(w.exclusive().last_id, 2);
    }
}
