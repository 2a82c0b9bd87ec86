//! Guessed values (a card's secret, an account's code word): each guess is
//! counted before its verdict, one at a time per card or account, so no
//! ordering of guesses (pipelined, concurrent, over many connections) gets
//! more than [`MAX_ATTEMPTS`] evaluated per lock window, and nothing is
//! accepted while locked.

use time::OffsetDateTime;

use super::{AccountError, Accounts, CodeTable, LOCK_FOR, MAX_ATTEMPTS, secret_matches, ts};
use crate::ledger::db::{ToValue, args};

/// Where a guessed value keeps its hash, its count of wrong guesses in a
/// row and its lock, so both kinds are limited the same way.
pub(super) struct Guessed {
    table: &'static str,
    key: &'static str,
    hash: &'static str,
    failed: &'static str,
    locked: &'static str,
}

pub(super) const CARD_SECRET: Guessed = Guessed {
    table: "cards",
    key: "number",
    hash: "secret_hash",
    failed: "failed_attempts",
    locked: "locked_until",
};

pub(super) const CODE_WORD: Guessed = Guessed {
    table: "accounts",
    key: "id",
    hash: "code_word_hash",
    failed: "code_word_failed",
    locked: "code_word_locked_until",
};

/// The outcome of one guess.
pub(super) enum Guess {
    Right,
    Wrong { attempts_left: i64 },
    Locked { until: String, just_locked: bool },
}

pub(super) enum Checked {
    /// No such card or account.
    Missing,
    /// Nothing to compare with.
    NoHash,
    Guess(Guess),
}

/// What the counting step found.
enum Counted {
    /// Answered without hashing.
    Done(Checked),
    /// Counted as the `n`th guess in a row; compare with `hash`.
    Compare { hash: String, n: i64 },
}

impl Guessed {
    /// Checks `presented` against the row `key`:
    ///
    /// 1. takes the row's lock (one guess at a time per card or account);
    /// 2. refuses a locked row, or one without a hash, without hashing;
    /// 3. takes a hashing turn, then counts the guess in one write
    ///    transaction (the [`MAX_ATTEMPTS`]th in a row locks for
    ///    [`LOCK_FOR`]), committed before comparing;
    /// 4. compares (argon2id, constant time); a right guess clears the
    ///    count and the lock it may just have set.
    ///
    /// A crash between 3 and 4 leaves the guess counted: fail closed. No
    /// turn within the queue timeout is [`AccountError::Busy`], and then
    /// nothing was counted.
    pub(super) async fn check<K>(
        &self,
        accounts: &Accounts,
        key: K,
        presented: String,
    ) -> Result<Checked, AccountError>
    where
        K: ToValue + std::fmt::Display + Clone + Send + 'static,
    {
        let deadline = accounts.gate.deadline();
        let _one_at_a_time = accounts
            .keys
            .lock(format!("{}:{key}", self.table), deadline)
            .await?;
        let now = OffsetDateTime::now_utc();
        let stamp = ts(now);
        let until = ts(now + LOCK_FOR);
        // Cheap refusals first, without a hashing turn.
        if let Counted::Done(answer) = self.count(accounts, key.clone(), &stamp, None).await? {
            return Ok(answer);
        }
        let turn = accounts.gate.turn(deadline).await?;
        let (hash, n) = match self
            .count(accounts, key.clone(), &stamp, Some(until.clone()))
            .await?
        {
            Counted::Done(answer) => return Ok(answer),
            Counted::Compare { hash, n } => (hash, n),
        };
        let ok = accounts.compare(turn, hash, presented).await?;
        if ok {
            let sql = format!(
                "UPDATE {} SET {} = 0, {} = NULL WHERE {} = ?1",
                self.table, self.failed, self.locked, self.key
            );
            accounts
                .books
                .write_always(move |db| db.execute(&sql, args![key]))
                .await?;
            return Ok(Checked::Guess(Guess::Right));
        }
        Ok(Checked::Guess(if n >= MAX_ATTEMPTS {
            Guess::Locked {
                until,
                just_locked: true,
            }
        } else {
            Guess::Wrong {
                attempts_left: MAX_ATTEMPTS - n,
            }
        }))
    }

