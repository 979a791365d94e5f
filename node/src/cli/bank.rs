//! The compute bank's `cbank` commands (`spec/bank.md`): `rates`, `host`, `offer`, `withdraw`,
//! `withdrawal`, `allocation` and `statement`.
//!
//! Writes build one bank command from the arguments, sign it with `--key` and post it to its
//! typed route (`commands.rs`); reads print the node's JSON, except `statement`, which prints a
//! table (or the JSON with `--json`). Exit codes are those of every other command: 0 when the
//! ledger accepted the command or the read answered, non-zero with the node's `code` and
//! message otherwise. This module never decides what the ledger will accept; times given as
//! `now` or `+SECONDS` are read from this machine's clock, which the ledger never sees.

use super::client::NodeClient;
use super::commands::{load_and_write, show, show_with_query};
use super::{parse_party, parse_public_key, ReadOpts, SignOpts};
use anyhow::{bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use ledger::bank::{GpuRate, HostSpec, OfferSpec, WithdrawalSpec};
use ledger::limits::NS_PER_S;
use ledger::statement::{Movement, Side, Statement};
use ledger::{Asset, Balances, Command, PartyId, PendingState, PublicKey};
use serde::Deserialize;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Subcommand)]
pub enum BankCommand {
    /// Publish (operator) or show the GPU-class rate table.
    Rates {
        #[command(subcommand)]
        command: RatesCommand,
    },
    /// Register a GPU host (institution), or show a host, its offers and its allocations.
    Host {
        #[command(subcommand)]
        command: HostCommand,
    },
    /// Offer a host's GPUs to the pool for a window, signed with the institution's own key.
    Offer(OfferArgs),
    /// Ask for GPU time on one host, paid from a GPUH account; queued until capacity serves it.
    Withdraw(WithdrawArgs),
    /// Show, list or cancel withdrawals.
    Withdrawal {
        #[command(subcommand)]
        command: WithdrawalCommand,
    },
    /// Show an allocation.
    Allocation {
        #[command(subcommand)]
        command: AllocationCommand,
    },
    /// Print an account's statement, or one for each account of a party.
    Statement(StatementArgs),
}

