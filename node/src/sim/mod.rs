//! `cbank sim`: deterministic simulation of a whole 3-node cluster, judged by a history
//! checker. `spec/simulation.md` describes it; this is the code.
//!
//! One seed is one run, on one thread, under tokio's paused clock (virtual time jumps to the
//! next timer whenever every task waits, so 40 simulated seconds take about a second):
//! 1. Three nodes start empty (`cluster.rs`: the node's own storage, openraft, proposer and
//!    HTTP router; simulated network; real files whose unsynced writes a crash loses).
//! 2. The clients build the world, then run transfers, orders, voucher purchases and
//!    linearizable reads (`workload.rs`) while the fault injector (`nemesis.rs`) partitions,
//!    cuts, isolates, drops, delays, crashes, powers off and skews clocks, for
//!    [`FAULT_PHASE`].
//! 3. Liveness: every fault is healed and every node restarted; a new write must be
//!    acknowledged within [`LIVENESS_WAIT`] and all nodes must reach one head within
//!    [`CONVERGE_WAIT`].
//! 4. The checker (`checker.rs`) judges the history against the final journals.
//!
//! Everything random comes from the seed: openraft's election timeouts
//! (`raft_runtime::seed_raft_rng`), the fault switchboard's streams, the injector's and each
//! client's stream. Blocking work runs inline on the thread (`blocking.rs`), so no OS thread
//! decides the order of events. A seed that fails is printed with the command that reruns it.

mod checker;
mod cluster;
mod nemesis;
mod workload;

pub use checker::CheckStats;
pub use nemesis::FaultCounts;

use crate::raft_types::NodeId;
use anyhow::{anyhow, Context};
use cluster::{SimCluster, NODES};
use ledger::testing::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};
use workload::{Client, History, CLIENTS};

/// How long the clients run under faults (virtual time).
pub const FAULT_PHASE: Duration = Duration::from_secs(20);

/// How long after healing a new write must be acknowledged.
pub const LIVENESS_WAIT: Duration = Duration::from_secs(20);

/// How long after that write every node must reach the same head.
pub const CONVERGE_WAIT: Duration = Duration::from_secs(30);

/// How long the cluster may take to elect its first leader.
const FIRST_LEADER_WAIT: Duration = Duration::from_secs(10);

/// `cbank sim` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// How many seeds to run, from --seed on.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// The first seed (a failing seed is rerun with `cbank sim --seed S`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seeds run at once, each on its own thread (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where the nodes' files go (default: /dev/shm when it exists, else the temp folder);
    /// each seed's folder is removed after it passes and kept when it fails.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print one JSON object (the totals) on the last line.
    #[arg(long)]
    pub json: bool,
}

/// What one seed did and found.
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    pub seed: u64,
    /// Every problem found (empty when the seed passed).
    pub problems: Vec<String>,
    pub stats: CheckStats,
    pub faults: FaultCounts,
    pub operations: u64,
    /// A digest of everything the seed did: the final journal head's hash chained with every
    /// operation's call, answer and times. The same seed gives the same digest.
    pub digest: String,
    pub virtual_s: f64,
    pub real_s: f64,
}

impl SeedReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Panics on the simulation's threads, by thread name: a task that panics (openraft's core,
/// a request handler) fails its seed, however the cluster carried on without it.
static PANICS: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());

/// Records panics on threads named `sim-*` in [`PANICS`] instead of printing them; other
/// threads keep the default hook.
fn record_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            match thread.name() {
                Some(name) if name.starts_with("sim-") => {
                    let message = info.to_string().replace('\n', " ");
                    PANICS
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(name.to_owned())
                        .or_default()
                        .push(message);
                }
                _ => default(info),
            }
        }));
    });
}

/// The panics recorded on thread `name`, removed.
fn take_panics(name: &str) -> Vec<String> {
    PANICS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name)
        .unwrap_or_default()
}

