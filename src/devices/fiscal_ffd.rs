//! FFD 1.2 steps of the fiscal actor: the tax-table check at link start,
//! the ФН/OFD state for `fiscal.status` and its warnings, marking-code
//! checks, document tags (buyer contact, cashier, correction basis), cash
//! in/out and correction receipts. Each step is a few device commands; the
//! journal and recovery around them stay in `fiscal.rs`.

use std::collections::BTreeSet;

use posbridge_drivers::printer::shtrih::ffd::{
    self, CorrectionKind, CorrectionResult, CorrectionV2, ExchangeStatus, MarkCheck, tag,
};
use posbridge_drivers::printer::shtrih::{Command, FnStatus, ShtrihClient, ShtrihError};
use posbridge_drivers::transport::BoxTransport;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ffd::{Tax, TaxMap, Taxation};
use super::fiscal::{Payment, PaymentKind, ReceiptKind, kopecks};

type Client = ShtrihClient<BoxTransport>;

/// The cashier (tags 1021 and 1203).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cashier {
    /// Name and position, up to 64 characters.
    pub name: String,
    /// The cashier's 12-digit INN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inn: Option<String>,
}

/// `self` or `ordered` (tag 1173).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionType {
    /// Самостоятельно.
    #[serde(rename = "self")]
    SelfInitiated,
    /// По предписанию налогового органа.
    Ordered,
}

/// The basis of a correction (tag 1174: 1178 date, 1179 number).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBasis {
    /// The date of the corrected settlement, `YYYY-MM-DD`.
    pub date: String,
    /// The order's or document's number; up to 32 characters.
    pub number: String,
}

/// A tax sum of a correction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorrectionTax {
    /// The rate.
    pub tax: Tax,
    /// The tax amount (for `vat0` and `none`, the amount settled).
    #[serde(with = "rust_decimal::serde::str")]
    pub sum: Decimal,
}

/// A correction receipt as `fiscal.correction` accepts it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    /// `sell` or `sell_return` (tag 1054).
    #[serde(rename = "type")]
    pub kind: ReceiptKind,
    /// `self` or `ordered`.
    pub correction: CorrectionType,
    /// Why: date and number.
    pub basis: CorrectionBasis,
    /// The amount settled.
    #[serde(with = "rust_decimal::serde::str")]
    pub sum: Decimal,
    /// How it was paid: `cash` or `electronically`.
    pub payments: Vec<Payment>,
    /// Tax sums.
    #[serde(default)]
    pub taxes: Vec<CorrectionTax>,
    /// Taxation system; default `osn`.
    #[serde(default)]
    pub taxation: Option<Taxation>,
    /// The cashier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<Cashier>,
}

/// `fiscal.cash_in` / `fiscal.cash_out`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CashRequest {
    /// The amount.
    #[serde(with = "rust_decimal::serde::str")]
    pub sum: Decimal,
}

/// Reads the register's table 6 rows the mapping uses and checks each
/// holds the rate. `Err` names the first missing or different rate.
pub(super) async fn check_taxes(c: &mut Client, map: &TaxMap) -> Result<(), String> {
    for (tax, pos) in map.iter() {
        let r = c
            .execute(&ffd::read_table(
                ffd::TAX_TABLE,
                u16::from(pos),
                ffd::TAX_FIELD_RATE,
            ))
            .await
            .map_err(|e| format!("the register's tax table (table 6) is unreadable: {e}"))?;
        let rate = ffd::table_number(&r).map_err(|e| format!("tax table row {pos}: {e}"))?;
        if rate != tax.table_rate() {
            return Err(format!(
                "{tax} is mapped to register tax {pos}, which holds {}.{:02} % instead of {}.{:02} %: set [printer.taxes] or reprogram table 6",
                rate / 100,
                rate % 100,
                tax.table_rate() / 100,
                tax.table_rate() % 100
            ));
        }
    }
    Ok(())
}

fn date(d: [u8; 3]) -> String {
    format!("20{:02}-{:02}-{:02}", d[0], d[1], d[2])
}

/// Days the oldest unsent document may wait before `ofd_backlog`.
pub const OFD_BACKLOG_DAYS: i64 = 3;

/// A FN DATE_TIME (YY MM DD hh mm).
fn fn_time(t: [u8; 5]) -> Option<time::PrimitiveDateTime> {
    let month = time::Month::try_from(t[1]).ok()?;
    let date = time::Date::from_calendar_date(2000 + i32::from(t[0]), month, t[2]).ok()?;
    let clock = time::Time::from_hms(t[3], t[4], 0).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock))
}

/// ФН warning flags (FF01h «Флаги предупреждения», the FN's own) by name.
const WARNINGS: [(u8, &str); 4] = [
    (0, "fn_replace_urgently"),
    (1, "fn_expiring"),
    (2, "fn_memory_nearly_full"),
    (3, "ofd_timeout"),
];

