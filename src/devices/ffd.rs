//! FFD 1.2 vocabulary of the fiscal API: VAT rates by their legal names as
//! of 1 January 2026, taxation systems, the register's tax-table mapping,
//! and the strict checks of marking codes, buyer contacts and INNs.
//!
//! VAT: Federal law 425-FZ raised the standard rate from
//! 20 % to 22 % from 1 January 2026; FNS order ЕД-7-20/1050@ of 08.12.2025
//! amended the fiscal document formats (tag 1199 «ставка НДС»: 1 — 22 %,
//! 2 — 10 %, 3 — 22/122, 4 — 10/110, 5 — 0 %, 6 — без НДС, 7 — 5 %,
//! 8 — 7 %, 9 — 5/105, 10 — 7/107). A receipt with 20 % is an error now,
//! so the old names are refused, with the name that replaced them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An item's VAT by its legal name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tax {
    /// НДС 22 %.
    Vat22,
    /// НДС 10 %.
    Vat10,
    /// НДС 5 % (УСН payers above the threshold).
    Vat5,
    /// НДС 7 %.
    Vat7,
    /// НДС 0 %.
    Vat0,
    /// Без НДС.
    None,
    /// НДС 22/122 (calculated).
    Vat22_122,
    /// НДС 10/110 (calculated).
    Vat10_110,
    /// НДС 5/105 (calculated).
    Vat5_105,
    /// НДС 7/107 (calculated).
    Vat7_107,
}

impl Tax {
    /// Every rate, in tag 1199 order.
    pub const ALL: [Tax; 10] = [
        Tax::Vat22,
        Tax::Vat10,
        Tax::Vat22_122,
        Tax::Vat10_110,
        Tax::Vat0,
        Tax::None,
        Tax::Vat5,
        Tax::Vat7,
        Tax::Vat5_105,
        Tax::Vat7_107,
    ];

    /// The API and configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Tax::Vat22 => "vat22",
            Tax::Vat10 => "vat10",
            Tax::Vat5 => "vat5",
            Tax::Vat7 => "vat7",
            Tax::Vat0 => "vat0",
            Tax::None => "none",
            Tax::Vat22_122 => "vat22_122",
            Tax::Vat10_110 => "vat10_110",
            Tax::Vat5_105 => "vat5_105",
            Tax::Vat7_107 => "vat7_107",
        }
    }

    /// FFD 1.2 tag 1199 value.
    pub fn tag1199(self) -> u8 {
        match self {
            Tax::Vat22 => 1,
            Tax::Vat10 => 2,
            Tax::Vat22_122 => 3,
            Tax::Vat10_110 => 4,
            Tax::Vat0 => 5,
            Tax::None => 6,
            Tax::Vat5 => 7,
            Tax::Vat7 => 8,
            Tax::Vat5_105 => 9,
            Tax::Vat7_107 => 10,
        }
    }

    /// The rate the register's tax table must hold for it, in hundredths
    /// of a percent (table 6, field 1); calculated rates hold the percent.
    pub fn table_rate(self) -> u64 {
        match self {
            Tax::Vat22 | Tax::Vat22_122 => 2200,
            Tax::Vat10 | Tax::Vat10_110 => 1000,
            Tax::Vat5 | Tax::Vat5_105 => 500,
            Tax::Vat7 | Tax::Vat7_107 => 700,
            Tax::Vat0 | Tax::None => 0,
        }
    }

    /// The tax on an amount that includes it, `amount × r / (100 + r)`;
    /// zero for 0 % and no VAT; rounded half away from zero to kopecks.
    pub fn included(self, amount: rust_decimal::Decimal) -> rust_decimal::Decimal {
        let r = rust_decimal::Decimal::new(self.table_rate() as i64, 2);
        (amount * r / (rust_decimal::Decimal::ONE_HUNDRED + r))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    }

    /// The register's default table position (Shtrih's factory table since
    /// the 2026 firmware: 1 22 %, 2 10 %, 3 0 %, 4 без НДС, 5 22/122,
    /// 6 10/110, 7 5 %, 8 7 %); the 5/105 and 7/107 rates need a mapping.
    pub fn default_position(self) -> Option<u8> {
        match self {
            Tax::Vat22 => Some(1),
            Tax::Vat10 => Some(2),
            Tax::Vat0 => Some(3),
            Tax::None => Some(4),
            Tax::Vat22_122 => Some(5),
            Tax::Vat10_110 => Some(6),
            Tax::Vat5 => Some(7),
            Tax::Vat7 => Some(8),
            Tax::Vat5_105 | Tax::Vat7_107 => None,
        }
    }
}

