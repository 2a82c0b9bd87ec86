//! The chain's ledger under load, next to `pgbench` on the same PostgreSQL.
//!
//! One throwaway cluster (posbridge-pgtest, fsync on) holds four
//! databases: `chain` (a `posbridge-central serve` process in front of it,
//! a seeded card base), `pgbench` (TPC-B), and `growth_small` and `growth`
//! (a service each: a near-empty ledger and one with a bulk-loaded
//! history, timed call by call in turn). Simulated tills are
//! the till's own client ([`Central`]), one per terminal, each with the
//! credential `terminal add` issued to it; a row with real till daemons
//! (the JSON-RPC socket) shows what the till adds.
//!
//! `cargo bench -p posbridge-central --bench chain`; parameters (env):
//! see [`Params`] and docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use posbridge::ledger::Ledger;
use posbridge::ledger::accounts::Settings;
use posbridge::ledger::remote::{Central, Endpoint};
use posbridge::ledger::rules::{Programme, SaleLine};
use posbridge::redact::Secret;
use posbridge_pgtest::Cluster;
use rust_decimal::Decimal;

mod common;
#[path = "../tests/support/load.rs"]
mod load;

use common::{Service, cpu_model, env, pct, till_bin, till_command, till_config};

/// What a run measures; every field has an env var.
struct Params {
    /// `BENCH_SECS`: seconds measured per row (after a warm-up of a fifth).
    secs: u64,
    /// `BENCH_CLIENTS`: simulated till counts, comma separated.
    clients: Vec<usize>,
    /// `BENCH_CARDS`: cards (accounts) in the chain the sales go to.
    cards: i64,
    /// `BENCH_REDEEM_PCT`: share of sales that redeem a point.
    redeem_pct: u64,
    /// `BENCH_POOL`: the service's PostgreSQL pool size.
    pool: usize,
    /// `BENCH_PGBENCH_SCALE`: pgbench's scale factor (`-i -s`).
    pgbench_scale: u32,
    /// `BENCH_DAEMONS`: real till daemons in the socket row (0: no row).
    daemons: usize,
    /// `BENCH_TILL_BIN`: the till daemon to run (default: the release
    /// build beside this bench, `cargo build --release --bin posbridge`).
    till_bin: PathBuf,
    /// `BENCH_GROWTH_ACCOUNTS`: accounts bulk-loaded for the growth row
    /// (0: no growth row).
    growth_accounts: i64,
    /// `BENCH_GROWTH_SALES`: sales per loaded account (2 entries each).
    growth_sales: i64,
    /// `BENCH_GROWTH_CALLS`: commits and resolves timed on each side.
    growth_calls: usize,
}

impl Params {
    fn from_env() -> Params {
        Params {
            secs: env("BENCH_SECS", 15),
            clients: std::env::var("BENCH_CLIENTS")
                .unwrap_or_else(|_| "1,8,64".into())
                .split(',')
                .map(|c| c.trim().parse().expect("BENCH_CLIENTS: numbers"))
                .collect(),
            cards: env("BENCH_CARDS", 10_000),
            redeem_pct: env("BENCH_REDEEM_PCT", 20),
            pool: env("BENCH_POOL", 16),
            pgbench_scale: env("BENCH_PGBENCH_SCALE", 16),
            daemons: env("BENCH_DAEMONS", 8),
            till_bin: till_bin(),
            growth_accounts: env("BENCH_GROWTH_ACCOUNTS", 200_000),
            growth_sales: env("BENCH_GROWTH_SALES", 5),
            growth_calls: env("BENCH_GROWTH_CALLS", 400),
        }
    }
}

/// xorshift64*: the sale mix needs spread, not cryptographic quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What this bench adds to the service: tills.
impl Service {
    /// The service's base URL.
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Issues terminal `id` and returns the key.
    fn terminal(&self, id: &str) -> String {
        self.admin(&["terminal", "add", id, "--store", "S1"])
    }

    /// A simulated till: the till's own client with its own credential.
    fn till(&self, id: &str) -> Central {
        let key = self.terminal(id);
        Central::new(
            Endpoint {
                url: self.url(),
                terminal: id.to_owned(),
                key: Secret::new(key),
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(30),
            },
            Programme::default(),
            Settings::default(),
        )
        .expect("client")
    }
}

