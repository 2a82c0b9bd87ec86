//! Command-line interface: the daemon and the technician's tools.

pub mod backoffice;
pub mod call;
pub mod config;
pub mod demo;
pub mod demo_chain;
pub mod devices;
pub mod ledger;
pub mod print_test;
pub mod reload;
pub mod sim;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// posbridge: the hardware bridge for Linux point-of-sale terminals.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (else $POSBRIDGE_CONFIG, /etc/posbridge/posbridge.toml,
    /// the user config dir, or built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (what systemd starts).
    Run,
    /// Validate or print configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Call one API method and print the result.
    Call(call::CallArgs),
    /// Subscribe to events and print them as they arrive.
    Events(call::EventsArgs),
    /// Ask the running daemon to re-read its configuration; exit 1 with the
    /// reason when the file is refused (systemd's ExecReload=).
    Reload(reload::ReloadArgs),
    /// The whole job on simulated devices: a reader, a scanner and a
    /// printer simulator, the real daemon, and a short story played through
    /// its socket. With `--chain`, a store chain instead: a throwaway
    /// PostgreSQL, the central service and two tills in central mode.
    Demo {
        /// Exit after the story instead of leaving the daemon (or the
        /// chain) running.
        #[arg(long)]
        once: bool,
        /// A chain's story: a card earns at till 1, spends at till 2, and a
        /// return at till 2 takes back what till 1 accrued. Needs
        /// `posbridge-central` beside this binary.
        #[arg(long)]
        chain: bool,
    },
    /// Ledger tools.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// The back office's operators (see docs/backoffice.md).
    #[command(subcommand)]
    Backoffice(backoffice::BackofficeCommand),
    /// List serial, HID, input and USB printer devices, flag those that
    /// cannot be opened by the daemon's user, and print a configuration
    /// snippet for each; then the configured devices' nodes.
    Devices(devices::DevicesArgs),
    /// Run a device simulator standalone (no hardware needed), showing what
    /// it prints.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Print a test page (Cyrillic, columns, QR, barcodes, cut) on a
    /// configured printer through the daemon; exit 1 unless it printed.
    PrintTest(print_test::PrintTestArgs),
    /// Render a document (print.document JSON) to a PNG as a printer
    /// profile would print it; no printer or daemon needed.
    Preview(print_test::PreviewArgs),
}

/// `posbridge config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file without starting anything; exit 1 on error.
    Check {
        /// The file; default: the one the daemon would use.
        file: Option<PathBuf>,
    },
    /// Print a fully commented sample configuration.
    Example,
}

/// `posbridge ledger ...`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check every ledger invariant (balances equal entries equal lots, no
    /// lot out of range); exit 1 on a violation.
    Verify,
    /// Write every transaction with its entries, as CSV or JSON lines.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ledger::ExportFormat::Csv)]
        format: ledger::ExportFormat,
        /// Output file; default stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}
