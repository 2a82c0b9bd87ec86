//! Encoding a 40-line receipt with a QR code and a logo, per profile kind:
//! native QR (a few bytes) and raster QR (the bitmap drawn here).

use criterion::{Criterion, criterion_group, criterion_main};
use posbridge_drivers::printer::document::{Document, PaperWidth};
use posbridge_drivers::printer::escpos::{Profile, encode};
use serde_json::json;

/// A 64×64 PNG logo with a diagonal pattern, made here so the benchmark
/// needs no file.
fn logo_png() -> Vec<u8> {
    let (w, h) = (64u32, 64u32);
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let data: Vec<u8> = (0..w * h)
            .map(|i| (((i % w) + (i / w)) * 4 % 256) as u8)
            .collect();
        writer.write_image_data(&data).unwrap();
    }
    out
}

fn receipt() -> Document {
    let mut blocks = vec![
        json!({"type": "image", "png": logo_png()}),
        json!({"type": "text", "text": "ООО «Ромашка»", "bold": true, "double_width": true, "align": "center"}),
    ];
    for i in 0..40 {
        blocks.push(json!({"type": "columns", "cells": [
            {"text": format!("Товар с длинным названием номер {i}")},
            {"text": "2 x 149,90", "align": "right"},
            {"text": "299,80", "align": "right"}
        ]}));
    }
    blocks.push(json!({"type": "qr", "payload": "t=20261125T1200&s=11992.00&fn=9999078900012345&i=2&fp=1824628693&n=1", "module_size": 6, "ec": "M"}));
    blocks.push(json!({"type": "cut", "partial": true}));
    serde_json::from_value(json!({ "blocks": blocks })).unwrap()
}

fn bench(c: &mut Criterion) {
    let doc = receipt();
    let mut group = c.benchmark_group("escpos_encode_40_lines");
    for name in ["epson-tm-t20", "pos-5890"] {
        let profile = Profile::builtin(name).unwrap();
        let bytes = encode(&doc, &profile, PaperWidth::Mm58)
            .unwrap()
            .bytes
            .len();
        println!("{name}: {bytes} bytes per receipt");
        group.bench_function(name, |b| {
            b.iter(|| encode(&doc, &profile, PaperWidth::Mm58).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
