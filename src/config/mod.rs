//! The daemon's configuration: one TOML file a technician edits.
//!
//! Parsing is strict: unknown keys and wrong types are errors carrying the
//! file, line, column and dotted key path. After parsing, [`Config::validate`]
//! checks the rules serde cannot express (exactly one transport per device,
//! unique names, no two devices on one port).

mod devices;
mod error;
mod ledger;
mod load;
mod locate;
mod messages;
pub use messages::MessagesConfig;
mod offline;
pub use offline::OfflineConfig;
mod programmes;
mod reader;
mod receipt;
mod web;
pub use web::WebConfig;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use locate::{MAX_ERRORS, blank_lines, find_key, find_path, toml_error};

pub use devices::{
    EvdevConfig, FileConfig, FlowControlConfig, HidConfig, HidReport, ParityConfig, PrinterConfig,
    PrinterHidConfig, PrinterKind, ReaderAttachment, ReaderConfig, ReaderKind, Resource,
    SerialConfig, TcpDeviceConfig, UsbId, UsbLpConfig,
};
pub use error::ConfigError;
pub use ledger::{
    CardCheck, CentralConfig, CommandNotifierConfig, Confirmation, HttpNotifierConfig,
    LedgerBackend, LedgerConfig, NotifierKind, RedemptionConfig, RegistrationConfig,
    default_programme,
};
pub use load::{Located, SYSTEM_CONFIG, Source, default_socket_path, locate};
pub use reader::{
    CardRuleConfig, CheckConfig, FramingConfig, LrcConfig, PresetConfig, RuleError, ScanConfig,
    SecretField, SuffixConfig, TrackField, frame_codec, rules,
};
pub use receipt::{
    BONUS_LINES, BONUS_PLACEHOLDERS, BonusLabels, BonusTemplate, Language, ReceiptConfig,
    TemplatePart, template_parts,
};

/// The commented sample printed by `posbridge config example`.
pub const EXAMPLE: &str = include_str!("example.toml");

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Socket, roles, logging and paths.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Where loyalty balances live.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// Card readers: magnetic stripe and QR/barcode scanners.
    #[serde(default, rename = "reader")]
    pub readers: Vec<ReaderConfig>,
    /// Receipt and fiscal printers.
    #[serde(default, rename = "printer")]
    pub printers: Vec<PrinterConfig>,
    /// How receipts are laid out.
    #[serde(default)]
    pub receipt: ReceiptConfig,
    /// The back office web application (off unless `listen` is set).
    #[serde(default)]
    pub backoffice: BackofficeConfig,
    /// Web pages allowed to use the API over HTTP and WebSocket.
    #[serde(default)]
    pub web: WebConfig,
}

/// `[backoffice]`: the operators' web application on the embedded ledger.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackofficeConfig {
    /// Address to serve on, such as `127.0.0.1:7460`; absent: off.
    pub listen: Option<Spanned<SocketAddr>>,
    /// Must be true to listen on a non-loopback address: the pages move
    /// points and block cards, so exposing them is a deliberate choice
    /// (like `[daemon.tcp]`).
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[daemon]`: the local API and the process itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Unix socket path; default `$RUNTIME_DIRECTORY/posbridge.sock`, else
    /// the XDG runtime dir.
    pub socket: Option<PathBuf>,
    /// Socket file mode, octal as a string ("0660") so it reads as chmod does.
    pub socket_mode: String,
    /// Group given to the socket file, so POS software in that group may connect.
    pub socket_group: Option<String>,
    /// Unix uids treated as admin on the socket (root always is).
    pub admin_uids: Vec<u32>,
    /// File of `role token` lines for `auth.login` (required when TCP is on).
    pub token_file: Option<PathBuf>,
    /// Directory for the embedded ledger and queues; default
    /// `$STATE_DIRECTORY`, else the user data dir.
    pub state_dir: Option<PathBuf>,
    /// Log filter (`info`, `posbridge=debug`); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Connections accepted at once, Unix and TCP together.
    pub max_clients: usize,
    /// Time allowed on SIGTERM for in-flight requests and jobs.
    pub shutdown_grace_ms: u64,
    /// Optional TCP listener for POS software that cannot open Unix sockets.
    pub tcp: Option<TcpConfig>,
    /// Language of the error messages the POS shows the cashier (`message`;
    /// the other language goes in `data`). English by default, apart from
    /// `receipt.language`, so clients matching English text keep working.
    pub language: Language,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: None,
            socket_mode: "0660".into(),
            socket_group: None,
            admin_uids: Vec::new(),
            token_file: None,
            state_dir: None,
            log_level: "info".into(),
            max_clients: 1024,
            shutdown_grace_ms: 10_000,
            tcp: None,
            language: Language::En,
        }
    }
}

impl DaemonConfig {
    /// The socket mode as a number.
    pub fn socket_mode_bits(&self) -> u32 {
        // Validated in `Config::validate`; 0o660 is the documented default.
        u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8).unwrap_or(0o660)
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// `[daemon.tcp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Address to listen on, such as `127.0.0.1:7450`.
    pub listen: Spanned<SocketAddr>,
    /// Must be true to listen on a non-loopback address: the API moves
    /// money, so exposure to the shop network has to be deliberate.
    #[serde(default)]
    pub allow_remote: bool,
}

