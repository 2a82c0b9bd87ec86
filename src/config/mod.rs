//! The daemon's configuration: one TOML file a technician edits.
//!
//! Parsing is strict: unknown keys and wrong types are errors carrying the
//! file, line, column and dotted key path. After parsing, [`Config::validate`]
//! checks the rules serde cannot express (exactly one transport per device,
//! unique names, no two devices on one port).

mod error;
mod load;
mod locate;
mod messages;
pub use messages::MessagesConfig;
mod offline;
pub use offline::OfflineConfig;
mod programmes;
mod reader;
mod web;
pub use web::WebConfig;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use posbridge_drivers::printer::document::PaperWidth;
use posbridge_drivers::printer::escpos::Profile;
use posbridge_drivers::transport::{FlowControl, Parity, SerialSettings, TransportSpec};
use serde::Deserialize;
use toml::Spanned;

// The programme's rules are plain data with pure functions: the config
// owns their shape, the ledger their arithmetic.
use crate::ledger::rules::Programme;
use locate::{MAX_ERRORS, blank_lines, find_key, find_path, toml_error};

pub use error::ConfigError;
pub use load::{Located, SYSTEM_CONFIG, Source, default_socket_path, locate};
pub use reader::{
    CardRuleConfig, CheckConfig, FramingConfig, LrcConfig, PresetConfig, RuleError, ScanConfig,
    SecretField, SuffixConfig, TrackField, frame_codec, rules,
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

/// `[ledger]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `embedded` (SQLite in the state dir) or `central` (the chain's
    /// central service, `[ledger.central]`).
    pub backend: LedgerBackend,
    /// The central service, required with `backend = "central"`.
    pub central: Option<CentralConfig>,
    /// Database file; default `<state_dir>/posbridge.sqlite3`.
    pub path: Option<PathBuf>,
    /// The loyalty programme's rules (`[ledger.programme]`).
    pub programme: Programme,
    /// How customers join: card numbers, secrets, confirmation codes
    /// (`[ledger.registration]`).
    pub registration: RegistrationConfig,
    /// Spending points without the card: a one-time code sent to the
    /// customer (`[ledger.redemption]`).
    pub redemption: RedemptionConfig,
    /// argon2 checks and hashes (secrets, code words, codes) run at once,
    /// 1 to 64; each holds about 19 MiB while it runs.
    pub hash_concurrency: usize,
    /// The longest a call waits for its turn to hash, in milliseconds (10
    /// to 60000); then it is answered busy (1006).
    pub hash_queue_timeout_ms: u64,
    /// A till in central mode while the central ledger is out of reach
    /// (`[ledger.offline]`).
    pub offline: OfflineConfig,
    /// More programmes on the same books (`[[ledger.programmes]]`), each a
    /// full programme table whose `name` identifies it.
    pub programmes: Vec<Programme>,
    /// The programmes this till serves, by name, its own first (new cards
    /// join it); empty: the default one, `[ledger.programme]`.
    pub serves: Vec<String>,
    /// Card ranges that route a card to its programme: programme name →
    /// leading digits (`[ledger.programme_cards]`).
    pub programme_cards: std::collections::BTreeMap<String, Vec<String>>,
    /// Messages to consenting customers (`[ledger.messages]`).
    pub messages: MessagesConfig,
}

impl LedgerConfig {
    /// The longest a call waits for its turn to hash.
    pub fn hash_queue_timeout(&self) -> Duration {
        Duration::from_millis(self.hash_queue_timeout_ms)
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            backend: LedgerBackend::Embedded,
            central: None,
            path: None,
            programme: default_programme(),
            registration: RegistrationConfig::default(),
            redemption: RedemptionConfig::default(),
            offline: OfflineConfig::default(),
            hash_concurrency: 2,
            hash_queue_timeout_ms: 5000,
            programmes: Vec::new(),
            serves: Vec::new(),
            programme_cards: std::collections::BTreeMap::new(),
            messages: MessagesConfig::default(),
        }
    }
}

/// `[ledger.redemption]`: whether a customer identified by account (phone
/// or e-mail at the till, no card) may spend points after entering a
/// one-time code sent through `[ledger.registration]`'s notifier, as the
/// pharmacy programme does with the last digits of a call. Off by default:
/// then only a card read with its secret spends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawRedemption")]
pub struct RedemptionConfig {
    /// Codes are accepted at all.
    pub by_code: bool,
    /// Digits of a code, 4 to 6.
    pub code_length: usize,
    /// How long a code is valid.
    pub code_ttl: Duration,
    /// Wrong codes before the code is void.
    pub max_attempts: u32,
    /// Least time between two codes sent to one account.
    pub resend_after: Duration,
}

