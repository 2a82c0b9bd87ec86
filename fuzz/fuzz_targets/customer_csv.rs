#![no_main]
//! Fuzz target `customer_csv`: see `posbridge::fuzzing::customer_csv`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge::fuzzing::customer_csv(data));
