//! Shtrih-M fiscal register (ККТ) simulator, after "Протокол ККТ v. 1.17".
//!
//! The simulator speaks the *standard* lower level of the protocol (section
//! "Стандартный нижний уровень", state diagram in Приложение 2) on any
//! `AsyncRead + AsyncWrite` byte stream, and keeps the fiscal state a host can
//! observe through the commands: modes and submodes (Приложение 1), the shift
//! and its 24-hour limit, the open check with its items, taxes and payments,
//! the fiscal document (ФД) counter and fiscal signs (ФП), the printed paper
//! tape and a journal of fiscal documents.
//!
//! # Link layer (device side)
//!
//! * `ENQ` when no answer is pending → `NAK` ("waiting for a command"); when an
//!   answer is pending (not acknowledged by the host) → `ACK` followed by the
//!   pending answer frame.
//! * `STX LEN CMD DATA LRC`, LRC = XOR of `LEN..DATA`. Every byte after `STX`
//!   must arrive within the byte timeout (50 ms by default, as in the spec),
//!   otherwise the partial frame is silently discarded. A wrong LRC gets `NAK`;
//!   a good frame gets `ACK`, is executed and the answer
//!   `STX LEN CMD ERR DATA LRC` (`STX LEN FF xx ERR DATA LRC` for `FFxx`) is sent.
//! * After sending an answer the device waits for the host's `ACK`. Per the
//!   spec ("Если в ответ на сообщение ККТ получен NAK, сообщение не
//!   повторяется, ККТ ждет уведомления ENQ для повторения ответа") a `NAK` or
//!   a timeout keeps the answer pending; the next `ENQ` gets `ACK` + the answer
//!   again. An answer is sent at most [`SimTiming::max_answer_sends`] times and
//!   then discarded, so a host that never acknowledges cannot pin it forever.
//! * A new command frame replaces a pending answer.
//!
//! # Deviations and choices (the 1.17 text is inconsistent in places)
//!
//! * `10h` and `11h`: the fields are sent in the order the 1.17 text lists
//!   them, then padded with zero bytes up to the message lengths the text
//!   states (16 and 48 bytes), so hosts that parse by the listed offsets and
//!   hosts that check the length both work.
//! * `E0h`: the text lists only the operator number; the answer carries the
//!   error code too (`E0 ERR OP`), like every other answer.
//! * `FF45h` accepts any operator password (the text asks for the system
//!   administrator's); the FN query commands (`FF01h`, `FF0Ah`, `FF40h`) require
//!   the system administrator's password, as written.
//! * Tax rate byte of `FF46h` is a bit mask (bit 0 = tax 1 … bit 5 = tax 6, 0 =
//!   no tax), as on the real devices.
//! * The simulator does not auto-open a shift: `8Dh`/`FF46h` in a closed shift
//!   answer `73h` (command not supported in this mode).
//! * Paper: with [`Fault::PaperOut`] set the printer is in submode 1 (passive
//!   paper out): commands that print answer `6Bh`. Closing or cancelling a check
//!   that is already open cannot be refused by a real device (the document is in
//!   the FN), so those commands succeed and their printout is held back
//!   (submode 2, active paper out). When the fault is cleared the device goes
//!   to submode 3 (waiting for `B0h`); printing commands answer `58h` until
//!   `B0h` prints what was held back.
//!
//! # Serving
//!
//! [`ShtrihSim::serve`] serves one stream until EOF. [`ShtrihSim::spawn_tcp`]
//! serves TCP connections one after another; [`ShtrihSim::spawn_pty`] serves
//! the master side of a pseudo-terminal pair and returns the slave path. It
//! does not keep the slave open itself (a client's `TIOCEXCL`/`flock` would
//! then outlive the client), so while no client has the path open the master
//! reads fail with `EIO`; the loop then sleeps 20 ms and polls again, until
//! the handle is dropped. Both tasks stop when the last
//! [`ShtrihSimHandle`] is dropped.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Start of a message.
pub const STX: u8 = 0x02;
/// Enquiry from the host.
pub const ENQ: u8 = 0x05;
/// Positive acknowledgement.
pub const ACK: u8 = 0x06;
/// Negative acknowledgement.
pub const NAK: u8 = 0x15;

/// Line the simulator puts on the tape where the paper is cut; receipts are
/// the runs of lines between two of them (see [`ShtrihSim::receipts`]).
pub const TAPE_CUT: &str = "-------- ✂ --------";

/// Lines kept on the tape; older lines are dropped (the roll is "torn off").
pub const TAPE_MAX_LINES: usize = 100_000;
/// Documents the simulated FN holds; then fiscal documents fail with `12h`.
pub const FN_CAPACITY: usize = 250_000;
/// Items one check can hold; more fail with `94h`.
pub const MAX_ITEMS_PER_CHECK: usize = 1_000;

const MAX_MONEY: u64 = 9_999_999_999;
const NOT_GIVEN: u64 = 0xFF_FFFF_FFFF;
const SYSADMIN_PASSWORD: u32 = 30;
const FN_NUMBER: &[u8; 16] = b"9999078900012345";
const SERIAL: u64 = 12_345_678;
const INN: u64 = 7_712_345_678;

/// Error codes from the table "Коды ошибок" that the simulator uses.
pub mod errors {
    /// No error.
    pub const OK: u8 = 0x00;
    /// FN: unknown command, wrong format or parameters.
    pub const FN_UNKNOWN_COMMAND: u8 = 0x01;
    /// FN: requested data not in the FN archive.
    pub const FN_NO_DATA: u8 = 0x08;
    /// FN: resource exhausted.
    pub const FN_EXHAUSTED: u8 = 0x12;
    /// Incorrect parameters in the command.
    pub const BAD_PARAMS: u8 = 0x33;
    /// Command not supported in this implementation.
    pub const NOT_SUPPORTED: u8 = 0x37;
    /// Shift is open, operation impossible.
    pub const SHIFT_OPEN: u8 = 0x3C;
    /// Sum of all payments is less than the check total.
    pub const PAYMENT_LESS_THAN_TOTAL: u8 = 0x45;
    /// Check total overflow.
    pub const CHECK_TOTAL_OVERFLOW: u8 = 0x48;
    /// Operation impossible in an open check of this type.
    pub const WRONG_CHECK_TYPE: u8 = 0x49;
    /// A check is open, operation impossible.
    pub const CHECK_OPEN: u8 = 0x4A;
    /// Non-cash payment exceeds the check total.
    pub const NON_CASH_EXCEEDS_TOTAL: u8 = 0x4D;
    /// Shift exceeded 24 hours.
    pub const SHIFT_OVER_24H: u8 = 0x4E;
    /// Wrong password.
    pub const BAD_PASSWORD: u8 = 0x4F;
    /// The check is closed, operation impossible.
    pub const CHECK_CLOSED: u8 = 0x55;
    /// Waiting for the continue-printing command.
    pub const WAITING_CONTINUE: u8 = 0x58;
    /// No receipt paper.
    pub const NO_PAPER: u8 = 0x6B;
    /// Command not supported in this submode.
    pub const WRONG_SUBMODE: u8 = 0x72;
    /// Command not supported in this mode.
    pub const WRONG_MODE: u8 = 0x73;
    /// Zero check total.
    pub const ZERO_CHECK: u8 = 0x8E;
    /// Operations-per-check limit reached.
    pub const TOO_MANY_ITEMS: u8 = 0x94;
}

/// XOR of all bytes: the frame's LRC over `LEN CMD DATA`.
pub fn lrc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// `STX LEN payload LRC` for a payload of 1..=255 bytes (command or answer
/// code followed by its data). Longer payloads are truncated to 255 bytes.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(255)];
    let mut frame = Vec::with_capacity(payload.len() + 3);
    frame.push(STX);
    frame.push(payload.len() as u8);
    frame.extend_from_slice(payload);
    let sum = lrc(&frame[1..]);
    frame.push(sum);
    frame
}

/// Link-level timing of the simulated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimTiming {
    /// Longest gap between two bytes of one frame (spec default: 50 ms).
    pub byte_timeout: Duration,
    /// How long the device waits for the host's ACK after an answer.
    pub ack_timeout: Duration,
    /// How many times one answer is sent before the device discards it.
    pub max_answer_sends: u8,
}

impl Default for SimTiming {
    fn default() -> Self {
        SimTiming {
            byte_timeout: Duration::from_millis(50),
            ack_timeout: Duration::from_millis(500),
            max_answer_sends: 10,
        }
    }
}

/// A fault to inject, see [`ShtrihSim::set_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// One-shot: the next answer sent has a byte flipped (the host NAKs it;
    /// the correct answer stays pending for ENQ).
    CorruptNextAnswer,
    /// One-shot: the next well-formed command frame is answered NAK and not
    /// executed.
    NakNextFrame,
    /// Until cleared: every answer is sent this long after the command was
    /// executed. ENQ meanwhile gets ACK ("answer being prepared").
    DelayAnswer(Duration),
    /// Until cleared: no receipt paper.
    PaperOut,
    /// One-shot: the next command is executed (state change kept, answer kept
    /// pending) and the stream is then closed without sending the answer.
    DropLinkAfterCommand,
    /// One-shot: like [`Fault::DropLinkAfterCommand`], but for the n-th
    /// command from now (1 = the next), so a test can cut the link after
    /// every step of a receipt in turn.
    DropLinkAfterCommands(u32),
    /// Applied at once: the device power-cycles. The pending answer (or the
    /// one being prepared) is lost, a partial frame is discarded; fiscal state
    /// (an open check included) is non-volatile and stays.
    PowerLoss,
}

/// Kind of a check (the "type of document" of `8Dh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Продажа (приход).
    Sale,
    /// Покупка (расход).
    Purchase,
    /// Возврат продажи.
    SaleReturn,
    /// Возврат покупки.
    PurchaseReturn,
}

