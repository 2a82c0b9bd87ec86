//! Offline tills measured (issue 18, item 6): what the outbox costs a sale
//! while the central ledger is out of reach, next to an online sale, and
//! how fast a full outbox drains once the link is back.
//!
//! All real: a throwaway PostgreSQL (posbridge-pgtest, fsync on), a
//! `posbridge-central serve` process in front of it with a seeded card
//! base, the loopback fault proxy of the tests (`tests/support/netfault.rs`)
//! between them and one real till daemon (`posbridge run`, central mode,
//! `[ledger.offline]` with a short `retry_max_ms` and `heartbeat_secs`),
//! driven over its JSON-RPC Unix socket with `posbridge::client::Client`.
//!
//! 1. Online: `BENCH_SALES` sequential `sale.commit`s (no redemption), the
//!    proxy forwarding.
//! 2. Offline: the proxy refuses every connection. The first sale finds the
//!    link down (the client's retries, then the outbox); the next
//!    `BENCH_SALES`, timed one by one, decide locally at once: the steady
//!    state. Concurrent clients then fill the outbox to `BENCH_QUEUE`, the
//!    last `BENCH_TAIL` sales timed one by one again (a deep queue).
//! 3. Replay: the proxy forwards again; `ledger.sync.status` is polled
//!    every 20 ms until nothing is queued and the link is online.
//! 4. Checks: `posbridge-central verify`, `posbridge ledger verify`, every
//!    receipt booked once, every card's balance = its start + what the
//!    sales earned.
//!
//! `cargo build --release --bin posbridge && cargo bench -p posbridge-central
//! --bench offline`; parameters (env): see [`Params`] and
//! docs/benchmarks.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use posbridge::client::Client;
use posbridge_pgtest::Cluster;
use rust_decimal::Decimal;
use serde_json::{Value, json};

mod common;
#[path = "../tests/support/load.rs"]
mod load;
#[path = "../tests/support/netfault.rs"]
mod netfault;

use common::{Service, cpu_model, env, pct, till_bin, till_command, till_config};
use netfault::{Mode, Proxy};

/// What a run measures; every field has an env var.
struct Params {
    /// `BENCH_SALES`: sequential sales timed online, and again offline.
    sales: usize,
    /// `BENCH_QUEUE`: operations in the outbox when the link comes back.
    queue: usize,
    /// `BENCH_FILL_CLIENTS`: concurrent clients filling the outbox.
    fill_clients: usize,
    /// `BENCH_TAIL`: the last sales of the fill, timed one by one.
    tail: usize,
    /// `BENCH_CARDS`: cards (seeded accounts) the sales go to, in turn.
    cards: i64,
    /// `BENCH_RETRY_MAX_MS`: the till's `[ledger.offline] retry_max_ms`.
    retry_max_ms: u64,
    /// `BENCH_HEARTBEAT_SECS`: the till's `[ledger.offline] heartbeat_secs`.
    heartbeat_secs: u64,
    /// `BENCH_TILL_BIN`: the till daemon to run (default: the release
    /// build, `cargo build --release --bin posbridge`).
    till_bin: PathBuf,
}

impl Params {
    fn from_env() -> Params {
        Params {
            sales: env("BENCH_SALES", 2000),
            queue: env("BENCH_QUEUE", 10_000),
            fill_clients: env("BENCH_FILL_CLIENTS", 4),
            tail: env("BENCH_TAIL", 200),
            cards: env("BENCH_CARDS", 100),
            retry_max_ms: env("BENCH_RETRY_MAX_MS", 200),
            heartbeat_secs: env("BENCH_HEARTBEAT_SECS", 5),
            till_bin: till_bin(),
        }
    }
}

