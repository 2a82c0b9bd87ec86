use super::*;
use crate::ledger::rules::{AccountOverrides, AccrualRounding, quote};
use proptest::prelude::*;
use rust_decimal_macros::dec;
use time::macros::datetime;

/// 5 % back in whole points, Moscow time (UTC+3).
fn programme(campaigns: Vec<Campaign>) -> Programme {
    Programme {
        campaigns,
        expiry_months: None,
        ..Programme::default()
    }
}

fn line(sku: &str, category: &str, price: Decimal) -> SaleLine {
    SaleLine {
        sku: sku.into(),
        name: sku.into(),
        category: category.into(),
        qty: Decimal::ONE,
        price,
        discount: Decimal::ZERO,
    }
}

fn campaign(name: &str) -> Campaign {
    Campaign {
        name: name.into(),
        extra_percent: Some(dec!(5)),
        ..Campaign::default()
    }
}

/// The accrual of a sale of `lines` at `at` for an account in `groups`.
fn accrual_at(
    p: &Programme,
    lines: &[SaleLine],
    at: OffsetDateTime,
    groups: &[&str],
    promo: Option<&PromoCode>,
) -> Quote {
    p.validate().unwrap();
    let mut q = quote(
        p,
        &AccountOverrides::default(),
        lines,
        Decimal::ZERO,
        Decimal::ZERO,
    )
    .unwrap();
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    apply(p, lines, &mut q, at, &groups, promo).unwrap();
    q
}

fn one_line(p: &Programme, at: OffsetDateTime) -> Decimal {
    accrual_at(p, &[line("A", "general", dec!(1000))], at, &[], None).accrual
}

#[test]
fn weekday_turns_at_local_midnight_not_utc() {
    // 2026-12-05 is a Saturday; in Moscow it starts at 21:00 UTC on Friday.
    let p = programme(vec![Campaign {
        weekdays: vec!["sat".into()],
        ..campaign("weekend")
    }]);
    assert_eq!(one_line(&p, datetime!(2026-12-04 20:59:59 UTC)), dec!(50));
    assert_eq!(one_line(&p, datetime!(2026-12-04 21:00:00 UTC)), dec!(100));
    assert_eq!(one_line(&p, datetime!(2026-12-05 20:59:59 UTC)), dec!(100));
    assert_eq!(one_line(&p, datetime!(2026-12-05 21:00:00 UTC)), dec!(50));
    // At another offset the same instants fall on other days.
    let utc = Programme {
        utc_offset_minutes: 0,
        ..p.clone()
    };
    assert_eq!(one_line(&utc, datetime!(2026-12-04 21:00:00 UTC)), dec!(50));
    assert_eq!(
        one_line(&utc, datetime!(2026-12-05 00:00:00 UTC)),
        dec!(100)
    );
}

#[test]
fn hour_window_includes_its_start_and_excludes_its_end() {
    let p = programme(vec![Campaign {
        time_from: Some("10:00".into()),
        time_until: Some("14:00".into()),
        ..campaign("lunch")
    }]);
    // 10:00 Moscow = 07:00 UTC.
    assert_eq!(one_line(&p, datetime!(2026-12-07 06:59:59 UTC)), dec!(50));
    assert_eq!(one_line(&p, datetime!(2026-12-07 07:00:00 UTC)), dec!(100));
    assert_eq!(one_line(&p, datetime!(2026-12-07 10:59:59 UTC)), dec!(100));
    assert_eq!(one_line(&p, datetime!(2026-12-07 11:00:00 UTC)), dec!(50));
}

#[test]
fn a_window_over_midnight_wraps() {
    let p = programme(vec![Campaign {
        time_from: Some("22:00".into()),
        time_until: Some("02:00".into()),
        ..campaign("night")
    }]);
    assert_eq!(one_line(&p, datetime!(2026-12-07 18:59:59 UTC)), dec!(50));
    assert_eq!(one_line(&p, datetime!(2026-12-07 19:00:00 UTC)), dec!(100));
    assert_eq!(one_line(&p, datetime!(2026-12-07 22:59:59 UTC)), dec!(100));
    assert_eq!(one_line(&p, datetime!(2026-12-07 23:00:00 UTC)), dec!(50));
}

