//! Renders simulated paper to an image: a print preview without a printer.
//!
//! The preview is honest about what the encoder emits: a document is encoded
//! for a profile ([`crate::printer::escpos::encode`]), the bytes are parsed
//! back by the virtual printer ([`EscPosParser`], with pixels kept), and the
//! resulting [`Receipt`]s are drawn at the profile's dots per line:
//!
//! * text in font A cells (`dots_per_line / font_a_columns` × 24 dots), with
//!   the glyphs of the 10×20 ISO 8859-5 font (Latin and Cyrillic) centred in
//!   each cell; bold is double-struck one dot to the right, underline is a
//!   one-dot line, double width / height magnify the glyph; a line wider
//!   than the paper wraps, as on paper. Characters without a glyph (box
//!   drawing, `₽`, ...) show the font's replacement glyph.
//! * line pitch is 1/6 inch (`dpi / 6` dots, the ESC/POS default), or the
//!   character height if taller.
//! * raster images from their dots; QR codes printed natively (`GS ( k`)
//!   from their payload with the module size and error correction sent;
//!   EAN-13 and CODE128 barcodes from their bar patterns with the `GS h` /
//!   `GS w` / `GS H` settings sent. A barcode wider than the paper is not
//!   printed by Epson printers: it is shown as a labelled box, like other
//!   symbologies and images whose dots did not arrive.
//! * a cut as a dashed line.
//!
//! The output is a 1-bit PNG (black = printed dot).

use std::collections::HashMap;

use embedded_graphics::Drawable;
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle, iso_8859_5::FONT_10X20};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Point, Size};
use embedded_graphics::text::{Baseline, Text};

use crate::printer::document::{Document, EcLevel, PaperWidth};
use crate::printer::escpos::{EncodeError, Profile, encode, qr_bitmap};
use crate::sim::escpos::{
    Align, BarcodeDrawing, BlockKind, EscPosParser, ImagePixels, Line, Receipt, default_codepages,
    default_star_codepages,
};

/// Most rows a preview holds (about 4 m of paper at 203 dpi); the rest is
/// cut off and [`Preview::truncated`] set.
pub const MAX_PREVIEW_ROWS: usize = 32_768;

/// Height of a font A cell in dots.
const CELL_HEIGHT: usize = 24;

/// Rows fed before a cut line and after it.
const CUT_MARGIN: usize = 24;

/// A black-and-white picture of paper, one byte per dot (1 = black).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    /// Dots per line.
    pub width: usize,
    /// Rows drawn so far.
    pub height: usize,
    /// Row-major, `width * height` entries, 0 (paper) or 1 (printed dot).
    pub dots: Vec<u8>,
    truncated: bool,
}

impl Canvas {
    fn new(width: usize) -> Canvas {
        Canvas {
            width: width.max(1),
            height: 0,
            dots: Vec::new(),
            truncated: false,
        }
    }

    /// Grows the canvas to at least `rows` rows (up to [`MAX_PREVIEW_ROWS`]).
    fn grow(&mut self, rows: usize) {
        let rows = if rows > MAX_PREVIEW_ROWS {
            self.truncated = true;
            MAX_PREVIEW_ROWS
        } else {
            rows
        };
        if rows > self.height {
            self.height = rows;
            self.dots.resize(self.width * rows, 0);
        }
    }

    /// Sets one dot; dots outside the paper are dropped (the print head has
    /// no dots there).
    fn set(&mut self, x: i64, y: i64) {
        if x < 0 || y < 0 {
            return;
        }
        let (x, y) = (x as usize, y as usize);
        if x >= self.width || y >= self.height {
            return;
        }
        self.dots[y * self.width + x] = 1;
    }

    fn fill(&mut self, x: i64, y: i64, w: usize, h: usize) {
        for dy in 0..h as i64 {
            for dx in 0..w as i64 {
                self.set(x + dx, y + dy);
            }
        }
    }

    /// The dot at `(x, y)`: `true` if printed.
    pub fn get(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.height && self.dots[y * self.width + x] != 0
    }

    /// Printed dots in total.
    pub fn black_dots(&self) -> usize {
        self.dots.iter().filter(|&&d| d != 0).count()
    }

