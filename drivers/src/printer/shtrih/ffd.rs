//! FFD 1.2 operations and the register state they need: the tax table
//! (1Fh), cash in/out (50h/51h), arbitrary TLV (FF0Ch: buyer contact,
//! cashier, correction basis), FN expiry (FF03h), OFD exchange status
//! (FF39h), correction receipts (FF4Ah) and marking codes (FF61h, FF67h,
//! FF69h, FF70h). Layouts are protocol v1.17's; integers little-endian.

use bytes::Bytes;

use super::commands::{Command, Response, TimeoutClass, to_win1251};
use super::errors::{ProtocolError, ShtrihError};

/// Command codes of this module.
pub mod code {
    /// «Чтение таблицы».
    pub const READ_TABLE: u16 = 0x1F;
    /// «Внесение».
    pub const CASH_IN: u16 = 0x50;
    /// «Выплата».
    pub const CASH_OUT: u16 = 0x51;
    /// «Запрос срока действия ФН».
    pub const FN_EXPIRY: u16 = 0xFF03;
    /// «Передать произвольную TLV структуру».
    pub const SEND_TLV: u16 = 0xFF0C;
    /// «Передать произвольную TLV структуру привязанную к операции».
    pub const SEND_OPERATION_TLV: u16 = 0xFF4D;
    /// «Получить статус информационного обмена».
    pub const EXCHANGE_STATUS: u16 = 0xFF39;
    /// «Сформировать чек коррекции V2».
    pub const CORRECTION_V2: u16 = 0xFF4A;
    /// «Проверка маркированного товара».
    pub const MARK_CHECK: u16 = 0xFF61;
    /// «Привязка маркированного товара к позиции».
    pub const MARK_BIND: u16 = 0xFF67;
    /// «Принять или отвергнуть введенный код маркировки».
    pub const MARK_ACCEPT: u16 = 0xFF69;
    /// «Запрос статуса по работе с кодами маркировки».
    pub const MARK_STATUS: u16 = 0xFF70;
}

/// Table 6 «Налоговые ставки»: field 1 the rate in hundredths of a
/// percent (2 bytes), field 2 its printed name.
pub const TAX_TABLE: u8 = 6;
/// Field «Налоговая ставка» of table 6.
pub const TAX_FIELD_RATE: u8 = 1;
/// Field «Название налога» of table 6.
pub const TAX_FIELD_NAME: u8 = 2;

/// FFD tag numbers used through FF0Ch.
pub mod tag {
    /// «Телефон или электронный адрес покупателя».
    pub const BUYER_CONTACT: u16 = 1008;
    /// «Кассир».
    pub const CASHIER: u16 = 1021;
    /// «ИНН кассира».
    pub const CASHIER_INN: u16 = 1203;
    /// «Основание для коррекции» (STLV of 1178 and 1179).
    pub const CORRECTION_BASIS: u16 = 1174;
    /// «Дата совершения корректируемого расчета» (UnixTime, 4 bytes).
    pub const CORRECTION_DATE: u16 = 1178;
    /// «Номер предписания налогового органа» / document number.
    pub const CORRECTION_NUMBER: u16 = 1179;
}

fn cmd(code: u16, data: Vec<u8>, timeout: TimeoutClass) -> Command {
    Command {
        code,
        data,
        timeout,
    }
}

fn put_money(dst: &mut Vec<u8>, value: u64, field: &'static str) -> Result<(), ShtrihError> {
    if value >> 40 != 0 {
        return Err(ShtrihError::InvalidRequest {
            field,
            reason: "value does not fit its field",
        });
    }
    dst.extend_from_slice(&value.to_le_bytes()[..5]);
    Ok(())
}

fn expect(r: &Response, command: u16, needed: usize) -> Result<&[u8], ProtocolError> {
    if r.command != command {
        return Err(ProtocolError::UnexpectedCommand {
            expected: command,
            got: r.command,
        });
    }
    if r.data.len() < needed {
        return Err(ProtocolError::ShortAnswer {
            command,
            needed,
            got: r.data.len(),
        });
    }
    Ok(&r.data)
}

/// One TLV (tag, length, value; tag and length 2 bytes LE), as FF0Ch and
/// the STLV of tag 1174 carry them.
pub fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    out.extend_from_slice(&tag.to_le_bytes());
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&value[..usize::from(len)]);
    out
}

