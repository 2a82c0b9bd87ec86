//! The back office's reports: points accrued, redeemed, expired, adjusted
//! and returned per day, week or month (programme time), optionally per
//! store and terminal; new customers per period; the outstanding liability,
//! the points that burn in the next 30 days, and the period's top
//! customers by points accrued. Read-only, over any [`Db`] (SQLite on a
//! till, PostgreSQL in the central service).
//!
//! The database sums a period's entries per programme day (by the
//! `entries_created` and `accounts_created` indexes of migration 16), and
//! weeks and months are folded from the days here, so the work is bounded
//! by the period (at most [`MAX_DAYS`] days) and the result by
//! [`MAX_ROWS`] rows.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::db::{Db, DbError, Dialect, args};
use super::embedded::{LedgerError, points, ts};
use super::rules::{Programme, RulesError};

/// The longest period a report covers, in days.
pub const MAX_DAYS: i64 = 366;
/// The most rows of the movements table (periods × stores × terminals).
pub const MAX_ROWS: usize = 5000;
/// How many top customers a report lists.
pub const TOP: i64 = 20;
/// The horizon of "points that will burn soon", in days.
pub const BURN_DAYS: i64 = 30;

/// How a report's periods are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One row per programme day.
    #[default]
    Day,
    /// Per ISO week (Monday to Sunday), named by its Monday.
    Week,
    /// Per calendar month, named by its first day.
    Month,
}

impl Granularity {
    /// The wire and form name.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
        }
    }

    /// The granularity called `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Granularity::Day),
            "week" => Some(Granularity::Week),
            "month" => Some(Granularity::Month),
            _ => None,
        }
    }

    fn start_of(self, d: Date) -> Date {
        match self {
            Granularity::Day => d,
            Granularity::Week => {
                d - Duration::days(i64::from(d.weekday().number_days_from_monday()))
            }
            Granularity::Month => d.replace_day(1).unwrap_or(d),
        }
    }
}

/// What to report: the programme days `[from, to)` (`YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// The first day, inclusive.
    pub from: String,
    /// The day after the last, exclusive.
    pub to: String,
    /// How the period is cut.
    #[serde(default)]
    pub granularity: Granularity,
    /// One row per store as well.
    #[serde(default)]
    pub by_store: bool,
    /// One row per terminal as well.
    #[serde(default)]
    pub by_terminal: bool,
}

/// The points moved in one period (and store, terminal). Amounts are
/// positive except `adjusted` and `returns` (signed net): the balance
/// changed by `accrued − redeemed − expired + adjusted + returns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovementRow {
    /// The period's first day.
    pub period: String,
    /// The store (`None`: not grouped, or the transaction had none).
    pub store: Option<String>,
    /// The terminal (`None`: not grouped, or none recorded).
    pub terminal: Option<String>,
    /// Accrued by sales and welcome bonuses.
    pub accrued: Decimal,
    /// Spent on sales.
    pub redeemed: Decimal,
    /// Burned.
    pub expired: Decimal,
    /// Manual adjustments, net.
    pub adjusted: Decimal,
    /// Returns, net (points clawed back from a refunded sale, points given
    /// back from it, debt and its repayment).
    pub returns: Decimal,
}

/// New customers in one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodCount {
    /// The period's first day.
    pub period: String,
    /// Accounts opened.
    pub count: i64,
}

/// One of the period's top customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopCustomer {
    /// The account.
    pub account: i64,
    /// The name, as the customer pages show it.
    pub name: Option<String>,
    /// Points accrued by sales in the period.
    pub accrued: Decimal,
}

/// A report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was asked.
    pub query: ReportQuery,
    /// When the "now" figures were taken (RFC 3339, UTC).
    pub as_of: String,
    /// Points moved per period (and store, terminal), in time order.
    pub movements: Vec<MovementRow>,
    /// New customers per period, in time order (periods with none left out).
    pub new_customers: Vec<PeriodCount>,
    /// Points customers hold now: open lots not yet expired.
    pub liability: Decimal,
    /// Of those, points that expire within [`BURN_DAYS`] days.
    pub burning_soon: Decimal,
    /// The period's [`TOP`] customers by points accrued by sales.
    pub top_customers: Vec<TopCustomer>,
}

