#![no_main]
//! Fuzz target `msr`: see `posbridge_drivers::fuzzing::msr`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::msr(data));
