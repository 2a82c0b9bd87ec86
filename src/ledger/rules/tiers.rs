//! Loyalty tiers (levels): pure configuration checks and evaluation.
//!
//! A programme may define levels (`[[ledger.programme.tiers]]`), each with a
//! name, a priority (1 = the lowest) and its own accrual and cap
//! percentages. A customer climbs by spending (a total within a rolling
//! period, optionally with per-category minimums) and/or by visiting (a
//! number of visit days within a rolling period), and falls back one level
//! at a time when the current level's thresholds are no longer met.
//!
//! # The entry level
//!
//! When tiers are configured, the level with priority 1 is the entry level:
//! it has no thresholds and no group restriction, so every account is at
//! least there. An account that was never evaluated (`tier` unset in the
//! database) is at the entry level; reaching it is not a change.
//!
//! # Windows and visits
//!
//! A period of `N` days is the rolling window `(now − N × 24 h, now]`. Spend
//! is the sum of sale totals in the window, each less what was refunded of
//! it (a refund counts against its sale, whenever it happened). A visit is a
//! day (programme time) with at least one sale that was not wholly
//! refunded: two receipts at one till visit are one visit.
//!
//! # Evaluation
//!
//! The target is the highest level the account qualifies for. Above the
//! current level: promotion straight to it (several levels at once).
//! Otherwise, if the current level is still met, nothing changes; if it is
//! not, the account drops one level (the next lower level it is allowed by
//! its groups), never more per evaluation.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, UtcOffset};

use super::levels::TierCategory;
use super::{MAX_AMOUNT, RulesError, check_percent, invalid};

/// The longest period a threshold may look back, in days (10 years).
pub const MAX_PERIOD_DAYS: u32 = 3660;
/// The most levels a programme may have.
pub const MAX_TIERS: usize = 32;

/// How a level's spend and visit thresholds combine when both are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Either threshold is enough.
    #[default]
    Any,
    /// Both are needed.
    All,
}

/// One loyalty level, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Display name, unique ("Серебро").
    pub name: String,
    /// Rank: 1 is the entry level; higher is better. Unique.
    pub priority: u32,
    /// Accrual percentage at this level; `None` = the programme default.
    #[serde(default)]
    pub accrual_percent: Option<Decimal>,
    /// Redemption cap percentage at this level; `None` = the programme's.
    #[serde(default)]
    pub cap_percent: Option<Decimal>,
    /// Spend needed within `spend_period_days`.
    #[serde(default)]
    pub min_spend: Option<Decimal>,
    /// The spend window in days.
    #[serde(default)]
    pub spend_period_days: Option<u32>,
    /// Per-category minimums within the same window; together at most
    /// `min_spend`.
    #[serde(default)]
    pub category_min_spend: BTreeMap<String, Decimal>,
    /// Visit days needed within `visits_period_days`.
    #[serde(default)]
    pub min_visits: Option<u32>,
    /// The visits window in days.
    #[serde(default)]
    pub visits_period_days: Option<u32>,
    /// Only customers in one of these groups may hold this level; empty =
    /// everyone.
    #[serde(default)]
    pub groups: Vec<String>,
    /// How the spend and visit thresholds combine when both are set.
    #[serde(default)]
    pub combine: Combine,
    /// This level's own rates and caps per category
    /// (`[[ledger.programme.tiers.categories]]`); empty = none. See
    /// [`super::levels`].
    #[serde(default)]
    pub categories: Vec<TierCategory>,
    /// Days the points accrued at this level stay spendable (`0` = they do
    /// not burn); `None` = the programme's `expiry_months`. See
    /// [`super::levels::expiry_for`].
    #[serde(default)]
    pub expiry_days: Option<u32>,
}

impl Tier {
    fn has_spend(&self) -> bool {
        self.min_spend.is_some()
    }

    fn has_visits(&self) -> bool {
        self.min_visits.is_some()
    }

    /// Whether the account's groups allow this level.
    pub fn allows(&self, groups: &BTreeSet<String>) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| groups.contains(g))
    }
}

