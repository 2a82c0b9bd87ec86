//! What accounts are made of, checked and minted, apart from any store:
//! phone and e-mail notation, card numbers and their check digits, secrets
//! and code words, and their argon2id hashes.

use argon2::{Algorithm, Argon2, Params, Version};

use super::{AccountError, Settings};
use crate::random::{self, RandomError, Source};
use crate::redact::{Secret, constant_time_eq};

/// `n` characters drawn uniformly enough (16 random bits per character,
/// bias below 0.1 % for alphabets up to 62) from `alphabet`.
pub(super) fn random_from(
    source: Source,
    alphabet: &[u8],
    n: usize,
) -> Result<String, RandomError> {
    if alphabet.is_empty() {
        return Ok(String::new());
    }
    let mut buf = vec![0u8; n * 2];
    source(&mut buf)?;
    Ok(buf
        .chunks(2)
        .map(|c| {
            let i = usize::from(u16::from(c[0]) << 8 | u16::from(c[1])) % alphabet.len();
            char::from(alphabet[i])
        })
        .collect())
}

pub(super) fn random_digits(source: Source, n: usize) -> Result<String, RandomError> {
    random_from(source, b"0123456789", n)
}

pub(super) fn luhn_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

pub(super) fn ean_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// A new virtual card number in the default format (prefix 2990, 16
/// digits, Luhn).
pub fn virtual_number() -> Result<String, RandomError> {
    Settings::default().card.generate(random::system)
}

/// `+7…` from the usual Russian notations; other countries must come with
/// their `+` code.
pub fn normalise_phone(raw: &str) -> Option<String> {
    let plus = raw.trim_start().starts_with('+');
    if raw
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-()".contains(c)))
    {
        return None;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let e164 = match (plus, digits.len(), digits.as_bytes().first()) {
        (false, 11, Some(b'8')) => format!("+7{}", &digits[1..]),
        (false, 11, Some(b'7')) => format!("+{digits}"),
        (false, 10, Some(b'9')) => format!("+7{digits}"),
        (true, 8..=15, Some(d)) if *d != b'0' => format!("+{digits}"),
        _ => return None,
    };
    Some(e164)
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && e.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// An e-mail address as the ledger stores it (trimmed, lower case), if it
/// is one: the back office checks its forms and imports by this.
pub fn normalise_email(raw: &str) -> Option<String> {
    email_of(raw).ok()
}

pub(super) fn phone_of(raw: &str) -> Result<String, AccountError> {
    normalise_phone(raw).ok_or(AccountError::BadPhone)
}

pub(super) fn email_of(raw: &str) -> Result<String, AccountError> {
    let e = raw.trim();
    if valid_email(e) {
        Ok(e.to_lowercase())
    } else {
        Err(AccountError::BadEmail)
    }
}

pub(super) fn check_card_number(n: &str) -> Result<(), AccountError> {
    if (4..=32).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AccountError::BadCardNumber)
    }
}

pub(super) fn check_secret(s: &Secret) -> Result<(), AccountError> {
    let s = s.expose();
    if (4..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(AccountError::BadSecret)
    }
}

/// A code word as compared: trimmed, lower case, so a cashier's typing
/// of "Ромашка " matches "ромашка".
pub(super) fn code_word_of(w: &Secret) -> Result<String, AccountError> {
    let w = w.expose().trim().to_lowercase();
    if (2..=64).contains(&w.chars().count()) && !w.chars().any(char::is_control) {
        Ok(w)
    } else {
        Err(AccountError::BadCodeWord)
    }
}

