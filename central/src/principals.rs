//! Stores and terminals: the chain's principals.
//!
//! Each till authenticates as one terminal with a key issued once by
//! `posbridge-central terminal add` and kept only as an argon2id hash
//! (`terminals.key_hash`). Argon2 is deliberately slow, so a key that has
//! verified once is remembered in memory as its SHA-256, compared in
//! constant time. The terminal's row (store, key hash, status) is read at
//! most once per [`STATUS_TTL`] per instance (`server.terminal_status_ttl_ms`):
//! a revoked till is refused by every instance within that bound, and a
//! sale does not pay a read transaction (three round trips) for its auth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use posbridge::args;
use posbridge::ledger::db::{Books, DbError, OptionalExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Why an admin command on stores or terminals failed.
#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    /// An id is empty, too long, or has characters outside `A-Za-z0-9._-`.
    #[error("{0}: 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    BadId(&'static str),
    /// The store or terminal exists already.
    #[error("{0} \"{1}\" exists")]
    Exists(&'static str, String),
    /// No such store.
    #[error("no store \"{0}\"")]
    UnknownStore(String),
    /// No such terminal.
    #[error("no terminal \"{0}\"")]
    UnknownTerminal(String),
    /// The kernel gave no random bytes.
    #[error("no randomness: {0}")]
    Random(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// An authenticated till: who it is and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Terminal id.
    pub terminal: String,
    /// Its store's id.
    pub store: String,
}

/// A terminal as `terminal list` shows it (never its key or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalInfo {
    /// Terminal id.
    pub id: String,
    /// Store id.
    pub store: String,
    /// `active` or `revoked`.
    pub status: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

fn check_id(what: &'static str, id: &str) -> Result<(), PrincipalError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    // No ':' by construction: Basic auth splits user and key at the first one.
    if ok {
        Ok(())
    } else {
        Err(PrincipalError::BadId(what))
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Adds a store.
pub async fn add_store(books: &Books, id: &str, name: &str) -> Result<(), PrincipalError> {
    check_id("store", id)?;
    let (id, name, at) = (id.to_owned(), name.to_owned(), now());
    books
        .write(move |db| {
            let n = db.execute(
                "INSERT INTO stores (id, name, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO NOTHING",
                args![id, name, at],
            )?;
            Ok(if n == 1 {
                Ok(())
            } else {
                Err(PrincipalError::Exists("store", id.clone()))
            })
        })
        .await?
}

/// Adds a terminal of `store` and returns its key, which is stored only as
/// a hash: the caller shows it once.
pub async fn add_terminal(books: &Books, id: &str, store: &str) -> Result<String, PrincipalError> {
    check_id("terminal", id)?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| PrincipalError::Random(e.to_string()))?;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PrincipalError::Random(e.to_string()))?;
    let k = key.clone();
    let hash = tokio::task::spawn_blocking(move || hash_key(&k, salt))
        .await
        .map_err(|e| DbError::Store(e.to_string()))?;
    let (id, store, at) = (id.to_owned(), store.to_owned(), now());
    books
        .write(move |db| {
            let known = db
                .query_row("SELECT 1 FROM stores WHERE id = ?1", args![store], |r| {
                    r.get::<i64>(0)
                })
                .optional()?;
            if known.is_none() {
                return Ok(Err(PrincipalError::UnknownStore(store.clone())));
            }
            let n = db.execute(
                "INSERT INTO terminals (id, store_id, key_hash, status, created_at) \
                 VALUES (?1, ?2, ?3, 'active', ?4) ON CONFLICT (id) DO NOTHING",
                args![id, store, hash, at],
            )?;
            Ok(if n == 1 {
                Ok(())
            } else {
                Err(PrincipalError::Exists("terminal", id.clone()))
            })
        })
        .await??;
    Ok(key)
}

/// Revokes a terminal: its next request is refused (403).
pub async fn revoke_terminal(books: &Books, id: &str) -> Result<(), PrincipalError> {
    let (id, at) = (id.to_owned(), now());
    books
        .write(move |db| {
            let n = db.execute(
                "UPDATE terminals SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?2) \
                 WHERE id = ?1",
                args![id, at],
            )?;
            Ok(if n == 1 {
                Ok(())
            } else {
                Err(PrincipalError::UnknownTerminal(id.clone()))
            })
        })
        .await?
}

/// Every terminal, by id.
pub async fn list_terminals(books: &Books) -> Result<Vec<TerminalInfo>, PrincipalError> {
    Ok(books
        .read(|db| {
            db.query_map(
                "SELECT id, store_id, status, created_at, revoked_at FROM terminals ORDER BY id",
                args![],
                |r| {
                    Ok(TerminalInfo {
                        id: r.get(0)?,
                        store: r.get(1)?,
                        status: r.get(2)?,
                        created_at: r.get(3)?,
                        revoked_at: r.get(4)?,
                    })
                },
            )
        })
        .await?)
}

/// `argon2id$<salt hex>$<hash hex>`: the till's format and parameters for
/// card secrets (19 MiB, 2 passes). A key is 256 random bits, so the hash
/// guards a leaked table, not a weak key.
fn hash_key(key: &str, salt: [u8; 16]) -> String {
    posbridge::ledger::accounts::argon2id_hash(key, salt)
}

fn key_matches(stored: &str, presented: &str) -> bool {
    posbridge::ledger::accounts::argon2id_matches(stored, presented)
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Basic` header, or not `terminal:key` in base64.
    #[error("credentials required (Authorization: Basic terminal:key)")]
    Missing,
    /// Unknown terminal or wrong key (the two are not told apart).
    #[error("unknown terminal or wrong key")]
    Invalid,
    /// The terminal was revoked.
    #[error("the terminal is revoked")]
    Revoked,
    /// Too many wrong keys for this terminal lately.
    #[error("too many failed logins; retry after {0} s")]
    Throttled(u64),
    /// No hashing slot came free in time.
    #[error("busy checking credentials; retry")]
    Busy,
    /// The database failed.
    #[error("database unavailable: {0}")]
    Db(String),
}

/// Failures before a terminal is throttled, and the longest lock-out.
const FREE_FAILURES: u32 = 5;
const MAX_LOCKOUT: Duration = Duration::from_secs(60);
/// Bounds on the in-memory maps: a flood of made-up terminal ids cannot
/// grow them without limit.
const MAX_ENTRIES: usize = 10_000;
/// How long a terminal's row read from the database answers for it by
/// default: the bound on how long a revoked till is still served.
pub const STATUS_TTL: Duration = Duration::from_secs(5);

/// A terminal's row as read, and when.
struct Known {
    store: String,
    key_hash: String,
    status: String,
    read_at: Instant,
}

struct Verified {
    /// The stored hash the key was checked against: a re-issued key (new
    /// hash) invalidates the entry.
    key_hash: String,
    key_sha: [u8; 32],
}

struct Failures {
    count: u32,
    until: Instant,
}

/// Checks `Authorization` headers against the `terminals` table.
pub struct Authenticator {
    books: Books,
    verified: Mutex<HashMap<String, Verified>>,
    failures: Mutex<HashMap<String, Failures>>,
    /// Terminal rows read lately (only terminals that exist).
    rows: Mutex<HashMap<String, Known>>,
    status_ttl: Duration,
    hashing: Arc<Semaphore>,
    queue_timeout: Duration,
}

impl Authenticator {
    /// Checks credentials on `books`, at most `hash_slots` argon2 checks at
    /// once (each holds about 19 MiB).
    pub fn new(books: Books, hash_slots: usize) -> Self {
        Authenticator {
            books,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            rows: Mutex::new(HashMap::new()),
            status_ttl: STATUS_TTL,
            hashing: Arc::new(Semaphore::new(hash_slots.max(1))),
            queue_timeout: Duration::from_secs(5),
        }
    }

    /// Trusts a terminal's row for `ttl` after reading it (default
    /// [`STATUS_TTL`]); zero reads it on every request.
    pub fn with_status_ttl(mut self, ttl: Duration) -> Self {
        self.status_ttl = ttl;
        self
    }

    /// The terminal's (store, key hash, status): from the rows read within
    /// the TTL, else from the database. Unknown terminals are not
    /// remembered (made-up ids must not fill the map; a new terminal works
    /// at once).
    async fn row(&self, terminal: &str) -> Result<Option<(String, String, String)>, AuthError> {
        if !self.status_ttl.is_zero()
            && let Some(k) = lock(&self.rows).get(terminal)
            && k.read_at.elapsed() < self.status_ttl
        {
            return Ok(Some((
                k.store.clone(),
                k.key_hash.clone(),
                k.status.clone(),
            )));
        }
        // Taken before the read: the entry's age bounds the row's age.
        let read_at = Instant::now();
        let t = terminal.to_owned();
        let row = self
            .books
            .read(move |db| {
                db.query_row(
                    "SELECT store_id, key_hash, status FROM terminals WHERE id = ?1",
                    args![t],
                    |r| {
                        Ok((
                            r.get::<String>(0)?,
                            r.get::<String>(1)?,
                            r.get::<String>(2)?,
                        ))
                    },
                )
                .optional()
            })
            .await
            .map_err(|e| AuthError::Db(e.to_string()))?;
        let mut rows = lock(&self.rows);
        match &row {
            Some((store, key_hash, status)) if !self.status_ttl.is_zero() => {
                if rows.len() >= MAX_ENTRIES && !rows.contains_key(terminal) {
                    rows.clear();
                }
                rows.insert(
                    terminal.to_owned(),
                    Known {
                        store: store.clone(),
                        key_hash: key_hash.clone(),
                        status: status.clone(),
                        read_at,
                    },
                );
            }
            _ => {
                rows.remove(terminal);
            }
        }
        Ok(row)
    }

    /// The principal behind an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let (terminal, key) = parse_basic(header).ok_or(AuthError::Missing)?;
        let key_sha: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // A key this instance has verified skips the throttle: someone
        // guessing keys for a till's id cannot lock the till itself out.
        let known = lock(&self.verified)
            .get(&terminal)
            .is_some_and(|v| bool::from(v.key_sha.ct_eq(&key_sha)));
        if !known {
            self.throttled(&terminal)?;
        }
        let row = self.row(&terminal).await?;
        let Some((store, key_hash, status)) = row else {
            self.failed(&terminal);
            return Err(AuthError::Invalid);
        };
        if !self.cached(&terminal, &key_hash, &key_sha) {
            if !self.check(&key_hash, key).await? {
                self.failed(&terminal);
                return Err(AuthError::Invalid);
            }
            let mut v = lock(&self.verified);
            if v.len() >= MAX_ENTRIES {
                v.clear();
            }
            v.insert(terminal.clone(), Verified { key_hash, key_sha });
        }
        // Status after the key: a revoked terminal learns it is revoked
        // only with its own key.
        if status != "active" {
            return Err(AuthError::Revoked);
        }
        if !known {
            // Only a fresh verification clears the count: the till's own
            // cached calls must not keep resetting a guesser's.
            lock(&self.failures).remove(&terminal);
        }
        Ok(Principal { terminal, store })
    }

    fn cached(&self, terminal: &str, key_hash: &str, key_sha: &[u8; 32]) -> bool {
        lock(&self.verified)
            .get(terminal)
            .is_some_and(|v| v.key_hash == key_hash && bool::from(v.key_sha.ct_eq(key_sha)))
    }

    async fn check(&self, key_hash: &str, key: String) -> Result<bool, AuthError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.hashing.clone().acquire_owned())
            .await
            .map_err(|_| AuthError::Busy)?
            .map_err(|_| AuthError::Busy)?;
        let stored = key_hash.to_owned();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            key_matches(&stored, &key)
        })
        .await
        .map_err(|_| AuthError::Busy)
    }

    fn throttled(&self, terminal: &str) -> Result<(), AuthError> {
        match lock(&self.failures).get(terminal) {
            Some(f) if f.until > Instant::now() => Err(AuthError::Throttled(
                (f.until - Instant::now()).as_secs().max(1),
            )),
            _ => Ok(()),
        }
    }

    fn failed(&self, terminal: &str) {
        let mut map = lock(&self.failures);
        if map.len() >= MAX_ENTRIES && !map.contains_key(terminal) {
            let now = Instant::now();
            map.retain(|_, f| f.until > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let f = map.entry(terminal.to_owned()).or_insert(Failures {
            count: 0,
            until: Instant::now(),
        });
        f.count = f.count.saturating_add(1);
        if f.count >= FREE_FAILURES {
            // 1 s after the fifth failure, doubling, at most a minute: a
            // till with a mistyped key recovers quickly, a guesser crawls.
            let secs = 1u64 << (f.count - FREE_FAILURES).min(6);
            f.until = Instant::now() + Duration::from_secs(secs).min(MAX_LOCKOUT);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Basic base64(terminal:key)` → (terminal, key).
fn parse_basic(header: Option<&str>) -> Option<(String, String)> {
    let h = header?.trim();
    let (scheme, b64) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || b64.len() > 512 {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (t, k) = s.split_once(':')?;
    if t.is_empty() || k.is_empty() {
        return None;
    }
    Some((t.to_owned(), k.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_headers_parse_strictly() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            parse_basic(Some(&format!("Basic {}", enc("till-1:k:ey")))),
            Some(("till-1".into(), "k:ey".into()))
        );
        assert_eq!(parse_basic(Some(&format!("Bearer {}", enc("a:b")))), None);
        assert_eq!(parse_basic(Some(&format!("Basic {}", enc(":b")))), None);
        assert_eq!(parse_basic(Some(&format!("Basic {}", enc("a:")))), None);
        assert_eq!(parse_basic(Some("Basic !!!")), None);
        assert_eq!(parse_basic(None), None);
    }

    #[test]
    fn keys_hash_and_verify() {
        let h = hash_key("k3y", [7; 16]);
        assert!(h.starts_with("argon2id$"));
        assert!(key_matches(&h, "k3y"));
        assert!(!key_matches(&h, "k3z"));
        assert!(!key_matches("argon2id$zz$00", "k3y"));
        assert!(!key_matches(&format!("{h}$extra"), "k3y"));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("terminal", "till-1.a_b").is_ok());
        assert!(check_id("terminal", "").is_err());
        assert!(check_id("terminal", "a:b").is_err());
        assert!(check_id("terminal", &"x".repeat(65)).is_err());
    }

    #[tokio::test]
    async fn wrong_keys_are_throttled_and_revocation_bites_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db").display());
        let core = crate::core::Core::open(&url, 1, &Default::default()).unwrap();
        let books = core.books().clone();
        add_store(&books, "s1", "Shop").await.unwrap();
        let key = add_terminal(&books, "t1", "s1").await.unwrap();
        // Rows read on every request here: this test is about the key cache.
        let auth = Authenticator::new(books.clone(), 2).with_status_ttl(Duration::ZERO);
        let basic = |t: &str, k: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{t}:{k}"))
            )
        };
        let good = basic("t1", &key);
        let me = Principal {
            terminal: "t1".into(),
            store: "s1".into(),
        };
        assert_eq!(auth.authenticate(Some(&good)).await, Ok(me.clone()));
        // Cached now; a wrong key is still wrong.
        let stored = lock(&auth.verified)["t1"].key_hash.clone();
        assert!(auth.cached("t1", &stored, &Sha256::digest(key.as_bytes()).into()));
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                auth.authenticate(Some(&basic("t1", "nope"))).await,
                Err(AuthError::Invalid)
            );
        }
        // Locked out for a while: further guesses are not even checked...
        assert!(matches!(
            auth.authenticate(Some(&basic("t1", "nope"))).await,
            Err(AuthError::Throttled(_))
        ));
        // ...but the till whose key this instance has verified carries on,
        // and its calls do not lift the guesser's lock-out.
        assert_eq!(auth.authenticate(Some(&good)).await, Ok(me.clone()));
        assert!(matches!(
            auth.authenticate(Some(&basic("t1", "nope"))).await,
            Err(AuthError::Throttled(_))
        ));
        // An instance that has not seen the key yet throttles it too.
        let fresh = Authenticator::new(books.clone(), 2).with_status_ttl(Duration::ZERO);
        for _ in 0..FREE_FAILURES {
            let _ = fresh.authenticate(Some(&basic("t1", "nope"))).await;
        }
        assert!(matches!(
            fresh.authenticate(Some(&good)).await,
            Err(AuthError::Throttled(_))
        ));
        lock(&fresh.failures).clear();
        assert_eq!(fresh.authenticate(Some(&good)).await, Ok(me));
        revoke_terminal(&books, "t1").await.unwrap();
        assert_eq!(
            auth.authenticate(Some(&good)).await,
            Err(AuthError::Revoked)
        );
        assert_eq!(list_terminals(&books).await.unwrap()[0].status, "revoked");
    }

    #[tokio::test]
    async fn a_revoked_terminal_is_refused_within_the_status_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db").display());
        let core = crate::core::Core::open(&url, 1, &Default::default()).unwrap();
        let books = core.books().clone();
        add_store(&books, "s1", "Shop").await.unwrap();
        let key = add_terminal(&books, "t1", "s1").await.unwrap();
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("t1:{key}"))
        );
        let me = Ok(Principal {
            terminal: "t1".into(),
            store: "s1".into(),
        });
        let ttl = Duration::from_millis(300);
        let short = Authenticator::new(books.clone(), 2).with_status_ttl(ttl);
        let long = Authenticator::new(books.clone(), 2).with_status_ttl(Duration::from_secs(3600));
        assert_eq!(short.authenticate(Some(&good)).await, me);
        assert_eq!(long.authenticate(Some(&good)).await, me);
        revoke_terminal(&books, "t1").await.unwrap();
        // The row read before the revocation still answers within its TTL:
        // the cache is in use (an hour cannot have passed)...
        assert_eq!(long.authenticate(Some(&good)).await, me);
        // ...and an instance reading afresh refuses at once.
        let fresh = Authenticator::new(books.clone(), 2);
        assert_eq!(
            fresh.authenticate(Some(&good)).await,
            Err(AuthError::Revoked)
        );
        // Every row `short` holds was read before the revocation ended, so
        // once its TTL has passed since then the till is refused.
        tokio::time::sleep(ttl).await;
        assert_eq!(
            short.authenticate(Some(&good)).await,
            Err(AuthError::Revoked)
        );
        // Unknown terminals are not remembered: a terminal added later
        // works at once.
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("t2:nope")
        );
        assert_eq!(
            long.authenticate(Some(&wrong)).await,
            Err(AuthError::Invalid)
        );
        assert!(!lock(&long.rows).contains_key("t2"));
        let key2 = add_terminal(&books, "t2", "s1").await.unwrap();
        let good2 = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("t2:{key2}"))
        );
        assert!(long.authenticate(Some(&good2)).await.is_ok());
    }
}
