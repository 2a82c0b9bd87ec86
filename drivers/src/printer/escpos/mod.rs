//! ESC/POS encoder: turns a [`Document`] into the bytes an ESC/POS receipt
//! printer (Epson, Xprinter, POS-5890, Rongta, Star in ESC/POS mode...)
//! understands, guided by a printer [`Profile`].
//!
//! ## Character set
//!
//! Text is sent in a single-byte code page selected once after `ESC @`.
//! The choice is fixed and explicit: **CP866** when the profile has a CP866
//! number, otherwise **Windows-1251** when it has a CP1251 number, otherwise
//! plain ASCII. CP866 is preferred because it is the code page Russian
//! receipt printers ship with and the one their firmware fonts are most
//! complete in. Characters the chosen code page cannot represent (and
//! control characters other than `\n`) are printed as `?` and counted in
//! [`Encoded::unrepresentable`].
//!
//! ## Layout
//!
//! Layout uses font A's columns for the paper (from the profile); double
//! width halves them. The paper is the narrower of the loaded paper and the
//! document's `width`.

mod profile;
mod raster;
mod status;

#[cfg(test)]
mod tests;

pub use profile::{CodePages, CutSupport, PaperSpec, Papers, Profile, ProfileError};
pub use raster::{
    Bitmap, Gray, decode_png, dither, png_to_bitmap, qr_bitmap, qr_scale, raster_command,
    scale_to_fit,
};
pub use status::{StatusBits, decode_status, is_status_byte, status_request};

use encoding_rs::Encoding;

use crate::printer::document::{
    Align, BarcodeKind, Block, Cell, Document, DocumentError, EcLevel, PaperWidth, ean13_digits,
};

const ESC: u8 = 0x1b;
const GS: u8 = 0x1d;
const LF: u8 = 0x0a;

/// Printer bytes for a document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Characters replaced by `?` because the code page lacks them (and
    /// has no stand-in for them, see [`stand_in`]).
    pub unrepresentable: usize,
    /// Which characters those were, each once, in order of appearance (at
    /// most [`MISSING_LISTED`]), so a job's result can name them.
    pub missing: Vec<char>,
}

/// The most distinct missing characters an [`Encoded`] lists.
pub const MISSING_LISTED: usize = 16;

/// What prints for a character the code page lacks, when the reader would
/// take it for the same thing: dashes as `-`, typographic quotes as `"` or
/// `'`, `€` as `EUR`, an ellipsis as `...`. `None`: no stand-in (it prints
/// as `?` and is reported).
pub fn stand_in(ch: char) -> Option<&'static str> {
    Some(match ch {
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        '«' | '»' | '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => "\"",
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => "'",
        '€' => "EUR",
        '…' => "...",
        '\u{00A0}' | '\u{2007}' | '\u{202F}' => " ",
        '×' => "x",
        '•' | '·' => "*",
        '№' => "N",
        _ => return None,
    })
}

/// Why a document could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("invalid document: {0}")]
    Invalid(#[from] DocumentError),
    #[error("blocks[{block}]: {message}")]
    Qr { block: usize, message: String },
    #[error("blocks[{block}]: {message}")]
    Image { block: usize, message: String },
}

/// The code page text is sent in (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePage {
    /// IBM866 (DOS Cyrillic), selected with this number.
    Cp866(u8),
    /// Windows-1251, selected with this number.
    Cp1251(u8),
    /// The printer's power-on code page; only ASCII is sent.
    Ascii,
}

impl CodePage {
    /// CP866 if the profile has it, else CP1251, else ASCII.
    pub fn for_profile(profile: &Profile) -> CodePage {
        match (profile.code_pages.cp866, profile.code_pages.cp1251) {
            (Some(n), _) => CodePage::Cp866(n),
            (None, Some(n)) => CodePage::Cp1251(n),
            (None, None) => CodePage::Ascii,
        }
    }

