//! The daemon's shared state, as the API and the main loop see it, and the
//! reload procedure both SIGHUP and `system.reload` use.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;

use crate::auth::{TokenError, Tokens};
use crate::cards::Cards;
use crate::config::{Config, ConfigError, Source};
use crate::devices::{ApplyReport, DeviceEntry, Devices, Journal, Queue, ReaderOutput};
use crate::events::{EventBus, now_rfc3339};
use crate::ledger::Ledger;
use crate::ledger::local::Local;
use crate::ledger::offline::{Offline, Policy};
use crate::ledger::remote::{Central, CentralError, Endpoint};
use crate::store::Store;

/// Why a reload was refused; the old configuration stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The token file is invalid.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// The loader thread died; nothing was changed.
    #[error("configuration loader failed: {0}")]
    Loader(String),
}

/// Why the daemon's state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The token file is invalid.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// The central ledger's client could not be set up.
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// What a successful reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// Device changes.
    pub devices: ApplyReport,
    /// Settings that changed but only take effect after a restart
    /// (socket path, TCP listener, state dir, ledger file).
    pub restart_required: Vec<&'static str>,
}

/// Everything the API can reach.
pub struct App {
    /// When the daemon started, for uptime.
    pub started: Instant,
    /// The same, as wall-clock time.
    pub started_at: String,
    /// Where the configuration came from; SIGHUP re-reads it.
    pub source: Source,
    config: RwLock<Arc<Config>>,
    // The configuration the process started with: settings read only at
    // start-up (socket, TCP, database, limits) are compared against it, so
    // a reload reports what is still waiting for a restart.
    boot: Arc<Config>,
    tokens: RwLock<Arc<Tokens>>,
    /// The event bus.
    pub bus: EventBus,
    /// Device actors.
    pub devices: Devices,
    /// Card tokens and `card.read`.
    pub cards: Arc<Cards>,
    /// The loyalty ledger: money, accounts and tiers, on this till's store
    /// or the chain's central service.
    pub ledger: Arc<dyn Ledger>,
    /// The same ledger's offline side, in central mode: the outbox, its
    /// status and dead-letter list (`ledger.sync.*`).
    pub sync: Option<Arc<Offline>>,
    /// Delivers registration confirmation codes (`[ledger.registration]`,
    /// fixed at start like the rest of the ledger).
    pub notifier: Arc<dyn crate::notify::Notifier>,
    /// Customer messages waiting for the notifier (`[ledger.messages]`).
    pub messages: Arc<crate::notify::messages::Outbox>,
    /// The embedded database.
    pub store: Store,
    /// The socket actually bound (may come from systemd).
    pub socket_path: PathBuf,
    // Serialises reloads: two SIGHUPs in a row must not interleave.
    reload_lock: tokio::sync::Mutex<()>,
}

