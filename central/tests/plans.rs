//! The bulk load the chain bench uses keeps the ledger's invariants, and
//! on a loaded ledger (50,000 accounts, 500,000 entries, statistics
//! gathered) every statement of a sale and a card resolution is planned
//! as an index lookup: no sequential scan of a table that grows with the
//! chain.

#[path = "support/load.rs"]
mod load;

use std::sync::Arc;

use posbridge::ledger::db::Books;
use posbridge::ledger::embedded;
use posbridge_central::pg::{PgBooks, PgConfig};
use posbridge_pgtest::Cluster;

#[test]
fn the_bulk_load_keeps_the_invariants() {
    let cluster = Cluster::shared().unwrap();
    let url = cluster.createdb("plans_verify").unwrap();
    let books = Books::new(Arc::new(PgBooks::connect(&PgConfig::new(url)).unwrap()));
    let mut c = cluster.connect("plans_verify").unwrap();
    // Two chunks, so the second continues the first's ids.
    load::load(&mut c, 1, 300, 3, 200, |_| {}).unwrap();
    let problems = books.read_blocking(embedded::verify).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let (accounts, entries, balance): (i64, i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM entries),
                        (SELECT SUM(amount)::BIGINT FROM entries WHERE account_id = 7)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((accounts, entries), (300, 300 * 3 * 2));
    assert_eq!(balance, 3 * (load::LOT_AMOUNT - load::LOT_SPENT));
    // The service's own inserts follow the loaded ids.
    let next: i64 = c
        .query_one(
            "INSERT INTO accounts (created_at) VALUES ('x') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(next, 301);
}

#[test]
fn hot_statements_use_indexes_on_a_loaded_ledger() {
    let cluster = Cluster::shared().unwrap();
    let url = cluster.createdb("plans_scan").unwrap();
    // The service's migrations make the schema.
    drop(PgBooks::connect(&PgConfig::new(url)).unwrap());
    let mut c = cluster.connect("plans_scan").unwrap();
    load::load(&mut c, 1, 50_000, 5, 25_000, |_| {}).unwrap();
    c.batch_execute("ANALYZE").unwrap();
    let plans = load::plans(&mut c, 31_337).unwrap();
    assert_eq!(plans.len(), load::hot_statements(1, 1, 1).len());
    for (name, plan) in &plans {
        println!("-- {name}\n{plan}\n");
        assert!(!plan.contains("Seq Scan"), "{name} scans:\n{plan}");
        assert!(plan.contains("Index"), "{name} uses no index:\n{plan}");
    }
}

#[test]
fn reports_and_the_expiry_sweep_use_indexes_on_a_loaded_ledger() {
    use posbridge::ledger::db::{Dialect, dollar_placeholders};
    use posbridge::ledger::report;
    let cluster = Cluster::shared().unwrap();
    let url = cluster.createdb("plans_report").unwrap();
    drop(PgBooks::connect(&PgConfig::new(url)).unwrap());
    let mut c = cluster.connect("plans_report").unwrap();
    load::load(&mut c, 1, 20_000, 3, 10_000, |_| {}).unwrap();
    c.batch_execute("ANALYZE").unwrap();
    // A week of December 2026 (Moscow time); the load's entries are from
    // 2025 and its lots burn in 2099: an index must skip them.
    let (from, to) = ("2026-11-30T21:00:00Z", "2026-12-07T21:00:00Z");
    let cap = 40_001_i64;
    let top = report::TOP;
    let statements: Vec<(&str, String, Vec<&(dyn postgres::types::ToSql + Sync)>)> = vec![
        (
            "movements by store and terminal",
            report::movements_sql(Dialect::Postgres, 180, true, true),
            vec![&from, &to, &cap],
        ),
        (
            "movements",
            report::movements_sql(Dialect::Postgres, 180, false, false),
            vec![&from, &to, &cap],
        ),
        (
            "new customers",
            report::new_customers_sql(Dialect::Postgres, 180),
            vec![&from, &to],
        ),
        (
            "top customers",
            report::TOP_SQL.into(),
            vec![&from, &to, &top],
        ),
        (
            "expiry sweep (accounts due)",
            embedded::DUE_ACCOUNTS_SQL.into(),
            vec![&from, &cap],
        ),
    ];
    for (name, sql, params) in statements {
        let sql = dollar_placeholders(&sql);
        let rows = c
            .query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), &params)
            .unwrap();
        let plan = rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!plan.contains("Seq Scan"), "{name} scans:\n{plan}");
        assert!(plan.contains("Index"), "{name} uses no index:\n{plan}");
    }
}
