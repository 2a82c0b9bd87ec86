//! Errors of the Shtrih-M client, split the way tokio-modbus splits them:
//! the byte stream failed ([`TransportError`]), the bytes made no sense
//! ([`ProtocolError`]), or the device understood us and said no
//! ([`DeviceError`], a code from the spec's table «Коды ошибок»).

use std::io;
use std::time::Duration;

/// Everything [`super::ShtrihClient`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ShtrihError {
    /// The link itself: I/O, timeouts, a silent device.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// Malformed or unexpected data on the link.
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The device executed the command and reported a non-zero error code.
    #[error("device: {0}")]
    Device(#[from] DeviceError),
    /// A request could not be built: a field does not fit its wire size.
    #[error("invalid request: {field}: {reason}")]
    InvalidRequest {
        field: &'static str,
        reason: &'static str,
    },
}

impl ShtrihError {
    /// The device error code, if the device reported one.
    pub fn device_code(&self) -> Option<u8> {
        match self {
            ShtrihError::Device(e) => Some(e.code),
            _ => None,
        }
    }
}

/// Failures of the byte stream («Стандартный нижний уровень»).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The stream reached end of file.
    #[error("connection closed by the device")]
    Closed,
    /// ENQ was sent `attempts` times without ACK/NAK: «отсутствие ответа
    /// означает отсутствие связи между хостом и ККТ».
    #[error("no answer to ENQ after {attempts} attempts")]
    NoAnswer { attempts: u32 },
    /// The command frame was never acknowledged (no ACK, ENQ probes silent).
    #[error("command frame not acknowledged after {attempts} attempts")]
    NoAck { attempts: u32 },
    /// No answer frame (STX) within the command's answer timeout.
    #[error("no answer frame within {0:?}")]
    AnswerTimeout(Duration),
}

/// The device talked, but not the protocol we expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The answer kept arriving corrupted (bad LRC or broken off mid-frame).
    #[error("answer corrupted {attempts} times (bad LRC or byte timeout)")]
    BadAnswer { attempts: u32 },
    /// The device kept answering NAK to our command frame.
    #[error("command frame rejected with NAK {attempts} times")]
    FrameRejected { attempts: u32 },
    /// After we NAKed an answer, ENQ got NAK: the device no longer holds it.
    #[error("device dropped the answer after NAK")]
    AnswerLost,
    /// The answer is for another command.
    #[error("answer to command {got:#06X}, expected {expected:#06X}")]
    UnexpectedCommand { expected: u16, got: u16 },
    /// The answer is shorter than the spec's layout.
    #[error("answer to {command:#06X} too short: need {needed} bytes, got {got}")]
    ShortAnswer {
        command: u16,
        needed: usize,
        got: usize,
    },
    /// A frame without a command byte (LEN = 0 or missing error byte).
    #[error("empty frame")]
    EmptyFrame,
    /// CMD+DATA longer than the one-byte LEN allows.
    #[error("frame body of {0} bytes exceeds 255")]
    FrameTooLong(usize),
}

/// A non-zero «Код ошибки» returned by the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{code:#04X} {meaning}")]
pub struct DeviceError {
    pub code: u8,
    /// The Russian description from the spec's table (or "неизвестная ошибка").
    pub meaning: &'static str,
}

impl DeviceError {
    /// Wrong password («Неверный пароль»).
    pub const BAD_PASSWORD: u8 = 0x4F;
    /// No receipt paper («Нет чековой ленты»).
    pub const NO_PAPER: u8 = 0x6B;
    /// A receipt is open («Открыт чек – операция невозможна»).
    pub const CHECK_OPEN: u8 = 0x4A;
    /// The shift is over 24 hours («Смена превысила 24 часа»).
    pub const SHIFT_OVER_24H: u8 = 0x4E;
    /// FN: shift over 24 hours («Продолжительность смены более 24 часов»).
    pub const FN_SHIFT_OVER_24H: u8 = 0x16;
    /// Waiting for «Продолжение печати» (B0h).
    pub const WAITING_CONTINUE_PRINT: u8 = 0x58;
    /// Command not supported in this mode.
    pub const WRONG_MODE: u8 = 0x73;
    /// Command not supported in this submode.
    pub const WRONG_SUBMODE: u8 = 0x72;

