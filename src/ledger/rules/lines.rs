//! Returns line by line: each committed line's own share of its sale's
//! accrual and redemption ([`line_accruals`]), which lines of the sale a
//! return names ([`match_lines`]) and what a return of part of a line gives
//! back ([`return_lines`]).
//!
//! A line's share is cumulative over its returns, as [`super::refund_share`]
//! is over a sale's: with `f(v, x) = floor(v × x / qty)` (to the unit of
//! `v`), returning `q` more of a line of which `r` came back already gives
//! `f(v, r + q) − f(v, r)`, and exactly `v − f(v, r)` when the line is then
//! fully returned. Shares are never negative and a line's returns add up to
//! its own figures, whatever the order and size of the partial returns
//! (weighed goods return fractional quantities).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{LineQuote, MAX_AMOUNT, MAX_LINES, RulesError, floor_to, invalid};

/// One line of a committed sale as the books keep it (the quote it was
/// committed with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommittedLine {
    /// The line's SKU.
    pub sku: String,
    /// Quantity sold.
    pub qty: Decimal,
    /// The line's money total.
    pub total: Decimal,
    /// This line's part of the sale's (rounded) accrual.
    pub accrued: Decimal,
    /// Points spent on this line.
    pub redeemed: Decimal,
}

/// A line a return names: its SKU and the quantity returned, and, when the
/// SKU is on several lines of the sale, which one (0-based index in the
/// sale's `lines`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    /// The SKU as sold.
    pub sku: String,
    /// Quantity returned, > 0 (fractional for weighed goods).
    pub qty: Decimal,
    /// Index of the sale's line; needed when the SKU is on several lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// What one return gave back for one line of the sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnedLine {
    /// Index of the sale's line.
    pub line: usize,
    /// Its SKU.
    pub sku: String,
    /// Quantity returned by this return.
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    /// The line's money share of this return.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The line's accrued points to take back.
    #[serde(with = "rust_decimal::serde::str")]
    pub clawback: Decimal,
    /// The line's spent points to give back.
    #[serde(with = "rust_decimal::serde::str")]
    pub return_points: Decimal,
}

/// Each line's part of a sale's `accrued` points: every line's own unrounded
/// accrual floored to the accrual's unit (`scale` places), and what the sale's
/// rounding left over given one unit each to the lines with the largest
/// remainders (ties to the earlier line). The parts add up to `accrued`
/// exactly; none is negative. `accrued` is the sale's rounded accrual,
/// `floor(Σ line accruals)`, so what is left over is fewer units than there
/// are lines.
pub fn line_accruals(lines: &[LineQuote], accrued: Decimal, scale: u32) -> Vec<Decimal> {
    let mut parts: Vec<Decimal> = lines
        .iter()
        .map(|l| floor_to(l.accrual.max(Decimal::ZERO), scale))
        .collect();
    let unit = Decimal::new(1, scale);
    let mut left = accrued - parts.iter().copied().sum::<Decimal>();
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = lines[a].accrual - parts[a];
        let rb = lines[b].accrual - parts[b];
        rb.cmp(&ra).then(a.cmp(&b))
    });
    for i in order {
        if left < unit {
            break;
        }
        parts[i] += unit;
        left -= unit;
    }
    // A stored accrual that is not the floor of the lines' sum (it cannot
    // happen: commit rounds it so) lands on the first line, never lost.
    if !left.is_zero()
        && let Some(first) = parts.first_mut()
    {
        *first = (*first + left).max(Decimal::ZERO);
    }
    parts
}

