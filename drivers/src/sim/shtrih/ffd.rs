//! FFD 1.2 commands of the emulator: tax table read (1Fh), cash in/out
//! (50h, 51h), FN expiry (FF03h), TLV (FF0Ch, FF4Dh), OFD exchange status
//! (FF39h), correction receipts (FF4Ah) and marking codes (FF61h, FF67h,
//! FF69h, FF70h), with the state a register keeps for them: its table 6,
//! the cash in the drawer, the FN's end date, the documents the OFD has not
//! acknowledged, and the marking codes checked and accepted.

use std::collections::{BTreeSet, VecDeque};

use super::state::{Answer, Device, le, money, read_le, text};
use super::{CheckKind, FN_CAPACITY, FiscalDocKind, TAPE_CUT, errors};

/// Marking codes the register keeps results for (FF70h «Количество
/// сохранённых результатов»); more are refused until a receipt closes.
const MAX_MARKS: usize = 100;
/// Codes configured to be refused; more are ignored.
pub const MAX_REFUSED_CODES: usize = 1_000;
/// After this long without an OFD receipt the FN raises «превышено время
/// ожидания ответа ОФД».
pub const OFD_TIMEOUT_SECS: i64 = 24 * 3600;
/// «Не хватает наличности в кассе».
const NOT_ENOUGH_CASH: u8 = 0x46;

/// Table 6 «Налоговые ставки» as the 2026 firmware ships it: rate in
/// hundredths of a percent, name.
pub(super) fn default_tax_table() -> Vec<(u16, String)> {
    [
        (2200, "НДС 22%"),
        (1000, "НДС 10%"),
        (0, "НДС 0%"),
        (0, "БЕЗ НДС"),
        (2200, "НДС 22/122"),
        (1000, "НДС 10/110"),
        (500, "НДС 5%"),
        (700, "НДС 7%"),
    ]
    .into_iter()
    .map(|(r, n)| (r, n.to_owned()))
    .collect()
}

/// FFD state of the device.
#[derive(Debug)]
pub(super) struct FfdState {
    pub(super) tax_table: Vec<(u16, String)>,
    pub(super) cash: u64,
    /// FN end of validity, Unix seconds.
    pub(super) fn_expires: i64,
    /// Documents up to this number were acknowledged by the OFD.
    pub(super) ofd_acked: u32,
    pub(super) ofd_online: bool,
    pub(super) refused: BTreeSet<String>,
    /// The last FF61h: code and whether it was positive, awaiting FF69h.
    pub(super) checking: Option<(String, bool)>,
    /// Codes accepted with FF69h, awaiting FF67h.
    pub(super) accepted: VecDeque<String>,
    /// Codes bound in the open check.
    pub(super) bound: u16,
    /// The marking server does not answer: only the FN's local check.
    pub(super) marking_offline: bool,
}

impl FfdState {
    pub(super) fn new(now: i64) -> Self {
        Self {
            tax_table: default_tax_table(),
            cash: 0,
            fn_expires: now + 400 * 86_400,
            ofd_acked: 0,
            ofd_online: true,
            refused: BTreeSet::new(),
            checking: None,
            accepted: VecDeque::new(),
            bound: 0,
            marking_offline: false,
        }
    }
}

/// Parses a TLV list; `None` if a length runs past the end.
fn tlvs(mut b: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = u16::from_le_bytes([*b.first()?, *b.get(1)?]);
        let len = usize::from(u16::from_le_bytes([*b.get(2)?, *b.get(3)?]));
        let value = b.get(4..4 + len)?;
        out.push((tag, value));
        b = &b[4 + len..];
    }
    Some(out)
}

fn ymd(unix: i64) -> [u8; 3] {
    let (y, m, d, ..) = super::state::civil(unix);
    [(y % 100) as u8, m, d]
}

impl Device {
    pub(super) fn execute_ffd_std(&mut self, cmd: u8, data: &[u8]) -> Answer {
        match cmd {
            0x1F => self.read_table(data),
            0x50 | 0x51 => self.cash_in_out(cmd, data),
            _ => Err(errors::NOT_SUPPORTED),
        }
    }

