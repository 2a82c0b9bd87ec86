//! Tests of the simulator through its link layer.

use std::io;

use super::state::{civil, le, read_le};
use super::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

const WAIT: Duration = Duration::from_secs(3);

/// A minimal host side of the standard lower level, for the tests only.
struct Host<S> {
    io: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Host<S> {
    async fn write(&mut self, b: &[u8]) {
        self.io.write_all(b).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// Next byte, or `None` on EOF or after `t`.
    async fn byte_within(&mut self, t: Duration) -> Option<u8> {
        let mut b = [0u8];
        match tokio::time::timeout(t, self.io.read(&mut b)).await {
            Ok(Ok(1)) => Some(b[0]),
            _ => None,
        }
    }

    async fn byte(&mut self) -> Option<u8> {
        self.byte_within(WAIT).await
    }

    /// Reads `STX LEN payload LRC`: (payload, LRC correct).
    async fn frame(&mut self) -> (Vec<u8>, bool) {
        assert_eq!(self.byte().await, Some(STX), "answer starts with STX");
        let len = self.byte().await.unwrap();
        let mut p = Vec::new();
        for _ in 0..len {
            p.push(self.byte().await.unwrap());
        }
        let sum = self.byte().await.unwrap();
        let ok = lrc(&p) ^ len == sum;
        (p, ok)
    }

    /// ENQ → NAK, command → ACK, answer → ACK.
    async fn cmd(&mut self, payload: &[u8]) -> Vec<u8> {
        self.write(&[ENQ]).await;
        assert_eq!(self.byte().await, Some(NAK), "device idle");
        self.write(&encode_frame(payload)).await;
        assert_eq!(self.byte().await, Some(ACK), "command acknowledged");
        let (p, ok) = self.frame().await;
        assert!(ok, "answer LRC");
        self.write(&[ACK]).await;
        p
    }
}

fn with_pw(head: &[u8], pw: u32, rest: &[u8]) -> Vec<u8> {
    let mut v = head.to_vec();
    v.extend_from_slice(&pw.to_le_bytes());
    v.extend_from_slice(rest);
    v
}

fn operation(kind: u8, qty_millionths: u64, price: u64, name: &str) -> Vec<u8> {
    let mut v = with_pw(&[0xFF, 0x46], 30, &[kind]);
    le(&mut v, qty_millionths, 6);
    le(&mut v, price, 5);
    le(&mut v, NOT_GIVEN, 5); // sum: computed by the device
    le(&mut v, NOT_GIVEN, 5); // tax: computed by the device
    v.extend_from_slice(&[0x01, 1, 4, 1]); // tax 1, department 1, full payment, goods
    let (name, _, _) = encoding_rs::WINDOWS_1251.encode(name);
    v.extend_from_slice(&name);
    v
}

fn close(payments: &[(usize, u64)]) -> Vec<u8> {
    let mut v = with_pw(&[0xFF, 0x45], 30, &[]);
    let mut sums = [0u64; 16];
    for &(t, s) in payments {
        sums[t - 1] = s;
    }
    for s in sums {
        le(&mut v, s, 5);
    }
    v.push(0); // rounding
    v.extend_from_slice(&[0; 30]); // taxes: computed by the device
    v.push(1); // ОСН
    v.extend_from_slice(b"THANK YOU");
    v
}

fn start() -> (
    ShtrihSim,
    Host<DuplexStream>,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let sim = ShtrihSim::new();
    let (dev, host) = tokio::io::duplex(4096);
    let s = sim.clone();
    let task = tokio::spawn(async move { s.serve(dev).await });
    (sim, Host { io: host }, task)
}

fn serve_again(sim: &ShtrihSim) -> Host<DuplexStream> {
    let (dev, host) = tokio::io::duplex(4096);
    let s = sim.clone();
    tokio::spawn(async move { s.serve(dev).await });
    Host { io: host }
}

async fn open_shift(host: &mut Host<DuplexStream>) {
    assert_eq!(
        host.cmd(&with_pw(&[0xE0], 30, &[])).await,
        vec![0xE0, 0, 30]
    );
}

#[test]
fn lrc_spec_vector() {
    let frame = encode_frame(&[0x10, 0x1E, 0x00, 0x00, 0x00]);
    assert_eq!(frame, vec![0x02, 0x05, 0x10, 0x1E, 0x00, 0x00, 0x00, 0x0B]);
    assert_eq!(lrc(&frame[1..7]), 0x0B);
}

#[test]
fn civil_dates() {
    assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
    assert_eq!(civil(1_768_467_600), (2026, 1, 15, 9, 0, 0));
    assert_eq!(civil(951_825_600), (2000, 2, 29, 12, 0, 0));
}

#[tokio::test]
async fn enq_when_idle_is_nak() {
    let (_sim, mut host, _t) = start();
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(NAK));
}

#[tokio::test]
async fn short_and_full_status() {
    let (_sim, mut host, _t) = start();
    let a = host.cmd(&[0x10, 0x1E, 0, 0, 0]).await;
    assert_eq!(a.len(), 16);
    assert_eq!(&a[..3], &[0x10, 0, 30]);
    assert_eq!(u16::from_le_bytes([a[3], a[4]]) & 0x82, 0x82, "paper flags");
    assert_eq!(a[5], 4, "shift closed");
    assert_eq!(a[6], 0, "submode: paper present");
    let a = host.cmd(&with_pw(&[0x11], 30, &[])).await;
    assert_eq!(a.len(), 48);
    assert_eq!(&a[..3], &[0x11, 0, 30]);
    assert_eq!(a[15], 4, "mode");
    assert_eq!(a[17], 0, "port: COM");
}

#[tokio::test]
async fn full_sale() {
    let (sim, mut host, _t) = start();
    open_shift(&mut host).await;
    assert_eq!(
        host.cmd(&with_pw(&[0x8D], 30, &[0])).await,
        vec![0x8D, 0, 30]
    );
    let a = host.cmd(&[0x10, 30, 0, 0, 0]).await;
    assert_eq!(a[5], 0x08, "check open: sale");
    assert_eq!(
        host.cmd(&operation(1, 1_000_000, 10_000, "Молоко 3,2%"))
            .await,
        vec![0xFF, 0x46, 0]
    );
    assert_eq!(
        host.cmd(&operation(1, 2_500_000, 4_000, "Хлеб")).await,
        vec![0xFF, 0x46, 0]
    );
    let sub = host.cmd(&with_pw(&[0x89], 30, &[])).await;
    assert_eq!(read_le(&sub[3..8]), 20_000);
    // cash 150.00 + points ("other", type 16) 60.00 for 200.00: change 10.00
    let a = host.cmd(&close(&[(1, 15_000), (16, 6_000)])).await;
    assert_eq!(&a[..3], &[0xFF, 0x45, 0]);
    assert_eq!(a.len(), 16);
    assert_eq!(read_le(&a[3..8]), 1_000, "change");
    let fd = read_le(&a[8..12]) as u32;
    let fp = read_le(&a[12..16]) as u32;
    assert_eq!(fd, 2, "shift open was FD 1");
    assert_eq!(fp, fiscal_sign(2, 20_000));

    let docs = sim.documents();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].kind, FiscalDocKind::OpenShift);
    assert_eq!(
        docs[1],
        FiscalDoc {
            number: 2,
            kind: FiscalDocKind::Receipt(CheckKind::Sale),
            total: 20_000,
            fiscal_sign: fp,
            shift: 1,
            unix_time: docs[1].unix_time,
        }
    );
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 2, "shift report + receipt, each cut");
    let receipt = receipts[1].join("\n");
    for needle in [
        "КАССОВЫЙ ЧЕК",
        "Молоко 3,2%",
        "1 X 100.00 = 100.00",
        "Хлеб",
        "2.5 X 40.00 = 100.00",
        "ИТОГ: =200.00",
        "НАЛИЧНЫМИ: =150.00",
        "ИНАЯ ФОРМА ОПЛАТЫ: =60.00",
        "СДАЧА: =10.00",
        "THANK YOU",
        &format!("ФД: 2  ФП: {fp:010}"),
    ] {
        assert!(receipt.contains(needle), "{needle:?} missing in\n{receipt}");
    }
    let s = sim.state_summary();
    assert_eq!(s.mode, 2);
    assert_eq!(s.checks_in_shift, 1);
    assert_eq!(s.last_fd_number, 2);
    assert_eq!(s.last_fiscal_sign, Some(fp));

    // A host learns the last FD and its FP: FF01 then FF0A.
    let st = host.cmd(&with_pw(&[0xFF, 0x01], 30, &[])).await;
    assert_eq!(st.len(), 33);
    assert_eq!(&st[..3], &[0xFF, 0x01, 0]);
    assert_eq!(st[6], 1, "shift open");
    assert_eq!(&st[13..29], FN_NUMBER);
    assert_eq!(read_le(&st[29..33]) as u32, 2);
    let doc = host
        .cmd(&with_pw(&[0xFF, 0x0A], 30, &2u32.to_le_bytes()))
        .await;
    assert_eq!(&doc[..5], &[0xFF, 0x0A, 0, 3, 0]);
    assert_eq!(read_le(&doc[10..14]) as u32, 2);
    assert_eq!(read_le(&doc[14..18]) as u32, fp);
    assert_eq!(doc[18], 1, "приход");
    assert_eq!(read_le(&doc[19..24]), 20_000);
    let missing = host
        .cmd(&with_pw(&[0xFF, 0x0A], 30, &9u32.to_le_bytes()))
        .await;
    assert_eq!(missing, vec![0xFF, 0x0A, errors::FN_NO_DATA]);
    let shift = host.cmd(&with_pw(&[0xFF, 0x40], 30, &[])).await;
    assert_eq!(shift, vec![0xFF, 0x40, 0, 1, 1, 0, 2, 0]);

    // X report, Z report closes the shift with FD 3.
    assert_eq!(
        host.cmd(&with_pw(&[0x40], 29, &[])).await,
        vec![0x40, 0, 29]
    );
    assert_eq!(
        host.cmd(&with_pw(&[0x41], 30, &[])).await,
        vec![0x41, 0, 30]
    );
    let s = sim.state_summary();
    assert_eq!((s.mode, s.last_closed_shift, s.last_fd_number), (4, 1, 3));
    assert_eq!(sim.documents()[2].kind, FiscalDocKind::CloseShift);
    assert_eq!(sim.documents()[2].total, 20_000);
    assert_eq!(
        host.cmd(&with_pw(&[0x41], 30, &[])).await,
        vec![0x41, errors::WRONG_MODE]
    );
}