#[derive(Debug, Subcommand)]
pub enum RatesCommand {
    /// Publish the next version of the rate table (operator only).
    #[command(disable_version_flag = true)]
    Set {
        #[command(flatten)]
        sign: SignOpts,
        /// The new version: the version in force plus one (1 for the first table).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        version: u32,
        /// A class and its weight in thousandths of a standard GPU-hour (repeatable).
        #[arg(long = "rate", value_name = "CLASS=MILLI", value_parser = parse_rate, required = true)]
        rates: Vec<GpuRate>,
    },
    /// Show the rate table in force, or one version of it.
    #[command(disable_version_flag = true)]
    Show {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        version: Option<u32>,
        #[command(flatten)]
        read: ReadOpts,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Register a GPU host and its agent's public key (institution only).
    Register {
        #[command(flatten)]
        sign: SignOpts,
        /// 1 to 64 characters of a-z, 0-9, '.', '_', '-'; unique for ever.
        #[arg(long)]
        host_id: String,
        /// 1 to 64 characters of a-z, 0-9, '.', '_', '-'.
        #[arg(long)]
        region: String,
        /// The class of all its GPUs (its time is GPUH:<class>).
        #[arg(long)]
        gpu_class: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        gpu_count: u32,
        /// The public key of the host's agent (64 hex characters; `cbank keys new` prints one).
        #[arg(long, value_name = "HEX", value_parser = parse_public_key)]
        agent_public_key: PublicKey,
        /// The institution's own main GPUH:<class> account, credited with delivered time.
        #[arg(long, value_name = "ACCOUNT")]
        account: u128,
    },
    /// Show a host.
    Show {
        host_id: String,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// List a host's offers by window start.
    Offers {
        host_id: String,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// List a host's allocations by start time.
    Allocations {
        host_id: String,
        /// Which allocations: `active` is granted or running.
        #[arg(long, value_enum, default_value_t = AllocationStateArg::Active)]
        state: AllocationStateArg,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
}

/// The paging options of a list.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Start after this id (the `next` of the previous page).
    #[arg(long)]
    pub after: Option<u128>,
    /// At most this many (the node caps it at 1000, its default).
    #[arg(long)]
    pub limit: Option<u32>,
}

impl PageArgs {
    pub(super) fn query(&self) -> Vec<String> {
        let mut query = Vec::new();
        if let Some(after) = self.after {
            query.push(format!("after={after}"));
        }
        if let Some(limit) = self.limit {
            query.push(format!("limit={limit}"));
        }
        query
    }
}

/// The allocation states `cbank host allocations --state` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AllocationStateArg {
    Active,
    Granted,
    Running,
    Completed,
    Failed,
    All,
}

impl AllocationStateArg {
    fn name(self) -> &'static str {
        match self {
            AllocationStateArg::Active => "active",
            AllocationStateArg::Granted => "granted",
            AllocationStateArg::Running => "running",
            AllocationStateArg::Completed => "completed",
            AllocationStateArg::Failed => "failed",
            AllocationStateArg::All => "all",
        }
    }
}

#[derive(Debug, Args)]
pub struct OfferArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// The offer id: client-chosen, unique for ever, the idempotency key (retry with it).
    #[arg(long)]
    pub offer_id: u128,
    #[arg(long)]
    pub host_id: String,
    /// GPUs offered (at most the host's).
    #[arg(long = "gpus", value_parser = clap::value_parser!(u32).range(1..))]
    pub gpu_count: u32,
    /// Window start: RFC 3339 (2026-01-01T08:00:00Z), `now` (this second), or `+SECONDS` from now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start: TimeArg,
    /// Window end: RFC 3339, `now`, or `+SECONDS` after the start (the window's length).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end: TimeArg,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// The withdrawal id: client-chosen, unique for ever, the idempotency key.
    #[arg(long)]
    pub id: u128,
    /// The paying account (the signer's, of any GPUH class the rate table converts).
    #[arg(long)]
    pub account: u128,
    /// The GPU class wanted.
    #[arg(long)]
    pub gpu_class: String,
    #[arg(long = "gpus", value_parser = clap::value_parser!(u32).range(1..))]
    pub gpu_count: u32,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub duration_s: u32,
    /// Only hosts of exactly this region may serve it.
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum WithdrawalCommand {
    /// Show a withdrawal and where it stands.
    Show {
        id: u128,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// List a party's withdrawals by request time.
    List {
        #[arg(value_parser = parse_party)]
        party: PartyId,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// Cancel a queued withdrawal; its reservation is released in full.
    Cancel {
        id: u128,
        #[command(flatten)]
        sign: SignOpts,
    },
}

#[derive(Debug, Subcommand)]
pub enum AllocationCommand {
    /// Show an allocation.
    Show {
        id: u128,
        #[command(flatten)]
        read: ReadOpts,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("whose").required(true).args(["account", "party"])))]
pub struct StatementArgs {
    /// The account whose statement to print.
    #[arg(long)]
    pub account: Option<u128>,
    /// Print a statement for each account of this party.
    #[arg(long, value_parser = parse_party)]
    pub party: Option<PartyId>,
    /// With --party: only the accounts of this asset.
    #[arg(long, conflicts_with = "account")]
    pub asset: Option<Asset>,
    /// The period's start, in nanoseconds since the Unix epoch (default: the beginning).
    #[arg(long)]
    pub from_ns: Option<u64>,
    /// The period's end, excluded (default: the end of time).
    #[arg(long)]
    pub to_ns: Option<u64>,
    /// Print the node's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadOpts,
}

/// A time on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// The current second (now, rounded down to a whole second).
    Now,
    /// This many seconds after a base: now for a start, the start for an end.
    After { seconds: u64 },
    /// An absolute time, in nanoseconds since the Unix epoch.
    At { ns: u64 },
}

impl TimeArg {
    /// The time in nanoseconds since the epoch, with `base_ns` as the base of a relative time.
    pub(super) fn resolve(self, now_ns: u64, base_ns: u64) -> Result<u64, String> {
        match self {
            TimeArg::Now => Ok(now_ns),
            TimeArg::After { seconds } => seconds
                .checked_mul(NS_PER_S)
                .and_then(|ns| base_ns.checked_add(ns))
                .ok_or_else(|| format!("+{seconds} s is past the year 2554")),
            TimeArg::At { ns } => Ok(ns),
        }
    }
}

/// Parses `now`, `+SECONDS` or an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<TimeArg, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(TimeArg::Now);
    }
    if let Some(seconds) = text.strip_prefix('+') {
        return match seconds.parse::<u64>() {
            Ok(seconds) => Ok(TimeArg::After { seconds }),
            Err(_) => Err(format!(
                "{text:?}: +SECONDS takes a whole number of seconds"
            )),
        };
    }
    let time = DateTime::parse_from_rfc3339(text).map_err(|error| {
        format!("{text:?} is not `now`, `+SECONDS` or an RFC 3339 time such as 2026-01-01T08:00:00Z ({error})")
    })?;
    let ns = time
        .timestamp_nanos_opt()
        .and_then(|ns| u64::try_from(ns).ok())
        .ok_or_else(|| format!("{text:?} is outside 1970 to 2554"))?;
    Ok(TimeArg::At { ns })
}

