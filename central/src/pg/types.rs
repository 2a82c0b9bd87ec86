//! The ledger core's [`Value`]s to and from PostgreSQL's types.
//!
//! The core binds integers, text and bytes without naming SQL types; the
//! server infers each parameter's type from the statement, and [`Param`]
//! encodes the value as that type (with range checks, never a silent
//! truncation). Columns come back as [`Cell`]: integers (and booleans, as
//! 0/1), text, bytes, NUMERIC (an integer when integral, else its decimal
//! text: PostgreSQL's `SUM(bigint)` is NUMERIC) or NULL.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use posbridge::ledger::db::Value;

type BoxError = Box<dyn Error + Sync + Send>;

/// A bound parameter.
#[derive(Debug)]
pub(crate) struct Param(pub(crate) Value);

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

fn refuse(what: &str, ty: &Type) -> BoxError {
    format!("cannot bind {what} to a parameter of type {ty}").into()
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        // A domain travels as its base type.
        if let Kind::Domain(base) = ty.kind() {
            return self.to_sql(base, out);
        }
        match &self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => int_to_sql(*i, ty, out),
            Value::Text(s) if is_text(ty) => s.as_str().to_sql(ty, out),
            // SQLite's STRICT integer columns take integer-looking text;
            // so does this, checked.
            Value::Text(s)
                if matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::NUMERIC) =>
            {
                let i: i64 = s.parse().map_err(|_| refuse("non-integer text", ty))?;
                int_to_sql(i, ty, out)
            }
            Value::Text(_) => Err(refuse("text", ty)),
            Value::Blob(b) if *ty == Type::BYTEA => b.as_slice().to_sql(ty, out),
            Value::Blob(_) => Err(refuse("bytes", ty)),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in to_sql, which says what did not fit.
        true
    }

    to_sql_checked!();
}

fn int_to_sql(i: i64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let range = || -> BoxError { format!("integer {i} out of range for {ty}").into() };
    match *ty {
        Type::INT8 => i.to_sql(ty, out),
        Type::INT4 => i32::try_from(i).map_err(|_| range())?.to_sql(ty, out),
        Type::INT2 => i16::try_from(i).map_err(|_| range())?.to_sql(ty, out),
        Type::BOOL => match i {
            0 => false.to_sql(ty, out),
            1 => true.to_sql(ty, out),
            _ => Err(range()),
        },
        Type::NUMERIC => {
            numeric_from_int(i, out);
            Ok(IsNull::No)
        }
        // Like SQLite putting an integer into a TEXT column.
        _ if is_text(ty) => i.to_string().as_str().to_sql(ty, out),
        _ => Err(refuse("an integer", ty)),
    }
}

