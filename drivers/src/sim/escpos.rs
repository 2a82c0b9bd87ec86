//! A virtual ESC/POS receipt printer.
//!
//! [`EscPosParser`] turns the byte stream a driver sends back into
//! [`Paper`]: receipts made of styled text lines, QR codes, barcodes, raster
//! images and cuts. [`EscPosSim`] wraps the parser in a device that serves a
//! byte stream (TCP on loopback, a pty pair, or any `AsyncRead + AsyncWrite`),
//! answers `DLE EOT n` status requests and can be put into a fault
//! ([`SimFault`]) at runtime. [`Receipt::render_text`] shows a receipt as the
//! paper would look, for `posbridge demo`.
//!
//! # Parsing model
//!
//! * The parser is fed chunks split anywhere; an incomplete command is kept
//!   (at most [`MAX_BUFFERED`] bytes plus a few header bytes) until the rest
//!   arrives, and large payloads (raster data, graphics, unsupported 2-D
//!   codes) are skipped with a counter, never buffered. Feeding a stream in
//!   one piece or byte by byte gives the same paper.
//! * Text bytes are kept raw until the line ends or the code page changes and
//!   then decoded with the current code page (see [`default_codepages`]).
//! * A line's `bold`, `underline`, `double_width` and `double_height` are set
//!   if any text of the line was printed with that style; `align` is the
//!   alignment in effect when the line's first character arrived (real
//!   printers only honour `ESC a` at the beginning of a line).
//! * `LF` ends a line (an empty one is a blank line); `ESC d n` is `n` line
//!   feeds (`n = 0` only prints a pending line); `ESC J n` prints a pending
//!   line. A line longer than [`MAX_LINE_BYTES`] bytes wraps, as on paper.
//! * `ESC @` resets styles and the code page and, like a real printer,
//!   **discards** text not yet ended by a line feed.
//! * A receipt ends at a cut (`GS V`, legacy `ESC i` / `ESC m`) or when
//!   [`EscPosParser::flush`] is called; a cut with nothing on the paper since
//!   the previous cut does not start an empty receipt.
//! * Unknown `ESC x`, `GS x` and `FS x` sequences are consumed
//!   conservatively: only the introducer and the command byte (2 bytes; 3 for
//!   `ESC GS x`) are eaten, any parameter bytes that follow are then treated
//!   as text, as a confused printer would print them. Each one increments
//!   [`Paper::unknown_commands`]. Known but unsupported commands (page mode,
//!   NV images, user-defined characters, PDF417 and other 2-D codes, ...) are
//!   consumed with their exact length and also counted there when they would
//!   have put something on the paper.
//! * Requests that make a real printer answer other than `DLE EOT 1..4`
//!   (`GS I`, `GS r`, `GS ( k` fn 82, `DLE EOT 7/8`) are consumed without an
//!   answer. Real-time commands are recognised only at command boundaries,
//!   not inside the parameters of another command.
//!
//! # Bounds
//!
//! A receipt holds at most [`MAX_LINES`] lines ([`MAX_QR`] QR codes,
//! [`MAX_BARCODES`] barcodes, [`MAX_IMAGES`] images); a QR payload is at most
//! [`MAX_QR_BYTES`] bytes; a raster image declared larger than
//! [`MAX_IMAGE_DOTS`]² or with more than [`MAX_IMAGE_BYTES`] of data is
//! recorded as an error and its declared data is skipped (a real printer
//! would consume it too). At most [`MAX_RETAINED_RECEIPTS`] finished receipts
//! (and about [`MAX_RETAINED_BYTES`] of their content) are kept, the oldest
//! dropped first; at most [`MAX_ERRORS`] errors are kept.
//!
//! # Faults and buffering
//!
//! With [`SimFault::PaperEnd`], [`SimFault::CoverOpen`] or
//! [`SimFault::Offline`] set the simulator keeps answering `DLE EOT` (it is a
//! real-time command) but prints nothing: received bytes go to an
//! *unprinted* buffer, printed as soon as the fault is cleared. When that
//! buffer holds [`MAX_UNPRINTED`] bytes the simulator stops reading (flow
//! control / TCP back-pressure) until the fault clears.
//! [`SimFault::PaperNearEnd`] only changes the status bytes.
//!
//! # Pty
//!
//! [`spawn_pty`] uses `tokio_serial::SerialStream::pair()` and keeps both the
//! master (served) and its own slave fd open, so the master never sees `EIO`
//! when the daemon closes and reopens the slave path. The fds are **not**
//! marked `FD_CLOEXEC` (this needs `fcntl`, and neither `nix` nor `libc` is a
//! dependency of this crate): a child process spawned while the simulator runs
//! inherits them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use encoding_rs::Encoding;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Most lines one receipt holds; further lines are dropped (error recorded).
pub const MAX_LINES: usize = 10_000;
/// Most bytes of one QR payload (the QR code capacity, numeric mode).
pub const MAX_QR_BYTES: usize = 7089;
/// Most QR codes one receipt holds.
pub const MAX_QR: usize = 256;
/// Most barcodes one receipt holds.
pub const MAX_BARCODES: usize = 1024;
/// Most images one receipt holds.
pub const MAX_IMAGES: usize = 1024;
/// Largest raster image side, in dots.
pub const MAX_IMAGE_DOTS: u32 = 4096;
/// Largest raster image data, in bytes.
pub const MAX_IMAGE_BYTES: u64 = 4 * 1024 * 1024;
/// Raw bytes of text after which a line wraps.
pub const MAX_LINE_BYTES: usize = 1024;
/// Largest command kept in memory while waiting for its end.
pub const MAX_BUFFERED: usize = 8 * 1024;
/// Longest NUL-terminated barcode data (`GS k m d... NUL`, m = 0..6).
pub const MAX_NUL_BARCODE: usize = 255;
/// Most finished receipts kept by a parser.
pub const MAX_RETAINED_RECEIPTS: usize = 1000;
/// Approximate content bytes of finished receipts kept by a parser.
pub const MAX_RETAINED_BYTES: usize = 64 * 1024 * 1024;
/// Most errors kept in [`Paper::errors`].
pub const MAX_ERRORS: usize = 64;
/// Bytes the simulator buffers while a fault stops printing.
pub const MAX_UNPRINTED: usize = 1024 * 1024;

const HT: u8 = 0x09;
const LF: u8 = 0x0A;
const FF: u8 = 0x0C;
const DLE: u8 = 0x10;
const EOT: u8 = 0x04;
const ENQ: u8 = 0x05;
const DC4: u8 = 0x14;
const ESC: u8 = 0x1B;
const FS: u8 = 0x1C;
const GS: u8 = 0x1D;

/// Horizontal alignment (`ESC a n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Align {
    #[default]
    Left,
    Center,
    Right,
}

/// How the paper was cut (`GS V`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CutKind {
    Full,
    Partial,
}

/// One printed line of text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Line {
    pub text: String,
    pub bold: bool,
    pub underline: bool,
    pub double_width: bool,
    pub double_height: bool,
    pub align: Align,
}

/// What a [`Block`] of a receipt's layout refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BlockKind {
    Line,
    Qr,
    Barcode,
    Image,
}

/// The order things were printed in: `index` points into the receipt's
/// `lines`, `qr`, `barcodes` or `images`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Block {
    pub kind: BlockKind,
    pub index: usize,
    pub align: Align,
}

/// One receipt: everything printed up to a cut.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Receipt {
    pub lines: Vec<Line>,
    /// QR payloads (decoded as UTF-8, lossy).
    pub qr: Vec<String>,
    /// `(kind, data)`, kind one of `UPC-A`, `UPC-E`, `EAN13`, `EAN8`,
    /// `CODE39`, `ITF`, `CODABAR`, `CODE93`, `CODE128`.
    pub barcodes: Vec<(String, String)>,
    /// `(width, height)` in dots.
    pub images: Vec<(u32, u32)>,
    pub cut: Option<CutKind>,
    /// Everything above in paper order.
    pub layout: Vec<Block>,
    /// How the QR codes, barcodes and images were drawn, for
    /// [`crate::sim::render`]. Not serialized: the JSON view of the paper
    /// stays the text model.
    #[serde(skip)]
    pub drawing: Drawing,
}

/// Settings in effect when a QR code was printed (`GS ( k` fn 67 / 69).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QrDrawing {
    /// Module size in dots (1..16; printers default to 3).
    pub module_size: u8,
    /// Error correction: b'L', b'M', b'Q' or b'H'.
    pub ec: u8,
}

/// Settings in effect when a barcode was printed (`GS h`, `GS w`, `GS H`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarcodeDrawing {
    /// Bar height in dots (`GS h`, default 162).
    pub height: u8,
    /// Narrow module width in dots (`GS w`, default 3).
    pub module_width: u8,
    /// HRI position (`GS H`): 0 none, 1 above, 2 below, 3 both.
    pub hri: u8,
    /// The data bytes as sent (for CODE128 with its `{A`/`{B`/`{C` codes).
    pub raw: Vec<u8>,
}

/// The dots of a raster image, rows packed MSB first (`ceil(width / 8)`
/// bytes per row, 1 = black), and its `GS v 0` scale factors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePixels {
    pub width: u32,
    pub height: u32,
    pub rows: Vec<u8>,
    /// Horizontal and vertical magnification (1 or 2).
    pub scale: (u8, u8),
}

/// Drawing details of a [`Receipt`], index-aligned with its `qr`,
/// `barcodes` and `images`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Drawing {
    pub qr: Vec<QrDrawing>,
    pub barcodes: Vec<BarcodeDrawing>,
    /// `None` unless the parser keeps pixels ([`EscPosParser::keep_pixels`])
    /// and the image's data arrived.
    pub images: Vec<Option<ImagePixels>>,
}

/// Raster data being collected while it is skipped.
#[derive(Debug)]
struct Capture {
    /// Index into the receipt's images, or `None` for `GS ( L` stored
    /// graphics (printed later).
    image: Option<usize>,
    width: u32,
    height: u32,
    scale: (u8, u8),
    rows: Vec<u8>,
}

