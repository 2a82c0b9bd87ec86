//! The check: open (8Dh), operation V2 (FF46h), subtotal (89h), close V2
//! (FF45h), cancel (88h).

use super::state::{Answer, Check, Device, le, money, read_le, tax_rate, text};
use super::{
    CheckKind, FiscalDocKind, MAX_ITEMS_PER_CHECK, MAX_MONEY, NOT_GIVEN, TAPE_CUT, errors,
};

impl Device {
    pub(super) fn start_check(&mut self, kind: CheckKind) {
        self.check = Some(Check {
            kind,
            items: Vec::new(),
            total: 0,
            taxes: [0; 8],
        });
        self.print_header();
        self.print("КАССОВЫЙ ЧЕК");
        self.print(kind.title());
    }

    /// 8Dh Открыть чек.
    pub(super) fn open_check(&mut self, data: &[u8]) -> Answer {
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
    pub(super) fn subtotal(&mut self, data: &[u8]) -> Answer {
        let op = self.password(data)?;
        let check = self.check.as_ref().ok_or(errors::CHECK_CLOSED)?;
        let mut a = vec![op];
        le(&mut a, check.total, 5);
        Ok(a)
    }

    /// FF46h Операция V2.
    pub(super) fn operation_v2(&mut self, data: &[u8]) -> Answer {
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
            m if m.is_power_of_two() => Some(m.trailing_zeros() as usize),
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
            // Tags 1214 and 1212 as a register prints them, shown only
            // when they are not the everyday "full payment" for "goods".
            let (method, subject) = (data[28], data[29]);
            if (method, subject) != (4, 1) {
                self.print(format!(
                    "  {} / {}",
                    payment_method_word(method),
                    payment_subject_word(subject)
                ));
            }
        }
        Ok(Vec::new())
    }

    /// FF45h Закрытие чека расширенное вариант №2.
    pub(super) fn close_check_v2(&mut self, data: &[u8]) -> Answer {
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
    pub(super) fn cancel_check(&mut self, data: &[u8]) -> Answer {
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
}

/// Tag 1214 «признак способа расчёта» as printed.
fn payment_method_word(m: u8) -> String {
    match m {
        1 => "ПРЕДОПЛАТА 100%".into(),
        2 => "ПРЕДОПЛАТА".into(),
        3 => "АВАНС".into(),
        4 => "ПОЛНЫЙ РАСЧЕТ".into(),
        5 => "ЧАСТИЧНЫЙ РАСЧЕТ И КРЕДИТ".into(),
        6 => "ПЕРЕДАЧА В КРЕДИТ".into(),
        7 => "ОПЛАТА КРЕДИТА".into(),
        other => format!("СПОСОБ {other}"),
    }
}

/// Tag 1212 «признак предмета расчёта» as printed (the common ones).
fn payment_subject_word(s: u8) -> String {
    match s {
        1 => "ТОВАР".into(),
        3 => "РАБОТА".into(),
        4 => "УСЛУГА".into(),
        10 => "ПЛАТЕЖ".into(),
        other => format!("ПРЕДМЕТ {other}"),
    }
}
