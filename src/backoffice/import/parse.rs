//! The customer import's file, read apart from any ledger: UTF-8 (a BOM
//! is dropped), `;` or `,` as the header line shows, a header naming the
//! columns in any order, one customer per row. Every row is checked as
//! the ledger would check it (phone and e-mail notation, card digits,
//! the balance's decimals) and against the rows above it (a phone, e-mail
//! or card seen twice). Bounded in size, rows and field length; never
//! panics (a proptest below feeds it arbitrary bytes).

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::api::amount::{self, POINT_DECIMALS};
use crate::ledger::accounts::{group_name, normalise_email, normalise_phone};

/// The largest file accepted.
pub const FILE_MAX: usize = 5 * 1024 * 1024;
/// The most customer rows in one file.
pub const ROWS_MAX: usize = 50_000;
/// The longest field, in bytes.
pub const FIELD_MAX: usize = 1000;
/// The most groups one row names.
pub const GROUPS_MAX: usize = 16;
/// The most refused rows remembered (the rest are only counted).
pub const REFUSED_MAX: usize = 10_000;
/// The columns, in the documented order; `groups` and `balance` may be
/// left out.
pub const COLUMNS: [&str; 6] = ["name", "phone", "email", "card", "groups", "balance"];

/// A row that can be imported, its values as the ledger stores them.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its number, counting the header as row 1 (as a spreadsheet shows).
    pub row: usize,
    /// Name (trimmed).
    pub name: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// Lower case.
    pub email: Option<String>,
    /// The physical card's digits.
    pub card: String,
    /// Groups to join (each must exist).
    pub groups: Vec<String>,
    /// An opening balance (> 0), booked as a manual accrual.
    pub balance: Option<Decimal>,
}

/// Why a row is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Not as many fields as the header, or a field too long.
    Shape,
    /// Name longer than 100 characters or with control characters.
    BadName,
    /// Not a phone number.
    BadPhone,
    /// Not an e-mail address.
    BadEmail,
    /// Neither phone nor e-mail.
    NoContact,
    /// No card number.
    CardRequired,
    /// Not 4 to 32 digits.
    BadCard,
    /// A group that does not exist (or is not a group name).
    UnknownGroup(String),
    /// Not a decimal ≥ 0 with at most 4 places.
    BadBalance,
    /// The phone is on an earlier row.
    PhoneInFile(usize),
    /// The e-mail is on an earlier row.
    EmailInFile(usize),
    /// The card is on an earlier row.
    CardInFile(usize),
    /// Another customer has the phone.
    PhoneTaken,
    /// Another customer has the e-mail.
    EmailTaken,
    /// The card is another customer's.
    CardTaken,
    /// The card's number is outside the programme's card ranges.
    OtherProgramme,
    /// The ledger refused when the row was applied.
    Ledger(String),
}

/// Why the whole file is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FileError {
    /// Larger than [`FILE_MAX`] or more than [`ROWS_MAX`] rows.
    #[error("the file is larger than 5 MiB or has more than 50 000 rows")]
    TooBig,
    /// Not UTF-8.
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    /// The header is missing a column, repeats one or names an unknown one.
    #[error("the header must name the columns name, phone, email, card [, groups, balance]")]
    BadHeader,
}

/// A file read: the rows to import and the rows refused, in file order.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Good rows.
    pub rows: Vec<Row>,
    /// `(row, why)`, at most [`REFUSED_MAX`].
    pub refused: Vec<(usize, Refusal)>,
    /// Every refused row, including those past [`REFUSED_MAX`].
    pub refused_count: usize,
}

impl Parsed {
    /// Notes a refusal.
    pub fn refuse(&mut self, row: usize, why: Refusal) {
        self.refused_count += 1;
        if self.refused.len() < REFUSED_MAX {
            self.refused.push((row, why));
        }
    }
}

/// `;` when the header line has more of them than commas, else `,`.
fn separator(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    }
}

/// Reads a whole file.
pub fn parse(bytes: &[u8]) -> Result<Parsed, FileError> {
    if bytes.len() > FILE_MAX {
        return Err(FileError::TooBig);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| FileError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator(text))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        _ => return Err(FileError::BadHeader),
    };
    // Column name → its index in a row.
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        let Some(c) = COLUMNS.iter().find(|c| **c == h) else {
            return Err(FileError::BadHeader);
        };
        if at.insert(c, i).is_some() {
            return Err(FileError::BadHeader);
        }
    }
    if COLUMNS[..4].iter().any(|c| !at.contains_key(c)) {
        return Err(FileError::BadHeader);
    }
    let width = header.len();
    let mut out = Parsed::default();
    let mut phones: HashMap<String, usize> = HashMap::new();
    let mut emails: HashMap<String, usize> = HashMap::new();
    let mut cards: HashMap<String, usize> = HashMap::new();
    for (i, rec) in records.enumerate() {
        if i >= ROWS_MAX {
            return Err(FileError::TooBig);
        }
        let row = i + 2;
        let rec = match rec {
            Ok(r) if r.len() == width && r.iter().all(|f| f.len() <= FIELD_MAX) => r,
            _ => {
                out.refuse(row, Refusal::Shape);
                continue;
            }
        };
        let get = |c: &str| at.get(c).and_then(|i| rec.get(*i)).unwrap_or("").trim();
        match check_row(row, get) {
            Err(why) => out.refuse(row, why),
            Ok(r) => {
                let seen = [
                    r.phone
                        .as_ref()
                        .and_then(|p| phones.get(p))
                        .map(|n| Refusal::PhoneInFile(*n)),
                    r.email
                        .as_ref()
                        .and_then(|e| emails.get(e))
                        .map(|n| Refusal::EmailInFile(*n)),
                    cards.get(&r.card).map(|n| Refusal::CardInFile(*n)),
                ];
                if let Some(why) = seen.into_iter().flatten().next() {
                    out.refuse(row, why);
                    continue;
                }
                if let Some(p) = &r.phone {
                    phones.insert(p.clone(), row);
                }
                if let Some(e) = &r.email {
                    emails.insert(e.clone(), row);
                }
                cards.insert(r.card.clone(), row);
                out.rows.push(r);
            }
        }
    }
    Ok(out)
}