/// A string TLV in Windows-1251 (FFD strings are CP866 in the FN; the
/// register converts from its own code page).
pub fn tlv_text(tag: u16, text: &str) -> Vec<u8> {
    tlv(tag, &to_win1251(text))
}

/// «Система налогообложения» bits (tag 1055) as FFD 1.2 names them. ЕНВД
/// (bit 3) was abolished on 1 January 2021 and is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TaxSystem {
    /// ОСН.
    Osn = 1,
    /// УСН доход.
    UsnIncome = 2,
    /// УСН доход минус расход.
    UsnIncomeExpense = 4,
    /// ЕСХН.
    Eshn = 16,
    /// ПСН.
    Patent = 32,
}

/// «Тип коррекции» of FF4Ah (tag 1173).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CorrectionKind {
    /// 0 – самостоятельно.
    SelfInitiated = 0,
    /// 1 – по предписанию.
    Ordered = 1,
}

/// Fields of FF4Ah «Сформировать чек коррекции V2».
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectionV2 {
    pub kind: CorrectionKind,
    /// «Признак расчета» (tag 1054): 1 приход, 2 возврат прихода, 3 расход,
    /// 4 возврат расхода.
    pub operation: u8,
    /// «Сумма расчёта», kopecks.
    pub total: u64,
    /// Cash, electronic, prepayment, postpayment, counter-provision.
    pub payments: [u64; 5],
    /// The six tax sums in the register's table order (taxes 1 to 6).
    pub taxes: [u64; 6],
    /// [`TaxSystem`] bit.
    pub tax_system: u8,
}

impl CorrectionV2 {
    /// FF4Ah: 1 + 1 + 5 + 5×5 + 6×5 + 1 = 63 bytes after the password.
    pub fn command(&self) -> Result<Command, ShtrihError> {
        let mut d = Vec::with_capacity(63);
        d.push(self.kind as u8);
        d.push(self.operation);
        put_money(&mut d, self.total, "total")?;
        for p in self.payments {
            put_money(&mut d, p, "payment")?;
        }
        for t in self.taxes {
            put_money(&mut d, t, "tax")?;
        }
        d.push(self.tax_system);
        Ok(cmd(code::CORRECTION_V2, d, TimeoutClass::Fiscal))
    }
}

/// Answer of FF4Ah.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrectionResult {
    /// «Номер чека».
    pub check_number: u16,
    /// «Номер ФД».
    pub fd_number: u32,
    /// «Фискальный признак».
    pub fiscal_sign: u32,
}

impl CorrectionResult {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        let d = expect(r, code::CORRECTION_V2, 10)?;
        Ok(Self {
            check_number: u16::from_le_bytes([d[0], d[1]]),
            fd_number: u32::from_le_bytes([d[2], d[3], d[4], d[5]]),
            fiscal_sign: u32::from_le_bytes([d[6], d[7], d[8], d[9]]),
        })
    }
}

/// 1Fh «Чтение таблицы» (system administrator's password).
pub fn read_table(table: u8, row: u16, field: u8) -> Command {
    let mut d = vec![table];
    d.extend_from_slice(&row.to_le_bytes());
    d.push(field);
    cmd(code::READ_TABLE, d, TimeoutClass::Query)
}

/// The value of a 1Fh answer.
pub fn table_value(r: &Response) -> Result<Bytes, ProtocolError> {
    expect(r, code::READ_TABLE, 1)?;
    Ok(r.data.clone())
}