/// The ФН and OFD state for `fiscal.status`, and the warnings now raised.
pub(super) async fn fn_state(
    c: &mut Client,
) -> Result<(Value, BTreeSet<&'static str>), ShtrihError> {
    let fs = FnStatus::parse(&c.execute(&Command::fn_status()).await?)?;
    let expiry = ffd::parse_fn_expiry(&c.execute(&ffd::fn_expiry()).await?)?;
    let ex = ExchangeStatus::parse(&c.execute(&ffd::exchange_status()).await?)?;
    let mut warnings: BTreeSet<&'static str> = WARNINGS
        .iter()
        .filter(|(bit, _)| fs.warning_flags & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect();
    // The FN stops fiscalising after 30 days without the OFD; three days
    // of backlog (by the register's own clock) is worth a warning.
    if ex.unsent > 0
        && let (Some(oldest), Some(now)) = (fn_time(ex.first_unsent_at), fn_time(fs.date_time))
        && now - oldest > time::Duration::days(OFD_BACKLOG_DAYS)
    {
        warnings.insert("ofd_backlog");
    }
    // FF70h: registers without marking support refuse it; that is no error.
    let marking = match c.execute(&ffd::mark_status()).await {
        Ok(r) => ffd::MarkStatus::parse(&r).ok().map(|m| {
            json!({
                "check_state": m.check_state,
                "notice_state": m.notice_state,
                "saved_results": m.saved_results,
                "in_notice": m.in_notice,
                "notices_queued": m.notices_queued,
            })
        }),
        Err(ShtrihError::Device(_)) => None,
        Err(e) => return Err(e),
    };
    // By the register's own clock, so a till clock in another time zone
    // does not skew the OFD backlog's age (posbridge_fiscal_oldest_unsent_seconds).
    let age = match (fn_time(ex.first_unsent_at), fn_time(fs.date_time)) {
        (Some(oldest), Some(now)) if ex.unsent > 0 => Some((now - oldest).whole_seconds().max(0)),
        _ => None,
    };
    let t = ex.first_unsent_at;
    let oldest = (ex.unsent > 0).then(|| {
        format!(
            "20{:02}-{:02}-{:02}T{:02}:{:02}",
            t[0], t[1], t[2], t[3], t[4]
        )
    });
    Ok((
        json!({
            "fn_number": fs.fn_number,
            "last_document": fs.last_fd_number,
            "expires": date(expiry),
            "ofd": {
                "unsent": ex.unsent,
                "oldest_unsent_number": (ex.unsent > 0).then_some(ex.first_unsent),
                "oldest_unsent_at": oldest,
                "oldest_unsent_age_seconds": age,
            },
            "warnings": warnings,
            "marking": marking,
        }),
        warnings,
    ))
}

/// The register's tax position for a rate, or why not.
pub(super) fn tax_bit(map: &TaxMap, t: Tax) -> Result<u8, String> {
    map.position(t)
        .map(|p| 1 << (p - 1))
        .ok_or_else(|| format!("{t} is not mapped to a register tax: add it to [printer.taxes]"))
}

/// FVLN of a quantity (tag 1023): decimals, then the integer LE.
fn fvln(q: Decimal) -> Vec<u8> {
    let q = q.normalize();
    let scale = q.scale() as u8;
    let m = q.mantissa().unsigned_abs() as u64;
    let bytes = m.to_le_bytes();
    let n = 8 - (m.leading_zeros() / 8) as usize;
    let mut out = vec![scale];
    out.extend_from_slice(&bytes[..n.max(1)]);
    out
}

/// The result of checking one marking code.
#[derive(Debug, Clone, Serialize)]
pub(super) struct MarkOutcome {
    pub item: usize,
    pub accepted: bool,
    /// Tag 2106 (or the local status when the server did not answer).
    pub result: u8,
    pub code_type: u8,
}

/// FF61h then FF69h for one code: the register's answer decides.
pub(super) async fn check_mark(
    c: &mut Client,
    item: usize,
    code: &str,
    kind: ReceiptKind,
    quantity: Decimal,
    measure: Option<u8>,
) -> Result<MarkOutcome, ShtrihError> {
    let fractional = quantity.fract() != Decimal::ZERO;
    // Tag 2003: 1 piece sold, 2 measured sold, 3 piece returned, 4 measured returned.
    let planned = match (kind, fractional) {
        (ReceiptKind::Sell, false) => 1,
        (ReceiptKind::Sell, true) => 2,
        (ReceiptKind::SellReturn, false) => 3,
        (ReceiptKind::SellReturn, true) => 4,
    };
    let mut extra = Vec::new();
    if fractional {
        extra.extend(ffd::tlv(ffd::MEASURE, &[measure.unwrap_or(0)]));
        extra.extend(ffd::tlv(1023, &fvln(quantity)));
    }
    let r = c
        .execute(&ffd::mark_check(code.as_bytes(), planned, &extra)?)
        .await?;
    let check = MarkCheck::parse(&r)?;
    let accepted = check.positive();
    let a = c.execute(&ffd::mark_accept(accepted)).await?;
    let result = ffd::parse_mark_accept(&a)
        .ok()
        .or(check.result)
        .unwrap_or(check.local_status);
    Ok(MarkOutcome {
        item,
        accepted,
        result,
        code_type: check.code_type,
    })
}

/// After an item's operation: FF67h binds its marking code, FF4Dh sends
/// its measure (tag 2108).
pub(super) async fn item_tags(
    c: &mut Client,
    code: Option<&str>,
    measure: Option<u8>,
) -> Result<(), ShtrihError> {
    if let Some(code) = code {
        c.execute(&ffd::mark_bind(code.as_bytes())?).await?;
    }
    if let Some(m) = measure {
        c.execute(&ffd::send_operation_tlv(&ffd::tlv(ffd::MEASURE, &[m]))?)
            .await?;
    }
    Ok(())
}

/// FF0Ch document tags: buyer contact and cashier.
pub(super) async fn send_tags(
    c: &mut Client,
    contact: Option<&str>,
    cashier: Option<&Cashier>,
) -> Result<(), ShtrihError> {
    if let Some(contact) = contact {
        c.execute(&ffd::send_tlv(&ffd::tlv_text(tag::BUYER_CONTACT, contact))?)
            .await?;
    }
    if let Some(k) = cashier {
        c.execute(&ffd::send_tlv(&ffd::tlv_text(tag::CASHIER, &k.name))?)
            .await?;
        if let Some(inn) = &k.inn {
            c.execute(&ffd::send_tlv(&ffd::tlv_text(tag::CASHIER_INN, inn))?)
                .await?;
        }
    }
    Ok(())
}

fn unix_date(d: &str) -> Option<u32> {
    let date =
        time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    u32::try_from(date.midnight().assume_utc().unix_timestamp()).ok()
}

/// Checks a basis date; `None` if not a `YYYY-MM-DD` date after 1970.
pub fn basis_date_valid(d: &str) -> bool {
    unix_date(d).is_some()
}

/// FF0Ch basis, then FF4Ah; the result for the journal.
pub(super) async fn correction(
    c: &mut Client,
    map: &TaxMap,
    req: &CorrectionRequest,
) -> Result<Result<CorrectionResult, String>, ShtrihError> {
    let mut taxes = [0u64; 6];
    for t in &req.taxes {
        let Some(pos) = map.position(t.tax).filter(|p| *p <= 6) else {
            return Ok(Err(format!(
                "{} must be mapped to register tax 1 to 6 for FF4Ah corrections",
                t.tax
            )));
        };
        taxes[usize::from(pos) - 1] += kopecks(t.sum).unwrap_or(0);
    }
    let mut payments = [0u64; 5];
    for p in &req.payments {
        let i = match p.kind {
            PaymentKind::Cash => 0,
            PaymentKind::Electronically => 1,
            PaymentKind::Points => 4,
            // FF4Ah's «сумма по чеку предоплатой» (tag 1215).
            PaymentKind::Prepayment => 2,
        };
        payments[i] += kopecks(p.sum).unwrap_or(0);
    }
    let when = unix_date(&req.basis.date).unwrap_or(0);
    let mut basis = ffd::tlv(tag::CORRECTION_DATE, &when.to_le_bytes());
    basis.extend(ffd::tlv_text(tag::CORRECTION_NUMBER, &req.basis.number));
    c.execute(&ffd::send_tlv(&ffd::tlv(tag::CORRECTION_BASIS, &basis))?)
        .await?;
    send_tags(c, None, req.cashier.as_ref()).await?;
    let cmd = CorrectionV2 {
        kind: match req.correction {
            CorrectionType::SelfInitiated => CorrectionKind::SelfInitiated,
            CorrectionType::Ordered => CorrectionKind::Ordered,
        },
        operation: match req.kind {
            ReceiptKind::Sell => 1,
            ReceiptKind::SellReturn => 2,
        },
        total: kopecks(req.sum).unwrap_or(0),
        payments,
        taxes,
        tax_system: req.taxation.unwrap_or(Taxation::Osn).bit(),
    }
    .command()?;
    let r = c.execute(&cmd).await?;
    Ok(Ok(CorrectionResult::parse(&r)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn fvln_quantity() {
        assert_eq!(fvln(dec!(0.5)), [1, 5]);
        assert_eq!(fvln(dec!(1.250)), [2, 125]);
        assert_eq!(fvln(dec!(300.001)), [3, 0xE1, 0x93, 0x04]);
    }

    #[test]
    fn fn_times() {
        let a = fn_time([26, 11, 30, 9, 15]).unwrap();
        let b = fn_time([26, 12, 3, 9, 16]).unwrap();
        assert!(b - a > time::Duration::days(OFD_BACKLOG_DAYS));
        assert!(fn_time([26, 13, 1, 0, 0]).is_none());
        assert!(fn_time([0, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn basis_dates() {
        assert!(basis_date_valid("2026-11-30"));
        assert!(!basis_date_valid("2026-02-30"));
        assert!(!basis_date_valid("30.11.2026"));
        assert_eq!(unix_date("1970-01-02"), Some(86_400));
    }
}
