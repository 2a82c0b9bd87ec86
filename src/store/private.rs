//! Private files: the state directory is created 0700 and database files
//! are 0600, whatever the umask, so no other local user reads the ledger.

use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of a directory the daemon creates for its state.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the database files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) if absent, the last one with
/// [`DIR_MODE`]. An existing directory keeps its mode: under systemd
/// `StateDirectoryMode=` chose it.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    // Set explicitly: the mode given to mkdir is cut by the umask.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Creates `path` if absent and makes it [`FILE_MODE`].
pub fn file(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    tighten(path)
}

/// Takes group and world access away from an existing file.
pub fn tighten(path: &Path) -> io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// Why `dir` could not be created: the nearest existing ancestor is not a
/// directory or not writable. `None` when it exists as a directory or
/// could be created. Creates nothing (for `config check`).
pub fn creatable(dir: &Path) -> Option<String> {
    use nix::unistd::{AccessFlags, access};
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(m) if !m.is_dir() => {
                return Some(format!("{} exists and is not a directory", at.display()));
            }
            Ok(_) if at == dir => return None,
            Ok(_) => {
                return access(at, AccessFlags::W_OK | AccessFlags::X_OK)
                    .err()
                    .map(|e| format!("cannot create it in {}: {e}", at.display()));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                _ => return None,
            },
            Err(e) => return Some(format!("{}: {e}", at.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_and_files_are_private_whatever_the_umask() {
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/state");
        create_dir(&dir).unwrap();
        let f = dir.join("db");
        file(&f).unwrap();
        nix::sys::stat::umask(old);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        tighten(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
    }

    #[test]
    fn creatable_refuses_a_path_under_a_file() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(creatable(&d.path().join("x/y")), None);
        assert_eq!(creatable(d.path()), None);
        let f = d.path().join("f");
        std::fs::write(&f, "").unwrap();
        assert!(creatable(&f.join("state")).is_some());
        assert!(creatable(&f).is_some());
    }
}
