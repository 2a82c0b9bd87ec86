//! The device sections: readers and printers with their transports
//! (serial, evdev, HID, TCP, USB), and the resources they hold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use posbridge_drivers::printer::document::PaperWidth;
use posbridge_drivers::printer::escpos::Profile;
use posbridge_drivers::transport::{FlowControl, Parity, SerialSettings, TransportSpec};
use serde::Deserialize;
use toml::Spanned;

use super::{CardRuleConfig, FramingConfig, ScanConfig};

/// What a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderKind {
    /// Magnetic stripe reader.
    Msr,
    /// QR or barcode scanner.
    Scanner,
}

/// One `[[reader]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// Unique device name used in the API and events.
    pub name: Spanned<String>,
    /// `msr` or `scanner`.
    #[serde(rename = "type")]
    pub kind: ReaderKind,
    /// Attached as a serial or USB-CDC port.
    pub serial: Option<SerialConfig>,
    /// Attached as a USB keyboard (keyboard wedge), read through evdev.
    pub evdev: Option<EvdevConfig>,
    /// Attached as a HID device, read through hidraw.
    pub hid: Option<HidConfig>,
    /// How a serial reader's messages are delimited.
    #[serde(default)]
    pub framing: FramingConfig,
    /// Where the card number and secret are.
    #[serde(default)]
    pub card: CardRuleConfig,
    /// What happens to scans that are not loyalty cards.
    #[serde(default)]
    pub scan: ScanConfig,
}

/// What a printer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterKind {
    /// ESC/POS receipt printer.
    Escpos,
    /// Shtrih-M fiscal register.
    Shtrih,
}

/// One `[[printer]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// Unique device name used in the API and events.
    pub name: Spanned<String>,
    /// `escpos` or `shtrih`.
    #[serde(rename = "type")]
    pub kind: PrinterKind,
    /// ESC/POS profile: code pages, columns, QR and cutter support
    /// (`generic-80`, `generic-58`, `epson-tm-t20`, `epson-tm-t88`,
    /// `xprinter`, `pos-5890`, `rongta`, `star`).
    #[serde(default = "default_profile")]
    pub profile: Spanned<String>,
    /// Paper roll: `58mm` or `80mm`.
    #[serde(default = "default_paper")]
    pub paper: PaperWidth,
    /// A technician's own profile, a TOML file in the built-in profiles'
    /// format (see `drivers/profiles/`); used instead of `profile`.
    pub profile_file: Option<PathBuf>,
    /// Fiscal printers: the payment type (1..=16) that records points
    /// (16, "other", unless the shop's fiscal setup says otherwise).
    #[serde(default = "default_points_type")]
    pub points_payment_type: u8,
    /// Fiscal printers: which register tax (1..=8, table 6 row) each VAT
    /// rate is sent as, e.g. `vat22 = 1`. Absent: the 2026 factory table
    /// (see `docs/config.md`). Checked against the register at start.
    #[serde(default)]
    pub taxes: Option<std::collections::BTreeMap<String, u8>>,
    /// Serial port.
    pub serial: Option<SerialConfig>,
    /// Network printer.
    pub tcp: Option<TcpDeviceConfig>,
    /// USB printer class device node (`/dev/usb/lp0`).
    pub usb: Option<UsbLpConfig>,
    /// Output appended to a file, for debugging without a printer.
    pub file: Option<FileConfig>,
    /// A printer speaking ESC/POS in HID reports.
    pub hid: Option<PrinterHidConfig>,
}

/// `[reader.serial]` / `[printer.serial]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Device path; prefer the stable `/dev/serial/by-id/...` name.
    pub port: PathBuf,
    /// Baud rate.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Data bits, 5 to 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Stop bits, 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// `none`, `odd` or `even`.
    #[serde(default)]
    pub parity: ParityConfig,
    /// `none`, `rts_cts` or `xon_xoff`.
    #[serde(default)]
    pub flow_control: FlowControlConfig,
}

fn default_baud() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}

/// Parity as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParityConfig {
    /// No parity.
    #[default]
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// Flow control as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControlConfig {
    /// None.
    #[default]
    None,
    /// Hardware RTS/CTS.
    RtsCts,
    /// Software XON/XOFF.
    XonXoff,
}

