//! The till's decisions while the central ledger does not answer: a real
//! client of a closed loopback port, the outbox on a real SQLite file, the
//! clocks moved by hand. Replays against a real central service:
//! `central/tests/offline.rs`.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use time::macros::datetime;

use super::clock::tests::FakeClock;
use super::*;
use crate::ledger::accounts::Settings;
use crate::ledger::remote::{Contact, Endpoint};

struct Rig {
    _dir: tempfile::TempDir,
    clock: Arc<FakeClock>,
    ledger: Offline,
}

/// A port nothing listens on: every call fails to connect.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn rig(redeem_limit: Decimal) -> Rig {
    rig_with(redeem_limit, Programme::default())
}

fn rig_with(redeem_limit: Decimal, programme: Programme) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let endpoint = Endpoint {
        url: format!("http://127.0.0.1:{}", closed_port()),
        terminal: "T1".into(),
        key: Secret::new("k"),
        connect_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(500),
    };
    let central = Central::new(endpoint, programme, Settings::default()).unwrap();
    let clock = Arc::new(FakeClock::new(datetime!(2026-12-07 10:00 UTC)));
    let policy = Policy {
        enabled: true,
        max_offline: Duration::from_secs(3600),
        redeem_limit,
        clock_tolerance: Duration::from_secs(60),
        heartbeat: Duration::from_secs(30),
        retry_max: Duration::from_secs(1),
        queue_limit: 5,
    };
    let ledger = Offline::with_clock(central, store, policy, clock.clone());
    Rig {
        _dir: dir,
        clock,
        ledger,
    }
}

impl Rig {
    /// A sale through the offline ledger.
    async fn sell(
        &self,
        key: &str,
        card: &str,
        receipt: &str,
        total: Decimal,
        redeem: Decimal,
    ) -> Result<CommitResult, LedgerError> {
        self.ledger
            .commit(
                key.into(),
                card.into(),
                receipt.into(),
                lines(total),
                redeem,
                None,
            )
            .await
    }

    /// The central service "answered" now.
    fn contact(&self) {
        self.ledger.central.set_contact(Contact {
            at: self.clock.monotonic(),
            central_time: self.clock.wall(),
        });
    }

    /// The card was seen online with `balance`.
    async fn seen(&self, number: &str, balance: Decimal) {
        let s = AccountSummary {
            account: 7,
            status: "active".into(),
            balance,
            debt: Decimal::ZERO,
            held: Decimal::ZERO,
            next_available: None,
            next_expiry: None,
            tier: None,
            tier_progress: None,
            as_of: None,
        };
        self.ledger
            .outbox
            .remember(number.into(), &s)
            .await
            .unwrap();
    }
}

fn lines(total: Decimal) -> Vec<SaleLine> {
    vec![SaleLine {
        sku: "1".into(),
        name: "goods".into(),
        category: "general".into(),
        qty: Decimal::ONE,
        price: total,
        discount: Decimal::ZERO,
    }]
}

const CARD: &str = "7000000000001";

#[tokio::test]
async fn a_sale_offline_is_queued_with_its_time_and_a_retry_gets_the_same_answer() {
    let r = rig(Decimal::ZERO);
    r.contact();
    r.clock.advance(Duration::from_secs(600));
    r.seen(CARD, dec!(100)).await;
    let first = r
        .sell("k1", CARD, "R1", dec!(1000), Decimal::ZERO)
        .await
        .unwrap();
    let p = first.pending.clone().expect("pending");
    // Booked at the central service's time carried forward, not the wall's.
    assert_eq!(p.at, "2026-12-07T10:10:00Z");
    assert!(p.as_of.is_some());
    assert_eq!(first.transaction, 0);
    assert_eq!(first.accrued, dec!(50));
    assert_eq!(first.balance_before, dec!(100));
    assert!(!first.replayed);

    let again = r
        .sell("k1", CARD, "R1", dec!(1000), Decimal::ZERO)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.pending, first.pending);
    let other = r.sell("k1", CARD, "R2", dec!(1000), Decimal::ZERO).await;
    assert!(matches!(other, Err(LedgerError::KeyReused)), "{other:?}");
    // A retry whose card token expired finds it in the queue too.
    let (card, stored) = r
        .ledger
        .replay_commit("k1".into(), "R1".into(), lines(dec!(1000)), Decimal::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(card, CARD);
    assert_eq!(stored.pending, first.pending);

    let d = r.ledger.outbox.depth().await.unwrap();
    assert_eq!((d.queued, d.failed), (1, 0));
    assert_eq!(r.ledger.status().borrow().link, Link::Offline);
    assert_eq!(r.ledger.status().borrow().queued, 1);
}

