//! Several programmes (issue 21 item 10): `[[ledger.programmes]]` beside
//! the default `[ledger.programme]`, the till's `[ledger] serves` and
//! `[ledger.programme_cards]`. A programme's `name` is its id.

use std::collections::BTreeMap;

use super::LedgerConfig;

/// Most programmes in one file, the default one included (as
/// `ledger::programmes::MAX_PROGRAMMES`).
const MAX_PROGRAMMES: usize = 32;

impl LedgerConfig {
    /// The card ranges of `[ledger.programme_cards]` as (programme name,
    /// leading digits) pairs.
    pub fn programme_routes(&self) -> Vec<(String, Vec<String>)> {
        self.programme_cards
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Checks the programmes' tables: each extra programme's rules, names
/// unique (they are the ids accounts are stored with), and every name in
/// `serves` and `[ledger.programme_cards]` resolving. The first invalid
/// key as its dotted path, and why.
pub(super) fn validate(l: &LedgerConfig) -> Result<(), (String, String)> {
    if l.programmes.len() + 1 > MAX_PROGRAMMES {
        return Err((
            "ledger.programmes".into(),
            format!("at most {MAX_PROGRAMMES} programmes in all"),
        ));
    }
    let mut names: Vec<&str> = vec![l.programme.name.as_str()];
    for (i, p) in l.programmes.iter().enumerate() {
        if let Err(e) = p.validate() {
            return Err(match e {
                crate::ledger::rules::RulesError::Invalid { field, reason } => {
                    // `programme.cap_percent` → `ledger.programmes[1].cap_percent`
                    let leaf = field.strip_prefix("programme.").unwrap_or(&field);
                    (format!("ledger.programmes[{i}].{leaf}"), reason)
                }
                e => (format!("ledger.programmes[{i}]"), e.to_string()),
            });
        }
        if p.name.trim().is_empty() {
            return Err((
                format!("ledger.programmes[{i}].name"),
                "each programme needs a name: it identifies the programme".into(),
            ));
        }
        if names.contains(&p.name.as_str()) {
            return Err((
                format!("ledger.programmes[{i}].name"),
                format!(
                    "programme \"{}\" is defined twice; names identify programmes",
                    p.name
                ),
            ));
        }
        names.push(&p.name);
    }
    let known = |n: &str| names.contains(&n);
    let listed = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for (i, s) in l.serves.iter().enumerate() {
        if !known(s) {
            return Err((
                format!("ledger.serves[{i}]"),
                format!("no programme is named \"{s}\" (the programmes: {listed})"),
            ));
        }
    }
    routes(&l.programme_cards, &known, &listed)
}

fn routes(
    cards: &BTreeMap<String, Vec<String>>,
    known: &dyn Fn(&str) -> bool,
    listed: &str,
) -> Result<(), (String, String)> {
    let mut seen: Vec<&str> = Vec::new();
    for (name, prefixes) in cards {
        if !known(name) {
            return Err((
                format!("ledger.programme_cards.{name}"),
                format!("no programme is named \"{name}\" (the programmes: {listed})"),
            ));
        }
        for p in prefixes {
            if !(1..=19).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err((
                    format!("ledger.programme_cards.{name}"),
                    format!("\"{p}\" is not 1 to 19 leading digits"),
                ));
            }
            if seen.contains(&p.as_str()) {
                return Err((
                    format!("ledger.programme_cards.{name}"),
                    format!("the range \"{p}\" routes to two programmes"),
                ));
            }
            seen.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError};

    fn invalid(src: &str) -> (usize, String, String) {
        match Config::parse(src, Path::new("test.toml")) {
            Err(ConfigError::Invalid {
                line,
                path,
                message,
                ..
            }) => (line, path, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    const TWO: &str = "[ledger]\nserves = [\"Бар\", \"Кино\"]\n\
        [ledger.programme]\nname = \"Кино\"\n\
        [[ledger.programmes]]\nname = \"Бар\"\ndefault_accrual_percent = \"10\"\n\
        [ledger.programme_cards]\n\"Бар\" = [\"7002\"]\n";

    #[test]
    fn two_programmes_parse_with_the_tills_list_and_card_ranges() {
        let c = Config::parse(TWO, Path::new("test.toml")).unwrap();
        assert_eq!(c.ledger.programme.name, "Кино");
        assert_eq!(c.ledger.programmes[0].name, "Бар");
        assert_eq!(c.ledger.serves, ["Бар", "Кино"]);
        assert_eq!(
            c.ledger.programme_routes(),
            [("Бар".to_owned(), vec!["7002".to_owned()])]
        );
    }

    #[test]
    fn names_are_unique() {
        let (line, path, message) = invalid(
            "[ledger.programme]\nname = \"Кино\"\n[[ledger.programmes]]\nname = \"Бар\"\n\
             [[ledger.programmes]]\nname = \"Кино\"\n",
        );
        assert_eq!(path, "ledger.programmes[1].name");
        assert_eq!(line, 6, "the second programme's name line");
        assert!(message.contains("\"Кино\" is defined twice"), "{message}");
    }

    #[test]
    fn the_tills_programmes_and_card_ranges_name_programmes_that_exist() {
        let (line, path, message) = invalid("[ledger]\nserves = [\"Бар\"]\n");
        assert_eq!((line, path.as_str()), (2, "ledger.serves[0]"));
        assert!(
            message.contains("no programme is named \"Бар\""),
            "{message}"
        );
        assert!(
            message.contains("\"default\""),
            "lists the programmes: {message}"
        );
        let (_, path, _) = invalid("[ledger.programme_cards]\n\"Бар\" = [\"7002\"]\n");
        assert_eq!(path, "ledger.programme_cards.Бар");
        let (_, _, message) = invalid(
            "[[ledger.programmes]]\nname = \"Бар\"\n[ledger.programme_cards]\n\"Бар\" = [\"70a\"]\n",
        );
        assert!(
            message.contains("\"70a\" is not 1 to 19 leading digits"),
            "{message}"
        );
    }

    #[test]
    fn an_extra_programmes_rules_are_checked_and_named_by_index() {
        let (line, path, message) = invalid(
            "[[ledger.programmes]]\nname = \"Бар\"\n[[ledger.programmes]]\nname = \"Кафе\"\n\
             cap_percent = \"150\"\n",
        );
        assert_eq!(path, "ledger.programmes[1].cap_percent");
        assert_eq!(line, 5);
        assert!(!message.is_empty());
        let (_, path, _) = invalid("[[ledger.programmes]]\nname = \" \"\n");
        assert_eq!(path, "ledger.programmes[0].name");
    }
}
