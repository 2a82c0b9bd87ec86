//! Details shown by `posbridge devices` beyond identity and access: a HID
//! node's usage page (what kind of HID device it says it is) and the
//! stable `/dev/input/by-id/` name of an input node.

use std::fs;
use std::path::{Path, PathBuf};

use super::sysfs::{class_dir, read_bytes};
use super::{DEV_ROOT, DeviceClass, SYSFS_ROOT};

/// The first Usage Page item of a HID report descriptor: the page of the
/// device's first top-level collection, which says what it is (0x01
/// keyboard or mouse, 0x8C bar code scanner, 0xFF00+ vendor-defined...).
///
/// Walks the items without interpreting them; `None` if the descriptor
/// has no Usage Page or is truncated before one. Never panics.
pub fn first_usage_page(descriptor: &[u8]) -> Option<u16> {
    let mut i = 0usize;
    while let Some(&prefix) = descriptor.get(i) {
        if prefix == 0xFE {
            // Long item: size byte, tag byte, data. None defines a page.
            let size = usize::from(*descriptor.get(i + 1)?);
            i = i.checked_add(3 + size)?;
            continue;
        }
        let size = match prefix & 0x03 {
            3 => 4,
            n => usize::from(n),
        };
        let data = descriptor.get(i + 1..i + 1 + size)?;
        // Global item (type 1), tag 0: Usage Page. Pages are 16 bits; a
        // 4-byte item's upper half would be a usage, not a page.
        if prefix & 0xFC == 0x04 {
            return match *data {
                [a] => Some(u16::from(a)),
                [a, b, ..] => Some(u16::from_le_bytes([a, b])),
                [] => Some(0),
            };
        }
        i += 1 + size;
    }
    None
}

/// A short name for common usage pages, for the device list.
pub fn usage_page_name(page: u16) -> Option<&'static str> {
    Some(match page {
        0x01 => "generic desktop (keyboard/mouse)",
        0x07 => "keyboard",
        0x0C => "consumer",
        0x8C => "bar code scanner (HID POS)",
        0x8D => "scale",
        0x8E => "magnetic stripe reader",
        0xFF00..=0xFFFF => "vendor-defined",
        _ => return None,
    })
}

/// The usage page of hidraw node `node` (such as `/dev/hidraw0`), from
/// `device/report_descriptor` under sysfs. `None` when unreadable.
pub fn hidraw_usage_page(sysfs_root: &Path, node: &Path) -> Option<u16> {
    let name = node.file_name()?;
    let path = class_dir(sysfs_root, DeviceClass::Hidraw)
        .join(name)
        .join("device")
        .join("report_descriptor");
    first_usage_page(&read_bytes(&path)?)
}

/// [`hidraw_usage_page`] on the real `/sys`.
pub fn hidraw_usage_page_system(node: &Path) -> Option<u16> {
    hidraw_usage_page(Path::new(SYSFS_ROOT), node)
}

/// The symlink in `by_id_dir` (such as `/dev/input/by-id`) that points at
/// `node`, the first by name if several do. Input node numbers change with
/// plug order; this name does not, so it is what a configuration should use.
pub fn by_id_link(by_id_dir: &Path, node: &Path) -> Option<PathBuf> {
    let want = fs::canonicalize(node).ok()?;
    let mut links: Vec<PathBuf> = fs::read_dir(by_id_dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
                && fs::canonicalize(p).is_ok_and(|target| target == want)
        })
        .collect();
    links.sort();
    links.into_iter().next()
}

/// [`by_id_link`] in the real `/dev/input/by-id`.
pub fn input_by_id_link_system(node: &Path) -> Option<PathBuf> {
    by_id_link(&Path::new(DEV_ROOT).join("input").join("by-id"), node)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use proptest::prelude::*;

    use super::*;

    /// A barcode scanner's descriptor start: Usage Page (POS Bar Code
    /// Scanner), Usage (Bar Code Scanner), Collection (Application)...
    const SCANNER: &[u8] = &[0x06, 0x8C, 0x00, 0x09, 0x02, 0xA1, 0x01];
    /// The boot keyboard descriptor from the HID spec, appendix B.1.
    const KEYBOARD: &[u8] = &[0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07];

    #[test]
    fn usage_page_of_common_descriptors() {
        assert_eq!(first_usage_page(KEYBOARD), Some(0x01));
        assert_eq!(first_usage_page(SCANNER), Some(0x8C));
        // Vendor page, 2 bytes, after a Report ID and a long item.
        let vendor = [0x85, 0x01, 0xFE, 0x02, 0x10, 0xAA, 0xBB, 0x06, 0x00, 0xFF];
        assert_eq!(first_usage_page(&vendor), Some(0xFF00));
        // 4-byte item: the low 16 bits.
        assert_eq!(
            first_usage_page(&[0x07, 0x8E, 0x00, 0x00, 0x00]),
            Some(0x8E)
        );
        assert_eq!(first_usage_page(&[]), None);
        assert_eq!(first_usage_page(&[0x09, 0x02, 0xA1, 0x01]), None);
        // Truncated inside the Usage Page item.
        assert_eq!(first_usage_page(&[0x06, 0x8C]), None);
        assert_eq!(first_usage_page(&[0xFE]), None);
        assert_eq!(usage_page_name(0x8C), Some("bar code scanner (HID POS)"));
        assert_eq!(usage_page_name(0xFF42), Some("vendor-defined"));
        assert_eq!(usage_page_name(0x42), None);
    }

    #[test]
    fn usage_page_from_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sys/class/hidraw/hidraw2/device");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("report_descriptor"), SCANNER).unwrap();
        let sys = tmp.path().join("sys");
        assert_eq!(
            hidraw_usage_page(&sys, Path::new("/dev/hidraw2")),
            Some(0x8C)
        );
        assert_eq!(hidraw_usage_page(&sys, Path::new("/dev/hidraw3")), None);
    }

    #[test]
    fn by_id_link_resolves_relative_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("dev/input");
        let by_id = input.join("by-id");
        fs::create_dir_all(&by_id).unwrap();
        for n in ["event3", "event4"] {
            fs::write(input.join(n), "").unwrap();
        }
        // As udev makes them: relative targets.
        symlink("../event3", by_id.join("usb-Acme_Reader_1-event-kbd")).unwrap();
        symlink("../event4", by_id.join("usb-Acme_Reader_1-if01-event-kbd")).unwrap();
        symlink("../event3", by_id.join("usb-Acme_Reader_1-event-if00")).unwrap();
        symlink("../gone", by_id.join("usb-dangling")).unwrap();
        fs::write(by_id.join("not-a-link"), "").unwrap();
        assert_eq!(
            by_id_link(&by_id, &input.join("event3")),
            Some(by_id.join("usb-Acme_Reader_1-event-if00"))
        );
        assert_eq!(
            by_id_link(&by_id, &input.join("event4")),
            Some(by_id.join("usb-Acme_Reader_1-if01-event-kbd"))
        );
        fs::write(input.join("event9"), "").unwrap();
        assert_eq!(by_id_link(&by_id, &input.join("event9")), None);
        assert_eq!(
            by_id_link(&tmp.path().join("nope"), &input.join("event3")),
            None
        );
        assert_eq!(by_id_link(&by_id, &input.join("missing")), None);
    }

    proptest! {
        #[test]
        fn usage_page_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = first_usage_page(&bytes);
        }
    }
}
