//! `cbank dev`: a local three-node cluster, each node a child process of this binary.
//!
//! Node i ∈ {1, 2, 3} keeps its data in `DIR/node<i>`, serves HTTP on `127.0.0.1:(BASE+i)` and
//! Raft on `127.0.0.1:(BASE+10+i)`, and logs to `DIR/node<i>/node.log`. On the first run
//! (no `DIR/cluster.json`) it forms the cluster (node 1 alone, then nodes 2 and 3 as blocking
//! learners promoted one at a time) and creates the demo world; later runs only start the
//! processes, which resume from their data. `DIR/cluster.json` is written last, so a first
//! run that stopped half-way is simply resumed: every bootstrap step tolerates having been
//! done before.
//!
//! # `DIR/cluster.json`
//!
//! ```json
//! {
//!   "format": 1,
//!   "base_port": 7000,
//!   "members": [{"id": 1, "raft_addr": "127.0.0.1:7011", "http_addr": "127.0.0.1:7001",
//!                "data_dir": "DIR/node1", "log": "DIR/node1/node.log"}, ...],
//!   "assets": ["CNY", "GPUH:H100", "GPUH:A100", "TOK:qwen"],
//!   "operator": {"party": "operator", "key_file": "DIR/keys/operator.json",
//!                "mint_accounts": {"CNY": "1001", "GPUH:H100": "1002", ...}},
//!   "parties": [{"party": "sme-alpha", "role": "sme", "key_file": "DIR/keys/sme-alpha.json",
//!                "accounts": {"CNY": "10201", "GPUH:H100": "10202"}}, ...],
//!   "funding": [{"transfer_id": "1000002", "to_party": "sme-alpha", "account": "10201",
//!                "amount": "10000000", "asset": "CNY"}, ...],
//!   "market": {
//!     "products": [{"product_id": "GPUH:H100/CNY", "base": "GPUH:H100", "quote": "CNY",
//!                   "lot_size": "3600", "tick": "1", "fee_bps": 30}, ...],
//!     "packages": [{"package_id": "qwen-10m-30d", "lister": "provider-telecom",
//!                   "asset": "TOK:qwen", "quantity": "10000000", "price": "990", ...}],
//!     "token_accounts": {"sme-alpha": "10203", "sme-beta": "10303"},
//!     "orders": [{"order_id": "9001", "owner": "univ-tsinghua", "product_id": "GPUH:H100/CNY",
//!                 "side": "sell", "price": "2500", "quantity": "36000"}, ...]
//!   },
//!   "vouchers": {
//!     "programmes": [{"government": "gov-haidian", "programme_id": "beijing-ai-2026",
//!                     "budget": "5000000000", "max_share_bps": 3000, ...}],
//!     "vouchers": [{"voucher_id": "8001", "programme_id": "beijing-ai-2026",
//!                   "beneficiary": "sme-alpha", "amount": "100000000", ...}]
//!   }
//! }
//! ```
//!
//! Account, transfer and order ids are decimal strings, as in the HTTP API. The supermarket's
//! demo (the `market` section) and the vouchers' (the `vouchers` section: the government's
//! programme, as the ledger holds it, and a voucher for an SME) are seeded after the rest; a
//! `cluster.json` written by an older `cbank dev`, without them, gets them on the next start,
//! so resuming never loses the demo.
//!
//! The children run in their own process group, so a terminal's Ctrl-C reaches only this
//! process, which stops them in order: SIGTERM to each, a bounded wait, SIGKILL for
//! stragglers. A child that dies on its own is reported and the others are stopped. This
//! module never touches a node's data files; the nodes own them.

use super::client::NodeClient;
use super::cluster::{self, ClusterView, Member, ADMIN_TOKEN_FILE};
use super::commands::{outcome_failures, sign_and_submit};
use super::keys::{read_key_file, write_key_file, KeyFile};
use super::DevArgs;
use anyhow::{bail, Context};
use ledger::shelf::PackageSpec;
use ledger::trading::{OrderSpec, ProductSpec};
use ledger::vouchers::{Beneficiaries, Eligible, ProgrammeSpec, VoucherSpec};
use ledger::{
    AccountFlags, AccountKind, Asset, Command, NewAccount, PartyId, Role, Transfer, TransferFlags,
};
use market::book::{SelfTrade, Side, TimeInForce};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The base port when neither the flag nor an existing cluster.json gives one.
pub const BASE_PORT_DEFAULT: u16 = 7000;

/// Nodes in the dev cluster.
pub const NODE_COUNT: u64 = 3;

/// How long each node may take to answer `/v1/health` after it is spawned.
const HEALTH_WAIT: Duration = Duration::from_secs(60);

/// How long the cluster may take to elect a leader (after init, or after a restart).
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// How long a child may take to stop after SIGTERM before it gets SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// How long to wait for the kernel to reap a child after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Between two polls of a node that is not ready yet.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How often a bootstrap write is retried when the node says it is busy or has no leader yet.
const BOOTSTRAP_ATTEMPTS_MAX: u32 = 20;

/// The demo world's assets.
const DEMO_ASSETS: [&str; 4] = ["CNY", "GPUH:H100", "GPUH:A100", "TOK:qwen"];

/// The operator's party id in the demo world.
const OPERATOR: &str = "operator";

/// The demo parties, in the order that numbers their accounts.
const DEMO_PARTIES: [(&str, Role); 6] = [
    ("univ-tsinghua", Role::Institution),
    ("sme-alpha", Role::Sme),
    ("sme-beta", Role::Sme),
    ("gov-haidian", Role::Government),
    ("provider-telecom", Role::Provider),
    ("auditor-public", Role::Auditor),
];

/// The assets every non-auditor party gets a main account in.
const MAIN_ACCOUNT_ASSETS: [&str; 2] = ["CNY", "GPUH:H100"];

/// Who is funded from the CNY mint, and how much: ¥100,000.00 each, in fen.
const FUNDED_PARTIES: [&str; 3] = ["sme-alpha", "sme-beta", "gov-haidian"];
const FUNDING_AMOUNT_FEN: u128 = 10_000_000;

/// Transfer code of the demo's deposits from the mint.
const FUNDING_TRANSFER_CODE: u16 = 1;

/// The demo's continuous order book: H100 GPU-hours for yuan, one lot an hour (3,600
/// GPU-seconds), prices in whole fen per lot, a 0.3% seller's fee.
const CONTINUOUS_PRODUCT: &str = "GPUH:H100/CNY";

/// The demo's call-auction book: the same goods, cleared at one price every 10 seconds.
const AUCTION_PRODUCT: &str = "GPUH:H100@auction/CNY";
const AUCTION_INTERVAL_S: u32 = 10;

