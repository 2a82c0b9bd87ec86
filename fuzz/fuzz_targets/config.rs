#![no_main]
//! Fuzz target `config`: see `posbridge::fuzzing::config`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge::fuzzing::config(data));
