//! Campaigns and promo codes: extra points on top of a sale's accrual.
//!
//! A campaign (`[[ledger.programme.campaigns]]`) runs within optional
//! bounds, all read at the programme's offset with the sale's own time:
//! dates `from`..=`until`, `weekdays`, a time window
//! `time_from`..`time_until` (end excluded; a window whose end is before its
//! start runs over midnight: 22:00–02:00), lines of some `categories` or
//! `skus` (none named: every line) and accounts in some `groups` (none
//! named: every customer). It gives exactly one of:
//!
//! - `extra_percent`: percentage points added to the rate of each matching
//!   line (5 % base + 5 = 10 % of the line's eligible amount);
//! - `multiplier`: the matching line's base accrual times this (2 = double);
//! - `extra_points`: fixed points, once per sale with a matching line.
//!
//! # How several campaigns combine
//!
//! On one line, multipliers multiply the base accrual and extra
//! percentages add up: `base × Π multipliers + eligible × Σ extra % / 100`,
//! never more than the line's eligible amount (at most 100 % back). Fixed
//! points add up, once per campaign per sale. A promo code then applies to
//! the sale: its multiplier multiplies the sale's accrual with the
//! campaigns' extra (capped again at the sale's eligible amount), its bonus
//! adds fixed points. Only lines that accrue at all (`eligible > 0`) match:
//! an excluded line, or a discounted one the programme does not accrue on,
//! gets no campaign either.
//!
//! Every extra joins the sale's accrual before its single rounding
//! ([`super::Programme::accrual_rounding`]), so it expires with the sale's
//! points and a return claws it back by the same money share.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time, Weekday};

use super::{HUNDRED, Programme, Quote, RulesError, SaleLine, check_amount, floor_to, invalid};

/// The most campaigns a programme may run.
pub const MAX_CAMPAIGNS: usize = 64;
/// The most promo codes a programme may define.
pub const MAX_PROMO_CODES: usize = 1000;
/// The largest multiplier of a campaign or a promo code.
pub const MAX_MULTIPLIER: Decimal = Decimal::from_parts(10, 0, 0, false, 0);
/// The most fixed points one campaign or promo code gives.
pub const MAX_EXTRA_POINTS: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
/// The most categories, SKUs, groups or weekdays one campaign names.
pub const MAX_CAMPAIGN_LIST: usize = 1000;
/// The longest promo code, in characters.
pub const MAX_PROMO_CODE: usize = 32;

/// One campaign, as configured (`[[ledger.programme.campaigns]]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// Shown in the quote (`quote.campaigns[].name`); unique.
    pub name: String,
    /// First day (`YYYY-MM-DD`, programme time); none = always began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Last day, included; none = no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Days of the week (`mon` … `sun`); empty = every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    /// Start of the daily window (`HH:MM`), with `time_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_from: Option<String>,
    /// End of the daily window (`HH:MM`, excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_until: Option<String>,
    /// Categories whose lines it raises (exact match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// SKUs whose lines it raises; with `categories`, either matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skus: Vec<String>,
    /// Customer groups it is for; empty = everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Percentage points added to each matching line's rate (0..=100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_percent: Option<Decimal>,
    /// Factor on each matching line's base accrual (1..=10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<Decimal>,
    /// Fixed points per sale with a matching line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_points: Option<Decimal>,
}

/// One promo code, as configured (`[[ledger.programme.promo_codes]]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoCode {
    /// The code the cashier types; matched case-insensitively.
    pub code: String,
    /// Fixed points the sale earns on top.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bonus: Option<Decimal>,
    /// Factor on the sale's accrual (1..=10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<Decimal>,
    /// First day it is accepted (`YYYY-MM-DD`, programme time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Last day it is accepted, included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Uses per account; none = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_customer: Option<u32>,
    /// Uses in all; none = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
    /// Switched off: refused as `disabled`, its uses kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// A campaign that raised a sale, as the quote shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedCampaign {
    /// The campaign's name.
    pub name: String,
    /// The sale lines it matched (indexes into `lines`).
    pub lines: Vec<usize>,
}

/// The promo code a sale used, as the quote shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedPromo {
    /// The code as configured (upper case).
    pub code: String,
    /// Its fixed bonus, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bonus: Option<Decimal>,
    /// Its multiplier, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<Decimal>,
}