    /// Reads the row in one write transaction; with `lock_until`, also
    /// counts the guess (and locks at the [`MAX_ATTEMPTS`]th in a row, the
    /// count starting again for the next window), committed whatever the
    /// verdict will be.
    async fn count<K>(
        &self,
        accounts: &Accounts,
        key: K,
        stamp: &str,
        lock_until: Option<String>,
    ) -> Result<Counted, AccountError>
    where
        K: ToValue + Send + 'static,
    {
        let read = format!(
            "SELECT {}, {}, {} FROM {} WHERE {} = ?1",
            self.hash, self.locked, self.failed, self.table, self.key
        );
        let bump = format!(
            "UPDATE {} SET {} = ?2, {} = ?3 WHERE {} = ?1",
            self.table, self.failed, self.locked, self.key
        );
        let stamp = stamp.to_owned();
        Ok(accounts
            .books
            .write_always(move |db| {
                let row: Option<(Option<String>, Option<String>, i64)> =
                    db.query_opt(&read, args![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                let Some((hash, locked, failed)) = row else {
                    return Ok(Counted::Done(Checked::Missing));
                };
                if let Some(until) = locked.filter(|u| u.as_str() > stamp.as_str()) {
                    return Ok(Counted::Done(Checked::Guess(Guess::Locked {
                        until,
                        just_locked: false,
                    })));
                }
                let Some(hash) = hash else {
                    return Ok(Counted::Done(Checked::NoHash));
                };
                let Some(until) = &lock_until else {
                    return Ok(Counted::Compare { hash, n: 0 });
                };
                let n = failed + 1;
                if n >= MAX_ATTEMPTS {
                    db.execute(&bump, args![key, 0_i64, until])?;
                } else {
                    db.execute(&bump, args![key, n, None::<String>])?;
                }
                Ok(Counted::Compare { hash, n })
            })
            .await?)
    }
}

/// What counting a try at a one-time code found.
pub(super) enum CodeCount {
    /// No code row (none sent, or used meanwhile).
    Gone,
    /// Answered without hashing: void, expired or out of tries.
    Refused(AccountError),
    /// Counted; compare with this hash.
    Compare(String),
}

impl Accounts {
    /// Counts a try at `account`'s code in `table` before it is compared,
    /// in one write transaction committed before the comparison, so that however tries arrive at most
    /// `max` are ever compared. The caller holds the code's key lock and a
    /// hashing turn.
    pub(super) async fn count_code_try(
        &self,
        table: CodeTable,
        account: i64,
        max: i64,
        stamp: String,
    ) -> Result<CodeCount, AccountError> {
        let name = table.name();
        Ok(self
            .books
            .write_always(move |db| {
                let row: Option<(Option<String>, String, i64)> = db.query_opt(
                    &format!(
                        "SELECT code_hash, expires_at, attempts FROM {name} WHERE account_id = ?1"
                    ),
                    args![account],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let out = match row {
                    None => CodeCount::Gone,
                    Some((None, _, _)) => CodeCount::Refused(AccountError::CodeExhausted),
                    Some((_, exp, _)) if exp.as_str() <= stamp.as_str() => {
                        CodeCount::Refused(AccountError::CodeExpired)
                    }
                    // Tries used up without the code being voided (a crash
                    // between count and verdict): void it now.
                    Some((_, _, n)) if n >= max => {
                        db.execute(
                            &format!("UPDATE {name} SET code_hash = NULL WHERE account_id = ?1"),
                            args![account],
                        )?;
                        CodeCount::Refused(AccountError::CodeExhausted)
                    }
                    Some((Some(hash), _, _)) => {
                        db.execute(
                            &format!(
                                "UPDATE {name} SET attempts = attempts + 1 WHERE account_id = ?1"
                            ),
                            args![account],
                        )?;
                        CodeCount::Compare(hash)
                    }
                };
                Ok(out)
            })
            .await?)
    }

    /// Compares `presented` with `hash` in the hashing `turn`.
    pub(super) async fn compare(
        &self,
        turn: super::gate::Turn,
        hash: String,
        presented: String,
    ) -> Result<bool, AccountError> {
        // Counted in tests: how many guesses were really evaluated.
        tracing::debug!("argon2 check of a guess");
        self.gate
            .run(turn, move |m| secret_matches(&hash, &presented, m))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{Lookup, Registration, Settings};
    use super::*;
    use crate::ledger::rules::Programme;
    use crate::random;
    use crate::redact::Secret;
    use crate::store::Store;

    fn open() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        (dir, Accounts::new(store, Settings::default()))
    }

    #[tokio::test]
    async fn without_randomness_nothing_is_minted() {
        let (_d, a) = open();
        let a = a.with_random(random::failing);
        let p = Programme::default();
        for secret in [None, Some(Secret::new("4711"))] {
            let r = a
                .register(
                    &p,
                    Registration {
                        phone: Some("+79160000011".into()),
                        secret,
                        ..Registration::default()
                    },
                )
                .await;
            assert!(matches!(r, Err(AccountError::Random(_))), "{r:?}");
        }
        assert!(matches!(
            a.get(Lookup::Phone("+79160000011".into())).await,
            Err(AccountError::UnknownCard)
        ));
    }

    /// 100 wrong secrets and the right one at once, on one card: exactly
    /// five are checked, and the right one (checked or not) is refused
    /// once the card has locked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_guesses_are_counted_one_at_a_time() {
        let (_d, a) = open();
        let a = Arc::new(a);
        let r = a
            .register(
                &Programme::default(),
                Registration {
                    phone: Some("+79160000012".into()),
                    secret: Some(Secret::new("4711")),
                    ..Registration::default()
                },
            )
            .await
            .unwrap();
        let mut calls = Vec::new();
        for i in 0..101 {
            let (a, n) = (a.clone(), r.card_number.clone());
            let s = if i == 100 { "4711" } else { "0000" };
            calls.push(tokio::spawn(async move {
                a.verify_secret(n, Secret::new(s)).await
            }));
        }
        let (mut wrong, mut locking, mut refused, mut right) = (0, 0, 0, 0);
        for c in calls {
            match c.await.unwrap() {
                Err(AccountError::WrongSecret { .. }) => wrong += 1,
                Err(AccountError::Locked {
                    just_locked: true, ..
                }) => locking += 1,
                Err(AccountError::Locked { .. }) => refused += 1,
                Ok(()) => right += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(wrong + locking + refused + right, 101);
        assert_eq!(locking, 1, "one guess locks the card");
        // The right secret either came among the first five (it resets
        // the count: five more wrong ones lock) or after the lock (refused).
        if right == 1 {
            assert!((4..=8).contains(&wrong), "{wrong}");
        } else {
            assert_eq!(wrong, 4, "exactly five checked");
        }
        // After the lock nothing is accepted, the right secret included.
        assert!(matches!(
            a.verify_secret(r.card_number.clone(), Secret::new("4711"))
                .await,
            Err(AccountError::Locked { .. })
        ));
    }
}