/// A cash drawer kick (`ESC p m t1 t2` or `DLE DC4 1 m t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DrawerKick {
    /// Connector pin: 2 or 5.
    pub pin: u8,
    pub on_ms: u32,
    pub off_ms: u32,
}

/// Something in the stream the simulator refused or could not print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum SimError {
    #[error("image {width}x{height} ({bytes} bytes) exceeds the limits; data skipped")]
    ImageTooLarge { width: u32, height: u32, bytes: u64 },
    #[error("QR payload of {len} bytes exceeds {MAX_QR_BYTES}; skipped")]
    QrTooLong { len: usize },
    #[error("QR print without stored data")]
    QrEmpty,
    #[error("receipt exceeds {MAX_LINES} lines; further lines dropped")]
    TooManyLines,
    #[error("too many {0} on one receipt; dropped")]
    TooManyItems(&'static str),
    #[error("barcode data not NUL-terminated within {MAX_NUL_BARCODE} bytes")]
    BarcodeUnterminated,
    #[error("malformed {0} command; skipped")]
    Malformed(&'static str),
    #[error("unknown code page {0}; printing as PC437")]
    UnknownCodePage(u8),
    #[error("connection error: {0}")]
    Io(String),
}

/// A snapshot of everything printed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Paper {
    /// Finished receipts (ended by a cut or `flush`), oldest first.
    pub receipts: Vec<Receipt>,
    /// The receipt being printed (not cut yet).
    pub current: Receipt,
    pub unknown_commands: u64,
    pub errors: Vec<SimError>,
    pub errors_dropped: u64,
    pub drawer_kicks: u64,
    pub last_drawer_kick: Option<DrawerKick>,
    /// `DLE EOT n` requests seen by the parser.
    pub status_requests: u64,
    /// Finished receipts dropped to respect the retention bounds.
    pub receipts_dropped: u64,
}

/// The code pages of `ESC t n` the parser knows by default.
///
/// | n  | encoding     | printers |
/// |----|--------------|----------|
/// | 0  | PC437 (built in) | all (power-on default) |
/// | 6  | windows-1251 | Rongta (Epson: Hiragana) |
/// | 7  | IBM866       | Rongta (Epson: Kanji) |
/// | 16 | windows-1252 | Epson WPC1252 |
/// | 17 | IBM866       | Epson PC866 |
/// | 23 | windows-1251 | Xprinter (unverified) |
/// | 46 | windows-1251 | Epson WPC1251 |
///
/// A page missing from the table prints as PC437 and records
/// [`SimError::UnknownCodePage`]. PC437 is built in (encoding_rs has no
/// IBM437); putting `0` in a custom table overrides it.
pub fn default_codepages() -> HashMap<u8, &'static Encoding> {
    HashMap::from([
        (6, encoding_rs::WINDOWS_1251),
        (7, encoding_rs::IBM866),
        (16, encoding_rs::WINDOWS_1252),
        (17, encoding_rs::IBM866),
        (23, encoding_rs::WINDOWS_1251),
        (46, encoding_rs::WINDOWS_1251),
    ])
}

/// The code pages of Star's `ESC GS t n` the parser knows by default:
/// 0, 1 and 3 → PC437, 10 → IBM866, 32 → windows-1252, 34 → windows-1251
/// (from the Star line-mode manual; verify against your model).
pub fn default_star_codepages() -> HashMap<u8, &'static Encoding> {
    HashMap::from([
        (10, encoding_rs::IBM866),
        (32, encoding_rs::WINDOWS_1252),
        (34, encoding_rs::WINDOWS_1251),
    ])
}

/// Upper half of code page 437.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

fn decode_cp437(bytes: &[u8], out: &mut String) {
    decode_high(bytes, CP437_HIGH, out);
}

