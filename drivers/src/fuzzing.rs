//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer).
//!
//! Each function takes arbitrary bytes, drives one parser of untrusted
//! input through the crate's public API and returns nothing: the only
//! failures it can show are panics, hangs and unbounded memory. The fuzz
//! targets call these, and `tests/fuzz_corpus.rs` replays the committed
//! corpora through the same functions on stable, so a target cannot rot
//! unnoticed. Not part of the crate's supported API.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::Decoder;

use crate::printer::shtrih::{
    CloseCheckResult, CloseCheckV2, Command, FnDocument, FnShiftParams, FnStatus, FrameDecoder,
    FullStatus, LinkDecoder, Response, Retries, ShortStatus, ShtrihClient, Timeouts,
};
use crate::reader::extract::{
    self, Check, Field, ScanPreset, ScanRegex, ScanRule, ScanRules, SwipeFields, SwipeRule,
};
use crate::reader::framing::{self, FrameCodec, FrameConfig, Suffix};
use crate::reader::gs1;
use crate::reader::hid::{TrackSlot, VendorMsrLayout};
use crate::reader::keyboard::{
    self, BootKeyboardDecoder, KeyDecoder, PosScanDecoder, PosScanLayout, WedgeConfig,
};
use crate::reader::msr;
use crate::sim::escpos::EscPosParser;

/// Splits `data` into the pieces a transport might deliver: each piece's
/// length comes from `sizes` (cycled), 1..=64 bytes, so the fuzzer explores
/// how reads are cut as well as what they hold.
fn chunks<'a>(data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = data;
    let mut i = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(rest.len(), |&s| usize::from(s % 64) + 1);
        i += 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

/// Byte 0 picks the control, the rest is the input.
fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest),
        None => (0, &[]),
    }
}

/// `msr`: a swipe (serial or wedge text) through [`msr::parse`], then, as
/// the reader actor does, through [`extract::extract_swipe`] with rules
/// that reach every field kind.
pub fn msr(data: &[u8]) {
    let Ok(swipe) = msr::parse(data) else {
        return;
    };
    let _ = swipe.account();
    let _ = format!("{swipe:?}");
    let fields = SwipeFields {
        track1_account: swipe.track1.as_ref().map(|t| t.account.as_str()),
        track2_account: swipe.track2.as_ref().map(|t| t.account.as_str()),
        track2_discretionary: swipe.track2.as_ref().map(|t| t.discretionary.as_str()),
        track3_data: swipe.track3.as_ref().map(|t| t.data.as_str()),
    };
    swipe_rules(&fields);
}

fn swipe_rules(fields: &SwipeFields<'_>) {
    let rules = [
        SwipeRule::default(),
        SwipeRule {
            number: vec![Field::Track1Account],
            secret: Some(Field::Track2Discretionary { offset: 7, len: 4 }),
            check: Check::Luhn,
            number_len: Some(12..=19),
        },
        SwipeRule {
            number: vec![Field::Track3 {
                offset: 2,
                len: Some(13),
            }],
            secret: Some(Field::Track3 {
                offset: 15,
                len: None,
            }),
            check: Check::Ean13,
            number_len: None,
        },
    ];
    for rule in &rules {
        if let Ok(got) = extract::extract_swipe(rule, fields) {
            let _ = got.masked_number();
            let _ = format!("{got:?}");
        }
    }
}

