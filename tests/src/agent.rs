//! One `cbank agent` as a real child process: its config file, its agent key file, its state
//! folder and the JSON lines it prints.
//!
//! [`AgentProcess::new`] writes the agent key (the `cbank keys new` JSON format) and a TOML
//! config built from [`AgentSettings`] into a temporary folder; [`AgentProcess::spawn`] starts
//! `cbank agent --config FILE`. Each start's stdout (the event lines of `spec/agent.md` §7) goes
//! to its own file, so a test can tell what each incarnation said; stderr of every start is
//! appended to one log. [`AgentProcess::wait_event`] polls those files (bounded). The agent keeps
//! its config, key and state folder across [`AgentProcess::kill9`] and a new spawn, exactly as a
//! restarted agent on the same host would.
//!
//! The process is killed (SIGKILL) when this value drops; if the test is panicking, the tail of
//! the agent's events and log is printed first. Hooks the agent started run in their own process
//! group and are not killed with it (the agent never stops them either): tests give them short
//! lives. This module never talks to a node.

use crate::binary::cbank_binary;
use crate::wait::wait_for;
use ledger::SigningKey;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Lines of the agent's events and log printed when a test fails.
const TAIL_LINES: usize = 40;

/// How long a stopped agent (SIGTERM) may take to print `stopped` and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One scripted fault of a simulated GPU source: GPU `gpu` (its position, from 0) is down
/// during `[from_s, to_s)` seconds after the start of every offer window (`spec/agent.md` §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimDown {
    pub gpu: u32,
    pub from_s: u64,
    pub to_s: u64,
}

/// What goes into the agent's config file (`spec/agent.md` §2). Paths are chosen by
/// [`AgentProcess`]: the key file and the state folder live beside the config.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    /// Node URLs, `http://HOST:PORT`.
    pub nodes: Vec<String>,
    /// The institution that owns the host (and the party named in the key file).
    pub party: String,
    pub host_id: String,
    /// `sim:<N>x<CLASS>` in tests.
    pub gpu_source: String,
    pub meter_interval_s: u64,
    pub sample_interval_s: u64,
    pub allocation_poll_s: u64,
    pub offer_window_s: u64,
    /// The hook's argv; empty for none.
    pub hook: Vec<String>,
    pub hook_stop_grace_s: u64,
    pub sim_down: Vec<SimDown>,
}

impl AgentSettings {
    /// The config file's text. Strings are written as JSON strings, which are valid TOML basic
    /// strings (the escapes `serde_json` writes are TOML escapes too).
    pub fn to_toml(&self, key_file: &Path, state_dir: &Path) -> String {
        let quote = |text: &str| serde_json::to_string(text).expect("a string always serialises");
        let path = |path: &Path| quote(&path.to_string_lossy());
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|item| quote(item)).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut text = String::new();
        text.push_str(&format!("nodes = {}\n", list(&self.nodes)));
        text.push_str(&format!("party = {}\n", quote(&self.party)));
        text.push_str(&format!("agent_key_file = {}\n", path(key_file)));
        text.push_str(&format!("host_id = {}\n", quote(&self.host_id)));
        text.push_str(&format!("gpu_source = {}\n", quote(&self.gpu_source)));
        text.push_str(&format!("state_dir = {}\n", path(state_dir)));
        text.push_str(&format!("meter_interval_s = {}\n", self.meter_interval_s));
        text.push_str(&format!("sample_interval_s = {}\n", self.sample_interval_s));
        text.push_str(&format!("allocation_poll_s = {}\n", self.allocation_poll_s));
        text.push_str(&format!("offer_window_s = {}\n", self.offer_window_s));
        if !self.hook.is_empty() {
            text.push_str(&format!("hook = {}\n", list(&self.hook)));
        }
        text.push_str(&format!("hook_stop_grace_s = {}\n", self.hook_stop_grace_s));
        for fault in &self.sim_down {
            text.push_str(&format!(
                "\n[[sim_down]]\ngpu = {}\nfrom_s = {}\nto_s = {}\n",
                fault.gpu, fault.from_s, fault.to_s
            ));
        }
        text
    }
}

/// One event line of the agent's stdout, with the start (1, 2, …) that printed it.
#[derive(Clone, Debug)]
pub struct AgentEvent {
    pub start: u32,
    /// `event`: `started`, `offer_sent`, `report_sent`, …
    pub event: String,
    /// The whole line.
    pub line: serde_json::Value,
}

impl AgentEvent {
    /// A field that the agent writes as a decimal string (`_ns` values and ids), parsed.
    pub fn decimal(&self, field: &str) -> u128 {
        self.line[field]
            .as_str()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("{field} of {} is not a decimal string", self.line))
    }

    /// A field that the agent writes as a JSON number (GPU-second counts).
    pub fn number(&self, field: &str) -> u64 {
        self.line[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} of {} is not a number", self.line))
    }
}

/// A `cbank agent` with its files; the process comes and goes.
pub struct AgentProcess {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    state_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl AgentProcess {
    /// Writes `key` as `settings.party`'s key file and the config; does not start the agent.
    pub fn new(settings: &AgentSettings, key: &SigningKey) -> AgentProcess {
        let dir = tempfile::Builder::new()
            .prefix("cbank-agent-")
            .tempdir()
            .expect("create a temporary directory");
        let key_path = dir.path().join("agent-key.json");
        let state_dir = dir.path().join("state");
        let config_path = dir.path().join("agent.toml");
        write_key_file(&key_path, &settings.party, key);
        fs::write(&config_path, settings.to_toml(&key_path, &state_dir))
            .unwrap_or_else(|error| panic!("write {}: {error}", config_path.display()));
        AgentProcess {
            log_path: dir.path().join("agent.log"),
            dir,
            config_path,
            state_dir,
            child: None,
            starts: 0,
        }
    }

