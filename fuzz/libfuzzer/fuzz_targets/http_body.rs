//! libFuzzer entry point of the `http_body` target (`fuzz::targets::http_body`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::http_body::run(data));