/// `framing`: a serial reader's byte stream through [`FrameCodec`] with a
/// configuration chosen by byte 0, cut into reads by byte 1, then every
/// message through [`framing::strip_aim`].
pub fn framing(data: &[u8]) {
    let (control, rest) = split_first(data);
    let (sizes, stream) = split_first(rest);
    let suffix = match control % 6 {
        0 => Suffix::Cr,
        1 => Suffix::Lf,
        2 => Suffix::CrLf,
        3 => Suffix::Etx,
        4 => Suffix::Custom(b"#!".to_vec()),
        _ => Suffix::None,
    };
    let config = FrameConfig {
        prefix: (control & 0x08 != 0).then(|| vec![0x02]),
        suffix,
        inter_char_timeout: Some(Duration::from_millis(50)),
        // Small limits reach the overflow paths with short inputs.
        max_len: if control & 0x10 != 0 { 16 } else { 4096 },
    };
    let Ok(mut codec) = FrameCodec::new(config) else {
        return;
    };
    let sizes = [sizes];
    let mut buf = BytesMut::new();
    let seen = |event: framing::FrameEvent| {
        if let framing::FrameEvent::Message(m) = event {
            let (symbology, payload) = framing::strip_aim(&m);
            if let Some(s) = symbology {
                let _ = s.is_2d();
            }
            assert!(payload.len() <= m.len());
        }
    };
    for chunk in chunks(stream, &sizes) {
        buf.extend_from_slice(chunk);
        while let Some(event) = codec.decode_event(&mut buf) {
            seen(event);
        }
        // An idle gap after some reads, as `FramedReader` would see it.
        if control & 0x20 != 0 && chunk.len() % 3 == 0 {
            while let Some(event) = codec.flush(&mut buf) {
                seen(event);
            }
        }
        assert!(buf.len() <= 4096 + 64, "the codec buffers without bound");
    }
    while let Some(event) = codec.finish(&mut buf) {
        seen(event);
    }
}

/// `extract`: a scan payload through [`framing::strip_aim`] and
/// [`extract::extract_scan`] with the rule set picked by byte 0 (every
/// preset and a regex with a secret group).
pub fn extract(data: &[u8]) {
    let (control, rest) = split_first(data);
    let (_, payload) = framing::strip_aim(rest);
    let text = String::from_utf8_lossy(payload);
    let all = scan_rules();
    let rules = ScanRules {
        // Bits 0..5 choose the rules, bits 6..7 the check digit.
        rules: all
            .iter()
            .enumerate()
            .filter(|(i, _)| control & (1 << i) != 0)
            .map(|(_, r)| r.clone())
            .collect(),
        check: match control >> 6 {
            0 => Check::None,
            1 => Check::Luhn,
            _ => Check::Ean13,
        },
    };
    for payload in [text.as_ref(), text.trim()] {
        if let Ok(got) = extract::extract_scan(&rules, payload) {
            let _ = got.masked_number();
            let _ = format!("{got:?}");
        }
    }
    // The same text as swipe fields, split at '=' like track 2.
    let mut parts = text.splitn(3, '=');
    let fields = SwipeFields {
        track1_account: parts.next(),
        track2_account: parts.next(),
        track2_discretionary: parts.next(),
        track3_data: Some(&text),
    };
    swipe_rules(&fields);
}

/// Every scan rule kind, built once: compiling the regex per input would
/// be most of the target's time.
fn scan_rules() -> &'static [ScanRule] {
    static RULES: std::sync::OnceLock<Vec<ScanRule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let regex =
            ScanRegex::new(r"(?P<number>[0-9]{6,19})(?:[=:](?P<secret>[0-9A-Za-z]{1,16}))?")
                .expect("the fuzzing regex compiles");
        vec![
            ScanRule::Preset(ScanPreset::Digits),
            ScanRule::Preset(ScanPreset::NumberSemicolonSecret),
            ScanRule::Preset(ScanPreset::UrlQuery {
                number_param: "card".to_owned(),
                secret_param: Some("code".to_owned()),
            }),
            ScanRule::Preset(ScanPreset::UrlQuery {
                number_param: "c".to_owned(),
                secret_param: None,
            }),
            ScanRule::Preset(ScanPreset::Ean13),
            ScanRule::Regex(regex),
        ]
    })
}

