//! libFuzzer entry point of the `agent_inputs` target (`fuzz::targets::agent_inputs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::agent_inputs::run(data));
