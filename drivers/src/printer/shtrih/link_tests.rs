//! The link layer against a scripted fake device on a `tokio::io::duplex`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::commands::code;
use super::frame::{ACK, ENQ, NAK, STX, encode_frame, lrc};
use super::*;

const PWD: u32 = 30;

fn timeouts() -> Timeouts {
    Timeouts {
        // Generous: a loaded 2-core CI box must not trip them.
        byte: Duration::from_millis(150),
        enq: Duration::from_millis(300),
        ack: Duration::from_millis(300),
        query: Duration::from_millis(600),
        print: Duration::from_millis(600),
        fiscal: Duration::from_millis(600),
        report: Duration::from_millis(600),
        pending: Duration::from_millis(600),
    }
}

fn client(io: DuplexStream) -> ShtrihClient<DuplexStream> {
    ShtrihClient::with_timeouts(io, PWD, timeouts())
}

/// The device side, byte by byte.
struct Dev(DuplexStream);

impl Dev {
    async fn byte(&mut self) -> u8 {
        self.0.read_u8().await.expect("host closed")
    }

    async fn expect(&mut self, want: u8) {
        let got = self.byte().await;
        assert_eq!(got, want, "device expected {want:#04X}, got {got:#04X}");
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).await.unwrap();
    }

    /// Reads one command frame and checks its LRC; returns CMD+DATA.
    async fn frame(&mut self) -> Vec<u8> {
        self.expect(STX).await;
        let len = self.byte().await;
        let mut body = vec![0; usize::from(len)];
        self.0.read_exact(&mut body).await.unwrap();
        let l = self.byte().await;
        assert_eq!(l, len ^ lrc(&body), "bad LRC from host");
        body
    }

    /// ENQ → NAK, then the frame → ACK.
    async fn take_command(&mut self) -> Vec<u8> {
        self.expect(ENQ).await;
        self.send(&[NAK]).await;
        let body = self.frame().await;
        self.send(&[ACK]).await;
        body
    }

    async fn answer(&mut self, body: &[u8]) {
        self.send(&encode_frame(body).unwrap()).await;
        self.expect(ACK).await;
    }
}

fn pair() -> (ShtrihClient<DuplexStream>, Dev) {
    let (a, b) = duplex(1024);
    (client(a), Dev(b))
}

const SHORT_STATUS_ANSWER: [u8; 15] = [
    0x10, 0x00, 0x1E, 0x82, 0x02, 0x04, 0x00, 0x00, 0x5A, 0x60, 0x00, 0, 0, 0, 0,
];

#[tokio::test]
async fn normal_exchange() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        let body = d.take_command().await;
        assert_eq!(body, [0x10, 0x1E, 0x00, 0x00, 0x00]);
        d.answer(&SHORT_STATUS_ANSWER).await;
        d
    });
    let r = c.execute(&Command::short_status()).await.unwrap();
    let s = ShortStatus::parse(&r).unwrap();
    assert_eq!(s.mode_number(), 4);
    dev.await.unwrap();
}

#[tokio::test]
async fn exact_bytes_on_the_wire() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.expect(ENQ).await;
        d.send(&[NAK]).await;
        let mut wire = [0u8; 8];
        d.0.read_exact(&mut wire).await.unwrap();
        assert_eq!(wire, [0x02, 0x05, 0x10, 0x1E, 0x00, 0x00, 0x00, 0x0B]);
        d.send(&[ACK]).await;
        d.answer(&SHORT_STATUS_ANSWER).await;
    });
    c.execute(&Command::short_status()).await.unwrap();
    dev.await.unwrap();
}

#[tokio::test]
async fn nak_on_frame_resends() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.expect(ENQ).await;
        d.send(&[NAK]).await;
        let first = d.frame().await;
        d.send(&[NAK]).await;
        let second = d.frame().await;
        assert_eq!(first, second);
        d.send(&[ACK]).await;
        d.answer(&[0x88, 0x00, 0x1E]).await;
    });
    let r = c.execute(&Command::cancel_check()).await.unwrap();
    assert_eq!(r.operator(), Some(30));
    dev.await.unwrap();
}

