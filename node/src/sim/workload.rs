//! The simulation's clients: the world they trade in, the requests they make, and the history
//! of every request with its virtual invocation and completion times.
//!
//! The world is the benches' (`bench/world.rs`: SME parties with funded CNY and GPU-hour
//! accounts, the `GPUH:H100/CNY` book, a token package, a government with a voucher programme
//! for that package). Each client then loops until told to stop, picking by its own
//! seeded stream: a transfer batch, a limit order, a voucher purchase (the government issues a
//! voucher, the SME spends it on the package), a linearizable read of the journal head, or a
//! linearizable read of an account. A write whose answer is lost is retried with the same
//! signed bytes on another node, a few times; each attempt is its own history record.
//!
//! This file records; it never judges (`checker.rs` does).

use super::cluster::{Reply, SimCluster, NODES};
use crate::bench::world::{
    key_of, transfer, Step, World, WorldSpec, GOVERNMENT, LOT_SIZE_GPU_S, PACKAGE, PRODUCT,
    PROGRAMME,
};
use crate::cli::commands::route_for;
use crate::raft_types::NodeId;
use anyhow::{anyhow, bail};
use axum::http::Method;
use ledger::testing::{Rng, OPERATOR};
use ledger::trading::OrderSpec;
use ledger::vouchers::VoucherSpec;
use ledger::{Balances, Command, Hash, PartyId, SignedCommand};
use market::book::{SelfTrade, Side, TimeInForce};
use serde::Deserialize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// SME parties, one client each.
pub(super) const CLIENTS: usize = 4;

/// Ids of the transfers, orders, purchases and vouchers clients make start here; client `c`
/// uses `ID_START + c * ID_STRIDE` on (the bench world's ids are all below it).
const ID_START: u128 = 5_000_000_000_000;
const ID_STRIDE: u128 = 1_000_000_000;

/// Write attempts per command before the client gives up on it.
const ATTEMPTS_MAX: usize = 4;

/// How long a signed command stays valid (simulated wall clock; the ledger allows at most
/// `ENVELOPE_LIFETIME_NS_MAX`).
const COMMAND_VALIDITY_NS: u64 = 60 * 1_000_000_000;

/// How long an issued voucher stays valid.
const VOUCHER_VALIDITY_NS: u64 = 3_600 * 1_000_000_000;

/// What was asked.
#[derive(Clone, Debug)]
pub(super) enum Call {
    Write(Box<SignedCommand>),
    /// `GET /v1/head` (linearizable).
    ReadHead,
    /// `GET /v1/accounts/{id}` (linearizable).
    ReadAccount(u128),
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// The command is journal entry `index` with `hash`; `rejected` names the ledger's reason
    /// when it refused the command (a refusal is journaled too).
    Journaled {
        index: u64,
        hash: Hash,
        rejected: Option<String>,
    },
    /// A client error with no journal entry: the command was not proposed.
    Refused { status: u16, code: String },
    /// No usable answer: the command may or may not have been applied.
    Unknown(String),
    /// The journal head a read saw.
    Head { index: u64, hash: Hash },
    /// An account's balances a read saw.
    Account(Balances),
}

/// One request: who, when (virtual nanoseconds since the start), to which node, what, and
/// what came back.
#[derive(Clone, Debug)]
pub(super) struct Op {
    pub client: usize,
    pub node: NodeId,
    pub invoked_ns: u64,
    pub completed_ns: u64,
    pub call: Call,
    pub answer: Answer,
}

/// Every request the clients made, in the order they completed.
#[derive(Clone, Default)]
pub(super) struct History {
    ops: Arc<Mutex<Vec<Op>>>,
}

impl History {
    fn push(&self, op: Op) {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(op);
    }

