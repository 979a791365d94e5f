//! libFuzzer entry point of the `apply_commands` target (`fuzz::targets::apply_commands`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::apply_commands::run(data));
