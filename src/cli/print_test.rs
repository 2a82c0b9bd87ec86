//! `posbridge print-test PRINTER`: a test page through the daemon's API, so
//! a technician checks the whole path (queue, printer actor, connection,
//! code page, cutter) the way the POS program uses it. With `--preview`,
//! and in `posbridge preview`, nothing is printed: the document is encoded
//! for the profile, read back by the virtual printer and drawn into a PNG.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use posbridge_drivers::printer::document::{Document, PaperWidth};
use posbridge_drivers::printer::escpos::Profile;
use posbridge_drivers::sim::render::preview_document;

use crate::cli::call::{Target, connect};
use crate::config::{PrinterKind, locate};

/// The classic Russian pangram: every letter of the alphabet but Ёё, in
/// words, so a wrong code page shows as garbage at a glance.
pub const CYRILLIC_SAMPLE: &str = "Съешь же ещё этих мягких французских булок, да выпей чаю";
/// Every Cyrillic capital, Ё in its place, for checking the code page table.
pub const CYRILLIC_UPPER: &str = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ";
/// Every Cyrillic small letter, ё in its place.
pub const CYRILLIC_LOWER: &str = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя";

/// How long to wait for the printer to finish the page.
const LIMIT: Duration = Duration::from_secs(30);

/// `posbridge print-test PRINTER`.
#[derive(Debug, Args)]
pub struct PrintTestArgs {
    #[command(flatten)]
    target: Target,
    /// The printer's name in the configuration.
    printer: String,
    /// Do not print: render the test page as this printer would print it
    /// (its profile and paper from the configuration) into a PNG file. No
    /// daemon is needed.
    #[arg(long, value_name = "FILE.png")]
    preview: Option<PathBuf>,
}

/// `posbridge preview`: render a document to PNG without a printer.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The document, in the `print.document` JSON model (`-` for stdin).
    #[arg(long, value_name = "FILE.json")]
    document: PathBuf,
    /// A built-in profile (default `generic-80`).
    #[arg(long, conflicts_with_all = ["profile_file", "printer"])]
    profile: Option<String>,
    /// A profile TOML file.
    #[arg(long, value_name = "PATH", conflicts_with = "printer")]
    profile_file: Option<PathBuf>,
    /// Use a configured printer's profile and paper.
    #[arg(long)]
    printer: Option<String>,
    /// Paper loaded: 58mm or 80mm (default 80mm, or the printer's).
    #[arg(long, value_parser = parse_paper)]
    paper: Option<PaperWidth>,
    /// The PNG file to write.
    #[arg(long, value_name = "FILE.png")]
    out: PathBuf,
    /// Also print the preview as text art on stdout.
    #[arg(long)]
    ascii: bool,
}

fn parse_paper(s: &str) -> Result<PaperWidth, String> {
    match s {
        "58mm" | "58" => Ok(PaperWidth::Mm58),
        "80mm" | "80" => Ok(PaperWidth::Mm80),
        _ => Err(format!("paper must be 58mm or 80mm, not \"{s}\"")),
    }
}

/// The profile and paper of the configured printer `name`.
fn printer_profile(
    name: &str,
    config_flag: Option<&std::path::Path>,
) -> Result<(Profile, PaperWidth)> {
    let config = locate(config_flag).load()?;
    let printer = config
        .printers
        .iter()
        .find(|p| p.name.get_ref() == name)
        .with_context(|| format!("no printer \"{name}\" in the configuration"))?;
    if printer.kind != PrinterKind::Escpos {
        bail!("printer \"{name}\" is not an escpos printer");
    }
    let profile = printer.load_profile().map_err(anyhow::Error::msg)?;
    Ok((profile, printer.paper))
}

/// Renders `doc` and writes the PNG; prints a summary.
fn write_preview(
    doc: &Document,
    profile: &Profile,
    paper: PaperWidth,
    out: &std::path::Path,
    ascii: bool,
) -> Result<()> {
    let preview = preview_document(doc, profile, paper).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(out, preview.png()).with_context(|| format!("writing {}", out.display()))?;
    if ascii {
        print!("{}", preview.canvas.to_ascii(4, 8));
    }
    println!(
        "{}: {}x{} dots ({} on {} paper){}",
        out.display(),
        preview.canvas.width,
        preview.canvas.height,
        profile.name,
        match paper {
            PaperWidth::Mm58 => "58 mm",
            PaperWidth::Mm80 => "80 mm",
        },
        if preview.truncated { ", cut off" } else { "" }
    );
    if preview.unrepresentable > 0 {
        println!(
            "unrepresentable characters: {} (printed as '?')",
            preview.unrepresentable
        );
    }
    for note in &preview.notes {
        println!("note: {note}");
    }
    Ok(())
}

