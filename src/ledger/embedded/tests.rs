//! The book-keeping's unit tests, on a till's SQLite books.

use super::*;
use crate::ledger::db::Db;
use crate::ledger::rules::{CategoryOverride, RefundShortfall, RulesError};
use time::macros::datetime;

fn sale(total: u32) -> Vec<SaleLine> {
    vec![SaleLine {
        sku: "A1".into(),
        name: "x".into(),
        category: "general".into(),
        qty: Decimal::ONE,
        price: Decimal::from(total),
        discount: Decimal::ZERO,
    }]
}

/// A till's books on a fresh database. The functions under test run
/// through the runner, as the daemon runs them: a refusal rolls back.
struct Till {
    _dir: tempfile::TempDir,
    store: Store,
    books: Books,
    origin: Origin,
}

fn open() -> Till {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let origin = Origin::new("", store.terminal_id());
    Till {
        _dir: dir,
        books: Books::sqlite(store.clone()),
        store,
        origin,
    }
}

impl Till {
    fn write<T>(&self, mut f: impl FnMut(&dyn Db, &Origin) -> TxResult<T>) -> TxResult<T> {
        self.books.write_blocking(|db| f(db, &self.origin))
    }

    fn read<T>(&self, f: impl FnMut(&dyn Db) -> Result<T, DbError>) -> Result<T, DbError> {
        self.books.read_blocking(f)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_tx(
        &self,
        p: &Programme,
        key: &str,
        number: &str,
        receipt: &str,
        lines: &[SaleLine],
        redeem: Decimal,
        now: OffsetDateTime,
    ) -> TxResult<CommitResult> {
        self.write(|db, o| commit_tx(db, p, key, number, receipt, lines, redeem, now, o, None))
    }

    fn refund_tx(
        &self,
        p: &Programme,
        key: &str,
        sale: &SaleRef,
        amount: Option<Decimal>,
        now: OffsetDateTime,
    ) -> TxResult<RefundResult> {
        self.write(|db, o| refund_tx(db, p, key, sale, amount, None, now, o, None))
    }

    #[allow(clippy::too_many_arguments)]
    fn adjust_tx(
        &self,
        p: &Programme,
        key: &str,
        number: &str,
        amount: Decimal,
        reason: &str,
        operator: &str,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> TxResult<AdjustResult> {
        self.write(|db, o| {
            adjust_tx(
                db, p, key, number, amount, reason, operator, expires, now, o,
            )
        })
    }

    fn resolve_tx(
        &self,
        number: &str,
        now: OffsetDateTime,
    ) -> Result<Option<AccountSummary>, DbError> {
        self.write(|db, o| resolve_tx(db, number, now, o).map(Ok))
            .map(|r| r.unwrap())
    }

    fn history_tx(
        &self,
        who: &AccountRef,
        cursor: Option<i64>,
        limit: u32,
        now: OffsetDateTime,
    ) -> TxResult<HistoryPage> {
        self.write(|db, o| history_tx(db, who, cursor, limit, now, o))
    }

    fn set_overrides_tx(
        &self,
        key: Option<&str>,
        account: i64,
        ov: &AccountOverrides,
        now: OffsetDateTime,
    ) -> TxResult<OverridesResult> {
        self.write(|db, o| set_overrides_tx(db, key, account, ov, now, o))
    }

    fn overrides_of(&self, account: i64) -> Result<AccountOverrides, DbError> {
        self.read(|db| overrides_of(db, account))
    }

    fn verify(&self) -> Result<Vec<String>, DbError> {
        self.read(verify)
    }
}

const CARD: &str = "6035000011112222";

#[test]
fn points_expire_at_local_midnight_after_the_last_valid_day() {
    let c = open();
    // Moscow time; 6 months.
    let p = Programme::default();
    assert_eq!(p.utc_offset_minutes, 180);
    // 01:30 on 16 January in Moscow, still 15 January in UTC: the
    // local date is what counts. Last valid day 16 July; gone at
    // 00:00 +03:00 on 17 July = 21:00 UTC on 16 July.
    let accrued_at = datetime!(2026-01-15 22:30:00 UTC);
    let boundary = datetime!(2026-07-17 00:00:00 +03:00);
    let r = c
        .commit_tx(&p, "k1", CARD, "R1", &sale(1000), Decimal::ZERO, accrued_at)
        .unwrap()
        .unwrap();
    assert_eq!(r.accrued, Decimal::from(50));
    assert_eq!(
        r.accrued_expires_at.as_deref(),
        Some("2026-07-16T21:00:00Z")
    );

    // One second before: all 50 there, and spendable.
    let just_before = boundary - time::Duration::SECOND;
    let s = c.resolve_tx(CARD, just_before).unwrap().unwrap();
    assert_eq!(s.balance, Decimal::from(50));
    let spend = c
        .commit_tx(
            &p,
            "k2",
            CARD,
            "R2",
            &sale(100),
            Decimal::from(20),
            just_before,
        )
        .unwrap()
        .unwrap();
    assert_eq!(spend.redeemed, Decimal::from(20));
    // 5 % of the 80 paid in money.
    assert_eq!(spend.balance_after, Decimal::from(34));

    // At the boundary the first lot's last 30 points are posted as an
    // `expire` entry; the new lot (accrued in July) stays.
    let s = c.resolve_tx(CARD, boundary).unwrap().unwrap();
    assert_eq!(s.balance, Decimal::from(4));
    let page = c
        .history_tx(&AccountRef::Number(CARD.into()), None, 10, boundary)
        .unwrap()
        .unwrap();
    let newest = &page.transactions[0];
    assert_eq!(newest.kind, "expire");
    assert_eq!(newest.created_at, "2026-07-16T21:00:00Z");
    assert_eq!(newest.entries.len(), 1);
    assert_eq!(newest.entries[0].kind, "expire");
    assert_eq!(newest.entries[0].amount, Decimal::from(-30));
    assert_eq!(
        newest.entries[0].lot_expires_at.as_deref(),
        Some("2026-07-16T21:00:00Z")
    );
    // Nothing more to spend from it: redeeming 5 is over the balance.
    let over = c
        .commit_tx(&p, "k3", CARD, "R3", &sale(100), Decimal::from(5), boundary)
        .unwrap();
    assert!(matches!(
        over,
        Err(LedgerError::Rules(RulesError::RedeemTooHigh { .. }))
    ));
    assert!(c.verify().unwrap().is_empty());
}

#[test]
fn two_expiries_in_one_second_do_not_collide() {
    let c = open();
    let p = Programme::default();
    let now = datetime!(2026-03-01 12:00:00 UTC);
    c.commit_tx(&p, "s", CARD, "R", &sale(100), Decimal::ZERO, now)
        .unwrap()
        .unwrap();
    let past = Some(now - time::Duration::HOUR);
    let one = Decimal::ONE;
    c.adjust_tx(&p, "a1", CARD, one, "r", "o", past, now)
        .unwrap()
        .unwrap();
    c.resolve_tx(CARD, now).unwrap();
    c.adjust_tx(&p, "a2", CARD, one, "r", "o", past, now)
        .unwrap()
        .unwrap();
    // Before the fix this second expiry reused the first one's key
    // and failed on the UNIQUE index.
    let s = c.resolve_tx(CARD, now).unwrap().unwrap();
    assert_eq!(s.balance, Decimal::from(5));
    assert!(c.verify().unwrap().is_empty());
}

#[test]
fn a_refund_of_spent_points_clamps_or_goes_into_debt() {
    let now = datetime!(2026-03-01 12:00:00 UTC);
    for policy in [RefundShortfall::Clamp, RefundShortfall::Debt] {
        let c = open();
        let p = Programme {
            refund_shortfall: policy,
            ..Programme::default()
        };
        // 50 accrued, then 40 of them spent elsewhere.
        let sale1 = c
            .commit_tx(&p, "s1", CARD, "R1", &sale(1000), Decimal::ZERO, now)
            .unwrap()
            .unwrap();
        assert_eq!(sale1.accrued, Decimal::from(50));
        c.adjust_tx(&p, "a1", CARD, Decimal::from(-40), "r", "o", None, now)
            .unwrap()
            .unwrap();
        let r = c
            .refund_tx(
                &p,
                "f1",
                &SaleRef::Transaction(sale1.transaction),
                None,
                now,
            )
            .unwrap()
            .unwrap();
        assert!(c.verify().unwrap().is_empty(), "{policy:?}");
        let s = c.resolve_tx(CARD, now).unwrap().unwrap();
        match policy {
            RefundShortfall::Clamp => {
                assert_eq!(r.clawback, Decimal::from(10));
                assert_eq!(r.clawback_shortfall, Decimal::from(40));
                assert_eq!(r.clawback_debt, Decimal::ZERO);
                assert_eq!(r.balance_after, Decimal::ZERO);
                assert_eq!((s.balance, s.debt), (Decimal::ZERO, Decimal::ZERO));
            }
            RefundShortfall::Debt => {
                assert_eq!(r.clawback, Decimal::from(50));
                assert_eq!(r.clawback_shortfall, Decimal::ZERO);
                assert_eq!(r.clawback_debt, Decimal::from(40));
                assert_eq!(r.balance_after, Decimal::from(-40));
                assert_eq!((s.balance, s.debt), (Decimal::from(-40), Decimal::from(40)));
                // Nothing to redeem while in debt.
                let over = c
                    .commit_tx(&p, "s2", CARD, "R2", &sale(100), Decimal::ONE, now)
                    .unwrap();
                assert!(matches!(
                    over,
                    Err(LedgerError::Rules(RulesError::RedeemTooHigh { .. }))
                ));
                // A 1000 sale accrues 50: 40 pay the debt, 10 become a lot.
                let s3 = c
                    .commit_tx(&p, "s3", CARD, "R3", &sale(1000), Decimal::ZERO, now)
                    .unwrap()
                    .unwrap();
                assert_eq!(s3.accrued, Decimal::from(50));
                assert_eq!(s3.debt_repaid, Decimal::from(40));
                assert_eq!(s3.balance_after, Decimal::from(10));
                let page = c
                    .history_tx(&AccountRef::Number(CARD.into()), None, 1, now)
                    .unwrap()
                    .unwrap();
                let kinds: Vec<(&str, Decimal, bool)> = page.transactions[0]
                    .entries
                    .iter()
                    .map(|e| (e.kind.as_str(), e.amount, e.lot.is_some()))
                    .collect();
                assert_eq!(
                    kinds,
                    [
                        ("debt_repay", Decimal::from(40), false),
                        ("accrue", Decimal::from(10), true)
                    ]
                );
                let s = c.resolve_tx(CARD, now).unwrap().unwrap();
                assert_eq!((s.balance, s.debt), (Decimal::from(10), Decimal::ZERO));
                // A manual accrual repays too.
                let r2 = c
                    .commit_tx(&p, "s4", CARD, "R4", &sale(200), Decimal::from(10), now)
                    .unwrap()
                    .unwrap();
                assert_eq!(r2.balance_after, Decimal::from(9));
                assert!(c.verify().unwrap().is_empty());
            }
        }
    }
}

#[test]
fn verify_finds_a_debt_that_entries_do_not_explain() {
    let c = open();
    let p = Programme::default();
    let now = datetime!(2026-03-01 12:00:00 UTC);
    c.commit_tx(&p, "s", CARD, "R", &sale(100), Decimal::ZERO, now)
        .unwrap()
        .unwrap();
    c.books
        .write_blocking(|db| {
            db.execute("UPDATE accounts SET debt = 10000", args![])
                .map(Ok::<_, ()>)
        })
        .unwrap()
        .unwrap();
    let problems = c.verify().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("the debt is 1"), "{problems:?}");
}

#[test]
fn verify_catches_a_corrupted_maintained_balance_or_next_expiry() {
    let c = open();
    let p = Programme::default();
    let now = datetime!(2026-03-01 12:00:00 UTC);
    c.commit_tx(&p, "s", CARD, "R", &sale(100), Decimal::ZERO, now)
        .unwrap()
        .unwrap();
    assert!(c.verify().unwrap().is_empty());
    c.books
        .write_blocking(|db| {
            db.execute("UPDATE accounts SET balance = balance + 1", args![])
                .map(Ok::<_, ()>)
        })
        .unwrap()
        .unwrap();
    let problems = c.verify().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("balance column"), "{problems:?}");
    c.books
        .write_blocking(|db| {
            db.execute(
                "UPDATE accounts SET balance = balance - 1, next_expiry = '2099-01-01T00:00:00Z'",
                args![],
            )
            .map(Ok::<_, ()>)
        })
        .unwrap()
        .unwrap();
    let problems = c.verify().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("next_expiry column"), "{problems:?}");
}

