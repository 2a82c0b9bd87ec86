//! Which time an offline till may trust. The wall clock can be set (by a
//! cashier, a dead RTC battery, NTP after a long outage); the monotonic
//! clock cannot. So the till carries the central service's own time from
//! its last answer forward on the monotonic clock, and decides by that:
//! the time an offline sale is booked at, and whether points may still be
//! spent (within `max_offline` of the last answer, and only while the wall
//! clock agrees with the carried time).

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::ledger::remote::Contact;

/// The two clocks an offline decision reads; a test injects its own.
pub trait Clock: Send + Sync {
    /// The monotonic clock.
    fn monotonic(&self) -> Instant;
    /// The wall clock.
    fn wall(&self) -> OffsetDateTime;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// What the clocks say now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The central service's time carried forward: `now`, and how long
    /// since its last answer.
    Carried {
        /// The central service's time now, as far as the till can tell.
        now: OffsetDateTime,
        /// Since the last answer, on the monotonic clock.
        since: Duration,
        /// The wall clock differs from `now` by more than the tolerance.
        jumped: bool,
    },
    /// No answer since this process started: only the wall clock.
    NoContact,
}

/// Reads the clocks against the last `contact`.
pub fn assess(contact: Option<Contact>, clock: &dyn Clock, tolerance: Duration) -> Trust {
    let Some(c) = contact else {
        return Trust::NoContact;
    };
    let since = clock.monotonic().saturating_duration_since(c.at);
    let now = c.central_time + since;
    let drift = (clock.wall() - now).unsigned_abs();
    Trust::Carried {
        now,
        since,
        jumped: drift > tolerance,
    }
}

impl Trust {
    /// The time an offline operation is booked at: the carried time, or
    /// the wall clock when there is nothing better (the central ledger
    /// refuses a time outside its bounds, 2052).
    pub fn booking_time(&self, clock: &dyn Clock) -> OffsetDateTime {
        match self {
            Trust::Carried { now, .. } => *now,
            Trust::NoContact => clock.wall(),
        }
    }

    /// Whether points may be spent offline now, within `max_offline` of
    /// the last answer; the reason when not.
    pub fn may_redeem(&self, max_offline: Duration) -> Result<(), String> {
        match self {
            Trust::NoContact => {
                Err("no contact with the central ledger since the till started".into())
            }
            Trust::Carried { jumped: true, .. } => {
                Err("the till's clock disagrees with the central ledger's time".into())
            }
            Trust::Carried { since, .. } if *since > max_offline => Err(format!(
                "no contact with the central ledger for {} s (at most {} s)",
                since.as_secs(),
                max_offline.as_secs()
            )),
            Trust::Carried { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock a test moves by hand.
    pub(crate) struct FakeClock {
        pub base: Instant,
        pub state: Mutex<(Duration, OffsetDateTime)>,
    }

    impl FakeClock {
        pub(crate) fn new(wall: OffsetDateTime) -> Self {
            FakeClock {
                base: Instant::now(),
                state: Mutex::new((Duration::ZERO, wall)),
            }
        }
        /// Both clocks move on by `d`.
        pub(crate) fn advance(&self, d: Duration) {
            let mut s = self.state.lock().unwrap();
            s.0 += d;
            s.1 += d;
        }
        /// Only the wall clock is set (by `d`, either way).
        pub(crate) fn set_wall(&self, wall: OffsetDateTime) {
            self.state.lock().unwrap().1 = wall;
        }
    }

    impl Clock for FakeClock {
        fn monotonic(&self) -> Instant {
            self.base + self.state.lock().unwrap().0
        }
        fn wall(&self) -> OffsetDateTime {
            self.state.lock().unwrap().1
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const TOL: Duration = Duration::from_secs(60);

    fn contact_now(c: &FakeClock) -> Contact {
        Contact {
            at: c.monotonic(),
            central_time: c.wall(),
        }
    }

    #[test]
    fn the_one_hour_rule_runs_on_the_monotonic_clock() {
        let t0 = time::macros::datetime!(2026-12-07 10:00 UTC);
        let c = FakeClock::new(t0);
        let contact = Some(contact_now(&c));
        c.advance(Duration::from_secs(59 * 60));
        let trust = assess(contact, &c, TOL);
        assert_eq!(trust.may_redeem(HOUR), Ok(()));
        assert_eq!(trust.booking_time(&c), t0 + time::Duration::minutes(59));
        c.advance(Duration::from_secs(61));
        let late = assess(contact, &c, TOL).may_redeem(HOUR).unwrap_err();
        assert!(late.contains("3601 s"), "{late}");
    }

    #[test]
    fn a_wall_clock_set_back_does_not_reopen_spending_and_is_noticed() {
        let t0 = time::macros::datetime!(2026-12-07 10:00 UTC);
        let c = FakeClock::new(t0);
        let contact = Some(contact_now(&c));
        c.advance(Duration::from_secs(2 * 3600));
        // Someone sets the wall clock back to just after the contact.
        c.set_wall(t0 + time::Duration::minutes(1));
        let trust = assess(contact, &c, TOL);
        let why = trust.may_redeem(HOUR).unwrap_err();
        assert!(why.contains("disagrees"), "{why}");
        // The sale is booked at the carried time, not the wall's.
        assert_eq!(trust.booking_time(&c), t0 + time::Duration::hours(2));
    }

    #[test]
    fn a_wall_clock_set_forward_within_the_hour_is_refused_too() {
        let t0 = time::macros::datetime!(2026-12-07 10:00 UTC);
        let c = FakeClock::new(t0);
        let contact = Some(contact_now(&c));
        c.advance(Duration::from_secs(60));
        c.set_wall(t0 + time::Duration::hours(5));
        assert!(assess(contact, &c, TOL).may_redeem(HOUR).is_err());
        // A drift within the tolerance is not a jump.
        c.set_wall(t0 + time::Duration::seconds(60 + 59));
        assert_eq!(assess(contact, &c, TOL).may_redeem(HOUR), Ok(()));
    }

    #[test]
    fn without_a_contact_nothing_is_spent_and_the_wall_clock_books() {
        let t0 = time::macros::datetime!(2026-12-07 10:00 UTC);
        let c = FakeClock::new(t0);
        let trust = assess(None, &c, TOL);
        assert_eq!(trust, Trust::NoContact);
        assert!(trust.may_redeem(HOUR).is_err());
        assert_eq!(trust.booking_time(&c), t0);
    }
}
