//! Typed request builders and answer parsers for the commands posbridge
//! uses. Integers are little-endian; money is in kopecks, in 5-byte fields
//! where the spec says 5 bytes; quantities are 6 bytes with six decimals
//! (Операция V2). Text is Windows-1251 («кодовая страница WIN1251»).
//!
//! Every command here begins with a 4-byte password (operator, administrator
//! or system administrator, as the spec says per command); the client puts
//! its configured password there, so builders only carry the rest.

use bytes::Bytes;

use super::errors::{ProtocolError, ShtrihError};
use super::frame::{put_command, split_command};

/// Command codes (one byte, or `FF xx` written as 0xFFxx).
pub mod code {
    /// «Короткий запрос состояния ККТ».
    pub const SHORT_STATUS: u16 = 0x10;
    /// «Запрос состояния ККТ».
    pub const FULL_STATUS: u16 = 0x11;
    /// «Печать жирной строки (шрифт 2)».
    pub const PRINT_BOLD_STRING: u16 = 0x12;
    /// «Печать стандартной строки (шрифт 1)».
    pub const PRINT_STRING: u16 = 0x17;
    /// «Отрезка чека».
    pub const CUT: u16 = 0x25;
    /// «Печать строки данным шрифтом».
    pub const PRINT_STRING_WITH_FONT: u16 = 0x2F;
    /// «Суточный отчет без гашения» (X report).
    pub const X_REPORT: u16 = 0x40;
    /// «Суточный отчет с гашением» (Z report).
    pub const Z_REPORT: u16 = 0x41;
    /// «Аннулирование чека».
    pub const CANCEL_CHECK: u16 = 0x88;
    /// «Открыть чек».
    pub const OPEN_CHECK: u16 = 0x8D;
    /// «Продолжение печати».
    pub const CONTINUE_PRINT: u16 = 0xB0;
    /// «Открыть смену».
    pub const OPEN_SHIFT: u16 = 0xE0;
    /// «Запрос статуса ФН».
    pub const FN_STATUS: u16 = 0xFF01;
    /// «Найти фискальный документ по номеру».
    pub const FN_FIND_DOCUMENT: u16 = 0xFF0A;
    /// «Запрос квитанции о получении данных в ОФД по номеру документа».
    pub const FN_OFD_RECEIPT: u16 = 0xFF3C;
    /// «Запрос параметров текущей смены».
    pub const FN_SHIFT_PARAMS: u16 = 0xFF40;
    /// «Закрытие чека расширенное вариант №2».
    pub const CLOSE_CHECK_V2: u16 = 0xFF45;
    /// «Операция V2».
    pub const OPERATION_V2: u16 = 0xFF46;
}

/// Which answer timeout applies («ВРЕМЯ (ТАЙМАУТ) ПОДГОТОВКИ ОТВЕТА ККТ …
/// ЗАВИСИТ ОТ КОМАНД … И МОЖЕТ ДОСТИГАТЬ НЕСКОЛЬКИХ МИНУТ»).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutClass {
    /// Status queries and FN reads.
    Query,
    /// Printing a line, cutting.
    Print,
    /// Receipt operations that touch the FN.
    Fiscal,
    /// Shift reports (X/Z), opening a shift.
    Report,
}

/// A request: command code and the data after the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub code: u16,
    /// Bytes after the 4-byte password.
    pub data: Vec<u8>,
    pub timeout: TimeoutClass,
}

/// Answer to a command: code, «Код ошибки», and the bytes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub command: u16,
    /// 0 when the device reports no error.
    pub error: u8,
    /// Everything after the error code.
    pub data: Bytes,
}

impl Response {
    /// Splits an answer body `CMD ERR DATA` (`FF xx ERR DATA`).
    pub fn from_body(body: &[u8]) -> Result<Self, ProtocolError> {
        let (command, rest) = split_command(body).ok_or(ProtocolError::EmptyFrame)?;
        let (&error, data) = rest.split_first().ok_or(ProtocolError::ShortAnswer {
            command,
            needed: 1,
            got: 0,
        })?;
        Ok(Self {
            command,
            error,
            data: Bytes::copy_from_slice(data),
        })
    }

    /// «Порядковый номер оператора» for answers that carry it first.
    pub fn operator(&self) -> Option<u8> {
        self.data.first().copied()
    }

    pub(super) fn need(&self, needed: usize) -> Result<&[u8], ProtocolError> {
        if self.data.len() < needed {
            Err(ProtocolError::ShortAnswer {
                command: self.command,
                needed,
                got: self.data.len(),
            })
        } else {
            Ok(&self.data)
        }
    }

    pub(super) fn expect(&self, command: u16) -> Result<(), ProtocolError> {
        if self.command == command {
            Ok(())
        } else {
            Err(ProtocolError::UnexpectedCommand {
                expected: command,
                got: self.command,
            })
        }
    }
}

pub(super) fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

pub(super) fn put_le(
    dst: &mut Vec<u8>,
    value: u64,
    width: usize,
    field: &'static str,
) -> Result<(), ShtrihError> {
    if width < 8 && value >> (8 * width) != 0 {
        return Err(ShtrihError::InvalidRequest {
            field,
            reason: "value does not fit its field",
        });
    }
    dst.extend_from_slice(&value.to_le_bytes()[..width]);
    Ok(())
}

/// Encodes text as Windows-1251; characters without a 1251 code become '?'.
pub fn to_win1251(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for ch in text.chars() {
        let (bytes, _, had_errors) = encoding_rs::WINDOWS_1251.encode(ch.encode_utf8(&mut buf));
        if had_errors || bytes.len() != 1 {
            out.push(b'?');
        } else {
            out.push(bytes[0]);
        }
    }
    out
}

