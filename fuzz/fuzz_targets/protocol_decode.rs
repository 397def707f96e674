#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridsync_fuzz::protocol_decode::run(data));
