use proptest::prelude::*;

use super::*;
use crate::printer::document::{Align, BarcodeKind, Block, Cell, Document, EcLevel, PaperWidth};

/// Readable hex dump: offset, 16 bytes in hex, printable ASCII.
fn hexdump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:06x}  {:<47}  |{ascii}|\n",
            i * 16,
            hex.join(" ")
        ));
    }
    out
}

fn text(s: &str) -> Block {
    Block::Text {
        text: s.into(),
        bold: false,
        underline: false,
        double_width: false,
        double_height: false,
        align: Align::Left,
    }
}

fn cell(s: &str, width: Option<u16>) -> Cell {
    Cell {
        text: s.into(),
        align: None,
        weight: None,
        width,
    }
}

fn receipt() -> Document {
    Document {
        width: None,
        blocks: vec![
            Block::Text {
                text: "Shop".into(),
                bold: true,
                underline: false,
                double_width: true,
                double_height: true,
                align: Align::Center,
            },
            Block::Columns {
                cells: vec![
                    cell("Milk 3.2% 1 l, long name", None),
                    cell("2 x 89.90", Some(9)),
                    cell("179.80", Some(8)),
                ],
                bold: false,
                double_width: false,
            },
            Block::Separator { char: '-' },
            text("Бонусы: 120,00"),
            Block::Qr {
                payload: "t=1&s=179.80".into(),
                module_size: 2,
                ec: EcLevel::M,
            },
            Block::Barcode {
                kind: BarcodeKind::Ean13,
                data: "460123456789".into(),
                height: 60,
                hri: true,
            },
            Block::Cut { partial: true },
        ],
    }
}

fn profile(name: &str) -> Profile {
    Profile::builtin(name).unwrap_or_else(|| panic!("no builtin profile {name}"))
}

#[test]
fn snapshot_receipt_per_profile() {
    for name in [
        "generic-58",
        "generic-80",
        "epson-tm-t20",
        "epson-tm-t88",
        "xprinter",
        "pos-5890",
        "rongta",
        "star",
    ] {
        let p = profile(name);
        let enc = encode(&receipt(), &p, PaperWidth::Mm80).unwrap();
        assert_eq!(enc.unrepresentable, 0, "{name}");
        insta::assert_snapshot!(format!("receipt_{name}"), hexdump(&enc.bytes));
    }
}

#[test]
fn builtin_profiles_all_parse() {
    let all = Profile::all();
    assert_eq!(all.len(), Profile::builtin_names().count());
    assert_eq!(all.len(), 8);
    for p in &all {
        assert_eq!(Profile::builtin(&p.name).as_ref(), Some(p));
        assert!(p.code_pages.cp866.is_some() && p.code_pages.cp1251.is_some());
    }
    assert!(Profile::builtin("nope").is_none());
    let table: Vec<(String, Option<u8>, Option<u8>)> = all
        .iter()
        .map(|p| (p.name.clone(), p.code_pages.cp866, p.code_pages.cp1251))
        .collect();
    let want = [
        ("generic-58", 17, 46),
        ("generic-80", 17, 46),
        ("epson-tm-t20", 17, 46),
        ("epson-tm-t88", 17, 46),
        ("xprinter", 17, 23),
        ("pos-5890", 17, 73),
        ("rongta", 7, 6),
        ("star", 10, 34),
    ];
    for (name, a, b) in want {
        assert!(
            table.contains(&(name.to_string(), Some(a), Some(b))),
            "{name}: {table:?}"
        );
    }
    assert!(profile("star").star_codepage_command);
    assert!(!profile("pos-5890").status_reply);
}

