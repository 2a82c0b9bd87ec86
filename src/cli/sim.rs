//! `posbridge sim printer` and `posbridge sim shtrih`: the device simulators
//! the tests and the demo use, run standalone so a technician can point a
//! daemon (or a POS program) at them without hardware.
//!
//! Output is poll-based (every 200 ms): the simulators keep what they printed
//! in memory, and comparing counts is simpler and sturdier than hooking
//! their internals.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use posbridge_drivers::sim::escpos::{
    EscPosParser, EscPosSim, EscPosSimHandle, SimConfig, SimFault,
};
use posbridge_drivers::sim::shtrih::{FiscalDoc, FiscalDocKind, ShtrihSim, TAPE_CUT};

/// How often the simulators' paper is checked for something new.
const POLL: Duration = Duration::from_millis(200);

/// `posbridge sim ...`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run the ESC/POS receipt printer simulator and show each receipt as
    /// text when it is cut, until Ctrl-C.
    Printer(PrinterArgs),
    /// Run the Shtrih-M fiscal register emulator and show each receipt on
    /// its tape and each fiscal document, until Ctrl-C.
    Shtrih(ShtrihArgs),
}

/// Where a simulator listens.
#[derive(Debug, Args)]
pub struct Link {
    /// Listen on this TCP address. The default is loopback only: the
    /// simulator accepts anything, so exposing it is an explicit choice.
    #[arg(long, value_name = "ADDR", conflicts_with = "pty")]
    pub tcp: Option<SocketAddr>,
    /// Serve a pseudo-terminal instead and print its path (what a daemon's
    /// `[printer.serial] port` should name).
    #[arg(long)]
    pub pty: bool,
}

/// `posbridge sim printer`.
#[derive(Debug, Args)]
pub struct PrinterArgs {
    #[command(flatten)]
    pub link: Link,
    /// Columns of the text rendering (32 for 58 mm paper, 42 or 48 for 80 mm).
    #[arg(long, default_value_t = 42, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub width: u16,
    /// Start with this fault, to see how the daemon and the POS react.
    #[arg(long, value_enum)]
    pub fault: Option<Fault>,
    /// Decode `ESC t n` as this profile of the ESC/POS printer capability
    /// database does (e.g. RP326, TM-T88V), as python-escpos picks pages.
    #[arg(long, value_name = "NAME")]
    pub db_profile: Option<String>,
}

/// `posbridge sim shtrih`.
#[derive(Debug, Args)]
pub struct ShtrihArgs {
    #[command(flatten)]
    pub link: Link,
    /// A marking code the register's check refuses (repeatable); write the
    /// GS separator as `\x1d` or `\u001d`.
    #[arg(long = "refuse-mark", value_name = "CODE")]
    pub refuse_mark: Vec<String>,
    /// The OFD acknowledges nothing: fiscal documents queue up as unsent.
    #[arg(long)]
    pub ofd_offline: bool,
    /// The marking server does not answer: codes get the FN's local check
    /// only.
    #[arg(long)]
    pub marking_offline: bool,
    /// Days until the FN's end of validity (30 or fewer raise its warning).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(i64).range(0..=5000))]
    pub fn_expires_in_days: Option<i64>,
    /// Behave as an older firmware without FF45h/FF46h (close check and
    /// operation V2): hosts must use the classic 80h…85h commands.
    #[arg(long)]
    pub legacy: bool,
}

/// A marking code from the command line, GS escapes turned into GS.
fn marking_code_arg(s: &str) -> String {
    s.replace("\\x1d", "\u{1d}")
        .replace("\\x1D", "\u{1d}")
        .replace("\\u001d", "\u{1d}")
        .replace("\\u001D", "\u{1d}")
}

/// A printer fault the simulator starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// Roll paper end: offline, bytes are buffered, nothing printed.
    PaperEnd,
    /// Cover open: offline, nothing printed.
    CoverOpen,
    /// Offline with a recoverable error (a cutter jam): nothing printed.
    Offline,
    /// Autocutter error: offline, nothing printed.
    CutterError,
    /// Unrecoverable error: offline, nothing printed.
    UnrecoverableError,
}

impl From<Fault> for SimFault {
    fn from(f: Fault) -> Self {
        match f {
            Fault::PaperEnd => SimFault::PaperEnd,
            Fault::CoverOpen => SimFault::CoverOpen,
            Fault::Offline => SimFault::Offline,
            Fault::CutterError => SimFault::CutterError,
            Fault::UnrecoverableError => SimFault::UnrecoverableError,
        }
    }
}