/// A group name: trimmed, 1 to 64 characters, none of them control ones.
pub fn group_name(raw: &str) -> Result<String, AccountError> {
    let n = raw.trim();
    if (1..=64).contains(&n.chars().count()) && !n.chars().any(char::is_control) {
        Ok(n.to_owned())
    } else {
        Err(AccountError::BadGroupName)
    }
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `argon2id$<salt hex>$<hash hex>`.
pub(super) fn hash_secret(secret: &str, salt: [u8; 16], memory: &mut [argon2::Block]) -> String {
    let mut out = [0u8; 32];
    // Fixed parameters and lengths: this cannot fail.
    let _ = hasher().hash_password_into_with_memory(secret.as_bytes(), &salt, &mut out, memory);
    format!("argon2id${}${}", hex(&salt), hex(&out))
}

pub(super) fn secret_matches(stored: &str, presented: &str, memory: &mut [argon2::Block]) -> bool {
    let mut parts = stored.split('$');
    let (Some("argon2id"), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Some(salt), Some(hash)) = (unhex(salt), unhex(hash)) else {
        return false;
    };
    let mut out = vec![0u8; hash.len()];
    if hasher()
        .hash_password_into_with_memory(presented.as_bytes(), &salt, &mut out, memory)
        .is_err()
    {
        return false;
    }
    constant_time_eq(&out, &hash)
}

/// [`hash_secret`] with a work area of its own, for callers outside the
/// ledger's hash gate (the central service's terminal keys): the same
/// format and parameters as card secrets. Blocking, about 19 MiB.
pub fn argon2id_hash(secret: &str, salt: [u8; 16]) -> String {
    let mut memory = vec![argon2::Block::default(); Params::DEFAULT.block_count()];
    hash_secret(secret, salt, &mut memory)
}

/// [`secret_matches`] with a work area of its own (see [`argon2id_hash`]);
/// the comparison is constant-time.
pub fn argon2id_matches(stored: &str, presented: &str) -> bool {
    let mut memory = vec![argon2::Block::default(); Params::DEFAULT.block_count()];
    secret_matches(stored, presented, &mut memory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::accounts::{CardFormat, CheckDigit};

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(
            normalise_phone("8 (916) 123-45-67").as_deref(),
            Some("+79161234567")
        );
        assert_eq!(
            normalise_phone("+7 916 123 45 67").as_deref(),
            Some("+79161234567")
        );
        assert_eq!(
            normalise_phone("9161234567").as_deref(),
            Some("+79161234567")
        );
        assert_eq!(
            normalise_phone("+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(normalise_phone("12345"), None);
        assert_eq!(normalise_phone("+7 916 abc"), None);
    }

    #[test]
    fn emails() {
        assert!(valid_email("maria@example.ru"));
        assert!(!valid_email("maria@example"));
        assert!(!valid_email("@example.ru"));
        assert!(!valid_email("ma ria@example.ru"));
    }

    #[test]
    fn virtual_numbers_have_prefix_length_and_luhn() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let n = virtual_number().unwrap();
            assert_eq!(n.len(), 16);
            assert!(n.starts_with("2990"));
            let body = &n[..15];
            assert_eq!(n.chars().last(), Some(luhn_digit(body)));
            seen.insert(n);
        }
        assert!(seen.len() > 190, "numbers must not repeat");
        assert_eq!(luhn_digit("7992739871"), '3');
    }

    #[test]
    fn ean13_check_digits() {
        // Published EAN-13 codes.
        assert_eq!(ean_digit("400638133393"), '1');
        assert_eq!(ean_digit("590123412345"), '7');
        assert_eq!(ean_digit("460123456789"), '3');
        let f = CardFormat {
            prefix: "277".into(),
            length: 13,
            check: CheckDigit::Ean13,
        };
        for _ in 0..50 {
            let n = f.generate(random::system).unwrap();
            assert_eq!(n.len(), 13);
            assert!(n.starts_with("277"));
            assert_eq!(n.chars().last(), Some(ean_digit(&n[..12])));
        }
    }

    #[test]
    fn secrets_follow_length_and_alphabet() {
        let s = random_from(random::system, b"ABC", 12).unwrap();
        assert_eq!(s.len(), 12);
        assert!(s.bytes().all(|b| b"ABC".contains(&b)));
        assert_eq!(random_digits(random::system, 6).unwrap().len(), 6);
    }

    #[test]
    fn code_words_and_group_names() {
        assert_eq!(code_word_of(&Secret::new(" Ромашка ")).unwrap(), "ромашка");
        assert!(code_word_of(&Secret::new("x")).is_err());
        assert_eq!(group_name(" staff ").unwrap(), "staff");
        assert!(group_name("").is_err());
        assert!(group_name("a\nb").is_err());
    }

    #[test]
    fn secrets_hash_with_salt_and_verify() {
        let m = &mut vec![argon2::Block::default(); Params::DEFAULT.block_count()];
        let a = hash_secret("4711", [1; 16], m);
        let b = hash_secret("4711", [2; 16], m);
        assert_ne!(a, b, "salted");
        assert!(!a.contains("4711"));
        assert!(secret_matches(&a, "4711", m));
        assert!(!secret_matches(&a, "4712", m));
        assert!(!secret_matches("garbage", "4711", m));
    }
}
