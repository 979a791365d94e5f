//! libFuzzer entry point of the `http_query` target (`fuzz::targets::http_query`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::http_query::run(data));