#[test]
fn dates_are_local_and_inclusive() {
    let p = programme(vec![Campaign {
        from: Some("2026-12-01".into()),
        until: Some("2026-12-31".into()),
        ..campaign("december")
    }]);
    assert_eq!(one_line(&p, datetime!(2026-11-30 20:59:59 UTC)), dec!(50));
    assert_eq!(one_line(&p, datetime!(2026-11-30 21:00:00 UTC)), dec!(100));
    assert_eq!(one_line(&p, datetime!(2026-12-31 20:59:59 UTC)), dec!(100));
    assert_eq!(one_line(&p, datetime!(2026-12-31 21:00:00 UTC)), dec!(50));
}

#[test]
fn percentages_add_multipliers_multiply_points_once_per_sale() {
    let at = datetime!(2026-12-07 12:00 UTC);
    let p = programme(vec![
        campaign("plus5"),
        Campaign {
            extra_percent: Some(dec!(2)),
            ..campaign("plus2")
        },
        Campaign {
            extra_percent: None,
            multiplier: Some(dec!(2)),
            ..campaign("double")
        },
        Campaign {
            extra_percent: None,
            multiplier: Some(dec!(3)),
            categories: vec!["bar".into()],
            ..campaign("triple bar")
        },
        Campaign {
            extra_percent: None,
            extra_points: Some(dec!(25)),
            skus: vec!["POP".into()],
            ..campaign("popcorn")
        },
    ]);
    let lines = [
        line("T1", "tickets", dec!(1000)),
        line("POP", "bar", dec!(200)),
        line("POP", "bar", dec!(100)),
    ];
    let q = accrual_at(&p, &lines, at, &[], None);
    // tickets: 50 × 2 + 1000 × 7 % = 170; bar: 10 × 2 × 3 + 200 × 7 % = 74,
    // and 5 × 6 + 7 = 37; popcorn: 25 once.
    assert_eq!(q.accrual, dec!(306));
    assert_eq!(q.extra_accrual, dec!(241));
    let names: Vec<&str> = q.campaigns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["plus5", "plus2", "double", "triple bar", "popcorn"]);
    assert_eq!(q.campaigns[3].lines, [1, 2]);
    assert_eq!(q.campaigns[4].lines, [1, 2]);
}

#[test]
fn a_line_never_earns_more_than_its_eligible_amount() {
    let at = datetime!(2026-12-07 12:00 UTC);
    let p = programme(vec![
        Campaign {
            extra_percent: Some(dec!(100)),
            ..campaign("all back")
        },
        Campaign {
            extra_percent: None,
            multiplier: Some(dec!(10)),
            ..campaign("ten times")
        },
    ]);
    assert_eq!(one_line(&p, at), dec!(1000));
}

#[test]
fn excluded_lines_and_other_groups_get_nothing() {
    let at = datetime!(2026-12-07 12:00 UTC);
    let p = Programme {
        excluded_skus: vec!["CIGS".into()],
        ..programme(vec![Campaign {
            groups: vec!["staff".into()],
            ..campaign("staff")
        }])
    };
    let lines = [
        line("CIGS", "tobacco", dec!(300)),
        line("A", "general", dec!(100)),
    ];
    assert_eq!(accrual_at(&p, &lines, at, &[], None).accrual, dec!(5));
    let q = accrual_at(&p, &lines, at, &["staff"], None);
    assert_eq!(q.accrual, dec!(10));
    assert_eq!(q.campaigns[0].lines, [1]);
}