#[tokio::test]
async fn clock_and_shift_documents() {
    let (sim, mut host, _t) = start();
    sim.set_time(1_768_467_600); // 2026-01-15 09:00:00
    let a = host.cmd(&with_pw(&[0x11], 30, &[])).await;
    // The layout the open drivers read (pyshtrih, shtrihmfr, JavaPOS):
    // after the FN software version, build and date.
    assert_eq!(&a[25..28], &[15, 1, 26], "date");
    assert_eq!(&a[28..30], &[9, 0], "time");
    assert_eq!(read_le(&a[32..36]), SERIAL & 0xFFFF_FFFF, "serial number");
    assert_eq!(read_le(&a[36..38]), 0, "last closed shift");
    assert_eq!(read_le(&a[42..48]), INN, "INN");
    open_shift(&mut host).await;
    let doc = host
        .cmd(&with_pw(&[0xFF, 0x0A], 30, &1u32.to_le_bytes()))
        .await;
    assert_eq!(&doc[..5], &[0xFF, 0x0A, 0, 2, 0], "shift open report");
    assert_eq!(&doc[5..10], &[26, 1, 15, 9, 0], "DATE_TIME");
    assert_eq!(read_le(&doc[18..20]), 1, "shift number");
    assert_eq!(read_le(&doc[14..18]) as u32, fiscal_sign(1, 0));
}