#[test]
fn an_account_with_many_lots_spends_and_expires_in_order() {
    // Lots spent page by page (more than one page of the open-lots index),
    // soonest expiry first, and the maintained next expiry follows.
    let c = open();
    let p = Programme::default();
    let now = datetime!(2026-03-01 12:00:00 UTC);
    c.commit_tx(&p, "s0", CARD, "R0", &sale(100), Decimal::ZERO, now)
        .unwrap()
        .unwrap();
    c.books
        .write_blocking(|db| {
            let account: i64 = db.query_row("SELECT id FROM accounts", args![], |r| r.get(0))?;
            let txn: i64 = db.query_row("SELECT id FROM txns", args![], |r| r.get(0))?;
            for i in 0..40_i64 {
                let at = format!("2027-01-{:02}T00:00:00Z", 28 - (i % 27));
                let lot =
                    super::new_lot(db, txn, account, 10_000, Some(&at), "2026-03-01T00:00:00Z")?;
                super::entry(
                    db,
                    txn,
                    account,
                    Some(lot),
                    "adjust",
                    10_000,
                    "2026-03-01T00:00:00Z",
                )?;
            }
            Ok(Ok::<_, ()>(()))
        })
        .unwrap()
        .unwrap();
    assert!(c.verify().unwrap().is_empty());
    // The sale's own lot (5 points, six months) expires first.
    let before = c.resolve_tx(CARD, now).unwrap().unwrap();
    let next = before.next_expiry.unwrap();
    assert_eq!(
        (&next.at[..10], next.amount),
        ("2026-09-01", Decimal::from(5))
    );
    // 35 points: the sale's 5, then the 30 soonest of the 40 one-point lots
    // (days 2..15 once, 16..28 twice), across pages of the index.
    c.commit_tx(&p, "s1", CARD, "R1", &sale(100), Decimal::from(35), now)
        .unwrap()
        .unwrap();
    assert!(c.verify().unwrap().is_empty(), "{:?}", c.verify());
    let (earliest, open): (Option<String>, i64) = c
        .read(|db| {
            db.query_row(
                "SELECT MIN(expires_at), COUNT(*) FROM lots
                 WHERE remaining > 0 AND expires_at LIKE '2027%'",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    assert_eq!(
        (earliest.as_deref(), open),
        (Some("2027-01-24T00:00:00Z"), 10)
    );
    // The new sale's accrual (3 points, six months) is now the next expiry.
    let after = c.resolve_tx(CARD, now).unwrap().unwrap();
    let next = after.next_expiry.unwrap();
    assert_eq!(
        (&next.at[..10], next.amount),
        ("2026-09-01", Decimal::from(3))
    );
    assert_eq!(
        after.balance,
        before.balance - Decimal::from(35) + Decimal::from(3)
    );
}

#[test]
fn overrides_are_stored_per_account_and_replayed_by_key() {
    let c = open();
    let p = Programme::default();
    let now = datetime!(2026-03-01 12:00:00 UTC);
    let r = c
        .commit_tx(&p, "s", CARD, "R", &sale(100), Decimal::ZERO, now)
        .unwrap()
        .unwrap();
    let mut o = AccountOverrides {
        cap_percent: Some(Decimal::from(20)),
        ..Default::default()
    };
    o.categories.insert(
        "bar".into(),
        CategoryOverride {
            cap_percent: Some(Decimal::from(100)),
            accrual_percent: None,
        },
    );
    let set = c
        .set_overrides_tx(Some("o1"), r.account, &o, now)
        .unwrap()
        .unwrap();
    assert!(!set.replayed);
    assert_eq!(c.overrides_of(r.account).unwrap(), o);
    let again = c
        .set_overrides_tx(Some("o1"), r.account, &o, now)
        .unwrap()
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.overrides, o);
    let other = c
        .set_overrides_tx(Some("o1"), r.account, &AccountOverrides::default(), now)
        .unwrap();
    assert!(matches!(other, Err(LedgerError::KeyReused)));
    // Without a key: cleared.
    c.set_overrides_tx(None, r.account, &AccountOverrides::default(), now)
        .unwrap()
        .unwrap();
    assert_eq!(
        c.overrides_of(r.account).unwrap(),
        AccountOverrides::default()
    );
    assert!(matches!(
        c.set_overrides_tx(None, 99, &o, now).unwrap(),
        Err(LedgerError::UnknownAccount)
    ));
}

#[test]
fn history_pages_newest_first() {
    let c = open();
    let p = Programme::default();
    let now = datetime!(2026-03-01 12:00:00 UTC);
    for i in 0..5 {
        c.commit_tx(
            &p,
            &format!("k{i}"),
            CARD,
            &format!("R{i}"),
            &sale(100),
            Decimal::ZERO,
            now,
        )
        .unwrap()
        .unwrap();
    }
    let who = AccountRef::Number(CARD.into());
    let first = c.history_tx(&who, None, 2, now).unwrap().unwrap();
    let ids: Vec<i64> = first.transactions.iter().map(|t| t.transaction).collect();
    assert_eq!(ids, [5, 4]);
    assert_eq!(first.next_cursor, Some(4));
    assert_eq!(first.balance, Decimal::from(25));
    let second = c
        .history_tx(&who, first.next_cursor, 2, now)
        .unwrap()
        .unwrap();
    assert_eq!(second.next_cursor, Some(2));
    let last = c
        .history_tx(&who, second.next_cursor, 2, now)
        .unwrap()
        .unwrap();
    assert_eq!(last.transactions.len(), 1);
    assert_eq!(last.transactions[0].receipt_id.as_deref(), Some("R0"));
    assert_eq!(last.next_cursor, None);
    // Exactly a full last page: no cursor to an empty page.
    let all = c.history_tx(&who, None, 5, now).unwrap().unwrap();
    assert_eq!(all.next_cursor, None);
    assert!(matches!(
        c.history_tx(&AccountRef::Account(99), None, 5, now)
            .unwrap(),
        Err(LedgerError::UnknownAccount)
    ));
}

#[tokio::test]
async fn every_transaction_records_where_it_came_from() {
    let c = open();
    let till = Embedded::new(c.store.clone(), Programme::default());
    till.commit(
        "k1".into(),
        CARD.into(),
        "R1".into(),
        sale(1000),
        Decimal::ZERO,
        None,
    )
    .await
    .unwrap();
    // The same books acting for a till of a chain's store.
    let other = till.with_origin(Origin::new("shop-2", "till-7"));
    other
        .adjust(
            "k2".into(),
            CARD.into(),
            Decimal::ONE,
            "r".into(),
            "o".into(),
            None,
        )
        .await
        .unwrap();
    let page = till
        .history(AccountRef::Number(CARD.into()), None, 10)
        .await
        .unwrap();
    let origins: Vec<(Option<&str>, Option<&str>)> = page
        .transactions
        .iter()
        .map(|t| (t.store.as_deref(), t.terminal.as_deref()))
        .collect();
    assert_eq!(
        origins,
        [
            (Some("shop-2"), Some("till-7")),
            (None, Some(c.store.terminal_id()))
        ]
    );
    // A single till's history names no store.
    let json = serde_json::to_value(&page.transactions[1]).unwrap();
    assert!(json.get("store").is_none(), "{json}");
    assert_eq!(json["terminal"], c.store.terminal_id());
    assert!(c.verify().unwrap().is_empty());
}

#[tokio::test]
async fn a_late_booking_keeps_the_sale_s_own_time_within_bounds() {
    let c = open();
    let p = Programme {
        expiry_months: Some(12),
        ..Programme::default()
    };
    let till = Embedded::new(c.store.clone(), p.clone());
    let now = OffsetDateTime::now_utc();
    let at = (now - time::Duration::days(10))
        .replace_nanosecond(0)
        .unwrap();
    let r = till
        .commit_at(
            "k1".into(),
            CARD.into(),
            "R1".into(),
            sale(1000),
            Decimal::ZERO,
            Some(at),
            None,
        )
        .await
        .unwrap();
    // Expiry counts from the sale, not from the booking.
    let expiry = rules::expiry_of(&p, at).unwrap().map(ts);
    assert_eq!(r.accrued_expires_at, expiry);
    let page = till
        .history(AccountRef::Number(CARD.into()), None, 10)
        .await
        .unwrap();
    assert_eq!(page.transactions[0].created_at, ts(at));

    // Out of bounds: ahead of the clock, or older than 30 days.
    for bad in [
        now + time::Duration::minutes(6),
        now - time::Duration::days(31),
    ] {
        let e = till
            .commit_at(
                "k2".into(),
                CARD.into(),
                "R2".into(),
                sale(10),
                Decimal::ZERO,
                Some(bad),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, LedgerError::SaleTime { .. }), "{e:?}");
        let e = till
            .refund_at(
                "f2".into(),
                SaleRef::Receipt("R1".into()),
                None,
                Some(bad),
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, LedgerError::SaleTime { .. }), "{e:?}");
    }
    // Within the tolerance ahead: booked now, never in the future.
    let soon = till
        .commit_at(
            "k3".into(),
            CARD.into(),
            "R3".into(),
            sale(10),
            Decimal::ZERO,
            Some(now + time::Duration::minutes(4)),
            None,
        )
        .await
        .unwrap();
    assert!(
        soon.accrued_expires_at
            <= rules::expiry_of(&p, OffsetDateTime::now_utc())
                .unwrap()
                .map(ts)
    );

    // A key booked before answers with its booking, whatever the time.
    let old = now - time::Duration::days(40);
    let again = till
        .commit_at(
            "k1".into(),
            CARD.into(),
            "R1".into(),
            sale(1000),
            Decimal::ZERO,
            Some(old),
            None,
        )
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.transaction, r.transaction);
    let other = till
        .commit_at(
            "k1".into(),
            CARD.into(),
            "R9".into(),
            sale(1000),
            Decimal::ZERO,
            Some(old),
            None,
        )
        .await;
    assert!(matches!(other, Err(LedgerError::KeyReused)), "{other:?}");
    let back = till
        .refund_at(
            "f1".into(),
            SaleRef::Receipt("R1".into()),
            Some(Decimal::from(100)),
            Some(at),
            None,
            None,
        )
        .await
        .unwrap();
    let back_again = till
        .refund_at(
            "f1".into(),
            SaleRef::Receipt("R1".into()),
            Some(Decimal::from(100)),
            Some(old),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(back_again.transaction, back.transaction);
    assert!(back_again.replayed);
    assert!(c.verify().unwrap().is_empty());
}

