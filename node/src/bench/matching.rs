//! `cbank bench match`: the order book of `market::book` alone, on one thread, side by side
//! with two order-book crates from crates.io (`lobster` and `rust-order-book`) on the identical
//! stream of operations.
//!
//! The stream is made once, before anything is timed, from a seeded generator: 70% limit
//! orders near the mid (both sides, some past it, so they cross), 20% cancels of orders that are
//! resting at that moment, 10% market orders. Which orders are resting is known by running the
//! stream through our own book while it is made. Every engine then runs the stream on fresh
//! books: `--rounds` times with no clock inside the loop, taking turns with the other engines
//! (the best round counts: on a shared machine the others measure the neighbours), and once
//! with a clock read around every operation (latency percentiles). Every run of every engine
//! must end with the same resting book (the same lots at the same prices on each side), or the
//! bench fails.
//!
//! Every order has its own owner, so self-trade prevention (which the other crates lack) never
//! acts; market orders are immediate-or-cancel, as in the other crates. This file measures
//! matching only: nothing here reserves money or settles fills (the ledger does that; `cbank
//! bench apply` and `orders` measure it).

use super::report::{grouped, Latencies, Report};
use ledger::testing::Rng;
use market::book::{Book, OrderRequest, SelfTrade, Side, TimeInForce};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The mid price of the generated stream, in ticks.
const MID_PRICE: u64 = 100_000;

/// Limit prices are drawn from the mid ± this many ticks (a buy above the mid may cross).
const PRICE_SPREAD_TICKS: u64 = 12;

/// Lots of a limit order: 1 to this.
const LIMIT_LOTS_MAX: u64 = 20;

/// Lots of a market order: 1 to this (larger than a limit order: a market order sweeps).
const MARKET_LOTS_MAX: u64 = 60;

/// One operation of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Limit {
        id: u64,
        side: Side,
        price: u64,
        lots: u64,
    },
    Market {
        id: u64,
        side: Side,
        lots: u64,
    },
    Cancel {
        id: u64,
    },
}

/// The counts of each kind of operation in a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mix {
    pub(crate) limits: u64,
    pub(crate) markets: u64,
    pub(crate) cancels: u64,
}

/// A resting book as lots per price: (bids, asks), each in ascending price order.
pub(crate) type Depth = (Vec<(u64, u64)>, Vec<(u64, u64)>);

