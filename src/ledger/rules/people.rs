//! The arithmetic of the customer bonuses (issue 21 item 12c): birth dates,
//! which birthdays a daily run is due to credit, and when such a bonus
//! expires. Pure: no database, no clock of its own.
//!
//! A birthday is credited once per year, on any day of its window: from
//! [`Programme::birthday_days_before`] days before the birthday to
//! [`Programme::birthday_days_after`] days after it (both 0: on the day
//! only). The window is counted in the programme's local dates. A
//! customer born on 29 February celebrates on 28 February in a year
//! without that day: the bonus stays in February and is never credited
//! twice nor skipped.

use time::{Date, Duration, Month, OffsetDateTime};

use super::expiry::start_of_next_day;
use super::{Programme, RulesError, invalid};

/// The widest birthday window on either side of the day, in days: the run
/// looks up one month-day per day of the window.
pub const MAX_BIRTHDAY_WINDOW_DAYS: u32 = 31;

/// The earliest birth year accepted.
const MIN_BIRTH_YEAR: i32 = 1900;

/// A birth date as the API takes it: `YYYY-MM-DD`, a real calendar date,
/// from 1900 and not after `today`. The error says what is wrong, for the
/// field `birth_date`.
pub fn parse_birth_date(s: &str, today: Date) -> Result<Date, RulesError> {
    let bad = |why: &str| invalid("birth_date", why.to_owned());
    let b = s.as_bytes();
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return Err(bad("expected YYYY-MM-DD"));
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i32>().unwrap_or(0);
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(|| bad("the month is not 01 to 12"))?;
    let date = Date::from_calendar_date(y, month, u8::try_from(d).unwrap_or(0))
        .map_err(|_| bad("no such day in that month"))?;
    if y < MIN_BIRTH_YEAR {
        return Err(bad("before 1900"));
    }
    if date > today {
        return Err(bad("in the future"));
    }
    Ok(date)
}

/// The day `birth`'s birthday falls on in `year`: 29 February becomes
/// 28 February when `year` has no 29th.
pub fn birthday_in(birth: Date, year: i32) -> Option<Date> {
    Date::from_calendar_date(year, birth.month(), birth.day())
        .or_else(|_| Date::from_calendar_date(year, birth.month(), birth.day() - 1))
        .ok()
}

/// One birthday a run on `today` may credit: the stored month-days
/// (`MM-DD`, as `substr(birth_date, 6)` reads them) whose birthday is
/// `day`, and the year it counts for (the once-a-year key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBirthday {
    /// `MM-DD` of the birth dates celebrated on `day`.
    pub month_days: Vec<String>,
    /// The birthday itself.
    pub day: Date,
    /// The year the bonus is for.
    pub year: i32,
}

/// Every birthday whose window contains `today`: a birthday on `d` is due
/// from `d - before` to `d + after`, so `d` runs from `today - after` to
/// `today + before`. Each window crossing New Year's Day counts for the
/// birthday's own year.
pub fn due_birthdays(p: &Programme, today: Date) -> Vec<DueBirthday> {
    let before = i64::from(p.birthday_days_before.min(MAX_BIRTHDAY_WINDOW_DAYS));
    let after = i64::from(p.birthday_days_after.min(MAX_BIRTHDAY_WINDOW_DAYS));
    let mut out = Vec::new();
    for offset in -after..=before {
        let Some(day) = today.checked_add(Duration::days(offset)) else {
            continue;
        };
        let mut month_days = vec![format!("{:02}-{:02}", u8::from(day.month()), day.day())];
        // 28 February in a common year is also 29 February's birthday.
        if day.month() == Month::February
            && day.day() == 28
            && !time::util::is_leap_year(day.year())
        {
            month_days.push("02-29".into());
        }
        out.push(DueBirthday {
            month_days,
            day,
            year: day.year(),
        });
    }
    out
}

/// The programme's local date at `now`.
pub fn local_date(p: &Programme, now: OffsetDateTime) -> Result<Date, RulesError> {
    Ok(now
        .checked_to_offset(p.offset()?)
        .ok_or(RulesError::DateOutOfRange)?
        .date())
}