/// Decodes Windows-1251 up to the first NUL.
pub fn from_win1251(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    encoding_rs::WINDOWS_1251
        .decode(&bytes[..end])
        .0
        .into_owned()
}

/// A fixed-length text field: truncated, then padded with NUL («символ '\0'
/// (код 0) в строке принудительно завершает строку»).
pub(super) fn fixed_text(dst: &mut Vec<u8>, text: &str, len: usize) {
    let mut t = to_win1251(text);
    t.resize(len, 0);
    dst.extend_from_slice(&t);
}

/// A variable-length text field («0-128 байт»): truncated only.
fn var_text(dst: &mut Vec<u8>, text: &str, max: usize) {
    let mut t = to_win1251(text);
    t.truncate(max);
    dst.extend_from_slice(&t);
}

/// «Флаги» of the print-string commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintFlags(pub u8);

impl PrintFlags {
    /// Бит 0 – контрольная лента.
    pub const CONTROL_TAPE: u8 = 1 << 0;
    /// Бит 1 – чековая лента.
    pub const RECEIPT: u8 = 1 << 1;
    /// Бит 2 – подкладной документ.
    pub const SLIP_DOCUMENT: u8 = 1 << 2;
    /// Бит 3 – слип-чек.
    pub const SLIP_CHECK: u8 = 1 << 3;
    /// Бит 6 – перенос строк.
    pub const WRAP: u8 = 1 << 6;
    /// Бит 7 – отложенная печать.
    pub const DEFERRED: u8 = 1 << 7;

    /// Receipt tape only.
    pub fn receipt() -> Self {
        Self(Self::RECEIPT)
    }
}

impl Default for PrintFlags {
    fn default() -> Self {
        Self::receipt()
    }
}

/// «Тип документа» of 8Dh «Открыть чек».
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CheckType {
    /// «0» – продажа.
    Sale = 0,
    /// «1» – покупка.
    Purchase = 1,
    /// «2» – возврат продажи.
    SaleReturn = 2,
    /// «3» – возврат покупки.
    PurchaseReturn = 3,
}

/// «Тип операции» of FF46h «Операция V2».
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OperationType {
    /// 1 – Приход.
    Income = 1,
    /// 2 – Возврат прихода.
    IncomeReturn = 2,
    /// 3 – Расход.
    Expense = 3,
    /// 4 – Возврат расхода.
    ExpenseReturn = 4,
}

/// Fields of FF46h «Операция V2», in the spec's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationV2 {
    pub kind: OperationType,
    /// «Количество (6 байт) 6 знаков после запятой»: 1.5 pcs = 1_500_000.
    pub quantity: u64,
    /// «Цена (5 байт)», kopecks.
    pub price: u64,
    /// «Сумма операций (5 байт)»; `None` sends 0xFFFFFFFFFF, «сумма
    /// операции рассчитывается кассой как цена х количество».
    pub sum: Option<u64>,
    /// «Налог (5 байт)»; `None` sends 0xFFFFFFFFFF («сумма налога на
    /// позицию не указана»).
    pub tax: Option<u64>,
    /// «Налоговая ставка (1 байт)». 1.17 gives no encoding; Shtrih devices
    /// (and the emulator in `sim::shtrih`) read it as a bit field: bit 0 –
    /// «Налог 1» (НДС 18%) … bit 5 – «Налог 6» (10/110), 0 – no tax.
    pub tax_rate: u8,
    /// «Номер отдела»: 0..16 free sale, 255 sale by item code.
    pub department: u8,
    /// «Признак способа расчёта (1 байт)».
    pub payment_method: u8,
    /// «Признак предмета расчёта (1 байт)».
    pub payment_object: u8,
    /// «Наименование товара (0-128 байт)».
    pub name: String,
}

/// Fields of FF45h «Закрытие чека расширенное вариант №2».
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseCheckV2 {
    /// «Сумма наличных», then «Сумма типа оплаты 2…16» (14 – предоплата,
    /// 15 – постоплата, 16 – встречное представление), kopecks.
    pub payments: [u64; 16],
    /// «Округление до рубля в копейках (1 байт)».
    pub rounding: u8,
    /// «Налог 1» НДС 18%, «Налог 2» НДС 10%, «Оборот по налогу 3» НДС 0%,
    /// «Оборот по налогу 4» Без НДС, «Налог 5» НДС 18/118, «Налог 6» 10/110.
    pub taxes: [u64; 6],
    /// «Система налогообложения» bit field: 0 ОСН, 1 УСН доход, 2 УСН доход
    /// минус расход, 3 ЕНВД, 4 ЕСП, 5 ПСН (only one per receipt).
    pub tax_system: u8,
    /// «Текст (0-64 байт)».
    pub text: String,
}

impl CloseCheckV2 {
    /// Everything paid in cash.
    pub fn cash(amount: u64, tax_system: u8) -> Self {
        let mut payments = [0; 16];
        payments[0] = amount;
        Self {
            payments,
            rounding: 0,
            taxes: [0; 6],
            tax_system,
            text: String::new(),
        }
    }
}

impl Command {
    pub(super) fn new(code: u16, data: Vec<u8>, timeout: TimeoutClass) -> Self {
        Self {
            code,
            data,
            timeout,
        }
    }

