//! posbridge entry point: parse the command line, set up logging, run.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use posbridge::cli::{
    Cli, Command, ConfigCommand, LedgerCommand, LogFormat, call, config as config_cmd, devices,
    print_test, sim,
};
use posbridge::config::locate;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flag = cli.config.clone();
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => {
            return if config_cmd::check(file.as_deref(), flag.as_deref()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Command::Devices(args) => {
            // The configured nodes are judged too, when a configuration
            // loads; the listing does not need one.
            let config = match locate(flag.as_deref()).load() {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("note: configured devices not checked: {e}");
                    None
                }
            };
            devices::list(&args, config.as_ref());
            return ExitCode::SUCCESS;
        }
        Command::Preview(args) => {
            return match print_test::preview(args, flag.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Config(ConfigCommand::Example) => {
            config_cmd::example();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run => run(flag.as_deref(), cli.log_format).await,
            Command::Call(args) => call::call(args, flag.as_deref()).await,
            Command::Events(args) => call::events(args, flag.as_deref()).await,
            Command::Reload(args) => posbridge::cli::reload::run(args, flag.as_deref()).await,
            Command::Ledger(LedgerCommand::Verify) => ledger_verify(flag.as_deref()).await,
            Command::Ledger(LedgerCommand::Export { format, out }) => {
                posbridge::cli::ledger::export(flag.as_deref(), format, out).await
            }
            Command::Backoffice(cmd) => posbridge::cli::backoffice::run(flag.as_deref(), cmd).await,
            Command::Demo { once, chain: false } => posbridge::cli::demo::run(once).await,
            Command::Demo { once, chain: true } => posbridge::cli::demo_chain::run(once).await,
            Command::Sim(cmd) => sim::run(cmd).await,
            Command::PrintTest(args) => print_test::run(args, flag.as_deref()).await,
            Command::Config(_) | Command::Devices(_) | Command::Preview(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if posbridge::api::i18n::locale_is_russian() {
                eprintln!("ошибка: {e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(flag: Option<&std::path::Path>, format: LogFormat) -> anyhow::Result<()> {
    let source = locate(flag);
    let config = source.load()?;
    init_logging(&config.daemon.log_level, format)?;
    match source.path() {
        Some(p) => tracing::info!(config = %p.display(), "configuration loaded"),
        None => tracing::info!("no configuration file; running on built-in defaults"),
    }
    posbridge::daemon::run(config, source)
        .await
        .context("posbridge run")
}

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => EnvFilter::try_new(level).with_context(|| format!("daemon.log_level \"{level}\""))?,
    };
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // journald and log files want plain text, terminals want colour.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn ledger_verify(flag: Option<&std::path::Path>) -> anyhow::Result<()> {
    let store = posbridge::cli::ledger::open_existing(flag)?;
    // One read transaction: the invariants of one state of the books.
    let mut problems = posbridge::ledger::db::Books::sqlite(store.clone())
        .read(|db| posbridge::ledger::embedded::verify(db))
        .await?;
    // A till in central mode keeps its offline outbox in the same file.
    let outbox = posbridge::ledger::offline::outbox::Outbox::new(store.clone(), u64::MAX);
    problems.extend(outbox.verify().await?);
    let depth = outbox.depth().await?;
    if depth.queued + depth.failed > 0 {
        println!(
            "offline outbox: {} waiting for the central ledger, {} refused by it",
            depth.queued, depth.failed
        );
    }
    if problems.is_empty() {
        println!("{}: every invariant holds", store.path().display());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("violation: {p}");
        }
        anyhow::bail!("{} invariant violation(s)", problems.len())
    }
}
