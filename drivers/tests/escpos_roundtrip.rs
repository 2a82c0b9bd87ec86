//! Round trip: receipt document → ESC/POS bytes (encoder, every built-in
//! profile) → virtual printer (simulator) → the same text, QR payload,
//! barcodes and cut. Also over TCP and over a pty.

use std::time::Duration;

use encoding_rs::Encoding;
use posbridge_drivers::printer::document::{
    Align, BarcodeKind, Block, Cell, Document, EcLevel, PaperWidth,
};
use posbridge_drivers::printer::escpos::{
    CodePage, CutSupport, Profile, encode, layout_columns, qr_bitmap, wrap,
};
use posbridge_drivers::sim::escpos::{
    Align as SimAlign, BlockKind, CutKind, EscPosParser, Receipt, default_codepages,
    default_star_codepages, spawn_pty, spawn_tcp,
};
use tokio::io::AsyncWriteExt;

const TITLE: &str = "ООО Ромашка";
const QR_PAYLOAD: &str = "t=20240101T1200&s=179.80&fn=9999078900012345&i=12345&fp=1234567890&n=1";
const EAN12: &str = "460123456789";
/// `EAN12` with its check digit (4·1 + 6·3 + 0 + 1·3 + 2 + 3·3 + 4 + 5·3 + 6
/// + 7·3 + 8 + 9·3 = 117 → 3).
const EAN13: &str = "4601234567893";
/// `{` must survive the `{B` code-set prefix and the `{{` escape.
const CODE128: &str = "POS-{42}-abc";
const FEED: u16 = 3;
/// Lines fed instead of a cut by printers without a cutter.
const NO_CUTTER_FEED: usize = 4;

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

fn cells() -> Vec<Cell> {
    vec![
        Cell {
            text: "Молоко ультрапастеризованное 3,2% 1 л, бутылка".into(),
            ..Cell::default()
        },
        Cell {
            text: "2 x 89,90".into(),
            width: Some(10),
            ..Cell::default()
        },
        Cell {
            text: "179,80".into(),
            width: Some(9),
            ..Cell::default()
        },
    ]
}

fn receipt_doc(partial_cut: bool) -> Document {
    Document {
        width: None,
        blocks: vec![
            Block::Text {
                text: TITLE.into(),
                bold: true,
                underline: false,
                double_width: true,
                double_height: true,
                align: Align::Center,
            },
            Block::Text {
                text: "Кассовый чек".into(),
                bold: false,
                underline: false,
                double_width: false,
                double_height: false,
                align: Align::Center,
            },
            Block::Columns {
                cells: cells(),
                bold: false,
                double_width: false,
            },
            Block::Separator { char: '-' },
            text("Бонусы: 120,00"),
            text("Ёлка и щётка"),
            Block::Qr {
                payload: QR_PAYLOAD.into(),
                module_size: 6,
                ec: EcLevel::M,
            },
            Block::Barcode {
                kind: BarcodeKind::Ean13,
                data: EAN12.into(),
                height: 80,
                hri: true,
            },
            Block::Barcode {
                kind: BarcodeKind::Code128,
                data: CODE128.into(),
                height: 60,
                hri: true,
            },
            Block::Feed { lines: FEED },
            Block::Cut {
                partial: partial_cut,
            },
        ],
    }
}

/// The text lines the encoder lays out for `receipt_doc` (same layout rules:
/// font A columns of the paper, halved for double width).
fn expected_text_lines(profile: &Profile, paper: PaperWidth) -> Vec<String> {
    let cols = usize::from(profile.paper(paper).font_a_columns);
    let mut lines = wrap(TITLE, cols / 2);
    lines.extend(wrap("Кассовый чек", cols));
    let row = layout_columns(&cells(), cols);
    assert!(
        row.len() > 1,
        "{}: the columns row should wrap: {row:?}",
        profile.name
    );
    assert!(row.iter().all(|l| l.chars().count() <= cols));
    // Quantity, price and amount stay whole on the first line.
    assert!(
        row[0].contains(" 2 x 89,90 ") && row[0].ends_with(" 179,80"),
        "{row:?}"
    );
    lines.extend(row);
    lines.push("-".repeat(cols));
    lines.push("Бонусы: 120,00".into());
    lines.push("Ёлка и щётка".into());
    lines
}

