//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same functions the cargo-fuzz targets call, on stable, so the targets
//! and their entry points cannot rot unnoticed and every crash once found
//! stays fixed. The fuzzing itself needs nightly: `fuzz/run.sh`.

use std::path::PathBuf;

use posbridge::fuzzing;

/// Runs `f` over every file of `fuzz/corpus/<target>/`.
fn replay(target: &str, f: fn(&[u8])) {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    posbridge_drivers::fuzzing::replay(&corpus, target, f);
}

#[test]
fn rpc_line_corpus() {
    replay("rpc_line", fuzzing::rpc_line);
}

#[test]
fn config_corpus() {
    replay("config", fuzzing::config);
}

#[test]
fn customer_csv_corpus() {
    replay("customer_csv", fuzzing::customer_csv);
}