fn bad(field: &str, reason: impl Into<String>) -> LedgerError {
    LedgerError::Rules(RulesError::Invalid {
        field: field.into(),
        reason: reason.into(),
    })
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

fn day_text(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// The query's days, checked: `from` before `to`, at most [`MAX_DAYS`].
pub fn check(q: &ReportQuery) -> Result<(Date, Date), LedgerError> {
    let from = parse_date(&q.from).ok_or_else(|| bad("from", "a date YYYY-MM-DD"))?;
    let to = parse_date(&q.to).ok_or_else(|| bad("to", "a date YYYY-MM-DD"))?;
    if to <= from {
        return Err(bad("to", "after from"));
    }
    if (to - from).whole_days() > MAX_DAYS {
        return Err(bad("to", format!("at most {MAX_DAYS} days after from")));
    }
    Ok((from, to))
}

/// The UTC stamp of a programme day's first second.
fn day_start(d: Date, offset: UtcOffset) -> String {
    ts(PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_offset(offset))
}

/// SQL naming the programme day of the timestamp column `col`. The offset
/// is the programme's own integer, never a caller's text.
fn day_sql(dialect: Dialect, col: &str, minutes: i32) -> String {
    match dialect {
        Dialect::Sqlite => format!("strftime('%Y-%m-%d', {col}, '{minutes:+} minutes')"),
        Dialect::Postgres => format!(
            "to_char(({col})::timestamptz AT TIME ZONE 'UTC' + interval '{minutes} minutes', 'YYYY-MM-DD')"
        ),
    }
}

/// The movements: a period's entries summed per programme day (and
/// store, terminal) and kind. `?1`, `?2`: the period's UTC bounds; `?3`:
/// the row cap. Public for the plan checks (`central/tests/plans.rs`).
pub fn movements_sql(dialect: Dialect, minutes: i32, by_store: bool, by_terminal: bool) -> String {
    let day = day_sql(dialect, "e.created_at", minutes);
    let store = if by_store {
        "COALESCE(t.store_id, '')"
    } else {
        "''"
    };
    let terminal = if by_terminal {
        "COALESCE(t.terminal_id, '')"
    } else {
        "''"
    };
    let join = if by_store || by_terminal {
        "JOIN txns t ON t.id = e.txn_id"
    } else {
        ""
    };
    format!(
        "SELECT {day}, {store}, {terminal}, e.kind, CAST(SUM(e.amount) AS BIGINT)
         FROM entries e {join}
         WHERE e.created_at >= ?1 AND e.created_at < ?2
         GROUP BY 1, 2, 3, 4 LIMIT ?3"
    )
}

/// Accounts opened per programme day between `?1` and `?2`.
pub fn new_customers_sql(dialect: Dialect, minutes: i32) -> String {
    let day = day_sql(dialect, "created_at", minutes);
    format!(
        "SELECT {day}, COUNT(*) FROM accounts
         WHERE created_at >= ?1 AND created_at < ?2 GROUP BY 1"
    )
}

/// Points held now (`?1`) and, of them, burning by `?2`: one pass over the
/// open lots (`lots_due`), not over every entry.
pub const LIABILITY_SQL: &str = "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT),
            CAST(COALESCE(SUM(CASE WHEN expires_at <= ?2 THEN remaining ELSE 0 END), 0) AS BIGINT)
     FROM lots WHERE remaining > 0 AND (expires_at IS NULL OR expires_at > ?1)";

/// The period's (`?1`, `?2`) top `?3` accounts by points accrued by sales.
pub const TOP_SQL: &str = "SELECT account_id, CAST(SUM(amount) AS BIGINT) FROM entries
     WHERE created_at >= ?1 AND created_at < ?2 AND kind = 'accrue'
     GROUP BY account_id ORDER BY 2 DESC, 1 LIMIT ?3";

/// The report for `q` with the "now" figures at `now`. Runs inside one
/// read transaction.
pub fn report(
    db: &dyn Db,
    p: &Programme,
    q: &ReportQuery,
    now: OffsetDateTime,
) -> Result<Result<Report, LedgerError>, DbError> {
    let (from, to) = match check(q) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    let minutes = p.utc_offset_minutes;
    let offset =
        UtcOffset::from_whole_seconds(minutes.saturating_mul(60)).unwrap_or(UtcOffset::UTC);
    let (start, end) = (day_start(from, offset), day_start(to, offset));
    // Days × stores × terminals × kinds: more than this cannot fold into
    // MAX_ROWS rows of a readable report anyway.
    let cap = (MAX_ROWS * 8) as i64;
    let rows: Vec<(String, String, String, String, i64)> = db.query_map(
        &movements_sql(db.dialect(), minutes, q.by_store, q.by_terminal),
        args![start, end, cap + 1],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    if rows.len() as i64 > cap {
        return Ok(Err(bad(
            "granularity",
            "too many rows: shorten the period or group less",
        )));
    }
    let mut folded: BTreeMap<(String, String, String), [i64; 5]> = BTreeMap::new();
    for (d, s, t, kind, amount) in rows {
        let Some(d) = parse_date(&d) else { continue };
        let key = (day_text(q.granularity.start_of(d)), s, t);
        let sums = folded.entry(key).or_default();
        match kind.as_str() {
            "accrue" | "welcome" | "birthday" | "referral" => sums[0] += amount,
            "redeem" => sums[1] -= amount,
            "expire" => sums[2] -= amount,
            "adjust" => sums[3] += amount,
            _ => sums[4] += amount,
        }
    }
    if folded.len() > MAX_ROWS {
        return Ok(Err(bad(
            "granularity",
            "too many rows: shorten the period or group less",
        )));
    }
    let some = |s: String| Some(s).filter(|s| !s.is_empty());
    let movements = folded
        .into_iter()
        .map(|((period, s, t), v)| MovementRow {
            period,
            store: some(s),
            terminal: some(t),
            accrued: points(v[0]),
            redeemed: points(v[1]),
            expired: points(v[2]),
            adjusted: points(v[3]),
            returns: points(v[4]),
        })
        .collect();

    let opened: Vec<(String, i64)> = db.query_map(
        &new_customers_sql(db.dialect(), minutes),
        args![start, end],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut per: BTreeMap<String, i64> = BTreeMap::new();
    for (d, n) in opened {
        if let Some(d) = parse_date(&d) {
            *per.entry(day_text(q.granularity.start_of(d))).or_default() += n;
        }
    }
    let new_customers = per
        .into_iter()
        .map(|(period, count)| PeriodCount { period, count })
        .collect();

    let stamp = ts(now);
    let soon = ts(now + Duration::days(BURN_DAYS));
    // Open lots by `lots_due`: not every account's entries.
    let (liability, burning): (i64, i64) =
        db.query_row(LIABILITY_SQL, args![stamp, soon], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;

    let top: Vec<(i64, i64)> = db.query_map(TOP_SQL, args![start, end, TOP], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    let mut top_customers = Vec::with_capacity(top.len());
    for (account, accrued) in top {
        let name: Option<String> = db.query_row(
            "SELECT name FROM accounts WHERE id = ?1",
            args![account],
            |r| r.get(0),
        )?;
        top_customers.push(TopCustomer {
            account,
            name,
            accrued: points(accrued),
        });
    }
    Ok(Ok(Report {
        query: q.clone(),
        as_of: stamp,
        movements,
        new_customers,
        liability: points(liability),
        burning_soon: points(burning),
        top_customers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2026-03-04 is a Wednesday.
        let d = date!(2026 - 03 - 04);
        assert_eq!(Granularity::Week.start_of(d), date!(2026 - 03 - 02));
        assert_eq!(Granularity::Month.start_of(d), date!(2026 - 03 - 01));
        assert_eq!(Granularity::Day.start_of(d), d);
    }

    #[test]
    fn a_period_is_checked() {
        let q = |from: &str, to: &str| ReportQuery {
            from: from.into(),
            to: to.into(),
            granularity: Granularity::Day,
            by_store: false,
            by_terminal: false,
        };
        assert!(check(&q("2026-01-01", "2026-01-02")).is_ok());
        assert!(check(&q("2026-01-01", "2027-01-02")).is_ok());
        assert!(check(&q("2026-01-01", "2027-01-03")).is_err());
        assert!(check(&q("2026-01-02", "2026-01-02")).is_err());
        assert!(check(&q("2026-1-2", "2026-01-03")).is_err());
        assert!(check(&q("2026-01-01", "x")).is_err());
    }

    #[test]
    fn a_day_starts_at_the_programme_s_midnight() {
        assert_eq!(
            day_start(date!(2026 - 03 - 02), UtcOffset::from_hms(3, 0, 0).unwrap()),
            "2026-03-01T21:00:00Z"
        );
    }
}
