//! `cbank bench soak`: mixed load on a real 3-node cluster while a random node (the leader
//! included) is killed with SIGKILL and started again from its data every few seconds; at the
//! end, every acknowledged write must be in the journal where the cluster said it was, and the
//! replicas must converge.
//!
//! The load: `--clients` concurrent clients, each sending one signed command at a time to a
//! node picked at random (followers forward writes to the leader): single transfers and
//! batches of 2 to 8, market orders that cross (`orders::order`), package purchases paid 30% by
//! the buyer's voucher, and vouchers issued by the government. A request that fails, times out
//! or meets a dead node or an election is sent again, to another random node, with the same ids
//! (transfer, order, purchase and voucher ids are idempotency keys) in a freshly signed
//! envelope: a new nonce, since the ledger refuses a replayed one without saying where the
//! first was applied. A write is acknowledged by the first `200` answer: either it applied in
//! the entry answered, or the ledger says the same ids were applied before (`transfer_exists`
//! for every transfer, or a repeated order, purchase or voucher). Until then it is
//! unacknowledged, and a write still unanswered `OP_ANSWER_WAIT` after it was first sent is
//! given up.
//!
//! The faults: every `--kill-every-s` seconds one of the three nodes, drawn at random, gets
//! SIGKILL; after a pause it is started again on the same data folder and the bench waits until
//! it serves HTTP (not until it has caught up) before the next kill is due, so at most one
//! node is down at a time and a quorum can always form.
//!
//! Checked at the end (`verify.rs`, then each acknowledgement): the three nodes reach one
//! journal head and one state hash, the journal replays with the invariants holding, and for
//! every acknowledged write the entry the answer named has the answered hash and (by its
//! timestamp, which is unique per entry) is the entry that applied the write's ids, or for an
//! "applied before" answer a later entry than the one that did (found the same way). A write
//! failing that check is *lost*; the bench fails if any is, if the replicas did not converge,
//! if the ledger rejected a write, or if a write was never answered.

use super::cluster::{BenchCluster, ClusterOptions};
use super::http::Http;
use super::load::{now_ns, ENVELOPE_LIFETIME};
use super::report::{grouped, Latencies, Report};
use super::verify::Verified;
use super::world::{
    key_of, transfer, World, WorldSpec, BENCH_TRANSFER_ID_START, GOVERNMENT, PACKAGE, PROGRAMME,
    PROGRAMME_UNTIL_NS,
};
use crate::cli::commands::{route_for, WriteResponse};
use anyhow::bail;
use hyper::body::Bytes;
use ledger::shelf::PurchaseSpec;
use ledger::testing::Rng;
use ledger::vouchers::VoucherSpec;
use ledger::{Command, CommandResult, Effect, Ledger, PartyId, Reason, SigningKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// `cbank bench soak` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Minutes of load (20 s with --smoke).
    #[arg(long, required_unless_present = "smoke")]
    pub minutes: Option<f64>,
    /// Seconds between two kills (default 5; 4 with --smoke).
    #[arg(long)]
    pub kill_every_s: Option<f64>,
    /// Concurrent clients (default 16; 8 with --smoke).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Seed of the kills' victims and the clients' choices (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A folder for the nodes' data (default: a new temporary folder, removed at the end).
    #[arg(long = "data", value_name = "DIR")]
    pub data: Option<std::path::PathBuf>,
    /// Keep the nodes' data folder (and their logs) at the end.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub common: super::Common,
}

/// The load of a smoke run, and the longest load a run may ask for.
const SMOKE_LOAD: Duration = Duration::from_secs(20);
const MINUTES_MAX: f64 = 24.0 * 60.0;

/// Trading parties, each with this many CNY accounts.
const PARTIES: usize = 16;
const SMOKE_PARTIES: usize = 4;
const CNY_ACCOUNTS_PER_PARTY: usize = 4;

/// The most transfers one write carries (a batch write carries 2 to this many).
const TRANSFERS_PER_WRITE_MAX: u64 = 8;

/// The mix of writes, in percent (the rest are voucher issues).
const SINGLE_TRANSFER_PERCENT: u64 = 35;
const TRANSFER_BATCH_PERCENT: u64 = 15;
const ORDER_PERCENT: u64 = 30;
const PURCHASE_PERCENT: u64 = 15;

/// What an issued voucher holds (¥1,000).
const ISSUED_VOUCHER_FEN: u128 = 100_000;