#[tokio::test]
async fn spending_offline_is_refused_by_default() {
    let r = rig(Decimal::ZERO);
    r.contact();
    r.seen(CARD, dec!(100)).await;
    let e = r
        .sell("k1", CARD, "R1", dec!(1000), dec!(10))
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::OfflineRedeem(_)), "{e:?}");
    let e = r
        .ledger
        .quote(CARD.into(), lines(dec!(1000)), dec!(10))
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::OfflineRedeem(_)), "{e:?}");
    // Nothing was queued by the refusals.
    assert_eq!(r.ledger.outbox.depth().await.unwrap().queued, 0);
}

#[tokio::test]
async fn a_programme_limit_per_card_within_the_hour_and_never_after() {
    let r = rig(dec!(30));
    r.seen(CARD, dec!(100)).await;
    // No answer since start: no trusted time, nothing spent.
    let e = r
        .sell("k0", CARD, "R0", dec!(1000), dec!(10))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("since the till started"), "{e}");

    r.contact();
    r.clock.advance(Duration::from_secs(30 * 60));
    let ok = r
        .sell("k1", CARD, "R1", dec!(1000), dec!(20))
        .await
        .unwrap();
    assert_eq!(ok.redeemed, dec!(20));
    assert_eq!(ok.balance_after, dec!(80));
    // The card's copy shows what this till spent.
    let s = r.ledger.resolve(CARD.into()).await.unwrap().unwrap();
    assert_eq!(s.balance, dec!(80));
    assert!(s.as_of.is_some());
    // 20 spent, 15 more is beyond the card's 30.
    let e = r
        .sell("k2", CARD, "R2", dec!(1000), dec!(15))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at most 30"), "{e}");
    let ok = r
        .sell("k3", CARD, "R3", dec!(1000), dec!(10))
        .await
        .unwrap();
    assert_eq!(ok.balance_before, dec!(80));

    // An hour and a second after the last answer: refused, whatever the
    // limit.
    r.clock.advance(Duration::from_secs(30 * 60 + 1));
    let e = r
        .sell("k4", "7000000000002", "R4", dec!(1000), dec!(1))
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::OfflineRedeem(_)), "{e:?}");
    // Earning still works.
    r.sell("k5", CARD, "R5", dec!(1000), Decimal::ZERO)
        .await
        .unwrap();
    assert_eq!(r.ledger.outbox.depth().await.unwrap().queued, 3);
}

#[tokio::test]
async fn an_unseen_card_earns_offline_but_cannot_spend_or_resolve() {
    let r = rig(dec!(30));
    r.contact();
    let e = r.ledger.resolve(CARD.into()).await.unwrap_err();
    assert!(
        matches!(e, LedgerError::Remote(RemoteError::Unreachable(_))),
        "{e:?}"
    );
    let e = r
        .sell("k1", CARD, "R1", dec!(100), dec!(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no copy"), "{e}");
    let ok = r
        .sell("k2", CARD, "R2", dec!(100), Decimal::ZERO)
        .await
        .unwrap();
    assert_eq!((ok.account, ok.accrued), (0, dec!(5)));
}

#[tokio::test]
async fn a_blocked_card_is_refused_offline_as_online() {
    let r = rig(dec!(30));
    let s = AccountSummary {
        account: 7,
        status: "blocked".into(),
        balance: dec!(10),
        debt: Decimal::ZERO,
        held: Decimal::ZERO,
        next_available: None,
        next_expiry: None,
        tier: None,
        tier_progress: None,
        as_of: None,
    };
    r.ledger.outbox.remember(CARD.into(), &s).await.unwrap();
    let e = r
        .sell("k1", CARD, "R1", dec!(100), Decimal::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::Inactive(_)), "{e:?}");
}

#[tokio::test]
async fn returns_queue_behind_sales_and_the_queue_has_a_limit() {
    let r = rig(Decimal::ZERO);
    let sale = r
        .sell("s1", CARD, "R1", dec!(100), Decimal::ZERO)
        .await
        .unwrap();
    assert!(sale.pending.is_some());
    let back = r
        .ledger
        .refund(
            "f1".into(),
            SaleRef::Receipt("R1".into()),
            Some(dec!(40)),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(back.refunded, dec!(40));
    assert!(back.pending.is_some());
    let next = r.ledger.outbox.next().await.unwrap().unwrap();
    assert_eq!((next.key.as_str(), next.kind), ("s1", Kind::Sale));
    for i in 0..3 {
        r.ledger
            .commit(
                format!("x{i}"),
                CARD.into(),
                format!("X{i}"),
                lines(dec!(1)),
                Decimal::ZERO,
                None,
            )
            .await
            .unwrap();
    }
    let e = r
        .sell("full", CARD, "F", dec!(1), Decimal::ZERO)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("queue is full"), "{e}");
}

#[tokio::test]
async fn a_return_by_lines_queues_with_its_lines_and_repeats_as_queued() {
    let r = rig(Decimal::ZERO);
    r.sell("s1", CARD, "R1", dec!(100), Decimal::ZERO)
        .await
        .unwrap();
    let returned = vec![ReturnLine {
        sku: "A1".into(),
        qty: dec!(0.5),
        line: Some(0),
    }];
    let back = r
        .ledger
        .refund(
            "f1".into(),
            SaleRef::Receipt("R1".into()),
            None,
            None,
            Some(returned.clone()),
        )
        .await
        .unwrap();
    assert!(back.pending.is_some() && back.lines.is_empty());
    // The same key and lines again: the queued answer; other lines: 2005.
    let again = r
        .ledger
        .refund(
            "f1".into(),
            SaleRef::Receipt("R1".into()),
            None,
            None,
            Some(returned.clone()),
        )
        .await
        .unwrap();
    assert!(again.replayed);
    let mut other = returned.clone();
    other[0].qty = dec!(1);
    let e = r
        .ledger
        .refund(
            "f1".into(),
            SaleRef::Receipt("R1".into()),
            None,
            None,
            Some(other),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::KeyReused), "{e:?}");
    // The queued request carries the lines the replayer books.
    let sale = r.ledger.outbox.next().await.unwrap().unwrap();
    r.ledger.outbox.done(sale.id).await.unwrap();
    let item = r.ledger.outbox.next().await.unwrap().unwrap();
    assert_eq!((item.key.as_str(), item.kind), ("f1", Kind::Refund));
    let req: serde_json::Value = serde_json::from_str(&item.request).unwrap();
    let lines: Vec<ReturnLine> = serde_json::from_value(req["lines"].clone()).unwrap();
    assert_eq!(lines, returned);
}