    /// The canvas as a 1-bit greyscale PNG (white paper, black dots).
    pub fn to_png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let height = self.height.max(1);
        let bpr = self.width.div_ceil(8);
        // In a 1-bit greyscale PNG, 1 is white: set bits for paper.
        let mut data = vec![0xFFu8; bpr * height];
        for y in 0..self.height {
            for x in 0..self.width {
                if self.dots[y * self.width + x] != 0 {
                    data[y * bpr + x / 8] &= !(0x80 >> (x % 8));
                }
            }
        }
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, height as u32);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::One);
            // Writing into a Vec cannot fail for a valid header; an error
            // would leave `out` short, which decoders report.
            if let Ok(mut w) = enc.write_header() {
                let _ = w.write_image_data(&data);
            }
        }
        out
    }

    /// Text art: one character per `cw` × `ch` block of dots, by ink
    /// coverage (` `, `.`, `+`, `#`). For snapshots and terminals.
    pub fn to_ascii(&self, cw: usize, ch: usize) -> String {
        let (cw, ch) = (cw.max(1), ch.max(1));
        let mut out = String::new();
        for by in (0..self.height).step_by(ch) {
            let mut line = String::new();
            for bx in (0..self.width).step_by(cw) {
                let mut ink = 0;
                let mut all = 0;
                for y in by..(by + ch).min(self.height) {
                    for x in bx..(bx + cw).min(self.width) {
                        all += 1;
                        ink += usize::from(self.dots[y * self.width + x]);
                    }
                }
                line.push(match ink * 4 / all.max(1) {
                    0 if ink == 0 => ' ',
                    0 => '.',
                    1 => '+',
                    _ => '#',
                });
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A rendered preview.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The paper as printed.
    pub canvas: Canvas,
    /// The paper was longer than [`MAX_PREVIEW_ROWS`] and was cut off.
    pub truncated: bool,
    /// Characters the encoder could not represent (printed as `?`).
    pub unrepresentable: usize,
    /// Things drawn as labelled boxes instead of dots, and parser errors.
    pub notes: Vec<String>,
}

impl Preview {
    /// The preview as a PNG file.
    pub fn png(&self) -> Vec<u8> {
        self.canvas.to_png()
    }
}

/// Paper geometry the renderer draws at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Printable dots per line.
    pub dots: usize,
    /// Width of a font A cell in dots.
    pub cell_width: usize,
    /// Default line pitch in dots.
    pub line_pitch: usize,
}

impl Geometry {
    /// The geometry of `profile` with `paper` loaded.
    pub fn for_profile(profile: &Profile, paper: PaperWidth) -> Geometry {
        let spec = profile.paper(paper);
        let dots = usize::from(spec.dots_per_line).max(8);
        let cols = usize::from(spec.font_a_columns).max(1);
        Geometry {
            dots,
            cell_width: (dots / cols).clamp(8, 24),
            line_pitch: (usize::from(profile.dpi) / 6).max(CELL_HEIGHT),
        }
    }
}

/// A parser that knows `profile`'s code-page numbers (added to the default
/// tables, so a profile with unusual numbers still previews its text).
pub fn parser_for(profile: &Profile) -> EscPosParser {
    let mut pages: HashMap<u8, &'static encoding_rs::Encoding> = default_codepages();
    let mut star = default_star_codepages();
    let table = if profile.star_codepage_command {
        &mut star
    } else {
        &mut pages
    };
    if let Some(n) = profile.code_pages.cp866 {
        table.insert(n, encoding_rs::IBM866);
    }
    if let Some(n) = profile.code_pages.cp1251 {
        table.insert(n, encoding_rs::WINDOWS_1251);
    }
    EscPosParser::with_codepages(pages)
        .with_star_codepages(star)
        .keep_pixels()
}

/// Encodes `doc` for `profile` with `paper` loaded and renders what the
/// printer would print.
pub fn preview_document(
    doc: &Document,
    profile: &Profile,
    paper: PaperWidth,
) -> Result<Preview, EncodeError> {
    let encoded = encode(doc, profile, paper)?;
    let mut preview = preview_bytes(&encoded.bytes, profile, paper);
    preview.unrepresentable = encoded.unrepresentable;
    Ok(preview)
}

/// Renders an ESC/POS byte stream as `profile` with `paper` would print it.
pub fn preview_bytes(bytes: &[u8], profile: &Profile, paper: PaperWidth) -> Preview {
    let mut parser = parser_for(profile);
    parser.feed(bytes);
    parser.flush();
    let mut preview = render_receipts(parser.receipts(), Geometry::for_profile(profile, paper));
    let errors = parser.errors().iter().map(|e| e.to_string());
    preview.notes.splice(0..0, errors);
    preview
}

/// Renders receipts (e.g. from a simulator) at `geometry`.
pub fn render_receipts(receipts: &[Receipt], geometry: Geometry) -> Preview {
    let mut canvas = Canvas::new(geometry.dots);
    let mut notes = Vec::new();
    let mut r = Renderer {
        canvas: &mut canvas,
        geometry,
        y: 0,
        notes: &mut notes,
    };
    for receipt in receipts {
        r.receipt(receipt);
    }
    let truncated = canvas.truncated;
    Preview {
        canvas,
        truncated,
        unrepresentable: 0,
        notes,
    }
}

/// An embedded-graphics target drawing magnified into a [`Canvas`].
struct Scaled<'a> {
    canvas: &'a mut Canvas,
    x: i64,
    y: i64,
    sx: usize,
    sy: usize,
}