#[test]
fn custom_profile_from_toml() {
    let mut src = include_str!("../../../profiles/generic-80.toml").to_string();
    src = src.replace("name = \"generic-80\"", "name = \"shop-printer\"");
    let p = Profile::from_toml(&src).unwrap();
    assert_eq!(p.name, "shop-printer");
    let unknown = format!("{src}\nextra = 1\n");
    assert!(matches!(
        Profile::from_toml(&unknown),
        Err(ProfileError::Toml(_))
    ));
    let bad = src.replace("dots_per_line = 576", "dots_per_line = 1");
    assert!(matches!(
        Profile::from_toml(&bad),
        Err(ProfileError::Invalid {
            field: "paper.mm80",
            ..
        })
    ));
    let no_cp = src
        .replace("cp866 = 17", "")
        .replace("cp1251 = 46", "cp1251 = 5");
    let p = Profile::from_toml(&no_cp).unwrap();
    assert_eq!(CodePage::for_profile(&p), CodePage::Cp1251(5));
    assert!(Profile::from_toml("not toml [").is_err());
}

fn one_text(s: &str) -> Document {
    Document {
        width: None,
        blocks: vec![text(s)],
    }
}

#[test]
fn cyrillic_code_page_bytes_differ_per_profile() {
    let doc = one_text("Бонусы: 120,00");
    let mut seen = Vec::new();
    for (name, header) in [
        ("generic-80", vec![0x1b, 0x40, 0x1b, b't', 17]),
        ("rongta", vec![0x1b, 0x40, 0x1b, b't', 7]),
        ("star", vec![0x1b, 0x40, 0x1b, 0x1d, b't', 10]),
    ] {
        let enc = encode(&doc, &profile(name), PaperWidth::Mm80).unwrap();
        assert!(enc.bytes.starts_with(&header), "{name}: {:02x?}", enc.bytes);
        // CP866: Б = 0x81, о = 0xae.
        let body = &enc.bytes[header.len()..];
        assert_eq!(&body[..2], &[0x81, 0xae], "{name}");
        assert_eq!(enc.unrepresentable, 0);
        seen.push(enc.bytes);
    }
    assert_ne!(seen[0], seen[1]);
    assert_ne!(seen[1], seen[2]);
    assert_ne!(seen[0], seen[2]);

    // A profile with CP1251 only sends Windows-1251: Б = 0xc1.
    let mut p = profile("generic-80");
    p.code_pages.cp866 = None;
    let enc = encode(&doc, &p, PaperWidth::Mm80).unwrap();
    assert_eq!(&enc.bytes[..7], &[0x1b, 0x40, 0x1b, b't', 46, 0xc1, 0xee]);
}

#[test]
fn unrepresentable_chars_counted() {
    let p = profile("generic-80");
    // 😀 is not in CP866 and has no stand-in; € prints as EUR, « » as ",
    // the dash as -; the ESC control char is never sent raw.
    let enc = encode(
        &one_text("Цена 5€ 😀 \u{1b}! «Ёлка» — 😀"),
        &p,
        PaperWidth::Mm80,
    )
    .unwrap();
    assert_eq!(enc.unrepresentable, 3);
    assert_eq!(enc.missing, ['😀']);
    let text: Vec<u8> = enc.bytes[5..].to_vec();
    let needle = |n: &[u8]| text.windows(n.len()).any(|w| w == n);
    assert!(needle(b"5EUR ?"), "{text:02x?}");
    assert!(needle(b"\"") && needle(b" - ?"), "{text:02x?}");
    assert!(!enc.bytes[5..].contains(&0x1b), "{:02x?}", enc.bytes);
    let mut ascii = p.clone();
    ascii.code_pages = CodePages::default();
    let enc = encode(&one_text("Цена"), &ascii, PaperWidth::Mm80).unwrap();
    assert_eq!(enc.unrepresentable, 4);
    assert_eq!(&enc.bytes, &[0x1b, 0x40, b'?', b'?', b'?', b'?', 0x0a]);
    // Columns count too.
    let doc = Document {
        width: None,
        blocks: vec![Block::Columns {
            cells: vec![cell("a😀", None), cell("😀", None)],
            bold: false,
            double_width: false,
        }],
    };
    assert_eq!(
        encode(&doc, &p, PaperWidth::Mm58).unwrap().unrepresentable,
        2
    );
}

