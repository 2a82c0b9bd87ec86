#![no_main]
//! Fuzz target `framing`: see `posbridge_drivers::fuzzing::framing`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::framing(data));