const LOT_SIZE_GPU_S: u128 = 3_600;
const TICK_FEN: u64 = 1;
const FEE_BPS: u16 = 30;

/// The token family the demo's package sells.
const TOKEN_ASSET: &str = "TOK:qwen";

/// The provider that lists and meters the token package.
const PROVIDER: &str = "provider-telecom";

/// "10,000,000 tokens of qwen, 30 days, ¥9.9", 1,000 in stock.
const TOKEN_PACKAGE_ID: &str = "qwen-10m-30d";
const TOKEN_PACKAGE_TITLE: &str = "10,000,000 tokens of qwen, 30 days";
const TOKEN_PACKAGE_TOKENS: u128 = 10_000_000;
const TOKEN_PACKAGE_PRICE_FEN: u128 = 990;
const TOKEN_PACKAGE_VALIDITY_S: u32 = 30 * 24 * 3600;
const TOKEN_PACKAGE_STOCK: u64 = 1_000;

/// The parties that get a `TOK:qwen` account to receive token quotas in.
const TOKEN_ACCOUNT_PARTIES: [&str; 2] = ["sme-alpha", "sme-beta"];

/// The institution whose GPU time is on sale, and how much it is given from the `GPUH:H100`
/// mint to sell: 100 H100-hours.
const SELLER: &str = "univ-tsinghua";
const SELLER_FUNDING_GPU_S: u128 = 100 * 3_600;

/// The funding transfer of the seller's GPU time.
const SELLER_FUNDING_TRANSFER_ID: u128 = 1_000_101;

/// The SME whose bid rests on the demo book.
const BIDDER: &str = "sme-alpha";

/// The demo's resting orders: (order id, owner, side, price per lot in fen, lots). The ask is
/// ¥25.00 an H100-hour, the bid ¥23.00, so they rest without trading.
const DEMO_ORDERS: [(u128, &str, Side, u64, u128); 2] = [
    (9_001, SELLER, Side::Sell, 2_500, 10),
    (9_002, BIDDER, Side::Buy, 2_300, 5),
];

/// The government that runs the demo's voucher programme.
const GOVERNMENT: &str = "gov-haidian";

/// "Beijing AI compute vouchers 2026": ¥50,000,000 paying 30% of SMEs' GPU-hour and qwen token
/// purchases, at most ¥2,000,000 per SME a year, for a year from its creation.
const PROGRAMME_ID: &str = "beijing-ai-2026";
const PROGRAMME_TITLE: &str = "Beijing AI compute vouchers 2026";
const PROGRAMME_BUDGET_FEN: u128 = 5_000_000_000;
const PROGRAMME_SHARE_BPS: u16 = 3_000;
const PROGRAMME_CAP_PER_YEAR_FEN: u128 = 200_000_000;
const PROGRAMME_VALIDITY_S: u64 = 365 * 24 * 3600;
const PROGRAMME_ELIGIBLE_ASSETS: [&str; 2] = ["GPUH:H100", TOKEN_ASSET];

/// The transfer that gives the government the programme's budget from the CNY mint.
const PROGRAMME_FUNDING_TRANSFER_ID: u128 = 1_000_201;

/// The demo voucher: ¥1,000,000 for sme-alpha, valid as long as the programme.
const VOUCHER_ID: u128 = 8_001;
const VOUCHER_HOLDER: &str = "sme-alpha";
const VOUCHER_AMOUNT_FEN: u128 = 100_000_000;

// The demo voucher fits its programme's budget and the yearly cap.
const _: () = assert!(VOUCHER_AMOUNT_FEN <= PROGRAMME_CAP_PER_YEAR_FEN);
const _: () = assert!(VOUCHER_AMOUNT_FEN <= PROGRAMME_BUDGET_FEN);

/// The operator's mint account for the asset at `position` in `DEMO_ASSETS`: 1001, 1002, …
fn mint_account_id(position: usize) -> u128 {
    1_000 + position as u128 + 1
}

/// The main account of the party at `party_position` in `DEMO_PARTIES` for the asset at
/// `asset_position` in `MAIN_ACCOUNT_ASSETS`: 10101, 10102, 10201, …
fn main_account_id(party_position: usize, asset_position: usize) -> u128 {
    10_000 + 100 * (party_position as u128 + 1) + asset_position as u128 + 1
}

/// A party's main account of `asset`, guarded against overdraft.
fn main_account(id: u128, asset: Asset) -> NewAccount {
    NewAccount {
        id,
        asset,
        kind: AccountKind::Main,
        flags: AccountFlags {
            debits_must_not_exceed_credits: true,
            ..AccountFlags::default()
        },
        reference: 0,
    }
}

/// The position of a demo party in `DEMO_PARTIES`.
fn party_position(party: &str) -> anyhow::Result<usize> {
    DEMO_PARTIES
        .iter()
        .position(|(name, _)| *name == party)
        .with_context(|| format!("{party} is not a demo party"))
}

/// The `TOK:qwen` account of a demo party: the asset after `MAIN_ACCOUNT_ASSETS`, 10203, ….
fn token_account_id(party_position: usize) -> u128 {
    main_account_id(party_position, MAIN_ACCOUNT_ASSETS.len())
}

/// The funding transfer of the party at `position` in `FUNDED_PARTIES`: 1000001, …
fn funding_transfer_id(position: usize) -> u128 {
    1_000_000 + position as u128 + 1
}

/// A transfer that funds a demo party from a mint, and its line in `cluster.json`.
fn funding(
    id: u128,
    mint: u128,
    to_party: &str,
    account: u128,
    amount: u128,
    asset: &str,
) -> (Transfer, FundingFile) {
    let transfer = Transfer {
        id,
        debit_account_id: mint,
        credit_account_id: account,
        amount,
        pending_id: 0,
        timeout_s: 0,
        code: FUNDING_TRANSFER_CODE,
        reference: 0,
        flags: TransferFlags::default(),
    };
    let line = FundingFile {
        transfer_id: id.to_string(),
        to_party: to_party.to_owned(),
        account: account.to_string(),
        amount: amount.to_string(),
        asset: asset.to_owned(),
    };
    (transfer, line)
}

/// One node's addresses and files (also used by `cbank bench`, which starts its clusters the
/// same way).
#[derive(Clone, Debug)]
pub(crate) struct NodeLayout {
    pub(crate) id: u64,
    pub(crate) raft_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) log: PathBuf,
}

impl NodeLayout {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub(crate) fn member(&self) -> Member {
        Member {
            id: self.id,
            raft_addr: self.raft_addr,
            http_addr: self.http_addr,
        }
    }
}

