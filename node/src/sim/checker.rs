//! The checker: judges a seed's history against what the replicas hold at the end.
//!
//! 1. Agreement: where two nodes hold the same journal index they hold the same entry, the
//!    nodes end at one head, and together they hold every entry from 1 to it.
//! 2. Validity: the pure `ledger` state machine, fed every command in journal order with its
//!    stamped time (signatures verified again), produces exactly the stored entries; the
//!    invariants of `spec/invariants.md` hold at the end; every node's state hash equals the
//!    replay's.
//! 3. Durability: every acknowledged write (an answer naming a journal entry) is that entry in
//!    the final journal: same index, same hash, same command, same verdict. Nothing
//!    acknowledged is lost or rewritten.
//! 4. At most once: a signed command found twice in the journal is refused the second time.
//! 5. Real-time order: a write acknowledged before another was sent has the lower index.
//! 6. Linearizable reads: a read sees a state at or after every write acknowledged before it
//!    was sent, and before every write sent after it completed; the journal head it reports is
//!    that entry, and the balances it reports are the replay's at some index in that window.
//!
//! This file is pure: no clock, no I/O, only the history and the journals.

use super::workload::{Answer, Call, Op};
use crate::raft_types::NodeId;
use ledger::{Balances, Hash, JournalEntry, Ledger};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the replicas hold at the end of a seed.
pub(super) struct Observed {
    /// Each node's stored journal (which starts after any snapshot it installed).
    pub journals: BTreeMap<NodeId, Vec<JournalEntry>>,
    /// Each node's state hash.
    pub state_hashes: BTreeMap<NodeId, Hash>,
}

/// What the checker looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckStats {
    pub journal_entries: u64,
    pub acknowledged_writes: u64,
    pub unknown_writes: u64,
    pub refused_writes: u64,
    pub reads_checked: u64,
}

/// The balances of one account after each journal entry that changed them.
struct BalanceHistory {
    changes: Vec<(u64, Balances)>,
}

impl BalanceHistory {
    /// Whether the account held `balances` after some entry in `low..=high`.
    fn held_within(&self, balances: &Balances, low: u64, high: u64) -> bool {
        // The value in force at `low` is the last change at or before it.
        let first = self.changes.partition_point(|(index, _)| *index <= low);
        let in_force_at_low = first.checked_sub(1).map(|i| &self.changes[i].1);
        let absent = Balances::default();
        if in_force_at_low.unwrap_or(&absent) == balances {
            return true;
        }
        self.changes[first..]
            .iter()
            .take_while(|(index, _)| *index <= high)
            .any(|(_, held)| held == balances)
    }
}

/// The journal all nodes together hold, entry by entry, with any disagreement found.
fn merge(observed: &Observed, problems: &mut Vec<String>) -> Vec<JournalEntry> {
    let mut merged: BTreeMap<u64, (NodeId, &JournalEntry)> = BTreeMap::new();
    for (&node, entries) in &observed.journals {
        for entry in entries {
            match merged.get(&entry.body.index) {
                Some((other, held)) if held.hash != entry.hash => problems.push(format!(
                    "agreement: nodes {other} and {node} hold different entries at index {}",
                    entry.body.index
                )),
                Some(_) => {}
                None => {
                    merged.insert(entry.body.index, (node, entry));
                }
            }
        }
    }
    let heads: BTreeMap<NodeId, u64> = observed
        .journals
        .iter()
        .map(|(&node, entries)| (node, entries.last().map_or(0, |e| e.body.index)))
        .collect();
    let mut distinct: Vec<u64> = heads.values().copied().collect();
    distinct.dedup();
    if distinct.len() > 1 {
        problems.push(format!(
            "agreement: the nodes did not converge: heads {heads:?}"
        ));
    }
    let mut journal = Vec::with_capacity(merged.len());
    for (expected, (index, (_, entry))) in (1..).zip(merged) {
        if index != expected {
            problems.push(format!(
                "agreement: no node holds journal entry {expected} (next held: {index})"
            ));
            break;
        }
        journal.push(entry.clone());
    }
    journal
}