    /// The frame body: command code, password (4 bytes LE), data.
    pub fn body(&self, password: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 6);
        put_command(self.code, &mut out);
        out.extend_from_slice(&password.to_le_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    /// 10h «Короткий запрос состояния ККТ».
    pub fn short_status() -> Self {
        Self::new(code::SHORT_STATUS, Vec::new(), TimeoutClass::Query)
    }

    /// 11h «Запрос состояния ККТ».
    pub fn full_status() -> Self {
        Self::new(code::FULL_STATUS, Vec::new(), TimeoutClass::Query)
    }

    fn print(code: u16, flags: PrintFlags, font: Option<u8>, text: &str, len: usize) -> Self {
        let mut data = vec![flags.0];
        data.extend(font);
        fixed_text(&mut data, text, len);
        Self::new(code, data, TimeoutClass::Print)
    }

    /// 17h «Печать стандартной строки (шрифт 1)»: 40-byte text field.
    pub fn print_string(flags: PrintFlags, text: &str) -> Self {
        Self::print(code::PRINT_STRING, flags, None, text, 40)
    }

    /// 12h «Печать жирной строки (шрифт 2)»: 20-byte text field.
    pub fn print_bold_string(flags: PrintFlags, text: &str) -> Self {
        Self::print(code::PRINT_BOLD_STRING, flags, None, text, 20)
    }

    /// 2Fh «Печать строки данным шрифтом»: font number, 40-byte text field.
    pub fn print_string_with_font(flags: PrintFlags, font: u8, text: &str) -> Self {
        Self::print(code::PRINT_STRING_WITH_FONT, flags, Some(font), text, 40)
    }

    /// 25h «Отрезка чека»: «0» – полная, «1» – неполная.
    pub fn cut(partial: bool) -> Self {
        Self::new(code::CUT, vec![u8::from(partial)], TimeoutClass::Print)
    }

    /// B0h «Продолжение печати».
    pub fn continue_print() -> Self {
        Self::new(code::CONTINUE_PRINT, Vec::new(), TimeoutClass::Print)
    }

    /// E0h «Открыть смену».
    pub fn open_shift() -> Self {
        Self::new(code::OPEN_SHIFT, Vec::new(), TimeoutClass::Report)
    }

    /// 40h «Суточный отчет без гашения» (X report).
    pub fn x_report() -> Self {
        Self::new(code::X_REPORT, Vec::new(), TimeoutClass::Report)
    }

    /// 41h «Суточный отчет с гашением» (Z report, closes the shift).
    pub fn z_report() -> Self {
        Self::new(code::Z_REPORT, Vec::new(), TimeoutClass::Report)
    }

    /// 8Dh «Открыть чек».
    pub fn open_check(kind: CheckType) -> Self {
        Self::new(code::OPEN_CHECK, vec![kind as u8], TimeoutClass::Fiscal)
    }

    /// 88h «Аннулирование чека».
    pub fn cancel_check() -> Self {
        Self::new(code::CANCEL_CHECK, Vec::new(), TimeoutClass::Fiscal)
    }

    /// FF46h «Операция V2».
    pub fn operation_v2(op: &OperationV2) -> Result<Self, ShtrihError> {
        let mut d = Vec::with_capacity(154);
        d.push(op.kind as u8);
        put_le(&mut d, op.quantity, 6, "quantity")?;
        put_le(&mut d, op.price, 5, "price")?;
        put_le(&mut d, op.sum.unwrap_or(0xFF_FFFF_FFFF), 5, "sum")?;
        put_le(&mut d, op.tax.unwrap_or(0xFF_FFFF_FFFF), 5, "tax")?;
        d.push(op.tax_rate);
        d.push(op.department);
        d.push(op.payment_method);
        d.push(op.payment_object);
        var_text(&mut d, &op.name, 128);
        Ok(Self::new(code::OPERATION_V2, d, TimeoutClass::Fiscal))
    }

    /// FF45h «Закрытие чека расширенное вариант №2».
    pub fn close_check_v2(c: &CloseCheckV2) -> Result<Self, ShtrihError> {
        let mut d = Vec::with_capacity(176);
        for p in c.payments {
            put_le(&mut d, p, 5, "payment")?;
        }
        d.push(c.rounding);
        for t in c.taxes {
            put_le(&mut d, t, 5, "tax")?;
        }
        d.push(c.tax_system);
        var_text(&mut d, &c.text, 64);
        Ok(Self::new(code::CLOSE_CHECK_V2, d, TimeoutClass::Fiscal))
    }

    /// FF01h «Запрос статуса ФН» (includes «Номер последнего ФД»).
    pub fn fn_status() -> Self {
        Self::new(code::FN_STATUS, Vec::new(), TimeoutClass::Query)
    }

    /// FF0Ah «Найти фискальный документ по номеру».
    pub fn fn_find_document(number: u32) -> Self {
        Self::new(
            code::FN_FIND_DOCUMENT,
            number.to_le_bytes().to_vec(),
            TimeoutClass::Query,
        )
    }

    /// FF3Ch «Запрос квитанции о получении данных в ОФД по номеру документа».
    pub fn fn_ofd_receipt(number: u32) -> Self {
        Self::new(
            code::FN_OFD_RECEIPT,
            number.to_le_bytes().to_vec(),
            TimeoutClass::Query,
        )
    }

    /// FF40h «Запрос параметров текущей смены».
    pub fn fn_shift_params() -> Self {
        Self::new(code::FN_SHIFT_PARAMS, Vec::new(), TimeoutClass::Query)
    }
}

/// Answer of 10h, laid out as real devices send it and the open drivers
/// (pyshtrih, shtrihmfr, the JavaPOS driver) read it: v1.17 lists fewer
/// fields than its stated 16-byte length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortStatus {
    pub operator: u8,
    /// «Флаги ККТ» bit field (see [`KktFlags`]).
    pub flags: KktFlags,
    /// «Режим ККТ»: low nibble the mode number, high nibble its status.
    pub mode: u8,
    pub submode: u8,
    /// «Количество операций в чеке», two bytes split across the answer.
    pub operations_in_check: u16,
    pub battery_voltage: u8,
    pub power_voltage: u8,
    /// «Код ошибки ФП» (fiscal memory / FN), 0 = none.
    pub fm_error: u8,
    /// «Код ошибки ЭКЛЗ», 0 = none (no EKLZ on FN registers).
    pub eklz_error: u8,
}

