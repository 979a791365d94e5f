//! Replays every committed fuzz input through its target: the corpus the fuzzer grew
//! (`fuzz/corpus/<target>/`), every crash it found (`fuzz/regressions/<target>/`, kept as
//! regression tests after the fix), and the seeds made from real commands. This is how CI runs
//! the fuzz targets without a fuzzer (`spec/fuzzing.md`).

use std::path::{Path, PathBuf};
use std::time::Instant;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` over one folder; panics naming the file whose input fails.
fn replay(target: &fuzz::Target, dir: &Path) -> usize {
    let files = inputs(dir);
    for file in &files {
        let bytes = std::fs::read(file).expect("a readable input");
        let run = target.run;
        if let Err(panic) = std::panic::catch_unwind(|| run(&bytes)) {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("{}: {} fails: {why}", target.name, file.display());
        }
    }
    files.len()
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in fuzz::TARGETS {
        let started = Instant::now();
        let corpus = replay(target, &root.join("corpus").join(target.name));
        let regressions = replay(target, &root.join("regressions").join(target.name));
        assert!(
            corpus > 0,
            "{}: fuzz/corpus/{} is empty (run `cargo run -p fuzz --example seeds`)",
            target.name,
            target.name
        );
        println!(
            "{}: {corpus} corpus and {regressions} regression inputs in {:.1} s",
            target.name,
            started.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn every_seed_passes_its_target() {
    for target in fuzz::TARGETS {
        let seeds = fuzz::seeds::seeds(target.name);
        assert!(!seeds.is_empty(), "{} has seeds", target.name);
        for (name, bytes) in seeds {
            (target.run)(&bytes);
            assert!(!name.is_empty());
        }
    }
}

#[test]
fn every_target_has_a_libfuzzer_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("libfuzzer");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("libfuzzer/Cargo.toml");
    for target in fuzz::TARGETS {
        let source = root
            .join("fuzz_targets")
            .join(format!("{}.rs", target.name));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|_| panic!("{} is missing", source.display()));
        assert!(
            text.contains(&format!("targets::{}::run", target.name)),
            "{} does not call its target",
            source.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "libfuzzer/Cargo.toml has no [[bin]] {}",
            target.name
        );
    }
}

/// The scenario seeds reach deep into the ledger: most of their commands are accepted.
#[test]
fn the_scenario_seeds_are_mostly_accepted() {
    let fixture = fuzz::fixture::fixture();
    let mut accepted = 0;
    let mut total = 0;
    for (name, steps) in fuzz::seeds::scenarios() {
        let mut ledger = fixture.ledger.clone();
        let mut now_ns = fixture.now_ns;
        for (position, step) in steps.into_iter().enumerate() {
            now_ns += 1_000_000 + u64::from(step.pause_s) * 1_000_000_000;
            let (party, key) = fuzz::fixture::signer(usize::from(step.signer));
            let signed = key.sign(
                ledger::PartyId::new(party),
                (1u128 << 64) + position as u128,
                now_ns + 60_000_000_000,
                step.command,
            );
            let entry = ledger.apply(&signed, now_ns);
            let outcome = &entry.body.outcome;
            total += 1;
            if outcome.rejected().is_none() && outcome.event_results().is_empty() {
                accepted += 1;
            } else {
                println!("{name} step {position}: {outcome:?}");
            }
        }
    }
    assert!(
        accepted * 4 >= total * 3,
        "only {accepted} of {total} scenario commands were accepted"
    );
}

/// What libFuzzer's `-max_len` keeps it from trying: inputs over the size limits, and nesting
/// deep enough to overflow a recursive parser's stack. Each is a clean refusal.
#[test]
fn oversized_and_deeply_nested_inputs_are_refused() {
    use ledger::codec::DecodeError;
    let oversized = vec![0u8; ledger::limits::COMMAND_BYTES_MAX + 1];
    assert!(matches!(
        ledger::SignedCommand::from_bytes(&oversized),
        Err(DecodeError::TooLarge { .. })
    ));
    let deep_json = "[".repeat(100_000);
    for body in node::server::inputs::BODIES {
        let error = node::server::inputs::parse_body(body, deep_json.as_bytes())
            .expect_err("100,000 nested arrays are not a body");
        assert_eq!(error.code, "malformed_json", "{body:?}");
    }
    let deep_object = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    assert!(node::server::inputs::parse_body(
        node::server::inputs::Body::Command,
        deep_object.as_bytes()
    )
    .is_err());
    // The same depths through every target's own entry point.
    for target in fuzz::TARGETS {
        for selector in 0..9u8 {
            for text in [&deep_json, &format!("a = {deep_json}"), &deep_object] {
                let mut input = vec![selector];
                input.extend_from_slice(text.as_bytes());
                (target.run)(&input);
            }
        }
    }
}
