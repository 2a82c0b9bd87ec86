//! `posbridge devices`: what is plugged in, whether the daemon could open
//! it, and a configuration snippet for each.

use posbridge_drivers::discover::{self, Access, DeviceClass, FoundDevice};

/// Prints every serial port, HID node, input device and USB printer found,
/// flagging those the daemon's user could not open.
pub fn list() {
    let found = discover::list_system();
    if found.is_empty() {
        println!("no serial, HID, input or USB printer devices found");
        return;
    }
    for (i, d) in found.iter().enumerate() {
        println!("{d}");
        if let Access::Denied { reason } = &d.access {
            println!("  ! {reason}");
        }
        println!("{}", indent(&snippet(d, i)));
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A ready-to-paste configuration entry for a found device.
pub fn snippet(d: &FoundDevice, i: usize) -> String {
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
                "[[reader]]\nname = \"wedge{i}\"\ntype = \"scanner\"\n[reader.evdev]\ndevice = \"{node}\"\n"
            ),
        },
        DeviceClass::Hidraw => format!(
            "[[reader]]\nname = \"hid{i}\"\ntype = \"scanner\"   # or \"msr\"\n\
             [reader.hid]\nusb = \"{}\"\nreport = \"boot_keyboard\"   # or \"pos_scanner\"\n",
            usb.unwrap_or_else(|| "VID:PID".into())
        ),
        DeviceClass::UsbLp => format!(
            "[[printer]]\nname = \"printer{i}\"\ntype = \"escpos\"\n[printer.usb]\ndevice = \"{node}\"\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
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
                let s = snippet(&d, i);
                if class == DeviceClass::Hidraw && d.usb.is_none() {
                    continue; // a placeholder the technician must fill in
                }
                Config::parse(&s, std::path::Path::new("snippet"))
                    .unwrap_or_else(|e| panic!("{e}\n{s}"));
            }
        }
    }
}