/// A real till daemon in central mode behind the proxy; killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(p: &Params, service: &Service, url: &str, offline: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("terminal.key");
        std::fs::write(
            &key_file,
            service.admin(&["terminal", "add", "T1", "--store", "S1"]),
        )
        .unwrap();
        let (socket, config) = till_config(dir.path(), url, "T1", &key_file, offline);
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let mut child = till_command(&p.till_bin, &config)
            .stderr(log)
            .spawn()
            .expect("spawn posbridge");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(s) = child.try_wait().unwrap() {
                panic!(
                    "till daemon exited ({s}):\n{}",
                    std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "till daemon did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon {
            child,
            socket,
            config,
            dir,
        }
    }

    async fn client(&self) -> Client {
        Client::unix(&self.socket).await.expect("connect")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// `posbridge ledger verify` on the till's own file, while it runs.
    fn verify(&self, bin: &Path) -> String {
        let out = Command::new(bin)
            .arg("--config")
            .arg(&self.config)
            .args(["ledger", "verify"])
            .output()
            .expect("run posbridge ledger verify");
        assert!(
            out.status.success(),
            "till verify failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The card of sale `i`: the seeded cards in turn.
fn card_of(i: usize, cards: i64) -> String {
    load::card(1 + (i as i64 % cards))
}

/// One accrual-only sale of 100 money (5 points at the default 5 %).
fn sale(key: &str, card: &str) -> Value {
    json!({
        "idempotency_key": key, "number": card, "receipt_id": key,
        "lines": [{"sku": "A1", "name": "Item", "category": "general", "qty": "1", "price": "100"}],
    })
}

fn decimal(v: &Value) -> Decimal {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
}

/// What the sales earned, by card, from their answers (the pending ones
/// say what the central ledger is expected to book).
#[derive(Default)]
struct Earned(BTreeMap<String, Decimal>);

impl Earned {
    fn add(&mut self, card: &str, r: &Value) {
        *self.0.entry(card.to_owned()).or_default() += decimal(&r["accrued"]);
    }
}

/// Latencies and how many answers were pending.
#[derive(Default)]
struct Timed {
    latencies: Vec<Duration>,
    pending: usize,
    elapsed: Duration,
}

impl Timed {
    fn pct(&mut self, p: f64) -> f64 {
        pct(&mut self.latencies, p)
    }
    fn max(&self) -> f64 {
        self.latencies
            .iter()
            .max()
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }
    fn mean(&self) -> f64 {
        let sum: Duration = self.latencies.iter().sum();
        sum.as_secs_f64() * 1000.0 / self.latencies.len().max(1) as f64
    }
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// `count` sequential sales `tag-from..`, each timed.
async fn sequential(
    c: &mut Client,
    tag: &str,
    from: usize,
    count: usize,
    cards: i64,
    earned: &mut Earned,
) -> Timed {
    let mut t = Timed::default();
    let start = Instant::now();
    for i in from..from + count {
        let key = format!("{tag}-{i}");
        let card = card_of(i, cards);
        let s = Instant::now();
        let r = c
            .call("sale.commit", sale(&key, &card))
            .await
            .unwrap_or_else(|e| panic!("sale.commit {key}: {e:?}"));
        t.latencies.push(s.elapsed());
        t.pending += usize::from(r["pending"].is_object());
        earned.add(&card, &r);
    }
    t.elapsed = start.elapsed();
    t
}

async fn status(c: &mut Client) -> Value {
    c.call("ledger.sync.status", json!({}))
        .await
        .expect("ledger.sync.status")
}

/// The till's own `Outbox::depth` (after every queued and every replayed
/// operation) and `Outbox::pending_redeem` (before every offline sale),
/// best of 20, on the till's file as it is now, beside the running daemon.
async fn outbox_queries(db: &Path) -> (f64, f64) {
    let store = posbridge::store::Store::open(db).expect("open the till's file");
    let outbox = posbridge::ledger::offline::outbox::Outbox::new(store, u64::MAX);
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let (mut depth, mut redeem) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..20 {
        let t = Instant::now();
        outbox.depth().await.expect("depth");
        depth = depth.min(ms(t));
        let t = Instant::now();
        outbox
            .pending_redeem(load::card(1))
            .await
            .expect("pending_redeem");
        redeem = redeem.min(ms(t));
    }
    (depth, redeem)
}

fn main() {
    // `cargo test --all-targets` runs benches with --bench absent: nothing to do.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let p = Params::from_env();
    if !p.till_bin.exists() {
        eprintln!(
            "{} not found: build it first with `cargo build --release --bin posbridge` \
             (or set BENCH_TILL_BIN)",
            p.till_bin.display()
        );
        std::process::exit(2);
    }
    let fill = p
        .queue
        .checked_sub(1 + p.sales + p.tail)
        .unwrap_or_else(|| panic!("BENCH_QUEUE must be at least 1 + BENCH_SALES + BENCH_TAIL"));
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "machine: {} CPUs; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    let offline = format!(
        "connect_timeout_ms = 300\nrequest_timeout_ms = 1000\n\n[ledger.offline]\n\
         heartbeat_secs = {}\nretry_max_ms = {}\n",
        p.heartbeat_secs, p.retry_max_ms
    );
    println!(
        "params: sales={} queue={} fill_clients={} tail={} cards={}; till: \
         [ledger.central] connect_timeout_ms = 300, request_timeout_ms = 1000; \
         [ledger.offline] retry_max_ms = {}, heartbeat_secs = {} (short, so the link is \
         noticed quickly); till binary {}",
        p.sales,
        p.queue,
        p.fill_clients,
        p.tail,
        p.cards,
        p.retry_max_ms,
        p.heartbeat_secs,
        p.till_bin.display()
    );

    let cluster = Cluster::start().expect("start PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let db_url = cluster.createdb("chain").unwrap();
    let service = Service::start(dir.path(), "central", &db_url, 16);
    let mut pg = cluster.connect("chain").unwrap();
    load::load(&mut pg, 1, p.cards, 1, 50_000, |_| {}).unwrap();
    pg.batch_execute("ANALYZE").unwrap();
    let proxy = Proxy::start(service.addr);
    let till = Daemon::start(&p, &service, &proxy.url(), &offline);
    println!("setup: {:.1?}", t0.elapsed());

    rt.block_on(run(&p, &till, &proxy, &service, &mut pg, fill));
    println!("\ntotal: {:.0?}", t0.elapsed());
}

async fn run(
    p: &Params,
    till: &Daemon,
    proxy: &Proxy,
    service: &Service,
    pg: &mut postgres::Client,
    fill: usize,
) {
    let mut c = till.client().await;
    // Every card resolved once online: the till keeps its copy (what an
    // offline sale shows as the balance "as of" the last contact).
    let mut start_balance = BTreeMap::new();
    for i in 0..p.cards as usize {
        let card = card_of(i, p.cards);
        let r = c
            .call("card.resolve", json!({"number": card}))
            .await
            .expect("card.resolve");
        start_balance.insert(card, decimal(&r["account"]["balance"]));
    }
    let mut earned = Earned::default();

    // (a) Online.
    let warm = sequential(&mut c, "ob-w", 0, 50, p.cards, &mut earned).await;
    assert_eq!(warm.pending, 0, "warm-up sales were queued");
    let mut online = sequential(&mut c, "ob-a", 0, p.sales, p.cards, &mut earned).await;
    assert_eq!(
        online.pending,
        0,
        "online sales were queued:\n{}",
        till.log()
    );

    // (b) Offline: the first sale finds out, the next ones decide at once.
    proxy.set(Mode::Refuse);
    let mut first = sequential(&mut c, "ob-b0", 0, 1, p.cards, &mut earned).await;
    assert_eq!(
        first.pending, 1,
        "the first sale after the cut was not queued"
    );
    let s = status(&mut c).await;
    assert_eq!(s["link"], "offline", "{s}");
    let mut offline = sequential(&mut c, "ob-b", 1, p.sales, p.cards, &mut earned).await;
    assert_eq!(
        offline.pending, p.sales,
        "offline sales were not all queued"
    );

    // Fill the outbox with concurrent clients, then the tail one by one.
    let next = Arc::new(AtomicUsize::new(0));
    let cards = p.cards;
    let fill_start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..p.fill_clients {
        let next = next.clone();
        let mut fc = till.client().await;
        tasks.push(tokio::spawn(async move {
            let mut e = Earned::default();
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= fill {
                    return (e, lat);
                }
                let key = format!("ob-f-{i}");
                let card = card_of(i, cards);
                let s = Instant::now();
                let r = fc
                    .call("sale.commit", sale(&key, &card))
                    .await
                    .unwrap_or_else(|e| panic!("sale.commit {key}: {e:?}"));
                lat.push(s.elapsed());
                assert!(r["pending"].is_object(), "a fill sale was not queued: {r}");
                e.add(&card, &r);
            }
        }));
    }
    let mut filled = Timed::default();
    for t in tasks {
        let (e, lat) = t.await.unwrap();
        for (card, a) in e.0 {
            *earned.0.entry(card).or_default() += a;
        }
        filled.latencies.extend(lat);
    }
    filled.elapsed = fill_start.elapsed();
    let mut tail = sequential(&mut c, "ob-t", 0, p.tail, p.cards, &mut earned).await;
    assert_eq!(tail.pending, p.tail, "tail sales were not all queued");
    let s = status(&mut c).await;
    assert_eq!(s["queued"], p.queue, "{s}");
    assert_eq!(s["link"], "offline", "{s}");
    let (depth_ms, redeem_ms) =
        outbox_queries(&till.dir.path().join("state/posbridge.sqlite3")).await;

    // (c) Link back: until nothing is queued and the link is online.
    let quarters = [p.queue * 3 / 4, p.queue / 2, p.queue / 4, 0];
    let mut crossed: Vec<Option<Duration>> = vec![None; quarters.len()];
    let back = Instant::now();
    proxy.set(Mode::Pass);
    let mut first_booked = None;
    let deadline = back + Duration::from_secs(3600);
    let drained = loop {
        let s = status(&mut c).await;
        let q = s["queued"].as_u64().unwrap() as usize;
        let at = back.elapsed();
        if first_booked.is_none() && q < p.queue {
            first_booked = Some(at);
        }
        for (i, &mark) in quarters.iter().enumerate() {
            if crossed[i].is_none() && q <= mark {
                crossed[i] = Some(at);
            }
        }
        if q == 0 && s["link"] == "online" {
            assert_eq!(s["failed"], 0, "refused on replay: {s}");
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "outbox not drained: {s}\n{}",
            till.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first_booked = first_booked.unwrap_or(drained);

    // (d) Checks.
    let central_verify = service.admin(&["verify"]);
    let till_verify = till.verify(&p.till_bin);
    let total = 50 + p.sales + 1 + p.sales + fill + p.tail;
    // The blocking client runs its own runtime: off this one's worker.
    let r = tokio::task::block_in_place(|| {
        pg.query_one(
            "SELECT COUNT(*), COUNT(DISTINCT receipt_id) FROM txns
             WHERE kind = 'sale' AND receipt_id LIKE 'ob-%'",
            &[],
        )
    })
    .unwrap();
    let (booked, receipts): (i64, i64) = (r.get(0), r.get(1));
    assert_eq!(
        (booked as usize, receipts as usize),
        (total, total),
        "sales booked at the central ledger (all, distinct receipts)"
    );
    let mut wrong = Vec::new();
    for (card, before) in &start_balance {
        let r = c
            .call("card.resolve", json!({"number": card}))
            .await
            .expect("card.resolve");
        let now = decimal(&r["account"]["balance"]);
        let want = before + earned.0.get(card).copied().unwrap_or_default();
        if now != want {
            wrong.push(format!("{card}: {now}, expected {want}"));
        }
    }
    assert!(wrong.is_empty(), "balances off: {wrong:?}");
    let points: Decimal = earned.0.values().sum();

    // The figures.
    let queued = p.queue as f64;
    let online_rate = 1000.0 / online.mean();
    let replay_rate = queued / drained.as_secs_f64();
    let drain_rate = queued / (drained - first_booked).as_secs_f64();
    println!(
        "\n| sale.commit through the till | calls | p50 ms | p90 ms | p99 ms | max ms | calls/s |\n\
         |---|---|---|---|---|---|---|"
    );
    let row = |name: &str, t: &mut Timed| {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
            t.latencies.len(),
            t.pct(0.5),
            t.pct(0.9),
            t.pct(0.99),
            t.max(),
            t.rate()
        );
    };
    row("online (proxy forwarding)", &mut online);
    row("first sale after the cut (finds the link down)", &mut first);
    row(
        &format!("offline, link known down, outbox depth 1→{}", 1 + p.sales),
        &mut offline,
    );
    row(
        &format!(
            "offline fill, {} clients at once, depth {}→{}",
            p.fill_clients,
            1 + p.sales,
            1 + p.sales + fill
        ),
        &mut filled,
    );
    row(
        &format!(
            "offline, one by one, depth {}→{}",
            p.queue - p.tail,
            p.queue
        ),
        &mut tail,
    );
    println!(
        "\noffline/online: p50 {:.2}×, p99 {:.2}× (depth ≤ {}); at depth ~{}: p50 {:.2}×, p99 {:.2}×",
        offline.pct(0.5) / online.pct(0.5),
        offline.pct(0.99) / online.pct(0.99),
        1 + p.sales,
        p.queue,
        tail.pct(0.5) / online.pct(0.5),
        tail.pct(0.99) / online.pct(0.99),
    );
    println!(
        "outbox queries at depth {} on the till's file (best of 20): depth {depth_ms:.2} ms \
         (after every queued and every replayed operation), per-card pending redemption \
         {redeem_ms:.2} ms (before every offline sale)",
        p.queue
    );
    println!(
        "\nreplay (one operation at a time: the till's replayer is sequential, \
         `offline/commit` then a delete from the outbox):\n\
         | queued | link back → first booked | link back → queue empty | operations/s (from link back) | \
         operations/s (from first booked) | online sale.commit/s, one client (1/mean of the online row) | replay/online |\n\
         |---|---|---|---|---|---|---|\n\
         | {} | {:.2} s | {:.2} s | {replay_rate:.0} | {drain_rate:.0} | {online_rate:.0} | {:.2} |",
        p.queue,
        first_booked.as_secs_f64(),
        drained.as_secs_f64(),
        replay_rate / online_rate,
    );
    let mut prev = first_booked;
    let mut prev_left = p.queue;
    let mut parts = Vec::new();
    for (mark, at) in quarters.iter().zip(&crossed) {
        let at = at.unwrap_or(drained);
        parts.push(format!(
            "{prev_left}→{mark}: {:.0}/s",
            (prev_left - mark) as f64 / (at - prev).as_secs_f64().max(1e-3)
        ));
        prev = at;
        prev_left = *mark;
    }
    println!("drain rate by quarter (queued left): {}", parts.join(", "));
    println!(
        "\nchecks: {total} sales booked once each ({receipts} distinct receipts), {} cards' \
         balances = start + {points} points earned; central verify: {central_verify:?}; \
         till verify: {till_verify:?}",
        start_balance.len()
    );
}
