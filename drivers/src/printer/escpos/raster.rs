//! 1-bit raster graphics: PNG decoding, scaling, Floyd–Steinberg dithering,
//! QR rasterisation and the `GS v 0` command.

use std::io::Cursor;

use crate::printer::document::EcLevel;

/// Most rows sent in one `GS v 0` command; taller pictures go in bands.
pub const RASTER_BAND_ROWS: usize = 256;

/// A black-and-white picture, one `bool` per pixel (`true` = black), row
/// major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<bool>,
}

impl Bitmap {
    /// Rows packed MSB first, `ceil(width / 8)` bytes per row.
    pub fn packed_rows(&self) -> Vec<u8> {
        let bpr = self.width.div_ceil(8);
        let mut out = vec![0u8; bpr * self.height];
        for y in 0..self.height {
            for x in 0..self.width {
                if self.pixels[y * self.width + x] {
                    out[y * bpr + x / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        out
    }
}

/// `GS v 0 0 xL xH yL yH d...` commands printing `bitmap`, split into bands
/// of at most [`RASTER_BAND_ROWS`] rows.
pub fn raster_command(bitmap: &Bitmap, out: &mut Vec<u8>) {
    if bitmap.width == 0 || bitmap.height == 0 {
        return;
    }
    let bpr = bitmap.width.div_ceil(8);
    let packed = bitmap.packed_rows();
    for rows in packed.chunks(bpr * RASTER_BAND_ROWS) {
        let h = rows.len() / bpr;
        out.extend_from_slice(&[0x1d, 0x76, 0x30, 0x00]);
        out.extend_from_slice(&(bpr as u16).to_le_bytes());
        out.extend_from_slice(&(h as u16).to_le_bytes());
        out.extend_from_slice(rows);
    }
}

/// A grayscale picture, one byte per pixel (0 black, 255 white).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Decode a PNG to grayscale; transparency is composited over white.
pub fn decode_png(bytes: &[u8], max_width: u32, max_height: u32) -> Result<Gray, String> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: 96 * 1024 * 1024,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let (w, h) = {
        let info = reader.info();
        (info.width, info.height)
    };
    if w == 0 || h == 0 || w > max_width || h > max_height {
        return Err(format!("{w}x{h} px is out of range"));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("corrupt PNG: {e}"))?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("palette PNG was not expanded".into()),
    };
    if frame.bit_depth != png::BitDepth::Eight {
        return Err("unsupported PNG bit depth".into());
    }
    let (width, height) = (frame.width as usize, frame.height as usize);
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        let start = y * frame.line_size;
        let row = buf
            .get(start..start + width * channels)
            .ok_or("truncated PNG frame")?;
        for px in row.chunks_exact(channels) {
            let (lum, alpha) = match channels {
                1 => (u32::from(px[0]), 255),
                2 => (u32::from(px[0]), u32::from(px[1])),
                3 => (luminance(px[0], px[1], px[2]), 255),
                _ => (luminance(px[0], px[1], px[2]), u32::from(px[3])),
            };
            let v = (lum * alpha + 255 * (255 - alpha)) / 255;
            pixels.push(v.min(255) as u8);
        }
    }
    Ok(Gray {
        width,
        height,
        pixels,
    })
}

fn luminance(r: u8, g: u8, b: u8) -> u32 {
    (299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b)) / 1000
}