#[test]
fn wrap_table() {
    let cases: &[(&str, usize, &[&str])] = &[
        ("", 10, &[""]),
        ("abc", 10, &["abc"]),
        ("abc def ghi", 7, &["abc def", "ghi"]),
        ("abcdefghij", 4, &["abcd", "efgh", "ij"]),
        ("ab  cd", 10, &["ab cd"]),
        ("a\nb", 10, &["a", "b"]),
        (
            "Молоко пастеризованное",
            8,
            &["Молоко", "пастериз", "ованное"],
        ),
        ("x", 0, &["x"]),
    ];
    for (input, width, want) in cases {
        assert_eq!(&wrap(input, *width), want, "{input:?} at {width}");
    }
}

#[test]
fn column_fitting_table() {
    let c = |w: Option<u16>, weight: Option<u16>| Cell {
        text: String::new(),
        align: None,
        weight,
        width: w,
    };
    let cases: Vec<(Vec<Cell>, usize, Vec<usize>)> = vec![
        // 48 - 2 separators = 46; fixed 9 and 8, name takes 29.
        (
            vec![c(None, None), c(Some(9), None), c(Some(8), None)],
            48,
            vec![29, 9, 8],
        ),
        // 32 columns: 30 left.
        (
            vec![c(None, None), c(Some(9), None), c(Some(8), None)],
            32,
            vec![13, 9, 8],
        ),
        // Equal weights, remainder to the first.
        (vec![c(None, None), c(None, None)], 32, vec![16, 15]),
        (vec![c(None, Some(3)), c(None, Some(1))], 41, vec![30, 10]),
        // Fixed too wide: shrunk to leave one char for the others.
        (vec![c(None, None), c(Some(100), None)], 16, vec![1, 14]),
        // Only fixed: leftover to the first.
        (vec![c(Some(5), None), c(Some(5), None)], 20, vec![14, 5]),
        // Tiny line: still one char each.
        (
            vec![c(None, None), c(None, None), c(None, None)],
            2,
            vec![1, 1, 1],
        ),
    ];
    for (cells, total, want) in cases {
        assert_eq!(column_widths(&cells, total), want, "{cells:?} in {total}");
    }
}

#[test]
fn a_number_is_never_cut_in_two_when_the_row_can_hold_it() {
    // A double-width total: 16 columns, the amount's cell set too narrow.
    let cells = vec![cell("ИТОГО К ОПЛАТЕ", None), cell("=12319,90", Some(6))];
    let lines = layout_columns(&cells, 16);
    assert!(lines.iter().any(|l| l.ends_with("=12319,90")), "{lines:?}");
    assert!(lines.iter().all(|l| l.chars().count() <= 16), "{lines:?}");
    // Two equal columns, a long amount: the label gives way.
    let cells = vec![cell("ИТОГ", None), cell("=1234567,89", None)];
    assert_eq!(layout_columns(&cells, 16), vec!["ИТОГ =1234567,89"]);
    // Longer than the row: only then is it broken.
    let cells = vec![cell("x", None), cell("12345678901234567890", None)];
    assert!(layout_columns(&cells, 16).len() > 1);
}

#[test]
fn column_layout_wraps_first_column() {
    let cells = vec![
        cell("Молоко пастеризованное 3,2%", None),
        cell("2 x 89,90", Some(9)),
        cell("179,80", Some(8)),
    ];
    let lines = layout_columns(&cells, 32);
    assert_eq!(
        lines,
        vec![
            "Молоко          2 x 89,90 179,80",
            "пастеризованное",
            "3,2%",
        ]
    );
    for l in &lines {
        assert!(l.chars().count() <= 32);
    }
    // Double width halves the columns: 16 per line on 58 mm.
    let doc = Document {
        width: None,
        blocks: vec![Block::Columns {
            cells: vec![cell("Итого", None), cell("179,80", None)],
            bold: true,
            double_width: true,
        }],
    };
    let enc = encode(&doc, &profile("generic-58"), PaperWidth::Mm58).unwrap();
    let mut want = vec![0x1b, 0x40, 0x1b, b't', 17, 0x1b, b'E', 1, 0x1d, b'!', 0x10];
    want.extend_from_slice(&[0x88, 0xe2, 0xae, 0xa3, 0xae]); // Итого in CP866
    want.extend_from_slice(b"     179,80\n"); // 8 + 1 + 7 = 16
    assert_eq!(enc.bytes, want);
}