impl CheckKind {
    fn from_doc_type(b: u8) -> Option<Self> {
        Some(match b {
            0 => CheckKind::Sale,
            1 => CheckKind::Purchase,
            2 => CheckKind::SaleReturn,
            3 => CheckKind::PurchaseReturn,
            _ => return None,
        })
    }
    fn from_operation(b: u8) -> Option<Self> {
        Some(match b {
            1 => CheckKind::Sale,
            2 => CheckKind::SaleReturn,
            3 => CheckKind::Purchase,
            4 => CheckKind::PurchaseReturn,
            _ => return None,
        })
    }
    fn doc_type(self) -> u8 {
        match self {
            CheckKind::Sale => 0,
            CheckKind::Purchase => 1,
            CheckKind::SaleReturn => 2,
            CheckKind::PurchaseReturn => 3,
        }
    }
    /// Operation type as the FN records it (1 приход … 4 возврат расхода).
    fn fn_operation(self) -> u8 {
        match self {
            CheckKind::Sale => 1,
            CheckKind::SaleReturn => 2,
            CheckKind::Purchase => 3,
            CheckKind::PurchaseReturn => 4,
        }
    }
    fn title(self) -> &'static str {
        match self {
            CheckKind::Sale => "ПРИХОД",
            CheckKind::Purchase => "РАСХОД",
            CheckKind::SaleReturn => "ВОЗВРАТ ПРИХОДА",
            CheckKind::PurchaseReturn => "ВОЗВРАТ РАСХОДА",
        }
    }
}

/// Kind of a fiscal document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiscalDocKind {
    /// Отчет об открытии смены (FN document type 2).
    OpenShift,
    /// Кассовый чек (FN document type 3).
    Receipt(CheckKind),
    /// Отчет о закрытии смены (FN document type 5).
    CloseShift,
}

impl FiscalDocKind {
    fn fn_type(self) -> u8 {
        match self {
            FiscalDocKind::OpenShift => 2,
            FiscalDocKind::Receipt(_) => 3,
            FiscalDocKind::CloseShift => 5,
        }
    }
}

/// One fiscal document in the simulated FN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiscalDoc {
    /// Fiscal document number (ФД), from 1.
    pub number: u32,
    /// What it is.
    pub kind: FiscalDocKind,
    /// Check total in kopecks; for a shift close, the shift's sales minus
    /// returns; 0 for a shift open.
    pub total: u64,
    /// Fiscal sign (ФП): [`fiscal_sign`] of number and total.
    pub fiscal_sign: u32,
    /// Shift number.
    pub shift: u16,
    /// Device clock when it was made, Unix seconds.
    pub unix_time: i64,
}

/// The deterministic fiscal sign of the simulator: FNV-1a (32 bit) over the
/// document number and the total, little-endian.
pub fn fiscal_sign(number: u32, total: u64) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in number
        .to_le_bytes()
        .iter()
        .chain(total.to_le_bytes().iter())
    {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A snapshot of the device state, for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSummary {
    /// Mode byte as in `10h` (Приложение 1).
    pub mode: u8,
    /// Submode byte as in `10h`.
    pub submode: u8,
    /// Current shift number when open.
    pub shift_open: Option<u16>,
    /// Number of the last closed shift.
    pub last_closed_shift: u16,
    /// Checks closed in the current shift.
    pub checks_in_shift: u16,
    /// The open check: kind, number of items, running total.
    pub open_check: Option<(CheckKind, usize, u64)>,
    /// Last fiscal document number (0 if none).
    pub last_fd_number: u32,
    /// Fiscal sign of the last fiscal document.
    pub last_fiscal_sign: Option<u32>,
    /// Through number of documents of the device (every printed document).
    pub doc_counter: u32,
    /// Paper present.
    pub paper: bool,
    /// An answer is pending (not acknowledged by the host).
    pub answer_pending: bool,
    /// Device clock, Unix seconds.
    pub now_unix: i64,
    /// Lines on the tape.
    pub tape_lines: usize,
}

#[derive(Debug, Clone)]
struct Check {
    kind: CheckKind,
    /// Sums of the operations.
    items: Vec<u64>,
    total: u64,
    taxes: [u64; 6],
}

#[derive(Debug, Clone)]
struct Shift {
    number: u16,
    opened_at: i64,
    checks: u16,
    totals: [u64; 4],
}

#[derive(Debug)]
struct Clock {
    base: i64,
    anchor: Instant,
}

impl Clock {
    fn now(&self) -> i64 {
        self.base + self.anchor.elapsed().as_secs() as i64
    }
}

#[derive(Debug, Default)]
struct Faults {
    corrupt_next: bool,
    nak_next: bool,
    delay: Option<Duration>,
    drop_link_next: bool,
    drop_link_after: Option<u32>,
}

#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    frame: Vec<u8>,
    sends: u8,
}

#[derive(Debug)]
struct Device {
    timing: SimTiming,
    clock: Clock,
    passwords: [u32; 30],
    port: u8,
    paper: bool,
    backlog: Vec<String>,
    tape: VecDeque<String>,
    shift: Option<Shift>,
    last_closed_shift: u16,
    check: Option<Check>,
    fd_number: u32,
    doc_counter: u32,
    documents: Vec<FiscalDoc>,
    pending: Option<Pending>,
    next_pending_id: u64,
    faults: Faults,
    power_epoch: u64,
}

/// The simulated fiscal register. Cloning gives another reference to the
/// same device.
#[derive(Debug, Clone)]
pub struct ShtrihSim {
    inner: Arc<Mutex<Device>>,
}

impl Default for ShtrihSim {
    fn default() -> Self {
        Self::new()
    }
}

/// Controls a device served by [`ShtrihSim::spawn_tcp`] or
/// [`ShtrihSim::spawn_pty`]; dereferences to the [`ShtrihSim`]. The serving
/// task stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct ShtrihSimHandle {
    sim: ShtrihSim,
    _stop: Arc<DropGuard>,
}

impl Deref for ShtrihSimHandle {
    type Target = ShtrihSim;
    fn deref(&self) -> &ShtrihSim {
        &self.sim
    }
}

impl ShtrihSimHandle {
    /// The simulated device.
    pub fn sim(&self) -> &ShtrihSim {
        &self.sim
    }
}

enum Rx {
    Byte(u8),
    Eof,
    Timeout,
}

enum End {
    Eof,
    DropLink,
    Cancelled,
}

struct Link<'a, S> {
    io: &'a mut S,
    buf: [u8; 256],
    start: usize,
    end: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<'_, S> {
    /// Next byte; cancel-safe.
    async fn byte(&mut self) -> io::Result<Option<u8>> {
        if self.start == self.end {
            let n = self.io.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.start = 0;
            self.end = n;
        }
        let b = self.buf[self.start];
        self.start += 1;
        Ok(Some(b))
    }

    async fn byte_within(&mut self, t: Duration) -> io::Result<Rx> {
        match tokio::time::timeout(t, self.byte()).await {
            Err(_) => Ok(Rx::Timeout),
            Ok(Ok(Some(b))) => Ok(Rx::Byte(b)),
            Ok(Ok(None)) => Ok(Rx::Eof),
            Ok(Err(e)) => Err(e),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) of Unix seconds, UTC.
fn civil(unix: i64) -> (i64, u8, u8, u8, u8, u8) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u8,
        (secs % 3600 / 60) as u8,
        (secs % 60) as u8,
    )
}

fn le(out: &mut Vec<u8>, v: u64, n: usize) {
    out.extend_from_slice(&v.to_le_bytes()[..n]);
}