/// ASCII below 80h, `high`'s characters (128 of them) above.
fn decode_high(bytes: &[u8], high: &str, out: &mut String) {
    for &b in bytes {
        if b < 0x80 {
            out.push(b as char);
        } else {
            out.push(high.chars().nth(usize::from(b - 0x80)).unwrap_or('?'));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodePage {
    Cp437,
    Enc(&'static Encoding),
    /// ASCII, then 128 characters for 80h…FFh (see [`super::codepages`]).
    High(&'static str),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    underline: bool,
    double_width: bool,
    double_height: bool,
    align: Align,
}

#[derive(Debug, Default)]
struct LineBuf {
    started: bool,
    raw: Vec<u8>,
    raw_total: usize,
    line: Line,
}

/// A stateful ESC/POS parser fed with byte chunks split anywhere.
#[derive(Debug)]
pub struct EscPosParser {
    codepages: HashMap<u8, &'static Encoding>,
    star_codepages: HashMap<u8, &'static Encoding>,
    /// `ESC t n` pages decoded by a 128-character table (checked first).
    high_pages: HashMap<u8, &'static str>,
    codepage: CodePage,
    style: Style,
    line: LineBuf,
    receipt: Receipt,
    receipt_lines_full: bool,
    paper: Paper,
    retained_bytes: usize,
    /// Bytes of an incomplete command.
    buf: Vec<u8>,
    /// Bytes of a payload still to be skipped.
    skip: u64,
    qr_data: Option<String>,
    graphics: Option<(u32, u32)>,
    /// Keep raster pixels (for rendering); off by default to bound memory.
    keep_pixels: bool,
    capture: Option<Capture>,
    graphics_pixels: Option<ImagePixels>,
    qr_style: QrDrawing,
    barcode_height: u8,
    barcode_width: u8,
    hri: u8,
}

impl Default for EscPosParser {
    fn default() -> Self {
        Self::new()
    }
}

const QR_DEFAULT: QrDrawing = QrDrawing {
    module_size: 3,
    ec: b'L',
};

fn barcode_kind(m: u8) -> Option<&'static str> {
    Some(match m {
        0 | 65 => "UPC-A",
        1 | 66 => "UPC-E",
        2 | 67 => "EAN13",
        3 | 68 => "EAN8",
        4 | 69 => "CODE39",
        5 | 70 => "ITF",
        6 | 71 => "CODABAR",
        72 => "CODE93",
        73 => "CODE128",
        _ => return None,
    })
}

/// CODE128 data as humans read it: code set selectors (`{A`, `{B`, `{C`)
/// and function codes removed, code set C pairs shown as two digits.
fn code128_text(data: &[u8]) -> String {
    let mut out = String::new();
    let mut set_c = false;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b == b'{' && i + 1 < data.len() {
            match data[i + 1] {
                b'A' | b'B' => set_c = false,
                b'C' => set_c = true,
                b'{' => out.push('{'),
                _ => {}
            }
            i += 2;
            continue;
        }
        if set_c {
            out.push_str(&format!("{b:02}"));
        } else {
            out.push(char::from(b));
        }
        i += 1;
    }
    out
}

/// EAN-13 data as printed: with 12 digits the printer adds the check digit
/// (Epson `GS k`, m = 2 / 67 take 12 or 13 digits); 13 digits print as sent.
fn ean13_text(data: &[u8]) -> String {
    let mut text = latin1(data);
    if data.len() == 12 && data.iter().all(u8::is_ascii_digit) {
        let sum: u32 = data
            .iter()
            .enumerate()
            .map(|(i, &d)| u32::from(d - b'0') * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        text.push(char::from(b'0' + ((10 - sum % 10) % 10) as u8));
    }
    text
}

fn latin1(data: &[u8]) -> String {
    data.iter().map(|&b| char::from(b)).collect()
}

fn receipt_weight(r: &Receipt) -> usize {
    r.lines.iter().map(|l| l.text.len() + 32).sum::<usize>()
        + r.qr.iter().map(|q| q.len() + 32).sum::<usize>()
        + r.barcodes
            .iter()
            .map(|(k, d)| k.len() + d.len() + 32)
            .sum::<usize>()
        + r.images.len() * 16
        + r.drawing
            .images
            .iter()
            .flatten()
            .map(|p| p.rows.len())
            .sum::<usize>()
        + r.layout.len() * 24
}

fn is_empty_receipt(r: &Receipt) -> bool {
    r.layout.is_empty()
}

impl EscPosParser {
    /// A parser with [`default_codepages`] and [`default_star_codepages`].
    pub fn new() -> Self {
        Self::with_codepages(default_codepages())
    }

    /// The `ESC t n` numbers of `profile` in the ESC/POS printer capability
    /// database (e.g. `RP326`, `TM-T88V`; see [`super::codepages`]) replace
    /// the default ones; pages the database cannot identify print as PC437
    /// with [`SimError::UnknownCodePage`]. `None` for a profile not in it.
    pub fn with_db_profile(mut self, profile: &str) -> Option<Self> {
        use super::codepages::{PageDecoder, decoder, profile_pages};
        for &(n, name) in profile_pages(profile)? {
            self.codepages.remove(&n);
            self.high_pages.remove(&n);
            match decoder(name) {
                Some(PageDecoder::Encoding(e)) => {
                    self.codepages.insert(n, e);
                }
                Some(PageDecoder::HighHalf(h)) => {
                    self.high_pages.insert(n, h);
                }
                None => {}
            }
        }
        Some(self)
    }

    /// A parser with its own `ESC t n` table.
    pub fn with_codepages(codepages: HashMap<u8, &'static Encoding>) -> Self {
        let codepage = match codepages.get(&0) {
            Some(e) => CodePage::Enc(e),
            None => CodePage::Cp437,
        };
        EscPosParser {
            codepages,
            star_codepages: default_star_codepages(),
            high_pages: HashMap::new(),
            codepage,
            style: Style::default(),
            line: LineBuf::default(),
            receipt: Receipt::default(),
            receipt_lines_full: false,
            paper: Paper::default(),
            retained_bytes: 0,
            buf: Vec::new(),
            skip: 0,
            qr_data: None,
            graphics: None,
            keep_pixels: false,
            capture: None,
            graphics_pixels: None,
            qr_style: QR_DEFAULT,
            barcode_height: 162,
            barcode_width: 3,
            hri: 0,
        }
    }

    /// Keeps the dots of raster images (`GS v 0`, `GS ( L` / `GS 8 L`) in
    /// [`Receipt::drawing`], for rendering a preview. A receipt then holds
    /// up to [`MAX_IMAGE_BYTES`] per image.
    pub fn keep_pixels(mut self) -> Self {
        self.keep_pixels = true;
        self
    }

    /// Replaces the table of Star's `ESC GS t n`.
    pub fn with_star_codepages(mut self, codepages: HashMap<u8, &'static Encoding>) -> Self {
        self.star_codepages = codepages;
        self
    }

    /// Feeds bytes; returns the `n` of every `DLE EOT n` (n = 1..4) seen, in
    /// order, for the caller to answer (see [`status_byte`]).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut requests = Vec::new();
        if self.buf.is_empty() {
            let used = self.run(bytes, &mut requests);
            self.buf.extend_from_slice(&bytes[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(bytes);
            let used = self.run(&buf, &mut requests);
            buf.drain(..used);
            self.buf = buf;
        }
        requests
    }

    /// Ends the current line and receipt as if the input ended here: a
    /// pending line is printed, and a receipt with anything on it is
    /// finished without a cut. An incomplete command stays pending.
    pub fn flush(&mut self) {
        if self.line.started {
            self.end_line();
        }
        if !is_empty_receipt(&self.receipt) {
            self.finish_receipt(None);
        }
    }

    /// Finished receipts.
    pub fn receipts(&self) -> &[Receipt] {
        &self.paper.receipts
    }

    /// Removes and returns the finished receipts.
    pub fn take_receipts(&mut self) -> Vec<Receipt> {
        self.retained_bytes = 0;
        std::mem::take(&mut self.paper.receipts)
    }

    /// A snapshot of everything printed (the pending line not included).
    pub fn paper(&self) -> Paper {
        let mut paper = self.paper.clone();
        paper.current = self.receipt.clone();
        paper
    }

    /// Unknown commands seen so far.
    pub fn unknown_commands(&self) -> u64 {
        self.paper.unknown_commands
    }

    /// Errors recorded so far (at most [`MAX_ERRORS`]).
    pub fn errors(&self) -> &[SimError] {
        &self.paper.errors
    }

    fn error(&mut self, e: SimError) {
        if self.paper.errors.len() < MAX_ERRORS {
            self.paper.errors.push(e);
        } else {
            self.paper.errors_dropped += 1;
        }
    }

    fn unknown(&mut self) {
        self.paper.unknown_commands += 1;
    }

    fn run(&mut self, data: &[u8], requests: &mut Vec<u8>) -> usize {
        let mut pos = 0;
        while pos < data.len() {
            if self.skip > 0 {
                let avail = (data.len() - pos) as u64;
                let n = self.skip.min(avail);
                self.skip -= n;
                if let Some(c) = self.capture.as_mut() {
                    c.rows.extend_from_slice(&data[pos..pos + n as usize]);
                }
                pos += n as usize;
                if self.skip == 0 {
                    self.finish_capture();
                }
                continue;
            }
            match self.step(&data[pos..], requests) {
                Some(n) => {
                    pos += n;
                    if self.skip == 0 {
                        self.finish_capture();
                    }
                }
                None => break,
            }
        }
        pos
    }

    /// Starts collecting the raster data about to be skipped.
    fn start_capture(&mut self, image: Option<usize>, width: u32, height: u32, scale: (u8, u8)) {
        if self.keep_pixels {
            self.capture = Some(Capture {
                image,
                width,
                height,
                scale,
                rows: Vec::new(),
            });
        }
    }

    fn finish_capture(&mut self) {
        let Some(c) = self.capture.take() else {
            return;
        };
        let pixels = ImagePixels {
            width: c.width,
            height: c.height,
            rows: c.rows,
            scale: c.scale,
        };
        match c.image {
            Some(i) => {
                if let Some(slot) = self.receipt.drawing.images.get_mut(i) {
                    *slot = Some(pixels);
                }
            }
            None => self.graphics_pixels = Some(pixels),
        }
    }

    /// Consumes `header` bytes now and skips the rest of a `total`-byte
    /// command without buffering it.
    fn consume_skip(&mut self, header: usize, total: u64) -> usize {
        self.skip = total.saturating_sub(header as u64);
        header
    }

    /// Parses one command at the start of `b`; `None` if more bytes are needed.
    fn step(&mut self, b: &[u8], requests: &mut Vec<u8>) -> Option<usize> {
        match b[0] {
            LF => {
                self.end_line();
                Some(1)
            }
            HT => {
                self.tab();
                Some(1)
            }
            ESC => self.esc(b),
            GS => self.gs(b),
            FS => self.fs(b),
            DLE => self.dle(b, requests),
            0x00..=0x1F => Some(1),
            _ => {
                let n = b.iter().position(|&c| c < 0x20).unwrap_or(b.len());
                self.text(&b[..n]);
                Some(n)
            }
        }
    }

    fn esc(&mut self, b: &[u8]) -> Option<usize> {
        let cmd = *b.get(1)?;
        let arg = |i: usize| b.get(i).copied();
        match cmd {
            b'@' => {
                self.line = LineBuf::default();
                self.style = Style::default();
                self.barcode_height = 162;
                self.barcode_width = 3;
                self.hri = 0;
                self.codepage = match self.codepages.get(&0) {
                    Some(e) => CodePage::Enc(e),
                    None => CodePage::Cp437,
                };
                Some(2)
            }
            b't' => {
                let n = arg(2)?;
                if let Some(high) = self.high_pages.get(&n).copied() {
                    self.decode_pending();
                    self.codepage = CodePage::High(high);
                } else {
                    let table = self.codepages.get(&n).copied();
                    self.set_codepage(n, table);
                }
                Some(3)
            }
            GS => {
                let sub = arg(2)?;
                match sub {
                    b't' => {
                        let n = arg(3)?;
                        let table = self.star_codepages.get(&n).copied();
                        let table = table.or(if matches!(n, 0 | 1 | 3) {
                            None
                        } else {
                            self.codepages.get(&n).copied()
                        });
                        self.set_codepage_star(n, table);
                        Some(4)
                    }
                    b'a' => {
                        let n = arg(3)?;
                        self.set_align(n);
                        Some(4)
                    }
                    _ => {
                        self.unknown();
                        Some(3)
                    }
                }
            }
            b'E' => {
                self.style.bold = arg(2)? & 1 == 1;
                Some(3)
            }
            b'G' => {
                // Double strike looks like bold on paper.
                self.style.bold = arg(2)? & 1 == 1;
                Some(3)
            }
            b'-' => {
                self.style.underline = matches!(arg(2)?, 1 | 2 | b'1' | b'2');
                Some(3)
            }
            b'!' => {
                let n = arg(2)?;
                self.style.bold = n & 0x08 != 0;
                self.style.double_height = n & 0x10 != 0;
                self.style.double_width = n & 0x20 != 0;
                self.style.underline = n & 0x80 != 0;
                Some(3)
            }
            b'a' => {
                let n = arg(2)?;
                self.set_align(n);
                Some(3)
            }
            b'd' => {
                let n = arg(2)?;
                if n == 0 {
                    if self.line.started {
                        self.end_line();
                    }
                } else {
                    for _ in 0..n {
                        self.end_line();
                    }
                }
                Some(3)
            }
            b'J' => {
                arg(2)?;
                if self.line.started {
                    self.end_line();
                }
                Some(3)
            }
            b'p' => {
                let m = arg(2)?;
                let t1 = arg(3)?;
                let t2 = arg(4)?;
                self.drawer(DrawerKick {
                    pin: if m & 1 == 0 { 2 } else { 5 },
                    on_ms: u32::from(t1) * 2,
                    off_ms: u32::from(t2) * 2,
                });
                Some(5)
            }
            b'i' => {
                self.cut(CutKind::Full);
                Some(2)
            }
            b'm' => {
                self.cut(CutKind::Partial);
                Some(2)
            }
            // No parameter: line spacing default, page mode, standard mode,
            // print in page mode, return home.
            b'2' | b'L' | b'S' | FF | b'<' => Some(2),
            // One parameter.
            b'3' | b'M' | b'{' | b'V' | b'R' | b' ' | b'r' | b'U' | b'%' | b'?' | b'e' | b'T'
            | b'=' | b'K' | b'u' | b'v' => {
                arg(2)?;
                Some(3)
            }
            // Two parameters: absolute / relative position, panel buttons,
            // paper sensors.
            b'$' | b'\\' | b'c' => {
                arg(3)?;
                Some(4)
            }
            // Print area in page mode.
            b'W' => {
                arg(9)?;
                Some(10)
            }
            // Bit image: ESC * m nL nH d1..dk.
            b'*' => {
                let m = arg(2)?;
                let n = u64::from(arg(3)?) + 256 * u64::from(arg(4)?);
                let per = match m {
                    0 | 1 => 1,
                    32 | 33 => 3,
                    _ => {
                        self.error(SimError::Malformed("ESC *"));
                        return Some(5);
                    }
                };
                Some(self.consume_skip(5, 5 + n * per))
            }
            // Horizontal tab positions: ESC D n1..nk NUL, k <= 32.
            b'D' => match b[2..].iter().take(33).position(|&c| c == 0) {
                Some(i) => Some(2 + i + 1),
                None if b.len() >= 2 + 33 => {
                    self.error(SimError::Malformed("ESC D"));
                    Some(2)
                }
                None => None,
            },
            // User-defined characters: ESC & y c1 c2 [x d1..d(y*x)]...
            b'&' => {
                let y = usize::from(arg(2)?);
                let c1 = arg(3)?;
                let c2 = arg(4)?;
                if y == 0 || y > 3 || c1 < 32 || c2 < c1 || c2 > 126 {
                    self.error(SimError::Malformed("ESC &"));
                    self.unknown();
                    return Some(2);
                }
                let mut pos = 5;
                for _ in c1..=c2 {
                    let x = usize::from(arg(pos)?);
                    if x > 12 {
                        self.error(SimError::Malformed("ESC &"));
                        self.unknown();
                        return Some(2);
                    }
                    pos += 1 + y * x;
                }
                if b.len() < pos {
                    return None;
                }
                Some(pos)
            }
            _ => {
                self.unknown();
                Some(2)
            }
        }
    }

    fn gs(&mut self, b: &[u8]) -> Option<usize> {
        let cmd = *b.get(1)?;
        let arg = |i: usize| b.get(i).copied();
        match cmd {
            b'!' => {
                let n = arg(2)?;
                self.style.double_width = n & 0xF0 != 0;
                self.style.double_height = n & 0x0F != 0;
                Some(3)
            }
            b'V' => {
                let m = arg(2)?;
                match m {
                    0 | 48 => self.cut(CutKind::Full),
                    1 | 49 => self.cut(CutKind::Partial),
                    65 | 97 | 103 => {
                        arg(3)?;
                        self.cut(CutKind::Full);
                        return Some(4);
                    }
                    66 | 98 | 104 => {
                        arg(3)?;
                        self.cut(CutKind::Partial);
                        return Some(4);
                    }
                    _ => self.unknown(),
                }
                Some(3)
            }
            b'v' => {
                if arg(2)? != b'0' {
                    self.unknown();
                    return Some(2);
                }
                arg(7)?;
                let m = b[3];
                let xbytes = u64::from(b[4]) + 256 * u64::from(b[5]);
                let height = u64::from(b[6]) + 256 * u64::from(b[7]);
                if self.image(xbytes * 8, height, xbytes * height) {
                    let scale = (1 + (m & 1), 1 + ((m >> 1) & 1));
                    let index = self.receipt.images.len() - 1;
                    self.start_capture(Some(index), xbytes as u32 * 8, height as u32, scale);
                }
                Some(self.consume_skip(8, 8 + xbytes * height))
            }
            b'k' => self.barcode(b),
            b'(' => {
                let f = arg(2)?;
                arg(4)?;
                let len = u64::from(b[3]) + 256 * u64::from(b[4]);
                match f {
                    b'k' => self.gs_paren_k(b, len),
                    b'L' => self.graphics(b, 5, len),
                    _ => {
                        // GS ( A, C, D, E, H, K, M, N, P, Q, ...: settings
                        // and requests; nothing on paper.
                        Some(self.consume_skip(5, 5 + len))
                    }
                }
            }
            b'8' => {
                if arg(2)? != b'L' {
                    self.unknown();
                    return Some(3);
                }
                arg(6)?;
                let len = u64::from(u32::from_le_bytes([b[3], b[4], b[5], b[6]]));
                self.graphics(b, 7, len)
            }
            b'*' => {
                let x = u64::from(arg(2)?);
                let y = u64::from(arg(3)?);
                Some(self.consume_skip(4, 4 + x * y * 8))
            }
            b'h' => {
                self.barcode_height = arg(2)?;
                Some(3)
            }
            b'H' => {
                self.hri = arg(2)? & 3;
                Some(3)
            }
            b'w' => {
                self.barcode_width = arg(2)?;
                Some(3)
            }
            // One parameter: HRI font,
            // reverse, smoothing, ASB, status, printer id, macros, position.
            b'f' | b'B' | b'b' | b'a' | b'r' | b'I' | b'/' | b'T' => {
                arg(2)?;
                Some(3)
            }
            // Two parameters: left margin, print area width, motion units.
            b'L' | b'W' | b'P' | b'$' | b'\\' => {
                arg(3)?;
                Some(4)
            }
            b':' => Some(2),
            b'^' => {
                arg(4)?;
                Some(5)
            }
            _ => {
                self.unknown();
                Some(2)
            }
        }
    }

    fn fs(&mut self, b: &[u8]) -> Option<usize> {
        let cmd = *b.get(1)?;
        match cmd {
            b'&' | b'.' => Some(2),
            b'C' | b'!' | b'-' | b'W' => {
                b.get(2)?;
                Some(3)
            }
            b'S' => {
                b.get(3)?;
                Some(4)
            }
            b'p' => {
                // NV bit image print: size unknown here.
                b.get(3)?;
                self.unknown();
                Some(4)
            }
            b'(' => {
                b.get(4)?;
                let len = u64::from(b[3]) + 256 * u64::from(b[4]);
                Some(self.consume_skip(5, 5 + len))
            }
            _ => {
                self.unknown();
                Some(2)
            }
        }
    }

    fn dle(&mut self, b: &[u8], requests: &mut Vec<u8>) -> Option<usize> {
        let cmd = *b.get(1)?;
        match cmd {
            EOT => {
                let n = *b.get(2)?;
                match n {
                    1..=4 => {
                        self.paper.status_requests += 1;
                        requests.push(n);
                        Some(3)
                    }
                    7 | 8 => {
                        b.get(3)?;
                        Some(4)
                    }
                    _ => Some(3),
                }
            }
            ENQ => {
                b.get(2)?;
                Some(3)
            }
            DC4 => {
                let f = *b.get(2)?;
                match f {
                    1 => {
                        let m = *b.get(3)?;
                        let t = *b.get(4)?;
                        let ms = u32::from(t) * 100;
                        self.drawer(DrawerKick {
                            pin: if m & 1 == 0 { 2 } else { 5 },
                            on_ms: ms,
                            off_ms: ms,
                        });
                        Some(5)
                    }
                    2 => {
                        b.get(4)?;
                        Some(5)
                    }
                    7 => {
                        b.get(3)?;
                        Some(4)
                    }
                    8 => {
                        b.get(9)?;
                        Some(10)
                    }
                    _ => {
                        self.unknown();
                        Some(3)
                    }
                }
            }
            _ => {
                self.unknown();
                Some(1)
            }
        }
    }

    fn barcode(&mut self, b: &[u8]) -> Option<usize> {
        let m = *b.get(2)?;
        let Some(kind) = barcode_kind(m) else {
            self.unknown();
            return Some(3);
        };
        let (data, used) = if m <= 6 {
            match b[3..]
                .iter()
                .take(MAX_NUL_BARCODE + 1)
                .position(|&c| c == 0)
            {
                Some(i) => (&b[3..3 + i], 3 + i + 1),
                None if b.len() > 3 + MAX_NUL_BARCODE => {
                    self.error(SimError::BarcodeUnterminated);
                    return Some(3);
                }
                None => return None,
            }
        } else {
            let n = usize::from(*b.get(3)?);
            if b.len() < 4 + n {
                return None;
            }
            (&b[4..4 + n], 4 + n)
        };
        let text = match kind {
            "CODE128" => code128_text(data),
            "EAN13" => ean13_text(data),
            _ => latin1(data),
        };
        self.flush_line_before_block();
        if self.receipt.barcodes.len() >= MAX_BARCODES {
            self.error(SimError::TooManyItems("barcodes"));
        } else {
            self.receipt.barcodes.push((kind.to_owned(), text));
            self.receipt.drawing.barcodes.push(BarcodeDrawing {
                height: self.barcode_height,
                module_width: self.barcode_width,
                hri: self.hri,
                raw: data.to_vec(),
            });
            self.push_block(BlockKind::Barcode, self.receipt.barcodes.len() - 1);
        }
        Some(used)
    }

    fn gs_paren_k(&mut self, b: &[u8], len: u64) -> Option<usize> {
        let total = 5 + len;
        if len < 2 {
            self.unknown();
            return Some(self.consume_skip(5, total));
        }
        let cn = *b.get(5)?;
        let f = *b.get(6)?;
        if cn != 49 {
            // PDF417, MaxiCode, DataMatrix, Aztec, ...: not simulated.
            if matches!(f, 81 | 2) {
                self.unknown();
            }
            return Some(self.consume_skip(7, total));
        }
        match f {
            80 => {
                let payload = (len - 2).saturating_sub(1) as usize;
                if len < 3 {
                    self.error(SimError::Malformed("GS ( k"));
                    return Some(self.consume_skip(7, total));
                }
                if payload > MAX_QR_BYTES {
                    self.error(SimError::QrTooLong { len: payload });
                    return Some(self.consume_skip(7, total));
                }
                let total = total as usize;
                if b.len() < total {
                    return None;
                }
                self.qr_data = Some(String::from_utf8_lossy(&b[8..total]).into_owned());
                Some(total)
            }
            81 => {
                self.flush_line_before_block();
                match self.qr_data.clone() {
                    Some(data) if self.receipt.qr.len() < MAX_QR => {
                        self.receipt.qr.push(data);
                        self.receipt.drawing.qr.push(self.qr_style);
                        self.push_block(BlockKind::Qr, self.receipt.qr.len() - 1);
                    }
                    Some(_) => self.error(SimError::TooManyItems("QR codes")),
                    None => self.error(SimError::QrEmpty),
                }
                Some(self.consume_skip(7, total))
            }
            67 => {
                let n = *b.get(7)?;
                self.qr_style.module_size = n.clamp(1, 16);
                Some(self.consume_skip(7, total))
            }
            69 => {
                self.qr_style.ec = match *b.get(7)? {
                    49 => b'M',
                    50 => b'Q',
                    51 => b'H',
                    _ => b'L',
                };
                Some(self.consume_skip(7, total))
            }
            // Model, size request.
            65 | 82 => Some(self.consume_skip(7, total)),
            _ => {
                self.unknown();
                Some(self.consume_skip(7, total))
            }
        }
    }

    /// `GS ( L` / `GS 8 L`: `hdr` bytes before `m fn`, `len` bytes after.
    fn graphics(&mut self, b: &[u8], hdr: usize, len: u64) -> Option<usize> {
        let total = hdr as u64 + len;
        if len < 2 {
            return Some(self.consume_skip(hdr, total));
        }
        let f = *b.get(hdr + 1)?;
        match f {
            // Store raster graphics: m fn a bx by c xL xH yL yH d...
            112 if len >= 10 => {
                b.get(hdr + 9)?;
                let w = u64::from(b[hdr + 6]) + 256 * u64::from(b[hdr + 7]);
                let h = u64::from(b[hdr + 8]) + 256 * u64::from(b[hdr + 9]);
                if w > u64::from(MAX_IMAGE_DOTS)
                    || h > u64::from(MAX_IMAGE_DOTS)
                    || len - 10 > MAX_IMAGE_BYTES
                {
                    self.error(SimError::ImageTooLarge {
                        width: w.min(u64::from(u32::MAX)) as u32,
                        height: h.min(u64::from(u32::MAX)) as u32,
                        bytes: len - 10,
                    });
                    self.graphics = None;
                } else {
                    self.graphics = Some((w as u32, h as u32));
                    self.graphics_pixels = None;
                    let scale = (b[hdr + 3].clamp(1, 2), b[hdr + 4].clamp(1, 2));
                    // Only monochrome data (a = 48) is kept; colour planes would
                    // overwrite each other.
                    if b[hdr + 2] == 48 {
                        self.start_capture(None, w as u32, h as u32, scale);
                    }
                }
                Some(self.consume_skip(hdr + 10, total))
            }
            // Print stored graphics.
            2 | 50 => {
                if let Some((w, h)) = self.graphics.take() {
                    let pixels = self.graphics_pixels.take();
                    self.push_image(w, h, pixels);
                }
                Some(self.consume_skip(hdr + 2, total))
            }
            _ => Some(self.consume_skip(hdr + 2, total)),
        }
    }

    /// Records a raster image; `true` if it was put on the paper.
    fn image(&mut self, width: u64, height: u64, bytes: u64) -> bool {
        if width > u64::from(MAX_IMAGE_DOTS)
            || height > u64::from(MAX_IMAGE_DOTS)
            || bytes > MAX_IMAGE_BYTES
        {
            self.error(SimError::ImageTooLarge {
                width: width.min(u64::from(u32::MAX)) as u32,
                height: height.min(u64::from(u32::MAX)) as u32,
                bytes,
            });
            return false;
        }
        self.push_image(width as u32, height as u32, None)
    }

    /// `true` if the image was put on the paper.
    fn push_image(&mut self, w: u32, h: u32, pixels: Option<ImagePixels>) -> bool {
        self.flush_line_before_block();
        if self.receipt.images.len() >= MAX_IMAGES {
            self.error(SimError::TooManyItems("images"));
            false
        } else {
            self.receipt.images.push((w, h));
            self.receipt.drawing.images.push(pixels);
            self.push_block(BlockKind::Image, self.receipt.images.len() - 1);
            true
        }
    }

    fn drawer(&mut self, kick: DrawerKick) {
        self.paper.drawer_kicks += 1;
        self.paper.last_drawer_kick = Some(kick);
    }

    fn set_align(&mut self, n: u8) {
        self.style.align = match n {
            1 | b'1' => Align::Center,
            2 | b'2' => Align::Right,
            _ => Align::Left,
        };
    }

    fn set_codepage(&mut self, n: u8, table: Option<&'static Encoding>) {
        self.decode_pending();
        self.codepage = match table {
            Some(e) => CodePage::Enc(e),
            None => {
                if n != 0 {
                    self.error(SimError::UnknownCodePage(n));
                }
                CodePage::Cp437
            }
        };
    }

    fn set_codepage_star(&mut self, n: u8, table: Option<&'static Encoding>) {
        self.decode_pending();
        self.codepage = match table {
            Some(e) => CodePage::Enc(e),
            None => {
                if !matches!(n, 0 | 1 | 3) {
                    self.error(SimError::UnknownCodePage(n));
                }
                CodePage::Cp437
            }
        };
    }

    fn start_line(&mut self) {
        if !self.line.started {
            self.line.started = true;
            self.line.line.align = self.style.align;
        }
    }

    fn apply_style(&mut self) {
        let l = &mut self.line.line;
        l.bold |= self.style.bold;
        l.underline |= self.style.underline;
        l.double_width |= self.style.double_width;
        l.double_height |= self.style.double_height;
    }

    fn text(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            self.start_line();
            self.apply_style();
            let room = MAX_LINE_BYTES - self.line.raw_total;
            let n = room.min(bytes.len());
            self.line.raw.extend_from_slice(&bytes[..n]);
            self.line.raw_total += n;
            bytes = &bytes[n..];
            if self.line.raw_total >= MAX_LINE_BYTES {
                // The paper wraps.
                self.end_line();
            }
        }
    }

    fn tab(&mut self) {
        self.start_line();
        self.decode_pending();
        let col = self.line.line.text.chars().count();
        let pad = 8 - col % 8;
        let pad = pad.min(MAX_LINE_BYTES.saturating_sub(self.line.raw_total));
        self.line.line.text.extend(std::iter::repeat_n(' ', pad));
        self.line.raw_total += pad;
        if self.line.raw_total >= MAX_LINE_BYTES {
            self.end_line();
        }
    }

    fn decode_pending(&mut self) {
        if self.line.raw.is_empty() {
            return;
        }
        let raw = std::mem::take(&mut self.line.raw);
        match self.codepage {
            CodePage::Cp437 => decode_cp437(&raw, &mut self.line.line.text),
            CodePage::High(high) => decode_high(&raw, high, &mut self.line.line.text),
            CodePage::Enc(e) => {
                let (text, _) = e.decode_without_bom_handling(&raw);
                self.line.line.text.push_str(&text);
            }
        }
    }

    fn end_line(&mut self) {
        self.start_line();
        self.decode_pending();
        let line = std::mem::take(&mut self.line).line;
        if self.receipt.lines.len() >= MAX_LINES {
            if !self.receipt_lines_full {
                self.receipt_lines_full = true;
                self.error(SimError::TooManyLines);
            }
            return;
        }
        let align = line.align;
        self.receipt.lines.push(line);
        self.receipt.layout.push(Block {
            kind: BlockKind::Line,
            index: self.receipt.lines.len() - 1,
            align,
        });
    }

    fn flush_line_before_block(&mut self) {
        if self.line.started {
            self.end_line();
        }
    }

    fn push_block(&mut self, kind: BlockKind, index: usize) {
        self.receipt.layout.push(Block {
            kind,
            index,
            align: self.style.align,
        });
    }

    fn cut(&mut self, kind: CutKind) {
        self.flush_line_before_block();
        if is_empty_receipt(&self.receipt) {
            // Cutting blank paper: the previous receipt keeps its cut.
            return;
        }
        self.finish_receipt(Some(kind));
    }

    fn finish_receipt(&mut self, cut: Option<CutKind>) {
        let mut receipt = std::mem::take(&mut self.receipt);
        self.receipt_lines_full = false;
        receipt.cut = cut;
        self.retained_bytes += receipt_weight(&receipt);
        self.paper.receipts.push(receipt);
        while self.paper.receipts.len() > MAX_RETAINED_RECEIPTS
            || (self.retained_bytes > MAX_RETAINED_BYTES && self.paper.receipts.len() > 1)
        {
            let old = self.paper.receipts.remove(0);
            self.retained_bytes = self.retained_bytes.saturating_sub(receipt_weight(&old));
            self.paper.receipts_dropped += 1;
        }
    }
}

impl Receipt {
    /// The receipt as text `width` columns wide: lines aligned and wrapped,
    /// double width shown as spaced letters, `[QR: payload]` (on one line,
    /// the payload elided with `…` to fit),
    /// `[EAN13 4006381333931]`, `[image 384x120]`, and a cut as a line of
    /// `✂ - - -`.
    pub fn render_text(&self, width: usize) -> String {
        let width = width.max(1);
        let mut out = String::new();
        for block in &self.layout {
            let text = match block.kind {
                BlockKind::Line => match self.lines.get(block.index) {
                    Some(line) if line.double_width => {
                        let mut s = String::new();
                        for (i, c) in line.text.chars().enumerate() {
                            if i > 0 {
                                s.push(' ');
                            }
                            s.push(c);
                        }
                        s
                    }
                    Some(line) => line.text.clone(),
                    None => continue,
                },
                // One screen line: a wrapped payload reads as two texts.
                BlockKind::Qr => match self.qr.get(block.index) {
                    Some(q) => elide_qr(q, width),
                    None => continue,
                },
                BlockKind::Barcode => match self.barcodes.get(block.index) {
                    Some((k, d)) => format!("[{k} {d}]"),
                    None => continue,
                },
                BlockKind::Image => match self.images.get(block.index) {
                    Some((w, h)) => format!("[image {w}x{h}]"),
                    None => continue,
                },
            };
            let chars: Vec<char> = text.chars().collect();
            if chars.is_empty() {
                out.push('\n');
                continue;
            }
            for piece in chars.chunks(width) {
                let pad = width - piece.len();
                let left = match block.align {
                    Align::Left => 0,
                    Align::Center => pad / 2,
                    Align::Right => pad,
                };
                out.extend(std::iter::repeat_n(' ', left));
                out.extend(piece.iter());
                out.push('\n');
            }
        }
        if self.cut.is_some() {
            out.push('✂');
            let mut col = 1;
            while col + 2 <= width {
                out.push_str(" -");
                col += 2;
            }
            out.push('\n');
        }
        out
    }
}

/// `[QR: payload]` in at most `width` characters: a longer payload is cut
/// and ends in `…`; control characters (a payload may hold line breaks)
/// show as spaces.
fn elide_qr(payload: &str, width: usize) -> String {
    let clean: Vec<char> = payload
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    const FRAME: usize = "[QR: ]".len();
    if clean.len() + FRAME <= width {
        return format!("[QR: {}]", clean.iter().collect::<String>());
    }
    let keep = width.saturating_sub(FRAME + 1);
    let s = format!("[QR: {}…]", clean[..keep].iter().collect::<String>());
    s.chars().take(width).collect()
}

impl Paper {
    /// Every finished receipt rendered with [`Receipt::render_text`], then
    /// the receipt being printed, if any.
    pub fn render_text(&self, width: usize) -> String {
        let mut out = String::new();
        for r in &self.receipts {
            out.push_str(&r.render_text(width));
        }
        if !self.current.layout.is_empty() {
            out.push_str(&self.current.render_text(width));
        }
        out
    }
}

/// A printer condition the simulator reports (and obeys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum SimFault {
    #[default]
    None,
    /// Roll paper end: offline, nothing printed.
    PaperEnd,
    /// Roll paper near end: only the status changes.
    PaperNearEnd,
    /// Cover open: offline, nothing printed.
    CoverOpen,
    /// Offline with a recoverable error (e.g. a cutter jam): nothing printed.
    Offline,
    /// Autocutter error (`DLE EOT 3` bit 3): offline until cleared.
    CutterError,
    /// Unrecoverable error (`DLE EOT 3` bit 5): offline until power-cycled.
    UnrecoverableError,
}

impl SimFault {
    /// Whether the printer stops printing (and buffers) under this fault.
    pub fn stops_printing(self) -> bool {
        matches!(
            self,
            SimFault::PaperEnd
                | SimFault::CoverOpen
                | SimFault::Offline
                | SimFault::CutterError
                | SimFault::UnrecoverableError
        )
    }
}

/// The byte an Epson printer answers to `DLE EOT n` (n = 1..4) under
/// `fault`; `None` for other `n`.
///
/// Every answer has bit 1 and bit 4 set and bits 0 and 7 clear (`0x12`).
///
/// * n = 1 (printer): bit 3 offline (any fault that stops printing), bit 5
///   waiting for online recovery ([`SimFault::Offline`]).
/// * n = 2 (offline cause): bit 2 cover open, bit 5 stopped by paper end,
///   bit 6 error occurred ([`SimFault::Offline`]).
/// * n = 3 (error): bit 2 recoverable error ([`SimFault::Offline`]); bit 3
///   autocutter, bits 5 and 6 unrecoverable / auto-recoverable errors are
///   never set.
/// * n = 4 (roll paper sensor): bits 2+3 near end, bits 5+6 paper end (paper
///   end reports near end too).
pub fn status_byte(fault: SimFault, n: u8) -> Option<u8> {
    let base = 0x12;
    let bits = match (n, fault) {
        (1, SimFault::PaperEnd | SimFault::CoverOpen) => 0x08,
        (1, SimFault::Offline | SimFault::CutterError) => 0x08 | 0x20,
        (1, SimFault::UnrecoverableError) => 0x08,
        (2, SimFault::CoverOpen) => 0x04,
        (2, SimFault::PaperEnd) => 0x20,
        (2, SimFault::Offline | SimFault::CutterError | SimFault::UnrecoverableError) => 0x40,
        (3, SimFault::Offline) => 0x04,
        (3, SimFault::CutterError) => 0x08,
        (3, SimFault::UnrecoverableError) => 0x20,
        (4, SimFault::PaperNearEnd) => 0x0C,
        (4, SimFault::PaperEnd) => 0x0C | 0x60,
        (1..=4, _) => 0,
        _ => return None,
    };
    Some(base | bits)
}

/// Simulator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Answer `DLE EOT n`; `false` models printers (or cables) that never
    /// answer.
    pub answer_status: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            answer_status: true,
        }
    }
}

