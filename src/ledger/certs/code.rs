//! Gift certificate codes: minted from the kernel's random source,
//! printable, with a check symbol so a mistyped code is refused before any
//! lookup, and kept only as a digest.
//!
//! A minted code is 15 random symbols of Crockford's base-32 alphabet (75
//! bits: no I, L, O or U, so nothing reads two ways) and one Luhn mod 32
//! check symbol, shown as `XXXX-XXXX-XXXX-XXXX`. What a cashier types is
//! normalised first: upper case, dashes and spaces dropped, `O` read as
//! `0` and `I`/`L` as `1`. A normalised code of 16 alphabet symbols must
//! carry its check symbol (so an imported code of that shape must too);
//! imported pre-printed codes of another shape are taken as they are (6 to
//! 32 letters and digits).

use sha2::{Digest, Sha256};

use crate::random::{RandomError, Source};

/// Crockford's base-32 alphabet.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a minted code, check symbol included.
pub const MINTED_LEN: usize = 16;
/// Shortest imported code.
pub const MIN_LEN: usize = 6;
/// Longest code (imported or typed, after normalising).
pub const MAX_LEN: usize = 32;

/// Why a presented code was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not 6 to 32 letters and digits (dashes and spaces aside).
    #[error("a certificate code is 6 to 32 letters and digits")]
    Shape,
    /// A minted code's check symbol does not match: a typing mistake.
    #[error("the code's check symbol does not match: mistyped?")]
    Check,
}

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Luhn mod 32 over the values of `payload`: the symbol that makes the
/// whole code check.
fn check_value(payload: &[u32]) -> u32 {
    let mut sum = 0;
    let mut factor = 2;
    for &v in payload.iter().rev() {
        let addend = factor * v;
        sum += addend / 32 + addend % 32;
        factor = 3 - factor;
    }
    (32 - sum % 32) % 32
}

fn checks(values: &[u32]) -> bool {
    match values.split_last() {
        Some((&last, payload)) => check_value(payload) == last,
        None => false,
    }
}

/// A typed or imported code in its one stored form, checked.
pub fn normalise(raw: &str) -> Result<String, CodeError> {
    if raw.len() > 4 * MAX_LEN {
        return Err(CodeError::Shape);
    }
    let mut out = String::with_capacity(MAX_LEN);
    for c in raw.chars() {
        match c.to_ascii_uppercase() {
            '-' | ' ' => {}
            'O' => out.push('0'),
            'I' | 'L' => out.push('1'),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => return Err(CodeError::Shape),
        }
    }
    if !(MIN_LEN..=MAX_LEN).contains(&out.len()) {
        return Err(CodeError::Shape);
    }
    if out.len() == MINTED_LEN {
        let values: Option<Vec<u32>> = out.bytes().map(value).collect();
        if let Some(values) = values
            && !checks(&values)
        {
            return Err(CodeError::Check);
        }
    }
    Ok(out)
}

/// A new code from `source`, normalised (grouping is for display).
pub fn mint(source: Source) -> Result<String, RandomError> {
    let mut buf = [0u8; MINTED_LEN - 1];
    source(&mut buf)?;
    // 256 is a multiple of 32: the low five bits are uniform.
    let mut values: Vec<u32> = buf.iter().map(|b| u32::from(b & 31)).collect();
    values.push(check_value(&values));
    Ok(values
        .iter()
        .map(|&v| char::from(ALPHABET[v as usize]))
        .collect())
}

/// `XXXX-XXXX-…` for print and display.
pub fn grouped(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The stored digest of a normalised code (hex SHA-256).
pub fn digest(code: &str) -> String {
    Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The last four symbols, the only part of a code ever shown again.
pub fn tail(code: &str) -> String {
    let n = code.len();
    code[n.saturating_sub(4)..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{failing, system};

    #[test]
    fn minted_codes_check_and_survive_typing_habits() {
        let a = mint(system).unwrap();
        assert_eq!(a.len(), MINTED_LEN);
        assert_ne!(a, mint(system).unwrap());
        assert_eq!(normalise(&a).unwrap(), a);
        // Lower case, grouped, with spaces: the same code.
        let typed = grouped(&a).to_lowercase().replace('-', " - ");
        assert_eq!(normalise(&typed).unwrap(), a);
        assert!(mint(failing).is_err());
    }

    #[test]
    fn every_single_symbol_mistake_and_adjacent_swap_is_caught() {
        let code = mint(system).unwrap();
        let bytes = code.as_bytes();
        for i in 0..bytes.len() {
            for &other in ALPHABET.iter().filter(|&&a| a != bytes[i]) {
                let mut typo = bytes.to_vec();
                typo[i] = other;
                let typo = String::from_utf8(typo).unwrap();
                assert_eq!(normalise(&typo), Err(CodeError::Check), "{typo}");
            }
        }
        for i in 0..bytes.len() - 1 {
            if bytes[i] == bytes[i + 1] {
                continue;
            }
            let mut swap = bytes.to_vec();
            swap.swap(i, i + 1);
            let swap = String::from_utf8(swap).unwrap();
            // Luhn mod N misses only the swap of the two symbols whose values
            // sum to N - 1 under doubling; for 32 that is 0 and 31 ("0Z").
            let pair = [bytes[i], bytes[i + 1]];
            if pair != *b"0Z" && pair != *b"Z0" {
                assert_eq!(normalise(&swap), Err(CodeError::Check), "{swap}");
            }
        }
    }

    #[test]
    fn imported_codes_and_bad_shapes() {
        assert_eq!(normalise("gift-2024-0071").unwrap(), "G1FT20240071");
        assert_eq!(normalise("abc12"), Err(CodeError::Shape));
        assert_eq!(normalise("ABC_123"), Err(CodeError::Shape));
        assert_eq!(normalise(&"A".repeat(33)), Err(CodeError::Shape));
        assert_eq!(normalise(&"-".repeat(1000)), Err(CodeError::Shape));
        assert_eq!(tail("ABCDEFGH"), "EFGH");
        assert_eq!(digest("ABC").len(), 64);
        assert_eq!(grouped("ABCDEFGHJ"), "ABCD-EFGH-J");
    }
}
