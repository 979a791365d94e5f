//! The compute vouchers' `cbank` commands: `programme` (create, list, show, report) and
//! `voucher` (issue, revoke, show, list a party's).
//!
//! Writes build one ledger command from the arguments, sign it with `--key` and post it to its
//! typed route (`commands.rs`); reads print the node's JSON. Amounts are in fen. A report is
//! printed or, with `--out`, written to a file, as JSON or CSV (`spec/http.md`). Times are
//! `now`, `+SECONDS` or RFC 3339, read against this machine's clock; a voucher issued without
//! `--expires` lasts as long as its programme (read from the node first). Exit codes are those
//! of every other command. This module never decides what the ledger will accept.

use super::bank::{id_segment, now_ns, parse_time, PageArgs, TimeArg};
use super::client::NodeClient;
use super::commands::{load_and_write, show, show_with_query};
use super::market::parse_product_id;
use super::{parse_party, ReadOpts, RoleArg, SignOpts};
use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use ledger::vouchers::{Beneficiaries, Eligible, ProgrammeSpec, VoucherSpec};
use ledger::{Asset, Command, PartyId};
use serde::Deserialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// `cbank programme` and `cbank voucher`.
#[derive(Debug, Subcommand)]
pub enum VouchersTop {
    /// Voucher programmes: create one (a government), list, show, and report on one.
    Programme {
        #[command(subcommand)]
        command: ProgrammeCommand,
    },
    /// Vouchers: issue and revoke (the programme's government), show one, list a party's.
    Voucher {
        #[command(subcommand)]
        command: VoucherCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProgrammeCommand {
    /// Create a programme and move its budget into it (government only).
    Create(Box<CreateProgrammeArgs>),
    /// The programmes, by programme id, with their totals.
    List {
        /// Start after this programme id (the `next` of the previous page).
        #[arg(long, value_parser = parse_programme_id)]
        after: Option<String>,
        /// At most this many (the node caps it at 1000, its default).
        #[arg(long)]
        limit: Option<u32>,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// One programme: its rules and totals.
    Show {
        #[arg(value_parser = parse_programme_id)]
        programme_id: String,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// A programme's report: totals, per beneficiary and seller, and every line with the
    /// journal entry (index and hash) it came from.
    Report {
        #[arg(value_parser = parse_programme_id)]
        programme_id: String,
        #[arg(long, value_enum, default_value_t = ReportFormatArg::Json)]
        format: ReportFormatArg,
        /// Write the report to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        read: ReadOpts,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    Json,
    Csv,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("who").required(true).args(["beneficiaries", "beneficiary_role"])))]
pub struct CreateProgrammeArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// 1 to 64 characters of a-z, 0-9, '.', '_', '-'.
    #[arg(long, value_parser = parse_programme_id)]
    pub programme_id: String,
    /// Shown to readers, e.g. "Beijing AI compute vouchers 2026".
    #[arg(long, default_value = "")]
    pub title: String,
    /// The budget in fen, moved from --funding-account into the programme.
    #[arg(long)]
    pub budget: u128,
    /// Your CNY account that pays the budget.
    #[arg(long)]
    pub funding_account: u128,
    /// An eligible order-book product (e.g. GPUH:H100/CNY); repeatable.
    #[arg(long = "product", value_parser = parse_product_id)]
    pub products: Vec<String>,
    /// An eligible shelf package id; repeatable.
    #[arg(long = "package", value_parser = parse_programme_id)]
    pub packages: Vec<String>,
    /// An eligible category: every product whose base asset, or package whose asset, it is
    /// (e.g. GPUH:H100, TOK:qwen); repeatable.
    #[arg(long = "asset")]
    pub assets: Vec<Asset>,
    /// The most a voucher pays of one purchase, in basis points (3000: 30%).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub max_share_bps: u16,
    /// The most the programme pays one beneficiary in one calendar year (UTC), in fen.
    #[arg(long)]
    pub cap_per_year: u128,
    /// When vouchers may first be issued and redeemed: `now`, `+SECONDS` or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = parse_time, default_value = "now")]
    pub valid_from: TimeArg,
    /// When the programme ends (its vouchers expire by then): `+SECONDS` counts from
    /// --valid-from.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub valid_until: TimeArg,
    /// An eligible beneficiary; repeatable.
    #[arg(long = "beneficiary", value_parser = parse_party)]
    pub beneficiaries: Vec<PartyId>,
    /// Every party of this role is eligible (e.g. sme).
    #[arg(long, value_enum)]
    pub beneficiary_role: Option<RoleArg>,
    /// Its vouchers may pay towards a purchase another stackable programme's voucher also
    /// pays towards.
    #[arg(long)]
    pub stackable: bool,
}

#[derive(Debug, Subcommand)]
pub enum VoucherCommand {
    /// Issue a voucher from one of your programmes to a beneficiary.
    Issue(IssueArgs),
    /// Revoke a live voucher of one of your programmes; what is left returns to it.
    Revoke {
        voucher_id: u128,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// One voucher: what is left, and each purchase it paid towards.
    Show {
        voucher_id: u128,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// The vouchers a party holds as beneficiary, by voucher id, with what each paid.
    List {
        #[arg(long, value_parser = parse_party)]
        party: PartyId,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// The voucher id: client-chosen, unique for ever, the idempotency key.
    #[arg(long)]
    pub voucher_id: u128,
    #[arg(long, value_parser = parse_programme_id)]
    pub programme: String,
    #[arg(long, value_parser = parse_party)]
    pub beneficiary: PartyId,
    /// The voucher's amount in fen.
    #[arg(long)]
    pub amount: u128,
    /// When it expires: `+SECONDS` from now or RFC 3339 (default: when the programme ends).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub expires: Option<TimeArg>,
}

/// Parses a programme (or package) id by the ledger's rule: 1 to 64 bytes of `[a-z0-9._-]`.
pub fn parse_programme_id(text: &str) -> Result<String, String> {
    let allowed = |byte: u8| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'.' | b'_' | b'-')
    };
    if text.is_empty() || text.len() > 64 || !text.bytes().all(allowed) {
        return Err(format!(
            "{text:?} is not an id: 1 to 64 characters of a-z, 0-9, '.', '_', '-'"
        ));
    }
    Ok(text.to_owned())
}

/// The programme a command line describes, its times resolved against `now_ns`.
fn programme_spec(args: &CreateProgrammeArgs, now_ns: u64) -> anyhow::Result<ProgrammeSpec> {
    let valid_from_ns = args
        .valid_from
        .resolve(now_ns, now_ns)
        .map_err(anyhow::Error::msg)?;
    let valid_until_ns = args
        .valid_until
        .resolve(now_ns, valid_from_ns)
        .map_err(anyhow::Error::msg)?;
    if valid_until_ns <= valid_from_ns {
        bail!("the programme ends ({valid_until_ns} ns) before it starts ({valid_from_ns} ns)");
    }
    let beneficiaries = match args.beneficiary_role {
        Some(role) => Beneficiaries::Role(role.into()),
        None => Beneficiaries::Parties(args.beneficiaries.clone()),
    };
    Ok(ProgrammeSpec {
        programme_id: args.programme_id.clone(),
        title: args.title.clone(),
        budget: args.budget,
        funding_account_id: args.funding_account,
        eligible: Eligible {
            products: args.products.clone(),
            packages: args.packages.clone(),
            assets: args.assets.clone(),
        },
        max_share_bps: args.max_share_bps,
        cap_per_beneficiary_per_year: args.cap_per_year,
        valid_from_ns,
        valid_until_ns,
        beneficiaries,
        stackable: args.stackable,
    })
}

/// What `issue` reads of a programme when no expiry is given.
#[derive(Debug, Deserialize)]
struct ProgrammeRead {
    spec: ProgrammeSpec,
}

/// The voucher a command line describes; without `--expires`, it ends with its programme.
async fn voucher_spec(args: &IssueArgs) -> anyhow::Result<VoucherSpec> {
    let now_ns = now_ns()?;
    let expires_at_ns = match args.expires {
        Some(expires) => expires
            .resolve(now_ns, now_ns)
            .map_err(anyhow::Error::msg)?,
        None => {
            let client = NodeClient::new(&args.sign.node.url)?;
            let path = format!("/v1/programmes/{}", args.programme);
            let programme: ProgrammeRead = client
                .get(&path)
                .await
                .with_context(|| format!("reading programme {} for its end", args.programme))?;
            programme.spec.valid_until_ns
        }
    };
    Ok(VoucherSpec {
        voucher_id: args.voucher_id,
        programme_id: args.programme.clone(),
        beneficiary: args.beneficiary.clone(),
        amount: args.amount,
        expires_at_ns,
    })
}

/// Runs a programme or voucher command.
pub async fn run(command: VouchersTop) -> anyhow::Result<ExitCode> {
    match command {
        VouchersTop::Programme { command } => run_programme(command).await,
        VouchersTop::Voucher { command } => run_voucher(command).await,
    }
}

async fn run_programme(command: ProgrammeCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProgrammeCommand::Create(args) => {
            let programme = programme_spec(&args, now_ns()?)?;
            load_and_write(&args.sign, Command::CreateProgramme { programme }).await
        }
        ProgrammeCommand::List { after, limit, read } => {
            let mut query = Vec::new();
            if let Some(after) = after {
                query.push(format!("after={after}"));
            }
            if let Some(limit) = limit {
                query.push(format!("limit={limit}"));
            }
            show_with_query(&read, "/v1/programmes", query).await
        }
        ProgrammeCommand::Show { programme_id, read } => {
            let path = format!(
                "/v1/programmes/{}",
                id_segment("programme id", &programme_id)?
            );
            show(&read, &path).await
        }
        ProgrammeCommand::Report {
            programme_id,
            format,
            out,
            read,
        } => report(&programme_id, format, out, &read).await,
    }
}

/// `cbank programme report`: prints the report or writes it to `out`.
async fn report(
    programme_id: &str,
    format: ReportFormatArg,
    out: Option<PathBuf>,
    read: &ReadOpts,
) -> anyhow::Result<ExitCode> {
    let mut query = vec![match format {
        ReportFormatArg::Json => "format=json".to_owned(),
        ReportFormatArg::Csv => "format=csv".to_owned(),
    }];
    if read.local {
        query.push("consistency=local".to_owned());
    }
    let path = format!(
        "/v1/programmes/{}/report?{}",
        id_segment("programme id", programme_id)?,
        query.join("&")
    );
    let client = NodeClient::new(&read.node.url)?;
    let text = match format {
        ReportFormatArg::Csv => client.get_text(&path, "text/csv").await?,
        ReportFormatArg::Json => {
            let value: serde_json::Value = client.get(&path).await?;
            let mut text = serde_json::to_string_pretty(&value).context("encoding the report")?;
            text.push('\n');
            text
        }
    };
    match out {
        Some(out) => {
            std::fs::write(&out, &text)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "cbank programme report: the report of {programme_id} is in {}",
                out.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_voucher(command: VoucherCommand) -> anyhow::Result<ExitCode> {
    match command {
        VoucherCommand::Issue(args) => {
            let voucher = voucher_spec(&args).await?;
            load_and_write(&args.sign, Command::IssueVoucher { voucher }).await
        }
        VoucherCommand::Revoke { voucher_id, sign } => {
            load_and_write(&sign, Command::RevokeVoucher { voucher_id }).await
        }
        VoucherCommand::Show { voucher_id, read } => {
            show(&read, &format!("/v1/vouchers/{voucher_id}")).await
        }
        VoucherCommand::List { party, page, read } => {
            show_with_query(
                &read,
                &format!("/v1/parties/{party}/vouchers"),
                page.query(),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::commands::route_for;
    use crate::cli::{Cli, TopCommand};
    use clap::Parser;
    use ledger::limits::NS_PER_S;
    use ledger::Role;

    fn parse(args: &[&str]) -> Result<VouchersTop, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("cbank").chain(args.iter().copied()))?;
        match cli.command {
            TopCommand::Vouchers(command) => Ok(command),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn create_builds_the_programme_the_government_signs() {
        let command = parse(&[
            "programme",
            "create",
            "--key",
            "gov.json",
            "--programme-id",
            "beijing-ai-2026",
            "--title",
            "Beijing AI compute vouchers 2026",
            "--budget",
            "5000000000",
            "--funding-account",
            "10401",
            "--asset",
            "GPUH:H100",
            "--asset",
            "TOK:qwen",
            "--product",
            "GPUH:H100/CNY",
            "--max-share-bps",
            "3000",
            "--cap-per-year",
            "200000000",
            "--valid-until",
            "+31536000",
            "--beneficiary-role",
            "sme",
        ])
        .unwrap();
        let VouchersTop::Programme {
            command: ProgrammeCommand::Create(args),
        } = command
        else {
            panic!("parsed as {command:?}");
        };
        let now_ns = 1_767_225_600 * NS_PER_S;
        let spec = programme_spec(&args, now_ns).unwrap();
        assert_eq!(spec.budget, 5_000_000_000);
        assert_eq!(spec.max_share_bps, 3_000);
        assert_eq!(spec.cap_per_beneficiary_per_year, 200_000_000);
        assert_eq!(spec.valid_from_ns, now_ns);
        assert_eq!(spec.valid_until_ns, now_ns + 31_536_000 * NS_PER_S);
        assert_eq!(spec.beneficiaries, Beneficiaries::Role(Role::Sme));
        assert_eq!(spec.eligible.assets.len(), 2);
        assert_eq!(spec.eligible.products, ["GPUH:H100/CNY"]);
        assert!(!spec.stackable);
        let command = Command::CreateProgramme { programme: spec };
        assert_eq!(route_for(&command), "/v1/programmes");
    }

    #[test]
    fn bad_programme_arguments_are_refused() {
        let base = [
            "programme",
            "create",
            "--key",
            "k",
            "--programme-id",
            "p",
            "--budget",
            "1",
            "--funding-account",
            "1",
            "--max-share-bps",
            "3000",
            "--cap-per-year",
            "1",
            "--valid-until",
            "+60",
        ];
        let with = |more: &[&'static str]| {
            let mut args = base.to_vec();
            args.extend(more);
            parse(&args)
        };
        assert!(with(&["--beneficiary", "sme-a", "--beneficiary", "sme-b"]).is_ok());
        // A list or a role, exactly one of them.
        assert!(with(&[]).is_err());
        assert!(with(&["--beneficiary", "sme-a", "--beneficiary-role", "sme"]).is_err());
        assert!(with(&["--beneficiary", "SME"]).is_err());
        let mut share = base.to_vec();
        share[11] = "10001";
        share.extend(["--beneficiary-role", "sme"]);
        assert!(parse(&share).is_err());
        for bad in [
            &["programme", "show", "Big Programme"][..],
            &["programme", "report", "p", "--format", "xml"],
            &["voucher", "list"],
            &["voucher", "revoke", "x", "--key", "k"],
            &[
                "voucher",
                "issue",
                "--key",
                "k",
                "--voucher-id",
                "1",
                "--programme",
                "p",
                "--beneficiary",
                "sme",
                "--amount",
                "-5",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse(&[
            "programme",
            "report",
            "p",
            "--format",
            "csv",
            "--out",
            "r.csv"
        ])
        .is_ok());
        assert!(parse(&["voucher", "list", "--party", "sme-alpha", "--local"]).is_ok());
    }

    #[test]
    fn issue_with_an_expiry_needs_no_node() {
        let command = parse(&[
            "voucher",
            "issue",
            "--key",
            "gov.json",
            "--voucher-id",
            "501",
            "--programme",
            "beijing-ai-2026",
            "--beneficiary",
            "sme-alpha",
            "--amount",
            "100000000",
            "--expires",
            "2026-12-31T00:00:00Z",
        ])
        .unwrap();
        let VouchersTop::Voucher {
            command: VoucherCommand::Issue(args),
        } = command
        else {
            panic!("parsed as {command:?}");
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let spec = runtime.block_on(voucher_spec(&args)).unwrap();
        assert_eq!(spec.expires_at_ns, 1_798_675_200 * NS_PER_S);
        assert_eq!(spec.beneficiary, PartyId::new("sme-alpha"));
        assert_eq!(
            route_for(&Command::IssueVoucher { voucher: spec }),
            "/v1/vouchers"
        );
    }
}
