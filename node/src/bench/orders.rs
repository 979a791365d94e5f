//! `cbank bench orders`: signed orders end to end through a real 3-node cluster.
//!
//! Each request is `POST /v1/commands/batch` with 64 `place_order` commands (the route's
//! limit), each signed by its owner: 90% good-till-cancelled limit orders within 10 ticks of
//! the mid on both sides (some past it, so they trade on arrival), 10% immediate-or-cancel
//! market orders. Every order reserves money or goods, and every fill settles in the journal
//! entry that matched it, so this measures matching and settlement together, replicated.
//!
//! Checked: every order was accepted, the replicas converge to one state hash, the replayed
//! journal holds the invariants (every fill settled, no crossed book, balances conserved), and
//! the ledger holds exactly the orders acknowledged.

use super::cluster::{report_rss, BenchCluster, RunArgs};
use super::load::{Pace, Prepared, Workload};
use super::report::{grouped, Report};
use super::world::{World, WorldSpec, BENCH_TRANSFER_ID_START, LOT_SIZE_GPU_S, PRODUCT};
use crate::cli::commands::{outcome_failures, WriteResponse};
use hyper::body::Bytes;
use ledger::testing::Rng;
use ledger::trading::OrderSpec;
use ledger::Command;
use market::book::{SelfTrade, Side, TimeInForce};

/// `cbank bench orders` options.
#[derive(Debug, Clone, clap::Args)]
pub struct OrdersArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Parties placing orders.
    #[arg(long, default_value_t = 16)]
    pub parties: usize,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub common: super::Common,
}

/// Orders per batch request: the route's limit.
const ORDERS_PER_REQUEST: u64 = crate::limits::COMMANDS_PER_BATCH_REQUEST_MAX as u64;

/// The mid price in fen per lot (¥25 an H100-hour) and the spread of limit prices around it.
const MID_PRICE_FEN: u64 = 2_500;
const PRICE_SPREAD_TICKS: u64 = 10;

/// Lots of one order: 1 to this.
const LOTS_MAX: u64 = 10;

/// The body of a batch request.
#[derive(serde::Serialize)]
struct Batch {
    commands: Vec<ledger::SignedCommand>,
}

/// Reads a `POST /v1/commands/batch` answer: every command accepted.
fn check_batch(body: &[u8]) -> Result<(), String> {
    let raw: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
    let results = raw["results"]
        .as_array()
        .ok_or_else(|| "no results in the batch answer".to_owned())?;
    for (index, result) in results.iter().enumerate() {
        if let Some(code) = result.get("code") {
            return Err(format!("command {index}: {code}: {}", result["message"]));
        }
        let response = WriteResponse::from_json(result.clone())
            .map_err(|error| format!("command {index}: not a write answer: {error}"))?;
        let failures = outcome_failures(&response.outcome);
        if !failures.is_empty() {
            return Err(format!("command {index}: {}", failures.join("; ")));
        }
    }
    Ok(())
}

/// Order `n`, placed by party `n mod parties` (its position is returned with it): a buy or a
/// sell, 90% good-till-cancelled limit orders within [`PRICE_SPREAD_TICKS`] of the mid (half of
/// them past it, so they trade on arrival), 10% immediate-or-cancel market orders.
pub(crate) fn order(world: &World, n: u64) -> (usize, OrderSpec) {
    let mut rng = Rng(n.wrapping_mul(0x9e37_79b9) ^ 0x5eed);
    let position = (n % world.parties.len() as u64) as usize;
    let party = &world.parties[position];
    let side = if rng.chance(50) {
        Side::Buy
    } else {
        Side::Sell
    };
    let lots = 1 + rng.below(LOTS_MAX);
    let (price, time_in_force) = if rng.chance(10) {
        (None, TimeInForce::Ioc)
    } else {
        let offset = rng.below(2 * PRICE_SPREAD_TICKS + 1);
        // Towards the order's own side of the mid, half of the range past it.
        let price = match side {
            Side::Buy => MID_PRICE_FEN + PRICE_SPREAD_TICKS / 2 - offset.min(MID_PRICE_FEN),
            Side::Sell => MID_PRICE_FEN - PRICE_SPREAD_TICKS / 2 + offset,
        };
        (Some(price), TimeInForce::Gtc)
    };
    let spec = OrderSpec {
        order_id: BENCH_TRANSFER_ID_START + u128::from(n),
        product_id: PRODUCT.to_owned(),
        side,
        price,
        quantity: u128::from(lots) * LOT_SIZE_GPU_S,
        time_in_force,
        post_only: false,
        self_trade: SelfTrade::CancelTaker,
        base_account_id: party.gpu,
        quote_account_id: party.cny[0],
        vouchers: Vec::new(),
    };
    (position, spec)
}

