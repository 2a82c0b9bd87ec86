//! Roles and the token file behind `auth.login`.

use std::path::Path;

use crate::redact::{Secret, constant_time_eq};

/// What a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// POS software at the till: reads, sales, printing.
    Cashier,
    /// Technicians and back office: reload, device restarts, adjustments.
    Admin,
}

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `ROLE TOKEN`.
    #[error("token file {}:{line}: expected `cashier TOKEN` or `admin TOKEN`", path.display())]
    Syntax {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A token is too short to resist guessing.
    #[error("token file {}:{line}: tokens must be at least 16 characters", path.display())]
    TooShort {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// The tokens that `auth.login` accepts.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<(Role, Secret)>);

impl Tokens {
    /// Reads `ROLE TOKEN` lines; blank lines and `#` comments are skipped.
    /// Warns (in the log) when the file is readable by group or others.
    pub fn load(path: &Path) -> Result<Tokens, TokenError> {
        if let Some(mode) = readable_by_others(path) {
            tracing::warn!(
                file = %path.display(),
                mode = format_args!("{mode:04o}"),
                "the token file is readable by group or others; chmod 600 it"
            );
        }
        let text = crate::textfile::read_text(path).map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Tokens, TokenError> {
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = || TokenError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
            };
            let (role, token) = line.split_once(char::is_whitespace).ok_or_else(syntax)?;
            let role = match role {
                "cashier" => Role::Cashier,
                "admin" => Role::Admin,
                _ => return Err(syntax()),
            };
            let token = token.trim();
            if token.chars().count() < 16 {
                return Err(TokenError::TooShort {
                    path: path.to_path_buf(),
                    line: i + 1,
                });
            }
            tokens.push((role, Secret::new(token)));
        }
        Ok(Tokens(tokens))
    }

    /// The role a presented token grants, compared in constant time
    /// against every entry so the answer's timing does not depend on which
    /// one matched.
    pub fn check(&self, presented: &Secret) -> Option<Role> {
        let mut found = None;
        for (role, token) in &self.0 {
            if constant_time_eq(token.expose().as_bytes(), presented.expose().as_bytes()) {
                found = Some(found.map_or(*role, |r: Role| r.max(*role)));
            }
        }
        found
    }
}

/// The file's permission bits when group or others may read it.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o044 != 0).then_some(mode)
}

/// The role of a Unix-socket peer: root and listed uids are admin.
pub fn role_for_uid(uid: u32, admin_uids: &[u32]) -> Role {
    if uid == 0 || admin_uids.contains(&uid) {
        Role::Admin
    } else {
        Role::Cashier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_tokens() {
        let t = Tokens::parse(
            "# tokens\ncashier aaaaaaaaaaaaaaaaaaaa\n\nadmin   bbbbbbbbbbbbbbbbbbbb\n",
            Path::new("t"),
        )
        .unwrap();
        assert_eq!(
            t.check(&Secret::new("aaaaaaaaaaaaaaaaaaaa")),
            Some(Role::Cashier)
        );
        assert_eq!(
            t.check(&Secret::new("bbbbbbbbbbbbbbbbbbbb")),
            Some(Role::Admin)
        );
        assert_eq!(t.check(&Secret::new("bbbbbbbbbbbbbbbbbbb")), None);
        assert_eq!(t.check(&Secret::new("")), None);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(matches!(
            Tokens::parse("root xxxxxxxxxxxxxxxxxxxxxx\n", Path::new("t")),
            Err(TokenError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            Tokens::parse("\nadmin short\n", Path::new("t")),
            Err(TokenError::TooShort { line: 2, .. })
        ));
    }

    #[test]
    fn uid_roles() {
        assert_eq!(role_for_uid(0, &[]), Role::Admin);
        assert_eq!(role_for_uid(1000, &[1000]), Role::Admin);
        assert_eq!(role_for_uid(1000, &[1001]), Role::Cashier);
    }
}
