//! `cbank bench ledger`: signed `create_transfers` batches through a real 3-node cluster.
//!
//! `--clients` concurrent clients send `POST /v1/transfers` to the leader, each request one
//! command of `--batch` transfers of 1 fen between the world's CNY accounts, signed by the
//! debit accounts' party (one signature per request, as clients sign). With `--batch 1` every
//! transfer is its own signed request and only the leader's group commit batches them. After a
//! closed-loop warm-up, the timed run is closed loop (peak throughput) or, with `--rate`, open
//! loop at that many transfers a second; `--half-load` adds an open-loop run at half the peak
//! just measured, for the latency target at half load.
//!
//! The result is checked (`verify.rs`): the replicas converge to one state hash, the replayed
//! journal holds the invariants, and the parties' accounts were debited exactly the number of
//! transfers the cluster acknowledged.

use super::cluster::{report_rss, BenchCluster, RunArgs};
use super::load::{Pace, Prepared, Workload};
use super::report::{grouped, Report};
use super::world::{transfer, World, WorldSpec, BENCH_TRANSFER_ID_START};
use crate::cli::commands::{outcome_failures, WriteResponse};
use hyper::body::Bytes;
use ledger::Command;

/// `cbank bench ledger` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerArgs {
    /// Transfers per signed request (1 to 8,190).
    #[arg(long, default_value_t = 8_190)]
    pub batch: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Offer this many transfers a second (open loop) instead of as many as the cluster takes.
    #[arg(long)]
    pub rate: Option<f64>,
    /// After the peak run, run again at half its throughput (open loop) and report latency.
    #[arg(long)]
    pub half_load: bool,
    /// Parties signing transfers (each with 16 CNY accounts).
    #[arg(long, default_value_t = 16)]
    pub parties: usize,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub common: super::Common,
}

/// CNY accounts per party.
const ACCOUNTS_PER_PARTY: usize = 16;

