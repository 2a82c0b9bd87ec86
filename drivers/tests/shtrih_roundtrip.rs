//! The real Shtrih-M client (`printer::shtrih`) against the real emulator
//! (`sim::shtrih`), over `tokio::io::duplex`, TCP and a pseudo-terminal.
//!
//! Every scenario goes through `ShtrihClient::execute` / `recover_pending`
//! and the typed answer parsers; the emulator's FN journal (`documents()`)
//! and paper tape are the ground truth for "exactly one receipt".

use std::time::{Duration, Instant};

use posbridge_drivers::printer::shtrih::{
    CheckType, CloseCheckResult, CloseCheckV2, Command, DeviceError, FnDocument, FnStatus,
    FullStatus, OperationType, OperationV2, PrintFlags, ProtocolError, Response, ShortStatus,
    ShtrihClient, ShtrihError, Timeouts, TransportError,
};
use posbridge_drivers::sim::shtrih::{
    CheckKind, Fault, FiscalDocKind, ShtrihSim, TAPE_CUT, fiscal_sign,
};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::task::JoinHandle;
use tokio_serial::SerialPortBuilderExt;

/// System administrator on factory settings.
const PW: u32 = 30;

/// Short answer timeouts so that a lost answer fails fast; `DelayAnswer`
/// below stays well under `fiscal`.
fn timeouts() -> Timeouts {
    Timeouts {
        byte: Duration::from_millis(50),
        enq: Duration::from_millis(300),
        ack: Duration::from_millis(300),
        query: Duration::from_secs(2),
        print: Duration::from_secs(2),
        fiscal: Duration::from_millis(1500),
        report: Duration::from_secs(2),
        pending: Duration::from_secs(2),
    }
}

fn client<T: AsyncRead + AsyncWrite + Unpin + Send>(io: T) -> ShtrihClient<T> {
    ShtrihClient::with_timeouts(io, PW, timeouts())
}

/// Serves `sim` on a new in-memory link; the task ends on EOF or when a
/// `DropLinkAfterCommand` fault closes the link.
fn duplex(sim: &ShtrihSim) -> (ShtrihClient<DuplexStream>, JoinHandle<std::io::Result<()>>) {
    let (dev, host) = tokio::io::duplex(4096);
    let s = sim.clone();
    let task = tokio::spawn(async move { s.serve(dev).await });
    (client(host), task)
}

fn device_code(r: Result<Response, ShtrihError>) -> DeviceError {
    match r {
        Err(ShtrihError::Device(e)) => e,
        other => panic!("expected a device error, got {other:?}"),
    }
}

fn op(name: &str, quantity: u64, price: u64, tax_rate: u8) -> OperationV2 {
    OperationV2 {
        kind: OperationType::Income,
        quantity,
        price,
        sum: None,
        tax: None,
        // Bit field: bit 0 = «Налог 1» (НДС 22% since 2026), bit 1 = «Налог 2» (НДС 10%).
        tax_rate,
        department: 1,
        payment_method: 4,
        payment_object: 1,
        name: name.into(),
    }
}

/// Cash 150.00 + «тип оплаты 16» (the "other" type, used here for loyalty
/// points) 60.00 for a 200.00 receipt: change 10.00.
fn cash_and_points() -> CloseCheckV2 {
    let mut c = CloseCheckV2::cash(15_000, 1);
    c.payments[15] = 6_000;
    c.text = "БАЛЛЫ: 60.00".into();
    c
}

fn receipts_in_fn(sim: &ShtrihSim) -> Vec<(u32, u64, u32)> {
    sim.documents()
        .iter()
        .filter(|d| matches!(d.kind, FiscalDocKind::Receipt(_)))
        .map(|d| (d.number, d.total, d.fiscal_sign))
        .collect()
}

fn receipts_on_tape(sim: &ShtrihSim) -> usize {
    sim.tape().iter().filter(|l| *l == "КАССОВЫЙ ЧЕК").count()
}

