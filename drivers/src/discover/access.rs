//! Probing whether a device node can be opened, and explaining why not.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::{Access, GROUP_FILE};

// Open flags, spelled out because the crate does not depend on libc.
// Non-blocking so a tty waiting for carrier cannot hang the probe; no
// controlling tty so probing a serial port cannot make it ours.
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const O_NONBLOCK: i32 = 0x80;
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const O_NOCTTY: i32 = 0x800;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const O_NONBLOCK: i32 = 0x4000;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const O_NOCTTY: i32 = 0x8000;
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const O_NOCTTY: i32 = 0o400;

/// Linux errnos meaning the node exists but no device is behind it.
const ENXIO: i32 = 6;
const ENODEV: i32 = 19;

/// Tries to open `node` read-write, then read-only, closing it at once.
///
/// Opening has side effects on some devices (a tty raises DTR; a USB
/// printer admits one opener), which is the price of an answer that also
/// covers ACLs, SELinux and device cgroups, unlike a mode-bit check.
pub fn probe_access(node: &Path) -> Access {
    probe_access_with(node, Path::new(GROUP_FILE))
}

/// [`probe_access`] naming groups from `group_file`.
pub(super) fn probe_access_with(node: &Path, group_file: &Path) -> Access {
    match try_open(node, true) {
        Ok(()) => Access::ReadWrite,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => match try_open(node, false) {
            Ok(()) => Access::ReadOnly,
            Err(e) => classify(node, &e, group_file),
        },
        Err(e) => classify(node, &e, group_file),
    }
}

fn try_open(node: &Path, write: bool) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(O_NONBLOCK | O_NOCTTY)
        .open(node)
        .map(drop)
}

fn classify(node: &Path, err: &io::Error, group_file: &Path) -> Access {
    match err.kind() {
        io::ErrorKind::NotFound => Access::Missing,
        io::ErrorKind::PermissionDenied => Access::Denied {
            reason: permission_reason(node, group_file),
        },
        io::ErrorKind::ResourceBusy => Access::Denied {
            reason: "busy: another process holds it open exclusively".to_owned(),
        },
        _ if matches!(err.raw_os_error(), Some(ENXIO | ENODEV)) => Access::Missing,
        _ => Access::Denied {
            reason: format!("cannot open: {err}"),
        },
    }
}

fn permission_reason(node: &Path, group_file: &Path) -> String {
    match fs::metadata(node) {
        Ok(meta) => {
            let group = group_name(group_file, meta.gid());
            denied_reason(meta.uid(), meta.gid(), group.as_deref(), meta.mode())
        }
        Err(e) => format!(
            "permission denied (owner unreadable: {e}); install systemd/60-posbridge.rules \
             or run as a user allowed to open it"
        ),
    }
}

/// The technician-facing reason for a permission failure on a node with
/// this owner and mode.
pub(super) fn denied_reason(uid: u32, gid: u32, group: Option<&str>, mode: u32) -> String {
    let owner_group = match group {
        Some(name) => format!("group {name}"),
        None => format!("gid {gid}"),
    };
    let mode = mode & 0o7777;
    if mode & 0o060 == 0 {
        // Joining the group would not help; only a rule changing the
        // node's group or mode (or an ACL) will.
        format!(
            "permission denied: owned by uid {uid} and {owner_group}, mode {mode:04o}, \
             which gives the group no access; install systemd/60-posbridge.rules"
        )
    } else {
        format!(
            "permission denied: owned by {owner_group}, mode {mode:04o}; add the service \
             user to that group or install systemd/60-posbridge.rules"
        )
    }
}

/// The name of group `gid` in an `/etc/group`-format file. Groups from
/// other NSS sources (LDAP, systemd-userdb) are not found; callers then
/// show the number.
pub(super) fn group_name(group_file: &Path, gid: u32) -> Option<String> {
    let bytes = fs::read(group_file).ok()?;
    parse_group_name(&String::from_utf8_lossy(&bytes), gid).map(str::to_owned)
}

/// Finds `gid` in `name:password:gid:members` lines, skipping comments,
/// NIS `+`/`-` entries and malformed lines.
pub(super) fn parse_group_name(content: &str, gid: u32) -> Option<&str> {
    content.lines().find_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', '+', '-']) {
            return None;
        }
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let line_gid: u32 = fields.next()?.parse().ok()?;
        (line_gid == gid && !name.is_empty()).then_some(name)
    })
}