#[tokio::test]
async fn frame_naked_forever_is_bounded() {
    let (mut c, mut d) = pair();
    c.set_retries(Retries {
        send: 3,
        ..Retries::default()
    });
    let dev = tokio::spawn(async move {
        d.expect(ENQ).await;
        d.send(&[NAK]).await;
        for _ in 0..3 {
            d.frame().await;
            d.send(&[NAK]).await;
        }
    });
    let e = c.execute(&Command::cancel_check()).await.unwrap_err();
    assert!(
        matches!(
            e,
            ShtrihError::Protocol(ProtocolError::FrameRejected { attempts: 3 })
        ),
        "{e:?}"
    );
    dev.await.unwrap();
}

#[tokio::test]
async fn bad_lrc_answer_is_naked_and_reread() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.take_command().await;
        let mut bad = encode_frame(&SHORT_STATUS_ANSWER).unwrap();
        *bad.last_mut().unwrap() ^= 0xFF;
        d.send(&bad).await;
        d.expect(NAK).await;
        // «ККТ ждет уведомления ENQ для повторения ответа».
        d.expect(ENQ).await;
        d.send(&[ACK]).await;
        d.answer(&SHORT_STATUS_ANSWER).await;
    });
    c.execute(&Command::short_status()).await.unwrap();
    dev.await.unwrap();
}

#[tokio::test]
async fn bad_lrc_forever_is_bounded() {
    let (mut c, mut d) = pair();
    c.set_retries(Retries {
        answer: 2,
        ..Retries::default()
    });
    let dev = tokio::spawn(async move {
        d.take_command().await;
        let mut bad = encode_frame(&SHORT_STATUS_ANSWER).unwrap();
        *bad.last_mut().unwrap() ^= 0xFF;
        d.send(&bad).await;
        d.expect(NAK).await;
        d.expect(ENQ).await;
        d.send(&[ACK]).await;
        d.send(&bad).await;
        d.expect(NAK).await;
    });
    let e = c.execute(&Command::short_status()).await.unwrap_err();
    assert!(
        matches!(
            e,
            ShtrihError::Protocol(ProtocolError::BadAnswer { attempts: 2 })
        ),
        "{e:?}"
    );
    dev.await.unwrap();
}

#[tokio::test]
async fn answer_broken_off_mid_frame_is_naked() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.take_command().await;
        let good = encode_frame(&SHORT_STATUS_ANSWER).unwrap();
        d.send(&good[..6]).await;
        // Stall past the byte timeout.
        d.expect(NAK).await;
        d.expect(ENQ).await;
        d.send(&[ACK]).await;
        d.answer(&SHORT_STATUS_ANSWER).await;
    });
    c.execute(&Command::short_status()).await.unwrap();
    dev.await.unwrap();
}

#[tokio::test]
async fn enq_answered_by_ack_reads_pending_answer_first() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.expect(ENQ).await;
        d.send(&[ACK]).await;
        // The answer to an earlier 17h still waiting.
        d.answer(&[0x17, 0x00, 0x1E]).await;
        let body = d.take_command().await;
        assert_eq!(body[0], 0x10);
        d.answer(&SHORT_STATUS_ANSWER).await;
    });
    let r = c.execute(&Command::short_status()).await.unwrap();
    assert_eq!(r.command, code::SHORT_STATUS);
    dev.await.unwrap();
}

#[tokio::test]
async fn no_answer_retries_enq_then_fails() {
    let (mut c, mut d) = pair();
    c.set_retries(Retries {
        enq: 3,
        ..Retries::default()
    });
    let dev = tokio::spawn(async move {
        for _ in 0..3 {
            d.expect(ENQ).await;
        }
        d
    });
    let e = c.execute(&Command::short_status()).await.unwrap_err();
    assert!(
        matches!(
            e,
            ShtrihError::Transport(TransportError::NoAnswer { attempts: 3 })
        ),
        "{e:?}"
    );
    let mut d = dev.await.unwrap();
    // Nothing beyond the three ENQs.
    drop(c);
    let mut rest = Vec::new();
    d.0.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn garbage_before_enq_answer_is_skipped() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.expect(ENQ).await;
        d.send(&[0xFF, 0x00, 0x33, 0x02]).await;
        d.send(&[NAK]).await;
        d.frame().await;
        d.send(&[0x7E, ACK]).await;
        d.send(&[0x00, 0x42]).await;
        d.answer(&SHORT_STATUS_ANSWER).await;
    });
    c.execute(&Command::short_status()).await.unwrap();
    dev.await.unwrap();
}

