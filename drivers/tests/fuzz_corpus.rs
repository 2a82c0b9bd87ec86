//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same functions the cargo-fuzz targets call, on stable, so the targets
//! and their entry points cannot rot unnoticed and every crash once found
//! stays fixed. The fuzzing itself needs nightly: `fuzz/run.sh`.

use std::path::PathBuf;

use posbridge_drivers::fuzzing;

/// Runs `f` over every file of `fuzz/corpus/<target>/`.
fn replay(target: &str, f: fn(&[u8])) {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    posbridge_drivers::fuzzing::replay(&corpus, target, f);
}

#[test]
fn msr_corpus() {
    replay("msr", fuzzing::msr);
}

#[test]
fn framing_corpus() {
    replay("framing", fuzzing::framing);
}

#[test]
fn extract_corpus() {
    replay("extract", fuzzing::extract);
}

#[test]
fn keyboard_corpus() {
    replay("keyboard", fuzzing::keyboard);
}

#[test]
fn shtrih_frame_corpus() {
    replay("shtrih_frame", fuzzing::shtrih_frame);
}

#[test]
fn shtrih_link_corpus() {
    replay("shtrih_link", fuzzing::shtrih_link);
}

#[test]
fn escpos_sim_corpus() {
    replay("escpos_sim", fuzzing::escpos_sim);
}

#[test]
fn gs1_corpus() {
    replay("gs1", fuzzing::gs1);
}

#[test]
fn recording_corpus() {
    replay("recording", fuzzing::recording);
}
