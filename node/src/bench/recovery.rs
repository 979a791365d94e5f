//! `cbank bench recovery`: how long a node holding many transfers takes to serve again after a
//! crash, and how long an empty node takes to catch up by snapshot.
//!
//! 1. Load: `--transfers` signed transfers (in `--batch`es, `--clients` at a time) into a real
//!    3-node cluster whose nodes snapshot every `--snapshot-logs` Raft entries.
//! 2. Restart: a follower is killed with SIGKILL and started again; the bench times how long it
//!    takes to answer `GET /v1/health` (the node serves HTTP only once its storage is open and
//!    its ledger rebuilt from the newest snapshot and the journal after it) and to reach the
//!    leader's journal head.
//! 3. Snapshot: small writes are sent until the leader has a snapshot past the log it keeps
//!    (`LOG_ENTRIES_KEPT_AFTER_SNAPSHOT`), so its log no longer starts at entry 1. The other
//!    follower is removed, wiped and started empty, then added back as a learner (which returns
//!    once it has caught up) and promoted, as `tests/tests/faults` does it; the bench times it
//!    from the empty start and checks that the node installed a snapshot (`GET /v1/state`;
//!    its journal then starts after entry 1 until it has fetched the entries before it).
//!
//! Checked: the nodes converge to one journal head; with `--smoke` (small states) their state
//! hashes and the replayed journal are checked too (`verify.rs`).

use super::cluster::{report_rss, BenchCluster, ClusterOptions};
use super::ledger_load::{check_write, make_request};
use super::load::{Prepared, Workload, RUN_SECONDS_MAX};
use super::report::{grouped, Latencies, Report};
use super::world::{World, WorldSpec};
use crate::cli::cluster as admin;
use crate::cli::dev;
use anyhow::bail;
use std::path::Path;
use std::time::{Duration, Instant};

/// `cbank bench recovery` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoveryArgs {
    /// Transfers the cluster holds before the restart (default 10,000,000; 20,000 with
    /// --smoke).
    #[arg(long)]
    pub transfers: Option<u64>,
    /// Transfers per signed request while loading (default 8,190; 1,000 with --smoke).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Concurrent clients while loading.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Raft entries between snapshots on every node (`CBANK_SNAPSHOT_LOGS`; default 2,000, 20
    /// with --smoke).
    #[arg(long)]
    pub snapshot_logs: Option<u64>,
    /// A folder for the nodes' data (default: a new temporary folder, removed at the end).
    #[arg(long = "data", value_name = "DIR")]
    pub data: Option<std::path::PathBuf>,
    /// Keep the nodes' data folder at the end.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub common: super::Common,
}

/// Raft entries a node keeps after a snapshot (`node/src/limits.rs`): a snapshot past this
/// many entries means the leader's log no longer starts at entry 1.
const LOG_KEPT: u64 = crate::limits::LOG_ENTRIES_KEPT_AFTER_SNAPSHOT;

/// The variable a node reads its snapshot threshold from (`server/config.rs`, private there).
const SNAPSHOT_LOGS_ENV: &str = "CBANK_SNAPSHOT_LOGS";

/// Requests prepared (and signed) at once while loading: each group must be sent before its
/// envelopes expire.
const LOAD_GROUP_REQUESTS: u64 = 100;

/// Padding requests sent between two looks at the leader's snapshots, and the most sent.
const PADDING_ROUND_REQUESTS: u64 = 200;
const PADDING_REQUESTS_MAX: u64 = 40_000;

/// How long a restarted or wiped node may take to serve or catch up before the bench fails.
const RECOVERY_WAIT: Duration = Duration::from_secs(600);

/// How often a recovering node is polled.
const POLL: Duration = Duration::from_millis(20);

/// The Raft index one past the newest snapshot in a node's data folder, and its size.
fn newest_snapshot(data_dir: &Path) -> Option<(u64, u64)> {
    std::fs::read_dir(data_dir.join("snapshots"))
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let end = name
                .strip_prefix("snapshot-")?
                .strip_suffix(".snap")?
                .parse::<u64>()
                .ok()?;
            Some((end, entry.metadata().ok()?.len()))
        })
        .max()
}