    fn encoding(self) -> Option<&'static Encoding> {
        match self {
            CodePage::Cp866(_) => Some(encoding_rs::IBM866),
            CodePage::Cp1251(_) => Some(encoding_rs::WINDOWS_1251),
            CodePage::Ascii => None,
        }
    }

    /// The byte for `ch`, or `None` if the code page lacks it. Control
    /// characters are never representable.
    pub fn encode_char(self, ch: char) -> Option<u8> {
        if ch.is_control() {
            return None;
        }
        if ch.is_ascii() {
            return Some(ch as u8);
        }
        // An encoder on the stack and a one-byte output: no allocation per
        // character (`Encoding::encode` returns a fresh Vec for non-ASCII).
        let mut enc = self.encoding()?.new_encoder();
        let mut src = [0u8; 4];
        let mut out = [0u8; 1];
        let (result, _, written) =
            enc.encode_from_utf8_without_replacement(ch.encode_utf8(&mut src), &mut out, true);
        match (result, written) {
            (encoding_rs::EncoderResult::InputEmpty, 1) => Some(out[0]),
            _ => None,
        }
    }
}

/// `ESC t n`, or `ESC GS t n` for Star printers in ESC/POS emulation.
pub fn select_code_page(profile: &Profile, n: u8) -> Vec<u8> {
    if profile.star_codepage_command {
        vec![ESC, GS, b't', n]
    } else {
        vec![ESC, b't', n]
    }
}

struct Writer {
    out: Vec<u8>,
    code_page: CodePage,
    unrepresentable: usize,
    missing: Vec<char>,
    bold: bool,
    underline: bool,
    size: u8,
    align: u8,
}

impl Writer {
    fn bold(&mut self, on: bool) {
        if self.bold != on {
            self.bold = on;
            self.out.extend_from_slice(&[ESC, b'E', u8::from(on)]);
        }
    }
    fn underline(&mut self, on: bool) {
        if self.underline != on {
            self.underline = on;
            self.out.extend_from_slice(&[ESC, b'-', u8::from(on)]);
        }
    }
    fn size(&mut self, double_width: bool, double_height: bool) {
        let n = if double_width { 0x10 } else { 0 } | u8::from(double_height);
        if self.size != n {
            self.size = n;
            self.out.extend_from_slice(&[GS, b'!', n]);
        }
    }
    fn align(&mut self, align: Align) {
        let n = match align {
            Align::Left => 0,
            Align::Center => 1,
            Align::Right => 2,
        };
        if self.align != n {
            self.align = n;
            self.out.extend_from_slice(&[ESC, b'a', n]);
        }
    }
    fn plain(&mut self) {
        self.bold(false);
        self.underline(false);
        self.size(false, false);
    }
    /// Text already sanitised by [`sanitize`]; unencodable chars become '?'.
    fn line(&mut self, s: &str) {
        for ch in s.chars() {
            match self.code_page.encode_char(ch) {
                Some(b) => self.out.push(b),
                None => {
                    self.unrepresentable += 1;
                    if !self.missing.contains(&ch) && self.missing.len() < MISSING_LISTED {
                        self.missing.push(ch);
                    }
                    self.out.push(b'?');
                }
            }
        }
        self.out.push(LF);
    }
}

/// Replace tabs with spaces, drop `\r`, turn other control characters
/// (except `\n`) into `?` (counted), and put a [`stand_in`] for each
/// character `page` lacks and has one for.
fn sanitize(s: &str, bad: &mut usize, page: CodePage) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|&c| c != '\r') {
        match c {
            '\t' => out.push(' '),
            '\n' => out.push('\n'),
            c if c.is_control() => {
                *bad += 1;
                out.push('?');
            }
            // Before layout, so the columns count the stand-in's width.
            c => match stand_in(c).filter(|_| page.encode_char(c).is_none()) {
                Some(text) => out.push_str(text),
                None => out.push(c),
            },
        }
    }
    out
}