async fn exec<T: AsyncRead + AsyncWrite + Unpin + Send>(
    c: &mut ShtrihClient<T>,
    cmd: &Command,
) -> Response {
    match c.execute(cmd).await {
        Ok(r) => r,
        Err(e) => panic!("command {:#06X} failed: {e}", cmd.code),
    }
}

async fn short_status<T: AsyncRead + AsyncWrite + Unpin + Send>(
    c: &mut ShtrihClient<T>,
) -> ShortStatus {
    ShortStatus::parse(&exec(c, &Command::short_status()).await).unwrap()
}

async fn fn_status<T: AsyncRead + AsyncWrite + Unpin + Send>(c: &mut ShtrihClient<T>) -> FnStatus {
    FnStatus::parse(&exec(c, &Command::fn_status()).await).unwrap()
}

async fn find<T: AsyncRead + AsyncWrite + Unpin + Send>(
    c: &mut ShtrihClient<T>,
    fd: u32,
) -> FnDocument {
    FnDocument::parse(&exec(c, &Command::fn_find_document(fd)).await).unwrap()
}

async fn open_shift<T: AsyncRead + AsyncWrite + Unpin + Send>(c: &mut ShtrihClient<T>) {
    let r = exec(c, &Command::open_shift()).await;
    // «Код ошибки (второй байт в ответном сообщении)», then the operator.
    assert_eq!((r.error, r.operator()), (0, Some(30)));
}

async fn status_checks<T: AsyncRead + AsyncWrite + Unpin + Send>(
    c: &mut ShtrihClient<T>,
    sim: &ShtrihSim,
    port: u8,
) {
    let s = short_status(c).await;
    assert_eq!(s.operator, 30);
    assert_eq!(s.mode_number(), 4, "shift closed");
    assert_eq!(s.submode, 0);
    assert!(s.flags.receipt_roll() && s.flags.receipt_paper_sensor());
    assert!(s.flags.receipt_lever_down());
    assert_eq!(s.operations_in_check, 0);
    assert_eq!((s.fm_error, s.eklz_error), (0, 0));

    let before = sim.state_summary().now_unix;
    let f = FullStatus::parse(&exec(c, &Command::full_status()).await).unwrap();
    let after = sim.state_summary().now_unix;
    assert_eq!(f.operator, 30);
    assert_eq!(f.firmware_version, "C.1");
    assert_eq!(f.firmware_build, 1717);
    assert_eq!(f.mode, 4);
    assert_eq!(f.port, port);
    assert_eq!(f.serial_number, Some(12_345_678));
    assert_eq!(f.inn, Some(7_712_345_678));
    assert_eq!(f.last_closed_shift, 0);
    assert_eq!((f.fiscalizations, f.fiscalizations_left), (1, 19));
    assert!((1..=31).contains(&f.date[0]) && (1..=12).contains(&f.date[1]));
    let secs = |t: [u8; 3]| i64::from(t[0]) * 3600 + i64::from(t[1]) * 60 + i64::from(t[2]);
    let t = secs(f.time);
    let (lo, hi) = (before.rem_euclid(86_400), after.rem_euclid(86_400));
    assert!(
        lo > hi || (lo..=hi).contains(&t),
        "device time {:?}",
        f.time
    );
}