    pub fn from_code(code: u8) -> Self {
        Self {
            code,
            meaning: error_meaning(code).unwrap_or("неизвестная ошибка"),
        }
    }

    /// The English text of the code; `None` only for codes outside the
    /// spec's table.
    pub fn english(&self) -> Option<&'static str> {
        english_gloss(self.code)
    }

    /// The source column of the spec table: true for FN errors.
    pub fn is_fn_error(&self) -> bool {
        matches!(self.code, 0x01..=0x20 | 0xA0..=0xA5)
    }
}

/// English for every code of [`error_meaning`]: a short translation of the
/// spec's Russian text, FN rows (codes 01h–20h, A0h–A5h) prefixed "FN: ".
pub fn english_gloss(code: u8) -> Option<&'static str> {
    Some(match code {
        0x00 => "no errors",
        0x01 => "FN: unknown command or bad format",
        0x02 => "FN: wrong FN state",
        0x03 => "FN: failure",
        0x04 => "FN: crypto coprocessor failure",
        0x05 => "FN: command parameters do not match the FN lifetime",
        0x07 => "FN: wrong date and/or time",
        0x08 => "FN: no requested data",
        0x09 => "FN: invalid command parameter value",
        0x10 => "FN: TLV data too large",
        0x11 => "FN: no transport connection to OFD",
        0x12 => "FN: resource exhausted",
        0x14 => "FN: resource nearly exhausted",
        0x16 => "FN: shift longer than 24 hours",
        0x17 => "FN: wrong time interval between fiscal documents",
        0x20 => "FN: OFD message cannot be accepted",
        0x2F => "FN exchange timeout",
        0x30 => "FN does not respond",
        0x33 => "invalid command parameters",
        0x34 => "no data",
        0x35 => "invalid parameter for these settings",
        0x36 => "invalid command parameters for this device",
        0x37 => "command not supported by this device",
        0x38 => "ROM error",
        0x39 => "internal firmware error",
        0x3A => "shift surcharge total overflow",
        0x3C => "shift open, operation impossible",
        0x3D => "shift open, operation impossible",
        0x3E => "shift department total overflow",
        0x3F => "shift discount total overflow",
        0x40 => "discount out of range",
        0x41 => "cash payment out of range",
        0x42 => "payment type 2 out of range",
        0x43 => "payment type 3 out of range",
        0x44 => "payment type 4 out of range",
        0x45 => "payments less than receipt total",
        0x46 => "not enough cash in drawer",
        0x47 => "shift tax total overflow",
        0x48 => "receipt total overflow",
        0x49 => "operation impossible in an open receipt of this type",
        0x4A => "receipt already open",
        0x4B => "receipt buffer full",
        0x4C => "shift taxed turnover overflow",
        0x4D => "cashless payment exceeds receipt total",
        0x4E => "shift longer than 24 hours",
        0x4F => "wrong password",
        0x50 => "printing previous command",
        0x51 => "shift cash total overflow",
        0x52 => "shift payment type 2 total overflow",
        0x53 => "shift payment type 3 total overflow",
        0x54 => "shift payment type 4 total overflow",
        0x55 => "receipt closed",
        0x56 => "no document to repeat",
        0x58 => "waiting for continue-print command",
        0x59 => "document opened by another operator",
        0x5B => "surcharge out of range",
        0x5C => "24 V supply low",
        0x5D => "table not defined",
        0x5E => "invalid operation",
        0x5F => "negative receipt total",
        0x60 => "multiplication overflow",
        0x61 => "price out of range",
        0x62 => "quantity out of range",
        0x63 => "department out of range",
        0x65 => "not enough money in department",
        0x66 => "department money overflow",
        0x68 => "not enough money in taxed turnover",
        0x69 => "taxed turnover money overflow",
        0x6A => "power failure during I2C answer",
        0x6B => "no receipt paper",
        0x6D => "not enough money for tax",
        0x6E => "tax money overflow",
        0x6F => "shift payout overflow",
        0x71 => "cutter error",
        0x72 => "command not supported in this submode",
        0x73 => "command not supported in this mode",
        0x74 => "RAM error",
        0x75 => "power failure",
        0x77 => "printer error: no signal from sensors",
        0x78 => "firmware replaced",
        0x7A => "field not editable",
        0x7B => "hardware error",
        0x7C => "date mismatch",
        0x7D => "wrong date format",
        0x7E => "wrong value in length field",
        0x7F => "receipt total out of range",
        0x84 => "cash overflow",
        0x85 => "shift sales overflow",
        0x86 => "shift purchases overflow",
        0x87 => "shift sale returns overflow",
        0x88 => "shift purchase returns overflow",
        0x89 => "shift cash-in overflow",
        0x8A => "receipt surcharges overflow",
        0x8B => "receipt discounts overflow",
        0x8C => "negative receipt surcharge total",
        0x8D => "negative receipt discount total",
        0x8E => "zero receipt total",
        0x90 => "field longer than set in settings",
        0x91 => "outside print area with these font settings",
        0x92 => "fields overlap",
        0x93 => "RAM restored successfully",
        0x94 => "receipt operation limit reached",
        0xA0 => "FN: marked goods not allowed",
        0xA1 => "FN: wrong order of BXh commands",
        0xA2 => "FN: marked goods temporarily blocked",
        0xA3 => "FN: marking code check table full",
        0xA4 => "FN: TLV block lacks required tags",
        0xA5 => "FN: tag 2007 holds a marking code not checked by the FN",
        0xC0 => "confirm date and time",
        0xC2 => "power supply overvoltage",
        0xC4 => "shift numbers mismatch",
        0xC7 => "field not editable in this mode",
        0xC8 => "no link to printer or no tachometer pulses",
        _ => return None,
    })
}