/// How long a killed node stays down: drawn in `[DOWN_MIN, DOWN_MIN + DOWN_SPREAD)`.
const DOWN_MIN: Duration = Duration::from_millis(500);
const DOWN_SPREAD_MS: u64 = 1_500;

/// How long a restarted node may take to serve HTTP again before the bench fails.
const RESTART_WAIT: Duration = Duration::from_secs(60);

/// How long a write may stay unanswered, from its first send, before its client gives up:
/// far longer than an election, a restart and the node's own 10 s write deadline together.
const OP_ANSWER_WAIT: Duration = Duration::from_secs(120);

/// The pause before a write is sent again.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Nonces of the soak's envelopes count up from here, far from the random nonces the world's
/// setup used (a clash would need a random 128-bit draw to land in this window).
const NONCE_START: u128 = 1 << 100;

/// Failure reasons and lost writes kept for the report.
const REASONS_KEPT: usize = 5;

/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
const SMOKE_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What one write does, by the ids that make it idempotent.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Transfers `first_id .. first_id + count`.
    Transfers {
        first_id: u128,
        count: u64,
    },
    Order {
        order_id: u128,
    },
    Purchase {
        purchase_id: u128,
    },
    VoucherIssue {
        voucher_id: u128,
    },
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Transfers { first_id, count } => {
                write!(f, "{count} transfer(s) from id {first_id}")
            }
            Op::Order { order_id } => write!(f, "order {order_id}"),
            Op::Purchase { purchase_id } => write!(f, "purchase {purchase_id}"),
            Op::VoucherIssue { voucher_id } => write!(f, "voucher {voucher_id}"),
        }
    }
}

/// Who signs a write.
#[derive(Clone, Copy, Debug)]
enum Signer {
    /// The world's party at this position.
    Party(usize),
    Government,
}

/// One write: its ids, its signer and its command (the same on every send).
struct Write {
    op: Op,
    signer: Signer,
    command: Command,
}

/// An acknowledged write: the entry the answer named, and whether the ledger said its ids
/// were applied before.
#[derive(Clone, Debug)]
struct Ack {
    op: Op,
    journal_index: u64,
    journal_hash: String,
    repeat: bool,
}

/// What the load shares between its clients.
struct Shared {
    world: World,
    government_key: SigningKey,
    government: PartyId,
    http: Http,
    urls: Vec<String>,
    load_end: Instant,
    next_op: AtomicU64,
    next_nonce: AtomicU64,
    acknowledged: AtomicU64,
}

/// Why a send was answered with "try again".
#[derive(Debug, Default)]
struct RetryCounts {
    /// No answer: connection refused or reset (a node down), or no answer in time.
    no_answer: u64,
    unavailable_503: u64,
    timeout_504: u64,
    overloaded_429: u64,
    internal_500: u64,
}

impl RetryCounts {
    fn merge(&mut self, other: &RetryCounts) {
        self.no_answer += other.no_answer;
        self.unavailable_503 += other.unavailable_503;
        self.timeout_504 += other.timeout_504;
        self.overloaded_429 += other.overloaded_429;
        self.internal_500 += other.internal_500;
    }

    fn total(&self) -> u64 {
        self.no_answer
            + self.unavailable_503
            + self.timeout_504
            + self.overloaded_429
            + self.internal_500
    }
}

/// What one client did.
#[derive(Default)]
struct ClientOutcome {
    acks: Vec<Ack>,
    latencies: Latencies,
    attempts: u64,
    retries: RetryCounts,
    /// Writes the ledger rejected, or answers that made no sense (the first few reasons).
    failed: u64,
    failures: Vec<String>,
    /// Writes still unanswered `OP_ANSWER_WAIT` after their first send.
    given_up: Vec<Op>,
}

/// How a write ended.
enum Answered {
    Acked(Ack),
    Failed(String),
    GivenUp,
}

/// A load's length as people say it: seconds under a minute, else minutes.
fn span(load: Duration) -> String {
    if load < Duration::from_secs(60) {
        format!("{:.0} s", load.as_secs_f64())
    } else {
        format!("{:.1} min", load.as_secs_f64() / 60.0)
    }
}

/// A kill and restart.
struct Kill {
    node: u64,
    was_leader: bool,
}

