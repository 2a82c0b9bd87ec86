#![no_main]
//! Fuzz target `gs1`: see `posbridge_drivers::fuzzing::gs1`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::gs1(data));
