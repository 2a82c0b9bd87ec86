//! `posbridge devices`: what is plugged in, whether the daemon could open
//! it, and a configuration snippet for each.

use std::path::PathBuf;

use posbridge_drivers::discover::{self, Access, DeviceClass, FoundDevice};

/// What is looked up per device beyond [`FoundDevice`], kept apart so
/// [`snippet`] stays a pure function of what was found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extra {
    /// A hidraw node's first usage page, from its report descriptor.
    pub usage_page: Option<u16>,
    /// An input node's stable `/dev/input/by-id/` name.
    pub by_id: Option<PathBuf>,
}

impl Extra {
    /// Looks the details up on the running system.
    fn lookup(d: &FoundDevice) -> Extra {
        match d.class {
            DeviceClass::Hidraw => Extra {
                usage_page: discover::hidraw_usage_page_system(&d.node),
                by_id: None,
            },
            DeviceClass::Input => Extra {
                usage_page: None,
                by_id: discover::input_by_id_link_system(&d.node),
            },
            _ => Extra::default(),
        }
    }
}

/// `posbridge devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// The user the daemon runs as, for whom access is judged.
    #[arg(long = "as", value_name = "USER", default_value = "posbridge")]
    pub as_user: String,
}

/// The user access is judged for: the daemon's, not whoever runs the
/// command (under sudo everything looks openable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judge {
    /// The user's name, as shown.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary and supplementary gids.
    pub gids: Vec<u32>,
    /// Why this is not the user asked for, when it is not.
    pub note: Option<String>,
}

impl Judge {
    /// Looks `name` up; when it does not exist, falls back to the current
    /// user and says so in [`Judge::note`].
    pub fn for_user(name: &str) -> Judge {
        match lookup(name) {
            Some(j) => j,
            None => {
                let uid = nix::unistd::geteuid();
                let me = nix::unistd::User::from_uid(uid).ok().flatten();
                let mut j = me.and_then(|u| lookup(&u.name)).unwrap_or_else(|| Judge {
                    name: uid.to_string(),
                    uid: uid.as_raw(),
                    gids: nix::unistd::getgroups()
                        .map(|g| g.iter().map(|g| g.as_raw()).collect())
                        .unwrap_or_default(),
                    note: None,
                });
                j.note = Some(format!(
                    "user {name} does not exist: judging as the current user {} instead",
                    j.name
                ));
                j
            }
        }
    }

    /// Whether this user can open `node`, and why not. The current user's
    /// own access is probed by opening (which also covers ACLs); another
    /// user's is judged from the mode bits.
    pub fn access(&self, node: &std::path::Path) -> Access {
        use std::os::unix::fs::MetadataExt;
        if self.uid == nix::unistd::geteuid().as_raw() {
            return discover::probe_access(node);
        }
        let meta = match std::fs::metadata(node) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Access::Missing,
            Err(e) => {
                return Access::Denied {
                    reason: format!("cannot read its owner: {e}"),
                };
            }
        };
        match judge(meta.mode(), meta.uid(), meta.gid(), self.uid, &self.gids) {
            (true, true) => Access::ReadWrite,
            (true, false) => Access::ReadOnly,
            _ => Access::Denied {
                reason: self.denied(meta.mode(), meta.uid(), meta.gid()),
            },
        }
    }

    fn denied(&self, mode: u32, uid: u32, gid: u32) -> String {
        let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map_or_else(|| format!("gid {gid}"), |g| format!("group {}", g.name));
        let mode = mode & 0o7777;
        let advice = if mode & 0o060 == 0 {
            // Joining the group would not help: only a rule changing the
            // node's group or mode will.
            "which gives the group no access; install systemd/60-posbridge.rules".to_owned()
        } else {
            format!(
                "add {} to that {group} (usermod -aG) or install systemd/60-posbridge.rules",
                self.name
            )
        };
        format!(
            "permission denied for user {}: owned by uid {uid} and {group}, mode {mode:04o}, {advice}",
            self.name
        )
    }
}

fn lookup(name: &str) -> Option<Judge> {
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    let cname = std::ffi::CString::new(name).ok()?;
    let gids = nix::unistd::getgrouplist(&cname, user.gid)
        .map(|g| g.iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![user.gid.as_raw()]);
    Some(Judge {
        name: user.name,
        uid: user.uid.as_raw(),
        gids,
        note: None,
    })
}

