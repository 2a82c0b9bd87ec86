//! Sessions, CSRF tokens and the login throttle, all in memory and
//! bounded: a restart logs everyone out, which for a shop's back office is
//! a fair price for keeping session ids out of the database.
//!
//! A session id is 32 random bytes (hex in the cookie); the map is keyed
//! by it. Each session carries its own CSRF token, which every POST form
//! repeats in a hidden field and which is compared in constant time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::random::{self, RandomError};
use crate::redact::constant_time_eq;

/// A session unused for this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// Sessions kept at once; the least recently used goes first.
pub const MAX_SESSIONS: usize = 1024;
/// Wrong passwords from one address before logins from it wait.
pub const MAX_FAILURES: u32 = 5;
/// How long an address waits after [`MAX_FAILURES`] (doubling with each
/// further failure, up to [`BACKOFF_MAX`]).
pub const BACKOFF: Duration = Duration::from_secs(60);
/// The longest wait.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// Addresses tracked at once; the oldest is forgotten first.
pub const MAX_ADDRESSES: usize = 4096;

/// A logged-in operator's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The operator's name (their role is read from the books on every
    /// request, so a change or a disable takes effect at once).
    pub operator: String,
    /// The token forms repeat.
    pub csrf: String,
    last_seen: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), presented.as_bytes())
    }
}

/// The open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `operator`; returns its id (for the cookie).
    pub fn open(&self, operator: &str, now: Instant) -> Result<String, RandomError> {
        let id = random::hex::<32>(random::system)?;
        let csrf = random::hex::<32>(random::system)?;
        let mut map = self.lock();
        map.retain(|_, s| now.saturating_duration_since(s.last_seen) < IDLE);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                operator: operator.to_owned(),
                csrf,
                last_seen: now,
            },
        );
        Ok(id)
    }

    /// The live session with this id, touched; an idle one is ended.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if now.saturating_duration_since(s.last_seen) >= IDLE {
            map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed logins per source address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    map: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginThrottle {
    /// `Some(wait)` when `addr` must wait before trying again.
    pub fn blocked(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.lock();
        let f = map.get(&addr)?;
        if f.count < MAX_FAILURES {
            return None;
        }
        let doublings = (f.count - MAX_FAILURES).min(8);
        let wait = BACKOFF.saturating_mul(1 << doublings).min(BACKOFF_MAX);
        let until = f.last + wait;
        (until > now).then(|| until - now)
    }

    /// Counts a failed login.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&addr) {
            // Forget what is old first; if all are recent, the oldest.
            map.retain(|_, f| now.saturating_duration_since(f.last) < BACKOFF_MAX);
            if map.len() >= MAX_ADDRESSES
                && let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let f = map.entry(addr).or_insert(Failures {
            count: 0,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    /// Clears an address's count after a good login.
    pub fn succeeded(&self, addr: IpAddr) {
        self.lock().remove(&addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_check_their_csrf_token() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.open("anna", t0).unwrap();
        assert_eq!(id.len(), 64);
        let got = s.get(&id, t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(got.operator, "anna");
        assert!(got.csrf_ok(&got.csrf.clone()));
        assert!(!got.csrf_ok(""));
        assert!(!got.csrf_ok("0000"));
        // Touched at +60 s: alive at +60 s + IDLE - 1 s, gone after.
        assert!(s.get(&id, t0 + IDLE + Duration::from_secs(59)).is_some());
        let later = t0 + IDLE + Duration::from_secs(59) + IDLE;
        assert!(s.get(&id, later).is_none());
        assert!(s.get("nonsense", t0).is_none());
        let id2 = s.open("anna", t0).unwrap();
        assert_ne!(id, id2);
        s.close(&id2);
        assert!(s.get(&id2, t0).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let first = s.open("a", t0).unwrap();
        for i in 1..=MAX_SESSIONS {
            s.open("a", t0 + Duration::from_millis(i as u64)).unwrap();
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
        assert!(s.get(&first, t0).is_none(), "the oldest went first");
    }

    #[test]
    fn logins_wait_after_repeated_failures() {
        let t = LoginThrottle::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed(a, t0);
        }
        assert_eq!(t.blocked(a, t0), None);
        t.failed(a, t0);
        assert_eq!(t.blocked(a, t0), Some(BACKOFF));
        assert_eq!(t.blocked(b, t0), None);
        assert_eq!(t.blocked(a, t0 + BACKOFF), None);
        t.failed(a, t0 + BACKOFF);
        assert_eq!(t.blocked(a, t0 + BACKOFF), Some(BACKOFF * 2));
        t.succeeded(a);
        assert_eq!(t.blocked(a, t0 + BACKOFF), None);
    }
}