impl Config {
    /// Parses and validates `src`, naming `file` in errors.
    pub fn parse(src: &str, file: &Path) -> Result<Config, ConfigError> {
        // serde stops at the first error. To report every key of the wrong
        // type or name in one pass, the lines of each error found are
        // blanked (spaces keep every offset, so later errors keep their
        // lines and columns) and the text is read again.
        let mut text = src.to_owned();
        let mut errors = Vec::new();
        let mut blanked_paths: Vec<String> = Vec::new();
        let parsed = loop {
            match Self::deserialize(&text, src, file) {
                Ok(config) => break Some(config),
                Err((e, span)) => {
                    // A key that was blanked for its bad value now reads
                    // as missing: that is the same error, already told.
                    if let ConfigError::Invalid { path, message, .. } = &e
                        && let Some(key) = message
                            .strip_prefix("the key `")
                            .and_then(|m| m.strip_suffix("` is required here"))
                    {
                        let full = if path.is_empty() {
                            key.to_owned()
                        } else {
                            format!("{path}.{key}")
                        };
                        if blanked_paths
                            .iter()
                            .any(|b| b == &full || b.starts_with(&format!("{full}.")))
                        {
                            break None;
                        }
                    }
                    if let ConfigError::Invalid { path, .. } = &e {
                        blanked_paths.push(path.clone());
                    }
                    errors.push(e);
                    let blanked = span.and_then(|s| blank_lines(&text, s));
                    match blanked {
                        Some(t) if errors.len() < MAX_ERRORS => text = t,
                        _ => break None,
                    }
                }
            }
        };
        // The rules serde cannot express are checked on a file that read
        // cleanly (a blanked key would be judged by its default).
        if let Some(config) = &parsed
            && errors.is_empty()
            && let Err(e) = config.validate(src, file)
        {
            errors.push(e);
        }
        // In file order, as an editor walks them.
        errors.sort_by_key(|e| match e {
            ConfigError::Invalid { line, column, .. } => (*line, *column),
            _ => (0, 0),
        });
        match (parsed, errors.len()) {
            (Some(config), 0) => Ok(config),
            (_, 1) => Err(errors.remove(0)),
            _ => Err(ConfigError::Several(errors)),
        }
    }

