//! FN queries: status (FF01h), find document (FF0Ah), shift parameters (FF40h).

use super::state::{Answer, Device, civil, le, read_le};
use super::{FN_NUMBER, FiscalDocKind, errors};

impl Device {
    pub(super) fn fn_datetime(&self, unix: i64, out: &mut Vec<u8>) {
        let (y, mo, d, h, mi, _) = civil(unix);
        out.extend_from_slice(&[(y % 100) as u8, mo, d, h, mi]);
    }

    /// FF01h Запрос статуса ФН.
    pub(super) fn fn_status(&mut self, data: &[u8]) -> Answer {
        self.sysadmin(data)?;
        let mut a = vec![0b0000_0011]; // set up, fiscal mode open
        a.push(if self.check.is_some() { 0x04 } else { 0x00 });
        a.push(u8::from(
            self.check.as_ref().is_some_and(|c| !c.items.is_empty()),
        ));
        a.push(u8::from(self.shift.is_some()));
        let warnings = self.fn_warnings();
        a.push(warnings);
        self.fn_datetime(self.now(), &mut a);
        a.extend_from_slice(FN_NUMBER);
        le(&mut a, u64::from(self.fd_number), 4);
        Ok(a)
    }

    /// FF0Ah Найти фискальный документ по номеру.
    pub(super) fn fn_find_document(&mut self, data: &[u8]) -> Answer {
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
            FiscalDocKind::Receipt(kind) | FiscalDocKind::Correction(kind) => {
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
    pub(super) fn fn_shift_params(&mut self, data: &[u8]) -> Answer {
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