impl ShortStatus {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        r.expect(code::SHORT_STATUS)?;
        // operator 1, flags 2, mode 1, submode 1, ops lo 1, battery 1,
        // power 1, FP error 1, EKLZ error 1, ops hi 1, reserved 3.
        let d = r.need(11)?;
        Ok(Self {
            operator: d[0],
            flags: KktFlags(u16::from_le_bytes([d[1], d[2]])),
            mode: d[3],
            submode: d[4],
            operations_in_check: u16::from_le_bytes([d[5], d[10]]),
            battery_voltage: d[6],
            power_voltage: d[7],
            fm_error: d[8],
            eklz_error: d[9],
        })
    }

    /// «Режим ККТ» number (Приложение 1), e.g. 2 open shift, 4 closed
    /// shift, 8 open document.
    pub fn mode_number(&self) -> u8 {
        self.mode & 0x0F
    }

    /// The status nibble of modes 8, 13, 14 (e.g. 8.0 sale, 8.2 return).
    pub fn mode_status(&self) -> u8 {
        self.mode >> 4
    }

    /// The mode in words, (Russian, English): see [`mode_text`].
    pub fn mode_text(&self) -> Option<(&'static str, &'static str)> {
        mode_text(self.mode)
    }

    /// The submode in words, (Russian, English): see [`submode_text`].
    pub fn submode_text(&self) -> Option<(&'static str, &'static str)> {
        submode_text(self.submode)
    }
}

/// «Режим ККТ» in words, (Russian, English), from the spec's «Приложение 1
/// Режимы и подрежимы ККТ» (v1.17, p. 71). Takes the whole mode byte: for
/// modes 8, 12 and 13 a listed status nibble gives the status's text (8.2
/// «Открытый документ: Возврат продажи»), an unlisted one the mode's.
/// `None` for the numbers the spec does not list (0 and 15).
pub fn mode_text(mode: u8) -> Option<(&'static str, &'static str)> {
    let status = match (mode & 0x0F, mode >> 4) {
        (8, 0) => Some(("Открытый документ: Продажа", "open document: sale")),
        (8, 1) => Some(("Открытый документ: Покупка", "open document: purchase")),
        (8, 2) => Some((
            "Открытый документ: Возврат продажи",
            "open document: sale return",
        )),
        (8, 3) => Some((
            "Открытый документ: Возврат покупки",
            "open document: purchase return",
        )),
        (8, 4) => Some((
            "Открытый документ: Нефискальный",
            "open document: non-fiscal",
        )),
        (12, 0) => Some((
            "Работа с фискальным подкладным документом: Продажа (открыт)",
            "fiscal slip document: sale (open)",
        )),
        (12, 1) => Some((
            "Работа с фискальным подкладным документом: Покупка (открыт)",
            "fiscal slip document: purchase (open)",
        )),
        (12, 2) => Some((
            "Работа с фискальным подкладным документом: Возврат продажи (открыт)",
            "fiscal slip document: sale return (open)",
        )),
        (12, 3) => Some((
            "Работа с фискальным подкладным документом: Возврат покупки (открыт)",
            "fiscal slip document: purchase return (open)",
        )),
        (13, 0) => Some((
            "Печать подкладного документа: Ожидание загрузки",
            "slip printing: waiting for loading",
        )),
        (13, 1) => Some((
            "Печать подкладного документа: Загрузка и позиционирование",
            "slip printing: loading and positioning",
        )),
        (13, 2) => Some((
            "Печать подкладного документа: Позиционирование",
            "slip printing: positioning",
        )),
        (13, 3) => Some((
            "Печать подкладного документа: Печать",
            "slip printing: printing",
        )),
        (13, 4) => Some((
            "Печать подкладного документа: Печать закончена",
            "slip printing: printing finished",
        )),
        (13, 5) => Some((
            "Печать подкладного документа: Выброс документа",
            "slip printing: ejecting document",
        )),
        (13, 6) => Some((
            "Печать подкладного документа: Ожидание извлечения",
            "slip printing: waiting for removal",
        )),
        _ => None,
    };
    if status.is_some() {
        return status;
    }
    Some(match mode & 0x0F {
        1 => ("Выдача данных", "data output"),
        2 => (
            "Открытая смена, 24 часа не кончились",
            "shift open, under 24 hours",
        ),
        3 => (
            "Открытая смена, 24 часа кончились",
            "shift open, 24 hours over",
        ),
        4 => ("Закрытая смена", "shift closed"),
        5 => (
            "Блокировка по неправильному паролю налогового инспектора",
            "locked: wrong tax inspector password",
        ),
        6 => (
            "Ожидание подтверждения ввода даты",
            "waiting for date confirmation",
        ),
        7 => (
            "Разрешение изменения положения десятичной точки",
            "decimal point position may be changed",
        ),
        8 => ("Открытый документ", "open document"),
        9 => (
            "Режим разрешения технологического обнуления",
            "technological reset allowed",
        ),
        10 => ("Тестовый прогон", "test run"),
        11 => (
            "Печать полного фискального отчета",
            "printing full fiscal report",
        ),
        12 => (
            "Работа с фискальным подкладным документом",
            "fiscal slip document",
        ),
        13 => ("Печать подкладного документа", "slip printing"),
        14 => (
            "Фискальный подкладной документ сформирован",
            "fiscal slip document formed",
        ),
        _ => return None,
    })
}

