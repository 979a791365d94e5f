//! The `cbank` command line: argument definitions (clap derive) and dispatch.
//!
//! Every subcommand is a thin client of a node's HTTP API (`spec/http.md`), except
//! `node start`, which runs a node in this process, `dev`, which runs three of them as child
//! processes, and `audit verify` and `audit verify-proof`, which read files only. Map:
//! `keys.rs` (key files), `client.rs` (HTTP to a node), `commands.rs` (sign and submit ledger
//! commands, reads), `bank.rs` (the compute bank's commands), `market.rs` (the supermarket's:
//! `market`, `shelf` and `usage`), `vouchers.rs` (`programme` and `voucher`), `audit.rs`
//! (`audit export|verify|prove|verify-proof`, the last two offline), `cluster.rs` (membership
//! administration), `dev.rs` (the local three-node cluster).
//!
//! This module must never hold business rules: it builds `ledger` commands from arguments and
//! lets the ledger decide. Bad user input is an error message and a non-zero exit, never a
//! panic.

pub mod audit;
pub mod bank;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod dev;
pub mod keys;
pub mod market;
pub mod vouchers;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ledger::{AccountKind, Asset, PartyId, PublicKey, Role};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where commands go when neither `--node` nor `CBANK_NODE` says otherwise: node 1 of
/// `cbank dev` with the default base port.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:7001";

/// Compute Bank: a Raft-replicated ledger for GPU time, AI tokens and compute vouchers.
#[derive(Debug, Parser)]
#[command(name = "cbank", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: TopCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Run a ledger node in this process.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Administer cluster membership through a node's admin routes (needs its admin token).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Create key files.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Bootstrap an empty ledger: the key file's party becomes the operator.
    Genesis(GenesisArgs),
    /// Register or show parties.
    Party {
        #[command(subcommand)]
        command: PartyCommand,
    },
    /// Add or revoke a party's public keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Add an asset to the catalogue (operator only).
    Asset {
        #[command(subcommand)]
        command: AssetCommand,
    },
    /// Open accounts and read them.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Move an asset between two accounts; `post`, `void` and `show` are subcommands.
    Transfer(TransferCli),
    /// Read journal entries.
    Journal(JournalArgs),
    /// Show the journal head, signed by the node.
    Head(ReadOpts),
    /// Start a local three-node cluster as child processes, with a demo world on first run.
    Dev(DevArgs),
    /// Run the GPU host agent (offer idle GPUs, meter them, run allocations), or `agent
    /// discover` the GPUs (see spec/agent.md).
    Agent(crate::agent::AgentCli),
    /// The compute bank: `rates`, `host`, `offer`, `withdraw`, `withdrawal`, `allocation`,
    /// `statement` (top-level subcommands, defined in `bank.rs`).
    #[command(flatten)]
    Bank(bank::BankCommand),
    /// The compute supermarket: `market` (order books), `shelf` (packages) and `usage` (token
    /// quotas), defined in `market.rs`.
    #[command(flatten)]
    Market(market::MarketTop),
    /// Compute vouchers: `programme` and `voucher` (top-level subcommands, defined in
    /// `vouchers.rs`).
    #[command(flatten)]
    Vouchers(vouchers::VouchersTop),
    /// Audit the journal: export it with checkpoints signed by several nodes, verify an export
    /// offline, prove and verify one voucher's entries (see `audit.rs`).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Run a benchmark and print its figures (see tests/bench/README.md).
    Bench(crate::bench::BenchArgs),
    /// Run seeds of the deterministic cluster simulation with faults, each judged by the
    /// history checker (see spec/simulation.md).
    Sim(crate::sim::SimArgs),
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a node until SIGINT or SIGTERM.
    Start(NodeStartArgs),
}

#[derive(Debug, Args)]
pub struct NodeStartArgs {
    /// The node's Raft id (1 or more, unique in the cluster).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// The node's data directory (Raft log, state, node key, admin token).
    #[arg(long = "data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Where the node listens for Raft traffic from its peers.
    #[arg(long, value_name = "HOST:PORT")]
    pub raft_addr: SocketAddr,
    /// Where the node serves the HTTP API.
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: SocketAddr,
    /// Serve `POST /v1/admin/faults` (fault injection for tests).
    #[arg(long)]
    pub enable_fault_admin: bool,
}

