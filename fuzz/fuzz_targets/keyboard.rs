#![no_main]
//! Fuzz target `keyboard`: see `posbridge_drivers::fuzzing::keyboard`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::keyboard(data));