pub(crate) fn layout(dir: &Path, base_port: u16) -> anyhow::Result<Vec<NodeLayout>> {
    if u32::from(base_port) + 10 + NODE_COUNT as u32 > u32::from(u16::MAX) {
        bail!(
            "--base-port {base_port} is too high: ports up to base+{} are needed",
            10 + NODE_COUNT
        );
    }
    Ok((1..=NODE_COUNT)
        .map(|id| {
            let data_dir = dir.join(format!("node{id}"));
            NodeLayout {
                id,
                raft_addr: SocketAddr::from(([127, 0, 0, 1], base_port + 10 + id as u16)),
                http_addr: SocketAddr::from(([127, 0, 0, 1], base_port + id as u16)),
                log: data_dir.join("node.log"),
                data_dir,
            }
        })
        .collect())
}

/// `DIR/cluster.json` (see the module doc).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ClusterFile {
    format: u32,
    base_port: u16,
    members: Vec<MemberFile>,
    assets: Vec<String>,
    operator: OperatorFile,
    parties: Vec<PartyFile>,
    funding: Vec<FundingFile>,
    /// Absent in a file written before the supermarket existed (seeded on the next start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    market: Option<MarketFile>,
    /// Absent in a file written before vouchers existed (seeded on the next start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vouchers: Option<VouchersFile>,
}

/// The vouchers' demo: programmes (as the ledger holds them) and vouchers.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct VouchersFile {
    programmes: Vec<ProgrammeFile>,
    vouchers: Vec<VoucherSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ProgrammeFile {
    government: String,
    #[serde(flatten)]
    spec: ProgrammeSpec,
}

/// The supermarket's demo: products, packages, token accounts and resting orders.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct MarketFile {
    products: Vec<ProductSpec>,
    packages: Vec<PackageFile>,
    /// Party → its `TOK:qwen` account.
    token_accounts: BTreeMap<String, String>,
    orders: Vec<OrderFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PackageFile {
    lister: String,
    #[serde(flatten)]
    spec: PackageSpec,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OrderFile {
    order_id: String,
    owner: String,
    product_id: String,
    side: Side,
    price: String,
    quantity: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct MemberFile {
    id: u64,
    raft_addr: SocketAddr,
    http_addr: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OperatorFile {
    party: String,
    key_file: PathBuf,
    mint_accounts: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PartyFile {
    party: String,
    role: Role,
    key_file: PathBuf,
    accounts: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FundingFile {
    transfer_id: String,
    to_party: String,
    account: String,
    amount: String,
    asset: String,
}

const CLUSTER_FILE_FORMAT: u32 = 1;

/// Runs `cbank dev`.
pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    let cluster_path = dir.join("cluster.json");
    let existing = read_cluster_file(&cluster_path)?;
    let base_port = match (&existing, args.base_port) {
        (Some(file), Some(port)) if file.base_port != port => bail!(
            "{} was created with --base-port {}; the nodes' Raft addresses are part of the \
             cluster membership, so start it with that port (or use a new --data folder)",
            cluster_path.display(),
            file.base_port
        ),
        (Some(file), _) => file.base_port,
        (None, port) => port.unwrap_or(BASE_PORT_DEFAULT),
    };
    let nodes = layout(&dir, base_port)?;
    for node in &nodes {
        std::fs::create_dir_all(&node.data_dir)
            .with_context(|| format!("cannot create {}", node.data_dir.display()))?;
        refuse_if_running(node)?;
    }

    // Install the handlers before any child exists, so no signal can orphan one.
    let mut signals = Signals::new()?;
    let mut fleet = Fleet::spawn(&nodes)?;

    let startup = async {
        wait_for_health(&nodes).await?;
        match &existing {
            None => {
                let file = bootstrap(&dir, &nodes, base_port).await?;
                write_cluster_file(&cluster_path, &file)?;
            }
            Some(file) if file.market.is_none() || file.vouchers.is_none() => {
                // Written by a `cbank dev` from before the supermarket or the vouchers: add
                // what is missing of the demo now.
                wait_for_leader(&nodes).await?;
                let client = NodeClient::new(&nodes[0].url())?;
                let mut file = file.clone();
                if file.market.is_none() {
                    let market = seed_market(&dir, &client, &mut file.parties).await?;
                    file.funding.push(market.1);
                    file.market = Some(market.0);
                }
                if file.vouchers.is_none() {
                    let vouchers = seed_vouchers(&dir, &client).await?;
                    file.funding.push(vouchers.1);
                    file.vouchers = Some(vouchers.0);
                }
                write_cluster_file(&cluster_path, &file)?;
            }
            Some(_) => {}
        }
        let leader = wait_for_leader(&nodes).await?;
        print_summary(&dir, &nodes, leader, existing.is_none());
        anyhow::Ok(())
    };
    let started = tokio::select! {
        result = startup => result,
        signal = signals.recv() => {
            eprintln!("cbank dev: {signal} during startup; stopping the nodes");
            let clean = fleet.stop().await;
            return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        (index, status) = fleet.next_exit() => {
            let node = &nodes[index];
            Err(anyhow::anyhow!(
                "node {} exited during startup ({}); see {}",
                node.id, describe(status), node.log.display()
            ))
        }
    };
    if let Err(error) = started {
        eprintln!("cbank dev: startup failed; stopping the nodes");
        fleet.stop().await;
        return Err(error);
    }

    tokio::select! {
        signal = signals.recv() => {
            eprintln!("cbank dev: {signal}; stopping the nodes");
            let clean = fleet.stop().await;
            if clean {
                eprintln!("cbank dev: all nodes stopped");
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
        (index, status) = fleet.next_exit() => {
            let node = &nodes[index];
            eprintln!(
                "cbank dev: node {} exited unexpectedly ({}); see {}. Stopping the others.",
                node.id, describe(status), node.log.display()
            );
            fleet.stop().await;
            Ok(ExitCode::FAILURE)
        }
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => status.to_string(),
        None => "its exit status could not be read".to_owned(),
    }
}

fn read_cluster_file(path: &Path) -> anyhow::Result<Option<ClusterFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let file: ClusterFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a cbank dev cluster file (delete the folder to start afresh)",
            path.display()
        )
    })?;
    if file.format != CLUSTER_FILE_FORMAT {
        bail!(
            "{} has format {}, this cbank knows {CLUSTER_FILE_FORMAT}",
            path.display(),
            file.format
        );
    }
    Ok(Some(file))
}

/// Writes the cluster file atomically: a reader sees the old file or the whole new one.
fn write_cluster_file(path: &Path, file: &ClusterFile) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = serde_json::to_string_pretty(file).context("encoding cluster.json")?;
    text.push('\n');
    let temporary = path.with_extension("json.tmp");
    let mut out = std::fs::File::create(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| {
        format!(
            "cannot rename {} to {}",
            temporary.display(),
            path.display()
        )
    })?;
    Ok(())
}

/// Refuses to start a node whose pid file names a live process that runs on the same data
/// folder (a `cbank dev` already running there).
fn refuse_if_running(node: &NodeLayout) -> anyhow::Result<()> {
    let pid_path = node.data_dir.join(crate::server::PID_FILE);
    let Ok(text) = std::fs::read_to_string(&pid_path) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Ok(());
    };
    let Ok(command_line) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return Ok(());
    };
    let data_dir = node.data_dir.as_os_str().as_encoded_bytes();
    let running_here = command_line
        .split(|byte| *byte == 0)
        .any(|argument| argument == data_dir);
    if running_here {
        bail!(
            "node {} already runs on {} (pid {pid}, from {}); stop it first",
            node.id,
            node.data_dir.display(),
            pid_path.display()
        );
    }
    Ok(())
}

