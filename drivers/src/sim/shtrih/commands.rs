//! Command dispatch, status queries (10h, 11h) and the printing commands.

use super::state::{Answer, Device, civil, le, text};
use super::{FN_FREE_RECORDS, INN, SERIAL, TAPE_CUT, errors};

impl Device {
    pub(super) fn execute_std(&mut self, cmd: u8, data: &[u8]) -> Answer {
        match cmd {
            0x10 => self.short_status(data),
            0x11 => self.full_status(data),
            0x12 | 0x17 | 0x2F => self.print_string(cmd, data),
            0x13 => self.beep(data),
            0x25 => self.cut(data),
            0x40 => self.x_report(data),
            0x41 => self.z_report(data),
            0x80 | 0x82 => self.classic_item(cmd, data),
            0x85 => self.classic_close(data),
            0x86 => self.classic_discount(data),
            0x8C => self.repeat_document(data),
            0x88 => self.cancel_check(data),
            0x89 => self.subtotal(data),
            0x8D => self.open_check(data),
            0xB0 => self.continue_printing(data),
            0xE0 => self.open_shift(data),
            0xFC => self.device_type(),
            _ => self.execute_ffd_std(cmd, data),
        }
    }

    pub(super) fn execute_ff(&mut self, sub: u8, data: &[u8]) -> Answer {
        if self.legacy && matches!(sub, 0x45 | 0x46) {
            return Err(errors::NOT_SUPPORTED); // an older firmware
        }
        match sub {
            0x01 => self.fn_status(data),
            0x0A => self.fn_find_document(data),
            0x40 => self.fn_shift_params(data),
            0x45 => self.close_check_v2(data),
            0x46 => self.operation_v2(data),
            _ => self.execute_ffd_ff(sub, data),
        }
    }

    /// 10h Короткий запрос состояния ККТ.
    pub(super) fn short_status(&mut self, data: &[u8]) -> Answer {
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
        a.push(0); // fiscal memory (FN) error code
        a.push(0); // EKLZ error code (none on an FN register)
        a.push((ops >> 8) as u8);
        a.extend_from_slice(&[0, 0, 0]); // reserved
        Ok(a)
    }

    /// 11h Запрос состояния ККТ.
    pub(super) fn full_status(&mut self, data: &[u8]) -> Answer {
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
        a.extend_from_slice(b"C1"); // FN (fiscal memory) software version
        le(&mut a, 1717, 2); // FN software build
        a.extend_from_slice(&[15, 1, 26]); // FN software date
        a.extend_from_slice(&[d, mo, (y % 100) as u8]);
        a.extend_from_slice(&[h, mi, s]);
        a.push(0b0000_0011); // FN flags: present, fiscalised
        le(&mut a, SERIAL & 0xFFFF_FFFF, 4);
        le(&mut a, u64::from(self.last_closed_shift), 2);
        le(&mut a, u64::from(FN_FREE_RECORDS), 2);
        a.push(1); // registrations
        a.push(19); // registrations left
        le(&mut a, INN, 6);
        debug_assert_eq!(a.len(), 46, "48 bytes with CMD ERR");
        Ok(a)
    }

    /// 12h bold string, 17h standard string, 2Fh string with a font.
    pub(super) fn print_string(&mut self, cmd: u8, data: &[u8]) -> Answer {
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
    pub(super) fn cut(&mut self, data: &[u8]) -> Answer {
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
    pub(super) fn continue_printing(&mut self, data: &[u8]) -> Answer {
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
}
