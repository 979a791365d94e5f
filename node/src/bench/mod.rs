//! `cbank bench <name>`: benchmarks that print throughput and latency percentiles (p50, p99,
//! p99.9), and with `--json` one JSON object on the last line (`ops_per_s`, `p50_ms`, `p99_ms`,
//! `p999_ms` plus the bench's own fields). `tests/bench/README.md` has the commands and the
//! figures measured.
//!
//! Map: `report.rs` (percentiles and printing), `apply.rs` (`Ledger::apply` alone),
//! `matching.rs` (`market::book` against two crates.io order books), `cluster.rs` (a real
//! 3-node cluster of `cbank node` processes with durable storage, started the way `cbank dev`
//! starts one, and each node's peak RSS), `http.rs` (a pooled HTTP client), `load.rs` (closed-
//! and open-loop load from pre-signed requests), `world.rs` (parties, accounts and funds),
//! `verify.rs` (replaying the journal to check the cluster's result), and one file per cluster
//! bench: `ledger_load.rs`, `orders.rs`, `meter.rs`, `recovery.rs`, and `soak.rs` (mixed load
//! while nodes are killed and restarted; checks that no acknowledged write was lost).
//!
//! Every bench also checks its result (counts match, balances are conserved, replicas and books
//! are equal) and fails if it is wrong; `--smoke` makes each one small enough for CI (seconds),
//! where only the checks matter, not the speed. Benches never talk to anything but loopback,
//! and every cluster they start is killed when they end.

pub mod apply;
mod cluster;
mod http;
pub mod ledger_load;
mod load;
pub mod matching;
pub mod meter;
pub mod orders;
pub mod recovery;
mod report;
pub mod soak;
mod verify;
pub(crate) mod world;

use clap::{Args, Subcommand};
use std::process::ExitCode;

/// `cbank bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub bench: BenchCommand,
}

/// The benches.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Signed transfer batches through a 3-node cluster (fsync on): transfers/s.
    Ledger(ledger_load::LedgerArgs),
    /// `Ledger::apply` alone on one thread, with pre-signed commands: transfers/s.
    Apply(apply::ApplyArgs),
    /// The order book alone on one thread, against `lobster` and `rust-order-book`.
    Match(matching::MatchArgs),
    /// Signed orders end to end through a 3-node cluster, 64 per batch request: orders/s.
    Orders(orders::OrdersArgs),
    /// Token usage events end to end through a 3-node cluster, batched: events/s.
    Meter(meter::MeterArgs),
    /// Restart and snapshot catch-up times of a node holding many transfers.
    Recovery(recovery::RecoveryArgs),
    /// Mixed load while a random node is killed (SIGKILL) and restarted every few seconds;
    /// checks that no acknowledged write was lost and that the replicas converge.
    Soak(soak::SoakArgs),
}

/// Options every bench takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    pub json: bool,
    /// Tiny parameters for CI: runs in seconds and checks the result, not the speed.
    #[arg(long)]
    pub smoke: bool,
}

/// Runs `cbank bench …`: prints the figures; a failed check is an error (non-zero exit).
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (report, json) = match args.bench {
        BenchCommand::Apply(args) => {
            let json = args.common.json;
            (
                tokio::task::spawn_blocking(move || apply::run(&args)).await??,
                json,
            )
        }
        BenchCommand::Match(args) => {
            let json = args.common.json;
            (
                tokio::task::spawn_blocking(move || matching::run(&args)).await??,
                json,
            )
        }
        BenchCommand::Ledger(args) => (ledger_load::run(&args).await?, args.common.json),
        BenchCommand::Orders(args) => (orders::run(&args).await?, args.common.json),
        BenchCommand::Meter(args) => (meter::run(&args).await?, args.common.json),
        BenchCommand::Recovery(args) => (recovery::run(&args).await?, args.common.json),
        BenchCommand::Soak(args) => (soak::run(&args).await?, args.common.json),
    };
    report.print(json);
    Ok(ExitCode::SUCCESS)
}