/// The sale's line each returned line is for, in the return's order.
/// A line is named by its SKU, and by `line` too when the SKU is on more
/// than one line of the sale; one return names a line at most once.
/// Errors name the field (`lines[1].line`).
pub fn match_lines(
    sale: &[CommittedLine],
    returned: &[ReturnLine],
) -> Result<Vec<usize>, RulesError> {
    if returned.is_empty() {
        return Err(invalid(
            "lines",
            "a return by lines names at least one line",
        ));
    }
    if returned.len() > MAX_LINES {
        return Err(invalid(
            "lines",
            format!("{} lines exceed {MAX_LINES}", returned.len()),
        ));
    }
    let mut out: Vec<usize> = Vec::with_capacity(returned.len());
    for (i, r) in returned.iter().enumerate() {
        let idx = match r.line {
            Some(idx) => {
                let Some(l) = sale.get(idx) else {
                    return Err(invalid(
                        format!("lines[{i}].line"),
                        format!(
                            "the sale has {} lines (0 to {})",
                            sale.len(),
                            sale.len().saturating_sub(1)
                        ),
                    ));
                };
                if l.sku != r.sku {
                    return Err(invalid(
                        format!("lines[{i}].sku"),
                        format!("line {idx} of the sale is SKU {}, not {}", l.sku, r.sku),
                    ));
                }
                idx
            }
            None => {
                let found: Vec<usize> = sale
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.sku == r.sku)
                    .map(|(j, _)| j)
                    .collect();
                match found.as_slice() {
                    [] => {
                        return Err(invalid(
                            format!("lines[{i}].sku"),
                            format!("SKU {} is not on the sale", r.sku),
                        ));
                    }
                    [one] => *one,
                    many => {
                        let list: Vec<String> = many.iter().map(usize::to_string).collect();
                        return Err(invalid(
                            format!("lines[{i}].line"),
                            format!(
                                "SKU {} is on lines {} of the sale: name one",
                                r.sku,
                                list.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        if out.contains(&idx) {
            return Err(invalid(
                format!("lines[{i}]"),
                format!("line {idx} of the sale is named twice"),
            ));
        }
        out.push(idx);
    }
    Ok(out)
}

/// `floor(v × x / of)` to `dp` places, exactly `v` at `x = of`.
fn part(v: Decimal, x: Decimal, of: Decimal, dp: u32) -> Decimal {
    if x >= of {
        v
    } else if of.is_zero() {
        Decimal::ZERO
    } else {
        floor_to(v * x / of, dp).min(v)
    }
}

/// What returning `returned` gives back, line by line, after earlier returns
/// took back `already[i]` of each sale line `i`: money in the sale's
/// `precision`, accrued points in the accrual's unit (`accrual_scale`
/// places), spent points in `precision`. Refuses a quantity that is not
/// positive or that takes a line past what was sold, naming
/// `lines[i].qty`.
pub fn return_lines(
    sale: &[CommittedLine],
    already: &[Decimal],
    returned: &[ReturnLine],
    precision: u32,
    accrual_scale: u32,
) -> Result<Vec<ReturnedLine>, RulesError> {
    let idx = match_lines(sale, returned)?;
    let unit = accrual_scale.min(precision);
    let mut out = Vec::with_capacity(returned.len());
    for (i, (r, j)) in returned.iter().zip(idx).enumerate() {
        let l = &sale[j];
        let field = format!("lines[{i}].qty");
        if r.qty <= Decimal::ZERO || r.qty > MAX_AMOUNT {
            return Err(invalid(field, "must be > 0"));
        }
        let before = already.get(j).copied().unwrap_or(Decimal::ZERO);
        let left = (l.qty - before).max(Decimal::ZERO);
        if r.qty > left {
            return Err(invalid(
                field,
                format!(
                    "{} exceeds the {left} of line {j} not yet returned (sold {})",
                    r.qty, l.qty
                ),
            ));
        }
        let done = before + r.qty;
        let share = |v: Decimal, dp: u32| part(v, done, l.qty, dp) - part(v, before, l.qty, dp);
        // Normalised: the figures read the same whatever places they carry.
        out.push(ReturnedLine {
            line: j,
            sku: l.sku.clone(),
            qty: r.qty.normalize(),
            amount: share(l.total, precision).normalize(),
            clawback: share(l.accrued, unit).normalize(),
            return_points: share(l.redeemed, precision).normalize(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn committed(
        qty: Decimal,
        total: Decimal,
        accrued: Decimal,
        redeemed: Decimal,
    ) -> CommittedLine {
        CommittedLine {
            sku: "A".into(),
            qty,
            total,
            accrued,
            redeemed,
        }
    }

    fn ret(sku: &str, qty: Decimal, line: Option<usize>) -> ReturnLine {
        ReturnLine {
            sku: sku.into(),
            qty,
            line,
        }
    }

    fn lq(accrual: Decimal) -> LineQuote {
        LineQuote {
            total: Decimal::ZERO,
            rate: Decimal::ZERO,
            eligible: Decimal::ZERO,
            cap: Decimal::ZERO,
            redeemed: Decimal::ZERO,
            accrual,
        }
    }

    #[test]
    fn the_sales_rounding_goes_to_the_largest_remainders() {
        // 1.6 + 1.7 + 0.2 = 3.5, floored to 3: floors 1 + 1 + 0 and one
        // point left, to the line with the largest remainder (0.7).
        let parts = line_accruals(&[lq(dec!(1.6)), lq(dec!(1.7)), lq(dec!(0.2))], dec!(3), 0);
        assert_eq!(parts, vec![dec!(1), dec!(2), dec!(0)]);
        // Ties go to the earlier line.
        let parts = line_accruals(&[lq(dec!(0.5)), lq(dec!(0.5))], dec!(1), 0);
        assert_eq!(parts, vec![dec!(1), dec!(0)]);
    }

    #[test]
    fn a_sku_on_two_lines_needs_its_index() {
        let mut b = committed(dec!(1), dec!(10), dec!(0), dec!(0));
        b.sku = "B".into();
        let sale = vec![committed(dec!(1), dec!(10), dec!(0), dec!(0)), b.clone(), b];
        assert_eq!(
            match_lines(&sale, &[ret("A", dec!(1), None)]).unwrap(),
            vec![0]
        );
        let e = match_lines(&sale, &[ret("B", dec!(1), None)]).unwrap_err();
        assert!(
            matches!(&e, RulesError::Invalid { field, reason }
            if field == "lines[0].line" && reason.contains("1, 2")),
            "{e:?}"
        );
        assert_eq!(
            match_lines(&sale, &[ret("B", dec!(1), Some(2))]).unwrap(),
            vec![2]
        );
        let e = match_lines(&sale, &[ret("A", dec!(1), Some(1))]).unwrap_err();
        assert!(matches!(&e, RulesError::Invalid { field, .. } if field == "lines[0].sku"));
        let e = match_lines(&sale, &[ret("C", dec!(1), None)]).unwrap_err();
        assert!(matches!(&e, RulesError::Invalid { field, .. } if field == "lines[0].sku"));
        let e = match_lines(
            &sale,
            &[ret("A", dec!(1), None), ret("A", dec!(1), Some(0))],
        )
        .unwrap_err();
        assert!(matches!(&e, RulesError::Invalid { field, .. } if field == "lines[1]"));
        let e = match_lines(&sale, &[ret("A", dec!(1), Some(3))]).unwrap_err();
        assert!(matches!(&e, RulesError::Invalid { field, .. } if field == "lines[0].line"));
    }

    #[test]
    fn a_line_never_returns_more_than_was_sold() {
        let sale = vec![committed(dec!(2), dec!(200), dec!(10), dec!(50))];
        let first =
            return_lines(&sale, &[Decimal::ZERO], &[ret("A", dec!(1), None)], 2, 0).unwrap();
        assert_eq!(
            (first[0].amount, first[0].clawback, first[0].return_points),
            (dec!(100), dec!(5), dec!(25))
        );
        let e = return_lines(&sale, &[dec!(1)], &[ret("A", dec!(1.5), None)], 2, 0).unwrap_err();
        assert!(
            matches!(&e, RulesError::Invalid { field, .. } if field == "lines[0].qty"),
            "{e:?}"
        );
        let e =
            return_lines(&sale, &[Decimal::ZERO], &[ret("A", dec!(0), None)], 2, 0).unwrap_err();
        assert!(matches!(&e, RulesError::Invalid { field, .. } if field == "lines[0].qty"));
    }

    /// A line's figures: quantity up to 3 decimals (weighed goods), money
    /// and points up to 2, accrual in whole points.
    fn line() -> impl Strategy<Value = CommittedLine> {
        (1u64..=50_000, 0u64..=10_000_000, 0u64..=100_000, 0u64..=100).prop_map(|(q, t, a, r)| {
            let total = Decimal::new(t as i64, 2);
            // Spent points at most the line's total.
            let redeemed = floor_to(total * Decimal::new(r as i64, 2), 2);
            committed(Decimal::new(q as i64, 3), total, Decimal::from(a), redeemed)
        })
    }

    proptest! {
        /// Any sequence of partial returns of a line that ends with the
        /// whole line gives back exactly its figures, each share ≥ 0.
        #[test]
        fn full_returns_add_up_to_the_originals(
            l in line(),
            cuts in proptest::collection::vec(1u32..=1000, 0..6),
        ) {
            let sale = vec![l.clone()];
            // Cut the quantity at the given permille points, in order.
            let mut marks: Vec<Decimal> = cuts
                .iter()
                .map(|c| floor_to(l.qty * Decimal::from(*c) / Decimal::from(1000), 3))
                .collect();
            marks.push(l.qty);
            marks.sort();
            marks.dedup();
            let mut done = Decimal::ZERO;
            let (mut amount, mut clawback, mut back) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
            for m in marks {
                if m <= done {
                    continue;
                }
                let r = return_lines(&sale, &[done], &[ret("A", m - done, None)], 2, 0).unwrap();
                prop_assert!(r[0].amount >= Decimal::ZERO);
                prop_assert!(r[0].clawback >= Decimal::ZERO);
                prop_assert!(r[0].return_points >= Decimal::ZERO);
                prop_assert_eq!(r[0].clawback, r[0].clawback.trunc());
                amount += r[0].amount;
                clawback += r[0].clawback;
                back += r[0].return_points;
                prop_assert!(amount <= l.total && clawback <= l.accrued && back <= l.redeemed);
                done = m;
            }
            prop_assert_eq!(amount, l.total);
            prop_assert_eq!(clawback, l.accrued);
            prop_assert_eq!(back, l.redeemed);
        }

        /// The lines' parts of a sale's accrual are never negative and add
        /// up to it exactly.
        #[test]
        fn line_accruals_add_up_to_the_sale(
            acc in proptest::collection::vec(0u64..=10_000_000, 1..20),
            scale in 0u32..=2,
        ) {
            let lines: Vec<LineQuote> = acc.iter().map(|a| lq(Decimal::new(*a as i64, 5))).collect();
            let sum: Decimal = lines.iter().map(|l| l.accrual).sum();
            let accrued = floor_to(sum, scale);
            let parts = line_accruals(&lines, accrued, scale);
            prop_assert_eq!(parts.iter().copied().sum::<Decimal>(), accrued);
            for (p, l) in parts.iter().zip(&lines) {
                prop_assert!(*p >= Decimal::ZERO);
                prop_assert!(*p <= l.accrual + Decimal::new(1, scale));
            }
        }
    }
}