#[tokio::test]
async fn payments_short_of_total_refused() {
    let (sim, mut host, _t) = start();
    open_shift(&mut host).await;
    host.cmd(&operation(1, 1_000_000, 10_000, "A")).await;
    let a = host.cmd(&close(&[(1, 9_999)])).await;
    assert_eq!(a, vec![0xFF, 0x45, errors::PAYMENT_LESS_THAN_TOTAL]);
    let a = host.cmd(&close(&[(2, 10_001)])).await;
    assert_eq!(a, vec![0xFF, 0x45, errors::NON_CASH_EXCEEDS_TOTAL]);
    assert_eq!(sim.state_summary().mode, 0x08, "check still open");
    let a = host.cmd(&close(&[(2, 10_000)])).await;
    assert_eq!(read_le(&a[3..8]), 0);
}

#[tokio::test]
async fn cancel_check() {
    let (sim, mut host, _t) = start();
    open_shift(&mut host).await;
    assert_eq!(
        host.cmd(&with_pw(&[0x8D], 30, &[2])).await,
        vec![0x8D, 0, 30]
    );
    assert_eq!(sim.state_summary().mode, 0x28, "return of sale");
    let a = host.cmd(&operation(1, 1_000_000, 500, "X")).await;
    assert_eq!(a, vec![0xFF, 0x46, errors::WRONG_CHECK_TYPE]);
    host.cmd(&operation(2, 1_000_000, 500, "X")).await;
    assert_eq!(
        host.cmd(&with_pw(&[0x88], 30, &[])).await,
        vec![0x88, 0, 30]
    );
    let s = sim.state_summary();
    assert_eq!((s.mode, s.last_fd_number, s.checks_in_shift), (2, 1, 0));
    assert!(sim.tape().iter().any(|l| l == "ЧЕК АННУЛИРОВАН"));
    assert_eq!(
        host.cmd(&with_pw(&[0x88], 30, &[])).await,
        vec![0x88, errors::CHECK_CLOSED]
    );
}