fn check_period(field: &str, v: Option<u32>) -> Result<u32, RulesError> {
    match v {
        None => Err(invalid(field, "required with the threshold it measures")),
        Some(d) if d == 0 || d > MAX_PERIOD_DAYS => Err(invalid(
            field,
            format!("{d} is not within 1..={MAX_PERIOD_DAYS} days"),
        )),
        Some(d) => Ok(d),
    }
}

fn check_money(field: &str, v: Decimal) -> Result<(), RulesError> {
    if v < Decimal::ZERO || v > MAX_AMOUNT {
        return Err(invalid(
            field,
            format!("{v} is not within 0..={MAX_AMOUNT}"),
        ));
    }
    Ok(())
}

/// Checks a programme's levels; errors name the key
/// (`programme.tiers[2].category_min_spend`). No levels is valid.
pub fn validate(tiers: &[Tier]) -> Result<(), RulesError> {
    if tiers.is_empty() {
        return Ok(());
    }
    if tiers.len() > MAX_TIERS {
        return Err(invalid(
            "programme.tiers",
            format!("{} levels exceed {MAX_TIERS}", tiers.len()),
        ));
    }
    let mut names = BTreeSet::new();
    let mut priorities = BTreeSet::new();
    for (i, t) in tiers.iter().enumerate() {
        let at = |k: &str| format!("programme.tiers[{i}].{k}");
        let name = t.name.as_str();
        if name.trim() != name || name.is_empty() || name.chars().count() > 64 {
            return Err(invalid(
                at("name"),
                "1 to 64 characters, without leading or trailing spaces",
            ));
        }
        if !names.insert(name.to_owned()) {
            return Err(invalid(at("name"), format!("\"{name}\" is used twice")));
        }
        if t.priority == 0 {
            return Err(invalid(at("priority"), "1 is the lowest level"));
        }
        if !priorities.insert(t.priority) {
            return Err(invalid(
                at("priority"),
                format!("{} is used twice", t.priority),
            ));
        }
        if let Some(v) = t.accrual_percent {
            check_percent(&at("accrual_percent"), v)?;
        }
        if let Some(v) = t.cap_percent {
            check_percent(&at("cap_percent"), v)?;
        }
        if let Some(s) = t.min_spend {
            check_money(&at("min_spend"), s)?;
            check_period(&at("spend_period_days"), t.spend_period_days)?;
        } else if t.spend_period_days.is_some() {
            return Err(invalid(at("spend_period_days"), "set without min_spend"));
        }
        if !t.category_min_spend.is_empty() {
            let Some(total) = t.min_spend else {
                return Err(invalid(
                    at("category_min_spend"),
                    "needs min_spend (the category minimums are parts of it)",
                ));
            };
            let mut sum = Decimal::ZERO;
            for (cat, v) in &t.category_min_spend {
                check_money(&at(&format!("category_min_spend.{cat}")), *v)?;
                sum += *v;
            }
            if sum > total {
                return Err(invalid(
                    at("category_min_spend"),
                    format!("the category minimums add up to {sum}, more than min_spend {total}"),
                ));
            }
        }
        if t.min_visits.is_some() {
            check_period(&at("visits_period_days"), t.visits_period_days)?;
        } else if t.visits_period_days.is_some() {
            return Err(invalid(at("visits_period_days"), "set without min_visits"));
        }
        if t.groups.iter().any(|g| g.trim().is_empty()) {
            return Err(invalid(at("groups"), "a group name is empty"));
        }
        super::levels::validate(i, t)?;
        if t.priority == 1 {
            if t.has_spend() || t.has_visits() {
                return Err(invalid(
                    at("min_spend"),
                    "priority 1 is the entry level: it has no thresholds",
                ));
            }
            if !t.groups.is_empty() {
                return Err(invalid(
                    at("groups"),
                    "priority 1 is the entry level: every customer holds it",
                ));
            }
        } else if !t.has_spend() && !t.has_visits() {
            return Err(invalid(
                at("min_spend"),
                "a level above the entry level needs min_spend or min_visits",
            ));
        }
    }
    if !priorities.contains(&1) {
        return Err(invalid(
            "programme.tiers",
            "no level with priority 1 (the entry level)",
        ));
    }
    Ok(())
}

