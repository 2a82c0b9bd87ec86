//! The ledger's sections: `[ledger]` with its redemption, registration
//! and notifier settings, and the central service's connection.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{MessagesConfig, OfflineConfig};
// The programme's rules are plain data with pure functions: the config
// owns their shape, the ledger their arithmetic.
use crate::ledger::rules::Programme;

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
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
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
