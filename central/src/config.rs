//! `central.toml`: the central service's configuration.
//!
//! The programme, registration and redemption tables are the till's own
//! types ([`posbridge::config`], [`posbridge::ledger::rules::Programme`]),
//! so a programme copied from a till's `posbridge.toml` means the same here.
//! Every error names the file, line, column and dotted key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use posbridge::config::{ConfigError, RedemptionConfig, RegistrationConfig};
use posbridge::ledger::programmes::{ProgrammeError, Programmes};
use posbridge::ledger::rules::Programme;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[ledger]`.
    #[serde(default)]
    pub ledger: LedgerSection,
    /// `[jobs]`.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// `[backoffice]`: the chain's back office (off unless `listen` is set).
    #[serde(default)]
    pub backoffice: BackofficeSection,
}

/// `[backoffice]`: the operators' pages over the chain's ledger, the same
/// pages and rules as a till's `[backoffice]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BackofficeSection {
    /// Address to serve on, such as `127.0.0.1:8740`; absent: off.
    pub listen: Option<SocketAddr>,
    /// Must be true to listen on a non-loopback address: the pages move
    /// points and block cards, so exposing them is a deliberate choice.
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[server]`: the HTTP listener and its limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// `[server.tls]`: terminate TLS here; without it the service speaks
    /// plain HTTP (behind a TLS proxy, or on a trusted network).
    pub tls: Option<TlsConfig>,
    /// Largest request body accepted, in bytes (answered 413 beyond).
    pub max_body_bytes: usize,
    /// The longest one request may take, in milliseconds (answered 503).
    pub request_timeout_ms: u64,
    /// Requests served at once; more wait (bounded by the timeout).
    pub max_concurrent_requests: usize,
    /// How long a terminal's row (store, key hash, status) read for one
    /// request is trusted for the next ones, in milliseconds: a revoked
    /// till is refused by every instance at most this long after the
    /// revocation. 0 reads the row on every request.
    pub terminal_status_ttl_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8730)),
            tls: None,
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 10_000,
            max_concurrent_requests: 256,
            terminal_status_ttl_ms: 5_000,
        }
    }
}

impl ServerConfig {
    /// [`ServerConfig::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`ServerConfig::terminal_status_ttl_ms`] as a duration.
    pub fn terminal_status_ttl(&self) -> Duration {
        Duration::from_millis(self.terminal_status_ttl_ms)
    }
}

/// `[server.tls]`: PEM files.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection string (`postgres://user@host:port/db` or
    /// `host=/run/postgresql dbname=…`).
    pub url: Option<String>,
    /// A file holding the connection string (so a password stays out of the
    /// configuration); exactly one of `url` and `url_file`.
    pub url_file: Option<PathBuf>,
    /// Connections kept open to the database.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
}

fn default_pool() -> usize {
    16
}

impl DatabaseConfig {
    /// The connection string, read from `url_file` when given.
    pub fn connection_string(&self) -> Result<String, ConfigError> {
        match (&self.url, &self.url_file) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(f)) => posbridge::textfile::read_text(f)
                .map(|s| s.trim().to_owned())
                .map_err(|source| ConfigError::Read {
                    file: f.clone(),
                    source,
                }),
            // validate() refuses this; kept total for callers that built
            // the struct by hand.
            (None, None) => Err(ConfigError::Invalid {
                file: PathBuf::new(),
                line: 1,
                column: 1,
                path: "database.url".into(),
                message: "give url or url_file".into(),
            }),
        }
    }
}

/// `[ledger]`: the programme the chain runs, as on a till.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// `[ledger.programme]`.
    pub programme: Programme,
    /// `[ledger.registration]`.
    pub registration: RegistrationConfig,
    /// `[ledger.redemption]`.
    pub redemption: RedemptionConfig,
    /// `[[ledger.programmes]]`: the chain's other programmes, each named;
    /// a till uses only those its `[ledger] serves` names.
    pub programmes: Vec<Programme>,
    /// `[ledger.programme_cards]`: card ranges that route a card to its
    /// programme (programme name → leading digits), as on a till.
    pub programme_cards: std::collections::BTreeMap<String, Vec<String>>,
}

impl LedgerSection {
    /// Every programme of the chain, the default one first, with the card
    /// ranges (a request serves the programmes its till names).
    pub fn programme_set(&self) -> Result<Programmes, ProgrammeError> {
        let routes: Vec<(String, Vec<String>)> = self
            .programme_cards
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Programmes::new(
            self.programme.clone(),
            self.programmes.clone(),
            &[],
            &routes,
        )
    }
}

/// `[jobs]`: the chain's daily work.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// `"HH:MM"` in the programme's time (`utc_offset_minutes`) at which
    /// tiers are evaluated for every account, once for the chain.
    pub daily_at: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            daily_at: "00:05".into(),
        }
    }
}