/// A real till daemon in central mode; killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(bin: &Path, service: &Service, id: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("terminal.key");
        std::fs::write(&key_file, service.terminal(id)).unwrap();
        let (socket, config) = till_config(dir.path(), &service.url(), id, &key_file, "");
        let child = till_command(bin, &config)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn posbridge");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "till daemon did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sale of the mix: a random card of `1..=cards`, 2–20 money (half of
/// it may be paid with points, so a point always fits the cap), a point
/// redeemed in `redeem_pct` % of them.
struct Sale {
    number: String,
    lines: Vec<SaleLine>,
    redeem: Decimal,
}

fn sale(rng: &mut Rng, first: i64, cards: i64, redeem_pct: u64) -> Sale {
    let account = first + (rng.next() % cards as u64) as i64;
    let price = 200 + rng.next() % 1800;
    Sale {
        number: load::card(account),
        lines: vec![SaleLine {
            sku: "A1".into(),
            name: "Item".into(),
            category: "general".into(),
            qty: Decimal::ONE,
            price: Decimal::new(price as i64, 2),
            discount: Decimal::ZERO,
        }],
        redeem: if rng.next() % 100 < redeem_pct {
            Decimal::ONE
        } else {
            Decimal::ZERO
        },
    }
}

/// What one row measured.
#[derive(Default)]
struct Row {
    ok: usize,
    errors: Vec<String>,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Row {
    fn tps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `clients` loops of `call` for a warm-up then `secs`; the calls
/// started in the measured window count.
async fn drive<F, Fut>(clients: usize, secs: u64, call: F) -> Row
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let warm = Duration::from_secs(secs.div_ceil(5).max(1));
    let start = Instant::now() + warm;
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut row = Row::default();
            let mut i = 0_u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let r = call(c, i).await;
                i += 1;
                if t < start {
                    continue;
                }
                match r {
                    Ok(()) => {
                        row.ok += 1;
                        row.latencies.push(t.elapsed());
                    }
                    Err(e) => row.errors.push(e),
                }
            }
            row
        }));
    }
    let mut all = Row::default();
    for t in tasks {
        let r = t.await.unwrap();
        all.ok += r.ok;
        all.errors.extend(r.errors);
        all.latencies.extend(r.latencies);
    }
    all.elapsed = end - start;
    all
}

