//! The device's fiscal and link state, and the helpers every command family
//! uses (printing, fiscal documents, passwords, number and text fields).

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{
    CheckKind, FN_NUMBER, FiscalDoc, FiscalDocKind, SYSADMIN_PASSWORD, SimTiming, StateSummary,
    TAPE_MAX_LINES, errors, fiscal_sign,
};

#[derive(Debug, Clone)]
pub(super) struct Check {
    pub(super) kind: CheckKind,
    /// Sums of the operations.
    pub(super) items: Vec<u64>,
    pub(super) total: u64,
    pub(super) taxes: [u64; 8],
}

#[derive(Debug, Clone)]
pub(super) struct Shift {
    pub(super) number: u16,
    pub(super) opened_at: i64,
    pub(super) checks: u16,
    pub(super) totals: [u64; 4],
}

#[derive(Debug)]
pub(super) struct Clock {
    pub(super) base: i64,
    pub(super) anchor: Instant,
}

impl Clock {
    fn now(&self) -> i64 {
        self.base + self.anchor.elapsed().as_secs() as i64
    }
}

#[derive(Debug, Default)]
pub(super) struct Faults {
    pub(super) corrupt_next: bool,
    pub(super) nak_next: bool,
    pub(super) delay: Option<Duration>,
    pub(super) drop_link_next: bool,
    pub(super) drop_link_after: Option<u32>,
}

#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) id: u64,
    pub(super) frame: Vec<u8>,
    pub(super) sends: u8,
}

#[derive(Debug)]
pub(super) struct Device {
    pub(super) timing: SimTiming,
    pub(super) clock: Clock,
    pub(super) passwords: [u32; 30],
    pub(super) port: u8,
    pub(super) paper: bool,
    pub(super) backlog: Vec<String>,
    pub(super) tape: VecDeque<String>,
    pub(super) shift: Option<Shift>,
    pub(super) last_closed_shift: u16,
    pub(super) check: Option<Check>,
    pub(super) fd_number: u32,
    pub(super) doc_counter: u32,
    pub(super) documents: Vec<FiscalDoc>,
    pub(super) pending: Option<Pending>,
    pub(super) next_pending_id: u64,
    pub(super) faults: Faults,
    pub(super) power_epoch: u64,
    /// Behaves as an older firmware without `FF45h`/`FF46h`.
    pub(super) legacy: bool,
    /// FFD 1.2 state: tax table, cash, FN expiry, OFD queue, marking.
    pub(super) ffd: super::ffd::FfdState,
}

pub(super) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) of Unix seconds, UTC.
pub(super) fn civil(unix: i64) -> (i64, u8, u8, u8, u8, u8) {
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

pub(super) fn le(out: &mut Vec<u8>, v: u64, n: usize) {
    out.extend_from_slice(&v.to_le_bytes()[..n]);
}

pub(super) fn read_le(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .rev()
        .fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

pub(super) fn money(k: u64) -> String {
    format!("{}.{:02}", k / 100, k % 100)
}

/// Printable text of a Shtrih string field: WIN1251, ends at NUL, control
/// characters dropped, trailing spaces trimmed.
pub(super) fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (s, _) = encoding_rs::WINDOWS_1251.decode_without_bom_handling(&bytes[..end]);
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// The register's tax table as the 2026 firmware ships it (Federal law
/// 425-FZ: the standard VAT rate is 22 % from 1 January 2026), taxes 1 to 8
/// (table 6, see `ffd::default_tax_table`).
pub(super) fn tax_rate(group: usize) -> (u64, u64, &'static str) {
    match group {
        0 => (22, 122, "НДС 22%"),
        1 => (10, 110, "НДС 10%"),
        2 => (0, 1, "НДС 0%"),
        3 => (0, 1, "БЕЗ НДС"),
        4 => (22, 122, "НДС 22/122"),
        5 => (10, 110, "НДС 10/110"),
        6 => (5, 105, "НДС 5%"),
        _ => (7, 107, "НДС 7%"),
    }
}

pub(super) type Answer = Result<Vec<u8>, u8>;

impl Device {
    pub(super) fn new(timing: SimTiming) -> Self {
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
            legacy: false,
            ffd: super::ffd::FfdState::new(now_unix()),
        }
    }

    pub(super) fn now(&self) -> i64 {
        self.clock.now()
    }

    pub(super) fn shift_expired(&self) -> bool {
        self.shift
            .as_ref()
            .is_some_and(|s| self.now() - s.opened_at > 24 * 3600)
    }

    pub(super) fn mode(&self) -> u8 {
        if let Some(c) = &self.check {
            0x08 | (c.kind.doc_type() << 4)
        } else if self.shift.is_some() {
            if self.shift_expired() { 3 } else { 2 }
        } else {
            4
        }
    }

    pub(super) fn submode(&self) -> u8 {
        match (self.paper, self.backlog.is_empty()) {
            (true, true) => 0,
            (false, true) => 1,
            (false, false) => 2,
            (true, false) => 3,
        }
    }

    pub(super) fn flags(&self) -> u16 {
        let mut f = 1 << 9; // receipt thermal head lever down
        if self.paper {
            f |= (1 << 1) | (1 << 7);
        }
        f
    }

    pub(super) fn operator(&self, pw: u32) -> Option<u8> {
        self.passwords
            .iter()
            .position(|&p| p == pw)
            .map(|i| i as u8 + 1)
    }

    pub(super) fn summary(&self) -> StateSummary {
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
    pub(super) fn print_gate(&self) -> Result<(), u8> {
        match self.submode() {
            0 => Ok(()),
            3 => Err(errors::WAITING_CONTINUE),
            _ => Err(errors::NO_PAPER),
        }
    }

    pub(super) fn print(&mut self, line: impl Into<String>) {
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

    pub(super) fn print_header(&mut self) {
        let (y, mo, d, h, mi, _) = civil(self.now());
        self.print("ООО \"ПОСБРИДЖ\"  ШТРИХ-М-01Ф (СИМУЛЯТОР)");
        self.print(format!(
            "{d:02}.{mo:02}.{y:04} {h:02}:{mi:02}  ДОК. {:04}",
            self.doc_counter + 1
        ));
    }

    pub(super) fn print_fiscal_footer(&mut self, number: u32, sign: u32) {
        self.print(format!("ФН: {}", String::from_utf8_lossy(FN_NUMBER)));
        self.print(format!("ФД: {number}  ФП: {sign:010}"));
    }

    pub(super) fn new_fiscal_doc(
        &mut self,
        kind: FiscalDocKind,
        total: u64,
        shift: u16,
    ) -> (u32, u32) {
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
    pub(super) fn execute(&mut self, payload: &[u8]) -> Vec<u8> {
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

    pub(super) fn password(&self, data: &[u8]) -> Result<u8, u8> {
        let pw = data.get(..4).ok_or(errors::BAD_PARAMS)?;
        self.operator(read_le(pw) as u32)
            .ok_or(errors::BAD_PASSWORD)
    }

    pub(super) fn sysadmin(&self, data: &[u8]) -> Result<(), u8> {
        let pw = data.get(..4).ok_or(errors::BAD_PARAMS)?;
        if read_le(pw) as u32 == self.passwords[SYSADMIN_PASSWORD as usize - 1] {
            Ok(())
        } else {
            Err(errors::BAD_PASSWORD)
        }
    }
}