#[test]
fn the_extra_joins_the_accrual_before_its_single_rounding() {
    let at = datetime!(2026-12-07 12:00 UTC);
    let p = programme(vec![campaign("plus5")]);
    // 5 % of 99.99 = 4.9995, twice: 9.999 floors to 9 (two roundings: 8).
    let q = accrual_at(&p, &[line("A", "general", dec!(99.99))], at, &[], None);
    assert_eq!(q.accrual, dec!(9));
    let cents = Programme {
        accrual_rounding: AccrualRounding::DownToCents,
        ..p
    };
    let q = accrual_at(&cents, &[line("A", "general", dec!(99.99))], at, &[], None);
    assert_eq!(q.accrual, dec!(9.99));
}

#[test]
fn a_promo_code_multiplies_then_adds_its_bonus() {
    let at = datetime!(2026-12-07 12:00 UTC);
    let p = programme(vec![campaign("plus5")]);
    let code = PromoCode {
        code: "winter".into(),
        multiplier: Some(dec!(2)),
        bonus: Some(dec!(100)),
        ..PromoCode::default()
    };
    let q = accrual_at(
        &p,
        &[line("A", "general", dec!(1000))],
        at,
        &[],
        Some(&code),
    );
    // (50 + 50) × 2 + 100.
    assert_eq!(q.accrual, dec!(300));
    assert_eq!(q.promo.as_ref().unwrap().code, "WINTER");
}

#[test]
fn promo_codes_match_ignoring_case_within_their_dates() {
    let p = Programme {
        promo_codes: vec![
            PromoCode {
                code: "Winter-26".into(),
                bonus: Some(dec!(100)),
                from: Some("2026-12-01".into()),
                until: Some("2026-12-31".into()),
                ..PromoCode::default()
            },
            PromoCode {
                code: "OLD".into(),
                bonus: Some(dec!(1)),
                disabled: true,
                ..PromoCode::default()
            },
        ],
        ..programme(vec![])
    };
    p.validate().unwrap();
    let at = datetime!(2026-12-07 12:00 UTC);
    assert_eq!(
        promo_at(&p, " winter-26 ", at).unwrap().bonus,
        Some(dec!(100))
    );
    assert_eq!(promo_at(&p, "WINTER", at), Err(PromoRefusal::Unknown));
    assert_eq!(promo_at(&p, "old", at), Err(PromoRefusal::Disabled));
    assert_eq!(
        promo_at(&p, "WINTER-26", datetime!(2026-11-30 20:59:59 UTC)),
        Err(PromoRefusal::NotYet("2026-12-01".into()))
    );
    assert!(promo_at(&p, "WINTER-26", datetime!(2026-11-30 21:00:00 UTC)).is_ok());
    assert!(promo_at(&p, "WINTER-26", datetime!(2026-12-31 20:59:59 UTC)).is_ok());
    assert_eq!(
        promo_at(&p, "WINTER-26", datetime!(2026-12-31 21:00:00 UTC)),
        Err(PromoRefusal::Expired("2026-12-31".into()))
    );
}