impl OriginDimensions for Scaled<'_> {
    fn size(&self) -> Size {
        Size::new(self.canvas.width as u32, self.canvas.height as u32)
    }
}

impl DrawTarget for Scaled<'_> {
    type Color = BinaryColor;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = embedded_graphics::Pixel<Self::Color>>,
    {
        for embedded_graphics::Pixel(p, c) in pixels {
            if c == BinaryColor::On {
                let x = self.x + i64::from(p.x) * self.sx as i64;
                let y = self.y + i64::from(p.y) * self.sy as i64;
                self.canvas.fill(x, y, self.sx, self.sy);
            }
        }
        Ok(())
    }
}

struct Renderer<'a> {
    canvas: &'a mut Canvas,
    geometry: Geometry,
    /// Top of the next thing printed.
    y: usize,
    notes: &'a mut Vec<String>,
}

fn left_for(align: Align, width: usize, paper: usize) -> i64 {
    let pad = paper.saturating_sub(width);
    (match align {
        Align::Left => 0,
        Align::Center => pad / 2,
        Align::Right => pad,
    }) as i64
}

impl Renderer<'_> {
    fn receipt(&mut self, receipt: &Receipt) {
        for block in &receipt.layout {
            if self.canvas.truncated {
                return;
            }
            match block.kind {
                BlockKind::Line => {
                    if let Some(line) = receipt.lines.get(block.index) {
                        self.line(line);
                    }
                }
                BlockKind::Qr => {
                    let style = receipt.drawing.qr.get(block.index).copied();
                    if let (Some(payload), Some(style)) = (receipt.qr.get(block.index), style) {
                        self.qr(payload, style.module_size, style.ec, block.align);
                    }
                }
                BlockKind::Barcode => {
                    if let (Some((kind, text)), Some(d)) = (
                        receipt.barcodes.get(block.index),
                        receipt.drawing.barcodes.get(block.index),
                    ) {
                        self.barcode(kind, text, d, block.align);
                    }
                }
                BlockKind::Image => {
                    let pixels = receipt
                        .drawing
                        .images
                        .get(block.index)
                        .and_then(Option::as_ref);
                    match (pixels, receipt.images.get(block.index)) {
                        (Some(p), _) => self.image(p, block.align),
                        (None, Some(&(w, h))) => {
                            self.notes
                                .push(format!("image {w}x{h} without dots: drawn as a box"));
                            self.placeholder(
                                &format!("image {w}x{h}"),
                                w as usize,
                                h as usize,
                                block.align,
                            );
                        }
                        (None, None) => {}
                    }
                }
            }
        }
        if receipt.cut.is_some() {
            self.cut();
        }
    }

    /// Draws `text` in font A cells at `(x, y)`; returns the width in dots.
    fn text_run(&mut self, text: &str, x: i64, y: i64, sx: usize, sy: usize, bold: bool) -> usize {
        let cw = self.geometry.cell_width;
        let font: &MonoFont = &FONT_10X20;
        let gx = (cw.saturating_sub(font.character_size.width as usize) / 2) as i64;
        let gy = (CELL_HEIGHT.saturating_sub(font.character_size.height as usize) / 2) as i64;
        let style = MonoTextStyle::new(font, BinaryColor::On);
        let mut buf = [0u8; 4];
        let mut cx = x;
        let mut width = 0;
        for ch in text.chars() {
            if ch != ' ' {
                let s: &str = ch.encode_utf8(&mut buf);
                let strikes: &[i64] = if bold { &[0, 1] } else { &[0] };
                for &dx in strikes {
                    let mut target = Scaled {
                        canvas: self.canvas,
                        x: cx + gx * sx as i64 + dx,
                        y: y + gy * sy as i64,
                        sx,
                        sy,
                    };
                    let _ = Text::with_baseline(s, Point::zero(), style, Baseline::Top)
                        .draw(&mut target);
                }
            }
            cx += (cw * sx) as i64;
            width += cw * sx;
        }
        width
    }

    fn line(&mut self, line: &Line) {
        let sx = if line.double_width { 2 } else { 1 };
        let sy = if line.double_height { 2 } else { 1 };
        let cell = self.geometry.cell_width * sx;
        let per_row = (self.geometry.dots / cell).max(1);
        let pitch = self.geometry.line_pitch.max(CELL_HEIGHT * sy);
        let chars: Vec<char> = line.text.chars().collect();
        let rows: Vec<&[char]> = if chars.is_empty() {
            vec![&[]]
        } else {
            chars.chunks(per_row).collect()
        };
        for row in rows {
            let text: String = row.iter().collect();
            let width = row.len() * cell;
            let x = left_for(line.align, width, self.geometry.dots);
            let y = self.y as i64;
            self.canvas.grow(self.y + pitch);
            self.text_run(&text, x, y, sx, sy, line.bold);
            if line.underline && width > 0 {
                let uy = y + (CELL_HEIGHT * sy) as i64 - 2;
                self.canvas.fill(x, uy, width, sy);
            }
            self.y += pitch;
        }
    }

    fn bitmap(
        &mut self,
        width: usize,
        height: usize,
        align: Align,
        dot: impl Fn(usize, usize) -> bool,
    ) {
        let x0 = left_for(align, width, self.geometry.dots);
        self.canvas.grow(self.y + height);
        for y in 0..height {
            for x in 0..width {
                if dot(x, y) {
                    self.canvas.set(x0 + x as i64, (self.y + y) as i64);
                }
            }
        }
        self.y += height;
    }

    fn image(&mut self, p: &ImagePixels, align: Align) {
        let (sx, sy) = (usize::from(p.scale.0.max(1)), usize::from(p.scale.1.max(1)));
        let bpr = (p.width as usize).div_ceil(8);
        let width = p.width as usize * sx;
        let height = p.height as usize * sy;
        self.bitmap(width, height, align, |x, y| {
            let (x, y) = (x / sx, y / sy);
            p.rows
                .get(y * bpr + x / 8)
                .is_some_and(|b| b & (0x80 >> (x % 8)) != 0)
        });
    }

    fn qr(&mut self, payload: &str, module_size: u8, ec: u8, align: Align) {
        let ec = match ec {
            b'M' => EcLevel::M,
            b'Q' => EcLevel::Q,
            b'H' => EcLevel::H,
            _ => EcLevel::L,
        };
        match qr_bitmap(payload.as_bytes(), ec, module_size, self.geometry.dots) {
            Ok(b) => self.bitmap(b.width, b.height, align, |x, y| b.pixels[y * b.width + x]),
            Err(e) => {
                self.notes.push(format!("QR code not drawn: {e}"));
                self.placeholder("QR", self.geometry.dots / 2, self.geometry.dots / 2, align);
            }
        }
    }

    fn barcode(&mut self, kind: &str, text: &str, d: &BarcodeDrawing, align: Align) {
        let modules = match kind {
            "EAN13" => ean13_modules(text),
            "CODE128" => code128_modules(&d.raw),
            _ => None,
        };
        let module = usize::from(d.module_width.clamp(1, 6));
        let height = usize::from(d.height.max(1));
        let label = format!("{kind} {text}");
        let Some(modules) = modules else {
            self.notes
                .push(format!("{label}: bars not drawn (symbology not rendered)"));
            self.placeholder(&label, self.geometry.dots * 3 / 4, height, align);
            return;
        };
        let width = modules.len() * module;
        if width > self.geometry.dots {
            self.notes.push(format!(
                "{label}: {width} dots wide, paper has {}: the printer does not print it",
                self.geometry.dots
            ));
            self.placeholder(
                &format!("{label} too wide"),
                self.geometry.dots,
                height,
                align,
            );
            return;
        }
        if d.hri & 1 != 0 {
            self.hri(text, align);
        }
        self.bitmap(width, height, align, |x, _| modules[x / module] != 0);
        if d.hri & 2 != 0 {
            self.hri(text, align);
        }
    }

    fn hri(&mut self, text: &str, align: Align) {
        let width = text.chars().count() * self.geometry.cell_width;
        let x = left_for(align, width, self.geometry.dots);
        let y = self.y as i64;
        self.canvas.grow(self.y + CELL_HEIGHT);
        self.text_run(text, x, y, 1, 1, false);
        self.y += CELL_HEIGHT;
    }

    /// A box with crossed diagonals and a label: something not drawn dot for
    /// dot.
    fn placeholder(&mut self, label: &str, width: usize, height: usize, align: Align) {
        let width = width.clamp(8, self.geometry.dots);
        let height = height.clamp(CELL_HEIGHT + 4, 4096);
        let x0 = left_for(align, width, self.geometry.dots);
        let top = self.y;
        self.bitmap(width, height, align, |x, y| {
            x == 0 || y == 0 || x + 1 == width || y + 1 == height
        });
        let max_chars = (width / self.geometry.cell_width).max(1);
        let label: String = label.chars().take(max_chars).collect();
        let lw = label.chars().count() * self.geometry.cell_width;
        let lx = x0 + (width.saturating_sub(lw) / 2) as i64;
        let ly = (top + height.saturating_sub(CELL_HEIGHT) / 2) as i64;
        self.text_run(&label, lx, ly, 1, 1, false);
    }

    fn cut(&mut self) {
        let y = self.y + CUT_MARGIN;
        self.canvas.grow(y + 1 + CUT_MARGIN);
        let mut x = 0;
        while x < self.geometry.dots {
            self.canvas
                .fill(x as i64, y as i64, 8.min(self.geometry.dots - x), 1);
            x += 16;
        }
        self.y = y + 1 + CUT_MARGIN;
    }
}

