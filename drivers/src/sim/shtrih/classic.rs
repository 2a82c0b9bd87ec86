//! The classic receipt commands most drivers still use (pyshtrih, shtrihmfr,
//! the JavaPOS driver): sale 80h, return of sale 82h, close 85h, discount
//! 86h, repeat document 8Ch, plus beep 13h and device type FCh.
//!
//! Item and close are translated into the V2 operations (`FF46h`, `FF45h`)
//! and run through the same code, so the fiscal state (check, taxes, shift
//! totals, FD numbers, tape) is kept exactly as for the V2 commands; they
//! work on a [legacy](super::ShtrihSim::set_legacy) device too.

use super::state::{Answer, Device, le, money, read_le, tax_rate, text};
use super::{NOT_GIVEN, TAPE_CUT, errors};

/// Model byte of the ШТРИХ-М-01Ф in the FCh answer (table in v1.17, FCh).
const MODEL_M01F: u8 = 250;
/// The device name of the FCh answer, WIN1251.
const DEVICE_NAME: &str = "ШТРИХ-М-01Ф";
/// Longest text field the classic commands take (Y in "20+Y").
const MAX_TEXT: usize = 200;

/// The first non-zero of the four "Налог 1…4" bytes (groups 1…4) as the
/// `FF46h` tax bit mask (bit 0 = group 1).
fn tax_mask(taxes: &[u8]) -> Result<u8, u8> {
    match taxes.iter().copied().find(|&t| t != 0) {
        None => Ok(0),
        Some(g @ 1..=4) => Ok(1 << (g - 1)),
        Some(_) => Err(errors::BAD_PARAMS),
    }
}

impl Device {
    /// 13h Гудок.
    pub(super) fn beep(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        Ok(vec![op])
    }

    /// FCh Получить тип устройства: type 0 (ККТ), subtype 0, protocol 1.14,
    /// model 250, Russian, "ШТРИХ-М-01Ф".
    pub(super) fn device_type(&mut self) -> Answer {
        let mut a = vec![0, 0, 1, 14, MODEL_M01F, 0];
        let (name, _, _) = encoding_rs::WINDOWS_1251.encode(DEVICE_NAME);
        a.extend_from_slice(&name);
        Ok(a)
    }

    /// 80h Продажа, 82h Возврат продажи: `PW(4) QTY(5, thousandths)
    /// PRICE(5) DEPT(1) TAX1..4(4) TEXT`. Opens a check of the kind if none
    /// is open.
    pub(super) fn classic_item(&mut self, cmd: u8, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        if data.len() < 19 {
            return Err(errors::BAD_PARAMS);
        }
        let qty_thousandths = read_le(&data[4..9]);
        let price = read_le(&data[9..14]);
        let dept = data[14];
        let mask = tax_mask(&data[15..19])?;
        let name = &data[19..data.len().min(19 + MAX_TEXT)];
        if qty_thousandths == 0 || dept > 16 {
            return Err(errors::BAD_PARAMS);
        }
        let mut v2 = data[..4].to_vec();
        v2.push(if cmd == 0x82 { 2 } else { 1 });
        le(&mut v2, qty_thousandths * 1_000, 6);
        le(&mut v2, price, 5);
        le(&mut v2, NOT_GIVEN, 5); // sum: qty × price
        le(&mut v2, NOT_GIVEN, 5); // tax: by the rate
        v2.extend_from_slice(&[mask, dept, 4, 1]); // full payment, goods
        v2.extend_from_slice(name);
        self.operation_v2(&v2)?;
        Ok(vec![op])
    }