/// Finds `DLE EOT n` in raw bytes while printing is stopped.
#[derive(Debug, Default)]
struct RealtimeScan {
    state: u8,
}

impl RealtimeScan {
    fn scan(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            self.state = match (self.state, b) {
                (_, DLE) => 1,
                (1, EOT) => 2,
                (2, n) => {
                    if (1..=4).contains(&n) {
                        out.push(n);
                    }
                    0
                }
                _ => 0,
            };
        }
    }
}

#[derive(Debug)]
struct State {
    parser: EscPosParser,
    fault: SimFault,
    unprinted: Vec<u8>,
    scan: RealtimeScan,
}

#[derive(Debug)]
struct Shared {
    config: SimConfig,
    state: Mutex<State>,
    /// Bumped after every change of the paper.
    generation: watch::Sender<u64>,
    fault: watch::Sender<SimFault>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Takes bytes from the wire; returns the status requests to answer.
    fn receive(&self, bytes: &[u8]) -> Vec<u8> {
        let requests = {
            let mut st = self.lock();
            if st.fault.stops_printing() {
                let mut requests = Vec::new();
                st.scan.scan(bytes, &mut requests);
                st.unprinted.extend_from_slice(bytes);
                requests
            } else {
                st.parser.feed(bytes)
            }
        };
        self.bump();
        requests
    }

