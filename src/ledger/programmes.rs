//! Several programmes on one set of books (seed 004: "the bonus account is
//! opened under one of the programmes").
//!
//! Each account belongs to one programme (`accounts.programme`; the empty
//! string is the default programme, `[ledger.programme]`, so accounts made
//! before programmes existed keep theirs whatever its name). A ledger holds
//! every programme it knows and the ones its till serves; an account of a
//! programme the till does not serve is refused, so no programme's points
//! are spent or earned under another's rules.

use std::sync::Arc;

use super::db::{Db, DbError, args};
use super::rules::Programme;

/// Most programmes one ledger knows (the default one included).
pub const MAX_PROGRAMMES: usize = 32;

/// Why a set of programmes or a choice among them is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgrammeError {
    /// Two programmes share a name (the name is the programme's id).
    #[error("programme \"{0}\" is defined twice (names identify programmes)")]
    Duplicate(String),
    /// A name that no programme has.
    #[error("no programme is named \"{0}\"")]
    Unknown(String),
    /// More than [`MAX_PROGRAMMES`].
    #[error("at most {MAX_PROGRAMMES} programmes")]
    TooMany,
    /// A programme this till does not serve.
    #[error("the account belongs to programme \"{0}\", which this till does not serve")]
    NotServed(String),
}

/// The programmes a ledger knows, the ones its till serves (the first is
/// the till's own: new cards join it unless a card range routes them
/// elsewhere) and the card ranges that route a card to its programme.
#[derive(Debug, Clone, PartialEq)]
pub struct Programmes {
    /// `[0]` is the default programme.
    all: Vec<Arc<Programme>>,
    /// Indices into `all`, never empty.
    served: Vec<usize>,
    /// Leading digits and the programme (index) they route to, longest
    /// prefix first.
    routes: Vec<(String, usize)>,
}

impl Programmes {
    /// One programme, served: the ledger as it was before programmes.
    pub fn single(p: Programme) -> Self {
        Programmes {
            all: vec![Arc::new(p)],
            served: vec![0],
            routes: Vec::new(),
        }
    }

    /// `default` and `extra` (names unique), of which the till serves
    /// `served` (empty: the default one), with card `routes` (programme
    /// name, leading digits).
    pub fn new(
        default: Programme,
        extra: Vec<Programme>,
        served: &[String],
        routes: &[(String, Vec<String>)],
    ) -> Result<Self, ProgrammeError> {
        let all: Vec<Arc<Programme>> = std::iter::once(default)
            .chain(extra)
            .map(Arc::new)
            .collect();
        if all.len() > MAX_PROGRAMMES {
            return Err(ProgrammeError::TooMany);
        }
        for (i, p) in all.iter().enumerate() {
            if all[..i].iter().any(|q| q.name == p.name) {
                return Err(ProgrammeError::Duplicate(p.name.clone()));
            }
        }
        let index = |name: &str| {
            all.iter()
                .position(|p| p.name == name)
                .ok_or_else(|| ProgrammeError::Unknown(name.to_owned()))
        };
        let mut s = Vec::new();
        for name in served {
            let i = index(name)?;
            if !s.contains(&i) {
                s.push(i);
            }
        }
        if s.is_empty() {
            s.push(0);
        }
        let mut r = Vec::new();
        for (name, prefixes) in routes {
            let i = index(name)?;
            r.extend(prefixes.iter().map(|p| (p.clone(), i)));
        }
        r.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Ok(Programmes {
            all,
            served: s,
            routes: r,
        })
    }

    /// The till's own programme (the first it serves).
    pub fn first(&self) -> &Arc<Programme> {
        &self.all[self.served[0]]
    }

    /// The default programme (`[ledger.programme]`).
    pub fn default_programme(&self) -> &Arc<Programme> {
        &self.all[0]
    }