    pub(super) fn execute_ffd_ff(&mut self, sub: u8, data: &[u8]) -> Answer {
        match sub {
            0x03 => self.fn_expiry(data),
            0x0C | 0x4D => self.tlv(data),
            0x39 => self.exchange_status(data),
            0x4A => self.correction(data),
            0x61 => self.mark_check(data),
            0x67 => self.mark_bind(data),
            0x69 => self.mark_accept(data),
            0x70 => self.mark_status(data),
            _ => Err(errors::NOT_SUPPORTED),
        }
    }

    /// Documents the OFD has not acknowledged: (count, oldest number, its
    /// time). While the OFD is online every document is acknowledged at once.
    pub(super) fn unsent(&mut self) -> (u16, u32, i64) {
        if self.ffd.ofd_online {
            self.ffd.ofd_acked = self.fd_number;
        }
        let first = self.ffd.ofd_acked;
        let count = self.fd_number.saturating_sub(first);
        let at = self
            .documents
            .get(first as usize)
            .map_or(0, |d| d.unix_time);
        (count.min(u32::from(u16::MAX)) as u16, first + 1, at)
    }

    /// The FN's «Флаги предупреждения».
    pub(super) fn fn_warnings(&mut self) -> u8 {
        let left = self.ffd.fn_expires - self.now();
        let mut f = 0;
        if left <= 3 * 86_400 {
            f |= 1;
        }
        if left <= 30 * 86_400 {
            f |= 2;
        }
        if self.documents.len() * 10 >= FN_CAPACITY * 9 {
            f |= 4;
        }
        let (count, _, oldest) = self.unsent();
        if count > 0 && self.now() - oldest > OFD_TIMEOUT_SECS {
            f |= 8;
        }
        f
    }

    /// 1Fh Чтение таблицы: table 6 «Налоговые ставки» only.
    fn read_table(&mut self, data: &[u8]) -> Answer {
        self.sysadmin(data)?;
        let d = data.get(4..8).ok_or(errors::BAD_PARAMS)?;
        let (table, row, field) = (d[0], u16::from_le_bytes([d[1], d[2]]), d[3]);
        if table != 6 {
            return Err(errors::BAD_PARAMS);
        }
        let (rate, name) = row
            .checked_sub(1)
            .and_then(|r| self.ffd.tax_table.get(usize::from(r)))
            .ok_or(errors::BAD_PARAMS)?;
        match field {
            1 => Ok(rate.to_le_bytes().to_vec()),
            2 => {
                let mut v = crate::printer::shtrih::commands::to_win1251(name);
                v.resize(60, 0);
                Ok(v)
            }
            _ => Err(errors::BAD_PARAMS),
        }
    }

    /// 50h Внесение, 51h Выплата.
    fn cash_in_out(&mut self, cmd: u8, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        let sum = read_le(data.get(4..9).ok_or(errors::BAD_PARAMS)?);
        if self.check.is_some() {
            return Err(errors::CHECK_OPEN);
        }
        if self.shift.is_none() {
            return Err(errors::WRONG_MODE);
        }
        self.print_gate()?;
        if cmd == 0x51 && sum > self.ffd.cash {
            return Err(NOT_ENOUGH_CASH);
        }
        if cmd == 0x50 {
            self.ffd.cash = self.ffd.cash.saturating_add(sum);
        } else {
            self.ffd.cash -= sum;
        }
        self.print_header();
        self.print(if cmd == 0x50 {
            "ВНЕСЕНИЕ"
        } else {
            "ВЫПЛАТА"
        });
        self.print(format!("СУММА: ={}", money(sum)));
        self.print(format!("НАЛИЧНОСТЬ В КАССЕ: ={}", money(self.ffd.cash)));
        self.print(TAPE_CUT);
        self.doc_counter += 1;
        let mut a = vec![op];
        le(&mut a, u64::from(self.doc_counter % 10_000), 2);
        Ok(a)
    }

    /// FF03h Запрос срока действия ФН.
    fn fn_expiry(&mut self, data: &[u8]) -> Answer {
        self.sysadmin(data)?;
        Ok(ymd(self.ffd.fn_expires).to_vec())
    }

