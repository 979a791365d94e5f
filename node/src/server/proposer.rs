//! The proposer: a bounded queue of signed commands and the group-commit loop that turns them
//! into Raft entries.
//!
//! The loop takes the first waiting command, waits for a free in-flight slot (so whatever
//! queues up meanwhile joins the same entry), drains the queue up to
//! `COMMANDS_PER_PROPOSAL_MAX` commands and `PROPOSAL_BYTES_MAX` canonical bytes, stamps each
//! command with a strictly increasing timestamp, hands the `Proposal` to Raft, and answers each
//! waiter with its own `Applied` once the entry is applied. Proposals are handed to Raft in
//! stamp order by this one loop, and up to `PROPOSALS_IN_FLIGHT_MAX` of them replicate at once.
//!
//! This file never checks a signature or a business rule (the HTTP layer verified the
//! signature; the ledger decides the rest) and never blocks a client without a bound: a full
//! queue is refused at once and every wait has a deadline.

use super::metrics::Metrics;
use crate::limits::{
    COMMANDS_PER_PROPOSAL_MAX, PROPOSALS_IN_FLIGHT_MAX, PROPOSAL_BYTES_MAX,
    PROPOSAL_QUEUE_LENGTH_MAX,
};
use crate::raft_types::{Applied, NodeId, NodeInfo, Proposal, Raft, StampedCommand};
use crate::storage::AppliedState;
use ledger::SignedCommand;
use openraft::error::{ClientWriteError, ForwardToLeader};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

/// Why a command got no `Applied` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProposeError {
    /// The queue is full: back-pressure.
    Overloaded,
    /// This node is not the leader; nothing was appended. The leader, if known, is named.
    NotLeader(ForwardToLeader<NodeId, NodeInfo>),
    /// The deadline passed; the command may still be applied later.
    Timeout,
    /// Raft or the proposer has stopped (shutdown, or a fatal storage error).
    Stopped(String),
}

/// The answer a waiter gets.
pub(crate) type ProposeResult = Result<Applied, ProposeError>;

/// One command waiting for its proposal.
struct Waiter {
    command: SignedCommand,
    /// Canonical bytes of `command`, measured when it was verified.
    command_bytes: usize,
    enqueued: Instant,
    reply: oneshot::Sender<ProposeResult>,
}

/// The sending side of the proposer: cheap to clone, shared by every request handler.
#[derive(Clone)]
pub(crate) struct Proposer {
    queue: mpsc::Sender<Waiter>,
}

impl Proposer {
    /// Starts the group-commit loop for `raft`. The loop ends when every `Proposer` clone is
    /// dropped or its task is aborted; waiters still queued then get `Stopped`.
    pub(crate) fn start(
        raft: Raft,
        applied: AppliedState,
        metrics: Arc<Metrics>,
        clock: WallClock,
    ) -> (Proposer, JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(PROPOSAL_QUEUE_LENGTH_MAX);
        let task = tokio::spawn(run(raft, applied, metrics, clock, receiver));
        (Proposer { queue }, task)
    }

    /// Queues `command` (whose canonical size is `command_bytes`) and returns where its answer
    /// will arrive. Refuses at once when the queue is full.
    pub(crate) fn enqueue(
        &self,
        command: SignedCommand,
        command_bytes: usize,
    ) -> Result<oneshot::Receiver<ProposeResult>, ProposeError> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            command,
            command_bytes,
            enqueued: Instant::now(),
            reply,
        };
        match self.queue.try_send(waiter) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(ProposeError::Overloaded),
            Err(TrySendError::Closed(_)) => {
                Err(ProposeError::Stopped("the proposer has stopped".to_owned()))
            }
        }
    }

    /// Commands waiting in the queue now.
    pub(crate) fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

/// Waits for the answer of a queued command until `deadline`.
pub(crate) async fn await_applied(
    answer: oneshot::Receiver<ProposeResult>,
    deadline: tokio::time::Instant,
) -> ProposeResult {
    match tokio::time::timeout_at(deadline, answer).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ProposeError::Stopped(
            "the proposer stopped before the command was applied".to_owned(),
        )),
        Err(_) => Err(ProposeError::Timeout),
    }
}