/// SIGINT and SIGTERM, as a stream of names.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// The three child processes. Each is waited for by its own task, which reports its exit on
/// a channel; signals go by pid, and only to children whose exit has not been reported.
struct Fleet {
    pids: Vec<Option<Pid>>,
    exited: Vec<bool>,
    exits: tokio::sync::mpsc::Receiver<(usize, Option<ExitStatus>)>,
    ids: Vec<u64>,
}

impl Fleet {
    fn spawn(nodes: &[NodeLayout]) -> anyhow::Result<Fleet> {
        let program = std::env::current_exe().context("cannot find this program's path")?;
        // Bounded by construction: each child's task sends exactly one message.
        let (sender, exits) = tokio::sync::mpsc::channel(nodes.len());
        let mut fleet = Fleet {
            pids: Vec::new(),
            exited: Vec::new(),
            exits,
            ids: nodes.iter().map(|node| node.id).collect(),
        };
        for (index, node) in nodes.iter().enumerate() {
            let spawned = spawn_node(&program, node, &[]);
            let mut child = match spawned {
                Ok(child) => child,
                Err(error) => {
                    // Do not leave the ones already started behind; their tasks reap them.
                    for pid in fleet.pids.iter().flatten() {
                        let _ = kill(*pid, Signal::SIGKILL);
                    }
                    return Err(error);
                }
            };
            let pid = child
                .id()
                .and_then(|pid| i32::try_from(pid).ok())
                .map(Pid::from_raw);
            fleet.pids.push(pid);
            fleet.exited.push(false);
            let sender = sender.clone();
            tokio::spawn(async move {
                let status = child.wait().await.ok();
                // The receiver is gone only when `cbank dev` is exiting anyway.
                let _ = sender.send((index, status)).await;
            });
        }
        Ok(fleet)
    }

    /// The next child to exit (index into the node list) and its status. Pends forever once
    /// all have exited.
    async fn next_exit(&mut self) -> (usize, Option<ExitStatus>) {
        match self.exits.recv().await {
            Some((index, status)) => {
                self.exited[index] = true;
                (index, status)
            }
            None => std::future::pending().await,
        }
    }

    fn signal_running(&self, signal: Signal) {
        for (index, pid) in self.pids.iter().enumerate() {
            if let (Some(pid), false) = (pid, self.exited[index]) {
                if let Err(error) = kill(*pid, signal) {
                    tracing::debug!(%error, node = self.ids[index], "cannot signal the node");
                }
            }
        }
    }

    fn all_exited(&self) -> bool {
        self.exited.iter().all(|exited| *exited)
    }

    /// Stops every running child: SIGTERM, a bounded wait, SIGKILL for stragglers. `true` if
    /// each one stopped by itself after SIGTERM with a success status.
    async fn stop(&mut self) -> bool {
        let mut clean = true;
        self.signal_running(Signal::SIGTERM);
        let deadline = Instant::now() + STOP_WAIT;
        while !self.all_exited() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.next_exit()).await {
                Ok((index, status)) => {
                    let success = status.is_some_and(|status| status.success());
                    clean &= success;
                    if success {
                        eprintln!("cbank dev: node {} stopped", self.ids[index]);
                    } else {
                        eprintln!(
                            "cbank dev: node {} stopped ({})",
                            self.ids[index],
                            describe(status)
                        );
                    }
                }
                Err(_) => break,
            }
        }
        if !self.all_exited() {
            clean = false;
            for (index, exited) in self.exited.iter().enumerate() {
                if !exited {
                    eprintln!(
                        "cbank dev: node {} did not stop within {} s of SIGTERM; sending SIGKILL",
                        self.ids[index],
                        STOP_WAIT.as_secs()
                    );
                }
            }
            self.signal_running(Signal::SIGKILL);
            let deadline = Instant::now() + KILL_WAIT;
            while !self.all_exited() {
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, self.next_exit()).await.is_err() {
                    eprintln!("cbank dev: some nodes could not be reaped after SIGKILL");
                    break;
                }
            }
        }
        clean
    }
}

/// Starts `program node start` for `node`, with `env` added to the inherited environment,
/// logging to the node's log file.
pub(crate) fn spawn_node(
    program: &Path,
    node: &NodeLayout,
    env: &[(String, String)],
) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("cannot open the log file {}", node.log.display()))?;
    let log_for_stderr = log
        .try_clone()
        .with_context(|| format!("cannot share the log file {}", node.log.display()))?;
    tokio::process::Command::new(program)
        .arg("node")
        .arg("start")
        .arg("--id")
        .arg(node.id.to_string())
        .arg("--data")
        .arg(&node.data_dir)
        .arg("--raft-addr")
        .arg(node.raft_addr.to_string())
        .arg("--http-addr")
        .arg(node.http_addr.to_string())
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_for_stderr))
        // Own process group: a terminal's Ctrl-C reaches `cbank dev` only, which stops the
        // nodes in order instead of racing them.
        .process_group(0)
        // A safety net for error paths that drop the child without stopping it.
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start node {} ({})", node.id, program.display()))
}

