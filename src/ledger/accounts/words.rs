//! The search index of customers' names and e-mail addresses: every word,
//! lower-cased by Rust (Unicode, since SQLite's lower() and LIKE fold
//! ASCII only), in `account_words (word, account_id)`. A back office
//! finds "иванов" in "Иван ИВАНОВ" and "oleg" in "oleg@example.ru" by a
//! range on the word's index, not by reading every account: a search
//! stays fast on a million customers on both stores.
//!
//! Every write of an account's name or e-mail calls [`reindex`] in the
//! same transaction.

use crate::ledger::db::{Db, DbError, args};

/// The most words kept of one account (a name and an address have few).
pub const MAX_WORDS: usize = 16;
/// The longest word kept, in characters; longer ones are cut (a prefix
/// search still finds them by their start).
pub const MAX_WORD: usize = 64;

/// The words of `text`: lower-cased, `ё` read as `е` (most people type
/// it so), split on anything that is not a letter or a digit, each at most
/// [`MAX_WORD`] characters.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.to_lowercase()
                .chars()
                .map(|c| if c == 'ё' { 'е' } else { c })
                .take(MAX_WORD)
                .collect()
        })
}

/// The index words of an account: its name's and its e-mail's, without
/// repeats, at most [`MAX_WORDS`].
pub fn account_words(name: Option<&str>, email: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in name.into_iter().chain(email).flat_map(words) {
        if !out.contains(&w) && out.len() < MAX_WORDS {
            out.push(w);
        }
    }
    out
}

/// The exclusive upper bound of the words that start with `prefix`, in
/// the byte order both stores compare `account_words.word` in (SQLite's
/// BINARY, PostgreSQL's `COLLATE "C"`): the prefix followed by the
/// largest character.
pub fn prefix_end(prefix: &str) -> String {
    let mut end = String::with_capacity(prefix.len() + 4);
    end.push_str(prefix);
    end.push(char::MAX);
    end
}

/// Rewrites `account`'s index words from its stored name and e-mail.
pub fn reindex(db: &dyn Db, account: i64) -> Result<(), DbError> {
    let row: Option<(Option<String>, Option<String>)> = db.query_opt(
        "SELECT name, email FROM accounts WHERE id = ?1",
        args![account],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    db.execute(
        "DELETE FROM account_words WHERE account_id = ?1",
        args![account],
    )?;
    let Some((name, email)) = row else {
        return Ok(());
    };
    for w in account_words(name.as_deref(), email.as_deref()) {
        db.execute(
            "INSERT INTO account_words (word, account_id) VALUES (?1, ?2)",
            args![w, account],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_addresses_split_into_lower_case_words() {
        assert_eq!(
            account_words(Some("Иван ИВАНОВ-Петров"), Some("Ivan.P@Example.ru")),
            ["иван", "иванов", "петров", "ivan", "p", "example", "ru"]
        );
        assert_eq!(account_words(Some("Анна  Анна"), None), ["анна"]);
        assert_eq!(
            account_words(Some("Пётр Семёнов"), None),
            ["петр", "семенов"]
        );
        assert!(account_words(None, None).is_empty());
        assert!(prefix_end("ив").as_str() > "иванов");
        assert!(prefix_end("ив").as_str() < "ия");
    }

    proptest! {
        #[test]
        fn any_text_gives_bounded_words_that_lie_within_their_prefix_range(
            name in "\\PC{0,300}",
            email in "\\PC{0,100}",
        ) {
            let ws = account_words(Some(&name), Some(&email));
            prop_assert!(ws.len() <= MAX_WORDS);
            for w in &ws {
                prop_assert!(!w.is_empty() && w.chars().count() <= MAX_WORD);
                // Every word is found by each of its prefixes.
                let p: String = w.chars().take(2).collect();
                prop_assert!(w.as_str() >= p.as_str() && w < &prefix_end(&p));
            }
        }
    }
}