/// Where the proposer reads the wall clock, in nanoseconds since the Unix epoch: the system
/// clock ([`WallClock::system`]), or the simulator's clock of one node, which may be skewed.
#[derive(Clone)]
pub struct WallClock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl WallClock {
    /// The system clock.
    pub fn system() -> WallClock {
        WallClock(Arc::new(wall_clock_ns))
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> WallClock {
        WallClock(Arc::new(now))
    }

    fn now_ns(&self) -> u64 {
        (self.0)()
    }
}

/// Nanoseconds since the Unix epoch by the wall clock (0 if the clock is before 1970).
fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Hands out strictly increasing timestamps: never behind the wall clock, the previous stamp,
/// or what the ledger has already applied (a new leader's clock may lag the old leader's).
#[derive(Debug, Default)]
struct Stamper {
    last_stamp_ns: u64,
}

impl Stamper {
    fn next(&mut self, wall_clock_ns: u64, applied_last_ns: u64) -> u64 {
        let stamp = wall_clock_ns
            .max(self.last_stamp_ns.saturating_add(1))
            .max(applied_last_ns.saturating_add(1));
        self.last_stamp_ns = stamp;
        stamp
    }
}

/// Takes more waiters from the queue without waiting, up to the proposal limits. A waiter that
/// would overflow the byte limit is returned as the first of the next proposal.
fn drain(
    receiver: &mut mpsc::Receiver<Waiter>,
    group: &mut Vec<Waiter>,
    mut bytes: usize,
) -> Option<Waiter> {
    while group.len() < COMMANDS_PER_PROPOSAL_MAX {
        let Ok(waiter) = receiver.try_recv() else {
            return None;
        };
        if bytes + waiter.command_bytes > PROPOSAL_BYTES_MAX {
            return Some(waiter);
        }
        bytes += waiter.command_bytes;
        group.push(waiter);
    }
    None
}

async fn run(
    raft: Raft,
    applied: AppliedState,
    metrics: Arc<Metrics>,
    clock: WallClock,
    mut receiver: mpsc::Receiver<Waiter>,
) {
    let slots = Arc::new(Semaphore::new(PROPOSALS_IN_FLIGHT_MAX));
    let mut stamper = Stamper::default();
    let mut carried: Option<Waiter> = None;
    loop {
        let first = match carried.take() {
            Some(waiter) => waiter,
            None => match receiver.recv().await {
                Some(waiter) => waiter,
                None => return,
            },
        };
        // Waiting for a slot first lets the queue fill, so the group below is as large as the
        // load makes it.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            // The semaphore is never closed; if it were, nothing more could be proposed.
            let _ = first.reply.send(Err(ProposeError::Stopped(
                "the proposer's slots are closed".to_owned(),
            )));
            return;
        };
        let mut group = Vec::with_capacity(16);
        let bytes = first.command_bytes;
        group.push(first);
        carried = drain(&mut receiver, &mut group, bytes);

        let applied_last_ns = applied.read(|ledger| ledger.last_timestamp_ns());
        let wall_clock_ns = clock.now_ns();
        let mut commands = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        for waiter in group {
            commands.push(StampedCommand {
                timestamp_ns: stamper.next(wall_clock_ns, applied_last_ns),
                command: waiter.command,
            });
            replies.push((waiter.reply, waiter.enqueued));
        }
        metrics.proposal_commands.observe(commands.len() as f64);
        // `client_write_ff` only queues the entry in the Raft core, in call order, so entries
        // reach the log in stamp order; the answer is awaited in a task of its own.
        let answer = match raft.client_write_ff(Proposal { commands }).await {
            Ok(answer) => answer,
            Err(fatal) => {
                tracing::warn!(%fatal, "Raft refused a proposal: it has stopped");
                let error = ProposeError::Stopped(format!("Raft has stopped: {fatal}"));
                for (reply, _) in replies {
                    let _ = reply.send(Err(error.clone()));
                }
                continue;
            }
        };
        metrics.proposals_in_flight.inc();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let results: Vec<ProposeResult> = match answer.await {
                Ok(Ok(response)) => {
                    let mut applied = response.data.applied.into_iter();
                    (0..replies.len())
                        .map(|_| {
                            applied.next().ok_or_else(|| {
                                ProposeError::Stopped(
                                    "the state machine answered fewer commands than proposed"
                                        .to_owned(),
                                )
                            })
                        })
                        .collect()
                }
                Ok(Err(ClientWriteError::ForwardToLeader(forward))) => {
                    vec![Err(ProposeError::NotLeader(forward)); replies.len()]
                }
                Ok(Err(ClientWriteError::ChangeMembershipError(error))) => {
                    // Only membership changes can fail this way; a proposal never does.
                    let error = ProposeError::Stopped(format!("unexpected Raft answer: {error}"));
                    vec![Err(error); replies.len()]
                }
                Err(_) => {
                    let error = ProposeError::Stopped(
                        "Raft stopped before the proposal was applied".to_owned(),
                    );
                    vec![Err(error); replies.len()]
                }
            };
            for ((reply, enqueued), result) in replies.into_iter().zip(results) {
                if let Ok(applied) = &result {
                    metrics
                        .commit_latency_seconds
                        .observe(enqueued.elapsed().as_secs_f64());
                    let label = if applied.outcome.rejected().is_some() {
                        "rejected"
                    } else {
                        "accepted"
                    };
                    metrics.commands_total.with_label_values(&[label]).inc();
                }
                // The client may have given up (deadline); its answer is simply dropped.
                let _ = reply.send(result);
            }
            metrics.proposals_in_flight.dec();
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_strictly_increase_whatever_the_clock_does() {
        let mut stamper = Stamper::default();
        assert_eq!(stamper.next(1_000, 0), 1_000);
        // The clock did not move: the next stamp is still later.
        assert_eq!(stamper.next(1_000, 0), 1_001);
        // The clock went back.
        assert_eq!(stamper.next(10, 0), 1_002);
        // The ledger already applied a later timestamp (stamped by a previous leader).
        assert_eq!(stamper.next(2_000, 5_000), 5_001);
        assert_eq!(stamper.next(9_000, 5_000), 9_000);
        assert_eq!(stamper.next(u64::MAX, 0), u64::MAX);
    }

    fn waiter(command_bytes: usize) -> (Waiter, oneshot::Receiver<ProposeResult>) {
        let key = ledger::SigningKey::from_seed([3; 32]);
        let command = key.sign(
            ledger::PartyId::new("p"),
            1,
            1,
            ledger::Command::RegisterAsset {
                asset: ledger::Asset::Cny,
            },
        );
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            command,
            command_bytes,
            enqueued: Instant::now(),
            reply,
        };
        (waiter, answer)
    }

    #[tokio::test]
    async fn a_drain_stops_at_the_command_and_byte_limits() {
        let (sender, mut receiver) = mpsc::channel(PROPOSAL_QUEUE_LENGTH_MAX);
        let mut answers = Vec::new();
        for _ in 0..COMMANDS_PER_PROPOSAL_MAX + 5 {
            let (waiter, answer) = waiter(10);
            answers.push(answer);
            assert!(sender.try_send(waiter).is_ok());
        }
        let mut group = Vec::new();
        assert!(drain(&mut receiver, &mut group, 0).is_none());
        assert_eq!(group.len(), COMMANDS_PER_PROPOSAL_MAX);

        let (big, _answer) = waiter(PROPOSAL_BYTES_MAX - 5);
        let mut group = vec![big];
        // Five small ones are still queued; the first of them overflows the byte limit.
        let carried = drain(&mut receiver, &mut group, PROPOSAL_BYTES_MAX - 5);
        assert_eq!(group.len(), 1);
        assert!(carried.is_some());
    }
}
