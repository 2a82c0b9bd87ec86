//! GS1 element strings: what GS1-128, GS1 DataMatrix, GS1 QR and GS1
//! DataBar carry, split into application identifiers (AIs) and checked.
//!
//! No crate fit: `gs1` handles EPC/RFID identifiers only, and the QR helper
//! crates split elements without check digits or date validation. This is
//! the small subset a till needs (GS1 General Specifications, section 3 and
//! figure 7.8.5-2), written from the specification.
//!
//! # Format
//!
//! An element string is AI + value, one after another. The AI's length
//! follows from its first two digits; the value is fixed-length or
//! variable-length. A variable-length value ends at a GS (0x1D, how
//! scanners transmit FNC1) or at the end of the data. A GS after a
//! fixed-length value is tolerated (many encoders put one there). A GS at
//! the very start (FNC1 in the first position, sent by some scanners) is
//! skipped.
//!
//! # Checks
//!
//! - Fixed-length numeric values are digits; every value is printable
//!   ASCII without space (GS1 character set 82 fits in it).
//! - GTIN (01, 02), SSCC (00) and GLN (410–417): mod-10 check digit.
//! - Dates (11, 12, 13, 15, 16, 17): `YYMMDD`, month 1–12, day valid for
//!   the month (day `00` means "end of month", allowed for 15, 16, 17).
//!
//! Russian marking codes ("Честный ЗНАК") are GS1 DataMatrix: GTIN (01),
//! serial (21), then the crypto tail: 91 (verification key id), 92 (crypto
//! code) or 93 (short crypto code), each ended by GS. See
//! [`Gs1::is_marking_code`].
//!
//! [`parse`] never panics and bounds its input ([`MAX_INPUT`]): it is a
//! fuzz entry point.

use std::fmt;

/// The byte scanners send for FNC1 between elements.
pub const GS: u8 = 0x1D;

/// Longest element string accepted. A GS1 DataMatrix holds up to 2335
/// characters, a QR code more; no till label comes close to this.
pub const MAX_INPUT: usize = 1024;

/// One application identifier and its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Element {
    /// The AI, 2 to 4 digits (`"01"`, `"3103"`).
    pub ai: String,
    /// The value as encoded.
    pub value: String,
}

impl fmt::Debug for Element {
    // Values may be serial numbers or crypto codes: lengths only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}) <{} chars>", self.ai, self.value.len())
    }
}

/// A parsed element string, elements in the order scanned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gs1 {
    /// The elements.
    pub elements: Vec<Element>,
}

impl Gs1 {
    /// The first value of `ai`.
    pub fn get(&self, ai: &str) -> Option<&str> {
        self.elements
            .iter()
            .find(|e| e.ai == ai)
            .map(|e| e.value.as_str())
    }

    /// Whether this is a marking code: GTIN (01), serial (21) and a crypto
    /// tail (91 + 92, or 93).
    pub fn is_marking_code(&self) -> bool {
        self.get("01").is_some()
            && self.get("21").is_some()
            && (self.get("93").is_some() || (self.get("91").is_some() && self.get("92").is_some()))
    }
}

/// Why a payload is not a valid element string. Offsets are bytes into the
/// input; values are never shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gs1Error {
    /// Nothing but separators.
    #[error("empty element string")]
    Empty,
    /// Over [`MAX_INPUT`] bytes.
    #[error("element string of {len} bytes exceeds {MAX_INPUT}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// No known AI starts here.
    #[error("no known application identifier at byte {offset}")]
    UnknownAi {
        /// Where.
        offset: usize,
    },
    /// The value is too short, too long or empty.
    #[error("AI ({ai}) at byte {offset}: value length {len} is not {expected}")]
    Length {
        /// The AI.
        ai: String,
        /// Where its value starts.
        offset: usize,
        /// Its length.
        len: usize,
        /// What it must be.
        expected: String,
    },
    /// A byte outside the AI's character set.
    #[error("AI ({ai}): byte 0x{byte:02X} at {offset} is not allowed")]
    Character {
        /// The AI.
        ai: String,
        /// The byte.
        byte: u8,
        /// Where.
        offset: usize,
    },
    /// The check digit is wrong.
    #[error("AI ({ai}) at byte {offset}: check digit is wrong")]
    CheckDigit {
        /// The AI.
        ai: String,
        /// Where its value starts.
        offset: usize,
    },
    /// Not a valid `YYMMDD`.
    #[error("AI ({ai}) at byte {offset}: not a valid YYMMDD date")]
    Date {
        /// The AI.
        ai: String,
        /// Where its value starts.
        offset: usize,
    },
}

