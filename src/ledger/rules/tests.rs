use super::*;
use proptest::prelude::*;
use rust_decimal_macros::dec;
use time::macros::datetime;

fn programme() -> Programme {
    Programme {
        name: "test".into(),
        precision: 2,
        accrual_rounding: AccrualRounding::DownToCents,
        default_accrual_percent: dec!(5),
        categories: vec![],
        excluded_skus: vec![],
        cap_percent: dec!(50),
        accrue_on_discounted: true,
        accrue_on_points_part: PointsPart::MoneyPart,
        expiry_months: None,
        welcome_bonus: None,
        welcome_expiry_days: None,
        utc_offset_minutes: 180,
        refund_shortfall: RefundShortfall::Clamp,
        tiers: vec![],
        cap_basis: basis::CapBasis::Line,
        enabled: true,
        active_from: None,
        active_until: None,
        agreement_url: None,
        return_spent_points_on_refund: true,
        cashier_limits: CashierLimits::default(),
        hold_days: 0,
        campaigns: vec![],
        promo_codes: vec![],
        ..Programme::default()
    }
}

fn pharmacy() -> Programme {
    Programme {
        name: "Аптека".into(),
        categories: vec![CategoryRule {
            category: "essential".into(),
            accrual_percent: Some(dec!(1)),
            cap_percent: None,
            excluded: false,
        }],
        expiry_months: Some(6),
        ..programme()
    }
}

fn cinema() -> Programme {
    Programme {
        name: "Кино".into(),
        accrual_rounding: AccrualRounding::DownToWhole,
        default_accrual_percent: dec!(1),
        cap_percent: dec!(10),
        welcome_bonus: Some(dec!(100)),
        welcome_expiry_days: Some(30),
        ..programme()
    }
}

fn line(sku: &str, category: &str, qty: Decimal, price: Decimal) -> SaleLine {
    SaleLine {
        sku: sku.into(),
        name: sku.into(),
        category: category.into(),
        qty,
        price,
        discount: Decimal::ZERO,
    }
}

fn none() -> AccountOverrides {
    AccountOverrides::default()
}

const BIG: Decimal = dec!(1000000);

#[test]
fn max_amount_is_ten_to_the_twelfth() {
    assert_eq!(MAX_AMOUNT, dec!(1_000_000_000_000));
}

#[test]
fn crm_order_12000_with_50_percent_cap_allows_6000() {
    let q = quote(
        &programme(),
        &none(),
        &[line("meal", "food", dec!(1), dec!(12000))],
        BIG,
        dec!(0),
    )
    .unwrap();
    assert_eq!(q.total, dec!(12000));
    assert_eq!(q.max_redeemable, dec!(6000));
    assert_eq!(q.money_paid, dec!(12000));
    // 5 % default on the whole total.
    assert_eq!(q.accrual, dec!(600));
}

#[test]
fn pharmacy_one_percent_on_essential_five_on_the_rest() {
    let lines = [
        line("aspirin", "essential", dec!(2), dec!(150)),
        line("cream", "cosmetics", dec!(1), dec!(700)),
    ];
    let q = quote(&pharmacy(), &none(), &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.lines[0].rate, dec!(1));
    assert_eq!(q.lines[1].rate, dec!(5));
    assert_eq!(q.total, dec!(1000));
    assert_eq!(q.max_redeemable, dec!(500));
    assert_eq!(q.accrual, dec!(3) + dec!(35));

    // Half the receipt in points; accrual only on the money part.
    let q = quote(&pharmacy(), &none(), &lines, BIG, dec!(500)).unwrap();
    assert_eq!(q.lines[0].redeemed, dec!(150));
    assert_eq!(q.lines[1].redeemed, dec!(350));
    assert_eq!(q.money_paid, dec!(500));
    assert_eq!(q.accrual, dec!(1.5) + dec!(17.5));
}

#[test]
fn pharmacy_points_expire_after_six_months() {
    let at = datetime!(2025-03-10 15:00 +03:00);
    assert_eq!(
        expiry_of(&pharmacy(), at).unwrap(),
        Some(datetime!(2025-09-11 00:00 +03:00))
    );
    assert_eq!(expiry_of(&programme(), at).unwrap(), None);
}