/// NUMERIC's binary form: digit count, weight (of the first base-10000
/// digit), sign, display scale, then the digits, most significant first.
fn numeric_from_int(i: i64, out: &mut BytesMut) {
    let mut abs = i.unsigned_abs();
    let mut digits = Vec::new();
    while abs > 0 {
        digits.push((abs % 10_000) as i16);
        abs /= 10_000;
    }
    digits.reverse();
    let n = digits.len() as i16;
    out.put_i16(n);
    out.put_i16(if n == 0 { 0 } else { n - 1 });
    out.put_u16(if i < 0 { NUMERIC_NEG } else { NUMERIC_POS });
    out.put_u16(0);
    for d in digits {
        out.put_i16(d);
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;

/// A column's value.
#[derive(Debug)]
pub(crate) struct Cell(pub(crate) Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if let Kind::Domain(base) = ty.kind() {
            return Self::from_sql(base, raw);
        }
        let v = match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::OID => Value::Int(i64::from(u32::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::BYTEA => Value::Blob(<Vec<u8>>::from_sql(ty, raw)?),
            Type::NUMERIC => numeric_to_value(raw)?,
            // The ledger keeps no floats; as on SQLite, one reads as text
            // so the core's type error names it.
            Type::FLOAT8 => Value::Text(f64::from_sql(ty, raw)?.to_string()),
            Type::FLOAT4 => Value::Text(f32::from_sql(ty, raw)?.to_string()),
            _ if <String as FromSql>::accepts(ty) => Value::Text(String::from_sql(ty, raw)?),
            _ => return Err(format!("column type {ty} is not one the ledger reads").into()),
        };
        Ok(Cell(v))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in from_sql, which names the type.
        true
    }
}

fn be_i16(raw: &[u8], at: usize) -> Result<i16, BoxError> {
    raw.get(at..at + 2)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated NUMERIC".into())
}

/// An integral NUMERIC within i64 as [`Value::Int`]; any other as its
/// exact decimal text (NaN and infinities by name).
fn numeric_to_value(raw: &[u8]) -> Result<Value, BoxError> {
    let ndigits = be_i16(raw, 0)?;
    let weight = i32::from(be_i16(raw, 2)?);
    let sign = be_i16(raw, 4)? as u16;
    let dscale = be_i16(raw, 6)?;
    let ndigits = usize::try_from(ndigits).map_err(|_| "bad NUMERIC digit count")?;
    let dscale = usize::try_from(dscale).map_err(|_| "bad NUMERIC scale")?;
    match sign {
        0xC000 => return Ok(Value::Text("NaN".into())),
        0xD000 => return Ok(Value::Text("Infinity".into())),
        0xF000 => return Ok(Value::Text("-Infinity".into())),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return Err("bad NUMERIC sign".into()),
    }
    let mut digits = Vec::with_capacity(ndigits);
    for k in 0..ndigits {
        let d = be_i16(raw, 8 + 2 * k)?;
        if !(0..10_000).contains(&d) {
            return Err("bad NUMERIC digit".into());
        }
        digits.push(d as u16);
    }
    // Digit k stands for digits[k] * 10000^(weight - k).
    let digit = |k: i32| -> u16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut int_text = String::new();
    let mut int_value: Option<i128> = Some(0);
    for k in 0..=weight {
        let d = digit(k);
        if int_text.is_empty() {
            if d != 0 {
                int_text = d.to_string();
            }
        } else {
            int_text.push_str(&format!("{d:04}"));
        }
        int_value = int_value
            .and_then(|v| v.checked_mul(10_000))
            .and_then(|v| v.checked_add(i128::from(d)));
    }
    if int_text.is_empty() {
        int_text.push('0');
    }
    let fractional = (0..ndigits as i32).any(|k| k > weight && digits[k as usize] != 0);
    let negative = sign == NUMERIC_NEG;
    if !fractional {
        let signed = int_value.map(|v| if negative { -v } else { v });
        if let Some(i) = signed.and_then(|v| i64::try_from(v).ok()) {
            return Ok(Value::Int(i));
        }
        let minus = if negative && int_text != "0" { "-" } else { "" };
        return Ok(Value::Text(format!("{minus}{int_text}")));
    }
    let mut frac = String::new();
    let mut k = weight + 1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit(k)));
        k += 1;
    }
    frac.truncate(dscale);
    let minus = if negative { "-" } else { "" };
    Ok(Value::Text(format!("{minus}{int_text}.{frac}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(i: i64) -> Value {
        let mut out = BytesMut::new();
        numeric_from_int(i, &mut out);
        numeric_to_value(&out).unwrap()
    }

    #[test]
    fn integers_survive_numeric() {
        for i in [0, 1, -1, 9_999, 10_000, 123_456_789, i64::MAX, i64::MIN] {
            assert_eq!(round_trip(i), Value::Int(i), "{i}");
        }
    }

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [ndigits, weight, sign as i16, dscale as i16] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn fractions_and_huge_numbers_read_as_exact_text() {
        // 12.5 with scale 2: digits 12 | 5000.
        let v = numeric_to_value(&numeric(2, 0, 0, 2, &[12, 5000])).unwrap();
        assert_eq!(v, Value::Text("12.50".into()));
        // -0.0001: weight -1, digit 1.
        let v = numeric_to_value(&numeric(1, -1, 0x4000, 4, &[1])).unwrap();
        assert_eq!(v, Value::Text("-0.0001".into()));
        // 0.00000001: weight -2.
        let v = numeric_to_value(&numeric(1, -2, 0, 8, &[1])).unwrap();
        assert_eq!(v, Value::Text("0.00000001".into()));
        // 10^24: beyond i64, exact.
        let v = numeric_to_value(&numeric(1, 6, 0, 0, &[1])).unwrap();
        assert_eq!(v, Value::Text(format!("1{}", "0".repeat(24))));
        // 7.000 (scale 3, integral) reads as an integer.
        let v = numeric_to_value(&numeric(1, 0, 0, 3, &[7])).unwrap();
        assert_eq!(v, Value::Int(7));
        assert!(numeric_to_value(&[0, 1]).is_err());
    }
}