/// The whole day: non-fiscal lines, shift, receipt (8Dh + 2×FF46h + FF45h),
/// FF01h/FF0Ah cross-check, lines after, X and Z reports.
async fn full_day<T: AsyncRead + AsyncWrite + Unpin + Send>(
    c: &mut ShtrihClient<T>,
    sim: &ShtrihSim,
) {
    exec(
        c,
        &Command::print_string(PrintFlags::receipt(), "ДО ЧЕКА: ДОБРО ПОЖАЛОВАТЬ"),
    )
    .await;
    exec(
        c,
        &Command::print_bold_string(PrintFlags::receipt(), "АКЦИЯ ДНЯ"),
    )
    .await;

    open_shift(c).await;
    assert_eq!(short_status(c).await.mode_number(), 2, "shift open");
    let fn_before = fn_status(c).await;
    assert!(fn_before.shift_open);
    assert_eq!(fn_before.fn_number, "9999078900012345");

    let r = exec(c, &Command::open_check(CheckType::Sale)).await;
    assert_eq!(r.operator(), Some(30));
    let s = short_status(c).await;
    assert_eq!((s.mode_number(), s.mode_status()), (8, 0), "sale open");

    exec(
        c,
        &Command::operation_v2(&op("Молоко 3,2%", 1_000_000, 10_000, 0b01)).unwrap(),
    )
    .await;
    exec(
        c,
        &Command::operation_v2(&op("Хлеб", 2_500_000, 4_000, 0b10)).unwrap(),
    )
    .await;
    assert_eq!(short_status(c).await.operations_in_check, 2);

    let closed = CloseCheckResult::parse(
        &exec(c, &Command::close_check_v2(&cash_and_points()).unwrap()).await,
    )
    .unwrap();
    assert_eq!(closed.change, 1_000);
    assert_eq!(closed.fd_number, fn_before.last_fd_number + 1);
    assert_eq!(closed.fiscal_sign, fiscal_sign(closed.fd_number, 20_000));
    assert_eq!(closed.date_time, None);

    let st = fn_status(c).await;
    assert_eq!(st.last_fd_number, closed.fd_number);
    assert_eq!(st.current_document, 0);
    let doc = find(c, closed.fd_number).await;
    assert_eq!(doc.document_type, 3, "кассовый чек");
    assert_eq!(doc.fd_number, Some(closed.fd_number));
    assert_eq!(doc.fiscal_sign, Some(closed.fiscal_sign));
    assert_eq!(
        doc.date_time.map(|d| d[0..3].to_vec()),
        Some(st.date_time[0..3].to_vec())
    );
    assert_eq!(doc.data[13], 1, "приход");
    assert_eq!(
        device_code(c.execute(&Command::fn_find_document(99)).await).code,
        0x08
    );

    exec(
        c,
        &Command::print_string(PrintFlags::receipt(), "ПОСЛЕ ЧЕКА: СПАСИБО"),
    )
    .await;
    exec(
        c,
        &Command::print_bold_string(PrintFlags::receipt(), "ДО ВСТРЕЧИ"),
    )
    .await;

    // The tape: lines before, the receipt, lines after — in that order.
    let tape = sim.tape();
    let at = |needle: &str| {
        tape.iter()
            .position(|l| l == needle)
            .unwrap_or_else(|| panic!("{needle:?} not on the tape:\n{}", tape.join("\n")))
    };
    let receipt_at = at("КАССОВЫЙ ЧЕК");
    assert!(at("ДО ЧЕКА: ДОБРО ПОЖАЛОВАТЬ") < at("АКЦИЯ ДНЯ"));
    assert!(at("АКЦИЯ ДНЯ") < receipt_at);
    let footer = format!("ФД: {}  ФП: {:010}", closed.fd_number, closed.fiscal_sign);
    let footer_at = at(&footer);
    assert!(receipt_at < footer_at && footer_at < at("ПОСЛЕ ЧЕКА: СПАСИБО"));
    assert!(at("ПОСЛЕ ЧЕКА: СПАСИБО") < at("ДО ВСТРЕЧИ"));
    let receipt = tape[receipt_at..footer_at].join("\n");
    for needle in [
        "Молоко 3,2%",
        "1 X 100.00 = 100.00",
        "  НДС 22%",
        "Хлеб",
        "2.5 X 40.00 = 100.00",
        "  НДС 10%",
        "ИТОГ: =200.00",
        "НАЛИЧНЫМИ: =150.00",
        "ИНАЯ ФОРМА ОПЛАТЫ: =60.00",
        "СДАЧА: =10.00",
        "СУММА НДС 22%: =18.03",
        "СУММА НДС 10%: =9.09",
        "БАЛЛЫ: 60.00",
    ] {
        assert!(receipt.contains(needle), "{needle:?} missing in\n{receipt}");
    }
    assert_eq!(receipts_on_tape(sim), 1);
    assert_eq!(
        receipts_in_fn(sim),
        vec![(closed.fd_number, 20_000, closed.fiscal_sign)]
    );

    // X report keeps the shift, Z report closes it with a new FD.
    exec(c, &Command::x_report()).await;
    assert!(sim.tape().iter().any(|l| l == "ОТЧЕТ БЕЗ ГАШЕНИЯ"));
    assert_eq!(short_status(c).await.mode_number(), 2);
    assert_eq!(
        fn_status(c).await.last_fd_number,
        closed.fd_number,
        "X is not fiscal"
    );
    exec(c, &Command::z_report()).await;
    assert!(sim.tape().iter().any(|l| l == "ОТЧЕТ О ЗАКРЫТИИ СМЕНЫ"));
    assert_eq!(short_status(c).await.mode_number(), 4);
    let st = fn_status(c).await;
    assert!(!st.shift_open);
    assert_eq!(st.last_fd_number, closed.fd_number + 1);
    assert_eq!(find(c, st.last_fd_number).await.document_type, 5);
    let docs = sim.documents();
    assert_eq!(docs.last().unwrap().kind, FiscalDocKind::CloseShift);
    assert_eq!(docs.last().unwrap().total, 20_000);
    let f = FullStatus::parse(&exec(c, &Command::full_status()).await).unwrap();
    assert_eq!(f.last_closed_shift, 1);
    // A second Z in a closed shift: «Команда не поддерживается в данном режиме».
    assert_eq!(
        device_code(c.execute(&Command::z_report()).await).code,
        0x73
    );
    assert_eq!(receipts_in_fn(sim).len(), 1);
}