/// Commits through `tills` simulated tills (one client each).
async fn commits(tills: Arc<Vec<Central>>, p: &Params, tag: &str, first: i64, cards: i64) -> Row {
    let (redeem_pct, tag) = (p.redeem_pct, tag.to_owned());
    drive(tills.len(), p.secs, move |c, i| {
        let tills = tills.clone();
        let key = format!("{tag}-{i}");
        let mut rng = Rng(((c as u64 + 1) * 0x9e37_79b9_7f4a_7c15) ^ (i + 1));
        async move {
            let s = sale(&mut rng, first, cards, redeem_pct);
            tills[c]
                .commit(key.clone(), s.number, key, s.lines, s.redeem, None)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    })
    .await
}

/// pg_stat_database's commit and rollback counters of `db`.
fn xacts(pg: &mut postgres::Client, db: &str) -> (i64, i64) {
    let r = pg
        .query_one(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

fn summarize(errors: &[String]) -> String {
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for e in errors {
        *kinds.entry(e.split(':').next().unwrap_or("")).or_default() += 1;
    }
    format!("{kinds:?}")
}

/// `pgbench -c n -j n -T secs` on `db`: its TPS (without connection time).
fn pgbench(cluster: &Cluster, db: &str, n: usize, secs: u64) -> f64 {
    let out = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &cluster.port().to_string()])
        .args(["-U", posbridge_pgtest::SUPERUSER])
        .args(["-c", &n.to_string(), "-j", &n.to_string()])
        .args(["-T", &secs.to_string(), "-n", db])
        .output()
        .expect("run pgbench (Debian: postgresql-contrib / postgresql-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find(|l| l.starts_with("tps = ") && l.contains("without initial connection"))
        .and_then(|l| l.trim_start_matches("tps = ").split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no TPS in pgbench's output:\n{text}"))
}

/// The statements the service's pool ran for one commit through `till`,
/// from the server's log with `log_statement = all` for just that call.
fn statements_per_commit(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    pg: &mut postgres::Client,
    till: &Central,
    number: &str,
) -> usize {
    let log = cluster.data_dir().parent().unwrap().join("server.log");
    // The steady state of a till: its terminal's row read by an earlier
    // call and still trusted (`server.terminal_status_ttl_ms`).
    rt.block_on(till.resolve(number.into()))
        .expect("warm-up resolve");
    let me: i32 = pg.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    // ALTER SYSTEM refuses to run in the implicit transaction of a batch.
    pg.batch_execute("ALTER SYSTEM SET log_statement = 'all'")
        .unwrap();
    pg.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let lines = vec![SaleLine {
        sku: "A1".into(),
        name: "Item".into(),
        category: "general".into(),
        qty: Decimal::ONE,
        price: Decimal::from(10),
        discount: Decimal::ZERO,
    }];
    rt.block_on(till.commit(
        "count-1".into(),
        number.into(),
        "count-1".into(),
        lines,
        Decimal::ONE,
        None,
    ))
    .expect("counted commit");
    std::thread::sleep(Duration::from_millis(300));
    pg.batch_execute("ALTER SYSTEM RESET log_statement")
        .unwrap();
    pg.batch_execute("SELECT pg_reload_conf()").unwrap();
    let text = std::fs::read(&log).unwrap();
    let text = String::from_utf8_lossy(&text[from as usize..]);
    let mine = format!("[{me}]");
    let statements: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(&mine))
        .filter(|l| l.contains("LOG:  execute") || l.contains("LOG:  statement:"))
        .collect();
    // `BENCH_SHOW_STATEMENTS=1`: what the round trips are.
    if std::env::var_os("BENCH_SHOW_STATEMENTS").is_some() {
        for s in &statements {
            let s = s.split_once("LOG:  ").map_or(*s, |(_, s)| s);
            println!("  {}", s.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    statements.len()
}

fn main() {
    // `cargo test --all-targets` runs benches with --bench absent: nothing to do.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let p = Params::from_env();
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cluster = Cluster::start().expect("start PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    println!(
        "machine: {} CPUs; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!(
        "params: secs={} clients={:?} cards={} redeem={}% pool={} pgbench_scale={} daemons={} \
         growth={}x{} sales",
        p.secs,
        p.clients,
        p.cards,
        p.redeem_pct,
        p.pool,
        p.pgbench_scale,
        p.daemons,
        p.growth_accounts,
        p.growth_sales
    );

    // The chain: a card base with points to redeem.
    let chain_url = cluster.createdb("chain").unwrap();
    let service = Service::start(dir.path(), "chain", &chain_url, p.pool);
    let mut pg = cluster.connect("chain").unwrap();
    load::load(&mut pg, 1, p.cards, 1, 50_000, |_| {}).unwrap();
    pg.batch_execute("ANALYZE").unwrap();
    let max = p.clients.iter().copied().max().unwrap_or(1);
    let tills: Vec<Central> = (0..max).map(|i| service.till(&format!("T{i}"))).collect();
    println!("setup: {:.0?}", t0.elapsed());

    let per = statements_per_commit(&rt, &cluster, &mut pg, &tills[0], &load::card(1));
    println!("statements per sale.commit with a redemption (incl. BEGIN/COMMIT): {per}");

    // pgbench's tables in their own database, same cluster.
    cluster.createdb("pgbench").unwrap();
    let t = Instant::now();
    let init = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &cluster.port().to_string()])
        .args(["-U", posbridge_pgtest::SUPERUSER, "-i", "-q"])
        .args(["-s", &p.pgbench_scale.to_string(), "pgbench"])
        .output()
        .expect("run pgbench -i");
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    println!("pgbench -i -s {}: {:.0?}", p.pgbench_scale, t.elapsed());

    println!(
        "\n| tills | sale.commit/s | p50 ms | p99 ms | errors | rollbacks/commit | pgbench TPS | ours/pgbench |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &p.clients {
        let tills = Arc::new(tills[..n].to_vec());
        // Sampled when the warm-up ends, as `drive` starts counting.
        let mut sampler = cluster.connect("chain").unwrap();
        let warm = Duration::from_secs(p.secs.div_ceil(5).max(1));
        let before = std::thread::spawn(move || {
            std::thread::sleep(warm);
            xacts(&mut sampler, "chain")
        });
        let mut row = rt.block_on(commits(tills, &p, &format!("c{n}"), 1, p.cards));
        let after = xacts(&mut pg, "chain");
        let before = before.join().unwrap();
        let rollbacks = (after.1 - before.1) as f64 / row.ok.max(1) as f64;
        let theirs = pgbench(&cluster, "pgbench", n, p.secs);
        println!(
            "| {n} | {:.0} | {:.2} | {:.2} | {} {} | {:.3} | {:.0} | {:.2} |",
            row.tps(),
            pct(&mut row.latencies, 0.5),
            pct(&mut row.latencies, 0.99),
            row.errors.len(),
            if row.errors.is_empty() {
                String::new()
            } else {
                summarize(&row.errors)
            },
            rollbacks,
            theirs,
            row.tps() / theirs
        );
    }

    if p.daemons > 0 {
        daemon_row(&rt, &p, &service);
    }
    drop(tills);
    drop(service);

    if p.growth_accounts > 0 {
        growth(&rt, &p, &cluster, dir.path());
    }
    println!("\ntotal: {:.0?}", t0.elapsed());
}

/// `sale.commit` through real till daemons' JSON-RPC sockets.
fn daemon_row(rt: &tokio::runtime::Runtime, p: &Params, service: &Service) {
    if !p.till_bin.exists() {
        println!(
            "\ntill daemons: {} not found: build it first with `cargo build --release --bin posbridge` \
             (or set BENCH_TILL_BIN, or BENCH_DAEMONS=0)",
            p.till_bin.display()
        );
        return;
    }
    let daemons: Vec<Daemon> = (0..p.daemons)
        .map(|i| Daemon::start(&p.till_bin, service, &format!("D{i}")))
        .collect();
    let sockets: Arc<Vec<PathBuf>> = Arc::new(daemons.iter().map(|d| d.socket.clone()).collect());
    let clients = rt.block_on(async {
        let mut v = Vec::new();
        for s in sockets.iter() {
            v.push(tokio::sync::Mutex::new(
                posbridge::client::Client::unix(s).await.expect("connect"),
            ));
        }
        Arc::new(v)
    });
    let cards = p.cards;
    let mut row = rt.block_on(drive(p.daemons, p.secs, move |c, i| {
        let clients = clients.clone();
        let mut rng = Rng(((c as u64 + 7) * 0x9e37_79b9_7f4a_7c15) ^ (i + 1));
        async move {
            // Accrual only: a redemption at the till needs the card's
            // secret or a code first, which the loaded cards do not have.
            let s = sale(&mut rng, 1, cards, 0);
            let key = format!("d{c}-{i}");
            clients[c]
                .lock()
                .await
                .call(
                    "sale.commit",
                    serde_json::json!({
                        "idempotency_key": key, "number": s.number, "receipt_id": key,
                        "lines": s.lines,
                    }),
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }));
    println!(
        "\ntill daemons (JSON-RPC socket → till → central → PostgreSQL), accrual only:\n\
         | daemons | sale.commit/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n\
         | {} | {:.0} | {:.2} | {:.2} | {} {} |",
        p.daemons,
        row.tps(),
        pct(&mut row.latencies, 0.5),
        pct(&mut row.latencies, 0.99),
        row.errors.len(),
        if row.errors.is_empty() {
            String::new()
        } else {
            summarize(&row.errors)
        },
    );
}

/// One client's commit and resolve latencies on two ledgers, call by call
/// in turn (A, B, A, B …), so that whatever else the machine does in the
/// meantime (a checkpoint, another process) falls on both alike: random
/// cards of `1..=cards_a` on `a` and of `1..=cards_b` on `b`. Returns
/// (commits, resolves) for each.
type Timings = (Vec<Duration>, Vec<Duration>);
fn timed_calls_side_by_side(
    rt: &tokio::runtime::Runtime,
    (a, cards_a): (&Central, i64),
    (b, cards_b): (&Central, i64),
    p: &Params,
) -> (Timings, Timings) {
    rt.block_on(async {
        let mut rng = Rng(0x1234_5678);
        let mut out: [Timings; 2] = Default::default();
        for i in 0..p.growth_calls + p.growth_calls / 10 {
            for (side, (till, cards)) in [(a, cards_a), (b, cards_b)].into_iter().enumerate() {
                let s = sale(&mut rng, 1, cards, p.redeem_pct);
                let key = format!("growth-{side}-{i}");
                let t = Instant::now();
                till.resolve(s.number.clone())
                    .await
                    .expect("resolve")
                    .expect("a loaded card");
                let r = t.elapsed();
                let t = Instant::now();
                till.commit(key.clone(), s.number, key, s.lines, s.redeem, None)
                    .await
                    .expect("commit");
                // The first tenth warms the caches and the pool.
                if i >= p.growth_calls / 10 {
                    out[side].1.push(r);
                    out[side].0.push(t.elapsed());
                }
            }
        }
        let [x, y] = out;
        (x, y)
    })
}

/// The same single-till commits and resolves on a near-empty ledger and on
/// one with a bulk-loaded history, two databases of one cluster, each
/// behind its own service, timed call by call in turn after both are
/// checkpointed and vacuumed (the steady state a ledger that grew by
/// sales is in: autovacuum has seen its tables); the plans of the hot
/// statements on the loaded one.
fn growth(rt: &tokio::runtime::Runtime, p: &Params, cluster: &Cluster, dir: &Path) {
    let small = p.cards.min(p.growth_accounts);
    let url_small = cluster.createdb("growth_small").unwrap();
    let url = cluster.createdb("growth").unwrap();
    let service_small = Service::start(dir, "growth_small", &url_small, p.pool);
    let service = Service::start(dir, "growth", &url, p.pool);
    let till_small = service_small.till("G0");
    let till = service.till("G1");
    let mut pg_small = cluster.connect("growth_small").unwrap();
    let mut pg = cluster.connect("growth").unwrap();
    load::load(&mut pg_small, 1, small, p.growth_sales, 50_000, |_| {}).unwrap();
    let t = Instant::now();
    load::load(
        &mut pg,
        1,
        p.growth_accounts,
        p.growth_sales,
        100_000,
        |n| {
            eprintln!(
                "  loaded {n}/{} accounts ({:.0?})",
                p.growth_accounts,
                t.elapsed()
            );
        },
    )
    .unwrap();
    for c in [&mut pg_small, &mut pg] {
        c.batch_execute("VACUUM ANALYZE").unwrap();
        c.batch_execute("CHECKPOINT").unwrap();
    }
    let counts = pg
        .query_one(
            "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM entries),
                    (SELECT COUNT(*) FROM lots), (SELECT COUNT(*) FROM txns),
                    pg_size_pretty(pg_database_size('growth'))",
            &[],
        )
        .unwrap();
    let (a, e, l, x): (i64, i64, i64, i64) =
        (counts.get(0), counts.get(1), counts.get(2), counts.get(3));
    let size: String = counts.get(4);
    println!(
        "\ngrowth: loaded {a} accounts, {e} entries, {l} lots, {x} txns ({size}) in {:.0?}",
        t.elapsed()
    );
    let ((mut c0, mut r0), (mut c1, mut r1)) =
        timed_calls_side_by_side(rt, (&till_small, small), (&till, p.growth_accounts), p);
    drop(service_small);
    println!(
        "| call | ledger | p50 ms | p99 ms |\n|---|---|---|---|\n\
         | sale.commit | {small} accounts | {:.2} | {:.2} |\n\
         | sale.commit | {a} accounts | {:.2} | {:.2} |\n\
         | card resolve | {small} accounts | {:.2} | {:.2} |\n\
         | card resolve | {a} accounts | {:.2} | {:.2} |",
        pct(&mut c0, 0.5),
        pct(&mut c0, 0.99),
        pct(&mut c1, 0.5),
        pct(&mut c1, 0.99),
        pct(&mut r0, 0.5),
        pct(&mut r0, 0.99),
        pct(&mut r1, 0.5),
        pct(&mut r1, 0.99),
    );
    println!(
        "ratio loaded/empty (p50): commit {:.2}, resolve {:.2}",
        pct(&mut c1, 0.5) / pct(&mut c0, 0.5),
        pct(&mut r1, 0.5) / pct(&mut r0, 0.5)
    );
    let account = p.growth_accounts / 2 + 17;
    println!("\nEXPLAIN (ANALYZE, BUFFERS) on the loaded ledger, account {account}:");
    let mut scans = 0;
    for (name, plan) in load::plans(&mut pg, account).unwrap() {
        scans += usize::from(plan.contains("Seq Scan"));
        println!("-- {name}\n{plan}\n");
    }
    println!("hot statements with a Seq Scan: {scans}");
}
