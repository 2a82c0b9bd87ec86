//! What an office looks up that a till never does: customers by part of a
//! name, phone, e-mail or card number, an account's open lots, and its
//! cards with their full numbers (for a server that blocks one; never for
//! display).
//!
//! The SQL is the subset SQLite and PostgreSQL share (`LIKE … ESCAPE`,
//! `EXISTS`, `UNION`), so the central service serves the same pages.
//! Names and e-mails are found through the word index
//! ([`super::words`]), phones and e-mails by equality and whole card
//! numbers by their key: only a query of 4 to 12 bare digits (the end of a
//! card, part of a phone) reads a whole index.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::words::{self, prefix_end};
use super::{AccountError, Accounts, normalise_email, normalise_phone};
use crate::ledger::db::{DbError, ToValue, Value, args};
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

/// A committed sale found by its receipt id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SaleFound {
    /// The sale's transaction.
    pub transaction: i64,
    /// The account it was booked on.
    pub account: i64,
    /// When (RFC 3339, UTC).
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

/// The most words of a query searched together (each one more lookup).
const QUERY_WORDS: usize = 3;
/// A card number this long or longer is looked up whole, by its key.
const WHOLE_CARD: usize = 13;

/// What a query searches for.
#[derive(Debug, Default, PartialEq)]
pub struct Query {
    /// Word prefixes of a name or e-mail that must all match (the
    /// query's first [`QUERY_WORDS`] words).
    pub words: Vec<String>,
    /// A phone, when the query reads as one (E.164).
    pub phone: Option<String>,
    /// An e-mail address, when the query has an `@`.
    pub email: Option<String>,
    /// A whole card number ([`WHOLE_CARD`] digits or more).
    pub card: Option<String>,
    /// 4 to 12 digits: the end of a card number, or part of a phone
    /// (`LIKE` patterns: `%digits` and `%digits%`).
    pub digits: Option<(String, String)>,
}

/// Reads a query: its words (spaces, dashes and other punctuation
/// separate them; `%` and `_` are punctuation like any other), and, when
/// it is a phone, an e-mail or digits, those.
pub fn parse_query(query: &str) -> Query {
    let q = query.trim();
    let digits: String = q
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '+'))
        .collect();
    let all_digits = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    let phone = normalise_phone(q);
    let mut words: Vec<String> = Vec::new();
    for w in words::words(q) {
        if !words.contains(&w) && words.len() < QUERY_WORDS {
            words.push(w);
        }
    }
    Query {
        words: if all_digits { Vec::new() } else { words },
        email: q.contains('@').then(|| normalise_email(q)).flatten(),
        card: (all_digits && digits.len() >= WHOLE_CARD).then(|| digits.clone()),
        digits: (all_digits && (4..WHOLE_CARD).contains(&digits.len()) && phone.is_none())
            .then(|| (format!("%{digits}"), format!("%{digits}%"))),
        phone,
    }
}

