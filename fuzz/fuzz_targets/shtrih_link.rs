#![no_main]
//! Fuzz target `shtrih_link`: see `posbridge_drivers::fuzzing::shtrih_link`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::shtrih_link(data));