#[test]
fn document_width_narrows_layout() {
    let doc = Document {
        width: Some(PaperWidth::Mm58),
        blocks: vec![Block::Separator { char: '=' }],
    };
    let enc = encode(&doc, &profile("generic-80"), PaperWidth::Mm80).unwrap();
    assert_eq!(enc.bytes.iter().filter(|&&b| b == b'=').count(), 32);
}

fn png_bytes(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(data).unwrap();
    }
    out
}

#[test]
fn dithering_tiny_png() {
    // 8x2 gray: row 0 black..white ramp, row 1 mid-gray.
    let mut data: Vec<u8> = (0..8).map(|x| (x * 255 / 7) as u8).collect();
    data.extend([128u8; 8]);
    let bytes = png_bytes(8, 2, png::ColorType::Grayscale, &data);
    let gray = decode_png(&bytes, 2048, 2048).unwrap();
    assert_eq!((gray.width, gray.height), (8, 2));
    assert_eq!(gray.pixels[..8], data[..8]);
    let bm = dither(&gray);
    // The ramp: dark half black, light half white.
    assert!(bm.pixels[0] && !bm.pixels[7]);
    let black: usize = bm.pixels.iter().filter(|&&p| p).count();
    assert!((6..=10).contains(&black), "{black} black of 16");

    // Solid black RGBA and fully transparent pixels (white).
    let rgba = [0, 0, 0, 255, 0, 0, 0, 0].repeat(4);
    let bytes = png_bytes(8, 1, png::ColorType::Rgba, &rgba);
    let bm = png_to_bitmap(&bytes, 384).unwrap();
    assert_eq!(bm.pixels, [true, false].repeat(4));
    assert_eq!(bm.packed_rows(), vec![0b1010_1010]);

    // Scaling down to the dots per line.
    let wide = png_bytes(100, 10, png::ColorType::Grayscale, &[0u8; 1000]);
    let bm = png_to_bitmap(&wide, 50).unwrap();
    assert_eq!((bm.width, bm.height), (50, 5));
    assert!(bm.pixels.iter().all(|&p| p));

    // Encoded as GS v 0 on the image block.
    let b64 = encode_base64(&bytes);
    let doc = Document {
        width: None,
        blocks: vec![Block::Image {
            png_base64: Some(b64),
            png: None,
        }],
    };
    let enc = encode(&doc, &profile("generic-58"), PaperWidth::Mm58).unwrap();
    assert!(
        enc.bytes
            .ends_with(&[0x1d, 0x76, 0x30, 0, 1, 0, 1, 0, 0b1010_1010])
    );
}

fn encode_base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for ch in bytes.chunks(3) {
        let n = ch
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &b)| a | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= ch.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn qr_native_and_raster() {
    let doc = Document {
        width: None,
        blocks: vec![Block::Qr {
            payload: "hello".into(),
            module_size: 4,
            ec: EcLevel::Q,
        }],
    };
    let enc = encode(&doc, &profile("generic-80"), PaperWidth::Mm80).unwrap();
    let mut want = vec![0x1b, 0x40, 0x1b, b't', 17, 0x1b, b'a', 1];
    want.extend_from_slice(&[0x1d, b'(', b'k', 4, 0, 49, 65, 50, 0]);
    want.extend_from_slice(&[0x1d, b'(', b'k', 3, 0, 49, 67, 4]);
    want.extend_from_slice(&[0x1d, b'(', b'k', 3, 0, 49, 69, 50]);
    want.extend_from_slice(&[0x1d, b'(', b'k', 8, 0, 49, 80, 48]);
    want.extend_from_slice(b"hello");
    want.extend_from_slice(&[0x1d, b'(', b'k', 3, 0, 49, 81, 48]);
    assert_eq!(enc.bytes, want);

    let enc = encode(&doc, &profile("pos-5890"), PaperWidth::Mm58).unwrap();
    // Version 1 (21 modules) + 2*4 quiet zone = 29 modules * 4 dots = 116.
    let at = 8;
    assert_eq!(
        &enc.bytes[at..at + 8],
        &[0x1d, 0x76, 0x30, 0, 15, 0, 116, 0]
    );
    assert_eq!(enc.bytes.len(), at + 8 + 15 * 116);

    // Module size shrinks to fit the paper.
    let bm = qr_bitmap(&[b'x'; 500], EcLevel::H, 16, 384).unwrap();
    assert!(bm.width <= 384);
}