/// Greedy word wrap to `width` characters (at least 1); words longer than
/// the width are broken; `\n` forces a break; runs of spaces collapse to
/// one. Always at least one line.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut len = 0usize;
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            let mut chars: Vec<char> = word.chars().collect();
            let wlen = chars.len();
            if len > 0 && len + 1 + wlen <= width {
                line.push(' ');
                line.extend(chars.iter());
                len += 1 + wlen;
                continue;
            }
            if len > 0 {
                lines.push(std::mem::take(&mut line));
            }
            while chars.len() > width {
                let rest = chars.split_off(width);
                lines.push(chars.into_iter().collect());
                chars = rest;
            }
            len = chars.len();
            line.extend(chars);
        }
        lines.push(line);
    }
    lines
}

/// Pad `s` (of `len` chars) to `width` with `align`.
fn pad(s: &str, width: usize, align: Align) -> String {
    let len = s.chars().count();
    let room = width.saturating_sub(len);
    let (l, r) = match align {
        Align::Left => (0, room),
        Align::Right => (room, 0),
        Align::Center => (room / 2, room - room / 2),
    };
    let mut out = String::with_capacity(s.len() + room);
    out.extend(std::iter::repeat_n(' ', l));
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', r));
    out
}

/// Column widths (in characters) for a row of `cells` on a line of `total`
/// characters, one space between columns. Cells with a `width` get it
/// (shrunk if the line is too narrow); the rest share the remaining room by
/// `weight` (default 1), leftovers going to the first shared cell. Every
/// column is at least one character wide.
/// The longest word of a cell, in characters.
fn longest_word(c: &Cell) -> usize {
    c.text
        .split([' ', '\n'])
        .map(|w| w.chars().count())
        .max()
        .unwrap_or(0)
}

/// How far a cell may be narrowed, from its whole text's length and its
/// longest word's.
type Floor = fn(usize, usize) -> usize;

/// `widths` moved so that no cell breaks a word (a price, a total) that
/// the row could hold whole. A cell too narrow for its longest word takes,
/// in turn: what other cells do not need for their whole text (they stay
/// on one line); then from the cells to its left down to their longest
/// word, then down to one column (a description wraps between words, or
/// is cut, rather than a number cut in two: `319,9` / `0` on a
/// double-width total). Only a word longer than the whole row is broken.
pub fn keep_words_whole(cells: &[Cell], mut widths: Vec<usize>) -> Vec<usize> {
    let need: Vec<usize> = cells.iter().map(longest_word).collect();
    let whole: Vec<usize> = cells.iter().map(|c| c.text.chars().count()).collect();
    for i in 0..widths.len() {
        let mut short = need[i].saturating_sub(widths[i]);
        let passes: [(bool, Floor); 3] = [
            (true, |whole, _| whole.max(1)),
            (false, |_, need| need.max(1)),
            (false, |_, _| 1),
        ];
        for (any_side, floor) in passes {
            for j in (0..widths.len()).filter(|&j| j != i && (any_side || j < i)) {
                let give = widths[j]
                    .saturating_sub(floor(whole[j], need[j]))
                    .min(short);
                widths[j] -= give;
                widths[i] += give;
                short -= give;
            }
        }
    }
    widths
}

pub fn column_widths(cells: &[Cell], total: usize) -> Vec<usize> {
    let n = cells.len();
    if n == 0 {
        return Vec::new();
    }
    let avail = total.saturating_sub(n - 1).max(n);
    let flex = cells.iter().filter(|c| c.width.is_none()).count();
    let mut widths = vec![0usize; n];
    // Fixed cells, left to right, leaving at least one char per other column.
    let mut remaining = avail;
    let mut fixed_left = n - flex;
    for (i, c) in cells.iter().enumerate() {
        if let Some(w) = c.width {
            fixed_left -= 1;
            let reserve = flex + fixed_left;
            let w = usize::from(w).clamp(1, remaining.saturating_sub(reserve).max(1));
            widths[i] = w;
            remaining = remaining.saturating_sub(w);
        }
    }
    if flex == 0 {
        widths[0] += remaining;
        return widths;
    }
    let weight = |c: &Cell| usize::from(c.weight.unwrap_or(1).max(1));
    let total_weight: usize = cells.iter().filter(|c| c.width.is_none()).map(weight).sum();
    let mut given = 0;
    let mut first_flex = None;
    for (i, c) in cells.iter().enumerate() {
        if c.width.is_none() {
            first_flex.get_or_insert(i);
            let w = (remaining * weight(c) / total_weight).max(1);
            widths[i] = w;
            given += w;
        }
    }
    if let Some(i) = first_flex {
        widths[i] += remaining.saturating_sub(given);
    }
    widths
}

