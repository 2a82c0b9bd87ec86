#![no_main]
//! Fuzz target `escpos_sim`: see `posbridge_drivers::fuzzing::escpos_sim`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge_drivers::fuzzing::escpos_sim(data));
