//! The tidy test: architecture and style rules that `cargo test` enforces.
//!
//! - The pure core (`ledger`, `market`) never depends, even transitively, on anything that
//!   does I/O, reads a clock or draws randomness, and its sources name no such API.
//! - Workspace crates depend on each other only along the edges `ARCHITECTURE.md` allows.
//! - Every Rust module opens with a `//!` doc.
//! - No test is skipped or expects a panic in place of a result.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// `cargo metadata` for the workspace, with the resolved dependency graph.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Crates that do I/O, run an async runtime, read clocks or draw randomness.
const FORBIDDEN_IN_CORE: &[&str] = &[
    "tokio",
    "mio",
    "async-std",
    "smol",
    "futures",
    "openraft",
    "tonic",
    "prost",
    "hyper",
    "axum",
    "tower",
    "reqwest",
    "sled",
    "rocksdb",
    "rand",
    "rand_core",
    "getrandom",
    "chrono",
    "time",
    "socket2",
    "libc",
    "nix",
];

/// Names in the core's sources that would mean I/O, clocks, threads, randomness or
/// nondeterministic iteration.
const FORBIDDEN_IN_CORE_SOURCE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::time",
    "SystemTime",
    "Instant",
    "std::thread",
    "std::process",
    "std::env",
    "HashMap",
    "HashSet",
    "thread_rng",
    "OsRng",
];

/// The workspace edges `ARCHITECTURE.md` allows (normal and build dependencies).
fn allowed_edges() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    BTreeMap::from([
        ("market", BTreeSet::new()),
        ("ledger", BTreeSet::from(["market"])),
        ("proto", BTreeSet::new()),
        ("node", BTreeSet::from(["ledger", "market", "proto"])),
        (
            "tests",
            BTreeSet::from(["ledger", "market", "proto", "node"]),
        ),
        (
            "fuzz",
            BTreeSet::from(["ledger", "market", "proto", "node"]),
        ),
    ])
}

/// Package names in `cargo tree -p <package> -e normal`: what the package really links, with the
/// features resolved as a build of it resolves them. (`cargo metadata`'s resolve graph unifies
/// optional dependencies across the whole workspace and reports edges a build never makes.)
fn normal_tree(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Failures as text, one per line, so one run shows every problem.
fn core_dependency_violations(trees: &BTreeMap<&str, BTreeSet<String>>) -> Vec<String> {
    let mut failures = Vec::new();
    for (core, names) in trees {
        for name in names {
            if FORBIDDEN_IN_CORE.contains(&name.as_str()) {
                failures.push(format!("{core} depends (perhaps transitively) on {name}, which does I/O, clocks or randomness"));
            }
        }
    }
    failures
}

#[test]
fn the_core_depends_on_nothing_that_does_io() {
    let trees: BTreeMap<&str, BTreeSet<String>> = ["ledger", "market"]
        .into_iter()
        .map(|core| (core, normal_tree(core)))
        .collect();
    assert!(
        trees["ledger"].contains("ed25519-dalek"),
        "the tree walk found ledger's dependencies: {:?}",
        trees["ledger"]
    );
    let failures = core_dependency_violations(&trees);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_checker_catches_a_forbidden_dependency() {
    // The same check over a tree where ledger depends on tokio must fail: the test can fail.
    let trees = BTreeMap::from([(
        "ledger",
        BTreeSet::from(["serde".to_owned(), "tokio".to_owned()]),
    )]);
    assert_eq!(core_dependency_violations(&trees).len(), 1);
}

#[test]
fn workspace_edges_follow_the_architecture() {
    let metadata = metadata();
    let allowed = allowed_edges();
    let mut failures = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name");
        let Some(allowed_for) = allowed.get(name) else {
            continue;
        };
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let dep_name = dep["name"].as_str().expect("name");
            let is_dev = dep["kind"].as_str() == Some("dev");
            if allowed.contains_key(dep_name) && !is_dev && !allowed_for.contains(dep_name) {
                failures.push(format!(
                    "{name} -> {dep_name} is not an edge ARCHITECTURE.md allows"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "node_modules")
            {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source text without `//` comments, so a comment that names a forbidden API (to say it is
/// forbidden) is not a violation.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_core_sources_name_no_io_clock_or_randomness() {
    let root = workspace_root();
    let mut failures = Vec::new();
    for core in ["ledger/src", "market/src"] {
        let mut files = Vec::new();
        rust_files(&root.join(core), &mut files);
        assert!(!files.is_empty(), "{core} has sources");
        for file in files {
            let code = code_only(&std::fs::read_to_string(&file).expect("readable source"));
            for name in FORBIDDEN_IN_CORE_SOURCE {
                if code.contains(name) {
                    failures.push(format!("{} uses {name}", file.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let root = workspace_root();
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in ["ledger", "market", "node", "proto", "tests", "fuzz"] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for file in files {
            count += 1;
            let text = std::fs::read_to_string(&file).expect("readable source");
            if !text.trim_start().starts_with("//!") {
                failures.push(format!("{} does not open with a //! doc", file.display()));
            }
        }
    }
    assert!(
        count > 20,
        "found only {count} Rust files: the walk is broken"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_test_is_skipped_or_expects_a_panic() {
    // Built from pieces so this file does not match itself.
    let patterns = [format!("#[{}", "ignore"), format!("#[{}", "should_panic")];
    let root = workspace_root();
    let mut failures = Vec::new();
    for dir in ["ledger", "market", "node", "proto", "tests", "fuzz"] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable source");
            for pattern in &patterns {
                if text.contains(pattern.as_str()) {
                    failures.push(format!("{} contains {pattern}", file.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