impl JobsConfig {
    /// `daily_at` as (hour, minute), if well formed.
    pub fn daily_time(&self) -> Option<(u8, u8)> {
        let (h, m) = self.daily_at.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        (h < 24 && m < 60).then_some((h, m))
    }
}

impl CentralConfig {
    /// Reads and parses `file`.
    pub fn load(file: &Path) -> Result<CentralConfig, ConfigError> {
        let src = posbridge::textfile::read_text(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        CentralConfig::parse(&src, file)
    }

    /// Parses and checks `src`, naming `file` in errors.
    pub fn parse(src: &str, file: &Path) -> Result<CentralConfig, ConfigError> {
        let de = toml::de::Deserializer::parse(src).map_err(|e| toml_error(src, file, "", &e))?;
        let config: CentralConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            toml_error(src, file, &path, e.inner())
        })?;
        config.validate(src, file)?;
        Ok(config)
    }

    fn validate(&self, src: &str, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, path: &str, message: String| {
            let (line, column) = line_col(src, find_key(src, key));
            Err(ConfigError::Invalid {
                file: file.to_path_buf(),
                line,
                column,
                path: path.into(),
                message,
            })
        };
        let s = &self.server;
        if !(1024..=64 * 1024 * 1024).contains(&s.max_body_bytes) {
            return invalid(
                "max_body_bytes",
                "server.max_body_bytes",
                "1024 to 67108864 bytes".into(),
            );
        }
        if !(100..=600_000).contains(&s.request_timeout_ms) {
            return invalid(
                "request_timeout_ms",
                "server.request_timeout_ms",
                "100 to 600000 milliseconds".into(),
            );
        }
        if !(1..=10_000).contains(&s.max_concurrent_requests) {
            return invalid(
                "max_concurrent_requests",
                "server.max_concurrent_requests",
                "1 to 10000".into(),
            );
        }
        if s.terminal_status_ttl_ms > 60_000 {
            return invalid(
                "terminal_status_ttl_ms",
                "server.terminal_status_ttl_ms",
                "0 to 60000 milliseconds".into(),
            );
        }
        let d = &self.database;
        if d.url.is_some() == d.url_file.is_some() {
            return invalid(
                "database",
                "database.url",
                "give exactly one of url and url_file".into(),
            );
        }
        if !(1..=1000).contains(&d.pool_size) {
            return invalid("pool_size", "database.pool_size", "1 to 1000".into());
        }
        if let Err(e) = self.ledger.programme.validate() {
            return invalid("programme", "ledger.programme", e.to_string());
        }
        for (i, p) in self.ledger.programmes.iter().enumerate() {
            if let Err(e) = p.validate() {
                return invalid(
                    "programmes",
                    &format!("ledger.programmes[{i}]"),
                    e.to_string(),
                );
            }
        }
        if let Err(e) = self.ledger.programme_set() {
            return invalid("programmes", "ledger.programmes", e.to_string());
        }
        if let Some(addr) = self.backoffice.listen
            && !addr.ip().is_loopback()
            && !self.backoffice.allow_remote
        {
            return invalid(
                "listen",
                "backoffice.listen",
                format!(
                    "{addr} is not a loopback address; set backoffice.allow_remote = true \
                     to expose the back office to the network deliberately"
                ),
            );
        }
        if self.jobs.daily_time().is_none() {
            return invalid(
                "daily_at",
                "jobs.daily_at",
                format!("\"{}\" is not a time such as \"00:05\"", self.jobs.daily_at),
            );
        }
        Ok(())
    }
}

fn toml_error(src: &str, file: &Path, path: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map_or((1, 1), |s| line_col(src, s.start));
    ConfigError::Invalid {
        file: file.to_path_buf(),
        line,
        column,
        path: path.into(),
        message: e.message().to_owned(),
    }
}