/// `--node`: which node to talk to.
#[derive(Debug, Clone, Args)]
pub struct NodeOpt {
    /// The node's HTTP address (a follower forwards writes to the leader).
    #[arg(long = "node", value_name = "URL", env = "CBANK_NODE", default_value = DEFAULT_NODE_URL)]
    pub url: String,
}

/// Options of every command that signs: the key file and the node.
#[derive(Debug, Clone, Args)]
pub struct SignOpts {
    /// The key file to sign with (see `cbank keys new`); the signer is the party it names.
    #[arg(long = "key", value_name = "FILE")]
    pub key_file: PathBuf,
    #[command(flatten)]
    pub node: NodeOpt,
}

/// Options of every read.
#[derive(Debug, Clone, Args)]
pub struct ReadOpts {
    #[command(flatten)]
    pub node: NodeOpt,
    /// Read this node's local state instead of a linearizable read through the leader.
    #[arg(long)]
    pub local: bool,
}

/// Options of admin commands: the node and its admin token.
#[derive(Debug, Clone, Args)]
pub struct AdminOpts {
    #[command(flatten)]
    pub node: NodeOpt,
    #[command(flatten)]
    pub token: TokenSource,
}

/// Where the admin token comes from (one of the two is required).
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct TokenSource {
    /// The node's admin token file (`<data dir>/admin.token`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The node's data directory; the token is read from `admin.token` in it.
    #[arg(long = "data", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Initialise a new cluster on this node (with no --member: this node alone).
    Init {
        #[command(flatten)]
        admin: AdminOpts,
        /// A voter of the first membership, as ID=RAFT_ADDR,HTTP_ADDR (repeatable).
        #[arg(long = "member", value_name = "ID=RAFT_ADDR,HTTP_ADDR", value_parser = parse_member)]
        members: Vec<cluster::Member>,
    },
    /// Add a node as a learner; returns once it has caught up with the log.
    AddLearner {
        #[command(flatten)]
        admin: AdminOpts,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        #[arg(long, value_name = "HOST:PORT")]
        raft_addr: SocketAddr,
        #[arg(long, value_name = "HOST:PORT")]
        http_addr: SocketAddr,
    },
    /// Make a learner a voter.
    Promote {
        #[command(flatten)]
        admin: AdminOpts,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
    /// Remove a voter or learner from the cluster.
    Remove {
        #[command(flatten)]
        admin: AdminOpts,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
    /// Print the node's view of the cluster (GET /v1/cluster).
    Status(ReadOpts),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new ed25519 key from OS randomness into a new key file (mode 0600).
    New {
        /// The party the key will sign for.
        #[arg(long, value_parser = parse_party)]
        party: PartyId,
        /// The key file to create; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct GenesisArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// The first assets, comma-separated (e.g. CNY,GPUH:H100,TOK:qwen).
    #[arg(long, value_delimiter = ',', required = true, value_name = "CODES")]
    pub assets: Vec<Asset>,
}

#[derive(Debug, Subcommand)]
pub enum PartyCommand {
    /// Register a party with a role and its first public key (operator only).
    Register {
        #[command(flatten)]
        sign: SignOpts,
        #[arg(long, value_parser = parse_party)]
        party: PartyId,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The party's first public key (64 hex characters; `cbank keys new` prints it).
        #[arg(long, value_name = "HEX", value_parser = parse_public_key)]
        public_key: PublicKey,
    },
    /// Show a party, its role and keys.
    Show {
        #[arg(value_parser = parse_party)]
        party: PartyId,
        #[command(flatten)]
        read: ReadOpts,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a public key to a party (the party itself or the operator signs).
    Add(KeyChangeArgs),
    /// Revoke one of a party's public keys; its past signatures stay valid.
    Revoke(KeyChangeArgs),
}

#[derive(Debug, Args)]
pub struct KeyChangeArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    #[arg(long, value_parser = parse_party)]
    pub party: PartyId,
    #[arg(long, value_name = "HEX", value_parser = parse_public_key)]
    pub public_key: PublicKey,
}

#[derive(Debug, Subcommand)]
pub enum AssetCommand {
    /// Register an asset code (GPUH:<class> or TOK:<family>).
    Register {
        #[command(flatten)]
        sign: SignOpts,
        /// The asset code.
        code: Asset,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Open an account owned by the key file's party.
    Create {
        #[command(flatten)]
        sign: SignOpts,
        /// The account id (client-chosen, unique for ever; not 0).
        #[arg(long)]
        id: u128,
        /// The asset it counts (CNY, GPUH:<class>, TOK:<family>).
        #[arg(long)]
        asset: Asset,
        /// What the account is for; every kind but `main` is an operator system account.
        #[arg(long, value_enum, default_value_t = AccountKindArg::Main)]
        kind: AccountKindArg,
        /// Let the account's debits exceed its credits (operator system accounts such as a
        /// mint only; the ledger refuses it for anyone else).
        #[arg(long)]
        no_overdraft_guard: bool,
        /// Free client data kept with the account.
        #[arg(long, default_value_t = 0)]
        reference: u128,
    },
    /// Show an account and its balances.
    Show {
        id: u128,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// List an account's transfers, oldest first.
    Transfers {
        id: u128,
        /// Start after this transfer id (the `next` of the previous page).
        #[arg(long)]
        after: Option<u128>,
        /// At most this many (the node caps it at 1000).
        #[arg(long)]
        limit: Option<u32>,
        #[command(flatten)]
        read: ReadOpts,
    },
}

/// `cbank transfer`: without a subcommand it creates a transfer.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TransferCli {
    #[command(subcommand)]
    pub command: Option<TransferCommand>,
    #[command(flatten)]
    pub create: Option<TransferCreateArgs>,
}

/// The arguments of `cbank transfer` without a subcommand. The signing options are spelled
/// out instead of flattening `SignOpts`, for two clap limits: it cannot tell whether an
/// `Option` of arguments with nested flattened groups was given, and a value taken from the
/// environment counts as given, which would make `cbank transfer post` demand `--key` twice
/// whenever `CBANK_NODE` is set. So `--node` here reads `CBANK_NODE` itself.
#[derive(Debug, Args)]
pub struct TransferCreateArgs {
    /// The key file to sign with (see `cbank keys new`); the signer is the party it names.
    #[arg(long = "key", value_name = "FILE")]
    pub key_file: PathBuf,
    /// The node's HTTP address (a follower forwards writes to the leader)
    /// [env: CBANK_NODE] [default: http://127.0.0.1:7001].
    #[arg(long = "node", value_name = "URL")]
    pub node_url: Option<String>,
    /// The transfer id: client-chosen, unique for ever, the idempotency key (retry with it).
    #[arg(long)]
    pub id: u128,
    /// The debit account (must belong to the signer).
    #[arg(long = "from", value_name = "ACCOUNT")]
    pub from: u128,
    /// The credit account.
    #[arg(long = "to", value_name = "ACCOUNT")]
    pub to: u128,
    /// The amount in the asset's minor unit (fen, GPU-seconds, tokens).
    #[arg(long)]
    pub amount: u128,
    /// Reserve the amount now; post or void it later with `cbank transfer post|void`.
    #[arg(long)]
    pub pending: bool,
    /// Seconds after which a pending transfer expires (the ledger requires one for every
    /// pending transfer, at most 30 days).
    #[arg(long, requires = "pending", value_name = "S")]
    pub timeout_s: Option<u32>,
    /// A reason code chosen by the application.
    #[arg(long, default_value_t = 0)]
    pub code: u16,
    /// What the transfer is for (an order, voucher or allocation id, or client data).
    #[arg(long, default_value_t = 0)]
    pub reference: u128,
    /// Set the `linked` flag. A single transfer cannot close a chain, so the ledger rejects it
    /// with `linked_event_chain_open`; the flag exists for parity with the API.
    #[arg(long)]
    pub linked: bool,
}

impl TransferCreateArgs {
    /// The signing options, with `--node` resolved as everywhere else: the flag, else
    /// `CBANK_NODE`, else [`DEFAULT_NODE_URL`].
    pub fn sign_opts(&self) -> SignOpts {
        let from_environment = || {
            std::env::var("CBANK_NODE")
                .ok()
                .filter(|url| !url.is_empty())
        };
        let url = self
            .node_url
            .clone()
            .or_else(from_environment)
            .unwrap_or_else(|| DEFAULT_NODE_URL.to_owned());
        SignOpts {
            key_file: self.key_file.clone(),
            node: NodeOpt { url },
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TransferCommand {
    /// Post a pending transfer (fully, or partly with --amount).
    Post(PendingResolveArgs),
    /// Void a pending transfer, releasing the reserved amount.
    Void(PendingResolveArgs),
    /// Show a transfer and, if it is pending, where it stands.
    Show {
        id: u128,
        #[command(flatten)]
        read: ReadOpts,
    },
}

#[derive(Debug, Args)]
pub struct PendingResolveArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// The id of this post or void transfer (unique for ever).
    #[arg(long)]
    pub id: u128,
    /// The pending transfer to post or void.
    #[arg(long)]
    pub pending_id: u128,
    /// For a post: how much to post (default: the whole pending amount). For a void: 0 or the
    /// pending amount.
    #[arg(long)]
    pub amount: Option<u128>,
    #[arg(long, default_value_t = 0)]
    pub code: u16,
    #[arg(long, default_value_t = 0)]
    pub reference: u128,
}

#[derive(Debug, Args)]
pub struct JournalArgs {
    /// The first journal index to return (1 is the first entry).
    #[arg(long)]
    pub from: Option<u64>,
    /// At most this many entries (the node caps it at 1000).
    #[arg(long)]
    pub limit: Option<u32>,
    #[command(flatten)]
    pub read: ReadOpts,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The folder that holds the three nodes' data, the key files and cluster.json.
    #[arg(long = "data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Node i serves HTTP on 127.0.0.1:(BASE+i) and Raft on 127.0.0.1:(BASE+10+i)
    /// [default: 7000, or the port the cluster was created with].
    #[arg(long, value_name = "BASE")]
    pub base_port: Option<u16>,
}

/// A party's role, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Institution,
    Sme,
    Government,
    Provider,
    Operator,
    Auditor,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Institution => Role::Institution,
            RoleArg::Sme => Role::Sme,
            RoleArg::Government => Role::Government,
            RoleArg::Provider => Role::Provider,
            RoleArg::Operator => Role::Operator,
            RoleArg::Auditor => Role::Auditor,
        }
    }
}

/// An account kind, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccountKindArg {
    Main,
    Mint,
    Pool,
    Fees,
    Rounding,
    Escrow,
}

impl From<AccountKindArg> for AccountKind {
    fn from(kind: AccountKindArg) -> AccountKind {
        match kind {
            AccountKindArg::Main => AccountKind::Main,
            AccountKindArg::Mint => AccountKind::Mint,
            AccountKindArg::Pool => AccountKind::Pool,
            AccountKindArg::Fees => AccountKind::Fees,
            AccountKindArg::Rounding => AccountKind::Rounding,
            AccountKindArg::Escrow => AccountKind::Escrow,
        }
    }
}

/// Parses a party id and checks the ledger's rules for one (`[a-z0-9._-]`, 1 to 64 bytes).
pub fn parse_party(text: &str) -> Result<PartyId, String> {
    let party = PartyId::new(text);
    if party.is_valid() {
        Ok(party)
    } else {
        Err(format!(
            "invalid party id {text:?}: use 1 to {} characters of a-z, 0-9, '.', '_' and '-'",
            ledger::limits::PARTY_ID_BYTES_MAX
        ))
    }
}

/// Parses a public key written as 64 hex characters.
pub fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let bytes = hex::decode(text.trim())
        .map_err(|error| format!("public key is not hex ({error}): {text:?}"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
        format!(
            "a public key is 32 bytes (64 hex characters), got {} bytes",
            bytes.len()
        )
    })?;
    let key = PublicKey(bytes);
    if !ledger::envelope::key_is_valid(&key) {
        return Err(format!("{text} is not a valid ed25519 public key"));
    }
    Ok(key)
}

/// Parses `ID=RAFT_ADDR,HTTP_ADDR`.
pub fn parse_member(text: &str) -> Result<cluster::Member, String> {
    let usage = "expected ID=RAFT_ADDR,HTTP_ADDR, e.g. 1=127.0.0.1:7011,127.0.0.1:7001";
    let (id, addresses) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: {usage}"))?;
    let (raft_addr, http_addr) = addresses
        .split_once(',')
        .ok_or_else(|| format!("{text:?}: {usage}"))?;
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the node id {id:?} is not a number; {usage}"))?;
    if id == 0 {
        return Err(format!("{text:?}: node ids start at 1"));
    }
    let raft_addr: SocketAddr = raft_addr
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {raft_addr:?} is not HOST:PORT; {usage}"))?;
    let http_addr: SocketAddr = http_addr
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {http_addr:?} is not HOST:PORT; {usage}"))?;
    Ok(cluster::Member {
        id,
        raft_addr,
        http_addr,
    })
}

/// Sets up logging to stderr: `RUST_LOG` if set, else `info` for a node (or `dev`) and
/// `warn` for client commands, whose stdout is their result.
pub fn init_tracing(cli: &Cli) {
    let default = match cli.command {
        TopCommand::Node { .. } | TopCommand::Dev(_) | TopCommand::Agent(_) => "info",
        // Faults make openraft warn all the time; the checker's verdict is the output.
        TopCommand::Sim(_) => "error,openraft=off",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second initialisation (only possible in tests) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line. `Ok(code)` is the process exit code; errors are printed by
/// `main` with their context chain.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        TopCommand::Node {
            command: NodeCommand::Start(args),
        } => run_node(args).await,
        TopCommand::Cluster { command } => cluster::run(command).await,
        TopCommand::Keys {
            command: KeysCommand::New { party, out },
        } => {
            let public_key = keys::create_key_file(&out, &party)?;
            println!("{public_key}");
            Ok(ExitCode::SUCCESS)
        }
        TopCommand::Dev(args) => dev::run(args).await,
        TopCommand::Agent(args) => crate::agent::run(args).await,
        TopCommand::Bank(command) => bank::run(command).await,
        TopCommand::Market(command) => market::run(command).await,
        TopCommand::Vouchers(command) => vouchers::run(command).await,
        TopCommand::Audit { command } => audit::run(command).await,
        TopCommand::Bench(args) => crate::bench::run(args).await,
        TopCommand::Sim(args) => tokio::task::spawn_blocking(move || crate::sim::run(args))
            .await
            .map_err(|error| anyhow::anyhow!("the simulation stopped: {error}"))?,
        other => commands::run(other).await,
    }
}

