//! Tests against fake sysfs and /dev trees in a tempdir.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::access::{denied_reason, parse_group_name, probe_access_with};
use super::sysfs::{KeyRank, key_rank, parse_hex16, parse_hid_id, uevent_value};
use super::*;

const USB_BUS: &str = "sys/devices/pci0000:00/0000:00:14.0/usb1";
const FULL_KEYBOARD: &str = "1000000000007 ff9f207ac14057ff febeffdfffefffff fffffffffffffffe";
const CONSUMER_KEYS: &str = "1 0 0 0 0 0 0 0 0 0 0 0 3e00000000 0";

/// A fake sysfs root (`<tmp>/sys`) and dev root (`<tmp>/dev`).
struct Fake {
    tmp: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let fake = Fake {
            tmp: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(fake.sys()).unwrap();
        fs::create_dir_all(fake.dev()).unwrap();
        fake
    }

    fn sys(&self) -> PathBuf {
        self.tmp.path().join("sys")
    }

    fn dev(&self) -> PathBuf {
        self.tmp.path().join("dev")
    }

    /// Writes a file at `rel` (relative to the tempdir), creating parents.
    fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.tmp.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    /// Creates a symlink at `rel` pointing to `target` (taken literally, so
    /// relative targets resolve from the link's directory as in sysfs).
    fn link(&self, rel: &str, target: &str) {
        let path = self.tmp.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    /// Creates an (empty, regular-file) device node under dev/.
    fn node(&self, rel: &str) -> PathBuf {
        self.file(&format!("dev/{rel}"), "")
    }

    /// A USB device directory under the fake bus; returns its path
    /// relative to the tempdir.
    fn usb_device(
        &self,
        port: &str,
        vid: &str,
        pid: &str,
        serial: Option<&str>,
        product: &str,
    ) -> String {
        let dir = format!("{USB_BUS}/{port}");
        self.file(&format!("{dir}/idVendor"), format!("{vid}\n"));
        self.file(&format!("{dir}/idProduct"), format!("{pid}\n"));
        self.file(&format!("{dir}/product"), format!("{product}\n"));
        if let Some(serial) = serial {
            self.file(&format!("{dir}/serial"), format!("{serial}\n"));
        }
        dir
    }

    /// A hidraw node laid out with plain directories, with this HID uevent.
    fn hidraw(&self, n: u32, hid_uevent: impl AsRef<[u8]>) -> PathBuf {
        let class = format!("sys/class/hidraw/hidraw{n}");
        self.file(
            &format!("{class}/uevent"),
            format!("MAJOR=241\nMINOR={n}\nDEVNAME=hidraw{n}\n"),
        );
        self.file(&format!("{class}/device/uevent"), hid_uevent);
        self.node(&format!("hidraw{n}"))
    }

    /// An input event node laid out as the kernel does: the class entry is
    /// a symlink into the device tree and `device` points at the parent
    /// `inputM`.
    fn event(&self, n: u32, input: &str, vid: &str, pid: &str, uniq: &str, keys: &str) -> PathBuf {
        let input_dir = format!("{USB_BUS}/1-4/1-4:1.0/0003:{vid}:{pid}.0001/input/{input}");
        self.file(&format!("{input_dir}/id/vendor"), format!("{vid}\n"));
        self.file(&format!("{input_dir}/id/product"), format!("{pid}\n"));
        self.file(&format!("{input_dir}/uniq"), format!("{uniq}\n"));
        self.file(&format!("{input_dir}/name"), "Scanner Keyboard\n");
        self.file(
            &format!("{input_dir}/capabilities/key"),
            format!("{keys}\n"),
        );
        let event_dir = format!("{input_dir}/event{n}");
        self.file(
            &format!("{event_dir}/uevent"),
            format!("MAJOR=13\nMINOR={}\nDEVNAME=input/event{n}\n", 64 + n),
        );
        self.link(&format!("{event_dir}/device"), "..");
        self.link(
            &format!("sys/class/input/event{n}"),
            &format!("../../{}", event_dir.trim_start_matches("sys/")),
        );
        self.node(&format!("input/event{n}"))
    }
}

fn hid_uevent(vid: &str, pid: &str, uniq: &str) -> String {
    format!(
        "DRIVER=hid-generic\nHID_ID=0003:0000{vid}:0000{pid}\nHID_NAME=Honeywell Scanner\n\
         HID_PHYS=usb-0000:00:14.0-2/input0\nHID_UNIQ={uniq}\nMODALIAS=hid:b0003g0001v0000{vid}p0000{pid}\n"
    )
}

#[test]
fn hidraw_matches_by_vid_pid() {
    let fake = Fake::new();
    fake.hidraw(0, hid_uevent("046D", "C52B", ""));
    let scanner = fake.hidraw(1, hid_uevent("0C2E", "0B61", "17310B4321"));

    let found = find_hidraw(&fake.sys(), &fake.dev(), &UsbIdentity::new(0x0c2e, 0x0b61)).unwrap();
    assert_eq!(found, scanner);

    let listed = list(&fake.sys(), &fake.dev());
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].class, DeviceClass::Hidraw);
    assert_eq!(listed[1].node, scanner);
    assert_eq!(
        listed[1].usb,
        Some(UsbIdentity::new(0x0c2e, 0x0b61).with_serial("17310B4321"))
    );
    assert_eq!(listed[1].name.as_deref(), Some("Honeywell Scanner"));
    // An empty HID_UNIQ is no serial, not an empty one.
    assert_eq!(listed[0].usb, Some(UsbIdentity::new(0x046d, 0xc52b)));
}