/// `[reader.evdev]`: a keyboard-wedge reader.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvdevConfig {
    /// Input device path, preferably `/dev/input/by-id/...-event-kbd`.
    pub device: Option<PathBuf>,
    /// Or the USB `VID:PID[:serial]`, resolved through sysfs.
    pub usb: Option<Spanned<UsbId>>,
    /// Silence between keys that ends a message when no Enter comes.
    #[serde(default = "default_gap_ms")]
    pub gap_ms: u64,
}

fn default_gap_ms() -> u64 {
    50
}

/// `[reader.hid]`: a HID reader, opened by USB id through hidapi.
///
/// Deserialized through [`HidConfigRaw`] so that the vendor MSR layout is
/// range-checked at load time, with errors naming the key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "HidConfigRaw")]
pub struct HidConfig {
    /// USB `VID:PID[:serial]`.
    pub usb: Spanned<UsbId>,
    /// Report format: `boot_keyboard` (8-byte keyboard reports),
    /// `pos_scanner` (HID POS bar code scanner, usage page 0x8C) or
    /// `vendor_msr` (a magstripe reader's own report layout).
    pub report: HidReport,
    /// Report ID in front of each report, when the device numbers them.
    pub report_id: Option<u8>,
    /// Silence between keys that ends a message (boot keyboard reports).
    pub gap_ms: u64,
    /// `vendor_msr`: the byte holding each track's length, tracks 1, 2, 3
    /// in order (one to three entries).
    pub track_length_offsets: Option<Vec<usize>>,
    /// `vendor_msr`: where each track's characters start, one per entry of
    /// `track_length_offsets`.
    pub track_data_offsets: Option<Vec<usize>>,
    /// `vendor_msr`: the size of each track's slot, in characters.
    pub track_max_len: Option<usize>,
}

/// `[reader.hid]` as written, before [`HidConfig`]'s checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HidConfigRaw {
    usb: Spanned<UsbId>,
    #[serde(default)]
    report: HidReport,
    report_id: Option<u8>,
    #[serde(default = "default_gap_ms")]
    gap_ms: u64,
    track_length_offsets: Option<Vec<usize>>,
    track_data_offsets: Option<Vec<usize>>,
    track_max_len: Option<usize>,
}

impl TryFrom<HidConfigRaw> for HidConfig {
    type Error = String;

    fn try_from(raw: HidConfigRaw) -> Result<Self, String> {
        use posbridge_drivers::reader::hid::MAX_REPORT_LEN;
        let layout_keys = [
            ("track_length_offsets", raw.track_length_offsets.is_some()),
            ("track_data_offsets", raw.track_data_offsets.is_some()),
            ("track_max_len", raw.track_max_len.is_some()),
        ];
        if raw.report == HidReport::VendorMsr {
            if let Some((key, _)) = layout_keys.iter().find(|(_, set)| !set) {
                return Err(format!("{key}: required with report = \"vendor_msr\""));
            }
            let lengths = raw.track_length_offsets.as_deref().unwrap_or_default();
            let data = raw.track_data_offsets.as_deref().unwrap_or_default();
            let max_len = raw.track_max_len.unwrap_or_default();
            if !(1..=3).contains(&lengths.len()) {
                return Err("track_length_offsets: one to three offsets (tracks 1, 2, 3)".into());
            }
            if data.len() != lengths.len() {
                return Err(format!(
                    "track_data_offsets: {} offsets, but track_length_offsets has {}",
                    data.len(),
                    lengths.len()
                ));
            }
            // A length byte counts to 255 at most.
            if !(1..=255).contains(&max_len) {
                return Err("track_max_len: 1 to 255 characters".into());
            }
            // With report IDs, byte 0 is the ID: no field can be there.
            let first = usize::from(raw.report_id.is_some());
            for &at in lengths {
                if !(first..MAX_REPORT_LEN).contains(&at) {
                    return Err(format!(
                        "track_length_offsets: {at} is outside the report ({first} to {})",
                        MAX_REPORT_LEN - 1
                    ));
                }
            }
            for &at in data {
                if at < first || at.saturating_add(max_len) > MAX_REPORT_LEN {
                    return Err(format!(
                        "track_data_offsets: {at} with track_max_len {max_len} does not fit \
                         a report ({first} to {MAX_REPORT_LEN} bytes)"
                    ));
                }
            }
        } else if let Some((key, _)) = layout_keys.iter().find(|(_, set)| *set) {
            return Err(format!("{key}: only used with report = \"vendor_msr\""));
        }
        Ok(HidConfig {
            usb: raw.usb,
            report: raw.report,
            report_id: raw.report_id,
            gap_ms: raw.gap_ms,
            track_length_offsets: raw.track_length_offsets,
            track_data_offsets: raw.track_data_offsets,
            track_max_len: raw.track_max_len,
        })
    }
}