/// `cbank node start`: runs the node until SIGINT or SIGTERM.
async fn run_node(args: NodeStartArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let config = crate::server::NodeConfig {
        id: args.id,
        data_dir: args.data_dir,
        raft_addr: args.raft_addr,
        http_addr: args.http_addr,
        enable_fault_admin: args.enable_fault_admin,
    };
    // Register the handlers before the node starts, so an early signal is not lost.
    let shutdown = shutdown_signal().context("cannot install the SIGINT/SIGTERM handlers")?;
    crate::server::run_node(config, async move {
        let name = shutdown.await;
        tracing::info!(signal = name, "shutting down");
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// A future that completes with the signal's name at the first SIGINT or SIGTERM.
pub fn shutdown_signal(
) -> std::io::Result<impl std::future::Future<Output = &'static str> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cbank").chain(args.iter().copied()))
    }

    const KEY_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn node_start_parses_its_addresses() {
        let cli = parse(&[
            "node",
            "start",
            "--id",
            "2",
            "--data",
            "/tmp/n2",
            "--raft-addr",
            "127.0.0.1:7012",
            "--http-addr",
            "127.0.0.1:7002",
            "--enable-fault-admin",
        ])
        .unwrap();
        let TopCommand::Node {
            command: NodeCommand::Start(args),
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.id, 2);
        assert_eq!(args.raft_addr, "127.0.0.1:7012".parse().unwrap());
        assert!(args.enable_fault_admin);
        assert!(parse(&[
            "node",
            "start",
            "--id",
            "0",
            "--data",
            "d",
            "--raft-addr",
            "127.0.0.1:1",
            "--http-addr",
            "127.0.0.1:2"
        ])
        .is_err());
        assert!(parse(&[
            "node",
            "start",
            "--id",
            "1",
            "--data",
            "d",
            "--raft-addr",
            "nowhere",
            "--http-addr",
            "127.0.0.1:2"
        ])
        .is_err());
    }

    #[test]
    fn transfer_without_subcommand_creates_and_with_one_resolves() {
        let cli = parse(&[
            "transfer",
            "--key",
            "k.json",
            "--node",
            "http://127.0.0.1:7002",
            "--id",
            "7",
            "--from",
            "1",
            "--to",
            "2",
            "--amount",
            "500",
            "--pending",
            "--timeout-s",
            "30",
        ])
        .unwrap();
        let TopCommand::Transfer(TransferCli {
            command: None,
            create: Some(create),
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            (create.id, create.from, create.to, create.amount),
            (7, 1, 2, 500)
        );
        assert!(create.pending);
        assert_eq!(create.timeout_s, Some(30));
        assert_eq!(create.sign_opts().node.url, "http://127.0.0.1:7002");

        let cli = parse(&[
            "transfer",
            "post",
            "--key",
            "k.json",
            "--id",
            "8",
            "--pending-id",
            "7",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            TopCommand::Transfer(TransferCli { command: Some(TransferCommand::Post(ref args)), .. })
                if args.pending_id == 7 && args.amount.is_none()
        ));
        let cli = parse(&["transfer", "show", "7"]).unwrap();
        assert!(matches!(
            cli.command,
            TopCommand::Transfer(TransferCli {
                command: Some(TransferCommand::Show { id: 7, .. }),
                ..
            })
        ));
    }

    #[test]
    fn transfer_subcommands_parse_with_cbank_node_set() {
        // A value from the environment must not count as a `cbank transfer` create argument.
        // No other test reads CBANK_NODE's effect, so setting it here races with nothing.
        std::env::set_var("CBANK_NODE", "http://127.0.0.1:7003");
        let post = parse(&[
            "transfer",
            "post",
            "--key",
            "k.json",
            "--id",
            "8",
            "--pending-id",
            "7",
        ]);
        let create = parse(&[
            "transfer", "--key", "k", "--id", "1", "--from", "1", "--to", "2", "--amount", "5",
        ]);
        std::env::remove_var("CBANK_NODE");
        let post = post.unwrap();
        let TopCommand::Transfer(TransferCli {
            command: Some(TransferCommand::Post(args)),
            ..
        }) = post.command
        else {
            panic!("parsed as {:?}", post.command);
        };
        assert_eq!(args.sign.node.url, "http://127.0.0.1:7003");
        assert!(matches!(
            create.unwrap().command,
            TopCommand::Transfer(TransferCli {
                create: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn bad_transfer_arguments_are_refused() {
        // A timeout only means something for a pending transfer.
        assert!(parse(&[
            "transfer",
            "--key",
            "k",
            "--id",
            "1",
            "--from",
            "1",
            "--to",
            "2",
            "--amount",
            "5",
            "--timeout-s",
            "3"
        ])
        .is_err());
        // Amounts are unsigned integers in minor units.
        assert!(parse(&[
            "transfer", "--key", "k", "--id", "1", "--from", "1", "--to", "2", "--amount", "-5"
        ])
        .is_err());
        assert!(parse(&[
            "transfer", "--key", "k", "--id", "1", "--from", "1", "--to", "2", "--amount", "1.5"
        ])
        .is_err());
        // Missing required arguments.
        assert!(parse(&["transfer", "--key", "k", "--id", "1"]).is_err());
        assert!(parse(&["transfer"]).is_err());
    }

    #[test]
    fn genesis_takes_a_comma_separated_asset_list() {
        let cli = parse(&[
            "genesis",
            "--key",
            "op.json",
            "--assets",
            "CNY,GPUH:H100,TOK:qwen",
        ])
        .unwrap();
        let TopCommand::Genesis(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        let codes: Vec<String> = args.assets.iter().map(|a| a.to_string()).collect();
        assert_eq!(codes, ["CNY", "GPUH:H100", "TOK:qwen"]);
        assert!(parse(&["genesis", "--key", "op.json", "--assets", "CNY,usd"]).is_err());
        assert!(parse(&["genesis", "--key", "op.json"]).is_err());
    }

    #[test]
    fn party_register_validates_id_role_and_key() {
        let ok = parse(&[
            "party",
            "register",
            "--key",
            "op.json",
            "--party",
            "sme-alpha",
            "--role",
            "sme",
            "--public-key",
            KEY_HEX,
        ]);
        let cli = ok.unwrap();
        let TopCommand::Party {
            command:
                PartyCommand::Register {
                    party,
                    role,
                    public_key,
                    ..
                },
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(party.as_str(), "sme-alpha");
        assert_eq!(Role::from(role), Role::Sme);
        assert_eq!(public_key.to_string(), KEY_HEX);
        for bad in [
            ["--party", "SME", "--role", "sme", "--public-key", KEY_HEX],
            ["--party", "sme", "--role", "king", "--public-key", KEY_HEX],
            ["--party", "sme", "--role", "sme", "--public-key", "abcd"],
            ["--party", "sme", "--role", "sme", "--public-key", "zz"],
        ] {
            let mut args = vec!["party", "register", "--key", "op.json"];
            args.extend(bad);
            assert!(parse(&args).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn account_create_defaults_to_a_guarded_main_account() {
        let cli = parse(&[
            "account", "create", "--key", "k", "--id", "10201", "--asset", "CNY",
        ])
        .unwrap();
        let TopCommand::Account {
            command:
                AccountCommand::Create {
                    id,
                    asset,
                    kind,
                    no_overdraft_guard,
                    ..
                },
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            (id, asset, AccountKind::from(kind), no_overdraft_guard),
            (10201, Asset::Cny, AccountKind::Main, false)
        );
        let cli = parse(&[
            "account",
            "create",
            "--key",
            "k",
            "--id",
            "1001",
            "--asset",
            "GPUH:H100",
            "--kind",
            "mint",
            "--no-overdraft-guard",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            TopCommand::Account {
                command: AccountCommand::Create {
                    kind: AccountKindArg::Mint,
                    no_overdraft_guard: true,
                    ..
                }
            }
        ));
        assert!(parse(&[
            "account", "create", "--key", "k", "--id", "1", "--asset", "CNY", "--kind", "vault"
        ])
        .is_err());
    }

    #[test]
    fn cluster_commands_need_a_token_source() {
        assert!(parse(&["cluster", "promote", "--id", "2"]).is_err());
        assert!(parse(&[
            "cluster",
            "promote",
            "--id",
            "2",
            "--data",
            "d",
            "--token-file",
            "t"
        ])
        .is_err());
        let cli = parse(&[
            "cluster",
            "init",
            "--data",
            "d",
            "--member",
            "1=127.0.0.1:7011,127.0.0.1:7001",
            "--member",
            "2=127.0.0.1:7012,127.0.0.1:7002",
        ])
        .unwrap();
        let TopCommand::Cluster {
            command: ClusterCommand::Init { members, admin },
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].http_addr, "127.0.0.1:7002".parse().unwrap());
        assert_eq!(admin.token.data_dir, Some(PathBuf::from("d")));
        // Status is a plain read.
        assert!(parse(&["cluster", "status", "--node", "http://127.0.0.1:7003"]).is_ok());
    }

    #[test]
    fn member_specs_parse_or_explain() {
        let member = parse_member("3=127.0.0.1:7013,127.0.0.1:7003").unwrap();
        assert_eq!(member.id, 3);
        assert_eq!(member.raft_addr, "127.0.0.1:7013".parse().unwrap());
        for bad in [
            "3",
            "3=127.0.0.1:7013",
            "x=127.0.0.1:1,127.0.0.1:2",
            "0=127.0.0.1:1,127.0.0.1:2",
            "3=a,b",
        ] {
            let error = parse_member(bad).unwrap_err();
            assert!(
                error.contains("ID=RAFT_ADDR,HTTP_ADDR") || error.contains("start at 1"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn reads_and_dev_parse() {
        assert!(parse(&[
            "account",
            "transfers",
            "10201",
            "--after",
            "5",
            "--limit",
            "10",
            "--local"
        ])
        .is_ok());
        assert!(parse(&["journal", "--from", "1", "--limit", "10"]).is_ok());
        assert!(parse(&["head"]).is_ok());
        assert!(parse(&["party", "show", "sme-alpha"]).is_ok());
        let cli = parse(&["dev", "--data", "/tmp/cb"]).unwrap();
        assert!(matches!(
            cli.command,
            TopCommand::Dev(DevArgs {
                base_port: None,
                ..
            })
        ));
        assert!(parse(&["dev"]).is_err());
        assert!(parse(&["keys", "new", "--party", "Bad Id", "--out", "x"]).is_err());
    }
}