proptest! {
    /// The cheap fit check for native QR codes agrees with drawing the
    /// symbol: same dots per module, same refusal when it cannot fit.
    #[test]
    fn qr_scale_agrees_with_the_drawn_symbol(
        len in 1usize..1200,
        ec in prop_oneof![Just(EcLevel::L), Just(EcLevel::M), Just(EcLevel::Q), Just(EcLevel::H)],
        module_size in 1u8..=16,
        dots in prop_oneof![Just(384usize), Just(512), Just(576)],
    ) {
        let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let drawn = qr_bitmap(&payload, ec, module_size, dots);
        let scale = qr_scale(&payload, ec, module_size, dots);
        match (drawn, scale) {
            (Ok(bm), Ok(scale)) => {
                let modules = qrcode::QrCode::with_error_correction_level(&payload, raster::qr_ec(ec))
                    .unwrap()
                    .width();
                prop_assert_eq!(bm.width, (modules + 2 * raster::QR_QUIET_ZONE) * scale);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "drawn {:?} vs scale {:?}", a.map(|b| b.width), b),
        }
    }
}

#[test]
fn barcodes() {
    let doc = Document {
        width: None,
        blocks: vec![
            Block::Barcode {
                kind: BarcodeKind::Ean13,
                data: "400638133393".into(),
                height: 50,
                hri: false,
            },
            Block::Barcode {
                kind: BarcodeKind::Code128,
                data: "A{1".into(),
                height: 300,
                hri: true,
            },
        ],
    };
    assert!(encode(&doc, &profile("generic-80"), PaperWidth::Mm80).is_err());
    let mut doc = doc;
    if let Block::Barcode { height, .. } = &mut doc.blocks[1] {
        *height = 255;
    }
    let enc = encode(&doc, &profile("generic-80"), PaperWidth::Mm80).unwrap();
    let mut want = vec![0x1b, 0x40, 0x1b, b't', 17, 0x1b, b'a', 1];
    want.extend_from_slice(&[0x1d, b'h', 50, 0x1d, b'H', 0, 0x1d, b'k', 67, 13]);
    want.extend_from_slice(b"4006381333931");
    want.extend_from_slice(&[0x1d, b'h', 255, 0x1d, b'H', 2, 0x1d, b'k', 73, 6]);
    want.extend_from_slice(b"{BA{{1");
    assert_eq!(enc.bytes, want);
}

#[test]
fn cut_feed_drawer_per_profile() {
    let doc = Document {
        width: None,
        blocks: vec![
            Block::Feed { lines: 3 },
            Block::Cut { partial: false },
            Block::Cut { partial: true },
            Block::DrawerKick { pin: 1 },
        ],
    };
    let tail = |name: &str| {
        let b = encode(&doc, &profile(name), PaperWidth::Mm58)
            .unwrap()
            .bytes;
        b[5..].to_vec()
    };
    assert_eq!(
        tail("epson-tm-t20"),
        [
            0x1b, b'd', 3, 0x1d, b'V', 65, 0, 0x1d, b'V', 66, 0, 0x1b, b'p', 1, 25, 250
        ]
    );
    assert_eq!(
        tail("xprinter"),
        [
            0x1b, b'd', 3, 0x1d, b'V', 66, 0, 0x1d, b'V', 66, 0, 0x1b, b'p', 1, 25, 250
        ]
    );
    assert_eq!(
        tail("pos-5890"),
        [
            0x1b, b'd', 3, 0x1b, b'd', 4, 0x1b, b'd', 4, 0x1b, b'p', 1, 25, 250
        ]
    );
}

