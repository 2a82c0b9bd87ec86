//! Finding the configuration file and the directories the daemon uses.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// The system-wide configuration file.
pub const SYSTEM_CONFIG: &str = "/etc/posbridge/posbridge.toml";

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--config PATH`.
    Flag(PathBuf),
    /// `$POSBRIDGE_CONFIG`.
    Env(PathBuf),
    /// `/etc/posbridge/posbridge.toml`.
    System(PathBuf),
    /// The user config dir.
    User(PathBuf),
    /// No file anywhere: built-in defaults.
    Defaults,
}

impl Source {
    /// The file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Flag(p) | Source::Env(p) | Source::System(p) | Source::User(p) => Some(p),
            Source::Defaults => None,
        }
    }
}

/// A configuration and where it was found.
#[derive(Debug, Clone)]
pub struct Located {
    /// The parsed, validated configuration.
    pub config: Config,
    /// Its origin, kept so SIGHUP re-reads the same file.
    pub source: Source,
}

/// Finds the configuration: `--config`, then `$POSBRIDGE_CONFIG`, then
/// `/etc/posbridge/posbridge.toml`, then the user config dir. A path named
/// explicitly (flag or variable) must exist; the others are optional.
pub fn locate(flag: Option<&Path>) -> Source {
    if let Some(p) = flag {
        return Source::Flag(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("POSBRIDGE_CONFIG").filter(|v| !v.is_empty()) {
        return Source::Env(PathBuf::from(p));
    }
    let system = PathBuf::from(SYSTEM_CONFIG);
    if system.exists() {
        return Source::System(system);
    }
    if let Some(dirs) = project_dirs() {
        let user = dirs.config_dir().join("posbridge.toml");
        if user.exists() {
            return Source::User(user);
        }
    }
    Source::Defaults
}

impl Source {
    /// Reads and validates the configuration from this source.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self.path() {
            None => Ok(Config::default()),
            Some(p) => {
                let src = crate::textfile::read_text(p).map_err(|source| ConfigError::Read {
                    file: p.to_path_buf(),
                    source,
                })?;
                Config::parse(&src, p)
            }
        }
    }
}

pub(crate) fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "posbridge")
}

/// First entry of a systemd directory variable (`$STATE_DIRECTORY` may list
/// several, colon-separated).
fn systemd_dir(var: &str) -> Option<PathBuf> {
    let v = std::env::var_os(var)?;
    let first = v.to_str()?.split(':').next()?.to_owned();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

impl Config {
    /// Directory for the embedded ledger and durable queues.
    pub fn state_dir(&self) -> PathBuf {
        self.daemon
            .state_dir
            .clone()
            .or_else(|| systemd_dir("STATE_DIRECTORY"))
            .or_else(|| project_dirs().map(|d| d.data_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from("/var/lib/posbridge"))
    }

    /// The Unix socket path.
    pub fn socket_path(&self) -> PathBuf {
        if let Some(p) = &self.daemon.socket {
            return p.clone();
        }
        default_socket_path()
    }

    /// The embedded database file.
    pub fn database_path(&self) -> PathBuf {
        self.ledger
            .path
            .clone()
            .unwrap_or_else(|| self.state_dir().join("posbridge.sqlite3"))
    }
}

/// `$RUNTIME_DIRECTORY/posbridge.sock` under systemd, else the XDG runtime
/// dir; the CLI client uses the same rule to find the daemon.
pub fn default_socket_path() -> PathBuf {
    let dir = systemd_dir("RUNTIME_DIRECTORY")
        .or_else(|| project_dirs().and_then(|d| d.runtime_dir().map(Path::to_path_buf)))
        .or_else(|| std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("posbridge")))
        .unwrap_or_else(|| PathBuf::from("/run/posbridge"));
    dir.join("posbridge.sock")
}
