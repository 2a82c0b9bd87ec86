#![no_main]
//! Fuzz target `rpc_line`: see `posbridge::fuzzing::rpc_line`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posbridge::fuzzing::rpc_line(data));
