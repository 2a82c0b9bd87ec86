//! Enqueue-to-first-byte latency: `print.document` over the socket until
//! the first byte of the job reaches the ESC/POS simulator on loopback TCP,
//! through the real daemon (durable enqueue with fsync, the printer actor,
//! its status poll before the job, the encoder, the TCP transport).
//!
//! Three figures per job: the reply to `print.document` (the job is on
//! disk), the first byte of the document on the printer's wire, and the
//! `done` event. Status polls (`DLE EOT n`) are not counted as job bytes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

mod common;

use posbridge::client::Client;
use posbridge_drivers::sim::escpos::{EscPosSim, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const JOBS: usize = 300;

/// A TCP stream that reports when bytes other than status polls arrive,
/// then hands everything to the simulator unchanged.
struct Tap {
    inner: tokio::net::TcpStream,
    seen: mpsc::UnboundedSender<Instant>,
}

/// Whether `bytes` holds anything besides `DLE EOT n` requests.
fn has_job_bytes(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(&[0x10, 0x04]) && i + 2 < bytes.len() {
            i += 3;
        } else {
            return true;
        }
    }
    false
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && has_job_bytes(&buf.filled()[before..]) {
            let _ = self.seen.send(Instant::now());
        }
        r
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A ten-line receipt, the size of a typical bonus slip.
fn doc(n: usize) -> Value {
    let mut blocks = vec![json!({"type": "text", "text": format!("Чек {n}"), "bold": true})];
    for i in 0..10 {
        blocks.push(json!({"type": "columns", "cells": [
            {"text": format!("Товар {i}")}, {"text": "1 x 99,90", "align": "right"},
            {"text": "99,90", "align": "right"}
        ]}));
    }
    blocks.push(json!({"type": "cut", "partial": true}));
    json!({ "blocks": blocks })
}

/// Waits for the `job.status` event that says `job` is done.
async fn wait_done(events: &mut Client, job: &str) {
    loop {
        let n = events.next_notification().await.unwrap();
        let p = &n["params"];
        if p["job_id"] == job && p["state"] == "done" {
            return;
        }
        assert_ne!(p["state"], "failed", "{n}");
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, mut seen) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let sim = EscPosSim::new(SimConfig::default());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                s.set_nodelay(true).unwrap();
                sim.serve(Tap {
                    inner: s,
                    seen: tx.clone(),
                })
                .await;
            }
        });
        (addr, rx)
    });
    let daemon = common::start(&format!(
        "[[printer]]\nname = \"receipt\"\ntype = \"escpos\"\nprofile = \"epson-tm-t20\"\n\
         [printer.tcp]\nhost = \"127.0.0.1\"\nport = {}\n",
        addr.port()
    ));
    let (ack, first, done) = rt.block_on(async {
        let mut c = Client::unix(&daemon.socket).await.unwrap();
        let mut events = Client::unix(&daemon.socket).await.unwrap();
        events
            .call("events.subscribe", json!({"topics": ["job.status"]}))
            .await
            .unwrap();
        let (mut ack, mut first, mut done) = (Vec::new(), Vec::new(), Vec::new());
        // The first jobs warm up the connection and the page cache.
        for n in 0..JOBS + 20 {
            while seen.try_recv().is_ok() {}
            let job = format!("bench-{n}");
            let t = Instant::now();
            c.call(
                "print.document",
                json!({"printer": "receipt", "job_id": job, "document": doc(n)}),
            )
            .await
            .unwrap();
            let t_ack = t.elapsed();
            let t_first = tokio::time::timeout(Duration::from_secs(30), seen.recv())
                .await
                .expect("no job bytes reached the printer")
                .unwrap()
                .duration_since(t);
            wait_done(&mut events, &job).await;
            let t_done = t.elapsed();
            if n >= 20 {
                ack.push(t_ack);
                first.push(t_first);
                done.push(t_done);
            }
        }
        (ack, first, done)
    });
    for (what, v) in [
        ("print.document reply (job on disk)", ack),
        ("enqueue -> first job byte at the printer", first),
        ("enqueue -> job.status done", done),
    ] {
        let (p50, p99) = common::percentiles(v);
        println!("{what}: p50 {p50:.0} µs, p99 {p99:.0} µs ({JOBS} jobs)");
    }
}