    fn buffer_full(&self) -> bool {
        let st = self.lock();
        st.fault.stops_printing() && st.unprinted.len() >= MAX_UNPRINTED
    }
}

/// A virtual ESC/POS printer.
#[derive(Debug, Clone)]
pub struct EscPosSim {
    shared: Arc<Shared>,
}

/// Controls and observes a simulator; clones share it. When the last handle
/// returned by a `spawn_*` function is dropped, its serving task stops.
#[derive(Debug, Clone)]
pub struct EscPosSimHandle {
    shared: Arc<Shared>,
    _task: Option<Arc<TaskGuard>>,
}

#[derive(Debug)]
struct TaskGuard(tokio::task::AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `wait_receipts` gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out waiting for {wanted} receipts (got {got})")]
pub struct Timeout {
    pub wanted: usize,
    pub got: usize,
}

impl Default for EscPosSim {
    fn default() -> Self {
        Self::new(SimConfig::default())
    }
}

impl EscPosSim {
    /// A simulator with the default parser.
    pub fn new(config: SimConfig) -> Self {
        Self::with_parser(config, EscPosParser::new())
    }

    /// A simulator with a configured parser (e.g. other code pages).
    pub fn with_parser(config: SimConfig, parser: EscPosParser) -> Self {
        EscPosSim {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    parser,
                    fault: SimFault::None,
                    unprinted: Vec::new(),
                    scan: RealtimeScan::default(),
                }),
                generation: watch::Sender::new(0),
                fault: watch::Sender::new(SimFault::None),
            }),
        }
    }

    /// A handle on this simulator (it does not own any task).
    pub fn handle(&self) -> EscPosSimHandle {
        EscPosSimHandle {
            shared: self.shared.clone(),
            _task: None,
        }
    }

    /// Serves one connection until it closes or fails: prints what it
    /// receives and answers status requests. Printer state (styles, the
    /// receipt being printed) carries over to the next connection, as on a
    /// real printer. A failure is recorded in [`Paper::errors`].
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let mut fault_rx = self.shared.fault.subscribe();
        let mut buf = vec![0u8; 4096];
        loop {
            while self.shared.buffer_full() {
                if fault_rx.changed().await.is_err() {
                    return;
                }
            }
            let n = match stream.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    self.record_io(e);
                    return;
                }
            };
            let requests = self.shared.receive(&buf[..n]);
            if !self.shared.config.answer_status || requests.is_empty() {
                continue;
            }
            let fault = self.shared.lock().fault;
            let reply: Vec<u8> = requests
                .iter()
                .filter_map(|&r| status_byte(fault, r))
                .collect();
            let res = async {
                stream.write_all(&reply).await?;
                stream.flush().await
            }
            .await;
            if let Err(e) = res {
                self.record_io(e);
                return;
            }
        }
    }

    fn record_io(&self, e: std::io::Error) {
        tracing::debug!(error = %e, "escpos sim: connection ended");
        self.shared.lock().parser.error(SimError::Io(e.to_string()));
        self.shared.bump();
    }

    /// Listens on `addr` and serves connections one after another.
    ///
    /// Must be called within a Tokio runtime.
    pub fn listen_tcp(self, addr: SocketAddr) -> std::io::Result<(SocketAddr, EscPosSimHandle)> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let local = listener.local_addr()?;
        let sim = self.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => sim.serve(stream).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "escpos sim: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok((local, self.owned_handle(task)))
    }

    /// Creates a pty pair, serves its master and returns the slave path for
    /// the daemon to open. See the module docs about `FD_CLOEXEC`.
    ///
    /// Must be called within a Tokio runtime.
    pub fn open_pty(self) -> std::io::Result<(PathBuf, EscPosSimHandle)> {
        use tokio_serial::SerialPort;
        let (master, slave) = tokio_serial::SerialStream::pair().map_err(std::io::Error::from)?;
        let path = slave
            .name()
            .ok_or_else(|| std::io::Error::other("pty slave has no name"))?;
        let sim = self.clone();
        let task = tokio::spawn(async move {
            // Keeping the slave open keeps the master from reading EIO while
            // the daemon has the path closed.
            let _slave = slave;
            sim.serve(master).await;
            std::future::pending::<()>().await;
        });
        Ok((PathBuf::from(path), self.owned_handle(task)))
    }

    fn owned_handle(&self, task: tokio::task::JoinHandle<()>) -> EscPosSimHandle {
        EscPosSimHandle {
            shared: self.shared.clone(),
            _task: Some(Arc::new(TaskGuard(task.abort_handle()))),
        }
    }

    /// Like [`spawn_tcp`], as an associated function.
    pub fn spawn_tcp(addr: SocketAddr) -> (SocketAddr, EscPosSimHandle) {
        spawn_tcp(addr)
    }

    /// Like [`spawn_pty`], as an associated function.
    pub fn spawn_pty() -> (PathBuf, EscPosSimHandle) {
        spawn_pty()
    }
}