impl Default for RedemptionConfig {
    fn default() -> Self {
        RedemptionConfig::from_checked(RawRedemption::default())
    }
}

impl RedemptionConfig {
    /// From raw values that passed the checks of `try_from` (the defaults
    /// do).
    fn from_checked(r: RawRedemption) -> Self {
        RedemptionConfig {
            by_code: r.by_code,
            code_length: r.code_length,
            code_ttl: Duration::from_secs(r.code_ttl_seconds),
            max_attempts: r.max_attempts,
            resend_after: Duration::from_secs(r.resend_after_seconds),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRedemption {
    by_code: bool,
    code_length: usize,
    code_ttl_seconds: u64,
    max_attempts: u32,
    resend_after_seconds: u64,
}

impl Default for RawRedemption {
    fn default() -> Self {
        RawRedemption {
            by_code: false,
            code_length: 4,
            code_ttl_seconds: 300,
            max_attempts: 3,
            resend_after_seconds: 30,
        }
    }
}

impl TryFrom<RawRedemption> for RedemptionConfig {
    type Error = String;

    fn try_from(r: RawRedemption) -> Result<Self, String> {
        let key = |k: &str, m: &str| format!("ledger.redemption.{k}: {m}");
        if !(4..=6).contains(&r.code_length) {
            return Err(key("code_length", "4 to 6 digits"));
        }
        if !(1..=3_600).contains(&r.code_ttl_seconds) {
            return Err(key("code_ttl_seconds", "1 to 3600 seconds"));
        }
        if !(1..=10).contains(&r.max_attempts) {
            return Err(key("max_attempts", "1 to 10"));
        }
        if r.resend_after_seconds > 3_600 {
            return Err(key("resend_after_seconds", "at most 3600 seconds"));
        }
        Ok(RedemptionConfig::from_checked(r))
    }
}

/// `[ledger.registration]`: how customers join the programme. Checked as a
/// whole when the file loads (a bad value names its key).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawRegistration")]
pub struct RegistrationConfig {
    /// `none`: an account is active at once; `code`: it is `pending` until
    /// the customer confirms a code sent through the notifier.
    pub confirmation: Confirmation,
    /// Digits of a confirmation code, 4 to 6.
    pub code_length: usize,
    /// How long a confirmation code is valid.
    pub code_ttl: Duration,
    /// Wrong codes before the code is void (a new one must be sent).
    pub max_attempts: u32,
    /// Least time between two codes sent to one account.
    pub resend_after: Duration,
    /// Which notifier sends codes.
    pub notifier: NotifierKind,
    /// `[ledger.registration.command]`, required with `notifier = "command"`.
    pub command: Option<CommandNotifierConfig>,
    /// `[ledger.registration.http]`, required with `notifier = "http"`.
    pub http: Option<HttpNotifierConfig>,
    /// Leading digits of generated (virtual) card numbers.
    pub card_prefix: String,
    /// Total digits of a generated card number, check digit included.
    pub card_length: usize,
    /// The check digit of generated card numbers.
    pub card_check: CardCheck,
    /// Characters of a generated secret code.
    pub secret_length: usize,
    /// The characters a generated secret is drawn from.
    pub secret_alphabet: String,
    /// Leading digits of the programme's own physical cards; a card number
    /// that starts with none of them (nor with `card_prefix`) belongs to
    /// another programme and is refused at registration and issue. Empty:
    /// any number is accepted.
    pub card_ranges: Vec<String>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig::from_checked(RawRegistration::default())
    }
}

impl RegistrationConfig {
    /// From raw values that passed the checks of `try_from` (the defaults
    /// do: no command or http table, the log notifier).
    fn from_checked(r: RawRegistration) -> Self {
        RegistrationConfig {
            confirmation: r.confirmation,
            code_length: r.code_length,
            code_ttl: Duration::from_secs(r.code_ttl_seconds),
            max_attempts: r.max_attempts,
            resend_after: Duration::from_secs(r.resend_after_seconds),
            notifier: r.notifier,
            command: r.command,
            http: r.http,
            card_prefix: r.card_prefix,
            card_length: r.card_length,
            card_check: r.card_check,
            secret_length: r.secret_length,
            secret_alphabet: r.secret_alphabet,
            card_ranges: r.card_ranges,
        }
    }
}

/// Confirmation of a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// Active at once.
    None,
    /// Pending until a code sent to the phone or e-mail is entered.
    Code,
}

/// Which notifier delivers confirmation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    /// Writes the code to the daemon log: for demonstrations only.
    Log,
    /// Runs a program with the code and contact as arguments.
    Command,
    /// POSTs JSON to a URL.
    Http,
}