/// Why a tax name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxNameError {
    /// A name from before 2026 (or 2019).
    #[error(
        "\"{old}\" is no longer a VAT rate (Federal law 425-FZ, from 1 January 2026): use \"{new}\""
    )]
    Replaced {
        /// The name given.
        old: String,
        /// What replaced it.
        new: &'static str,
    },
    /// Not a tax name at all.
    #[error(
        "unknown VAT \"{0}\": one of vat22, vat10, vat5, vat7, vat0, none, vat22_122, vat10_110, vat5_105, vat7_107"
    )]
    Unknown(String),
}

impl FromStr for Tax {
    type Err = TaxNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(t) = Tax::ALL.iter().find(|t| t.name() == s) {
            return Ok(*t);
        }
        let new = match s {
            "vat20" | "vat18" => "vat22",
            "vat120" | "vat118" | "vat20_120" | "vat18_118" => "vat22_122",
            "vat110" => "vat10_110",
            "vat105" => "vat5_105",
            "vat107" => "vat7_107",
            _ => return Err(TaxNameError::Unknown(s.to_owned())),
        };
        Err(TaxNameError::Replaced {
            old: s.to_owned(),
            new,
        })
    }
}

impl fmt::Display for Tax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Tax {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Tax {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which register tax (1..=8, the FF46h tax bit) each rate is sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxMap {
    positions: [Option<u8>; 10],
}

impl Default for TaxMap {
    fn default() -> Self {
        let mut positions = [None; 10];
        for (i, t) in Tax::ALL.iter().enumerate() {
            positions[i] = t.default_position();
        }
        Self { positions }
    }
}

impl TaxMap {
    /// The highest register tax the FF46h tax bit field can address.
    pub const MAX_POSITION: u8 = 8;

    fn index(t: Tax) -> usize {
        Tax::ALL.iter().position(|x| *x == t).unwrap_or(0)
    }

    /// A map from `[printer.taxes]`: exactly the rates listed.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Tax, u8)>) -> Self {
        let mut positions = [None; 10];
        for (t, p) in pairs {
            positions[Self::index(t)] = Some(p);
        }
        Self { positions }
    }

    /// The register tax for a rate, if mapped.
    pub fn position(&self, t: Tax) -> Option<u8> {
        self.positions[Self::index(t)]
    }

    /// Mapped rates and their positions.
    pub fn iter(&self) -> impl Iterator<Item = (Tax, u8)> + '_ {
        Tax::ALL
            .iter()
            .zip(self.positions)
            .filter_map(|(t, p)| p.map(|p| (*t, p)))
    }
}

/// «Применяемая система налогообложения» (tag 1055) as FFD 1.2 names it.
/// ЕНВД was abolished on 1 January 2021 and is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taxation {
    /// ОСН.
    Osn,
    /// УСН доход.
    UsnIncome,
    /// УСН доход минус расход.
    UsnIncomeExpense,
    /// ЕСХН.
    Eshn,
    /// ПСН.
    Patent,
}

impl Taxation {
    const NAMES: [(&'static str, Taxation, u8); 5] = [
        ("osn", Taxation::Osn, 1),
        ("usn_income", Taxation::UsnIncome, 2),
        ("usn_income_expense", Taxation::UsnIncomeExpense, 4),
        ("eshn", Taxation::Eshn, 16),
        ("patent", Taxation::Patent, 32),
    ];

    /// The register's bit (tag 1055).
    pub fn bit(self) -> u8 {
        Self::NAMES
            .iter()
            .find(|(_, t, _)| *t == self)
            .map_or(1, |n| n.2)
    }

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, t, _)| *t == self)
            .map_or("osn", |n| n.0)
    }
}