#[tokio::test]
async fn duplex_status_and_full_day() {
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);
    status_checks(&mut c, &sim, 0).await;
    full_day(&mut c, &sim).await;
}

#[tokio::test]
async fn tcp_status_and_full_day() {
    let sim = ShtrihSim::new();
    let (addr, handle) = sim.spawn_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut c = client(stream);
    status_checks(&mut c, &sim, 128).await;
    full_day(&mut c, &sim).await;
    drop(c);
    // The emulator serves the next connection with the same state.
    let mut c = client(tokio::net::TcpStream::connect(addr).await.unwrap());
    assert_eq!(fn_status(&mut c).await.last_fd_number, 3);
    drop(handle);
}

#[tokio::test]
async fn pty_status_and_full_day() {
    let sim = ShtrihSim::new();
    let (path, handle) = sim.spawn_pty().unwrap();
    let port = tokio_serial::new(path.to_string_lossy(), 115_200)
        .open_native_async()
        .unwrap();
    let mut c = client(port);
    status_checks(&mut c, &sim, 0).await;
    full_day(&mut c, &sim).await;
    drop(c);
    // Reopen the same path: same device.
    let port = tokio_serial::new(path.to_string_lossy(), 115_200)
        .open_native_async()
        .unwrap();
    let mut c = client(port);
    assert_eq!(fn_status(&mut c).await.last_fd_number, 3);
    drop(handle);
}

#[tokio::test]
async fn cancel_check() {
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);
    open_shift(&mut c).await;
    exec(&mut c, &Command::open_check(CheckType::Sale)).await;
    exec(
        &mut c,
        &Command::operation_v2(&op("Сок", 1_000_000, 12_000, 0b01)).unwrap(),
    )
    .await;
    // Another check cannot be opened over it: «Открыт чек – операция невозможна».
    let e = device_code(c.execute(&Command::open_check(CheckType::Sale)).await);
    assert_eq!(e.code, DeviceError::CHECK_OPEN);
    let r = exec(&mut c, &Command::cancel_check()).await;
    assert_eq!(r.operator(), Some(30));
    assert_eq!(short_status(&mut c).await.mode_number(), 2);
    assert!(sim.tape().iter().any(|l| l == "ЧЕК АННУЛИРОВАН"));
    assert!(receipts_in_fn(&sim).is_empty());
    assert_eq!(
        fn_status(&mut c).await.last_fd_number,
        1,
        "only the shift report"
    );
    // Nothing left to cancel: «Чек закрыт – операция невозможна».
    let e = device_code(c.execute(&Command::cancel_check()).await);
    assert_eq!(
        (e.code, e.meaning),
        (0x55, "Чек закрыт – операция невозможна")
    );
}