fn default_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs a simulator until Ctrl-C.
pub async fn run(cmd: SimCommand) -> Result<()> {
    match cmd {
        SimCommand::Printer(args) => printer(args).await,
        SimCommand::Shtrih(args) => shtrih(args).await,
    }
}

async fn printer(args: PrinterArgs) -> Result<()> {
    let sim = match &args.db_profile {
        None => EscPosSim::new(SimConfig::default()),
        Some(name) => {
            let parser = EscPosParser::new().with_db_profile(name).with_context(|| {
                format!("{name:?} is not a profile of the printer capability database")
            })?;
            EscPosSim::with_parser(SimConfig::default(), parser)
        }
    };
    let handle = if args.link.pty {
        let (path, handle) = sim.open_pty().context("creating a pseudo-terminal")?;
        println!("ESC/POS printer simulator on pty {}", path.display());
        println!(
            "daemon config: [printer.serial] port = \"{}\"",
            path.display()
        );
        handle
    } else {
        let addr = args.link.tcp.unwrap_or_else(|| default_addr(9100));
        let (local, handle) = sim
            .listen_tcp(addr)
            .with_context(|| format!("listening on {addr}"))?;
        println!("ESC/POS printer simulator listening on {local}");
        println!(
            "daemon config: [printer.tcp] host = \"{}\", port = {}",
            local.ip(),
            local.port()
        );
        handle
    };
    if let Some(f) = args.fault {
        handle.set_fault(f.into());
        let name = f
            .to_possible_value()
            .map_or_else(|| format!("{f:?}"), |v| v.get_name().to_string());
        println!("fault: {name} (the printer reports it and prints nothing)");
    }
    println!("Ctrl-C stops it.");
    let width = usize::from(args.width);
    let mut shown = PaperCursor::default();
    let mut ticker = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = ticker.tick() => shown.show_new(&handle, width),
            r = tokio::signal::ctrl_c() => return r.context("waiting for Ctrl-C"),
        }
    }
}

/// What of the printer's paper has been shown already. Counts include
/// receipts and errors the simulator dropped to bound its memory, so a
/// long session neither repeats nor skips.
#[derive(Debug, Default)]
struct PaperCursor {
    receipts: u64,
    errors: u64,
}

impl PaperCursor {
    fn show_new(&mut self, handle: &EscPosSimHandle, width: usize) {
        let paper = handle.paper();
        let total = paper.receipts_dropped + paper.receipts.len() as u64;
        if total > self.receipts {
            let first = self.receipts.saturating_sub(paper.receipts_dropped);
            for r in paper.receipts.iter().skip(first as usize) {
                print!("{}", r.render_text(width));
                println!();
            }
            self.receipts = total;
        }
        let total = paper.errors_dropped + paper.errors.len() as u64;
        if total > self.errors {
            let first = self.errors.saturating_sub(paper.errors_dropped);
            for e in paper.errors.iter().skip(first as usize) {
                eprintln!("printer simulator: {e}");
            }
            self.errors = total;
        }
    }
}

async fn shtrih(args: ShtrihArgs) -> Result<()> {
    let sim = ShtrihSim::new();
    sim.set_legacy(args.legacy);
    if args.legacy {
        println!("legacy firmware: FF45h/FF46h answer 37h (use 80h…85h)");
    }
    for code in &args.refuse_mark {
        sim.refuse_marking_code(&marking_code_arg(code));
    }
    if args.ofd_offline {
        sim.set_ofd_online(false);
    }
    if args.marking_offline {
        sim.set_marking_server_online(false);
    }
    if let Some(days) = args.fn_expires_in_days {
        sim.set_fn_expires_in_days(days);
    }
    let _handle = if args.link.pty {
        let (path, handle) = sim.spawn_pty().context("creating a pseudo-terminal")?;
        println!(
            "Shtrih-M fiscal register emulator on pty {}",
            path.display()
        );
        println!(
            "daemon config: [printer.serial] port = \"{}\"",
            path.display()
        );
        handle
    } else {
        let addr = args.link.tcp.unwrap_or_else(|| default_addr(7778));
        let (local, handle) = sim
            .spawn_tcp(addr)
            .with_context(|| format!("listening on {addr}"))?;
        println!("Shtrih-M fiscal register emulator listening on {local}");
        println!(
            "daemon config: [printer.tcp] host = \"{}\", port = {}",
            local.ip(),
            local.port()
        );
        handle
    };
    if !args.refuse_mark.is_empty() {
        println!(
            "marking codes refused by the register's check: {}",
            args.refuse_mark.len()
        );
    }
    if args.ofd_offline {
        println!("OFD offline: fiscal documents stay unsent");
    }
    if let Some(days) = args.fn_expires_in_days {
        println!("FN expires in {days} days");
    }
    println!("Ctrl-C stops it.");
    let mut shown = TapeCursor::default();
    let mut ticker = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = ticker.tick() => shown.show_new(&sim),
            r = tokio::signal::ctrl_c() => return r.context("waiting for Ctrl-C"),
        }
    }
}

