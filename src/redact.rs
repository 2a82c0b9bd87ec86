//! Types that cannot leak what they hold into logs.
//!
//! A card number prints as its last four digits; a secret prints as
//! `[redacted]`. Both `Debug` and `Display` redact, and neither implements
//! `Serialize`, so the only way to the clear value is a deliberate
//! `expose()` call that a reviewer can grep for.

use std::fmt;

/// A loyalty card number. Shown as `****1234`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CardNumber(String);

impl CardNumber {
    /// Wraps a card number.
    pub fn new(number: impl Into<String>) -> Self {
        CardNumber(number.into())
    }

    /// The masked form, safe for logs, events and receipts.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        // Short numbers show less, so a 4-digit number is not shown whole.
        let shown = if chars.len() > 8 { 4 } else { chars.len() / 3 };
        let tail: String = chars[chars.len() - shown..].iter().collect();
        format!("****{tail}")
    }

    /// The clear number, for the ledger lookup only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A secret: a card's secret code, raw track data, an API token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear value, for verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Serialises a [`Secret`] (or an `Option` of one) in the clear, for the
/// central ledger's wire only: `Secret` has no `Serialize` of its own, so
/// nothing else (API replies, logs) can write one by accident. Use as
/// `#[serde(serialize_with = "crate::redact::expose")]`.
pub fn expose<T: Exposed, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    v.expose_to(s)
}

/// What [`expose`] can write.
pub trait Exposed {
    /// Writes the clear value.
    fn expose_to<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
}

impl Exposed for Secret {
    fn expose_to<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<T: Exposed> Exposed for Option<T> {
    fn expose_to<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Some(v) => v.expose_to(s),
            None => s.serialize_none(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for CardNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(CardNumber)
    }
}

/// Constant-time equality, so comparing a guess with a secret leaks no
/// timing about how many leading bytes were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    // `subtle` answers false for different lengths at once: the length of
    // a token or hash is not the secret, its bytes are.
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_show_only_the_tail() {
        let c = CardNumber::new("6035123412341234");
        assert_eq!(c.to_string(), "****1234");
        assert_eq!(format!("{c:?}"), "CardNumber(****1234)");
        assert!(!format!("{c} {c:?} {c:#?}").contains("60351234"));
        assert_eq!(CardNumber::new("1234").masked(), "****4");
        assert_eq!(CardNumber::new("").masked(), "****");
        assert_eq!(CardNumber::new("ав").masked(), "****");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("4711");
        assert!(!format!("{s} {s:?} {s:#?}").contains("4711"));
        assert_eq!(s.expose(), "4711");
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
