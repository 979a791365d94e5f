//! A real cluster for the cluster benches: three `cbank node` processes of this very binary on
//! loopback, each with its own data directory on disk (every write fsync'd by a quorum, as in
//! production), started and formed exactly as `cbank dev` does it (`cli/dev.rs`: the same
//! layout, spawn, health and leader waits, and `form_cluster`).
//!
//! The bench owns the processes: it can kill one (SIGKILL), wipe its data, start it again, and
//! read each node's peak resident memory (`VmHWM` in `/proc/<pid>/status`). Every node is killed
//! when the cluster is dropped, and its folder is removed unless the caller asked to keep it.

use super::apply::proc_status_kib;
use super::http::Http;
use super::world::{key_of, Step, World};
use crate::cli::client::NodeClient;
use crate::cli::commands::{outcome_failures, sign_and_submit};
use crate::cli::dev::{self, NodeLayout};
use crate::cli::keys::KeyFile;
use anyhow::{bail, Context};
use ledger::testing::OPERATOR;
use ledger::{Command, PartyId};
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where base ports are looked for: below Linux's ephemeral range (32768 on), above the ports
/// `cbank dev` uses by default.
const BASE_PORT_FIRST: u16 = 21_000;
const BASE_PORT_LAST: u16 = 31_000;

/// How long a killed node may take to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(10);

/// How often a starting or catching-up node is polled.
const POLL: Duration = Duration::from_millis(20);

/// How long the cluster may take to agree on one journal head after a run.
pub(crate) const CONVERGE_WAIT: Duration = Duration::from_secs(120);

/// How a cluster is started.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClusterOptions {
    /// The folder for the nodes' data (default: a new folder under the system's temporary
    /// folder, removed at the end).
    pub(crate) data: Option<PathBuf>,
    /// Keep the data folder at the end.
    pub(crate) keep: bool,
    /// Extra environment of each node, by node position (0 is node 1).
    pub(crate) node_env: Vec<Vec<(String, String)>>,
}

/// `GET /v1/cluster`, the parts the benches read.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ClusterView {
    /// The leader this node knows of, if any.
    pub(crate) leader_id: Option<u64>,
    pub(crate) journal_head: ledger::Head,
}

/// Three running nodes forming one cluster.
pub(crate) struct BenchCluster {
    pub(crate) dir: PathBuf,
    remove_at_end: bool,
    program: PathBuf,
    pub(crate) nodes: Vec<NodeLayout>,
    children: Vec<Option<tokio::process::Child>>,
    node_env: Vec<Vec<(String, String)>>,
    pub(crate) http: Http,
}

