//! Reading the parts of sysfs that identify a device node.
//!
//! Everything here treats sysfs content as untrusted: a missing file,
//! non-UTF-8 bytes or malformed hex yields `None`, never a panic.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::{DeviceClass, UsbIdentity};

/// Sysfs attributes are at most a page (4 KiB, 64 KiB on some arm64
/// kernels); the cap keeps a bogus tree from making us read a huge file.
const MAX_ATTR: u64 = 64 * 1024;

/// How much an input device looks like a keyboard; ordered so that the
/// best candidate is the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum KeyRank {
    /// No key capabilities (or not an input device at all).
    NoKeys,
    /// Some keys, such as the volume keys of a consumer-control node.
    SomeKeys,
    /// A full keyboard: where a keyboard-wedge scanner types.
    Keyboard,
}

/// A device node identified from sysfs, before its access is probed.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub class: DeviceClass,
    pub node: PathBuf,
    pub usb: Option<UsbIdentity>,
    pub name: Option<String>,
    pub keys: KeyRank,
}

/// The `class/<name>` directory holding `class`'s devices.
pub(super) fn class_dir(sysfs_root: &Path, class: DeviceClass) -> PathBuf {
    let name = match class {
        DeviceClass::Hidraw => "hidraw",
        DeviceClass::Input => "input",
        DeviceClass::Tty => "tty",
        DeviceClass::UsbLp => "usbmisc",
    };
    sysfs_root.join("class").join(name)
}

/// All nodes of `class`, in node-number order.
///
/// A missing class directory (module not loaded) is an empty list; only a
/// class directory that exists but cannot be read is an error.
pub(super) fn enumerate(
    sysfs_root: &Path,
    dev_root: &Path,
    class: DeviceClass,
) -> io::Result<Vec<Entry>> {
    // Each prefix with where devtmpfs puts the node if uevent lacks DEVNAME.
    let prefixes: &[(&str, &str)] = match class {
        DeviceClass::Hidraw => &[("hidraw", "")],
        DeviceClass::Input => &[("event", "input/")],
        DeviceClass::Tty => &[("ttyACM", ""), ("ttyUSB", "")],
        DeviceClass::UsbLp => &[("lp", "usb/")],
    };
    let dir = class_dir(sysfs_root, class);
    let read_dir = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut named = Vec::new();
    for dirent in read_dir {
        let Ok(dirent) = dirent else { continue };
        let Ok(name) = dirent.file_name().into_string() else {
            continue;
        };
        let Some(key) = node_number(&name, prefixes) else {
            continue;
        };
        let path = dirent.path();
        // Real entries are symlinks to directories; anything else is junk.
        if path.is_dir() {
            named.push((key, name, path));
        }
    }
    named.sort();

    // Only tty and usblp need the canonical root, to bound the USB walk.
    let canonical_root = fs::canonicalize(sysfs_root).ok();
    let entries = named
        .into_iter()
        .map(|((prefix_index, _), name, path)| {
            let default_dir = prefixes.get(prefix_index).map_or("", |p| p.1);
            let node = node_path(dev_root, &path, &format!("{default_dir}{name}"));
            let (usb, dev_name, keys) = match class {
                DeviceClass::Hidraw => {
                    let (usb, dev_name) = hidraw_identity(&path);
                    (usb, dev_name, KeyRank::NoKeys)
                }
                DeviceClass::Input => input_identity(&path),
                DeviceClass::Tty | DeviceClass::UsbLp => {
                    let found = canonical_root
                        .as_deref()
                        .and_then(|root| usb_ancestor(root, &path));
                    match found {
                        Some((usb, product)) => (Some(usb), product, KeyRank::NoKeys),
                        None => (None, None, KeyRank::NoKeys),
                    }
                }
            };
            Entry {
                class,
                node,
                usb,
                name: dev_name,
                keys,
            }
        })
        .collect();
    Ok(entries)
}

/// `(prefix index, N)` for a name `<prefix>N`, so `hidraw10` sorts after
/// `hidraw9`.
fn node_number(name: &str, prefixes: &[(&str, &str)]) -> Option<(usize, u32)> {
    prefixes.iter().enumerate().find_map(|(i, (prefix, _))| {
        let digits = name.strip_prefix(prefix)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(|n| (i, n))
    })
}

/// The node path from the device's `uevent` `DEVNAME` (which knows about
/// subdirectories such as `input/` and `usb/`), else `default`.
fn node_path(dev_root: &Path, class_entry: &Path, default: &str) -> PathBuf {
    let devname = read_bytes(&class_entry.join("uevent"))
        .and_then(|u| uevent_value(&u, "DEVNAME"))
        // A DEVNAME of "../../etc/shadow" must not send us outside /dev.
        .filter(|n| {
            !n.is_empty()
                && Path::new(n)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)))
        });
    match devname {
        Some(n) => dev_root.join(n),
        None => dev_root.join(default),
    }
}

/// Identity from the HID device's uevent (`HID_ID`, `HID_UNIQ`,
/// `HID_NAME`).
fn hidraw_identity(class_entry: &Path) -> (Option<UsbIdentity>, Option<String>) {
    let Some(uevent) = read_bytes(&class_entry.join("device").join("uevent")) else {
        return (None, None);
    };
    let name = uevent_value(&uevent, "HID_NAME").and_then(non_empty);
    let usb = uevent_value(&uevent, "HID_ID")
        .and_then(|id| parse_hid_id(&id))
        .map(|(_bus, vid, pid)| UsbIdentity {
            vid,
            pid,
            // usbhid fills HID_UNIQ from the USB serial string.
            serial: uevent_value(&uevent, "HID_UNIQ").and_then(non_empty),
        });
    (usb, name)
}

