//! Print preview: document → ESC/POS bytes (encoder) → virtual printer →
//! PNG at the profile's dots per line. The QR code is decoded back out of the
//! picture, so the preview is checked against what a scanner would read.

use posbridge_drivers::printer::document::{
    Align, BarcodeKind, Block, Document, EcLevel, PaperWidth,
};
use posbridge_drivers::printer::escpos::{Bitmap, Profile, raster_command};
use posbridge_drivers::sim::render::{Canvas, preview_bytes, preview_document};

const QR_PAYLOAD: &str = "t=20240101T1200&s=179.80&fn=9999078900012345&i=12345";

fn text(s: &str, align: Align) -> Block {
    Block::Text {
        text: s.into(),
        bold: false,
        underline: false,
        double_width: false,
        double_height: false,
        align,
    }
}

fn receipt() -> Document {
    Document {
        width: None,
        blocks: vec![
            Block::Text {
                text: "ООО Ромашка".into(),
                bold: true,
                underline: true,
                double_width: true,
                double_height: true,
                align: Align::Center,
            },
            text("Кофе латте 1 x 179.80", Align::Left),
            Block::Separator { char: '=' },
            Block::Qr {
                payload: QR_PAYLOAD.into(),
                module_size: 4,
                ec: EcLevel::M,
            },
            Block::Barcode {
                kind: BarcodeKind::Ean13,
                data: "460123456789".into(),
                height: 60,
                hri: true,
            },
            Block::Barcode {
                kind: BarcodeKind::Code128,
                data: "AB-12".into(),
                height: 40,
                hri: false,
            },
            Block::Cut { partial: false },
        ],
    }
}

fn decode_png(png: &[u8]) -> (u32, u32, Vec<bool>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::One);
    let bpr = (info.width as usize).div_ceil(8);
    let mut black = Vec::new();
    for y in 0..info.height as usize {
        for x in 0..info.width as usize {
            black.push(buf[y * bpr + x / 8] & (0x80 >> (x % 8)) == 0);
        }
    }
    (info.width, info.height, black)
}

fn decode_qr(width: usize, height: usize, black: &[bool]) -> Vec<String> {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        if black[y * width + x] { 0 } else { 255 }
    });
    img.detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, content)| content))
        .collect()
}

/// Rows that contain a run of alternating bars: at least `min` black/white
/// transitions.
fn rows_with_bars(c: &Canvas, min: usize) -> usize {
    (0..c.height)
        .filter(|&y| {
            (1..c.width)
                .filter(|&x| c.get(x, y) != c.get(x - 1, y))
                .count()
                >= min
        })
        .count()
}

#[test]
fn every_profile_previews_text_qr_and_barcodes() {
    for profile in Profile::all() {
        for paper in [PaperWidth::Mm58, PaperWidth::Mm80] {
            let ctx = format!("{} {paper:?}", profile.name);
            let preview = preview_document(&receipt(), &profile, paper).expect("encodes");
            assert!(!preview.truncated, "{ctx}");
            assert_eq!(preview.unrepresentable, 0, "{ctx}");
            assert!(preview.notes.is_empty(), "{ctx}: {:?}", preview.notes);
            let (w, h, black) = decode_png(&preview.png());
            assert_eq!(
                w as usize,
                usize::from(profile.paper(paper).dots_per_line),
                "{ctx}"
            );
            assert_eq!(h as usize, preview.canvas.height, "{ctx}");
            assert!(black.iter().any(|&b| b), "{ctx}: blank");
            assert_eq!(
                decode_qr(w as usize, h as usize, &black),
                vec![QR_PAYLOAD.to_owned()],
                "{ctx}: QR read back from the picture"
            );
            // EAN-13 has 30 bars (60 edges) and CODE128 "AB-12" 25 (50
            // edges); a row of this QR code (37 modules) has fewer edges.
            let bar_rows = rows_with_bars(&preview.canvas, 48);
            assert!(bar_rows >= 60 + 40, "{ctx}: {bar_rows} rows of bars");
        }
    }
}

#[test]
fn cyrillic_goes_through_the_code_page() {
    // A failed code page prints `?`: the two previews would be equal.
    for profile in Profile::all() {
        let render = |s: &str| {
            let doc = Document {
                width: None,
                blocks: vec![text(s, Align::Left)],
            };
            preview_document(&doc, &profile, PaperWidth::Mm80)
                .expect("encodes")
                .canvas
        };
        let cyr = render("Жё");
        assert!(cyr.black_dots() > 0, "{}", profile.name);
        assert_ne!(cyr, render("??"), "{}: Cyrillic printed as ?", profile.name);
        assert_ne!(cyr, render("Же"), "{}: ё and е look alike", profile.name);
    }
}