/// Makes `count` operations from `seed` (see the module doc). Returns the stream, its mix, and
/// how many orders rest at the end.
pub(crate) fn generate(count: usize, seed: u64) -> (Vec<Operation>, Mix, usize) {
    let mut rng = Rng(seed);
    let mut oracle = Cbank::new();
    let mut operations = Vec::with_capacity(count);
    let mut mix = Mix::default();
    // Orders that rested when placed; some have been filled or cancelled since (checked lazily).
    let mut maybe_resting: Vec<u64> = Vec::new();
    let mut next_id: u64 = 1;
    while operations.len() < count {
        let roll = rng.below(100);
        let side = if rng.chance(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        let operation = if roll < 20 {
            match pick_resting(&mut rng, &oracle.book, &mut maybe_resting) {
                Some(id) => Operation::Cancel { id },
                None => continue,
            }
        } else if roll < 30 {
            next_id += 1;
            Operation::Market {
                id: next_id - 1,
                side,
                lots: 1 + rng.below(MARKET_LOTS_MAX),
            }
        } else {
            next_id += 1;
            // An offset from the mid towards the order's own side, sometimes past the mid.
            let offset = rng.below(2 * PRICE_SPREAD_TICKS + 1);
            let price = match side {
                Side::Buy => MID_PRICE + PRICE_SPREAD_TICKS / 2 - offset.min(MID_PRICE),
                Side::Sell => MID_PRICE - PRICE_SPREAD_TICKS / 2 + offset,
            };
            Operation::Limit {
                id: next_id - 1,
                side,
                price,
                lots: 1 + rng.below(LIMIT_LOTS_MAX),
            }
        };
        oracle.apply(&operation);
        match operation {
            Operation::Limit { id, .. } => {
                mix.limits += 1;
                if oracle.book.order(u128::from(id)).is_some() {
                    maybe_resting.push(id);
                }
            }
            Operation::Market { .. } => mix.markets += 1,
            Operation::Cancel { .. } => mix.cancels += 1,
        }
        operations.push(operation);
    }
    let resting = oracle.book.len();
    (operations, mix, resting)
}

/// A random order that rests on `book` now, dropping the ones that no longer do.
fn pick_resting(rng: &mut Rng, book: &Book<u64>, maybe_resting: &mut Vec<u64>) -> Option<u64> {
    while !maybe_resting.is_empty() {
        let index = rng.below(maybe_resting.len() as u64) as usize;
        let id = maybe_resting.swap_remove(index);
        if book.order(u128::from(id)).is_some() {
            return Some(id);
        }
    }
    None
}

/// An order-book engine under test.
pub(crate) trait Engine {
    const NAME: &'static str;
    fn new() -> Self;
    fn apply(&mut self, operation: &Operation);
    fn depth(&self) -> Depth;
}

/// `market::book::Book`, as the ledger drives it: `plan`, then `commit`.
pub(crate) struct Cbank {
    book: Book<u64>,
    /// Operations the book refused (none are expected from the generated stream).
    refused: u64,
}

impl Cbank {
    fn place(&mut self, id: u64, side: Side, price: Option<u64>, lots: u64) {
        let request = OrderRequest {
            id: u128::from(id),
            owner: id,
            side,
            price,
            lots,
            time_in_force: if price.is_some() {
                TimeInForce::Gtc
            } else {
                TimeInForce::Ioc
            },
            post_only: false,
            self_trade: SelfTrade::CancelTaker,
            budget: None,
        };
        match self.book.plan(&request) {
            Ok(execution) => {
                self.book.commit(&request, &execution);
                black_box(&execution);
            }
            Err(_) => self.refused += 1,
        }
    }
}

impl Engine for Cbank {
    const NAME: &'static str = "cbank";

    fn new() -> Cbank {
        Cbank {
            book: Book::new(),
            refused: 0,
        }
    }

    fn apply(&mut self, operation: &Operation) {
        match *operation {
            Operation::Limit {
                id,
                side,
                price,
                lots,
            } => self.place(id, side, Some(price), lots),
            Operation::Market { id, side, lots } => self.place(id, side, None, lots),
            Operation::Cancel { id } => {
                if black_box(self.book.cancel(u128::from(id))).is_none() {
                    self.refused += 1;
                }
            }
        }
    }

    fn depth(&self) -> Depth {
        let (bids, asks) = self.book.depth(usize::MAX);
        let ascending = |levels: Vec<market::book::Level>| {
            let mut levels: Vec<(u64, u64)> = levels
                .into_iter()
                .map(|level| (level.price, level.lots))
                .collect();
            levels.sort_unstable();
            levels
        };
        (ascending(bids), ascending(asks))
    }
}

/// The `lobster` crate (0.7): arena of orders, `BTreeMap` of price levels of `Vec` queues.
pub(crate) struct Lobster {
    book: lobster::OrderBook,
}

fn lobster_side(side: Side) -> lobster::Side {
    match side {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    }
}

impl Engine for Lobster {
    const NAME: &'static str = "lobster";

    fn new() -> Lobster {
        Lobster {
            book: lobster::OrderBook::default(),
        }
    }

    fn apply(&mut self, operation: &Operation) {
        let order = match *operation {
            Operation::Limit {
                id,
                side,
                price,
                lots,
            } => lobster::OrderType::Limit {
                id: u128::from(id),
                side: lobster_side(side),
                qty: lots,
                price,
            },
            Operation::Market { id, side, lots } => lobster::OrderType::Market {
                id: u128::from(id),
                side: lobster_side(side),
                qty: lots,
            },
            Operation::Cancel { id } => lobster::OrderType::Cancel { id: u128::from(id) },
        };
        black_box(self.book.execute(order));
    }

    fn depth(&self) -> Depth {
        // `depth` lists every non-empty level; the argument only sizes its first allocation.
        let depth = self.book.depth(1_024);
        let ascending = |levels: Vec<lobster::BookLevel>| {
            let mut levels: Vec<(u64, u64)> = levels
                .into_iter()
                .map(|level| (level.price, level.qty))
                .collect();
            levels.sort_unstable();
            levels
        };
        (ascending(depth.bids), ascending(depth.asks))
    }
}

/// The `rust-order-book` crate (0.0.2): `HashMap` of orders, `BTreeMap` of `VecDeque` queues.
/// It numbers orders itself, so this keeps the map from the stream's ids to its own.
pub(crate) struct RustOrderBook {
    book: rust_order_book::OrderBook,
    /// Its id of each stream id (stream ids are dense from 1).
    ids: Vec<u64>,
}

fn rob_side(side: Side) -> rust_order_book::Side {
    match side {
        Side::Buy => rust_order_book::Side::Buy,
        Side::Sell => rust_order_book::Side::Sell,
    }
}

impl RustOrderBook {
    fn remember(&mut self, id: u64, theirs: rust_order_book::OrderId) {
        let index = id as usize;
        if self.ids.len() <= index {
            self.ids.resize(index + 1, 0);
        }
        self.ids[index] = theirs.0;
    }
}

impl Engine for RustOrderBook {
    const NAME: &'static str = "rust-order-book";

    fn new() -> RustOrderBook {
        RustOrderBook {
            book: rust_order_book::OrderBookBuilder::new("GPUH:H100/CNY").build(),
            ids: Vec::new(),
        }
    }

    fn apply(&mut self, operation: &Operation) {
        match *operation {
            Operation::Limit {
                id,
                side,
                price,
                lots,
            } => {
                let options = rust_order_book::LimitOrderOptions::new(
                    rob_side(side),
                    lots,
                    price,
                    None,
                    None,
                );
                if let Ok(report) = self.book.limit(options) {
                    self.remember(id, report.order_id);
                    black_box(report);
                }
            }
            Operation::Market { side, lots, .. } => {
                let options = rust_order_book::MarketOrderOptions::new(rob_side(side), lots);
                // An error is an empty opposite side: nothing to match, as for the others.
                let _ = black_box(self.book.market(options));
            }
            Operation::Cancel { id } => {
                if let Some(theirs) = self.ids.get(id as usize) {
                    let _ = black_box(self.book.cancel(rust_order_book::OrderId(*theirs)));
                }
            }
        }
    }

    fn depth(&self) -> Depth {
        // `depth` lists every level whatever the limit, which only sizes its first allocation.
        let depth = self.book.depth(Some(1_024));
        let ascending = |levels: Vec<(rust_order_book::Price, rust_order_book::Quantity)>| {
            let mut levels: Vec<(u64, u64)> = levels
                .into_iter()
                .filter(|(_, lots)| lots.0 > 0)
                .map(|(price, lots)| (price.0, lots.0))
                .collect();
            levels.sort_unstable();
            levels
        };
        (ascending(depth.bids), ascending(depth.asks))
    }
}

/// One engine's figures.
#[derive(Clone, Debug)]
pub(crate) struct EngineRun {
    pub(crate) name: &'static str,
    pub(crate) ops_per_s: f64,
    pub(crate) latency: super::report::Percentiles,
    pub(crate) depth: Depth,
}

/// Runs `operations` through a fresh `E`, untimed per operation, and returns the time it took
/// and the final book.
fn time_engine<E: Engine>(operations: &[Operation]) -> (Duration, Depth) {
    let mut engine = E::new();
    let started = Instant::now();
    for operation in operations {
        engine.apply(operation);
    }
    let elapsed = started.elapsed();
    (elapsed, engine.depth())
}

/// Runs `operations` through a fresh `E` with a clock read around every operation, and returns
/// the latency percentiles and the final book.
fn clock_engine<E: Engine>(operations: &[Operation]) -> (super::report::Percentiles, Depth) {
    let mut engine = E::new();
    let mut latencies = Latencies::with_capacity(operations.len());
    for operation in operations {
        let started = Instant::now();
        engine.apply(operation);
        latencies.record(started.elapsed());
    }
    (latencies.percentiles(), engine.depth())
}

/// Runs `operations` through a fresh `E` `rounds` times for throughput (the best round counts:
/// on a shared machine the others measure the neighbours) and once for latency; an error if the
/// runs end with different books.
pub(crate) fn run_engine<E: Engine>(
    operations: &[Operation],
    rounds: usize,
) -> anyhow::Result<EngineRun> {
    let mut best = Duration::MAX;
    let mut book: Option<Depth> = None;
    for _ in 0..rounds.max(1) {
        let (elapsed, depth) = time_engine::<E>(operations);
        best = best.min(elapsed);
        match &book {
            Some(first) if *first != depth => {
                anyhow::bail!(
                    "{}: two runs of the same stream ended with different books",
                    E::NAME
                )
            }
            Some(_) => {}
            None => book = Some(depth),
        }
    }
    let (latency, depth) = clock_engine::<E>(operations);
    if book.as_ref() != Some(&depth) {
        anyhow::bail!(
            "{}: two runs of the same stream ended with different books",
            E::NAME
        );
    }
    Ok(EngineRun {
        name: E::NAME,
        ops_per_s: operations.len() as f64 / best.max(Duration::from_nanos(1)).as_secs_f64(),
        latency,
        depth,
    })
}

/// `cbank bench match` options.
#[derive(Debug, Clone, clap::Args)]
pub struct MatchArgs {
    /// Operations in the stream (default 2,000,000; 20,000 with --smoke).
    #[arg(long)]
    pub operations: Option<usize>,
    /// The stream generator's seed (the same seed gives the same stream).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Timed runs of each engine, taken in turns; each engine's best counts.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Run only our engine (for profiling it alone; no comparison, no ratios).
    #[arg(long)]
    pub cbank_only: bool,
    #[command(flatten)]
    pub common: super::Common,
}

/// Runs the bench and returns its report; an error if the engines' books differ.
pub(crate) fn run(args: &MatchArgs) -> anyhow::Result<Report> {
    let count = args
        .operations
        .unwrap_or(if args.common.smoke { 20_000 } else { 2_000_000 });
    anyhow::ensure!(count > 0, "--operations must be at least 1");
    println!(
        "bench match: generating {} operations (seed {})",
        grouped(count as u64),
        args.seed
    );
    let (operations, mix, resting) = generate(count, args.seed);
    let rounds = if args.common.smoke { 1 } else { args.rounds };
    // The engines take turns, round by round, so that a noisy moment hurts them alike.
    let mut runs = vec![run_engine::<Cbank>(&operations, 1)?];
    if !args.cbank_only {
        runs.push(run_engine::<Lobster>(&operations, 1)?);
        runs.push(run_engine::<RustOrderBook>(&operations, 1)?);
    }
    for _ in 1..rounds {
        let mut again = vec![time_engine::<Cbank>(&operations)];
        if !args.cbank_only {
            again.push(time_engine::<Lobster>(&operations));
            again.push(time_engine::<RustOrderBook>(&operations));
        }
        for (run, (elapsed, depth)) in runs.iter_mut().zip(again) {
            if depth != run.depth {
                anyhow::bail!(
                    "{}: two runs of the same stream ended with different books",
                    run.name
                );
            }
            let ops_per_s = count as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64();
            run.ops_per_s = run.ops_per_s.max(ops_per_s);
        }
    }
    let ours = &runs[0];
    let mut same_book = true;
    for other in &runs[1..] {
        if other.depth != ours.depth {
            same_book = false;
            eprintln!(
                "bench match: {} ends with {} bid and {} ask levels, {} with {} and {}",
                other.name,
                other.depth.0.len(),
                other.depth.1.len(),
                ours.name,
                ours.depth.0.len(),
                ours.depth.1.len()
            );
        }
    }
    let mut report = Report::new("match", ours.ops_per_s, ours.latency);
    report.line(format!(
        "bench match: {} operations, one thread: {} limit, {} cancel, {} market; {} orders rest at the end ({} bid and {} ask levels)",
        grouped(count as u64),
        grouped(mix.limits),
        grouped(mix.cancels),
        grouped(mix.markets),
        grouped(resting as u64),
        ours.depth.0.len(),
        ours.depth.1.len()
    ));
    for run in &runs {
        let ratio = ours.ops_per_s / run.ops_per_s;
        report.line(format!(
            "  {:<16} {:>12} ops/s   latency {}   cbank/{} = {:.2}",
            run.name,
            grouped(run.ops_per_s as u64),
            run.latency,
            run.name,
            ratio
        ));
        let key = run.name.replace('-', "_");
        report.field(&format!("{key}_ops_per_s"), run.ops_per_s.round());
        report.field(&format!("{key}_p99_ms"), run.latency.p99_ms);
        if run.name != ours.name {
            report.field(&format!("ratio_vs_{key}"), (ratio * 100.0).round() / 100.0);
        }
    }
    report
        .field("operations", count as u64)
        .field("limits", mix.limits)
        .field("cancels", mix.cancels)
        .field("markets", mix.markets)
        .field("resting_orders", resting as u64)
        .field("same_book", same_book);
    if same_book {
        report.line("  check: every engine ends with the same resting book");
    } else {
        report.print(args.common.json);
        anyhow::bail!("the engines' resting books differ (see above)");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_has_the_mix_and_cancels_only_resting_orders() {
        let (operations, mix, _) = generate(20_000, 3);
        assert_eq!(operations.len(), 20_000);
        let total = (mix.limits + mix.markets + mix.cancels) as f64;
        assert!(
            (0.65..0.75).contains(&(mix.limits as f64 / total)),
            "{mix:?}"
        );
        assert!(
            (0.17..0.23).contains(&(mix.cancels as f64 / total)),
            "{mix:?}"
        );
        assert!(
            (0.08..0.12).contains(&(mix.markets as f64 / total)),
            "{mix:?}"
        );
        let mut book = Cbank::new();
        for operation in &operations {
            if let Operation::Cancel { id } = operation {
                assert!(book.book.order(u128::from(*id)).is_some(), "{id} rests");
            }
            book.apply(operation);
        }
        assert_eq!(book.refused, 0);
        assert!(!book.book.is_crossed());
    }

    #[test]
    fn every_engine_ends_with_the_same_book() {
        let (operations, _, resting) = generate(5_000, 11);
        let ours = run_engine::<Cbank>(&operations, 2).unwrap();
        assert!(resting > 0 && !ours.depth.0.is_empty() && !ours.depth.1.is_empty());
        assert_eq!(
            run_engine::<Lobster>(&operations, 1).unwrap().depth,
            ours.depth
        );
        assert_eq!(
            run_engine::<RustOrderBook>(&operations, 1).unwrap().depth,
            ours.depth
        );
    }

    #[test]
    fn a_different_book_is_noticed() {
        let (mut operations, _, _) = generate(2_000, 5);
        let ours = run_engine::<Cbank>(&operations, 1).unwrap();
        operations.push(Operation::Limit {
            id: 1_000_000,
            side: Side::Buy,
            price: 1,
            lots: 1,
        });
        assert_ne!(
            run_engine::<Lobster>(&operations, 1).unwrap().depth,
            ours.depth
        );
    }
}
