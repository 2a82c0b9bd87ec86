//! A configured device, reader or printer, as the supervisor sees it.

use posbridge_drivers::transport::TransportSpec;

use crate::config::{Config, PrinterConfig, ReaderAttachment, ReaderConfig};

/// One `[[reader]]` or `[[printer]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEntry {
    /// A card reader.
    Reader(Box<ReaderConfig>),
    /// A printer.
    Printer(Box<PrinterConfig>),
}

impl DeviceEntry {
    /// All device entries of a configuration, in file order.
    pub fn from_config(config: &Config) -> Vec<DeviceEntry> {
        let readers = config
            .readers
            .iter()
            .map(|r| DeviceEntry::Reader(Box::new(r.clone())));
        let printers = config
            .printers
            .iter()
            .map(|p| DeviceEntry::Printer(Box::new(p.clone())));
        readers.chain(printers).collect()
    }

    /// The unique name.
    pub fn name(&self) -> &str {
        match self {
            DeviceEntry::Reader(r) => r.name.get_ref(),
            DeviceEntry::Printer(p) => p.name.get_ref(),
        }
    }

    /// `reader` or `printer`.
    pub fn class(&self) -> &'static str {
        match self {
            DeviceEntry::Reader(_) => "reader",
            DeviceEntry::Printer(_) => "printer",
        }
    }

    /// The configured `type`.
    pub fn type_name(&self) -> &'static str {
        use crate::config::{PrinterKind, ReaderKind};
        match self {
            DeviceEntry::Reader(r) => match r.kind {
                ReaderKind::Msr => "msr",
                ReaderKind::Scanner => "scanner",
            },
            DeviceEntry::Printer(p) => match p.kind {
                PrinterKind::Escpos => "escpos",
                PrinterKind::Shtrih => "shtrih",
            },
        }
    }

    /// How the device is reached, for humans.
    pub fn describe(&self) -> String {
        match self.endpoint() {
            Some(Endpoint::Transport(t)) => t.describe(),
            Some(Endpoint::Input(a)) => match a {
                ReaderAttachment::Evdev {
                    device: Some(d), ..
                } => format!("evdev {}", d.display()),
                ReaderAttachment::Evdev { usb: Some(u), .. } => format!("evdev usb {u}"),
                ReaderAttachment::Hid(u) => format!("hid usb {u}"),
                _ => "unattached".into(),
            },
            None => "unattached".into(),
        }
    }

    /// How to open it.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            DeviceEntry::Reader(r) => match r.attachment()? {
                ReaderAttachment::Serial(s) => Some(Endpoint::Transport(TransportSpec::Serial(s))),
                other => Some(Endpoint::Input(other)),
            },
            DeviceEntry::Printer(p) => p.transport().map(Endpoint::Transport),
        }
    }
}

/// What the supervisor opens.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// A byte stream.
    Transport(TransportSpec),
    /// An input device node (evdev or hidraw), found by path or USB id.
    Input(ReaderAttachment),
}