/// Replays `journal` through a fresh ledger; returns the final ledger and the balance
/// histories of `accounts`.
fn replay(
    journal: &[JournalEntry],
    accounts: &[u128],
    problems: &mut Vec<String>,
) -> (Ledger, BTreeMap<u128, BalanceHistory>) {
    let mut ledger = Ledger::new();
    let mut histories: BTreeMap<u128, BalanceHistory> = accounts
        .iter()
        .map(|&id| {
            (
                id,
                BalanceHistory {
                    changes: Vec::new(),
                },
            )
        })
        .collect();
    for entry in journal {
        let produced = ledger.apply(&entry.body.command, entry.body.timestamp_ns);
        if produced != *entry {
            problems.push(format!(
                "validity: replaying entry {} gives a different entry (stored outcome {:?}, \
                 replayed {:?})",
                entry.body.index, entry.body.outcome.result, produced.body.outcome.result
            ));
            break;
        }
        for (&id, history) in &mut histories {
            let now = ledger.account(id).map(|account| account.balances);
            let last = history.changes.last().map(|(_, balances)| *balances);
            if let Some(now) = now {
                if last != Some(now) {
                    history.changes.push((entry.body.index, now));
                }
            }
        }
    }
    if let Err(why) = ledger.check_invariants() {
        problems.push(format!("invariants: {why}"));
    }
    (ledger, histories)
}

/// The signature bytes that identify a signed command.
fn command_key(command: &ledger::SignedCommand) -> [u8; 64] {
    command.signature.0
}