    /// 85h Закрытие чека: `PW(4) CASH(5) PAY2(5) PAY3(5) PAY4(5)
    /// DISCOUNT%(2, signed, hundredths; negative = allowance) TAX1..4(4)
    /// TEXT`; answers the change.
    pub(super) fn classic_close(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        if data.len() < 30 {
            return Err(errors::BAD_PARAMS);
        }
        let percent = i16::from_le_bytes([data[24], data[25]]);
        if !(-9999..=9999).contains(&percent) {
            return Err(errors::BAD_PARAMS);
        }
        tax_mask(&data[26..30])?;
        if self.check.is_none() {
            return Err(errors::CHECK_CLOSED);
        }
        let before = self.check.clone();
        if percent != 0 {
            let total = self.check.as_ref().map_or(0, |c| c.total);
            let amount = (total * u64::from(percent.unsigned_abs()) + 5_000) / 10_000;
            if percent > 0 {
                self.apply_discount(amount, None, "СКИДКА")?;
            } else {
                self.apply_discount_signed(amount)?;
            }
        }
        let mut v2 = data[..4].to_vec();
        v2.extend_from_slice(&data[4..24]); // cash, types 2…4
        v2.extend_from_slice(&[0; 12 * 5]); // types 5…16
        v2.push(0); // rounding
        v2.extend_from_slice(&[0; 30]); // taxes: by the device
        v2.push(1); // taxation system: ОСН (the register's default)
        v2.extend_from_slice(&data[30..data.len().min(30 + MAX_TEXT)]);
        let answer = self.close_check_v2(&v2).inspect_err(|_| {
            self.check = before; // a refused close leaves the check as it was
        })?;
        let mut a = vec![op];
        a.extend_from_slice(&answer[..5]); // change
        Ok(a)
    }

    /// 86h Скидка: `PW(4) SUM(5) TAX1..4(4) TEXT` on the open check.
    pub(super) fn classic_discount(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        if data.len() < 13 {
            return Err(errors::BAD_PARAMS);
        }
        let sum = read_le(&data[4..9]);
        let mask = tax_mask(&data[9..13])?;
        let note = text(&data[13..data.len().min(13 + MAX_TEXT)]);
        if self.check.is_none() {
            return Err(errors::CHECK_CLOSED);
        }
        self.print_gate()?;
        let group = (mask != 0).then(|| mask.trailing_zeros() as usize);
        self.apply_discount(sum, group, "СКИДКА")?;
        if !note.is_empty() {
            self.print(note);
        }
        Ok(vec![op])
    }

    /// Takes `amount` off the open check (and the tax of `group` off that
    /// group's tax sum); more than the total is refused.
    fn apply_discount(&mut self, amount: u64, group: Option<usize>, label: &str) -> Result<(), u8> {
        let check = self.check.as_mut().ok_or(errors::CHECK_CLOSED)?;
        if amount == 0 || amount > check.total {
            return Err(errors::BAD_PARAMS);
        }
        check.total -= amount;
        if let Some(g) = group {
            let (num, den, _) = tax_rate(g);
            let tax = (amount * num + den / 2) / den;
            check.taxes[g] = check.taxes[g].saturating_sub(tax);
        }
        self.print(format!("{label}: ={}", money(amount)));
        Ok(())
    }

    /// An allowance (negative percent of `85h`) adds `amount` to the check.
    fn apply_discount_signed(&mut self, amount: u64) -> Result<(), u8> {
        let check = self.check.as_mut().ok_or(errors::CHECK_CLOSED)?;
        if check.total + amount > super::MAX_MONEY {
            return Err(errors::CHECK_TOTAL_OVERFLOW);
        }
        check.total += amount;
        self.print(format!("НАДБАВКА: ={}", money(amount)));
        Ok(())
    }

    /// 8Ch Повтор документа: prints a copy of the last closed receipt.
    pub(super) fn repeat_document(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        if self.check.is_some() {
            return Err(errors::CHECK_OPEN);
        }
        self.print_gate()?;
        let mut pieces = self.tape.iter().rev().skip_while(|l| *l == TAPE_CUT);
        let mut last = Vec::new();
        let mut found = false;
        // Walk back over cut-off pieces until one is a receipt.
        loop {
            last.clear();
            for line in pieces.by_ref() {
                if line == TAPE_CUT {
                    break;
                }
                last.push(line.clone());
            }
            if last.is_empty() {
                break;
            }
            if last.iter().any(|l| l == "КАССОВЫЙ ЧЕК") {
                found = true;
                break;
            }
        }
        if !found {
            return Err(errors::WRONG_MODE); // no receipt to repeat
        }
        self.print("КОПИЯ");
        for line in last.into_iter().rev() {
            self.print(line);
        }
        self.print(TAPE_CUT);
        Ok(vec![op])
    }
}