/// Byte offset of the first line that starts with `key` (or `[key`), for
/// rules serde cannot point at; 0 when absent.
fn find_key(src: &str, key: &str) -> usize {
    let mut off = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim_start();
        let t = t.strip_prefix('[').unwrap_or(t);
        let t = t.strip_prefix("ledger.").unwrap_or(t);
        if t.starts_with(key) {
            return off + (line.len() - line.trim_start().len());
        }
        off += line.len();
    }
    0
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = (0..=offset.min(src.len()))
        .rev()
        .find(|&i| src.is_char_boundary(i))
        .unwrap_or(0);
    let before = &src[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<CentralConfig, String> {
        CentralConfig::parse(src, Path::new("central.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_chains_programmes_are_named_uniquely_and_routed_to_existing_ones() {
        let base = "[database]\nurl = \"x\"\n[ledger.programme]\nname = \"Кино\"\n\
                    [[ledger.programmes]]\nname = \"Бар\"\n";
        let c = parse(&format!(
            "{base}[ledger.programme_cards]\n\"Бар\" = [\"7002\"]\n"
        ))
        .unwrap();
        let set = c.ledger.programme_set().unwrap();
        assert_eq!(set.all().count(), 2);
        let e = parse(&format!("{base}[[ledger.programmes]]\nname = \"Кино\"\n")).unwrap_err();
        assert!(e.contains("\"Кино\" is defined twice"), "{e}");
        let e = parse(&format!(
            "{base}[ledger.programme_cards]\n\"Кафе\" = [\"7\"]\n"
        ))
        .unwrap_err();
        assert!(e.contains("no programme is named \"Кафе\""), "{e}");
    }

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        let c = parse("[database]\nurl = \"postgres://u@localhost/chain\"\n").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8730");
        assert_eq!(c.server.max_body_bytes, 1024 * 1024);
        assert_eq!(c.database.pool_size, 16);
        assert_eq!(
            c.server.terminal_status_ttl(),
            crate::principals::STATUS_TTL
        );
        assert_eq!(c.jobs.daily_time(), Some((0, 5)));
        assert_eq!(c.ledger.programme, Programme::default());
    }

    #[test]
    fn the_tills_programme_tables_parse_here() {
        let c = parse(
            "[database]\nurl = \"x\"\n[ledger.programme]\nname = \"Аптека\"\n\
             default_accrual_percent = \"3\"\nexpiry_months = 12\n\
             [ledger.redemption]\nby_code = true\n[jobs]\ndaily_at = \"03:30\"\n\
             [server]\nlisten = \"0.0.0.0:9000\"\n[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.ledger.programme.name, "Аптека");
        assert_eq!(c.ledger.programme.expiry_months, Some(12));
        assert!(c.ledger.redemption.by_code);
        assert_eq!(c.jobs.daily_time(), Some((3, 30)));
        assert_eq!(c.server.tls.unwrap().key, PathBuf::from("k.pem"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[database]\nurl = \"x\"\n[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n")
            .unwrap_err();
        assert!(e.contains("central.toml:5:1"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        let e =
            parse("[database]\nurl = \"x\"\n[ledger.redemption]\ncode_length = 9\n").unwrap_err();
        assert!(e.contains("ledger.redemption.code_length"), "{e}");
        let e = parse("[database]\nurl = \"x\"\n[server]\nmax_body_bytes = 1\n").unwrap_err();
        assert!(e.contains(":4:1: server.max_body_bytes"), "{e}");
        let e = parse("[database]\nurl = \"x\"\n[server]\nterminal_status_ttl_ms = 60001\n")
            .unwrap_err();
        assert!(e.contains(":4:1: server.terminal_status_ttl_ms"), "{e}");
        let c = parse("[database]\nurl = \"x\"\n[server]\nterminal_status_ttl_ms = 0\n").unwrap();
        assert!(c.server.terminal_status_ttl().is_zero());
        let e = parse("[database]\nurl = \"x\"\n[jobs]\ndaily_at = \"25:00\"\n").unwrap_err();
        assert!(e.contains("jobs.daily_at"), "{e}");
        let e = parse("[database]\nurl = \"x\"\nurl_file = \"f\"\n").unwrap_err();
        assert!(e.contains("database.url"), "{e}");
        let e = parse("[server]\n").unwrap_err();
        assert!(e.contains("database"), "{e}");
    }

    #[test]
    fn the_back_office_listens_on_loopback_unless_allowed() {
        let c = parse("[database]\nurl = \"x\"\n").unwrap();
        assert_eq!(c.backoffice.listen, None);
        let c =
            parse("[database]\nurl = \"x\"\n[backoffice]\nlisten = \"127.0.0.1:8740\"\n").unwrap();
        assert_eq!(c.backoffice.listen.unwrap().port(), 8740);
        let e = parse("[database]\nurl = \"x\"\n[backoffice]\nlisten = \"0.0.0.0:8740\"\n")
            .unwrap_err();
        assert!(e.contains("backoffice.listen"), "{e}");
        assert!(e.contains("allow_remote"), "{e}");
        let c = parse(
            "[database]\nurl = \"x\"\n[backoffice]\nlisten = \"0.0.0.0:8740\"\nallow_remote = true\n",
        )
        .unwrap();
        assert!(c.backoffice.allow_remote);
    }

    #[test]
    fn the_url_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("url");
        std::fs::write(&f, "postgres://secret@db/chain\n").unwrap();
        let c = parse(&format!("[database]\nurl_file = \"{}\"\n", f.display())).unwrap();
        assert_eq!(
            c.database.connection_string().unwrap(),
            "postgres://secret@db/chain"
        );
    }
}