impl App {
    /// Builds the state and starts the configured devices.
    pub fn start(
        config: Config,
        source: Source,
        store: Store,
        socket_path: PathBuf,
    ) -> Result<Arc<App>, StartError> {
        let tokens = load_tokens(&config)?;
        let bus = EventBus::new();
        let cards = Arc::new(Cards::new(bus.clone(), store.terminal_id().to_owned()));
        let (reads_tx, mut reads_rx) = tokio::sync::mpsc::channel(64);
        // Reader actors hand their output here; the card service turns it
        // into tokens and events. The task ends when every reader is gone.
        let (ledger, sync) = ledger_of(&config, &store)?;
        let service = cards.clone();
        let resolver = ledger.clone();
        let scan_bus = bus.clone();
        tokio::spawn(async move {
            while let Some(out) = reads_rx.recv().await {
                crate::metrics::count_read(&out);
                match out {
                    ReaderOutput::Card(read) => {
                        let account = resolver
                            .resolve(read.number.expose().to_owned())
                            .await
                            .unwrap_or_else(|e| {
                                tracing::error!(error = %e, "resolving a card failed");
                                None
                            });
                        let reader = read.reader.clone();
                        if let Err(e) = service.accept(read, account) {
                            // Fail closed: no token without randomness.
                            tracing::error!(error = %e, "no card token minted");
                            service.read_error(&reader, "no card token: the random source failed");
                        }
                    }
                    ReaderOutput::Scan(scan) => {
                        crate::scans::publish(&scan_bus, &scan);
                    }
                    ReaderOutput::Error { reader, reason } => service.read_error(&reader, &reason),
                }
            }
        });
        let devices = Devices::new(
            bus.clone(),
            reads_tx,
            Queue::new(store.clone()),
            Journal::new(store.clone()),
        );
        devices.apply(DeviceEntry::from_config(&config));
        let notifier = crate::notify::from_config(&config.ledger.registration);
        if config.ledger.registration.confirmation == crate::config::Confirmation::Code
            && config.ledger.registration.notifier == crate::config::NotifierKind::Log
        {
            // Legitimate for the demo, a leak anywhere else: say so loudly.
            tracing::warn!(
                "ledger.registration: confirmation codes go to the log only (notifier = \"log\"); \
                 set notifier = \"command\" or \"http\" to reach customers"
            );
        }
        let messages = crate::notify::messages::Outbox::start(ledger.clone(), notifier.clone());
        Ok(Arc::new(App {
            started: Instant::now(),
            started_at: now_rfc3339(),
            source,
            boot: Arc::new(config.clone()),
            config: RwLock::new(Arc::new(config)),
            tokens: RwLock::new(Arc::new(tokens)),
            bus,
            devices,
            cards,
            ledger,
            sync,
            notifier,
            messages,
            store,
            socket_path,
            reload_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The tokens in force.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the configuration: validate everything first, then swap and
    /// restart only the devices whose entries changed. On error nothing
    /// changes.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let source = self.source.clone();
        let new = tokio::task::spawn_blocking(move || source.load())
            .await
            .map_err(|e| ReloadError::Loader(e.to_string()))??;
        let tokens = load_tokens(&new)?;
        let old = &self.boot;

        let mut restart_required = Vec::new();
        if old.socket_path() != new.socket_path()
            || old.daemon.socket_mode != new.daemon.socket_mode
            || old.daemon.socket_group != new.daemon.socket_group
        {
            restart_required.push("daemon.socket");
        }
        if old.daemon.tcp != new.daemon.tcp {
            restart_required.push("daemon.tcp");
        }
        if old.backoffice != new.backoffice {
            restart_required.push("backoffice");
        }
        if old.state_dir() != new.state_dir() || old.ledger != new.ledger {
            restart_required.push("ledger");
        }
        if old.daemon.log_level != new.daemon.log_level {
            restart_required.push("daemon.log_level");
        }
        if old.daemon.max_clients != new.daemon.max_clients {
            restart_required.push("daemon.max_clients");
        }
        if old.daemon.shutdown_grace_ms != new.daemon.shutdown_grace_ms {
            restart_required.push("daemon.shutdown_grace_ms");
        }

        let devices = self.devices.apply(DeviceEntry::from_config(&new));
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tokens);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        Ok(ReloadReport {
            devices,
            restart_required,
        })
    }
}

/// The ledger, and its offline side in central mode.
type LedgerPair = (Arc<dyn Ledger>, Option<Arc<Offline>>);

/// The ledger `config` names: the books on `store`, or the central
/// service's client (whose programme check runs in the background).
fn ledger_of(config: &Config, store: &Store) -> Result<LedgerPair, CentralError> {
    use crate::config::LedgerBackend;
    let mut settings = account_settings(&config.ledger.registration, &config.ledger.redemption);
    settings.hash_concurrency = config.ledger.hash_concurrency;
    settings.hash_queue_timeout = config.ledger.hash_queue_timeout();
    let programme = config.ledger.programme.clone();
    // The config check has resolved every name already.
    let programmes = crate::ledger::programmes::Programmes::new(
        programme.clone(),
        config.ledger.programmes.clone(),
        &config.ledger.serves,
        &config.ledger.programme_routes(),
    )
    .map_err(|e| CentralError::Client(format!("[ledger] programmes: {e}")))?;
    match (config.ledger.backend, &config.ledger.central) {
        (LedgerBackend::Embedded, _) => {
            let local = Local::with_programmes(store.clone(), programmes, settings);
            Ok((Arc::new(local), None))
        }
        (LedgerBackend::Central, None) => Err(CentralError::Client(
            "backend = \"central\" needs a [ledger.central] table".into(),
        )),
        (LedgerBackend::Central, Some(c)) => {
            let endpoint = Endpoint {
                url: c.url.clone(),
                terminal: c.terminal.clone(),
                key: crate::ledger::remote::read_key(&c.key_file)?,
                connect_timeout: std::time::Duration::from_millis(c.connect_timeout_ms),
                request_timeout: std::time::Duration::from_millis(c.request_timeout_ms),
            };
            let central = Central::new(endpoint, programme, settings)?.serving(programmes)?;
            let check = central.clone();
            tokio::spawn(async move {
                // About 20 minutes of backoff: a till may start before the
                // service; sales answer 2050 until it is reachable anyway.
                if let Err(e) = check.check_programme(25).await {
                    tracing::warn!(error = %e, "could not compare the programme with the central ledger's");
                }
            });
            tracing::info!(url = %c.url, terminal = %c.terminal, "ledger: central");
            let o = &config.ledger.offline;
            let policy = Policy {
                enabled: o.enabled,
                max_offline: std::time::Duration::from_secs(o.max_offline_secs),
                redeem_limit: o.redeem_limit,
                clock_tolerance: std::time::Duration::from_secs(o.clock_tolerance_secs),
                heartbeat: std::time::Duration::from_secs(o.heartbeat_secs),
                retry_max: std::time::Duration::from_millis(o.retry_max_ms),
                queue_limit: o.queue_limit,
            };
            let offline = Arc::new(Offline::new(central, store.clone(), policy));
            Ok((offline.clone(), Some(offline)))
        }
    }
}

/// The accounts module's view of `[ledger.registration]` and
/// `[ledger.redemption]` (the ledger floor does not read the configuration
/// itself).
pub fn account_settings(
    r: &crate::config::RegistrationConfig,
    redemption: &crate::config::RedemptionConfig,
) -> crate::ledger::accounts::Settings {
    use crate::config::{CardCheck, Confirmation};
    use crate::ledger::accounts::{
        CardFormat, CheckDigit, ConfirmSettings, SecretFormat, Settings,
    };
    Settings {
        card_ranges: r.card_ranges.clone(),
        card: CardFormat {
            prefix: r.card_prefix.clone(),
            length: r.card_length,
            check: match r.card_check {
                CardCheck::Luhn => CheckDigit::Luhn,
                CardCheck::Ean13 => CheckDigit::Ean13,
            },
        },
        secret: SecretFormat {
            length: r.secret_length,
            alphabet: r.secret_alphabet.clone(),
        },
        confirm: match r.confirmation {
            Confirmation::None => None,
            Confirmation::Code => Some(ConfirmSettings {
                code_length: r.code_length,
                ttl: r.code_ttl,
                max_attempts: i64::from(r.max_attempts),
                resend_after: r.resend_after,
            }),
        },
        redeem_code: redemption.by_code.then(|| ConfirmSettings {
            code_length: redemption.code_length,
            ttl: redemption.code_ttl,
            max_attempts: i64::from(redemption.max_attempts),
            resend_after: redemption.resend_after,
        }),
        // Set from `[ledger]` by the caller.
        ..Settings::default()
    }
}

fn load_tokens(config: &Config) -> Result<Tokens, TokenError> {
    match &config.daemon.token_file {
        Some(p) => Tokens::load(p),
        None => Ok(Tokens::default()),
    }
}
