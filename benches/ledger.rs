//! Durable `sale.commit` through the daemon's socket with 1 and 8
//! terminals, next to raw SQLite: one insert and commit per transaction
//! with `synchronous=FULL`, the fsync floor every commit pays.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use posbridge::client::Client;
use serde_json::json;

static KEY: AtomicU64 = AtomicU64::new(0);

async fn commit(c: &mut Client, terminal: usize) -> Duration {
    let k = KEY.fetch_add(1, Ordering::Relaxed);
    let t = Instant::now();
    c.call(
        "sale.commit",
        json!({
            "idempotency_key": format!("bench-{k}"),
            "number": format!("60350000{terminal:08}"),
            "receipt_id": format!("R{k}"),
            "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}],
        }),
    )
    .await
    .unwrap();
    t.elapsed()
}

fn raw_sqlite(n: usize) -> (f64, Vec<Duration>) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let c = rusqlite::Connection::open(dir.path().join("raw.sqlite3")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v INTEGER)")
        .unwrap();
    let start = Instant::now();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        c.execute(
            "INSERT INTO t (k, v) VALUES (?1, ?2)",
            rusqlite::params![format!("k{i}"), i as i64],
        )
        .unwrap();
        c.execute_batch("COMMIT").unwrap();
        lat.push(t.elapsed());
    }
    (n as f64 / start.elapsed().as_secs_f64(), lat)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = common::start("");
    let mut group = c.benchmark_group("sale_commit");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    let mut one = rt.block_on(Client::unix(&d.socket)).unwrap();
    group.bench_function("daemon_1_terminal", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += commit(&mut one, 0).await;
                }
                total
            })
        })
    });
    group.finish();

    let mut table = Vec::new();
    for terminals in [1usize, 8] {
        let per = 300 / terminals;
        let (wall, lat) = rt.block_on(async {
            let mut clients = Vec::new();
            for _ in 0..terminals {
                clients.push(Client::unix(&d.socket).await.unwrap());
            }
            let start = Instant::now();
            let tasks = clients
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| async move {
                    let mut v = Vec::with_capacity(per);
                    for _ in 0..per {
                        v.push(commit(&mut c, i).await);
                    }
                    v
                });
            let lat: Vec<Duration> = futures::future::join_all(tasks)
                .await
                .into_iter()
                .flatten()
                .collect();
            (start.elapsed(), lat)
        });
        let n = lat.len();
        let (p50, p99) = common::percentiles(lat);
        table.push(format!(
            "daemon    terminals={terminals}  {:>7.0} commits/s  p50 {p50:>8.0} us  p99 {p99:>8.0} us",
            n as f64 / wall.as_secs_f64()
        ));
    }
    let (rate, lat) = raw_sqlite(300);
    let (p50, p99) = common::percentiles(lat);
    table.push(format!(
        "raw SQLite insert+commit  {rate:>7.0} tx/s       p50 {p50:>8.0} us  p99 {p99:>8.0} us"
    ));
    println!("\ndurable sale.commit (300 per case, synchronous=FULL):");
    for l in table {
        println!("  {l}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
