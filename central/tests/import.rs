//! From one till to a chain: a real till daemon keeps its own embedded
//! ledger for a while (customers, sales, a refund, an adjustment, a tier
//! change), stops, and `posbridge-central import` takes its SQLite file
//! into the chain's PostgreSQL; tills in central mode then show the same
//! figures, accept the same secrets and replay the old till's keys.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Chain, Till, lines};

const TIERS: &str = r#"
[ledger.programme]
default_accrual_percent = "5"

[[ledger.programme.tiers]]
name = "Bronze"
priority = 1

[[ledger.programme.tiers]]
name = "Silver"
priority = 2
accrual_percent = "10"
min_spend = "1000"
spend_period_days = 30
"#;

const CARD_A: &str = "6035000011112222";
const CARD_B: &str = "6035000033334444";

/// What a till shows of a card: the account summary without its id (ids
/// are the central ledger's own after the import), and the history's
/// transaction and entry counts.
async fn figures(t: &Till, card: &str) -> (Value, usize, usize) {
    let mut c = t.client().await;
    let r = c
        .call("card.resolve", json!({"number": card}))
        .await
        .unwrap();
    let mut summary = r["account"].clone();
    summary.as_object_mut().unwrap().remove("account");
    let h = c
        .call("account.history", json!({"number": card, "limit": 100}))
        .await
        .unwrap();
    let txns = h["transactions"].as_array().unwrap();
    let entries = txns
        .iter()
        .map(|t| t["entries"].as_array().unwrap().len())
        .sum();
    (summary, txns.len(), entries)
}

async fn register(t: &Till, card: &str, phone: &str) {
    t.client()
        .await
        .call(
            "account.register",
            json!({"phone": phone, "name": "Мария", "card_number": card, "secret": "4711"}),
        )
        .await
        .unwrap();
}

fn sale(key: &str, card: &str, total: u32) -> Value {
    json!({"idempotency_key": key, "number": card, "receipt_id": key, "lines": lines(total)})
}