/// Check digit of generated card numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardCheck {
    /// Luhn (mod 10, doubling every second digit from the right).
    Luhn,
    /// EAN/GTIN (mod 10, weights 3 and 1 from the right).
    Ean13,
}

/// `[ledger.registration.command]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandNotifierConfig {
    /// Absolute path of the program; run directly, never through a shell.
    pub program: PathBuf,
    /// Its arguments; `{code}`, `{contact}` and `{channel}` are replaced.
    #[serde(default)]
    pub args: Vec<String>,
    /// Time allowed for the program to finish.
    #[serde(default = "default_command_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_command_timeout_ms() -> u64 {
    10_000
}

/// `[ledger.registration.http]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpNotifierConfig {
    /// `http://` or `https://` URL the JSON is POSTed to.
    pub url: String,
    /// Time allowed for one attempt.
    #[serde(default = "default_http_timeout_ms")]
    pub timeout_ms: u64,
    /// Further attempts after a failed one, with a doubling pause.
    #[serde(default = "default_http_retries")]
    pub retries: u32,
}

fn default_http_timeout_ms() -> u64 {
    5_000
}

fn default_http_retries() -> u32 {
    2
}

/// `[ledger.registration]` as written, before its checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRegistration {
    confirmation: Confirmation,
    code_length: usize,
    code_ttl_seconds: u64,
    max_attempts: u32,
    resend_after_seconds: u64,
    notifier: NotifierKind,
    command: Option<CommandNotifierConfig>,
    http: Option<HttpNotifierConfig>,
    card_prefix: String,
    card_length: usize,
    card_check: CardCheck,
    secret_length: usize,
    secret_alphabet: String,
    card_ranges: Vec<String>,
}

impl Default for RawRegistration {
    fn default() -> Self {
        RawRegistration {
            confirmation: Confirmation::None,
            code_length: 6,
            code_ttl_seconds: 600,
            max_attempts: 5,
            resend_after_seconds: 60,
            notifier: NotifierKind::Log,
            command: None,
            http: None,
            card_prefix: "2990".into(),
            card_length: 16,
            card_check: CardCheck::Luhn,
            secret_length: 6,
            secret_alphabet: "0123456789".into(),
            card_ranges: Vec::new(),
        }
    }
}

impl TryFrom<RawRegistration> for RegistrationConfig {
    type Error = String;

    fn try_from(r: RawRegistration) -> Result<Self, String> {
        let key = |k: &str, m: &str| format!("ledger.registration.{k}: {m}");
        if !(4..=6).contains(&r.code_length) {
            return Err(key("code_length", "4 to 6 digits"));
        }
        if !(1..=86_400).contains(&r.code_ttl_seconds) {
            return Err(key("code_ttl_seconds", "1 to 86400 seconds"));
        }
        if !(1..=100).contains(&r.max_attempts) {
            return Err(key("max_attempts", "1 to 100"));
        }
        if r.resend_after_seconds > 86_400 {
            return Err(key("resend_after_seconds", "at most 86400 seconds"));
        }
        match (r.notifier, &r.command, &r.http) {
            (NotifierKind::Command, None, _) => {
                return Err(key(
                    "command",
                    "notifier = \"command\" needs a [ledger.registration.command] table",
                ));
            }
            (NotifierKind::Http, _, None) => {
                return Err(key(
                    "http",
                    "notifier = \"http\" needs a [ledger.registration.http] table",
                ));
            }
            _ => {}
        }
        if let Some(c) = &r.command {
            if !c.program.is_absolute() {
                return Err(key("command.program", "an absolute path"));
            }
            if !(1..=600_000).contains(&c.timeout_ms) {
                return Err(key("command.timeout_ms", "1 to 600000"));
            }
        }
        if let Some(h) = &r.http {
            if !(h.url.starts_with("http://") || h.url.starts_with("https://"))
                || reqwest::Url::parse(&h.url).is_err()
            {
                return Err(key("http.url", "an http:// or https:// URL"));
            }
            if !(1..=600_000).contains(&h.timeout_ms) {
                return Err(key("http.timeout_ms", "1 to 600000"));
            }
            if h.retries > 10 {
                return Err(key("http.retries", "at most 10"));
            }
        }
        if !r.card_prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(key("card_prefix", "digits only"));
        }
        for (i, range) in r.card_ranges.iter().enumerate() {
            if !(1..=16).contains(&range.len()) || !range.bytes().all(|b| b.is_ascii_digit()) {
                return Err(key(&format!("card_ranges[{i}]"), "1 to 16 digits"));
            }
        }
        if !(8..=32).contains(&r.card_length) {
            return Err(key("card_length", "8 to 32 digits"));
        }
        // At least 6 random digits, so numbers do not run out.
        if r.card_prefix.len() + 1 + 6 > r.card_length {
            return Err(key(
                "card_prefix",
                "too long for card_length: leave at least 6 random digits and the check digit",
            ));
        }
        if !(4..=32).contains(&r.secret_length) {
            return Err(key("secret_length", "4 to 32 characters"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if r.secret_alphabet.len() < 2
            || !r
                .secret_alphabet
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() && seen.insert(b))
        {
            return Err(key(
                "secret_alphabet",
                "at least 2 different ASCII letters or digits",
            ));
        }
        Ok(RegistrationConfig::from_checked(r))
    }
}

/// The programme a till runs without `[ledger.programme]`.
pub fn default_programme() -> Programme {
    Programme::default()
}

/// Ledger backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerBackend {
    /// SQLite on this terminal.
    Embedded,
    /// The chain's central ledger service (`[ledger.central]`).
    Central,
}