/// The statement and its parameters for one page of `q` after `after`:
/// the ids each part of the query finds, united, then the accounts in id
/// order. `None` when the query looks for nothing.
fn search_sql(q: &Query, after: i64, limit: u32) -> Option<(String, Vec<Value>)> {
    let mut params = vec![Value::Int(after)];
    let next = |v: Value, params: &mut Vec<Value>| {
        params.push(v);
        format!("?{}", params.len())
    };
    let mut arms: Vec<String> = Vec::new();
    if let Some((first, rest)) = q.words.split_first() {
        let lo = next(Value::Text(first.clone()), &mut params);
        let hi = next(Value::Text(prefix_end(first)), &mut params);
        let mut arm = format!(
            "SELECT w0.account_id FROM account_words w0
             WHERE w0.word >= {lo} AND w0.word < {hi} AND w0.account_id > ?1"
        );
        for (i, w) in rest.iter().enumerate() {
            let lo = next(Value::Text(w.clone()), &mut params);
            let hi = next(Value::Text(prefix_end(w)), &mut params);
            let t = format!("w{}", i + 1);
            arm.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM account_words {t}
                   WHERE {t}.account_id = w0.account_id AND {t}.word >= {lo} AND {t}.word < {hi})"
            ));
        }
        arms.push(arm);
    }
    if let Some(p) = &q.phone {
        let m = next(Value::Text(p.clone()), &mut params);
        arms.push(format!(
            "SELECT id FROM accounts WHERE phone = {m} AND id > ?1"
        ));
    }
    if let Some(e) = &q.email {
        let m = next(Value::Text(e.clone()), &mut params);
        arms.push(format!(
            "SELECT id FROM accounts WHERE email = {m} AND id > ?1"
        ));
    }
    if let Some(c) = &q.card {
        let m = next(Value::Text(c.clone()), &mut params);
        arms.push(format!(
            "SELECT account_id FROM cards WHERE number = {m} AND account_id > ?1"
        ));
    }
    if let Some((card_end, phone_part)) = &q.digits {
        let c = next(Value::Text(card_end.clone()), &mut params);
        let p = next(Value::Text(phone_part.clone()), &mut params);
        arms.push(format!(
            "SELECT account_id FROM cards WHERE number LIKE {c} ESCAPE '\\' AND account_id > ?1"
        ));
        arms.push(format!(
            "SELECT id FROM accounts WHERE phone LIKE {p} ESCAPE '\\' AND id > ?1"
        ));
    }
    if arms.is_empty() {
        return None;
    }
    // One row more than asked tells whether there is a next page.
    let n = next(Value::Int(i64::from(limit) + 1), &mut params);
    let sql = format!(
        "SELECT a.id, a.status, a.name, a.phone, a.email FROM accounts a
         WHERE a.id IN ({}) ORDER BY a.id LIMIT {n}",
        arms.join(" UNION ")
    );
    Some((sql, params))
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
        let limit = limit.clamp(1, SEARCH_MAX_LIMIT);
        let Some((sql, params)) = search_sql(&parse_query(q), cursor.unwrap_or(0), limit) else {
            return Ok(SearchPage {
                hits: Vec::new(),
                next_cursor: None,
            });
        };
        let page = self
            .books
            .read(move |db| {
                let args: Vec<&dyn ToValue> = params.iter().map(|v| v as &dyn ToValue).collect();
                let mut hits = db.query_map(&sql, &args, |r| {
                    Ok(SearchHit {
                        account: r.get(0)?,
                        status: r.get(1)?,
                        name: r.get(2)?,
                        phone: r.get(3)?,
                        email: r.get(4)?,
                        cards_masked: Vec::new(),
                    })
                })?;
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

    /// The latest sale with `receipt_id` (the refund's own look-up, by the
    /// `txns_receipt` index).
    pub async fn find_sale(&self, receipt_id: String) -> Result<Option<SaleFound>, AccountError> {
        if receipt_id.is_empty() || receipt_id.chars().count() > 128 {
            return Err(AccountError::BadQuery(128));
        }
        Ok(self
            .books
            .read(move |db| {
                db.query_opt(
                    "SELECT id, account_id, created_at FROM txns
                     WHERE kind = 'sale' AND receipt_id = ?1 ORDER BY id DESC LIMIT 1",
                    args![receipt_id],
                    |r| {
                        Ok(SaleFound {
                            transaction: r.get(0)?,
                            account: r.get(1)?,
                            created_at: r.get(2)?,
                        })
                    },
                )
            })
            .await?)
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
    fn queries_are_read_as_words_phones_addresses_and_digits() {
        let q = parse_query("Иван ИВАНОВ иван петров сидоров");
        assert_eq!(q.words, ["иван", "иванов", "петров"]);
        assert_eq!(
            (q.phone, q.email, q.card, q.digits),
            (None, None, None, None)
        );
        // `%` and `_` separate words like any punctuation.
        assert_eq!(parse_query("a%b").words, ["a", "b"]);
        let q = parse_query("1234");
        assert!(q.words.is_empty());
        assert_eq!(q.digits, Some(("%1234".into(), "%1234%".into())));
        let q = parse_query("+7 916 123-45-67");
        assert_eq!(q.phone.as_deref(), Some("+79161234567"));
        assert_eq!((q.card, q.digits), (None, None));
        assert_eq!(
            parse_query("6035 0000 1111 2222").card.as_deref(),
            Some("6035000011112222")
        );
        let q = parse_query("Oleg@Example.ru");
        assert_eq!(q.email.as_deref(), Some("oleg@example.ru"));
        assert_eq!(q.words, ["oleg", "example", "ru"]);
        assert_eq!(parse_query("123").digits, None);
        assert!(search_sql(&parse_query("---"), 0, 10).is_none());
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
        // Words match by their start, whatever the case or punctuation.
        let p = accounts.search("ANN".into(), None, 10).await.unwrap();
        assert_eq!(p.hits.len(), 2);
        let p = accounts.search("anna 2".into(), None, 10).await.unwrap();
        assert_eq!(p.hits.len(), 1);
        assert_eq!(p.hits[0].name.as_deref(), Some("Anna%2"));
        let p = accounts.search("nna".into(), None, 10).await.unwrap();
        assert!(p.hits.is_empty(), "a word's middle is not its start");
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
