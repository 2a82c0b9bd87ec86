//! The receipt document model: what a POS program asks a receipt printer to
//! print, independent of the printer's command language.
//!
//! A [`Document`] is a list of [`Block`]s. The JSON form is internally tagged
//! by `"type"`; unknown fields are rejected everywhere:
//!
//! ```json
//! {
//!   "width": "80mm",
//!   "blocks": [
//!     {"type": "text", "text": "ООО Ромашка", "bold": true, "align": "center",
//!      "double_width": true},
//!     {"type": "columns", "cells": [
//!       {"text": "Молоко 3,2% 1 л"},
//!       {"text": "2 x 89,90", "width": 10},
//!       {"text": "179,80", "width": 9}
//!     ]},
//!     {"type": "separator", "char": "="},
//!     {"type": "text", "text": "Бонусы: 120,00"},
//!     {"type": "qr", "payload": "t=20240101T1200&s=179.80", "module_size": 6, "ec": "M"},
//!     {"type": "barcode", "kind": "ean13", "data": "460123456789", "height": 80, "hri": true},
//!     {"type": "image", "png_base64": "iVBORw0KGgo..."},
//!     {"type": "feed", "lines": 3},
//!     {"type": "cut", "partial": true},
//!     {"type": "drawer_kick", "pin": 0}
//!   ]
//! }
//! ```
//!
//! Field defaults: text styles `false`, `align` `"left"`, separator `char`
//! `"-"`, QR `module_size` 6 and `ec` `"M"`, barcode `height` 80 and `hri`
//! `true`, feed `lines` 1, cut `partial` `false`, drawer `pin` 0.
//!
//! [`Document::validate`] checks every limit and names the offending block and
//! field, e.g. `blocks[3].data: EAN-13 needs 12 or 13 digits`. Nothing in this
//! module panics on any input.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most blocks in one document.
pub const MAX_BLOCKS: usize = 2000;
/// Most characters of text in one block (all cells of a columns row together).
pub const MAX_TEXT_CHARS: usize = 4096;
/// Most bytes in a QR payload (version 40, level L, byte mode).
pub const MAX_QR_BYTES: usize = 2953;
/// Most bytes of PNG data in one image block (after base64 decoding).
pub const MAX_IMAGE_BYTES: usize = 1024 * 1024;
/// Widest image accepted, in pixels (scaled down to the paper when printed).
pub const MAX_IMAGE_WIDTH: u32 = 2048;
/// Tallest image accepted, in pixels.
pub const MAX_IMAGE_HEIGHT: u32 = 8192;
/// Most lines in one feed block.
pub const MAX_FEED_LINES: u8 = 255;
/// Most characters in a CODE128 barcode (code set B).
pub const MAX_CODE128_CHARS: usize = 80;

/// Paper roll width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaperWidth {
    /// 57–58 mm rolls (384 dots at 203 dpi).
    #[serde(rename = "58mm")]
    Mm58,
    /// 79–80 mm rolls (576 dots at 203 dpi).
    #[serde(rename = "80mm")]
    Mm80,
}

impl PaperWidth {
    /// The narrower of two widths.
    pub fn narrower(self, other: PaperWidth) -> PaperWidth {
        match (self, other) {
            (PaperWidth::Mm80, PaperWidth::Mm80) => PaperWidth::Mm80,
            _ => PaperWidth::Mm58,
        }
    }
}

/// Horizontal alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    #[default]
    Left,
    Center,
    Right,
}

/// QR error-correction level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EcLevel {
    L,
    #[default]
    M,
    Q,
    H,
}

/// Barcode symbology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BarcodeKind {
    /// EAN-13: 12 digits (check digit computed) or 13 digits (check digit verified).
    Ean13,
    /// CODE128, code set B: printable ASCII.
    Code128,
}

/// A receipt: optional paper width it was laid out for, and its blocks.
///
/// `width`, when given, is the paper the document was designed for; the
/// encoder lays out for the narrower of it and the loaded paper.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<PaperWidth>,
    #[serde(default)]
    pub blocks: Vec<Block>,
}