    /// Every programme, the default first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Programme>> {
        self.all.iter()
    }

    /// Every programme with its stored key (`""` for the default one).
    pub fn keyed(&self) -> impl Iterator<Item = (&str, &Arc<Programme>)> {
        self.all.iter().enumerate().map(|(i, p)| (self.key(i), p))
    }

    /// Whether any programme has levels.
    pub fn any_tiers(&self) -> bool {
        self.all.iter().any(|p| !p.tiers.is_empty())
    }

    /// The names of the programmes the till serves, its own first.
    pub fn served_names(&self) -> Vec<String> {
        self.served
            .iter()
            .map(|&i| self.all[i].name.clone())
            .collect()
    }

    /// The value stored in `accounts.programme` for programme `i`.
    fn key(&self, i: usize) -> &str {
        if i == 0 { "" } else { &self.all[i].name }
    }

    /// The programme index an `accounts.programme` value names; a name no
    /// longer configured is `Err` with that name.
    fn of_key(&self, key: &str) -> Result<usize, ProgrammeError> {
        if key.is_empty() {
            return Ok(0);
        }
        self.all
            .iter()
            .position(|p| p.name == key)
            .ok_or_else(|| ProgrammeError::NotServed(key.to_owned()))
    }

    /// The programme of an account stored with `key`, if the till serves
    /// it.
    pub fn served_key(&self, key: &str) -> Result<&Arc<Programme>, ProgrammeError> {
        let i = self.of_key(key)?;
        if self.served.contains(&i) {
            Ok(&self.all[i])
        } else {
            Err(ProgrammeError::NotServed(self.all[i].name.clone()))
        }
    }

    /// Where a new account joins, as its stored key and rules: the
    /// programme `name` when given (it must be served), else the one the
    /// card's range routes to (served), else the till's own.
    pub fn for_new(
        &self,
        name: Option<&str>,
        card: Option<&str>,
    ) -> Result<(String, Arc<Programme>), ProgrammeError> {
        let i = match name {
            Some(n) => {
                let i = self
                    .all
                    .iter()
                    .position(|p| p.name == n)
                    .ok_or_else(|| ProgrammeError::Unknown(n.to_owned()))?;
                if !self.served.contains(&i) {
                    return Err(ProgrammeError::NotServed(n.to_owned()));
                }
                i
            }
            None => match card.and_then(|c| self.route(c)) {
                Some(i) if !self.served.contains(&i) => {
                    return Err(ProgrammeError::NotServed(self.all[i].name.clone()));
                }
                Some(i) => i,
                None => self.served[0],
            },
        };
        Ok((self.key(i).to_owned(), self.all[i].clone()))
    }

    /// The programme a card number's range routes to, if any.
    fn route(&self, card: &str) -> Option<usize> {
        self.routes
            .iter()
            .find(|(p, _)| card.starts_with(p.as_str()))
            .map(|&(_, i)| i)
    }

    /// The same programmes, served as `served` (names; empty: the default
    /// one): the central service narrows its set to what a till names.
    pub fn serving(&self, served: &[String]) -> Result<Self, ProgrammeError> {
        let mut s = Vec::new();
        for name in served {
            let i = self
                .all
                .iter()
                .position(|p| &p.name == name)
                .ok_or_else(|| ProgrammeError::Unknown(name.clone()))?;
            if !s.contains(&i) {
                s.push(i);
            }
        }
        if s.is_empty() {
            s.push(0);
        }
        Ok(Programmes {
            all: self.all.clone(),
            served: s,
            routes: self.routes.clone(),
        })
    }

    /// The stored programme key of `account`, in the caller's transaction.
    pub fn account_key(db: &dyn Db, account: i64) -> Result<String, DbError> {
        db.query_row(
            "SELECT programme FROM accounts WHERE id = ?1",
            args![account],
            |r| r.get(0),
        )
    }

    /// The rules of `account`'s programme, in the caller's transaction;
    /// `Ok(Err)` when the till does not serve it.
    pub fn of_account(
        &self,
        db: &dyn Db,
        account: i64,
    ) -> Result<Result<Arc<Programme>, ProgrammeError>, DbError> {
        if self.all.len() == 1 {
            // One programme: every account is its own; no read.
            return Ok(Ok(self.all[0].clone()));
        }
        let key = Self::account_key(db, account)?;
        Ok(self.served_key(&key).cloned())
    }

    /// [`Programmes::of_account`] for an account whose stored key
    /// (`accounts.programme`) the caller has read already.
    pub fn of_stored_key(&self, key: &str) -> Result<Arc<Programme>, ProgrammeError> {
        if self.all.len() == 1 {
            return Ok(self.all[0].clone());
        }
        self.served_key(key).cloned()
    }
}

