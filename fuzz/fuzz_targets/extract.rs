#![no_main]
//! Fuzz target `extract`: see `posbridge_drivers::fuzzing::extract`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::extract(data));