#[tokio::test]
async fn shift_over_24_hours() {
    let (sim, mut host, _t) = start();
    open_shift(&mut host).await;
    assert_eq!(
        host.cmd(&with_pw(&[0xE0], 30, &[])).await,
        vec![0xE0, errors::SHIFT_OPEN]
    );
    sim.advance_clock(Duration::from_secs(25 * 3600));
    assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[5], 3);
    assert_eq!(
        host.cmd(&with_pw(&[0x8D], 30, &[0])).await,
        vec![0x8D, errors::SHIFT_OVER_24H]
    );
    assert_eq!(
        host.cmd(&operation(1, 1_000_000, 100, "A")).await,
        vec![0xFF, 0x46, errors::SHIFT_OVER_24H]
    );
    assert_eq!(
        host.cmd(&with_pw(&[0x41], 30, &[])).await,
        vec![0x41, 0, 30]
    );
    open_shift(&mut host).await;
    assert_eq!(
        host.cmd(&with_pw(&[0x8D], 30, &[0])).await,
        vec![0x8D, 0, 30]
    );
    assert_eq!(sim.state_summary().shift_open, Some(2));
}

#[tokio::test]
async fn passwords_and_unknown_commands() {
    let (sim, mut host, _t) = start();
    assert_eq!(host.cmd(&with_pw(&[0x10], 31, &[])).await, vec![0x10, 0x4F]);
    assert_eq!(host.cmd(&with_pw(&[0x10], 1, &[])).await[..3], [0x10, 0, 1]);
    assert_eq!(host.cmd(&with_pw(&[0xE0], 31, &[])).await, vec![0xE0, 0x4F]);
    open_shift(&mut host).await;
    assert_eq!(host.cmd(&with_pw(&[0x41], 1, &[])).await, vec![0x41, 0x4F]);
    assert_eq!(host.cmd(&with_pw(&[0x40], 27, &[])).await, vec![0x40, 0x4F]);
    assert_eq!(
        host.cmd(&with_pw(&[0xFF, 0x01], 1, &[])).await,
        vec![0xFF, 0x01, 0x4F]
    );
    sim.set_password(30, 123_456);
    assert_eq!(host.cmd(&with_pw(&[0x10], 30, &[])).await, vec![0x10, 0x4F]);
    assert_eq!(
        host.cmd(&with_pw(&[0x10], 123_456, &[])).await[..3],
        [0x10, 0, 30]
    );
    assert_eq!(
        host.cmd(&[0x77, 1, 2]).await,
        vec![0x77, errors::NOT_SUPPORTED]
    );
    assert_eq!(
        host.cmd(&[0xFF, 0x7F]).await,
        vec![0xFF, 0x7F, errors::NOT_SUPPORTED]
    );
    assert_eq!(host.cmd(&[0x10, 30]).await, vec![0x10, errors::BAD_PARAMS]);
}

