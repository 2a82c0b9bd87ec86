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
//! * `10h` and `11h`: laid out as real devices send them and the open
//!   drivers (pyshtrih, shtrihm-fr, the JavaPOS driver) read them, which
//!   fills the 16 and 48 bytes v1.17 states: `10h` has the FP and EKLZ error
//!   bytes before the high byte of the operation count; `11h` has the fiscal
//!   memory's version, build and date after the port, its flags after the
//!   time and its free records after the last closed shift.
//! * `FCh` answers as a ШТРИХ-М-01Ф (type 0, protocol 1.14, model 250). The
//!   classic `80h`/`82h`/`85h` (and `86h`, `8Ch`) work beside the V2
//!   operations; [`ShtrihSim::set_legacy`] makes `FF45h`/`FF46h` answer
//!   `37h`, as an older firmware does.
//! * An `ENQ` that arrives while the device waits for the host's `ACK` of an
//!   answer it has just sent crossed that answer on the line: it is not
//!   answered with a second copy (which a host would read as the answer to
//!   its next command).
//! * `E0h`: the text lists only the operator number; the answer carries the
//!   error code too (`E0 ERR OP`), like every other answer.
//! * `FF45h` accepts any operator password (the text asks for the system
//!   administrator's); the FN query commands (`FF01h`, `FF0Ah`, `FF40h`) require
//!   the system administrator's password, as written.
//! * Tax rate byte of `FF46h` is a bit mask (bit 0 = tax 1 … bit 7 = tax 8, 0 =
//!   no tax), as on the real devices; table 6 holds the 2026 rates (22 %, 10 %,
//!   0 %, без НДС, 22/122, 10/110, 5 %, 7 %).
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

mod check;
mod classic;
mod commands;
mod ffd;
mod fn_query;
mod link;
mod shift;
mod state;
#[cfg(test)]
mod tests;

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::DropGuard;

use state::{Clock, Device, Faults};

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
/// Free records the `11h` answer reports for the fiscal memory.
const FN_FREE_RECORDS: u16 = 2_000;

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
    /// Кассовый чек коррекции (FN document type 31).
    Correction(CheckKind),
}

impl FiscalDocKind {
    fn fn_type(self) -> u8 {
        match self {
            FiscalDocKind::OpenShift => 2,
            FiscalDocKind::Receipt(_) => 3,
            FiscalDocKind::CloseShift => 5,
            FiscalDocKind::Correction(_) => 31,
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

    /// Makes the device behave as an older firmware that has no `FF45h`
    /// (close check V2) and `FF46h` (operation V2): they answer `37h`, and
    /// hosts must use the classic `80h`…`85h` commands.
    pub fn set_legacy(&self, legacy: bool) {
        self.dev().legacy = legacy;
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
}