/// Waits until every node answers `GET /v1/health`.
pub(crate) async fn wait_for_health(nodes: &[NodeLayout]) -> anyhow::Result<()> {
    let deadline = Instant::now() + HEALTH_WAIT;
    for node in nodes {
        let client = NodeClient::new(&node.url())?;
        loop {
            match client.get::<serde_json::Value>("/v1/health").await {
                Ok(_) => break,
                Err(error) if Instant::now() >= deadline => bail!(
                    "node {} did not answer GET /v1/health at {} within {} s (last error: {error}); see {}",
                    node.id,
                    node.url(),
                    HEALTH_WAIT.as_secs(),
                    node.log.display()
                ),
                Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }
    Ok(())
}

/// Waits until node 1 knows a leader, and returns the leader's id.
pub(crate) async fn wait_for_leader(nodes: &[NodeLayout]) -> anyhow::Result<u64> {
    let deadline = Instant::now() + LEADER_WAIT;
    let mut last = String::from("no answer yet");
    loop {
        for node in nodes {
            let client = NodeClient::new(&node.url())?;
            match client.get::<ClusterView>("/v1/cluster").await {
                Ok(ClusterView {
                    leader_id: Some(leader),
                    ..
                }) => return Ok(leader),
                Ok(_) => last = format!("node {} knows no leader", node.id),
                Err(error) => last = error.to_string(),
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "no leader within {} s ({last}); see the node logs in {}",
                LEADER_WAIT.as_secs(),
                nodes[0]
                    .data_dir
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Reads a node's admin token, waiting briefly in case the node is still writing it.
pub(crate) async fn admin_client(node: &NodeLayout) -> anyhow::Result<NodeClient> {
    let path = node.data_dir.join(ADMIN_TOKEN_FILE);
    let deadline = Instant::now() + HEALTH_WAIT;
    loop {
        match cluster::read_token(&path) {
            Ok(token) => return Ok(NodeClient::new(&node.url())?.with_admin_token(token)),
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Retries `call` while the node answers that it is busy or has no leader yet.
pub(crate) async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, super::client::RequestError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error)
                if attempt < BOOTSTRAP_ATTEMPTS_MAX
                    && matches!(error.code(), Some("unavailable" | "overloaded" | "timeout")) =>
            {
                tracing::info!(%error, attempt, "{what}: retrying");
                attempt += 1;
                tokio::time::sleep(POLL_INTERVAL * attempt).await;
            }
            Err(error) => return Err(anyhow::Error::new(error).context(what.to_owned())),
        }
    }
}

/// Forms the cluster and creates the demo world; returns what `cluster.json` records.
async fn bootstrap(
    dir: &Path,
    nodes: &[NodeLayout],
    base_port: u16,
) -> anyhow::Result<ClusterFile> {
    form_cluster(nodes, "cbank dev").await?;
    let first = &nodes[0];
    let client = NodeClient::new(&first.url())?;
    let mut world = create_demo_world(dir, &client).await?;
    let (market, seller_funding) = seed_market(dir, &client, &mut world.parties).await?;
    world.funding.push(seller_funding);
    let (vouchers, programme_funding) = seed_vouchers(dir, &client).await?;
    world.funding.push(programme_funding);
    Ok(ClusterFile {
        format: CLUSTER_FILE_FORMAT,
        base_port,
        members: nodes
            .iter()
            .map(|node| MemberFile {
                id: node.id,
                raft_addr: node.raft_addr,
                http_addr: node.http_addr,
                data_dir: node.data_dir.clone(),
                log: node.log.clone(),
            })
            .collect(),
        assets: DEMO_ASSETS.iter().map(|code| (*code).to_owned()).collect(),
        operator: world.operator,
        parties: world.parties,
        funding: world.funding,
        market: Some(market),
        vouchers: Some(vouchers),
    })
}

/// Forms a cluster of `nodes` (running and healthy): the first alone, then each other one added
/// as a blocking learner and promoted to voter, one at a time. A step taken before is skipped,
/// so an interrupted formation is simply resumed. Progress lines start with `label`.
pub(crate) async fn form_cluster(nodes: &[NodeLayout], label: &str) -> anyhow::Result<()> {
    let first = &nodes[0];
    let admin = admin_client(first).await?;
    let view: ClusterView = admin.get("/v1/cluster").await?;
    if view.member(first.id).is_none() {
        println!("{label}: initialising the cluster on node {}", first.id);
        let members = [first.member()];
        with_retries("initialising the cluster", || {
            cluster::init(&admin, &members)
        })
        .await?;
    }
    wait_for_leader(&nodes[..1]).await?;
    for node in &nodes[1..] {
        let view: ClusterView = admin.get("/v1/cluster").await?;
        if view.member(node.id).is_none() {
            println!("{label}: adding node {} as a learner", node.id);
            let member = node.member();
            with_retries("adding a learner", || cluster::add_learner(&admin, &member)).await?;
        }
    }
    for node in &nodes[1..] {
        let view: ClusterView = admin.get("/v1/cluster").await?;
        if !view.member(node.id).is_some_and(|member| member.voter) {
            println!("{label}: promoting node {} to voter", node.id);
            with_retries("promoting a learner", || cluster::promote(&admin, node.id)).await?;
        }
    }
    Ok(())
}

struct DemoWorld {
    operator: OperatorFile,
    parties: Vec<PartyFile>,
    funding: Vec<FundingFile>,
}

/// Reads `DIR/keys/<party>.json`, or creates it with a new key.
fn demo_key_file(dir: &Path, party: &str) -> anyhow::Result<(PathBuf, KeyFile)> {
    let path = dir.join("keys").join(format!("{party}.json"));
    if !path.exists() {
        let key = super::keys::generate_key()?;
        write_key_file(&path, &PartyId::new(party), &key)?;
    }
    let file = read_key_file(&path)?;
    if file.party.as_str() != party {
        bail!(
            "{} is the key of {:?}, not of {party:?}",
            path.display(),
            file.party.as_str()
        );
    }
    Ok((path, file))
}

/// Signs and submits a bootstrap command; a rejection named in `done_before` means the step
/// was already taken by an earlier, interrupted run.
async fn demo_write(
    client: &NodeClient,
    signer: &KeyFile,
    command: Command,
    done_before: &[&str],
) -> anyhow::Result<()> {
    let what = format!("{} signed by {}", command.name(), signer.party);
    let mut attempt = 1;
    loop {
        match sign_and_submit(client, signer, command.clone()).await {
            Ok(response) => {
                let failures = outcome_failures(&response.outcome);
                if failures.is_empty() {
                    return Ok(());
                }
                bail!(
                    "{what}: journal entry {}: {}",
                    response.journal_index,
                    failures.join("; ")
                );
            }
            Err(error) => {
                let code = error
                    .downcast_ref::<super::client::RequestError>()
                    .and_then(|error| error.code())
                    .map(str::to_owned);
                match code.as_deref() {
                    Some(code) if done_before.contains(&code) => return Ok(()),
                    Some("unavailable" | "overloaded" | "timeout")
                        if attempt < BOOTSTRAP_ATTEMPTS_MAX =>
                    {
                        attempt += 1;
                        tokio::time::sleep(POLL_INTERVAL * attempt).await;
                    }
                    _ => return Err(error.context(what)),
                }
            }
        }
    }
}

async fn create_demo_world(dir: &Path, client: &NodeClient) -> anyhow::Result<DemoWorld> {
    println!(
        "cbank dev: creating the demo world (keys in {})",
        dir.join("keys").display()
    );
    let assets: Vec<Asset> = DEMO_ASSETS
        .iter()
        .map(|code| code.parse::<Asset>())
        .collect::<Result<_, _>>()
        .context("a demo asset code")?;
    let (operator_key_path, operator) = demo_key_file(dir, OPERATOR)?;
    let genesis = Command::Genesis {
        operator: operator.party.clone(),
        keys: vec![operator.key.public_key()],
        assets: assets.clone(),
    };
    demo_write(client, &operator, genesis, &["genesis_already_applied"]).await?;

    let mut mint_accounts = BTreeMap::new();
    let mints = assets
        .iter()
        .enumerate()
        .map(|(position, asset)| {
            mint_accounts.insert(asset.to_string(), mint_account_id(position).to_string());
            NewAccount {
                id: mint_account_id(position),
                asset: asset.clone(),
                kind: AccountKind::Mint,
                // A mint is where assets enter the ledger: it runs a debit balance.
                flags: AccountFlags::default(),
                reference: 0,
            }
        })
        .collect();
    demo_write(
        client,
        &operator,
        Command::CreateAccounts { accounts: mints },
        &[],
    )
    .await?;

    let mut parties = Vec::new();
    let mut accounts_by_party = BTreeMap::new();
    for (party_position, (party, role)) in DEMO_PARTIES.iter().enumerate() {
        let (key_path, key_file) = demo_key_file(dir, party)?;
        let register = Command::RegisterParty {
            party: key_file.party.clone(),
            role: *role,
            keys: vec![key_file.key.public_key()],
        };
        demo_write(client, &operator, register, &["party_exists"]).await?;
        let mut accounts = BTreeMap::new();
        if *role != Role::Auditor {
            let mut new_accounts = Vec::new();
            for (asset_position, code) in MAIN_ACCOUNT_ASSETS.iter().enumerate() {
                let id = main_account_id(party_position, asset_position);
                accounts.insert((*code).to_owned(), id.to_string());
                new_accounts.push(main_account(id, code.parse().context("a demo asset code")?));
            }
            let command = Command::CreateAccounts {
                accounts: new_accounts,
            };
            demo_write(client, &key_file, command, &[]).await?;
        }
        accounts_by_party.insert(*party, accounts.clone());
        parties.push(PartyFile {
            party: (*party).to_owned(),
            role: *role,
            key_file: key_path,
            accounts,
        });
    }

    let cny_mint = mint_account_id(0);
    let mut transfers = Vec::new();
    let mut funding = Vec::new();
    for (position, party) in FUNDED_PARTIES.iter().enumerate() {
        let account = accounts_by_party
            .get(party)
            .and_then(|accounts| accounts.get("CNY"))
            .and_then(|id| id.parse::<u128>().ok())
            .with_context(|| format!("the demo party {party} has no CNY account"))?;
        let id = funding_transfer_id(position);
        let (transfer, line) =
            self::funding(id, cny_mint, party, account, FUNDING_AMOUNT_FEN, "CNY");
        transfers.push(transfer);
        funding.push(line);
    }
    demo_write(
        client,
        &operator,
        Command::CreateTransfers { transfers },
        &[],
    )
    .await?;

    Ok(DemoWorld {
        operator: OperatorFile {
            party: OPERATOR.to_owned(),
            key_file: operator_key_path,
            mint_accounts,
        },
        parties,
        funding,
    })
}

/// Seeds the supermarket's demo (every step tolerates having been taken before): the token
/// asset, the SMEs' `TOK:qwen` accounts (added to `parties`), 100 H100-hours for the
/// institution to sell, the continuous and auction products, the provider's token package,
/// and a resting ask and bid on the continuous book. Returns the `market` section and the
/// seller's funding line.
async fn seed_market(
    dir: &Path,
    client: &NodeClient,
    parties: &mut [PartyFile],
) -> anyhow::Result<(MarketFile, FundingFile)> {
    println!("cbank dev: stocking the supermarket");
    let (_, operator) = demo_key_file(dir, OPERATOR)?;
    let token: Asset = TOKEN_ASSET.parse().context("the demo token asset")?;
    let h100: Asset = "GPUH:H100".parse().context("a demo asset code")?;
    let register = Command::RegisterAsset {
        asset: token.clone(),
    };
    demo_write(client, &operator, register, &["asset_exists"]).await?;

    let mut token_accounts = BTreeMap::new();
    for party in TOKEN_ACCOUNT_PARTIES {
        let id = token_account_id(party_position(party)?);
        let (_, key_file) = demo_key_file(dir, party)?;
        let command = Command::CreateAccounts {
            accounts: vec![main_account(id, token.clone())],
        };
        demo_write(client, &key_file, command, &[]).await?;
        token_accounts.insert(party.to_owned(), id.to_string());
        if let Some(file) = parties.iter_mut().find(|file| file.party == party) {
            file.accounts.insert(TOKEN_ASSET.to_owned(), id.to_string());
        }
    }

    let seller = party_position(SELLER)?;
    let seller_gpu = main_account_id(seller, 1);
    let h100_mint = DEMO_ASSETS
        .iter()
        .position(|code| *code == "GPUH:H100")
        .map(mint_account_id)
        .context("GPUH:H100 is a demo asset")?;
    let (transfer, seller_funding) = funding(
        SELLER_FUNDING_TRANSFER_ID,
        h100_mint,
        SELLER,
        seller_gpu,
        SELLER_FUNDING_GPU_S,
        "GPUH:H100",
    );
    let command = Command::CreateTransfers {
        transfers: vec![transfer],
    };
    demo_write(client, &operator, command, &[]).await?;

    let products: Vec<ProductSpec> = [
        (CONTINUOUS_PRODUCT, None),
        (AUCTION_PRODUCT, Some(AUCTION_INTERVAL_S)),
    ]
    .into_iter()
    .map(|(product_id, auction_interval_s)| ProductSpec {
        product_id: product_id.to_owned(),
        base: h100.clone(),
        quote: Asset::Cny,
        lot_size: LOT_SIZE_GPU_S,
        tick: TICK_FEN,
        fee_bps: FEE_BPS,
        auction_interval_s,
    })
    .collect();
    for product in &products {
        let command = Command::ListProduct {
            product: product.clone(),
        };
        demo_write(client, &operator, command, &[]).await?;
    }

    let provider = party_position(PROVIDER)?;
    let (_, provider_key) = demo_key_file(dir, PROVIDER)?;
    let package = PackageSpec {
        package_id: TOKEN_PACKAGE_ID.to_owned(),
        title: TOKEN_PACKAGE_TITLE.to_owned(),
        asset: token,
        quantity: TOKEN_PACKAGE_TOKENS,
        price: TOKEN_PACKAGE_PRICE_FEN,
        validity_s: TOKEN_PACKAGE_VALIDITY_S,
        stock: TOKEN_PACKAGE_STOCK,
        seller_account_id: main_account_id(provider, 0),
        goods_account_id: None,
        provider: Some(provider_key.party.clone()),
    };
    let command = Command::ListPackage {
        package: package.clone(),
    };
    demo_write(client, &provider_key, command, &[]).await?;

    let mut orders = Vec::new();
    for (order_id, owner, side, price, lots) in DEMO_ORDERS {
        let position = party_position(owner)?;
        let (_, key_file) = demo_key_file(dir, owner)?;
        let order = OrderSpec {
            order_id,
            product_id: CONTINUOUS_PRODUCT.to_owned(),
            side,
            price: Some(price),
            quantity: lots * LOT_SIZE_GPU_S,
            time_in_force: TimeInForce::Gtc,
            post_only: true,
            self_trade: SelfTrade::CancelTaker,
            base_account_id: main_account_id(position, 1),
            quote_account_id: main_account_id(position, 0),
            vouchers: Vec::new(),
        };
        orders.push(OrderFile {
            order_id: order_id.to_string(),
            owner: owner.to_owned(),
            product_id: order.product_id.clone(),
            side,
            price: price.to_string(),
            quantity: order.quantity.to_string(),
        });
        demo_write(client, &key_file, Command::PlaceOrder { order }, &[]).await?;
    }

    let market = MarketFile {
        products,
        packages: vec![PackageFile {
            lister: PROVIDER.to_owned(),
            spec: package,
        }],
        token_accounts,
        orders,
    };
    Ok((market, seller_funding))
}

/// What the demo reads back of a programme or voucher: its spec as the ledger holds it.
#[derive(Debug, Deserialize)]
struct SpecRead<T> {
    spec: T,
}

/// Seeds the vouchers' demo (every step tolerates having been taken before): the programme's
/// budget for the government from the CNY mint, the programme, and a voucher for an SME.
/// Returns the `vouchers` section, with the programme and voucher as the ledger holds them
/// (an earlier, interrupted run may have created them with other times), and the funding line.
async fn seed_vouchers(
    dir: &Path,
    client: &NodeClient,
) -> anyhow::Result<(VouchersFile, FundingFile)> {
    println!("cbank dev: opening the voucher programme {PROGRAMME_ID}");
    let (_, operator) = demo_key_file(dir, OPERATOR)?;
    let (_, government) = demo_key_file(dir, GOVERNMENT)?;
    let government_cny = main_account_id(party_position(GOVERNMENT)?, 0);
    let (transfer, programme_funding) = funding(
        PROGRAMME_FUNDING_TRANSFER_ID,
        mint_account_id(0),
        GOVERNMENT,
        government_cny,
        PROGRAMME_BUDGET_FEN,
        "CNY",
    );
    let command = Command::CreateTransfers {
        transfers: vec![transfer],
    };
    demo_write(client, &operator, command, &[]).await?;

    let now_ns = super::bank::now_ns()?;
    let assets = PROGRAMME_ELIGIBLE_ASSETS
        .iter()
        .map(|code| code.parse::<Asset>())
        .collect::<Result<Vec<_>, _>>()
        .context("a demo asset code")?;
    let programme = ProgrammeSpec {
        programme_id: PROGRAMME_ID.to_owned(),
        title: PROGRAMME_TITLE.to_owned(),
        budget: PROGRAMME_BUDGET_FEN,
        funding_account_id: government_cny,
        eligible: Eligible {
            products: Vec::new(),
            packages: Vec::new(),
            assets,
        },
        max_share_bps: PROGRAMME_SHARE_BPS,
        cap_per_beneficiary_per_year: PROGRAMME_CAP_PER_YEAR_FEN,
        valid_from_ns: now_ns,
        valid_until_ns: now_ns + PROGRAMME_VALIDITY_S * ledger::limits::NS_PER_S,
        beneficiaries: Beneficiaries::Role(Role::Sme),
        stackable: false,
    };
    let command = Command::CreateProgramme { programme };
    let again = ["programme_exists_with_different_fields"];
    demo_write(client, &government, command, &again).await?;
    let path = format!("/v1/programmes/{PROGRAMME_ID}");
    let programme: SpecRead<ProgrammeSpec> = client.get(&path).await?;

    let voucher = VoucherSpec {
        voucher_id: VOUCHER_ID,
        programme_id: PROGRAMME_ID.to_owned(),
        beneficiary: PartyId::new(VOUCHER_HOLDER),
        amount: VOUCHER_AMOUNT_FEN,
        expires_at_ns: programme.spec.valid_until_ns,
    };
    let command = Command::IssueVoucher { voucher };
    let again = ["voucher_exists_with_different_fields"];
    demo_write(client, &government, command, &again).await?;
    let voucher: SpecRead<VoucherSpec> = client.get(&format!("/v1/vouchers/{VOUCHER_ID}")).await?;

    let vouchers = VouchersFile {
        programmes: vec![ProgrammeFile {
            government: GOVERNMENT.to_owned(),
            spec: programme.spec,
        }],
        vouchers: vec![voucher.spec],
    };
    Ok((vouchers, programme_funding))
}

fn print_summary(dir: &Path, nodes: &[NodeLayout], leader: u64, first_run: bool) {
    let state = if first_run { "created" } else { "resumed" };
    println!();
    println!(
        "cbank dev: 3-node cluster {state}; data in {}",
        dir.display()
    );
    for node in nodes {
        println!(
            "  node {}  http://{}  (raft {}, log {})",
            node.id,
            node.http_addr,
            node.raft_addr,
            node.log.display()
        );
    }
    println!("  leader: node {leader}");
    let keys = dir.join("keys");
    let sme = keys.join("sme-alpha.json");
    let url = nodes[0].url();
    let payer = main_account_id(1, 0);
    let payee = main_account_id(0, 0);
    println!();
    println!(
        "Try (accounts and key files are listed in {}):",
        dir.join("cluster.json").display()
    );
    println!("  export CBANK_NODE={url}");
    println!("  cbank cluster status");
    println!("  cbank account show {payer}");
    println!(
        "  cbank transfer --key {} --id 42 --from {payer} --to {payee} --amount 50000",
        sme.display()
    );
    println!("  cbank account transfers {payer}");
    println!("  cbank journal --from 1 --limit 5");
    println!("  cbank head");
    println!("  cbank market products");
    println!("  cbank market depth --product {CONTINUOUS_PRODUCT}");
    let token_account = token_account_id(1);
    println!(
        "  cbank shelf buy --key {} --purchase-id 77 --package-id {TOKEN_PACKAGE_ID} \\\n      --pay-account {payer} --receive-account {token_account}",
        sme.display()
    );
    println!("  cbank usage quotas {token_account}");
    println!(
        "  cbank shelf buy --key {} --purchase-id 78 --package-id {TOKEN_PACKAGE_ID} \\\n      --pay-account {payer} --receive-account {token_account} --voucher {VOUCHER_ID}",
        sme.display()
    );
    println!("  cbank voucher list --party {VOUCHER_HOLDER}");
    println!("  cbank programme report {PROGRAMME_ID} --format csv");
    let node_flags: Vec<String> = nodes
        .iter()
        .map(|node| format!("--node {}", node.url()))
        .collect();
    println!(
        "  cbank audit export {} --out audit.json",
        node_flags.join(" ")
    );
    println!("  cbank audit verify audit.json --node-keys audit.json.node-keys.json");
    println!();
    println!("Press Ctrl-C to stop the cluster.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_matches_the_documented_ports() {
        let nodes = layout(Path::new("/d"), 7000).unwrap();
        let ports: Vec<(u64, u16, u16)> = nodes
            .iter()
            .map(|node| (node.id, node.http_addr.port(), node.raft_addr.port()))
            .collect();
        assert_eq!(ports, [(1, 7001, 7011), (2, 7002, 7012), (3, 7003, 7013)]);
        assert_eq!(nodes[1].data_dir, Path::new("/d/node2"));
        assert_eq!(nodes[1].log, Path::new("/d/node2/node.log"));
        assert!(layout(Path::new("/d"), u16::MAX - 5).is_err());
    }

    #[test]
    fn demo_ids_do_not_collide() {
        let mut ids = std::collections::BTreeSet::new();
        for position in 0..DEMO_ASSETS.len() {
            assert!(ids.insert(mint_account_id(position)));
        }
        for party in 0..DEMO_PARTIES.len() {
            for asset in 0..MAIN_ACCOUNT_ASSETS.len() {
                assert!(ids.insert(main_account_id(party, asset)));
            }
        }
        assert_eq!(main_account_id(1, 0), 10201);
        for party in FUNDED_PARTIES {
            assert!(DEMO_PARTIES
                .iter()
                .any(|(name, role)| *name == party && *role != Role::Auditor));
        }
        for (party, _) in DEMO_PARTIES {
            assert!(PartyId::new(party).is_valid());
        }
        for code in DEMO_ASSETS.iter().chain(MAIN_ACCOUNT_ASSETS.iter()) {
            assert!(code.parse::<Asset>().is_ok());
        }
        // The supermarket's demo names demo parties and fresh ids.
        for party in TOKEN_ACCOUNT_PARTIES {
            let position = party_position(party).unwrap();
            assert!(ids.insert(token_account_id(position)));
        }
        assert_eq!(token_account_id(1), 10203);
        for party in [SELLER, BIDDER, PROVIDER] {
            assert!(party_position(party).is_ok());
        }
        assert_eq!(
            DEMO_PARTIES[party_position(PROVIDER).unwrap()].1,
            Role::Provider
        );
        assert!(DEMO_ASSETS.contains(&TOKEN_ASSET));
        assert!((0..FUNDED_PARTIES.len())
            .all(|position| funding_transfer_id(position) != SELLER_FUNDING_TRANSFER_ID));
        // The ask rests above the bid, so the demo's orders do not trade with each other.
        assert!(DEMO_ORDERS[0].3 > DEMO_ORDERS[1].3);
        // The vouchers' demo: a government funds the programme, an SME holds the voucher.
        assert_eq!(
            DEMO_PARTIES[party_position(GOVERNMENT).unwrap()].1,
            Role::Government
        );
        assert_eq!(
            DEMO_PARTIES[party_position(VOUCHER_HOLDER).unwrap()].1,
            Role::Sme
        );
        let funding_ids: Vec<u128> = (0..FUNDED_PARTIES.len())
            .map(funding_transfer_id)
            .chain([SELLER_FUNDING_TRANSFER_ID])
            .collect();
        assert!(!funding_ids.contains(&PROGRAMME_FUNDING_TRANSFER_ID));
        assert!(PROGRAMME_ELIGIBLE_ASSETS
            .iter()
            .all(|code| DEMO_ASSETS.contains(code)));
    }

    #[test]
    fn the_cluster_file_round_trips_and_is_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        assert!(read_cluster_file(&path).unwrap().is_none());
        let nodes = layout(dir.path(), 7100).unwrap();
        let file = ClusterFile {
            format: CLUSTER_FILE_FORMAT,
            base_port: 7100,
            members: nodes
                .iter()
                .map(|node| MemberFile {
                    id: node.id,
                    raft_addr: node.raft_addr,
                    http_addr: node.http_addr,
                    data_dir: node.data_dir.clone(),
                    log: node.log.clone(),
                })
                .collect(),
            assets: vec!["CNY".into()],
            operator: OperatorFile {
                party: OPERATOR.into(),
                key_file: dir.path().join("keys/operator.json"),
                mint_accounts: BTreeMap::from([("CNY".into(), "1001".into())]),
            },
            parties: vec![],
            funding: vec![],
            market: None,
            vouchers: None,
        };
        write_cluster_file(&path, &file).unwrap();
        let read = read_cluster_file(&path).unwrap().unwrap();
        assert_eq!(read.base_port, 7100);
        assert_eq!(read.members[2].http_addr.port(), 7103);
        assert!(!path.with_extension("json.tmp").exists());
        assert!(
            read.market.is_none() && read.vouchers.is_none(),
            "a file from before the supermarket and the vouchers reads as one"
        );
        std::fs::write(&path, "{").unwrap();
        let error = format!("{:#}", read_cluster_file(&path).unwrap_err());
        assert!(error.contains("not a cbank dev cluster file"), "{error}");
    }

    #[test]
    fn demo_key_files_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, first) = demo_key_file(dir.path(), "sme-beta").unwrap();
        assert_eq!(path, dir.path().join("keys/sme-beta.json"));
        let (_, again) = demo_key_file(dir.path(), "sme-beta").unwrap();
        assert_eq!(first.key.public_key(), again.key.public_key());
        // A key file under the wrong name is refused, not silently used for another party.
        std::fs::copy(&path, dir.path().join("keys/sme-alpha.json")).unwrap();
        assert!(demo_key_file(dir.path(), "sme-alpha").is_err());
    }
}
