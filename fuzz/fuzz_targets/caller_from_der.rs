#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credit_node::fuzzing::caller_from_der(data));
