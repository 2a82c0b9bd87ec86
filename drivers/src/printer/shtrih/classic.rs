//! The classic receipt commands (80h sale, 82h return of sale, 85h close,
//! 86h discount, 8Ch repeat, FCh device type) for registers whose firmware
//! has no `FF46h`/`FF45h` (they answer 37h «команда не поддерживается»).
//! Quantities are thousandths in 5 bytes, taxes are the group numbers 1…4
//! ("Налог 1…4"), payments are cash and types 2…4.

use super::commands::{Command, Response, TimeoutClass, fixed_text, le, put_le};
use super::errors::{ProtocolError, ShtrihError};

/// Codes of the classic commands.
pub mod code {
    /// «Продажа».
    pub const SALE: u16 = 0x80;
    /// «Возврат продажи».
    pub const SALE_RETURN: u16 = 0x82;
    /// «Закрытие чека».
    pub const CLOSE_CHECK: u16 = 0x85;
    /// «Скидка».
    pub const DISCOUNT: u16 = 0x86;
    /// «Повтор документа».
    pub const REPEAT_DOCUMENT: u16 = 0x8C;
    /// «Получить тип устройства» (no password).
    pub const DEVICE_TYPE: u16 = 0xFC;
}

/// Device error «Команда не поддерживается в данной реализации ККТ»: what an
/// older firmware answers to `FF45h`/`FF46h`.
pub const NOT_SUPPORTED: u8 = 0x37;

/// Text fields of the classic commands are 40 bytes.
const TEXT_LEN: usize = 40;

/// An item of 80h/82h.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicItem {
    /// 82h instead of 80h.
    pub sale_return: bool,
    /// Thousandths (1000 = one piece).
    pub quantity: u64,
    /// Kopecks.
    pub price: u64,
    /// 0…16.
    pub department: u8,
    /// Tax group 1…4, 0 = none.
    pub tax_group: u8,
    pub name: String,
}

/// Payments of 85h, kopecks: cash, then payment types 2, 3, 4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassicClose {
    pub payments: [u64; 4],
    pub text: String,
}

impl Command {
    /// 80h «Продажа» / 82h «Возврат продажи».
    pub fn classic_item(item: &ClassicItem) -> Result<Self, ShtrihError> {
        if item.department > 16 {
            return Err(ShtrihError::InvalidRequest {
                field: "department",
                reason: "0…16",
            });
        }
        if item.tax_group > 4 {
            return Err(ShtrihError::InvalidRequest {
                field: "tax_group",
                reason: "the classic commands know tax groups 1…4 only",
            });
        }
        let mut d = Vec::with_capacity(55);
        put_le(&mut d, item.quantity, 5, "quantity")?;
        put_le(&mut d, item.price, 5, "price")?;
        d.push(item.department);
        d.extend_from_slice(&[item.tax_group, 0, 0, 0]);
        fixed_text(&mut d, &item.name, TEXT_LEN);
        let code = if item.sale_return {
            code::SALE_RETURN
        } else {
            code::SALE
        };
        Ok(Self::new(code, d, TimeoutClass::Fiscal))
    }

    /// 85h «Закрытие чека» (no discount, taxes by the register).
    pub fn classic_close(c: &ClassicClose) -> Result<Self, ShtrihError> {
        let mut d = Vec::with_capacity(66);
        for p in c.payments {
            put_le(&mut d, p, 5, "payment")?;
        }
        d.extend_from_slice(&[0, 0]); // discount/allowance %
        d.extend_from_slice(&[0, 0, 0, 0]); // taxes
        fixed_text(&mut d, &c.text, TEXT_LEN);
        Ok(Self::new(code::CLOSE_CHECK, d, TimeoutClass::Fiscal))
    }

    /// 8Ch «Повтор документа».
    pub fn repeat_document() -> Self {
        Self::new(code::REPEAT_DOCUMENT, Vec::new(), TimeoutClass::Print)
    }
}

/// True for the device's answer "command not supported" (37h).
pub fn is_not_supported(e: &ShtrihError) -> bool {
    matches!(e, ShtrihError::Device(d) if d.code == NOT_SUPPORTED)
}

/// Answer of 85h: the operator and the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassicCloseResult {
    pub operator: u8,
    /// «Сдача», kopecks.
    pub change: u64,
}

impl ClassicCloseResult {
    pub fn parse(r: &Response) -> Result<Self, ProtocolError> {
        r.expect(code::CLOSE_CHECK)?;
        let d = r.need(6)?;
        Ok(Self {
            operator: d[0],
            change: le(&d[1..6]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_item_layout() {
        let c = Command::classic_item(&ClassicItem {
            sale_return: false,
            quantity: 2_500,
            price: 4_550,
            department: 1,
            tax_group: 2,
            name: "Хлеб".into(),
        })
        .unwrap();
        assert_eq!(c.code, 0x80);
        assert_eq!(
            &c.data[..15],
            &[0xC4, 9, 0, 0, 0, 0xC6, 0x11, 0, 0, 0, 1, 2, 0, 0, 0]
        );
        assert_eq!(c.data.len(), 15 + 40);
        assert_eq!(&c.data[15..19], &[0xD5, 0xEB, 0xE5, 0xE1]);
        let bad = ClassicItem {
            tax_group: 5,
            ..ClassicItem {
                sale_return: true,
                quantity: 1,
                price: 1,
                department: 1,
                tax_group: 0,
                name: String::new(),
            }
        };
        assert!(Command::classic_item(&bad).is_err());
    }

    #[test]
    fn classic_close_layout_and_answer() {
        let c = Command::classic_close(&ClassicClose {
            payments: [20_000, 0, 0, 500],
            text: String::new(),
        })
        .unwrap();
        assert_eq!(c.code, 0x85);
        assert_eq!(c.data.len(), 20 + 2 + 4 + 40);
        assert_eq!(&c.data[..5], &[0x20, 0x4E, 0, 0, 0]);
        assert_eq!(&c.data[15..20], &[0xF4, 1, 0, 0, 0]);
        let r = Response {
            command: 0x85,
            error: 0,
            data: bytes::Bytes::from_static(&[1, 0x76, 0x07, 0, 0, 0]),
        };
        let a = ClassicCloseResult::parse(&r).unwrap();
        assert_eq!((a.operator, a.change), (1, 1_910));
        let short = Response {
            command: 0x85,
            error: 0,
            data: bytes::Bytes::from_static(&[1, 0]),
        };
        assert!(ClassicCloseResult::parse(&short).is_err());
    }
}
