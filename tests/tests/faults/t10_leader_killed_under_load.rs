//! kill -9 of the leader while three writers keep sending transfers: a new leader serves writes
//! within 5 s, nothing acknowledged is lost or doubled, and the killed node, restarted, catches
//! up to the same state hash.
//!
//! The node's Raft timing (`node/src/limits.rs`, used by `server/config.rs::raft_config`): a
//! 100 ms heartbeat and an election timeout drawn from 400–800 ms, so a follower campaigns at
//! most 0.8 s after the last heartbeat and an election needs one more vote round trip. 5 s
//! leaves room for a loaded 2-core machine and for the probe's own retries, while still
//! failing if the election timeout were, say, ten times longer.

use std::time::{Duration, Instant};
use tests::{check_exactly_once, Cluster, Load, TransferError, TransferSpec};

/// The longest a client may wait, after the leader dies, for a write to be acknowledged.
const FAILOVER_MAX: Duration = Duration::from_secs(5);

/// Per-request timeout of the failover probe: short, so that a request stuck on a node that
/// has no leader yet does not hide how soon another node could have answered.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Pause between two probe tries when a node answered at once that it cannot serve yet.
const PROBE_PAUSE: Duration = Duration::from_millis(10);

#[test]
fn a_new_leader_serves_writes_within_5_s_and_nothing_acknowledged_is_lost() {
    let mut cluster = Cluster::start(3);
    let client = cluster.client().with_timeout(Duration::from_secs(3));
    let load = Load::start(&client, 3, &cluster.node_ids());
    load.wait_acknowledged(60, Duration::from_secs(20));

    let old_leader = cluster.leader();
    let acknowledged_before = client.acknowledged_count();
    let killed_at = Instant::now();
    cluster.kill9(old_leader);

    // A fresh transfer, sent only after the kill, retried across the survivors until one
    // acknowledges it.
    let survivors: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| *id != old_leader)
        .collect();
    let probe = client.with_timeout(PROBE_TIMEOUT);
    let spec = TransferSpec::new("carol", "alice", 4_242);
    let mut tries = 0usize;
    // The distinct answers the probe got, with when each was first seen (printed on success and
    // in the failure message: they tell an election that took long from forwarding that did).
    let mut answers: Vec<(Duration, String)> = Vec::new();
    let failover = loop {
        let node = survivors[tries % survivors.len()];
        tries += 1;
        match probe.transfer_once(node, &spec) {
            Ok(_) => break killed_at.elapsed(),
            Err(TransferError::Api(error)) if error.is_transient() => {
                let answer = format!(
                    "node {node}: {} {}",
                    error.status.map_or("-".into(), |s| s.to_string()),
                    error.code
                );
                if !answers.iter().any(|(_, seen)| *seen == answer) {
                    answers.push((killed_at.elapsed(), answer));
                }
                assert!(
                    killed_at.elapsed() < 4 * FAILOVER_MAX,
                    "no write acknowledged {:?} after the kill: {answers:?}",
                    killed_at.elapsed()
                );
                std::thread::sleep(PROBE_PAUSE);
            }
            Err(error) => panic!("the failover probe was refused: {error}"),
        }
    };
    eprintln!("failover: first write acknowledged {failover:?} after kill -9 of leader {old_leader} ({tries} tries; answers before: {answers:?})");
    assert!(failover < FAILOVER_MAX, "a new leader served writes only {failover:?} after the old one died; answers before: {answers:?}");

    let new_leader = cluster.leader();
    assert_ne!(new_leader, old_leader, "the killed node cannot lead");
    // The load goes on under the new leader.
    load.wait_acknowledged(client.acknowledged_count() + 30, Duration::from_secs(20));
    load.stop();
    assert!(client.acknowledged_count() > acknowledged_before + 30);

    cluster.restart(old_leader);
    let converged = cluster.wait_converged();
    let found = check_exactly_once(&mut cluster, &client);
    eprintln!(
        "after the kill: {found:?}, journal head {}",
        converged.journal_head.index
    );
    assert!(
        found.present >= found.acknowledged,
        "every acknowledged transfer is present"
    );
}