#[test]
fn hidraw_matches_by_serial() {
    let fake = Fake::new();
    fake.hidraw(0, hid_uevent("0C2E", "0B61", "AAA111"));
    let second = fake.hidraw(1, hid_uevent("0C2E", "0B61", "BBB222"));
    let wanted = UsbIdentity::new(0x0c2e, 0x0b61).with_serial("BBB222");
    assert_eq!(
        find_hidraw(&fake.sys(), &fake.dev(), &wanted).unwrap(),
        second
    );

    let wrong = UsbIdentity::new(0x0c2e, 0x0b61).with_serial("CCC333");
    let err = find_hidraw(&fake.sys(), &fake.dev(), &wrong).unwrap_err();
    assert!(matches!(err, DiscoverError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("serial \"CCC333\""), "{err}");
}

#[test]
fn hidraw_ambiguous_without_serial() {
    let fake = Fake::new();
    let a = fake.hidraw(2, hid_uevent("0C2E", "0B61", "AAA111"));
    let b = fake.hidraw(10, hid_uevent("0C2E", "0B61", "BBB222"));
    for wanted in [
        UsbIdentity::new(0x0c2e, 0x0b61),
        // An empty serial from a config file means "not set".
        UsbIdentity::new(0x0c2e, 0x0b61).with_serial(""),
    ] {
        let err = find_hidraw(&fake.sys(), &fake.dev(), &wanted).unwrap_err();
        match &err {
            // Numeric order: hidraw2 before hidraw10.
            DiscoverError::Ambiguous { candidates, .. } => {
                assert_eq!(candidates, &vec![a.clone(), b.clone()])
            }
            other => panic!("expected Ambiguous, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("matches 2 devices"), "{msg}");
        assert!(msg.contains("serial number"), "{msg}");
    }
}

#[test]
fn not_found_when_absent_or_class_missing() {
    let fake = Fake::new();
    let wanted = UsbIdentity::new(0x0c2e, 0x0b61);
    // No class/hidraw directory at all (hidraw module not loaded).
    let err = find_hidraw(&fake.sys(), &fake.dev(), &wanted).unwrap_err();
    assert!(matches!(err, DiscoverError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("hidraw device 0c2e:0b61"), "{err}");
    // Nor a sysfs root.
    let gone = fake.tmp.path().join("no-such-sys");
    assert!(list(&gone, &fake.dev()).is_empty());
    assert!(matches!(
        find_tty(&gone, &fake.dev(), &wanted),
        Err(DiscoverError::NotFound { .. })
    ));
}

#[test]
fn input_chooses_the_keyboard_node() {
    let fake = Fake::new();
    // One scanner, three event nodes: system control, keyboard, consumer
    // control, as many HID keyboard-wedge scanners present themselves.
    fake.event(3, "input5", "0c2e", "0b61", "", "1c000 0 0 0 0 0");
    let keyboard = fake.event(4, "input6", "0c2e", "0b61", "", FULL_KEYBOARD);
    fake.event(5, "input7", "0c2e", "0b61", "", CONSUMER_KEYS);
    // Another device's keyboard must not interfere.
    fake.event(6, "input8", "046d", "c52b", "", FULL_KEYBOARD);

    let wanted = UsbIdentity::new(0x0c2e, 0x0b61);
    assert_eq!(
        find_input(&fake.sys(), &fake.dev(), &wanted).unwrap(),
        keyboard
    );
    assert_eq!(keyboard, fake.dev().join("input/event4"));

    let listed = list(&fake.sys(), &fake.dev());
    let event4 = listed.iter().find(|d| d.node == keyboard).unwrap();
    assert_eq!(event4.class, DeviceClass::Input);
    assert_eq!(event4.name.as_deref(), Some("Scanner Keyboard"));
    // Empty uniq is no serial.
    assert_eq!(event4.usb, Some(wanted));
}

#[test]
fn input_falls_back_to_some_keys_and_reports_two_keyboards() {
    let fake = Fake::new();
    fake.event(0, "input0", "0c2e", "0b61", "S1", "0");
    let some = fake.event(1, "input1", "0c2e", "0b61", "S1", CONSUMER_KEYS);
    let wanted = UsbIdentity::new(0x0c2e, 0x0b61);
    assert_eq!(find_input(&fake.sys(), &fake.dev(), &wanted).unwrap(), some);

    // Two identical scanners: two keyboards, which only a serial tells apart.
    let first = fake.event(2, "input2", "0c2e", "0b61", "S1", FULL_KEYBOARD);
    let second = fake.event(3, "input3", "0c2e", "0b61", "S2", FULL_KEYBOARD);
    match find_input(&fake.sys(), &fake.dev(), &wanted) {
        Err(DiscoverError::Ambiguous { candidates, .. }) => {
            assert_eq!(candidates, vec![first.clone(), second.clone()])
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    let by_serial = wanted.with_serial("S2");
    assert_eq!(
        find_input(&fake.sys(), &fake.dev(), &by_serial).unwrap(),
        second
    );
}

#[test]
fn key_bitmaps_rank() {
    assert_eq!(key_rank("0"), KeyRank::NoKeys);
    assert_eq!(key_rank(""), KeyRank::NoKeys);
    assert_eq!(key_rank(FULL_KEYBOARD), KeyRank::Keyboard);
    // 32-bit kernels print 8-digit words; the low word decides the same way.
    assert_eq!(key_rank("10000 fffffffe"), KeyRank::Keyboard);
    assert_eq!(key_rank(CONSUMER_KEYS), KeyRank::SomeKeys);
    // Missing one digit key is not a full keyboard.
    assert_eq!(key_rank("fffffefe"), KeyRank::SomeKeys);
    assert_eq!(key_rank("fffffffe zz"), KeyRank::NoKeys);
    assert_eq!(key_rank("+fffffffe"), KeyRank::NoKeys);
    assert_eq!(key_rank("1ffffffffffffffffe"), KeyRank::NoKeys);
}

#[test]
fn tty_via_symlinked_usb_ancestor() {
    let fake = Fake::new();
    // ttyACM: the tty's parent is the CDC interface.
    let acm_dev = fake.usb_device("1-2", "0dd4", "0205", Some("PRN0042"), "Custom VKP80III");
    let acm_tty = format!("{acm_dev}/1-2:1.0/tty/ttyACM0");
    fake.file(
        &format!("{acm_tty}/uevent"),
        "MAJOR=166\nMINOR=0\nDEVNAME=ttyACM0\n",
    );
    fake.link(&format!("{acm_tty}/device"), "../../../1-2:1.0");
    fake.link(
        "sys/class/tty/ttyACM0",
        "../../devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/tty/ttyACM0",
    );
    let acm_node = fake.node("ttyACM0");

    // ttyUSB: one level more, the usb-serial port device.
    let ftdi_dev = fake.usb_device("1-3", "0403", "6001", Some("FT9ZXQ"), "FT232R USB UART");
    let usb_tty = format!("{ftdi_dev}/1-3:1.0/ttyUSB0/tty/ttyUSB0");
    fake.file(
        &format!("{usb_tty}/uevent"),
        "MAJOR=188\nMINOR=0\nDEVNAME=ttyUSB0\n",
    );
    fake.link(&format!("{usb_tty}/device"), "../../../ttyUSB0");
    fake.link(
        "sys/class/tty/ttyUSB0",
        "../../devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/ttyUSB0/tty/ttyUSB0",
    );
    let ftdi_node = fake.node("ttyUSB0");

    // A non-USB tty must be ignored.
    fs::create_dir_all(fake.sys().join("class/tty/ttyS0")).unwrap();

    let printer = UsbIdentity::new(0x0dd4, 0x0205);
    assert_eq!(
        find_tty(&fake.sys(), &fake.dev(), &printer).unwrap(),
        acm_node
    );
    let ftdi = UsbIdentity::new(0x0403, 0x6001).with_serial("FT9ZXQ");
    assert_eq!(
        find_tty(&fake.sys(), &fake.dev(), &ftdi).unwrap(),
        ftdi_node
    );

    let listed = list(&fake.sys(), &fake.dev());
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].node, acm_node);
    assert_eq!(listed[0].class, DeviceClass::Tty);
    assert_eq!(listed[0].usb, Some(printer.with_serial("PRN0042")));
    assert_eq!(listed[0].name.as_deref(), Some("Custom VKP80III"));
    assert_eq!(listed[1].usb, Some(ftdi));
    // Regular files stand in for nodes; whoever runs the tests owns them.
    assert_eq!(listed[0].access, Access::ReadWrite);
}

#[test]
fn usblp_via_plain_directories_and_devname_subdir() {
    let fake = Fake::new();
    let printer_dev = fake.usb_device("1-5", "04b8", "0202", None, "TM-T88V");
    let lp = format!("{printer_dev}/1-5:1.0/usbmisc/lp0");
    fake.file(
        &format!("{lp}/uevent"),
        "MAJOR=180\nMINOR=0\nDEVNAME=usb/lp0\n",
    );
    fake.link("sys/class/usbmisc/lp0", &format!("../../../{lp}"));
    // `device` as a plain directory rather than a symlink: the walk up from
    // it still passes through the interface to the USB device.
    fs::create_dir_all(fake.tmp.path().join(&lp).join("device")).unwrap();
    // hiddev nodes share the usbmisc class and are not printers.
    fs::create_dir_all(fake.sys().join("class/usbmisc/hiddev0")).unwrap();

    let wanted = UsbIdentity::new(0x04b8, 0x0202);
    let node = find_usblp(&fake.sys(), &fake.dev(), &wanted).unwrap();
    assert_eq!(node, fake.dev().join("usb/lp0"));

    let listed = list(&fake.sys(), &fake.dev());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].class, DeviceClass::UsbLp);
    assert_eq!(listed[0].name.as_deref(), Some("TM-T88V"));
    assert_eq!(listed[0].usb, Some(wanted));
    // No node was created under dev/usb/.
    assert_eq!(listed[0].access, Access::Missing);
}

#[test]
fn usb_walk_stops_at_first_idvendor_and_at_the_root() {
    let fake = Fake::new();
    // Garbage idVendor on the device: do not climb on to the hub's IDs.
    fake.file(&format!("{USB_BUS}/idVendor"), "1d6b\n");
    fake.file(&format!("{USB_BUS}/idProduct"), "0002\n");
    fake.file(&format!("{USB_BUS}/1-6/idVendor"), "not hex\n");
    fake.file(&format!("{USB_BUS}/1-6/idProduct"), "0001\n");
    fake.file(
        &format!("{USB_BUS}/1-6/1-6:1.0/tty/ttyACM1/uevent"),
        "DEVNAME=ttyACM1\n",
    );
    fake.link(
        &format!("{USB_BUS}/1-6/1-6:1.0/tty/ttyACM1/device"),
        "../../../1-6:1.0",
    );
    fake.link(
        "sys/class/tty/ttyACM1",
        "../../devices/pci0000:00/0000:00:14.0/usb1/1-6/1-6:1.0/tty/ttyACM1",
    );
    // `device` escaping the sysfs root, into a dir that has idVendor.
    fake.file("outside/idVendor", "1234\n");
    fake.file("outside/idProduct", "5678\n");
    fs::create_dir_all(fake.sys().join("class/tty/ttyACM2")).unwrap();
    fake.link("sys/class/tty/ttyACM2/device", "../../../../outside");
    // A `device` symlink loop.
    fs::create_dir_all(fake.sys().join("class/tty/ttyACM3")).unwrap();
    fake.link("sys/class/tty/ttyACM3/device", "device");

    let listed = list(&fake.sys(), &fake.dev());
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|d| d.usb.is_none()), "{listed:#?}");
    assert!(matches!(
        find_tty(&fake.sys(), &fake.dev(), &UsbIdentity::new(0x1d6b, 0x0002)),
        Err(DiscoverError::NotFound { .. })
    ));
    assert!(matches!(
        find_tty(&fake.sys(), &fake.dev(), &UsbIdentity::new(0x1234, 0x5678)),
        Err(DiscoverError::NotFound { .. })
    ));
}