/// One sale as the tier rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Purchase {
    /// When the sale was committed.
    pub at: OffsetDateTime,
    /// The sale's total less what was refunded of it.
    pub net: Decimal,
    /// The same per category (refunds spread in proportion).
    pub categories: BTreeMap<String, Decimal>,
    /// False when the sale was wholly refunded: it is no visit then.
    pub visit: bool,
}

/// What one level's thresholds see of an account.
#[derive(Debug, Clone, Default, PartialEq)]
struct Stats {
    spend: Decimal,
    categories: BTreeMap<String, Decimal>,
    visits: u32,
}

fn window_start(now: OffsetDateTime, days: u32) -> OffsetDateTime {
    now.checked_sub(Duration::days(i64::from(days)))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn spend_in(purchases: &[Purchase], now: OffsetDateTime, days: u32) -> Stats {
    let from = window_start(now, days);
    let mut s = Stats::default();
    for p in purchases.iter().filter(|p| p.at > from && p.at <= now) {
        s.spend += p.net;
        for (c, v) in &p.categories {
            *s.categories.entry(c.clone()).or_default() += *v;
        }
    }
    s
}

fn visits_in(purchases: &[Purchase], now: OffsetDateTime, days: u32, offset: UtcOffset) -> u32 {
    let from = window_start(now, days);
    let days: BTreeSet<_> = purchases
        .iter()
        .filter(|p| p.visit && p.at > from && p.at <= now)
        .map(|p| p.at.to_offset(offset).date())
        .collect();
    u32::try_from(days.len()).unwrap_or(u32::MAX)
}

/// An account's activity and the clock, as evaluation needs them.
#[derive(Debug, Clone)]
pub struct Activity<'a> {
    /// The account's sales (any order; those outside a window are ignored).
    pub purchases: &'a [Purchase],
    /// The account's customer groups.
    pub groups: &'a BTreeSet<String>,
    /// The evaluation time.
    pub now: OffsetDateTime,
    /// The programme's offset, for visit days.
    pub offset: UtcOffset,
}

impl Activity<'_> {
    fn spend_ok(&self, t: &Tier) -> bool {
        let (Some(min), Some(days)) = (t.min_spend, t.spend_period_days) else {
            return false;
        };
        let s = spend_in(self.purchases, self.now, days);
        s.spend >= min
            && t.category_min_spend
                .iter()
                .all(|(c, need)| s.categories.get(c).copied().unwrap_or_default() >= *need)
    }

    fn visits_ok(&self, t: &Tier) -> bool {
        let (Some(min), Some(days)) = (t.min_visits, t.visits_period_days) else {
            return false;
        };
        visits_in(self.purchases, self.now, days, self.offset) >= min
    }

    /// Whether the account meets `t`'s thresholds and groups.
    pub fn qualifies(&self, t: &Tier) -> bool {
        if !t.allows(self.groups) {
            return false;
        }
        match (t.has_spend(), t.has_visits()) {
            (false, false) => true,
            (true, false) => self.spend_ok(t),
            (false, true) => self.visits_ok(t),
            (true, true) => match t.combine {
                Combine::Any => self.spend_ok(t) || self.visits_ok(t),
                Combine::All => self.spend_ok(t) && self.visits_ok(t),
            },
        }
    }
}

/// Why a level changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Thresholds of a higher level met.
    Promoted,
    /// The current level's thresholds no longer met (or its group left).
    Demoted,
    /// The stored level is no longer configured.
    Reassigned,
}

impl ChangeKind {
    /// The word stored and sent as `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promoted => "promoted",
            Self::Demoted => "demoted",
            Self::Reassigned => "reassigned",
        }
    }
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'t> {
    /// The level the account holds after evaluation.
    pub tier: &'t Tier,
    /// Set when it differs from the stored one.
    pub change: Option<ChangeKind>,
}

/// The levels by priority, lowest first.
pub fn ordered(tiers: &[Tier]) -> Vec<&Tier> {
    let mut v: Vec<&Tier> = tiers.iter().collect();
    v.sort_by_key(|t| t.priority);
    v
}