/// Runs one seed on a thread of its own (fresh thread-local random source, inline blocking
/// work and disk model) and reports it. Never panics the caller: a panic is a problem found.
pub fn run_seed(seed: u64, dir: &Path) -> SeedReport {
    record_panics();
    let seed_dir = dir.join(format!("cbank-sim-{seed}"));
    let started = Instant::now();
    let thread_dir = seed_dir.clone();
    let thread_name = format!("sim-{seed}");
    let joined = std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            crate::raft_runtime::seed_raft_rng(seed);
            crate::blocking::run_inline_on_this_thread();
            crate::storage::sim_disk::record_syncs_on_this_thread();
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all().start_paused(true);
            // tokio's own random source (which `select!` draws from) from the seed too; without
            // `tokio_unstable` (.cargo/config.toml) a run is reproducible only up to that.
            #[cfg(tokio_unstable)]
            builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
            let runtime = builder
                .build()
                .context("building the simulation's runtime")?;
            runtime.block_on(simulate(seed, &thread_dir))
        })
        .map_err(|error| anyhow!("starting the seed's thread: {error}"))
        .and_then(|thread| {
            thread
                .join()
                .map_err(|_| anyhow!("the simulation itself panicked"))
        });
    let mut report = match joined.and_then(|result| result) {
        Ok(report) => report,
        Err(error) => SeedReport {
            seed,
            problems: vec![format!("{error:#}")],
            stats: CheckStats::default(),
            faults: FaultCounts::default(),
            operations: 0,
            digest: String::new(),
            virtual_s: 0.0,
            real_s: 0.0,
        },
    };
    report.problems.extend(
        take_panics(&thread_name)
            .into_iter()
            .map(|panic| format!("a task panicked: {panic}")),
    );
    report.real_s = started.elapsed().as_secs_f64();
    if report.passed() {
        let _ = std::fs::remove_dir_all(&seed_dir);
    }
    report
}

/// Waits (virtual time) until `done` holds, checking every 50 ms, for at most `wait`.
async fn wait_until(wait: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Every node's journal and state hash (all nodes are up).
fn observe(cluster: &SimCluster) -> anyhow::Result<checker::Observed> {
    let mut journals = BTreeMap::new();
    let mut state_hashes = BTreeMap::new();
    for id in NODES {
        let applied = cluster
            .applied(id)
            .ok_or_else(|| anyhow!("node {id} is down at the end"))?;
        let mut entries = Vec::new();
        let mut from = applied.first_journal_index();
        loop {
            let page = applied
                .journal_range(from, usize::MAX)
                .map_err(|error| anyhow!("reading node {id}'s journal: {error}"))?;
            let Some(last) = page.last() else { break };
            from = last.body.index + 1;
            entries.extend(page);
        }
        journals.insert(id, entries);
        state_hashes.insert(id, applied.read(|ledger| ledger.state_hash()));
    }
    Ok(checker::Observed {
        journals,
        state_hashes,
    })
}

/// The journal head and first stored entry of each node that is up.
fn heads(cluster: &SimCluster) -> BTreeMap<NodeId, (u64, u64)> {
    NODES
        .iter()
        .filter_map(|&id| {
            let applied = cluster.applied(id)?;
            let head = applied.read(|ledger| ledger.head().index);
            Some((id, (head, applied.first_journal_index())))
        })
        .collect()
}

async fn simulate(seed: u64, dir: &Path) -> anyhow::Result<SeedReport> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cluster = Arc::new(SimCluster::start(dir, seed).await?);
    let mut problems = Vec::new();
    if !wait_until(FIRST_LEADER_WAIT, || cluster.leader().is_some()).await {
        anyhow::bail!(
            "no leader within {} s of the start",
            FIRST_LEADER_WAIT.as_secs()
        );
    }
    let history = History::default();
    let world = Arc::new(workload::world());
    workload::build_world(&cluster, &history, &world).await?;

    // The fault phase.
    let until_ns = cluster.elapsed_ns() + FAULT_PHASE.as_nanos() as u64;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let client = Client::new(index, seed);
            tokio::spawn(client.run(cluster.clone(), history.clone(), world.clone(), until_ns))
        })
        .collect();
    let mut faults = FaultCounts::default();
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x6a09_e667);
    nemesis::run(&cluster, &mut rng, until_ns, &mut faults).await?;
    for client in clients {
        client
            .await
            .map_err(|error| anyhow!("a client task failed: {error}"))?;
    }

    // Liveness: heal everything; a new write must get through and the nodes converge.
    cluster.faults.heal();
    cluster.faults.set_drop_rate(0);
    cluster.faults.set_delay(Duration::ZERO, Duration::ZERO);
    for id in NODES {
        if !cluster.is_up(id) {
            cluster.restart(id).await?;
            faults.restarts += 1;
        }
    }
    let mut prober = Client::new(CLIENTS, seed ^ 0x5151);
    if !prober
        .probe(&cluster, &history, &world, LIVENESS_WAIT)
        .await
    {
        problems.push(format!(
            "liveness: no write was acknowledged within {} s of healing",
            LIVENESS_WAIT.as_secs()
        ));
    }
    let converged = wait_until(CONVERGE_WAIT, || {
        let heads = heads(&cluster);
        heads.len() == NODES.len()
            && heads.values().min() == heads.values().max()
            && heads.values().all(|&(_, first)| first == 1)
    })
    .await;
    if !converged {
        problems.push(format!(
            "liveness: the nodes did not reach one head, each with the whole journal, within \
             {} s: (head, first stored entry) by node {:?}",
            CONVERGE_WAIT.as_secs(),
            heads(&cluster)
        ));
    }
    problems.extend(cluster.fatal_errors());

    let ops = history.ops();
    let observed = observe(&cluster)?;
    let (stats, found) = checker::check(&ops, &observed, &workload::read_accounts(&world));
    problems.extend(found);
    let virtual_s = cluster.elapsed_ns() as f64 / 1e9;
    let digest = digest(&ops, &observed);
    cluster.shutdown().await;
    Ok(SeedReport {
        seed,
        problems,
        stats,
        faults,
        operations: ops.len() as u64,
        digest,
        virtual_s,
        real_s: 0.0,
    })
}