/// Identity and keyboard rank of an event node's parent input device.
fn input_identity(class_entry: &Path) -> (Option<UsbIdentity>, Option<String>, KeyRank) {
    let dev = class_entry.join("device");
    let vid = read_attr(&dev.join("id").join("vendor")).and_then(|s| parse_hex16(&s));
    let pid = read_attr(&dev.join("id").join("product")).and_then(|s| parse_hex16(&s));
    let usb = vid.zip(pid).map(|(vid, pid)| UsbIdentity {
        vid,
        pid,
        serial: read_attr(&dev.join("uniq")),
    });
    let name = read_attr(&dev.join("name"));
    let keys = read_attr(&dev.join("capabilities").join("key"))
        .map_or(KeyRank::NoKeys, |bitmap| key_rank(&bitmap));
    (usb, name, keys)
}

/// Ranks an input `capabilities/key` bitmap: space-separated hex words,
/// most significant first, each an `unsigned long`.
///
/// A full keyboard has every key in the lowest 32 bits except KEY_RESERVED
/// (Esc, digits, Q..P, A..D): the test udev's `input_id` uses for
/// ID_INPUT_KEYBOARD. Those bits are in the last word whatever the word
/// size.
pub(super) fn key_rank(bitmap: &str) -> KeyRank {
    let mut words = Vec::new();
    for word in bitmap.split_whitespace() {
        match parse_hex(word, 16) {
            Some(w) => words.push(w),
            None => return KeyRank::NoKeys,
        }
    }
    const FIRST_32_KEYS: u64 = 0xFFFF_FFFE;
    match words.last() {
        Some(low) if low & FIRST_32_KEYS == FIRST_32_KEYS => KeyRank::Keyboard,
        _ if words.iter().any(|&w| w != 0) => KeyRank::SomeKeys,
        _ => KeyRank::NoKeys,
    }
}

/// Walks up from the class device to the USB device directory (the first
/// ancestor with `idVendor`) and reads its identity and product name.
///
/// `device` is canonicalized first so real symlinks and the plain
/// directories of a test tree behave alike; the walk stops at the sysfs
/// root.
fn usb_ancestor(
    canonical_root: &Path,
    class_entry: &Path,
) -> Option<(UsbIdentity, Option<String>)> {
    let start = fs::canonicalize(class_entry.join("device")).ok()?;
    for dir in start.ancestors() {
        if dir == canonical_root || !dir.starts_with(canonical_root) {
            break;
        }
        if dir.join("idVendor").is_file() {
            // Stop at the first one even if it is garbage: climbing further
            // would report the hub's identity as the device's.
            let vid = read_attr(&dir.join("idVendor")).and_then(|s| parse_hex16(&s))?;
            let pid = read_attr(&dir.join("idProduct")).and_then(|s| parse_hex16(&s))?;
            let usb = UsbIdentity {
                vid,
                pid,
                serial: read_attr(&dir.join("serial")),
            };
            return Some((usb, read_attr(&dir.join("product"))));
        }
    }
    None
}

/// Reads a sysfs file's bytes, or `None` if it is not a readable regular
/// file. The file-type check keeps a FIFO in a bogus tree from blocking us.
pub(super) fn read_bytes(path: &Path) -> Option<Vec<u8>> {
    if !fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    File::open(path)
        .ok()?
        .take(MAX_ATTR)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// Reads a one-value attribute, trimmed; `None` if unreadable, not UTF-8
/// or empty.
pub(super) fn read_attr(path: &Path) -> Option<String> {
    String::from_utf8(read_bytes(path)?)
        .ok()
        .and_then(non_empty)
}

/// The value of `KEY=value` in uevent content. Lines are decoded one by
/// one so a bad byte in one value does not hide the others.
pub(super) fn uevent_value(uevent: &[u8], key: &str) -> Option<String> {
    uevent.split(|&b| b == b'\n').find_map(|line| {
        let value = line.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        std::str::from_utf8(value).ok().map(str::to_owned)
    })
}

/// Parses `HID_ID=BBBB:VVVVVVVV:PPPPPPPP` (bus, vendor, product; hex).
pub(super) fn parse_hid_id(id: &str) -> Option<(u16, u16, u16)> {
    let mut parts = id.trim().split(':');
    let bus = parse_hex(parts.next()?, 8)?;
    let vid = parse_hex(parts.next()?, 8)?;
    let pid = parse_hex(parts.next()?, 8)?;
    if parts.next().is_some() {
        return None;
    }
    Some((
        u16::try_from(bus).ok()?,
        u16::try_from(vid).ok()?,
        u16::try_from(pid).ok()?,
    ))
}

/// Parses a 1-4 digit hex ID such as `idVendor` (`0c2e`).
pub(super) fn parse_hex16(s: &str) -> Option<u16> {
    u16::try_from(parse_hex(s.trim(), 4)?).ok()
}

/// Strict hex: digits only, at most `max_digits` (`from_str_radix` alone
/// would accept a leading `+`).
fn parse_hex(s: &str, max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}