/// The level an account holds given its stored `current` (`None`: never
/// evaluated), and whether that is a change. `None` when no levels are
/// configured.
pub fn evaluate<'t>(
    tiers: &'t [Tier],
    current: Option<&str>,
    a: &Activity<'_>,
) -> Option<Outcome<'t>> {
    let order = ordered(tiers);
    let entry = *order.first()?;
    let stored = current.and_then(|n| order.iter().position(|t| t.name == n));
    let cur_idx = stored.unwrap_or(0);
    let target = order.iter().rposition(|t| a.qualifies(t)).unwrap_or(0);
    let (idx, kind) = if target > cur_idx {
        (target, Some(ChangeKind::Promoted))
    } else if a.qualifies(order[cur_idx]) {
        (cur_idx, None)
    } else {
        // One level down: the next lower one the groups allow (the entry
        // level allows everyone).
        let down = order[..cur_idx]
            .iter()
            .rposition(|t| t.allows(a.groups))
            .unwrap_or(0);
        (down, Some(ChangeKind::Demoted))
    };
    let kind = match (current, stored) {
        // A name no longer configured: whatever it becomes is a change.
        (Some(_), None) => Some(kind.unwrap_or(ChangeKind::Reassigned)),
        // Never evaluated and still at the entry level: nothing to record.
        (None, _) if idx == 0 => None,
        _ => kind,
    };
    Some(Outcome {
        tier: order.get(idx).copied().unwrap_or(entry),
        change: kind,
    })
}

/// How far an account is from the next level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The next level up that the account's groups allow.
    pub next_tier: String,
    /// Spend still needed within `spend_period_days` (absent: no spend
    /// threshold).
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub spend_needed: Option<Decimal>,
    /// The spend window in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_period_days: Option<u32>,
    /// Per category, spend still needed (only categories still short).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub category_spend_needed: BTreeMap<String, String>,
    /// Visit days still needed within `visits_period_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visits_needed: Option<u32>,
    /// The visits window in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visits_period_days: Option<u32>,
    /// `any` or `all`: whether one threshold is enough.
    pub combine: Combine,
}