#[test]
fn bad_configuration_names_the_field() {
    let field = |p: Programme| match p.validate() {
        Err(RulesError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let two = Campaign {
        multiplier: Some(dec!(2)),
        ..campaign("x")
    };
    assert_eq!(
        field(programme(vec![two])),
        "programme.campaigns[0].extra_percent"
    );
    let bad_day = Campaign {
        weekdays: vec!["sunday".into()],
        ..campaign("x")
    };
    assert_eq!(
        field(programme(vec![bad_day])),
        "programme.campaigns[0].weekdays"
    );
    let half = Campaign {
        time_from: Some("10:00".into()),
        ..campaign("x")
    };
    assert_eq!(
        field(programme(vec![half])),
        "programme.campaigns[0].time_until"
    );
    let big = Campaign {
        extra_percent: None,
        multiplier: Some(dec!(11)),
        ..campaign("x")
    };
    assert_eq!(
        field(programme(vec![big])),
        "programme.campaigns[0].multiplier"
    );
    assert_eq!(
        field(programme(vec![campaign("x"), campaign("x")])),
        "programme.campaigns[1].name"
    );
    let codes = |codes: Vec<PromoCode>| Programme {
        promo_codes: codes,
        ..programme(vec![])
    };
    let code = |c: &str| PromoCode {
        code: c.into(),
        bonus: Some(dec!(1)),
        ..PromoCode::default()
    };
    assert_eq!(
        field(codes(vec![code("a b")])),
        "programme.promo_codes[0].code"
    );
    assert_eq!(
        field(codes(vec![code("ab"), code("AB")])),
        "programme.promo_codes[1].code"
    );
    assert_eq!(
        field(codes(vec![PromoCode {
            bonus: None,
            ..code("ab")
        }])),
        "programme.promo_codes[0].bonus"
    );
    assert_eq!(
        field(codes(vec![PromoCode {
            total: Some(0),
            ..code("ab")
        }])),
        "programme.promo_codes[0].total"
    );
}

fn arb_campaign() -> impl Strategy<Value = Campaign> {
    (
        0u8..3,
        0u32..=100,
        1u32..=10,
        0u32..=1000,
        prop::sample::select(vec![None, Some("bar"), Some("tickets")]),
        prop::option::of(0u8..24),
    )
        .prop_map(|(kind, pct, mult, pts, cat, hour)| Campaign {
            name: String::new(),
            extra_percent: (kind == 0).then(|| Decimal::from(pct)),
            multiplier: (kind == 1).then(|| Decimal::from(mult)),
            extra_points: (kind == 2).then(|| Decimal::from(pts)),
            categories: cat.map(|c| vec![c.to_owned()]).unwrap_or_default(),
            time_from: hour.map(|h| format!("{h:02}:00")),
            time_until: hour.map(|h| format!("{:02}:30", h)),
            ..Campaign::default()
        })
}

proptest! {
    /// However campaigns and a code combine, the accrual is never below
    /// the base one and never above the money eligible for it plus the
    /// fixed points on offer.
    #[test]
    fn combined_campaigns_stay_between_the_base_and_the_eligible_amount(
        mut campaigns in prop::collection::vec(arb_campaign(), 0..12),
        prices in prop::collection::vec((0i64..=10_000_000, 0usize..3), 1..6),
        rate in 0u32..=100,
        minute in 0i64..(7 * 24 * 60),
        promo_mult in prop::option::of(1u32..=10),
        promo_bonus in prop::option::of(0u32..=1000),
    ) {
        for (i, c) in campaigns.iter_mut().enumerate() {
            c.name = format!("c{i}");
        }
        let p = Programme {
            default_accrual_percent: Decimal::from(rate),
            ..programme(campaigns)
        };
        let cats = ["bar", "tickets", "other"];
        let lines: Vec<SaleLine> = prices
            .iter()
            .map(|(c, k)| line("S", cats[*k], Decimal::new(*c, 2)))
            .collect();
        let code = (promo_mult.is_some() || promo_bonus.is_some()).then(|| PromoCode {
            code: "P".into(),
            multiplier: promo_mult.map(Decimal::from),
            bonus: promo_bonus.map(Decimal::from),
            ..PromoCode::default()
        });
        let at = datetime!(2026-12-07 00:00 UTC) + time::Duration::minutes(minute);
        let base = quote(&p, &AccountOverrides::default(), &lines, Decimal::ZERO, Decimal::ZERO)
            .unwrap();
        let q = accrual_at(&p, &lines, at, &[], code.as_ref());
        let fixed: Decimal = p.campaigns.iter().filter_map(|c| c.extra_points).sum::<Decimal>()
            + code.as_ref().and_then(|c| c.bonus).unwrap_or_default();
        prop_assert!(q.accrual >= Decimal::ZERO);
        prop_assert!(q.extra_accrual >= Decimal::ZERO);
        prop_assert!(q.accrual >= base.accrual);
        prop_assert!(q.accrual <= q.eligible_total + fixed);
        prop_assert_eq!(q.accrual, q.accrual.trunc());
        // Nothing else of the quote moves.
        prop_assert_eq!(&q.lines, &base.lines);
        prop_assert_eq!(q.total, base.total);
    }
}