/// «Коды ошибок» from the spec (v1.17, pages 67–70), code → Russian text.
/// FN rows keep the description column only; comments are left out.
pub fn error_meaning(code: u8) -> Option<&'static str> {
    ERROR_TABLE
        .binary_search_by_key(&code, |&(c, _)| c)
        .ok()
        .map(|i| ERROR_TABLE[i].1)
}

/// Sorted by code.
pub static ERROR_TABLE: &[(u8, &str)] = &[
    (0x00, "Ошибок нет"),
    (
        0x01,
        "Неизвестная команда, неверный формат посылки или неизвестные параметры",
    ),
    (0x02, "Другое состояние ФН"),
    (0x03, "Отказ ФН"),
    (0x04, "Отказ КС"),
    (0x05, "Параметры команды не соответствуют сроку жизни ФН"),
    (0x07, "Неверные дата и/или время"),
    (0x08, "Нет запрошенных данных"),
    (0x09, "Некорректное значение параметров команды"),
    (0x10, "Превышение размеров TLV данных"),
    (0x11, "Нет транспортного соединения"),
    (0x12, "Исчерпан ресурс ФН"),
    (0x14, "Ограничение ресурса ФН"),
    (0x16, "Продолжительность смены более 24 часов"),
    (
        0x17,
        "Некорректные данные о промежутке времени между фискальными документами",
    ),
    (0x20, "Сообщение от ОФД не может быть принято"),
    (0x2F, "Таймаут обмена с ФН"),
    (0x30, "ФН не отвечает"),
    (0x33, "Некорректные параметры в команде"),
    (0x34, "Нет данных"),
    (0x35, "Некорректный параметр при данных настройках"),
    (
        0x36,
        "Некорректные параметры в команде для данной реализации ККТ",
    ),
    (0x37, "Команда не поддерживается в данной реализации ККТ"),
    (0x38, "Ошибка в ПЗУ"),
    (0x39, "Внутренняя ошибка ПО ККТ"),
    (0x3A, "Переполнение накопления по надбавкам в смене"),
    (0x3C, "Смена открыта операция невозможна"),
    (0x3D, "Смена открыта операция невозможна"),
    (0x3E, "Переполнение накопления по секциям в смене"),
    (0x3F, "Переполнение накопления по скидкам в смене"),
    (0x40, "Переполнение диапазона скидок"),
    (0x41, "Переполнение диапазона оплаты наличными"),
    (0x42, "Переполнение диапазона оплаты типом 2"),
    (0x43, "Переполнение диапазона оплаты типом 3"),
    (0x44, "Переполнение диапазона оплаты типом 4"),
    (0x45, "Cумма всех типов оплаты меньше итога чека"),
    (0x46, "Не хватает наличности в кассе"),
    (0x47, "Переполнение накопления по налогам в смене"),
    (0x48, "Переполнение итога чека"),
    (0x49, "Операция невозможна в открытом чеке данного типа"),
    (0x4A, "Открыт чек – операция невозможна"),
    (0x4B, "Буфер чека переполнен"),
    (0x4C, "Переполнение накопления по обороту налогов в смене"),
    (0x4D, "Вносимая безналичной оплатой сумма больше суммы чека"),
    (0x4E, "Смена превысила 24 часа"),
    (0x4F, "Неверный пароль"),
    (
        0x50,
        "Идет печать результатов выполнения предыдущей команды",
    ),
    (0x51, "Переполнение накоплений наличными в смене"),
    (0x52, "Переполнение накоплений по типу оплаты 2 в смене"),
    (0x53, "Переполнение накоплений по типу оплаты 3 в смене"),
    (0x54, "Переполнение накоплений по типу оплаты 4 в смене"),
    (0x55, "Чек закрыт – операция невозможна"),
    (0x56, "Нет документа для повтора"),
    (0x58, "Ожидание команды продолжения печати"),
    (0x59, "Документ открыт другим оператором"),
    (0x5B, "Переполнение диапазона надбавок"),
    (0x5C, "Понижено напряжение 24В"),
    (0x5D, "Таблица не определена"),
    (0x5E, "Неверная операция"),
    (0x5F, "Отрицательный итог чека"),
    (0x60, "Переполнение при умножении"),
    (0x61, "Переполнение диапазона цены"),
    (0x62, "Переполнение диапазона количества"),
    (0x63, "Переполнение диапазона отдела"),
    (0x65, "Не хватает денег в секции"),
    (0x66, "Переполнение денег в секции"),
    (0x68, "Не хватает денег по обороту налогов"),
    (0x69, "Переполнение денег по обороту налогов"),
    (0x6A, "Ошибка питания в момент ответа по I2C"),
    (0x6B, "Нет чековой ленты"),
    (0x6D, "Не хватает денег по налогу"),
    (0x6E, "Переполнение денег по налогу"),
    (0x6F, "Переполнение по выплате в смене"),
    (0x71, "Ошибка отрезчика"),
    (0x72, "Команда не поддерживается в данном подрежиме"),
    (0x73, "Команда не поддерживается в данном режиме"),
    (0x74, "Ошибка ОЗУ"),
    (0x75, "Ошибка питания"),
    (0x77, "Ошибка принтера: нет сигнала с датчиков"),
    (0x78, "Замена ПО"),
    (0x7A, "Поле не редактируется"),
    (0x7B, "Ошибка оборудования"),
    (0x7C, "Не совпадает дата"),
    (0x7D, "Неверный формат даты"),
    (0x7E, "Неверное значение в поле длины"),
    (0x7F, "Переполнение диапазона итога чека"),
    (0x84, "Переполнение наличности"),
    (0x85, "Переполнение по продажам в смене"),
    (0x86, "Переполнение по покупкам в смене"),
    (0x87, "Переполнение по возвратам продаж в смене"),
    (0x88, "Переполнение по возвратам покупок в смене"),
    (0x89, "Переполнение по внесению в смене"),
    (0x8A, "Переполнение по надбавкам в чеке"),
    (0x8B, "Переполнение по скидкам в чеке"),
    (0x8C, "Отрицательный итог надбавки в чеке"),
    (0x8D, "Отрицательный итог скидки в чеке"),
    (0x8E, "Нулевой итог чека"),
    (0x90, "Поле превышает размер, установленный в настройках"),
    (
        0x91,
        "Выход за границу поля печати при данных настройках шрифта",
    ),
    (0x92, "Наложение полей"),
    (0x93, "Восстановление ОЗУ прошло успешно"),
    (0x94, "Исчерпан лимит операций в чеке"),
    (0xA0, "Запрещена работа с маркированным товарами"),
    (0xA1, "Неверная последовательность команд группы BXh"),
    (
        0xA2,
        "Работа с маркированными товарами временно заблокирована",
    ),
    (0xA3, "Переполнена таблица проверки кодов маркировки"),
    (0xA4, "В блоке TLV отсутствуют необходимые реквизиты"),
    (
        0xA5,
        "В реквизите 2007 содержится КМ, который ранее не проверялся в ФН",
    ),
    (0xC0, "Контроль даты и времени (подтвердите дату и время)"),
    (0xC2, "Превышение напряжения в блоке питания"),
    (0xC4, "Несовпадение номеров смен"),
    (0xC7, "Поле не редактируется в данном режиме"),
    (
        0xC8,
        "Нет связи с принтером или отсутствуют импульсы от таходатчика",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(ERROR_TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ERROR_TABLE.len() > 100);
    }

    #[test]
    fn code_to_meaning() {
        let cases = [
            (0x01, "Неизвестная команда"),
            (0x16, "Продолжительность смены более 24 часов"),
            (0x4A, "Открыт чек – операция невозможна"),
            (0x4E, "Смена превысила 24 часа"),
            (0x4F, "Неверный пароль"),
            (0x58, "Ожидание команды продолжения печати"),
            (0x6B, "Нет чековой ленты"),
            (0x72, "Команда не поддерживается в данном подрежиме"),
            (0x73, "Команда не поддерживается в данном режиме"),
            (0xA5, "В реквизите 2007"),
            (0xC8, "Нет связи с принтером"),
        ];
        for (code, text) in cases {
            let e = DeviceError::from_code(code);
            assert!(e.meaning.starts_with(text), "{code:#X}: {}", e.meaning);
        }
        assert_eq!(DeviceError::from_code(0x06).meaning, "неизвестная ошибка");
        assert_eq!(
            DeviceError::from_code(DeviceError::NO_PAPER).english(),
            Some("no receipt paper")
        );
        assert_eq!(
            DeviceError::from_code(DeviceError::BAD_PASSWORD).english(),
            Some("wrong password")
        );
        assert!(DeviceError::from_code(0x16).is_fn_error());
        assert!(!DeviceError::from_code(0x4E).is_fn_error());
        let s = ShtrihError::from(DeviceError::from_code(0x6B)).to_string();
        assert!(s.contains("0x6B") && s.contains("Нет чековой ленты"), "{s}");
    }

    /// The Russian and English tables cannot drift apart: every code with a
    /// Russian meaning has an English one and no other code has either.
    #[test]
    fn every_code_has_an_english_meaning() {
        for code in 0..=255u8 {
            assert_eq!(
                error_meaning(code).is_some(),
                english_gloss(code).is_some(),
                "{code:#04X}: {:?} / {:?}",
                error_meaning(code),
                english_gloss(code)
            );
            let e = DeviceError::from_code(code);
            if e.is_fn_error() && e.english().is_some() {
                assert!(e.english().unwrap().starts_with("FN: "), "{code:#04X}");
            }
        }
    }
}