/// «Подрежим ККТ» in words, (Russian, English), from the spec's «Приложение
/// 1» (v1.17, pp. 71–72), the description's first clause. `None` above 5.
pub fn submode_text(submode: u8) -> Option<(&'static str, &'static str)> {
    Some(match submode {
        0 => ("Бумага есть", "paper present"),
        1 => ("Пассивное отсутствие бумаги", "out of paper, not printing"),
        2 => ("Активное отсутствие бумаги", "out of paper while printing"),
        3 => (
            "После активного отсутствия бумаги",
            "after out of paper: waiting for continue-print command",
        ),
        4 => (
            "Фаза печати операции полных фискальных отчетов",
            "printing full fiscal reports",
        ),
        5 => ("Фаза печати операции", "printing an operation"),
        _ => return None,
    })
}

/// «Флаги ККТ» of 10h/11h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KktFlags(pub u16);

impl KktFlags {
    fn bit(self, n: u8) -> bool {
        self.0 & (1 << n) != 0
    }
    /// Bit 1 – рулон чековой ленты есть.
    pub fn receipt_roll(self) -> bool {
        self.bit(1)
    }
    /// Bit 7 – оптический датчик чековой ленты: бумага есть.
    pub fn receipt_paper_sensor(self) -> bool {
        self.bit(7)
    }
    /// Bit 9 – рычаг термоголовки чековой ленты опущен.
    pub fn receipt_lever_down(self) -> bool {
        self.bit(9)
    }
    /// Bit 10 – крышка корпуса поднята.
    pub fn cover_open(self) -> bool {
        self.bit(10)
    }
    /// Bit 11 – денежный ящик открыт.
    pub fn drawer_open(self) -> bool {
        self.bit(11)
    }
}

/// Answer of 11h «Запрос состояния ККТ» in the 48-byte layout of real
/// devices and the open drivers (with the fiscal memory's version, build,
/// date, flags and free records, which v1.17 leaves out of its list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullStatus {
    pub operator: u8,
    /// «Версия ПО ККТ»: two chars with a dot between, "10" → "1.0".
    pub firmware_version: String,
    pub firmware_build: u16,
    /// «Дата ПО ККТ» ДД-ММ-ГГ.
    pub firmware_date: [u8; 3],
    pub hall_number: u8,
    /// «Сквозной номер текущего документа».
    pub document_number: u16,
    pub flags: KktFlags,
    pub mode: u8,
    pub submode: u8,
    pub port: u8,
    /// «Версия ПО ФП», as [`Self::firmware_version`].
    pub fm_version: String,
    /// «Сборка ПО ФП».
    pub fm_build: u16,
    /// «Дата ПО ФП» ДД-ММ-ГГ.
    pub fm_date: [u8; 3],
    /// ДД-ММ-ГГ.
    pub date: [u8; 3],
    /// ЧЧ-ММ-СС.
    pub time: [u8; 3],
    /// «Флаги ФП».
    pub fm_flags: u8,
    /// «Заводской номер» (4 bytes); `None` if not entered (FFh…).
    pub serial_number: Option<u64>,
    /// «Номер последней закрытой смены».
    pub last_closed_shift: u16,
    /// «Количество свободных записей в ФП».
    pub fm_free_records: u16,
    pub fiscalizations: u8,
    pub fiscalizations_left: u8,
    /// «ИНН» as a 6-byte number; `None` if not entered.
    pub inn: Option<u64>,
}

impl FullStatus {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        r.expect(code::FULL_STATUS)?;
        let d = r.need(46)?;
        let version = |a: u8, b: u8| format!("{}.{}", char::from(a), char::from(b));
        let serial = &d[30..34];
        let inn = &d[40..46];
        Ok(Self {
            operator: d[0],
            firmware_version: version(d[1], d[2]),
            firmware_build: u16::from_le_bytes([d[3], d[4]]),
            firmware_date: [d[5], d[6], d[7]],
            hall_number: d[8],
            document_number: u16::from_le_bytes([d[9], d[10]]),
            flags: KktFlags(u16::from_le_bytes([d[11], d[12]])),
            mode: d[13],
            submode: d[14],
            port: d[15],
            fm_version: version(d[16], d[17]),
            fm_build: u16::from_le_bytes([d[18], d[19]]),
            fm_date: [d[20], d[21], d[22]],
            date: [d[23], d[24], d[25]],
            time: [d[26], d[27], d[28]],
            fm_flags: d[29],
            serial_number: (serial != [0xFF; 4]).then(|| le(serial)),
            last_closed_shift: u16::from_le_bytes([d[34], d[35]]),
            fm_free_records: u16::from_le_bytes([d[36], d[37]]),
            fiscalizations: d[38],
            fiscalizations_left: d[39],
            inn: (inn != [0xFF; 6]).then(|| le(inn)),
        })
    }
}

