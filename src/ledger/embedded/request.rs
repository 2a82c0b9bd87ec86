//! The text a sale's request is stored as (compared on a repeat of its
//! key), written straight from the sale instead of through a JSON tree.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::ledger::rules::SaleLine;

/// A sale's request with its keys in the order `json!` wrote them (sorted:
/// its objects are `BTreeMap`s), so the text is byte for byte the one every
/// existing key was stored with.
#[derive(Serialize)]
struct Stored<'a> {
    lines: Vec<Line<'a>>,
    number: &'a str,
    receipt_id: &'a str,
    redeem: String,
}

/// A [`SaleLine`] with its fields in sorted order.
#[derive(Serialize)]
struct Line<'a> {
    category: &'a str,
    discount: &'a Decimal,
    name: &'a str,
    price: &'a Decimal,
    qty: &'a Decimal,
    sku: &'a str,
}

/// The text a sale's request is stored as, compared on a repeat of its
/// key. Same text as it always was: existing keys must keep replaying.
pub(crate) fn commit_request(
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
) -> String {
    let stored = Stored {
        lines: lines
            .iter()
            .map(|l| Line {
                category: &l.category,
                discount: &l.discount,
                name: &l.name,
                price: &l.price,
                qty: &l.qty,
                sku: &l.sku,
            })
            .collect(),
        number,
        receipt_id,
        redeem: redeem.to_string(),
    };
    // Strings, decimals (as strings) and vectors always serialize.
    serde_json::to_string(&stored).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// How the text was built before: a `json!` tree.
    fn tree(number: &str, receipt_id: &str, lines: &[SaleLine], redeem: Decimal) -> String {
        json!({"number": number, "receipt_id": receipt_id, "lines": lines, "redeem": redeem.to_string()}).to_string()
    }

    #[test]
    fn the_same_text_as_the_json_tree() {
        let line =
            |sku: &str, name: &str, category: &str, qty: &str, price: &str, d: &str| SaleLine {
                sku: sku.into(),
                name: name.into(),
                category: category.into(),
                qty: qty.parse().unwrap(),
                price: price.parse().unwrap(),
                discount: d.parse().unwrap(),
            };
        let cases: Vec<(&str, &str, Vec<SaleLine>, Decimal)> = vec![
            ("6035000000000000", "R1", vec![], Decimal::ZERO),
            (
                "6035000000000001",
                "R-\"2\"\\",
                vec![line("1", "x", "g", "1", "20", "0")],
                Decimal::new(150, 2),
            ),
            (
                "карта\u{1}\n",
                "чек 3",
                vec![
                    line(
                        "sku/1",
                        "Молоко \"3,2 %\"",
                        "молочное",
                        "0.250",
                        "89.90",
                        "0.00",
                    ),
                    line("", "\t", "", "1000000", "0.0001", "12.5"),
                ],
                Decimal::new(-1, 4),
            ),
        ];
        for (number, receipt, lines, redeem) in cases {
            assert_eq!(
                commit_request(number, receipt, &lines, redeem),
                tree(number, receipt, &lines, redeem)
            );
        }
    }
}