#[test]
fn alignment_and_double_width_move_and_widen_the_ink() {
    let profile = Profile::builtin("epson-tm-t88").expect("built in");
    let ink_span = |block: Block| {
        let doc = Document {
            width: None,
            blocks: vec![block],
        };
        let c = preview_document(&doc, &profile, PaperWidth::Mm80)
            .expect("encodes")
            .canvas;
        let xs: Vec<usize> = (0..c.width)
            .filter(|&x| (0..c.height).any(|y| c.get(x, y)))
            .collect();
        (xs[0], xs[xs.len() - 1])
    };
    let (l0, l1) = ink_span(text("ИТОГ", Align::Left));
    let (c0, c1) = ink_span(text("ИТОГ", Align::Center));
    let (r0, r1) = ink_span(text("ИТОГ", Align::Right));
    assert!(l0 < 12, "left starts in the first cell: {l0}");
    assert!(c0 > l0 && r0 > c0, "{l0} {c0} {r0}");
    assert!(r1 >= 512 - 12, "right ends in the last cell: {r1}");
    assert_eq!(c1 - c0, l1 - l0, "same glyphs");
    let (d0, d1) = ink_span(Block::Text {
        text: "ИТОГ".into(),
        bold: false,
        underline: false,
        double_width: true,
        double_height: false,
        align: Align::Left,
    });
    assert!(d1 - d0 > 2 * (l1 - l0) - 4, "double width: {d0}..{d1}");
}

#[test]
fn raster_images_are_drawn_dot_for_dot() {
    let profile = Profile::builtin("generic-80").expect("built in");
    // A 16×4 picture: a diagonal in the top row pair, a full bottom row.
    let mut pixels = vec![false; 16 * 4];
    pixels[0] = true;
    pixels[16 + 1] = true;
    pixels[3 * 16..].fill(true);
    let bitmap = Bitmap {
        width: 16,
        height: 4,
        pixels,
    };
    let mut bytes = vec![0x1b, b'@'];
    raster_command(&bitmap, &mut bytes);
    let preview = preview_bytes(&bytes, &profile, PaperWidth::Mm80);
    let c = &preview.canvas;
    assert_eq!(c.height, 4);
    assert_eq!(c.black_dots(), 2 + 16);
    assert!(c.get(0, 0) && c.get(1, 1) && c.get(15, 3) && !c.get(16, 3));
}

#[test]
fn a_barcode_wider_than_the_paper_is_a_labelled_box() {
    // 30 characters of CODE128 at the default module width (3 dots) need
    // 1 + 30 + 2 symbols of 11 modules → 1128 dots: Epson skips it.
    let profile = Profile::builtin("epson-tm-t20").expect("built in");
    let doc = Document {
        width: None,
        blocks: vec![Block::Barcode {
            kind: BarcodeKind::Code128,
            data: "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123".into(),
            height: 50,
            hri: true,
        }],
    };
    let preview = preview_document(&doc, &profile, PaperWidth::Mm58).expect("encodes");
    assert_eq!(preview.notes.len(), 1, "{:?}", preview.notes);
    assert!(
        preview.notes[0].contains("does not print"),
        "{:?}",
        preview.notes
    );
    // The box's top edge spans the paper; bars would leave gaps.
    let c = &preview.canvas;
    assert!((0..c.width).all(|x| c.get(x, 0)), "box drawn");
    assert!(rows_with_bars(c, 48) < 30, "no bars, only the label");
}

#[test]
fn tiny_render_snapshot() {
    let profile = Profile::builtin("generic-58").expect("built in");
    let doc = Document {
        width: None,
        blocks: vec![
            text("Чек №1", Align::Left),
            Block::Text {
                text: "OK".into(),
                bold: true,
                underline: true,
                double_width: false,
                double_height: false,
                align: Align::Left,
            },
        ],
    };
    let preview = preview_document(&doc, &profile, PaperWidth::Mm58).expect("encodes");
    insta::assert_snapshot!(preview.canvas.to_ascii(2, 4));
}

#[test]
fn a_long_code128_is_narrowed_to_fit_and_the_next_barcode_is_not() {
    // 13 characters need 11 * 15 + 13 = 178 modules: 534 dots at the default
    // width, 356 at 2 dots, so it fits 58 mm paper only when narrowed.
    let profile = Profile::builtin("generic-58").expect("built in");
    let doc = Document {
        width: None,
        blocks: vec![
            Block::Barcode {
                kind: BarcodeKind::Code128,
                data: "POSBRIDGE-128".into(),
                height: 30,
                hri: false,
            },
            Block::Barcode {
                kind: BarcodeKind::Ean13,
                data: "4601234567893".into(),
                height: 30,
                hri: false,
            },
        ],
    };
    let preview = preview_document(&doc, &profile, PaperWidth::Mm58).expect("encodes");
    assert!(preview.notes.is_empty(), "{:?}", preview.notes);
    let c = &preview.canvas;
    let span = |y: usize| {
        let xs: Vec<usize> = (0..c.width).filter(|&x| c.get(x, y)).collect();
        xs[xs.len() - 1] - xs[0] + 1
    };
    // Bars end on a bar: the last module of the stop pattern is black.
    assert_eq!(span(0), 178 * 2, "CODE128 at 2 dots per module");
    assert_eq!(span(30), 95 * 3, "EAN-13 back at 3 dots per module");
}
