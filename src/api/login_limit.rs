//! Back-off for `auth.login`: per connection and per client address, so a
//! client guessing tokens gets a handful of tries a minute instead of
//! thousands a second.
//!
//! A few wrong tokens are free; each further one doubles the wait before
//! the next attempt is even looked at ([`BASE_DELAY`] up to [`MAX_DELAY`]).
//! Attempts during the wait are refused unchecked, so guessing through it
//! is pointless. A success does not wipe the record (else a client holding
//! one valid token could reset its address between guesses at another);
//! records are forgotten [`FORGET_AFTER`] after the last failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens one connection may send before it has to wait.
pub const FREE_PER_CONN: u32 = 3;
/// Wrong tokens one address may send (over all its connections) before
/// every connection from it has to wait.
pub const FREE_PER_ADDR: u32 = 10;
/// The first wait; it doubles with each further failure.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// An address's record is dropped this long after its last failure.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at once; beyond it the stalest record goes.
pub const MAX_ADDRS: usize = 4096;

/// Failures and the wait they impose, for one connection or one address.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    failures: u32,
    until: Instant,
    last: Instant,
    free: u32,
}

impl Backoff {
    /// A clean record allowing `free` failures before waits start.
    pub fn new(free: u32, now: Instant) -> Self {
        Backoff {
            failures: 0,
            until: now,
            last: now,
            free,
        }
    }

    /// `Err(wait)` while attempts must wait.
    pub fn check(&self, now: Instant) -> Result<(), Duration> {
        if now < self.until {
            Err(self.until - now)
        } else {
            Ok(())
        }
    }

    /// Records a wrong token; returns the wait now imposed (zero while the
    /// free failures last).
    pub fn fail(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.last = now;
        let over = self.failures.saturating_sub(self.free);
        let delay = if over == 0 {
            Duration::ZERO
        } else {
            // 2^(over-1) seconds; the shift is capped so it cannot overflow.
            BASE_DELAY
                .saturating_mul(1u32 << (over - 1).min(16))
                .min(MAX_DELAY)
        };
        self.until = now + delay;
        delay
    }
}

/// The per-address records, bounded by [`MAX_ADDRS`].
#[derive(Debug, Default)]
pub struct AddrLimiter {
    addrs: Mutex<HashMap<IpAddr, Backoff>>,
}

impl AddrLimiter {
    /// `Err(wait)` while `ip` must wait.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let map = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip).map_or(Ok(()), |b| b.check(now))
    }

    /// Records a wrong token from `ip`; returns the wait now imposed.
    pub fn fail(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut map = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&ip) && map.len() >= MAX_ADDRS {
            map.retain(|_, b| now.saturating_duration_since(b.last) < FORGET_AFTER);
            if map.len() >= MAX_ADDRS
                && let Some(stalest) = map.iter().min_by_key(|(_, b)| b.last).map(|(ip, _)| *ip)
            {
                map.remove(&stalest);
            }
        }
        let entry = map
            .entry(ip)
            .or_insert_with(|| Backoff::new(FREE_PER_ADDR, now));
        if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
            *entry = Backoff::new(FREE_PER_ADDR, now);
        }
        entry.fail(now)
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.addrs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_doubling_waits_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = Backoff::new(2, t0);
        assert_eq!(b.fail(t0), Duration::ZERO);
        assert_eq!(b.fail(t0), Duration::ZERO);
        assert!(b.check(t0).is_ok());
        assert_eq!(b.fail(t0), Duration::from_secs(1));
        assert_eq!(b.check(t0), Err(Duration::from_secs(1)));
        assert!(b.check(t0 + Duration::from_secs(1)).is_ok());
        assert_eq!(b.fail(t0), Duration::from_secs(2));
        assert_eq!(b.fail(t0), Duration::from_secs(4));
        for _ in 0..100 {
            assert!(b.fail(t0) <= MAX_DELAY);
        }
        assert_eq!(b.fail(t0), MAX_DELAY);
    }

    #[test]
    fn addresses_are_bounded_and_forgotten() {
        let l = AddrLimiter::default();
        let t0 = Instant::now();
        let ip = |n: u32| IpAddr::from(n.to_be_bytes());
        for n in 0..(MAX_ADDRS as u32 + 50) {
            l.fail(ip(n), t0 + Duration::from_millis(n.into()));
        }
        assert_eq!(l.len(), MAX_ADDRS);
        // The newest stays, the stalest went.
        for _ in 0..FREE_PER_ADDR {
            l.fail(ip(MAX_ADDRS as u32 + 49), t0);
        }
        assert!(l.check(ip(MAX_ADDRS as u32 + 49), t0).is_err());
        assert!(l.check(ip(0), t0).is_ok());
        // Long after the last failure the record starts afresh.
        let later = t0 + FORGET_AFTER + Duration::from_secs(3600);
        assert_eq!(l.fail(ip(MAX_ADDRS as u32 + 49), later), Duration::ZERO);
    }
}