/// Reads a `POST /v1/transfers` answer: every transfer applied.
pub(crate) fn check_write(body: &[u8]) -> Result<(), String> {
    let raw: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
    let response =
        WriteResponse::from_json(raw).map_err(|error| format!("not a write answer: {error}"))?;
    let failures = outcome_failures(&response.outcome);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// The request `k`: `batch` transfers signed by party `k mod parties`.
pub(crate) fn make_request(world: &World, batch: usize, k: u64, expires_at_ns: u64) -> Prepared {
    let accounts = world.cny_accounts();
    let per_party = world.spec.cny_accounts;
    let position = (k % world.parties.len() as u64) as usize;
    let party = &world.parties[position];
    let first_id = BENCH_TRANSFER_ID_START + u128::from(k) * batch as u128;
    let transfers = (0..batch)
        .map(|i| {
            let debit = position * per_party + i % per_party;
            let credit =
                (debit + 1 + (i * 7_919 + k as usize) % (accounts.len() - 1)) % accounts.len();
            transfer(first_id + i as u128, accounts[debit], accounts[credit], 1)
        })
        .collect();
    let signed = party.key.sign(
        party.id.clone(),
        u128::from(k) + 1,
        expires_at_ns,
        Command::CreateTransfers { transfers },
    );
    Prepared {
        path: "/v1/transfers",
        body: Bytes::from(serde_json::to_vec(&signed).unwrap_or_default()),
        ops: batch as u64,
    }
}

/// Runs the bench.
pub(crate) async fn run(args: &LedgerArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (1..=ledger::limits::TRANSFERS_PER_BATCH_MAX).contains(&args.batch),
        "--batch must be 1 to {}",
        ledger::limits::TRANSFERS_PER_BATCH_MAX
    );
    anyhow::ensure!(
        (1..=crate::limits::HTTP_REQUESTS_IN_FLIGHT_MAX).contains(&args.clients),
        "--clients must be 1 to {} (the node's in-flight request bound)",
        crate::limits::HTTP_REQUESTS_IN_FLIGHT_MAX
    );
    anyhow::ensure!(args.parties >= 1, "--parties must be at least 1");
    let (duration, warm_up) = args.run.durations(args.common.smoke)?;
    let world = World::new(WorldSpec {
        parties: args.parties,
        cny_accounts: ACCOUNTS_PER_PARTY,
        market: false,
        tokens: false,
        vouchers: false,
    });
    println!(
        "bench ledger: starting 3 nodes; batch {}, {} clients",
        args.batch, args.clients
    );
    let cluster = BenchCluster::start("ledger", args.run.cluster_options()).await?;
    cluster.build_world(&world).await?;
    let leader = cluster.leader().await?;
    let make = |k: u64, expires_at_ns: u64| make_request(&world, args.batch, k, expires_at_ns);
    let mut workload = Workload {
        http: &cluster.http,
        base_url: cluster.url(leader)?,
        clients: args.clients,
        ops_per_request: args.batch as u64,
        make: &make,
        check: check_write,
        next: 0,
        acknowledged: 0,
        doubtful: 0,
    };
    let warm_rate = workload.warm_up(warm_up).await;
    let pace = match args.rate {
        Some(rate) => {
            anyhow::ensure!(rate > 0.0, "--rate must be positive");
            Pace::Open {
                requests_per_s: rate / args.batch as f64,
            }
        }
        None => Pace::Closed,
    };
    let expected = args.rate.or(warm_rate).unwrap_or(20_000.0);
    println!(
        "bench ledger: timed run of {} s{}",
        duration.as_secs(),
        match args.rate {
            Some(rate) => format!(" at {} transfers/s offered", grouped(rate as u64)),
            None => String::new(),
        }
    );
    let mut main = workload.phase(duration, pace, expected).await;
    let main_latency = main.latencies.percentiles();
    let half = if args.half_load && main.ops > 0 {
        let half_rate = main.ops_per_s() / 2.0;
        println!(
            "bench ledger: half-load run of {} s at {} transfers/s offered",
            duration.as_secs(),
            grouped(half_rate as u64)
        );
        let pace = Pace::Open {
            requests_per_s: half_rate / args.batch as f64,
        };
        let mut outcome = workload.phase(duration, pace, half_rate).await;
        let latency = outcome.latencies.percentiles();
        Some((half_rate, outcome, latency))
    } else {
        None
    };

    // Checks.
    // Taken before the check, whose journal reads are the bench's, not the load's.
    let rss_under_load = cluster.peak_rss_bytes();
    let verified = super::verify::verify(&cluster).await?;
    let debits: u128 = world
        .cny_accounts()
        .iter()
        .filter_map(|id| verified.ledger.account(*id))
        .map(|account| account.balances.debits_posted)
        .sum();
    let mut failed = main.failed;
    let mut uncertain = main.uncertain;
    let mut failures = main.failures.clone();
    if let Some((_, outcome, _)) = &half {
        failed += outcome.failed;
        uncertain += outcome.uncertain;
        failures.extend(outcome.failures.iter().cloned());
    }
    // Every transfer is 1 fen from a party account, so the parties' debits count them.
    let transfers_applied = u64::try_from(debits).unwrap_or(u64::MAX);
    let mut report = Report::new("ledger", main.ops_per_s(), main_latency);
    report
        .line(format!(
            "bench ledger: 3 nodes on loopback, fsync on; batch {}, {} clients, {} s{}",
            args.batch,
            args.clients,
            duration.as_secs(),
            if warm_up.is_zero() {
                String::new()
            } else {
                format!(" after a {} s warm-up", warm_up.as_secs())
            }
        ))
        .line(format!(
            "  transfers/s        {}   ({} transfers acknowledged in {} requests, {:.2} s{})",
            grouped(main.ops_per_s() as u64),
            grouped(main.ops),
            grouped(main.requests),
            main.elapsed.as_secs_f64(),
            if main.ran_out {
                "; the pre-signed requests ran out before the time was up"
            } else {
                ""
            }
        ))
        .line(format!("  latency/request    {main_latency}"));
    if let Some((rate, outcome, latency)) = &half {
        report
            .line(format!(
                "  half load          {} transfers/s offered, {} done: {latency}",
                grouped(*rate as u64),
                grouped(outcome.ops_per_s() as u64)
            ))
            .field("half_load_offered_per_s", rate.round())
            .field("half_load_ops_per_s", outcome.ops_per_s().round())
            .field("half_load_p50_ms", latency.p50_ms)
            .field("half_load_p99_ms", latency.p99_ms)
            .field("half_load_p999_ms", latency.p999_ms);
    }
    report_rss(&mut report, &rss_under_load, &cluster);
    report
        .field("batch", args.batch as u64)
        .field("clients", args.clients as u64)
        .field("seconds", duration.as_secs())
        .field("transfers", main.ops)
        .field("requests", main.requests)
        .field("failed", failed)
        .field("uncertain", uncertain)
        .field("retries_429", main.retries)
        .field("ran_out", main.ran_out)
        .field("journal_head", verified.head.index)
        .field("transfers_applied_total", transfers_applied);
    for why in &failures {
        report.line(format!("  failure: {why}"));
    }
    let applied_check = workload.check_applied(transfers_applied, "transfers");
    let acknowledged = workload.acknowledged;
    cluster.stop().await?;
    if failed > uncertain {
        report.print(args.common.json);
        anyhow::bail!("{} requests failed (see above)", failed - uncertain);
    }
    if let Err(error) = applied_check {
        report.print(args.common.json);
        return Err(error);
    }
    report.line(format!(
        "  check: 3 replicas at one state hash (entry {}), the replayed journal holds the invariants, {} transfers applied = {} acknowledged (warm-up included)",
        verified.head.index,
        grouped(transfers_applied),
        grouped(acknowledged)
    ));
    Ok(report)
}
