#![no_main]
//! Fuzz target `shtrih_frame`: see `posbridge_drivers::fuzzing::shtrih_frame`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::shtrih_frame(data));