/// Checks `ops` against `observed`; `accounts` are the accounts the clients read. Returns what
/// was checked, and every problem found (none: the history passes).
pub(super) fn check(
    ops: &[Op],
    observed: &Observed,
    accounts: &[u128],
) -> (CheckStats, Vec<String>) {
    let mut problems = Vec::new();
    let journal = merge(observed, &mut problems);
    let (ledger, balances) = replay(&journal, accounts, &mut problems);
    for (node, hash) in &observed.state_hashes {
        if *hash != ledger.state_hash() && problems.is_empty() {
            problems.push(format!(
                "validity: node {node}'s state hash differs from the replayed ledger's"
            ));
        }
    }

    // Where each signed command is in the journal; a repeat must be refused.
    let mut places: BTreeMap<[u8; 64], Vec<u64>> = BTreeMap::new();
    for entry in &journal {
        places
            .entry(command_key(&entry.body.command))
            .or_default()
            .push(entry.body.index);
    }
    for indexes in places.values() {
        for &index in indexes.iter().skip(1) {
            let entry = &journal[(index - 1) as usize];
            if entry.body.outcome.rejected().is_none() {
                problems.push(format!(
                    "at most once: the command of entry {} was applied again at entry {index}",
                    indexes[0]
                ));
            }
        }
    }

    let mut stats = CheckStats {
        journal_entries: journal.len() as u64,
        ..CheckStats::default()
    };
    // Acknowledged writes: (invoked, completed, index).
    let mut acknowledged: Vec<(u64, u64, u64)> = Vec::new();
    // When each command was first sent: a retry resends the same bytes, and any attempt may be
    // the one the journal holds.
    let mut first_sent: BTreeMap<[u8; 64], u64> = BTreeMap::new();
    for op in ops {
        if let Call::Write(command) = &op.call {
            let first = first_sent
                .entry(command_key(command))
                .or_insert(op.invoked_ns);
            *first = (*first).min(op.invoked_ns);
        }
    }
    // Every journal place of a client's command with when it was first sent (to bound reads
    // from above).
    let sent: Vec<(u64, u64)> = first_sent
        .iter()
        .flat_map(|(key, &invoked)| {
            places
                .get(key)
                .into_iter()
                .flatten()
                .map(move |&index| (invoked, index))
        })
        .collect();
    for op in ops {
        let Call::Write(command) = &op.call else {
            continue;
        };
        match &op.answer {
            Answer::Journaled {
                index,
                hash,
                rejected,
            } => {
                stats.acknowledged_writes += 1;
                acknowledged.push((op.invoked_ns, op.completed_ns, *index));
                let Some(entry) = index.checked_sub(1).and_then(|i| journal.get(i as usize)) else {
                    problems.push(format!(
                        "durability: client {} was told entry {index} by node {}, which no \
                         node holds (journal ends at {})",
                        op.client,
                        op.node,
                        journal.len()
                    ));
                    continue;
                };
                if entry.hash != *hash || entry.body.command != **command {
                    problems.push(format!(
                        "durability: client {} was told by node {} that its command is entry \
                         {index}, but entry {index} now holds another (lost or rewritten)",
                        op.client, op.node
                    ));
                    continue;
                }
                let recorded = entry.body.outcome.rejected().map(|reason| reason.name());
                if recorded != rejected.as_deref() {
                    problems.push(format!(
                        "durability: client {} was told {rejected:?} for entry {index}, the \
                         journal records {recorded:?}",
                        op.client
                    ));
                }
            }
            Answer::Refused { .. } => stats.refused_writes += 1,
            _ => stats.unknown_writes += 1,
        }
    }

    // Real-time order: sort acknowledged writes by completion; walk every op by invocation,
    // keeping the highest index acknowledged before it.
    let mut by_completion = acknowledged.clone();
    by_completion.sort_by_key(|&(_, completed, _)| completed);
    let acknowledged_before = |invoked: u64| -> u64 {
        by_completion
            .iter()
            .take_while(|&&(_, completed, _)| completed < invoked)
            .map(|&(_, _, index)| index)
            .max()
            .unwrap_or(0)
    };
    for &(invoked, _, index) in &acknowledged {
        let floor = acknowledged_before(invoked);
        if index <= floor {
            problems.push(format!(
                "real-time order: a write sent after entry {floor} was acknowledged got the \
                 earlier index {index}"
            ));
        }
    }
    let last = journal.len() as u64;
    let sent_after = |completed: u64| -> u64 {
        sent.iter()
            .filter(|&&(invoked, _)| invoked > completed)
            .map(|&(_, index)| index - 1)
            .min()
            .unwrap_or(last)
    };
    for op in ops {
        let (low, high) = (
            acknowledged_before(op.invoked_ns),
            sent_after(op.completed_ns),
        );
        match (&op.call, &op.answer) {
            (Call::ReadHead, Answer::Head { index, hash }) => {
                stats.reads_checked += 1;
                if *index < low || *index > high {
                    problems.push(format!(
                        "linearizable read: client {} saw head {index}, outside {low}..={high}",
                        op.client
                    ));
                } else if *index > 0 && journal[(*index - 1) as usize].hash != *hash {
                    problems.push(format!(
                        "linearizable read: client {} saw head {index} with another hash",
                        op.client
                    ));
                }
            }
            (Call::ReadAccount(id), Answer::Account(seen)) => {
                stats.reads_checked += 1;
                let held = balances
                    .get(id)
                    .is_some_and(|history| history.held_within(seen, low, high));
                if !held {
                    problems.push(format!(
                        "linearizable read: client {} saw account {id} with balances no entry \
                         in {low}..={high} left it with",
                        op.client
                    ));
                }
            }
            _ => {}
        }
    }
    (stats, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::world::key_of;
    use crate::sim::cluster::SIM_EPOCH_NS;
    use crate::sim::workload::{read_accounts, setup_commands, world};
    use ledger::PartyId;

    const SECOND: u64 = 1_000_000_000;

    /// A real journal (the simulation's world, built in a ledger) and the history of one
    /// client that sent each command after the previous one was acknowledged, every command
    /// taking one second.
    fn honest() -> (Vec<Op>, Vec<JournalEntry>) {
        let mut ledger = Ledger::new();
        let mut ops = Vec::new();
        let mut journal = Vec::new();
        for (n, (signer, command)) in setup_commands(&world()).into_iter().enumerate() {
            let n = n as u64;
            let signed = key_of(&signer).sign(
                PartyId::new(&signer),
                u128::from(n) + 1,
                SIM_EPOCH_NS + 100 * SECOND,
                command,
            );
            let entry = ledger.apply(&signed, SIM_EPOCH_NS + n * SECOND + 1);
            assert!(entry.body.outcome.rejected().is_none(), "{entry:?}");
            ops.push(Op {
                client: 0,
                node: 1,
                invoked_ns: n * SECOND,
                completed_ns: n * SECOND + SECOND / 2,
                call: Call::Write(Box::new(signed)),
                answer: Answer::Journaled {
                    index: entry.body.index,
                    hash: entry.hash,
                    rejected: None,
                },
            });
            journal.push(entry);
        }
        (ops, journal)
    }

    fn observed(journal: &[JournalEntry]) -> Observed {
        let mut ledger = Ledger::new();
        for entry in journal {
            ledger.apply(&entry.body.command, entry.body.timestamp_ns);
        }
        Observed {
            journals: [1, 2, 3].map(|node| (node, journal.to_vec())).into(),
            state_hashes: [1, 2, 3].map(|node| (node, ledger.state_hash())).into(),
        }
    }

    fn problems(ops: &[Op], observed: &Observed) -> Vec<String> {
        check(ops, observed, &read_accounts(&world())).1
    }

    fn read(invoked_s: u64, answer: Answer) -> Op {
        Op {
            client: 1,
            node: 2,
            invoked_ns: invoked_s * SECOND,
            completed_ns: invoked_s * SECOND + 1,
            call: Call::ReadHead,
            answer,
        }
    }

    #[test]
    fn an_honest_history_passes() {
        let (mut ops, journal) = honest();
        let last = journal.last().map(|entry| (entry.body.index, entry.hash));
        let (index, hash) = last.unwrap_or_default();
        ops.push(read(1_000, Answer::Head { index, hash }));
        let (stats, problems) = check(&ops, &observed(&journal), &[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(stats.acknowledged_writes, journal.len() as u64);
        assert_eq!(stats.reads_checked, 1);
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let (ops, mut journal) = honest();
        journal.pop();
        let found = problems(&ops, &observed(&journal));
        assert!(
            found.iter().any(|p| p.starts_with("durability")),
            "{found:?}"
        );
    }

    #[test]
    fn an_acknowledged_entry_that_now_holds_another_command_is_caught() {
        let (mut ops, journal) = honest();
        let (first, second) = (ops[1].call.clone(), ops[2].call.clone());
        ops[1].call = second;
        ops[2].call = first;
        let found = problems(&ops, &observed(&journal));
        assert!(
            found.iter().any(|p| p.contains("lost or rewritten")),
            "{found:?}"
        );
    }

    #[test]
    fn a_write_ordered_before_one_acknowledged_earlier_is_caught() {
        let (mut ops, journal) = honest();
        // The third write claims it was sent after the fourth was acknowledged.
        ops[2].invoked_ns = ops[3].completed_ns + 1;
        ops[2].completed_ns = ops[2].invoked_ns + 1;
        let found = problems(&ops, &observed(&journal));
        assert!(
            found.iter().any(|p| p.starts_with("real-time order")),
            "{found:?}"
        );
    }

    #[test]
    fn a_stale_read_is_caught() {
        let (mut ops, journal) = honest();
        let old = &journal[2];
        ops.push(read(
            1_000,
            Answer::Head {
                index: old.body.index,
                hash: old.hash,
            },
        ));
        let found = problems(&ops, &observed(&journal));
        assert!(
            found.iter().any(|p| p.starts_with("linearizable read")),
            "{found:?}"
        );
    }

    #[test]
    fn a_read_of_balances_no_entry_left_is_caught() {
        let (mut ops, journal) = honest();
        let account = read_accounts(&world())[0];
        let seen = Balances {
            credits_posted: 7,
            ..Balances::default()
        };
        ops.push(Op {
            call: Call::ReadAccount(account),
            answer: Answer::Account(seen),
            ..read(1_000, Answer::Unknown(String::new()))
        });
        let found = problems(&ops, &observed(&journal));
        assert!(found.iter().any(|p| p.contains("balances")), "{found:?}");
    }

    #[test]
    fn replicas_that_disagree_or_lag_are_caught() {
        let (ops, journal) = honest();
        let mut observed = observed(&journal);
        let mut other = journal.clone();
        other.pop();
        observed.journals.insert(3, other);
        let found = problems(&ops, &observed);
        assert!(
            found.iter().any(|p| p.contains("did not converge")),
            "{found:?}"
        );

        let mut forged = journal.clone();
        forged[4].hash = journal[5].hash;
        observed.journals.insert(3, forged);
        let found = problems(&ops, &observed);
        assert!(
            found.iter().any(|p| p.contains("different entries")),
            "{found:?}"
        );
    }

    #[test]
    fn an_entry_the_ledger_would_not_produce_is_caught() {
        let (ops, mut journal) = honest();
        journal[3].body.timestamp_ns += 1;
        let found = problems(&ops, &observed(&journal));
        assert!(found.iter().any(|p| p.starts_with("validity")), "{found:?}");
    }
}
