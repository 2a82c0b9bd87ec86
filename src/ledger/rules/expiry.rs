//! When points expire: a lot's expiry from the programme's months, the
//! welcome bonus's from its days, both at the programme's offset.

use time::{Date, Duration, Month, OffsetDateTime, UtcOffset};

use super::{Programme, RulesError};

/// `date + months` calendar months, the day clamped to the month's end
/// (Aug 31 + 6 months = Feb 28/29).
fn add_months(date: Date, months: u32) -> Result<Date, RulesError> {
    let index =
        i64::from(date.year()) * 12 + i64::from(u8::from(date.month()) - 1) + i64::from(months);
    let year = i32::try_from(index.div_euclid(12)).map_err(|_| RulesError::DateOutOfRange)?;
    let month = u8::try_from(index.rem_euclid(12) + 1).map_err(|_| RulesError::DateOutOfRange)?;
    let month = Month::try_from(month).map_err(|_| RulesError::DateOutOfRange)?;
    let day = date.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).map_err(|_| RulesError::DateOutOfRange)
}

/// 00:00 at `offset` of the day after `last_valid_day`.
pub(super) fn start_of_next_day(
    last_valid_day: Date,
    offset: UtcOffset,
) -> Result<OffsetDateTime, RulesError> {
    let next = last_valid_day
        .next_day()
        .ok_or(RulesError::DateOutOfRange)?;
    Ok(next.midnight().assume_offset(offset))
}

/// When a lot accrued at `accrued_at` expires; `None` if the programme's
/// points do not expire.
///
/// The lot's last day of validity is the local date of `accrued_at` (at the
/// programme's offset) plus [`Programme::expiry_months`] calendar months,
/// clamped to the month's end; it expires at 00:00 (programme offset) of the
/// following day. A lot with `expires_at` is spendable strictly before
/// `expires_at`: at `expires_at` itself it is gone. The result carries the
/// programme's offset.
pub fn expiry_of(
    p: &Programme,
    accrued_at: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, RulesError> {
    // 0 is "never", since a key left out of the table means the default.
    let Some(months) = p.expiry_months.filter(|m| *m > 0) else {
        return Ok(None);
    };
    let offset = p.offset()?;
    let local = accrued_at
        .checked_to_offset(offset)
        .ok_or(RulesError::DateOutOfRange)?;
    let last = add_months(local.date(), months)?;
    start_of_next_day(last, offset).map(Some)
}

/// When a welcome bonus granted at `granted_at` expires; `None` if it does
/// not. Same boundary as [`expiry_of`], the last day of validity being the
/// local date of `granted_at` plus [`Programme::welcome_expiry_days`] days.
pub fn welcome_expiry_of(
    p: &Programme,
    granted_at: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, RulesError> {
    let Some(days) = p.welcome_expiry_days else {
        return Ok(None);
    };
    let offset = p.offset()?;
    let local = granted_at
        .checked_to_offset(offset)
        .ok_or(RulesError::DateOutOfRange)?;
    let last = local
        .date()
        .checked_add(Duration::days(i64::from(days)))
        .ok_or(RulesError::DateOutOfRange)?;
    start_of_next_day(last, offset).map(Some)
}