/// Value length of an AI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Len {
    /// Exactly this many characters, digits only.
    Numeric(usize),
    /// 1 to this many characters, ended by GS or the end.
    Upto(usize),
}

/// What is checked on the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    Mod10,
    Date { day_zero: bool },
}

/// AI length, value length and check for the AI starting with `d`
/// (the input from the AI on; at least 2 digits known).
fn spec(d: &[u8]) -> Option<(usize, Len, Check)> {
    let two = (d[0] - b'0') * 10 + (d[1] - b'0');
    let digit = |i: usize| d.get(i).filter(|b| b.is_ascii_digit()).map(|b| b - b'0');
    Some(match two {
        0 => (2, Len::Numeric(18), Check::Mod10),
        1..=2 => (2, Len::Numeric(14), Check::Mod10),
        10 | 21 | 22 => (2, Len::Upto(20), Check::None),
        11..=13 => (2, Len::Numeric(6), Check::Date { day_zero: false }),
        15..=17 => (2, Len::Numeric(6), Check::Date { day_zero: true }),
        20 => (2, Len::Numeric(2), Check::None),
        // 235 TPX; 240-255 additional identification.
        23 => (3, Len::Upto(28), Check::None),
        24 | 25 => (3, Len::Upto(30), Check::None),
        30 | 37 => (2, Len::Upto(8), Check::None),
        // Trade measures: 4-digit AIs, 6 digits.
        31..=36 => (4, Len::Numeric(6), Check::None),
        // Amounts: 4-digit AIs, up to 15 digits (18 with a currency).
        39 => (4, Len::Upto(18), Check::None),
        40 => match digit(2)? {
            2 => (3, Len::Numeric(17), Check::Mod10),
            _ => (3, Len::Upto(30), Check::None),
        },
        41 => (3, Len::Numeric(13), Check::Mod10),
        42 => match digit(2)? {
            2 | 4 | 6 => (3, Len::Numeric(3), Check::None),
            _ => (3, Len::Upto(20), Check::None),
        },
        43 => (4, Len::Upto(70), Check::None),
        // 71x national healthcare numbers are 3-digit AIs.
        71 => (3, Len::Upto(20), Check::None),
        70 | 72 => (4, Len::Upto(30), Check::None),
        80..=82 => (4, Len::Upto(70), Check::None),
        // Internal and company data, and the marking code's crypto tail
        // (91 key id, 92 crypto code, 93 short crypto code).
        90..=99 => (2, Len::Upto(90), Check::None),
        _ => return None,
    })
}

/// Splits an element string (AIM prefix already removed) into elements and
/// checks each. See the [module documentation](self).
pub fn parse(input: &[u8]) -> Result<Gs1, Gs1Error> {
    if input.len() > MAX_INPUT {
        return Err(Gs1Error::TooLong { len: input.len() });
    }
    let mut pos = 0;
    let mut out = Gs1::default();
    while pos < input.len() {
        if input[pos] == GS {
            pos += 1;
            continue;
        }
        let rest = &input[pos..];
        let (ai_len, len, check) = match rest {
            [a, b, ..] if a.is_ascii_digit() && b.is_ascii_digit() => spec(rest),
            _ => None,
        }
        .filter(|(n, _, _)| {
            rest.get(..*n)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        })
        .ok_or(Gs1Error::UnknownAi { offset: pos })?;
        let ai = ascii(&rest[..ai_len]);
        let start = pos + ai_len;
        let avail = &input[start..];
        let until_gs = avail.iter().position(|&b| b == GS).unwrap_or(avail.len());
        let (value, expected, numeric) = match len {
            Len::Numeric(n) => match avail.get(..n).filter(|v| !v.contains(&GS)) {
                Some(v) => (v, None, true),
                None => (&avail[..until_gs], Some(format!("{n}")), true),
            },
            Len::Upto(max) => {
                let v = &avail[..until_gs];
                let bad = v.is_empty() || v.len() > max;
                (v, bad.then(|| format!("1 to {max}")), false)
            }
        };
        if let Some(expected) = expected {
            return Err(Gs1Error::Length {
                ai,
                offset: start,
                len: value.len(),
                expected,
            });
        }
        if let Some(i) = value.iter().position(|&b| {
            if numeric {
                !b.is_ascii_digit()
            } else {
                !(0x21..=0x7E).contains(&b)
            }
        }) {
            return Err(Gs1Error::Character {
                ai,
                byte: value[i],
                offset: start + i,
            });
        }
        let ok = match check {
            Check::None => true,
            Check::Mod10 => mod10_ok(value),
            Check::Date { day_zero } => date_ok(value, day_zero),
        };
        if !ok {
            return Err(match check {
                Check::Date { .. } => Gs1Error::Date { ai, offset: start },
                _ => Gs1Error::CheckDigit { ai, offset: start },
            });
        }
        out.elements.push(Element {
            ai,
            value: ascii(value),
        });
        pos = start + value.len();
    }
    if out.elements.is_empty() {
        return Err(Gs1Error::Empty);
    }
    Ok(out)
}