/// Write `n`, drawn with `rng`.
fn make_write(world: &World, n: u64, rng: &mut Rng) -> Write {
    let parties = world.parties.len();
    let position = rng.below(parties as u64) as usize;
    let party = &world.parties[position];
    let draw = rng.below(100);
    if draw < SINGLE_TRANSFER_PERCENT + TRANSFER_BATCH_PERCENT {
        let count = if draw < SINGLE_TRANSFER_PERCENT {
            1
        } else {
            2 + rng.below(TRANSFERS_PER_WRITE_MAX - 1)
        };
        let first_id =
            BENCH_TRANSFER_ID_START + u128::from(n) * u128::from(TRANSFERS_PER_WRITE_MAX);
        let accounts = world.cny_accounts();
        let per_party = world.spec.cny_accounts as u64;
        let transfers = (0..count)
            .map(|i| {
                // From one of the signer's accounts to any other account of the world.
                let debit = position * per_party as usize + rng.below(per_party) as usize;
                let credit =
                    (debit + 1 + rng.below(accounts.len() as u64 - 1) as usize) % accounts.len();
                transfer(
                    first_id + u128::from(i),
                    accounts[debit],
                    accounts[credit],
                    1,
                )
            })
            .collect();
        return Write {
            op: Op::Transfers { first_id, count },
            signer: Signer::Party(position),
            command: Command::CreateTransfers { transfers },
        };
    }
    let draw = draw - SINGLE_TRANSFER_PERCENT - TRANSFER_BATCH_PERCENT;
    if draw < ORDER_PERCENT {
        let (position, order) = super::orders::order(world, n);
        return Write {
            op: Op::Order {
                order_id: order.order_id,
            },
            signer: Signer::Party(position),
            command: Command::PlaceOrder { order },
        };
    }
    let id = BENCH_TRANSFER_ID_START + u128::from(n);
    if draw < ORDER_PERCENT + PURCHASE_PERCENT {
        return Write {
            op: Op::Purchase { purchase_id: id },
            signer: Signer::Party(position),
            command: Command::BuyPackage {
                purchase: PurchaseSpec {
                    purchase_id: id,
                    package_id: PACKAGE.to_owned(),
                    pay_account_id: party.cny[0],
                    receive_account_id: party.tok,
                    vouchers: vec![party.voucher],
                },
            },
        };
    }
    Write {
        op: Op::VoucherIssue { voucher_id: id },
        signer: Signer::Government,
        command: Command::IssueVoucher {
            voucher: VoucherSpec {
                voucher_id: id,
                programme_id: PROGRAMME.to_owned(),
                beneficiary: party.id.clone(),
                amount: ISSUED_VOUCHER_FEN,
                expires_at_ns: PROGRAMME_UNTIL_NS,
            },
        },
    }
}

/// Reads a `200` answer to `op`: the ack, or why it is a failure.
fn read_answer(op: Op, body: &[u8]) -> Result<Ack, String> {
    let raw: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("{op}: not JSON: {error}"))?;
    let journal_hash = raw["journal_hash"]
        .as_str()
        .ok_or_else(|| format!("{op}: no journal_hash in the answer {raw}"))?
        .to_owned();
    let response = WriteResponse::from_json(raw)
        .map_err(|error| format!("{op}: not a write answer: {error}"))?;
    let index = response.journal_index;
    let effect = match &response.outcome.result {
        CommandResult::Rejected(reason) => {
            return Err(format!("{op}: rejected in entry {index}: {reason}"))
        }
        CommandResult::Accepted(effect) => effect,
    };
    let repeat = match (op, effect) {
        (Op::Transfers { count, .. }, Effect::TransfersCreated { results }) => {
            let all_existed = results.len() as u64 == count
                && results
                    .iter()
                    .all(|event| event.reason == Reason::TransferExists);
            if !results.is_empty() && !all_existed {
                let reasons: Vec<String> = results
                    .iter()
                    .map(|event| format!("event {}: {}", event.index, event.reason))
                    .collect();
                return Err(format!("{op}: in entry {index}: {}", reasons.join("; ")));
            }
            all_existed
        }
        (Op::Order { .. }, Effect::OrderPlaced(placed)) => placed.is_none(),
        (Op::Purchase { .. }, Effect::PackageBought { repeated, .. }) => *repeated,
        (Op::VoucherIssue { .. }, Effect::VoucherIssued { repeated }) => *repeated,
        (_, effect) => {
            return Err(format!(
                "{op}: unexpected effect in entry {index}: {effect:?}"
            ))
        }
    };
    Ok(Ack {
        op,
        journal_index: index,
        journal_hash,
        repeat,
    })
}