    /// FF0Ch / FF4Dh: a TLV for the document or the last operation; the
    /// tags the emulator knows are printed.
    fn tlv(&mut self, data: &[u8]) -> Answer {
        self.password(data)?;
        let body = data.get(4..).ok_or(errors::BAD_PARAMS)?;
        if body.is_empty() || body.len() > 250 {
            return Err(errors::BAD_PARAMS);
        }
        let list = tlvs(body).ok_or(errors::BAD_PARAMS)?;
        for (tag, value) in list {
            let line = match tag {
                1008 => format!("ПОКУПАТЕЛЬ: {}", text(value)),
                1021 => format!("КАССИР: {}", text(value)),
                1203 => format!("ИНН КАССИРА: {}", text(value)),
                2108 => format!("  МЕРА: {}", value.first().copied().unwrap_or(0)),
                1174 => {
                    let inner = tlvs(value).ok_or(errors::BAD_PARAMS)?;
                    let mut date = String::new();
                    let mut number = String::new();
                    for (t, v) in inner {
                        match t {
                            1178 => {
                                let (y, m, d, ..) = super::state::civil(read_le(v) as i64);
                                date = format!("{d:02}.{m:02}.{y}");
                            }
                            1179 => number = text(v),
                            _ => {}
                        }
                    }
                    format!("ОСНОВАНИЕ: {number} ОТ {date}")
                }
                other => format!("ТЕГ {other}"),
            };
            self.print(line);
        }
        Ok(Vec::new())
    }

    /// FF39h Получить статус информационного обмена.
    fn exchange_status(&mut self, data: &[u8]) -> Answer {
        self.sysadmin(data)?;
        let (count, first, at) = self.unsent();
        let mut flags = 0;
        if self.ffd.ofd_online {
            flags |= 1;
        }
        if count > 0 {
            flags |= 2;
        }
        let mut a = vec![flags, 0];
        le(&mut a, u64::from(count), 2);
        le(&mut a, u64::from(if count > 0 { first } else { 0 }), 4);
        if count > 0 {
            self.fn_datetime(at, &mut a);
        } else {
            a.extend_from_slice(&[0; 5]);
        }
        Ok(a)
    }

    /// FF4Ah Сформировать чек коррекции V2.
    fn correction(&mut self, data: &[u8]) -> Answer {
        self.sysadmin(data)?;
        let d = data.get(4..67).ok_or(errors::BAD_PARAMS)?;
        let kind = d[0];
        let operation = CheckKind::from_operation(d[1]).ok_or(errors::BAD_PARAMS)?;
        if kind > 1 {
            return Err(errors::BAD_PARAMS);
        }
        let total = read_le(&d[2..7]);
        let payments: Vec<u64> = (0..5).map(|i| read_le(&d[7 + i * 5..12 + i * 5])).collect();
        let taxes: Vec<u64> = (0..6)
            .map(|i| read_le(&d[32 + i * 5..37 + i * 5]))
            .collect();
        let system = d[62];
        if !system.is_power_of_two() || system == 8 || system > 32 {
            return Err(errors::BAD_PARAMS);
        }
        if total == 0 || payments.iter().sum::<u64>() != total {
            return Err(errors::BAD_PARAMS);
        }
        if self.check.is_some() {
            return Err(errors::CHECK_OPEN);
        }
        let shift_number = self.shift.as_ref().ok_or(errors::WRONG_MODE)?.number;
        self.print_gate()?;
        self.fn_has_room()?;
        self.print_header();
        self.print("КАССОВЫЙ ЧЕК КОРРЕКЦИИ");
        self.print(operation.title());
        self.print(if kind == 0 {
            "САМОСТОЯТЕЛЬНО"
        } else {
            "ПО ПРЕДПИСАНИЮ"
        });
        self.print(format!("ИТОГ: ={}", money(total)));
        for (i, &p) in payments.iter().enumerate() {
            if p > 0 {
                let label = [
                    "НАЛИЧНЫМИ",
                    "ЭЛЕКТРОННЫМИ",
                    "ПРЕДОПЛАТОЙ",
                    "ПОСТОПЛАТОЙ",
                    "ВСТРЕЧНЫМ ПРЕДСТАВЛЕНИЕМ",
                ][i];
                self.print(format!("{label}: ={}", money(p)));
            }
        }
        for (g, &t) in taxes.iter().enumerate() {
            if t > 0 {
                let name = self
                    .ffd
                    .tax_table
                    .get(g)
                    .map_or("", |r| r.1.as_str())
                    .to_owned();
                self.print(format!("СУММА {name}: ={}", money(t)));
            }
        }
        let (fd, sign) =
            self.new_fiscal_doc(FiscalDocKind::Correction(operation), total, shift_number);
        self.doc_counter += 1;
        let number = match self.shift.as_mut() {
            Some(s) => {
                s.checks = s.checks.wrapping_add(1);
                s.checks
            }
            None => 0,
        };
        self.print_fiscal_footer(fd, sign);
        self.print(TAPE_CUT);
        let mut a = Vec::new();
        le(&mut a, u64::from(number), 2);
        le(&mut a, u64::from(fd), 4);
        le(&mut a, u64::from(sign), 4);
        Ok(a)
    }