/// Scale down (box filter) so the width is at most `max_width`; narrower
/// pictures are returned unchanged. The aspect ratio is kept.
pub fn scale_to_fit(img: Gray, max_width: usize) -> Gray {
    if img.width <= max_width || max_width == 0 {
        return img;
    }
    let tw = max_width;
    let th = (img.height * tw / img.width).max(1);
    let mut pixels = Vec::with_capacity(tw * th);
    for ty in 0..th {
        let y0 = ty * img.height / th;
        let y1 = ((ty + 1) * img.height / th).max(y0 + 1);
        for tx in 0..tw {
            let x0 = tx * img.width / tw;
            let x1 = ((tx + 1) * img.width / tw).max(x0 + 1);
            let mut sum = 0u64;
            for y in y0..y1 {
                for x in x0..x1 {
                    sum += u64::from(img.pixels[y * img.width + x]);
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u64;
            pixels.push((sum / n) as u8);
        }
    }
    Gray {
        width: tw,
        height: th,
        pixels,
    }
}

/// Floyd–Steinberg error diffusion to 1 bit (threshold 128).
pub fn dither(img: &Gray) -> Bitmap {
    let (w, h) = (img.width, img.height);
    let mut err: Vec<i32> = img.pixels.iter().map(|&p| i32::from(p)).collect();
    let mut pixels = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let old = err[i].clamp(0, 255);
            let new = if old < 128 { 0 } else { 255 };
            pixels[i] = new == 0;
            let e = old - new;
            if x + 1 < w {
                err[i + 1] += e * 7 / 16;
            }
            if y + 1 < h {
                if x > 0 {
                    err[i + w - 1] += e * 3 / 16;
                }
                err[i + w] += e * 5 / 16;
                if x + 1 < w {
                    err[i + w + 1] += e / 16;
                }
            }
        }
    }
    Bitmap {
        width: w,
        height: h,
        pixels,
    }
}

/// Decode, scale to `max_dots` and dither a PNG.
pub fn png_to_bitmap(bytes: &[u8], max_dots: usize) -> Result<Bitmap, String> {
    let gray = decode_png(
        bytes,
        crate::printer::document::MAX_IMAGE_WIDTH,
        crate::printer::document::MAX_IMAGE_HEIGHT,
    )?;
    Ok(dither(&scale_to_fit(gray, max_dots)))
}

pub(crate) fn qr_ec(ec: EcLevel) -> qrcode::EcLevel {
    match ec {
        EcLevel::L => qrcode::EcLevel::L,
        EcLevel::M => qrcode::EcLevel::M,
        EcLevel::Q => qrcode::EcLevel::Q,
        EcLevel::H => qrcode::EcLevel::H,
    }
}

/// Quiet zone drawn around rasterised QR codes, in modules.
pub const QR_QUIET_ZONE: usize = 4;

/// The dots per module a QR code of `payload` is drawn with: `module_size`,
/// reduced until the symbol with its quiet zone fits `max_dots`. Finds the
/// symbol's version without building it (masking is most of the cost), so
/// a native QR is checked cheaply.
pub fn qr_scale(
    payload: &[u8],
    ec: EcLevel,
    module_size: u8,
    max_dots: usize,
) -> Result<usize, String> {
    let bits = qrcode::bits::encode_auto(payload, qr_ec(ec))
        .map_err(|e| format!("cannot encode QR code: {e}"))?;
    let modules = usize::try_from(bits.version().width()).unwrap_or(usize::MAX);
    fit_scale(modules, module_size, max_dots)
}

fn fit_scale(modules: usize, module_size: u8, max_dots: usize) -> Result<usize, String> {
    let side = modules.saturating_add(2 * QR_QUIET_ZONE);
    let mut scale = usize::from(module_size.max(1));
    while scale > 1 && side * scale > max_dots {
        scale -= 1;
    }
    if side * scale > max_dots {
        return Err(format!(
            "QR code of {modules} modules does not fit {max_dots} dots"
        ));
    }
    Ok(scale)
}

/// Rasterise a QR code: `module_size` dots per module, reduced until the
/// symbol with its quiet zone fits `max_dots`.
pub fn qr_bitmap(
    payload: &[u8],
    ec: EcLevel,
    module_size: u8,
    max_dots: usize,
) -> Result<Bitmap, String> {
    let code = qrcode::QrCode::with_error_correction_level(payload, qr_ec(ec))
        .map_err(|e| format!("cannot encode QR code: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = modules + 2 * QR_QUIET_ZONE;
    let scale = fit_scale(modules, module_size, max_dots)?;
    let dim = side * scale;
    let mut pixels = vec![false; dim * dim];
    for my in 0..modules {
        for mx in 0..modules {
            if colors[my * modules + mx] == qrcode::Color::Dark {
                for dy in 0..scale {
                    let y = (my + QR_QUIET_ZONE) * scale + dy;
                    let row = y * dim;
                    let x0 = (mx + QR_QUIET_ZONE) * scale;
                    pixels[row + x0..row + x0 + scale].fill(true);
                }
            }
        }
    }
    Ok(Bitmap {
        width: dim,
        height: dim,
        pixels,
    })
}