/// Why a promo code is refused; `field` is always `promo_code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum PromoRefusal {
    /// No such code in the programme.
    #[error("unknown promo code")]
    Unknown,
    /// The code is switched off.
    #[error("the promo code is disabled")]
    Disabled,
    /// Before its first day.
    #[error("the promo code is valid from {0}")]
    NotYet(String),
    /// After its last day.
    #[error("the promo code expired after {0}")]
    Expired(String),
    /// Its uses in all are taken.
    #[error("the promo code is used up ({0} uses)")]
    UsedUp(u32),
    /// This customer used it as often as allowed.
    #[error("this customer has used the promo code {0} times already")]
    CustomerLimit(u32),
}

impl PromoRefusal {
    /// A word for programs (`unknown`, `disabled`, `not_yet`, `expired`,
    /// `used_up`, `customer_limit`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Disabled => "disabled",
            Self::NotYet(_) => "not_yet",
            Self::Expired(_) => "expired",
            Self::UsedUp(_) => "used_up",
            Self::CustomerLimit(_) => "customer_limit",
        }
    }
}

/// A promo code as typed, in the form it is matched and stored in: trimmed,
/// upper case.
pub fn normalize_code(code: &str) -> String {
    code.trim().to_uppercase()
}

fn parse_date(field: &str, s: &str) -> Result<Date, RulesError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt).map_err(|_| invalid(field, format!("\"{s}\" is not a YYYY-MM-DD date")))
}

fn parse_time(field: &str, s: &str) -> Result<Time, RulesError> {
    let fmt = time::macros::format_description!("[hour]:[minute]");
    Time::parse(s, &fmt).map_err(|_| invalid(field, format!("\"{s}\" is not an HH:MM time")))
}

fn parse_weekday(field: &str, s: &str) -> Result<Weekday, RulesError> {
    Ok(match s {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return Err(invalid(field, format!("\"{s}\" is not one of mon … sun"))),
    })
}

fn check_factor(field: &str, v: Decimal) -> Result<(), RulesError> {
    if v < Decimal::ONE || v > MAX_MULTIPLIER {
        return Err(invalid(
            field,
            format!("{v} is not within 1..={MAX_MULTIPLIER}"),
        ));
    }
    Ok(())
}

fn check_points(field: &str, v: Decimal) -> Result<(), RulesError> {
    check_amount(field, v)?;
    if v > MAX_EXTRA_POINTS {
        return Err(invalid(field, format!("{v} exceeds {MAX_EXTRA_POINTS}")));
    }
    Ok(())
}

fn check_window(
    at: &dyn Fn(&str) -> String,
    from: &Option<String>,
    until: &Option<String>,
) -> Result<(), RulesError> {
    let f = from
        .as_deref()
        .map(|s| parse_date(&at("from"), s))
        .transpose()?;
    let u = until
        .as_deref()
        .map(|s| parse_date(&at("until"), s))
        .transpose()?;
    if let (Some(f), Some(u)) = (f, u)
        && u < f
    {
        return Err(invalid(at("until"), "is before from"));
    }
    Ok(())
}