/// Parses `CLASS=MILLI`.
pub fn parse_rate(text: &str) -> Result<GpuRate, String> {
    let usage = "expected CLASS=MILLI, e.g. H100=1000";
    let (class, milli) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: {usage}"))?;
    let standard_milli = milli
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{text:?}: {milli:?} is not a whole number; {usage}"))?;
    let gpu_class = class.trim();
    if gpu_class.is_empty() {
        return Err(format!("{text:?}: no class; {usage}"));
    }
    Ok(GpuRate {
        gpu_class: gpu_class.to_owned(),
        standard_milli,
    })
}

/// Now, rounded down to a whole second: windows are whole seconds long, so a window from `now`
/// to an RFC 3339 time in whole seconds is too.
pub(super) fn now_ns() -> anyhow::Result<u64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    now.as_secs()
        .checked_mul(NS_PER_S)
        .context("the system clock is past the year 2554")
}

/// The offer a command line describes, its times resolved against `now_ns`.
fn offer_spec(args: &OfferArgs, now_ns: u64) -> anyhow::Result<OfferSpec> {
    let start_ns = args
        .start
        .resolve(now_ns, now_ns)
        .map_err(anyhow::Error::msg)?;
    let end_ns = args
        .end
        .resolve(now_ns, start_ns)
        .map_err(anyhow::Error::msg)?;
    if end_ns <= start_ns {
        bail!("the window ends ({end_ns} ns) before it starts ({start_ns} ns)");
    }
    Ok(OfferSpec {
        offer_id: args.offer_id,
        host_id: args.host_id.clone(),
        gpu_count: args.gpu_count,
        start_ns,
        end_ns,
    })
}