#[test]
fn the_sweep_burns_an_untouched_account_on_its_own_date_once() {
    let c = open();
    let p = Programme::default();
    let then = datetime!(2026-03-01 12:00:00 UTC);
    let burns = datetime!(2026-03-02 12:00:00 UTC);
    let sweep_at = burns + time::Duration::days(3);
    let ten = Decimal::from(10);
    // A sale opens the account (its lot burns in months), then 10 points
    // that burn the next day.
    c.commit_tx(&p, "s1", CARD, "R1", &sale(100), Decimal::ZERO, then)
        .unwrap()
        .unwrap();
    c.adjust_tx(&p, "a1", CARD, ten, "r", "o", Some(burns), then)
        .unwrap()
        .unwrap();
    // A second card's account, with nothing due: the sweep leaves it be.
    c.commit_tx(
        &p,
        "s2",
        "6035000099990000",
        "R2",
        &sale(100),
        Decimal::ZERO,
        then,
    )
    .unwrap()
    .unwrap();
    let ledger = Embedded::with_books(c.books.clone(), p.clone(), c.origin.clone());
    // Batches of one account: the loop must go on past a full batch.
    assert_eq!(ledger.expire_all_blocking(sweep_at, 1).unwrap(), 1);
    let (kind, at, amount): (String, String, i64) = c
        .read(|db| {
            db.query_row(
                "SELECT t.kind, t.created_at, e.amount FROM txns t JOIN entries e ON e.txn_id = t.id
                 WHERE t.kind = 'expire'",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .unwrap();
    assert_eq!(
        (kind.as_str(), at.as_str(), amount),
        ("expire", "2026-03-02T12:00:00Z", -10 * SCALE)
    );
    // Twice: nothing new; touching the account later posts nothing either.
    assert_eq!(ledger.expire_all_blocking(sweep_at, 1).unwrap(), 0);
    let s = c.resolve_tx(CARD, sweep_at).unwrap().unwrap();
    assert_eq!(s.balance, Decimal::from(5));
    let n: i64 = c
        .read(|db| {
            db.query_row(
                "SELECT COUNT(*) FROM entries WHERE kind = 'expire'",
                args![],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(n, 1);
    assert!(c.verify().unwrap().is_empty());
}

/// Three terminals' commits in one group commit, two of them a retry of
/// the same key: the sale is booked once, the retries get it replayed, and
/// a refused redemption in the same group leaves the others standing.
#[test]
fn one_group_commit_books_a_key_once_and_keeps_outcomes_apart() {
    let c = open();
    let p = Programme::default();
    let now = datetime!(2026-03-01 12:00:00 UTC);
    let (a, b, refused) = std::thread::scope(|s| {
        let first = s.spawn(|| {
            c.write(|db, o| {
                let r = commit_tx(
                    db,
                    &p,
                    "k",
                    CARD,
                    "R",
                    &sale(100),
                    Decimal::ZERO,
                    now,
                    o,
                    None,
                )?;
                // Hold the group open until the other two queue behind it.
                while c.store.writer().queued() < 2 {
                    std::thread::yield_now();
                }
                Ok(r)
            })
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let retry = s.spawn(|| c.commit_tx(&p, "k", CARD, "R", &sale(100), Decimal::ZERO, now));
        while c.store.writer().queued() < 1 {
            std::thread::yield_now();
        }
        let greedy =
            s.spawn(|| c.commit_tx(&p, "g", CARD, "G", &sale(100), Decimal::from(1000), now));
        (
            first.join().unwrap().unwrap().unwrap(),
            retry.join().unwrap().unwrap().unwrap(),
            greedy.join().unwrap().unwrap(),
        )
    });
    assert!(!a.replayed && b.replayed, "{a:?} {b:?}");
    assert_eq!(a.transaction, b.transaction);
    assert!(matches!(refused, Err(LedgerError::Rules(_))), "{refused:?}");
    let (txns, balance): (i64, i64) = c
        .read(|db| {
            db.query_row(
                "SELECT (SELECT COUNT(*) FROM txns), (SELECT balance FROM accounts)",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    assert_eq!((txns, balance), (1, 50_000));
    assert!(c.verify().unwrap().is_empty());
}

/// The accrual window (`hold_days`): the default programme with 14 days.
fn held_programme(policy: RefundShortfall) -> Programme {
    Programme {
        hold_days: 14,
        refund_shortfall: policy,
        ..Programme::default()
    }
}

#[test]
fn a_held_accrual_is_spendable_from_local_midnight_after_the_window() {
    let c = open();
    let p = held_programme(RefundShortfall::Clamp);
    // 15:00 Moscow on 7 December: held until 21 December 00:00 Moscow
    // (20 December 21:00 UTC), then valid 6 months from that day.
    let sold = datetime!(2026-12-07 12:00:00 UTC);
    let release = datetime!(2026-12-21 00:00:00 +03:00);
    let r = c
        .commit_tx(&p, "s1", CARD, "R1", &sale(1000), Decimal::ZERO, sold)
        .unwrap()
        .unwrap();
    assert_eq!(r.accrued, Decimal::from(50));
    assert_eq!(
        r.accrued_available_at.as_deref(),
        Some("2026-12-20T21:00:00Z")
    );
    assert_eq!(
        r.accrued_expires_at.as_deref(),
        Some("2027-06-21T21:00:00Z")
    );
    assert_eq!(
        (r.balance_after, r.held),
        (Decimal::ZERO, Decimal::from(50))
    );
    let s = c.resolve_tx(CARD, sold).unwrap().unwrap();
    assert_eq!((s.balance, s.held), (Decimal::ZERO, Decimal::from(50)));
    let next = s.next_available.unwrap();
    assert_eq!(
        (next.amount, next.at.as_str()),
        (Decimal::from(50), "2026-12-20T21:00:00Z")
    );

    // One second before the window ends: nothing can be spent.
    let before = release - time::Duration::SECOND;
    let over = c
        .commit_tx(&p, "s2", CARD, "R2", &sale(100), Decimal::ONE, before)
        .unwrap();
    assert!(
        matches!(
            over,
            Err(LedgerError::Rules(RulesError::RedeemTooHigh {
                limit: rules::RedeemLimit::Balance,
                ..
            }))
        ),
        "{over:?}"
    );
    let s = c.resolve_tx(CARD, before).unwrap().unwrap();
    assert_eq!((s.balance, s.held), (Decimal::ZERO, Decimal::from(50)));

    // At the boundary they are the customer's to spend.
    let s = c.resolve_tx(CARD, release).unwrap().unwrap();
    assert_eq!((s.balance, s.held), (Decimal::from(50), Decimal::ZERO));
    assert_eq!(s.next_available, None);
    let spend = c
        .commit_tx(&p, "s3", CARD, "R3", &sale(100), Decimal::from(20), release)
        .unwrap()
        .unwrap();
    assert_eq!(spend.redeemed, Decimal::from(20));
    assert_eq!(spend.balance_before, Decimal::from(50));
    // 5 % of the 80 paid in money is held in its turn.
    assert_eq!(
        (spend.balance_after, spend.held),
        (Decimal::from(30), Decimal::from(4))
    );
    let page = c
        .history_tx(&AccountRef::Number(CARD.into()), None, 10, release)
        .unwrap()
        .unwrap();
    assert_eq!(
        (page.balance, page.held),
        (Decimal::from(30), Decimal::from(4))
    );
    let first = page.transactions.last().unwrap();
    assert_eq!(
        first.entries[0].lot_available_at.as_deref(),
        Some("2026-12-20T21:00:00Z")
    );
    assert!(c.verify().unwrap().is_empty());
}

#[test]
fn without_a_window_points_are_spendable_at_once_as_before() {
    let c = open();
    let p = Programme::default();
    let now = datetime!(2026-12-07 12:00:00 UTC);
    let r = c
        .commit_tx(&p, "s1", CARD, "R1", &sale(1000), Decimal::ZERO, now)
        .unwrap()
        .unwrap();
    assert_eq!(r.accrued_available_at, None);
    assert_eq!(
        (r.balance_after, r.held),
        (Decimal::from(50), Decimal::ZERO)
    );
    let s = c.resolve_tx(CARD, now).unwrap().unwrap();
    assert_eq!(
        (s.balance, s.held, s.next_available),
        (Decimal::from(50), Decimal::ZERO, None)
    );
}

#[test]
fn a_return_inside_the_window_takes_the_held_points_back_whole() {
    let sold = datetime!(2026-12-07 12:00:00 UTC);
    let inside = datetime!(2026-12-15 12:00:00 UTC);
    for policy in [RefundShortfall::Clamp, RefundShortfall::Debt] {
        let c = open();
        let p = held_programme(policy);
        // A sale whose 50 are held, then 100 spendable points from an
        // operator (not held).
        let s1 = c
            .commit_tx(&p, "s1", CARD, "R1", &sale(1000), Decimal::ZERO, sold)
            .unwrap()
            .unwrap();
        assert_eq!(
            (s1.balance_after, s1.held),
            (Decimal::ZERO, Decimal::from(50))
        );
        c.adjust_tx(&p, "a1", CARD, Decimal::from(100), "r", "o", None, sold)
            .unwrap()
            .unwrap();
        let s = c.resolve_tx(CARD, sold).unwrap().unwrap();
        assert_eq!((s.balance, s.held), (Decimal::from(100), Decimal::from(50)));
        // Half returned inside the window: 25 of the held 50 go, the
        // spendable 100 are untouched, nothing forgiven or owed.
        let sale_ref = SaleRef::Transaction(s1.transaction);
        let half = c
            .refund_tx(&p, "f1", &sale_ref, Some(Decimal::from(500)), inside)
            .unwrap()
            .unwrap();
        assert_eq!(half.clawback, Decimal::from(25), "{policy:?}");
        assert_eq!(half.clawback_shortfall, Decimal::ZERO);
        assert_eq!(half.clawback_debt, Decimal::ZERO);
        assert_eq!(
            (half.balance_before, half.balance_after),
            (Decimal::from(100), Decimal::from(100))
        );
        let s = c.resolve_tx(CARD, inside).unwrap().unwrap();
        assert_eq!(
            (s.balance, s.held, s.debt),
            (Decimal::from(100), Decimal::from(25), Decimal::ZERO)
        );
        // The rest: the held points are gone, the balance still 100.
        let rest = c
            .refund_tx(&p, "f2", &sale_ref, None, inside)
            .unwrap()
            .unwrap();
        assert_eq!(rest.clawback, Decimal::from(25));
        assert_eq!(rest.clawback_shortfall + rest.clawback_debt, Decimal::ZERO);
        let s = c.resolve_tx(CARD, inside).unwrap().unwrap();
        assert_eq!(
            (s.balance, s.held, s.debt),
            (Decimal::from(100), Decimal::ZERO, Decimal::ZERO)
        );
        assert_eq!(s.next_available, None);
        assert!(c.verify().unwrap().is_empty(), "{policy:?}");
    }
}

#[test]
fn after_the_window_a_return_follows_today_s_clawback_rules() {
    let sold = datetime!(2026-12-07 12:00:00 UTC);
    let after = datetime!(2026-12-22 12:00:00 UTC);
    for policy in [RefundShortfall::Clamp, RefundShortfall::Debt] {
        let c = open();
        let p = held_programme(policy);
        let s1 = c
            .commit_tx(&p, "s1", CARD, "R1", &sale(1000), Decimal::ZERO, sold)
            .unwrap()
            .unwrap();
        // Released, then 40 of the 50 spent on a 100 sale (whose 3 are
        // held in their turn).
        let s2 = c
            .commit_tx(&p, "s2", CARD, "R2", &sale(100), Decimal::from(40), after)
            .unwrap()
            .unwrap();
        assert_eq!(
            (s2.balance_after, s2.held),
            (Decimal::from(10), Decimal::from(3))
        );
        let r = c
            .refund_tx(&p, "f1", &SaleRef::Transaction(s1.transaction), None, after)
            .unwrap()
            .unwrap();
        let s = c.resolve_tx(CARD, after).unwrap().unwrap();
        match policy {
            // The sale's own lot gives 10, another (held) lot 3; 37 forgiven.
            RefundShortfall::Clamp => {
                assert_eq!(r.clawback, Decimal::from(13));
                assert_eq!(r.clawback_shortfall, Decimal::from(37));
                assert_eq!(
                    (s.balance, s.held, s.debt),
                    (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO)
                );
            }
            RefundShortfall::Debt => {
                assert_eq!(r.clawback, Decimal::from(50));
                assert_eq!(r.clawback_debt, Decimal::from(37));
                assert_eq!(
                    (s.balance, s.held, s.debt),
                    (Decimal::from(-37), Decimal::ZERO, Decimal::from(37))
                );
            }
        }
        assert!(c.verify().unwrap().is_empty(), "{policy:?}");
    }
}

#[test]
fn verify_finds_held_points_that_were_spent() {
    let c = open();
    let p = held_programme(RefundShortfall::Clamp);
    let sold = datetime!(2026-12-07 12:00:00 UTC);
    let after = datetime!(2026-12-22 12:00:00 UTC);
    c.commit_tx(&p, "s1", CARD, "R1", &sale(1000), Decimal::ZERO, sold)
        .unwrap()
        .unwrap();
    c.commit_tx(&p, "s2", CARD, "R2", &sale(100), Decimal::from(10), after)
        .unwrap()
        .unwrap();
    assert!(c.verify().unwrap().is_empty());
    // The first lot claimed to be held beyond the spend (and beyond its
    // own expiry).
    c.write(|db, _| {
        db.execute(
            "UPDATE lots SET available_at = '2027-12-31T21:00:00Z' WHERE txn_id =
                (SELECT id FROM txns WHERE idempotency_key = 's1')",
            args![],
        )
        .map(Ok)
    })
    .unwrap()
    .unwrap();
    let problems = c.verify().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p
                .contains("spent at 2026-12-22T12:00:00Z while held until 2027-12-31T21:00:00Z")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("1 lots expire before their accrual window ends")),
        "{problems:?}"
    );
}

/// A late booking (an offline sale replayed) is priced by its own time:
/// the Saturday campaign and the code's last day are judged at the sale's
/// time, at the programme's offset, and a repeat of the key counts the
/// code's use once.
#[test]
fn campaigns_and_promo_codes_go_by_the_sale_time() {
    use crate::ledger::rules::campaigns::{Campaign, PromoCode, PromoRefusal};
    let till = open();
    let p = Programme {
        campaigns: vec![Campaign {
            name: "saturday".into(),
            weekdays: vec!["sat".into()],
            multiplier: Some(Decimal::from(2)),
            ..Campaign::default()
        }],
        promo_codes: vec![PromoCode {
            code: "Dec".into(),
            bonus: Some(Decimal::from(10)),
            until: Some("2026-12-05".into()),
            ..PromoCode::default()
        }],
        ..Programme::default()
    };
    let commit = |key: &str, at: OffsetDateTime, code: Option<&str>| {
        till.write(|db, o| {
            commit_full_tx(
                db,
                &Programmes::single(p.clone()),
                key,
                "6035000011112222",
                key,
                &sale(1000),
                Decimal::ZERO,
                at,
                o,
                None,
                &OrderTerms::default(),
                code,
            )
        })
        .unwrap()
    };
    // Friday 23:59:59 in Moscow: 50; a second later, Saturday: 100.
    let r = commit("fri", datetime!(2026-12-04 20:59:59 UTC), None).unwrap();
    assert_eq!(r.accrued, Decimal::from(50));
    assert!(r.campaigns.is_empty());
    let r = commit("sat", datetime!(2026-12-04 21:00:00 UTC), None).unwrap();
    assert_eq!(r.accrued, Decimal::from(100));
    assert_eq!(r.campaigns, ["saturday"]);
    // The code's last day ends at midnight Moscow time.
    let last = datetime!(2026-12-05 20:59:59 UTC);
    let r = commit("c1", last, Some("dec")).unwrap();
    assert_eq!(r.accrued, Decimal::from(110));
    assert_eq!(r.promo_code.as_deref(), Some("DEC"));
    let again = commit("c1", last, Some("DEC")).unwrap();
    assert!(again.replayed);
    let uses: i64 = till
        .read(|db| db.query_row("SELECT COUNT(*) FROM promo_uses", args![], |r| r.get(0)))
        .unwrap();
    assert_eq!(uses, 1);
    let e = commit("c2", datetime!(2026-12-05 21:00:00 UTC), Some("dec")).unwrap_err();
    assert!(
        matches!(e, LedgerError::Promo(PromoRefusal::Expired(_))),
        "{e:?}"
    );
}