/// Answer of FF01h «Запрос статуса ФН».
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnStatus {
    /// «Состояние фазы жизни»: bit 0 настройка, 1 фискальный режим открыт,
    /// 2 закрыт, 3 передача в ОФД закончена.
    pub life_phase: u8,
    /// «Текущий документ»: 00 none, 01 fiscalization, 02 shift open,
    /// 04 receipt, 08 shift close, …
    pub current_document: u8,
    /// «Данные документа»: true – получены данные документа.
    pub document_data_received: bool,
    /// «Состояние смены»: true – открыта.
    pub shift_open: bool,
    /// «Флаги предупреждения».
    pub warning_flags: u8,
    /// «Дата и время (5 байт)»; the spec does not define DATE_TIME here:
    /// by FN convention YY MM DD hh mm.
    pub date_time: [u8; 5],
    /// «Номер ФН (16 байт) ASCII».
    pub fn_number: String,
    /// «Номер последнего ФД (4 байта)».
    pub last_fd_number: u32,
}

impl FnStatus {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        r.expect(code::FN_STATUS)?;
        let d = r.need(30)?;
        Ok(Self {
            life_phase: d[0],
            current_document: d[1],
            document_data_received: d[2] == 1,
            shift_open: d[3] == 1,
            warning_flags: d[4],
            date_time: [d[5], d[6], d[7], d[8], d[9]],
            fn_number: String::from_utf8_lossy(&d[10..26])
                .trim_end_matches(['\0', ' '])
                .to_owned(),
            last_fd_number: u32::from_le_bytes([d[26], d[27], d[28], d[29]]),
        })
    }
}

/// Answer of FF0Ah «Найти фискальный документ по номеру».
///
/// Round-trip fix (client vs. emulator): FF0Ah says only «Данные
/// фискального документа в зависимости от типа документ (N байт)», and this
/// parser used to leave them raw, so a host could not check the fiscal sign
/// of the document it found. The data are the FN's own record, which starts
/// the same way for every document type: «Дата и время (5 байт) DATE_TIME»,
/// «Номер ФД (4 байта)», «Фискальный признак (4 байта)» — the order this
/// spec itself uses wherever it lists a document's FN data (FF09h, FF4Ch:
/// DATE_TIME … Номер ФД, Фискальный признак; FF45h: Номер ФД, Фискальный
/// признак). The emulator sends that header, so it is parsed here; the
/// type-specific rest stays raw in `data` (which, as before, holds
/// everything after the first two bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnDocument {
    /// «Тип фискального документа».
    pub document_type: u8,
    /// «Получена ли квитанция из ОФД».
    pub ofd_receipt_received: bool,
    /// DATE_TIME of the document (YY MM DD hh mm), if the data carry it.
    pub date_time: Option<[u8; 5]>,
    /// «Номер ФД», if the data carry it.
    pub fd_number: Option<u32>,
    /// «Фискальный признак», if the data carry it.
    pub fiscal_sign: Option<u32>,
    /// «Данные фискального документа» raw (header included).
    pub data: Bytes,
}

impl FnDocument {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        r.expect(code::FN_FIND_DOCUMENT)?;
        r.need(2)?;
        let data = r.data.slice(2..);
        let header = data.get(..13);
        Ok(Self {
            document_type: r.data[0],
            ofd_receipt_received: r.data[1] == 1,
            date_time: header.map(|h| [h[0], h[1], h[2], h[3], h[4]]),
            fd_number: header.map(|h| u32::from_le_bytes([h[5], h[6], h[7], h[8]])),
            fiscal_sign: header.map(|h| u32::from_le_bytes([h[9], h[10], h[11], h[12]])),
            data,
        })
    }
}

/// Answer of FF40h «Запрос параметров текущей смены».
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FnShiftParams {
    pub shift_open: bool,
    pub shift_number: u16,
    /// «Номер чека».
    pub check_number: u16,
}

impl FnShiftParams {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        r.expect(code::FN_SHIFT_PARAMS)?;
        let d = r.need(5)?;
        Ok(Self {
            shift_open: d[0] == 1,
            shift_number: u16::from_le_bytes([d[1], d[2]]),
            check_number: u16::from_le_bytes([d[3], d[4]]),
        })
    }
}

/// Answer of FF45h: change, FD number and fiscal sign of the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCheckResult {
    /// «Сдача (5 байт)», kopecks.
    pub change: u64,
    /// «Номер ФД (4 байта)».
    pub fd_number: u32,
    /// «Фискальный признак (4 байта)».
    pub fiscal_sign: u32,
    /// «Дата и время (5 байт)», only with «РАСШИР. ОТВ. НА КОМАНДЫ ФОРМ. ФД».
    pub date_time: Option<[u8; 5]>,
}

