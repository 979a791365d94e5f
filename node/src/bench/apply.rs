//! `cbank bench apply`: the pure state machine, `ledger::Ledger::apply`, on one thread.
//!
//! A ledger is set up with the bench world (`world.rs`), then `CreateTransfers` commands of
//! `--batch` transfers each are built and signed before the clock starts; the timed loop only
//! calls `apply` with increasing timestamps, as a replica does. Because `apply` re-verifies
//! each command's signature (see `spec/ledger.md`), the bench also times that check alone on
//! the same commands and reports its cost per command and its share of `apply`.
//!
//! The result is checked: every command and transfer applied, the parties' debits add up to
//! the transfers made, and `check_invariants` holds (per asset Σdebits = Σcredits, no guarded
//! account negative). This file never touches the network or the disk.

use super::report::{grouped, Latencies, Report};
use super::world::{transfer, World, WorldSpec, BENCH_TRANSFER_ID_START};
use ledger::testing::Harness;
use ledger::{Command, SignedCommand};
use std::time::{Duration, Instant};

/// `cbank bench apply` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// Transfers to apply (default 2,000,000; 40,000 with --smoke).
    #[arg(long)]
    pub transfers: Option<u64>,
    /// Transfers per `CreateTransfers` command (1 to 8,190).
    #[arg(long, default_value_t = 8_190)]
    pub batch: usize,
    /// Parties signing the commands (each with 16 CNY accounts).
    #[arg(long, default_value_t = 16)]
    pub parties: usize,
    #[command(flatten)]
    pub common: super::Common,
}

/// CNY accounts per party.
const ACCOUNTS_PER_PARTY: usize = 16;

/// The resident memory of this process in bytes (`VmRSS`), if `/proc` says.
pub(crate) fn own_rss_bytes() -> Option<u64> {
    proc_status_kib("/proc/self/status", "VmRSS:").map(|kib| kib * 1024)
}

/// A `kB` line of a `/proc/<pid>/status` file.
pub(crate) fn proc_status_kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|line| line.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `count` signed `CreateTransfers` commands of `batch` transfers between the world's CNY
/// accounts (1 fen each), signed in turn by each party for its own accounts.
fn build_commands(
    harness: &mut Harness,
    world: &World,
    batches: u64,
    batch: usize,
) -> Vec<SignedCommand> {
    let accounts = world.cny_accounts();
    let per_party = world.spec.cny_accounts;
    let mut next_id = BENCH_TRANSFER_ID_START;
    (0..batches)
        .map(|k| {
            let position = (k % world.parties.len() as u64) as usize;
            let transfers = (0..batch)
                .map(|i| {
                    next_id += 1;
                    let debit = position * per_party + i % per_party;
                    let credit = (debit + 1 + (i * 7_919 + k as usize) % (accounts.len() - 1))
                        % accounts.len();
                    transfer(next_id, accounts[debit], accounts[credit], 1)
                })
                .collect();
            harness.sign(
                world.parties[position].id.as_str(),
                Command::CreateTransfers { transfers },
            )
        })
        .collect()
}

/// Microseconds to check the signature of a one-transfer command (what every order, and every
/// `--batch 1` transfer, costs each time it is checked), averaged over `rounds`.
fn small_verify_us(harness: &mut Harness, world: &World, rounds: u32) -> f64 {
    let accounts = world.cny_accounts();
    let command = harness.sign(
        world.parties[0].id.as_str(),
        Command::CreateTransfers {
            transfers: vec![transfer(1, accounts[0], accounts[1], 1)],
        },
    );
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(std::hint::black_box(&command).signature_is_valid());
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds.max(1))
}