#[tokio::test]
async fn print_commands_and_cut() {
    let (sim, mut host, _t) = start();
    let (line, _, _) = encoding_rs::WINDOWS_1251.encode("Привет, мир");
    assert_eq!(
        host.cmd(&with_pw(&[0x17], 30, &[[2].as_slice(), &line].concat()))
            .await,
        vec![0x17, 0, 30]
    );
    assert_eq!(
        host.cmd(&with_pw(&[0x12], 30, &[2, b'B', b'O', b'L', b'D']))
            .await,
        vec![0x12, 0, 30]
    );
    assert_eq!(
        host.cmd(&with_pw(&[0x2F], 30, &[2, 3, b'F', 0, b'X']))
            .await,
        vec![0x2F, 0, 30]
    );
    assert_eq!(
        host.cmd(&with_pw(&[0x17], 30, &[1, b'J'])).await,
        vec![0x17, 0, 30]
    );
    assert_eq!(
        host.cmd(&with_pw(&[0x25], 30, &[0])).await,
        vec![0x25, 0, 30]
    );
    assert_eq!(sim.tape(), vec!["Привет, мир", "BOLD", "F", TAPE_CUT]);
}

#[tokio::test]
async fn bad_lrc_is_nak_and_partial_frames_time_out() {
    let (sim, mut host, _t) = start();
    host.write(&[STX, 0x05, 0x10, 0x1E, 0, 0, 0, 0x0C]).await;
    assert_eq!(host.byte().await, Some(NAK));
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(NAK), "nothing pending");
    // A frame broken by a pause longer than the byte timeout is dropped.
    host.write(&[STX, 0x05, 0x10]).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    host.write(&[0x1E, 0, 0, 0, 0x0B]).await;
    assert_eq!(host.byte_within(Duration::from_millis(200)).await, None);
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(NAK));
    assert!(!sim.state_summary().answer_pending);
    // Garbage between frames is ignored.
    host.write(&[0x00, 0x41, ACK, NAK, 0xFF]).await;
    assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[1], 0);
}

#[tokio::test]
async fn answer_not_acknowledged_is_reread_with_enq() {
    let (sim, mut host, _t) = start();
    host.write(&encode_frame(&with_pw(&[0xE0], 30, &[]))).await;
    assert_eq!(host.byte().await, Some(ACK));
    let (first, ok) = host.frame().await;
    assert!(ok);
    host.write(&[NAK]).await; // per spec: not repeated until ENQ
    assert_eq!(host.byte_within(Duration::from_millis(100)).await, None);
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(ACK));
    let (again, ok) = host.frame().await;
    assert!(ok);
    assert_eq!(first, again);
    host.write(&[ACK]).await;
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(NAK));
    assert_eq!(sim.documents().len(), 1, "executed once");
}

#[tokio::test]
async fn fault_corrupt_next_answer() {
    let (sim, mut host, _t) = start();
    sim.set_fault(Fault::CorruptNextAnswer);
    host.write(&encode_frame(&[0x10, 30, 0, 0, 0])).await;
    assert_eq!(host.byte().await, Some(ACK));
    let (_, ok) = host.frame().await;
    assert!(!ok, "corrupted");
    host.write(&[NAK]).await;
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(ACK));
    let (p, ok) = host.frame().await;
    assert!(ok);
    assert_eq!(&p[..3], &[0x10, 0, 30]);
    host.write(&[ACK]).await;
    assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[1], 0);
}

#[tokio::test]
async fn fault_nak_next_frame() {
    let (sim, mut host, _t) = start();
    sim.set_fault(Fault::NakNextFrame);
    host.write(&encode_frame(&with_pw(&[0xE0], 30, &[]))).await;
    assert_eq!(host.byte().await, Some(NAK));
    assert_eq!(sim.state_summary().mode, 4, "not executed");
    open_shift(&mut host).await;
    assert_eq!(sim.state_summary().mode, 2);
}

