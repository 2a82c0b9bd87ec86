//! `posbridge run`: bind, start devices, tell systemd we are ready, serve
//! until SIGTERM, then shut down in order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::fdlimit;
use crate::api::listener::{self, ListenError, Listener};
use crate::app::App;
use crate::auth::TokenError;
use crate::config::{Config, Source};
use crate::store::{Store, StoreError};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be set up.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The token file is unusable.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// The central ledger's client could not be set up.
    #[error(transparent)]
    Central(#[from] crate::ledger::remote::CentralError),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config, source: Source) -> Result<(), DaemonError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

    // Before anything opens descriptors: systemd's default soft limit
    // (1024) is below what max_clients may ask for.
    let nofile = fdlimit::raise_nofile();
    let store = Store::open(&config.database_path())?;
    tracing::info!(db = %store.path().display(), terminal = store.terminal_id(), "database open");

    // A socket from systemd belongs to systemd: it is neither created nor
    // removed here.
    let (unix, socket_path, owned) = match listener::from_systemd()? {
        Some((l, path)) => {
            tracing::info!(socket = %path.display(), "using the socket passed by systemd");
            (l, path, false)
        }
        None => {
            let path = config.socket_path();
            let l = listener::bind_unix(
                &path,
                config.daemon.socket_mode_bits(),
                config.daemon.socket_group.as_deref(),
            )?;
            (l, path, true)
        }
    };
    // From here on the socket file is ours to remove, whatever happens.
    let _socket_guard = owned.then(|| SocketFile(socket_path.clone()));
    let tcp = match &config.daemon.tcp {
        Some(t) => {
            let addr = *t.listen.get_ref();
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ListenError::Io {
                    what: format!("bind tcp {addr}"),
                    source,
                })?;
            tracing::info!(addr = %l.local_addr().unwrap_or(addr), "TCP listener on");
            Some(l)
        }
        None => None,
    };

    // The back office binds before "ready", so a port in use fails the
    // start instead of a page that never answers.
    let backoffice = match &config.backoffice.listen {
        Some(listen) => {
            let addr = *listen.get_ref();
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ListenError::Io {
                    what: format!("bind backoffice {addr}"),
                    source,
                })?;
            tracing::info!(addr = %l.local_addr().unwrap_or(addr), "back office on");
            Some(l)
        }
        None => None,
    };

    let grace = config.daemon.shutdown_grace();
    let max_clients = {
        let devices = crate::devices::DeviceEntry::from_config(&config).len() as u64;
        let reserved = fdlimit::open_now() + fdlimit::PER_DEVICE * devices + fdlimit::HEADROOM;
        let configured = config.daemon.max_clients;
        let fit = fdlimit::max_clients(configured, nofile, reserved);
        if fit < configured {
            tracing::warn!(
                configured,
                max_clients = fit,
                nofile,
                reserved,
                "daemon.max_clients does not fit under the descriptor limit (raise LimitNOFILE); serving fewer"
            );
        }
        tracing::info!(max_clients = fit, nofile, "client limit");
        fit
    };
    let app = App::start(config, source, store, socket_path.clone()).map_err(|e| match e {
        crate::app::StartError::Tokens(e) => DaemonError::Tokens(e),
        crate::app::StartError::Central(e) => DaemonError::Central(e),
    })?;

    let shutdown = CancellationToken::new();
    let acceptors = TaskTracker::new();
    let conns = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(max_clients));
    let mut listeners = vec![Listener::Unix(unix)];
    listeners.extend(tcp.map(Listener::Tcp));
    let listener_count = listeners.len();
    for l in listeners {
        acceptors.spawn(listener::accept_loop(
            l,
            app.clone(),
            shutdown.clone(),
            conns.clone(),
            slots.clone(),
        ));
    }
    acceptors.close();
    // Loyalty tiers are re-evaluated daily; the job ends with the shutdown.
    // A till on the central ledger leaves it to the central service, which
    // runs it once for the chain.
    // Expired points are swept daily too, so they burn on their date on
    // accounts nobody touches.
    let expiry_job = match app.config().ledger.backend {
        crate::config::LedgerBackend::Embedded => {
            tokio::spawn(crate::api::methods::tiers::expiry_daily(
                crate::ledger::Embedded::new(app.store.clone(), app.ledger.programme().clone()),
                shutdown.clone(),
            ))
        }
        crate::config::LedgerBackend::Central => tokio::spawn(async {}),
    };
    // Birthday bonuses: the same daily hour, on the books of this till;
    // the central service runs them once for a chain.
    let birthday_job = match app.config().ledger.backend {
        crate::config::LedgerBackend::Embedded => tokio::spawn(
            crate::api::methods::birthday_daily(app.clone(), shutdown.clone()),
        ),
        crate::config::LedgerBackend::Central => tokio::spawn(async {}),
    };
    // Burning-soon reminders: a till with its own books; in central mode
    // every till would remind the whole chain, so one is triggered by hand
    // (`messages.burning.run`) instead.
    let burning_job = match app.config().ledger.backend {
        crate::config::LedgerBackend::Embedded => tokio::spawn(crate::api::methods::burning_daily(
            app.clone(),
            shutdown.clone(),
        )),
        crate::config::LedgerBackend::Central => tokio::spawn(async {}),
    };
    let tier_job = match app.config().ledger.backend {
        crate::config::LedgerBackend::Embedded => tokio::spawn(crate::api::methods::tiers::daily(
            app.clone(),
            crate::ledger::tiers::Tiers::new(app.store.clone()),
            shutdown.clone(),
        )),
        crate::config::LedgerBackend::Central => {
            tracing::info!("ledger: central; the daily tier job runs on the central service");
            tokio::spawn(async {})
        }
    };

    let backoffice_task = backoffice.map(|l| {
        let state = crate::backoffice::Backoffice::new(
            app.ledger.clone(),
            crate::ledger::db::Books::sqlite(app.store.clone()),
        );
        tokio::spawn(crate::backoffice::serve(l, state, shutdown.clone()))
    });

    // A till in central mode replays what it accepted offline, and tells
    // the POS how far it got.
    let sync_tasks = app.sync.clone().map(|offline| {
        let events = tokio::spawn(crate::api::methods::sync::forward(
            app.clone(),
            offline.clone(),
            shutdown.clone(),
        ));
        let replay = tokio::spawn(offline.run(shutdown.clone()));
        (events, replay)
    });

    tracing::info!(socket = %socket_path.display(), version = env!("CARGO_PKG_VERSION"), "ready");
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);

    let mut watchdog_usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    let mut tick = tokio::time::interval(if watchdog {
        Duration::from_micros(watchdog_usec / 2).max(Duration::from_millis(100))
    } else {
        Duration::from_secs(3600)
    });

    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break }
            _ = sighup.recv() => {
                notify(&[NotifyState::Reloading]);
                match app.reload().await {
                    Ok(report) => tracing::info!(?report, "configuration reloaded"),
                    Err(e) => tracing::error!(error = %e, "reload refused; the old configuration stays in force"),
                }
                notify(&[NotifyState::Ready]);
            }
            _ = tick.tick() => {
                if watchdog {
                    if healthy(&app, &acceptors, listener_count).await {
                        notify(&[NotifyState::Watchdog]);
                    } else {
                        tracing::error!("health check failed; withholding the watchdog ping");
                    }
                }
            }
        }
    }

    notify(&[NotifyState::Stopping]);
    // One grace period for everything, so systemd's TimeoutStopSec (a few
    // seconds above it) is never what ends the process.
    let deadline = tokio::time::Instant::now() + grace;
    shutdown.cancel();
    acceptors.wait().await;
    conns.close();
    if tokio::time::timeout_at(deadline, conns.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still busy after the grace period; closing them"
        );
    }
    let _ = tokio::time::timeout_at(deadline, tier_job).await;
    let _ = tokio::time::timeout_at(deadline, expiry_job).await;
    let _ = tokio::time::timeout_at(deadline, birthday_job).await;
    let _ = tokio::time::timeout_at(deadline, burning_job).await;
    if let Some(task) = backoffice_task {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "back office stopped with an error"),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("back office did not stop within the grace period")
            }
        }
    }
    if let Some((events, replay)) = sync_tasks {
        // An operation being sent stays queued if cut short: it is sent
        // again at the next start and the central ledger books it once.
        let _ = tokio::time::timeout_at(deadline, replay).await;
        events.abort();
    }
    if tokio::time::timeout_at(deadline, app.devices.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("devices did not stop within the grace period");
    }
    if let Err(e) = app.store.checkpoint().await {
        tracing::error!(error = %e, "final checkpoint failed; the WAL will be replayed on start");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The main loop is alive (it is running this), every accept loop still
/// runs, and the database answers: then, and only then, systemd gets its
/// watchdog ping.
async fn healthy(app: &App, acceptors: &TaskTracker, listeners: usize) -> bool {
    let listening = acceptors.len() == listeners;
    let db = tokio::time::timeout(
        Duration::from_secs(5),
        app.store.with(|c| c.query_row("SELECT 1", [], |_| Ok(()))),
    )
    .await;
    listening && matches!(db, Ok(Ok(())))
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Removes the socket file when dropped, so a clean exit leaves no stale
/// socket behind.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(socket = %self.0.display(), error = %e, "could not remove the socket");
        }
    }
}