/// Runs the bench.
pub(crate) fn run(args: &ApplyArgs) -> anyhow::Result<Report> {
    let transfers = args
        .transfers
        .unwrap_or(if args.common.smoke { 40_000 } else { 2_000_000 });
    anyhow::ensure!(
        (1..=ledger::limits::TRANSFERS_PER_BATCH_MAX).contains(&args.batch),
        "--batch must be 1 to {}",
        ledger::limits::TRANSFERS_PER_BATCH_MAX
    );
    anyhow::ensure!(args.parties >= 1, "--parties must be at least 1");
    let batches = transfers.div_ceil(args.batch as u64).max(1);
    let transfers = batches * args.batch as u64;

    let rss_start = own_rss_bytes();
    let world = World::new(WorldSpec {
        parties: args.parties,
        cny_accounts: ACCOUNTS_PER_PARTY,
        market: false,
        tokens: false,
        vouchers: false,
    });
    let mut harness = super::world::harness_with(&world);
    println!(
        "bench apply: signing {} commands of {} transfers",
        grouped(batches),
        args.batch
    );
    let commands = build_commands(&mut harness, &world, batches, args.batch);
    let small_verify_us = small_verify_us(
        &mut harness,
        &world,
        if args.common.smoke { 200 } else { 5_000 },
    );

    // The signature check alone, on the same commands (as `apply` runs it).
    let mut verify_total = Duration::ZERO;
    for command in &commands {
        let started = Instant::now();
        let valid = command.signature_is_valid();
        verify_total += started.elapsed();
        anyhow::ensure!(valid, "a bench command does not verify");
    }

    let mut ledger = harness.ledger;
    let mut timestamp_ns = harness.now_ns;
    let mut latencies = Latencies::with_capacity(commands.len());
    let mut failures = 0u64;
    let rss_before_apply = own_rss_bytes();
    let started = Instant::now();
    for command in &commands {
        timestamp_ns += 1_000_000;
        let apply_started = Instant::now();
        let entry = ledger.apply(command, timestamp_ns);
        latencies.record(apply_started.elapsed());
        let outcome = &entry.body.outcome;
        if outcome.rejected().is_some() || !outcome.event_results().is_empty() {
            failures += 1;
        }
    }
    let elapsed = started.elapsed();
    let rss_after = own_rss_bytes();

    // Checks: everything applied, the debits add up, the invariants hold.
    anyhow::ensure!(
        failures == 0,
        "{failures} of {} commands were not applied in full",
        commands.len()
    );
    let debits: u128 = world
        .cny_accounts()
        .iter()
        .filter_map(|id| ledger.account(*id))
        .map(|account| account.balances.debits_posted)
        .sum();
    anyhow::ensure!(
        debits == u128::from(transfers),
        "the parties' accounts were debited {debits} fen for {transfers} transfers of 1 fen"
    );
    ledger
        .check_invariants()
        .map_err(|why| anyhow::anyhow!("an invariant is broken after the run: {why}"))?;

    let ops_per_s = transfers as f64 / elapsed.as_secs_f64();
    let apply_per_command = elapsed / commands.len() as u32;
    let verify_per_command = verify_total / commands.len() as u32;
    let verify_share = verify_total.as_secs_f64() / elapsed.as_secs_f64();
    let latency = latencies.percentiles();
    let state_bytes_per_transfer = match (rss_before_apply, rss_after) {
        (Some(before), Some(after)) => after.saturating_sub(before) / transfers.max(1),
        _ => 0,
    };
    let mut report = Report::new("apply", ops_per_s, latency);
    report
        .line(format!(
            "bench apply: {} transfers in {} commands of {}, one thread, signatures re-verified by apply",
            grouped(transfers),
            grouped(batches),
            args.batch
        ))
        .line(format!(
            "  transfers/s        {}",
            grouped(ops_per_s as u64)
        ))
        .line(format!("  apply per command  {latency} (mean {:.3} ms)", apply_per_command.as_secs_f64() * 1e3))
        .line(format!(
            "  signature check    {:.1} µs per command ({:.0} ns per transfer), {:.1}% of apply",
            verify_per_command.as_secs_f64() * 1e6,
            verify_per_command.as_secs_f64() * 1e9 / args.batch as f64,
            verify_share * 100.0
        ))
        .line(format!(
            "  one small command  {small_verify_us:.1} µs to check its signature (one order, or one transfer at --batch 1)"
        ))
        .line(format!(
            "  memory             {} bytes of resident memory per applied transfer (process RSS {} MiB)",
            state_bytes_per_transfer,
            rss_after.unwrap_or(0) / (1024 * 1024)
        ))
        .line("  check: every transfer applied, debits add up, invariants hold")
        .field("transfers", transfers)
        .field("batch", args.batch as u64)
        .field("commands", batches)
        .field("verify_us_per_command", verify_per_command.as_secs_f64() * 1e6)
        .field("verify_share", (verify_share * 1e4).round() / 1e4)
        .field("verify_small_command_us", (small_verify_us * 10.0).round() / 10.0)
        .field("state_bytes_per_transfer", state_bytes_per_transfer)
        .field("rss_start_bytes", rss_start.unwrap_or(0));
    Ok(report)
}