/// One cell of a [`Block::Columns`] row.
///
/// `width` fixes the cell's width in characters; otherwise the cell takes a
/// share of the remaining width proportional to `weight` (default 1).
/// `align` defaults to left for the first cell and right for the others.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub align: Option<Align>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
}

fn default_separator() -> char {
    '-'
}
fn default_module_size() -> u8 {
    6
}
fn default_barcode_height() -> u16 {
    80
}
fn default_true() -> bool {
    true
}
fn default_feed() -> u16 {
    1
}

/// One element of a receipt. JSON: `{"type": "<snake_case variant>", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    /// A paragraph, word-wrapped to the paper. `\n` starts a new line.
    Text {
        text: String,
        #[serde(default)]
        bold: bool,
        #[serde(default)]
        underline: bool,
        #[serde(default)]
        double_width: bool,
        #[serde(default)]
        double_height: bool,
        #[serde(default)]
        align: Align,
    },
    /// A 2- or 3-column row (name … qty … sum), fitted to the paper; cells
    /// that do not fit their column wrap onto further lines.
    Columns {
        cells: Vec<Cell>,
        #[serde(default)]
        bold: bool,
        #[serde(default)]
        double_width: bool,
    },
    /// A full-width line of one repeated character.
    Separator {
        #[serde(default = "default_separator")]
        char: char,
    },
    /// A QR code; `module_size` 1..=16 dots.
    Qr {
        payload: String,
        #[serde(default = "default_module_size")]
        module_size: u8,
        #[serde(default)]
        ec: EcLevel,
    },
    /// A 1-D barcode; `height` 1..=255 dots; `hri` prints the digits below.
    Barcode {
        kind: BarcodeKind,
        data: String,
        #[serde(default = "default_barcode_height")]
        height: u16,
        #[serde(default = "default_true")]
        hri: bool,
    },
    /// A PNG picture, dithered to black and white and scaled down to the
    /// paper. Exactly one of `png_base64` (JSON) or `png` (raw PNG bytes).
    Image {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        png_base64: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        png: Option<Vec<u8>>,
    },
    /// Feed paper by `lines` lines (0..=255).
    Feed {
        #[serde(default = "default_feed")]
        lines: u16,
    },
    /// Cut the paper (fed to the cutter first). Without a cutter the printer
    /// feeds a few lines so the receipt can be torn off.
    Cut {
        #[serde(default)]
        partial: bool,
    },
    /// Pulse a cash drawer: `pin` 0 (connector pin 2) or 1 (pin 5).
    DrawerKick {
        #[serde(default)]
        pin: u8,
    },
}