#[test]
fn garbage_sysfs_content_is_skipped() {
    let fake = Fake::new();
    let good = fake.hidraw(0, hid_uevent("0C2E", "0B61", "OK"));
    fake.hidraw(1, "HID_ID=garbage\nHID_NAME=Broken\n");
    fake.hidraw(
        2,
        b"HID_ID=\xff\xfe:0000:0000\nHID_NAME=\xc3\x28\n".as_slice(),
    );
    fake.hidraw(3, "HID_ID=0003:+0000C2E:00000B61\n");
    fake.hidraw(4, "HID_ID=0003:00010C2E:00000B61\n"); // vendor over 16 bits
    fake.hidraw(5, "HID_ID=0003:00000C2E\n");
    fake.hidraw(6, "HID_ID=0003:00000C2E:00000B61:0000\n");
    fake.hidraw(7, [0u8; 300]);
    // No device/uevent at all.
    fake.file("sys/class/hidraw/hidraw8/uevent", "DEVNAME=hidraw8\n");
    // Entries that are not devices of this class.
    fake.file("sys/class/hidraw/hidraw9", "a file, not a directory");
    fs::create_dir_all(fake.sys().join("class/hidraw/hidrawX")).unwrap();
    fs::create_dir_all(fake.sys().join("class/hidraw/hidraw99999999999999")).unwrap();
    fs::create_dir_all(fake.sys().join("class/hidraw/power")).unwrap();
    // DEVNAME trying to leave /dev falls back to the default node name.
    fake.file(
        "sys/class/hidraw/hidraw11/uevent",
        "DEVNAME=../../etc/shadow\n",
    );
    // Input devices with bad IDs and bad capability bitmaps.
    fake.event(0, "input0", "zzzz", "0b61", "", FULL_KEYBOARD);
    fake.event(1, "input1", "0c2e0", "0b61", "", FULL_KEYBOARD);
    fake.file("sys/class/input/event2/uevent", "DEVNAME=input/event2\n");
    fake.file(
        "sys/class/input/event2/device/id/vendor",
        b"\xff\xff".as_slice(),
    );

    let listed = list(&fake.sys(), &fake.dev());
    let nodes: Vec<_> = listed.iter().map(|d| d.node.clone()).collect();
    let dev = fake.dev();
    let mut expected: Vec<PathBuf> = (0..=8).map(|n| dev.join(format!("hidraw{n}"))).collect();
    expected.push(dev.join("hidraw11"));
    expected.extend((0..=2).map(|n| dev.join(format!("input/event{n}"))));
    assert_eq!(nodes, expected);
    // Only the good one has an identity; the rest are listed without.
    let identified: Vec<_> = listed.iter().filter(|d| d.usb.is_some()).collect();
    assert_eq!(identified.len(), 1);
    assert_eq!(identified[0].node, good);
    assert_eq!(listed[1].name.as_deref(), Some("Broken"));
    assert_eq!(listed[2].name, None);

    let wanted = UsbIdentity::new(0x0c2e, 0x0b61);
    assert_eq!(
        find_hidraw(&fake.sys(), &fake.dev(), &wanted).unwrap(),
        good
    );
    assert!(matches!(
        find_input(&fake.sys(), &fake.dev(), &wanted),
        Err(DiscoverError::NotFound { .. })
    ));
}