#[tokio::test]
async fn fault_delay_answer() {
    let (sim, mut host, _t) = start();
    sim.set_fault(Fault::DelayAnswer(Duration::from_millis(300)));
    let started = Instant::now();
    host.write(&encode_frame(&[0x10, 30, 0, 0, 0])).await;
    assert_eq!(host.byte().await, Some(ACK));
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(ACK), "answer being prepared");
    let (p, ok) = host.frame().await;
    assert!(ok && p[1] == 0);
    assert!(started.elapsed() >= Duration::from_millis(300));
    host.write(&[ACK]).await;
    sim.clear_fault(Fault::DelayAnswer(Duration::ZERO));
    let started = Instant::now();
    host.cmd(&[0x10, 30, 0, 0, 0]).await;
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn fault_paper_out_and_continue_printing() {
    let (sim, mut host, _t) = start();
    open_shift(&mut host).await;
    host.cmd(&operation(1, 1_000_000, 10_000, "Сок")).await;
    sim.set_fault(Fault::PaperOut);
    assert_eq!(
        host.cmd(&[0x10, 30, 0, 0, 0]).await[6],
        1,
        "passive paper out"
    );
    assert_eq!(
        host.cmd(&with_pw(&[0x17], 30, &[2, b'x'])).await,
        vec![0x17, errors::NO_PAPER]
    );
    assert_eq!(
        host.cmd(&operation(1, 1_000_000, 100, "A")).await,
        vec![0xFF, 0x46, errors::NO_PAPER]
    );
    assert_eq!(
        host.cmd(&with_pw(&[0xB0], 30, &[])).await,
        vec![0xB0, errors::NO_PAPER]
    );
    // The open check is closed in the FN; its printout is held back.
    let a = host.cmd(&close(&[(1, 10_000)])).await;
    assert_eq!(&a[..3], &[0xFF, 0x45, 0]);
    assert_eq!(sim.documents().len(), 2);
    assert_eq!(
        host.cmd(&[0x10, 30, 0, 0, 0]).await[6],
        2,
        "active paper out"
    );
    assert!(!sim.tape().iter().any(|l| l.starts_with("ИТОГ")));
    sim.clear_fault(Fault::PaperOut);
    assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[6], 3, "waiting for B0");
    assert_eq!(
        host.cmd(&with_pw(&[0x17], 30, &[2, b'x'])).await,
        vec![0x17, errors::WAITING_CONTINUE]
    );
    assert_eq!(
        host.cmd(&with_pw(&[0xB0], 30, &[])).await,
        vec![0xB0, 0, 30]
    );
    assert_eq!(host.cmd(&[0x10, 30, 0, 0, 0]).await[6], 0);
    assert!(sim.tape().iter().any(|l| l == "ИТОГ: =100.00"));
    assert_eq!(
        host.cmd(&with_pw(&[0xB0], 30, &[])).await,
        vec![0xB0, errors::WRONG_SUBMODE]
    );
}

#[tokio::test]
async fn fault_drop_link_keeps_state_and_answer() {
    let (sim, mut host, task) = start();
    sim.set_fault(Fault::DropLinkAfterCommand);
    host.write(&encode_frame(&with_pw(&[0xE0], 30, &[]))).await;
    assert_eq!(host.byte().await, Some(ACK));
    assert_eq!(host.byte().await, None, "link dropped");
    task.await.unwrap().unwrap();
    let s = sim.state_summary();
    assert_eq!(s.mode, 2, "the command was executed");
    assert!(s.answer_pending);
    // Reconnect: ENQ → ACK and the pending answer.
    let mut host = serve_again(&sim);
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(ACK));
    let (p, ok) = host.frame().await;
    assert!(ok);
    assert_eq!(p, vec![0xE0, 0, 30]);
    host.write(&[ACK]).await;
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(NAK));
    assert_eq!(sim.documents().len(), 1);
}

#[tokio::test]
async fn fault_power_loss() {
    let (sim, mut host, task) = start();
    open_shift(&mut host).await;
    // Pending answer lost with the power.
    sim.set_fault(Fault::DropLinkAfterCommand);
    host.write(&encode_frame(&with_pw(&[0x8D], 30, &[0]))).await;
    assert_eq!(host.byte().await, Some(ACK));
    task.await.unwrap().unwrap();
    sim.set_fault(Fault::PowerLoss);
    let mut host = serve_again(&sim);
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(NAK), "answer lost");
    assert_eq!(sim.state_summary().mode, 0x08, "check survives");
    // An answer being prepared is lost too.
    sim.set_fault(Fault::DelayAnswer(Duration::from_millis(200)));
    host.write(&encode_frame(&operation(1, 1_000_000, 700, "A")))
        .await;
    assert_eq!(host.byte().await, Some(ACK));
    sim.set_fault(Fault::PowerLoss);
    assert_eq!(host.byte_within(Duration::from_millis(500)).await, None);
    sim.clear_faults();
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(NAK));
    assert_eq!(
        sim.state_summary().open_check,
        Some((CheckKind::Sale, 1, 700))
    );
}