impl CloseCheckResult {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        r.expect(code::CLOSE_CHECK_V2)?;
        let d = r.need(13)?;
        Ok(Self {
            change: le(&d[0..5]),
            fd_number: u32::from_le_bytes([d[5], d[6], d[7], d[8]]),
            fiscal_sign: u32::from_le_bytes([d[9], d[10], d[11], d[12]]),
            date_time: d.get(13..18).map(|s| [s[0], s[1], s[2], s[3], s[4]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_submodes_in_words() {
        assert_eq!(
            mode_text(2),
            Some((
                "Открытая смена, 24 часа не кончились",
                "shift open, under 24 hours"
            ))
        );
        assert_eq!(mode_text(4).unwrap().1, "shift closed");
        assert_eq!(
            mode_text(0x28).unwrap().0,
            "Открытый документ: Возврат продажи"
        );
        assert_eq!(
            mode_text(0x78).unwrap().1,
            "open document",
            "unlisted status"
        );
        assert_eq!(
            mode_text(0x6D).unwrap().1,
            "slip printing: waiting for removal"
        );
        assert_eq!(mode_text(0), None);
        assert_eq!(mode_text(15), None);
        for m in 1..=14u8 {
            let (ru, en) = mode_text(m).unwrap();
            assert!(!ru.is_empty() && en.is_ascii() && !en.is_empty(), "{m}");
        }
        assert_eq!(submode_text(1).unwrap().0, "Пассивное отсутствие бумаги");
        assert_eq!(
            submode_text(3).unwrap().0,
            "После активного отсутствия бумаги"
        );
        assert!((0..=5).all(|s| submode_text(s).is_some()));
        assert_eq!(submode_text(6), None);
    }

    fn resp(body: &[u8]) -> Response {
        Response::from_body(body).unwrap()
    }

    #[test]
    fn short_status_body_matches_spec_vector() {
        assert_eq!(Command::short_status().body(30), [0x10, 0x1E, 0, 0, 0]);
    }

    #[test]
    fn ff_command_body() {
        assert_eq!(Command::fn_status().body(30), [0xFF, 0x01, 0x1E, 0, 0, 0]);
        assert_eq!(
            Command::fn_find_document(0x0102_0304).body(1),
            [0xFF, 0x0A, 1, 0, 0, 0, 4, 3, 2, 1]
        );
    }

    #[test]
    fn response_split() {
        let r = resp(&[0xFF, 0x46, 0x00]);
        assert_eq!((r.command, r.error, r.data.len()), (0xFF46, 0, 0));
        let r = resp(&[0x88, 0x4A, 0x1E]);
        assert_eq!((r.command, r.error, r.operator()), (0x88, 0x4A, Some(0x1E)));
        assert!(Response::from_body(&[0x10]).is_err());
        assert!(Response::from_body(&[0xFF, 0x01]).is_err());
        assert!(Response::from_body(&[]).is_err());
    }

    #[test]
    fn print_string_layout() {
        let c = Command::print_string(PrintFlags::receipt(), "Привет");
        assert_eq!(c.data.len(), 41);
        assert_eq!(c.data[0], 2);
        assert_eq!(&c.data[1..7], &[0xCF, 0xF0, 0xE8, 0xE2, 0xE5, 0xF2]);
        assert!(c.data[7..].iter().all(|&b| b == 0));
        // Full frame body: 1 + 4 + 41 = 46 bytes, «Длина сообщения: 46».
        assert_eq!(c.body(0).len(), 46);
        let long = "x".repeat(60);
        assert_eq!(
            Command::print_string(PrintFlags::receipt(), &long)
                .data
                .len(),
            41
        );
        assert_eq!(
            Command::print_bold_string(PrintFlags::receipt(), &long)
                .body(0)
                .len(),
            26
        );
        assert_eq!(
            Command::print_string_with_font(PrintFlags::receipt(), 3, "a")
                .body(0)
                .len(),
            47
        );
        assert_eq!(to_win1251("€✓"), [0x88, b'?']);
    }

    #[test]
    fn simple_command_lengths() {
        // «Длина сообщения» values from the spec.
        assert_eq!(Command::cut(true).body(0), [0x25, 0, 0, 0, 0, 1]);
        assert_eq!(Command::open_check(CheckType::SaleReturn).body(0).len(), 6);
        assert_eq!(Command::open_check(CheckType::SaleReturn).data, [2]);
        for c in [
            Command::continue_print(),
            Command::open_shift(),
            Command::x_report(),
            Command::z_report(),
            Command::cancel_check(),
            Command::full_status(),
        ] {
            assert_eq!(c.body(0).len(), 5, "{:#X}", c.code);
        }
        assert_eq!(Command::fn_shift_params().body(0).len(), 6);
        assert_eq!(Command::fn_ofd_receipt(1).body(0).len(), 10);
    }

    #[test]
    fn operation_v2_layout() {
        let op = OperationV2 {
            kind: OperationType::Income,
            quantity: 1_500_000,
            price: 12_345,
            sum: None,
            tax: Some(0),
            tax_rate: 1,
            department: 1,
            payment_method: 4,
            payment_object: 1,
            name: "Хлеб".into(),
        };
        let c = Command::operation_v2(&op).unwrap();
        let d = &c.data;
        assert_eq!(d[0], 1);
        assert_eq!(&d[1..7], &[0x60, 0xE3, 0x16, 0, 0, 0]);
        assert_eq!(&d[7..12], &[0x39, 0x30, 0, 0, 0]);
        assert_eq!(&d[12..17], &[0xFF; 5]);
        assert_eq!(&d[17..22], &[0; 5]);
        assert_eq!(&d[22..26], &[1, 1, 4, 1]);
        assert_eq!(&d[26..], &[0xD5, 0xEB, 0xE5, 0xE1]);
        // Max name: 2 + 4 + 26 + 128 = 160 = «Длина сообщения: 160 байт».
        let long = OperationV2 {
            name: "я".repeat(200),
            ..op.clone()
        };
        assert_eq!(Command::operation_v2(&long).unwrap().body(0).len(), 160);
        let too_big = OperationV2 {
            price: 1 << 40,
            ..op
        };
        assert!(matches!(
            Command::operation_v2(&too_big),
            Err(ShtrihError::InvalidRequest { field: "price", .. })
        ));
    }

    #[test]
    fn close_check_v2_layout() {
        let mut c = CloseCheckV2::cash(10_000, 1);
        c.payments[1] = 5;
        c.text = "t".repeat(100);
        let cmd = Command::close_check_v2(&c).unwrap();
        // 2 + 4 + 80 + 1 + 30 + 1 + 64 = 182 = «Длина сообщения: 182 байта».
        assert_eq!(cmd.body(0).len(), 182);
        assert_eq!(&cmd.data[0..5], &[0x10, 0x27, 0, 0, 0]);
        assert_eq!(&cmd.data[5..10], &[5, 0, 0, 0, 0]);
        assert_eq!(cmd.data[80], 0);
        assert_eq!(cmd.data[111], 1);
    }

    #[test]
    fn parse_short_status() {
        let r = resp(&[
            0x10, 0x00, 0x1E, 0x82, 0x02, 0x08, 0x00, 0x03, 0x5A, 0x60, 0x00, 0x00, 0x01, 0, 0, 0,
        ]);
        let s = ShortStatus::parse(&r).unwrap();
        assert_eq!(s.operator, 30);
        assert!(s.flags.receipt_roll() && s.flags.receipt_paper_sensor());
        assert!(s.flags.receipt_lever_down());
        assert_eq!(s.mode_number(), 8);
        assert_eq!(s.operations_in_check, 0x0103);
        assert_eq!((s.fm_error, s.eklz_error), (0, 0));
        assert!(ShortStatus::parse(&resp(&[0x10, 0x00, 0x1E])).is_err());
        assert!(matches!(
            ShortStatus::parse(&resp(&[0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
            Err(ProtocolError::UnexpectedCommand { .. })
        ));
    }

    #[test]
    fn parse_full_status() {
        let mut body = vec![0x11, 0x00, 0x1E, b'1', b'0', 0x10, 0x00, 1, 2, 23, 1];
        body.extend([0x34, 0x12, 0x82, 0x02, 0x04, 0x00, 0x00]); // doc, flags, mode, sub, port
        body.extend([b'C', b'1', 0xB5, 0x06, 15, 1, 26]); // FP version, build, date
        body.extend([25, 11, 26, 14, 30, 0]); // date, time
        body.push(0x03); // FP flags
        body.extend([0x78, 0x56, 0x34, 0x12]); // serial
        body.extend([0x05, 0x00, 0xD0, 0x07, 1, 19]); // last shift, free, fisc, left
        body.extend([0xFF; 6]); // inn not entered
        let s = FullStatus::parse(&resp(&body)).unwrap();
        assert_eq!(s.firmware_version, "1.0");
        assert_eq!(s.firmware_build, 16);
        assert_eq!(s.document_number, 0x1234);
        assert_eq!(s.mode, 4);
        assert_eq!((s.fm_version.as_str(), s.fm_build), ("C.1", 1717));
        assert_eq!(s.fm_date, [15, 1, 26]);
        assert_eq!(s.date, [25, 11, 26]);
        assert_eq!(s.time, [14, 30, 0]);
        assert_eq!(s.fm_flags, 3);
        assert_eq!(s.serial_number, Some(0x1234_5678));
        assert_eq!(s.last_closed_shift, 5);
        assert_eq!(s.fm_free_records, 2000);
        assert_eq!((s.fiscalizations, s.fiscalizations_left), (1, 19));
        body.pop();
        assert!(
            FullStatus::parse(&resp(&body)).is_err(),
            "47 bytes is short"
        );
        assert_eq!(s.inn, None);
    }

    #[test]
    fn parse_fn_answers() {
        let mut body = vec![0xFF, 0x01, 0x00, 0x03, 0x04, 0x00, 0x01, 0x00];
        body.extend([26, 11, 25, 14, 30]);
        body.extend(b"9999078900001234");
        body.extend(42u32.to_le_bytes());
        let s = FnStatus::parse(&resp(&body)).unwrap();
        assert_eq!(s.life_phase, 3);
        assert_eq!(s.current_document, 4);
        assert!(s.shift_open);
        assert_eq!(s.fn_number, "9999078900001234");
        assert_eq!(s.last_fd_number, 42);
        // FF01h answer is 33 bytes: 2 + 1 + 30.
        assert_eq!(body.len(), 33);

        let r = resp(&[0xFF, 0x40, 0x00, 0x01, 0x07, 0x00, 0x0C, 0x00]);
        let p = FnShiftParams::parse(&r).unwrap();
        assert_eq!(
            (p.shift_open, p.shift_number, p.check_number),
            (true, 7, 12)
        );

        let r = resp(&[0xFF, 0x0A, 0x00, 0x03, 0x01, 0xAA, 0xBB]);
        let d = FnDocument::parse(&r).unwrap();
        assert_eq!((d.document_type, d.ofd_receipt_received), (3, true));
        assert_eq!(&d.data[..], &[0xAA, 0xBB]);
        assert_eq!(
            (d.date_time, d.fd_number, d.fiscal_sign),
            (None, None, None)
        );
        // With the FN header: DATE_TIME, «Номер ФД», «Фискальный признак».
        let mut body = vec![0xFF, 0x0A, 0x00, 0x03, 0x00, 26, 1, 15, 9, 0];
        body.extend(2u32.to_le_bytes());
        body.extend(0xDEAD_BEEFu32.to_le_bytes());
        body.extend([1, 0x20, 0x4E, 0, 0, 0]);
        let d = FnDocument::parse(&resp(&body)).unwrap();
        assert_eq!(d.date_time, Some([26, 1, 15, 9, 0]));
        assert_eq!((d.fd_number, d.fiscal_sign), (Some(2), Some(0xDEAD_BEEF)));
        assert_eq!(d.data.len(), 19);

        let mut body = vec![0xFF, 0x45, 0x00, 0x10, 0x27, 0, 0, 0];
        body.extend(77u32.to_le_bytes());
        body.extend(0xDEAD_BEEFu32.to_le_bytes());
        let c = CloseCheckResult::parse(&resp(&body)).unwrap();
        assert_eq!(body.len(), 16);
        assert_eq!(
            (c.change, c.fd_number, c.fiscal_sign),
            (10_000, 77, 0xDEAD_BEEF)
        );
        assert_eq!(c.date_time, None);
    }
}
