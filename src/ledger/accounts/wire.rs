//! How the account types travel between the central service and a till:
//! serde helpers for the fields derive cannot spell.
//!
//! [`Secret`] is deliberately not `Serialize` (nothing logs or echoes it by
//! accident); the few fields that must carry one across the wire (a code
//! the till's notifier delivers, a secret a till registers) name these
//! helpers explicitly. The `&'static str` fields (statuses, kinds,
//! channels) are read back as one of their known values, so the types stay
//! what the till's API already matches on.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use crate::redact::Secret;

/// A [`Secret`] as its plain string.
pub(super) mod secret {
    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        s: &Secret,
        ser: S,
    ) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Secret, D::Error> {
        Secret::deserialize(d)
    }
}

/// An optional [`Secret`] as its plain string or null.
pub(super) mod opt_secret {
    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        s: &Option<Secret>,
        ser: S,
    ) -> Result<S::Ok, S::Error> {
        match s {
            Some(s) => ser.serialize_some(s.expose()),
            None => ser.serialize_none(),
        }
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Secret>, D::Error> {
        Option::<Secret>::deserialize(d)
    }
}

/// An update's code word: absent = unchanged (the field is skipped),
/// null = cleared, a string = the new word.
pub(super) mod update_secret {
    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        s: &Option<Option<Secret>>,
        ser: S,
    ) -> Result<S::Ok, S::Error> {
        match s {
            Some(Some(s)) => ser.serialize_some(s.expose()),
            _ => ser.serialize_none(),
        }
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<Secret>>, D::Error> {
        Option::<Secret>::deserialize(d).map(Some)
    }
}

/// A present field as `Some`, so that null reads as `Some(None)`
/// ("clear it") and only an absent field (with `#[serde(default)]`) as
/// `None` ("leave it").
pub(super) fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// One of a field's known words. An alias rather than `&'static str`
/// written out: serde's derive borrows every field it sees spelt `&str`
/// from the input, which would tie the types to `'de: 'static` and keep
/// them from being read from a buffer.
pub type Known = &'static str;

fn one_of<'de, D: Deserializer<'de>>(
    d: D,
    known: &'static [&'static str],
) -> Result<Known, D::Error> {
    let s = String::deserialize(d)?;
    known
        .iter()
        .find(|k| **k == s)
        .copied()
        .ok_or_else(|| D::Error::unknown_variant(&s, known))
}

/// An account's status.
pub(super) fn status<'de, D: Deserializer<'de>>(d: D) -> Result<Known, D::Error> {
    one_of(d, &["active", "pending", "blocked"])
}

/// A card's kind.
pub(super) fn kind<'de, D: Deserializer<'de>>(d: D) -> Result<Known, D::Error> {
    one_of(d, &["physical", "virtual"])
}

/// Where a code goes.
pub(super) fn channel<'de, D: Deserializer<'de>>(d: D) -> Result<Known, D::Error> {
    one_of(d, &["phone", "email"])
}
