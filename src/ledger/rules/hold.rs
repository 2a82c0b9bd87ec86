//! The accrual window: points a sale accrues are held for
//! [`Programme::hold_days`] days before they can be spent.
//!
//! Seed 004 sets, per programme, "the number of days during which cashback
//! is accrued". Read as a till sees it: the cashback of a sale is being
//! accrued (on its way, not yet the customer's to spend) for that many days,
//! so a return inside the window takes it back whole. The window ends at
//! 00:00 at the programme's offset (the same boundary as expiry) of the
//! local date of the sale plus `hold_days` days: a sale on 7 December with
//! 14 days is spendable from 21 December 00:00. The points' lifetime
//! ([`Programme::expiry_months`]) counts from that moment, not from the
//! sale, so a hold never eats into the time the customer has to spend them.
//! Only sales' accruals are held: welcome bonuses and an operator's manual
//! credits are spendable at once.

use time::{Duration, OffsetDateTime};

use super::{Programme, RulesError, invalid};

/// The longest accrual window accepted, in days (a year).
pub const MAX_HOLD_DAYS: u32 = 366;

/// When and until when a sale's accrual is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccrualDates {
    /// When the points can be spent; `None` = at once (no window).
    pub available_at: Option<OffsetDateTime>,
    /// When they expire, counted from `available_at` (or from the sale
    /// without a window); `None` = never.
    pub expires_at: Option<OffsetDateTime>,
}

/// Checks [`Programme::hold_days`] (at most [`MAX_HOLD_DAYS`]).
pub(super) fn validate(p: &Programme) -> Result<(), RulesError> {
    if p.hold_days > MAX_HOLD_DAYS {
        return Err(invalid(
            "programme.hold_days",
            format!("{} exceeds {MAX_HOLD_DAYS}", p.hold_days),
        ));
    }
    Ok(())
}

/// When points accrued at `accrued_at` become spendable: 00:00 at the
/// programme's offset of the local date of `accrued_at` plus
/// [`Programme::hold_days`] days; `None` when the programme holds nothing
/// (0 days). Carries the programme's offset.
pub fn available_at(
    p: &Programme,
    accrued_at: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, RulesError> {
    if p.hold_days == 0 {
        return Ok(None);
    }
    validate(p)?;
    let offset = p.offset()?;
    let local = accrued_at
        .checked_to_offset(offset)
        .ok_or(RulesError::DateOutOfRange)?;
    let day = local
        .date()
        .checked_add(Duration::days(i64::from(p.hold_days)))
        .ok_or(RulesError::DateOutOfRange)?;
    Ok(Some(day.midnight().assume_offset(offset)))
}

/// A sale's accrual dates: [`available_at`], and [`super::expiry_of`] counted from
/// it (from `accrued_at` when nothing is held).
pub fn accrual_dates(
    p: &Programme,
    tier: Option<&super::tiers::Tier>,
    accrued_at: OffsetDateTime,
) -> Result<AccrualDates, RulesError> {
    let available = available_at(p, accrued_at)?;
    Ok(AccrualDates {
        available_at: available,
        // The level that priced the sale sets the burn period.
        expires_at: super::levels::expiry_for(p, tier, available.unwrap_or(accrued_at))?,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn held(days: u32) -> Programme {
        Programme {
            hold_days: days,
            ..Programme::default()
        }
    }

    #[test]
    fn no_window_keeps_todays_dates() {
        let p = Programme::default();
        let at = datetime!(2026-12-07 12:00 UTC);
        let d = accrual_dates(&p, None, at).unwrap();
        assert_eq!(d.available_at, None);
        assert_eq!(
            d.expires_at,
            crate::ledger::rules::expiry_of(&p, at).unwrap()
        );
    }

    #[test]
    fn the_window_ends_at_local_midnight_after_hold_days() {
        // 15:00 Moscow on 7 December, 14 days: spendable from 21 December
        // 00:00 Moscow (20 December 21:00 UTC).
        let at = datetime!(2026-12-07 12:00 UTC);
        assert_eq!(
            available_at(&held(14), at).unwrap(),
            Some(datetime!(2026-12-21 00:00 +3))
        );
        // 23:30 UTC on 7 December is already 8 December in Moscow.
        assert_eq!(
            available_at(&held(1), datetime!(2026-12-07 23:30 UTC)).unwrap(),
            Some(datetime!(2026-12-09 00:00 +3))
        );
    }

    #[test]
    fn expiry_counts_from_availability() {
        // Held 14 days, valid 6 months from 21 December: the last valid day
        // is 21 June, gone on 22 June 00:00 Moscow.
        let d = accrual_dates(&held(14), None, datetime!(2026-12-07 12:00 UTC)).unwrap();
        assert_eq!(d.available_at, Some(datetime!(2026-12-21 00:00 +3)));
        assert_eq!(d.expires_at, Some(datetime!(2027-06-22 00:00 +3)));
        let never = Programme {
            expiry_months: None,
            ..held(3)
        };
        let d = accrual_dates(&never, None, datetime!(2026-12-07 12:00 UTC)).unwrap();
        assert_eq!(d.available_at, Some(datetime!(2026-12-10 00:00 +3)));
        assert_eq!(d.expires_at, None);
    }

    #[test]
    fn a_window_beyond_a_year_is_refused_by_name() {
        let err = held(MAX_HOLD_DAYS + 1).validate().unwrap_err();
        assert!(err.to_string().starts_with("programme.hold_days:"), "{err}");
        held(MAX_HOLD_DAYS).validate().unwrap();
    }
}