/// Waits until node `id` has applied the leader's journal head as of now.
async fn wait_caught_up(cluster: &BenchCluster, id: u64) -> anyhow::Result<Instant> {
    let leader = cluster.leader().await?;
    let target = cluster.view(leader).await?.journal_head;
    let deadline = Instant::now() + RECOVERY_WAIT;
    loop {
        if let Ok(view) = cluster.view(id).await {
            if view.journal_head.index >= target.index {
                return Ok(Instant::now());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "node {id} did not reach entry {} within {} s",
                target.index,
                RECOVERY_WAIT.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs the bench.
pub(crate) async fn run(args: &RecoveryArgs) -> anyhow::Result<Report> {
    let smoke = args.common.smoke;
    let transfers = args
        .transfers
        .unwrap_or(if smoke { 20_000 } else { 10_000_000 });
    let batch = args.batch.unwrap_or(if smoke { 1_000 } else { 8_190 });
    let snapshot_logs = args.snapshot_logs.unwrap_or(if smoke { 20 } else { 2_000 });
    anyhow::ensure!(
        (1..=ledger::limits::TRANSFERS_PER_BATCH_MAX).contains(&batch),
        "--batch must be 1 to {}",
        ledger::limits::TRANSFERS_PER_BATCH_MAX
    );
    anyhow::ensure!(transfers > 0, "--transfers must be at least 1");
    anyhow::ensure!(snapshot_logs > 0, "--snapshot-logs must be at least 1");
    anyhow::ensure!(
        (1..=64).contains(&args.clients),
        "--clients must be 1 to 64"
    );
    let env = vec![(SNAPSHOT_LOGS_ENV.to_owned(), snapshot_logs.to_string())];
    let options = ClusterOptions {
        data: args.data.clone(),
        keep: args.keep,
        node_env: vec![env; 3],
    };
    let world = World::new(WorldSpec {
        parties: 16,
        cny_accounts: 16,
        market: false,
        tokens: false,
        vouchers: false,
    });
    println!(
        "bench recovery: starting 3 nodes (a snapshot every {snapshot_logs} Raft entries); loading {} transfers",
        grouped(transfers)
    );
    let mut cluster = BenchCluster::start("recovery", options).await?;
    cluster.build_world(&world).await?;
    let leader = cluster.leader().await?;
    let followers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let (restarted, wiped) = match followers.as_slice() {
        [first, second, ..] => (*first, *second),
        _ => bail!("a 3-node cluster has two followers"),
    };

    // 1. Load.
    let load_make = |k: u64, expires_at_ns: u64| make_request(&world, batch, k, expires_at_ns);
    let (http, base_url) = (cluster.http.clone(), cluster.url(leader)?);
    let mut load = Workload {
        http: &http,
        base_url: base_url.clone(),
        clients: args.clients,
        ops_per_request: batch as u64,
        make: &load_make,
        check: check_write,
        next: 0,
        acknowledged: 0,
        doubtful: 0,
    };
    let mut load_latencies = Latencies::default();
    let load_started = Instant::now();
    let mut failed = 0;
    let mut last_report = Instant::now();
    while load.acknowledged < transfers {
        let count = (transfers - load.acknowledged)
            .div_ceil(batch as u64)
            .min(LOAD_GROUP_REQUESTS);
        let outcome = load
            .requests(count, Duration::from_secs(RUN_SECONDS_MAX))
            .await;
        failed += outcome.failed;
        if outcome.failed > 0 {
            bail!(
                "loading failed: {}",
                outcome.failures.first().cloned().unwrap_or_default()
            );
        }
        load_latencies.merge(outcome.latencies);
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            println!(
                "bench recovery: {} of {} transfers loaded ({} /s)",
                grouped(load.acknowledged),
                grouped(transfers),
                grouped((load.acknowledged as f64 / load_started.elapsed().as_secs_f64()) as u64)
            );
        }
    }
    let load_elapsed = load_started.elapsed();
    let loaded = load.acknowledged;
    let load_rate = loaded as f64 / load_elapsed.as_secs_f64();
    let head_loaded = cluster.converge().await?;
    let mut report = Report::new("recovery", load_rate, load_latencies.percentiles());
    report.line(format!(
        "bench recovery: 3 nodes on loopback, fsync on; {} transfers loaded in {:.1} s ({} /s, batch {batch}, {} clients), journal head {}",
        grouped(loaded),
        load_elapsed.as_secs_f64(),
        grouped(load_rate as u64),
        args.clients,
        head_loaded.index
    ));
    let rss_under_load = cluster.peak_rss_bytes();
    report_rss(&mut report, &rss_under_load, &cluster);

    // 2. Restart a follower.
    println!("bench recovery: killing node {restarted} (SIGKILL) and starting it again");
    cluster.kill(restarted).await?;
    let started = Instant::now();
    cluster.spawn(restarted)?;
    let serving = cluster.wait_serving(restarted, RECOVERY_WAIT).await? - started;
    let caught_up = wait_caught_up(&cluster, restarted).await? - started;
    report.line(format!(
        "  restart            node {restarted} serves {:.2} s after start, at the leader's head {:.2} s after start",
        serving.as_secs_f64(),
        caught_up.as_secs_f64()
    ));

    // 3. Snapshot catch-up of an empty node.
    let leader_dir = cluster.data_dir(leader)?.to_path_buf();
    let pad_make = |k: u64, expires_at_ns: u64| -> Prepared {
        make_request(&world, 1, k + 1_000_000_000, expires_at_ns)
    };
    let mut padding = Workload {
        http: &http,
        base_url,
        clients: 8,
        ops_per_request: 1,
        make: &pad_make,
        check: check_write,
        next: 0,
        acknowledged: 0,
        doubtful: 0,
    };
    println!("bench recovery: writing until the leader's snapshot is past the log it keeps");
    let pad_started = Instant::now();
    loop {
        match newest_snapshot(&leader_dir) {
            Some((end, _)) if end > LOG_KEPT + 1 => break,
            _ => {}
        }
        if padding.next >= PADDING_REQUESTS_MAX {
            bail!(
                "the leader made no snapshot past entry {} after {PADDING_REQUESTS_MAX} writes",
                LOG_KEPT + 1
            );
        }
        let outcome = padding
            .requests(PADDING_ROUND_REQUESTS, Duration::from_secs(RUN_SECONDS_MAX))
            .await;
        failed += outcome.failed;
    }
    let (snapshot_end, snapshot_bytes) = newest_snapshot(&leader_dir).unwrap_or((0, 0));
    println!(
        "bench recovery: the leader's snapshot covers Raft entries up to {} ({} MiB) after {} small writes in {:.1} s",
        snapshot_end.saturating_sub(1),
        snapshot_bytes / (1024 * 1024),
        grouped(padding.acknowledged),
        pad_started.elapsed().as_secs_f64()
    );
    let leader_node = cluster.node(leader)?.clone();
    let admin_client = dev::admin_client(&leader_node).await?;
    println!("bench recovery: removing node {wiped}, wiping it and adding it back empty");
    dev::with_retries("removing a node", || admin::remove(&admin_client, wiped)).await?;
    cluster.kill(wiped).await?;
    cluster.wipe(wiped)?;
    let started = Instant::now();
    cluster.spawn(wiped)?;
    let serving_empty = cluster.wait_serving(wiped, RECOVERY_WAIT).await? - started;
    let member = cluster.node(wiped)?.member();
    dev::with_retries("adding a learner", || {
        admin::add_learner(&admin_client, &member)
    })
    .await?;
    let learner_caught_up = started.elapsed();
    dev::with_retries("promoting a learner", || {
        admin::promote(&admin_client, wiped)
    })
    .await?;
    let caught_up_empty = wait_caught_up(&cluster, wiped).await? - started;
    let installed = cluster.snapshots_installed(wiped).await?;
    let by_snapshot = installed > 0;
    report.line(format!(
        "  snapshot catch-up  node {wiped} started empty: serves after {:.2} s, caught up as a learner after {:.2} s, at the leader's head after {:.2} s (snapshot of {} MiB; snapshots installed: {installed})",
        serving_empty.as_secs_f64(),
        learner_caught_up.as_secs_f64(),
        caught_up_empty.as_secs_f64(),
        snapshot_bytes / (1024 * 1024)
    ));

    // Checks.
    let head = cluster.converge().await?;
    let replayed = if smoke {
        let verified = super::verify::verify(&cluster).await?;
        let applied: u128 = world
            .cny_accounts()
            .iter()
            .filter_map(|id| verified.ledger.account(*id))
            .map(|account| account.balances.debits_posted)
            .sum();
        let expected = loaded + padding.acknowledged;
        if applied != u128::from(expected) {
            bail!("the ledger applied {applied} transfers, {expected} were acknowledged");
        }
        true
    } else {
        false
    };
    report
        .field("transfers", loaded)
        .field("batch", batch as u64)
        .field("clients", args.clients as u64)
        .field("snapshot_logs", snapshot_logs)
        .field("load_seconds", load_elapsed.as_secs_f64())
        .field("restart_serving_s", serving.as_secs_f64())
        .field("restart_caught_up_s", caught_up.as_secs_f64())
        .field("empty_serving_s", serving_empty.as_secs_f64())
        .field("snapshot_catch_up_s", caught_up_empty.as_secs_f64())
        .field("learner_caught_up_s", learner_caught_up.as_secs_f64())
        .field("snapshot_bytes", snapshot_bytes)
        .field("by_snapshot", by_snapshot)
        .field("failed", failed)
        .field("journal_head", head.index);
    cluster.stop().await?;
    if !by_snapshot {
        report.print(args.common.json);
        bail!("node {wiped} caught up from the log, not from a snapshot (it installed none)");
    }
    report.line(if replayed {
        format!(
            "  check: the nodes converge at entry {}, one state hash, the replayed journal holds the invariants, every acknowledged transfer applied; node {wiped} was caught up by a snapshot",
            head.index
        )
    } else {
        format!(
            "  check: the nodes converge at entry {}; node {wiped} was caught up by a snapshot",
            head.index
        )
    });
    Ok(report)
}
