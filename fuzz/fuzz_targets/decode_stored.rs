#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credit_node::fuzzing::decode_stored(data));
