//! What an office looks up that a till never does: customers by part of a
//! name, phone, e-mail or card number, an account's open lots, and its
//! cards with their full numbers (for a server that blocks one; never for
//! display).
//!
//! The SQL is the subset SQLite and PostgreSQL share (`LIKE … ESCAPE`,
//! `lower`, `EXISTS`), so the central service serves the same pages.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{AccountError, Accounts, normalise_phone};
use crate::ledger::db::{DbError, args};
use crate::ledger::embedded::points;

/// The most hits one search page returns.
pub const SEARCH_MAX_LIMIT: u32 = 100;
/// The longest query accepted, in characters: a name, an address or a
/// card number is shorter; a longer one is a mistake or an attack.
pub const SEARCH_MAX_QUERY: usize = 64;
/// The most open lots one call returns (an account with more has them
/// summed in its balance all the same).
pub const LOTS_MAX: i64 = 500;

/// One customer found by [`Accounts::search`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchHit {
    /// Account id.
    pub account: i64,
    /// `active`, `pending`, `blocked`.
    pub status: String,
    /// Name.
    pub name: Option<String>,
    /// Phone (E.164).
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// The account's cards, masked.
    pub cards_masked: Vec<String>,
}

/// One page of search results, in account id order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchPage {
    /// The customers.
    pub hits: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next_cursor: Option<i64>,
}

/// An open lot: points accrued together that burn together.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LotView {
    /// Lot id.
    pub lot: i64,
    /// Accrued.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Not yet spent or expired.
    #[serde(with = "rust_decimal::serde::str")]
    pub remaining: Decimal,
    /// When what remains burns (RFC 3339, UTC); `None`: never.
    pub expires_at: Option<String>,
    /// When it was accrued.
    pub created_at: String,
}

/// A card of an account with its full number: for a server acting on it
/// (block, unblock), never for display.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CardRow {
    /// The full number.
    pub number: String,
    /// `physical` or `virtual`.
    pub kind: String,
    /// `active`, `blocked`, `lost`.
    pub status: String,
}

/// `s` as a `LIKE` operand matching itself literally: `\`, `%` and `_`
/// are escaped with `\` (the statements say `ESCAPE '\'`).
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The patterns a query searches with: `(text, card, phone)`. `text` is
/// a contains-pattern on the lowercased name and e-mail; `card` a
/// suffix-pattern on card numbers when the query is 4 or more digits
/// (spaces and dashes dropped), so the last four find a card and so does
/// the whole number; `phone` the E.164 form when the query reads as a
/// phone, else a contains-pattern of its digits.
pub fn patterns(query: &str) -> (String, Option<String>, Option<String>) {
    let q = query.trim();
    let text = format!("%{}%", like_escape(&q.to_lowercase()));
    let digits: String = q
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '+'))
        .collect();
    let all_digits = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    let card = (all_digits && digits.len() >= 4).then(|| format!("%{digits}"));
    let phone = if let Some(p) = normalise_phone(q) {
        Some(like_escape(&p))
    } else if all_digits && digits.len() >= 4 {
        Some(format!("%{digits}%"))
    } else {
        None
    };
    (text, card, phone)
}