fn read_le(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .rev()
        .fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

fn money(k: u64) -> String {
    format!("{}.{:02}", k / 100, k % 100)
}

/// Printable text of a Shtrih string field: WIN1251, ends at NUL, control
/// characters dropped, trailing spaces trimmed.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (s, _) = encoding_rs::WINDOWS_1251.decode_without_bom_handling(&bytes[..end]);
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// The register's tax table as fiscalised since 1 January 2019, when the
/// standard VAT rate went from 18 % to 20 %.
fn tax_rate(group: usize) -> (u64, u64, &'static str) {
    match group {
        0 => (20, 120, "НДС 20%"),
        1 => (10, 110, "НДС 10%"),
        2 => (0, 1, "НДС 0%"),
        3 => (0, 1, "БЕЗ НДС"),
        4 => (20, 120, "НДС 20/120"),
        _ => (10, 110, "НДС 10/110"),
    }
}

type Answer = Result<Vec<u8>, u8>;

impl Device {
    fn new(timing: SimTiming) -> Self {
        let mut passwords = [0u32; 30];
        for (i, p) in passwords.iter_mut().enumerate() {
            *p = i as u32 + 1;
        }
        Device {
            timing,
            clock: Clock {
                base: now_unix(),
                anchor: Instant::now(),
            },
            passwords,
            port: 0,
            paper: true,
            backlog: Vec::new(),
            tape: VecDeque::new(),
            shift: None,
            last_closed_shift: 0,
            check: None,
            fd_number: 0,
            doc_counter: 0,
            documents: Vec::new(),
            pending: None,
            next_pending_id: 0,
            faults: Faults::default(),
            power_epoch: 0,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn shift_expired(&self) -> bool {
        self.shift
            .as_ref()
            .is_some_and(|s| self.now() - s.opened_at > 24 * 3600)
    }

    fn mode(&self) -> u8 {
        if let Some(c) = &self.check {
            0x08 | (c.kind.doc_type() << 4)
        } else if self.shift.is_some() {
            if self.shift_expired() { 3 } else { 2 }
        } else {
            4
        }
    }

    fn submode(&self) -> u8 {
        match (self.paper, self.backlog.is_empty()) {
            (true, true) => 0,
            (false, true) => 1,
            (false, false) => 2,
            (true, false) => 3,
        }
    }

    fn flags(&self) -> u16 {
        let mut f = 1 << 9; // receipt thermal head lever down
        if self.paper {
            f |= (1 << 1) | (1 << 7);
        }
        f
    }

    fn operator(&self, pw: u32) -> Option<u8> {
        self.passwords
            .iter()
            .position(|&p| p == pw)
            .map(|i| i as u8 + 1)
    }

    fn summary(&self) -> StateSummary {
        StateSummary {
            mode: self.mode(),
            submode: self.submode(),
            shift_open: self.shift.as_ref().map(|s| s.number),
            last_closed_shift: self.last_closed_shift,
            checks_in_shift: self.shift.as_ref().map_or(0, |s| s.checks),
            open_check: self
                .check
                .as_ref()
                .map(|c| (c.kind, c.items.len(), c.total)),
            last_fd_number: self.fd_number,
            last_fiscal_sign: self.documents.last().map(|d| d.fiscal_sign),
            doc_counter: self.doc_counter,
            paper: self.paper,
            answer_pending: self.pending.is_some(),
            now_unix: self.now(),
            tape_lines: self.tape.len(),
        }
    }

    // ---- printing ----

    /// Printing commands may start only with paper and nothing held back.
    fn print_gate(&self) -> Result<(), u8> {
        match self.submode() {
            0 => Ok(()),
            3 => Err(errors::WAITING_CONTINUE),
            _ => Err(errors::NO_PAPER),
        }
    }

    fn print(&mut self, line: impl Into<String>) {
        let line = line.into();
        if self.submode() == 0 {
            self.tape.push_back(line);
            while self.tape.len() > TAPE_MAX_LINES {
                self.tape.pop_front();
            }
        } else if self.backlog.len() < TAPE_MAX_LINES {
            self.backlog.push(line);
        }
    }

    fn print_header(&mut self) {
        let (y, mo, d, h, mi, _) = civil(self.now());
        self.print("ООО \"ПОСБРИДЖ\"  ШТРИХ-М-01Ф (СИМУЛЯТОР)");
        self.print(format!(
            "{d:02}.{mo:02}.{y:04} {h:02}:{mi:02}  ДОК. {:04}",
            self.doc_counter + 1
        ));
    }

    fn print_fiscal_footer(&mut self, number: u32, sign: u32) {
        self.print(format!("ФН: {}", String::from_utf8_lossy(FN_NUMBER)));
        self.print(format!("ФД: {number}  ФП: {sign:010}"));
    }

    fn new_fiscal_doc(&mut self, kind: FiscalDocKind, total: u64, shift: u16) -> (u32, u32) {
        self.fd_number += 1;
        let sign = fiscal_sign(self.fd_number, total);
        self.documents.push(FiscalDoc {
            number: self.fd_number,
            kind,
            total,
            fiscal_sign: sign,
            shift,
            unix_time: self.now(),
        });
        (self.fd_number, sign)
    }

    // ---- commands ----

    /// Executes a command payload (`CMD DATA` or `FF xx DATA`) and returns the
    /// answer payload.
    fn execute(&mut self, payload: &[u8]) -> Vec<u8> {
        let (code, head): (u8, Vec<u8>) = if payload[0] == 0xFF {
            match payload.get(1) {
                Some(&sub) => (sub, vec![0xFF, sub]),
                None => return vec![0xFF, 0x00, errors::FN_UNKNOWN_COMMAND],
            }
        } else {
            (payload[0], vec![payload[0]])
        };
        let data = &payload[head.len()..];
        let result = if head.len() == 2 {
            self.execute_ff(code, data)
        } else {
            self.execute_std(code, data)
        };
        let mut answer = head;
        match result {
            Ok(rest) => {
                answer.push(errors::OK);
                answer.extend_from_slice(&rest);
            }
            Err(e) => answer.push(e),
        }
        answer.truncate(255);
        answer
    }

    fn password(&self, data: &[u8]) -> Result<u8, u8> {
        let pw = data.get(..4).ok_or(errors::BAD_PARAMS)?;
        self.operator(read_le(pw) as u32)
            .ok_or(errors::BAD_PASSWORD)
    }

    fn sysadmin(&self, data: &[u8]) -> Result<(), u8> {
        let pw = data.get(..4).ok_or(errors::BAD_PARAMS)?;
        if read_le(pw) as u32 == self.passwords[SYSADMIN_PASSWORD as usize - 1] {
            Ok(())
        } else {
            Err(errors::BAD_PASSWORD)
        }
    }

    fn execute_std(&mut self, cmd: u8, data: &[u8]) -> Answer {
        match cmd {
            0x10 => self.short_status(data),
            0x11 => self.full_status(data),
            0x12 | 0x17 | 0x2F => self.print_string(cmd, data),
            0x25 => self.cut(data),
            0x40 => self.x_report(data),
            0x41 => self.z_report(data),
            0x88 => self.cancel_check(data),
            0x89 => self.subtotal(data),
            0x8D => self.open_check(data),
            0xB0 => self.continue_printing(data),
            0xE0 => self.open_shift(data),
            _ => Err(errors::NOT_SUPPORTED),
        }
    }

    fn execute_ff(&mut self, sub: u8, data: &[u8]) -> Answer {
        match sub {
            0x01 => self.fn_status(data),
            0x0A => self.fn_find_document(data),
            0x40 => self.fn_shift_params(data),
            0x45 => self.close_check_v2(data),
            0x46 => self.operation_v2(data),
            _ => Err(errors::NOT_SUPPORTED),
        }
    }

    /// 10h Короткий запрос состояния ККТ.
    fn short_status(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        let ops = self.check.as_ref().map_or(0, |c| c.items.len()) as u16;
        let flags = self.flags();
        let mut a = vec![op];
        le(&mut a, u64::from(flags), 2);
        a.push(self.mode());
        a.push(self.submode());
        a.push(ops as u8);
        a.push(0xB4); // backup battery voltage
        a.push(0x8C); // supply voltage
        a.push((ops >> 8) as u8);
        a.extend_from_slice(&[0, 0, 0]); // reserved
        a.push(0); // result of the last print: completed
        a.resize(14, 0); // to the stated length of 16 (CMD ERR + 14)
        Ok(a)
    }

    /// 11h Запрос состояния ККТ.
    fn full_status(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        let (y, mo, d, h, mi, s) = civil(self.now());
        let mut a = vec![op];
        a.extend_from_slice(b"C1"); // software version "C.1"
        le(&mut a, 1717, 2); // build
        a.extend_from_slice(&[15, 1, 26]); // software date
        a.push(1); // number in the hall
        le(&mut a, u64::from(self.doc_counter % 10_000), 2);
        le(&mut a, u64::from(self.flags()), 2);
        a.push(self.mode());
        a.push(self.submode());
        a.push(self.port);
        a.extend_from_slice(&[d, mo, (y % 100) as u8]);
        a.extend_from_slice(&[h, mi, s]);
        le(&mut a, SERIAL & 0xFFFF_FFFF, 4);
        le(&mut a, u64::from(self.last_closed_shift), 2);
        a.push(1); // registrations
        a.push(19); // registrations left
        le(&mut a, INN, 6);
        le(&mut a, SERIAL >> 32, 2);
        a.resize(46, 0); // to the stated length of 48 (CMD ERR + 46)
        Ok(a)
    }

    /// 12h bold string, 17h standard string, 2Fh string with a font.
    fn print_string(&mut self, cmd: u8, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        let body_at = if cmd == 0x2F { 6 } else { 5 };
        let flags = *data.get(4).ok_or(errors::BAD_PARAMS)?;
        if data.len() < body_at {
            return Err(errors::BAD_PARAMS);
        }
        self.print_gate()?;
        if flags & 0x02 != 0 {
            let line = text(&data[body_at..]);
            self.print(line);
        }
        Ok(vec![op])
    }

    /// 25h Отрезка чека.
    fn cut(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        let kind = *data.get(4).ok_or(errors::BAD_PARAMS)?;
        if kind > 1 {
            return Err(errors::BAD_PARAMS);
        }
        self.print_gate()?;
        self.print(TAPE_CUT);
        Ok(vec![op])
    }

    /// B0h Продолжение печати.
    fn continue_printing(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        match self.submode() {
            3 => {
                let held = std::mem::take(&mut self.backlog);
                for line in held {
                    self.print(line);
                }
                Ok(vec![op])
            }
            0 => Err(errors::WRONG_SUBMODE),
            _ => Err(errors::NO_PAPER),
        }
    }

    fn fn_has_room(&self) -> Result<(), u8> {
        if self.documents.len() >= FN_CAPACITY {
            Err(errors::FN_EXHAUSTED)
        } else {
            Ok(())
        }
    }

    /// E0h Открыть смену.
    fn open_shift(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        if self.check.is_some() {
            return Err(errors::CHECK_OPEN);
        }
        if self.shift.is_some() {
            return Err(errors::SHIFT_OPEN);
        }
        self.print_gate()?;
        self.fn_has_room()?;
        let number = self.last_closed_shift.wrapping_add(1);
        self.shift = Some(Shift {
            number,
            opened_at: self.now(),
            checks: 0,
            totals: [0; 4],
        });
        self.print_header();
        let (fd, sign) = self.new_fiscal_doc(FiscalDocKind::OpenShift, 0, number);
        self.doc_counter += 1;
        self.print("ОТЧЕТ ОБ ОТКРЫТИИ СМЕНЫ");
        self.print(format!("СМЕНА: {number}"));
        self.print_fiscal_footer(fd, sign);
        self.print(TAPE_CUT);
        Ok(vec![op])
    }

    fn print_shift_totals(&mut self) {
        let Some(shift) = self.shift.clone() else {
            self.print("СМЕНА ЗАКРЫТА");
            return;
        };
        self.print(format!("СМЕНА: {}  ЧЕКОВ: {}", shift.number, shift.checks));
        for kind in [
            CheckKind::Sale,
            CheckKind::SaleReturn,
            CheckKind::Purchase,
            CheckKind::PurchaseReturn,
        ] {
            let t = shift.totals[kind.doc_type() as usize];
            self.print(format!("{}: {}", kind.title(), money(t)));
        }
    }

    /// 40h Суточный отчет без гашения (X).
    fn x_report(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        if op < 28 {
            return Err(errors::BAD_PASSWORD);
        }
        if self.check.is_some() {
            return Err(errors::CHECK_OPEN);
        }
        self.print_gate()?;
        self.print_header();
        self.doc_counter += 1;
        self.print("ОТЧЕТ БЕЗ ГАШЕНИЯ");
        self.print_shift_totals();
        self.print(TAPE_CUT);
        Ok(vec![op])
    }

    /// 41h Суточный отчет с гашением (Z): closes the shift.
    fn z_report(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        if op < 29 {
            return Err(errors::BAD_PASSWORD);
        }
        if self.check.is_some() {
            return Err(errors::CHECK_OPEN);
        }
        let Some(shift) = self.shift.clone() else {
            return Err(errors::WRONG_MODE);
        };
        self.print_gate()?;
        self.fn_has_room()?;
        let net =
            (shift.totals[0] + shift.totals[3]).saturating_sub(shift.totals[1] + shift.totals[2]);
        self.print_header();
        self.print("ОТЧЕТ О ЗАКРЫТИИ СМЕНЫ");
        self.print_shift_totals();
        let (fd, sign) = self.new_fiscal_doc(FiscalDocKind::CloseShift, net, shift.number);
        self.doc_counter += 1;
        self.print_fiscal_footer(fd, sign);
        self.print(TAPE_CUT);
        self.shift = None;
        self.last_closed_shift = shift.number;
        Ok(vec![op])
    }

    fn can_register(&self) -> Result<(), u8> {
        if self.shift.is_none() {
            Err(errors::WRONG_MODE)
        } else if self.shift_expired() {
            Err(errors::SHIFT_OVER_24H)
        } else {
            Ok(())
        }
    }

    fn start_check(&mut self, kind: CheckKind) {
        self.check = Some(Check {
            kind,
            items: Vec::new(),
            total: 0,
            taxes: [0; 6],
        });
        self.print_header();
        self.print("КАССОВЫЙ ЧЕК");
        self.print(kind.title());
    }

    /// 8Dh Открыть чек.
    fn open_check(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        let kind = data
            .get(4)
            .and_then(|&b| CheckKind::from_doc_type(b))
            .ok_or(errors::BAD_PARAMS)?;
        if self.check.is_some() {
            return Err(errors::CHECK_OPEN);
        }
        self.can_register()?;
        self.print_gate()?;
        self.start_check(kind);
        Ok(vec![op])
    }

    /// 89h Подытог чека.
    fn subtotal(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        let check = self.check.as_ref().ok_or(errors::CHECK_CLOSED)?;
        let mut a = vec![op];
        le(&mut a, check.total, 5);
        Ok(a)
    }

    /// FF46h Операция V2.
    fn operation_v2(&mut self, data: &[u8]) -> Answer {
        self.password(data)?;
        if data.len() < 30 {
            return Err(errors::BAD_PARAMS);
        }
        let kind = CheckKind::from_operation(data[4]).ok_or(errors::BAD_PARAMS)?;
        let qty = read_le(&data[5..11]);
        let price = read_le(&data[11..16]);
        let sum_field = read_le(&data[16..21]);
        let tax_field = read_le(&data[21..26]);
        let tax_mask = data[26];
        let name_bytes = &data[30..data.len().min(30 + 128)];
        let group = match tax_mask {
            0 => None,
            m if m.is_power_of_two() && m <= 0x20 => Some(m.trailing_zeros() as usize),
            _ => return Err(errors::BAD_PARAMS),
        };
        let computed = u128::from(qty) * u128::from(price);
        let computed = (computed + 500_000) / 1_000_000;
        if computed > u128::from(MAX_MONEY) {
            return Err(errors::CHECK_TOTAL_OVERFLOW);
        }
        let computed = computed as u64;
        let sum = if sum_field == NOT_GIVEN {
            computed
        } else if sum_field.abs_diff(computed) > 1 {
            return Err(errors::BAD_PARAMS);
        } else {
            sum_field
        };
        match &self.check {
            Some(c) if c.kind != kind => return Err(errors::WRONG_CHECK_TYPE),
            Some(c) if c.items.len() >= MAX_ITEMS_PER_CHECK => {
                return Err(errors::TOO_MANY_ITEMS);
            }
            Some(c) if c.total + sum > MAX_MONEY => return Err(errors::CHECK_TOTAL_OVERFLOW),
            _ => {}
        }
        self.can_register()?;
        self.print_gate()?;
        if self.check.is_none() {
            self.start_check(kind);
        }
        let tax = group.map(|g| {
            if tax_field != NOT_GIVEN && g != 2 && g != 3 {
                tax_field.min(sum)
            } else {
                let (num, den, _) = tax_rate(g);
                (sum * num + den / 2) / den
            }
        });
        let name = text(name_bytes);
        let hidden = name.starts_with("//");
        if let Some(check) = self.check.as_mut() {
            check.items.push(sum);
            check.total += sum;
            if let (Some(g), Some(t)) = (group, tax) {
                check.taxes[g] += t;
            }
        }
        if !hidden {
            self.print(name);
            let whole = qty / 1_000_000;
            let frac = qty % 1_000_000;
            let qty_text = if frac == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{frac:06}")
                    .trim_end_matches('0')
                    .to_string()
            };
            self.print(format!("{qty_text} X {} = {}", money(price), money(sum)));
            if let Some(g) = group {
                self.print(format!("  {}", tax_rate(g).2));
            }
        }
        Ok(Vec::new())
    }

    /// FF45h Закрытие чека расширенное вариант №2.
    fn close_check_v2(&mut self, data: &[u8]) -> Answer {
        self.password(data)?;
        if data.len() < 4 + 80 + 1 + 30 + 1 {
            return Err(errors::BAD_PARAMS);
        }
        let check = self.check.clone().ok_or(errors::CHECK_CLOSED)?;
        if self.submode() == 3 {
            return Err(errors::WAITING_CONTINUE);
        }
        self.fn_has_room()?;
        if check.items.is_empty() {
            return Err(errors::ZERO_CHECK);
        }
        let mut payments = [0u64; 16];
        for (i, p) in payments.iter_mut().enumerate() {
            *p = read_le(&data[4 + i * 5..9 + i * 5]);
            if *p > MAX_MONEY {
                return Err(errors::BAD_PARAMS);
            }
        }
        let rounding = u64::from(data[84]).min(99).min(check.total);
        let total = check.total - rounding;
        let paid: u64 = payments.iter().sum();
        let non_cash: u64 = payments[1..].iter().sum();
        if paid < total {
            return Err(errors::PAYMENT_LESS_THAN_TOTAL);
        }
        if non_cash > total {
            return Err(errors::NON_CASH_EXCEEDS_TOTAL);
        }
        let change = paid - total;
        let note = text(&data[116..data.len().min(116 + 64)]);

        let shift_number = self.shift.as_ref().map_or(0, |s| s.number);
        let (fd, sign) =
            self.new_fiscal_doc(FiscalDocKind::Receipt(check.kind), total, shift_number);
        self.doc_counter += 1;
        if let Some(shift) = self.shift.as_mut() {
            shift.checks = shift.checks.wrapping_add(1);
            let slot = &mut shift.totals[check.kind.doc_type() as usize];
            *slot = slot.saturating_add(total);
        }
        self.check = None;

        if rounding > 0 {
            self.print(format!("ОКРУГЛЕНИЕ: -{}", money(rounding)));
        }
        self.print(format!("ИТОГ: ={}", money(total)));
        for (i, &p) in payments.iter().enumerate() {
            if p == 0 {
                continue;
            }
            let label = match i {
                0 => "НАЛИЧНЫМИ".to_string(),
                1..=12 => format!("ЭЛЕКТРОННЫМИ (ТИП {})", i + 1),
                13 => "ПРЕДВАРИТЕЛЬНАЯ ОПЛАТА (АВАНС)".to_string(),
                14 => "ПОСЛЕДУЮЩАЯ ОПЛАТА (КРЕДИТ)".to_string(),
                _ => "ИНАЯ ФОРМА ОПЛАТЫ".to_string(),
            };
            self.print(format!("{label}: ={}", money(p)));
        }
        if change > 0 {
            self.print(format!("СДАЧА: ={}", money(change)));
        }
        for (g, &t) in check.taxes.iter().enumerate() {
            if t > 0 {
                self.print(format!("СУММА {}: ={}", tax_rate(g).2, money(t)));
            }
        }
        if !note.is_empty() {
            self.print(note);
        }
        self.print(format!("ЧЕК: {}  СМЕНА: {shift_number}", {
            self.shift.as_ref().map_or(0, |s| s.checks)
        }));
        self.print_fiscal_footer(fd, sign);
        self.print(TAPE_CUT);

        let mut a = Vec::new();
        le(&mut a, change, 5);
        le(&mut a, u64::from(fd), 4);
        le(&mut a, u64::from(sign), 4);
        Ok(a)
    }

    /// 88h Аннулирование чека.
    fn cancel_check(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        if self.check.is_none() {
            return Err(errors::CHECK_CLOSED);
        }
        if self.submode() == 3 {
            return Err(errors::WAITING_CONTINUE);
        }
        self.check = None;
        self.doc_counter += 1;
        self.print("ЧЕК АННУЛИРОВАН");
        self.print(TAPE_CUT);
        Ok(vec![op])
    }

    fn fn_datetime(&self, unix: i64, out: &mut Vec<u8>) {
        let (y, mo, d, h, mi, _) = civil(unix);
        out.extend_from_slice(&[(y % 100) as u8, mo, d, h, mi]);
    }

    /// FF01h Запрос статуса ФН.
    fn fn_status(&mut self, data: &[u8]) -> Answer {
        self.sysadmin(data)?;
        let mut a = vec![0b0000_0011]; // set up, fiscal mode open
        a.push(if self.check.is_some() { 0x04 } else { 0x00 });
        a.push(u8::from(
            self.check.as_ref().is_some_and(|c| !c.items.is_empty()),
        ));
        a.push(u8::from(self.shift.is_some()));
        a.push(0); // warnings
        self.fn_datetime(self.now(), &mut a);
        a.extend_from_slice(FN_NUMBER);
        le(&mut a, u64::from(self.fd_number), 4);
        Ok(a)
    }

    /// FF0Ah Найти фискальный документ по номеру.
    fn fn_find_document(&mut self, data: &[u8]) -> Answer {
        self.sysadmin(data)?;
        let number = read_le(data.get(4..8).ok_or(errors::BAD_PARAMS)?) as u32;
        let doc = number
            .checked_sub(1)
            .and_then(|i| self.documents.get(i as usize))
            .ok_or(errors::FN_NO_DATA)?
            .clone();
        let mut a = vec![doc.kind.fn_type(), 0];
        self.fn_datetime(doc.unix_time, &mut a);
        le(&mut a, u64::from(doc.number), 4);
        le(&mut a, u64::from(doc.fiscal_sign), 4);
        match doc.kind {
            FiscalDocKind::Receipt(kind) => {
                a.push(kind.fn_operation());
                le(&mut a, doc.total, 5);
            }
            FiscalDocKind::OpenShift | FiscalDocKind::CloseShift => {
                le(&mut a, u64::from(doc.shift), 2);
            }
        }
        Ok(a)
    }

    /// FF40h Запрос параметров текущей смены.
    fn fn_shift_params(&mut self, data: &[u8]) -> Answer {
        self.sysadmin(data)?;
        let mut a = vec![u8::from(self.shift.is_some())];
        match &self.shift {
            Some(s) => {
                le(&mut a, u64::from(s.number), 2);
                le(&mut a, u64::from(s.checks) + 1, 2);
            }
            None => {
                le(&mut a, u64::from(self.last_closed_shift), 2);
                le(&mut a, 0, 2);
            }
        }
        Ok(a)
    }
}

impl ShtrihSim {
    /// A fresh device: shift closed, no documents, clock at the host's time,
    /// operator passwords 1…30 (operator N has password N; 29 administrator,
    /// 30 system administrator).
    pub fn new() -> Self {
        Self::with_timing(SimTiming::default())
    }

    /// A fresh device with other link timing.
    pub fn with_timing(timing: SimTiming) -> Self {
        ShtrihSim {
            inner: Arc::new(Mutex::new(Device::new(timing))),
        }
    }

    fn dev(&self) -> MutexGuard<'_, Device> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The printed receipt tape, one string per line; [`TAPE_CUT`] marks cuts.
    pub fn tape(&self) -> Vec<String> {
        self.dev().tape.iter().cloned().collect()
    }

    /// The tape split at the cuts: one entry per cut-off piece of paper (the
    /// lines after the last cut, if any, are the last entry).
    pub fn receipts(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        for line in self.dev().tape.iter() {
            if line == TAPE_CUT {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(line.clone());
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    /// The fiscal documents in the FN, oldest first.
    pub fn documents(&self) -> Vec<FiscalDoc> {
        self.dev().documents.clone()
    }

    /// Injects a fault (see [`Fault`] for which are one-shot).
    pub fn set_fault(&self, fault: Fault) {
        let mut d = self.dev();
        match fault {
            Fault::CorruptNextAnswer => d.faults.corrupt_next = true,
            Fault::NakNextFrame => d.faults.nak_next = true,
            Fault::DelayAnswer(t) => d.faults.delay = Some(t),
            Fault::PaperOut => d.paper = false,
            Fault::DropLinkAfterCommand => d.faults.drop_link_next = true,
            Fault::DropLinkAfterCommands(n) => d.faults.drop_link_after = Some(n.max(1)),
            Fault::PowerLoss => {
                d.pending = None;
                d.power_epoch += 1;
            }
        }
        tracing::debug!(?fault, "shtrih sim: fault set");
    }

    /// Clears one fault (for `DelayAnswer` any duration matches; `PaperOut`
    /// puts paper back in).
    pub fn clear_fault(&self, fault: Fault) {
        let mut d = self.dev();
        match fault {
            Fault::CorruptNextAnswer => d.faults.corrupt_next = false,
            Fault::NakNextFrame => d.faults.nak_next = false,
            Fault::DelayAnswer(_) => d.faults.delay = None,
            Fault::PaperOut => d.paper = true,
            Fault::DropLinkAfterCommand => d.faults.drop_link_next = false,
            Fault::DropLinkAfterCommands(_) => d.faults.drop_link_after = None,
            Fault::PowerLoss => {}
        }
    }

    /// Clears every fault and puts paper back in.
    pub fn clear_faults(&self) {
        let mut d = self.dev();
        d.faults = Faults::default();
        d.paper = true;
    }

    /// Moves the device clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.dev().clock.base += by.as_secs() as i64;
    }

    /// Sets the device clock (Unix seconds); it keeps running from there.
    pub fn set_time(&self, unix: i64) {
        let mut d = self.dev();
        d.clock = Clock {
            base: unix,
            anchor: Instant::now(),
        };
    }

    /// Sets operator `number`'s (1…30) password.
    pub fn set_password(&self, number: u8, password: u32) {
        if (1..=30).contains(&number) {
            self.dev().passwords[number as usize - 1] = password;
        }
    }

    /// A snapshot of the state.
    pub fn state_summary(&self) -> StateSummary {
        self.dev().summary()
    }

    /// Runs a command payload (`CMD DATA`, `FF xx DATA`) directly, bypassing
    /// the link layer, and returns the answer payload.
    pub fn execute(&self, payload: &[u8]) -> Vec<u8> {
        if payload.is_empty() {
            return vec![0x00, errors::NOT_SUPPORTED];
        }
        self.dev().execute(payload)
    }

    /// Serves one stream until EOF, an I/O error, or a
    /// [`Fault::DropLinkAfterCommand`] (then the stream is dropped).
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut io: S) -> io::Result<()> {
        self.serve_until(&mut io, &CancellationToken::new())
            .await
            .map(|_| ())
    }

    async fn serve_until<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        stop: &CancellationToken,
    ) -> io::Result<End> {
        let mut link = Link {
            io,
            buf: [0; 256],
            start: 0,
            end: 0,
        };
        let mut next: Option<u8> = None;
        loop {
            let b = match next.take() {
                Some(b) => b,
                None => tokio::select! {
                    _ = stop.cancelled() => return Ok(End::Cancelled),
                    r = link.byte() => match r? {
                        Some(b) => b,
                        None => return Ok(End::Eof),
                    },
                },
            };
            let after = match b {
                ENQ => self.on_enq(&mut link).await?,
                STX => self.on_stx(&mut link).await?,
                _ => After::Idle, // stray byte: ignored
            };
            match after {
                After::Idle => {}
                After::Next(b) => next = Some(b),
                After::Eof => return Ok(End::Eof),
                After::DropLink => return Ok(End::DropLink),
            }
        }
    }

    async fn on_enq<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        link: &mut Link<'_, S>,
    ) -> io::Result<After> {
        let pending = self.dev().pending.clone();
        match pending {
            None => {
                link.send(&[NAK]).await?;
                Ok(After::Idle)
            }
            Some(p) => {
                link.send(&[ACK]).await?;
                self.send_answer(link, p.id).await
            }
        }
    }

    /// Sends pending answer `id` and waits for the host's confirmation.
    async fn send_answer<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        link: &mut Link<'_, S>,
        id: u64,
    ) -> io::Result<After> {
        let (frame, ack_timeout) = {
            let mut d = self.dev();
            let max = d.timing.max_answer_sends;
            let corrupt = std::mem::take(&mut d.faults.corrupt_next);
            let ack_timeout = d.timing.ack_timeout;
            let Some(p) = d.pending.as_mut().filter(|p| p.id == id) else {
                return Ok(After::Idle);
            };
            p.sends += 1;
            let mut frame = p.frame.clone();
            if p.sends >= max {
                tracing::debug!("shtrih sim: answer sent {max} times, discarded");
                d.pending = None;
            }
            if corrupt && frame.len() > 3 {
                let i = frame.len() - 2;
                frame[i] ^= 0x5A;
            }
            (frame, ack_timeout)
        };
        link.send(&frame).await?;
        match link.byte_within(ack_timeout).await? {
            Rx::Byte(ACK) => {
                let mut d = self.dev();
                if d.pending.as_ref().is_some_and(|p| p.id == id) {
                    d.pending = None;
                }
                Ok(After::Idle)
            }
            // NAK, timeout: the answer stays pending until ENQ.
            Rx::Byte(NAK) | Rx::Timeout => Ok(After::Idle),
            Rx::Byte(b @ (ENQ | STX)) => Ok(After::Next(b)),
            Rx::Byte(_) => Ok(After::Idle),
            Rx::Eof => Ok(After::Eof),
        }
    }

    async fn on_stx<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        link: &mut Link<'_, S>,
    ) -> io::Result<After> {
        let (byte_timeout, epoch) = {
            let d = self.dev();
            (d.timing.byte_timeout, d.power_epoch)
        };
        let len = match link.byte_within(byte_timeout).await? {
            Rx::Byte(b) => b,
            Rx::Eof => return Ok(After::Eof),
            Rx::Timeout => return Ok(After::Idle),
        };
        let mut payload = Vec::with_capacity(len as usize);
        for _ in 0..=len {
            match link.byte_within(byte_timeout).await? {
                Rx::Byte(b) => payload.push(b),
                Rx::Eof => return Ok(After::Eof),
                Rx::Timeout => {
                    tracing::debug!("shtrih sim: byte timeout, partial frame discarded");
                    return Ok(After::Idle);
                }
            }
        }
        let got_lrc = payload.pop().unwrap_or(0);
        let good = len > 0 && lrc(&payload) ^ len == got_lrc;
        let executed = {
            let mut d = self.dev();
            if d.power_epoch != epoch {
                return Ok(After::Idle); // power lost mid-frame
            }
            if !good || std::mem::take(&mut d.faults.nak_next) {
                None
            } else {
                let answer = d.execute(&payload);
                let id = d.next_pending_id;
                d.next_pending_id += 1;
                d.pending = Some(Pending {
                    id,
                    frame: encode_frame(&answer),
                    sends: 0,
                });
                let countdown = match d.faults.drop_link_after {
                    Some(n) if n <= 1 => {
                        d.faults.drop_link_after = None;
                        true
                    }
                    Some(n) => {
                        d.faults.drop_link_after = Some(n - 1);
                        false
                    }
                    None => false,
                };
                let drop_link = std::mem::take(&mut d.faults.drop_link_next) || countdown;
                Some((answer, id, drop_link, d.faults.delay))
            }
        };
        let Some((answer, id, drop_link, delay)) = executed else {
            link.send(&[NAK]).await?;
            return Ok(After::Idle);
        };
        tracing::trace!(cmd = ?&payload[..payload.len().min(2)], answer = ?&answer[..answer.len().min(3)], "shtrih sim: command");
        link.send(&[ACK]).await?;
        if drop_link {
            return Ok(After::DropLink);
        }
        if let Some(delay) = delay {
            // The answer is being prepared: ENQ gets ACK meanwhile.
            let deadline = tokio::time::Instant::now() + delay;
            loop {
                let r = tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    r = link.byte() => r?,
                };
                match r {
                    None => return Ok(After::Eof),
                    Some(ENQ) => link.send(&[ACK]).await?,
                    Some(_) => {}
                }
            }
        }
        if self.dev().power_epoch != epoch {
            return Ok(After::Idle); // answer lost with the power
        }
        self.send_answer(link, id).await
    }

    /// Serves TCP connections on `addr`, one after another (the device has a
    /// single host link). Must be called inside a Tokio runtime. Sets the
    /// "port" of `11h` to 128 (TCP socket).
    pub fn spawn_tcp(&self, addr: SocketAddr) -> io::Result<(SocketAddr, ShtrihSimHandle)> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let local = listener.local_addr()?;
        self.dev().port = 128;
        let stop = CancellationToken::new();
        let sim = self.clone();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => return,
                    r = listener.accept() => r,
                };
                match accepted {
                    Ok((mut stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tracing::debug!(%peer, "shtrih sim: tcp host connected");
                        match sim.serve_until(&mut stream, &token).await {
                            Ok(End::Cancelled) => return,
                            Ok(_) => {}
                            Err(e) => tracing::debug!(%e, "shtrih sim: tcp link error"),
                        }
                    }
                    Err(e) => {
                        tracing::debug!(%e, "shtrih sim: accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
        Ok((
            local,
            ShtrihSimHandle {
                sim: self.clone(),
                _stop: Arc::new(stop.drop_guard()),
            },
        ))
    }

    /// Serves the master side of a new pseudo-terminal pair and returns the
    /// slave's path for the host to open. While no client has the slave open
    /// the master reads fail with `EIO`: the serving loop then sleeps 20 ms and
    /// polls again, until the handle is dropped, so clients may close and
    /// reopen the path at will (state and a pending answer live in the device,
    /// not in the loop). [`Fault::DropLinkAfterCommand`] on a pty
    /// just leaves the answer unsent (the master cannot be closed without
    /// losing the path). Must be called inside a Tokio runtime.
    pub fn spawn_pty(&self) -> io::Result<(PathBuf, ShtrihSimHandle)> {
        use tokio_serial::SerialPort;
        let (mut master, slave) = tokio_serial::SerialStream::pair().map_err(io::Error::other)?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| io::Error::other("pty slave has no name"))?;
        // Not kept open: a client's TIOCEXCL and flock would otherwise outlive
        // the client (they are cleared when the last descriptor closes).
        drop(slave);
        let stop = CancellationToken::new();
        let sim = self.clone();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                match sim.serve_until(&mut master, &token).await {
                    Ok(End::Cancelled) => return,
                    Ok(End::DropLink) => {}
                    Ok(End::Eof) | Err(_) => {
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        }
                    }
                }
            }
        });
        Ok((
            path,
            ShtrihSimHandle {
                sim: self.clone(),
                _stop: Arc::new(stop.drop_guard()),
            },
        ))
    }
}