/// Sends `write` until it is answered, to a random node each time, each time in a new
/// envelope with the same command (the same ids).
async fn send_until_answered(
    shared: &Shared,
    write: &Write,
    rng: &mut Rng,
    outcome: &mut ClientOutcome,
) -> Answered {
    let give_up_at = Instant::now() + OP_ANSWER_WAIT;
    let route = route_for(&write.command);
    let (signer, key) = match write.signer {
        Signer::Party(position) => {
            let party = &shared.world.parties[position];
            (&party.id, &party.key)
        }
        Signer::Government => (&shared.government, &shared.government_key),
    };
    loop {
        let nonce = NONCE_START + u128::from(shared.next_nonce.fetch_add(1, Ordering::Relaxed));
        let expires_at_ns = now_ns() + ENVELOPE_LIFETIME.as_secs() * 1_000_000_000;
        let signed = key.sign(signer.clone(), nonce, expires_at_ns, write.command.clone());
        let body = match serde_json::to_vec(&signed) {
            Ok(body) => Bytes::from(body),
            Err(error) => return Answered::Failed(format!("{}: cannot encode: {error}", write.op)),
        };
        let url = format!("{}{route}", rng.pick(&shared.urls));
        outcome.attempts += 1;
        match shared.http.post(&url, body).await {
            Ok((200, body)) => {
                return match read_answer(write.op, &body) {
                    Ok(ack) => Answered::Acked(ack),
                    Err(why) => Answered::Failed(why),
                }
            }
            Ok((503, _)) => outcome.retries.unavailable_503 += 1,
            Ok((504, _)) => outcome.retries.timeout_504 += 1,
            Ok((429, _)) => outcome.retries.overloaded_429 += 1,
            // A node's storage or Raft error during a kill; the write may or may not have
            // applied, and the same ids make a retry safe. Counted apart.
            Ok((500, _)) => outcome.retries.internal_500 += 1,
            Ok((status, body)) => {
                return Answered::Failed(format!(
                    "{}: HTTP {status}: {}",
                    write.op,
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ))
            }
            Err(_) => outcome.retries.no_answer += 1,
        }
        if Instant::now() >= give_up_at {
            return Answered::GivenUp;
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
}

/// One client: new writes until the load ends, each sent until it is answered.
async fn client(shared: Arc<Shared>, seed: u64) -> ClientOutcome {
    let mut rng = Rng(seed);
    let mut outcome = ClientOutcome {
        latencies: Latencies::with_capacity(4096),
        ..ClientOutcome::default()
    };
    while Instant::now() < shared.load_end {
        let n = shared.next_op.fetch_add(1, Ordering::Relaxed);
        let write = make_write(&shared.world, n, &mut rng);
        let started = Instant::now();
        match send_until_answered(&shared, &write, &mut rng, &mut outcome).await {
            Answered::Acked(ack) => {
                outcome.latencies.record(started.elapsed());
                outcome.acks.push(ack);
                shared.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Answered::Failed(why) => {
                outcome.failed += 1;
                if outcome.failures.len() < REASONS_KEPT {
                    outcome.failures.push(why);
                }
            }
            Answered::GivenUp => outcome.given_up.push(write.op),
        }
    }
    outcome
}

/// The timestamp of the entry that applied `op`'s ids in the replayed ledger, or why there is
/// none.
fn applied_at_ns(ledger: &Ledger, op: Op) -> Result<u64, String> {
    match op {
        Op::Transfers { first_id, count } => {
            let mut at = None;
            for id in first_id..first_id + u128::from(count) {
                let record = ledger
                    .transfer(id)
                    .ok_or_else(|| format!("{op}: transfer {id} is not in the ledger"))?;
                match at {
                    None => at = Some(record.timestamp_ns),
                    Some(first) if first != record.timestamp_ns => {
                        return Err(format!("{op}: its transfers were applied in two entries"))
                    }
                    Some(_) => {}
                }
            }
            at.ok_or_else(|| format!("{op}: no transfers"))
        }
        Op::Order { order_id } => ledger
            .order(order_id)
            .map(|order| order.placed_at_ns)
            .ok_or_else(|| format!("{op} is not in the ledger")),
        Op::Purchase { purchase_id } => ledger
            .market()
            .shelf
            .purchases
            .get(&purchase_id)
            .map(|purchase| purchase.at_ns)
            .ok_or_else(|| format!("{op} is not in the ledger")),
        Op::VoucherIssue { voucher_id } => ledger
            .vouchers()
            .vouchers
            .get(&voucher_id)
            .map(|voucher| voucher.issued_at_ns)
            .ok_or_else(|| format!("{op} is not in the ledger")),
    }
}

/// The index of the entry stamped `timestamp_ns` (timestamps strictly increase along the
/// journal, so at most one is).
fn entry_at(verified: &Verified, timestamp_ns: u64) -> Option<u64> {
    let position = verified
        .entries
        .partition_point(|mark| mark.timestamp_ns < timestamp_ns);
    let mark = verified.entries.get(position)?;
    (mark.timestamp_ns == timestamp_ns).then_some(position as u64 + 1)
}

/// Checks one acknowledgement against the replayed journal (see the module doc).
fn check_ack(verified: &Verified, ack: &Ack) -> Result<(), String> {
    let op = ack.op;
    let index = ack.journal_index;
    let mark = verified.entry(index).ok_or_else(|| {
        format!(
            "{op}: acknowledged in entry {index}, but the journal ends at {}",
            verified.head.index
        )
    })?;
    if mark.hash.to_string() != ack.journal_hash {
        return Err(format!(
            "{op}: entry {index} has hash {}, the answer said {}",
            mark.hash, ack.journal_hash
        ));
    }
    let applied_ns = applied_at_ns(&verified.ledger, op)?;
    let applied_index = entry_at(verified, applied_ns)
        .ok_or_else(|| format!("{op}: no journal entry has its timestamp {applied_ns}"))?;
    match (ack.repeat, applied_index.cmp(&index)) {
        (false, std::cmp::Ordering::Equal) | (true, std::cmp::Ordering::Less) => Ok(()),
        (false, _) => Err(format!(
            "{op}: answered as applied in entry {index}, the journal applied it in {applied_index}"
        )),
        (true, _) => Err(format!(
            "{op}: answered in entry {index} as applied before, the journal applied it in {applied_index}"
        )),
    }
}

/// Runs the bench.
pub(crate) async fn run(args: &SoakArgs) -> anyhow::Result<Report> {
    let smoke = args.common.smoke;
    let load = match args.minutes {
        Some(minutes) => {
            anyhow::ensure!(
                minutes > 0.0 && minutes <= MINUTES_MAX,
                "--minutes must be above 0 and at most {MINUTES_MAX}"
            );
            Duration::from_secs_f64(minutes * 60.0)
        }
        None if smoke => SMOKE_LOAD,
        None => bail!("--minutes is required without --smoke"),
    };
    let kill_every_s = args.kill_every_s.unwrap_or(if smoke { 4.0 } else { 5.0 });
    anyhow::ensure!(
        (1.0..=3600.0).contains(&kill_every_s),
        "--kill-every-s must be 1 to 3600"
    );
    let kill_every = Duration::from_secs_f64(kill_every_s);
    let clients = args.clients.unwrap_or(if smoke { 8 } else { 16 });
    anyhow::ensure!(
        (1..=crate::limits::HTTP_REQUESTS_IN_FLIGHT_MAX).contains(&clients),
        "--clients must be 1 to {}",
        crate::limits::HTTP_REQUESTS_IN_FLIGHT_MAX
    );
    let seed = args.seed.unwrap_or_else(|| now_ns() % 1_000_000);
    let world = World::new(WorldSpec {
        parties: if smoke { SMOKE_PARTIES } else { PARTIES },
        cny_accounts: CNY_ACCOUNTS_PER_PARTY,
        market: true,
        tokens: true,
        vouchers: true,
    });
    println!(
        "bench soak: starting 3 nodes; {} of load from {clients} clients, a node killed every {kill_every_s} s (seed {seed})",
        span(load)
    );
    let options = ClusterOptions {
        data: args.data.clone(),
        keep: args.keep,
        node_env: Vec::new(),
    };
    let mut cluster = BenchCluster::start("soak", options).await?;
    cluster.build_world(&world).await?;
    let ids = cluster.ids();
    let urls = ids
        .iter()
        .map(|id| cluster.url(*id))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // Load.
    let load_start = Instant::now();
    let shared = Arc::new(Shared {
        world,
        government_key: key_of(GOVERNMENT),
        government: PartyId::new(GOVERNMENT),
        http: cluster.http.clone(),
        urls,
        load_end: load_start + load,
        next_op: AtomicU64::new(0),
        next_nonce: AtomicU64::new(0),
        acknowledged: AtomicU64::new(0),
    });
    let tasks: Vec<_> = (0..clients as u64)
        .map(|client_index| {
            let seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (client_index + 1);
            tokio::spawn(client(shared.clone(), seed))
        })
        .collect();

    // Faults: the kills run in this task while the clients run in theirs.
    let mut rng = Rng(seed);
    let mut kills: Vec<Kill> = Vec::new();
    let progress_every = if smoke {
        SMOKE_PROGRESS_EVERY
    } else {
        PROGRESS_EVERY
    };
    let mut next_progress = load_start + progress_every;
    let mut next_kill = load_start + kill_every;
    while next_kill < shared.load_end {
        tokio::time::sleep_until(next_kill).await;
        let victim = *rng.pick(&ids);
        // The victim's own view: it thinks it leads (a deposed leader may not know yet).
        let was_leader = cluster
            .view(victim)
            .await
            .is_ok_and(|view| view.leader_id == Some(victim));
        cluster.kill(victim).await?;
        tokio::time::sleep(DOWN_MIN + Duration::from_millis(rng.below(DOWN_SPREAD_MS))).await;
        cluster.spawn(victim)?;
        cluster.wait_serving(victim, RESTART_WAIT).await?;
        kills.push(Kill {
            node: victim,
            was_leader,
        });
        if Instant::now() >= next_progress {
            next_progress += progress_every;
            println!(
                "bench soak: {:.0} s: {} writes acknowledged, {} kills ({} of the leader)",
                load_start.elapsed().as_secs_f64(),
                grouped(shared.acknowledged.load(Ordering::Relaxed)),
                kills.len(),
                kills.iter().filter(|kill| kill.was_leader).count()
            );
        }
        next_kill = (next_kill + kill_every).max(Instant::now());
    }
    let mut total = ClientOutcome::default();
    for task in tasks {
        let outcome = task
            .await
            .map_err(|error| anyhow::anyhow!("a load client stopped: {error}"))?;
        total.acks.extend(outcome.acks);
        total.latencies.merge(outcome.latencies);
        total.attempts += outcome.attempts;
        total.retries.merge(&outcome.retries);
        total.failed += outcome.failed;
        for why in outcome.failures {
            if total.failures.len() < REASONS_KEPT {
                total.failures.push(why);
            }
        }
        total.given_up.extend(outcome.given_up);
    }
    // Until the last write was answered: the clients finish what they sent after the end.
    let elapsed = load_start.elapsed();

    // Checks.
    println!(
        "bench soak: load over after {:.1} s; waiting for the replicas to converge and checking every acknowledged write",
        elapsed.as_secs_f64()
    );
    let verified = super::verify::verify(&cluster).await;
    cluster.stop().await?;
    let operations = total.acks.len() as u64;
    let ops_per_s = operations as f64 / load.as_secs_f64();
    let latency = total.latencies.percentiles();
    let mut report = Report::new("soak", ops_per_s, latency);
    let leader_kills = kills.iter().filter(|kill| kill.was_leader).count() as u64;
    let count =
        |matches: fn(&Op) -> bool| total.acks.iter().filter(|ack| matches(&ack.op)).count() as u64;
    let transfers: u64 = total
        .acks
        .iter()
        .map(|ack| match ack.op {
            Op::Transfers { count, .. } => count,
            _ => 0,
        })
        .sum();
    let transfer_writes = count(|op| matches!(op, Op::Transfers { .. }));
    let orders = count(|op| matches!(op, Op::Order { .. }));
    let purchases = count(|op| matches!(op, Op::Purchase { .. }));
    let vouchers_issued = count(|op| matches!(op, Op::VoucherIssue { .. }));
    let repeats = total.acks.iter().filter(|ack| ack.repeat).count() as u64;
    let retries = total.retries.total();
    let victims: Vec<String> = ids
        .iter()
        .map(|id| {
            let killed = kills.iter().filter(|kill| kill.node == *id).count();
            format!("node {id} {killed}")
        })
        .collect();
    report
        .line(format!(
            "bench soak: 3 nodes on loopback, fsync on; {clients} clients sending to random nodes for {}, a random node killed (SIGKILL) every {kill_every_s} s and restarted (seed {seed})",
            span(load)
        ))
        .line(format!(
            "  writes             {} acknowledged ({:.0}/s): {} transfer writes ({} transfers), {} orders, {} voucher-paid purchases, {} vouchers issued",
            grouped(operations),
            ops_per_s,
            grouped(transfer_writes),
            grouped(transfers),
            grouped(orders),
            grouped(purchases),
            grouped(vouchers_issued)
        ))
        .line(format!(
            "  latency/write      {latency} (first send to acknowledgement, retries included)"
        ))
        .line(format!(
            "  kills              {} ({} of the leader; {})",
            kills.len(),
            leader_kills,
            victims.join(", ")
        ))
        .line(format!(
            "  sends              {} for {} writes: {} sent again (no answer {}, 503 {}, 504 {}, 429 {}, 500 {}); {} acknowledged as applied before",
            grouped(total.attempts),
            grouped(operations + total.failed + total.given_up.len() as u64),
            grouped(retries),
            grouped(total.retries.no_answer),
            grouped(total.retries.unavailable_503),
            grouped(total.retries.timeout_504),
            grouped(total.retries.overloaded_429),
            grouped(total.retries.internal_500),
            grouped(repeats)
        ));
    report
        .field(
            "minutes",
            (load.as_secs_f64() / 60.0 * 1000.0).round() / 1000.0,
        )
        .field("seconds", elapsed.as_secs_f64())
        .field("clients", clients as u64)
        .field("kill_every_s", kill_every_s)
        .field("seed", seed)
        .field("operations", operations)
        .field("attempts", total.attempts)
        .field("retries", retries)
        .field("repeats", repeats)
        .field("kills", kills.len() as u64)
        .field("leader_kills", leader_kills)
        .field("transfers", transfers)
        .field("orders", orders)
        .field("purchases", purchases)
        .field("vouchers_issued", vouchers_issued)
        .field("failed", total.failed)
        .field("unacknowledged", total.given_up.len() as u64);
    for why in &total.failures {
        report.line(format!("  failure: {why}"));
    }
    let verified = match verified {
        Ok(verified) => verified,
        Err(error) => {
            report
                .field("replicas_converged", false)
                .field("lost", serde_json::Value::Null)
                .line(format!("  check failed: {error:#}"));
            report.print(args.common.json);
            return Err(error.context("the replicas did not converge"));
        }
    };
    let mut lost = 0u64;
    let mut lost_reasons = Vec::new();
    for ack in &total.acks {
        if let Err(why) = check_ack(&verified, ack) {
            lost += 1;
            if lost_reasons.len() < REASONS_KEPT {
                lost_reasons.push(why);
            }
        }
    }
    let given_up_applied = total
        .given_up
        .iter()
        .filter(|op| applied_at_ns(&verified.ledger, **op).is_ok())
        .count();
    // What vouchers paid towards the acknowledged purchases, as the ledger recorded it.
    let purchases_paid: Vec<u128> = total
        .acks
        .iter()
        .filter_map(|ack| match ack.op {
            Op::Purchase { purchase_id } => verified
                .ledger
                .market()
                .shelf
                .purchases
                .get(&purchase_id)
                .map(|purchase| purchase.voucher_paid),
            _ => None,
        })
        .collect();
    let voucher_paid_fen: u128 = purchases_paid.iter().sum();
    let paid_by_voucher = purchases_paid.iter().filter(|paid| **paid > 0).count();
    report
        .line(format!(
            "  vouchers           paid ¥{:.2} of {} acknowledged purchases ({} with a voucher share)",
            voucher_paid_fen as f64 / 100.0,
            grouped(purchases),
            grouped(paid_by_voucher as u64)
        ))
        .field(
            "voucher_paid_fen",
            u64::try_from(voucher_paid_fen).unwrap_or(u64::MAX),
        )
        .field("lost", lost)
        .field("replicas_converged", true)
        .field("journal_head", verified.head.index)
        .field("trades_total", verified.ledger.market().trade_next);
    for why in &lost_reasons {
        report.line(format!("  lost: {why}"));
    }
    if !total.given_up.is_empty() {
        report.line(format!(
            "  {} writes were never answered ({given_up_applied} of them applied anyway), e.g. {}",
            total.given_up.len(),
            total.given_up[0]
        ));
    }
    if lost > 0 || total.failed > 0 || !total.given_up.is_empty() {
        report.print(args.common.json);
        bail!(
            "{lost} acknowledged writes lost, {} writes failed, {} never answered (see above)",
            total.failed,
            total.given_up.len()
        );
    }
    report.line(format!(
        "  check: 3 replicas at one journal head and state hash (entry {}), the replayed journal holds the invariants, every one of {} acknowledged writes is in the entry its answer named (hash equal), {} of them as applied before in an earlier entry; lost 0",
        verified.head.index,
        grouped(operations),
        grouped(repeats)
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::verify::EntryMark;
    use ledger::testing::Harness;
    use ledger::JournalEntry;

    /// A small soak world, built in a local ledger.
    fn world_in_a_harness() -> (World, Harness) {
        let world = World::new(WorldSpec {
            parties: 3,
            cny_accounts: CNY_ACCOUNTS_PER_PARTY,
            market: true,
            tokens: true,
            vouchers: true,
        });
        let harness = crate::bench::world::harness_with(&world);
        (world, harness)
    }

    fn signer_name(world: &World, signer: Signer) -> String {
        match signer {
            Signer::Party(position) => world.parties[position].id.as_str().to_owned(),
            Signer::Government => GOVERNMENT.to_owned(),
        }
    }

    /// The node's `200` answer for `entry`.
    fn answer(entry: &JournalEntry) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "journal_index": entry.body.index,
            "journal_hash": entry.hash.to_string(),
            "timestamp_ns": entry.body.timestamp_ns.to_string(),
            "outcome": entry.body.outcome,
        }))
        .expect("JSON")
    }

    fn verified(harness: Harness) -> Verified {
        let entries = harness
            .journal
            .iter()
            .map(|entry| EntryMark {
                hash: entry.hash,
                timestamp_ns: entry.body.timestamp_ns,
            })
            .collect();
        Verified {
            head: harness.ledger.head(),
            ledger: harness.ledger,
            entries,
        }
    }

    #[test]
    fn every_kind_of_write_applies_and_a_repeat_is_read_as_applied_before() {
        let (world, mut harness) = world_in_a_harness();
        let mut rng = Rng(7);
        let mut acks = Vec::new();
        let mut kinds = [0u32; 4];
        let mut first = None;
        for n in 0..200 {
            let write = make_write(&world, n, &mut rng);
            kinds[match write.op {
                Op::Transfers { .. } => 0,
                Op::Order { .. } => 1,
                Op::Purchase { .. } => 2,
                Op::VoucherIssue { .. } => 3,
            }] += 1;
            let signer = signer_name(&world, write.signer);
            let entry = harness.expect_accepted(&signer, write.command.clone());
            let ack = read_answer(write.op, &answer(&entry)).expect("applied");
            assert!(!ack.repeat, "{ack:?}");
            if let Op::Purchase { purchase_id } = write.op {
                let purchase = &harness.ledger.market().shelf.purchases[&purchase_id];
                assert_eq!(
                    purchase.voucher_paid,
                    990 * 3_000 / 10_000,
                    "the voucher pays 30%"
                );
            }
            acks.push(ack);
            first.get_or_insert(write);
        }
        assert!(kinds.iter().all(|count| *count > 0), "{kinds:?}");
        // The same ids in a new envelope: the ledger says they were applied before.
        let write = first.expect("a write");
        let signer = signer_name(&world, write.signer);
        let entry = harness.submit(&signer, write.command.clone());
        let repeat = read_answer(write.op, &answer(&entry)).expect("a repeat");
        assert!(repeat.repeat);
        let verified = verified(harness);
        for ack in acks.iter().chain([&repeat]) {
            assert_eq!(check_ack(&verified, ack), Ok(()));
        }
    }

    #[test]
    fn an_acknowledgement_the_journal_does_not_hold_is_lost() {
        let (world, mut harness) = world_in_a_harness();
        let mut rng = Rng(3);
        let write = make_write(&world, 0, &mut rng);
        let signer = signer_name(&world, write.signer);
        let entry = harness.expect_accepted(&signer, write.command.clone());
        let ack = read_answer(write.op, &answer(&entry)).expect("applied");
        let unsent = make_write(&world, 1, &mut rng);
        let verified = verified(harness);
        assert_eq!(check_ack(&verified, &ack), Ok(()));
        let wrong = [
            Ack {
                journal_hash: ledger::Hash::default().to_string(),
                ..ack.clone()
            },
            Ack {
                journal_index: ack.journal_index - 1,
                ..ack.clone()
            },
            Ack {
                journal_index: ack.journal_index + 1,
                ..ack.clone()
            },
            Ack {
                repeat: true,
                ..ack.clone()
            },
            Ack {
                op: unsent.op,
                ..ack.clone()
            },
        ];
        for ack in &wrong {
            assert!(check_ack(&verified, ack).is_err(), "{ack:?}");
        }
    }

    #[test]
    fn a_rejected_write_is_a_failure_not_an_acknowledgement() {
        let (world, mut harness) = world_in_a_harness();
        let mut rng = Rng(5);
        let write = make_write(&world, 0, &mut rng);
        // Signed by the wrong party: journaled as rejected.
        let signer = if matches!(write.signer, Signer::Government) {
            world.parties[0].id.as_str().to_owned()
        } else {
            GOVERNMENT.to_owned()
        };
        let entry = harness.submit(&signer, write.command.clone());
        assert!(read_answer(write.op, &answer(&entry)).is_err());
    }
}
