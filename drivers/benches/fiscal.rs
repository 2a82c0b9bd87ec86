//! A 10-item fiscal receipt end to end over a pty to the Shtrih-M emulator:
//! frames sent, bytes on the wire and time, next to the time those bytes
//! need on a 115 200 baud line (10 bits per byte).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use posbridge_drivers::printer::shtrih::{
    CheckType, CloseCheckV2, Command, OperationType, OperationV2, PrintFlags, ShtrihClient,
};
use posbridge_drivers::sim::shtrih::ShtrihSim;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_serial::SerialPortBuilderExt;

/// Counts the bytes each way.
struct Counted<T> {
    inner: T,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read
            .fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, b);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Client = ShtrihClient<Counted<tokio_serial::SerialStream>>;

/// One receipt: open, 10 items, 3 lines of bonus text, close. Returns the
/// number of command frames.
async fn receipt(c: &mut Client) -> u64 {
    let mut frames = 0;
    c.execute(&Command::open_check(CheckType::Sale))
        .await
        .unwrap();
    frames += 1;
    for i in 0..10u64 {
        let op = OperationV2 {
            kind: OperationType::Income,
            quantity: 1_000_000,
            price: 10_000 + i * 100,
            sum: None,
            tax: None,
            tax_rate: 1,
            department: 1,
            payment_method: 4,
            payment_object: 1,
            name: format!("Товар номер {i}"),
        };
        c.execute(&Command::operation_v2(&op).unwrap())
            .await
            .unwrap();
        frames += 1;
    }
    for line in [
        "БОНУСНАЯ ПРОГРАММА",
        "Начислено бонусов 50,00",
        "Баланс 150,00",
    ] {
        c.execute(&Command::print_string(PrintFlags::receipt(), line))
            .await
            .unwrap();
        frames += 1;
    }
    let close = CloseCheckV2::cash(200_000, 1);
    c.execute(&Command::close_check_v2(&close).unwrap())
        .await
        .unwrap();
    frames + 1
}

fn bench(cr: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (read, written) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (mut client, _sim) = rt.block_on(async {
        let sim = ShtrihSim::new();
        let (path, handle) = sim.spawn_pty().unwrap();
        let port = tokio_serial::new(path.to_string_lossy(), 115_200)
            .open_native_async()
            .unwrap();
        let io = Counted {
            inner: port,
            read: read.clone(),
            written: written.clone(),
        };
        let mut c = ShtrihClient::new(io, 30);
        c.execute(&Command::open_shift()).await.unwrap();
        (c, handle)
    });
    let mut group = cr.benchmark_group("fiscal_receipt");
    group.sample_size(20);
    group.bench_function("10_items_over_pty", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    receipt(&mut client).await;
                }
                t.elapsed()
            })
        })
    });
    group.finish();
    let (r0, w0) = (
        read.load(Ordering::Relaxed),
        written.load(Ordering::Relaxed),
    );
    let (frames, elapsed) = rt.block_on(async {
        let t = Instant::now();
        let f = receipt(&mut client).await;
        (f, t.elapsed())
    });
    let bytes = read.load(Ordering::Relaxed) - r0 + written.load(Ordering::Relaxed) - w0;
    let wire = Duration::from_secs_f64(bytes as f64 * 10.0 / 115_200.0);
    println!("\n10-item fiscal receipt over a pty to the emulator:");
    println!(
        "  {frames} command frames, {bytes} bytes both ways, {:.1} ms",
        elapsed.as_secs_f64() * 1e3
    );
    println!(
        "  the same bytes at 115 200 baud: {:.1} ms",
        wire.as_secs_f64() * 1e3
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
