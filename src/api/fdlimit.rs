//! The descriptor limit and what it leaves for clients.
//!
//! Every connection is a descriptor. If `max_clients` is above what
//! `RLIMIT_NOFILE` leaves, `accept` fails with EMFILE and the clients over
//! the line hang unanswered. So at start the soft limit is raised to the
//! hard one, and the client count is cut to fit under it with room for the
//! database, devices and the runtime; a spare descriptor lets the accept
//! loop still answer 1004 should the limit be reached anyway.

use std::io;
use std::time::{Duration, Instant};

/// Descriptors kept free beyond those open at start and the devices': the
/// SQLite side files, device reconnects, a notifier's HTTP connection, the
/// spare of each accept loop.
pub const HEADROOM: u64 = 32;
/// Descriptors counted per configured device (its port plus a reconnect).
pub const PER_DEVICE: u64 = 2;
/// Highest soft limit set when the hard limit is unlimited.
const CEILING: u64 = 1 << 20;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit now in force (1024, the usual default, if it cannot be read).
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the descriptor limit; assuming 1024");
            return 1024;
        }
    };
    let want = hard.min(CEILING);
    if soft >= want {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
        Ok(()) => want,
        Err(e) => {
            tracing::warn!(soft, hard, error = %e, "could not raise the descriptor limit");
            soft
        }
    }
}

/// Descriptors open in this process now.
pub fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count() as u64)
}

/// The clients that fit: `configured`, or fewer when the limit `nofile`
/// minus `reserved` leaves less (never below 1).
pub fn max_clients(configured: usize, nofile: u64, reserved: u64) -> usize {
    let room = usize::try_from(nofile.saturating_sub(reserved)).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

/// A descriptor held in reserve: released to accept (and refuse) one
/// connection when the process is out of descriptors, then taken again.
pub struct Spare(Option<std::fs::File>);

impl Spare {
    /// Opens the spare.
    pub fn new() -> Self {
        Spare(std::fs::File::open("/dev/null").ok())
    }

    /// Releases the descriptor.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// Takes a descriptor again (after the refused connection closed).
    pub fn retake(&mut self) {
        if self.0.is_none() {
            self.0 = std::fs::File::open("/dev/null").ok();
        }
    }
}

impl Default for Spare {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether an accept error means the process or system is out of
/// descriptors.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE)
    )
}

/// Lets one log line through per interval and counts the rest, so a storm
/// of failing accepts does not flood the log.
pub struct LogGate {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogGate {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> Self {
        LogGate {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_fit_under_the_limit() {
        assert_eq!(max_clients(1024, 65536, 100), 1024);
        assert_eq!(max_clients(1024, 1024, 100), 924);
        assert_eq!(max_clients(1024, 50, 100), 1);
    }

    #[test]
    fn the_log_gate_counts_what_it_holds_back() {
        let t0 = Instant::now();
        let mut g = LogGate::new(Duration::from_secs(10));
        assert_eq!(g.allow(t0), Some(0));
        assert_eq!(g.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(g.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(g.allow(t0 + Duration::from_secs(11)), Some(2));
    }

    #[test]
    fn raising_keeps_or_lifts_the_soft_limit() {
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        let now = raise_nofile();
        assert!(now >= soft.min(hard));
        assert!(now <= hard);
    }
}