impl HidConfig {
    /// The vendor MSR layout, for `report = "vendor_msr"` (checked when
    /// the configuration was loaded).
    pub fn vendor_msr_layout(&self) -> Option<posbridge_drivers::reader::hid::VendorMsrLayout> {
        use posbridge_drivers::reader::hid::{TrackSlot, VendorMsrLayout};
        if self.report != HidReport::VendorMsr {
            return None;
        }
        let lengths = self.track_length_offsets.as_deref()?;
        let data = self.track_data_offsets.as_deref()?;
        let max_len = self.track_max_len?;
        let mut tracks = [None; 3];
        for (slot, (&length_offset, &data_offset)) in
            tracks.iter_mut().zip(lengths.iter().zip(data))
        {
            *slot = Some(TrackSlot {
                length_offset,
                data_offset,
                max_len,
            });
        }
        Some(VendorMsrLayout {
            report_id: self.report_id,
            tracks,
        })
    }
}

#[cfg(test)]
mod hid_config_tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    fn hid(extra: &str) -> Result<Config, ConfigError> {
        let src = format!(
            "[[reader]]\nname = \"m\"\ntype = \"msr\"\n[reader.hid]\nusb = \"0801:0002\"\n{extra}"
        );
        Config::parse(&src, Path::new("t.toml"))
    }

    fn message(extra: &str) -> String {
        match hid(extra) {
            Err(ConfigError::Invalid { path, message, .. }) => format!("{path}: {message}"),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn vendor_msr_layout_loads() {
        let c = hid(
            "report = \"vendor_msr\"\nreport_id = 1\ntrack_length_offsets = [1, 2, 3]\n\
                     track_data_offsets = [4, 114, 224]\ntrack_max_len = 110\n",
        )
        .unwrap();
        let h = c.readers[0].hid.as_ref().unwrap();
        let layout = h.vendor_msr_layout().unwrap();
        assert_eq!(layout.report_id, Some(1));
        let t3 = layout.tracks[2].unwrap();
        assert_eq!(
            (t3.length_offset, t3.data_offset, t3.max_len),
            (3, 224, 110)
        );
        // Two tracks only.
        let c = hid("report = \"vendor_msr\"\ntrack_length_offsets = [0, 1]\n\
                     track_data_offsets = [2, 50]\ntrack_max_len = 40\n")
        .unwrap();
        let layout = c.readers[0]
            .hid
            .as_ref()
            .unwrap()
            .vendor_msr_layout()
            .unwrap();
        assert!(layout.tracks[2].is_none());
        // Other formats have no layout.
        let c = hid("").unwrap();
        assert_eq!(c.readers[0].hid.as_ref().unwrap().vendor_msr_layout(), None);
    }

    #[test]
    fn vendor_msr_errors_name_the_key() {
        let base = "report = \"vendor_msr\"\n";
        for (extra, key) in [
            (
                "track_data_offsets = [4]\ntrack_max_len = 10\n",
                "track_length_offsets",
            ),
            (
                "track_length_offsets = [1]\ntrack_data_offsets = [4]\n",
                "track_max_len",
            ),
            (
                "track_length_offsets = [1, 2, 3, 4]\ntrack_data_offsets = [4]\ntrack_max_len = 9\n",
                "track_length_offsets",
            ),
            (
                "track_length_offsets = [1, 2]\ntrack_data_offsets = [4]\ntrack_max_len = 9\n",
                "track_data_offsets",
            ),
            (
                "track_length_offsets = [1]\ntrack_data_offsets = [4]\ntrack_max_len = 256\n",
                "track_max_len",
            ),
            (
                "track_length_offsets = [5000]\ntrack_data_offsets = [4]\ntrack_max_len = 9\n",
                "track_length_offsets",
            ),
            (
                "track_length_offsets = [1]\ntrack_data_offsets = [4090]\ntrack_max_len = 9\n",
                "track_data_offsets",
            ),
            (
                "report_id = 2\ntrack_length_offsets = [0]\ntrack_data_offsets = [4]\ntrack_max_len = 9\n",
                "track_length_offsets",
            ),
        ] {
            let m = message(&format!("{base}{extra}"));
            assert!(m.contains(key), "{extra}: {m}");
            assert!(m.starts_with("reader[0].hid"), "{m}");
        }
        let m = message("track_max_len = 10\n");
        assert!(
            m.contains("track_max_len") && m.contains("only used"),
            "{m}"
        );
        let m = message("track_slots = 3\n");
        assert!(m.contains("track_slots"), "{m}");
        // The usb key keeps its own path.
        let src = "[[reader]]\nname = \"m\"\ntype = \"msr\"\n[reader.hid]\nusb = \"zz\"\n";
        match Config::parse(src, Path::new("t.toml")) {
            Err(ConfigError::Invalid { path, .. }) => assert_eq!(path, "reader[0].hid.usb"),
            other => panic!("{other:?}"),
        }
    }
}

/// HID report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HidReport {
    /// Boot-protocol keyboard reports.
    #[default]
    BootKeyboard,
    /// HID POS bar code scanner reports.
    PosScanner,
    /// A magstripe reader's vendor report: each track's length and
    /// characters at the offsets given by `track_length_offsets`,
    /// `track_data_offsets` and `track_max_len`.
    VendorMsr,
}