/// `keyboard`: byte 0 picks a decoder, the rest becomes its input:
/// - 0: Linux key events for [`KeyDecoder`], 4 bytes each (code as
///   little-endian u16, value = byte % 3, milliseconds since the last);
/// - 1, 2: HID boot-keyboard reports (plain, or with report ID 1) for
///   [`BootKeyboardDecoder`], each a length byte (% 12) and the report;
/// - 3: HID POS scanned-data reports for [`PosScanDecoder`] (default layout),
///   each a length byte and the report;
/// - 4: vendor magstripe reports for [`VendorMsrLayout::decode`], each a
///   length byte (two bytes, little-endian, % 400) and the report.
pub fn keyboard(data: &[u8]) {
    let (control, rest) = split_first(data);
    let config = WedgeConfig {
        gap: Duration::from_millis(50),
        max_len: 64,
    };
    let start = Instant::now();
    match control % 5 {
        0 => {
            let mut decoder = KeyDecoder::new(config);
            let mut at = start;
            for ev in rest.chunks_exact(4) {
                let code = u16::from_le_bytes([ev[0], ev[1]]);
                let value = i32::from(ev[2] % 3);
                at += Duration::from_millis(u64::from(ev[3]));
                let _ = decoder.flush_if_idle(at);
                if let Some(m) = decoder.key(code, value, at) {
                    check_message(&m, config.max_len);
                }
                let _ = decoder.deadline();
            }
            if let Some(m) = decoder.flush_if_idle(at + Duration::from_secs(1)) {
                check_message(&m, config.max_len);
            }
        }
        n @ (1 | 2) => {
            let mut decoder = BootKeyboardDecoder::new(config, (n == 2).then_some(1));
            let mut at = start;
            for report in reports(rest, 12) {
                at += Duration::from_millis(u64::from(report.first().copied().unwrap_or(0) % 80));
                if let Ok(messages) = decoder.report(report, at) {
                    for m in &messages {
                        check_message(m, config.max_len);
                    }
                }
            }
            if let Some(m) = decoder.flush_if_idle(at + Duration::from_secs(1)) {
                check_message(&m, config.max_len);
            }
        }
        3 => {
            let mut decoder = PosScanDecoder::with_max_len(PosScanLayout::default(), 256);
            for report in reports(rest, 255) {
                if let Ok(Some(scan)) = decoder.report(report) {
                    let _ = format!("{scan:?}");
                }
                let _ = decoder.is_pending();
            }
        }
        _ => {
            // The layout of `drivers/tests/fixtures/vendor_msr_report.hex`.
            let slot = |length_offset, data_offset| {
                Some(TrackSlot {
                    length_offset,
                    data_offset,
                    max_len: 110,
                })
            };
            let layout = VendorMsrLayout {
                report_id: None,
                tracks: [slot(1, 4), slot(2, 114), slot(3, 224)],
            };
            let mut rest = rest;
            while let [lo, hi, tail @ ..] = rest {
                let len = usize::from(u16::from_le_bytes([*lo, *hi]) % 400).min(tail.len());
                let (report, tail) = tail.split_at(len);
                rest = tail;
                if let Ok(Some(swipe)) = layout.decode(report) {
                    let text = swipe.to_serial_text();
                    msr(text.as_bytes());
                }
            }
        }
    }
}

/// Length-prefixed pieces of `data`, each at most `max` bytes.
fn reports(data: &[u8], max: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&len, tail) = rest.split_first()?;
        let len = usize::from(len % max.max(1)).min(tail.len());
        let (head, tail) = tail.split_at(len);
        rest = tail;
        Some(head)
    })
}

fn check_message(m: &crate::reader::keyboard::KeyMessage, max_len: usize) {
    if let Some(text) = m.text() {
        assert!(text.chars().count() <= max_len, "a message exceeds max_len");
    }
}

/// `shtrih_frame`: device bytes through the Shtrih-M [`FrameDecoder`] and
/// [`LinkDecoder`], cut into reads by byte 0; every frame's body through
/// [`Response::from_body`].
pub fn shtrih_frame(data: &[u8]) {
    let (sizes, stream) = split_first(data);
    let sizes = [sizes];
    let mut frames = FrameDecoder::new();
    let mut link = LinkDecoder::new();
    let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
    for chunk in chunks(stream, &sizes) {
        a.extend_from_slice(chunk);
        b.extend_from_slice(chunk);
        while let Ok(Some(frame)) = frames.decode(&mut a) {
            let _ = frame.command();
            let _ = Response::from_body(&frame.body);
        }
        while let Ok(Some(_)) = link.decode(&mut b) {}
        // A frame is at most STX, LEN, 255 bytes and LRC.
        assert!(
            a.len() <= 258 + 64 && b.len() <= 258 + 64,
            "decoder buffer grows"
        );
    }
    let _ = (frames.skipped(), link.skipped());
}