/// The HTTP header in which a till names the programmes it serves to the
/// central service.
pub const SERVES_HEADER: &str = "x-posbridge-programmes";

/// `names` as the [`SERVES_HEADER`] value: each name percent-encoded
/// (UTF-8; only `A-Z a-z 0-9 - _ . ~` stay as they are), joined by commas.
pub fn header_value(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            n.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The names a [`SERVES_HEADER`] value carries; `None` when it is not one
/// [`header_value`] writes (bad escapes, not UTF-8, more than
/// [`MAX_PROGRAMMES`] names).
pub fn from_header(v: &str) -> Option<Vec<String>> {
    if v.is_empty() {
        return Some(Vec::new());
    }
    let parts: Vec<&str> = v.split(',').collect();
    if parts.len() > MAX_PROGRAMMES {
        return None;
    }
    parts
        .into_iter()
        .map(|p| {
            let b = p.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_served_names_travel_in_a_header_and_back() {
        let names = vec!["Кино".to_owned(), "bar, 2".to_owned(), "x%y".to_owned()];
        let v = header_value(&names);
        assert!(v.is_ascii(), "{v}");
        assert_eq!(from_header(&v).unwrap(), names);
        assert_eq!(from_header("").unwrap(), Vec::<String>::new());
        assert_eq!(from_header("%D0"), None, "not UTF-8");
        assert_eq!(from_header("%Z1"), None);
        assert_eq!(from_header("%4"), None);
    }

    use super::*;

    fn named(n: &str) -> Programme {
        Programme {
            name: n.into(),
            ..Programme::default()
        }
    }

    #[test]
    fn names_are_unique_and_must_resolve() {
        assert_eq!(
            Programmes::new(named("кино"), vec![named("кино")], &[], &[]),
            Err(ProgrammeError::Duplicate("кино".into()))
        );
        assert_eq!(
            Programmes::new(named("кино"), vec![named("бар")], &["ресторан".into()], &[]),
            Err(ProgrammeError::Unknown("ресторан".into()))
        );
        assert_eq!(
            Programmes::new(
                named("кино"),
                vec![],
                &[],
                &[("бар".into(), vec!["7".into()])]
            ),
            Err(ProgrammeError::Unknown("бар".into()))
        );
    }

    #[test]
    fn new_accounts_join_the_named_the_routed_or_the_tills_own() {
        let ps = Programmes::new(
            named("кино"),
            vec![named("бар"), named("ресторан")],
            &["бар".into(), "кино".into()],
            &[
                ("кино".into(), vec!["70".into()]),
                ("ресторан".into(), vec!["71".into()]),
            ],
        )
        .unwrap();
        assert_eq!(ps.first().name, "бар");
        // The default programme is stored as "".
        assert_eq!(ps.for_new(Some("кино"), None).unwrap().0, "");
        assert_eq!(ps.for_new(None, Some("7012")).unwrap().0, "");
        assert_eq!(ps.for_new(None, Some("5555")).unwrap().0, "бар");
        assert_eq!(
            ps.for_new(None, Some("7100")),
            Err(ProgrammeError::NotServed("ресторан".into()))
        );
        assert_eq!(
            ps.for_new(Some("ресторан"), None),
            Err(ProgrammeError::NotServed("ресторан".into()))
        );
        assert_eq!(ps.served_key("").unwrap().name, "кино");
        assert_eq!(
            ps.served_key("ресторан"),
            Err(ProgrammeError::NotServed("ресторан".into()))
        );
        assert_eq!(
            ps.served_key("gone"),
            Err(ProgrammeError::NotServed("gone".into()))
        );
    }
}
