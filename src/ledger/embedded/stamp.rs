//! The ledger's text timestamps.

use time::{OffsetDateTime, UtcOffset};

/// `t` as the ledger stores it: RFC 3339 in UTC, whole seconds, fixed
/// width (`2026-12-08T00:15:00Z`), so text comparison in SQL is time
/// order. Empty for a year RFC 3339 cannot write (outside 0000–9999), as
/// the `time` formatter answered.
///
/// Written digit by digit: a sale formats half a dozen stamps, and the
/// general formatter cost more than some of its statements.
pub(crate) fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let Ok(year) = u32::try_from(t.year()) else {
        return String::new();
    };
    if year > 9999 {
        return String::new();
    }
    let mut out = String::with_capacity(20);
    push(&mut out, year, 4);
    out.push('-');
    push(&mut out, u32::from(u8::from(t.month())), 2);
    out.push('-');
    push(&mut out, u32::from(t.day()), 2);
    out.push('T');
    push(&mut out, u32::from(t.hour()), 2);
    out.push(':');
    push(&mut out, u32::from(t.minute()), 2);
    out.push(':');
    push(&mut out, u32::from(t.second()), 2);
    out.push('Z');
    out
}

/// Appends `n`'s last `width` decimal digits, zero-padded.
fn push(out: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = n / 10u32.pow(i) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    use super::*;

    /// What `ts` was: the `time` crate's RFC 3339 after dropping the
    /// fraction. The stored stamps must not change.
    fn formatted(t: OffsetDateTime) -> String {
        t.to_offset(UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(t)
            .format(&Rfc3339)
            .unwrap_or_default()
    }

    #[test]
    fn the_same_text_as_the_rfc3339_formatter() {
        let cases = [
            datetime!(2026-12-08 00:15:00 UTC),
            datetime!(2026-12-08 03:15:59.999_999_999 +03:00),
            datetime!(1970-01-01 00:00 UTC),
            datetime!(1969-12-31 23:59:59.5 UTC),
            datetime!(0000-01-01 00:00 UTC),
            datetime!(0000-01-01 00:30 +01:00),
            datetime!(9999-12-31 23:59:59 UTC),
            datetime!(2099-02-28 12:34:56.000_001 -07:30),
            datetime!(2024-02-29 23:59:59 UTC),
        ];
        for t in cases {
            assert_eq!(ts(t), formatted(t), "{t}");
        }
        let mut t = datetime!(1990-01-01 00:00:00.25 +05:45);
        for _ in 0..2000 {
            assert_eq!(ts(t), formatted(t), "{t}");
            t += time::Duration::seconds(86_400 * 17 + 3_671);
        }
    }
}