/// Lay out a columns row: each cell wrapped to its column, lines padded and
/// joined with a space, trailing spaces trimmed.
pub fn layout_columns(cells: &[Cell], total: usize) -> Vec<String> {
    let widths = keep_words_whole(cells, column_widths(cells, total));
    let wrapped: Vec<Vec<String>> = cells
        .iter()
        .zip(&widths)
        .map(|(c, &w)| wrap(&c.text, w))
        .collect();
    let rows = wrapped.iter().map(Vec::len).max().unwrap_or(0);
    (0..rows)
        .map(|r| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let align = c
                        .align
                        .unwrap_or(if i == 0 { Align::Left } else { Align::Right });
                    let text = wrapped[i].get(r).map(String::as_str).unwrap_or("");
                    pad(text, widths[i], align)
                })
                .collect();
            parts.join(" ").trim_end().to_string()
        })
        .collect()
}

/// Encode `doc` for a printer described by `profile` with `paper` loaded.
///
/// The document is validated first. Output starts with `ESC @` and the
/// code-page selection (see the module documentation).
pub fn encode(
    doc: &Document,
    profile: &Profile,
    paper: PaperWidth,
) -> Result<Encoded, EncodeError> {
    doc.validate()?;
    let layout = doc.width.map_or(paper, |w| w.narrower(paper));
    let spec = *profile.paper(layout);
    let cols = usize::from(spec.font_a_columns).max(1);
    let dots = usize::from(spec.dots_per_line).max(8);
    let code_page = CodePage::for_profile(profile);
    let mut w = Writer {
        out: vec![ESC, b'@'],
        code_page,
        unrepresentable: 0,
        missing: Vec::new(),
        bold: false,
        underline: false,
        size: 0,
        align: 0,
    };
    match code_page {
        CodePage::Cp866(n) | CodePage::Cp1251(n) => {
            w.out.extend(select_code_page(profile, n));
        }
        CodePage::Ascii => {}
    }
    for (i, block) in doc.blocks.iter().enumerate() {
        match block {
            Block::Text {
                text,
                bold,
                underline,
                double_width,
                double_height,
                align,
            } => {
                let text = sanitize(text, &mut w.unrepresentable, w.code_page);
                w.align(*align);
                w.bold(*bold);
                w.underline(*underline);
                w.size(*double_width, *double_height);
                let width = if *double_width { cols / 2 } else { cols };
                for line in wrap(&text, width) {
                    w.line(&line);
                }
            }
            Block::Columns {
                cells,
                bold,
                double_width,
            } => {
                let cells: Vec<Cell> = cells
                    .iter()
                    .map(|c| Cell {
                        text: sanitize(&c.text, &mut w.unrepresentable, w.code_page),
                        ..c.clone()
                    })
                    .collect();
                w.align(Align::Left);
                w.bold(*bold);
                w.underline(false);
                w.size(*double_width, false);
                let width = if *double_width { cols / 2 } else { cols };
                for line in layout_columns(&cells, width) {
                    w.line(&line);
                }
            }
            Block::Separator { char } => {
                w.align(Align::Left);
                w.plain();
                let line: String = std::iter::repeat_n(*char, cols).collect();
                w.line(&line);
            }
            Block::Qr {
                payload,
                module_size,
                ec,
            } => {
                let qr_error = |message| EncodeError::Qr { block: i, message };
                w.align(Align::Center);
                if profile.native_qr {
                    // The printer draws it; only check that it fits.
                    qr_scale(payload.as_bytes(), *ec, *module_size, dots).map_err(qr_error)?;
                    native_qr(&mut w.out, payload.as_bytes(), *module_size, *ec);
                } else {
                    let bitmap =
                        qr_bitmap(payload.as_bytes(), *ec, *module_size, dots).map_err(qr_error)?;
                    raster_command(&bitmap, &mut w.out);
                }
            }
            Block::Barcode {
                kind,
                data,
                height,
                hri,
            } => {
                w.align(Align::Center);
                w.plain();
                let h = u8::try_from(*height).unwrap_or(u8::MAX).max(1);
                w.out
                    .extend_from_slice(&[GS, b'h', h, GS, b'H', if *hri { 2 } else { 0 }]);
                match kind {
                    BarcodeKind::Ean13 => {
                        // validate() has checked the digits.
                        let digits = ean13_digits(data).unwrap_or([0; 13]);
                        w.out.extend_from_slice(&[GS, b'k', 67, 13]);
                        w.out.extend(digits.iter().map(|d| b'0' + d));
                    }
                    BarcodeKind::Code128 => {
                        let mut body = b"{B".to_vec();
                        for b in data.bytes() {
                            if b == b'{' {
                                body.push(b'{');
                            }
                            body.push(b);
                        }
                        body.truncate(255);
                        // Start, one symbol per character, check (11 modules
                        // each) and stop (13): at the default module width of
                        // 3 dots a long code overflows the paper and Epson
                        // printers drop it, so narrow the bars to 2 dots for
                        // this barcode only.
                        let chars = data.len().min(253);
                        let modules = 11 * (chars + 2) + 13;
                        let narrow = modules * 3 > dots;
                        if narrow {
                            w.out.extend_from_slice(&[GS, b'w', 2]);
                        }
                        w.out.extend_from_slice(&[GS, b'k', 73, body.len() as u8]);
                        w.out.extend(body);
                        if narrow {
                            w.out.extend_from_slice(&[GS, b'w', 3]);
                        }
                    }
                }
            }
            Block::Image { .. } => {
                let png = block
                    .image_png()
                    .unwrap_or_else(|| Err("not an image".into()))
                    .map_err(|message| EncodeError::Image { block: i, message })?;
                let bitmap = png_to_bitmap(&png, dots)
                    .map_err(|message| EncodeError::Image { block: i, message })?;
                w.align(Align::Center);
                raster_command(&bitmap, &mut w.out);
            }
            Block::Feed { lines } => {
                if *lines > 0 {
                    let n = u8::try_from(*lines).unwrap_or(u8::MAX);
                    w.out.extend_from_slice(&[ESC, b'd', n]);
                }
            }
            Block::Cut { partial } => match profile.cut {
                CutSupport::Full => {
                    // GS V m n, function B: feed to the cutter, then cut.
                    let m = if *partial { 66 } else { 65 };
                    w.out.extend_from_slice(&[GS, b'V', m, 0]);
                }
                CutSupport::Partial => w.out.extend_from_slice(&[GS, b'V', 66, 0]),
                CutSupport::None => w.out.extend_from_slice(&[ESC, b'd', 4]),
            },
            Block::DrawerKick { pin } => {
                // ESC p m t1 t2: 50 ms on, 500 ms off.
                w.out
                    .extend_from_slice(&[ESC, b'p', (*pin).min(1), 25, 250]);
            }
        }
    }
    Ok(Encoded {
        bytes: w.out,
        unrepresentable: w.unrepresentable,
        missing: w.missing,
    })
}

/// `GS ( k` sequence: model 2, module size, EC level, store, print.
fn native_qr(out: &mut Vec<u8>, data: &[u8], module_size: u8, ec: EcLevel) {
    let ec = match ec {
        EcLevel::L => 48,
        EcLevel::M => 49,
        EcLevel::Q => 50,
        EcLevel::H => 51,
    };
    out.extend_from_slice(&[GS, b'(', b'k', 4, 0, 49, 65, 50, 0]);
    out.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 67, module_size.clamp(1, 16)]);
    out.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 69, ec]);
    let len = (data.len() + 3).min(usize::from(u16::MAX)) as u16;
    out.extend_from_slice(&[GS, b'(', b'k']);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[49, 80, 48]);
    out.extend_from_slice(&data[..usize::from(len) - 3]);
    out.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 81, 48]);
}