/// A default simulator listening on `addr` (typically `127.0.0.1:0`),
/// serving connections one after another; returns the bound address.
///
/// # Panics
///
/// Outside a Tokio runtime, or if `addr` cannot be bound (use
/// [`EscPosSim::listen_tcp`] to handle that).
pub fn spawn_tcp(addr: SocketAddr) -> (SocketAddr, EscPosSimHandle) {
    EscPosSim::default()
        .listen_tcp(addr)
        .unwrap_or_else(|e| panic!("escpos sim: cannot listen on {addr}: {e}"))
}

/// A default simulator behind a pty pair; returns the path the daemon opens.
///
/// # Panics
///
/// Outside a Tokio runtime, or if no pty can be created (use
/// [`EscPosSim::open_pty`] to handle that).
pub fn spawn_pty() -> (PathBuf, EscPosSimHandle) {
    EscPosSim::default()
        .open_pty()
        .unwrap_or_else(|e| panic!("escpos sim: cannot create a pty: {e}"))
}

impl EscPosSimHandle {
    /// A snapshot of everything printed.
    pub fn paper(&self) -> Paper {
        self.shared.lock().parser.paper()
    }

    /// The current fault.
    pub fn fault(&self) -> SimFault {
        self.shared.lock().fault
    }

    /// Sets the fault. Clearing a fault that stopped printing prints the
    /// bytes received meanwhile.
    pub fn set_fault(&self, fault: SimFault) {
        {
            let mut st = self.shared.lock();
            st.fault = fault;
            if !fault.stops_printing() && !st.unprinted.is_empty() {
                let bytes = std::mem::take(&mut st.unprinted);
                // Status requests in these bytes were answered on arrival.
                let _ = st.parser.feed(&bytes);
            }
            st.scan = RealtimeScan::default();
        }
        self.shared.fault.send_replace(fault);
        self.shared.bump();
    }

