//! The `posbridge-central` binary: the service and its admin commands.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use posbridge::backoffice::operators::Operators;
use posbridge::cli::backoffice::OperatorCommand;
use posbridge::cli::ledger::ExportFormat;
use posbridge_central::config::CentralConfig;
use posbridge_central::core::Core;
use posbridge_central::http::{Service, router};
use posbridge_central::import::{self, Target};
use posbridge_central::jobs::{self, JobLock};
use posbridge_central::principals;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "The central loyalty ledger for store chains")]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "POSBRIDGE_CENTRAL_CONFIG",
        default_value = "/etc/posbridge/central.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the ledger over HTTP (migrates the database first).
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Check the ledger's invariants; exit 1 listing violations.
    Verify,
    /// Every transaction with its entries.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a till's embedded ledger (its SQLite file) into the chain,
    /// in one transaction; a second run of the same file changes nothing.
    Import {
        /// The till's database (the `posbridge.db` in its state dir).
        #[arg(long)]
        sqlite: PathBuf,
        /// The store its transactions belong to.
        #[arg(long)]
        store: String,
        /// The terminal id the till will use in central mode (its keys are
        /// prefixed with it, so its retries replay); default: the till's
        /// own terminal id from its file.
        #[arg(long)]
        terminal: Option<String>,
        /// List what would be imported and every conflict; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stores (shops) of the chain.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Terminals (tills) and their keys.
    #[command(subcommand)]
    Terminal(TerminalCommand),
    /// The chain's back office operators (as `posbridge backoffice
    /// operator ...` on a till; see docs/backoffice.md).
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Add a store.
    Add {
        /// Store id (A-Z a-z 0-9 . _ -).
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum TerminalCommand {
    /// Add a terminal; prints its key once (it is stored only hashed).
    Add {
        /// Terminal id (A-Z a-z 0-9 . _ -).
        id: String,
        /// The store it belongs to.
        #[arg(long)]
        store: String,
    },
    /// Revoke a terminal: its next request is refused.
    Revoke {
        /// Terminal id.
        id: String,
    },
    /// List terminals (never their keys).
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("POSBRIDGE_CENTRAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("posbridge-central: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posbridge-central: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open(config: &CentralConfig) -> anyhow::Result<Arc<Core>> {
    let url = config.database.connection_string()?;
    let (pool, ledger) = (config.database.pool_size, config.ledger.clone());
    let core = tokio::task::spawn_blocking(move || Core::open(&url, pool, &ledger))
        .await
        .context("opening the database")??;
    Ok(Arc::new(core))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = CentralConfig::load(&cli.config)?;
    match cli.command {
        Command::Serve => serve(config).await?,
        Command::Migrate => {
            open(&config).await?;
            println!("schema up to date");
        }
        Command::Verify => {
            let violations = open(&config).await?.verify().await?;
            if !violations.is_empty() {
                for v in &violations {
                    println!("{v}");
                }
                eprintln!("{} violation(s)", violations.len());
                return Ok(ExitCode::from(1));
            }
            println!("ledger consistent");
        }
        Command::Export { format, out } => {
            let core = open(&config).await?;
            let sink: Box<dyn std::io::Write + Send> = match &out {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                None => Box::new(std::io::stdout()),
            };
            core.export(format, sink)
                .await?
                .context("writing the export")?;
        }
        Command::Import {
            sqlite,
            store,
            terminal,
            dry_run,
        } => return import(&config, sqlite, Target { store, terminal }, dry_run).await,
        Command::Operator(cmd) => {
            let ops = Operators::new(open(&config).await?.books().clone());
            posbridge::cli::backoffice::operator(&ops, cmd).await?;
        }
        Command::Store(StoreCommand::Add { id, name }) => {
            principals::add_store(open(&config).await?.books(), &id, &name).await?;
            println!("store {id} added");
        }
        Command::Terminal(TerminalCommand::Add { id, store }) => {
            let key = principals::add_terminal(open(&config).await?.books(), &id, &store).await?;
            eprintln!(
                "terminal {id} added to store {store}; its key (shown once, keep it secret):"
            );
            println!("{key}");
        }
        Command::Terminal(TerminalCommand::Revoke { id }) => {
            principals::revoke_terminal(open(&config).await?.books(), &id).await?;
            println!("terminal {id} revoked");
        }
        Command::Terminal(TerminalCommand::List) => {
            for t in principals::list_terminals(open(&config).await?.books()).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.store,
                    t.status,
                    t.created_at,
                    t.revoked_at.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(
    config: &CentralConfig,
    sqlite: PathBuf,
    target: Target,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let core = open(config).await?;
    if !core.is_postgres() {
        anyhow::bail!(
            "import writes the chain's PostgreSQL ledger; database.url is not PostgreSQL"
        );
    }
    let books = core.books().clone();
    let report = tokio::task::spawn_blocking(move || {
        let source = import::Source::read(&sqlite)?;
        import::run(&books, &source, &target, dry_run)
    })
    .await
    .context("importing")??;
    print!("{report}");
    if !report.conflicts.is_empty() {
        eprintln!(
            "{} conflict(s): {}",
            report.conflicts.len(),
            if dry_run {
                "the import would be refused"
            } else {
                "refused, nothing written"
            }
        );
        return Ok(ExitCode::from(1));
    }
    if report.already {
        eprintln!(
            "terminal {} was imported before: nothing to do",
            report.source
        );
    } else if report.written {
        eprintln!("terminal {} imported", report.source);
    } else {
        eprintln!("dry run: nothing written");
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: CentralConfig) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone())?);
    let core = open(&config).await?;
    let service = Arc::new(Service::new(
        core.clone(),
        config.server.max_body_bytes,
        config.server.terminal_status_ttl(),
    ));
    let app = router(service, &config.server);

    let lock = if core.is_postgres() {
        JobLock::Postgres(config.database.connection_string()?)
    } else {
        JobLock::Local
    };
    let at = config.jobs.daily_time().unwrap_or((0, 5));
    let job = tokio::spawn(jobs::daily(core.clone(), lock, at, shutdown.clone()));

    // The back office binds before the API, so a port in use fails the
    // start instead of a page that never answers.
    let backoffice = match config.backoffice.listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("backoffice.listen: {addr}"))?;
            tracing::info!(addr = %l.local_addr()?, "back office on");
            let state = posbridge::backoffice::Backoffice::new(core.ledger(), core.books().clone());
            Some(tokio::spawn(posbridge::backoffice::serve(
                l,
                state,
                shutdown.clone(),
            )))
        }
        None => None,
    };

    let addr = config.server.listen;
    match &config.server.tls {
        Some(tls) => {
            // One provider, chosen here: other crates in the build may
            // enable a second, and rustls then refuses to guess.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .with_context(|| {
                    format!("server.tls: {} / {}", tls.cert.display(), tls.key.display())
                })?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            let s = shutdown.clone();
            tokio::spawn(async move {
                s.cancelled().await;
                h.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            let h = handle.clone();
            tokio::spawn(async move {
                if let Some(a) = h.listening().await {
                    tracing::info!(addr = %a, "listening (https)");
                }
            });
            axum_server::bind_rustls(addr, rustls)
                .handle(handle)
                .serve(app.into_make_service())
                .await
                .with_context(|| format!("server.listen: {addr}"))?;
        }
        None => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("server.listen: {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "listening (http)");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .await?;
        }
    }
    shutdown.cancel();
    let _ = job.await;
    if let Some(b) = backoffice
        && let Ok(Err(e)) = b.await
    {
        tracing::error!(error = %e, "back office");
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM or SIGINT: stop accepting, finish the requests in flight.
/// Watches SIGTERM and SIGINT. The handlers are installed before this
/// returns (not inside the task): a signal that arrives while the listener
/// binds must stop the service gracefully, not kill it.
fn on_signal(shutdown: CancellationToken) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    Ok(async move {
        watch(&mut term, &mut int).await;
        tracing::info!("shutting down");
        shutdown.cancel();
    })
}

async fn watch(term: &mut tokio::signal::unix::Signal, int: &mut tokio::signal::unix::Signal) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