#[tokio::test]
async fn device_errors_carry_spec_meaning() {
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);

    // Wrong password.
    c.set_password(12_345);
    let e = device_code(c.execute(&Command::short_status()).await);
    assert_eq!(
        (e.code, e.meaning),
        (DeviceError::BAD_PASSWORD, "Неверный пароль")
    );
    assert_eq!(e.english(), Some("wrong password"));
    c.set_password(PW);
    // FN queries need the system administrator («Пароль системного администратора»).
    c.set_password(1);
    assert_eq!(
        device_code(c.execute(&Command::fn_status()).await).code,
        0x4F
    );
    c.set_password(PW);

    // Paper out.
    sim.set_fault(Fault::PaperOut);
    assert_eq!(short_status(&mut c).await.submode, 1, "passive paper out");
    assert!(!short_status(&mut c).await.flags.receipt_paper_sensor());
    let e = device_code(
        c.execute(&Command::print_string(PrintFlags::receipt(), "x"))
            .await,
    );
    assert_eq!(
        (e.code, e.meaning),
        (DeviceError::NO_PAPER, "Нет чековой ленты")
    );
    let e = device_code(c.execute(&Command::open_shift()).await);
    assert_eq!(e.code, 0x6B);
    sim.clear_fault(Fault::PaperOut);
    assert_eq!(short_status(&mut c).await.submode, 0);

    // 24-hour rule.
    open_shift(&mut c).await;
    sim.advance_clock(Duration::from_secs(25 * 3600));
    assert_eq!(
        short_status(&mut c).await.mode_number(),
        3,
        "shift over 24 h"
    );
    let e = device_code(c.execute(&Command::open_check(CheckType::Sale)).await);
    assert_eq!(
        (e.code, e.meaning),
        (DeviceError::SHIFT_OVER_24H, "Смена превысила 24 часа")
    );
    let e = device_code(
        c.execute(&Command::operation_v2(&op("A", 1_000_000, 100, 0b01)).unwrap())
            .await,
    );
    assert_eq!(e.code, 0x4E);
    assert!(matches!(
        c.execute(&Command::open_check(CheckType::Sale)).await,
        Err(ref err) if err.device_code() == Some(0x4E)
    ));
    // The way out: Z report, new shift.
    exec(&mut c, &Command::z_report()).await;
    open_shift(&mut c).await;
    exec(&mut c, &Command::open_check(CheckType::Sale)).await;
    exec(&mut c, &Command::cancel_check()).await;
    assert!(receipts_in_fn(&sim).is_empty());
}

/// FF46h straight away (it opens the check itself), then FF45h. The fault,
/// if any, is set just before FF45h — the command that must not be lost or
/// doubled.
async fn sale_with_fault<T: AsyncRead + AsyncWrite + Unpin + Send>(
    c: &mut ShtrihClient<T>,
    sim: &ShtrihSim,
    fault: Option<Fault>,
) -> Result<Response, ShtrihError> {
    exec(
        c,
        &Command::operation_v2(&op("Кофе", 1_000_000, 15_000, 0b01)).unwrap(),
    )
    .await;
    exec(
        c,
        &Command::operation_v2(&op("Круассан", 1_000_000, 5_000, 0b10)).unwrap(),
    )
    .await;
    assert_eq!(
        sim.state_summary().open_check,
        Some((CheckKind::Sale, 2, 20_000))
    );
    if let Some(f) = fault {
        sim.set_fault(f);
    }
    c.execute(&Command::close_check_v2(&cash_and_points()).unwrap())
        .await
}

