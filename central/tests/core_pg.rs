//! The ledger core over PostgreSQL and SQLite side by side: the same calls,
//! the same answers; concurrent redemptions of one balance: exactly one wins.

use std::collections::BTreeMap;
use std::sync::Arc;

use posbridge::ledger::db::Books;
use posbridge::ledger::embedded::{self, Embedded};
use posbridge::ledger::origin::Origin;
use posbridge::ledger::rules::tiers::{Combine, Tier};
use posbridge::ledger::rules::{AccountOverrides, Programme, SaleLine};
use posbridge::ledger::tiers::Tiers;
use posbridge::ledger::{AccountRef, LedgerError, SaleRef};
use posbridge::store::Store;
use posbridge_central::pg::{PgBooks, PgConfig};
use posbridge_pgtest::Cluster;
use rust_decimal::Decimal;

fn programme() -> Programme {
    let bronze = Tier {
        name: "Bronze".into(),
        priority: 1,
        accrual_percent: None,
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
    };
    let silver = Tier {
        name: "Silver".into(),
        priority: 2,
        accrual_percent: Some(Decimal::from(10)),
        min_spend: Some(Decimal::from(1000)),
        spend_period_days: Some(30),
        ..bronze.clone()
    };
    Programme {
        tiers: vec![bronze, silver],
        ..Programme::default()
    }
}

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

const CARD: &str = "6035000011112222";

/// The PostgreSQL books on a fresh database `name` of the shared
/// throwaway cluster, migrated, with the cluster's handle: the server
/// stops when the last test drops it.
async fn pg_books(name: &str) -> (Arc<Cluster>, PgBooks) {
    let cluster = Cluster::shared().unwrap();
    let url = cluster.createdb(name).unwrap();
    let pg = tokio::task::spawn_blocking(move || PgBooks::connect(&PgConfig::new(url)).unwrap())
        .await
        .unwrap();
    (cluster, pg)
}

