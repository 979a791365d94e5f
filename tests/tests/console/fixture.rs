//! `cbank dev` as a child process, and the browser the flows run in.
//!
//! [`DevCluster::start`] runs `cbank dev --data <temp> --base-port <free>` and waits for its
//! `cluster.json`; dropping it sends SIGINT, as Ctrl-C would, so `cbank dev` stops its nodes in
//! order (they run in their own process group, which a SIGKILL of `cbank dev` would orphan).
//! [`run_flows`] checks that chromium, Node.js and playwright-core are there (running `npm ci`
//! for the last when `node_modules` is missing), runs `tests/console/console.mjs` and returns
//! the screenshots' paths.

use ledger::{Command, PartyId, SigningKey};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};
use tests::{cbank_binary, next_nonce, unix_now_ns, Api, ENVELOPE_LIFETIME_NS};

/// How long `cbank dev` may take to form the cluster and seed the demo world.
const DEV_START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long `cbank dev` may take to stop its nodes after SIGINT.
const DEV_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// `cbank dev` running on loopback.
pub struct DevCluster {
    child: Child,
    dir: tempfile::TempDir,
    pub base_port: u16,
}

impl DevCluster {
    pub fn start() -> DevCluster {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let base_port = free_base_port();
        let log = std::fs::File::create(dir.path().join("dev.log")).expect("the dev log");
        let child = Process::new(cbank_binary())
            .args(["dev", "--data"])
            .arg(dir.path().join("data"))
            .args(["--base-port", &base_port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the dev log"))
            .stderr(log)
            .spawn()
            .expect("cbank dev starts");
        let mut dev = DevCluster {
            child,
            dir,
            base_port,
        };
        let deadline = Instant::now() + DEV_START_TIMEOUT;
        while !dev.data_dir().join("cluster.json").is_file() {
            if let Ok(Some(status)) = dev.child.try_wait() {
                panic!("cbank dev exited ({status}):\n{}", dev.log());
            }
            assert!(
                Instant::now() < deadline,
                "cbank dev did not create its cluster within {DEV_START_TIMEOUT:?}:\n{}",
                dev.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        dev
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir().join("keys")
    }

    /// Node `id`'s base URL (1 to 3).
    pub fn url(&self, id: u16) -> String {
        format!("http://127.0.0.1:{}", self.base_port + id)
    }

    /// Signs `command` with `party`'s key file from `cbank dev` (as the CLI would) and posts it
    /// to `route` on node 1; panics unless the ledger accepts it.
    pub fn submit_as(&self, party: &str, route: &str, command: Command) -> serde_json::Value {
        let path = self.keys_dir().join(format!("{party}.json"));
        let text = std::fs::read_to_string(&path).expect("the key file cbank dev wrote");
        let file: serde_json::Value = serde_json::from_str(&text).expect("a JSON key file");
        let seed_hex = file["secret_key"].as_str().expect("secret_key");
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        let signed = SigningKey::from_seed(seed).sign(
            PartyId::new(party),
            next_nonce(),
            unix_now_ns() + ENVELOPE_LIFETIME_NS,
            command,
        );
        Api::default()
            .post(&format!("{}{route}", self.url(1)), &signed, None)
            .unwrap_or_else(|error| panic!("{party} {route}: {error}"))
    }

    /// `cbank dev`'s output and the last lines of each node's log.
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.path().join("dev.log")).unwrap_or_default();
        for id in 1..=3 {
            let path = self.data_dir().join(format!("node{id}/node.log"));
            let node_log = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = node_log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            text.push_str(&format!(
                "\n--- the last lines of {}:\n{tail}\n",
                path.display()
            ));
        }
        text
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Process::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + DEV_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("cbank dev did not stop within {DEV_STOP_TIMEOUT:?}; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A base port whose six ports (`base+1..=3` HTTP, `base+11..=13` Raft) are free now, from a
/// window chosen by the process id. The range is below the one `tests::free_ports` hands out
/// (20,000 and up) to the other clusters of this process, so the two never pick the same port,
/// and below the kernel's ephemeral range.
fn free_base_port() -> u16 {
    const LOW: u32 = 12_000;
    const HIGH: u32 = 20_000;
    let span = (HIGH - LOW) / 20;
    let start = std::process::id() % span;
    for step in 0..span {
        let base = LOW + ((start + step) % span) * 20;
        let ports: Vec<u16> = [1, 2, 3, 11, 12, 13]
            .iter()
            .map(|offset| u16::try_from(base + offset).expect("below 20,000"))
            .collect();
        let listeners: Vec<_> = ports
            .iter()
            .filter_map(|port| {
                TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, *port)).ok()
            })
            .collect();
        if listeners.len() == ports.len() {
            return u16::try_from(base).expect("below 20,000");
        }
    }
    panic!("no free block of ports for cbank dev between {LOW} and {HIGH}");
}

/// `tests/console`: the browser script and its npm package.
fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("console")
}

/// Where screenshots go: `<target>/console-screenshots`, beside the `cbank` binary's profile
/// folder, so they survive the test's temporary folders.
pub fn screenshot_dir() -> PathBuf {
    let binary = cbank_binary();
    let target = binary
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

/// Fails with what to install when the browser or Node.js is missing; installs the npm
/// package (`npm ci`) when its `node_modules` is.
pub fn check_browser_setup() -> PathBuf {
    let chromium = std::env::var_os("CBANK_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "{} is missing: the console's browser tests need Debian's chromium \
         (`apt-get install -y chromium`, as .ci/run does), or CBANK_CHROMIUM set to a Chromium",
        chromium.display()
    );
    let node = Process::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|output| output.status.success()),
        "`node` is missing: the console's browser tests need Node.js 18 or later and npm"
    );
    let dir = script_dir();
    if !dir.join("node_modules/playwright-core").is_dir() {
        eprintln!("installing playwright-core: npm ci in {}", dir.display());
        let status = Process::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status();
        assert!(
            status.as_ref().is_ok_and(|status| status.success()),
            "`npm ci` in {} failed ({status:?}): the browser tests need playwright-core from \
             the npm registry (run it by hand to see why)",
            dir.display()
        );
    }
    chromium
}

/// Runs the named flows of `console.mjs` against node `node` of `dev`; panics with the
/// script's output if any fails. Returns each flow's screenshot path.
pub fn run_flows(dev: &DevCluster, node: u16, flows: &[&str]) -> Vec<PathBuf> {
    let chromium = check_browser_setup();
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).expect("the screenshot folder");
    for flow in flows {
        let _ = std::fs::remove_file(shots.join(format!("{flow}.png")));
        let _ = std::fs::remove_file(shots.join(format!("{flow}-failed.png")));
    }
    let started = Instant::now();
    let mut child = Process::new("node")
        .arg(script_dir().join("console.mjs"))
        .arg(dev.url(node))
        .arg(dev.keys_dir())
        .arg(&shots)
        .args(flows)
        .env("CBANK_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut output = String::new();
    let mut errors = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut output);
    }
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut errors);
    }
    let status = child.wait().expect("node ends");
    println!("{output}{errors}");
    println!(
        "browser flows took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "the browser flows failed ({status}):\n{output}\n{errors}\ncbank dev's log:\n{}",
        dev.log()
    );
    flows
        .iter()
        .map(|flow| {
            let path = shots.join(format!("{flow}.png"));
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(bytes > 10_000, "{} is missing or empty", path.display());
            path
        })
        .collect()
}
