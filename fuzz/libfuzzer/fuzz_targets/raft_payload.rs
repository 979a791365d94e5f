//! libFuzzer entry point of the `raft_payload` target (`fuzz::targets::raft_payload`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::raft_payload::run(data));