/// `[printer.tcp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpDeviceConfig {
    /// Host name or address.
    pub host: String,
    /// Port; 9100 is the raw printing port.
    #[serde(default = "default_printer_port")]
    pub port: u16,
    /// Connection attempt limit.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_profile() -> Spanned<String> {
    Spanned::new(0..0, "generic-80".to_owned())
}

fn default_points_type() -> u8 {
    16
}

fn default_paper() -> PaperWidth {
    PaperWidth::Mm80
}

fn default_printer_port() -> u16 {
    9100
}
fn default_connect_timeout_ms() -> u64 {
    3000
}

/// `[printer.usb]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbLpConfig {
    /// Device node, such as `/dev/usb/lp0`.
    pub device: PathBuf,
}

/// `[printer.hid]`: ESC/POS carried in HID reports.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterHidConfig {
    /// USB `VID:PID[:serial]` (or `path`).
    pub usb: Option<UsbId>,
    /// A hidraw node (or `usb`).
    pub path: Option<PathBuf>,
    /// Bytes per report after the report id, length byte included.
    #[serde(default = "default_hid_report_size")]
    pub report_size: usize,
    /// Report id of output reports (0: the device does not number them).
    #[serde(default)]
    pub report_id: u8,
    /// Each report starts with a byte counting its payload.
    #[serde(default = "default_hid_length_prefix")]
    pub length_prefix: bool,
}

fn default_hid_report_size() -> usize {
    64
}

fn default_hid_length_prefix() -> bool {
    true
}

impl PrinterHidConfig {
    /// The report format.
    pub fn framing(&self) -> posbridge_drivers::transport::hid::HidFraming {
        posbridge_drivers::transport::hid::HidFraming {
            report_size: self.report_size,
            report_id: self.report_id,
            length_prefix: self.length_prefix,
        }
    }

    /// The device; `validate` guarantees exactly one of `usb` and `path`.
    pub fn target(&self) -> Option<posbridge_drivers::transport::hid::HidTarget> {
        use posbridge_drivers::transport::hid::HidTarget;
        match (&self.usb, &self.path) {
            (Some(u), None) => Some(HidTarget::Usb {
                vid: u.vid,
                pid: u.pid,
                serial: u.serial.clone(),
            }),
            (None, Some(p)) => Some(HidTarget::Path(p.clone())),
            _ => None,
        }
    }
}