impl Accounts {
    /// Customers whose name, e-mail or phone contains `query`, or one of
    /// whose cards ends with it (4+ digits), with ids above `cursor`, at
    /// most `limit` (1..=[`SEARCH_MAX_LIMIT`]). A query that is empty or
    /// longer than [`SEARCH_MAX_QUERY`] is refused.
    pub async fn search(
        &self,
        query: String,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<SearchPage, AccountError> {
        let q = query.trim();
        if q.is_empty() || q.chars().count() > SEARCH_MAX_QUERY {
            return Err(AccountError::BadQuery(SEARCH_MAX_QUERY));
        }
        let (text, card, phone) = patterns(q);
        let limit = limit.clamp(1, SEARCH_MAX_LIMIT);
        let after = cursor.unwrap_or(0);
        let page = self
            .books
            .read(move |db| {
                // One row more than asked tells whether there is a next page.
                // The CASTs type the NULL tests' parameters: PostgreSQL
                // cannot infer a type from `$3 IS NOT NULL` alone.
                let mut hits = db.query_map(
                    "SELECT a.id, a.status, a.name, a.phone, a.email FROM accounts a
                     WHERE a.id > ?1 AND (
                        lower(a.name) LIKE ?2 ESCAPE '\\'
                        OR lower(a.email) LIKE ?2 ESCAPE '\\'
                        OR (CAST(?3 AS TEXT) IS NOT NULL AND a.phone LIKE ?3 ESCAPE '\\')
                        OR (CAST(?4 AS TEXT) IS NOT NULL AND EXISTS (
                            SELECT 1 FROM cards c
                            WHERE c.account_id = a.id AND c.number LIKE ?4 ESCAPE '\\')))
                     ORDER BY a.id LIMIT ?5",
                    args![after, text, phone, card, i64::from(limit) + 1],
                    |r| {
                        Ok(SearchHit {
                            account: r.get(0)?,
                            status: r.get(1)?,
                            name: r.get(2)?,
                            phone: r.get(3)?,
                            email: r.get(4)?,
                            cards_masked: Vec::new(),
                        })
                    },
                )?;
                let more = hits.len() > limit as usize;
                hits.truncate(limit as usize);
                for h in &mut hits {
                    h.cards_masked = db.query_map(
                        "SELECT number FROM cards WHERE account_id = ?1 ORDER BY number",
                        args![h.account],
                        |r| Ok(crate::redact::CardNumber::new(r.get::<String>(0)?).masked()),
                    )?;
                }
                let next_cursor = if more {
                    hits.last().map(|h| h.account)
                } else {
                    None
                };
                Ok(SearchPage { hits, next_cursor })
            })
            .await?;
        Ok(page)
    }

    /// An account's lots that still hold points, soonest to burn first
    /// (those that never burn last), at most [`LOTS_MAX`].
    pub async fn lots(&self, account: i64) -> Result<Vec<LotView>, AccountError> {
        let lots = self
            .books
            .read(move |db| {
                if !exists(db, account)? {
                    return Ok(None);
                }
                db.query_map(
                    "SELECT id, amount, remaining, expires_at, created_at FROM lots
                     WHERE account_id = ?1 AND remaining > 0
                     ORDER BY CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, id
                     LIMIT ?2",
                    args![account, LOTS_MAX],
                    |r| {
                        Ok(LotView {
                            lot: r.get(0)?,
                            amount: points(r.get(1)?),
                            remaining: points(r.get(2)?),
                            expires_at: r.get(3)?,
                            created_at: r.get(4)?,
                        })
                    },
                )
                .map(Some)
            })
            .await?;
        lots.ok_or(AccountError::UnknownAccount)
    }

    /// An account's cards with their full numbers, in issue order.
    pub async fn cards(&self, account: i64) -> Result<Vec<CardRow>, AccountError> {
        let cards = self
            .books
            .read(move |db| {
                if !exists(db, account)? {
                    return Ok(None);
                }
                db.query_map(
                    "SELECT number, kind, status FROM cards WHERE account_id = ?1 ORDER BY rowid",
                    args![account],
                    |r| {
                        Ok(CardRow {
                            number: r.get(0)?,
                            kind: r.get(1)?,
                            status: r.get(2)?,
                        })
                    },
                )
                .map(Some)
            })
            .await?;
        cards.ok_or(AccountError::UnknownAccount)
    }
}

fn exists(db: &dyn crate::ledger::db::Db, account: i64) -> Result<bool, DbError> {
    Ok(db
        .query_opt(
            "SELECT id FROM accounts WHERE id = ?1",
            args![account],
            |r| r.get::<i64>(0),
        )?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_escape("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(like_escape("Анна"), "Анна");
        let (text, card, phone) = patterns("a%b");
        assert_eq!(text, "%a\\%b%");
        assert_eq!((card, phone), (None, None));
    }

    #[test]
    fn digits_search_cards_by_suffix_and_phones() {
        let (_, card, phone) = patterns("1234");
        assert_eq!(card.as_deref(), Some("%1234"));
        assert_eq!(phone.as_deref(), Some("%1234%"));
        let (_, card, phone) = patterns("+7 916 123-45-67");
        assert_eq!(card.as_deref(), Some("%79161234567"));
        assert_eq!(phone.as_deref(), Some("+79161234567"));
        let (_, card, _) = patterns("123");
        assert_eq!(card, None);
    }

    #[tokio::test]
    async fn search_finds_by_name_phone_and_card_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("s.db")).unwrap();
        let accounts = Accounts::new(store, super::super::Settings::default());
        let programme = crate::ledger::rules::Programme::default();
        for (i, name) in ["Anna_1", "Anna%2", "Boris"].iter().enumerate() {
            accounts
                .register(
                    &programme,
                    super::super::Registration {
                        phone: Some(format!("+7916000000{i}")),
                        name: Some((*name).into()),
                        card_number: Some(format!("60350000111{i}4321")),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
        let p = accounts.search("anna".into(), None, 1).await.unwrap();
        assert_eq!(p.hits.len(), 1);
        let next = accounts
            .search("anna".into(), p.next_cursor, 1)
            .await
            .unwrap();
        assert_eq!(next.hits.len(), 1);
        assert_eq!(next.next_cursor, None);
        // `%` and `_` are literal: only Anna%2 contains "a%".
        let p = accounts.search("a%".into(), None, 10).await.unwrap();
        assert_eq!(p.hits.len(), 1);
        assert_eq!(p.hits[0].name.as_deref(), Some("Anna%2"));
        let p = accounts.search("a_".into(), None, 10).await.unwrap();
        assert_eq!(p.hits[0].name.as_deref(), Some("Anna_1"));
        assert_eq!(p.hits.len(), 1);
        // Last four digits of a card: all three; the whole number: one.
        let p = accounts.search("4321".into(), None, 10).await.unwrap();
        assert_eq!(p.hits.len(), 3);
        let p = accounts
            .search("6035000011124321".into(), None, 10)
            .await
            .unwrap();
        assert_eq!(p.hits.len(), 1);
        assert_eq!(p.hits[0].name.as_deref(), Some("Boris"));
        assert!(!p.hits[0].cards_masked[0].contains("00001112"));
        let p = accounts
            .search("+7 916 000-00-01".into(), None, 10)
            .await
            .unwrap();
        assert_eq!(p.hits[0].name.as_deref(), Some("Anna%2"));
        assert!(matches!(
            accounts.search(" ".into(), None, 10).await,
            Err(AccountError::BadQuery(_))
        ));
    }
}