enum After {
    Idle,
    Next(u8),
    Eof,
    DropLink,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const WAIT: Duration = Duration::from_secs(3);

    /// A minimal host side of the standard lower level, for the tests only.
    struct Host<S> {
        io: S,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> Host<S> {
        async fn write(&mut self, b: &[u8]) {
            self.io.write_all(b).await.unwrap();
            self.io.flush().await.unwrap();
        }

        /// Next byte, or `None` on EOF or after `t`.
        async fn byte_within(&mut self, t: Duration) -> Option<u8> {
            let mut b = [0u8];
            match tokio::time::timeout(t, self.io.read(&mut b)).await {
                Ok(Ok(1)) => Some(b[0]),
                _ => None,
            }
        }

        async fn byte(&mut self) -> Option<u8> {
            self.byte_within(WAIT).await
        }

        /// Reads `STX LEN payload LRC`: (payload, LRC correct).
        async fn frame(&mut self) -> (Vec<u8>, bool) {
            assert_eq!(self.byte().await, Some(STX), "answer starts with STX");
            let len = self.byte().await.unwrap();
            let mut p = Vec::new();
            for _ in 0..len {
                p.push(self.byte().await.unwrap());
            }
            let sum = self.byte().await.unwrap();
            let ok = lrc(&p) ^ len == sum;
            (p, ok)
        }

        /// ENQ → NAK, command → ACK, answer → ACK.
        async fn cmd(&mut self, payload: &[u8]) -> Vec<u8> {
            self.write(&[ENQ]).await;
            assert_eq!(self.byte().await, Some(NAK), "device idle");
            self.write(&encode_frame(payload)).await;
            assert_eq!(self.byte().await, Some(ACK), "command acknowledged");
            let (p, ok) = self.frame().await;
            assert!(ok, "answer LRC");
            self.write(&[ACK]).await;
            p
        }
    }