#[test]
fn cinema_ticket_100_with_10_percent_cap() {
    let q = quote(
        &cinema(),
        &none(),
        &[line("ticket", "tickets", dec!(1), dec!(100))],
        BIG,
        dec!(10),
    )
    .unwrap();
    assert_eq!(q.max_redeemable, dec!(10));
    assert_eq!(q.redeem, dec!(10));
    assert_eq!(q.money_paid, dec!(90));
    let err = quote(
        &cinema(),
        &none(),
        &[line("ticket", "tickets", dec!(1), dec!(100))],
        BIG,
        dec!(11),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RulesError::RedeemTooHigh {
            requested: dec!(11),
            max: dec!(10),
            limit: RedeemLimit::Cap
        }
    );
}

#[test]
fn cinema_order_720_paying_7_points_both_accrual_switches() {
    let lines = [
        line("popcorn", "bar", dec!(2), dec!(260)),
        line("ticket", "tickets", dec!(1), dec!(200)),
    ];
    let p = Programme {
        default_accrual_percent: dec!(10),
        ..cinema()
    };
    let q = quote(&p, &none(), &lines, BIG, dec!(7)).unwrap();
    assert_eq!(q.total, dec!(720));
    assert_eq!(q.max_redeemable, dec!(72));
    assert_eq!(q.money_paid, dec!(713));
    // Only the money part: 10 % of 713 = 71.3 -> 71.
    assert_eq!(q.eligible_total, dec!(713));
    assert_eq!(q.accrual, dec!(71));
    let parts: Decimal = q.lines.iter().map(|l| l.redeemed).sum();
    assert_eq!(parts, dec!(7));

    let on_points = Programme {
        accrue_on_points_part: PointsPart::WholeLine,
        ..p
    };
    let q = quote(&on_points, &none(), &lines, BIG, dec!(7)).unwrap();
    assert_eq!(q.money_paid, dec!(713));
    assert_eq!(q.eligible_total, dec!(720));
    assert_eq!(q.accrual, dec!(72));
}

#[test]
fn per_customer_overrides_replace_defaults_not_category_rules() {
    let o = AccountOverrides {
        accrual_percent: Some(dec!(10)),
        cap_percent: Some(dec!(20)),
        ..none()
    };
    let lines = [
        line("aspirin", "essential", dec!(1), dec!(100)),
        line("cream", "cosmetics", dec!(1), dec!(100)),
    ];
    let q = quote(&pharmacy(), &o, &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.lines[0].rate, dec!(1));
    assert_eq!(q.lines[1].rate, dec!(10));
    assert_eq!(q.lines[0].cap, dec!(20));
    assert_eq!(q.lines[1].cap, dec!(20));
    assert_eq!(q.max_redeemable, dec!(40));
    assert_eq!(q.accrual, dec!(11));

    // A category cap beats the account's.
    let mut p = pharmacy();
    p.categories[0].cap_percent = Some(dec!(0));
    let q = quote(&p, &o, &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.lines[0].cap, dec!(0));
    assert_eq!(q.max_redeemable, dec!(20));
}

#[test]
fn excluded_sku_and_category_neither_accrue_nor_take_points() {
    let mut p = programme();
    p.excluded_skus = vec!["cigs".into()];
    p.categories = vec![CategoryRule {
        category: "alcohol".into(),
        accrual_percent: Some(dec!(50)),
        cap_percent: Some(dec!(100)),
        excluded: true,
    }];
    let lines = [
        line("cigs", "tobacco", dec!(1), dec!(200)),
        line("wine", "alcohol", dec!(1), dec!(800)),
        line("bread", "food", dec!(1), dec!(100)),
    ];
    let q = quote(&p, &none(), &lines, BIG, dec!(50)).unwrap();
    for l in &q.lines[..2] {
        assert_eq!(
            (l.rate, l.cap, l.eligible, l.redeemed),
            (dec!(0), dec!(0), dec!(0), dec!(0))
        );
    }
    assert_eq!(q.total, dec!(1100));
    assert_eq!(q.max_redeemable, dec!(50));
    assert_eq!(q.lines[2].redeemed, dec!(50));
    assert_eq!(q.accrual, dec!(2.5));
}

