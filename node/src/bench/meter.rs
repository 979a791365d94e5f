//! `cbank bench meter`: token usage events end to end through a real 3-node cluster.
//!
//! A provider lists a token package and every party buys one (a quota far larger than any run
//! uses). Each request is one `record_usage` command of `--batch` events (at most 8,190), signed
//! once by the provider, spread over every party's quota, 100 tokens each, as a provider's
//! metering gateway would batch them.
//!
//! Checked: every event consumed, the replicas converge to one state hash, the replayed journal
//! holds the invariants, and the quotas' use adds up to exactly the acknowledged events.

use super::cluster::{report_rss, BenchCluster, RunArgs};
use super::ledger_load::check_write;
use super::load::{Pace, Prepared, Workload, ENVELOPE_LIFETIME};
use super::report::{grouped, Report};
use super::world::{key_of, World, WorldSpec, BENCH_TRANSFER_ID_START, PROVIDER};
use hyper::body::Bytes;
use ledger::shelf::UsageEvent;
use ledger::{Command, PartyId};

/// `cbank bench meter` options.
#[derive(Debug, Clone, clap::Args)]
pub struct MeterArgs {
    /// Usage events per signed `record_usage` request (1 to 8,190).
    #[arg(long, default_value_t = 8_190)]
    pub batch: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Parties whose quotas are metered.
    #[arg(long, default_value_t = 16)]
    pub parties: usize,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub common: super::Common,
}

/// Tokens in every event.
const TOKENS_PER_EVENT: u64 = 100;

/// The request `k`: `batch` events, event `k*batch + i` against party `(k*batch + i) mod parties`,
/// stamped with the time the request was made.
fn make_request(
    world: &World,
    provider: &ledger::SigningKey,
    batch: usize,
    k: u64,
    expires_at_ns: u64,
) -> Prepared {
    let at_ns = expires_at_ns.saturating_sub(ENVELOPE_LIFETIME.as_secs() * 1_000_000_000);
    let first = k * batch as u64;
    let events = (0..batch as u64)
        .map(|i| {
            let n = first + i;
            UsageEvent {
                event_id: BENCH_TRANSFER_ID_START + u128::from(n),
                account_id: world.parties[(n % world.parties.len() as u64) as usize].tok,
                tokens: TOKENS_PER_EVENT,
                at_ns,
            }
        })
        .collect();
    let signed = provider.sign(
        PartyId::new(PROVIDER),
        u128::from(k) + 1,
        expires_at_ns,
        Command::RecordUsage { events },
    );
    Prepared {
        path: "/v1/usage",
        body: Bytes::from(serde_json::to_vec(&signed).unwrap_or_default()),
        ops: batch as u64,
    }
}

/// Runs the bench.
pub(crate) async fn run(args: &MeterArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (1..=ledger::limits::USAGE_EVENTS_PER_BATCH_MAX).contains(&args.batch),
        "--batch must be 1 to {}",
        ledger::limits::USAGE_EVENTS_PER_BATCH_MAX
    );
    anyhow::ensure!(
        (1..=crate::limits::HTTP_REQUESTS_IN_FLIGHT_MAX).contains(&args.clients),
        "--clients must be 1 to {}",
        crate::limits::HTTP_REQUESTS_IN_FLIGHT_MAX
    );
    anyhow::ensure!(args.parties >= 1, "--parties must be at least 1");
    let (duration, warm_up) = args.run.durations(args.common.smoke)?;
    let world = World::new(WorldSpec {
        parties: args.parties,
        cny_accounts: 1,
        market: false,
        tokens: true,
        vouchers: false,
    });
    println!(
        "bench meter: starting 3 nodes; {} events per request, {} clients",
        args.batch, args.clients
    );
    let cluster = BenchCluster::start("meter", args.run.cluster_options()).await?;
    cluster.build_world(&world).await?;
    let leader = cluster.leader().await?;
    let provider = key_of(PROVIDER);
    let make =
        |k: u64, expires_at_ns: u64| make_request(&world, &provider, args.batch, k, expires_at_ns);
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
    println!("bench meter: timed run of {} s", duration.as_secs());
    let mut main = workload
        .phase(duration, Pace::Closed, warm_rate.unwrap_or(100_000.0))
        .await;
    let latency = main.latencies.percentiles();

    // Taken before the check, whose journal reads are the bench's, not the load's.
    let rss_under_load = cluster.peak_rss_bytes();
    let verified = super::verify::verify(&cluster).await?;
    let used: u128 = verified
        .ledger
        .shelf()
        .quotas
        .values()
        .map(|quota| quota.used)
        .sum();
    let events_applied = u64::try_from(used / u128::from(TOKENS_PER_EVENT)).unwrap_or(u64::MAX);
    let mut report = Report::new("meter", main.ops_per_s(), latency);
    report
        .line(format!(
            "bench meter: 3 nodes on loopback, fsync on; {} usage events per signed request, {} clients, {} s",
            args.batch,
            args.clients,
            duration.as_secs()
        ))
        .line(format!(
            "  events/s           {}   ({} events acknowledged in {} requests, {:.2} s)",
            grouped(main.ops_per_s() as u64),
            grouped(main.ops),
            grouped(main.requests),
            main.elapsed.as_secs_f64()
        ))
        .line(format!("  latency/request    {latency}"));
    report_rss(&mut report, &rss_under_load, &cluster);
    report
        .field("batch", args.batch as u64)
        .field("clients", args.clients as u64)
        .field("seconds", duration.as_secs())
        .field("events", main.ops)
        .field("requests", main.requests)
        .field("failed", main.failed)
        .field("uncertain", main.uncertain)
        .field("journal_head", verified.head.index);
    for why in &main.failures {
        report.line(format!("  failure: {why}"));
    }
    let exact = used.is_multiple_of(u128::from(TOKENS_PER_EVENT));
    let applied_check = workload.check_applied(events_applied, "usage events");
    let acknowledged = workload.acknowledged;
    cluster.stop().await?;
    if main.failed > main.uncertain {
        report.print(args.common.json);
        anyhow::bail!(
            "{} requests failed (see above)",
            main.failed - main.uncertain
        );
    }
    if !exact {
        report.print(args.common.json);
        anyhow::bail!(
            "the quotas used {used} tokens, not a whole number of {TOKENS_PER_EVENT}-token events"
        );
    }
    if let Err(error) = applied_check {
        report.print(args.common.json);
        return Err(error);
    }
    report.line(format!(
        "  check: 3 replicas at one state hash (entry {}), the replayed journal holds the invariants, quotas used {} tokens = {} acknowledged events × {TOKENS_PER_EVENT}",
        verified.head.index,
        grouped(u64::try_from(used).unwrap_or(u64::MAX)),
        grouped(acknowledged)
    ));
    Ok(report)
}