/// `posbridge preview`.
pub fn preview(args: PreviewArgs, config_flag: Option<&std::path::Path>) -> Result<()> {
    let json = if args.document.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.document)
            .with_context(|| format!("reading {}", args.document.display()))?
    };
    let doc: Document = serde_json::from_str(&json).context("document")?;
    doc.validate()
        .map_err(|e| anyhow::anyhow!("document.{e}"))?;
    let (profile, paper) = match (&args.printer, &args.profile_file, &args.profile) {
        (Some(name), _, _) => printer_profile(name, config_flag)?,
        (None, Some(path), _) => {
            let src = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let profile =
                Profile::from_toml(&src).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            (profile, PaperWidth::Mm80)
        }
        (None, None, name) => {
            let name = name.as_deref().unwrap_or("generic-80");
            let profile = Profile::builtin(name).with_context(|| {
                format!(
                    "unknown profile \"{name}\"; built in: {}",
                    Profile::builtin_names().collect::<Vec<_>>().join(", ")
                )
            })?;
            (profile, PaperWidth::Mm80)
        }
    };
    let paper = args.paper.unwrap_or(paper);
    write_preview(&doc, &profile, paper, &args.out, args.ascii)
}

/// The test page's document (the `print.document` JSON model).
pub fn document(printer: &str, job_id: &str) -> Value {
    json!({"blocks": [
        {"type": "text", "text": "posbridge test page", "bold": true,
         "double_width": true, "align": "center"},
        {"type": "text", "text": format!("printer: {printer}\njob: {job_id}"), "align": "center"},
        {"type": "separator", "char": "="},
        {"type": "text", "text": CYRILLIC_SAMPLE},
        {"type": "separator"},
        {"type": "text", "text": format!("{CYRILLIC_UPPER}\n{CYRILLIC_LOWER}")},
        {"type": "separator"},
        {"type": "columns", "cells": [
            {"text": "Молоко 3,2% 1 л"},
            {"text": "2 x 89,90", "width": 10},
            {"text": "179,80", "width": 8}
        ]},
        {"type": "separator"},
        {"type": "qr", "payload": format!("posbridge print-test {job_id}"), "module_size": 6},
        {"type": "barcode", "kind": "ean13", "data": "4601234567893"},
        {"type": "barcode", "kind": "code128", "data": "POSBRIDGE-128"},
        {"type": "feed", "lines": 1},
        {"type": "cut", "partial": true}
    ]})
}

/// Sends the test page and waits for the outcome; fails unless it printed.
pub async fn run(args: PrintTestArgs, config_flag: Option<&std::path::Path>) -> Result<()> {
    if let Some(out) = &args.preview {
        let (profile, paper) = printer_profile(&args.printer, config_flag)?;
        let doc: Document = serde_json::from_value(document(&args.printer, "preview"))
            .context("test page document")?;
        return write_preview(&doc, &profile, paper, out, false);
    }
    let mut client = connect(&args.target, config_flag).await?;
    let job_id = format!("print-test-{}", crate::events::now_rfc3339());
    client
        .call(
            "print.document",
            json!({"printer": args.printer, "job_id": job_id,
                   "document": document(&args.printer, &job_id)}),
        )
        .await
        .with_context(|| format!("print.document on \"{}\"", args.printer))?;
    println!("{job_id}: queued on \"{}\"", args.printer);
    let deadline = Instant::now() + LIMIT;
    let job = loop {
        let job = client
            .call("print.status", json!({ "job_id": job_id }))
            .await
            .context("print.status")?;
        let state = job["state"].as_str().unwrap_or_default();
        if matches!(state, "done" | "failed" | "held") {
            break job;
        }
        if Instant::now() >= deadline {
            bail!(
                "{job_id} still {state} after {} s; it stays queued (print.cancel removes it)",
                LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let state = job["state"].as_str().unwrap_or_default();
    let unrepresentable = job["unrepresentable"].as_i64().unwrap_or(0);
    match job["detail"].as_str() {
        Some(d) => println!("{job_id}: {state} ({d})"),
        None => println!("{job_id}: {state}"),
    }
    println!("unrepresentable characters: {unrepresentable}");
    if unrepresentable > 0 {
        // The usual cause is a profile whose code page lacks Cyrillic.
        println!("(printed as '?': check the printer's profile and code page)");
    }
    if state != "done" {
        bail!("the test page was not printed: {state}");
    }
    Ok(())
}
