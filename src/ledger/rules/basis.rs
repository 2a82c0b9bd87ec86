//! What the programme's cap is a share of: each line (the default) or the
//! whole receipt (seed 002: "Оплатить можно 50% чека", "не более 50% суммы
//! самого чека").
//!
//! Per line, every line may be paid with points up to its own cap, and the
//! most redeemable is the sum of those caps: the receipt's share only when
//! every line has the same cap. Per receipt, the flat cap (the account's,
//! else its level's, else [`super::Programme::cap_percent`]) applies to the
//! sum of the lines that take part (not excluded), floored once; a line is
//! then bounded only by a cap set for its category (the account's, its
//! level's or the programme's category rule), else by its whole total. The
//! redemption is spread over the lines by the same largest-remainder
//! allocation, within the lines' own caps, so excluded lines still take no
//! points and no line goes over its cap.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{HUNDRED, floor_to};

/// What [`super::Programme::cap_percent`] is a share of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapBasis {
    /// Each line's total (today's behaviour).
    #[default]
    Line,
    /// The receipt's total over the lines that take part.
    Receipt,
}

/// A line's cap percentage: the one set for its category if any, else the
/// flat cap per line, or the whole line when the flat cap is the receipt's.
pub(super) fn line_percent(basis: CapBasis, category: Option<Decimal>, flat: Decimal) -> Decimal {
    match (category, basis) {
        (Some(c), _) => c,
        (None, CapBasis::Line) => flat,
        (None, CapBasis::Receipt) => HUNDRED,
    }
}

/// The receipt's cap, `flat %` of `base` (the sum of the lines that take
/// part) floored to `precision`; `None` per line.
pub(super) fn receipt_cap(
    basis: CapBasis,
    flat: Decimal,
    base: Decimal,
    precision: u32,
) -> Option<Decimal> {
    match basis {
        CapBasis::Line => None,
        CapBasis::Receipt => Some(floor_to(base * flat / HUNDRED, precision)),
    }
}