    fn with_pw(head: &[u8], pw: u32, rest: &[u8]) -> Vec<u8> {
        let mut v = head.to_vec();
        v.extend_from_slice(&pw.to_le_bytes());
        v.extend_from_slice(rest);
        v
    }

    fn operation(kind: u8, qty_millionths: u64, price: u64, name: &str) -> Vec<u8> {
        let mut v = with_pw(&[0xFF, 0x46], 30, &[kind]);
        le(&mut v, qty_millionths, 6);
        le(&mut v, price, 5);
        le(&mut v, NOT_GIVEN, 5); // sum: computed by the device
        le(&mut v, NOT_GIVEN, 5); // tax: computed by the device
        v.extend_from_slice(&[0x01, 1, 4, 1]); // tax 1, department 1, full payment, goods
        let (name, _, _) = encoding_rs::WINDOWS_1251.encode(name);
        v.extend_from_slice(&name);
        v
    }

    fn close(payments: &[(usize, u64)]) -> Vec<u8> {
        let mut v = with_pw(&[0xFF, 0x45], 30, &[]);
        let mut sums = [0u64; 16];
        for &(t, s) in payments {
            sums[t - 1] = s;
        }
        for s in sums {
            le(&mut v, s, 5);
        }
        v.push(0); // rounding
        v.extend_from_slice(&[0; 30]); // taxes: computed by the device
        v.push(1); // ОСН
        v.extend_from_slice(b"THANK YOU");
        v
    }

