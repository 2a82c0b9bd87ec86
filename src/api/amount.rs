//! The one strict reading of amounts (money, points, quantities,
//! percentages) where they enter through JSON-RPC.
//!
//! `rust_decimal`'s own deserialisers are lenient: `""` reads as absent (and
//! then as 0), `"+5"` as 5, `" 5"`, `"1e3"` and JSON floats are taken, and
//! extra decimals are kept only to be rounded away later. At the boundary an
//! amount is a JSON string `-?DIGITS[.DIGITS]`: the minus only where a field
//! allows it, no other sign, no blanks, no exponent, at most a fixed number of
//! decimals and at most [`MAX_AMOUNT`]. Fields use these functions through
//! `#[serde(deserialize_with = ...)]`, so `rpc::params` names the field.

use std::fmt;

use rust_decimal::Decimal;
use serde::Deserializer;
use serde::de::{self, Visitor};

pub use crate::ledger::rules::MAX_AMOUNT;

/// Decimal places of points and percentages: the ledger stores points in
/// units of 0.0001 (`ledger::rules::MAX_PRECISION`). Money is further held
/// to the programme's precision by the ledger.
pub const POINT_DECIMALS: u32 = 4;
/// Decimal places of a quantity (the fiscal register counts millionths).
pub const QTY_DECIMALS: u32 = 6;

/// Integer digits of [`MAX_AMOUNT`] (10^12): more can only be too large.
const MAX_INT_DIGITS: usize = 13;

/// Parses one amount string. `signed`: a leading `-` is allowed.
pub fn parse(s: &str, signed: bool, decimals: u32) -> Result<Decimal, String> {
    const SHAPE: &str = "an amount is a decimal string such as \"12.50\"";
    if s.is_empty() {
        return Err(format!("empty; {SHAPE}"));
    }
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) if signed => (true, rest),
        Some(_) => return Err(format!("\"{}\": must not be negative", short(s))),
        None => (false, s),
    };
    if body.starts_with('+') || (negative && body.starts_with('-')) {
        return Err(format!("\"{}\": no sign allowed here; {SHAPE}", short(s)));
    }
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return Err(format!("\"{}\": {SHAPE}", short(s)));
    }
    if let Some(f) = frac
        && f.len() > decimals as usize
    {
        return Err(format!(
            "\"{}\" has more than {decimals} decimal places",
            short(s)
        ));
    }
    let too_large = || format!("\"{}\" exceeds {MAX_AMOUNT}", short(s));
    if int.trim_start_matches('0').len() > MAX_INT_DIGITS {
        return Err(too_large());
    }
    let v = Decimal::from_str_exact(s).map_err(|e| format!("\"{}\": {e}", short(s)))?;
    if v.abs() > MAX_AMOUNT {
        return Err(too_large());
    }
    Ok(v)
}

/// At most 40 characters of a bad value, for the error message.
fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

struct AmountVisitor {
    signed: bool,
    decimals: u32,
}

impl Visitor<'_> for AmountVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a decimal string with at most {} decimal places",
            self.decimals
        )
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Decimal, E> {
        parse(s, self.signed, self.decimals).map_err(E::custom)
    }
}

fn read<'de, D: Deserializer<'de>>(d: D, signed: bool, decimals: u32) -> Result<Decimal, D::Error> {
    // deserialize_str: a JSON number is refused as "invalid type", never
    // read through a float.
    d.deserialize_str(AmountVisitor { signed, decimals })
}

/// Points or money, ≥ 0, at most [`POINT_DECIMALS`] places.
pub fn unsigned<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    read(d, false, POINT_DECIMALS)
}

/// As [`unsigned`], for an optional field (pair with `#[serde(default)]`).
pub fn unsigned_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    unsigned(d).map(Some)
}

/// Points that may be negative (`ledger.adjust`).
pub fn signed<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    read(d, true, POINT_DECIMALS)
}

/// As [`signed`], for an optional field (pair with `#[serde(default)]`).
pub fn signed_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    signed(d).map(Some)
}

/// A quantity, ≥ 0, at most [`QTY_DECIMALS`] places.
pub fn qty<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    read(d, false, QTY_DECIMALS)
}

/// Free text with a length cap, checked where it enters.
pub fn check_text(field: &str, s: &str, max_chars: usize) -> Result<(), super::rpc::RpcError> {
    if s.chars().count() > max_chars {
        return Err(super::rpc::RpcError::invalid_params(
            field,
            format!("at most {max_chars} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn accepts_plain_decimals() {
        assert_eq!(parse("0", false, 4), Ok(dec!(0)));
        assert_eq!(parse("12.50", false, 2), Ok(dec!(12.50)));
        assert_eq!(parse("-3.1234", true, 4), Ok(dec!(-3.1234)));
        assert_eq!(parse("1000000000000", false, 4), Ok(MAX_AMOUNT));
        assert_eq!(parse("0001.5", false, 4), Ok(dec!(1.5)));
    }

    #[test]
    fn refuses_what_was_read_leniently() {
        for (s, signed, dp) in [
            ("", false, 4),
            ("+5", false, 4),
            ("+5", true, 4),
            ("-5", false, 4),
            ("--5", true, 4),
            (" 5", false, 4),
            ("5 ", false, 4),
            ("1e3", false, 4),
            ("1.", false, 4),
            (".5", false, 4),
            ("1.00001", false, 4),
            ("1.001", false, 2),
            ("1000000000000.01", false, 4),
            ("99999999999999999999999999999999", false, 4),
            ("NaN", false, 4),
            ("0x10", false, 4),
            ("١٢", false, 4),
        ] {
            assert!(parse(s, signed, dp).is_err(), "{s:?} accepted");
        }
    }

    #[derive(serde::Deserialize, Debug)]
    struct P {
        #[serde(default, deserialize_with = "unsigned_opt")]
        redeem: Option<Decimal>,
    }

    #[test]
    fn json_numbers_are_refused_and_absent_stays_absent() {
        assert!(serde_json::from_str::<P>(r#"{"redeem": 5}"#).is_err());
        assert!(serde_json::from_str::<P>(r#"{"redeem": 5.5}"#).is_err());
        assert!(serde_json::from_str::<P>(r#"{"redeem": ""}"#).is_err());
        assert_eq!(serde_json::from_str::<P>("{}").unwrap().redeem, None);
        assert_eq!(
            serde_json::from_str::<P>(r#"{"redeem": "2.5"}"#)
                .unwrap()
                .redeem,
            Some(dec!(2.5))
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,40}") {
            if let Ok(v) = parse(&s, true, 4) {
                proptest::prop_assert!(v.abs() <= MAX_AMOUNT);
                proptest::prop_assert!(v.scale() <= 4);
            }
        }

        #[test]
        fn exact_for_valid_input(int in 0u64..1_000_000_000_000, frac in 0u32..10_000) {
            let s = format!("{int}.{frac:04}");
            let v = parse(&s, false, 4).unwrap();
            proptest::prop_assert_eq!(v.to_string(), s);
        }
    }
}
