//! Where in the file an error is: spans turned into lines and columns,
//! keys found by their dotted path, and the blanking that lets one check
//! report every wrong key (see [`Config::parse`](super::Config::parse)).

use std::path::Path;

use super::ConfigError;
use super::error;

/// Offset of the key a dotted path names (`ledger.programme.cap_percent`,
/// `ledger.programme.categories[1].cap_percent`): the key's line inside
/// its table, or the table's header when the key is not written there.
pub(super) fn find_path(src: &str, path: &str) -> usize {
    let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
    // `a.b[2]` is the third `[[a.b]]`; a plain table is its `[a.b]`.
    let (table, nth) = match table.rsplit_once('[') {
        Some((t, i)) => (t, i.trim_end_matches(']').parse::<usize>().unwrap_or(0)),
        None => (table, 0),
    };
    let mut offset = 0;
    let mut inside = false;
    let mut seen = 0;
    let mut header_at = None;
    for line in src.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            inside = name == table && {
                seen += 1;
                seen == nth + 1
            };
            if inside {
                header_at = Some(offset);
            }
        } else if inside
            && t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return offset + (line.len() - line.trim_start().len());
        }
        offset += line.len();
    }
    header_at.unwrap_or_else(|| find_key(src, key))
}

/// Offset of `key =` in `src`, for errors on plain (unspanned) values.
pub(super) fn find_key(src: &str, key: &str) -> usize {
    src.lines()
        .scan(0usize, |off, line| {
            let start = *off;
            *off += line.len() + 1;
            Some((start, line))
        })
        .find(|(_, line)| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |(start, line)| {
            start + (line.len() - line.trim_start().len())
        })
}

/// The most errors one check reports.
pub(super) const MAX_ERRORS: usize = 20;

/// `text` with every line that `span` touches turned into spaces, or
/// `None` when that would blank a table header (what follows would move
/// to another table) or change nothing.
pub(super) fn blank_lines(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    let start = text.get(..span.start)?.rfind('\n').map_or(0, |i| i + 1);
    let end = text
        .get(span.end.max(span.start)..)?
        .find('\n')
        .map_or(text.len(), |i| span.end.max(span.start) + i);
    let region = &text[start..end];
    if region.trim().is_empty() || region.trim_start().starts_with('[') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    // One space per byte: offsets after the region stay where they were.
    out.extend(region.bytes().map(|b| if b == b'\n' { '\n' } else { ' ' }));
    out.push_str(&text[end..]);
    Some(out)
}

pub(super) fn toml_error(src: &str, file: &Path, path: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e
        .span()
        .map_or((1, 1), |span| error::line_col(src, span.start));
    let message = match e.span() {
        Some(span) if e.message().trim() == "duplicate key" => {
            error::duplicate(src, span.start).unwrap_or_else(|| "duplicate key".into())
        }
        _ => error::humanize(e.message()),
    };
    ConfigError::Invalid {
        file: file.to_path_buf(),
        line,
        column,
        path: path.to_owned(),
        message,
    }
}
