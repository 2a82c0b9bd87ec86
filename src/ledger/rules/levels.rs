//! What a loyalty level sets besides its thresholds: its own rates and caps
//! per category (`[[ledger.programme.tiers.categories]]`) and its own burn
//! period for the points accrued while it is held (`expiry_days`).
//!
//! A level's category setting is merged into the account's own percentages
//! ([`merge`]) field by field, after the account's own per-category
//! setting: so in [`super::quote`] it ranks below the account's own setting
//! for that category and above the programme's category rule (see "Which
//! percentage applies" in [`super`]). Seed 004 gives each level its own
//! cashback for the bar and for tickets, and its own share of each payable
//! with points.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::tiers::{MAX_PERIOD_DAYS, Tier};
use super::{AccountOverrides, Programme, RulesError, check_percent, invalid};

/// The most category settings one level may have.
pub const MAX_TIER_CATEGORIES: usize = 64;

/// One level's setting for one product category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierCategory {
    /// The category, as sent on [`super::SaleLine::category`] (exact match).
    pub category: String,
    /// Whether these lines earn cashback at this level; `false` = rate 0.
    #[serde(default = "yes")]
    pub cashback: bool,
    /// Accrual percentage of these lines at this level; `None` = the rate
    /// that applies without this setting.
    #[serde(default)]
    pub accrual_percent: Option<Decimal>,
    /// Share of these lines payable with points at this level; `None` = the
    /// cap that applies without this setting.
    #[serde(default)]
    pub cap_percent: Option<Decimal>,
}

fn yes() -> bool {
    true
}

/// Checks one level's category settings and burn period; errors name the
/// key (`programme.tiers[1].categories[0].cap_percent`).
pub(super) fn validate(i: usize, t: &Tier) -> Result<(), RulesError> {
    let at = |k: &str| format!("programme.tiers[{i}].{k}");
    if t.categories.len() > MAX_TIER_CATEGORIES {
        return Err(invalid(
            at("categories"),
            format!(
                "{} categories exceed {MAX_TIER_CATEGORIES}",
                t.categories.len()
            ),
        ));
    }
    for (j, c) in t.categories.iter().enumerate() {
        let key = |k: &str| at(&format!("categories[{j}].{k}"));
        let name = c.category.as_str();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(invalid(key("category"), "1 to 64 characters"));
        }
        if t.categories[..j].iter().any(|o| o.category == name) {
            return Err(invalid(
                key("category"),
                format!("\"{name}\" is set twice in this level"),
            ));
        }
        if let Some(v) = c.accrual_percent {
            if !c.cashback {
                return Err(invalid(
                    key("accrual_percent"),
                    "set with cashback = false (which earns nothing)",
                ));
            }
            check_percent(&key("accrual_percent"), v)?;
        }
        if let Some(v) = c.cap_percent {
            check_percent(&key("cap_percent"), v)?;
        }
    }
    if let Some(d) = t.expiry_days
        && d > MAX_PERIOD_DAYS
    {
        return Err(invalid(
            at("expiry_days"),
            format!("{d} is not within 0..={MAX_PERIOD_DAYS} days"),
        ));
    }
    Ok(())
}

/// Merges level `t` into an account's own percentages: its flat rates
/// under the account's flat ones, its category settings under the
/// account's own setting for the same category (field by field).
pub fn merge(t: &Tier, o: &mut AccountOverrides) {
    o.accrual_percent = o.accrual_percent.or(t.accrual_percent);
    o.cap_percent = o.cap_percent.or(t.cap_percent);
    for c in &t.categories {
        let accrual = if c.cashback {
            c.accrual_percent
        } else {
            Some(Decimal::ZERO)
        };
        if accrual.is_none() && c.cap_percent.is_none() {
            continue;
        }
        let own = o.categories.entry(c.category.clone()).or_default();
        own.accrual_percent = own.accrual_percent.or(accrual);
        own.cap_percent = own.cap_percent.or(c.cap_percent);
    }
}