/// A numeric table field (little-endian, 1 to 8 bytes).
pub fn table_number(r: &Response) -> Result<u64, ProtocolError> {
    let v = table_value(r)?;
    Ok(v.iter()
        .take(8)
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// 50h «Внесение» of `kopecks`.
pub fn cash_in(kopecks: u64) -> Result<Command, ShtrihError> {
    let mut d = Vec::with_capacity(5);
    put_money(&mut d, kopecks, "sum")?;
    Ok(cmd(code::CASH_IN, d, TimeoutClass::Fiscal))
}

/// 51h «Выплата» of `kopecks`.
pub fn cash_out(kopecks: u64) -> Result<Command, ShtrihError> {
    let mut d = Vec::with_capacity(5);
    put_money(&mut d, kopecks, "sum")?;
    Ok(cmd(code::CASH_OUT, d, TimeoutClass::Fiscal))
}

/// «Сквозной номер документа» from a 50h/51h answer.
pub fn cash_document_number(r: &Response) -> Result<u16, ProtocolError> {
    if r.command != code::CASH_IN && r.command != code::CASH_OUT {
        return Err(ProtocolError::UnexpectedCommand {
            expected: code::CASH_IN,
            got: r.command,
        });
    }
    let d = expect(r, r.command, 3)?;
    Ok(u16::from_le_bytes([d[1], d[2]]))
}

/// FF0Ch with one TLV structure (at most 250 bytes).
pub fn send_tlv(structure: &[u8]) -> Result<Command, ShtrihError> {
    if structure.len() > 250 {
        return Err(ShtrihError::InvalidRequest {
            field: "tlv",
            reason: "at most 250 bytes",
        });
    }
    Ok(cmd(
        code::SEND_TLV,
        structure.to_vec(),
        TimeoutClass::Fiscal,
    ))
}

/// FF4Dh: a TLV bound to the last operation (tag 2108 «мера количества»,
/// at most 250 bytes).
pub fn send_operation_tlv(structure: &[u8]) -> Result<Command, ShtrihError> {
    let mut c = send_tlv(structure)?;
    c.code = code::SEND_OPERATION_TLV;
    Ok(c)
}

/// Tag 2108 «мера количества предмета расчета» (1 byte).
pub const MEASURE: u16 = 2108;

/// FF03h «Запрос срока действия ФН».
pub fn fn_expiry() -> Command {
    cmd(code::FN_EXPIRY, Vec::new(), TimeoutClass::Query)
}

/// The FN's end of validity, `[YY, MM, DD]`.
pub fn parse_fn_expiry(r: &Response) -> Result<[u8; 3], ProtocolError> {
    let d = expect(r, code::FN_EXPIRY, 3)?;
    Ok([d[0], d[1], d[2]])
}

/// FF39h «Получить статус информационного обмена».
pub fn exchange_status() -> Command {
    cmd(code::EXCHANGE_STATUS, Vec::new(), TimeoutClass::Query)
}

/// Answer of FF39h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeStatus {
    /// «Статус информационного обмена» bits.
    pub flags: u8,
    /// «Состояние чтения сообщения».
    pub reading: bool,
    /// «Количество сообщений для ОФД».
    pub unsent: u16,
    /// «Номер документа для ОФД первого в очереди».
    pub first_unsent: u32,
    /// Its date and time, YY MM DD hh mm.
    pub first_unsent_at: [u8; 5],
}

impl ExchangeStatus {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        let d = expect(r, code::EXCHANGE_STATUS, 13)?;
        Ok(Self {
            flags: d[0],
            reading: d[1] == 1,
            unsent: u16::from_le_bytes([d[2], d[3]]),
            first_unsent: u32::from_le_bytes([d[4], d[5], d[6], d[7]]),
            first_unsent_at: [d[8], d[9], d[10], d[11], d[12]],
        })
    }
}

/// FF61h «Проверка маркированного товара».
///
/// `planned_status` is tag 2003 (1 piece sold, 2 measured sold, 3 piece
/// returned, 4 measured returned, …); `measure_tlv` carries tags 2108 and
/// 1023 for a partial disposal.
pub fn mark_check(
    code: &[u8],
    planned_status: u8,
    measure_tlv: &[u8],
) -> Result<Command, ShtrihError> {
    let x = u8::try_from(code.len()).map_err(|_| ShtrihError::InvalidRequest {
        field: "marking_code",
        reason: "at most 255 bytes",
    })?;
    let y = u8::try_from(measure_tlv.len()).map_err(|_| ShtrihError::InvalidRequest {
        field: "tlv",
        reason: "at most 255 bytes",
    })?;
    let mut d = vec![planned_status, 0, x, y];
    d.extend_from_slice(code);
    d.extend_from_slice(measure_tlv);
    Ok(cmd(self::code::MARK_CHECK, d, TimeoutClass::Fiscal))
}