/// `[ledger.central]`: the chain's central ledger service and this till's
/// credential.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// Base URL, `http://` or `https://` (such as
    /// `https://ledger.example.com:7460`).
    pub url: String,
    /// This till's terminal id, as issued by `posbridge-central`.
    pub terminal: String,
    /// A file holding this till's key (first line), readable by the daemon
    /// only.
    pub key_file: PathBuf,
    /// The longest wait for a connection, 100 to 60000 ms.
    #[serde(default = "central_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The longest wait for a whole call, 100 to 300000 ms.
    #[serde(default = "central_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn central_connect_timeout_ms() -> u64 {
    2000
}

fn central_request_timeout_ms() -> u64 {
    5000
}

impl CentralConfig {
    /// The first invalid key and why.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => {
                return Err((
                    "url",
                    format!(
                        "\"{}\": the scheme must be http or https, with a host",
                        u.scheme()
                    ),
                ));
            }
            Err(e) => return Err(("url", format!("not a URL: {e}"))),
        }
        let t = &self.terminal;
        if t.is_empty()
            || t.len() > 64
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err((
                "terminal",
                "1 to 64 ASCII letters, digits, '-', '_' or '.'".into(),
            ));
        }
        if self.key_file.as_os_str().is_empty() {
            return Err(("key_file", "a path to the till's key".into()));
        }
        if !(100..=60_000).contains(&self.connect_timeout_ms) {
            return Err(("connect_timeout_ms", "100 to 60000 milliseconds".into()));
        }
        if !(100..=300_000).contains(&self.request_timeout_ms) {
            return Err(("request_timeout_ms", "100 to 300000 milliseconds".into()));
        }
        Ok(())
    }
}

/// `[receipt]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptConfig {
    /// Language of the labels posbridge prints.
    pub language: Language,
    /// Characters per line of the bonus block (32 for 58 mm paper, 42 or
    /// 48 for 80 mm).
    pub width: usize,
    /// The bonus block's labels, lines and their order.
    pub bonus: BonusTemplate,
}

impl Default for ReceiptConfig {
    fn default() -> Self {
        ReceiptConfig {
            language: Language::Ru,
            width: 32,
            bonus: BonusTemplate::default(),
        }
    }
}

/// The rows a bonus block can show, by their name in
/// `receipt.bonus.lines`.
pub const BONUS_LINES: [&str; 8] = [
    "card",
    "balance_before",
    "redeemed",
    "accrued",
    "balance_after",
    "next_expiry",
    "tier",
    "held",
];

/// The placeholders (`{name}`) labels, the title, header and footer lines
/// may use.
pub const BONUS_PLACEHOLDERS: [&str; 11] = [
    "card",
    "balance_before",
    "redeemed",
    "accrued",
    "balance_after",
    "next_expiry_amount",
    "next_expiry_date",
    "tier",
    "agreement_url",
    "held",
    "held_date",
];