/// Runs a bank command.
pub async fn run(command: BankCommand) -> anyhow::Result<ExitCode> {
    match command {
        BankCommand::Rates {
            command:
                RatesCommand::Set {
                    sign,
                    version,
                    rates,
                },
        } => load_and_write(&sign, Command::SetRateTable { version, rates }).await,
        BankCommand::Rates {
            command: RatesCommand::Show { version, read },
        } => match version {
            Some(version) => show(&read, &format!("/v1/rates/{version}")).await,
            None => show(&read, "/v1/rates").await,
        },
        BankCommand::Host {
            command:
                HostCommand::Register {
                    sign,
                    host_id,
                    region,
                    gpu_class,
                    gpu_count,
                    agent_public_key,
                    account,
                },
        } => {
            let host = HostSpec {
                host_id,
                region,
                gpu_class,
                gpu_count,
                agent_key: agent_public_key,
                account_id: account,
            };
            load_and_write(&sign, Command::RegisterHost { host }).await
        }
        BankCommand::Host {
            command: HostCommand::Show { host_id, read },
        } => show(&read, &format!("/v1/hosts/{}", path_segment(&host_id)?)).await,
        BankCommand::Host {
            command:
                HostCommand::Offers {
                    host_id,
                    page,
                    read,
                },
        } => {
            let path = format!("/v1/hosts/{}/offers", path_segment(&host_id)?);
            show_with_query(&read, &path, page.query()).await
        }
        BankCommand::Host {
            command:
                HostCommand::Allocations {
                    host_id,
                    state,
                    page,
                    read,
                },
        } => {
            let path = format!("/v1/hosts/{}/allocations", path_segment(&host_id)?);
            let mut query = vec![format!("state={}", state.name())];
            query.extend(page.query());
            show_with_query(&read, &path, query).await
        }
        BankCommand::Offer(args) => {
            let offer = offer_spec(&args, now_ns()?)?;
            load_and_write(&args.sign, Command::OfferCapacity { offer }).await
        }
        BankCommand::Withdraw(args) => {
            let withdrawal = WithdrawalSpec {
                withdrawal_id: args.id,
                account_id: args.account,
                gpu_class: args.gpu_class,
                gpu_count: args.gpu_count,
                duration_s: args.duration_s,
                region: args.region,
            };
            load_and_write(&args.sign, Command::RequestWithdrawal { withdrawal }).await
        }
        BankCommand::Withdrawal {
            command: WithdrawalCommand::Show { id, read },
        } => show(&read, &format!("/v1/withdrawals/{id}")).await,
        BankCommand::Withdrawal {
            command: WithdrawalCommand::List { party, page, read },
        } => {
            let path = format!("/v1/parties/{party}/withdrawals");
            show_with_query(&read, &path, page.query()).await
        }
        BankCommand::Withdrawal {
            command: WithdrawalCommand::Cancel { id, sign },
        } => {
            let command = Command::CancelWithdrawal { withdrawal_id: id };
            load_and_write(&sign, command).await
        }
        BankCommand::Allocation {
            command: AllocationCommand::Show { id, read },
        } => show(&read, &format!("/v1/allocations/{id}")).await,
        BankCommand::Statement(args) => print_statement(args).await,
    }
}

/// A host id as a path segment.
fn path_segment(text: &str) -> anyhow::Result<&str> {
    id_segment("host id", text)
}

/// An id named `what` as a path segment. Host and package ids are `[a-z0-9._-]`; anything that
/// would change the path is refused here rather than sent.
pub(super) fn id_segment<'a>(what: &str, text: &'a str) -> anyhow::Result<&'a str> {
    let plain = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-');
    if text.is_empty() || !text.bytes().all(plain) {
        bail!("{text:?} is not a {what}: use a-z, 0-9, '.', '_' and '-'");
    }
    Ok(text)
}

/// `GET /v1/parties/{id}/statement`.
#[derive(Debug, Deserialize)]
struct PartyStatements {
    party: PartyId,
    statements: Vec<Statement>,
}