#[test]
fn parsers_reject_garbage() {
    assert_eq!(
        parse_hid_id("0003:00000C2E:00000B61"),
        Some((3, 0x0c2e, 0x0b61))
    );
    assert_eq!(
        parse_hid_id("0005:0000046D:0000B342\n"),
        Some((5, 0x046d, 0xb342))
    );
    assert_eq!(parse_hid_id("0003:0C2E"), None);
    assert_eq!(parse_hid_id("0003::00000B61"), None);
    assert_eq!(parse_hid_id("0003:-0000C2E:00000B61"), None);
    assert_eq!(parse_hid_id("0003:000000000C2E:00000B61"), None);
    assert_eq!(parse_hex16("0c2e\n"), Some(0x0c2e));
    assert_eq!(parse_hex16("C2E"), Some(0x0c2e));
    assert_eq!(parse_hex16(""), None);
    assert_eq!(parse_hex16("+c2e"), None);
    assert_eq!(parse_hex16("10000"), None);
    assert_eq!(
        uevent_value(b"A=1\nHID_NAME=\xff\nHID_ID=x\n", "HID_ID"),
        Some("x".to_owned())
    );
    assert_eq!(uevent_value(b"HID_NAME=\xff\n", "HID_NAME"), None);
    // A key that is a prefix of another must not match it.
    assert_eq!(uevent_value(b"HID_IDX=1\n", "HID_ID"), None);
}