/// The first base port whose six ports (`base+1..=3`, `base+11..=13`) are free now.
fn free_base_port() -> anyhow::Result<u16> {
    let span = (BASE_PORT_LAST - BASE_PORT_FIRST) / 20;
    let offset = (std::process::id() % u32::from(span)) as u16;
    for step in 0..span {
        let base = BASE_PORT_FIRST + ((offset + step) % span) * 20;
        let ports = (1..=3).chain(11..=13).map(|delta| base + delta);
        let listeners: Vec<_> = ports
            .map(|port| TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
            .collect();
        if listeners.iter().all(Result::is_ok) {
            return Ok(base);
        }
    }
    bail!("no six free loopback ports in {BASE_PORT_FIRST}..{BASE_PORT_LAST}")
}

/// A new, empty folder for a cluster's data.
fn new_data_dir(label: &str) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "cbank-bench-{label}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

impl BenchCluster {
    /// Starts three nodes and forms the cluster; returns once a leader is known.
    pub(crate) async fn start(
        label: &str,
        options: ClusterOptions,
    ) -> anyhow::Result<BenchCluster> {
        let (dir, remove_at_end) = match &options.data {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                (dir.clone(), false)
            }
            None => (new_data_dir(label)?, !options.keep),
        };
        let nodes = dev::layout(&dir, free_base_port()?)?;
        for node in &nodes {
            std::fs::create_dir_all(&node.data_dir)
                .with_context(|| format!("cannot create {}", node.data_dir.display()))?;
        }
        let program = std::env::current_exe().context("cannot find this program's path")?;
        let mut node_env = options.node_env.clone();
        node_env.resize(nodes.len(), Vec::new());
        let mut cluster = BenchCluster {
            dir,
            remove_at_end,
            program,
            children: nodes.iter().map(|_| None).collect(),
            nodes,
            node_env,
            http: Http::new(),
        };
        for id in cluster.ids() {
            cluster.spawn(id)?;
        }
        dev::wait_for_health(&cluster.nodes).await?;
        dev::form_cluster(&cluster.nodes, "cbank bench").await?;
        dev::wait_for_leader(&cluster.nodes).await?;
        Ok(cluster)
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|node| node.id).collect()
    }

    fn position(&self, id: u64) -> anyhow::Result<usize> {
        self.nodes
            .iter()
            .position(|node| node.id == id)
            .with_context(|| format!("no node {id}"))
    }

    pub(crate) fn node(&self, id: u64) -> anyhow::Result<&NodeLayout> {
        Ok(&self.nodes[self.position(id)?])
    }

    pub(crate) fn url(&self, id: u64) -> anyhow::Result<String> {
        Ok(self.node(id)?.url())
    }

    /// Starts node `id`'s process (it must not be running).
    pub(crate) fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let position = self.position(id)?;
        if self.children[position].is_some() {
            bail!("node {id} is already running");
        }
        let child = dev::spawn_node(
            &self.program,
            &self.nodes[position],
            &self.node_env[position],
        )?;
        self.children[position] = Some(child);
        Ok(())
    }

    /// Kills node `id` with SIGKILL and reaps it.
    pub(crate) async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let position = self.position(id)?;
        if let Some(mut child) = self.children[position].take() {
            // It may have exited already; then kill fails harmlessly and wait reaps it.
            let _ = child.start_kill();
            tokio::time::timeout(REAP_WAIT, child.wait())
                .await
                .with_context(|| format!("node {id} was not reaped after SIGKILL"))?
                .with_context(|| format!("cannot reap node {id}"))?;
        }
        Ok(())
    }

    /// Deletes node `id`'s data (it must be stopped), keeping its log file.
    pub(crate) fn wipe(&self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        if self.children[self.position(id)?].is_some() {
            bail!("stop node {id} before wiping its data");
        }
        for entry in std::fs::read_dir(&node.data_dir)
            .with_context(|| format!("cannot list {}", node.data_dir.display()))?
        {
            let path = entry?.path();
            if path == node.log {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Ok(())
    }

    /// Each node's peak resident memory in bytes (`VmHWM`), `None` for a node not running.
    pub(crate) fn peak_rss_bytes(&self) -> Vec<(u64, Option<u64>)> {
        self.nodes
            .iter()
            .zip(&self.children)
            .map(|(node, child)| {
                let peak = child
                    .as_ref()
                    .and_then(tokio::process::Child::id)
                    .and_then(|pid| proc_status_kib(&format!("/proc/{pid}/status"), "VmHWM:"))
                    .map(|kib| kib * 1024);
                (node.id, peak)
            })
            .collect()
    }

    /// Waits (at most `wait`) until node `id` answers `GET /v1/health`; returns when it did.
    pub(crate) async fn wait_serving(&self, id: u64, wait: Duration) -> anyhow::Result<Instant> {
        let url = format!("{}/v1/health", self.url(id)?);
        let deadline = Instant::now() + wait;
        loop {
            if let Ok((200, _)) = self.http.get(&url).await {
                return Ok(Instant::now());
            }
            if Instant::now() >= deadline {
                bail!(
                    "node {id} did not serve within {} s; see {}",
                    wait.as_secs(),
                    self.node(id)?.log.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first journal index node `id` stores (1 unless it installed a snapshot).
    pub(crate) async fn first_journal_index(&self, id: u64) -> anyhow::Result<u64> {
        let url = format!(
            "{}/v1/journal?from=1&limit=1&consistency=local",
            self.url(id)?
        );
        let (_, body) = self.http.get(&url).await.map_err(anyhow::Error::msg)?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).context("the journal answer is not JSON")?;
        value["first_index"]
            .as_u64()
            .or_else(|| {
                value["first_index"]
                    .as_str()
                    .and_then(|text| text.parse().ok())
            })
            .with_context(|| format!("no first_index in the journal answer: {value}"))
    }

    /// How many snapshots node `id` installed from a leader since it started (`GET /v1/state`).
    pub(crate) async fn snapshots_installed(&self, id: u64) -> anyhow::Result<u64> {
        let url = format!("{}/v1/state", self.url(id)?);
        let state: serde_json::Value = self.http.get_json(&url).await?;
        state["snapshots_installed"]
            .as_u64()
            .with_context(|| format!("no snapshots_installed in the state answer: {state}"))
    }

    /// `GET /v1/cluster` of node `id`.
    pub(crate) async fn view(&self, id: u64) -> anyhow::Result<ClusterView> {
        self.http
            .get_json(&format!("{}/v1/cluster", self.url(id)?))
            .await
    }

    /// The leader's id, waiting (bounded) for one to be known.
    pub(crate) async fn leader(&self) -> anyhow::Result<u64> {
        let running: Vec<NodeLayout> = self
            .nodes
            .iter()
            .zip(&self.children)
            .filter(|(_, child)| child.is_some())
            .map(|(node, _)| node.clone())
            .collect();
        dev::wait_for_leader(&running).await
    }

    /// Waits until every running node has applied the same journal head as the leader, and
    /// returns it.
    pub(crate) async fn converge(&self) -> anyhow::Result<ledger::Head> {
        let deadline = Instant::now() + CONVERGE_WAIT;
        loop {
            let leader = self.leader().await?;
            let target = self.view(leader).await?.journal_head;
            let mut behind = Vec::new();
            for (node, child) in self.nodes.iter().zip(&self.children) {
                if child.is_none() {
                    continue;
                }
                match self.view(node.id).await {
                    Ok(view) if view.journal_head == target => {}
                    Ok(view) => behind.push(format!(
                        "node {} at {} (leader {leader} at {})",
                        node.id, view.journal_head.index, target.index
                    )),
                    Err(error) => behind.push(format!("node {}: {error}", node.id)),
                }
            }
            if behind.is_empty() {
                return Ok(target);
            }
            if Instant::now() >= deadline {
                bail!(
                    "the nodes did not converge within {} s: {}",
                    CONVERGE_WAIT.as_secs(),
                    behind.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Builds `world` through node `id` (genesis first), one signed command at a time.
    pub(crate) async fn build_world(&self, world: &World) -> anyhow::Result<()> {
        let client = NodeClient::new(&self.url(self.leader().await?)?)?;
        let key_file = |party: &str| KeyFile {
            party: PartyId::new(party),
            key: key_of(party),
        };
        let operator = key_file(OPERATOR);
        submit_checked(&client, &operator, World::genesis()).await?;
        for step in world.steps() {
            match step {
                Step::Register { party, role } => {
                    let command = Command::RegisterParty {
                        party: PartyId::new(&party),
                        role,
                        keys: vec![key_of(&party).public_key()],
                    };
                    submit_checked(&client, &operator, command).await?;
                }
                Step::Command { signer, command } => {
                    submit_checked(&client, &key_file(&signer), *command).await?;
                }
            }
        }
        Ok(())
    }

    /// Kills every node, reaps them, and removes the data folder unless it is kept.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.kill(id).await?;
        }
        self.remove_folder();
        Ok(())
    }

    fn remove_folder(&mut self) {
        if self.remove_at_end {
            self.remove_at_end = false;
            if let Err(error) = std::fs::remove_dir_all(&self.dir) {
                eprintln!("cbank bench: cannot remove {}: {error}", self.dir.display());
            }
        }
    }

    /// The data folder of node `id`.
    pub(crate) fn data_dir(&self, id: u64) -> anyhow::Result<&Path> {
        Ok(&self.node(id)?.data_dir)
    }
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        // On an error path: kill every node (SIGKILL) and give each a moment to be reaped
        // before its folder goes.
        for child in self.children.iter_mut().flatten() {
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.remove_folder();
    }
}

/// Signs and submits one setup command; an error unless it and all its events applied.
async fn submit_checked(
    client: &NodeClient,
    signer: &KeyFile,
    command: Command,
) -> anyhow::Result<()> {
    let name = command.name();
    let response = sign_and_submit(client, signer, command)
        .await
        .with_context(|| format!("setting up the bench world: {name} by {}", signer.party))?;
    let failures = outcome_failures(&response.outcome);
    if !failures.is_empty() {
        bail!(
            "setting up the bench world: {name} by {}: {}",
            signer.party,
            failures.join("; ")
        );
    }
    Ok(())
}

/// Options of every cluster bench's timed run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Seconds of the timed run (default 10; 2 with --smoke; at most 90, since its requests
    /// are all signed before it starts and must not expire).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Seconds of closed-loop warm-up before it (default 2; 0 with --smoke).
    #[arg(long)]
    pub warmup_seconds: Option<u64>,
    /// A folder for the nodes' data (default: a new folder in the system's temporary folder,
    /// removed at the end).
    #[arg(long = "data", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Keep the nodes' data folder at the end.
    #[arg(long)]
    pub keep: bool,
}

impl RunArgs {
    /// The timed run's and the warm-up's durations.
    pub(crate) fn durations(&self, smoke: bool) -> anyhow::Result<(Duration, Duration)> {
        let seconds = self.seconds.unwrap_or(if smoke { 2 } else { 10 });
        let warm_up = self.warmup_seconds.unwrap_or(if smoke { 0 } else { 2 });
        if seconds == 0 || seconds > super::load::RUN_SECONDS_MAX {
            bail!(
                "--seconds must be 1 to {}: a run's requests are signed before it starts",
                super::load::RUN_SECONDS_MAX
            );
        }
        if warm_up > super::load::RUN_SECONDS_MAX {
            bail!(
                "--warmup-seconds must be at most {}",
                super::load::RUN_SECONDS_MAX
            );
        }
        Ok((Duration::from_secs(seconds), Duration::from_secs(warm_up)))
    }

    pub(crate) fn cluster_options(&self) -> ClusterOptions {
        ClusterOptions {
            data: self.data.clone(),
            keep: self.keep,
            node_env: Vec::new(),
        }
    }
}

/// Adds each node's peak RSS to a report: a line, `rss_node<i>_bytes` fields and
/// `rss_max_bytes`.
pub(crate) fn report_rss(
    report: &mut super::report::Report,
    under_load: &[(u64, Option<u64>)],
    cluster: &BenchCluster,
) {
    let peaks_line = |peaks: &[(u64, Option<u64>)]| {
        peaks
            .iter()
            .map(|(id, peak)| match peak {
                Some(bytes) => format!("node {id} {} MiB", bytes / (1024 * 1024)),
                None => format!("node {id} (not running)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut max = 0;
    for (id, peak) in under_load {
        if let Some(bytes) = peak {
            report.field(&format!("rss_node{id}_bytes"), *bytes);
            max = max.max(*bytes);
        }
    }
    let with_check = cluster.peak_rss_bytes();
    let check_max = with_check
        .iter()
        .filter_map(|(_, peak)| *peak)
        .max()
        .unwrap_or(0);
    report
        .line(format!("  peak RSS           {}", peaks_line(under_load)))
        .line(format!(
            "  peak RSS w/ check  {} (the check reads the journal and hashes the state)",
            peaks_line(&with_check)
        ))
        .field("rss_max_bytes", max)
        .field("rss_with_check_max_bytes", check_max);
}