    /// The check result bytes of a code (FF61h answer, FF67h tail).
    fn mark_result(&self, code: &str) -> (bool, Vec<u8>) {
        let positive = !self.ffd.refused.contains(code);
        // Tag 2100: 4 for a GS1 code with a crypto tail (GS separated), 1 short.
        let code_type = if code.contains('\u{1d}') { 4 } else { 1 };
        let local = if positive { 0b11 } else { 0b01 };
        if self.ffd.marking_offline {
            // «0xFF, если сервер не ответил в течение таймаута»: no 2106,
            // only the FN's own check of the crypto tail.
            return (positive, vec![local, 0, code_type, 1, 0xFF]);
        }
        // Tag 2106: bits 0-3 checked, valid, status checked, status right.
        let result = if positive { 0b1111 } else { 0b0101 };
        (positive, vec![local, 0, code_type, 2, 0, result])
    }

    /// FF61h Проверка маркированного товара.
    fn mark_check(&mut self, data: &[u8]) -> Answer {
        self.password(data)?;
        let d = data.get(4..8).ok_or(errors::BAD_PARAMS)?;
        let (status, x, y) = (d[0], usize::from(d[2]), usize::from(d[3]));
        if !(1..=4).contains(&status) || x == 0 {
            return Err(errors::BAD_PARAMS);
        }
        let code = data.get(8..8 + x).ok_or(errors::BAD_PARAMS)?;
        let extra = data.get(8 + x..8 + x + y).ok_or(errors::BAD_PARAMS)?;
        if (status == 2 || status == 4) == extra.is_empty() || tlvs(extra).is_none() {
            return Err(errors::BAD_PARAMS);
        }
        let code = std::str::from_utf8(code).map_err(|_| errors::BAD_PARAMS)?;
        if self.ffd.accepted.len() >= MAX_MARKS {
            return Err(errors::BAD_PARAMS);
        }
        let (positive, answer) = self.mark_result(code);
        self.ffd.checking = Some((code.to_owned(), positive));
        Ok(answer)
    }

    /// FF69h Принять или отвергнуть введенный код маркировки.
    fn mark_accept(&mut self, data: &[u8]) -> Answer {
        self.password(data)?;
        let accept = *data.get(4).ok_or(errors::BAD_PARAMS)?;
        if accept > 1 {
            return Err(errors::BAD_PARAMS);
        }
        let (code, positive) = self.ffd.checking.take().ok_or(errors::WRONG_MODE)?;
        let (_, answer) = self.mark_result(&code);
        // Offline the register keeps the local result as tag 2106.
        let result = answer.get(5).copied().unwrap_or(answer[0]);
        if accept == 1 {
            self.ffd.accepted.push_back(code);
        } else {
            let shown: String = code.chars().filter(|c| !c.is_control()).take(31).collect();
            self.print(format!(
                "КМ ОТКЛОНЕН{}: {shown}",
                if positive {
                    ""
                } else {
                    " (ПРОВЕРКА -)"
                }
            ));
        }
        Ok(vec![result])
    }