    /// The agent's state folder (`state_dir`): `agent-state.json` and `hooks/`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// A folder beside the agent's files where a test may let its hook write.
    pub fn scratch_dir(&self) -> PathBuf {
        let path = self.dir.path().join("scratch");
        fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
        path
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Starts `cbank agent --config FILE`. Panics if it is already running.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the agent is already running");
        self.starts += 1;
        let stdout = fs::File::create(self.stdout_path(self.starts))
            .unwrap_or_else(|error| panic!("create the agent's stdout file: {error}"));
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|error| panic!("open {}: {error}", self.log_path.display()));
        writeln!(
            log,
            "==== test harness: start #{} of the agent ====",
            self.starts
        )
        .expect("write the log marker");
        let mut command = Command::new(cbank_binary());
        command
            .arg("agent")
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(log));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn the agent: {error}"));
        self.child = Some(child);
    }

    /// The exit status if the process has ended on its own; `None` while it runs or when it
    /// is not started.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child
            .try_wait()
            .unwrap_or_else(|error| panic!("wait for the agent: {error}"))
    }

    /// SIGKILL (no shutdown code runs, like `kill -9`) and reap. A no-op when not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // It may have exited already; kill then fails harmlessly and wait reaps it.
            let _ = child.kill();
            child
                .wait()
                .unwrap_or_else(|error| panic!("reap the agent: {error}"));
        }
    }

    /// SIGTERM, then waits (bounded) for the process to exit and returns its status.
    pub fn terminate(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("the agent is running");
        // The shell's `kill` sends SIGTERM without a libc binding in this crate (and `sh` is
        // there wherever the agent can run its hooks).
        let sent = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &child.id().to_string()])
            .status()
            .unwrap_or_else(|error| panic!("run kill -TERM: {error}"));
        assert!(sent.success(), "kill -TERM {} failed: {sent}", child.id());
        let status = wait_for("the agent to exit after SIGTERM", STOP_TIMEOUT, || {
            self.exit_status().ok_or_else(|| "still running".to_owned())
        });
        self.child = None;
        status
    }

    /// Every event printed so far, start by start, in the order printed. A line that is not a
    /// JSON object with `ts_ns` and `event` fails the test: stdout carries only event lines.
    pub fn events(&self) -> Vec<AgentEvent> {
        let mut events = Vec::new();
        for start in 1..=self.starts {
            let path = self.stdout_path(start);
            let text = fs::read_to_string(&path).unwrap_or_default();
            // Only whole lines: the last one may be half written.
            let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
            for line in complete.lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|error| {
                    panic!("agent stdout line is not JSON ({error}): {line}")
                });
                let event = value["event"].as_str().map(str::to_owned);
                let stamped = value["ts_ns"]
                    .as_str()
                    .is_some_and(|ts| ts.parse::<u64>().is_ok());
                match event {
                    Some(event) if stamped => events.push(AgentEvent {
                        start,
                        event,
                        line: value,
                    }),
                    _ => panic!("agent stdout line lacks `event` or a decimal `ts_ns`: {line}"),
                }
            }
        }
        events
    }

    /// The events named `event`, in order.
    pub fn events_named(&self, event: &str) -> Vec<AgentEvent> {
        self.events()
            .into_iter()
            .filter(|line| line.event == event)
            .collect()
    }

    /// Waits (bounded) for the first event named `event` that `matches`, among everything
    /// printed so far and what comes next. Panics at once if the agent exits meanwhile.
    pub fn wait_event(
        &mut self,
        event: &str,
        timeout: Duration,
        matches: impl Fn(&AgentEvent) -> bool,
    ) -> AgentEvent {
        wait_for(&format!("agent event `{event}`"), timeout, || {
            let found = self
                .events()
                .into_iter()
                .find(|line| line.event == event && matches(line));
            if let Some(found) = found {
                return Ok(found);
            }
            if let Some(status) = self.exit_status() {
                panic!(
                    "the agent exited ({status}) while a test waited for `{event}`; its log:\n{}",
                    self.log_tail(TAIL_LINES)
                );
            }
            let last = self.events().last().map(|line| line.line.to_string());
            Err(format!("last event: {last:?}"))
        })
    }

    /// The last `lines` lines of the agent's stderr log (every start's, appended).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(
            &fs::read_to_string(&self.log_path).unwrap_or_default(),
            lines,
        )
    }

    /// Prints the tail of the agent's events and log to stderr.
    pub fn dump(&self) {
        let mut events = String::new();
        for start in 1..=self.starts {
            let text = fs::read_to_string(self.stdout_path(start)).unwrap_or_default();
            events.push_str(&format!(
                "-- start #{start} --\n{}\n",
                tail(&text, TAIL_LINES)
            ));
        }
        eprintln!(
            "----- agent events ({}) -----\n{events}----- agent log, last {TAIL_LINES} lines -----\n{}",
            self.dir.path().display(),
            self.log_tail(TAIL_LINES)
        );
    }

    fn stdout_path(&self, start: u32) -> PathBuf {
        self.dir.path().join(format!("events-{start}.jsonl"))
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            self.dump();
            if std::env::var_os("CBANK_TEST_KEEP_DATA").is_some() {
                self.dir.disable_cleanup(true);
            }
        }
    }
}

/// Writes `key` for `party` as `cbank keys new` does (`node/src/cli/keys.rs`): JSON with the
/// party, the public key and the 32-byte seed as lowercase hex, mode 0600.
fn write_key_file(path: &Path, party: &str, key: &SigningKey) {
    let hex: String = key
        .seed()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let json = serde_json::json!({
        "party": party,
        "public_key": key.public_key().to_string(),
        "secret_key": hex,
    });
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
    writeln!(file, "{json}").unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