/// See [`SeedReport::digest`].
fn digest(ops: &[workload::Op], observed: &checker::Observed) -> String {
    let mut hasher = blake3::Hasher::new();
    for entries in observed.journals.values() {
        if let Some(last) = entries.last() {
            hasher.update(&last.hash.0);
        }
    }
    for op in ops {
        hasher.update(format!("{op:?}").as_bytes());
    }
    hasher.finalize().to_hex()[..16].to_owned()
}

/// Totals over many seeds.
#[derive(Debug, Default, Serialize)]
struct Totals {
    seeds: u64,
    passed: u64,
    failed: Vec<u64>,
    operations: u64,
    acknowledged_writes: u64,
    unknown_writes: u64,
    reads_checked: u64,
    journal_entries: u64,
    faults: FaultCounts,
    virtual_s: f64,
    real_s: f64,
}

fn default_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Runs `cbank sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let last = args
        .seed
        .checked_add(args.seeds - 1)
        .context("--seed plus --seeds overflows")?;
    let started = Instant::now();
    let (sender, receiver) = std::sync::mpsc::channel();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(args.seed));
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (sender, next, dir) = (sender.clone(), next.clone(), dir.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seed > last {
                    return;
                }
                if sender.send(run_seed(seed, &dir)).is_err() {
                    return;
                }
            })
        })
        .collect();
    drop(sender);
    let mut totals = Totals::default();
    for report in receiver {
        totals.seeds += 1;
        totals.operations += report.operations;
        totals.acknowledged_writes += report.stats.acknowledged_writes;
        totals.unknown_writes += report.stats.unknown_writes;
        totals.reads_checked += report.stats.reads_checked;
        totals.journal_entries += report.stats.journal_entries;
        totals.faults += report.faults;
        totals.virtual_s += report.virtual_s;
        if report.passed() {
            totals.passed += 1;
            if args.seeds == 1 || !args.json {
                println!(
                    "seed {} passed: {} ops ({} acknowledged writes, {} unknown, {} reads \
                     checked), {} journal entries, digest {}, {:.1} s simulated in {:.2} s",
                    report.seed,
                    report.operations,
                    report.stats.acknowledged_writes,
                    report.stats.unknown_writes,
                    report.stats.reads_checked,
                    report.stats.journal_entries,
                    report.digest,
                    report.virtual_s,
                    report.real_s
                );
            }
        } else {
            totals.failed.push(report.seed);
            println!("seed {} FAILED:", report.seed);
            for problem in report.problems.iter().take(10) {
                println!("  {problem}");
            }
            println!(
                "  reproduce: cbank sim --seed {} (files kept in {})",
                report.seed,
                dir.join(format!("cbank-sim-{}", report.seed)).display()
            );
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
    totals.failed.sort_unstable();
    totals.real_s = started.elapsed().as_secs_f64();
    let f = &totals.faults;
    println!(
        "{} seeds: {} passed, {} failed{}; {} operations, {} acknowledged writes, {} reads \
         checked, {} snapshot catch-ups; faults: {} partitions, {} one-way cuts, {} isolations, {} heals, {} loss \
         spells, {} delay spells, {} crashes, {} power losses, {} restarts, {} clock skews, {} \
         unsynced log bytes lost; {:.0} s simulated in {:.1} s",
        totals.seeds,
        totals.passed,
        totals.failed.len(),
        if totals.failed.is_empty() {
            String::new()
        } else {
            format!(" ({:?})", totals.failed)
        },
        totals.operations,
        totals.acknowledged_writes,
        totals.reads_checked,
        f.snapshot_catch_ups,
        f.partitions,
        f.one_way_cuts,
        f.isolations,
        f.heals,
        f.loss_spells,
        f.delay_spells,
        f.crashes,
        f.power_losses,
        f.restarts,
        f.clock_skews,
        f.unsynced_bytes_lost,
        totals.virtual_s,
        totals.real_s
    );
    if args.json {
        println!("{}", serde_json::to_string(&totals)?);
    }
    Ok(if totals.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