#[test]
fn denied_reason_names_group_and_mode() {
    assert_eq!(
        denied_reason(0, 104, Some("input"), 0o020_660),
        "permission denied: owned by group input, mode 0660; add the service user to that \
         group or install systemd/60-posbridge.rules"
    );
    let unknown = denied_reason(0, 995, None, 0o020_640);
    assert!(unknown.contains("owned by gid 995, mode 0640"), "{unknown}");
    // Group bits clear: joining the group would not help, so don't say so.
    let owner_only = denied_reason(0, 0, Some("root"), 0o020_600);
    assert!(
        owner_only.contains("uid 0 and group root, mode 0600"),
        "{owner_only}"
    );
    assert!(!owner_only.contains("add the service user"), "{owner_only}");
    assert!(owner_only.contains("60-posbridge.rules"), "{owner_only}");
}

#[test]
fn group_file_parsing() {
    let content = "# comment\n\nroot:x:0:\nbroken line\n+nis::\nbad:x:notanumber:\n\
                   dialout:x:20:alice,bob\n:x:21:\ninput:x:104:\n";
    assert_eq!(parse_group_name(content, 0), Some("root"));
    assert_eq!(parse_group_name(content, 20), Some("dialout"));
    assert_eq!(parse_group_name(content, 104), Some("input"));
    assert_eq!(parse_group_name(content, 21), None);
    assert_eq!(parse_group_name(content, 999), None);
    assert_eq!(parse_group_name("", 0), None);
}