/// `[printer.file]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// File the printer's bytes are appended to.
    pub path: PathBuf,
}

/// A USB device identity: `VID:PID` with an optional serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsbId {
    /// Vendor id.
    pub vid: u16,
    /// Product id.
    pub pid: u16,
    /// Serial number string, when several identical devices are attached.
    pub serial: Option<String>,
}

impl std::str::FromStr for UsbId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, ':');
        let hex = |p: Option<&str>, what: &str| -> Result<u16, String> {
            let p = p.filter(|p| !p.is_empty()).ok_or(format!(
                "expected VID:PID[:serial] in hex, such as \"0c2e:0b61\"; {what} is missing"
            ))?;
            u16::from_str_radix(p, 16)
                .map_err(|_| format!("{what} \"{p}\" is not a 4-digit hex number"))
        };
        let vid = hex(parts.next(), "vendor id")?;
        let pid = hex(parts.next(), "product id")?;
        let serial = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(UsbId { vid, pid, serial })
    }
}

impl std::fmt::Display for UsbId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vid, self.pid)?;
        if let Some(s) = &self.serial {
            write!(f, ":{s}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for UsbId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The exclusive resource a device holds. Two entries on one resource would
/// fight over it, so that is a configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A device node or file path.
    Path(PathBuf),
    /// A USB device.
    Usb(UsbId),
    /// A TCP peer.
    Tcp(String, u16),
}

impl Resource {
    /// Whether two resources denote the same thing. A USB id without a
    /// serial matches every device with that VID:PID.
    pub fn overlaps(&self, other: &Resource) -> bool {
        match (self, other) {
            (Resource::Path(a), Resource::Path(b)) => canonical(a) == canonical(b),
            (Resource::Usb(a), Resource::Usb(b)) => {
                a.vid == b.vid
                    && a.pid == b.pid
                    && (a.serial.is_none() || b.serial.is_none() || a.serial == b.serial)
            }
            (Resource::Tcp(h1, p1), Resource::Tcp(h2, p2)) => {
                p1 == p2 && h1.eq_ignore_ascii_case(h2)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Path(p) => write!(f, "{}", p.display()),
            Resource::Usb(u) => write!(f, "usb {u}"),
            Resource::Tcp(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// `/dev/serial/by-id/x` and `/dev/ttyUSB0` are the same port when the link
/// resolves there; paths that do not exist yet compare as written.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

impl SerialConfig {
    fn settings(&self) -> SerialSettings {
        SerialSettings {
            path: self.port.clone(),
            baud: self.baud,
            data_bits: self.data_bits,
            stop_bits: self.stop_bits,
            parity: match self.parity {
                ParityConfig::None => Parity::None,
                ParityConfig::Odd => Parity::Odd,
                ParityConfig::Even => Parity::Even,
            },
            flow_control: match self.flow_control {
                FlowControlConfig::None => FlowControl::None,
                FlowControlConfig::RtsCts => FlowControl::RtsCts,
                FlowControlConfig::XonXoff => FlowControl::XonXoff,
            },
        }
    }
}

/// How a reader is attached, after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum ReaderAttachment {
    /// Byte stream over a serial port.
    Serial(SerialSettings),
    /// Keyboard wedge through evdev.
    Evdev {
        /// Device node, when given.
        device: Option<PathBuf>,
        /// USB id, when given.
        usb: Option<UsbId>,
    },
    /// HID reports through hidraw.
    Hid(UsbId),
}

impl ReaderConfig {
    /// The attachment; `validate` guarantees exactly one is set.
    pub fn attachment(&self) -> Option<ReaderAttachment> {
        match (&self.serial, &self.evdev, &self.hid) {
            (Some(s), None, None) => Some(ReaderAttachment::Serial(s.settings())),
            (None, Some(e), None) => Some(ReaderAttachment::Evdev {
                device: e.device.clone(),
                usb: e.usb.as_ref().map(|u| u.get_ref().clone()),
            }),
            (None, None, Some(h)) => Some(ReaderAttachment::Hid(h.usb.get_ref().clone())),
            _ => None,
        }
    }

    pub(super) fn resource(&self) -> Option<Resource> {
        Some(match self.attachment()? {
            ReaderAttachment::Serial(s) => Resource::Path(s.path),
            ReaderAttachment::Evdev {
                device: Some(d), ..
            } => Resource::Path(d),
            ReaderAttachment::Evdev { usb: Some(u), .. } | ReaderAttachment::Hid(u) => {
                Resource::Usb(u)
            }
            ReaderAttachment::Evdev { .. } => return None,
        })
    }
}

impl PrinterConfig {
    /// The VAT → register tax mapping of `[printer.taxes]` (the 2026
    /// factory table when absent). Errors name the key (`.vat20`) and why.
    pub fn tax_map(&self) -> Result<crate::devices::ffd::TaxMap, (String, String)> {
        use crate::devices::ffd::{Tax, TaxMap};
        let Some(table) = &self.taxes else {
            return Ok(TaxMap::default());
        };
        if table.is_empty() {
            return Err((
                String::new(),
                "an empty table maps no rate: list the rates, or remove it for the 2026 factory table".into(),
            ));
        }
        let mut pairs = Vec::with_capacity(table.len());
        for (name, &pos) in table {
            let tax: Tax = name
                .parse()
                .map_err(|e: crate::devices::ffd::TaxNameError| {
                    (format!(".{name}"), e.to_string())
                })?;
            if !(1..=TaxMap::MAX_POSITION).contains(&pos) {
                return Err((
                    format!(".{name}"),
                    format!("a register tax is 1 to {}", TaxMap::MAX_POSITION),
                ));
            }
            if let Some((other, _)) = pairs.iter().find(|(_, p)| *p == pos) {
                return Err((
                    format!(".{name}"),
                    format!("register tax {pos} is already {other}"),
                ));
            }
            pairs.push((tax, pos));
        }
        Ok(TaxMap::from_pairs(pairs))
    }

    /// The ESC/POS profile: the file when `profile_file` is set, else the
    /// built-in one named by `profile`.
    pub fn load_profile(&self) -> Result<Profile, String> {
        match &self.profile_file {
            Some(path) => {
                let text = crate::textfile::read_text(path)
                    .map_err(|e| format!("profile_file {}: {e}", path.display()))?;
                Profile::from_toml(&text)
                    .map_err(|e| format!("profile_file {}: {e}", path.display()))
            }
            None => Profile::builtin(self.profile.get_ref()).ok_or_else(|| {
                format!(
                    "unknown profile \"{}\"; built in: {}",
                    self.profile.get_ref(),
                    Profile::builtin_names().collect::<Vec<_>>().join(", ")
                )
            }),
        }
    }

    /// The transport; `validate` guarantees exactly one is set.
    pub fn transport(&self) -> Option<TransportSpec> {
        match (&self.serial, &self.tcp, &self.usb, &self.file, &self.hid) {
            (Some(s), None, None, None, None) => Some(TransportSpec::Serial(s.settings())),
            (None, Some(t), None, None, None) => Some(TransportSpec::Tcp {
                host: t.host.clone(),
                port: t.port,
                connect_timeout: Duration::from_millis(t.connect_timeout_ms),
            }),
            (None, None, Some(u), None, None) => Some(TransportSpec::CharDevice {
                path: u.device.clone(),
            }),
            (None, None, None, Some(f), None) => Some(TransportSpec::File {
                path: f.path.clone(),
            }),
            (None, None, None, None, Some(h)) => Some(TransportSpec::Hid {
                target: h.target()?,
                framing: h.framing(),
            }),
            _ => None,
        }
    }

    pub(super) fn resource(&self) -> Option<Resource> {
        Some(match self.transport()? {
            TransportSpec::Serial(s) => Resource::Path(s.path),
            TransportSpec::Tcp { host, port, .. } => Resource::Tcp(host, port),
            TransportSpec::CharDevice { path } | TransportSpec::File { path } => {
                Resource::Path(path)
            }
            TransportSpec::Hid { target, .. } => match target {
                posbridge_drivers::transport::hid::HidTarget::Usb { vid, pid, serial } => {
                    Resource::Usb(UsbId { vid, pid, serial })
                }
                posbridge_drivers::transport::hid::HidTarget::Path(p) => Resource::Path(p),
            },
        })
    }
}
