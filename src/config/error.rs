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
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
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
    use super::line_col;

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
