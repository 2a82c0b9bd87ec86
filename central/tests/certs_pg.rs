//! The gift certificate core over PostgreSQL and SQLite side by side: the
//! same calls, the same answers; eight tills redeeming one certificate at
//! once on PostgreSQL: exactly one wins when the balance covers one.

use std::sync::Arc;

use posbridge::ledger::certs::{CertError, CertRef, Certs, Validity};
use posbridge::ledger::db::Books;
use posbridge::ledger::origin::Origin;
use posbridge::redact::Secret;
use posbridge::store::Store;
use posbridge_central::pg::{PgBooks, PgConfig};
use posbridge_pgtest::Cluster;
use rust_decimal::Decimal;

/// Books on a new database; the cluster is returned so it outlives them
/// (the last handle dropped stops it).
async fn pg_books(name: &str) -> (Arc<Cluster>, Books) {
    let cluster = Cluster::shared().unwrap();
    let url = cluster.createdb(name).unwrap();
    let pg = tokio::task::spawn_blocking(move || PgBooks::connect(&PgConfig::new(url)).unwrap())
        .await
        .unwrap();
    (cluster, Books::new(Arc::new(pg)))
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Sells, spends, returns, blocks and refuses; returns what must agree
/// between the stores (codes are random, so only their shapes).
async fn story(books: Books) -> Vec<String> {
    let c = Certs::new(books, Origin::new("s1", "t1"));
    let mut out = Vec::new();
    let sold = c
        .issue("k1".into(), d("3000"), Validity::Days(365), None, None)
        .await
        .unwrap();
    let code = sold.code.clone().unwrap().expose().to_owned();
    out.push(format!(
        "sold {} {} {} {}",
        sold.certificate.nominal,
        sold.certificate.balance,
        sold.certificate.state,
        code.len()
    ));
    let again = c
        .issue("k1".into(), d("3000"), Validity::Days(365), None, None)
        .await
        .unwrap();
    out.push(format!("again {} {}", again.replayed, again.code.is_none()));
    let by = || CertRef::Code(Secret::new(code.to_lowercase()));
    let paid = c
        .redeem("k2".into(), by(), d("1200.50"), Some("R2".into()))
        .await
        .unwrap();
    out.push(format!("paid {} {}", paid.amount, paid.certificate.balance));
    let repeat = c
        .redeem("k2".into(), by(), d("1200.50"), Some("R2".into()))
        .await
        .unwrap();
    out.push(format!(
        "repeat {} {}",
        repeat.replayed, repeat.certificate.balance
    ));
    out.push(format!(
        "short {:?}",
        c.redeem("k3".into(), by(), d("2000"), None).await.err()
    ));
    let back = c
        .refund("k4".into(), paid.operation, Some(d("200.50")), None)
        .await
        .unwrap();
    out.push(format!("back {} {}", back.amount, back.certificate.balance));
    out.push(format!(
        "too much {:?}",
        c.refund("k5".into(), paid.operation, Some(d("1001")), None)
            .await
            .err()
    ));
    let blocked = c.block("k6".into(), by(), true).await.unwrap();
    out.push(format!("blocked {}", blocked.state));
    out.push(format!(
        "refused {:?}",
        c.redeem("k7".into(), by(), d("1"), None).await.err()
    ));
    let open = c
        .block("k8".into(), CertRef::Id(blocked.certificate), false)
        .await
        .unwrap();
    let rest = c
        .redeem("k9".into(), by(), open.balance, None)
        .await
        .unwrap();
    out.push(format!("rest {} {}", rest.amount, rest.certificate.state));
    let imported = c
        .issue(
            "k10".into(),
            d("500"),
            Validity::Days(30),
            Some(Secret::new("CINEMA-0042")),
            None,
        )
        .await
        .unwrap();
    out.push(format!(
        "imported {:?}",
        imported.code.as_ref().map(Secret::expose)
    ));
    out.push(format!(
        "taken {:?}",
        c.issue(
            "k11".into(),
            d("500"),
            Validity::Days(30),
            Some(Secret::new("cinema0042")),
            None
        )
        .await
        .err()
    ));
    out.push(format!(
        "unknown {:?}",
        c.get(CertRef::Code(Secret::new("NOBODY-SOLD-IT")))
            .await
            .err()
    ));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_certificate_story_on_both_stores() {
    let (_cluster, books) = pg_books("certs_story").await;
    let on_pg = story(books).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let on_sqlite = story(Books::sqlite(store)).await;
    println!("{on_pg:#?}");
    assert_eq!(on_pg, on_sqlite);
    assert_eq!(on_pg[2], "paid 1200.5 1799.5");
    assert_eq!(on_pg[5], "back 200.5 2000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_tills_redeeming_one_certificate_at_once_one_wins() {
    let (_cluster, books) = pg_books("certs_race").await;
    let c = Certs::new(books, Origin::new("s", "t"));
    for round in 0..5 {
        let code = c
            .issue(
                format!("sell{round}"),
                d("1000"),
                Validity::Days(30),
                None,
                None,
            )
            .await
            .unwrap()
            .code
            .unwrap()
            .expose()
            .to_owned();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let c = c.with_origin(Origin::new("s", format!("t{i}")));
                let by = CertRef::Code(Secret::new(code.clone()));
                tokio::spawn(
                    async move { c.redeem(format!("r{round}-{i}"), by, d("700"), None).await },
                )
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    assert_eq!(r.certificate.balance, d("300"));
                    won += 1
                }
                Err(CertError::Insufficient { balance }) => assert_eq!(balance, d("300")),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        let left = c
            .get(CertRef::Code(Secret::new(code.clone())))
            .await
            .unwrap();
        assert_eq!(left.balance, d("300"));
    }
}