/// A marking-code check result (FF61h answer, FF67h's tail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkCheck {
    /// Tag 2004: bit 0 checked by the FN, bit 1 the result positive.
    pub local_status: u8,
    /// Why the FN did not check it (0 it did).
    pub local_reason: u8,
    /// Tag 2100, the recognised code type.
    pub code_type: u8,
    /// The FN's answer to the online check; 0xFF no answer in time.
    pub online_code: Option<u8>,
    /// Tag 2106, the check result; `None` when the server did not answer.
    pub result: Option<u8>,
    /// Server's TLV list.
    pub tlv: Bytes,
}

impl MarkCheck {
    /// Tag 2106 bits 1 and 3: code and status checked and correct.
    pub fn positive(&self) -> bool {
        match self.result {
            Some(r) => r & 0b1010 == 0b1010,
            None => self.local_status & 0b10 != 0,
        }
    }

    fn from_bytes(d: &Bytes, command: u16) -> Result<Self, ProtocolError> {
        if d.len() < 4 {
            return Err(ProtocolError::ShortAnswer {
                command,
                needed: 4,
                got: d.len(),
            });
        }
        let extra = usize::from(d[3]);
        let online_code = (extra >= 1).then(|| d.get(4).copied()).flatten();
        let result = (extra >= 2).then(|| d.get(5).copied()).flatten();
        let end = (4 + extra).min(d.len());
        Ok(Self {
            local_status: d[0],
            local_reason: d[1],
            code_type: d[2],
            online_code,
            result,
            tlv: d.slice(6.min(end)..end),
        })
    }

    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        expect(r, code::MARK_CHECK, 4)?;
        Self::from_bytes(&r.data, code::MARK_CHECK)
    }
}

/// FF67h «Привязка маркированного товара к позиции».
pub fn mark_bind(code: &[u8]) -> Result<Command, ShtrihError> {
    let n = u8::try_from(code.len()).map_err(|_| ShtrihError::InvalidRequest {
        field: "marking_code",
        reason: "at most 255 bytes",
    })?;
    let mut d = vec![n];
    d.extend_from_slice(code);
    Ok(cmd(self::code::MARK_BIND, d, TimeoutClass::Fiscal))
}

/// Answer of FF67h.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkBind {
    /// First two bytes of «код товара».
    pub product_code: [u8; 2],
    /// «Тип Data Matrix».
    pub matrix_type: u8,
    /// The check the register ran itself if FF61h was not sent.
    pub check: Option<MarkCheck>,
}

impl MarkBind {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        let d = expect(r, code::MARK_BIND, 3)?;
        let rest = r.data.slice(3..);
        Ok(Self {
            product_code: [d[0], d[1]],
            matrix_type: d[2],
            check: if rest.is_empty() {
                None
            } else {
                Some(MarkCheck::from_bytes(&rest, code::MARK_BIND)?)
            },
        })
    }
}

/// FF69h «Принять или отвергнуть введенный код маркировки».
pub fn mark_accept(accept: bool) -> Command {
    cmd(
        code::MARK_ACCEPT,
        vec![u8::from(accept)],
        TimeoutClass::Fiscal,
    )
}

/// The tag 2106 result the register kept after FF69h.
pub fn parse_mark_accept(r: &Response) -> Result<u8, ProtocolError> {
    Ok(expect(r, code::MARK_ACCEPT, 1)?[0])
}

/// FF70h «Запрос статуса по работе с кодами маркировки».
pub fn mark_status() -> Command {
    cmd(code::MARK_STATUS, Vec::new(), TimeoutClass::Query)
}

/// Answer of FF70h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkStatus {
    /// «Состояние по проверке КМ» (0 table full, 1 none being checked, …).
    pub check_state: u8,
    /// «Состояние по формированию уведомления» (2 blocked: storage full).
    pub notice_state: u8,
    /// «Флаги разрешения команд работы с КМ».
    pub permissions: u8,
    /// «Количество сохранённых результатов проверки КМ».
    pub saved_results: u8,
    /// «Количество КМ, включенных в уведомление».
    pub in_notice: u8,
    /// «Заполнение области хранения уведомлений» in percent (model
    /// dependent; the remaining bytes of the 8).
    pub notice_fill: u8,
    /// «Количество уведомлений в очереди», 2 bytes.
    pub notices_queued: u16,
}