/// GS1 mod-10: weights 3 and 1 alternating from the digit left of the
/// check digit. `digits` are ASCII digits (checked by the caller).
pub fn mod10_ok(digits: &[u8]) -> bool {
    let Some((&check, body)) = digits.split_last() else {
        return false;
    };
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d.wrapping_sub(b'0')) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check.wrapping_sub(b'0'))
}

/// Whether `digits` is the number of a trade item as printed under an
/// EAN-13, EAN-8, UPC-A or ITF-14 bar code: 8, 12, 13 or 14 digits with a
/// right GS1 check digit, outside the restricted-circulation ranges that
/// GS1 leaves to shops for their own numbers (EAN-13/GTIN-14 prefixes
/// 020–029, 040–049 and 200–299; UPC-A number systems 2 and 4; EAN-8
/// prefixes 0 and 2: the Restricted Circulation Numbers of the GS1 General
/// Specifications). A shop's own loyalty cards live in those ranges; a
/// product's code does not.
pub fn is_trade_item_number(digits: &str) -> bool {
    let d = digits.as_bytes();
    if !matches!(d.len(), 8 | 12 | 13 | 14) || !d.iter().all(u8::is_ascii_digit) || !mod10_ok(d) {
        return false;
    }
    // The first two digits as a GTIN-13 (UPC-A is a GTIN-13 with a leading
    // 0; GTIN-14 leads with its packaging indicator), except EAN-8, which
    // has its own ranges.
    let head = match d.len() {
        8 => return !matches!(d[0], b'0' | b'2'),
        12 => (b'0', d[0]),
        13 => (d[0], d[1]),
        _ => (d[1], d[2]),
    };
    !matches!(head, (b'0', b'2') | (b'0', b'4') | (b'2', _))
}

/// `YYMMDD` with a real month and day; day 00 only where allowed. The
/// century is taken as 20YY for the leap year (GS1's sliding window puts
/// every till-era date there).
fn date_ok(v: &[u8], day_zero: bool) -> bool {
    let n = |i: usize| u32::from(v[i] - b'0') * 10 + u32::from(v[i + 1] - b'0');
    if v.len() != 6 {
        return false;
    }
    let (year, month, day) = (2000 + n(0), n(2), n(4));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 => 29,
        2 => 28,
        _ => return false,
    };
    (day == 0 && day_zero) || (1..=days).contains(&day)
}

fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn trade_item_numbers_and_shop_ranges() {
        // Real products: EAN-13 (GS1 Russia), UPC-A, EAN-8, ITF-14.
        for code in [
            "4601234567893",
            "036000291452",
            "96385074",
            "14601234567890",
        ] {
            assert!(is_trade_item_number(code), "{code}");
        }
        // A shop's own numbers (restricted circulation), a wrong check
        // digit, other lengths.
        for code in [
            "2001234567893",
            "0212345678909",
            "0412345678903",
            "21234569",
            "4601234567892",
            "46012345678",
            "7012345678901234",
        ] {
            assert!(!is_trade_item_number(code), "{code}");
        }
    }
    use super::*;
    use proptest::prelude::*;

    /// A marking code as a pharmacy's scanner sends it (after the AIM
    /// prefix `]d2`): GTIN, serial, GS, key id, GS, crypto code.
    const MARKING: &[u8] =
        b"0104601662000016215RNef*ex0>P5\x1d91EE06\x1d92YWCXbmK6SN8vvwoxZFk7WAY8WoJNMGGr6Cgtiuja04c=";

    #[test]
    fn a_marking_code_splits_into_its_elements() {
        let g = parse(MARKING).unwrap();
        let ais: Vec<&str> = g.elements.iter().map(|e| e.ai.as_str()).collect();
        assert_eq!(ais, ["01", "21", "91", "92"]);
        assert_eq!(g.get("01"), Some("04601662000016"));
        assert_eq!(g.get("21"), Some("5RNef*ex0>P5"));
        assert_eq!(g.get("91"), Some("EE06"));
        assert_eq!(g.get("92").map(str::len), Some(44));
        assert!(g.is_marking_code());
    }

    #[test]
    fn gs1_128_with_dates_batch_and_weight() {
        // (01) GTIN, (17) expiry, (10) batch, GS, (3103) net weight kg.
        let g = parse(b"010950600013435217251231" as &[u8]).unwrap();
        assert_eq!(g.get("17"), Some("251231"));
        let g = parse(b"\x1d0109506000134352172602001012A\x1d3103001250").unwrap();
        assert_eq!(g.get("01"), Some("09506000134352"));
        assert_eq!(g.get("17"), Some("260200"));
        assert_eq!(g.get("10"), Some("12A"));
        assert_eq!(g.get("3103"), Some("001250"));
        assert!(!g.is_marking_code());
        // Short crypto tail (93) also makes a marking code.
        let g = parse(b"010460166200001621ABC\x1d93dGkq").unwrap();
        assert!(g.is_marking_code());
    }

    #[test]
    fn bad_input_is_named() {
        // GTIN check digit off by one.
        let e = parse(b"0104601662000017").unwrap_err();
        assert!(
            matches!(e, Gs1Error::CheckDigit { ref ai, offset: 2 } if ai == "01"),
            "{e}"
        );
        // 31 February, and month 13.
        assert!(matches!(parse(b"17250231"), Err(Gs1Error::Date { .. })));
        assert!(matches!(parse(b"17251301"), Err(Gs1Error::Date { .. })));
        // Day 00 is fine for expiry (17) but not for production (11).
        assert!(parse(b"17250200").is_ok());
        assert!(matches!(parse(b"11250200"), Err(Gs1Error::Date { .. })));
        // Truncated GTIN.
        assert!(matches!(
            parse(b"01046016"),
            Err(Gs1Error::Length { len: 6, .. })
        ));
        // Serial over 20 characters.
        assert!(matches!(
            parse(b"21123456789012345678901"),
            Err(Gs1Error::Length { .. })
        ));
        // Not an AI at all; a space in a value.
        assert_eq!(parse(b"hello"), Err(Gs1Error::UnknownAi { offset: 0 }));
        assert_eq!(parse(b"05123"), Err(Gs1Error::UnknownAi { offset: 0 }));
        assert!(matches!(
            parse(b"10AB C"),
            Err(Gs1Error::Character {
                byte: b' ',
                offset: 4,
                ..
            })
        ));
        assert_eq!(parse(b"\x1d\x1d"), Err(Gs1Error::Empty));
        assert!(matches!(
            parse(&[b'9'; MAX_INPUT + 1]),
            Err(Gs1Error::TooLong { .. })
        ));
    }

    #[test]
    fn mod10_vectors() {
        // GS1's own examples: GTIN-13 and SSCC.
        assert!(mod10_ok(b"4006381333931"));
        assert!(!mod10_ok(b"4006381333932"));
        assert!(mod10_ok(b"106141411234567897"));
        assert!(!mod10_ok(b""));
    }

    fn with_check(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.push(b'0');
        let c = (0..10u8)
            .find(|&c| {
                *v.last_mut().unwrap() = b'0' + c;
                mod10_ok(&v)
            })
            .unwrap();
        *v.last_mut().unwrap() = b'0' + c;
        v
    }

    proptest! {
        #[test]
        fn never_panics(input in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&input);
        }

        /// Built element strings come back as they went in, and the GS
        /// between elements never ends up in a value.
        #[test]
        fn round_trip(
            gtin in "[0-9]{13}",
            serial in "[!-~]{1,20}",
            batch in "[A-Z0-9]{1,20}",
            month in 1u8..=12,
            day in 1u8..=28,
        ) {
            let mut s = b"01".to_vec();
            s.extend(with_check(gtin.as_bytes()));
            s.extend(format!("17{:02}{month:02}{day:02}", 30).as_bytes());
            s.extend(b"21");
            s.extend(serial.as_bytes());
            s.push(GS);
            s.extend(b"10");
            s.extend(batch.as_bytes());
            let g = parse(&s).unwrap();
            prop_assert_eq!(g.get("21"), Some(serial.as_str()));
            prop_assert_eq!(g.get("10"), Some(batch.as_str()));
            prop_assert_eq!(g.elements.len(), 4);
        }

        /// Changing one GTIN digit always breaks the check.
        #[test]
        fn one_wrong_digit_fails(gtin in "[0-9]{13}", at in 0usize..14, delta in 1u8..10) {
            let mut v = with_check(gtin.as_bytes());
            v[at] = b'0' + (v[at] - b'0' + delta) % 10;
            prop_assert!(!mod10_ok(&v));
        }
    }
}