/// Bar pattern (1 = bar, one entry per module) of an EAN-13 with its check
/// digit, guards included.
fn ean13_modules(text: &str) -> Option<Vec<u8>> {
    if text.len() != 13 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // barcoders checks the 13th digit against the first 12.
    let code = barcoders::sym::ean13::EAN13::new(text).ok()?;
    Some(code.encode())
}

/// Bar pattern of CODE128 data as sent with `GS k 73` (code set selectors
/// `{A`, `{B`, `{C`, `{{` for a brace). Function codes are not drawn.
fn code128_modules(raw: &[u8]) -> Option<Vec<u8>> {
    let mut s = String::new();
    let mut i = 0;
    let mut set = None;
    while i < raw.len() {
        let b = raw[i];
        if b == b'{' {
            let next = *raw.get(i + 1)?;
            match next {
                b'A' => s.push('À'),
                b'B' => s.push('Ɓ'),
                b'C' => s.push('Ć'),
                b'{' => s.push('{'),
                _ => return None,
            }
            if next != b'{' {
                set = Some(next);
            }
            i += 2;
            continue;
        }
        match set {
            // Set C pairs are sent as bytes 0..99; barcoders wants digits.
            Some(b'C') if b < 100 => s.push_str(&format!("{b:02}")),
            Some(b'C') => return None,
            Some(_) if (0x20..0x7F).contains(&b) => s.push(char::from(b)),
            _ => return None,
        }
        i += 1;
    }
    let code = barcoders::sym::code128::Code128::new(&s).ok()?;
    Some(code.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ean13_pattern_has_95_modules() {
        let m = ean13_modules("4006381333931").expect("valid EAN");
        assert_eq!(m.len(), 95);
        assert_eq!(&m[..3], &[1, 0, 1]);
        assert!(ean13_modules("4006381333932").is_none(), "bad check digit");
        assert!(ean13_modules("40063813339").is_none());
    }

    #[test]
    fn code128_pattern_follows_code_sets() {
        // START B + 3 chars + check + STOP (13 modules) = 11 * 5 + 13.
        let m = code128_modules(b"{BAB1").expect("set B");
        assert_eq!(m.len(), 11 * 5 + 13);
        assert!(
            code128_modules(b"{Bx\x01").is_none(),
            "control char in set B"
        );
        assert!(code128_modules(b"{Q").is_none(), "unknown function code");
        let c = code128_modules(&[b'{', b'C', 12, 34]).expect("set C");
        assert_eq!(c.len(), 11 * 4 + 13);
    }

    #[test]
    fn canvas_png_is_one_bit_and_decodes() {
        let mut c = Canvas::new(16);
        c.grow(2);
        c.set(0, 0);
        c.set(15, 1);
        c.set(99, 99);
        let png = c.to_png();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png data");
        assert_eq!((info.width, info.height), (16, 2));
        assert_eq!(info.bit_depth, png::BitDepth::One);
        assert_eq!(buf[0], 0x7F, "first dot black, the rest white");
        assert_eq!(buf[3], 0xFE);
        assert_eq!(c.black_dots(), 2);
    }
}
