//! Swipe-to-event latency: bytes written on a pty's device side until the
//! subscribed client holds the `card.read` notification, through the real
//! daemon. The baseline is the same bytes read straight off a pty.
//!
//! The reader sends a whole swipe as one line, so the window that joins a
//! multi-line swipe (`framing.swipe_gap_ms`, 30 ms by default, which adds
//! its length to every swipe) is off here.

use std::time::{Duration, Instant};

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use posbridge::client::Client;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};

const SWIPE: &[u8] = b";6035123412341234=49121014711?\r";
const SWIPES: usize = 1000;

async fn swipe_once(device: &mut SerialStream, client: &mut Client) -> Duration {
    let t = Instant::now();
    device.write_all(SWIPE).await.unwrap();
    let n = client.next_notification().await.unwrap();
    assert_eq!(n["params"]["topic"], "card.read");
    t.elapsed()
}

async fn raw_once(device: &mut SerialStream, host: &mut SerialStream, buf: &mut [u8]) -> Duration {
    let t = Instant::now();
    device.write_all(SWIPE).await.unwrap();
    let mut got = 0;
    while got < SWIPE.len() {
        got += host.read(&mut buf[got..]).await.unwrap();
    }
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut device, host) = rt.block_on(async { SerialStream::pair().unwrap() });
    let port = host.name().unwrap();
    drop(host);
    let daemon = common::start(&format!(
        "[[reader]]\nname = \"msr\"\ntype = \"msr\"\n[reader.serial]\nport = \"{port}\"\n\
         [reader.framing]\nswipe_gap_ms = 0\n"
    ));
    let mut client = rt.block_on(async {
        let mut c = Client::unix(&daemon.socket).await.unwrap();
        c.call("events.subscribe", json!({"topics": ["card.read"]}))
            .await
            .unwrap();
        // The reader opens its port asynchronously: swipe until it answers.
        loop {
            device.write_all(SWIPE).await.unwrap();
            if tokio::time::timeout(Duration::from_millis(500), c.next_notification())
                .await
                .is_ok()
            {
                break c;
            }
        }
    });

    let mut group = c.benchmark_group("swipe_to_event");
    group.bench_function("daemon", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += swipe_once(&mut device, &mut client).await;
                }
                total
            })
        })
    });
    let daemon_lat: Vec<_> = rt.block_on(async {
        let mut v = Vec::with_capacity(SWIPES);
        for _ in 0..SWIPES {
            v.push(swipe_once(&mut device, &mut client).await);
        }
        v
    });
    drop(daemon);

    // Baseline: a second pty read directly.
    let (mut dev2, mut host2) = rt.block_on(async {
        let (d, h) = SerialStream::pair().unwrap();
        let name = h.name().unwrap();
        drop(h);
        let h = tokio_serial::new(name, 115_200)
            .open_native_async()
            .unwrap();
        (d, h)
    });
    let mut buf = [0u8; 64];
    group.bench_function("raw_pty", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += raw_once(&mut dev2, &mut host2, &mut buf).await;
                }
                total
            })
        })
    });
    group.finish();
    let raw_lat: Vec<_> = rt.block_on(async {
        let mut v = Vec::with_capacity(SWIPES);
        for _ in 0..SWIPES {
            v.push(raw_once(&mut dev2, &mut host2, &mut buf).await);
        }
        v
    });
    let (d50, d99) = common::percentiles(daemon_lat);
    let (r50, r99) = common::percentiles(raw_lat);
    println!("\nswipe to card.read over a pty, {SWIPES} swipes:");
    println!("  daemon   p50 {d50:>8.1} us  p99 {d99:>8.1} us");
    println!("  raw pty  p50 {r50:>8.1} us  p99 {r99:>8.1} us");
}

criterion_group!(benches, bench);
criterion_main!(benches);