    /// FF67h Привязка маркированного товара к позиции.
    fn mark_bind(&mut self, data: &[u8]) -> Answer {
        self.password(data)?;
        let n = usize::from(*data.get(4).ok_or(errors::BAD_PARAMS)?);
        let code = data.get(5..5 + n).ok_or(errors::BAD_PARAMS)?;
        let code = std::str::from_utf8(code).map_err(|_| errors::BAD_PARAMS)?;
        let check = self.check.as_ref().ok_or(errors::CHECK_CLOSED)?;
        if check.items.is_empty() {
            return Err(errors::BAD_PARAMS);
        }
        let mut a = code.as_bytes().get(2..4).unwrap_or(&[0, 0]).to_vec();
        a.push(if code.contains('\u{1d}') { 1 } else { 0 });
        match self.ffd.accepted.iter().position(|c| c == code) {
            Some(i) => {
                self.ffd.accepted.remove(i);
            }
            None => {
                // Not checked first: the register checks it itself and adds
                // the result; a refused code is not bound.
                let (positive, result) = self.mark_result(code);
                if !positive {
                    return Err(errors::BAD_PARAMS);
                }
                a.extend(result);
            }
        }
        self.ffd.bound = self.ffd.bound.saturating_add(1);
        self.print("  [М+] КМ ПРОВЕРЕН");
        Ok(a)
    }

    /// FF70h Запрос статуса по работе с кодами маркировки.
    fn mark_status(&mut self, data: &[u8]) -> Answer {
        self.password(data)?;
        let state = if self.ffd.checking.is_some() { 2 } else { 1 };
        let mut a = vec![state, 0, 0x0F, self.ffd.accepted.len() as u8];
        a.push(self.ffd.bound.min(255) as u8);
        a.push(0); // notice storage fill, %
        le(&mut a, 0, 2); // notices queued
        Ok(a)
    }
}

impl super::ShtrihSim {
    /// Programs table 6 row `row` (1..=8): rate in hundredths of a percent.
    pub fn set_tax_rate(&self, row: u8, hundredths: u16, name: &str) {
        let mut d = self.dev();
        if let Some(slot) = usize::from(row)
            .checked_sub(1)
            .and_then(|i| d.ffd.tax_table.get_mut(i))
        {
            *slot = (hundredths, name.to_owned());
        }
    }

    /// Whether the marking server answers FF61h checks (offline: the FN's
    /// local check only, online answer code 0xFF).
    pub fn set_marking_server_online(&self, online: bool) {
        self.dev().ffd.marking_offline = !online;
    }

    /// Cash in the drawer, kopecks.
    pub fn cash(&self) -> u64 {
        self.dev().ffd.cash
    }

    /// Whether the OFD acknowledges documents (offline: they queue up).
    pub fn set_ofd_online(&self, online: bool) {
        let mut d = self.dev();
        if online {
            d.unsent();
        }
        d.ffd.ofd_online = online;
    }

    /// Sets the FN's end of validity `days` from the device clock.
    pub fn set_fn_expires_in_days(&self, days: i64) {
        let mut d = self.dev();
        d.ffd.fn_expires = d.now() + days * 86_400;
    }

    /// Makes the register's check of `code` negative (FF61h, FF67h).
    pub fn refuse_marking_code(&self, code: &str) {
        let mut d = self.dev();
        if d.ffd.refused.len() < MAX_REFUSED_CODES {
            d.ffd.refused.insert(code.to_owned());
        }
    }

