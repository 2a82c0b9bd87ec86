#![no_main]
//! Fuzz target `recording`: see `posbridge_drivers::fuzzing::recording`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::recording(data));
