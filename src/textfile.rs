//! Reading the small text files a technician points the daemon at (the
//! configuration, the token file, a printer profile) without trusting them
//! to be small or even regular files: a path to `/dev/zero` or a FIFO must
//! give an error, not exhaust memory or hang start-up.

use std::io::{self, Read};
use std::path::Path;

/// Largest configuration, token or profile file read, in bytes: far above
/// any real one (the fully commented example is about 30 KiB).
pub const MAX_TEXT_FILE: u64 = 1024 * 1024;

/// Reads `path` as UTF-8 text: a regular file of at most `MAX_TEXT_FILE`
/// bytes. Anything else is an `InvalidData`/`InvalidInput` error naming
/// what is wrong.
pub fn read_text(path: &Path) -> io::Result<String> {
    // Opened without blocking so a FIFO cannot hang the open itself; the
    // type is checked on the descriptor, so the checked file is the one read.
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > MAX_TEXT_FILE {
        return Err(too_big());
    }
    let mut text = String::new();
    file.take(MAX_TEXT_FILE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TEXT_FILE {
        return Err(too_big());
    }
    Ok(text)
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {MAX_TEXT_FILE} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "x = 1\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "x = 1\n");
    }

    #[test]
    fn devices_fifos_and_huge_files_are_refused() {
        let e = read_text(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read_text(&fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; MAX_TEXT_FILE as usize + 1]).unwrap();
        let e = read_text(&big).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