    /// One reading of `text` (the file, maybe with lines blanked): the
    /// error and the byte range it points at.
    fn deserialize(
        text: &str,
        src: &str,
        file: &Path,
    ) -> Result<Config, (ConfigError, Option<std::ops::Range<usize>>)> {
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| (toml_error(src, file, "", &e), None))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            // Spanned<T> shows up in the path as a private field: hide it.
            let path = e
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "");
            let path = if path == "." { String::new() } else { path };
            (toml_error(src, file, &path, e.inner()), e.inner().span())
        })
    }

    /// Checks the rules serde cannot express.
    fn validate(&self, src: &str, file: &Path) -> Result<(), ConfigError> {
        let invalid = |offset: usize, path: String, message: String| {
            let (line, column) = error::line_col(src, offset);
            ConfigError::Invalid {
                file: file.to_path_buf(),
                line,
                column,
                path,
                message,
            }
        };
        let d = &self.daemon;
        if u32::from_str_radix(d.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .is_none()
        {
            let off = find_key(src, "socket_mode");
            return Err(invalid(
                off,
                "daemon.socket_mode".into(),
                format!(
                    "\"{}\" is not an octal file mode such as \"0660\"",
                    d.socket_mode
                ),
            ));
        }
        if d.max_clients == 0 {
            let off = find_key(src, "max_clients");
            return Err(invalid(
                off,
                "daemon.max_clients".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some(tcp) = &d.tcp {
            let addr = tcp.listen.get_ref();
            if !addr.ip().is_loopback() && !tcp.allow_remote {
                return Err(invalid(
                    tcp.listen.span().start,
                    "daemon.tcp.listen".into(),
                    format!(
                        "{addr} is not a loopback address; set daemon.tcp.allow_remote = true \
                         to expose the API to the network deliberately"
                    ),
                ));
            }
            if d.token_file.is_none() {
                return Err(invalid(
                    tcp.listen.span().start,
                    "daemon.token_file".into(),
                    "the TCP listener needs daemon.token_file: TCP clients must log in".into(),
                ));
            }
        }

        if let Some(listen) = &self.backoffice.listen {
            let addr = listen.get_ref();
            if !addr.ip().is_loopback() && !self.backoffice.allow_remote {
                return Err(invalid(
                    listen.span().start,
                    "backoffice.listen".into(),
                    format!(
                        "{addr} is not a loopback address; set backoffice.allow_remote = true \
                         to expose the back office to the network deliberately"
                    ),
                ));
            }
        }

        if !(16..=80).contains(&self.receipt.width) {
            return Err(invalid(
                find_key(src, "width"),
                "receipt.width".into(),
                "characters per line, 16 to 80".into(),
            ));
        }
        if let Err((key, message)) = self.receipt.bonus.validate() {
            // The key's own name, without an index, is what the file shows.
            let leaf = key.rsplit('.').next().unwrap_or(&key);
            let leaf = leaf.split('[').next().unwrap_or(leaf);
            return Err(invalid(
                find_key(src, leaf),
                format!("receipt.bonus.{key}"),
                message,
            ));
        }
        if !(1..=64).contains(&self.ledger.hash_concurrency) {
            return Err(invalid(
                find_key(src, "hash_concurrency"),
                "ledger.hash_concurrency".into(),
                "argon2 runs at once, 1 to 64".into(),
            ));
        }
        if !(10..=60_000).contains(&self.ledger.hash_queue_timeout_ms) {
            return Err(invalid(
                find_key(src, "hash_queue_timeout_ms"),
                "ledger.hash_queue_timeout_ms".into(),
                "10 to 60000 milliseconds".into(),
            ));
        }
        match (&self.ledger.backend, &self.ledger.central) {
            (LedgerBackend::Central, None) => {
                return Err(invalid(
                    find_key(src, "backend"),
                    "ledger.central".into(),
                    "backend = \"central\" needs a [ledger.central] table".into(),
                ));
            }
            (_, Some(c)) => {
                if let Err((key, message)) = c.validate() {
                    return Err(invalid(
                        find_key(src, key),
                        format!("ledger.central.{key}"),
                        message,
                    ));
                }
            }
            _ => {}
        }
        if let Err((i, message)) = self.web.validate() {
            return Err(invalid(
                find_key(src, "origins"),
                format!("web.origins[{i}]"),
                message,
            ));
        }
        if let Err((key, message)) = self.ledger.offline.validate() {
            return Err(invalid(
                find_key(src, key),
                format!("ledger.offline.{key}"),
                message,
            ));
        }
        if let Err((key, message)) = self.ledger.messages.validate() {
            return Err(invalid(
                find_key(src, key),
                format!("ledger.messages.{key}"),
                message,
            ));
        }
        if let Err(e) = self.ledger.programme.validate() {
            // Point at the key itself (`cap_percent = "150"`), not the
            // table's header.
            return Err(match e {
                crate::ledger::rules::RulesError::Invalid { field, reason } => {
                    let path = format!("ledger.{field}");
                    invalid(find_path(src, &path), path, reason)
                }
                e => invalid(
                    find_key(src, "programme"),
                    "ledger.programme".into(),
                    e.to_string(),
                ),
            });
        }
        if let Err((path, message)) = programmes::validate(&self.ledger) {
            // `ledger.serves[1]` is found by its key, `serves`.
            let key = path
                .strip_suffix(']')
                .and_then(|p| p.rsplit_once('['))
                .map_or(path.as_str(), |(p, _)| p);
            return Err(invalid(find_path(src, key), path, message));
        }

        // Devices: names unique across readers and printers, exactly one
        // attachment each, and no two on one resource.
        let mut seen: HashMap<&str, String> = HashMap::new();
        let mut taken: Vec<(Resource, String)> = Vec::new();
        let entries = self
            .readers
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("reader[{i}]");
                (
                    path,
                    &r.name,
                    r.resource(),
                    r.attachment().is_some(),
                    "serial, evdev or hid",
                )
            })
            .chain(self.printers.iter().enumerate().map(|(i, p)| {
                let path = format!("printer[{i}]");
                (
                    path,
                    &p.name,
                    p.resource(),
                    p.transport().is_some(),
                    "serial, tcp, usb, hid or file",
                )
            }));
        for (i, p) in self.printers.iter().enumerate() {
            if !(1..=16).contains(&p.points_payment_type) {
                return Err(invalid(
                    find_key(src, "points_payment_type"),
                    format!("printer[{i}].points_payment_type"),
                    "a payment type is 1 to 16".into(),
                ));
            }
            if let Err((key, message)) = p.tax_map() {
                return Err(invalid(
                    find_key(src, "taxes"),
                    format!("printer[{i}].taxes{key}"),
                    message,
                ));
            }
            if let Err(message) = p.load_profile() {
                return Err(invalid(
                    p.profile.span().start,
                    format!("printer[{i}].profile"),
                    message,
                ));
            }
            if let Some(h) = &p.hid {
                if h.target().is_none() {
                    return Err(invalid(
                        p.name.span().start,
                        format!("printer[{i}].hid"),
                        "give exactly one of usb and path".into(),
                    ));
                }
                if let Err((key, message)) = h.framing().validate() {
                    return Err(invalid(
                        find_key(src, key),
                        format!("printer[{i}].hid.{key}"),
                        message,
                    ));
                }
            }
        }
        for (i, r) in self.readers.iter().enumerate() {
            let problem = rules(&r.card)
                .err()
                .or_else(|| frame_codec(&r.framing).err());
            if let Some(e) = problem {
                let key = match e {
                    RuleError::Regex(_) => "regex",
                    RuleError::Prefix(_) => "prefix_hex",
                    RuleError::Framing(_) => "suffix",
                };
                let at = match find_key(src, key) {
                    0 => r.name.span().start,
                    off => off,
                };
                return Err(invalid(at, format!("reader[{i}]"), e.to_string()));
            }
        }
        for (path, name, resource, attached, choices) in entries {
            let at = name.span().start;
            let n = name.get_ref();
            if n.is_empty() || n.len() > 64 || n.chars().any(|c| c.is_control() || c == '/') {
                return Err(invalid(
                    at,
                    format!("{path}.name"),
                    "a device name is 1 to 64 characters, without '/' or control characters".into(),
                ));
            }
            if let Some(first) = seen.insert(n.as_str(), path.clone()) {
                return Err(invalid(
                    at,
                    format!("{path}.name"),
                    format!("device name \"{n}\" is already used by {first}"),
                ));
            }
            if !attached {
                return Err(invalid(
                    at,
                    path,
                    format!("give exactly one of the sub-tables {choices}"),
                ));
            }
            match resource {
                Some(r) => {
                    if let Some((_, other)) = taken.iter().find(|(t, _)| t.overlaps(&r)) {
                        return Err(invalid(
                            at,
                            path,
                            format!("{r} is already used by {other}: one device, one entry"),
                        ));
                    }
                    taken.push((r, format!("\"{n}\"")));
                }
                None => {
                    return Err(invalid(
                        at,
                        format!("{path}.evdev"),
                        "give device (an /dev/input path) or usb (VID:PID)".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