/// Exactly one receipt: in the FN journal, on the tape, and as the host
/// sees it through FF01h/FF0Ah.
async fn assert_one_receipt<T: AsyncRead + AsyncWrite + Unpin + Send>(
    c: &mut ShtrihClient<T>,
    sim: &ShtrihSim,
    closed: &CloseCheckResult,
) {
    assert_eq!(
        receipts_in_fn(sim),
        vec![(closed.fd_number, 20_000, closed.fiscal_sign)]
    );
    assert_eq!(sim.documents().len(), 2, "shift report + one receipt");
    assert_eq!(receipts_on_tape(sim), 1);
    let cuts = sim.tape().iter().filter(|l| *l == TAPE_CUT).count();
    assert_eq!(cuts, 2, "shift report + one receipt");
    assert_eq!(fn_status(c).await.last_fd_number, closed.fd_number);
    assert_eq!(
        find(c, closed.fd_number).await.fiscal_sign,
        Some(closed.fiscal_sign)
    );
    assert_eq!(short_status(c).await.mode_number(), 2, "no check left open");
    // ENQ → NAK: the device holds no answer (our ACKs all arrived).
    assert!(c.recover_pending().await.unwrap().is_none());
    assert!(!sim.state_summary().answer_pending);
    // Closing again is refused, never a second receipt.
    let again = c
        .execute(&Command::close_check_v2(&cash_and_points()).unwrap())
        .await;
    assert_eq!(again.unwrap_err().device_code(), Some(0x55));
    assert_eq!(receipts_in_fn(sim).len(), 1);
}

fn check_close(r: &Response) -> CloseCheckResult {
    let closed = CloseCheckResult::parse(r).unwrap();
    assert_eq!(closed.change, 1_000);
    assert_eq!(closed.fd_number, 2);
    assert_eq!(closed.fiscal_sign, fiscal_sign(2, 20_000));
    closed
}

#[tokio::test]
async fn fault_corrupt_next_answer() {
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);
    open_shift(&mut c).await;
    let r = sale_with_fault(&mut c, &sim, Some(Fault::CorruptNextAnswer))
        .await
        .unwrap();
    let closed = check_close(&r);
    assert_one_receipt(&mut c, &sim, &closed).await;
}

#[tokio::test]
async fn fault_nak_next_frame() {
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);
    open_shift(&mut c).await;
    let r = sale_with_fault(&mut c, &sim, Some(Fault::NakNextFrame))
        .await
        .unwrap();
    let closed = check_close(&r);
    assert_one_receipt(&mut c, &sim, &closed).await;
}

#[tokio::test]
async fn fault_delay_answer_within_timeout() {
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);
    open_shift(&mut c).await;
    let delay = Duration::from_millis(600);
    assert!(delay < c.timeouts().fiscal);
    let t0 = Instant::now();
    let r = sale_with_fault(&mut c, &sim, Some(Fault::DelayAnswer(delay)))
        .await
        .unwrap();
    assert!(t0.elapsed() >= delay);
    sim.clear_fault(Fault::DelayAnswer(delay));
    let closed = check_close(&r);
    assert_one_receipt(&mut c, &sim, &closed).await;
}

#[tokio::test]
async fn fault_drop_link_then_recover_pending() {
    let sim = ShtrihSim::new();
    let (mut c, task) = duplex(&sim);
    open_shift(&mut c).await;
    let lost = sale_with_fault(&mut c, &sim, Some(Fault::DropLinkAfterCommand)).await;
    assert!(
        matches!(lost, Err(ShtrihError::Transport(TransportError::Closed))),
        "{lost:?}"
    );
    task.await.unwrap().unwrap();
    assert!(sim.state_summary().answer_pending);
    // New connection: the answer is still held by the device.
    let (mut c, _task) = duplex(&sim);
    let r = c.recover_pending().await.unwrap().expect("pending answer");
    assert_eq!((r.command, r.error), (0xFF45, 0));
    let closed = check_close(&r);
    assert!(c.recover_pending().await.unwrap().is_none(), "acknowledged");
    assert_one_receipt(&mut c, &sim, &closed).await;
}

