//! The shift: open (E0h), X report (40h), Z report (41h).

use super::state::{Answer, Device, Shift, money};
use super::{CheckKind, FN_CAPACITY, FiscalDocKind, TAPE_CUT, errors};

impl Device {
    pub(super) fn fn_has_room(&self) -> Result<(), u8> {
        if self.documents.len() >= FN_CAPACITY {
            Err(errors::FN_EXHAUSTED)
        } else {
            Ok(())
        }
    }

    /// E0h Открыть смену.
    pub(super) fn open_shift(&mut self, data: &[u8]) -> Answer {
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

    pub(super) fn print_shift_totals(&mut self) {
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
    pub(super) fn x_report(&mut self, data: &[u8]) -> Answer {
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
    pub(super) fn z_report(&mut self, data: &[u8]) -> Answer {
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

    pub(super) fn can_register(&self) -> Result<(), u8> {
        if self.shift.is_none() {
            Err(errors::WRONG_MODE)
        } else if self.shift_expired() {
            Err(errors::SHIFT_OVER_24H)
        } else {
            Ok(())
        }
    }
}