/// An in-memory device: reads return the scripted bytes in pieces, then
/// end of stream (so the link never waits on a timer); writes vanish.
struct Scripted<'a> {
    input: &'a [u8],
    piece: usize,
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.piece.min(self.input.len()).min(buf.remaining());
        let (head, tail) = self.input.split_at(n);
        buf.put_slice(head);
        self.input = tail;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

thread_local! {
    // One runtime per thread: building one per input would dominate the
    // fuzzer's time.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
}

/// `shtrih_link`: the [`ShtrihClient`] ENQ/ACK/NAK state machine talking to
/// a device that answers with arbitrary bytes (byte 0: command and whether
/// to recover a pending answer first; byte 1: read sizes). The answer goes
/// through the typed parser of the command sent.
pub fn shtrih_link(data: &[u8]) {
    let (control, rest) = split_first(data);
    let (piece, device) = split_first(rest);
    let io = Scripted {
        input: device,
        piece: usize::from(piece % 64) + 1,
    };
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let mut client = ShtrihClient::with_timeouts(io, 30, Timeouts::default());
            client.set_retries(Retries {
                enq: 3,
                send: 3,
                answer: 3,
                pending: 3,
            });
            if control & 0x80 != 0
                && let Ok(Some(r)) = client.recover_pending().await
            {
                let _ = r.operator();
            }
            let (cmd, parse): (Command, fn(&Response)) = match control % 7 {
                0 => (Command::short_status(), |r| drop(ShortStatus::parse(r))),
                1 => (Command::full_status(), |r| drop(FullStatus::parse(r))),
                2 => (Command::fn_status(), |r| drop(FnStatus::parse(r))),
                3 => (Command::fn_find_document(1), |r| drop(FnDocument::parse(r))),
                4 => (Command::fn_shift_params(), |r| {
                    drop(FnShiftParams::parse(r))
                }),
                5 => (
                    Command::close_check_v2(&CloseCheckV2::cash(100, 1)).expect("valid command"),
                    |r| drop(CloseCheckResult::parse(r)),
                ),
                _ => (Command::x_report(), |r| {
                    let _ = r.operator();
                }),
            };
            if let Ok(r) = client.execute(&cmd).await {
                parse(&r);
            }
        });
    });
}

/// `escpos_sim`: host bytes through the ESC/POS simulator's parser (with
/// pixels kept, as the preview does), cut into writes by byte 0, then the
/// paper rendered as text.
pub fn escpos_sim(data: &[u8]) {
    let (sizes, stream) = split_first(data);
    let sizes = [sizes];
    let mut parser = EscPosParser::new().keep_pixels();
    for chunk in chunks(stream, &sizes) {
        let _ = parser.feed(chunk);
    }
    parser.flush();
    let _ = parser.unknown_commands();
    let _ = parser.errors().len();
    let _ = parser.paper().render_text(48);
    for r in parser.take_receipts() {
        let _ = r.render_text(32);
    }
}

/// `gs1`: a scanned label through the AIM split and the GS1 element-string
/// parser, as `scan` events do; a parsed string must keep every element's
/// value inside the input it came from.
pub fn gs1(data: &[u8]) {
    let (_, label) = framing::strip_aim(data);
    if let Ok(parsed) = gs1::parse(label) {
        let _ = parsed.is_marking_code();
        let total: usize = parsed.elements.iter().map(|e| e.value.len()).sum();
        assert!(total <= label.len(), "elements longer than the label");
    }
}

/// `recording`: a key-event recording file (the wedge replay seam a reader
/// entry may name) through its line parser.
pub fn recording(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keyboard::parse_recording(text);
    }
}

/// Feeds every file of `corpus/<target>/` to `f`, for the stable tests that
/// replay the committed corpora (this crate's and the daemon's). Panics on
/// a missing or empty corpus, since a replay of nothing proves nothing.
pub fn replay(corpus: &std::path::Path, target: &str, f: fn(&[u8])) {
    let dir = corpus.join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a readable corpus file");
        // The file's name in the panic message points at the input.
        eprintln!("{target}: {}", path.display());
        f(&data);
        count += 1;
    }
    assert!(count > 0, "corpus {} is empty", dir.display());
}
