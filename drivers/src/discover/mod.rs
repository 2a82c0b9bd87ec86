//! Finding local POS devices (HID scanners, keyboard-wedge readers, USB
//! serial adapters, USB printers) through sysfs.
//!
//! Device node numbers (`/dev/hidraw3`, `/dev/ttyACM1`) change with plug
//! order, so configuration names devices by USB vendor:product (and serial
//! when several identical devices are attached) and these functions resolve
//! that to a node at start-up.
//!
//! [`list`] also reports nodes the process cannot open and why, like
//! probe-rs's `list`: "permission denied, add the user to group input" is
//! the answer a technician needs, where a silently missing device is not.
//!
//! Every function takes the sysfs and `/dev` roots so tests run against a
//! fake tree; the `*_system` wrappers use the real ones. Only Linux sysfs
//! layouts are understood.

mod access;
mod details;
mod sysfs;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use access::probe_access;
pub use details::{
    by_id_link, first_usage_page, hidraw_usage_page, hidraw_usage_page_system,
    input_by_id_link_system, usage_page_name,
};

use sysfs::Entry;

/// Where sysfs is mounted on a real system.
pub const SYSFS_ROOT: &str = "/sys";
/// Where device nodes live on a real system.
pub const DEV_ROOT: &str = "/dev";
/// Group database used to name a node's group in permission reasons.
const GROUP_FILE: &str = "/etc/group";

/// USB identity of a device, also used as the pattern to look devices up.
///
/// HID and input devices on other buses (Bluetooth, I2C) report the same
/// vendor:product pair, so they get one too despite the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbIdentity {
    /// Vendor ID (`idVendor`).
    pub vid: u16,
    /// Product ID (`idProduct`).
    pub pid: u16,
    /// Serial number string, if the device has one. As a pattern, `None`
    /// (or an empty string) matches any serial.
    pub serial: Option<String>,
}

impl UsbIdentity {
    /// A pattern matching any device with this vendor:product.
    pub fn new(vid: u16, pid: u16) -> Self {
        UsbIdentity {
            vid,
            pid,
            serial: None,
        }
    }

    /// The same pattern restricted to one serial number.
    pub fn with_serial(mut self, serial: impl Into<String>) -> Self {
        self.serial = Some(serial.into());
        self
    }

    /// Whether a device identity satisfies this pattern.
    fn matches(&self, found: &UsbIdentity) -> bool {
        if self.vid != found.vid || self.pid != found.pid {
            return false;
        }
        match self.serial.as_deref() {
            // Config files tend to produce "" for "not set".
            None | Some("") => true,
            Some(want) => found.serial.as_deref() == Some(want),
        }
    }
}

impl fmt::Display for UsbIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vid, self.pid)?;
        match self.serial.as_deref() {
            None | Some("") => Ok(()),
            // Debug quoting shows stray spaces a technician would miss.
            Some(s) => write!(f, " serial {s:?}"),
        }
    }
}

/// Kind of device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceClass {
    /// Raw HID (`/dev/hidrawN`): HID POS scanners, scales, customer displays.
    Hidraw,
    /// Input event device (`/dev/input/eventN`): keyboard-wedge scanners and
    /// card readers.
    Input,
    /// Serial port (`/dev/ttyACMN`, `/dev/ttyUSBN`): USB-CDC and USB-serial.
    Tty,
    /// USB printer class (`/dev/usb/lpN`).
    UsbLp,
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceClass::Hidraw => "hidraw",
            DeviceClass::Input => "input",
            DeviceClass::Tty => "tty",
            DeviceClass::UsbLp => "usblp",
        })
    }
}

/// What this process may do with a device node, found by trying to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The node opens read-write.
    ReadWrite,
    /// The node opens read-only; writing (printing, LEDs, beeps) would fail.
    ReadOnly,
    /// The node exists but cannot be opened.
    Denied {
        /// Why, phrased for a technician: owner group and mode plus the fix
        /// for permission problems, or "busy" and other errors otherwise.
        reason: String,
    },
    /// The node is absent (no devtmpfs entry, or no device behind it).
    Missing,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::ReadWrite => f.write_str("read-write"),
            Access::ReadOnly => f.write_str("read-only"),
            Access::Denied { reason } => write!(f, "denied ({reason})"),
            Access::Missing => f.write_str("missing"),
        }
    }
}

/// One device node found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDevice {
    /// Kind of node.
    pub class: DeviceClass,
    /// Device node path, such as `/dev/hidraw0` or `/dev/input/event3`.
    pub node: PathBuf,
    /// USB identity, or `None` when sysfs does not give a readable one.
    pub usb: Option<UsbIdentity>,
    /// Product name (USB `product`, `HID_NAME` or the input device name).
    pub name: Option<String>,
    /// Whether this process can open the node.
    pub access: Access,
}

impl fmt::Display for FoundDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<6} {}", self.class, self.node.display())?;
        match &self.usb {
            Some(usb) => write!(f, " {usb}")?,
            None => f.write_str(" ????:????")?,
        }
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(f, ": {}", self.access)
    }
}