#[test]
fn discounted_line_without_accrue_on_discounted() {
    let mut p = programme();
    p.accrue_on_discounted = false;
    let mut discounted = line("shirt", "clothes", dec!(2), dec!(500));
    discounted.discount = dec!(100);
    let lines = [discounted, line("socks", "clothes", dec!(1), dec!(100))];
    let q = quote(&p, &none(), &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.lines[0].total, dec!(900));
    assert_eq!(q.lines[0].rate, dec!(0));
    assert_eq!(q.lines[0].eligible, dec!(0));
    // Points can still pay for it.
    assert_eq!(q.lines[0].cap, dec!(450));
    assert_eq!(q.accrual, dec!(5));

    p.accrue_on_discounted = true;
    let q = quote(&p, &none(), &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.accrual, dec!(50));
}

#[test]
fn redeem_over_balance_names_the_balance() {
    let err = quote(
        &programme(),
        &none(),
        &[line("a", "x", dec!(1), dec!(1000))],
        dec!(120.555),
        dec!(121),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RulesError::RedeemTooHigh {
            requested: dec!(121),
            max: dec!(120.55),
            limit: RedeemLimit::Balance
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot redeem 121: at most 120.55 (balance)"
    );
}

#[test]
fn negative_balance_allows_nothing() {
    let q = quote(
        &programme(),
        &none(),
        &[line("a", "x", dec!(1), dec!(1000))],
        dec!(-5),
        dec!(0),
    )
    .unwrap();
    assert_eq!(q.max_redeemable, dec!(0));
}

#[test]
fn rounding_down_to_whole_vs_cents() {
    let lines = [line("a", "x", dec!(1), dec!(19.99))];
    let mut p = programme();
    p.accrual_rounding = AccrualRounding::DownToWhole;
    let q = quote(&p, &none(), &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.lines[0].accrual, dec!(0.9995));
    assert_eq!(q.accrual, dec!(0));
    p.accrual_rounding = AccrualRounding::DownToCents;
    let q = quote(&p, &none(), &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.accrual, dec!(0.99));
}

#[test]
fn accrual_is_rounded_once_on_the_total() {
    // Three lines of 0.9995 each: per-line flooring would give 0, once 2.
    let lines = vec![line("a", "x", dec!(1), dec!(19.99)); 3];
    let mut p = programme();
    p.accrual_rounding = AccrualRounding::DownToWhole;
    let q = quote(&p, &none(), &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.accrual, dec!(2));
}

#[test]
fn caps_round_down() {
    // 50 % of 0.03 = 0.015 -> 0.01; of 9.99 = 4.995 -> 4.99.
    let lines = [
        line("a", "x", dec!(1), dec!(0.03)),
        line("b", "x", dec!(1), dec!(9.99)),
    ];
    let q = quote(&programme(), &none(), &lines, BIG, dec!(0)).unwrap();
    assert_eq!(q.lines[0].cap, dec!(0.01));
    assert_eq!(q.lines[1].cap, dec!(4.99));
    assert_eq!(q.max_redeemable, dec!(5.00));
}

#[test]
fn weighed_goods_total_rounded_half_away_from_zero() {
    // 0.125 kg × 0.10 = 0.0125 -> 0.01; 0.25 × 0.1 = 0.025 -> 0.03.
    let q = quote(
        &programme(),
        &none(),
        &[
            line("a", "x", dec!(0.125), dec!(0.10)),
            line("b", "x", dec!(0.25), dec!(0.1)),
        ],
        BIG,
        dec!(0),
    )
    .unwrap();
    assert_eq!(q.lines[0].total, dec!(0.01));
    assert_eq!(q.lines[1].total, dec!(0.03));
}

#[test]
fn allocation_largest_remainder() {
    // Three equal caps, 0.10 to spread: 0.04, 0.03, 0.03 (tie to the first).
    let lines = vec![line("a", "x", dec!(1), dec!(2)); 3];
    let q = quote(&programme(), &none(), &lines, BIG, dec!(0.10)).unwrap();
    let parts: Vec<Decimal> = q.lines.iter().map(|l| l.redeemed).collect();
    assert_eq!(parts, vec![dec!(0.04), dec!(0.03), dec!(0.03)]);
    assert_eq!(allocate(7, &[1, 2, 4]), vec![1, 2, 4]);
    assert_eq!(allocate(5, &[0, 3, 3]), vec![0, 3, 2]);
    assert_eq!(allocate(0, &[0, 0]), vec![0, 0]);
}

#[test]
fn validation_names_the_field() {
    let mut bad = line("a", "x", dec!(1), dec!(10));
    bad.discount = dec!(10.01);
    let lines = [
        line("a", "x", dec!(1), dec!(1)),
        line("b", "x", dec!(1), dec!(1)),
        bad,
    ];
    let field = |r: Result<Quote, RulesError>| match r.unwrap_err() {
        RulesError::Invalid { field, .. } => field,
        e => panic!("unexpected {e}"),
    };
    let p = programme();
    assert_eq!(
        field(quote(&p, &none(), &lines, BIG, dec!(0))),
        "lines[2].discount"
    );
    let lines = [line("a", "x", dec!(0), dec!(1))];
    assert_eq!(
        field(quote(&p, &none(), &lines, BIG, dec!(0))),
        "lines[0].qty"
    );
    let lines = [line("a", "x", dec!(1), dec!(-1))];
    assert_eq!(
        field(quote(&p, &none(), &lines, BIG, dec!(0))),
        "lines[0].price"
    );
    let lines = [line("a", "x", dec!(1000000), dec!(10000000))];
    assert_eq!(
        field(quote(&p, &none(), &lines, BIG, dec!(0))),
        "lines[0].price"
    );
    let lines = [line("a", "x", dec!(1), dec!(1000000000001))];
    assert_eq!(
        field(quote(&p, &none(), &lines, BIG, dec!(0))),
        "lines[0].price"
    );
    let lines = vec![line("a", "x", dec!(1), dec!(1)); MAX_LINES + 1];
    assert_eq!(field(quote(&p, &none(), &lines, BIG, dec!(0))), "lines");
    let one = [line("a", "x", dec!(1), dec!(100))];
    assert_eq!(field(quote(&p, &none(), &one, BIG, dec!(0.001))), "redeem");
    assert_eq!(field(quote(&p, &none(), &one, BIG, dec!(-1))), "redeem");
    let o = AccountOverrides {
        accrual_percent: None,
        cap_percent: Some(dec!(101)),
        ..none()
    };
    assert_eq!(
        field(quote(&p, &o, &one, BIG, dec!(0))),
        "overrides.cap_percent"
    );
    let mut p2 = pharmacy();
    p2.categories[0].accrual_percent = Some(dec!(-1));
    assert_eq!(
        field(quote(&p2, &none(), &one, BIG, dec!(0))),
        "programme.categories[0].accrual_percent"
    );
    let p3 = Programme {
        utc_offset_minutes: 19 * 60,
        ..programme()
    };
    assert_eq!(
        field(quote(&p3, &none(), &one, BIG, dec!(0))),
        "programme.utc_offset_minutes"
    );
}

#[test]
fn empty_sale() {
    let q = quote(&programme(), &none(), &[], BIG, dec!(0)).unwrap();
    assert_eq!(
        (q.total, q.max_redeemable, q.accrual),
        (dec!(0), dec!(0), dec!(0))
    );
}

#[test]
fn programme_deserializes_and_rejects_unknown_fields() {
    let json = r#"{
        "name": "Аптека", "accrual_rounding": "down_to_whole",
        "default_accrual_percent": "5", "cap_percent": "50",
        "categories": [{"category": "essential", "accrual_percent": "1"}],
        "expiry_months": 6, "utc_offset_minutes": 180
    }"#;
    let p: Programme = serde_json::from_str(json).unwrap();
    assert_eq!(p.precision, 2);
    assert_eq!(p.categories[0].accrual_percent, Some(dec!(1)));
    // Missing keys keep the built-in programme's values.
    assert!(p.accrue_on_discounted && p.accrue_on_points_part == PointsPart::MoneyPart);
    assert_eq!(
        serde_json::from_str::<Programme>("{}").unwrap(),
        Programme::default()
    );
    p.validate().unwrap();
    let bad = json.replace("\"expiry_months\"", "\"expiry_month\"");
    assert!(serde_json::from_str::<Programme>(&bad).is_err());
    let line: SaleLine =
        serde_json::from_str(r#"{"sku":"1","name":"n","category":"c","qty":"1.5","price":"10"}"#)
            .unwrap();
    assert_eq!(line.discount, dec!(0));
    assert!(serde_json::from_str::<AccountOverrides>(r#"{"accrual":"1"}"#).is_err());
}

fn sale(total: Decimal, accrued: Decimal, redeemed: Decimal) -> CommittedSale {
    CommittedSale {
        total,
        accrued,
        redeemed,
        precision: 2,
        accrual_scale: 2,
    }
}

#[test]
fn a_whole_point_programme_claws_back_whole_points() {
    // 5 % of 3030 in whole points is 151; returning 1010 of it took back
    // 50.33 and left 100.67 (the issue: "151.5"-like balances).
    let s = CommittedSale {
        accrual_scale: 0,
        ..sale(dec!(3030), dec!(151), dec!(10.50))
    };
    let r = refund_share(&s, dec!(0), dec!(1010)).unwrap();
    assert_eq!((r.clawback, r.return_points), (dec!(50), dec!(3.50)));
    let r = refund_share(&s, dec!(1010), dec!(1010)).unwrap();
    assert_eq!(r.clawback, dec!(50));
    // The last return takes the rest: 151 in all.
    let r = refund_share(&s, dec!(2020), dec!(1010)).unwrap();
    assert_eq!(r.clawback, dec!(51));
}

#[test]
fn partial_refunds_add_up_to_the_original() {
    let s = sale(dec!(100), dec!(7), dec!(10.01));
    let mut done = dec!(0);
    let (mut claw, mut ret) = (dec!(0), dec!(0));
    for amount in [dec!(33.33), dec!(33.33), dec!(33.34)] {
        let r = refund_share(&s, done, amount).unwrap();
        claw += r.clawback;
        ret += r.return_points;
        done += amount;
    }
    assert_eq!((claw, ret), (dec!(7), dec!(10.01)));
    // First third: floor(2.3331) = 2.33, floor(3.3363...) = 3.33.
    let r = refund_share(&s, dec!(0), dec!(33.33)).unwrap();
    assert_eq!((r.clawback, r.return_points), (dec!(2.33), dec!(3.33)));
    // A whole refund returns everything, whatever the places of the original.
    let s = sale(dec!(3), dec!(0.335), dec!(1));
    let r = refund_share(&s, dec!(0), dec!(3)).unwrap();
    assert_eq!((r.clawback, r.return_points), (dec!(0.335), dec!(1)));
}

#[test]
fn refund_over_the_sale_is_rejected() {
    let s = sale(dec!(100), dec!(5), dec!(0));
    assert_eq!(
        refund_share(&s, dec!(60), dec!(41)).unwrap_err(),
        RulesError::RefundTooHigh {
            requested: dec!(41),
            remaining: dec!(40)
        }
    );
    let zero = sale(dec!(0), dec!(0), dec!(0));
    let r = refund_share(&zero, dec!(0), dec!(0)).unwrap();
    assert_eq!((r.clawback, r.return_points), (dec!(0), dec!(0)));
}

#[test]
fn expiry_clamps_to_month_end() {
    let p = pharmacy();
    // Aug 31 + 6 months = Feb 28 (2026) / Feb 29 (2024): last valid day.
    assert_eq!(
        expiry_of(&p, datetime!(2025-08-31 12:00 +03:00)).unwrap(),
        Some(datetime!(2026-03-01 00:00 +03:00))
    );
    assert_eq!(
        expiry_of(&p, datetime!(2023-08-31 12:00 +03:00)).unwrap(),
        Some(datetime!(2024-03-01 00:00 +03:00))
    );
    // Across a year end.
    let p1 = Programme {
        expiry_months: Some(1),
        ..pharmacy()
    };
    assert_eq!(
        expiry_of(&p1, datetime!(2025-12-31 10:00 +03:00)).unwrap(),
        Some(datetime!(2026-02-01 00:00 +03:00))
    );
}

#[test]
fn expiry_uses_the_programme_offset() {
    let p = pharmacy(); // +03:00
    // 22:30 UTC on Aug 31 is already Sep 1 in Moscow.
    let e = expiry_of(&p, datetime!(2025-08-31 22:30 UTC))
        .unwrap()
        .unwrap();
    assert_eq!(e, datetime!(2026-03-02 00:00 +03:00));
    assert_eq!(e.offset(), UtcOffset::from_hms(3, 0, 0).unwrap());
    // The same instant, seen in UTC: 21:00 on Mar 1.
    assert_eq!(e, datetime!(2026-03-01 21:00 UTC));
    // 20:30 UTC is still Aug 31 in Moscow.
    assert_eq!(
        expiry_of(&p, datetime!(2025-08-31 20:30 UTC)).unwrap(),
        Some(datetime!(2026-03-01 00:00 +03:00))
    );
    // The same instant in a UTC programme: Aug 31 -> Feb 28 -> Mar 1 00:00 UTC.
    let utc = Programme {
        utc_offset_minutes: 0,
        ..pharmacy()
    };
    assert_eq!(
        expiry_of(&utc, datetime!(2025-08-31 22:30 UTC)).unwrap(),
        Some(datetime!(2026-03-01 00:00 UTC))
    );
}

#[test]
fn welcome_bonus_expiry() {
    assert_eq!(
        welcome_expiry_of(&cinema(), datetime!(2025-01-31 18:00 +03:00)).unwrap(),
        Some(datetime!(2025-03-03 00:00 +03:00))
    );
    assert_eq!(
        welcome_expiry_of(&programme(), datetime!(2025-01-31 18:00 +03:00)).unwrap(),
        None
    );
}

fn cents(max: i64) -> impl Strategy<Value = Decimal> {
    (0..=max).prop_map(|c| Decimal::new(c, 2))
}

fn arb_line() -> impl Strategy<Value = SaleLine> {
    (
        1i64..=5000,       // qty in thousandths
        cents(10_000_000), // price up to 100 000.00
        0u32..=100,        // discount as % of gross
        prop::sample::select(vec!["essential", "bar", "tickets", "excluded"]),
        prop::sample::select(vec!["a", "b", "cigs"]),
    )
        .prop_map(|(q, price, disc, category, sku)| {
            let qty = Decimal::new(q, 3);
            let discount = floor_to(qty * price * Decimal::from(disc) / HUNDRED, 2);
            SaleLine {
                sku: sku.into(),
                name: sku.into(),
                category: category.into(),
                qty,
                price,
                discount,
            }
        })
}

fn arb_programme() -> impl Strategy<Value = Programme> {
    (
        0u32..=100,
        0u32..=100,
        0u32..=100,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(rate, cap, cat_rate, on_disc, on_points, whole, receipt)| Programme {
                cap_basis: if receipt {
                    basis::CapBasis::Receipt
                } else {
                    basis::CapBasis::Line
                },
                default_accrual_percent: Decimal::from(rate),
                cap_percent: Decimal::from(cap),
                accrue_on_discounted: on_disc,
                accrue_on_points_part: on_points.into(),
                accrual_rounding: if whole {
                    AccrualRounding::DownToWhole
                } else {
                    AccrualRounding::DownToCents
                },
                excluded_skus: vec!["cigs".into()],
                categories: vec![
                    CategoryRule {
                        category: "essential".into(),
                        accrual_percent: Some(Decimal::from(cat_rate)),
                        cap_percent: None,
                        excluded: false,
                    },
                    CategoryRule {
                        category: "excluded".into(),
                        accrual_percent: None,
                        cap_percent: None,
                        excluded: true,
                    },
                ],
                ..programme()
            },
        )
}

fn arb_overrides() -> impl Strategy<Value = AccountOverrides> {
    (
        prop::option::of((0u32..=10_000).prop_map(|c| Decimal::new(c.into(), 2))),
        prop::option::of((0u32..=10_000).prop_map(|c| Decimal::new(c.into(), 2))),
    )
        .prop_map(|(a, c)| AccountOverrides {
            accrual_percent: a,
            cap_percent: c,
            ..AccountOverrides::default()
        })
}

proptest! {
    #[test]
    fn quote_invariants(
        p in arb_programme(),
        o in arb_overrides(),
        lines in prop::collection::vec(arb_line(), 0..8),
        balance in cents(100_000_000),
        frac in 0u32..=1000,
    ) {
        let max = quote(&p, &o, &lines, balance, Decimal::ZERO).unwrap().max_redeemable;
        let redeem = floor_to(max * Decimal::from(frac) / dec!(1000), 2);
        let q = quote(&p, &o, &lines, balance, redeem).unwrap();
        let parts: Decimal = q.lines.iter().map(|l| l.redeemed).sum();
        prop_assert_eq!(parts, redeem);
        for l in &q.lines {
            prop_assert!(l.redeemed >= Decimal::ZERO && l.redeemed <= l.cap);
            prop_assert!(l.cap <= l.total);
        }
        prop_assert!(q.redeem <= q.max_redeemable);
        prop_assert!(q.max_redeemable <= balance);
        // Per receipt, never over the receipt's cap; per line, there is none.
        prop_assert_eq!(q.receipt_cap.is_some(), p.cap_basis == basis::CapBasis::Receipt);
        if let Some(r) = q.receipt_cap {
            prop_assert!(q.max_redeemable <= r);
        }
        let max_cap = [Some(p.cap_percent), o.cap_percent].into_iter().flatten().max().unwrap();
        prop_assert!(q.max_redeemable <= q.total * max_cap / HUNDRED);
        prop_assert_eq!(q.money_paid, q.total - q.redeem);
        let max_rate = [
            Some(p.default_accrual_percent),
            o.accrual_percent,
            p.categories[0].accrual_percent,
        ].into_iter().flatten().max().unwrap();
        prop_assert!(q.accrual >= Decimal::ZERO);
        prop_assert!(q.accrual <= q.total * max_rate / HUNDRED);
        // One unit over the maximum is always refused.
        let over = q.max_redeemable + dec!(0.01);
        let refused = matches!(
            quote(&p, &o, &lines, balance, over),
            Err(RulesError::RedeemTooHigh { .. })
        );
        prop_assert!(refused);
    }

    #[test]
    fn successive_refunds_never_exceed_the_original(
        total in cents(1_000_000_000).prop_filter("non-zero", |t| !t.is_zero()),
        accrued in cents(100_000_000),
        redeemed in cents(100_000_000),
        cuts in prop::collection::vec(1u32..=100, 1..10),
        whole in any::<bool>(),
    ) {
        // A whole-point programme accrues whole points.
        let (accrued, accrual_scale) = if whole { (accrued.trunc(), 0) } else { (accrued, 2) };
        let s = CommittedSale { accrual_scale, ..sale(total, accrued, redeemed) };
        let weights: u32 = cuts.iter().sum();
        let mut done = Decimal::ZERO;
        let (mut claw, mut ret) = (Decimal::ZERO, Decimal::ZERO);
        for (i, w) in cuts.iter().enumerate() {
            let amount = if i + 1 == cuts.len() {
                total - done
            } else {
                floor_to(total * Decimal::from(*w) / Decimal::from(weights), 2)
            };
            let r = refund_share(&s, done, amount).unwrap();
            prop_assert!(r.clawback >= Decimal::ZERO && r.return_points >= Decimal::ZERO);
            prop_assert_eq!(r.clawback, r.clawback.trunc_with_scale(accrual_scale));
            claw += r.clawback;
            ret += r.return_points;
            done += amount;
            prop_assert!(claw <= accrued && ret <= redeemed);
        }
        prop_assert_eq!((claw, ret), (accrued, redeemed));
    }

    #[test]
    fn allocation_sums_exactly(
        caps in prop::collection::vec(0i128..1_000_000, 0..20),
        frac in 0u32..=1000,
    ) {
        let sum: i128 = caps.iter().sum();
        let redeem = sum * i128::from(frac) / 1000;
        let parts = allocate(redeem, &caps);
        prop_assert_eq!(parts.iter().sum::<i128>(), redeem);
        for (p, c) in parts.iter().zip(&caps) {
            prop_assert!(*p >= 0 && p <= c);
        }
    }
}

fn cinema_bar() -> Programme {
    // The cinema: tickets 10 % payable with points, the bar 50 %.
    Programme {
        categories: vec![CategoryRule {
            category: "bar".into(),
            accrual_percent: None,
            cap_percent: Some(dec!(50)),
            excluded: false,
        }],
        ..cinema()
    }
}

#[test]
fn per_category_overrides_beat_category_rules_and_flat_overrides() {
    let lines = [
        line("popcorn", "bar", dec!(1), dec!(400)),
        line("ticket", "tickets", dec!(1), dec!(500)),
    ];
    // Without overrides: bar 50 % (category rule), tickets 10 % (programme).
    let q = quote(&cinema_bar(), &none(), &lines, BIG, dec!(0)).unwrap();
    assert_eq!((q.lines[0].cap, q.lines[1].cap), (dec!(200), dec!(50)));
    assert_eq!((q.lines[0].rate, q.lines[1].rate), (dec!(1), dec!(1)));

    // A flat override does not beat the bar's category rule.
    let flat = AccountOverrides {
        cap_percent: Some(dec!(30)),
        ..none()
    };
    let q = quote(&cinema_bar(), &flat, &lines, BIG, dec!(0)).unwrap();
    assert_eq!((q.lines[0].cap, q.lines[1].cap), (dec!(200), dec!(150)));

    // A per-category override does, for the category it names only.
    let mut own = flat.clone();
    own.categories.insert(
        "bar".into(),
        CategoryOverride {
            cap_percent: Some(dec!(100)),
            accrual_percent: Some(dec!(3)),
        },
    );
    let q = quote(&cinema_bar(), &own, &lines, BIG, dec!(0)).unwrap();
    assert_eq!((q.lines[0].cap, q.lines[1].cap), (dec!(400), dec!(150)));
    assert_eq!((q.lines[0].rate, q.lines[1].rate), (dec!(3), dec!(1)));
    // 3 % of 400 + 1 % of 500, whole points.
    assert_eq!(q.accrual, dec!(17));

    // A category override on a category without a programme rule.
    let mut tickets = none();
    tickets.categories.insert(
        "tickets".into(),
        CategoryOverride {
            cap_percent: Some(dec!(0)),
            accrual_percent: None,
        },
    );
    let q = quote(&cinema_bar(), &tickets, &lines, BIG, dec!(0)).unwrap();
    assert_eq!((q.lines[0].cap, q.lines[1].cap), (dec!(200), dec!(0)));
    assert_eq!(q.max_redeemable, dec!(200));
    // Only the cap was named: the accrual falls through to the default.
    assert_eq!(q.lines[1].rate, dec!(1));
}

#[test]
fn an_excluded_category_stays_excluded_whatever_the_account_says() {
    let mut p = cinema_bar();
    p.categories[0].excluded = true;
    let mut o = none();
    o.categories.insert(
        "bar".into(),
        CategoryOverride {
            cap_percent: Some(dec!(100)),
            accrual_percent: Some(dec!(10)),
        },
    );
    let q = quote(
        &p,
        &o,
        &[line("beer", "bar", dec!(1), dec!(300))],
        BIG,
        dec!(0),
    )
    .unwrap();
    assert_eq!((q.lines[0].cap, q.lines[0].rate), (dec!(0), dec!(0)));
}

#[test]
fn per_category_overrides_are_validated_by_name() {
    let mut o = none();
    o.categories.insert(
        "bar".into(),
        CategoryOverride {
            cap_percent: Some(dec!(150)),
            accrual_percent: None,
        },
    );
    let field = |r: Result<Quote, RulesError>| match r.unwrap_err() {
        RulesError::Invalid { field, .. } => field,
        other => panic!("{other:?}"),
    };
    let one = [line("a", "bar", dec!(1), dec!(100))];
    assert_eq!(
        field(quote(&cinema_bar(), &o, &one, BIG, dec!(0))),
        "overrides.categories.bar.cap_percent"
    );
    let mut o = none();
    o.categories
        .insert(String::new(), CategoryOverride::default());
    assert_eq!(
        o.validate().map_err(|e| e.to_string()).unwrap_err(),
        "overrides.categories: a category name is 1 to 64 characters"
    );
}

#[test]
fn refund_shortfall_defaults_to_clamp_and_parses() {
    assert_eq!(
        Programme::default().refund_shortfall,
        RefundShortfall::Clamp
    );
    let p: Programme = toml::from_str("refund_shortfall = \"debt\"").unwrap();
    assert_eq!(p.refund_shortfall, RefundShortfall::Debt);
    assert!(toml::from_str::<Programme>("refund_shortfall = \"owe\"").is_err());
}