impl Serialize for Taxation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Taxation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Names, or (as before) the register's bit.
        let v = serde_json::Value::deserialize(d)?;
        let found = match &v {
            serde_json::Value::String(s) => Self::NAMES.iter().find(|n| n.0 == s),
            serde_json::Value::Number(n) => Self::NAMES
                .iter()
                .find(|x| n.as_u64() == Some(u64::from(x.2))),
            _ => None,
        };
        if let Some(n) = found {
            return Ok(n.1);
        }
        if v == "envd" || v == 8 {
            return Err(D::Error::custom(
                "ЕНВД was abolished on 1 January 2021 (Federal law 178-FZ): use osn, usn_income, usn_income_expense, eshn or patent",
            ));
        }
        Err(D::Error::custom(
            "one of osn, usn_income, usn_income_expense, eshn, patent",
        ))
    }
}

/// Checks an INN's check digits (10 digits for an organisation, 12 for a
/// person).
pub fn inn_valid(inn: &str) -> bool {
    let d: Vec<u32> = inn.chars().filter_map(|c| c.to_digit(10)).collect();
    if d.len() != inn.len() {
        return false;
    }
    let check = |w: &[u32]| {
        let s: u32 = w.iter().zip(&d).map(|(a, b)| a * b).sum();
        s % 11 % 10
    };
    match d.len() {
        10 => check(&[2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[9],
        12 => {
            check(&[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[10]
                && check(&[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[11]
        }
        _ => false,
    }
}

/// A buyer's contact for an electronic receipt (tag 1008): a phone as
/// `+7` and ten digits, or an e-mail address of a sane shape (64 chars).
pub fn contact_valid(c: &str) -> bool {
    if let Some(rest) = c.strip_prefix("+7") {
        return rest.len() == 10 && rest.bytes().all(|b| b.is_ascii_digit());
    }
    let Some((local, domain)) = c.split_once('@') else {
        return false;
    };
    c.len() <= 64
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && c.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>' && b != b',')
        && !domain.contains('@')
}

/// A marking code as scanned: printable ASCII with GS (0x1D) separators,
/// 1 to 255 bytes (FF61h's length byte); GS1 codes start with `01` + GTIN.
pub fn marking_code_valid(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 255
        && code.bytes().all(|b| b == 0x1D || (0x20..0x7F).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_old_names_are_refused() {
        for t in Tax::ALL {
            assert_eq!(t.name().parse::<Tax>(), Ok(t));
        }
        let e = "vat20".parse::<Tax>().unwrap_err().to_string();
        assert!(e.contains("vat22") && e.contains("425-FZ"), "{e}");
        let e = "vat120".parse::<Tax>().unwrap_err().to_string();
        assert!(e.contains("vat22_122"), "{e}");
        assert!(matches!(
            "vat21".parse::<Tax>(),
            Err(TaxNameError::Unknown(_))
        ));
        let codes: Vec<u8> = Tax::ALL.iter().map(|t| t.tag1199()).collect();
        assert_eq!(codes, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn included_tax() {
        use rust_decimal_macros::dec;
        assert_eq!(Tax::Vat22.included(dec!(122.00)), dec!(22.00));
        assert_eq!(Tax::Vat10.included(dec!(89.90)), dec!(8.17));
        assert_eq!(Tax::None.included(dec!(10)), dec!(0));
    }

    #[test]
    fn taxation_names() {
        let t: Taxation = serde_json::from_value(serde_json::json!("usn_income")).unwrap();
        assert_eq!(t.bit(), 2);
        let t: Taxation = serde_json::from_value(serde_json::json!(32)).unwrap();
        assert_eq!(t, Taxation::Patent);
        let e = serde_json::from_value::<Taxation>(serde_json::json!("envd")).unwrap_err();
        assert!(e.to_string().contains("2021"));
    }

    #[test]
    fn strict_checks() {
        assert!(inn_valid("7707083893"));
        assert!(!inn_valid("7707083894"));
        assert!(inn_valid("500100732259"));
        assert!(!inn_valid("500100732258"));
        assert!(!inn_valid("77070838９3"));
        assert!(contact_valid("+79161234567"));
        assert!(contact_valid("anna@example.ru"));
        assert!(!contact_valid("89161234567"));
        assert!(!contact_valid("anna@localhost"));
        assert!(!contact_valid("a b@example.ru"));
        assert!(marking_code_valid("0104606203084623215'?XQ3r\u{1d}93dGVz"));
        assert!(!marking_code_valid("код"));
        assert!(!marking_code_valid(""));
    }
}