/// When a lot accrued at `accrued_at` by an account holding `tier` expires;
/// `None` if it does not. A level with `expiry_days` dates the lot like the
/// welcome bonus: the local date of `accrued_at` plus that many days is its
/// last day, and it burns at 00:00 (programme time) the day after; `0`
/// means never. A level without it (and an account without a level) takes
/// the programme's [`super::expiry_of`]. The level is the one held when the
/// sale was priced; the date is fixed then and a later change of level does
/// not move it.
pub fn expiry_for(
    p: &Programme,
    tier: Option<&Tier>,
    accrued_at: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, RulesError> {
    let Some(days) = tier.and_then(|t| t.expiry_days) else {
        return super::expiry_of(p, accrued_at);
    };
    if days == 0 {
        return Ok(None);
    }
    let offset = p.offset()?;
    let local = accrued_at
        .checked_to_offset(offset)
        .ok_or(RulesError::DateOutOfRange)?;
    let last = local
        .date()
        .checked_add(Duration::days(i64::from(days)))
        .ok_or(RulesError::DateOutOfRange)?;
    super::expiry::start_of_next_day(last, offset).map(Some)
}

/// The level named `name` in `p`, for a copy of an account that carries
/// only its level's name (the offline till's).
pub fn named<'p>(p: &'p Programme, name: Option<&str>) -> Option<&'p Tier> {
    let name = name?;
    p.tiers.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rust_decimal_macros::dec;
    use time::macros::datetime;

    use super::super::basis::CapBasis;
    use super::super::tiers::Combine;
    use super::super::{CategoryOverride, CategoryRule, SaleLine, quote};
    use super::*;

    fn line(category: &str, price: Decimal) -> SaleLine {
        SaleLine {
            sku: category.into(),
            name: category.into(),
            category: category.into(),
            qty: Decimal::ONE,
            price,
            discount: Decimal::ZERO,
        }
    }

    fn cat(
        category: &str,
        cashback: bool,
        rate: Option<Decimal>,
        cap: Option<Decimal>,
    ) -> TierCategory {
        TierCategory {
            category: category.into(),
            cashback,
            accrual_percent: rate,
            cap_percent: cap,
        }
    }

    /// Seed 004's cinema: a level with its own cashback and cap for the bar
    /// and for tickets.
    fn silver() -> Tier {
        Tier {
            name: "Серебряный".into(),
            priority: 2,
            accrual_percent: Some(dec!(5)),
            cap_percent: None,
            min_spend: Some(dec!(10000)),
            spend_period_days: Some(90),
            category_min_spend: BTreeMap::new(),
            min_visits: None,
            visits_period_days: None,
            groups: vec![],
            combine: Combine::Any,
            categories: vec![
                cat("bar", true, Some(dec!(7)), Some(dec!(20))),
                cat("tickets", true, Some(dec!(2)), Some(dec!(10))),
            ],
            expiry_days: Some(30),
        }
    }

    fn entry() -> Tier {
        Tier {
            name: "Базовый".into(),
            priority: 1,
            min_spend: None,
            spend_period_days: None,
            categories: vec![cat("tickets", false, None, None)],
            expiry_days: None,
            ..silver()
        }
    }

    fn cinema() -> Programme {
        Programme {
            default_accrual_percent: dec!(3),
            cap_percent: dec!(10),
            expiry_months: Some(3),
            // A programme-wide bar rule: the level's own bar rate beats it.
            categories: vec![CategoryRule {
                category: "bar".into(),
                accrual_percent: Some(dec!(4)),
                cap_percent: None,
                excluded: false,
            }],
            tiers: vec![entry(), silver()],
            ..Programme::default()
        }
    }

    fn priced(t: &Tier, own: AccountOverrides) -> AccountOverrides {
        let mut o = own;
        merge(t, &mut o);
        o
    }

    #[test]
    fn a_level_prices_the_bar_and_tickets_separately() {
        let p = cinema();
        p.validate().unwrap();
        let o = priced(&silver(), AccountOverrides::default());
        // "на билет за 100₽ можно потратить до 10 бонусов и 90₽": the
        // ticket's cap is the level's 10 %; the bar's is its 20 %.
        let lines = [line("tickets", dec!(100)), line("bar", dec!(620))];
        let q = quote(&p, &o, &lines, dec!(1000), Decimal::ZERO).unwrap();
        assert_eq!(q.lines[0].cap, dec!(10));
        assert_eq!(q.lines[1].cap, dec!(124));
        assert_eq!(q.max_redeemable, dec!(134));
        // "Внесём 7₽ бонусами. Останется внести 713₽": 720 in all.
        let q = quote(&p, &o, &lines, dec!(1000), dec!(7)).unwrap();
        assert_eq!(q.total, dec!(720));
        assert_eq!(q.money_paid, dec!(713));
        // 7 spread by the caps (10 : 124): 0.52 and 6.48.
        assert_eq!(q.lines[0].redeemed, dec!(0.52));
        assert_eq!(q.lines[1].redeemed, dec!(6.48));
        // 2 % of 99.48 on the ticket, the level's 7 % (not the rule's 4 %)
        // of 613.52 at the bar: 1.9896 + 42.9464 = 44.936 -> 44.
        assert_eq!(q.lines[0].rate, dec!(2));
        assert_eq!(q.lines[1].rate, dec!(7));
        assert_eq!(q.accrual, dec!(44));
    }

    #[test]
    fn cashback_off_for_a_category_earns_nothing_there() {
        let p = cinema();
        let o = priced(&entry(), AccountOverrides::default());
        let lines = [line("tickets", dec!(100)), line("popcorn", dec!(100))];
        let q = quote(&p, &o, &lines, Decimal::ZERO, Decimal::ZERO).unwrap();
        assert_eq!(q.lines[0].rate, Decimal::ZERO);
        // The cap stays: tickets may still be paid with points.
        assert_eq!(q.lines[0].cap, dec!(10));
        // The level's flat 5 % for what it does not name.
        assert_eq!(q.lines[1].rate, dec!(5));
        assert_eq!(q.accrual, dec!(5));
    }

    #[test]
    fn the_account_own_category_setting_beats_the_level_field_by_field() {
        let p = cinema();
        let own = AccountOverrides {
            accrual_percent: Some(dec!(15)),
            cap_percent: None,
            categories: BTreeMap::from([(
                "bar".to_string(),
                CategoryOverride {
                    cap_percent: None,
                    accrual_percent: Some(dec!(9)),
                },
            )]),
        };
        let o = priced(&silver(), own);
        let lines = [line("bar", dec!(100)), line("tickets", dec!(100))];
        let q = quote(&p, &o, &lines, Decimal::ZERO, Decimal::ZERO).unwrap();
        // The account's own bar rate, the level's bar cap.
        assert_eq!((q.lines[0].rate, q.lines[0].cap), (dec!(9), dec!(20)));
        // The level's ticket rate beats the account's flat 15 %.
        assert_eq!(q.lines[1].rate, dec!(2));
    }

    #[test]
    fn validation_names_the_key() {
        let field = |t: Tier| match super::super::tiers::validate(&[entry(), t]) {
            Err(RulesError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut t = silver();
        t.categories[1].cap_percent = Some(dec!(101));
        assert_eq!(field(t), "programme.tiers[1].categories[1].cap_percent");
        let mut t = silver();
        t.categories[0].cashback = false;
        assert_eq!(field(t), "programme.tiers[1].categories[0].accrual_percent");
        let mut t = silver();
        t.categories[1].category = "bar".into();
        assert_eq!(field(t), "programme.tiers[1].categories[1].category");
        let mut t = silver();
        t.categories[1].category = String::new();
        assert_eq!(field(t), "programme.tiers[1].categories[1].category");
        let mut t = silver();
        t.expiry_days = Some(MAX_PERIOD_DAYS + 1);
        assert_eq!(field(t), "programme.tiers[1].expiry_days");
        let mut t = silver();
        t.categories = (0..=MAX_TIER_CATEGORIES)
            .map(|i| cat(&format!("c{i}"), true, None, None))
            .collect();
        assert_eq!(field(t), "programme.tiers[1].categories");
        let mut t = silver();
        t.expiry_days = Some(0);
        assert!(super::super::tiers::validate(&[entry(), t]).is_ok());
    }

    #[test]
    fn points_burn_after_the_level_own_days() {
        let p = cinema();
        // 2026-11-25 15:00 in Moscow.
        let at = datetime!(2026-11-25 12:00 UTC);
        // Silver: 30 days, through 2026-12-25, gone at 00:00 Moscow time.
        let s = silver();
        assert_eq!(
            expiry_for(&p, Some(&s), at).unwrap(),
            Some(datetime!(2026-12-26 00:00 +3))
        );
        // The entry level has none of its own: the programme's 3 months.
        let e = entry();
        assert_eq!(
            expiry_for(&p, Some(&e), at).unwrap(),
            Some(datetime!(2026-02-26 00:00 +3).replace_year(2027).unwrap())
        );
        assert_eq!(
            expiry_for(&p, None, at).unwrap(),
            super::super::expiry_of(&p, at).unwrap()
        );
        // 0 days: points accrued at this level never burn.
        let mut never = silver();
        never.expiry_days = Some(0);
        assert_eq!(expiry_for(&p, Some(&never), at).unwrap(), None);
        assert_eq!(named(&p, Some("Серебряный")), Some(&p.tiers[1]));
        assert_eq!(named(&p, Some("Золотой")), None);
    }

    /// Seed 002's pharmacy: "Оплатить можно 50% чека".
    fn pharmacy(basis: CapBasis) -> Programme {
        Programme {
            cap_basis: basis,
            excluded_skus: vec!["rx".into()],
            categories: vec![
                CategoryRule {
                    category: "essential".into(),
                    accrual_percent: Some(dec!(1)),
                    cap_percent: None,
                    excluded: false,
                },
                CategoryRule {
                    category: "baby".into(),
                    accrual_percent: None,
                    cap_percent: Some(dec!(10)),
                    excluded: false,
                },
            ],
            ..Programme::default()
        }
    }

    #[test]
    fn a_receipt_cap_is_half_of_the_receipt_not_of_each_line() {
        let none = AccountOverrides::default();
        let lines = [line("otc", dec!(100)), line("baby", dec!(100))];
        // Per line: 50 + 10.
        let q = quote(
            &pharmacy(CapBasis::Line),
            &none,
            &lines,
            dec!(500),
            Decimal::ZERO,
        )
        .unwrap();
        assert_eq!((q.max_redeemable, q.receipt_cap), (dec!(60), None));
        // Per receipt: half of 200, within the lines' own caps (100 + 10).
        let p = pharmacy(CapBasis::Receipt);
        let q = quote(&p, &none, &lines, dec!(500), Decimal::ZERO).unwrap();
        assert_eq!(q.receipt_cap, Some(dec!(100)));
        assert_eq!(q.max_redeemable, dec!(100));
        assert_eq!((q.lines[0].cap, q.lines[1].cap), (dec!(100), dec!(10)));
        let q = quote(&p, &none, &lines, dec!(500), dec!(100)).unwrap();
        // 100 spread 100 : 10 -> 90.91 and 9.09; the baby food's 10 holds.
        assert_eq!(q.lines[0].redeemed, dec!(90.91));
        assert_eq!(q.lines[1].redeemed, dec!(9.09));
        assert!(matches!(
            quote(&p, &none, &lines, dec!(500), dec!(100.01)),
            Err(RulesError::RedeemTooHigh {
                limit: super::super::RedeemLimit::Cap,
                ..
            })
        ));
        // An excluded line takes no points and is not part of the base.
        let lines = [
            line("otc", dec!(100)),
            SaleLine {
                sku: "rx".into(),
                ..line("otc", dec!(300))
            },
        ];
        let q = quote(&p, &none, &lines, dec!(500), Decimal::ZERO).unwrap();
        assert_eq!(q.receipt_cap, Some(dec!(50)));
        assert_eq!(q.lines[1].cap, Decimal::ZERO);
        // Rounded once on the receipt: three lines of 0.33 give 0.49, not
        // 3 × 0.16.
        let lines = [
            line("otc", dec!(0.33)),
            line("otc", dec!(0.33)),
            line("otc", dec!(0.33)),
        ];
        let per_line = quote(
            &pharmacy(CapBasis::Line),
            &none,
            &lines,
            dec!(5),
            Decimal::ZERO,
        )
        .unwrap();
        assert_eq!(per_line.max_redeemable, dec!(0.48));
        let q = quote(&p, &none, &lines, dec!(5), Decimal::ZERO).unwrap();
        assert_eq!(q.max_redeemable, dec!(0.49));
        // A level's flat cap is the receipt's share too.
        let mut own = AccountOverrides::default();
        merge(
            &Tier {
                cap_percent: Some(dec!(30)),
                categories: vec![],
                ..silver()
            },
            &mut own,
        );
        let lines = [line("otc", dec!(100)), line("essential", dec!(100))];
        let q = quote(&p, &own, &lines, dec!(500), Decimal::ZERO).unwrap();
        assert_eq!(q.receipt_cap, Some(dec!(60)));
        // ЖНВЛС 1 %, the rest the level's 5 %, on the money part after 60
        // points (30 each): 3.5 + 0.7 = 4.2 -> 4.
        let q = quote(&p, &own, &lines, dec!(500), dec!(60)).unwrap();
        assert_eq!(q.accrual, dec!(4));
    }

    fn arb_level() -> impl Strategy<Value = Tier> {
        let setting = (
            prop::sample::select(vec!["bar", "tickets", "essential", "excluded"]),
            any::<bool>(),
            prop::option::of(0u32..=100),
            prop::option::of(0u32..=100),
        )
            .prop_map(|(c, on, r, cap)| {
                cat(
                    c,
                    on,
                    r.filter(|_| on).map(Decimal::from),
                    cap.map(Decimal::from),
                )
            });
        (
            prop::collection::vec(setting, 0..4),
            prop::option::of(0u32..=100),
            prop::option::of(0u32..=100),
        )
            .prop_map(|(mut cats, r, cap)| {
                let mut seen = std::collections::BTreeSet::new();
                cats.retain(|c| seen.insert(c.category.clone()));
                Tier {
                    accrual_percent: r.map(Decimal::from),
                    cap_percent: cap.map(Decimal::from),
                    categories: cats,
                    ..silver()
                }
            })
    }

    proptest! {
        /// With any level merged in, on either basis: parts add up to the
        /// redemption exactly, no line goes over its cap, an excluded line
        /// takes nothing, and per receipt the receipt's cap holds.
        #[test]
        fn levels_and_bases_keep_the_caps(
            level in arb_level(),
            receipt in any::<bool>(),
            prices in prop::collection::vec((0usize..4, 1u32..=1_000_000), 0..6),
            balance in 0u32..=10_000_000,
            frac in 0u32..=1000,
        ) {
            let mut p = cinema();
            p.cap_basis = if receipt { CapBasis::Receipt } else { CapBasis::Line };
            p.categories.push(CategoryRule {
                category: "excluded".into(),
                accrual_percent: None,
                cap_percent: None,
                excluded: true,
            });
            p.tiers = vec![entry(), level.clone()];
            prop_assert!(p.validate().is_ok());
            let cats = ["bar", "tickets", "essential", "excluded"];
            let lines: Vec<SaleLine> = prices
                .iter()
                .map(|(c, v)| line(cats[*c], Decimal::new((*v).into(), 2)))
                .collect();
            let o = priced(&level, AccountOverrides::default());
            let balance = Decimal::new(balance.into(), 2);
            let max = quote(&p, &o, &lines, balance, Decimal::ZERO).unwrap().max_redeemable;
            let redeem = (max * Decimal::from(frac) / dec!(1000)).trunc_with_scale(2);
            let q = quote(&p, &o, &lines, balance, redeem).unwrap();
            let parts: Decimal = q.lines.iter().map(|l| l.redeemed).sum();
            prop_assert_eq!(parts, redeem);
            for (l, s) in q.lines.iter().zip(&lines) {
                prop_assert!(l.redeemed >= Decimal::ZERO && l.redeemed <= l.cap);
                prop_assert!(l.cap <= l.total);
                if s.category == "excluded" {
                    prop_assert_eq!(l.cap, Decimal::ZERO);
                    prop_assert_eq!(l.rate, Decimal::ZERO);
                }
            }
            if let Some(r) = q.receipt_cap {
                prop_assert!(q.max_redeemable <= r);
                let base: Decimal = q.lines.iter().zip(&lines)
                    .filter(|(_, s)| s.category != "excluded")
                    .map(|(l, _)| l.total)
                    .sum();
                let flat = level.cap_percent.unwrap_or(p.cap_percent);
                prop_assert!(r <= base * flat / dec!(100));
            }
            let over = q.max_redeemable + dec!(0.01);
            let refused = matches!(
                quote(&p, &o, &lines, balance, over),
                Err(RulesError::RedeemTooHigh { .. })
            );
            prop_assert!(refused);
        }
    }
}
