//! libFuzzer entry point of the `command_bytes` target (`fuzz::targets::command_bytes`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::command_bytes::run(data));
