//! Test area `sim`: the deterministic cluster simulation (`cbank sim`, `spec/simulation.md`),
//! run as a person runs it (the `cbank` binary).
//!
//! - `t10_seeds`: 50 seeds under every kind of fault, every one judged by the history checker;
//!   all must pass, and every kind of fault must have been injected.
//! - `t20_reproducible`: one seed run twice gives the same history digest.
//! - `t30_regressions`: the seeds that found bugs, run again by name.
//!
//! Run with `cargo test --workspace --test sim`.

mod t10_seeds;
mod t20_reproducible;
mod t30_regressions;

use serde_json::Value;
use std::process::{Command, Stdio};

/// What `cbank sim <args>` printed, and whether it succeeded.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON object on the last line of stdout (panics, showing the output, if there is none).
    pub fn json(&self) -> Value {
        tests::last_line_json(&self.stdout, &self.stderr)
    }
}

/// Runs `cbank sim <args>` to the end, its node files under a temporary folder (in
/// `/dev/shm` when there is one: the simulated nodes fsync thousands of times per seed).
pub fn sim(args: &[&str]) -> Run {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary folder");
    let output = Command::new(tests::cbank_binary())
        .arg("sim")
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run cbank sim");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