/// The request `k`: 64 orders, order `k*64 + j` signed by party `(k*64 + j) mod parties`.
fn make_request(world: &World, k: u64, expires_at_ns: u64) -> Prepared {
    let commands = (0..ORDERS_PER_REQUEST)
        .map(|j| {
            let n = k * ORDERS_PER_REQUEST + j;
            let (position, order) = order(world, n);
            let party = &world.parties[position];
            party.key.sign(
                party.id.clone(),
                u128::from(n) + 1,
                expires_at_ns,
                Command::PlaceOrder { order },
            )
        })
        .collect();
    Prepared {
        path: "/v1/commands/batch",
        body: Bytes::from(serde_json::to_vec(&Batch { commands }).unwrap_or_default()),
        ops: ORDERS_PER_REQUEST,
    }
}

/// Runs the bench.
pub(crate) async fn run(args: &OrdersArgs) -> anyhow::Result<Report> {
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
        market: true,
        tokens: false,
        vouchers: false,
    });
    println!(
        "bench orders: starting 3 nodes; {} clients, {ORDERS_PER_REQUEST} orders per request",
        args.clients
    );
    let cluster = BenchCluster::start("orders", args.run.cluster_options()).await?;
    cluster.build_world(&world).await?;
    let leader = cluster.leader().await?;
    let make = |k: u64, expires_at_ns: u64| make_request(&world, k, expires_at_ns);
    let mut workload = Workload {
        http: &cluster.http,
        base_url: cluster.url(leader)?,
        clients: args.clients,
        ops_per_request: ORDERS_PER_REQUEST,
        make: &make,
        check: check_batch,
        next: 0,
        acknowledged: 0,
        doubtful: 0,
    };
    let warm_rate = workload.warm_up(warm_up).await;
    println!("bench orders: timed run of {} s", duration.as_secs());
    let mut main = workload
        .phase(duration, Pace::Closed, warm_rate.unwrap_or(5_000.0))
        .await;
    let latency = main.latencies.percentiles();

    // Taken before the check, whose journal reads are the bench's, not the load's.
    let rss_under_load = cluster.peak_rss_bytes();
    let verified = super::verify::verify(&cluster).await?;
    let market = verified.ledger.market();
    let orders = market
        .orders
        .keys()
        .filter(|id| **id >= BENCH_TRANSFER_ID_START)
        .count() as u64;
    let resting = market
        .products
        .get(PRODUCT)
        .map_or(0, |product| product.book.len() as u64);
    let trades = market.trade_next;
    let mut report = Report::new("orders", main.ops_per_s(), latency);
    report
        .line(format!(
            "bench orders: 3 nodes on loopback, fsync on; {} clients, {ORDERS_PER_REQUEST} signed orders per batch request, {} s",
            args.clients,
            duration.as_secs()
        ))
        .line(format!(
            "  orders/s           {}   ({} orders acknowledged in {} requests, {:.2} s)",
            grouped(main.ops_per_s() as u64),
            grouped(main.ops),
            grouped(main.requests),
            main.elapsed.as_secs_f64()
        ))
        .line(format!("  latency/request    {latency}"))
        .line(format!(
            "  book               {} trades in all, {} orders resting at the end",
            grouped(trades),
            grouped(resting)
        ));
    report_rss(&mut report, &rss_under_load, &cluster);
    report
        .field("clients", args.clients as u64)
        .field("orders_per_request", ORDERS_PER_REQUEST)
        .field("seconds", duration.as_secs())
        .field("orders", main.ops)
        .field("requests", main.requests)
        .field("failed", main.failed)
        .field("uncertain", main.uncertain)
        .field("trades_total", trades)
        .field("resting_orders", resting)
        .field("journal_head", verified.head.index);
    for why in &main.failures {
        report.line(format!("  failure: {why}"));
    }
    let applied_check = workload.check_applied(orders, "orders");
    let acknowledged = workload.acknowledged;
    cluster.stop().await?;
    if main.failed > main.uncertain {
        report.print(args.common.json);
        anyhow::bail!(
            "{} requests failed (see above)",
            main.failed - main.uncertain
        );
    }
    if let Err(error) = applied_check {
        report.print(args.common.json);
        return Err(error);
    }
    report.line(format!(
        "  check: 3 replicas at one state hash (entry {}), the replayed journal holds the invariants, {} orders in the ledger = {} acknowledged",
        verified.head.index,
        grouped(orders),
        grouped(acknowledged)
    ));
    Ok(report)
}
