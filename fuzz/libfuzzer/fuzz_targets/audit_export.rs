//! libFuzzer entry point of the `audit_export` target (`fuzz::targets::audit_export`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::audit_export::run(data));