#[tokio::test]
async fn fault_drop_link_then_recover_pending_over_tcp() {
    let sim = ShtrihSim::new();
    let (addr, handle) = sim.spawn_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = client(tokio::net::TcpStream::connect(addr).await.unwrap());
    open_shift(&mut c).await;
    let lost = sale_with_fault(&mut c, &sim, Some(Fault::DropLinkAfterCommand)).await;
    assert!(
        matches!(lost, Err(ShtrihError::Transport(TransportError::Closed))),
        "{lost:?}"
    );
    drop(c);
    let mut c = client(tokio::net::TcpStream::connect(addr).await.unwrap());
    let r = c.recover_pending().await.unwrap().expect("pending answer");
    let closed = check_close(&r);
    assert_one_receipt(&mut c, &sim, &closed).await;
    drop(handle);
}

#[tokio::test]
async fn fault_power_loss_while_answer_prepared() {
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);
    open_shift(&mut c).await;
    // The answer is being prepared when the power goes: the receipt is in
    // the FN, the answer is gone.
    // The power goes once FF45h has been executed (the check is closed in
    // the FN) and while its answer is still held back by the delay.
    let s = sim.clone();
    let cut = tokio::spawn(async move {
        while s.state_summary().open_check.is_some() || s.documents().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.set_fault(Fault::PowerLoss);
    });
    let lost = sale_with_fault(
        &mut c,
        &sim,
        Some(Fault::DelayAnswer(Duration::from_millis(900))),
    )
    .await;
    cut.await.unwrap();
    sim.clear_faults();
    assert!(
        matches!(
            lost,
            Err(ShtrihError::Transport(TransportError::AnswerTimeout(_)))
        ),
        "{lost:?}"
    );
    assert!(c.recover_pending().await.unwrap().is_none(), "answer lost");
    // The host learns the outcome from the FN: last FD, then FF0Ah.
    let st = fn_status(&mut c).await;
    assert_eq!(st.last_fd_number, 2);
    let doc = find(&mut c, st.last_fd_number).await;
    assert_eq!(doc.document_type, 3);
    let closed = CloseCheckResult {
        change: 1_000,
        fd_number: st.last_fd_number,
        fiscal_sign: doc.fiscal_sign.unwrap(),
        date_time: None,
    };
    assert_eq!(closed.fiscal_sign, fiscal_sign(2, 20_000));
    assert_one_receipt(&mut c, &sim, &closed).await;
}

#[tokio::test]
async fn fault_power_loss_with_open_check() {
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);
    open_shift(&mut c).await;
    exec(
        &mut c,
        &Command::operation_v2(&op("Кофе", 1_000_000, 15_000, 0b01)).unwrap(),
    )
    .await;
    // Power cycle between commands: the open check is non-volatile.
    sim.set_fault(Fault::PowerLoss);
    assert!(c.recover_pending().await.unwrap().is_none());
    assert_eq!(short_status(&mut c).await.mode_number(), 8);
    exec(
        &mut c,
        &Command::operation_v2(&op("Круассан", 1_000_000, 5_000, 0b10)).unwrap(),
    )
    .await;
    let r = exec(
        &mut c,
        &Command::close_check_v2(&cash_and_points()).unwrap(),
    )
    .await;
    let closed = check_close(&r);
    assert_one_receipt(&mut c, &sim, &closed).await;
}

#[tokio::test]
async fn wrong_answer_layout_is_a_protocol_error() {
    // A status answer parsed as another command is refused, not misread.
    let sim = ShtrihSim::new();
    let (mut c, _task) = duplex(&sim);
    let r = exec(&mut c, &Command::short_status()).await;
    assert!(matches!(
        FullStatus::parse(&r),
        Err(ProtocolError::UnexpectedCommand {
            expected: 0x11,
            got: 0x10
        })
    ));
}