/// `posbridge ledger export --format json` of an embedded till: its rows.
fn till_export_rows(t: &Till) -> usize {
    let out = Command::new(support::till_bin())
        .arg("--config")
        .arg(t.dir.path().join("posbridge.toml"))
        .args(["ledger", "export", "--format", "json"])
        .output()
        .expect("run posbridge ledger export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Row counts of the central tables an import writes.
fn counts(chain: &Chain) -> Vec<i64> {
    // The blocking client runs a runtime of its own.
    tokio::task::block_in_place(|| blocking_counts(chain))
}

fn blocking_counts(chain: &Chain) -> Vec<i64> {
    let mut pg = postgres::Client::connect(&chain.db_url, postgres::NoTls).unwrap();
    [
        "accounts",
        "cards",
        "txns",
        "lots",
        "entries",
        "tier_changes",
        "groups",
        "imports",
    ]
    .iter()
    .map(|t| {
        pg.query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
            .unwrap()
            .get(0)
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_till_imported_into_a_chain_keeps_its_figures_secrets_and_keys() {
    // One shop, one till, its own ledger.
    let mut old = Till::embedded(TIERS);
    register(&old, CARD_A, "+79161234567").await;
    register(&old, CARD_B, "+79167654321").await;
    let mut c = old.client().await;
    let first = c
        .call("sale.commit", sale("k1", CARD_A, 1000))
        .await
        .unwrap();
    assert_eq!(first["tier_change"]["to"], "Silver", "{first}");
    c.call("sale.commit", sale("k2", CARD_B, 300))
        .await
        .unwrap();
    c.call(
        "sale.refund",
        json!({"idempotency_key": "r1", "receipt_id": "k2", "amount": "100"}),
    )
    .await
    .unwrap();
    c.call(
        "ledger.adjust",
        json!({"idempotency_key": "q1", "number": CARD_A, "amount": "7.5", "reason": "goodwill"}),
    )
    .await
    .unwrap();
    c.call("sale.commit", sale("k3", CARD_A, 200))
        .await
        .unwrap();
    let before_a = figures(&old, CARD_A).await;
    let before_b = figures(&old, CARD_B).await;
    assert_eq!(before_a.0["tier"], "Silver", "{before_a:?}");
    drop(c);
    old.stop();
    let export_rows = till_export_rows(&old);
    let file = old.state_file();
    let file = file.to_str().unwrap();

    // The chain; the old till will be terminal T-OLD of store S1.
    let chain = Chain::start(1, TIERS);
    let moved = chain.till("T-OLD", "S1", 0);
    let other = chain.till("T-NEW", "S2", 0);
    let central = &chain.centrals[0];
    // The chain has a customer of its own already: the imported rows get
    // other ids than they had on the till.
    register(&other, "6035000077778888", "+79169999999").await;
    other
        .client()
        .await
        .call("sale.commit", sale("k1", "6035000077778888", 100))
        .await
        .unwrap();
    let chain_rows = central
        .admin(&["export", "--format", "json"])
        .lines()
        .count();
    let import = [
        "import",
        "--sqlite",
        file,
        "--store",
        "S1",
        "--terminal",
        "T-OLD",
    ];
    let dry = central.admin(&[&import[..], &["--dry-run"]].concat());
    assert!(dry.contains("accounts\t2\t2"), "{dry}");
    assert!(dry.contains("txns\t"), "{dry}");
    assert!(!dry.contains("conflict"), "{dry}");
    assert_eq!(counts(&chain)[0], 1, "a dry run writes nothing");
    central.admin(&import);
    chain.verify();

    // Every till of the chain shows what the old till showed.
    for t in [&moved, &other] {
        assert_eq!(figures(t, CARD_A).await, before_a);
        assert_eq!(figures(t, CARD_B).await, before_b);
    }
    // The whole export, row for row in number.
    let central_rows = central
        .admin(&["export", "--format", "json"])
        .lines()
        .count();
    assert_eq!(central_rows, chain_rows + export_rows);
    // The secrets came along (hashed): card.enter works at the new till.
    let entered = other
        .client()
        .await
        .call("card.enter", json!({"number": CARD_A, "secret": "4711"}))
        .await
        .unwrap();
    assert!(entered["card_token"].is_string(), "{entered}");

    // The old till retries its first sale after the move: a replay.
    let retried = moved
        .client()
        .await
        .call("sale.commit", sale("k1", CARD_A, 1000))
        .await
        .unwrap();
    assert_eq!(retried["accrued"], first["accrued"], "{retried}");
    assert_eq!(figures(&other, CARD_A).await, before_a);
    // Its stored result names the central ids, not the till's.
    let account_a = other
        .client()
        .await
        .call("card.resolve", json!({"number": CARD_A}))
        .await
        .unwrap()["account"]["account"]
        .clone();
    assert_ne!(account_a, first["account"]);
    assert_eq!(retried["account"], account_a, "{retried}");
    assert_eq!(retried["tier_change"]["account"], account_a, "{retried}");
    assert_ne!(retried["transaction"], first["transaction"]);

    // The rest of the sale the old till refunded in part is returned at
    // another store: the earlier refund still counts.
    let rest = other
        .client()
        .await
        .call(
            "sale.refund",
            json!({"idempotency_key": "r2", "receipt_id": "k2"}),
        )
        .await
        .unwrap();
    assert_eq!(rest["refunded"], "200", "{rest}");
    assert_eq!(figures(&other, CARD_B).await.0["balance"], "0");
    chain.verify();

    // Importing the same file again changes nothing.
    let once = counts(&chain);
    let again = central.admin(&import);
    assert!(again.contains("accounts\t2\t0"), "{again}");
    assert_eq!(counts(&chain), once);
    chain.verify();

    // A second shop whose till enrolled the same card number for another
    // customer: the dry run names the conflict, the import is refused
    // whole.
    let mut second = Till::embedded(TIERS);
    register(&second, CARD_A, "+79160000000").await;
    register(&second, "6035000055556666", "+79160000001").await;
    second
        .client()
        .await
        .call("sale.commit", sale("k1", "6035000055556666", 500))
        .await
        .unwrap();
    second.stop();
    let file2 = second.state_file();
    let import2 = [
        "import",
        "--sqlite",
        file2.to_str().unwrap(),
        "--store",
        "S2",
    ];
    let (ok, out, _) = central.admin_output(&[&import2[..], &["--dry-run"]].concat());
    assert!(!ok, "a dry run with conflicts fails: {out}");
    assert!(out.contains("conflict: card ****2222"), "{out}");
    assert!(
        !out.contains(CARD_A),
        "the full card number is never printed: {out}"
    );
    let (ok, out, err) = central.admin_output(&import2);
    assert!(!ok, "{out}");
    assert!(err.contains("nothing written"), "{err}");
    assert_eq!(counts(&chain), once, "a refused import writes nothing");
    chain.verify();
}

/// A till's file with one account, its card and one adjustment, written
/// as the till's schema has it; returns its path.
fn till_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("posbridge.sqlite3");
    drop(posbridge::store::Store::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "INSERT INTO accounts (id, created_at) VALUES (7, '2026-01-01T00:00:00Z');
         INSERT INTO cards (number, account_id) VALUES ('6035000099990000', 7);
         INSERT INTO txns (id, idempotency_key, kind, account_id, request, result, created_at)
             VALUES (3, 'q1', 'adjust', 7, '{}', '{\"account\":7,\"transaction\":3}',
                     '2026-01-01T00:00:00Z');
         INSERT INTO lots (id, account_id, txn_id, amount, remaining, created_at)
             VALUES (5, 7, 3, 10000, 10000, '2026-01-01T00:00:00Z');
         INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
             VALUES (3, 7, 5, 'adjust', 10000, '2026-01-01T00:00:00Z');
         -- More than one page of the import's reads.
         WITH RECURSIVE n(i) AS (SELECT 100 UNION ALL SELECT i + 1 FROM n WHERE i < 1599)
         INSERT INTO accounts (id, created_at) SELECT i, '2026-01-01T00:00:00Z' FROM n;
         INSERT INTO cards (number, account_id)
             SELECT '7035' || printf('%012d', id), id FROM accounts WHERE id >= 100;",
    )
    .unwrap();
    path
}

#[test]
fn an_import_checks_the_schema_version_the_store_and_a_file_changed_since() {
    use posbridge::ledger::db::Books;
    use posbridge_central::import::{ImportError, Source, Target, run};
    use posbridge_central::pg::{PgBooks, PgConfig};

    let dir = tempfile::tempdir().unwrap();
    let path = till_file(dir.path());

    // A file of another schema version is refused before anything is read.
    let newer = dir.path().join("newer.sqlite3");
    std::fs::copy(&path, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        Source::read(&newer),
        Err(ImportError::Version { found: 99, .. })
    ));

    let cluster = posbridge_pgtest::Cluster::shared().unwrap();
    let url = cluster.createdb("import_checks").unwrap();
    let books = Books::new(std::sync::Arc::new(
        PgBooks::connect(&PgConfig::new(url)).unwrap(),
    ));
    let Ok(()) = books
        .write_blocking(|db| {
            db.execute(
                "INSERT INTO stores (id, created_at) VALUES ('S1', '2026-01-01T00:00:00Z')",
                posbridge::args![],
            )?;
            Ok(Ok::<_, std::convert::Infallible>(()))
        })
        .unwrap();
    let source = Source::read(&path).unwrap();
    let nowhere = Target {
        store: "NOPE".into(),
        terminal: Some("T-9".into()),
    };
    let r = run(&books, &source, &nowhere, false).unwrap();
    assert!(!r.written);
    assert_eq!(r.conflicts.len(), 2, "{r}");
    assert!(r.conflicts[0].contains("no store \"NOPE\""), "{r}");
    assert!(r.conflicts[1].contains("no terminal \"T-9\""), "{r}");

    let s1 = Target {
        store: "S1".into(),
        terminal: None,
    };
    let r = run(&books, &source, &s1, false).unwrap();
    assert!(r.written && r.conflicts.is_empty(), "{r}");
    assert!(r.tables.contains(&("accounts", 1501, 1501)), "{r}");
    assert!(r.tables.contains(&("cards", 1501, 1501)), "{r}");
    let cards: i64 = books
        .read_blocking(|db| {
            db.query_row("SELECT COUNT(*) FROM cards", posbridge::args![], |r| {
                r.get(0)
            })
        })
        .unwrap();
    assert_eq!(cards, 1501);
    // The key carries the till's terminal; the stored result names the
    // central ids (the first of each table here).
    let (key, result, store): (String, String, String) = books
        .read_blocking(|db| {
            db.query_row(
                "SELECT idempotency_key, result, store_id FROM txns",
                posbridge::args![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .unwrap();
    assert_eq!(key, format!("{}:q1", source.terminal));
    // Account 7 came first (id order), so it is central account 1.
    assert_eq!(result, r#"{"account":1,"transaction":1}"#);
    assert_eq!(store, "S1");

    // Run again: nothing to do.
    let r = run(&books, &source, &s1, false).unwrap();
    assert!(r.already && !r.written && r.conflicts.is_empty(), "{r}");

    // The till went on after its import: refused, not half-imported.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO accounts (id, created_at) VALUES (5000, '2026-01-02T00:00:00Z')",
            [],
        )
        .unwrap();
    let r = run(&books, &Source::read(&path).unwrap(), &s1, false).unwrap();
    assert!(!r.written, "{r}");
    assert!(r.conflicts[0].contains("changed since"), "{r}");
}