    pub(super) fn ops(&self) -> Vec<Op> {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The accounts the clients read (each party's first CNY account).
pub(super) fn read_accounts(world: &World) -> Vec<u128> {
    world.parties.iter().map(|party| party.cny[0]).collect()
}

/// The world the clients trade in.
pub(super) fn world() -> World {
    World::new(WorldSpec {
        parties: CLIENTS,
        cny_accounts: 2,
        market: true,
        tokens: true,
        vouchers: true,
    })
}

#[derive(Deserialize)]
struct Written {
    journal_index: u64,
    journal_hash: String,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct HeadRead {
    head: ledger::Head,
}

#[derive(Deserialize)]
struct AccountRead {
    balances: Balances,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
}

fn parse_hash(text: &str) -> Option<Hash> {
    let bytes = hex::decode(text).ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

/// Reads a node's reply to `call`.
fn answer_of(call: &Call, reply: Reply) -> Answer {
    let (status, body) = match reply {
        Reply::Answered { status, body } => (status, body),
        Reply::Lost(why) => return Answer::Unknown(why),
    };
    let success = (200..300).contains(&status);
    match call {
        Call::Write(_) => {
            if let Ok(written) = serde_json::from_slice::<Written>(&body) {
                if let Some(hash) = parse_hash(&written.journal_hash) {
                    return Answer::Journaled {
                        index: written.journal_index,
                        hash,
                        rejected: if success { None } else { written.code },
                    };
                }
            }
            let code = serde_json::from_slice::<ErrorBody>(&body)
                .map(|error| error.code)
                .unwrap_or_default();
            if (400..500).contains(&status) {
                Answer::Refused { status, code }
            } else {
                Answer::Unknown(format!("{status} {code}"))
            }
        }
        Call::ReadHead if success => match serde_json::from_slice::<HeadRead>(&body) {
            Ok(read) => Answer::Head {
                index: read.head.index,
                hash: read.head.hash,
            },
            Err(error) => Answer::Unknown(format!("{status}: unreadable head: {error}")),
        },
        Call::ReadAccount(_) if success => match serde_json::from_slice::<AccountRead>(&body) {
            Ok(read) => Answer::Account(read.balances),
            Err(error) => Answer::Unknown(format!("{status}: unreadable account: {error}")),
        },
        Call::ReadHead | Call::ReadAccount(_) => Answer::Unknown(format!("{status}")),
    }
}

/// A client: one party, its own random stream, nonces and ids.
pub(super) struct Client {
    index: usize,
    rng: Rng,
    next_nonce: u128,
    next_id: u128,
    /// The node it sends to first (it moves on when that node fails it).
    node: NodeId,
}

impl Client {
    pub(super) fn new(index: usize, seed: u64) -> Client {
        let stride = index as u128 * ID_STRIDE;
        Client {
            index,
            rng: Rng(seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(index as u64 + 1))),
            next_nonce: 1_000_000 + stride,
            next_id: ID_START + stride,
            node: NODES[index % NODES.len()],
        }
    }

    fn nonce(&mut self) -> u128 {
        self.next_nonce += 1;
        self.next_nonce
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        self.next_id
    }

    fn sign(&mut self, cluster: &SimCluster, signer: &str, command: Command) -> SignedCommand {
        let nonce = self.nonce();
        key_of(signer).sign(
            PartyId::new(signer),
            nonce,
            cluster.wall_ns() + COMMAND_VALIDITY_NS,
            command,
        )
    }

    /// Sends `call` once to the client's current node and records it.
    async fn attempt(&mut self, cluster: &SimCluster, history: &History, call: Call) -> Answer {
        let (method, path, body) = match &call {
            Call::Write(command) => (
                Method::POST,
                route_for(&command.body.command).to_owned(),
                serde_json::to_vec(command).unwrap_or_default(),
            ),
            Call::ReadHead => (Method::GET, "/v1/head".to_owned(), Vec::new()),
            Call::ReadAccount(id) => (Method::GET, format!("/v1/accounts/{id}"), Vec::new()),
        };
        let node = self.node;
        let invoked_ns = cluster.elapsed_ns();
        let reply = cluster
            .request(self.index as u64, node, method, &path, body)
            .await;
        let answer = answer_of(&call, reply);
        if matches!(answer, Answer::Unknown(_))
            || matches!(
                &answer,
                Answer::Refused {
                    status: 503 | 429,
                    ..
                }
            )
        {
            // Try another node next time.
            self.node = NODES[(NODES.iter().position(|&n| n == node).unwrap_or(0)
                + 1
                + self.rng.below(2) as usize)
                % NODES.len()];
        }
        history.push(Op {
            client: self.index,
            node,
            invoked_ns,
            completed_ns: cluster.elapsed_ns(),
            call,
            answer: answer.clone(),
        });
        answer
    }

    /// Sends a signed command until an attempt gets a definite answer, at most
    /// `ATTEMPTS_MAX` times; returns the last answer.
    async fn write(
        &mut self,
        cluster: &SimCluster,
        history: &History,
        command: SignedCommand,
    ) -> Answer {
        let mut answer = Answer::Unknown("not sent".to_owned());
        for _ in 0..ATTEMPTS_MAX {
            answer = self
                .attempt(cluster, history, Call::Write(Box::new(command.clone())))
                .await;
            match &answer {
                Answer::Journaled { .. } => break,
                Answer::Refused { status, .. } if *status != 429 => break,
                _ => tokio::time::sleep(Duration::from_millis(50 + self.rng.below(250))).await,
            }
        }
        answer
    }

    /// One random operation of the workload.
    async fn step(&mut self, cluster: &SimCluster, history: &History, world: &World) {
        let party = &world.parties[self.index];
        let name = party.id.as_str().to_owned();
        let roll = self.rng.below(100);
        if roll < 35 {
            let accounts = world.cny_accounts();
            let count = 1 + self.rng.below(3) as usize;
            let transfers = (0..count)
                .map(|_| {
                    let debit = *self.rng.pick(&party.cny);
                    let mut credit = *self.rng.pick(&accounts);
                    if credit == debit {
                        credit = party.cny[(party.cny[0] == debit) as usize];
                    }
                    let amount = 1 + u128::from(self.rng.below(10_000));
                    transfer(self.id(), debit, credit, amount)
                })
                .collect();
            let command = self.sign(cluster, &name, Command::CreateTransfers { transfers });
            self.write(cluster, history, command).await;
        } else if roll < 60 {
            let side = if self.rng.chance(50) {
                Side::Buy
            } else {
                Side::Sell
            };
            let order = OrderSpec {
                order_id: self.id(),
                product_id: PRODUCT.to_owned(),
                side,
                price: Some(9_900 + self.rng.below(200)),
                quantity: u128::from(1 + self.rng.below(3)) * LOT_SIZE_GPU_S,
                time_in_force: TimeInForce::Gtc,
                post_only: false,
                self_trade: SelfTrade::CancelTaker,
                base_account_id: party.gpu,
                quote_account_id: party.cny[0],
                vouchers: Vec::new(),
            };
            let command = self.sign(cluster, &name, Command::PlaceOrder { order });
            self.write(cluster, history, command).await;
        } else if roll < 72 {
            let voucher_id = self.id();
            let voucher = VoucherSpec {
                voucher_id,
                programme_id: PROGRAMME.to_owned(),
                beneficiary: party.id.clone(),
                amount: 300,
                expires_at_ns: cluster.wall_ns() + VOUCHER_VALIDITY_NS,
            };
            let issue = self.sign(cluster, GOVERNMENT, Command::IssueVoucher { voucher });
            if let Answer::Journaled { rejected: None, .. } =
                self.write(cluster, history, issue).await
            {
                let purchase = ledger::shelf::PurchaseSpec {
                    purchase_id: self.id(),
                    package_id: PACKAGE.to_owned(),
                    pay_account_id: party.cny[0],
                    receive_account_id: party.tok,
                    vouchers: vec![voucher_id],
                };
                let buy = self.sign(cluster, &name, Command::BuyPackage { purchase });
                self.write(cluster, history, buy).await;
            }
        } else if roll < 82 {
            self.attempt(cluster, history, Call::ReadHead).await;
        } else {
            let account = *self.rng.pick(&read_accounts(world));
            self.attempt(cluster, history, Call::ReadAccount(account))
                .await;
        }
    }

    /// After healing: sends one transfer of party 0's (from this client's own id and nonce
    /// range) until an attempt is journaled; false if none is within `wait` (virtual time).
    pub(super) async fn probe(
        &mut self,
        cluster: &SimCluster,
        history: &History,
        world: &World,
        wait: Duration,
    ) -> bool {
        let deadline = cluster.elapsed_ns() + u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        let party = &world.parties[0];
        let transfers = vec![transfer(self.id(), party.cny[0], party.cny[1], 1)];
        let name = party.id.as_str().to_owned();
        let command = self.sign(cluster, &name, Command::CreateTransfers { transfers });
        while cluster.elapsed_ns() < deadline {
            let call = Call::Write(Box::new(command.clone()));
            if let Answer::Journaled { .. } = self.attempt(cluster, history, call).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Runs operations until virtual time `until_ns`, pausing up to 100 ms between them.
    pub(super) async fn run(
        mut self,
        cluster: Arc<SimCluster>,
        history: History,
        world: Arc<World>,
        until_ns: u64,
    ) {
        while cluster.elapsed_ns() < until_ns {
            self.step(&cluster, &history, &world).await;
            tokio::time::sleep(Duration::from_millis(self.rng.below(100))).await;
        }
    }
}

/// The commands that build the world, each with its signer: genesis, then the benches' world
/// (with its government and voucher programme).
pub(super) fn setup_commands(world: &World) -> Vec<(String, Command)> {
    let mut commands = vec![(OPERATOR.to_owned(), World::genesis())];
    for step in world.steps() {
        commands.push(match step {
            Step::Register { party, role } => (
                OPERATOR.to_owned(),
                Command::RegisterParty {
                    party: PartyId::new(&party),
                    role,
                    keys: vec![key_of(&party).public_key()],
                },
            ),
            Step::Command { signer, command } => (signer, *command),
        });
    }
    commands
}

/// Builds the world through the cluster before any fault: each command is sent (and resent)
/// until it is journaled and accepted.
pub(super) async fn build_world(
    cluster: &SimCluster,
    history: &History,
    world: &World,
) -> anyhow::Result<()> {
    let mut client = Client::new(0, 0);
    client.next_nonce = 1;
    for (signer, command) in setup_commands(world) {
        let name = command.name();
        let signed = client.sign(cluster, &signer, command);
        let mut accepted = false;
        for _ in 0..20 {
            match client.write(cluster, history, signed.clone()).await {
                Answer::Journaled { rejected: None, .. } => {
                    accepted = true;
                    break;
                }
                // An earlier attempt whose answer was lost applied it.
                Answer::Journaled {
                    rejected: Some(code),
                    ..
                } if code == "nonce_replayed" => {
                    accepted = true;
                    break;
                }
                Answer::Journaled {
                    rejected: Some(code),
                    ..
                } => bail!("setting up the world: {name} by {signer} was rejected: {code}"),
                Answer::Refused { status, code } if status != 503 && status != 429 => {
                    bail!("setting up the world: {name} by {signer} was refused: {status} {code}")
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        if !accepted {
            return Err(anyhow!(
                "setting up the world: {name} by {signer} got no answer"
            ));
        }
    }
    Ok(())
}
