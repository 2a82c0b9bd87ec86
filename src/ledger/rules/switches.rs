//! The programme's switches (seed 004's programme settings): whether the
//! programme runs at all and in which window, what an order partly paid
//! with points earns, whether a return gives spent points back; and the
//! per-order accrual percentage and cap a cashier may set within the
//! admin's limits (seed 001). Pure: no I/O, times are passed in.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::{Programme, RefundShare, RulesError, invalid};

/// What a sale partly paid with points earns
/// (`ledger.programme.accrue_on_points_part`). The key used to be a
/// boolean and still takes one: `false` is [`PointsPart::MoneyPart`],
/// `true` is [`PointsPart::WholeLine`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PointsPart {
    /// Accrual on the part of each line paid with money (the default).
    #[default]
    MoneyPart,
    /// Accrual on the whole line, the part paid with points included.
    WholeLine,
    /// An order with any points spent on it earns nothing (seed 004's
    /// "accrue when the order is partly paid with points" switched off).
    Nothing,
}

impl From<bool> for PointsPart {
    fn from(whole: bool) -> Self {
        if whole {
            Self::WholeLine
        } else {
            Self::MoneyPart
        }
    }
}

impl<'de> Deserialize<'de> for PointsPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The old boolean key stays valid: configurations in the field
        // must keep loading.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bool(bool),
            Word(String),
        }
        match Either::deserialize(d)? {
            Either::Bool(b) => Ok(b.into()),
            Either::Word(w) => match w.as_str() {
                "money_part" => Ok(Self::MoneyPart),
                "whole_line" => Ok(Self::WholeLine),
                "nothing" => Ok(Self::Nothing),
                other => Err(serde::de::Error::custom(format!(
                    "\"{other}\" is not one of \"money_part\", \"whole_line\", \"nothing\" \
                     (or true / false)"
                ))),
            },
        }
    }
}

impl std::fmt::Display for PointsPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MoneyPart => "money_part",
            Self::WholeLine => "whole_line",
            Self::Nothing => "nothing",
        })
    }
}

/// What a line accrues on: its total, less its redeemed part unless the
/// whole line earns; nothing at all on an order with points spent when
/// the programme says so (`order_redeem` is the whole order's redemption).
pub(super) fn eligible(
    mode: PointsPart,
    total: Decimal,
    redeemed: Decimal,
    order_redeem: Decimal,
) -> Decimal {
    match mode {
        PointsPart::MoneyPart => total - redeemed,
        PointsPart::WholeLine => total,
        PointsPart::Nothing if order_redeem > Decimal::ZERO => Decimal::ZERO,
        PointsPart::Nothing => total,
    }
}

/// The limits within which a cashier sets one order's accrual percentage
/// and cap (`[ledger.programme.cashier_limits]`). A limit left out means
/// the cashier may not set that value at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CashierLimits {
    /// The highest accrual percentage a cashier may give one order.
    pub max_accrual_percent: Option<Decimal>,
    /// The highest share of each line (percent) a cashier may let one
    /// order pay with points.
    pub max_cap_percent: Option<Decimal>,
}

/// One order's own terms, set by the cashier: they replace every line's
/// accrual percentage and cap (excluded lines stay excluded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderTerms {
    /// The order's accrual percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accrual_percent: Option<Decimal>,
    /// The order's redemption cap, percent of each line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_percent: Option<Decimal>,
}

impl OrderTerms {
    /// Whether the cashier set nothing.
    pub fn is_empty(&self) -> bool {
        self.accrual_percent.is_none() && self.cap_percent.is_none()
    }