async fn print_statement(args: StatementArgs) -> anyhow::Result<ExitCode> {
    let mut query = Vec::new();
    if let Some(from_ns) = args.from_ns {
        query.push(format!("from_ns={from_ns}"));
    }
    if let Some(to_ns) = args.to_ns {
        query.push(format!("to_ns={to_ns}"));
    }
    let path = match (&args.account, &args.party) {
        (Some(account), _) => format!("/v1/accounts/{account}/statement"),
        (None, Some(party)) => {
            if let Some(asset) = &args.asset {
                query.push(format!("asset={asset}"));
            }
            format!("/v1/parties/{party}/statement")
        }
        (None, None) => bail!("cbank statement: give --account or --party"),
    };
    if args.json {
        return show_with_query(&args.read, &path, query).await;
    }
    if args.read.local {
        query.push("consistency=local".to_owned());
    }
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let client = NodeClient::new(&args.read.node.url)?;
    let text = if args.account.is_some() {
        let statement: Statement = client.get(&path).await?;
        render_statement(&statement)
    } else {
        let answer: PartyStatements = client.get(&path).await?;
        if answer.statements.is_empty() {
            match &args.asset {
                Some(asset) => format!("Party {} has no {asset} accounts.\n", answer.party),
                None => format!("Party {} has no accounts.\n", answer.party),
            }
        } else {
            let rendered: Vec<String> = answer.statements.iter().map(render_statement).collect();
            rendered.join("\n")
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// A time as RFC 3339 in UTC, to the millisecond (nanoseconds stay in `--json`).
fn time_text(ns: u64) -> String {
    if ns == u64::MAX {
        return "the end of time".to_owned();
    }
    // Below u64::MAX / NS_PER_S seconds, so it fits an i64.
    let seconds = (ns / NS_PER_S) as i64;
    // Below NS_PER_S, so it fits a u32.
    let nanos = (ns % NS_PER_S) as u32;
    match DateTime::<Utc>::from_timestamp(seconds, nanos) {
        Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{ns} ns"),
    }
}

fn balances_text(balances: &Balances) -> String {
    format!(
        "debits pending {}, debits posted {}, credits pending {}, credits posted {}",
        balances.debits_pending,
        balances.debits_posted,
        balances.credits_pending,
        balances.credits_posted
    )
}

fn movement_name(movement: Movement) -> &'static str {
    match movement {
        Movement::Posted => "posted",
        Movement::Reserved => "reserved",
        Movement::PostedFromReservation => "posted from reservation",
        Movement::Released => "released",
    }
}

fn state_text(state: PendingState) -> String {
    match state {
        PendingState::NotPending => String::new(),
        PendingState::Pending => "pending".to_owned(),
        PendingState::Posted { amount, .. } => format!("posted {amount}"),
        PendingState::Voided { .. } => "voided".to_owned(),
        PendingState::Expired { at_ns } => format!("expired {}", time_text(at_ns)),
    }
}

/// A statement as a readable table: the account, the period, the opening balances, one row per
/// line (STATE: where a reservation stands now), the closing balances.
pub fn render_statement(statement: &Statement) -> String {
    let account = &statement.account;
    // The kind's name as the API writes it (`main`, `mint`…).
    let kind = serde_json::to_value(account.kind)
        .ok()
        .and_then(|kind| kind.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut text = format!(
        "Statement of account {} ({}, {}, {kind})\nPeriod: {} to {}\nOpening: {}\n\n",
        account.id,
        account.party,
        account.asset,
        time_text(statement.from_ns),
        time_text(statement.to_ns),
        balances_text(&statement.opening),
    );
    if statement.lines.is_empty() {
        text.push_str("No transfers in the period.\n\n");
    } else {
        let header = [
            "TIME (UTC)",
            "ENTRY",
            "TRANSFER",
            "CODE",
            "MOVEMENT",
            "DEBIT",
            "CREDIT",
            "COUNTERPARTY",
            "STATE",
            "AVAILABLE AFTER",
        ];
        let rows: Vec<Vec<String>> = statement
            .lines
            .iter()
            .map(|line| {
                let (debit, credit) = match line.side {
                    Side::Debit => (line.amount.to_string(), String::new()),
                    Side::Credit => (String::new(), line.amount.to_string()),
                };
                vec![
                    time_text(line.timestamp_ns),
                    line.journal_index.to_string(),
                    line.transfer_id.to_string(),
                    line.code.to_string(),
                    movement_name(line.movement).to_owned(),
                    debit,
                    credit,
                    line.counterparty_account_id.to_string(),
                    state_text(line.state),
                    line.balances_after.available().to_string(),
                ]
            })
            .collect();
        text.push_str(&render_table(&header, &rows));
        text.push('\n');
    }
    text.push_str(&format!(
        "Closing: {} (available {})\n",
        balances_text(&statement.closing),
        statement.closing.available()
    ));
    text
}

/// Left-aligned text columns, right-aligned numbers, two spaces apart.
fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|name| name.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let numeric = |column: usize| {
        rows.iter().all(|row| {
            row.get(column)
                .is_some_and(|cell| cell.bytes().all(|byte| byte.is_ascii_digit()))
        })
    };
    let numeric: Vec<bool> = (0..header.len()).map(numeric).collect();
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|name| (*name).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .zip(&numeric)
            .map(|((cell, width), numeric)| {
                if *numeric {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, TopCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<BankCommand, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("cbank").chain(args.iter().copied()))?;
        match cli.command {
            TopCommand::Bank(command) => Ok(command),
            other => panic!("parsed as {other:?}"),
        }
    }

    const KEY_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn rates_set_takes_repeated_class_weights() {
        let command = parse(&[
            "rates",
            "set",
            "--key",
            "op.json",
            "--version",
            "1",
            "--rate",
            "H100=1000",
            "--rate",
            "A100=600",
        ])
        .unwrap();
        let BankCommand::Rates {
            command: RatesCommand::Set { version, rates, .. },
        } = command
        else {
            panic!("parsed as {command:?}");
        };
        assert_eq!(version, 1);
        let rates: Vec<(&str, u32)> = rates
            .iter()
            .map(|rate| (rate.gpu_class.as_str(), rate.standard_milli))
            .collect();
        assert_eq!(rates, [("H100", 1000), ("A100", 600)]);
        for bad in [
            &["rates", "set", "--key", "k", "--version", "1"][..],
            &[
                "rates",
                "set",
                "--key",
                "k",
                "--version",
                "0",
                "--rate",
                "H100=1",
            ],
            &[
                "rates",
                "set",
                "--key",
                "k",
                "--version",
                "1",
                "--rate",
                "H100",
            ],
            &[
                "rates",
                "set",
                "--key",
                "k",
                "--version",
                "1",
                "--rate",
                "H100=1.5",
            ],
            &[
                "rates",
                "set",
                "--key",
                "k",
                "--version",
                "1",
                "--rate",
                "=5",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(matches!(
            parse(&["rates", "show"]).unwrap(),
            BankCommand::Rates {
                command: RatesCommand::Show { version: None, .. }
            }
        ));
        assert!(matches!(
            parse(&["rates", "show", "--version", "2", "--local"]).unwrap(),
            BankCommand::Rates {
                command: RatesCommand::Show {
                    version: Some(2),
                    ..
                }
            }
        ));
    }

    #[test]
    fn host_commands_parse() {
        let command = parse(&[
            "host",
            "register",
            "--key",
            "univ.json",
            "--host-id",
            "gpu-01",
            "--region",
            "beijing",
            "--gpu-class",
            "H100",
            "--gpu-count",
            "8",
            "--agent-public-key",
            KEY_HEX,
            "--account",
            "11",
        ])
        .unwrap();
        let BankCommand::Host {
            command:
                HostCommand::Register {
                    host_id,
                    gpu_count,
                    agent_public_key,
                    account,
                    ..
                },
        } = command
        else {
            panic!("parsed as {command:?}");
        };
        assert_eq!((host_id.as_str(), gpu_count, account), ("gpu-01", 8, 11));
        assert_eq!(agent_public_key.to_string(), KEY_HEX);
        let register = |count: &'static str, key: &'static str| {
            parse(&[
                "host",
                "register",
                "--key",
                "k",
                "--host-id",
                "h",
                "--region",
                "r",
                "--gpu-class",
                "H100",
                "--gpu-count",
                count,
                "--agent-public-key",
                key,
                "--account",
                "1",
            ])
        };
        assert!(register("0", KEY_HEX).is_err());
        assert!(register("8", "abcd").is_err());
        assert!(matches!(
            parse(&["host", "allocations", "gpu-01"]).unwrap(),
            BankCommand::Host {
                command: HostCommand::Allocations {
                    state: AllocationStateArg::Active,
                    ..
                }
            }
        ));
        assert!(matches!(
            parse(&[
                "host",
                "allocations",
                "gpu-01",
                "--state",
                "all",
                "--limit",
                "5"
            ])
            .unwrap(),
            BankCommand::Host {
                command: HostCommand::Allocations {
                    state: AllocationStateArg::All,
                    page: PageArgs { limit: Some(5), .. },
                    ..
                }
            }
        ));
        assert!(parse(&["host", "allocations", "gpu-01", "--state", "busy"]).is_err());
        assert!(parse(&["host", "show", "gpu-01", "--node", "http://127.0.0.1:7002"]).is_ok());
        assert!(parse(&["host", "offers", "gpu-01", "--after", "500"]).is_ok());
    }

    #[test]
    fn offer_times_are_absolute_now_or_relative() {
        let command = parse(&[
            "offer",
            "--key",
            "univ.json",
            "--offer-id",
            "500",
            "--host-id",
            "gpu-01",
            "--gpus",
            "8",
            "--start",
            "now",
            "--end",
            "+14400",
        ])
        .unwrap();
        let BankCommand::Offer(args) = command else {
            panic!("parsed as {command:?}");
        };
        let now_ns = 1_767_225_600 * NS_PER_S;
        let offer = offer_spec(&args, now_ns).unwrap();
        assert_eq!((offer.offer_id, offer.gpu_count), (500, 8));
        assert_eq!(
            (offer.start_ns, offer.end_ns),
            (now_ns, now_ns + 14_400 * NS_PER_S)
        );

        assert_eq!(parse_time("now"), Ok(TimeArg::Now));
        assert_eq!(parse_time("+60"), Ok(TimeArg::After { seconds: 60 }));
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z"),
            Ok(TimeArg::At {
                ns: 1_767_225_600 * NS_PER_S
            })
        );
        assert_eq!(
            parse_time("2026-01-01T08:00:00.5+08:00"),
            Ok(TimeArg::At {
                ns: 1_767_225_600 * NS_PER_S + NS_PER_S / 2
            })
        );
        for bad in [
            "+",
            "+-5",
            "+1.5",
            "tomorrow",
            "2026-01-01",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad} should be refused");
        }
        // A relative start counts from now; a relative end from the start.
        let relative = OfferArgs {
            start: TimeArg::After { seconds: 60 },
            end: TimeArg::After { seconds: 3_600 },
            ..args
        };
        let offer = offer_spec(&relative, now_ns).unwrap();
        assert_eq!(offer.start_ns, now_ns + 60 * NS_PER_S);
        assert_eq!(offer.end_ns, now_ns + 3_660 * NS_PER_S);
        let backwards = OfferArgs {
            start: TimeArg::At { ns: now_ns },
            end: TimeArg::At { ns: now_ns },
            ..relative
        };
        assert!(offer_spec(&backwards, now_ns).is_err());
    }

    #[test]
    fn withdraw_and_withdrawal_parse() {
        let command = parse(&[
            "withdraw",
            "--key",
            "sme.json",
            "--id",
            "700",
            "--account",
            "21",
            "--gpu-class",
            "H100",
            "--gpus",
            "4",
            "--duration-s",
            "3600",
        ])
        .unwrap();
        let BankCommand::Withdraw(args) = command else {
            panic!("parsed as {command:?}");
        };
        assert_eq!(
            (args.id, args.account, args.gpu_count, args.duration_s),
            (700, 21, 4, 3600)
        );
        assert_eq!(args.region, None);
        assert!(parse(&[
            "withdraw",
            "--key",
            "k",
            "--id",
            "1",
            "--account",
            "2",
            "--gpu-class",
            "H100",
            "--gpus",
            "1",
            "--duration-s",
            "0",
        ])
        .is_err());
        assert!(matches!(
            parse(&["withdrawal", "cancel", "700", "--key", "sme.json"]).unwrap(),
            BankCommand::Withdrawal {
                command: WithdrawalCommand::Cancel { id: 700, .. }
            }
        ));
        assert!(parse(&["withdrawal", "cancel", "700"]).is_err());
        assert!(matches!(
            parse(&["withdrawal", "show", "700", "--local"]).unwrap(),
            BankCommand::Withdrawal {
                command: WithdrawalCommand::Show { id: 700, .. }
            }
        ));
        assert!(parse(&["withdrawal", "list", "sme"]).is_ok());
        assert!(parse(&["withdrawal", "list", "SME"]).is_err());
        assert!(matches!(
            parse(&["allocation", "show", "42"]).unwrap(),
            BankCommand::Allocation {
                command: AllocationCommand::Show { id: 42, .. }
            }
        ));
    }

    #[test]
    fn a_statement_is_of_an_account_or_of_a_party() {
        let command = parse(&["statement", "--account", "21", "--from-ns", "5", "--json"]).unwrap();
        let BankCommand::Statement(args) = command else {
            panic!("parsed as {command:?}");
        };
        assert_eq!(
            (args.account, args.from_ns, args.json),
            (Some(21), Some(5), true)
        );
        let command = parse(&["statement", "--party", "sme", "--asset", "GPUH:H100"]).unwrap();
        let BankCommand::Statement(args) = command else {
            panic!("parsed as {command:?}");
        };
        assert_eq!(args.party, Some(PartyId::new("sme")));
        assert_eq!(args.asset, Some("GPUH:H100".parse().unwrap()));
        for bad in [
            &["statement"][..],
            &["statement", "--account", "21", "--party", "sme"],
            &["statement", "--account", "21", "--asset", "CNY"],
            &["statement", "--party", "sme", "--asset", "usd"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn host_ids_are_refused_before_they_change_the_path() {
        assert_eq!(path_segment("gpu-01.a_b").ok(), Some("gpu-01.a_b"));
        for bad in ["", "../accounts/1", "a/b", "a?b", "a b"] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_statement_renders_as_a_table() {
        let json = r#"{
            "account": {"id": "21", "party": "sme", "asset": "GPUH:H100", "kind": "main",
                "flags": {}, "reference": "0", "timestamp_ns": "0",
                "balances": {"debits_pending": "0", "debits_posted": "14400",
                    "credits_pending": "0", "credits_posted": "21600"}},
            "from_ns": "0", "to_ns": "18446744073709551615",
            "opening": {"debits_pending": "0", "debits_posted": "0", "credits_pending": "0", "credits_posted": "0"},
            "closing": {"debits_pending": "0", "debits_posted": "14400", "credits_pending": "0", "credits_posted": "21600"},
            "lines": [
                {"transfer_id": "900", "timestamp_ns": "1767229207000000000", "journal_index": 12,
                 "code": 0, "reference": "0", "side": "credit", "movement": "posted",
                 "amount": "21600", "counterparty_account_id": "11", "state": "not_pending",
                 "balances_after": {"debits_pending": "0", "debits_posted": "0", "credits_pending": "0", "credits_posted": "21600"}},
                {"transfer_id": "7", "timestamp_ns": "1767229208000000000", "journal_index": 13,
                 "code": 1010, "reference": "700", "side": "debit", "movement": "reserved",
                 "amount": "14400", "counterparty_account_id": "223261162777655688372841066653256687711",
                 "state": {"posted": {"by": "8", "amount": "14400"}},
                 "balances_after": {"debits_pending": "14400", "debits_posted": "0", "credits_pending": "0", "credits_posted": "21600"}}
            ]}"#;
        let statement: Statement = serde_json::from_str(json).unwrap();
        let text = render_statement(&statement);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Statement of account 21 (sme, GPUH:H100, main)");
        assert_eq!(
            lines[1],
            "Period: 1970-01-01T00:00:00.000Z to the end of time"
        );
        assert!(
            lines[4].starts_with("TIME (UTC)                ENTRY  TRANSFER  CODE  MOVEMENT"),
            "{text}"
        );
        assert!(
            lines[5].starts_with("2026-01-01T01:00:07.000Z     12       900     0  posted"),
            "{text}"
        );
        assert!(lines[6].contains("reserved  14400"), "{text}");
        assert!(
            lines[6].ends_with("posted 14400             7200"),
            "{text}"
        );
        assert_eq!(
            lines.last().copied(),
            Some("Closing: debits pending 0, debits posted 14400, credits pending 0, credits posted 21600 (available 7200)")
        );
    }
}