/// A document that fails [`Document::validate`]. `Display` reads like
/// `blocks[3].data: EAN-13 needs 12 or 13 digits`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DocumentError {
    /// Index of the offending block, or `None` for the document itself.
    pub block: Option<usize>,
    /// Field path inside the block (`data`, `cells[1].text`) or document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.block {
            Some(i) => write!(f, "blocks[{i}].{}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

fn err(block: usize, field: impl Into<String>, message: impl Into<String>) -> DocumentError {
    DocumentError {
        block: Some(block),
        field: field.into(),
        message: message.into(),
    }
}

impl Document {
    /// Check every block against the limits; the first problem is returned.
    pub fn validate(&self) -> Result<(), DocumentError> {
        if self.blocks.len() > MAX_BLOCKS {
            return Err(DocumentError {
                block: None,
                field: "blocks".into(),
                message: format!("{} blocks, at most {MAX_BLOCKS} allowed", self.blocks.len()),
            });
        }
        for (i, block) in self.blocks.iter().enumerate() {
            block.validate(i)?;
        }
        Ok(())
    }
}

fn check_text(i: usize, field: &str, chars: usize) -> Result<(), DocumentError> {
    if chars > MAX_TEXT_CHARS {
        return Err(err(
            i,
            field,
            format!("{chars} characters, at most {MAX_TEXT_CHARS} allowed"),
        ));
    }
    Ok(())
}

impl Block {
    fn validate(&self, i: usize) -> Result<(), DocumentError> {
        match self {
            Block::Text { text, .. } => check_text(i, "text", text.chars().count()),
            Block::Columns { cells, .. } => {
                if !(2..=3).contains(&cells.len()) {
                    return Err(err(
                        i,
                        "cells",
                        format!("{} cells, 2 or 3 needed", cells.len()),
                    ));
                }
                let mut total = 0usize;
                for (c, cell) in cells.iter().enumerate() {
                    total += cell.text.chars().count();
                    if cell.weight == Some(0) {
                        return Err(err(i, format!("cells[{c}].weight"), "must be at least 1"));
                    }
                    if cell.width == Some(0) {
                        return Err(err(i, format!("cells[{c}].width"), "must be at least 1"));
                    }
                    if cell.width.is_some() && cell.weight.is_some() {
                        return Err(err(
                            i,
                            format!("cells[{c}].width"),
                            "give either width or weight, not both",
                        ));
                    }
                }
                check_text(i, "cells", total)
            }
            Block::Separator { char } => {
                if char.is_control() {
                    return Err(err(i, "char", "control characters are not printable"));
                }
                Ok(())
            }
            Block::Qr {
                payload,
                module_size,
                ..
            } => {
                if payload.is_empty() {
                    return Err(err(i, "payload", "must not be empty"));
                }
                if payload.len() > MAX_QR_BYTES {
                    return Err(err(
                        i,
                        "payload",
                        format!("{} bytes, at most {MAX_QR_BYTES} allowed", payload.len()),
                    ));
                }
                if !(1..=16).contains(module_size) {
                    return Err(err(i, "module_size", "must be 1..=16"));
                }
                Ok(())
            }
            Block::Barcode {
                kind, data, height, ..
            } => {
                if !(1..=255).contains(height) {
                    return Err(err(i, "height", "must be 1..=255 dots"));
                }
                match kind {
                    BarcodeKind::Ean13 => ean13_digits(data)
                        .map(|_| ())
                        .map_err(|m| err(i, "data", m)),
                    BarcodeKind::Code128 => {
                        if data.is_empty() {
                            return Err(err(i, "data", "CODE128 needs at least one character"));
                        }
                        if let Some(c) = data.chars().find(|c| !(' '..='~').contains(c)) {
                            return Err(err(
                                i,
                                "data",
                                format!("CODE128 set B takes printable ASCII only, not {c:?}"),
                            ));
                        }
                        let n = data.chars().count();
                        if n > MAX_CODE128_CHARS {
                            return Err(err(
                                i,
                                "data",
                                format!("{n} characters, at most {MAX_CODE128_CHARS} allowed"),
                            ));
                        }
                        Ok(())
                    }
                }
            }
            Block::Image { png_base64, png } => {
                let (field, bytes) = match (png_base64, png) {
                    (Some(b64), None) => {
                        // Cheap length check before decoding: 4 chars -> 3 bytes.
                        if b64.len() / 4 * 3 > MAX_IMAGE_BYTES + 3 {
                            return Err(err(i, "png_base64", "image larger than 1 MiB"));
                        }
                        let bytes = decode_base64(b64).map_err(|m| err(i, "png_base64", m))?;
                        ("png_base64", std::borrow::Cow::Owned(bytes))
                    }
                    (None, Some(raw)) => ("png", std::borrow::Cow::Borrowed(raw.as_slice())),
                    (None, None) => return Err(err(i, "png_base64", "png_base64 or png needed")),
                    (Some(_), Some(_)) => {
                        return Err(err(i, "png", "give png_base64 or png, not both"));
                    }
                };
                if bytes.len() > MAX_IMAGE_BYTES {
                    return Err(err(
                        i,
                        field,
                        format!("{} bytes, at most {MAX_IMAGE_BYTES} allowed", bytes.len()),
                    ));
                }
                let (w, h) = png_dimensions(&bytes).map_err(|m| err(i, field, m))?;
                if w > MAX_IMAGE_WIDTH {
                    return Err(err(
                        i,
                        field,
                        format!("{w} px wide, at most {MAX_IMAGE_WIDTH} allowed"),
                    ));
                }
                if h > MAX_IMAGE_HEIGHT {
                    return Err(err(
                        i,
                        field,
                        format!("{h} px tall, at most {MAX_IMAGE_HEIGHT} allowed"),
                    ));
                }
                Ok(())
            }
            Block::Feed { lines } => {
                if *lines > u16::from(MAX_FEED_LINES) {
                    return Err(err(i, "lines", "at most 255 lines"));
                }
                Ok(())
            }
            Block::Cut { .. } => Ok(()),
            Block::DrawerKick { pin } => {
                if *pin > 1 {
                    return Err(err(i, "pin", "must be 0 (pin 2) or 1 (pin 5)"));
                }
                Ok(())
            }
        }
    }

    /// The PNG bytes of an image block (decoding base64), if this is one.
    pub fn image_png(&self) -> Option<Result<Vec<u8>, String>> {
        match self {
            Block::Image {
                png_base64: Some(b64),
                ..
            } => Some(decode_base64(b64)),
            Block::Image { png: Some(raw), .. } => Some(Ok(raw.clone())),
            _ => None,
        }
    }
}

/// The 13 digits of an EAN-13 code: 12 digits get their check digit
/// computed, 13 digits have it verified.
pub fn ean13_digits(data: &str) -> Result<[u8; 13], String> {
    let digits: Vec<u8> = data
        .bytes()
        .map(|b| {
            if b.is_ascii_digit() {
                Ok(b - b'0')
            } else {
                Err(())
            }
        })
        .collect::<Result<_, _>>()
        .map_err(|()| "EAN-13 takes digits only".to_string())?;
    if digits.len() != 12 && digits.len() != 13 {
        return Err("EAN-13 needs 12 or 13 digits".into());
    }
    let check = ean13_check_digit(&digits[..12]);
    if digits.len() == 13 && digits[12] != check {
        return Err(format!(
            "EAN-13 check digit is {}, expected {check}",
            digits[12]
        ));
    }
    let mut out = [0u8; 13];
    out[..12].copy_from_slice(&digits[..12]);
    out[12] = check;
    Ok(out)
}

/// EAN-13 check digit of the first 12 digits (weights 1, 3, 1, 3, ...).
pub fn ean13_check_digit(first12: &[u8]) -> u8 {
    let sum: u32 = first12
        .iter()
        .take(12)
        .enumerate()
        .map(|(i, &d)| u32::from(d) * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Standard base64 (RFC 4648, `+/`, optional `=` padding; ASCII whitespace
/// ignored).
pub fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut nbits = 0u32;
    let mut padding = 0usize;
    for (pos, c) in s.bytes().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return Err(format!("invalid base64: data after padding at byte {pos}"));
        }
        let v = val(c).ok_or_else(|| format!("invalid base64 character at byte {pos}"))?;
        acc = (acc << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
            acc &= (1 << nbits) - 1;
        }
    }
    if padding > 2 || nbits >= 6 {
        return Err("invalid base64: bad length".into());
    }
    Ok(out)
}

/// Width and height from a PNG header, without decoding the pixels.
pub fn png_dimensions(bytes: &[u8]) -> Result<(u32, u32), String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let info = reader.info();
    Ok((info.width, info.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(blocks: Vec<Block>) -> Document {
        Document {
            width: None,
            blocks,
        }
    }

    #[test]
    fn json_like_toml_roundtrip_and_defaults() {
        let src = r#"
            width = "58mm"
            [[blocks]]
            type = "text"
            text = "Hello"
            bold = true
            align = "center"
            [[blocks]]
            type = "qr"
            payload = "x"
            [[blocks]]
            type = "drawer_kick"
        "#;
        let d: Document = toml::from_str(src).unwrap();
        assert_eq!(d.width, Some(PaperWidth::Mm58));
        assert_eq!(
            d.blocks[1],
            Block::Qr {
                payload: "x".into(),
                module_size: 6,
                ec: EcLevel::M
            }
        );
        assert_eq!(d.blocks[2], Block::DrawerKick { pin: 0 });
        d.validate().unwrap();
    }

    #[test]
    fn unknown_fields_rejected() {
        let src = r#"
            [[blocks]]
            type = "text"
            text = "Hello"
            colour = "red"
        "#;
        assert!(toml::from_str::<Document>(src).is_err());
        assert!(toml::from_str::<Document>("foo = 1").is_err());
        let src = r#"
            [[blocks]]
            type = "columns"
            cells = [{ text = "a", size = 3 }, { text = "b" }]
        "#;
        assert!(toml::from_str::<Document>(src).is_err());
    }

    #[test]
    fn validate_names_block_and_field() {
        let cases: Vec<(Block, &str)> = vec![
            (
                Block::Barcode {
                    kind: BarcodeKind::Ean13,
                    data: "12345".into(),
                    height: 80,
                    hri: true,
                },
                "blocks[1].data: EAN-13 needs 12 or 13 digits",
            ),
            (
                Block::Barcode {
                    kind: BarcodeKind::Ean13,
                    data: "4601234567891".into(),
                    height: 80,
                    hri: true,
                },
                "blocks[1].data: EAN-13 check digit is 1, expected 3",
            ),
            (
                Block::Barcode {
                    kind: BarcodeKind::Code128,
                    data: "ÄB".into(),
                    height: 80,
                    hri: true,
                },
                "blocks[1].data: CODE128 set B takes printable ASCII only, not 'Ä'",
            ),
            (
                Block::Barcode {
                    kind: BarcodeKind::Code128,
                    data: "AB".into(),
                    height: 0,
                    hri: true,
                },
                "blocks[1].height: must be 1..=255 dots",
            ),
            (
                Block::Qr {
                    payload: "x".into(),
                    module_size: 17,
                    ec: EcLevel::L,
                },
                "blocks[1].module_size: must be 1..=16",
            ),
            (
                Block::Qr {
                    payload: "x".repeat(2954),
                    module_size: 4,
                    ec: EcLevel::L,
                },
                "blocks[1].payload: 2954 bytes, at most 2953 allowed",
            ),
            (
                Block::Text {
                    text: "ж".repeat(4097),
                    bold: false,
                    underline: false,
                    double_width: false,
                    double_height: false,
                    align: Align::Left,
                },
                "blocks[1].text: 4097 characters, at most 4096 allowed",
            ),
            (
                Block::Columns {
                    cells: vec![Cell::default()],
                    bold: false,
                    double_width: false,
                },
                "blocks[1].cells: 1 cells, 2 or 3 needed",
            ),
            (
                Block::Columns {
                    cells: vec![
                        Cell::default(),
                        Cell {
                            weight: Some(0),
                            ..Cell::default()
                        },
                    ],
                    bold: false,
                    double_width: false,
                },
                "blocks[1].cells[1].weight: must be at least 1",
            ),
            (
                Block::Image {
                    png_base64: Some("!!!!".into()),
                    png: None,
                },
                "blocks[1].png_base64: invalid base64 character at byte 0",
            ),
            (
                Block::Image {
                    png_base64: None,
                    png: Some(vec![1, 2, 3]),
                },
                "blocks[1].png: not a readable PNG",
            ),
            (
                Block::Image {
                    png_base64: None,
                    png: None,
                },
                "blocks[1].png_base64: png_base64 or png needed",
            ),
            (
                Block::Feed { lines: 256 },
                "blocks[1].lines: at most 255 lines",
            ),
            (
                Block::DrawerKick { pin: 2 },
                "blocks[1].pin: must be 0 (pin 2) or 1 (pin 5)",
            ),
            (
                Block::Separator { char: '\u{1b}' },
                "blocks[1].char: control characters are not printable",
            ),
        ];
        for (block, want) in cases {
            let d = doc(vec![Block::Feed { lines: 1 }, block]);
            let got = d.validate().unwrap_err().to_string();
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
        let too_many = doc(vec![Block::Feed { lines: 1 }; MAX_BLOCKS + 1]);
        assert_eq!(
            too_many.validate().unwrap_err().to_string(),
            "blocks: 2001 blocks, at most 2000 allowed"
        );
    }

    #[test]
    fn ean13_check_digit_known() {
        // 4006381333931 is a well-known valid EAN-13.
        assert_eq!(ean13_digits("400638133393").unwrap()[12], 1);
        assert!(ean13_digits("4006381333931").is_ok());
        assert!(ean13_digits("4006381333932").is_err());
        assert!(ean13_digits("40063813339a").is_err());
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_err());
        assert!(decode_base64("aG=Vs").is_err());
    }
}