#[test]
fn access_probe_missing_and_denied() {
    let fake = Fake::new();
    let groups = fake.file("group", "posbridge:x:4242:\n");
    assert_eq!(
        probe_access_with(&fake.dev().join("hidraw7"), &groups),
        Access::Missing
    );
    assert_eq!(
        probe_access(&fake.dev().join("nope/hidraw7")),
        Access::Missing
    );

    let node = fake.node("hidraw0");
    assert_eq!(probe_access_with(&node, &groups), Access::ReadWrite);

    fs::set_permissions(&node, fs::Permissions::from_mode(0o000)).unwrap();
    match probe_access_with(&node, &groups) {
        // Root bypasses mode bits (as CI runs), so this only shows that the
        // probe copes; the reason text is covered by denied_reason tests.
        Access::ReadWrite => {}
        Access::Denied { reason } => {
            assert!(reason.contains("mode 0000"), "{reason}");
            assert!(reason.starts_with("permission denied"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }

    // A hidraw listed in sysfs whose node devtmpfs never made.
    fake.hidraw(1, hid_uevent("0C2E", "0B61", ""));
    fs::remove_file(fake.dev().join("hidraw1")).unwrap();
    let listed = list(&fake.sys(), &fake.dev());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].access, Access::Missing);
}

#[test]
fn display_is_one_readable_line() {
    let dev = FoundDevice {
        class: DeviceClass::Hidraw,
        node: PathBuf::from("/dev/hidraw0"),
        usb: Some(UsbIdentity::new(0x0c2e, 0x0b61).with_serial("A1")),
        name: Some("Honeywell Scanner".to_owned()),
        access: Access::Denied {
            reason: "permission denied: owned by group plugdev, mode 0660".to_owned(),
        },
    };
    assert_eq!(
        dev.to_string(),
        "hidraw /dev/hidraw0 0c2e:0b61 serial \"A1\" \"Honeywell Scanner\": denied \
         (permission denied: owned by group plugdev, mode 0660)"
    );
}

/// Lists the real machine's devices; run with `--ignored --nocapture`.
#[test]
#[ignore = "reads the real /sys and /dev"]
fn list_real_machine() {
    let devices = list(Path::new("/sys"), Path::new("/dev"));
    println!("{} device(s)", devices.len());
    for device in &devices {
        println!("{device}");
    }
}