/// `[receipt.bonus]`: what the bonus block shows. Unset keys take the
/// `receipt.language` defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BonusTemplate {
    /// The bold centred title; `""` for none.
    pub title: Option<String>,
    /// Centred lines above the title.
    pub header: Vec<String>,
    /// Centred lines below the rows.
    pub footer: Vec<String>,
    /// The rows and their order, names from [`BONUS_LINES`].
    pub lines: Option<Vec<String>>,
    /// Row labels.
    pub labels: BonusLabels,
}

/// `[receipt.bonus.labels]`: one label per row of [`BONUS_LINES`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BonusLabels {
    /// The masked card.
    pub card: Option<String>,
    /// Balance before the sale.
    pub balance_before: Option<String>,
    /// Points spent (the row is left out when none were).
    pub redeemed: Option<String>,
    /// Points earned.
    pub accrued: Option<String>,
    /// Balance after the sale.
    pub balance_after: Option<String>,
    /// The next points to expire (left out when none expire).
    pub next_expiry: Option<String>,
    /// The customer's tier (left out when the account has none).
    pub tier: Option<String>,
    /// In place of `accrued` when the central ledger was out of reach and
    /// the accrual is queued (the `balance_after` row is left out then).
    pub pending: Option<String>,
    /// Points held by the accrual window (`hold_days`), not in the balance
    /// after; left out when none are.
    pub held: Option<String>,
}

/// A piece of a bonus template: literal text or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text as written (`{{` and `}}` already turned into braces).
    Text(String),
    /// One of [`BONUS_PLACEHOLDERS`].
    Field(&'static str),
}

/// Splits a template into text and placeholders; an unknown placeholder or
/// a lone brace is an error saying which.
pub fn template_parts(t: &str) -> Result<Vec<TemplatePart>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(format!(
                        "\"{{{name}\" is not closed; write \"{{{{\" for a brace"
                    ));
                }
                let Some(field) = BONUS_PLACEHOLDERS.iter().find(|p| **p == name) else {
                    return Err(format!(
                        "unknown placeholder {{{name}}}; known: {}",
                        BONUS_PLACEHOLDERS.join(", ")
                    ));
                };
                if !text.is_empty() {
                    out.push(TemplatePart::Text(std::mem::take(&mut text)));
                }
                out.push(TemplatePart::Field(field));
            }
            '}' => return Err("a lone \"}\"; write \"}}\" for a brace".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(TemplatePart::Text(text));
    }
    Ok(out)
}

impl BonusTemplate {
    /// Checks line names and placeholders; the error is the key under
    /// `receipt.bonus` (`lines[2]`, `labels.card`, `footer[0]`) and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let check = |key: String, t: &str| {
            if t.chars().count() > 200 {
                return Err((key, "at most 200 characters".to_owned()));
            }
            template_parts(t).map(|_| ()).map_err(|e| (key, e))
        };
        if let Some(t) = &self.title {
            check("title".into(), t)?;
        }
        for (name, list) in [("header", &self.header), ("footer", &self.footer)] {
            if list.len() > 20 {
                return Err((name.into(), "at most 20 lines".into()));
            }
            for (i, t) in list.iter().enumerate() {
                check(format!("{name}[{i}]"), t)?;
            }
        }
        if let Some(lines) = &self.lines {
            for (i, l) in lines.iter().enumerate() {
                if !BONUS_LINES.contains(&l.as_str()) {
                    return Err((
                        format!("lines[{i}]"),
                        format!("unknown line \"{l}\"; known: {}", BONUS_LINES.join(", ")),
                    ));
                }
                if lines[..i].contains(l) {
                    return Err((format!("lines[{i}]"), format!("\"{l}\" is listed twice")));
                }
            }
        }
        let l = &self.labels;
        for (name, label) in [
            ("card", &l.card),
            ("balance_before", &l.balance_before),
            ("redeemed", &l.redeemed),
            ("accrued", &l.accrued),
            ("balance_after", &l.balance_after),
            ("pending", &l.pending),
            ("next_expiry", &l.next_expiry),
            ("tier", &l.tier),
            ("held", &l.held),
        ] {
            if let Some(t) = label {
                check(format!("labels.{name}"), t)?;
            }
        }
        Ok(())
    }
}

/// Receipt label language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Russian (the default: the loyalty programmes are Russian).
    Ru,
    /// English.
    En,
}

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

    fn resource(&self) -> Option<Resource> {
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

    fn resource(&self) -> Option<Resource> {
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
