//! Durable `sale.commit` through the daemon's socket with 1 and 8
//! terminals, next to raw SQLite: one insert and commit per transaction
//! with `synchronous=FULL`, the fsync floor every commit pays.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use posbridge::client::Client;
use serde_json::json;

struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Daemon {
    // The state dir lives where the benchmark runs, not on a tmpfs, so the
    // fsyncs are real.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let socket = dir.path().join("posbridge.sock");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\nlog_level = \"warn\"\n",
            socket.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon {
        child,
        socket,
        _dir: dir,
    }
}

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

fn pct(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    (p(0.5), p(0.99))
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
    let d = start();
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
        let (p50, p99) = pct(lat);
        table.push(format!(
            "daemon    terminals={terminals}  {:>7.0} commits/s  p50 {p50:>8.0} us  p99 {p99:>8.0} us",
            n as f64 / wall.as_secs_f64()
        ));
    }
    let (rate, lat) = raw_sqlite(300);
    let (p50, p99) = pct(lat);
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
