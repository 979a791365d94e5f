//! The fault injector: during the fault phase, every 0.2–1.5 virtual seconds, one fault drawn
//! from the seed's stream: a partition between two nodes, a one-way cut, an isolated node, a
//! heal, a spell of message loss, a spell of delay (which reorders messages), a crash of one
//! node (restarted 0.3–3 s later, its unsynced log bytes lost but for a torn tail), a power
//! loss of every node at once, or a skewed clock on one node (up to ±5 s).
//!
//! This file only injects and counts; it never checks anything.

use super::cluster::{SimCluster, NODES};
use crate::network::DROP_PER_MILLION_MAX;
use crate::raft_types::NodeId;
use ledger::testing::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::AddAssign;
use std::time::Duration;

/// How many faults of each kind a run injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    pub partitions: u64,
    pub one_way_cuts: u64,
    pub isolations: u64,
    pub heals: u64,
    pub loss_spells: u64,
    pub delay_spells: u64,
    pub crashes: u64,
    pub power_losses: u64,
    pub restarts: u64,
    pub clock_skews: u64,
    /// Log bytes written but not synced that crashes threw away.
    pub unsynced_bytes_lost: u64,
    /// Not a fault: how often a node was seen (between two faults) holding the journal only
    /// from a snapshot on, having caught up by installing it.
    pub snapshot_catch_ups: u64,
}

impl AddAssign for FaultCounts {
    fn add_assign(&mut self, other: FaultCounts) {
        self.partitions += other.partitions;
        self.one_way_cuts += other.one_way_cuts;
        self.isolations += other.isolations;
        self.heals += other.heals;
        self.loss_spells += other.loss_spells;
        self.delay_spells += other.delay_spells;
        self.crashes += other.crashes;
        self.power_losses += other.power_losses;
        self.restarts += other.restarts;
        self.clock_skews += other.clock_skews;
        self.unsynced_bytes_lost += other.unsynced_bytes_lost;
        self.snapshot_catch_ups += other.snapshot_catch_ups;
    }
}

/// The largest clock skew given to a node, either way.
const SKEW_NS_MAX: u64 = 5_000_000_000;

fn pick_node(rng: &mut Rng) -> NodeId {
    *rng.pick(&NODES)
}

fn two_nodes(rng: &mut Rng) -> (NodeId, NodeId) {
    let a = pick_node(rng);
    let others: Vec<NodeId> = NODES.iter().copied().filter(|&n| n != a).collect();
    (a, *rng.pick(&others))
}

/// Injects faults until virtual time `until_ns`; crashed nodes are restarted when their
/// downtime ends (the caller restarts any still down afterwards).
pub(super) async fn run(
    cluster: &SimCluster,
    rng: &mut Rng,
    until_ns: u64,
    counts: &mut FaultCounts,
) -> anyhow::Result<()> {
    let mut restart_at: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut catching_up: BTreeSet<NodeId> = BTreeSet::new();
    while cluster.elapsed_ns() < until_ns {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(1_300))).await;
        for id in NODES {
            let gap = cluster
                .applied(id)
                .is_some_and(|applied| applied.first_journal_index() > 1);
            if gap && catching_up.insert(id) {
                counts.snapshot_catch_ups += 1;
            } else if !gap {
                catching_up.remove(&id);
            }
        }
        let now = cluster.elapsed_ns();
        let due: Vec<NodeId> = restart_at
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            restart_at.remove(&id);
            cluster.restart(id).await?;
            counts.restarts += 1;
        }
        let mut torn = |unsynced: u64| rng_torn(unsynced);
        match rng.below(20) {
            0..=2 => {
                let (a, b) = two_nodes(rng);
                cluster.faults.partition(a, b);
                counts.partitions += 1;
            }
            3 => {
                let (a, b) = two_nodes(rng);
                cluster.faults.partition_one_way(a, b);
                counts.one_way_cuts += 1;
            }
            4 | 5 => {
                cluster.faults.isolate(pick_node(rng));
                counts.isolations += 1;
            }
            6..=8 => {
                cluster.faults.heal();
                counts.heals += 1;
            }
            9 | 10 => {
                let rate = rng.below(u64::from(DROP_PER_MILLION_MAX) / 4);
                cluster
                    .faults
                    .set_drop_rate(u32::try_from(rate).unwrap_or(0));
                counts.loss_spells += 1;
            }
            11 | 12 => {
                let max = Duration::from_millis(rng.below(150));
                cluster.faults.set_delay(Duration::ZERO, max);
                counts.delay_spells += 1;
            }
            13..=15 => {
                let id = pick_node(rng);
                if cluster.is_up(id) {
                    counts.unsynced_bytes_lost += cluster.crash(id, &mut torn).await?;
                    counts.crashes += 1;
                    restart_at.insert(id, now + 300_000_000 + rng.below(2_700) * 1_000_000);
                }
            }
            16 => {
                for id in NODES {
                    counts.unsynced_bytes_lost += cluster.crash(id, &mut torn).await?;
                    restart_at.insert(id, now + 500_000_000 + rng.below(1_500) * 1_000_000);
                }
                counts.power_losses += 1;
            }
            _ => {
                let id = pick_node(rng);
                let skew = i64::try_from(rng.below(2 * SKEW_NS_MAX + 1)).unwrap_or(0)
                    - i64::try_from(SKEW_NS_MAX).unwrap_or(0);
                cluster.set_skew(id, skew);
                counts.clock_skews += 1;
            }
        }
    }
    Ok(())
}

/// How much of an unsynced tail survives a crash: none, all, or a torn part, by a fixed rule
/// on its length (so it needs no random stream of its own).
fn rng_torn(unsynced: u64) -> u64 {
    match unsynced % 3 {
        0 => 0,
        1 => unsynced / 2,
        _ => unsynced,
    }
}