#[test]
fn invalid_document_is_an_error() {
    let doc = Document {
        width: None,
        blocks: vec![
            text("ok"),
            Block::Barcode {
                kind: BarcodeKind::Ean13,
                data: "123".into(),
                height: 80,
                hri: true,
            },
        ],
    };
    let e = encode(&doc, &profile("generic-80"), PaperWidth::Mm80).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid document: blocks[1].data: EAN-13 needs 12 or 13 digits"
    );
}

#[test]
fn status_requests_and_decoding() {
    assert_eq!(status_request(1), [0x10, 0x04, 0x01]);
    assert_eq!(status_request(4), [0x10, 0x04, 0x04]);
    let s = |n, b| decode_status(n, b);
    // (n, byte, check)
    type Check = fn(&StatusBits) -> bool;
    let table: &[(u8, u8, Check)] = &[
        (1, 0x12, |s| {
            s.well_formed && s.online == Some(true) && s.drawer_open == Some(false)
        }),
        (1, 0x16, |s| s.drawer_open == Some(true)),
        (1, 0x1a, |s| s.online == Some(false)),
        (1, 0x32, |s| s.waiting_online_recovery == Some(true)),
        (1, 0x52, |s| s.feed_button_pressed == Some(true)),
        (2, 0x12, |s| {
            s.cover_open == Some(false) && s.paper_end == Some(false) && s.error == Some(false)
        }),
        (2, 0x16, |s| s.cover_open == Some(true)),
        (2, 0x1a, |s| s.feed_button_pressed == Some(true)),
        (2, 0x32, |s| s.paper_end == Some(true)),
        (2, 0x52, |s| s.error == Some(true)),
        (3, 0x12, |s| {
            s.cutter_error == Some(false) && s.unrecoverable_error == Some(false)
        }),
        (3, 0x1a, |s| s.cutter_error == Some(true)),
        (3, 0x32, |s| s.unrecoverable_error == Some(true)),
        (3, 0x52, |s| s.auto_recoverable_error == Some(true)),
        (4, 0x12, |s| {
            s.paper_near_end == Some(false) && s.paper_end == Some(false)
        }),
        (4, 0x1e, |s| {
            s.paper_near_end == Some(true) && s.paper_end == Some(false)
        }),
        (4, 0x72, |s| {
            s.paper_end == Some(true) && s.paper_near_end == Some(false)
        }),
        (4, 0x7e, |s| {
            s.paper_end == Some(true) && s.paper_near_end == Some(true)
        }),
        (1, 0x00, |s| !s.well_formed),
        (1, 0xff, |s| !s.well_formed && s.online == Some(false)),
        (9, 0x12, |s| *s == StatusBits::default()),
    ];
    for (n, byte, check) in table {
        assert!(
            check(&s(*n, *byte)),
            "n={n} byte={byte:#04x}: {:?}",
            s(*n, *byte)
        );
    }
    // Fields outside the request are None.
    let one = s(1, 0x12);
    assert_eq!(
        (one.cover_open, one.paper_end, one.cutter_error),
        (None, None, None)
    );
}