    fn start() -> (
        ShtrihSim,
        Host<DuplexStream>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let sim = ShtrihSim::new();
        let (dev, host) = tokio::io::duplex(4096);
        let s = sim.clone();
        let task = tokio::spawn(async move { s.serve(dev).await });
        (sim, Host { io: host }, task)
    }

    fn serve_again(sim: &ShtrihSim) -> Host<DuplexStream> {
        let (dev, host) = tokio::io::duplex(4096);
        let s = sim.clone();
        tokio::spawn(async move { s.serve(dev).await });
        Host { io: host }
    }

    async fn open_shift(host: &mut Host<DuplexStream>) {
        assert_eq!(
            host.cmd(&with_pw(&[0xE0], 30, &[])).await,
            vec![0xE0, 0, 30]
        );
    }

    #[test]
    fn lrc_spec_vector() {
        let frame = encode_frame(&[0x10, 0x1E, 0x00, 0x00, 0x00]);
        assert_eq!(frame, vec![0x02, 0x05, 0x10, 0x1E, 0x00, 0x00, 0x00, 0x0B]);
        assert_eq!(lrc(&frame[1..7]), 0x0B);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_768_467_600), (2026, 1, 15, 9, 0, 0));
        assert_eq!(civil(951_825_600), (2000, 2, 29, 12, 0, 0));
    }

    #[tokio::test]
    async fn enq_when_idle_is_nak() {
        let (_sim, mut host, _t) = start();
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(NAK));
    }

    #[tokio::test]
    async fn short_and_full_status() {
        let (_sim, mut host, _t) = start();
        let a = host.cmd(&[0x10, 0x1E, 0, 0, 0]).await;
        assert_eq!(a.len(), 16);
        assert_eq!(&a[..3], &[0x10, 0, 30]);
        assert_eq!(u16::from_le_bytes([a[3], a[4]]) & 0x82, 0x82, "paper flags");
        assert_eq!(a[5], 4, "shift closed");
        assert_eq!(a[6], 0, "submode: paper present");
        let a = host.cmd(&with_pw(&[0x11], 30, &[])).await;
        assert_eq!(a.len(), 48);
        assert_eq!(&a[..3], &[0x11, 0, 30]);
        assert_eq!(a[15], 4, "mode");
        assert_eq!(a[17], 0, "port: COM");
    }

    #[tokio::test]
    async fn full_sale() {
        let (sim, mut host, _t) = start();
        open_shift(&mut host).await;
        assert_eq!(
            host.cmd(&with_pw(&[0x8D], 30, &[0])).await,
            vec![0x8D, 0, 30]
        );
        let a = host.cmd(&[0x10, 30, 0, 0, 0]).await;
        assert_eq!(a[5], 0x08, "check open: sale");
        assert_eq!(
            host.cmd(&operation(1, 1_000_000, 10_000, "Молоко 3,2%"))
                .await,
            vec![0xFF, 0x46, 0]
        );
        assert_eq!(
            host.cmd(&operation(1, 2_500_000, 4_000, "Хлеб")).await,
            vec![0xFF, 0x46, 0]
        );
        let sub = host.cmd(&with_pw(&[0x89], 30, &[])).await;
        assert_eq!(read_le(&sub[3..8]), 20_000);
        // cash 150.00 + points ("other", type 16) 60.00 for 200.00: change 10.00
        let a = host.cmd(&close(&[(1, 15_000), (16, 6_000)])).await;
        assert_eq!(&a[..3], &[0xFF, 0x45, 0]);
        assert_eq!(a.len(), 16);
        assert_eq!(read_le(&a[3..8]), 1_000, "change");
        let fd = read_le(&a[8..12]) as u32;
        let fp = read_le(&a[12..16]) as u32;
        assert_eq!(fd, 2, "shift open was FD 1");
        assert_eq!(fp, fiscal_sign(2, 20_000));

        let docs = sim.documents();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].kind, FiscalDocKind::OpenShift);
        assert_eq!(
            docs[1],
            FiscalDoc {
                number: 2,
                kind: FiscalDocKind::Receipt(CheckKind::Sale),
                total: 20_000,
                fiscal_sign: fp,
                shift: 1,
                unix_time: docs[1].unix_time,
            }
        );
        let receipts = sim.receipts();
        assert_eq!(receipts.len(), 2, "shift report + receipt, each cut");
        let receipt = receipts[1].join("\n");
        for needle in [
            "КАССОВЫЙ ЧЕК",
            "Молоко 3,2%",
            "1 X 100.00 = 100.00",
            "Хлеб",
            "2.5 X 40.00 = 100.00",
            "ИТОГ: =200.00",
            "НАЛИЧНЫМИ: =150.00",
            "ИНАЯ ФОРМА ОПЛАТЫ: =60.00",
            "СДАЧА: =10.00",
            "THANK YOU",
            &format!("ФД: 2  ФП: {fp:010}"),
        ] {
            assert!(receipt.contains(needle), "{needle:?} missing in\n{receipt}");
        }
        let s = sim.state_summary();
        assert_eq!(s.mode, 2);
        assert_eq!(s.checks_in_shift, 1);
        assert_eq!(s.last_fd_number, 2);
        assert_eq!(s.last_fiscal_sign, Some(fp));

        // A host learns the last FD and its FP: FF01 then FF0A.
        let st = host.cmd(&with_pw(&[0xFF, 0x01], 30, &[])).await;
        assert_eq!(st.len(), 33);
        assert_eq!(&st[..3], &[0xFF, 0x01, 0]);
        assert_eq!(st[6], 1, "shift open");
        assert_eq!(&st[13..29], FN_NUMBER);
        assert_eq!(read_le(&st[29..33]) as u32, 2);
        let doc = host
            .cmd(&with_pw(&[0xFF, 0x0A], 30, &2u32.to_le_bytes()))
            .await;
        assert_eq!(&doc[..5], &[0xFF, 0x0A, 0, 3, 0]);
        assert_eq!(read_le(&doc[10..14]) as u32, 2);
        assert_eq!(read_le(&doc[14..18]) as u32, fp);
        assert_eq!(doc[18], 1, "приход");
        assert_eq!(read_le(&doc[19..24]), 20_000);
        let missing = host
            .cmd(&with_pw(&[0xFF, 0x0A], 30, &9u32.to_le_bytes()))
            .await;
        assert_eq!(missing, vec![0xFF, 0x0A, errors::FN_NO_DATA]);
        let shift = host.cmd(&with_pw(&[0xFF, 0x40], 30, &[])).await;
        assert_eq!(shift, vec![0xFF, 0x40, 0, 1, 1, 0, 2, 0]);

        // X report, Z report closes the shift with FD 3.
        assert_eq!(
            host.cmd(&with_pw(&[0x40], 29, &[])).await,
            vec![0x40, 0, 29]
        );
        assert_eq!(
            host.cmd(&with_pw(&[0x41], 30, &[])).await,
            vec![0x41, 0, 30]
        );
        let s = sim.state_summary();
        assert_eq!((s.mode, s.last_closed_shift, s.last_fd_number), (4, 1, 3));
        assert_eq!(sim.documents()[2].kind, FiscalDocKind::CloseShift);
        assert_eq!(sim.documents()[2].total, 20_000);
        assert_eq!(
            host.cmd(&with_pw(&[0x41], 30, &[])).await,
            vec![0x41, errors::WRONG_MODE]
        );
    }

    #[tokio::test]
    async fn clock_and_shift_documents() {
        let (sim, mut host, _t) = start();
        sim.set_time(1_768_467_600); // 2026-01-15 09:00:00
        let a = host.cmd(&with_pw(&[0x11], 30, &[])).await;
        assert_eq!(&a[18..21], &[15, 1, 26], "date");
        assert_eq!(&a[21..23], &[9, 0], "time");
        open_shift(&mut host).await;
        let doc = host
            .cmd(&with_pw(&[0xFF, 0x0A], 30, &1u32.to_le_bytes()))
            .await;
        assert_eq!(&doc[..5], &[0xFF, 0x0A, 0, 2, 0], "shift open report");
        assert_eq!(&doc[5..10], &[26, 1, 15, 9, 0], "DATE_TIME");
        assert_eq!(read_le(&doc[18..20]), 1, "shift number");
        assert_eq!(read_le(&doc[14..18]) as u32, fiscal_sign(1, 0));
    }

    #[tokio::test]
    async fn payments_short_of_total_refused() {
        let (sim, mut host, _t) = start();
        open_shift(&mut host).await;
        host.cmd(&operation(1, 1_000_000, 10_000, "A")).await;
        let a = host.cmd(&close(&[(1, 9_999)])).await;
        assert_eq!(a, vec![0xFF, 0x45, errors::PAYMENT_LESS_THAN_TOTAL]);
        let a = host.cmd(&close(&[(2, 10_001)])).await;
        assert_eq!(a, vec![0xFF, 0x45, errors::NON_CASH_EXCEEDS_TOTAL]);
        assert_eq!(sim.state_summary().mode, 0x08, "check still open");
        let a = host.cmd(&close(&[(2, 10_000)])).await;
        assert_eq!(read_le(&a[3..8]), 0);
    }

    #[tokio::test]
    async fn cancel_check() {
        let (sim, mut host, _t) = start();
        open_shift(&mut host).await;
        assert_eq!(
            host.cmd(&with_pw(&[0x8D], 30, &[2])).await,
            vec![0x8D, 0, 30]
        );
        assert_eq!(sim.state_summary().mode, 0x28, "return of sale");
        let a = host.cmd(&operation(1, 1_000_000, 500, "X")).await;
        assert_eq!(a, vec![0xFF, 0x46, errors::WRONG_CHECK_TYPE]);
        host.cmd(&operation(2, 1_000_000, 500, "X")).await;
        assert_eq!(
            host.cmd(&with_pw(&[0x88], 30, &[])).await,
            vec![0x88, 0, 30]
        );
        let s = sim.state_summary();
        assert_eq!((s.mode, s.last_fd_number, s.checks_in_shift), (2, 1, 0));
        assert!(sim.tape().iter().any(|l| l == "ЧЕК АННУЛИРОВАН"));
        assert_eq!(
            host.cmd(&with_pw(&[0x88], 30, &[])).await,
            vec![0x88, errors::CHECK_CLOSED]
        );
    }

    #[tokio::test]
    async fn shift_over_24_hours() {
        let (sim, mut host, _t) = start();
        open_shift(&mut host).await;
        assert_eq!(
            host.cmd(&with_pw(&[0xE0], 30, &[])).await,
            vec![0xE0, errors::SHIFT_OPEN]
        );
        sim.advance_clock(Duration::from_secs(25 * 3600));
        assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[5], 3);
        assert_eq!(
            host.cmd(&with_pw(&[0x8D], 30, &[0])).await,
            vec![0x8D, errors::SHIFT_OVER_24H]
        );
        assert_eq!(
            host.cmd(&operation(1, 1_000_000, 100, "A")).await,
            vec![0xFF, 0x46, errors::SHIFT_OVER_24H]
        );
        assert_eq!(
            host.cmd(&with_pw(&[0x41], 30, &[])).await,
            vec![0x41, 0, 30]
        );
        open_shift(&mut host).await;
        assert_eq!(
            host.cmd(&with_pw(&[0x8D], 30, &[0])).await,
            vec![0x8D, 0, 30]
        );
        assert_eq!(sim.state_summary().shift_open, Some(2));
    }

    #[tokio::test]
    async fn passwords_and_unknown_commands() {
        let (sim, mut host, _t) = start();
        assert_eq!(host.cmd(&with_pw(&[0x10], 31, &[])).await, vec![0x10, 0x4F]);
        assert_eq!(host.cmd(&with_pw(&[0x10], 1, &[])).await[..3], [0x10, 0, 1]);
        assert_eq!(host.cmd(&with_pw(&[0xE0], 31, &[])).await, vec![0xE0, 0x4F]);
        open_shift(&mut host).await;
        assert_eq!(host.cmd(&with_pw(&[0x41], 1, &[])).await, vec![0x41, 0x4F]);
        assert_eq!(host.cmd(&with_pw(&[0x40], 27, &[])).await, vec![0x40, 0x4F]);
        assert_eq!(
            host.cmd(&with_pw(&[0xFF, 0x01], 1, &[])).await,
            vec![0xFF, 0x01, 0x4F]
        );
        sim.set_password(30, 123_456);
        assert_eq!(host.cmd(&with_pw(&[0x10], 30, &[])).await, vec![0x10, 0x4F]);
        assert_eq!(
            host.cmd(&with_pw(&[0x10], 123_456, &[])).await[..3],
            [0x10, 0, 30]
        );
        assert_eq!(
            host.cmd(&[0x77, 1, 2]).await,
            vec![0x77, errors::NOT_SUPPORTED]
        );
        assert_eq!(
            host.cmd(&[0xFF, 0x7F]).await,
            vec![0xFF, 0x7F, errors::NOT_SUPPORTED]
        );
        assert_eq!(host.cmd(&[0x10, 30]).await, vec![0x10, errors::BAD_PARAMS]);
    }

    #[tokio::test]
    async fn print_commands_and_cut() {
        let (sim, mut host, _t) = start();
        let (line, _, _) = encoding_rs::WINDOWS_1251.encode("Привет, мир");
        assert_eq!(
            host.cmd(&with_pw(&[0x17], 30, &[[2].as_slice(), &line].concat()))
                .await,
            vec![0x17, 0, 30]
        );
        assert_eq!(
            host.cmd(&with_pw(&[0x12], 30, &[2, b'B', b'O', b'L', b'D']))
                .await,
            vec![0x12, 0, 30]
        );
        assert_eq!(
            host.cmd(&with_pw(&[0x2F], 30, &[2, 3, b'F', 0, b'X']))
                .await,
            vec![0x2F, 0, 30]
        );
        assert_eq!(
            host.cmd(&with_pw(&[0x17], 30, &[1, b'J'])).await,
            vec![0x17, 0, 30]
        );
        assert_eq!(
            host.cmd(&with_pw(&[0x25], 30, &[0])).await,
            vec![0x25, 0, 30]
        );
        assert_eq!(sim.tape(), vec!["Привет, мир", "BOLD", "F", TAPE_CUT]);
    }

    #[tokio::test]
    async fn bad_lrc_is_nak_and_partial_frames_time_out() {
        let (sim, mut host, _t) = start();
        host.write(&[STX, 0x05, 0x10, 0x1E, 0, 0, 0, 0x0C]).await;
        assert_eq!(host.byte().await, Some(NAK));
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(NAK), "nothing pending");
        // A frame broken by a pause longer than the byte timeout is dropped.
        host.write(&[STX, 0x05, 0x10]).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        host.write(&[0x1E, 0, 0, 0, 0x0B]).await;
        assert_eq!(host.byte_within(Duration::from_millis(200)).await, None);
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(NAK));
        assert!(!sim.state_summary().answer_pending);
        // Garbage between frames is ignored.
        host.write(&[0x00, 0x41, ACK, NAK, 0xFF]).await;
        assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[1], 0);
    }

    #[tokio::test]
    async fn answer_not_acknowledged_is_reread_with_enq() {
        let (sim, mut host, _t) = start();
        host.write(&encode_frame(&with_pw(&[0xE0], 30, &[]))).await;
        assert_eq!(host.byte().await, Some(ACK));
        let (first, ok) = host.frame().await;
        assert!(ok);
        host.write(&[NAK]).await; // per spec: not repeated until ENQ
        assert_eq!(host.byte_within(Duration::from_millis(100)).await, None);
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(ACK));
        let (again, ok) = host.frame().await;
        assert!(ok);
        assert_eq!(first, again);
        host.write(&[ACK]).await;
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(NAK));
        assert_eq!(sim.documents().len(), 1, "executed once");
    }

    #[tokio::test]
    async fn fault_corrupt_next_answer() {
        let (sim, mut host, _t) = start();
        sim.set_fault(Fault::CorruptNextAnswer);
        host.write(&encode_frame(&[0x10, 30, 0, 0, 0])).await;
        assert_eq!(host.byte().await, Some(ACK));
        let (_, ok) = host.frame().await;
        assert!(!ok, "corrupted");
        host.write(&[NAK]).await;
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(ACK));
        let (p, ok) = host.frame().await;
        assert!(ok);
        assert_eq!(&p[..3], &[0x10, 0, 30]);
        host.write(&[ACK]).await;
        assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[1], 0);
    }

    #[tokio::test]
    async fn fault_nak_next_frame() {
        let (sim, mut host, _t) = start();
        sim.set_fault(Fault::NakNextFrame);
        host.write(&encode_frame(&with_pw(&[0xE0], 30, &[]))).await;
        assert_eq!(host.byte().await, Some(NAK));
        assert_eq!(sim.state_summary().mode, 4, "not executed");
        open_shift(&mut host).await;
        assert_eq!(sim.state_summary().mode, 2);
    }

    #[tokio::test]
    async fn fault_delay_answer() {
        let (sim, mut host, _t) = start();
        sim.set_fault(Fault::DelayAnswer(Duration::from_millis(300)));
        let started = Instant::now();
        host.write(&encode_frame(&[0x10, 30, 0, 0, 0])).await;
        assert_eq!(host.byte().await, Some(ACK));
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(ACK), "answer being prepared");
        let (p, ok) = host.frame().await;
        assert!(ok && p[1] == 0);
        assert!(started.elapsed() >= Duration::from_millis(300));
        host.write(&[ACK]).await;
        sim.clear_fault(Fault::DelayAnswer(Duration::ZERO));
        let started = Instant::now();
        host.cmd(&[0x10, 30, 0, 0, 0]).await;
        assert!(started.elapsed() < Duration::from_millis(300));
    }

    #[tokio::test]
    async fn fault_paper_out_and_continue_printing() {
        let (sim, mut host, _t) = start();
        open_shift(&mut host).await;
        host.cmd(&operation(1, 1_000_000, 10_000, "Сок")).await;
        sim.set_fault(Fault::PaperOut);
        assert_eq!(
            host.cmd(&[0x10, 30, 0, 0, 0]).await[6],
            1,
            "passive paper out"
        );
        assert_eq!(
            host.cmd(&with_pw(&[0x17], 30, &[2, b'x'])).await,
            vec![0x17, errors::NO_PAPER]
        );
        assert_eq!(
            host.cmd(&operation(1, 1_000_000, 100, "A")).await,
            vec![0xFF, 0x46, errors::NO_PAPER]
        );
        assert_eq!(
            host.cmd(&with_pw(&[0xB0], 30, &[])).await,
            vec![0xB0, errors::NO_PAPER]
        );
        // The open check is closed in the FN; its printout is held back.
        let a = host.cmd(&close(&[(1, 10_000)])).await;
        assert_eq!(&a[..3], &[0xFF, 0x45, 0]);
        assert_eq!(sim.documents().len(), 2);
        assert_eq!(
            host.cmd(&[0x10, 30, 0, 0, 0]).await[6],
            2,
            "active paper out"
        );
        assert!(!sim.tape().iter().any(|l| l.starts_with("ИТОГ")));
        sim.clear_fault(Fault::PaperOut);
        assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[6], 3, "waiting for B0");
        assert_eq!(
            host.cmd(&with_pw(&[0x17], 30, &[2, b'x'])).await,
            vec![0x17, errors::WAITING_CONTINUE]
        );
        assert_eq!(
            host.cmd(&with_pw(&[0xB0], 30, &[])).await,
            vec![0xB0, 0, 30]
        );
        assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[6], 0);
        assert!(sim.tape().iter().any(|l| l == "ИТОГ: =100.00"));
        assert_eq!(
            host.cmd(&with_pw(&[0xB0], 30, &[])).await,
            vec![0xB0, errors::WRONG_SUBMODE]
        );
    }

    #[tokio::test]
    async fn fault_drop_link_keeps_state_and_answer() {
        let (sim, mut host, task) = start();
        sim.set_fault(Fault::DropLinkAfterCommand);
        host.write(&encode_frame(&with_pw(&[0xE0], 30, &[]))).await;
        assert_eq!(host.byte().await, Some(ACK));
        assert_eq!(host.byte().await, None, "link dropped");
        task.await.unwrap().unwrap();
        let s = sim.state_summary();
        assert_eq!(s.mode, 2, "the command was executed");
        assert!(s.answer_pending);
        // Reconnect: ENQ → ACK and the pending answer.
        let mut host = serve_again(&sim);
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(ACK));
        let (p, ok) = host.frame().await;
        assert!(ok);
        assert_eq!(p, vec![0xE0, 0, 30]);
        host.write(&[ACK]).await;
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(NAK));
        assert_eq!(sim.documents().len(), 1);
    }

    #[tokio::test]
    async fn fault_power_loss() {
        let (sim, mut host, task) = start();
        open_shift(&mut host).await;
        // Pending answer lost with the power.
        sim.set_fault(Fault::DropLinkAfterCommand);
        host.write(&encode_frame(&with_pw(&[0x8D], 30, &[0]))).await;
        assert_eq!(host.byte().await, Some(ACK));
        task.await.unwrap().unwrap();
        sim.set_fault(Fault::PowerLoss);
        let mut host = serve_again(&sim);
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(NAK), "answer lost");
        assert_eq!(sim.state_summary().mode, 0x08, "check survives");
        // An answer being prepared is lost too.
        sim.set_fault(Fault::DelayAnswer(Duration::from_millis(200)));
        host.write(&encode_frame(&operation(1, 1_000_000, 700, "A")))
            .await;
        assert_eq!(host.byte().await, Some(ACK));
        sim.set_fault(Fault::PowerLoss);
        assert_eq!(host.byte_within(Duration::from_millis(500)).await, None);
        sim.clear_faults();
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(NAK));
        assert_eq!(
            sim.state_summary().open_check,
            Some((CheckKind::Sale, 1, 700))
        );
    }

    #[tokio::test]
    async fn tcp_round_trip_and_reconnect() {
        let sim = ShtrihSim::new();
        let (addr, handle) = sim.spawn_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        for _ in 0..2 {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut host = Host { io: stream };
            let a = host.cmd(&with_pw(&[0x11], 30, &[])).await;
            assert_eq!(&a[..3], &[0x11, 0, 30]);
            assert_eq!(a[17], 128, "port: TCP socket");
        }
        handle.set_fault(Fault::DropLinkAfterCommand);
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut host = Host { io: stream };
        host.write(&encode_frame(&with_pw(&[0xE0], 30, &[]))).await;
        assert_eq!(host.byte().await, Some(ACK));
        assert_eq!(host.byte().await, None);
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut host = Host { io: stream };
        host.write(&[ENQ]).await;
        assert_eq!(host.byte().await, Some(ACK));
        assert_eq!(host.frame().await, (vec![0xE0, 0, 30], true));
        host.write(&[ACK]).await;
        assert_eq!(handle.state_summary().shift_open, Some(1));
        drop(handle);
    }

    #[tokio::test]
    async fn pty_round_trip_and_reopen() {
        use tokio_serial::SerialPortBuilderExt;
        let sim = ShtrihSim::new();
        let (path, handle) = sim.spawn_pty().unwrap();
        for round in 0..3 {
            let port = tokio_serial::new(path.to_string_lossy(), 115_200)
                .open_native_async()
                .unwrap();
            let mut host = Host { io: port };
            let a = host.cmd(&[0x10, 30, 0, 0, 0]).await;
            assert_eq!(&a[..3], &[0x10, 0, 30], "round {round}");
            if round == 1 {
                open_shift_any(&mut host).await;
            }
        }
        assert_eq!(handle.state_summary().shift_open, Some(1));
    }

    async fn open_shift_any<S: AsyncRead + AsyncWrite + Unpin>(host: &mut Host<S>) {
        assert_eq!(
            host.cmd(&with_pw(&[0xE0], 30, &[])).await,
            vec![0xE0, 0, 30]
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn chunk() -> impl Strategy<Value = Vec<u8>> {
            let cmds = prop::sample::select(vec![
                0x10u8, 0x11, 0x12, 0x17, 0x25, 0x2F, 0x40, 0x41, 0x88, 0x89, 0x8D, 0xB0, 0xE0,
                0xFF, 0x01,
            ]);
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                (cmds, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(c, mut d)| {
                    if d.len() >= 4 {
                        d[..4].copy_from_slice(&30u32.to_le_bytes());
                    }
                    let mut p = vec![c];
                    p.append(&mut d);
                    encode_frame(&p)
                }),
                Just(vec![ENQ]),
                Just(vec![ACK]),
                Just(vec![NAK]),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            #[test]
            fn arbitrary_input_never_panics(chunks in prop::collection::vec(chunk(), 0..40)) {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let sim = ShtrihSim::with_timing(SimTiming {
                        byte_timeout: Duration::from_millis(5),
                        ack_timeout: Duration::from_millis(10),
                        max_answer_sends: 3,
                    });
                    let (dev, host) = tokio::io::duplex(1024);
                    let (mut rd, mut wr) = tokio::io::split(host);
                    let drain = tokio::spawn(async move {
                        let mut total = 0usize;
                        let mut buf = [0u8; 512];
                        while let Ok(n) = rd.read(&mut buf).await {
                            if n == 0 { break; }
                            total += n;
                        }
                        total
                    });
                    let s = sim.clone();
                    let server = tokio::spawn(async move { s.serve(dev).await });
                    for c in &chunks {
                        wr.write_all(c).await.unwrap();
                    }
                    wr.shutdown().await.unwrap();
                    let _ = server.await.unwrap();
                    drop(wr);
                    let _ = drain.await;
                    let d = sim.dev();
                    assert!(d.tape.len() <= TAPE_MAX_LINES);
                    assert!(d.backlog.len() <= TAPE_MAX_LINES);
                    assert!(d.pending.as_ref().is_none_or(|p| p.frame.len() <= 258));
                    assert!(d.check.as_ref().is_none_or(|c| c.items.len() <= MAX_ITEMS_PER_CHECK));
                });
            }
        }
    }
}