/// When a bonus credited at `granted_at` and valid for `days` expires:
/// 00:00 (programme time) after the local date of `granted_at` plus
/// `days`, the boundary of [`super::welcome_expiry_of`]. `None`: never.
pub fn bonus_expiry_of(
    p: &Programme,
    days: Option<u32>,
    granted_at: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, RulesError> {
    let Some(days) = days else {
        return Ok(None);
    };
    let last = local_date(p, granted_at)?
        .checked_add(Duration::days(i64::from(days)))
        .ok_or(RulesError::DateOutOfRange)?;
    start_of_next_day(last, p.offset()?).map(Some)
}

/// Checks the programme's birthday keys.
pub(super) fn validate(p: &Programme) -> Result<(), RulesError> {
    for (field, v) in [
        ("programme.birthday_bonus", p.birthday_bonus),
        ("programme.referral_bonus_inviter", p.referral_bonus_inviter),
        ("programme.referral_bonus_invited", p.referral_bonus_invited),
    ] {
        if let Some(b) = v {
            super::check_amount(field, b)?;
        }
    }
    for (field, v) in [
        ("programme.birthday_days_before", p.birthday_days_before),
        ("programme.birthday_days_after", p.birthday_days_after),
    ] {
        if v > MAX_BIRTHDAY_WINDOW_DAYS {
            return Err(invalid(
                field,
                format!("{v} exceeds {MAX_BIRTHDAY_WINDOW_DAYS}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use time::macros::{date, datetime};

    const TODAY: Date = date!(2026 - 12 - 07);

    #[test]
    fn birth_dates_are_real_past_dates() {
        assert_eq!(
            parse_birth_date("1990-05-14", TODAY).unwrap(),
            date!(1990 - 05 - 14)
        );
        assert_eq!(
            parse_birth_date("2000-02-29", TODAY).unwrap(),
            date!(2000 - 02 - 29)
        );
        for bad in [
            "1990-5-14",
            "14.05.1990",
            "1990-13-01",
            "1990-00-10",
            "1991-02-29",
            "1990-04-31",
            "1899-12-31",
            "2027-01-01",
            "１９９０-05-14",
        ] {
            let e = parse_birth_date(bad, TODAY).unwrap_err().to_string();
            assert!(e.starts_with("birth_date: "), "{bad}: {e}");
        }
    }

    #[test]
    fn february_29_is_celebrated_on_the_28th_in_a_common_year() {
        let b = date!(2000 - 02 - 29);
        assert_eq!(birthday_in(b, 2027), Some(date!(2027 - 02 - 28)));
        assert_eq!(birthday_in(b, 2028), Some(date!(2028 - 02 - 29)));
        let p = Programme::default();
        let due = due_birthdays(&p, date!(2027 - 02 - 28));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].month_days, ["02-28", "02-29"]);
        // In a leap year the 28th is the 28th's only.
        let due = due_birthdays(&p, date!(2028 - 02 - 28));
        assert_eq!(due[0].month_days, ["02-28"]);
    }

    #[test]
    fn the_window_spans_days_before_and_after_and_new_year() {
        let p = Programme {
            birthday_days_before: 3,
            birthday_days_after: 1,
            ..Programme::default()
        };
        let due = due_birthdays(&p, date!(2026 - 12 - 30));
        let days: Vec<(String, i32)> = due
            .iter()
            .map(|d| (d.month_days[0].clone(), d.year))
            .collect();
        assert_eq!(
            days,
            [
                ("12-29".to_owned(), 2026),
                ("12-30".to_owned(), 2026),
                ("12-31".to_owned(), 2026),
                ("01-01".to_owned(), 2027),
                ("01-02".to_owned(), 2027),
            ]
        );
    }

    #[test]
    fn a_bonus_expires_at_midnight_after_its_last_day() {
        let p = Programme::default(); // Moscow
        assert_eq!(
            bonus_expiry_of(&p, Some(7), datetime!(2026-05-13 22:00 UTC)).unwrap(),
            Some(datetime!(2026-05-22 00:00 +03:00))
        );
        assert_eq!(
            bonus_expiry_of(&p, None, datetime!(2026-05-13 22:00 UTC)).unwrap(),
            None
        );
    }

    #[test]
    fn windows_and_bonuses_are_bounded() {
        let p = Programme {
            birthday_days_before: 32,
            ..Programme::default()
        };
        assert!(
            validate(&p)
                .unwrap_err()
                .to_string()
                .starts_with("programme.birthday_days_before")
        );
        let p = Programme {
            birthday_bonus: Some(dec!(-1)),
            ..Programme::default()
        };
        assert!(validate(&p).is_err());
    }
}
