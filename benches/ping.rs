//! Round trip of `system.ping` over the Unix socket with 1, 8 and 64
//! concurrent clients, next to a bare Unix-socket line echo of the same
//! message: the physical floor the daemon is measured against.
//!
//! Criterion reports time per request and throughput; a second pass records
//! every request's latency and prints p50/p99 per case.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Runtime;

const REQUEST: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.ping\"}\n";
const CLIENTS: [usize; 3] = [1, 8, 64];

/// A line echo server: reads a line, writes it back.
fn start_echo(rt: &Runtime, dir: &Path) -> PathBuf {
    let path = dir.join("echo.sock");
    let listener = rt.block_on(async { UnixListener::bind(&path).unwrap() });
    rt.spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if w.write_all(&line).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    path
}

struct Conn {
    r: BufReader<tokio::net::unix::OwnedReadHalf>,
    w: tokio::net::unix::OwnedWriteHalf,
    line: Vec<u8>,
}

impl Conn {
    async fn open(path: &Path) -> Conn {
        let (r, w) = UnixStream::connect(path).await.unwrap().into_split();
        Conn {
            r: BufReader::new(r),
            w,
            line: Vec::with_capacity(128),
        }
    }

    async fn round_trip(&mut self) {
        self.w.write_all(REQUEST).await.unwrap();
        self.line.clear();
        let n = self.r.read_until(b'\n', &mut self.line).await.unwrap();
        assert!(n > 0, "server closed");
    }
}

/// Runs `total` round trips spread over `conns`, returning the wall time and
/// (optionally) every latency.
async fn run(conns: &mut [Conn], total: u64, record: bool) -> (Duration, Vec<Duration>) {
    let per = (total / conns.len() as u64).max(1);
    let start = Instant::now();
    let tasks = conns.iter_mut().map(|c| async move {
        let mut lat = Vec::with_capacity(if record { per as usize } else { 0 });
        for _ in 0..per {
            let t = Instant::now();
            c.round_trip().await;
            if record {
                lat.push(t.elapsed());
            }
        }
        lat
    });
    let lats: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    (start.elapsed(), lats)
}

fn bench(c: &mut Criterion) {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let daemon = common::start("");
    let echo_dir = tempfile::tempdir().unwrap();
    let echo = start_echo(&rt, echo_dir.path());

    let mut group = c.benchmark_group("ping_round_trip");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    let mut table = Vec::new();
    for (label, path) in [("daemon", &daemon.socket), ("raw_echo", &echo)] {
        for &n in &CLIENTS {
            let mut conns: Vec<Conn> = rt.block_on(async {
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(Conn::open(path).await);
                }
                v
            });
            group.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                b.iter_custom(|iters| {
                    // Wall time for `iters` requests shared by all clients,
                    // so criterion's per-iteration time is 1 / throughput.
                    let (wall, _) = rt.block_on(run(&mut conns, iters, false));
                    let done = (iters / n as u64).max(1) * n as u64;
                    wall.mul_f64(iters as f64 / done as f64)
                })
            });
            // Percentiles from a fixed run of 20 000 requests.
            let (wall, mut lats) = rt.block_on(run(&mut conns, 20_000, true));
            lats.sort();
            let pct = |p: f64| lats[((lats.len() as f64 * p) as usize).min(lats.len() - 1)];
            table.push(format!(
                "{label:<9} clients={n:<3} {:>9.0} req/s  p50 {:>7.1} us  p99 {:>7.1} us",
                lats.len() as f64 / wall.as_secs_f64(),
                pct(0.50).as_secs_f64() * 1e6,
                pct(0.99).as_secs_f64() * 1e6,
            ));
        }
    }
    group.finish();
    println!("\nsystem.ping round trip over the Unix socket (20 000 requests per case):");
    for line in table {
        println!("  {line}");
    }
    drop(daemon);
}

criterion_group!(benches, bench);
criterion_main!(benches);
