//! Test area `bench`: every `cbank bench` in its `--smoke` mode, run as a person runs it (the
//! `cbank` binary, `--json`), so CI proves each bench starts what it needs, runs, and finds its
//! own result correct: counts match, balances are conserved, the replicas and the order books
//! agree. Speed is not checked here (a debug build on a shared 2-core machine says nothing
//! about it); `tests/bench/README.md` has the real figures and how to get them.
//!
//! The benches run one at a time (each cluster bench starts three nodes), and each one must
//! finish within `BENCH_TIMEOUT`.
//!
//! Run with `cargo test --workspace --test bench`.

mod t10_single_thread_benches;
mod t20_cluster_benches;
mod t30_recovery;
mod t40_soak;

use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest one smoke bench may take in a debug build.
const BENCH_TIMEOUT: Duration = Duration::from_secs(120);

/// One bench at a time in this test process.
static SERIAL: Mutex<()> = Mutex::new(());

/// What a bench run printed and how it ended.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The JSON object on the last line of stdout (panics, showing the output, if there is none).
    pub fn json(&self) -> Value {
        tests::last_line_json(&self.stdout, &self.stderr)
    }
}

/// Runs `cbank bench <args>` to the end (killed after `BENCH_TIMEOUT`).
pub fn bench(args: &[&str]) -> Run {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // Found (built, the first time) before the clock starts: a build is not the bench's time.
    let binary = tests::cbank_binary();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cbank bench");
    let mut stdout_pipe = child.stdout.take().expect("stdout is piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cbank bench") {
            break status;
        }
        if started.elapsed() > BENCH_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cbank bench {args:?} ran past {} s",
                BENCH_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        success: status.success(),
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    };
    eprintln!(
        "cbank bench {} took {:.1} s",
        args.join(" "),
        run.elapsed.as_secs_f64()
    );
    run
}

/// Runs a bench that must succeed and returns its JSON, after checking the fields every bench
/// prints.
pub fn bench_json(args: &[&str]) -> Value {
    let run = bench(args);
    assert!(
        run.success,
        "cbank bench {args:?} failed:\n{}\n--- stderr ---\n{}",
        run.stdout, run.stderr
    );
    let json = run.json();
    for field in ["ops_per_s", "p50_ms", "p99_ms", "p999_ms"] {
        assert!(
            json[field].as_f64().is_some(),
            "{field} missing from {json}"
        );
    }
    assert!(json["ops_per_s"].as_f64() > Some(0.0), "{json}");
    assert!(json["p50_ms"].as_f64() <= json["p99_ms"].as_f64(), "{json}");
    assert!(
        json["p99_ms"].as_f64() <= json["p999_ms"].as_f64(),
        "{json}"
    );
    json
}

/// Checks that a cluster bench reported each node's peak RSS.
pub fn assert_rss_reported(json: &Value) {
    for node in 1..=3 {
        let field = format!("rss_node{node}_bytes");
        assert!(
            json[&field].as_u64() > Some(1024 * 1024),
            "{field} missing or too small in {json}"
        );
    }
}
