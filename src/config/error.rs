//! Configuration errors, each pointing at the file, line, column and key.

use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, a wrong type, or a
    /// value that breaks a rule (duplicate device, missing transport, ...).
    #[error("{}:{line}:{column}: {}{message}", file.display(), path_prefix(path))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column (in characters) of the offending key or value.
        column: usize,
        /// Dotted path of the key, such as `printer[1].tcp.port`; empty when
        /// the problem is the file as a whole.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// More than one of the above, in file order: everything one pass
    /// could find, so a technician fixes them all before the next try.
    #[error("{}", several(.0))]
    Several(Vec<ConfigError>),
}

fn several(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\nerror: ")
}

/// The path as a technician reads it: entries of a list counted from 1
/// (`printer[0].tcp.port` is `printer #1, tcp.port`), as they appear in
/// the file.
fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(path.len() + 4);
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        match rest[open + 1..close].parse::<usize>() {
            Ok(i) => out.push_str(&format!(" #{}", i.saturating_add(1))),
            Err(_) => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
        if let Some(r) = rest.strip_prefix('.') {
            out.push_str(", ");
            rest = r;
        }
    }
    out.push_str(rest);
    format!("{out}: ")
}

/// serde's wording (`invalid type: string "many", expected usize`) in a
/// technician's words (`expected a whole number (0 or more), found the
/// text "many"`). Messages it does not know pass unchanged.
pub(crate) fn humanize(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
    {
        return format!(
            "expected {}, found {}",
            expected_words(expected),
            found_words(found)
        );
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'))
    {
        return format!("the key `{field}` is required here");
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once("`, expected ")
    {
        let expected = expected.strip_prefix("one of ").unwrap_or(expected);
        return format!("unknown key `{field}`; the keys allowed here are {expected}");
    }
    message.to_owned()
}

fn expected_words(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" | "u128" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "text in quotes".into(),
        "a sequence" => "a list in brackets [...]".into(),
        other => other.into(),
    }
}

fn found_words(found: &str) -> String {
    let inner = |s: &str| s.trim_start_matches('`').trim_end_matches('`').to_owned();
    if let Some(v) = found.strip_prefix("string ") {
        format!("the text {v}")
    } else if let Some(v) = found
        .strip_prefix("integer ")
        .or_else(|| found.strip_prefix("floating point "))
        .or_else(|| found.strip_prefix("boolean "))
    {
        inner(v)
    } else if found == "sequence" {
        "a list".into()
    } else if found == "map" {
        "a table".into()
    } else {
        found.into()
    }
}

/// The message for a key or table the file defines twice, naming it from
/// the text at the error's offset (the toml parser says only "duplicate
/// key").
pub(crate) fn duplicate(src: &str, offset: usize) -> Option<String> {
    let offset = (0..=offset.min(src.len()))
        .rev()
        .find(|&i| src.is_char_boundary(i))?;
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = src[line_start..].lines().next()?.trim();
    if let Some(header) = line.strip_prefix('[') {
        let name = header.trim_start_matches('[');
        let name = name.split(']').next()?.trim();
        return Some(format!(
            "the table [{name}] appears twice; merge the two into one"
        ));
    }
    let key = src[offset..]
        .split(['=', '\n'])
        .next()?
        .trim()
        .trim_matches('"');
    (!key.is_empty()).then(|| format!("the key `{key}` appears twice in this table; keep one"))
}

/// Converts a byte offset in `src` to a 1-based (line, column) pair, the
/// column counted in characters so editors agree with it.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    // Step back to a char boundary so slicing cannot panic on a bad span.
    let offset = (0..=offset)
        .rev()
        .find(|&i| src.is_char_boundary(i))
        .unwrap_or(0);
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::{duplicate, humanize, line_col, path_prefix};

    #[test]
    fn serde_words_become_a_technicians() {
        assert_eq!(
            humanize("invalid type: string \"many\", expected usize"),
            "expected a whole number (0 or more), found the text \"many\""
        );
        assert_eq!(
            humanize("invalid value: integer `-3`, expected u32"),
            "expected a whole number from 0 to 4294967295, found -3"
        );
        assert_eq!(
            humanize("invalid type: integer `660`, expected a string"),
            "expected text in quotes, found 660"
        );
        assert_eq!(
            humanize("missing field `name`"),
            "the key `name` is required here"
        );
        assert_eq!(humanize("something else"), "something else");
        assert_eq!(path_prefix("printer[0].tcp.port"), "printer #1, tcp.port: ");
        assert_eq!(path_prefix("reader[11]"), "reader #12: ");
        assert_eq!(path_prefix(""), "");
    }

    #[test]
    fn a_duplicate_names_its_key_or_table() {
        let src = "[daemon]\nlog_level = \"info\"\nlog_level = \"debug\"\n";
        let at = src.rfind("log_level").unwrap();
        assert_eq!(
            duplicate(src, at).unwrap(),
            "the key `log_level` appears twice in this table; keep one"
        );
        let src = "[ledger.programme]\n[ledger.programme]\n";
        assert_eq!(
            duplicate(src, 27).unwrap(),
            "the table [ledger.programme] appears twice; merge the two into one"
        );
    }

    #[test]
    fn line_and_column_are_one_based_and_count_chars() {
        let src = "a = 1\nимя = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // "имя " is 7 bytes but 4 characters.
        assert_eq!(line_col(src, 6 + 7), (2, 5));
        // Offsets past the end or inside a character never panic.
        assert_eq!(line_col(src, 1000).0, 3);
        assert_eq!(line_col(src, 7), (2, 1));
    }
}
