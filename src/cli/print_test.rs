//! `posbridge print-test PRINTER`: a test page through the daemon's API, so
//! a technician checks the whole path (queue, printer actor, connection,
//! code page, cutter) the way the POS program uses it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::cli::call::{Target, connect};

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