#[tokio::test]
async fn tcp_round_trip_and_reconnect() {
    let sim = ShtrihSim::new();
    let (addr, handle) = sim.spawn_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    for _ in 0..2 {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut host = Host { io: stream };
        let a = host.cmd(&with_pw(&[0x11], 30, &[])).await;
        assert_eq!(&a[..3], &[0x11, 0, 30]);
        assert_eq!(a[17], 128, "port: TCP socket");
    }
    handle.set_fault(Fault::DropLinkAfterCommand);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut host = Host { io: stream };
    host.write(&encode_frame(&with_pw(&[0xE0], 30, &[]))).await;
    assert_eq!(host.byte().await, Some(ACK));
    assert_eq!(host.byte().await, None);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut host = Host { io: stream };
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(ACK));
    assert_eq!(host.frame().await, (vec![0xE0, 0, 30], true));
    host.write(&[ACK]).await;
    assert_eq!(handle.state_summary().shift_open, Some(1));
    drop(handle);
}

#[tokio::test]
async fn pty_round_trip_and_reopen() {
    use tokio_serial::SerialPortBuilderExt;
    let sim = ShtrihSim::new();
    let (path, handle) = sim.spawn_pty().unwrap();
    for round in 0..3 {
        let port = tokio_serial::new(path.to_string_lossy(), 115_200)
            .open_native_async()
            .unwrap();
        let mut host = Host { io: port };
        let a = host.cmd(&[0x10, 30, 0, 0, 0]).await;
        assert_eq!(&a[..3], &[0x10, 0, 30], "round {round}");
        if round == 1 {
            open_shift_any(&mut host).await;
        }
    }
    assert_eq!(handle.state_summary().shift_open, Some(1));
}

async fn open_shift_any<S: AsyncRead + AsyncWrite + Unpin>(host: &mut Host<S>) {
    assert_eq!(
        host.cmd(&with_pw(&[0xE0], 30, &[])).await,
        vec![0xE0, 0, 30]
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn chunk() -> impl Strategy<Value = Vec<u8>> {
        let cmds = prop::sample::select(vec![
            0x10u8, 0x11, 0x12, 0x17, 0x25, 0x2F, 0x40, 0x41, 0x88, 0x89, 0x8D, 0xB0, 0xE0, 0xFF,
            0x01,
        ]);
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            (cmds, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(c, mut d)| {
                if d.len() >= 4 {
                    d[..4].copy_from_slice(&30u32.to_le_bytes());
                }
                let mut p = vec![c];
                p.append(&mut d);
                encode_frame(&p)
            }),
            Just(vec![ENQ]),
            Just(vec![ACK]),
            Just(vec![NAK]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn arbitrary_input_never_panics(chunks in prop::collection::vec(chunk(), 0..40)) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let sim = ShtrihSim::with_timing(SimTiming {
                    byte_timeout: Duration::from_millis(5),
                    ack_timeout: Duration::from_millis(10),
                    max_answer_sends: 3,
                });
                let (dev, host) = tokio::io::duplex(1024);
                let (mut rd, mut wr) = tokio::io::split(host);
                let drain = tokio::spawn(async move {
                    let mut total = 0usize;
                    let mut buf = [0u8; 512];
                    while let Ok(n) = rd.read(&mut buf).await {
                        if n == 0 { break; }
                        total += n;
                    }
                    total
                });
                let s = sim.clone();
                let server = tokio::spawn(async move { s.serve(dev).await });
                for c in &chunks {
                    wr.write_all(c).await.unwrap();
                }
                wr.shutdown().await.unwrap();
                let _ = server.await.unwrap();
                drop(wr);
                let _ = drain.await;
                let d = sim.dev();
                assert!(d.tape.len() <= TAPE_MAX_LINES);
                assert!(d.backlog.len() <= TAPE_MAX_LINES);
                assert!(d.pending.as_ref().is_none_or(|p| p.frame.len() <= 258));
                assert!(d.check.as_ref().is_none_or(|c| c.items.len() <= MAX_ITEMS_PER_CHECK));
            });
        }
    }
}