    /// Checks the terms against the admin's limits; with `unlimited` (an
    /// admin's call) only against 0..=100. Errors name the request's
    /// field (`accrual_percent`, `cap_percent`).
    pub fn check(&self, limits: &CashierLimits, unlimited: bool) -> Result<(), RulesError> {
        let pairs = [
            (
                "accrual_percent",
                self.accrual_percent,
                limits.max_accrual_percent,
                "ledger.programme.cashier_limits.max_accrual_percent",
            ),
            (
                "cap_percent",
                self.cap_percent,
                limits.max_cap_percent,
                "ledger.programme.cashier_limits.max_cap_percent",
            ),
        ];
        for (field, value, max, key) in pairs {
            let Some(v) = value else { continue };
            super::check_percent(field, v)?;
            if unlimited {
                continue;
            }
            match max {
                None => {
                    return Err(invalid(
                        field,
                        format!("a cashier may not set it ({key} is not set)"),
                    ));
                }
                Some(m) if v > m => {
                    return Err(invalid(
                        field,
                        format!("{v} exceeds the cashier's limit {m} ({key})"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// A window bound as configured: `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]`,
/// programme time. A date alone starts at 00:00 for `active_from` and
/// covers the whole day for `active_until`.
fn bound(
    field: &str,
    text: &str,
    offset: UtcOffset,
    until: bool,
) -> Result<OffsetDateTime, RulesError> {
    let bad = || {
        invalid(
            field,
            format!("\"{text}\" is not YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (programme time)"),
        )
    };
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if text.len() == 10 {
        let d = Date::parse(text, &date_fmt).map_err(|_| bad())?;
        let d = if until {
            d.next_day().ok_or_else(bad)?
        } else {
            d
        };
        return Ok(d.midnight().assume_offset(offset));
    }
    let with_secs =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let without = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let t = PrimitiveDateTime::parse(text, &with_secs)
        .or_else(|_| PrimitiveDateTime::parse(text, &without))
        .map_err(|_| bad())?;
    Ok(t.assume_offset(offset))
}

/// The window `[from, until)` of the programme, as instants; `None` for
/// an open end.
pub fn window(
    p: &Programme,
) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), RulesError> {
    let offset = p.offset()?;
    let from = p
        .active_from
        .as_deref()
        .map(|t| bound("programme.active_from", t, offset, false))
        .transpose()?;
    let until = p
        .active_until
        .as_deref()
        .map(|t| bound("programme.active_until", t, offset, true))
        .transpose()?;
    if let (Some(f), Some(u)) = (from, until)
        && u <= f
    {
        return Err(invalid(
            "programme.active_until",
            "the programme ends before it starts",
        ));
    }
    Ok((from, until))
}

/// Checks the switches' own settings (the window, the link, the limits);
/// [`Programme::validate`] calls it.
pub(super) fn validate(p: &Programme) -> Result<(), RulesError> {
    window(p)?;
    if let Some(url) = &p.agreement_url
        && (url.is_empty()
            || url.chars().count() > 512
            || url.chars().any(char::is_control)
            || !(url.starts_with("https://") || url.starts_with("http://")))
    {
        return Err(invalid(
            "programme.agreement_url",
            "an http:// or https:// address of at most 512 characters",
        ));
    }
    if let Some(v) = p.cashier_limits.max_accrual_percent {
        super::check_percent("programme.cashier_limits.max_accrual_percent", v)?;
    }
    if let Some(v) = p.cashier_limits.max_cap_percent {
        super::check_percent("programme.cashier_limits.max_cap_percent", v)?;
    }
    Ok(())
}

/// Why the programme earns and spends nothing at `now`, if it does not:
/// switched off, not started or ended. A sale is refused then; a return,
/// the balance and the history still work.
pub fn check_active(p: &Programme, now: OffsetDateTime) -> Result<(), RulesError> {
    if !p.enabled {
        return Err(RulesError::ProgrammeInactive {
            reason: "disabled".into(),
        });
    }
    let (from, until) = window(p)?;
    if from.is_some_and(|f| now < f) {
        return Err(RulesError::ProgrammeInactive {
            reason: "not_started".into(),
        });
    }
    if until.is_some_and(|u| now >= u) {
        return Err(RulesError::ProgrammeInactive {
            reason: "ended".into(),
        });
    }
    Ok(())
}

/// A refund's share under the programme: spent points come back only
/// when `return_spent_points_on_refund` is on.
pub fn refund_policy(p: &Programme, share: RefundShare) -> RefundShare {
    if p.return_spent_points_on_refund {
        share
    } else {
        RefundShare {
            return_points: Decimal::ZERO,
            ..share
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use time::macros::datetime;

    #[test]
    fn the_window_is_read_in_programme_time_and_until_covers_its_day() {
        // Seed 004's cinema runs a programme from 1 December to 31 December.
        let p = Programme {
            active_from: Some("2026-12-01".into()),
            active_until: Some("2026-12-31".into()),
            ..Programme::default()
        };
        // 00:00 Moscow on the 1st is 21:00 UTC on 30 November.
        assert!(check_active(&p, datetime!(2026-11-30 20:59:59 UTC)).is_err());
        check_active(&p, datetime!(2026-11-30 21:00 UTC)).unwrap();
        check_active(&p, datetime!(2026-12-31 20:59:59 UTC)).unwrap();
        assert_eq!(
            check_active(&p, datetime!(2026-12-31 21:00 UTC)),
            Err(RulesError::ProgrammeInactive {
                reason: "ended".into()
            })
        );
        let p = Programme {
            active_until: Some("2026-12-31T18:30".into()),
            ..p
        };
        check_active(&p, datetime!(2026-12-31 15:29 UTC)).unwrap();
        assert!(check_active(&p, datetime!(2026-12-31 15:30 UTC)).is_err());
        let off = Programme {
            enabled: false,
            ..Programme::default()
        };
        assert_eq!(
            check_active(&off, datetime!(2026-12-01 12:00 UTC)),
            Err(RulesError::ProgrammeInactive {
                reason: "disabled".into()
            })
        );
    }

    #[test]
    fn a_bad_window_or_link_is_refused_naming_the_key() {
        let p = Programme {
            active_from: Some("01.12.2026".into()),
            ..Programme::default()
        };
        assert!(
            matches!(p.validate(), Err(RulesError::Invalid { field, .. }) if field == "programme.active_from")
        );
        let p = Programme {
            active_from: Some("2026-12-02".into()),
            active_until: Some("2026-12-01".into()),
            ..Programme::default()
        };
        assert!(
            matches!(p.validate(), Err(RulesError::Invalid { field, .. }) if field == "programme.active_until")
        );
        let p = Programme {
            agreement_url: Some("javascript:alert(1)".into()),
            ..Programme::default()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn the_old_boolean_key_still_reads() {
        let p: Programme = serde_json::from_str(r#"{"accrue_on_points_part": true}"#).unwrap();
        assert_eq!(p.accrue_on_points_part, PointsPart::WholeLine);
        let p: Programme = serde_json::from_str(r#"{"accrue_on_points_part": false}"#).unwrap();
        assert_eq!(p.accrue_on_points_part, PointsPart::MoneyPart);
        let p: Programme = serde_json::from_str(r#"{"accrue_on_points_part": "nothing"}"#).unwrap();
        assert_eq!(p.accrue_on_points_part, PointsPart::Nothing);
        assert!(serde_json::from_str::<Programme>(r#"{"accrue_on_points_part": "half"}"#).is_err());
    }

    #[test]
    fn the_cashier_stays_within_the_admins_limits() {
        let limits = CashierLimits {
            max_accrual_percent: Some(dec!(10)),
            max_cap_percent: None,
        };
        let t = OrderTerms {
            accrual_percent: Some(dec!(10)),
            cap_percent: None,
        };
        t.check(&limits, false).unwrap();
        let t = OrderTerms {
            accrual_percent: Some(dec!(10.5)),
            cap_percent: None,
        };
        assert!(
            matches!(t.check(&limits, false), Err(RulesError::Invalid { field, .. }) if field == "accrual_percent")
        );
        t.check(&limits, true).unwrap();
        let t = OrderTerms {
            accrual_percent: None,
            cap_percent: Some(dec!(20)),
        };
        assert!(
            matches!(t.check(&limits, false), Err(RulesError::Invalid { field, .. }) if field == "cap_percent")
        );
        let t = OrderTerms {
            accrual_percent: Some(dec!(101)),
            cap_percent: None,
        };
        assert!(t.check(&limits, true).is_err());
    }
}