#[tokio::test]
async fn lost_ack_is_probed_with_enq_not_resent() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.expect(ENQ).await;
        d.send(&[NAK]).await;
        d.frame().await;
        // Our ACK "got lost": the host asks with ENQ instead of resending.
        d.expect(ENQ).await;
        d.send(&[ACK]).await;
        d.answer(&[0x17, 0x00, 0x1E]).await;
    });
    c.execute(&Command::print_string(PrintFlags::receipt(), "x"))
        .await
        .unwrap();
    dev.await.unwrap();
}

#[tokio::test]
async fn answer_split_into_single_bytes() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.take_command().await;
        for b in encode_frame(&SHORT_STATUS_ANSWER).unwrap() {
            d.send(&[b]).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        d.expect(ACK).await;
    });
    c.execute(&Command::short_status()).await.unwrap();
    dev.await.unwrap();
}

#[tokio::test]
async fn device_error_is_reported() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.take_command().await;
        d.answer(&[0x8D, 0x4A, 0x1E]).await;
    });
    let e = c
        .execute(&Command::open_check(CheckType::Sale))
        .await
        .unwrap_err();
    match e {
        ShtrihError::Device(DeviceError { code, meaning }) => {
            assert_eq!(code, 0x4A);
            assert_eq!(meaning, "Открыт чек – операция невозможна");
        }
        other => panic!("{other:?}"),
    }
    dev.await.unwrap();
}

#[tokio::test]
async fn ff_command_error_after_code() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        let body = d.take_command().await;
        assert_eq!(&body[..2], &[0xFF, 0x46]);
        assert_eq!(body.len(), 2 + 4 + 26 + 4);
        d.answer(&[0xFF, 0x46, 0x00]).await;
        let body = d.take_command().await;
        assert_eq!(&body[..2], &[0xFF, 0x45]);
        let mut ans = vec![0xFF, 0x45, 0x00, 0, 0, 0, 0, 0];
        ans.extend(5u32.to_le_bytes());
        ans.extend(123_456u32.to_le_bytes());
        d.answer(&ans).await;
    });
    let op = OperationV2 {
        kind: OperationType::Income,
        quantity: 1_000_000,
        price: 100,
        sum: None,
        tax: None,
        tax_rate: 6,
        department: 1,
        payment_method: 4,
        payment_object: 1,
        name: "Вода".into(),
    };
    c.execute(&Command::operation_v2(&op).unwrap())
        .await
        .unwrap();
    let r = c
        .execute(&Command::close_check_v2(&CloseCheckV2::cash(100, 1)).unwrap())
        .await
        .unwrap();
    let res = CloseCheckResult::parse(&r).unwrap();
    assert_eq!((res.fd_number, res.fiscal_sign), (5, 123_456));
    dev.await.unwrap();
}

#[tokio::test]
async fn wrong_command_echo() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.take_command().await;
        d.answer(&[0x11, 0x00, 0x1E]).await;
    });
    let e = c.execute(&Command::short_status()).await.unwrap_err();
    assert!(
        matches!(
            e,
            ShtrihError::Protocol(ProtocolError::UnexpectedCommand {
                expected: 0x10,
                got: 0x11
            })
        ),
        "{e:?}"
    );
    dev.await.unwrap();
}

#[tokio::test]
async fn no_answer_frame_times_out() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.take_command().await;
        d
    });
    let e = c.execute(&Command::short_status()).await.unwrap_err();
    assert!(
        matches!(e, ShtrihError::Transport(TransportError::AnswerTimeout(_))),
        "{e:?}"
    );
    dev.await.unwrap();
}

#[tokio::test]
async fn recover_pending_reads_held_answer() {
    let (mut c, mut d) = pair();
    let dev = tokio::spawn(async move {
        d.expect(ENQ).await;
        d.send(&[ACK]).await;
        d.answer(&[0x41, 0x00, 0x1E]).await;
        d.expect(ENQ).await;
        d.send(&[NAK]).await;
    });
    let r = c.recover_pending().await.unwrap().unwrap();
    assert_eq!((r.command, r.error), (code::Z_REPORT, 0));
    assert_eq!(c.recover_pending().await.unwrap(), None);
    dev.await.unwrap();
}

#[tokio::test]
async fn closed_link_is_transport_error() {
    let (mut c, d) = pair();
    drop(d);
    let e = c.execute(&Command::short_status()).await.unwrap_err();
    assert!(matches!(e, ShtrihError::Transport(_)), "{e:?}");
}
