//! Fuzz targets for every decoder and parser that takes outside input (`spec/fuzzing.md`).
//!
//! A target is a plain function `fn(&[u8])` that feeds the bytes to one parser and checks what
//! must hold of its answer: a malformed input is a clean error, and a value that parses
//! re-encodes to something that parses back to the same value (canonical bytes, JSON, Raft
//! payloads), or is acted on without breaking an invariant (commands applied to a ledger, an
//! audit export verified). A target panics only when such a check fails: that is a bug.
//!
//! The same functions run two ways: `cargo test -p fuzz` replays every committed input in
//! `corpus/<target>/` and `regressions/<target>/` (so CI needs no fuzzer), and the cargo-fuzz
//! project in `libfuzzer/` runs them under libFuzzer, coverage-guided. `seeds.rs` makes the
//! first inputs of each corpus from real commands.
//!
//! Start here: [`TARGETS`].

pub mod fixture;
pub mod seeds;
pub mod targets;

/// One fuzz target: its name (the corpus folder and the libFuzzer binary) and its function.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "command_bytes",
        run: targets::command_bytes::run,
    },
    Target {
        name: "raft_payload",
        run: targets::raft_payload::run,
    },
    Target {
        name: "http_body",
        run: targets::http_body::run,
    },
    Target {
        name: "http_query",
        run: targets::http_query::run,
    },
    Target {
        name: "apply_commands",
        run: targets::apply_commands::run,
    },
    Target {
        name: "audit_export",
        run: targets::audit_export::run,
    },
    Target {
        name: "agent_inputs",
        run: targets::agent_inputs::run,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}

/// Splits a selector byte off the front of a fuzz input: `(selector, rest)`; `None` when empty.
pub fn select(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}