impl MarkStatus {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        let d = expect(r, code::MARK_STATUS, 8)?;
        Ok(Self {
            check_state: d[0],
            notice_state: d[1],
            permissions: d[2],
            saved_results: d[3],
            in_notice: d[4],
            notice_fill: d[5],
            notices_queued: u16::from_le_bytes([d[6], d[7]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No answer bytes make a parser panic: it parses or says why.
        #[test]
        fn parsers_never_panic(
            code in prop::sample::select(vec![0x1Fu16, 0x50, 0x51, 0xFF03, 0xFF39, 0xFF4A, 0xFF61, 0xFF67, 0xFF69, 0xFF70]),
            data in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let r = Response { command: code, error: 0, data: Bytes::from(data) };
            let _ = table_number(&r);
            let _ = cash_document_number(&r);
            let _ = parse_fn_expiry(&r);
            let _ = ExchangeStatus::parse(&r);
            let _ = CorrectionResult::parse(&r);
            let _ = MarkCheck::parse(&r).map(|m| m.positive());
            let _ = MarkBind::parse(&r);
            let _ = parse_mark_accept(&r);
            let _ = MarkStatus::parse(&r);
        }

        /// Every marking code up to 255 bytes encodes with its length byte.
        #[test]
        fn marking_codes_encode_with_their_length(code in prop::collection::vec(0x20u8..0x7F, 1..=255)) {
            let c = mark_check(&code, 1, &[]).unwrap();
            prop_assert_eq!(usize::from(c.data[2]), code.len());
            prop_assert_eq!(&c.data[4..], &code[..]);
            let b = mark_bind(&code).unwrap();
            prop_assert_eq!(usize::from(b.data[0]), code.len());
        }
    }

    fn resp(body: &[u8]) -> Response {
        Response::from_body(body).unwrap()
    }

    #[test]
    fn read_table_layout() {
        // «Длина сообщения: 9 байт»: 1 + 4 + 1 + 2 + 1.
        let c = read_table(TAX_TABLE, 2, TAX_FIELD_RATE);
        assert_eq!(c.body(30), [0x1F, 30, 0, 0, 0, 6, 2, 0, 1]);
        assert_eq!(table_number(&resp(&[0x1F, 0, 0x98, 0x08])).unwrap(), 2200);
        assert!(table_number(&resp(&[0x1E, 0, 1])).is_err());
    }

    #[test]
    fn cash_in_out_layout() {
        // «Длина сообщения: 10 байт».
        let c = cash_in(150_000).unwrap();
        assert_eq!(c.body(1), [0x50, 1, 0, 0, 0, 0xF0, 0x49, 0x02, 0, 0]);
        assert_eq!(
            cash_out(1).unwrap().body(0),
            [0x51, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        assert!(cash_in(1 << 40).is_err());
        assert_eq!(
            cash_document_number(&resp(&[0x51, 0, 30, 0x34, 0x12])).unwrap(),
            0x1234
        );
        assert!(cash_document_number(&resp(&[0x50, 0, 30])).is_err());
    }

    #[test]
    fn tlv_and_ff0c() {
        let t = tlv_text(tag::BUYER_CONTACT, "+79161234567");
        assert_eq!(&t[..4], &[0xF0, 0x03, 12, 0]);
        let c = send_tlv(&t).unwrap();
        assert_eq!(&c.body(30)[..6], &[0xFF, 0x0C, 30, 0, 0, 0]);
        assert_eq!(c.body(30).len(), 6 + 16);
        assert!(send_tlv(&[0; 251]).is_err());
        let m = send_operation_tlv(&tlv(MEASURE, &[11])).unwrap();
        assert_eq!(m.body(30), [0xFF, 0x4D, 30, 0, 0, 0, 0x3C, 0x08, 1, 0, 11]);
        assert_eq!(tlv_text(tag::CASHIER, "Иванова")[4], 0xC8);
    }

    #[test]
    fn correction_layout() {
        let c = CorrectionV2 {
            kind: CorrectionKind::SelfInitiated,
            operation: 1,
            total: 10_000,
            payments: [10_000, 0, 0, 0, 0],
            taxes: [1_803, 0, 0, 0, 0, 0],
            tax_system: TaxSystem::Osn as u8,
        };
        // «Длина сообщения: 69 байт»: 2 + 4 + 63.
        let cmd = c.command().unwrap();
        assert_eq!(cmd.body(0).len(), 69);
        assert_eq!(&cmd.data[..7], &[0, 1, 0x10, 0x27, 0, 0, 0]);
        assert_eq!(&cmd.data[32..37], &[0x0B, 0x07, 0, 0, 0]);
        assert_eq!(cmd.data[62], 1);
        let mut body = vec![0xFF, 0x4A, 0, 7, 0];
        body.extend(12u32.to_le_bytes());
        body.extend(0xABCDu32.to_le_bytes());
        let r = CorrectionResult::parse(&resp(&body)).unwrap();
        assert_eq!(
            (r.check_number, r.fd_number, r.fiscal_sign),
            (7, 12, 0xABCD)
        );
    }

    #[test]
    fn fn_expiry_and_exchange() {
        assert_eq!(fn_expiry().body(30), [0xFF, 0x03, 30, 0, 0, 0]);
        assert_eq!(
            parse_fn_expiry(&resp(&[0xFF, 0x03, 0, 27, 6, 30])).unwrap(),
            [27, 6, 30]
        );
        let mut body = vec![0xFF, 0x39, 0, 0b10, 0, 3, 0];
        body.extend(41u32.to_le_bytes());
        body.extend([26, 11, 30, 9, 15]);
        // «Длина сообщения: 16 байт».
        assert_eq!(body.len(), 16);
        let s = ExchangeStatus::parse(&resp(&body)).unwrap();
        assert_eq!((s.unsent, s.first_unsent), (3, 41));
        assert_eq!(s.first_unsent_at, [26, 11, 30, 9, 15]);
        assert!(ExchangeStatus::parse(&resp(&[0xFF, 0x39, 0, 1])).is_err());
    }

    #[test]
    fn marking_layouts() {
        let km = b"010460406000590021N4N57RSCBUZTQ\x1d2403004002910161218\x1d1724010191ffd0\x1d92tIAF/YVoU4roQS3M/m4z78yFq0fc/WsSmLeX5QkF/YVWwy8IMYAeiQ91Xa2z/fFSJcOkb2N+uUUmfr4n0mOX0Q==";
        let c = mark_check(km, 1, &[]).unwrap();
        let body = c.body(30);
        // «Длина сообщения: 10+X+Y байт».
        assert_eq!(body.len(), 10 + km.len());
        assert_eq!(&body[6..10], &[1, 0, km.len() as u8, 0]);
        assert_eq!(&body[10..], km);
        assert!(mark_check(&[b'0'; 256], 1, &[]).is_err());

        let ok = MarkCheck::parse(&resp(&[0xFF, 0x61, 0, 0b11, 0, 3, 2, 0, 0x0F])).unwrap();
        assert!(ok.positive());
        assert_eq!((ok.online_code, ok.result), (Some(0), Some(0x0F)));
        let bad = MarkCheck::parse(&resp(&[0xFF, 0x61, 0, 0b01, 0, 3, 2, 0, 0x05])).unwrap();
        assert!(!bad.positive());
        let offline = MarkCheck::parse(&resp(&[0xFF, 0x61, 0, 0b11, 0, 3, 0])).unwrap();
        assert!(offline.positive() && offline.result.is_none());
        // A length byte larger than the answer: no panic, truncated.
        assert!(MarkCheck::parse(&resp(&[0xFF, 0x61, 0, 0, 0, 3, 200, 0])).is_ok());

        let b = mark_bind(km).unwrap();
        assert_eq!(b.body(30).len(), 7 + km.len());
        let r = MarkBind::parse(&resp(&[0xFF, 0x67, 0, 0x04, 0x60, 1])).unwrap();
        assert_eq!((r.matrix_type, r.check), (1, None));
        let r =
            MarkBind::parse(&resp(&[0xFF, 0x67, 0, 0x04, 0x60, 1, 3, 0, 3, 2, 0, 0x0F])).unwrap();
        assert!(r.check.unwrap().positive());

        assert_eq!(mark_accept(false).body(30), [0xFF, 0x69, 30, 0, 0, 0, 0]);
        assert_eq!(
            parse_mark_accept(&resp(&[0xFF, 0x69, 0, 0x0F])).unwrap(),
            0x0F
        );
        assert_eq!(mark_status().body(30).len(), 6);
        let s = MarkStatus::parse(&resp(&[0xFF, 0x70, 0, 1, 0, 0x0F, 2, 2, 10, 5, 0])).unwrap();
        assert_eq!(
            (s.check_state, s.saved_results, s.notices_queued),
            (1, 2, 5)
        );
    }
}
