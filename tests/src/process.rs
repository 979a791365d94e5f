//! One node as a real child process: `cbank node start`, its data directory and its log file.
//!
//! The node keeps its id, ports and paths for the whole test; only the process comes and goes.
//! Its stdout and stderr go to a log file outside the data directory, so a wipe keeps the log
//! and a failing test can print what every incarnation of the node said. The process is killed
//! (SIGKILL) when this value drops, so no test, passing or panicking, leaves a node behind.

use crate::binary::cbank_binary;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// Lines of a node's log printed when a test fails.
pub const LOG_TAIL_LINES: usize = 60;

/// One node: where it lives and, while it runs, its process.
pub struct NodeProcess {
    pub id: u64,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub raft_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Extra `cbank node start` arguments (tuning knobs a test asks for).
    pub extra_args: Vec<String>,
    /// Extra environment variables for the process (e.g. `CBANK_SNAPSHOT_LOGS`).
    pub extra_env: Vec<(String, String)>,
    /// A command prefix the node runs under (`ip netns exec <ns>`, see `netns.rs`); empty to
    /// run it directly.
    pub launcher: Vec<String>,
    child: Option<Child>,
    /// How many times the process was started: numbers the log's start markers.
    starts: u32,
}

impl NodeProcess {
    pub fn new(
        id: u64,
        root: &Path,
        raft_addr: SocketAddr,
        http_addr: SocketAddr,
        extra_args: Vec<String>,
    ) -> NodeProcess {
        NodeProcess {
            id,
            data_dir: root.join(format!("node-{id}")),
            log_path: root.join(format!("node-{id}.log")),
            raft_addr,
            http_addr,
            extra_args,
            extra_env: Vec::new(),
            launcher: Vec::new(),
            child: None,
            starts: 0,
        }
    }

    /// The node's HTTP base URL, e.g. `http://127.0.0.1:20001`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Starts the process. Panics if it is already running or cannot be spawned.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|error| panic!("open {}: {error}", self.log_path.display()));
        writeln!(
            log,
            "==== test harness: start #{} of node {} ====",
            self.starts, self.id
        )
        .expect("write the log marker");
        let stderr = log.try_clone().expect("clone the log file handle");
        let mut command = match self.launcher.split_first() {
            None => Command::new(cbank_binary()),
            // `ip netns exec` execs the program, so the child is the node itself.
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(cbank_binary());
                command
            }
        };
        command
            .args(["node", "start", "--id", &self.id.to_string()])
            .arg("--data")
            .arg(&self.data_dir)
            .args([
                "--raft-addr",
                &self.raft_addr.to_string(),
                "--http-addr",
                &self.http_addr.to_string(),
            ])
            .arg("--enable-fault-admin")
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn node {}: {error}", self.id));
        self.child = Some(child);
    }

    /// Whether the process is running (it has not exited and was not killed).
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none() && self.child.is_some()
    }

    /// The exit status if the process has ended on its own; `None` while it runs or when it
    /// was never started.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child
            .try_wait()
            .unwrap_or_else(|error| panic!("wait for node {}: {error}", self.id))
    }

    /// Kills the process with SIGKILL (`Child::kill` sends SIGKILL on Unix: no shutdown hook
    /// runs, exactly like `kill -9`) and reaps it. A no-op when it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // It may have exited already; kill then fails harmlessly and wait reaps it.
            let _ = child.kill();
            child
                .wait()
                .unwrap_or_else(|error| panic!("reap node {}: {error}", self.id));
        }
    }

    /// Deletes the data directory (the process must be stopped).
    pub fn wipe_data(&mut self) {
        assert!(
            self.child.is_none(),
            "stop node {} before wiping its data",
            self.id
        );
        match fs::remove_dir_all(&self.data_dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => panic!("wipe {}: {error}", self.data_dir.display()),
        }
    }

    /// The admin token the node wrote at start-up (`<data dir>/admin.token`), if it is there.
    pub fn admin_token(&self) -> Option<String> {
        let token = fs::read_to_string(self.data_dir.join("admin.token")).ok()?;
        let token = token.trim();
        (!token.is_empty()).then(|| token.to_owned())
    }

    /// The last `lines` lines of the node's log (every incarnation's output, appended).
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(mut file) = File::open(&self.log_path) else {
            return format!("(no log at {})", self.log_path.display());
        };
        let mut text = String::new();
        if let Err(error) = std::io::Read::read_to_string(&mut file, &mut text) {
            return format!("(cannot read {}: {error})", self.log_path.display());
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