/// Why a device could not be resolved to a node.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// No device matches.
    #[error("no {wanted} found: check that it is plugged in and compare with the device list")]
    NotFound {
        /// The device looked for, such as `hidraw device 0c2e:0b61`.
        wanted: String,
    },
    /// Several devices match and nothing says which one is meant.
    #[error(
        "{wanted} matches {n} devices ({list}): add the device's serial number to the \
         configuration to pick one, or configure the node path if they share a serial",
        n = .candidates.len(),
        list = join_paths(.candidates)
    )]
    Ambiguous {
        /// The device looked for.
        wanted: String,
        /// Nodes of every matching device.
        candidates: Vec<PathBuf>,
    },
    /// Sysfs could not be read at all (not a missing class: that is
    /// `NotFound`).
    #[error("reading {}: {source}", .path.display())]
    Io {
        /// The sysfs directory that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lists hidraw, input event, USB tty and USB printer nodes, with the
/// result of trying to open each one.
///
/// Unreadable or odd sysfs entries are skipped or reported without an
/// identity; this never fails. Opening a tty raises DTR, and a USB printer
/// node admits one opener at a time, so avoid calling this while the daemon
/// is (re)opening those devices.
pub fn list(sysfs_root: &Path, dev_root: &Path) -> Vec<FoundDevice> {
    list_with_groups(sysfs_root, dev_root, Path::new(GROUP_FILE))
}

/// [`list`] on the real `/sys` and `/dev`.
pub fn list_system() -> Vec<FoundDevice> {
    list(Path::new(SYSFS_ROOT), Path::new(DEV_ROOT))
}

fn list_with_groups(sysfs_root: &Path, dev_root: &Path, group_file: &Path) -> Vec<FoundDevice> {
    let mut out = Vec::new();
    for class in [
        DeviceClass::Hidraw,
        DeviceClass::Input,
        DeviceClass::Tty,
        DeviceClass::UsbLp,
    ] {
        match sysfs::enumerate(sysfs_root, dev_root, class) {
            Ok(entries) => out.extend(entries.into_iter().map(|e| FoundDevice {
                access: access::probe_access_with(&e.node, group_file),
                class: e.class,
                node: e.node,
                usb: e.usb,
                name: e.name,
            })),
            Err(err) => tracing::debug!(%class, error = %err, "skipping unreadable sysfs class"),
        }
    }
    out
}

/// Finds the hidraw node of the device matching `wanted`.
///
/// Nodes are not opened, so this has no side effects on the devices.
pub fn find_hidraw(
    sysfs_root: &Path,
    dev_root: &Path,
    wanted: &UsbIdentity,
) -> Result<PathBuf, DiscoverError> {
    find(sysfs_root, dev_root, DeviceClass::Hidraw, wanted)
}

/// Finds the input event node of the keyboard-wedge device matching
/// `wanted`.
///
/// Scanners usually expose several event nodes (keyboard, consumer control,
/// system control); the one that declares a full keyboard is chosen, then
/// one with any keys, so the match is ambiguous only when several devices
/// match.
pub fn find_input(
    sysfs_root: &Path,
    dev_root: &Path,
    wanted: &UsbIdentity,
) -> Result<PathBuf, DiscoverError> {
    find(sysfs_root, dev_root, DeviceClass::Input, wanted)
}

/// Finds the USB serial node (`ttyACM*` or `ttyUSB*`) of the device
/// matching `wanted`.
pub fn find_tty(
    sysfs_root: &Path,
    dev_root: &Path,
    wanted: &UsbIdentity,
) -> Result<PathBuf, DiscoverError> {
    find(sysfs_root, dev_root, DeviceClass::Tty, wanted)
}

/// Finds the USB printer class node (`usb/lp*`) of the device matching
/// `wanted`.
pub fn find_usblp(
    sysfs_root: &Path,
    dev_root: &Path,
    wanted: &UsbIdentity,
) -> Result<PathBuf, DiscoverError> {
    find(sysfs_root, dev_root, DeviceClass::UsbLp, wanted)
}

/// [`find_hidraw`] on the real `/sys` and `/dev`.
pub fn find_hidraw_system(wanted: &UsbIdentity) -> Result<PathBuf, DiscoverError> {
    find_hidraw(Path::new(SYSFS_ROOT), Path::new(DEV_ROOT), wanted)
}

/// [`find_input`] on the real `/sys` and `/dev`.
pub fn find_input_system(wanted: &UsbIdentity) -> Result<PathBuf, DiscoverError> {
    find_input(Path::new(SYSFS_ROOT), Path::new(DEV_ROOT), wanted)
}

/// [`find_tty`] on the real `/sys` and `/dev`.
pub fn find_tty_system(wanted: &UsbIdentity) -> Result<PathBuf, DiscoverError> {
    find_tty(Path::new(SYSFS_ROOT), Path::new(DEV_ROOT), wanted)
}

/// [`find_usblp`] on the real `/sys` and `/dev`.
pub fn find_usblp_system(wanted: &UsbIdentity) -> Result<PathBuf, DiscoverError> {
    find_usblp(Path::new(SYSFS_ROOT), Path::new(DEV_ROOT), wanted)
}

fn find(
    sysfs_root: &Path,
    dev_root: &Path,
    class: DeviceClass,
    wanted: &UsbIdentity,
) -> Result<PathBuf, DiscoverError> {
    let entries =
        sysfs::enumerate(sysfs_root, dev_root, class).map_err(|source| DiscoverError::Io {
            path: sysfs::class_dir(sysfs_root, class),
            source,
        })?;
    select(entries, wanted, &format!("{class} device {wanted}"))
}

/// Picks the single best-ranked entry matching `wanted`.
fn select(entries: Vec<Entry>, wanted: &UsbIdentity, what: &str) -> Result<PathBuf, DiscoverError> {
    let matching: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.usb.as_ref().is_some_and(|u| wanted.matches(u)))
        .collect();
    let Some(best) = matching.iter().map(|e| e.keys).max() else {
        return Err(DiscoverError::NotFound {
            wanted: what.to_owned(),
        });
    };
    let mut candidates: Vec<PathBuf> = matching
        .into_iter()
        .filter(|e| e.keys == best)
        .map(|e| e.node)
        .collect();
    if candidates.len() == 1 {
        Ok(candidates.remove(0))
    } else {
        Err(DiscoverError::Ambiguous {
            wanted: what.to_owned(),
            candidates,
        })
    }
}