/// One row's fields checked, by column name.
fn check_row<'a>(row: usize, get: impl Fn(&str) -> &'a str) -> Result<Row, Refusal> {
    let name = super::super::customers::name_of(get("name")).map_err(|_| Refusal::BadName)?;
    let phone = match get("phone") {
        "" => None,
        p => Some(normalise_phone(p).ok_or(Refusal::BadPhone)?),
    };
    let email = match get("email") {
        "" => None,
        e => Some(normalise_email(e).ok_or(Refusal::BadEmail)?),
    };
    if phone.is_none() && email.is_none() {
        return Err(Refusal::NoContact);
    }
    let card: String = get("card")
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    if card.is_empty() {
        return Err(Refusal::CardRequired);
    }
    if !(4..=32).contains(&card.len()) || !card.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::BadCard);
    }
    let mut groups = Vec::new();
    for g in get("groups").split('|').filter(|g| !g.trim().is_empty()) {
        let g = group_name(g).map_err(|_| Refusal::UnknownGroup(short(g)))?;
        if groups.len() >= GROUPS_MAX {
            return Err(Refusal::UnknownGroup(short(&g)));
        }
        groups.push(g);
    }
    groups.sort();
    groups.dedup();
    let balance = match get("balance") {
        "" => None,
        b => {
            let b = b.replace(',', ".");
            let d = amount::parse(&b, false, POINT_DECIMALS).map_err(|_| Refusal::BadBalance)?;
            (d > Decimal::ZERO).then_some(d)
        }
    };
    Ok(Row {
        row,
        name,
        phone,
        email,
        card,
        groups,
        balance,
    })
}

/// At most 64 characters of `s`, for a refusal that quotes it.
fn short(s: &str) -> String {
    s.trim().chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = "name;phone;email;card;groups;balance\n\
        Анна;8 916 555-44-33;;7700000001;vip;120,50\n\
        Bob;;bob@example.ru;7700000002;;\n";

    #[test]
    fn a_file_with_a_bom_and_semicolons_reads() {
        let p = parse(format!("\u{feff}{GOOD}").as_bytes()).unwrap();
        assert_eq!(p.refused, vec![]);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].phone.as_deref(), Some("+79165554433"));
        assert_eq!(p.rows[0].balance, Some(Decimal::new(12050, 2)));
        assert_eq!(p.rows[0].groups, vec!["vip".to_owned()]);
        assert_eq!(p.rows[1].row, 3);
        assert_eq!(p.rows[1].email.as_deref(), Some("bob@example.ru"));
    }

    #[test]
    fn bad_rows_are_refused_by_number_and_reason() {
        let csv = "card,email,phone,name\n\
            1,,+79160000001,A\n\
            7700000003,,12345,B\n\
            7700000004,x@y.ru,+79160000002,C\n\
            7700000005,,+79160000002,D\n\
            7700000004,z@y.ru,,E\n\
            7700000006,\"q@y.ru\",,\"F, with a comma\"\n\
            7700000007,,\n\
            ,,+79160000009,G\n";
        let p = parse(csv.as_bytes()).unwrap();
        assert_eq!(
            p.refused,
            vec![
                (2, Refusal::BadCard),
                (3, Refusal::BadPhone),
                (5, Refusal::PhoneInFile(4)),
                (6, Refusal::CardInFile(4)),
                (8, Refusal::Shape),
                (9, Refusal::CardRequired),
            ]
        );
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[1].name.as_deref(), Some("F, with a comma"));
    }

    #[test]
    fn headers_and_encodings_are_checked() {
        assert_eq!(parse(b"").unwrap_err(), FileError::BadHeader);
        assert_eq!(
            parse(b"name,phone,card\n").unwrap_err(),
            FileError::BadHeader
        );
        assert_eq!(
            parse(b"name,phone,email,card,card\n").unwrap_err(),
            FileError::BadHeader
        );
        assert_eq!(
            parse(b"name,phone,email,card,x\n").unwrap_err(),
            FileError::BadHeader
        );
        assert_eq!(parse(b"name,\xff\n").unwrap_err(), FileError::NotUtf8);
        let big = vec![b'a'; FILE_MAX + 1];
        assert_eq!(parse(&big).unwrap_err(), FileError::TooBig);
        let mut many = String::from("name,phone,email,card\n");
        for _ in 0..=ROWS_MAX {
            many.push_str(",,,\n");
        }
        assert_eq!(parse(many.as_bytes()).unwrap_err(), FileError::TooBig);
        let p = parse(b"NAME , Phone,email,card,balance\nA,+79160000001,,1234,-5\n").unwrap();
        assert_eq!(p.refused, vec![(2, Refusal::BadBalance)]);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_csv_like_text(
            rows in proptest::collection::vec("[a-z0-9@.+;,\" \n|-]{0,60}", 0..20)
        ) {
            let text = format!("name;phone;email;card;groups;balance\n{}", rows.join("\n"));
            if let Ok(p) = parse(text.as_bytes()) {
                // One result per line at most (quotes may join lines).
                prop_assert!(p.rows.len() + p.refused_count < text.lines().count().max(1));
            }
        }
    }
}