/// The simulator's code-page tables extended by the profile's numbers; a
/// number the default table already maps must map to the same encoding.
fn parser_for(profile: &Profile) -> EscPosParser {
    let mut table = if profile.star_codepage_command {
        default_star_codepages()
    } else {
        default_codepages()
    };
    let wanted: [(Option<u8>, &'static Encoding); 2] = [
        (profile.code_pages.cp866, encoding_rs::IBM866),
        (profile.code_pages.cp1251, encoding_rs::WINDOWS_1251),
    ];
    for (n, enc) in wanted {
        if let Some(n) = n {
            let got = *table.entry(n).or_insert(enc);
            assert_eq!(
                got,
                enc,
                "{}: simulator maps code page {n} to {}, profile says {}",
                profile.name,
                got.name(),
                enc.name()
            );
        }
    }
    if profile.star_codepage_command {
        EscPosParser::new().with_star_codepages(table)
    } else {
        EscPosParser::with_codepages(table)
    }
}

fn expected_cut(profile: &Profile, partial: bool) -> Option<CutKind> {
    match (profile.cut, partial) {
        (CutSupport::Full, false) => Some(CutKind::Full),
        (CutSupport::Full, true) | (CutSupport::Partial, _) => Some(CutKind::Partial),
        (CutSupport::None, _) => None,
    }
}

/// Checks a printed receipt against what the encoder was asked to print.
fn check_receipt(r: &Receipt, profile: &Profile, paper: PaperWidth, partial: bool) {
    let name = &profile.name;
    let mut want = expected_text_lines(profile, paper);
    want.extend(std::iter::repeat_n(String::new(), usize::from(FEED)));
    if profile.cut == CutSupport::None {
        want.extend(std::iter::repeat_n(String::new(), NO_CUTTER_FEED));
    }
    let got: Vec<&str> = r.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(got, want, "{name} {paper:?}: text lines");

    // Styles: only the title is bold and double size.
    let title = &r.lines[0];
    assert!(
        title.bold && title.double_width && title.double_height,
        "{name}: title {title:?}"
    );
    assert_eq!(title.align, SimAlign::Center, "{name}: title alignment");
    assert_eq!(r.lines[1].align, SimAlign::Center);
    for l in &r.lines[1..] {
        assert!(
            !l.bold && !l.double_width && !l.double_height && !l.underline,
            "{name}: unexpected style on {l:?}"
        );
    }
    let bonus = r
        .lines
        .iter()
        .find(|l| l.text.starts_with("Бонусы"))
        .unwrap();
    assert_eq!(bonus.align, SimAlign::Left);

    // QR: native payload, or the raster image the encoder drew.
    let dots = usize::from(profile.paper(paper).dots_per_line);
    if profile.native_qr {
        assert_eq!(r.qr, vec![QR_PAYLOAD.to_string()], "{name}: QR payload");
        assert!(r.images.is_empty(), "{name}: {:?}", r.images);
    } else {
        assert!(r.qr.is_empty(), "{name}: {:?}", r.qr);
        let bm = qr_bitmap(QR_PAYLOAD.as_bytes(), EcLevel::M, 6, dots).unwrap();
        let w = bm.width.div_ceil(8) * 8;
        assert!(w <= dots, "{name}: QR image wider than the paper");
        assert_eq!(
            r.images,
            vec![(w as u32, bm.height as u32)],
            "{name}: QR image size"
        );
    }
    assert_eq!(
        r.barcodes,
        vec![
            ("EAN13".to_string(), EAN13.to_string()),
            ("CODE128".to_string(), CODE128.to_string()),
        ],
        "{name}: barcodes"
    );

    // Paper order: text, QR, barcodes, fed lines.
    let kinds: Vec<BlockKind> = r.layout.iter().map(|b| b.kind).collect();
    let n_text = expected_text_lines(profile, paper).len();
    let mut want_kinds = vec![BlockKind::Line; n_text];
    want_kinds.push(if profile.native_qr {
        BlockKind::Qr
    } else {
        BlockKind::Image
    });
    want_kinds.extend([BlockKind::Barcode, BlockKind::Barcode]);
    want_kinds.extend(std::iter::repeat_n(BlockKind::Line, r.lines.len() - n_text));
    assert_eq!(kinds, want_kinds, "{name}: layout");
    assert_eq!(
        r.layout[n_text].align,
        SimAlign::Center,
        "{name}: QR centred"
    );

    assert_eq!(r.cut, expected_cut(profile, partial), "{name}: cut");
}

/// Parses `bytes` with a parser configured for `profile`; exactly one receipt.
fn print(profile: &Profile, bytes: &[u8]) -> Receipt {
    let mut parser = parser_for(profile);
    parser.feed(bytes);
    parser.flush();
    let paper = parser.paper();
    assert_eq!(
        paper.unknown_commands, 0,
        "{}: unknown commands",
        profile.name
    );
    assert!(
        paper.errors.is_empty(),
        "{}: {:?}",
        profile.name,
        paper.errors
    );
    assert_eq!(paper.receipts.len(), 1, "{}: receipts", profile.name);
    paper.receipts[0].clone()
}

/// The profile, and a copy without CP866 so that its CP1251 number is used.
fn variants(profile: &Profile) -> Vec<Profile> {
    let mut out = vec![profile.clone()];
    if profile.code_pages.cp866.is_some() && profile.code_pages.cp1251.is_some() {
        let mut p = profile.clone();
        p.code_pages.cp866 = None;
        out.push(p);
    }
    out
}

#[test]
fn every_profile_round_trips() {
    let profiles = Profile::all();
    assert_eq!(profiles.len(), Profile::builtin_names().count());
    for name in Profile::builtin_names() {
        let base = Profile::builtin(name).unwrap();
        for profile in variants(&base) {
            for paper in [PaperWidth::Mm58, PaperWidth::Mm80] {
                for partial in [false, true] {
                    let enc = encode(&receipt_doc(partial), &profile, paper).unwrap();
                    assert_eq!(enc.unrepresentable, 0, "{name}");
                    let r = print(&profile, &enc.bytes);
                    check_receipt(&r, &profile, paper, partial);
                }
            }
        }
    }
}

#[test]
fn code_pages_are_the_profiles_numbers() {
    for profile in Profile::all() {
        for p in variants(&profile) {
            let enc = encode(&receipt_doc(false), &p, PaperWidth::Mm80).unwrap();
            let (n, cp) = match CodePage::for_profile(&p) {
                CodePage::Cp866(n) => (n, "cp866"),
                CodePage::Cp1251(n) => (n, "cp1251"),
                CodePage::Ascii => panic!("{}: no Cyrillic code page", p.name),
            };
            let select: &[u8] = if p.star_codepage_command {
                &[0x1b, 0x1d, b't', n]
            } else {
                &[0x1b, b't', n]
            };
            assert_eq!(
                &enc.bytes[2..2 + select.len()],
                select,
                "{} {cp}: code page selection",
                p.name
            );
        }
    }
    // pos-5890's CP1251 is 73, which the simulator's default table lacks:
    // the parser must be configured from the profile.
    let mut p = Profile::builtin("pos-5890").unwrap();
    p.code_pages.cp866 = None;
    let enc = encode(&receipt_doc(false), &p, PaperWidth::Mm58).unwrap();
    assert_eq!(&enc.bytes[2..5], &[0x1b, b't', 73]);
    let mut plain = EscPosParser::new();
    plain.feed(&enc.bytes);
    plain.flush();
    assert!(!plain.errors().is_empty(), "73 is not in the default table");
    let r = print(&p, &enc.bytes);
    assert!(r.lines.iter().any(|l| l.text == "Ёлка и щётка"));
}

#[test]
fn rendered_receipt_shows_cyrillic() {
    let profile = Profile::builtin("epson-tm-t88").unwrap();
    let enc = encode(&receipt_doc(false), &profile, PaperWidth::Mm80).unwrap();
    let r = print(&profile, &enc.bytes);
    let shown = r.render_text(42);
    println!("{shown}");
    for want in [
        "О О О   Р о м а ш к а",
        "Кассовый чек",
        "Бонусы: 120,00",
        "Ёлка и щётка",
        "Молоко",
        "[QR: t=20240101T1200",
        &format!("[EAN13 {EAN13}]"),
        &format!("[CODE128 {CODE128}]"),
        "✂",
    ] {
        assert!(shown.contains(want), "{want:?} missing from\n{shown}");
    }
    assert!(shown.lines().all(|l| l.chars().count() <= 42));
}

#[tokio::test]
async fn over_tcp() {
    for profile in Profile::all() {
        if profile.cut == CutSupport::None {
            continue; // a receipt only ends (over a link) at a cut
        }
        let enc = encode(&receipt_doc(false), &profile, PaperWidth::Mm80).unwrap();
        let (addr, h) = spawn_tcp("127.0.0.1:0".parse().unwrap());
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&enc.bytes).await.unwrap();
        s.flush().await.unwrap();
        let r = h
            .wait_receipts(1, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", profile.name));
        check_receipt(&r[0], &profile, PaperWidth::Mm80, false);
        let paper = h.paper();
        assert_eq!(paper.unknown_commands, 0, "{}", profile.name);
        assert!(
            paper.errors.is_empty(),
            "{}: {:?}",
            profile.name,
            paper.errors
        );
    }
}

#[tokio::test]
async fn over_pty() {
    use tokio_serial::SerialPortBuilderExt;
    let profile = Profile::builtin("epson-tm-t20").unwrap();
    let enc = encode(&receipt_doc(true), &profile, PaperWidth::Mm58).unwrap();
    let (path, h) = spawn_pty();
    let mut port = tokio_serial::new(path.to_string_lossy(), 115_200)
        .open_native_async()
        .unwrap();
    port.write_all(&enc.bytes).await.unwrap();
    port.flush().await.unwrap();
    let r = h.wait_receipts(1, Duration::from_secs(5)).await.unwrap();
    check_receipt(&r[0], &profile, PaperWidth::Mm58, true);
    let paper = h.paper();
    assert_eq!(paper.unknown_commands, 0);
    assert!(paper.errors.is_empty(), "{:?}", paper.errors);
}

#[test]
fn parser_tables_cover_every_profile() {
    // Every profile's numbers (CP866 and CP1251) decode to the encoding the
    // encoder used.
    for profile in Profile::all() {
        for p in variants(&profile) {
            let enc = encode(
                &Document {
                    width: None,
                    blocks: vec![text("Ёлка и щётка")],
                },
                &p,
                PaperWidth::Mm58,
            )
            .unwrap();
            let mut parser = parser_for(&p);
            parser.feed(&enc.bytes);
            parser.flush();
            assert_eq!(
                parser.receipts()[0].lines[0].text,
                "Ёлка и щётка",
                "{}",
                p.name
            );
        }
    }
}
