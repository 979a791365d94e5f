//! The `cbank` binary under test, built once per test process with the cargo that runs the tests.
//!
//! Integration tests of another package get no `CARGO_BIN_EXE_cbank`, so this asks cargo to
//! build `--workspace --bin cbank` and reads the executable's path from cargo's JSON messages
//! (which honours `CARGO_TARGET_DIR` and any profile layout). `--workspace` rather than
//! `-p node`: features are then unified over the whole workspace exactly as
//! `cargo test --workspace` unifies them, so the binary reuses the dependencies that command
//! already compiled instead of building hyper, tower, tonic and axum a second time with other
//! features. Set `CBANK_TEST_BINARY` to test an already built binary instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of a freshly built `cbank` binary. The first call builds it (the others wait for
/// that build); panics with cargo's output if the build fails.
pub fn cbank_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build)
}

fn build() -> PathBuf {
    if let Some(path) = std::env::var_os("CBANK_TEST_BINARY") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CBANK_TEST_BINARY={} is not a file",
            path.display()
        );
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // This crate lives at <workspace>/tests.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace root");
    let output = Command::new(&cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--workspace",
            "--bin",
            "cbank",
            "--message-format=json-render-diagnostics",
        ])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {cargo:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "`cargo build --workspace --bin cbank` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let executable = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "cbank"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from));
    executable
        .unwrap_or_else(|| panic!("cargo built no `cbank` executable; its messages:\n{stdout}"))
}

/// The JSON object a `cbank` command printed on the last line of `stdout` (`--json`); panics,
/// showing both outputs, if there is none.
pub fn last_line_json(stdout: &str, stderr: &str) -> serde_json::Value {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|error| {
        panic!("the last line is not JSON ({error}):\n{stdout}\n--- stderr ---\n{stderr}")
    })
}