/// Whether a user (`uid`, `gids`) may read and write a node with this
/// mode and owner, as the kernel's mode-bit check decides: the owner's
/// bits for the owner, else the group's for a member, else the others'.
/// Root passes. ACLs are not seen.
pub fn judge(mode: u32, owner_uid: u32, owner_gid: u32, uid: u32, gids: &[u32]) -> (bool, bool) {
    if uid == 0 {
        return (true, true);
    }
    let bits = if uid == owner_uid {
        mode >> 6
    } else if gids.contains(&owner_gid) {
        mode >> 3
    } else {
        mode
    };
    (bits & 0o4 != 0, bits & 0o2 != 0)
}

/// Prints every serial port, HID node, input device and USB printer found,
/// then every configured device node, flagging those the daemon's user
/// (`args.as_user`) could not open.
pub fn list(args: &DevicesArgs, config: Option<&crate::config::Config>) {
    let judge = Judge::for_user(&args.as_user);
    // The summary follows the locale; the udev advice stays as written,
    // being commands and file names.
    let ru = crate::api::i18n::locale_is_russian();
    if let Some(note) = &judge.note {
        if ru {
            println!(
                "примечание: пользователя {} нет, доступ оценён для текущего ({})",
                args.as_user, judge.name
            );
        } else {
            println!("note: {note}");
        }
    }
    if ru {
        println!(
            "доступ оценён для пользователя {} (uid {})",
            judge.name, judge.uid
        );
    } else {
        println!("access judged as user {} (uid {})", judge.name, judge.uid);
    }
    let found = discover::list_system();
    if found.is_empty() {
        println!("no serial, HID, input or USB printer devices found");
    }
    for (i, d) in found.iter().enumerate() {
        let mut d = d.clone();
        d.access = judge.access(&d.node);
        println!("{d}");
        if let Access::Denied { reason } = &d.access {
            println!("  ! {reason}");
        }
        let extra = Extra::lookup(&d);
        if let Some(page) = extra.usage_page {
            let name = discover::usage_page_name(page).unwrap_or("other");
            println!("  usage page {page:#06x}: {name}");
        }
        if let Some(link) = &extra.by_id {
            println!("  by-id: {}", link.display());
        }
        println!("{}", indent(&snippet(&d, &extra, i)));
    }
    let Some(config) = config else { return };
    for entry in crate::devices::DeviceEntry::from_config(config) {
        let (node, _) = crate::web::console::state::where_is(&entry);
        let Some(node) = node else { continue };
        let access = judge.access(&node);
        if ru {
            let verdict = match &access {
                Access::ReadWrite => "чтение и запись".to_owned(),
                Access::ReadOnly => "только чтение".to_owned(),
                Access::Missing => "нет устройства".to_owned(),
                Access::Denied { reason } => format!("нет доступа ({reason})"),
            };
            println!("настроено {}: {} {verdict}", entry.name(), node.display());
        } else {
            println!("configured {}: {} {access}", entry.name(), node.display());
        }
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `[reader.hid]` report format a usage page suggests, with what the
/// technician may still have to change.
fn hid_report(page: Option<u16>) -> &'static str {
    match page {
        Some(0x8C) => "report = \"pos_scanner\"\n",
        // Vendor pages need the reader's own layout from its manual: the
        // snippet must stay loadable, so it suggests it in a comment.
        Some(0xFF00..=0xFFFF) | Some(0x8E) => {
            "report = \"boot_keyboard\"   # vendor page: probably \"vendor_msr\" with\n\
             # track_length_offsets, track_data_offsets and track_max_len from its manual\n"
        }
        _ => "report = \"boot_keyboard\"   # or \"pos_scanner\" / \"vendor_msr\"\n",
    }
}

/// A ready-to-paste configuration entry for a found device.
pub fn snippet(d: &FoundDevice, extra: &Extra, i: usize) -> String {
    let usb = d.usb.as_ref().map(|u| {
        let mut s = format!("{:04x}:{:04x}", u.vid, u.pid);
        if let Some(serial) = &u.serial {
            s.push(':');
            s.push_str(serial);
        }
        s
    });
    let node = d.node.display();
    match d.class {
        DeviceClass::Tty => format!(
            "[[reader]]   # or [[printer]] with type = \"escpos\" / \"shtrih\"\n\
             name = \"serial{i}\"\ntype = \"msr\"   # or \"scanner\"\n\
             [reader.serial]\nport = \"{node}\"   # prefer the /dev/serial/by-id/ link\nbaud = 9600\n"
        ),
        DeviceClass::Input => match usb {
            Some(u) => format!(
                "[[reader]]\nname = \"wedge{i}\"\ntype = \"scanner\"   # or \"msr\"\n\
                 [reader.evdev]\nusb = \"{u}\"\n"
            ),
            None => format!(
                "[[reader]]\nname = \"wedge{i}\"\ntype = \"scanner\"\n[reader.evdev]\ndevice = \"{}\"\n",
                // The by-id name survives replugging; the node may not.
                extra.by_id.as_deref().unwrap_or(&d.node).display()
            ),
        },
        DeviceClass::Hidraw => format!(
            "[[reader]]\nname = \"hid{i}\"\ntype = \"scanner\"   # or \"msr\"\n\
             [reader.hid]\nusb = \"{}\"\n{}",
            usb.unwrap_or_else(|| "VID:PID".into()),
            hid_report(extra.usage_page)
        ),
        DeviceClass::UsbLp => format!(
            "[[printer]]\nname = \"printer{i}\"\ntype = \"escpos\"\n[printer.usb]\ndevice = \"{node}\"\n"
        ),
    }
}

/// What a technician should do about a configured device that is not
/// connected, from its node (probed as `posbridge devices` does) or its
/// USB id and the daemon's last word on it; `None` when there is no
/// advice beyond the detail itself. Shown by the console.
pub fn fix(
    node: Option<&std::path::Path>,
    usb: Option<(u16, u16)>,
    detail: &str,
) -> Option<String> {
    let reason = match node.map(discover::probe_access) {
        Some(Access::Denied { reason }) => reason,
        Some(Access::Missing) => {
            return Some(format!(
                "{} is not there: check the cable, then run `posbridge devices` for the node it has now",
                node.map(|n| n.display().to_string()).unwrap_or_default()
            ));
        }
        _ if detail.contains("ermission denied") => {
            format!("{detail}; install systemd/60-posbridge.rules")
        }
        _ if detail.contains("busy") => return Some(busy_fix(node)),
        _ => return None,
    };
    if reason.starts_with("busy") {
        return Some(busy_fix(node));
    }
    let rule = match usb {
        Some((vid, pid)) => format!(
            "SUBSYSTEMS==\"usb\", ATTRS{{idVendor}}==\"{vid:04x}\", ATTRS{{idProduct}}==\"{pid:04x}\", ENV{{POSBRIDGE_DEVICE}}=\"1\""
        ),
        None => {
            let kernel = node
                .and_then(|n| {
                    std::fs::canonicalize(n)
                        .ok()
                        .or_else(|| Some(n.to_path_buf()))
                })
                .and_then(|n| n.file_name().map(|f| f.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "NODE".into());
            format!("KERNEL==\"{kernel}\", GROUP=\"posbridge\", MODE=\"0660\"")
        }
    };
    Some(format!(
        "{reason}\nAdd to /etc/udev/rules.d/60-posbridge.rules:\n{rule}\nthen: udevadm control --reload && udevadm trigger"
    ))
}

fn busy_fix(node: Option<&std::path::Path>) -> String {
    let node = node.map_or_else(|| "the device".into(), |n| n.display().to_string());
    format!(
        "another process holds {node} open: find it with `fuser -v {node}` and stop it (ModemManager is a usual suspect)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_gets_the_udev_rule_for_its_usb_id() {
        let f = fix(
            None,
            Some((0x0801, 0x0001)),
            "permission denied: /dev/hidraw3",
        )
        .unwrap();
        assert!(f.contains("/etc/udev/rules.d/60-posbridge.rules"), "{f}");
        assert!(
            f.contains(r#"ATTRS{idVendor}=="0801", ATTRS{idProduct}=="0001""#),
            "{f}"
        );
        assert!(f.contains("udevadm control --reload"), "{f}");
    }

    #[test]
    fn a_missing_node_and_a_busy_one_get_their_own_advice() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("ttyUSB9");
        let f = fix(Some(&gone), None, "").unwrap();
        assert!(
            f.contains("is not there") && f.contains("posbridge devices"),
            "{f}"
        );
        let f = fix(
            None,
            None,
            "busy: another process holds it open exclusively",
        )
        .unwrap();
        assert!(f.contains("fuser -v"), "{f}");
        assert_eq!(fix(None, None, "timed out"), None);
    }
    use crate::config::Config;

    #[test]
    fn every_snippet_is_a_valid_config() {
        let classes = [
            (DeviceClass::Tty, "/dev/ttyACM0"),
            (DeviceClass::Input, "/dev/input/event3"),
            (DeviceClass::Hidraw, "/dev/hidraw0"),
            (DeviceClass::UsbLp, "/dev/usb/lp0"),
        ];
        for (i, (class, node)) in classes.into_iter().enumerate() {
            for usb in [
                None,
                Some(discover::UsbIdentity::new(0x0c2e, 0x0b61).with_serial("A1")),
            ] {
                let d = FoundDevice {
                    class,
                    node: PathBuf::from(node),
                    usb,
                    name: None,
                    access: Access::ReadWrite,
                };
                let extras = [
                    Extra::default(),
                    Extra {
                        usage_page: Some(0x8C),
                        by_id: Some("/dev/input/by-id/usb-Acme-event-kbd".into()),
                    },
                    Extra {
                        usage_page: Some(0xFF00),
                        by_id: None,
                    },
                    Extra {
                        usage_page: Some(0x01),
                        by_id: None,
                    },
                ];
                for extra in &extras {
                    let s = snippet(&d, extra, i);
                    if class == DeviceClass::Hidraw && d.usb.is_none() {
                        continue; // a placeholder the technician must fill in
                    }
                    Config::parse(&s, std::path::Path::new("snippet"))
                        .unwrap_or_else(|e| panic!("{e}\n{s}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod extra_tests {
    use std::path::PathBuf;

    use super::*;

    fn found(class: DeviceClass, node: &str) -> FoundDevice {
        FoundDevice {
            class,
            node: PathBuf::from(node),
            usb: Some(discover::UsbIdentity::new(0x0801, 0x0002)),
            name: None,
            access: Access::ReadWrite,
        }
    }

    #[test]
    fn snippets_use_the_details() {
        let hid = found(DeviceClass::Hidraw, "/dev/hidraw0");
        let page = |p| Extra {
            usage_page: Some(p),
            by_id: None,
        };
        assert!(snippet(&hid, &page(0x8C), 0).contains("report = \"pos_scanner\""));
        assert!(snippet(&hid, &page(0xFF00), 0).contains("vendor_msr"));
        let mut wedge = found(DeviceClass::Input, "/dev/input/event3");
        wedge.usb = None;
        let by_id = Extra {
            usage_page: None,
            by_id: Some("/dev/input/by-id/usb-Acme-event-kbd".into()),
        };
        assert!(
            snippet(&wedge, &by_id, 0).contains("device = \"/dev/input/by-id/usb-Acme-event-kbd\"")
        );
        assert!(snippet(&wedge, &Extra::default(), 0).contains("device = \"/dev/input/event3\""));
    }
}

#[cfg(test)]
mod judge_tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_owner_the_group_and_the_others_get_their_own_bits() {
        // Owner uid 1000, group 20; mode 0640.
        assert_eq!(judge(0o640, 1000, 20, 1000, &[1000]), (true, true));
        assert_eq!(judge(0o640, 1000, 20, 1001, &[1001, 20]), (true, false));
        assert_eq!(judge(0o640, 1000, 20, 1001, &[1001]), (false, false));
        assert_eq!(judge(0o606, 1000, 20, 1001, &[20]), (false, false));
        assert_eq!(judge(0o666, 1000, 20, 1001, &[]), (true, true));
        assert_eq!(judge(0o000, 1000, 20, 0, &[0]), (true, true));
    }

    #[test]
    fn a_node_chowned_away_is_judged_for_another_user_not_for_root() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("ttyFAKE0");
        std::fs::write(&node, b"").unwrap();
        // A made-up owner and group no real user has.
        std::os::unix::fs::chown(&node, Some(4_000_001), Some(4_000_002)).unwrap();
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o660)).unwrap();
        let member = Judge {
            name: "till".into(),
            uid: 4_000_003,
            gids: vec![4_000_003, 4_000_002],
            note: None,
        };
        assert_eq!(member.access(&node), Access::ReadWrite);
        let stranger = Judge {
            gids: vec![4_000_003],
            ..member.clone()
        };
        match stranger.access(&node) {
            Access::Denied { reason } => {
                assert!(
                    reason.contains("permission denied for user till"),
                    "{reason}"
                );
                assert!(reason.contains("mode 0660"), "{reason}");
                assert!(reason.contains("add till to that gid 4000002"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).unwrap();
        match member.access(&node) {
            Access::Denied { reason } => {
                assert!(reason.contains("gives the group no access"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(member.access(&dir.path().join("gone")), Access::Missing);
    }

    #[test]
    fn an_unknown_user_falls_back_to_the_current_one_with_a_note() {
        let j = Judge::for_user("no-such-user-posbridge-test");
        assert_eq!(j.uid, nix::unistd::geteuid().as_raw());
        let note = j.note.unwrap();
        assert!(
            note.contains("no-such-user-posbridge-test does not exist"),
            "{note}"
        );
        assert!(Judge::for_user("nobody").note.is_none());
    }
}