/// What of the register's tape and FN has been shown already.
#[derive(Debug, Default)]
struct TapeCursor {
    /// Tape length at the last look; the tape only changes when it does,
    /// except once it is full and old lines are torn off (then it is read
    /// every time).
    tape_lines: usize,
    /// Cut-off pieces shown, and the last of them: the tape drops old lines
    /// once full, so counting alone could skip or repeat pieces.
    pieces: usize,
    last_piece: Option<Vec<String>>,
    documents: usize,
}

impl TapeCursor {
    fn show_new(&mut self, sim: &ShtrihSim) {
        let tape_lines = sim.state_summary().tape_lines;
        if tape_lines != self.tape_lines
            || tape_lines == posbridge_drivers::sim::shtrih::TAPE_MAX_LINES
        {
            self.tape_lines = tape_lines;
            let pieces = cut_pieces(&sim.tape());
            for p in self.new_pieces(&pieces) {
                for line in p {
                    println!("| {line}");
                }
                println!("{TAPE_CUT}");
                println!();
            }
            self.pieces = pieces.len();
            if let Some(p) = pieces.last() {
                self.last_piece = Some(p.clone());
            }
        }
        let docs = sim.documents();
        for d in docs.iter().skip(self.documents) {
            println!("{}", describe(d));
        }
        self.documents = docs.len();
    }

    fn new_pieces<'a>(&self, pieces: &'a [Vec<String>]) -> &'a [Vec<String>] {
        let Some(last) = &self.last_piece else {
            return pieces;
        };
        // The usual case: nothing torn off since the last look.
        if self.pieces <= pieces.len() && pieces.get(self.pieces.wrapping_sub(1)) == Some(last) {
            return &pieces[self.pieces..];
        }
        match pieces.iter().rposition(|p| p == last) {
            Some(i) => &pieces[i + 1..],
            None => pieces,
        }
    }
}

/// The tape's complete receipts (each ended by a cut); lines after the last
/// cut are still being printed.
fn cut_pieces(tape: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for line in tape {
        if line == TAPE_CUT {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(line.clone());
        }
    }
    out
}

fn describe(d: &FiscalDoc) -> String {
    let kind = match d.kind {
        FiscalDocKind::OpenShift => "shift opened".to_string(),
        FiscalDocKind::CloseShift => "shift closed".to_string(),
        FiscalDocKind::Receipt(k) => format!("receipt ({k:?})"),
        FiscalDocKind::Correction(k) => format!("correction ({k:?})"),
    };
    format!(
        "fiscal document {}: {kind}, shift {}, total {}.{:02}, FP {:010}",
        d.number,
        d.shift,
        d.total / 100,
        d.total % 100,
        d.fiscal_sign
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn cut_pieces_leave_out_the_unfinished_receipt() {
        let tape: Vec<String> = ["a", TAPE_CUT, "b", "c", TAPE_CUT, "d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            cut_pieces(&tape),
            vec![piece("a"), vec!["b".to_string(), "c".to_string()]]
        );
    }

    #[test]
    fn new_pieces_survive_a_torn_off_tape() {
        let mut c = TapeCursor::default();
        let all = vec![piece("a"), piece("b")];
        assert_eq!(c.new_pieces(&all), &all[..]);
        c.pieces = 2;
        c.last_piece = Some(piece("b"));
        let more = vec![piece("a"), piece("b"), piece("c")];
        assert_eq!(c.new_pieces(&more), &more[2..]);
        // "a" torn off: the count no longer lines up, the last piece does.
        let torn = vec![piece("b"), piece("c")];
        assert_eq!(c.new_pieces(&torn), &torn[1..]);
    }
}

#[cfg(test)]
mod ffd_tests {
    #[test]
    fn gs_escapes_in_marking_codes() {
        assert_eq!(
            super::marking_code_arg("0104600\\x1d93ab\\u001dX"),
            "0104600\u{1d}93ab\u{1d}X"
        );
    }
}