    /// Bytes received but not printed because of a fault.
    pub fn unprinted_len(&self) -> usize {
        self.shared.lock().unprinted.len()
    }

    /// Feeds bytes directly, as if received (status requests are not
    /// answered).
    pub fn feed(&self, bytes: &[u8]) {
        let _ = self.shared.receive(bytes);
    }

    /// Ends the receipt being printed without a cut (see
    /// [`EscPosParser::flush`]).
    pub fn flush(&self) {
        self.shared.lock().parser.flush();
        self.shared.bump();
    }

    /// Waits until at least `n` finished receipts are on the paper and
    /// returns them all (without removing them).
    pub async fn wait_receipts(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Receipt>, Timeout> {
        let mut rx = self.shared.generation.subscribe();
        let wait = async {
            loop {
                {
                    let st = self.shared.lock();
                    if st.parser.receipts().len() >= n {
                        return st.parser.receipts().to_vec();
                    }
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => Ok(r),
            Err(_) => Err(Timeout {
                wanted: n,
                got: self.shared.lock().parser.receipts().len(),
            }),
        }
    }

    /// Removes and returns the finished receipts.
    pub fn take_receipts(&self) -> Vec<Receipt> {
        let r = self.shared.lock().parser.take_receipts();
        self.shared.bump();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_serial::SerialPortBuilderExt;

    fn init() -> Vec<u8> {
        vec![ESC, b'@']
    }
    fn cp(n: u8) -> Vec<u8> {
        vec![ESC, b't', n]
    }
    fn text(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
    fn lf() -> Vec<u8> {
        vec![LF]
    }
    fn bold(on: bool) -> Vec<u8> {
        vec![ESC, b'E', u8::from(on)]
    }
    fn align(n: u8) -> Vec<u8> {
        vec![ESC, b'a', n]
    }
    fn size(n: u8) -> Vec<u8> {
        vec![GS, b'!', n]
    }
    fn qr_store(data: &[u8]) -> Vec<u8> {
        let len = data.len() + 3;
        let mut v = vec![
            GS,
            b'(',
            b'k',
            (len & 0xFF) as u8,
            (len >> 8) as u8,
            49,
            80,
            48,
        ];
        v.extend_from_slice(data);
        v
    }
    fn qr_setup() -> Vec<u8> {
        let mut v = vec![GS, b'(', b'k', 4, 0, 49, 65, 50, 0];
        v.extend([GS, b'(', b'k', 3, 0, 49, 67, 6]);
        v.extend([GS, b'(', b'k', 3, 0, 49, 69, 49]);
        v
    }
    fn qr_print() -> Vec<u8> {
        vec![GS, b'(', b'k', 3, 0, 49, 81, 48]
    }
    fn barcode(m: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![GS, b'k', m];
        if m <= 6 {
            v.extend_from_slice(data);
            v.push(0);
        } else {
            v.push(data.len() as u8);
            v.extend_from_slice(data);
        }
        v
    }
    fn raster(xbytes: u16, y: u16) -> Vec<u8> {
        let mut v = vec![GS, b'v', b'0', 0];
        v.extend(xbytes.to_le_bytes());
        v.extend(y.to_le_bytes());
        v.extend(std::iter::repeat_n(
            0xA5u8,
            usize::from(xbytes) * usize::from(y),
        ));
        v
    }
    fn cut() -> Vec<u8> {
        vec![GS, b'V', 66, 3]
    }
    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }
    fn parse(bytes: &[u8]) -> Paper {
        let mut p = EscPosParser::new();
        p.feed(bytes);
        p.paper()
    }

    fn sample() -> Vec<u8> {
        cat(&[
            init(),
            align(1),
            size(0x11),
            bold(true),
            text("SHOP"),
            lf(),
            size(0),
            bold(false),
            align(0),
            vec![ESC, b'-', 1],
            text("Milk\t1.20"),
            lf(),
            vec![ESC, b'-', 0],
            vec![ESC, b'!', 0x08],
            text("TOTAL 1.20"),
            lf(),
            vec![ESC, b'!', 0],
            vec![
                ESC, b'3', 30, ESC, b'2', ESC, b'M', 1, GS, b'h', 80, GS, b'H', 2, GS, b'w', 2,
            ],
            vec![ESC, b'd', 2],
            align(1),
            qr_setup(),
            qr_store(b"https://example.org/r?id=42"),
            qr_print(),
            barcode(67, b"4006381333931"),
            barcode(2, b"4006381333931"),
            barcode(73, b"{BABC-123"),
            raster(48, 120),
            vec![ESC, b'p', 0, 25, 250],
            vec![DLE, EOT, 1],
            cut(),
            text("second"),
            lf(),
            vec![GS, b'V', 0],
        ])
    }

    #[test]
    fn parses_a_receipt() {
        let paper = parse(&sample());
        assert_eq!(paper.receipts.len(), 2, "{paper:#?}");
        let r = &paper.receipts[0];
        assert_eq!(
            r.lines[0],
            Line {
                text: "SHOP".into(),
                bold: true,
                underline: false,
                double_width: true,
                double_height: true,
                align: Align::Center,
            }
        );
        assert_eq!(r.lines[1].text, "Milk    1.20");
        assert!(r.lines[1].underline && !r.lines[1].bold);
        assert_eq!(r.lines[2].text, "TOTAL 1.20");
        assert!(r.lines[2].bold && !r.lines[2].underline);
        assert_eq!(r.lines.len(), 5); // plus two fed lines
        assert_eq!(r.lines[3], Line::default());
        assert_eq!(r.qr, vec!["https://example.org/r?id=42".to_string()]);
        assert_eq!(
            r.barcodes,
            vec![
                ("EAN13".to_string(), "4006381333931".to_string()),
                ("EAN13".to_string(), "4006381333931".to_string()),
                ("CODE128".to_string(), "ABC-123".to_string()),
            ]
        );
        assert_eq!(r.images, vec![(384, 120)]);
        assert_eq!(r.cut, Some(CutKind::Partial));
        assert_eq!(paper.receipts[1].lines[0].text, "second");
        assert_eq!(paper.receipts[1].cut, Some(CutKind::Full));
        assert_eq!(paper.drawer_kicks, 1);
        assert_eq!(
            paper.last_drawer_kick,
            Some(DrawerKick {
                pin: 2,
                on_ms: 50,
                off_ms: 500
            })
        );
        assert_eq!(paper.status_requests, 1);
        assert_eq!(paper.unknown_commands, 0);
        assert!(paper.errors.is_empty(), "{:?}", paper.errors);
    }

    #[test]
    fn ean13_twelve_digits_get_the_check_digit() {
        let paper = parse(&cat(&[
            init(),
            barcode(67, b"400638133393"),
            barcode(2, b"460123456789"),
            cut(),
        ]));
        assert_eq!(
            paper.receipts[0].barcodes,
            vec![
                ("EAN13".to_string(), "4006381333931".to_string()),
                ("EAN13".to_string(), "4601234567893".to_string()),
            ]
        );
    }

    #[test]
    fn renders_text() {
        let paper = parse(&sample());
        let s = paper.receipts[0].render_text(20);
        let expected = concat!(
            "      S H O P\n",
            "Milk    1.20\n",
            "TOTAL 1.20\n",
            "\n",
            "\n",
            "[QR: https://examp…]\n",
            "[EAN13 4006381333931\n",
            "         ]\n",
            "[EAN13 4006381333931\n",
            "         ]\n",
            " [CODE128 ABC-123]\n",
            "  [image 384x120]\n",
            "✂ - - - - - - - - -\n",
        );
        assert_eq!(s, expected, "\n{s}");
        let wide = paper.receipts[0].render_text(42);
        assert!(
            wide.contains("\n          [EAN13 4006381333931]\n"),
            "\n{wide}"
        );
    }

    #[test]
    fn cyrillic_code_pages_agree() {
        let s = "Итого: 123,45 руб. Ёж";
        let (c866, _, _) = encoding_rs::IBM866.encode(s);
        let (c1251, _, _) = encoding_rs::WINDOWS_1251.encode(s);
        assert_ne!(c866, c1251);
        let mut texts = Vec::new();
        for (n, bytes) in [
            (17, &c866),
            (46, &c1251),
            (7, &c866),
            (6, &c1251),
            (23, &c1251),
        ] {
            let paper = parse(&cat(&[init(), cp(n), bytes.to_vec(), lf(), cut()]));
            texts.push(paper.receipts[0].lines[0].text.clone());
        }
        for t in &texts {
            assert_eq!(t, s);
        }
        // Star: ESC GS t 10 / 34.
        let paper = parse(&cat(&[vec![ESC, GS, b't', 10], c866.to_vec(), lf(), cut()]));
        assert_eq!(paper.receipts[0].lines[0].text, s);
        // Code page switch in the middle of a line.
        let paper = parse(&cat(&[
            cp(17),
            c866.to_vec(),
            cp(46),
            c1251.to_vec(),
            lf(),
            cut(),
        ]));
        assert_eq!(paper.receipts[0].lines[0].text, format!("{s}{s}"));
    }

    #[test]
    fn cp437_and_custom_table() {
        let paper = parse(&cat(&[cp(0), vec![b'a', 0x9C, 0xC4], lf(), cut()]));
        assert_eq!(paper.receipts[0].lines[0].text, "a£─");
        assert_eq!(CP437_HIGH.chars().count(), 128);
        let mut p = EscPosParser::with_codepages(HashMap::from([(5, encoding_rs::KOI8_R)]));
        p.feed(&cat(&[
            cp(5),
            vec![0xF0, 0xD2, 0xC9],
            lf(),
            cp(17),
            lf(),
            cut(),
        ]));
        assert_eq!(p.receipts()[0].lines[0].text, "При");
        assert_eq!(p.errors(), &[SimError::UnknownCodePage(17)]);
    }

    #[test]
    fn every_split_point_gives_the_same_paper() {
        let bytes = sample();
        let whole = parse(&bytes);
        for i in 0..=bytes.len() {
            let mut p = EscPosParser::new();
            let mut req = p.feed(&bytes[..i]);
            req.extend(p.feed(&bytes[i..]));
            assert_eq!(req, vec![1]);
            assert_eq!(p.paper(), whole, "split at {i}");
        }
        let mut p = EscPosParser::new();
        for b in &bytes {
            p.feed(std::slice::from_ref(b));
        }
        assert_eq!(p.paper(), whole);
    }

    #[test]
    fn unknown_commands_and_limits() {
        // Unknown ESC/GS: two bytes eaten, the rest prints.
        let paper = parse(&cat(&[vec![ESC, b'Z', GS, 0x01], text("x"), lf(), cut()]));
        assert_eq!(paper.unknown_commands, 2);
        assert_eq!(paper.receipts[0].lines[0].text, "x");
        // Oversized raster: error, data skipped, following text kept.
        let mut big = vec![GS, b'v', b'0', 0];
        big.extend(600u16.to_le_bytes());
        big.extend(10u16.to_le_bytes());
        big.extend(std::iter::repeat_n(b'A', 6000));
        let paper = parse(&cat(&[big, text("after"), lf(), cut()]));
        assert_eq!(paper.receipts[0].lines[0].text, "after");
        assert!(paper.receipts[0].images.is_empty());
        assert!(matches!(
            paper.errors[0],
            SimError::ImageTooLarge {
                width: 4800,
                height: 10,
                ..
            }
        ));
        // Oversized QR.
        let paper = parse(&cat(&[
            qr_store(&[b'9'; 8000]),
            qr_print(),
            text("ok"),
            lf(),
            cut(),
        ]));
        assert_eq!(paper.errors[0], SimError::QrTooLong { len: 8000 });
        assert_eq!(paper.errors[1], SimError::QrEmpty);
        assert_eq!(paper.receipts[0].lines[0].text, "ok");
        // Line limit.
        let paper = parse(&cat(&[vec![LF; MAX_LINES + 5], cut()]));
        assert_eq!(paper.receipts[0].lines.len(), MAX_LINES);
        assert_eq!(paper.errors, vec![SimError::TooManyLines]);
        // Flush ends a receipt without a cut; init discards an unended line.
        let mut p = EscPosParser::new();
        p.feed(&cat(&[text("a"), lf(), text("lost"), init(), text("b")]));
        p.flush();
        let r = &p.receipts()[0];
        assert_eq!(r.cut, None);
        assert_eq!(
            r.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn status_bytes() {
        let table = [
            (SimFault::None, [0x12, 0x12, 0x12, 0x12]),
            (SimFault::PaperNearEnd, [0x12, 0x12, 0x12, 0x1E]),
            (SimFault::PaperEnd, [0x1A, 0x32, 0x12, 0x7E]),
            (SimFault::CoverOpen, [0x1A, 0x16, 0x12, 0x12]),
            (SimFault::Offline, [0x3A, 0x52, 0x16, 0x12]),
            (SimFault::CutterError, [0x3A, 0x52, 0x1A, 0x12]),
            (SimFault::UnrecoverableError, [0x1A, 0x52, 0x32, 0x12]),
        ];
        for (fault, bytes) in table {
            for (i, b) in bytes.iter().enumerate() {
                assert_eq!(
                    status_byte(fault, i as u8 + 1),
                    Some(*b),
                    "{fault:?} n={}",
                    i + 1
                );
            }
            assert_eq!(status_byte(fault, 5), None);
        }
    }

    #[tokio::test]
    async fn sim_answers_status_and_buffers_during_faults() {
        let sim = EscPosSim::default();
        let h = sim.handle();
        let (mut client, server) = tokio::io::duplex(1024);
        let serve = tokio::spawn({
            let sim = sim.clone();
            async move { sim.serve(server).await }
        });
        for fault in [
            SimFault::None,
            SimFault::PaperNearEnd,
            SimFault::PaperEnd,
            SimFault::CoverOpen,
            SimFault::Offline,
            SimFault::CutterError,
            SimFault::UnrecoverableError,
        ] {
            h.set_fault(fault);
            for n in 1..=4u8 {
                client.write_all(&[DLE, EOT, n]).await.unwrap();
                let mut b = [0u8; 1];
                client.read_exact(&mut b).await.unwrap();
                assert_eq!(Some(b[0]), status_byte(fault, n), "{fault:?} {n}");
            }
        }
        // Paper end: nothing printed until the fault clears.
        h.set_fault(SimFault::PaperEnd);
        client
            .write_all(&cat(&[text("held"), lf(), cut(), vec![DLE, EOT, 4]]))
            .await
            .unwrap();
        let mut b = [0u8; 1];
        client.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], 0x7E);
        assert!(h.paper().receipts.is_empty());
        assert!(h.unprinted_len() > 0);
        h.set_fault(SimFault::None);
        let r = h.wait_receipts(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(r[0].lines[0].text, "held");
        assert_eq!(h.take_receipts().len(), 1);
        assert!(h.paper().receipts.is_empty());
        drop(client);
        serve.await.unwrap();
    }

    #[tokio::test]
    async fn silent_printer_does_not_answer() {
        let sim = EscPosSim::new(SimConfig {
            answer_status: false,
        });
        let (mut client, server) = tokio::io::duplex(64);
        tokio::spawn(async move { sim.serve(server).await });
        client.write_all(&[DLE, EOT, 1]).await.unwrap();
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(200), client.read_exact(&mut b)).await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn tcp_round_trip() {
        let (addr, h) = spawn_tcp("127.0.0.1:0".parse().unwrap());
        for i in 0..2 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(&cat(&[
                init(),
                text(&format!("tcp {i}")),
                lf(),
                vec![DLE, EOT, 1],
            ]))
            .await
            .unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], 0x12);
            s.write_all(&cut()).await.unwrap();
            let r = h
                .wait_receipts(i + 1, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(r[i].lines[0].text, format!("tcp {i}"));
        }
        let e = h
            .wait_receipts(3, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e, Timeout { wanted: 3, got: 2 });
    }

    #[tokio::test]
    async fn pty_round_trip() {
        let (path, h) = spawn_pty();
        for round in 0..2 {
            let mut port = tokio_serial::new(path.to_string_lossy(), 115_200)
                .open_native_async()
                .unwrap();
            port.write_all(&cat(&[
                init(),
                cp(17),
                vec![0x8F, 0xE0, 0xA8],
                lf(),
                vec![DLE, EOT, 2],
            ]))
            .await
            .unwrap();
            let mut b = [0u8; 1];
            tokio::time::timeout(Duration::from_secs(5), port.read_exact(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(b[0], 0x12);
            port.write_all(&cut()).await.unwrap();
            let r = h
                .wait_receipts(round + 1, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(r[round].lines[0].text, "При");
        }
    }

    fn check_bounds(paper: &Paper) {
        for r in paper.receipts.iter().chain(std::iter::once(&paper.current)) {
            assert!(r.lines.len() <= MAX_LINES);
            assert!(r.qr.len() <= MAX_QR && r.qr.iter().all(|q| q.len() <= MAX_QR_BYTES * 3));
            assert!(r.barcodes.len() <= MAX_BARCODES);
            assert!(
                r.images
                    .iter()
                    .all(|&(w, h)| w <= MAX_IMAGE_DOTS && h <= MAX_IMAGE_DOTS)
            );
            assert!(
                r.lines
                    .iter()
                    .all(|l| l.text.chars().count() <= MAX_LINE_BYTES)
            );
        }
        assert!(paper.errors.len() <= MAX_ERRORS);
    }

    fn command_soup() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..8),
            proptest::collection::vec(
                prop_oneof![
                    Just(ESC),
                    Just(GS),
                    Just(DLE),
                    Just(FS),
                    Just(LF),
                    Just(0u8),
                    Just(b'('),
                    Just(b'k'),
                    Just(b'v'),
                    Just(b'0'),
                    Just(49u8),
                    Just(80u8),
                    Just(81u8)
                ],
                0..8
            ),
            Just(sample()),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), split in any::<usize>()) {
            let mut p = EscPosParser::new();
            let at = if bytes.is_empty() { 0 } else { split % bytes.len() };
            p.feed(&bytes[..at]);
            p.feed(&bytes[at..]);
            check_bounds(&p.paper());
            prop_assert!(p.buf.len() <= MAX_BUFFERED + 64);
            p.flush();
            check_bounds(&p.paper());
            for r in p.receipts() {
                let _ = r.render_text(32);
            }
        }

        #[test]
        fn chunking_never_changes_the_paper(bytes in command_soup(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            let whole = parse(&bytes);
            let mut points: Vec<usize> = cuts.iter().map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() }).collect();
            points.sort_unstable();
            let mut p = EscPosParser::new();
            let mut last = 0;
            for pt in points {
                p.feed(&bytes[last..pt]);
                last = pt;
            }
            p.feed(&bytes[last..]);
            prop_assert_eq!(p.paper(), whole);
        }
    }
}

#[cfg(test)]
mod qr_line_tests {
    use super::elide_qr;

    #[test]
    fn a_qr_line_never_wraps() {
        assert_eq!(elide_qr("t=1", 20), "[QR: t=1]");
        let long = "t=20260115T0900&s=1234.50&fn=9999078900012345&i=42&fp=1234567890&n=1";
        for width in [1, 5, 6, 7, 20, 32, 42, 48] {
            let s = elide_qr(long, width);
            assert!(s.chars().count() <= width, "{width}: {s}");
        }
        assert_eq!(elide_qr(long, 20), "[QR: t=20260115T09…]");
        assert_eq!(elide_qr("a\nb", 20), "[QR: a b]");
    }
}