/// Progress from the level named `current` to the next allowed level up;
/// `None` at the top or without levels.
pub fn progress(tiers: &[Tier], current: Option<&str>, a: &Activity<'_>) -> Option<Progress> {
    let order = ordered(tiers);
    let cur = current
        .and_then(|n| order.iter().position(|t| t.name == n))
        .unwrap_or(0);
    let next = order.get(cur + 1..)?.iter().find(|t| t.allows(a.groups))?;
    let mut p = Progress {
        next_tier: next.name.clone(),
        spend_needed: None,
        spend_period_days: None,
        category_spend_needed: BTreeMap::new(),
        visits_needed: None,
        visits_period_days: None,
        combine: next.combine,
    };
    if let (Some(min), Some(days)) = (next.min_spend, next.spend_period_days) {
        let s = spend_in(a.purchases, a.now, days);
        p.spend_needed = Some((min - s.spend).max(Decimal::ZERO).normalize());
        p.spend_period_days = Some(days);
        for (c, need) in &next.category_min_spend {
            let have = s.categories.get(c).copied().unwrap_or_default();
            if have < *need {
                p.category_spend_needed
                    .insert(c.clone(), (*need - have).normalize().to_string());
            }
        }
    }
    if let (Some(min), Some(days)) = (next.min_visits, next.visits_period_days) {
        let v = visits_in(a.purchases, a.now, days, a.offset);
        p.visits_needed = Some(min.saturating_sub(v));
        p.visits_period_days = Some(days);
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn d(v: i64) -> Decimal {
        Decimal::from(v)
    }

    fn entry() -> Tier {
        Tier {
            name: "Bronze".into(),
            priority: 1,
            accrual_percent: Some(d(3)),
            cap_percent: None,
            min_spend: None,
            spend_period_days: None,
            category_min_spend: BTreeMap::new(),
            min_visits: None,
            visits_period_days: None,
            groups: vec![],
            combine: Combine::Any,
            categories: vec![],
            expiry_days: None,
        }
    }

    fn spend_tier(name: &str, priority: u32, min: i64, days: u32) -> Tier {
        Tier {
            name: name.into(),
            priority,
            min_spend: Some(d(min)),
            spend_period_days: Some(days),
            ..entry()
        }
    }

    fn three() -> Vec<Tier> {
        let mut visits = spend_tier("Gold", 3, 50_000, 30);
        visits.min_visits = Some(20);
        visits.visits_period_days = Some(30);
        vec![spend_tier("Silver", 2, 10_000, 30), entry(), visits]
    }

    const NOW: OffsetDateTime = datetime!(2026-06-30 12:00:00 UTC);
    const MSK: UtcOffset = time::macros::offset!(+3);

    fn buy(days_ago: i64, amount: i64) -> Purchase {
        Purchase {
            at: NOW - Duration::days(days_ago),
            net: d(amount),
            categories: BTreeMap::from([("bar".to_string(), d(amount))]),
            visit: true,
        }
    }

    fn act<'a>(p: &'a [Purchase], g: &'a BTreeSet<String>) -> Activity<'a> {
        Activity {
            purchases: p,
            groups: g,
            now: NOW,
            offset: MSK,
        }
    }

    fn field(e: RulesError) -> String {
        match e {
            RulesError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validation_names_the_key() {
        assert!(validate(&[]).is_ok());
        assert!(validate(&three()).is_ok());

        let mut t = three();
        t[0].category_min_spend =
            BTreeMap::from([("bar".into(), d(6000)), ("tix".into(), d(5000))]);
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[0].category_min_spend"
        );
        t[0].category_min_spend =
            BTreeMap::from([("bar".into(), d(6000)), ("tix".into(), d(4000))]);
        assert!(validate(&t).is_ok(), "equal to the total is allowed");

        let mut t = three();
        t[0].priority = 3;
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[2].priority"
        );
        let mut t = three();
        t[1].min_visits = Some(1);
        t[1].visits_period_days = Some(1);
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[1].min_spend"
        );
        let mut t = three();
        t.remove(1);
        assert_eq!(field(validate(&t).unwrap_err()), "programme.tiers");
        let mut t = three();
        t[0].spend_period_days = None;
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[0].spend_period_days"
        );
        let mut t = three();
        t[0].spend_period_days = Some(0);
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[0].spend_period_days"
        );
        let mut t = three();
        t[2].name = " Gold".into();
        assert_eq!(field(validate(&t).unwrap_err()), "programme.tiers[2].name");
        let mut t = three();
        t[2].name = "Silver".into();
        assert_eq!(field(validate(&t).unwrap_err()), "programme.tiers[2].name");
        let mut t = three();
        t[0].accrual_percent = Some(d(101));
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[0].accrual_percent"
        );
        let mut t = three();
        t[0].min_spend = None;
        t[0].spend_period_days = None;
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[0].min_spend"
        );
        let mut t = three();
        t[1].groups = vec!["vip".into()];
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[1].groups"
        );
        let mut t = three();
        t[0].min_spend = Some(d(-1));
        assert_eq!(
            field(validate(&t).unwrap_err()),
            "programme.tiers[0].min_spend"
        );
    }

    #[test]
    fn promotion_exactly_at_the_threshold() {
        let tiers = three();
        let g = BTreeSet::new();
        let below = [buy(1, 9_999)];
        let o = evaluate(&tiers, None, &act(&below, &g)).unwrap();
        assert_eq!((o.tier.name.as_str(), o.change), ("Bronze", None));
        let at = [buy(1, 9_000), buy(29, 1_000)];
        let o = evaluate(&tiers, None, &act(&at, &g)).unwrap();
        assert_eq!(o.tier.name, "Silver");
        assert_eq!(o.change, Some(ChangeKind::Promoted));
        // The same spend, one part just outside the 30-day window.
        let out = [buy(1, 9_000), buy(30, 1_000)];
        let o = evaluate(&tiers, None, &act(&out, &g)).unwrap();
        assert_eq!(o.tier.name, "Bronze");
    }

    #[test]
    fn promotion_skips_levels_and_demotion_takes_one_step() {
        let tiers = three();
        let g = BTreeSet::new();
        let big = [buy(1, 60_000)];
        let o = evaluate(&tiers, Some("Bronze"), &act(&big, &g)).unwrap();
        assert_eq!(
            (o.tier.name.as_str(), o.change),
            ("Gold", Some(ChangeKind::Promoted))
        );
        // Nothing in the window any more: Gold drops to Silver, not Bronze.
        let old = [buy(40, 60_000)];
        let o = evaluate(&tiers, Some("Gold"), &act(&old, &g)).unwrap();
        assert_eq!(
            (o.tier.name.as_str(), o.change),
            ("Silver", Some(ChangeKind::Demoted))
        );
        let o = evaluate(&tiers, Some("Silver"), &act(&old, &g)).unwrap();
        assert_eq!(
            (o.tier.name.as_str(), o.change),
            ("Bronze", Some(ChangeKind::Demoted))
        );
        let o = evaluate(&tiers, Some("Bronze"), &act(&old, &g)).unwrap();
        assert_eq!((o.tier.name.as_str(), o.change), ("Bronze", None));
        // Still meeting Silver while at Gold: one step down lands on it.
        let mid = [buy(1, 10_000)];
        let o = evaluate(&tiers, Some("Gold"), &act(&mid, &g)).unwrap();
        assert_eq!(o.tier.name, "Silver");
    }

    #[test]
    fn visits_are_days_and_combine_any() {
        let tiers = three();
        let g = BTreeSet::new();
        // 20 visit days in 30 days, small spend: Gold by visits (any).
        let mut p: Vec<Purchase> = (0..20).map(|i| buy(i, 10)).collect();
        // A second receipt on a day already counted is no extra visit.
        p.push(buy(0, 10));
        let o = evaluate(&tiers, None, &act(&p[..19], &g)).unwrap();
        assert_eq!(o.tier.name, "Bronze");
        let o = evaluate(&tiers, None, &act(&p, &g)).unwrap();
        assert_eq!(o.tier.name, "Gold");
        let mut all = tiers.clone();
        all[2].combine = Combine::All;
        let o = evaluate(&all, None, &act(&p, &g)).unwrap();
        assert_eq!(o.tier.name, "Bronze");
        // A wholly refunded sale is no visit.
        let mut refunded = p.clone();
        refunded[5].visit = false;
        let o = evaluate(&tiers, None, &act(&refunded[..20], &g)).unwrap();
        assert_eq!(o.tier.name, "Bronze");
    }

    #[test]
    fn category_minimums_must_be_met() {
        let mut tiers = three();
        tiers[0].category_min_spend = BTreeMap::from([("tix".into(), d(2_000))]);
        let g = BTreeSet::new();
        let bar_only = [buy(1, 12_000)];
        assert_eq!(
            evaluate(&tiers, None, &act(&bar_only, &g))
                .unwrap()
                .tier
                .name,
            "Bronze"
        );
        let mut both = vec![buy(1, 10_000)];
        both.push(Purchase {
            categories: BTreeMap::from([("tix".to_string(), d(2_000))]),
            ..buy(2, 2_000)
        });
        assert_eq!(
            evaluate(&tiers, None, &act(&both, &g)).unwrap().tier.name,
            "Silver"
        );
        let pr = progress(&tiers, None, &act(&bar_only, &g)).unwrap();
        assert_eq!(pr.next_tier, "Silver");
        assert_eq!(pr.spend_needed, Some(Decimal::ZERO));
        assert_eq!(pr.category_spend_needed["tix"], "2000");
    }

    #[test]
    fn group_restricted_level() {
        let mut tiers = three();
        tiers[0].groups = vec!["staff".into()];
        let none = BTreeSet::new();
        let staff = BTreeSet::from(["staff".to_string()]);
        let p = [buy(1, 20_000)];
        let o = evaluate(&tiers, None, &act(&p, &none)).unwrap();
        assert_eq!((o.tier.name.as_str(), o.change), ("Bronze", None));
        let o = evaluate(&tiers, None, &act(&p, &staff)).unwrap();
        assert_eq!(o.tier.name, "Silver");
        // Progress skips the level the groups do not allow.
        assert_eq!(
            progress(&tiers, None, &act(&p, &none)).unwrap().next_tier,
            "Gold"
        );
        // Gold losing its thresholds skips Silver on the way down.
        let old = [buy(40, 1)];
        let o = evaluate(&tiers, Some("Gold"), &act(&old, &none)).unwrap();
        assert_eq!(
            (o.tier.name.as_str(), o.change),
            ("Bronze", Some(ChangeKind::Demoted))
        );
        // Leaving the group: demoted even though the spend is there.
        let o = evaluate(&tiers, Some("Silver"), &act(&p, &none)).unwrap();
        assert_eq!(
            (o.tier.name.as_str(), o.change),
            ("Bronze", Some(ChangeKind::Demoted))
        );
    }

    #[test]
    fn unknown_stored_level_and_no_levels() {
        let tiers = three();
        let g = BTreeSet::new();
        let o = evaluate(&tiers, Some("Platinum"), &act(&[], &g)).unwrap();
        assert_eq!(
            (o.tier.name.as_str(), o.change),
            ("Bronze", Some(ChangeKind::Reassigned))
        );
        assert!(evaluate(&[], None, &act(&[], &g)).is_none());
        assert!(progress(&[], None, &act(&[], &g)).is_none());
        let top = [buy(1, 60_000)];
        assert!(progress(&tiers, Some("Gold"), &act(&top, &g)).is_none());
        let pr = progress(&tiers, Some("Silver"), &act(&top[..0], &g)).unwrap();
        assert_eq!(pr.next_tier, "Gold");
        assert_eq!(pr.spend_needed, Some(d(50_000)));
        assert_eq!(pr.visits_needed, Some(20));
        assert_eq!(pr.combine, Combine::Any);
    }

    proptest! {
        /// More spend never yields a lower level, from any starting level.
        #[test]
        fn promotion_is_monotone_in_spend(
            amounts in proptest::collection::vec((0i64..60, 0i64..30_000), 0..8),
            extra in 0i64..60_000,
            start in 0usize..4,
        ) {
            let tiers = three();
            let g = BTreeSet::new();
            let names = [None, Some("Bronze"), Some("Silver"), Some("Gold")];
            let p: Vec<Purchase> = amounts.iter().map(|(a, v)| buy(*a, *v)).collect();
            let mut more = p.clone();
            more.push(buy(0, extra));
            let rank = |o: Outcome<'_>| o.tier.priority;
            let a = rank(evaluate(&tiers, names[start], &act(&p, &g)).unwrap());
            let b = rank(evaluate(&tiers, names[start], &act(&more, &g)).unwrap());
            prop_assert!(b >= a);
        }

        /// Validation refuses exactly the sub-thresholds that add up to
        /// more than the total, naming the key.
        #[test]
        fn sub_thresholds_never_exceed_the_total(
            total in 0i64..100_000,
            parts in proptest::collection::vec(0i64..50_000, 1..4),
        ) {
            let mut t = three();
            t[0].min_spend = Some(d(total));
            t[0].category_min_spend = parts
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("c{i}"), d(*v)))
                .collect();
            let sum: i64 = parts.iter().sum();
            match validate(&t) {
                Ok(()) => prop_assert!(sum <= total),
                Err(e) => {
                    prop_assert!(sum > total);
                    prop_assert_eq!(field(e), "programme.tiers[0].category_min_spend");
                }
            }
        }

        /// Demotion is at most one level per evaluation.
        #[test]
        fn demotion_is_one_step(
            amounts in proptest::collection::vec((0i64..60, 0i64..30_000), 0..8),
            start in 0usize..3,
        ) {
            let tiers = three();
            let g = BTreeSet::new();
            let order = ordered(&tiers);
            let p: Vec<Purchase> = amounts.iter().map(|(a, v)| buy(*a, *v)).collect();
            let o = evaluate(&tiers, Some(&order[start].name), &act(&p, &g)).unwrap();
            if o.change == Some(ChangeKind::Demoted) {
                prop_assert_eq!(o.tier.priority + 1, order[start].priority);
            }
        }
    }
}