    /// Documents the OFD has not acknowledged, and the oldest one's number.
    pub fn unsent_documents(&self) -> (u16, u32) {
        let (n, first, _) = self.dev().unsent();
        (n, first)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ShtrihSim;

    fn ok(a: &[u8], head: usize) -> &[u8] {
        assert_eq!(a[head], 0, "error {:#04x} in {a:02x?}", a[head]);
        &a[head + 1..]
    }

    fn open_shift(sim: &ShtrihSim) {
        ok(&sim.execute(&[0xE0, 30, 0, 0, 0]), 1);
    }

    #[test]
    fn tax_table_2026() {
        let sim = ShtrihSim::new();
        let rate = |row: u8| {
            let a = sim.execute(&[0x1F, 30, 0, 0, 0, 6, row, 0, 1]);
            u16::from_le_bytes([a[2], a[3]])
        };
        assert_eq!(
            (rate(1), rate(2), rate(3), rate(5), rate(7), rate(8)),
            (2200, 1000, 0, 2200, 500, 700)
        );
        let a = sim.execute(&[0x1F, 30, 0, 0, 0, 6, 1, 0, 2]);
        assert_eq!(&ok(&a, 1)[..7], &[0xCD, 0xC4, 0xD1, 0x20, b'2', b'2', b'%']);
        assert_eq!(sim.execute(&[0x1F, 30, 0, 0, 0, 6, 9, 0, 1])[1], 0x33);
        assert_eq!(sim.execute(&[0x1F, 1, 0, 0, 0, 6, 1, 0, 1])[1], 0x4F);
        sim.set_tax_rate(1, 2000, "НДС 20%");
        assert_eq!(rate(1), 2000);
    }

    #[test]
    fn cash_in_out_and_drawer() {
        let sim = ShtrihSim::new();
        assert_eq!(
            sim.execute(&[0x50, 1, 0, 0, 0, 0x10, 0x27, 0, 0, 0])[1],
            0x73
        );
        open_shift(&sim);
        let a = sim.execute(&[0x50, 1, 0, 0, 0, 0x10, 0x27, 0, 0, 0]);
        assert_eq!(ok(&a, 1)[0], 1);
        assert_eq!(
            sim.execute(&[0x51, 1, 0, 0, 0, 0x11, 0x27, 0, 0, 0])[1],
            0x46
        );
        ok(&sim.execute(&[0x51, 1, 0, 0, 0, 0x10, 0x27, 0, 0, 0]), 1);
        assert_eq!(sim.cash(), 0);
        let tape = sim.tape().join("\n");
        assert!(
            tape.contains("ВНЕСЕНИЕ") && tape.contains("ВЫПЛАТА"),
            "{tape}"
        );
    }

    #[test]
    fn unsent_documents_and_warnings() {
        let sim = ShtrihSim::new();
        sim.set_ofd_online(false);
        open_shift(&sim);
        let a = sim.execute(&[0xFF, 0x39, 30, 0, 0, 0]);
        let d = ok(&a, 2);
        assert_eq!((d[0] & 2, u16::from_le_bytes([d[2], d[3]])), (2, 1));
        assert_eq!(u32::from_le_bytes([d[4], d[5], d[6], d[7]]), 1);
        sim.advance_clock(std::time::Duration::from_secs(25 * 3600));
        let st = sim.execute(&[0xFF, 0x01, 30, 0, 0, 0]);
        assert_eq!(ok(&st, 2)[4] & 8, 8, "OFD timeout flag");
        sim.set_fn_expires_in_days(10);
        let st = sim.execute(&[0xFF, 0x01, 30, 0, 0, 0]);
        assert_eq!(ok(&st, 2)[4] & 3, 2, "FN expiring");
        sim.set_ofd_online(true);
        let a = sim.execute(&[0xFF, 0x39, 30, 0, 0, 0]);
        assert_eq!(ok(&a, 2)[2], 0);
    }

    #[test]
    fn marking_check_accept_bind() {
        let sim = ShtrihSim::new();
        sim.refuse_marking_code("0104600000000001215BAD\u{1d}93xyz");
        open_shift(&sim);
        let check = |code: &str| {
            let mut cmd = vec![0xFF, 0x61, 1, 0, 0, 0, 1, 0, code.len() as u8, 0];
            cmd.extend_from_slice(code.as_bytes());
            sim.execute(&cmd)
        };
        let good = "0104600000000002215GOOD\u{1d}93abc";
        let a = check(good);
        assert_eq!(ok(&a, 2)[5], 0x0F);
        let a = sim.execute(&[0xFF, 0x69, 1, 0, 0, 0, 1]);
        assert_eq!(ok(&a, 2), [0x0F]);
        let a = check("0104600000000001215BAD\u{1d}93xyz");
        assert_eq!(ok(&a, 2)[5], 0x05);
        ok(&sim.execute(&[0xFF, 0x69, 1, 0, 0, 0, 0]), 2);
        // FF69h without a check in progress.
        assert_eq!(sim.execute(&[0xFF, 0x69, 1, 0, 0, 0, 1])[2], 0x73);
        // Bind needs an item.
        let mut bind = vec![0xFF, 0x67, 1, 0, 0, 0, good.len() as u8];
        bind.extend_from_slice(good.as_bytes());
        assert_eq!(sim.execute(&bind)[2], 0x55);
        ok(&sim.execute(&[0x8D, 1, 0, 0, 0, 0]), 1);
        let mut op = vec![0xFF, 0x46, 1, 0, 0, 0, 1];
        op.extend([0x40, 0x42, 0x0F, 0, 0, 0, 0x10, 0x27, 0, 0, 0]);
        op.extend([0xFF; 10]);
        op.extend([2, 1, 4, 1, b'A']);
        ok(&sim.execute(&op), 2);
        let a = sim.execute(&bind);
        assert_eq!(ok(&a, 2).len(), 3, "checked before: no result appended");
        let s = sim.execute(&[0xFF, 0x70, 1, 0, 0, 0]);
        assert_eq!(ok(&s, 2)[4], 1);
        assert!(sim.tape().iter().any(|l| l.contains("КМ ОТКЛОНЕН")));
    }

    #[test]
    fn marking_server_offline_leaves_the_local_check() {
        let sim = ShtrihSim::new();
        sim.set_marking_server_online(false);
        sim.refuse_marking_code("BAD");
        for (code, local) in [("GOOD", 0b11), ("BAD", 0b01)] {
            let mut cmd = vec![0xFF, 0x61, 1, 0, 0, 0, 1, 0, code.len() as u8, 0];
            cmd.extend_from_slice(code.as_bytes());
            let a = sim.execute(&cmd);
            assert_eq!(ok(&a, 2), [local, 0, 1, 1, 0xFF]);
            let a = sim.execute(&[0xFF, 0x69, 1, 0, 0, 0, 0]);
            assert_eq!(ok(&a, 2), [local]);
        }
    }

    #[test]
    fn correction_receipt() {
        let sim = ShtrihSim::new();
        open_shift(&sim);
        let mut cmd = vec![0xFF, 0x4A, 30, 0, 0, 0, 0, 1];
        cmd.extend([0x10, 0x27, 0, 0, 0]);
        cmd.extend([0x10, 0x27, 0, 0, 0]);
        cmd.extend([0; 20]);
        cmd.extend([0; 30]);
        cmd.push(1);
        let a = sim.execute(&cmd);
        let d = ok(&a, 2);
        assert_eq!(u32::from_le_bytes([d[2], d[3], d[4], d[5]]), 2);
        let mut bad = cmd.clone();
        bad[8] = 0x11; // total differs from payments
        assert_eq!(sim.execute(&bad)[2], 0x33);
        let mut envd = cmd;
        envd[68] = 8;
        assert_eq!(sim.execute(&envd)[2], 0x33);
        assert!(sim.tape().iter().any(|l| l == "КАССОВЫЙ ЧЕК КОРРЕКЦИИ"));
    }

    #[test]
    fn tlv_printed_and_checked() {
        let sim = ShtrihSim::new();
        let mut cmd = vec![0xFF, 0x0C, 30, 0, 0, 0, 0xF0, 0x03, 4, 0];
        cmd.extend(b"a@b.");
        ok(&sim.execute(&cmd), 2);
        assert_eq!(sim.tape().last().unwrap(), "ПОКУПАТЕЛЬ: a@b.");
        let bad = [0xFF, 0x0C, 30, 0, 0, 0, 0xF0, 0x03, 40, 0, b'a'];
        assert_eq!(sim.execute(&bad)[2], 0x33);
    }
}