#[tokio::test]
async fn the_dead_letter_list_retries_and_drops_by_id() {
    let r = rig(Decimal::ZERO);
    r.sell("s1", CARD, "R1", dec!(100), Decimal::ZERO)
        .await
        .unwrap();
    let item = r.ledger.outbox.next().await.unwrap().unwrap();
    r.ledger
        .outbox
        .fail(item.id, 2002, "the card is blocked".into())
        .await
        .unwrap();
    assert!(r.ledger.outbox.next().await.unwrap().is_none());
    let failed = r.ledger.failed(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].code, Some(2002));
    assert!(matches!(
        r.ledger.retry(999).await,
        Err(OfflineError::UnknownItem(999))
    ));
    r.ledger.retry(item.id).await.unwrap();
    assert_eq!(r.ledger.outbox.next().await.unwrap().unwrap().id, item.id);
    r.ledger
        .outbox
        .fail(item.id, 2002, "again".into())
        .await
        .unwrap();
    let dropped = r.ledger.drop_failed(item.id).await.unwrap();
    assert_eq!(dropped.key, "s1");
    assert_eq!(
        r.ledger.outbox.depth().await.unwrap(),
        outbox::Depth::default()
    );
    assert!(r.ledger.drop_failed(item.id).await.is_err());
}

#[tokio::test]
async fn an_offline_sale_dates_its_points_by_the_card_copy_s_level() {
    let mut entry: crate::ledger::rules::tiers::Tier =
        serde_json::from_value(serde_json::json!({"name": "Базовый", "priority": 1})).unwrap();
    let silver = crate::ledger::rules::tiers::Tier {
        name: "Серебряный".into(),
        priority: 2,
        min_spend: Some(dec!(1000)),
        spend_period_days: Some(90),
        expiry_days: Some(30),
        ..entry.clone()
    };
    entry.expiry_days = None;
    let p = Programme {
        tiers: vec![entry, silver],
        ..Programme::default()
    };
    let r = rig_with(Decimal::ZERO, p);
    r.contact();
    let mut s = AccountSummary {
        account: 7,
        status: "active".into(),
        balance: Decimal::ZERO,
        debt: Decimal::ZERO,
        next_expiry: None,
        tier: Some("Серебряный".into()),
        tier_progress: None,
        as_of: None,
        held: Decimal::ZERO,
        next_available: None,
    };
    r.ledger.outbox.remember(CARD.into(), &s).await.unwrap();
    let sold = r
        .sell("k1", CARD, "R1", dec!(1000), Decimal::ZERO)
        .await
        .unwrap();
    // 2026-12-07 13:00 in Moscow + 30 days: gone at 00:00 on 7 January.
    assert_eq!(
        sold.accrued_expires_at.as_deref(),
        Some("2027-01-06T21:00:00Z")
    );
    // At the entry level, the programme's 6 months.
    s.tier = Some("Базовый".into());
    r.ledger.outbox.remember(CARD.into(), &s).await.unwrap();
    let sold = r
        .sell("k2", CARD, "R2", dec!(1000), Decimal::ZERO)
        .await
        .unwrap();
    assert_eq!(
        sold.accrued_expires_at.as_deref(),
        Some("2027-06-07T21:00:00Z")
    );
}