fn classic_sale(cmd: u8, qty_thousandths: u64, price: u64, tax: u8, name: &str) -> Vec<u8> {
    let mut v = with_pw(&[cmd], 1, &[]);
    le(&mut v, qty_thousandths, 5);
    le(&mut v, price, 5);
    v.extend_from_slice(&[1, tax, 0, 0, 0]);
    let (name, _, _) = encoding_rs::WINDOWS_1251.encode(name);
    v.extend_from_slice(&name);
    v.resize(v.len().max(60), 0);
    v
}

#[tokio::test]
async fn device_type_and_classic_receipt_on_a_legacy_device() {
    let (sim, mut host, _t) = start();
    sim.set_legacy(true);
    let a = host.cmd(&[0xFC]).await;
    assert_eq!(&a[..8], &[0xFC, 0, 0, 0, 1, 14, 250, 0]);
    let (name, _, _) = encoding_rs::WINDOWS_1251.decode(&a[8..]);
    assert_eq!(name, "ШТРИХ-М-01Ф");
    open_shift(&mut host).await;
    assert_eq!(
        host.cmd(&operation(1, 1_000_000, 100, "V2")).await,
        vec![0xFF, 0x46, errors::NOT_SUPPORTED],
        "legacy firmware has no FF46h"
    );
    let a = host
        .cmd(&classic_sale(0x80, 1_000, 10_000, 1, "Молоко"))
        .await;
    assert_eq!(a, vec![0x80, 0, 1]);
    let a = host.cmd(&classic_sale(0x80, 2_500, 4_000, 2, "Хлеб")).await;
    assert_eq!(a, vec![0x80, 0, 1]);
    let mut disc = with_pw(&[0x86], 1, &[]);
    le(&mut disc, 1_000, 5);
    disc.extend_from_slice(&[0; 4]);
    assert_eq!(host.cmd(&disc).await, vec![0x86, 0, 1]);
    let mut close = with_pw(&[0x85], 1, &[]);
    le(&mut close, 20_000, 5); // cash
    close.extend_from_slice(&[0; 15]); // payment types 2…4
    close.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    close.resize(71 - 1, 0);
    let a = host.cmd(&close).await;
    assert_eq!(&a[..3], &[0x85, 0, 1]);
    assert_eq!(read_le(&a[3..8]), 1_000, "change of 200.00 on 190.00");
    let docs = sim.documents();
    assert_eq!(docs.last().unwrap().total, 19_000);
    let s = sim.state_summary();
    assert_eq!(s.checks_in_shift, 1);
    assert_eq!(s.open_check, None);
    let receipt = sim.receipts().last().unwrap().clone();
    assert!(
        receipt.contains(&"СКИДКА: =10.00".to_string()),
        "{receipt:?}"
    );
    assert!(
        receipt.contains(&"СДАЧА: =10.00".to_string()),
        "{receipt:?}"
    );
    assert_eq!(host.cmd(&with_pw(&[0x8C], 1, &[])).await, vec![0x8C, 0, 1]);
    let copy = sim.receipts().last().unwrap().clone();
    assert_eq!(copy[0], "КОПИЯ");
    assert_eq!(&copy[1..], &receipt[..]);
    // Short status: operations in the open check at offsets 5 and 10 (after
    // CMD ERR), as the open drivers read them.
    host.cmd(&classic_sale(0x82, 1_000, 100, 0, "Возврат"))
        .await;
    let st = host.cmd(&[0x10, 1, 0, 0, 0]).await;
    assert_eq!(st.len(), 16);
    assert_eq!(st[5], 0x08 | (2 << 4), "return check open");
    assert_eq!((st[7], st[12]), (1, 0), "one operation");
}

/// shtrihm-fr sends ENQ right after its command: the ENQ crosses the answer
/// on the line and must not make the device send it twice.
#[tokio::test]
async fn enq_crossing_the_answer_gets_no_second_copy() {
    let (sim, mut host, _t) = start();
    let mut bytes = encode_frame(&with_pw(&[0x10], 30, &[]));
    bytes.push(ENQ);
    host.write(&bytes).await;
    assert_eq!(host.byte().await, Some(ACK));
    let (a, ok) = host.frame().await;
    assert!(ok && a[0] == 0x10);
    host.write(&[ACK]).await;
    host.write(&[ENQ]).await;
    assert_eq!(host.byte().await, Some(NAK), "idle, no stale answer");
    assert!(!sim.state_summary().answer_pending);
}