fn arb_block() -> impl Strategy<Value = Block> {
    let s = ".{0,40}";
    prop_oneof![
        (
            s,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0..3u8
        )
            .prop_map(|(text, bold, underline, double_width, double_height, a)| {
                Block::Text {
                    text,
                    bold,
                    underline,
                    double_width,
                    double_height,
                    align: [Align::Left, Align::Center, Align::Right][usize::from(a)],
                }
            }),
        (
            prop::collection::vec(
                (
                    s,
                    proptest::option::of(0..60u16),
                    proptest::option::of(0..5u16)
                ),
                0..5
            ),
            any::<bool>()
        )
            .prop_map(|(cells, double_width)| Block::Columns {
                cells: cells
                    .into_iter()
                    .map(|(text, width, weight)| Cell {
                        text,
                        align: None,
                        weight,
                        width,
                    })
                    .collect(),
                bold: false,
                double_width,
            }),
        any::<char>().prop_map(|char| Block::Separator { char }),
        (".{0,60}", 0..20u8, 0..4u8).prop_map(|(payload, module_size, e)| Block::Qr {
            payload,
            module_size,
            ec: [EcLevel::L, EcLevel::M, EcLevel::Q, EcLevel::H][usize::from(e)],
        }),
        (
            any::<bool>(),
            "[0-9{]{0,14}|.{0,10}",
            0..300u16,
            any::<bool>()
        )
            .prop_map(|(ean, data, height, hri)| Block::Barcode {
                kind: if ean {
                    BarcodeKind::Ean13
                } else {
                    BarcodeKind::Code128
                },
                data,
                height,
                hri,
            }),
        (
            proptest::option::of("[A-Za-z0-9+/=]{0,40}"),
            proptest::option::of(prop::collection::vec(any::<u8>(), 0..64))
        )
            .prop_map(|(png_base64, png)| Block::Image { png_base64, png }),
        (0..300u16).prop_map(|lines| Block::Feed { lines }),
        any::<bool>().prop_map(|partial| Block::Cut { partial }),
        (0..4u8).prop_map(|pin| Block::DrawerKick { pin }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_text_never_panics_and_is_bounded(s in "\\PC{0,300}|.{0,300}", dw in any::<bool>()) {
        for p in Profile::all() {
            let doc = Document {
                width: None,
                blocks: vec![Block::Text {
                    text: s.clone(),
                    bold: true,
                    underline: true,
                    double_width: dw,
                    double_height: false,
                    align: Align::Right,
                }],
            };
            let enc = encode(&doc, &p, PaperWidth::Mm58).unwrap();
            let chars = s.chars().count();
            // Header + styles, one byte per char, plus a line feed per line
            // (at most one per char, and one more).
            prop_assert!(enc.bytes.len() <= 32 + 2 * chars + 1, "{} for {chars}", enc.bytes.len());
            prop_assert!(enc.unrepresentable <= chars);
        }
    }

    #[test]
    fn arbitrary_documents_never_panic(blocks in prop::collection::vec(arb_block(), 0..8)) {
        let doc = Document { width: None, blocks };
        let _ = doc.validate();
        for p in [profile("generic-58"), profile("star"), profile("pos-5890")] {
            for paper in [PaperWidth::Mm58, PaperWidth::Mm80] {
                if let Ok(enc) = encode(&doc, &p, paper) {
                    prop_assert!(enc.bytes.starts_with(&[0x1b, 0x40]));
                    prop_assert!(doc.validate().is_ok());
                }
            }
        }
    }

    #[test]
    fn arbitrary_document_text_never_panics(src in "\\PC{0,200}") {
        // serde_json is not a dependency of this crate; TOML exercises the
        // same serde derive paths.
        if let Ok(doc) = toml::from_str::<Document>(&src) {
            let _ = doc.validate();
            let _ = encode(&doc, &profile("generic-80"), PaperWidth::Mm80);
        }
    }

    #[test]
    fn arbitrary_document_toml_shapes_never_panic(
        ty in "text|columns|separator|qr|barcode|image|feed|cut|drawer_kick|bogus",
        key in "text|cells|char|payload|module_size|ec|kind|data|height|hri|png_base64|png|lines|partial|pin|bold",
        val in "\"[^\"\\\\]{0,20}\"|[0-9]{1,6}|true|false|\\[\\]|\\[\\{ text = \"a\" \\}, \\{ text = \"b\", width = 3 \\}\\]|\"ean13\"|\"code128\"|\"L\"",
    ) {
        let src = format!("[[blocks]]\ntype = \"{ty}\"\n{key} = {val}\n");
        if let Ok(doc) = toml::from_str::<Document>(&src) {
            let _ = doc.validate();
            let _ = encode(&doc, &profile("generic-80"), PaperWidth::Mm80);
        }
    }
}

#[test]
fn hexdump_format() {
    assert_eq!(
        hexdump(b"\x1b@AB"),
        "000000  1b 40 41 42                                      |.@AB|\n"
    );
}