/// Checks the campaigns and promo codes: names and codes unique, dates,
/// weekdays and times well-formed, exactly one kind of extra each, values
/// within bounds (percent 0..=100, multiplier 1..=10, points up to
/// [`MAX_EXTRA_POINTS`]). [`Programme::validate`] calls it.
pub fn validate(campaigns: &[Campaign], codes: &[PromoCode]) -> Result<(), RulesError> {
    if campaigns.len() > MAX_CAMPAIGNS {
        return Err(invalid(
            "programme.campaigns",
            format!("{} campaigns exceed {MAX_CAMPAIGNS}", campaigns.len()),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, c) in campaigns.iter().enumerate() {
        let at = |k: &str| format!("programme.campaigns[{i}].{k}");
        let name = c.name.as_str();
        if name.trim() != name || name.is_empty() || name.chars().count() > 64 {
            return Err(invalid(
                at("name"),
                "1 to 64 characters, without leading or trailing spaces",
            ));
        }
        if !names.insert(name) {
            return Err(invalid(at("name"), format!("\"{name}\" is used twice")));
        }
        check_window(&at, &c.from, &c.until)?;
        for list in [&c.weekdays, &c.categories, &c.skus, &c.groups] {
            if list.len() > MAX_CAMPAIGN_LIST {
                return Err(invalid(
                    at("categories"),
                    format!("more than {MAX_CAMPAIGN_LIST} entries"),
                ));
            }
        }
        for d in &c.weekdays {
            parse_weekday(&at("weekdays"), d)?;
        }
        match (&c.time_from, &c.time_until) {
            (None, None) => {}
            (Some(f), Some(u)) => {
                if parse_time(&at("time_from"), f)? == parse_time(&at("time_until"), u)? {
                    return Err(invalid(
                        at("time_until"),
                        "equals time_from (an empty window)",
                    ));
                }
            }
            (Some(_), None) => return Err(invalid(at("time_until"), "give it with time_from")),
            (None, Some(_)) => return Err(invalid(at("time_from"), "give it with time_until")),
        }
        let kinds = [
            c.extra_percent.is_some(),
            c.multiplier.is_some(),
            c.extra_points.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(invalid(
                at("extra_percent"),
                "give exactly one of extra_percent, multiplier and extra_points",
            ));
        }
        if let Some(v) = c.extra_percent {
            super::check_percent(&at("extra_percent"), v)?;
        }
        if let Some(v) = c.multiplier {
            check_factor(&at("multiplier"), v)?;
        }
        if let Some(v) = c.extra_points {
            check_points(&at("extra_points"), v)?;
        }
    }
    if codes.len() > MAX_PROMO_CODES {
        return Err(invalid(
            "programme.promo_codes",
            format!("{} codes exceed {MAX_PROMO_CODES}", codes.len()),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in codes.iter().enumerate() {
        let at = |k: &str| format!("programme.promo_codes[{i}].{k}");
        let code = normalize_code(&p.code);
        if code.is_empty()
            || code.chars().count() > MAX_PROMO_CODE
            || !code
                .chars()
                .all(|ch| ch.is_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(invalid(
                at("code"),
                format!("1 to {MAX_PROMO_CODE} letters, digits, '-' or '_'"),
            ));
        }
        if !seen.insert(code.clone()) {
            return Err(invalid(
                at("code"),
                format!("\"{code}\" is used twice (codes ignore case)"),
            ));
        }
        if p.bonus.is_none() && p.multiplier.is_none() {
            return Err(invalid(at("bonus"), "give bonus, multiplier or both"));
        }
        if let Some(v) = p.bonus {
            check_points(&at("bonus"), v)?;
        }
        if let Some(v) = p.multiplier {
            check_factor(&at("multiplier"), v)?;
        }
        check_window(&at, &p.from, &p.until)?;
        if p.total == Some(0) {
            return Err(invalid(at("total"), "0 uses: set disabled instead"));
        }
        if p.per_customer == Some(0) {
            return Err(invalid(at("per_customer"), "0 uses: set disabled instead"));
        }
    }
    Ok(())
}

/// Whether campaign `c` runs at local time `local` for an account in
/// `groups`. The campaign is valid ([`validate`]).
fn runs(c: &Campaign, local: OffsetDateTime, groups: &[String]) -> bool {
    let day = local.date();
    let date = |s: &Option<String>| s.as_deref().and_then(|s| parse_date("", s).ok());
    if date(&c.from).is_some_and(|f| day < f) || date(&c.until).is_some_and(|u| day > u) {
        return false;
    }
    if !c.weekdays.is_empty()
        && !c
            .weekdays
            .iter()
            .any(|d| parse_weekday("", d).is_ok_and(|d| d == local.weekday()))
    {
        return false;
    }
    if let (Some(f), Some(u)) = (&c.time_from, &c.time_until)
        && let (Ok(f), Ok(u)) = (parse_time("", f), parse_time("", u))
    {
        let t = local.time();
        let inside = if f < u {
            f <= t && t < u
        } else {
            t >= f || t < u
        };
        if !inside {
            return false;
        }
    }
    c.groups.is_empty() || c.groups.iter().any(|g| groups.contains(g))
}

fn matches(c: &Campaign, line: &SaleLine) -> bool {
    (c.categories.is_empty() && c.skus.is_empty())
        || c.categories.contains(&line.category)
        || c.skus.contains(&line.sku)
}

/// The promo code `code` (as typed) if the programme accepts it at `at`:
/// known, enabled and within its dates. Its use limits are the books'
/// (they count the uses).
pub fn promo_at<'a>(
    p: &'a Programme,
    code: &str,
    at: OffsetDateTime,
) -> Result<&'a PromoCode, PromoRefusal> {
    let wanted = normalize_code(code);
    let found = p
        .promo_codes
        .iter()
        .find(|c| normalize_code(&c.code) == wanted)
        .ok_or(PromoRefusal::Unknown)?;
    if found.disabled {
        return Err(PromoRefusal::Disabled);
    }
    let day = p
        .offset()
        .ok()
        .and_then(|o| at.checked_to_offset(o))
        .unwrap_or(at)
        .date();
    if let Some(f) = found.from.as_deref()
        && parse_date("", f).is_ok_and(|f| day < f)
    {
        return Err(PromoRefusal::NotYet(f.to_owned()));
    }
    if let Some(u) = found.until.as_deref()
        && parse_date("", u).is_ok_and(|u| day > u)
    {
        return Err(PromoRefusal::Expired(u.to_owned()));
    }
    Ok(found)
}

/// Adds the campaigns running at `at` for an account in `groups`, and the
/// promo code `promo` (already accepted), to quote `q` of `lines`:
/// `q.accrual` is recomputed from the unrounded line accruals plus every
/// extra, rounded once; `q.campaigns`, `q.promo` and `q.extra_accrual` say
/// what applied (campaigns in the configuration's order). Without
/// campaigns or a code the quote is unchanged.
pub fn apply(
    p: &Programme,
    lines: &[SaleLine],
    q: &mut Quote,
    at: OffsetDateTime,
    groups: &[String],
    promo: Option<&PromoCode>,
) -> Result<(), RulesError> {
    if p.campaigns.is_empty() && promo.is_none() {
        return Ok(());
    }
    let local = at
        .checked_to_offset(p.offset()?)
        .ok_or(RulesError::DateOutOfRange)?;
    let running: Vec<&Campaign> = p
        .campaigns
        .iter()
        .filter(|c| runs(c, local, groups))
        .collect();
    let mut applied: Vec<AppliedCampaign> = Vec::new();
    let mut fixed = Decimal::ZERO;
    // The percentage part: each line's base accrual with its campaigns.
    let mut percent_part = Decimal::ZERO;
    for (i, (line, lq)) in lines.iter().zip(&q.lines).enumerate() {
        let mut mult = Decimal::ONE;
        let mut pct = Decimal::ZERO;
        if lq.eligible > Decimal::ZERO {
            for c in running.iter().filter(|c| matches(c, line)) {
                // Bounded: at most 64 factors of at most 10 would overflow,
                // so the product stops at what can never pass the cap.
                if let Some(m) = c.multiplier {
                    mult = (mult * m).min(HUNDRED * HUNDRED);
                }
                if let Some(x) = c.extra_percent {
                    pct += x;
                }
                match applied.iter_mut().find(|a| a.name == c.name) {
                    Some(a) => a.lines.push(i),
                    None => applied.push(AppliedCampaign {
                        name: c.name.clone(),
                        lines: vec![i],
                    }),
                }
            }
        }
        // rate ≤ 100 %, so the base never passes the eligible amount; the
        // campaigns may raise it up to there.
        let raised = (lq.accrual * mult + lq.eligible * pct / HUNDRED).min(lq.eligible);
        percent_part += raised.max(lq.accrual);
    }
    // Shown in the configuration's order, whichever line matched first.
    applied.sort_by_key(|a| p.campaigns.iter().position(|c| c.name == a.name));
    for a in &applied {
        if let Some(c) = running.iter().find(|c| c.name == a.name)
            && let Some(x) = c.extra_points
        {
            fixed += x;
        }
    }
    let base: Decimal = q.lines.iter().map(|l| l.accrual).sum();
    if let Some(code) = promo {
        if let Some(m) = code.multiplier {
            percent_part = (percent_part * m).min(q.eligible_total.max(base));
        }
        if let Some(b) = code.bonus {
            fixed += b;
        }
    }
    let total = percent_part + fixed;
    q.extra_accrual = (total - base).max(Decimal::ZERO);
    q.accrual = floor_to(base + q.extra_accrual, p.accrual_rounding.scale());
    q.campaigns = applied;
    q.promo = promo.map(|c| AppliedPromo {
        code: normalize_code(&c.code),
        bonus: c.bonus,
        multiplier: c.multiplier,
    });
    Ok(())
}

#[cfg(test)]
mod tests;