/// Runs the story; returns what must agree between the stores.
async fn story(books: Books) -> Vec<String> {
    let l = Embedded::with_books(books.clone(), programme(), Origin::new("s1", "t1"));
    let mut out = Vec::new();
    let s1 = l
        .commit(
            "k1".into(),
            CARD.into(),
            "R1".into(),
            sale(1000),
            Decimal::ZERO,
            None,
        )
        .await
        .unwrap();
    out.push(format!(
        "s1 {} {} {:?}",
        s1.accrued,
        s1.balance_after,
        s1.tier_change.as_ref().map(|c| c.to.clone())
    ));
    let (sum, q) = l
        .quote(CARD.into(), sale(100), Decimal::from(20))
        .await
        .unwrap();
    out.push(format!(
        "q {} {} {:?}",
        sum.unwrap().balance,
        q.accrual,
        q.redeem
    ));
    let l2 = l.with_origin(Origin::new("s2", "t9"));
    let s2 = l2
        .commit(
            "k2".into(),
            CARD.into(),
            "R2".into(),
            sale(100),
            Decimal::from(20),
            None,
        )
        .await
        .unwrap();
    out.push(format!(
        "s2 {} {} {}",
        s2.redeemed, s2.accrued, s2.balance_after
    ));
    let again = l2
        .commit(
            "k2".into(),
            CARD.into(),
            "R2".into(),
            sale(100),
            Decimal::from(20),
            None,
        )
        .await
        .unwrap();
    assert!(again.replayed);
    let (n, r) = l2
        .replay_commit("k2".into(), "R2".into(), sale(100), Decimal::from(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n.as_str(), r.transaction), (CARD, s2.transaction));
    assert!(matches!(
        l2.commit(
            "k2".into(),
            CARD.into(),
            "R3".into(),
            sale(100),
            Decimal::ZERO,
            None
        )
        .await,
        Err(LedgerError::KeyReused)
    ));
    let past = time::OffsetDateTime::now_utc() - time::Duration::HOUR;
    let a = l
        .adjust(
            "a1".into(),
            CARD.into(),
            Decimal::from(5),
            "r".into(),
            "o".into(),
            Some(past),
        )
        .await
        .unwrap();
    out.push(format!("a {} {}", a.amount, a.balance_after));
    let s = l.resolve(CARD.into()).await.unwrap().unwrap();
    out.push(format!(
        "r {} {:?} {:?}",
        s.balance,
        s.tier,
        s.next_expiry.map(|e| e.amount)
    ));
    let d = l
        .adjust(
            "a2".into(),
            CARD.into(),
            Decimal::from(-1),
            "r".into(),
            "o".into(),
            None,
        )
        .await
        .unwrap();
    out.push(format!("d {}", d.balance_after));
    assert!(matches!(
        l.adjust(
            "a3".into(),
            CARD.into(),
            Decimal::from(-100000),
            "r".into(),
            "o".into(),
            None
        )
        .await,
        Err(LedgerError::InsufficientBalance { .. })
    ));
    let f1 = l
        .refund(
            "f1".into(),
            SaleRef::Receipt("R1".into()),
            Some(Decimal::from(500)),
            None,
            None,
        )
        .await
        .unwrap();
    out.push(format!(
        "f1 {} {} {:?}",
        f1.clawback,
        f1.balance_after,
        f1.tier_change.map(|c| c.to)
    ));
    let f2 = l2
        .refund(
            "f2".into(),
            SaleRef::Transaction(s2.transaction),
            None,
            None,
            None,
        )
        .await
        .unwrap();
    out.push(format!(
        "f2 {} {} {}",
        f2.clawback, f2.returned, f2.balance_after
    ));
    assert!(matches!(
        l.refund("f3".into(), SaleRef::Transaction(999), None, None, None)
            .await,
        Err(LedgerError::UnknownSale)
    ));
    let o = AccountOverrides {
        cap_percent: Some(Decimal::from(20)),
        ..Default::default()
    };
    let ov = l.set_overrides(None, s1.account, o.clone()).await.unwrap();
    assert_eq!(ov.overrides, o);
    let ov = l
        .set_overrides(Some("o1".into()), s1.account, o.clone())
        .await
        .unwrap();
    assert!(!ov.replayed);
    let page = l
        .history(AccountRef::Number(CARD.into()), None, 3)
        .await
        .unwrap();
    let mut kinds: Vec<String> = page
        .transactions
        .iter()
        .map(|t| {
            format!(
                "{}@{:?}/{:?}:{}",
                t.kind,
                t.store,
                t.terminal,
                t.entries.len()
            )
        })
        .collect();
    let mut cursor = page.next_cursor;
    while let Some(c) = cursor {
        let p = l
            .history(AccountRef::Account(s1.account), Some(c), 3)
            .await
            .unwrap();
        kinds.extend(p.transactions.iter().map(|t| {
            format!(
                "{}@{:?}/{:?}:{}",
                t.kind,
                t.store,
                t.terminal,
                t.entries.len()
            )
        }));
        cursor = p.next_cursor;
    }
    out.push(format!("h {} {kinds:?}", page.balance));
    let tiers = Tiers::with_books(books.clone());
    let p = Arc::new(programme());
    let (n, ch) = tiers
        .evaluate(
            p.clone(),
            None,
            time::OffsetDateTime::now_utc(),
            "daily",
            |_| {},
        )
        .await
        .unwrap();
    out.push(format!("t {n} {}", ch.len()));
    let (view, hist) = tiers
        .history(p, s1.account, 10, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    out.push(format!("th {:?} {}", view.tier, hist.len()));
    let problems = books.read(embedded::verify).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let rows = books
        .read(|db| {
            let mut rows = 0;
            embedded::export(db, |_| {
                rows += 1;
                Ok(())
            })
            .map(|r| r.map(|()| rows))
        })
        .await
        .unwrap()
        .unwrap();
    out.push(format!("x {rows}"));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_story_on_both_stores() {
    let (_cluster, pg) = pg_books("core_story").await;
    let on_pg = story(Books::new(Arc::new(pg))).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let on_sqlite = story(Books::sqlite(store)).await;
    println!("{on_pg:#?}");
    assert_eq!(on_pg, on_sqlite);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_redemptions_of_one_balance_one_wins() {
    let (_cluster, pg) = pg_books("core_race").await;
    let books = Books::new(Arc::new(pg));
    let l = Embedded::with_books(books.clone(), Programme::default(), Origin::new("s", "t"));
    // 50 points.
    l.commit(
        "seed".into(),
        CARD.into(),
        "R0".into(),
        sale(1000),
        Decimal::ZERO,
        None,
    )
    .await
    .unwrap();
    for round in 0..5 {
        if round > 0 {
            // Back to 50 after the round's one winner took 30.
            l.adjust(
                format!("top{round}"),
                CARD.into(),
                Decimal::from(30),
                "r".into(),
                "o".into(),
                None,
            )
            .await
            .unwrap();
        }
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let l = l.with_origin(Origin::new("s", format!("t{i}")));
                tokio::spawn(async move {
                    l.adjust(
                        format!("r{round}-{i}"),
                        CARD.into(),
                        Decimal::from(-30),
                        "spend".into(),
                        "o".into(),
                        None,
                    )
                    .await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(LedgerError::InsufficientBalance { .. }) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        let problems = books.read(embedded::verify).await.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
}

/// Registers, renames and searches Cyrillic names on `books`: the hits'
/// names for "иванов" and "петров".
async fn cyrillic_search(books: Books) -> Vec<String> {
    use posbridge::ledger::accounts::{Accounts, Registration, Settings, Update};
    let a = Accounts::with_books(books, Settings::default(), Origin::new("s1", "t1"));
    let reg = |phone: &str, name: &str| Registration {
        phone: Some(phone.into()),
        name: Some(name.into()),
        ..Registration::default()
    };
    let p = Programme::default();
    a.register(&p, reg("+79160000001", "Иван Иванов"))
        .await
        .unwrap();
    let anna = a
        .register(&p, reg("+79160000002", "Анна Смирнова"))
        .await
        .unwrap();
    a.update(
        anna.account,
        Update {
            name: Some(Some("Анна ПЕТРОВА".into())),
            ..Update::default()
        },
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for q in ["иванов", "ИВАНОВ", "петров", "смирнова"] {
        let page = a.search(q.into(), None, 10).await.unwrap();
        let names: Vec<String> = page.hits.into_iter().filter_map(|h| h.name).collect();
        out.push(format!("{q}: {}", names.join(", ")));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn cyrillic_names_are_found_whatever_their_case_on_both_stores() {
    let (_cluster, pg) = pg_books("cyrillic_search").await;
    let on_pg = cyrillic_search(Books::new(Arc::new(pg))).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let on_sqlite = cyrillic_search(Books::sqlite(store)).await;
    assert_eq!(
        on_sqlite,
        [
            "иванов: Иван Иванов",
            "ИВАНОВ: Иван Иванов",
            "петров: Анна ПЕТРОВА",
            "смирнова: ",
        ]
    );
    assert_eq!(on_pg, on_sqlite);
}

/// An account nobody touches: 10 points that burned 3 days before the
/// sweep. Returns what must agree between the stores.
async fn sweep_story(books: Books) -> Vec<String> {
    let l = Embedded::with_books(books.clone(), Programme::default(), Origin::new("s1", "t1"));
    l.commit(
        "k1".into(),
        CARD.into(),
        "R1".into(),
        sale(100),
        Decimal::ZERO,
        None,
    )
    .await
    .unwrap();
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let burns = now + time::Duration::days(1);
    l.adjust(
        "a1".into(),
        CARD.into(),
        Decimal::from(10),
        "r".into(),
        "o".into(),
        Some(burns),
    )
    .await
    .unwrap();
    let sweep = l.with_origin(Origin::default());
    let at = burns + time::Duration::days(3);
    assert_eq!(sweep.expire_all(at).await.unwrap(), 1);
    // Idempotent: a second run posts nothing.
    assert_eq!(sweep.expire_all(at).await.unwrap(), 0);
    let rows: Vec<(String, String, i64)> = books
        .read(|db| {
            db.query_map(
                "SELECT t.kind, t.created_at, e.amount FROM txns t JOIN entries e ON e.txn_id = t.id
                 WHERE e.kind = 'expire' ORDER BY e.id",
                posbridge::args![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .await
        .unwrap();
    let stamp = burns
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(rows, vec![("expire".to_owned(), stamp, -100_000)]);
    let problems = books.read(embedded::verify).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    vec![format!("{:?}", rows.len())]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_burns_an_untouched_account_on_its_date_on_both_stores() {
    let (_cluster, pg) = pg_books("core_sweep").await;
    let on_pg = sweep_story(Books::new(Arc::new(pg))).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let on_sqlite = sweep_story(Books::sqlite(store)).await;
    assert_eq!(on_pg, on_sqlite);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn sales_racing_the_sweep_never_post_a_lot_twice() {
    let (_cluster, pg) = pg_books("core_sweep_race").await;
    let books = Books::new(Arc::new(pg));
    let l = Embedded::with_books(books.clone(), Programme::default(), Origin::new("s", "t"));
    let cards: Vec<String> = (0..20).map(|i| format!("60350000{i:08}")).collect();
    let burns = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    for c in &cards {
        l.commit(
            format!("s-{c}"),
            c.clone(),
            format!("R-{c}"),
            sale(100),
            Decimal::ZERO,
            None,
        )
        .await
        .unwrap();
        l.adjust(
            format!("a-{c}"),
            c.clone(),
            Decimal::from(10),
            "r".into(),
            "o".into(),
            Some(burns),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // Every account's lot is due: the sweep and a sale on each card post
    // it at the same time.
    let sweep = {
        let l = l.clone();
        tokio::spawn(async move { l.expire_all(time::OffsetDateTime::now_utc()).await })
    };
    let sales: Vec<_> = cards
        .iter()
        .map(|c| {
            let l = l.clone();
            let c = c.clone();
            tokio::spawn(async move {
                l.commit(
                    format!("s2-{c}"),
                    c.clone(),
                    format!("R2-{c}"),
                    sale(100),
                    Decimal::ZERO,
                    None,
                )
                .await
            })
        })
        .collect();
    sweep.await.unwrap().unwrap();
    for s in sales {
        s.await.unwrap().unwrap();
    }
    let (expired_lots, entries): (i64, i64) = books
        .read(|db| {
            db.query_row(
                "SELECT COUNT(DISTINCT lot_id), COUNT(*) FROM entries WHERE kind = 'expire'",
                posbridge::args![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
        .unwrap();
    assert_eq!((expired_lots, entries), (20, 20));
    let problems = books.read(embedded::verify).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// Sales at two stores, an adjustment and a burn, reported per day and
/// per store and terminal. Returns the report's JSON, which must agree
/// between the stores.
async fn report_story(books: Books) -> serde_json::Value {
    use posbridge::ledger::report::{self, Granularity, ReportQuery};
    let p = Programme::default();
    let l = Embedded::with_books(books.clone(), p.clone(), Origin::new("s1", "t1"));
    // 50 points at s1/t1, then 20 spent and 4 accrued at s2/t9.
    l.commit(
        "k1".into(),
        CARD.into(),
        "R1".into(),
        sale(1000),
        Decimal::ZERO,
        None,
    )
    .await
    .unwrap();
    l.with_origin(Origin::new("s2", "t9"))
        .commit(
            "k2".into(),
            CARD.into(),
            "R2".into(),
            sale(100),
            Decimal::from(20),
            None,
        )
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    l.adjust(
        "a1".into(),
        CARD.into(),
        Decimal::from(7),
        "r".into(),
        "o".into(),
        Some(now + time::Duration::days(1)),
    )
    .await
    .unwrap();
    let sweep_at = now + time::Duration::days(2);
    l.with_origin(Origin::default())
        .expire_all(sweep_at)
        .await
        .unwrap();
    let offset = time::UtcOffset::from_whole_seconds(p.utc_offset_minutes * 60).unwrap();
    let today = now.to_offset(offset).date();
    let q = ReportQuery {
        from: today.to_string(),
        to: (today + time::Duration::days(3)).to_string(),
        granularity: Granularity::Day,
        by_store: true,
        by_terminal: true,
    };
    let r = books
        .read(move |db| report::report(db, &p, &q, sweep_at))
        .await
        .unwrap()
        .unwrap();
    let m = &r.movements;
    assert_eq!(m.len(), 3, "{m:#?}");
    let s1 = m.iter().find(|r| r.store.as_deref() == Some("s1")).unwrap();
    assert_eq!(
        (s1.accrued, s1.redeemed, s1.adjusted, s1.terminal.as_deref()),
        (
            Decimal::from(50),
            Decimal::ZERO,
            Decimal::from(7),
            Some("t1")
        )
    );
    let s2 = m.iter().find(|r| r.store.as_deref() == Some("s2")).unwrap();
    assert_eq!(
        (s2.accrued, s2.redeemed),
        (Decimal::from(4), Decimal::from(20))
    );
    // The burn, on the day it happened, by the sweep (no store).
    let burn = m.iter().find(|r| r.store.is_none()).unwrap();
    assert_eq!(burn.expired, Decimal::from(7));
    assert_eq!(
        burn.period,
        (now + time::Duration::days(1))
            .to_offset(offset)
            .date()
            .to_string()
    );
    assert_eq!(r.liability, Decimal::from(34));
    assert_eq!(r.new_customers.iter().map(|c| c.count).sum::<i64>(), 1);
    assert_eq!(r.top_customers.len(), 1);
    assert_eq!(r.top_customers[0].accrued, Decimal::from(54));
    let mut v = serde_json::to_value(&r).unwrap();
    v["as_of"] = serde_json::Value::Null;
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_report_on_both_stores() {
    let (_cluster, pg) = pg_books("core_report").await;
    let on_pg = report_story(Books::new(Arc::new(pg))).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let on_sqlite = report_story(Books::sqlite(store)).await;
    assert_eq!(on_pg, on_sqlite);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_sales_book_a_key_once_and_spend_a_balance_once() {
    let (_cluster, pg) = pg_books("core_sale_race").await;
    let books = Books::new(Arc::new(pg));
    // No accrual: a winning spend leaves too little for a second one.
    let p = Programme {
        default_accrual_percent: Decimal::ZERO,
        ..Programme::default()
    };
    let l = Embedded::with_books(books.clone(), p, Origin::new("s", "t"));
    for round in 0..3 {
        // One key sent by 8 callers at once (a till's retries racing across
        // instances): one booking, every caller gets its answer.
        let key = format!("dup{round}");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (l, key) = (l.clone(), key.clone());
                tokio::spawn(async move {
                    l.commit(
                        key.clone(),
                        CARD.into(),
                        key,
                        sale(100),
                        Decimal::ZERO,
                        None,
                    )
                    .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap().unwrap());
        }
        assert_eq!(
            answers.iter().filter(|r| !r.replayed).count(),
            1,
            "{answers:?}"
        );
        assert!(
            answers
                .iter()
                .all(|r| r.transaction == answers[0].transaction)
        );
        let rows: i64 = books
            .read(move |db| {
                db.query_row(
                    "SELECT COUNT(*) FROM txns WHERE idempotency_key = ?1",
                    posbridge::args![key],
                    |r| r.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(rows, 1);
        // 50 points: the round's one winner takes 30.
        let top = if round == 0 { 50 } else { 30 };
        l.adjust(
            format!("top{round}"),
            CARD.into(),
            Decimal::from(top),
            "r".into(),
            "o".into(),
            None,
        )
        .await
        .unwrap();
        // 8 sales redeeming 30 of the 50 points at once: exactly one wins.
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let l = l.with_origin(Origin::new("s", format!("t{i}")));
                tokio::spawn(async move {
                    let key = format!("spend{round}-{i}");
                    l.commit(
                        key.clone(),
                        CARD.into(),
                        key,
                        sale(100),
                        Decimal::from(30),
                        None,
                    )
                    .await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    assert_eq!(r.redeemed, Decimal::from(30));
                    won += 1;
                }
                // The losers re-ran and saw the winner's spend.
                Err(e @ LedgerError::Rules(_)) => {
                    assert!(format!("{e:?}").contains("limit: Balance"), "{e:?}")
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        let problems = books.read(embedded::verify).await.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
}

/// The accrual window (`hold_days`, issue 21 item 2): a sale booked 20
/// days ago is out of its 14-day window and spendable, today's is held;
/// a return inside the window takes the held points back whole. Returns
/// what must agree between the stores.
async fn hold_story(books: Books) -> Vec<String> {
    let p = Programme {
        hold_days: 14,
        ..Programme::default()
    };
    let l = Embedded::with_books(books.clone(), p, Origin::new("s1", "t1"));
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    let old = l
        .commit_at(
            "k1".into(),
            CARD.into(),
            "R1".into(),
            sale(1000),
            Decimal::ZERO,
            Some(now - time::Duration::days(20)),
            None,
        )
        .await
        .unwrap();
    let released = old.accrued_available_at.clone().unwrap();
    let stamp = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    assert!(released < stamp(now), "{released}");
    assert!(old.accrued_expires_at.clone().unwrap() > released);
    let new = l
        .commit(
            "k2".into(),
            CARD.into(),
            "R2".into(),
            sale(1000),
            Decimal::ZERO,
            None,
        )
        .await
        .unwrap();
    assert!(new.accrued_available_at.clone().unwrap() > stamp(now));
    out.push(format!(
        "s2 {} {} {}",
        new.accrued, new.balance_after, new.held
    ));
    let (s, q) = l
        .quote(CARD.into(), sale(1000), Decimal::ZERO)
        .await
        .unwrap();
    let s = s.unwrap();
    out.push(format!(
        "q {} {} {} {}",
        s.balance,
        s.held,
        s.next_available
            .map(|n| n.amount.to_string())
            .unwrap_or_default(),
        q.max_redeemable
    ));
    let over = l.quote(CARD.into(), sale(1000), Decimal::from(51)).await;
    out.push(format!("over {}", over.is_err()));
    let back = l
        .refund(
            "f1".into(),
            SaleRef::Transaction(new.transaction),
            None,
            None,
            None,
        )
        .await
        .unwrap();
    out.push(format!(
        "f {} {} {} {}",
        back.clawback, back.clawback_shortfall, back.clawback_debt, back.balance_after
    ));
    let s = l.resolve(CARD.into()).await.unwrap().unwrap();
    out.push(format!("r {} {} {}", s.balance, s.held, s.debt));
    let problems = books.read(embedded::verify).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_accrual_window_on_both_stores() {
    let (_cluster, pg) = pg_books("core_hold").await;
    let on_pg = hold_story(Books::new(Arc::new(pg))).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let on_sqlite = hold_story(Books::sqlite(store)).await;
    assert_eq!(
        on_pg,
        [
            "s2 50 50 50",
            "q 50 50 50 50",
            "over true",
            "f 50 0 0 50",
            "r 50 0 0"
        ]
    );
    assert_eq!(on_pg, on_sqlite);
}

/// A sale runs at READ COMMITTED with its account taken first; every
/// other write stays SERIALIZABLE (docs/central.md, "Isolation").
#[tokio::test(flavor = "multi_thread")]
async fn sales_lock_their_account_and_the_rest_stays_serializable() {
    let (_cluster, pg) = pg_books("core_isolation").await;
    let books = Books::new(Arc::new(pg));
    let level = |locking: bool| {
        let books = books.clone();
        async move {
            let show = |db: &dyn posbridge::ledger::db::Db| {
                db.query_row("SHOW transaction_isolation", posbridge::args![], |r| {
                    r.get::<String>(0)
                })
                .map(Ok::<String, ()>)
            };
            if locking {
                books.write_locking(show).await.unwrap().unwrap()
            } else {
                books.write(show).await.unwrap().unwrap()
            }
        }
    };
    assert_eq!(level(true).await, "read committed");
    assert_eq!(level(false).await, "serializable");
}

/// Eight tills' first sales of one new card at once: one account, every
/// sale booked on it (the losers of the card's insert run again and find
/// it), the books consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn first_sales_of_one_new_card_at_once_enrol_it_once() {
    let (_cluster, pg) = pg_books("core_enrol_race").await;
    let books = Books::new(Arc::new(pg));
    let l = Embedded::with_books(books.clone(), Programme::default(), Origin::new("s", "t"));
    for round in 0..5 {
        let card = format!("603500009999{round:04}");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let l = l.with_origin(Origin::new("s", format!("t{i}")));
                let card = card.clone();
                tokio::spawn(async move {
                    let key = format!("first{round}-{i}");
                    l.commit(key.clone(), card, key, sale(100), Decimal::ZERO, None)
                        .await
                })
            })
            .collect();
        let mut accounts = Vec::new();
        for t in tasks {
            accounts.push(t.await.unwrap().unwrap().account);
        }
        accounts.dedup();
        assert_eq!(accounts.len(), 1, "round {round}: {accounts:?}");
        let s = l.resolve(card).await.unwrap().unwrap();
        // 8 sales of 100 at 5 %.
        assert_eq!(s.balance, Decimal::from(40), "round {round}");
    }
    let problems = books.read(embedded::verify).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// Sales (READ COMMITTED, account taken first) and operator deductions
/// (SERIALIZABLE) spending one balance at the same moment: exactly one of
/// all of them wins, whichever kind, and the books stay consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn sales_and_deductions_racing_for_one_balance_one_wins() {
    let (_cluster, pg) = pg_books("core_mixed_race").await;
    let books = Books::new(Arc::new(pg));
    let p = Programme {
        default_accrual_percent: Decimal::ZERO,
        ..Programme::default()
    };
    let l = Embedded::with_books(books.clone(), p, Origin::new("s", "t"));
    // The card's first sale enrols it (no accrual in this programme).
    l.commit(
        "seed".into(),
        CARD.into(),
        "R0".into(),
        sale(1),
        Decimal::ZERO,
        None,
    )
    .await
    .unwrap();
    let mut winners = [0usize; 2];
    for round in 0..6 {
        // 50 points: one spend of 30 fits, a second does not.
        l.adjust(
            format!("top{round}"),
            CARD.into(),
            Decimal::from(if round == 0 { 50 } else { 30 }),
            "r".into(),
            "o".into(),
            None,
        )
        .await
        .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let l = l.with_origin(Origin::new("s", format!("t{i}")));
                tokio::spawn(async move {
                    let key = format!("m{round}-{i}");
                    if i % 2 == 0 {
                        l.commit(
                            key.clone(),
                            CARD.into(),
                            key,
                            sale(100),
                            Decimal::from(30),
                            None,
                        )
                        .await
                        .map(|_| 0)
                    } else {
                        l.adjust(
                            key,
                            CARD.into(),
                            Decimal::from(-30),
                            "spend".into(),
                            "o".into(),
                            None,
                        )
                        .await
                        .map(|_| 1)
                    }
                })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(kind) => won.push(kind),
                Err(LedgerError::InsufficientBalance { .. }) => {}
                Err(e @ LedgerError::Rules(_)) => {
                    assert!(format!("{e:?}").contains("limit: Balance"), "{e:?}")
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        winners[won[0]] += 1;
        let s = l.resolve(CARD.into()).await.unwrap().unwrap();
        assert_eq!(s.balance, Decimal::from(20), "round {round}");
        let problems = books.read(embedded::verify).await.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
    println!("winners: sales {}, deductions {}", winners[0], winners[1]);
}
