//! A follower cut off from all Raft traffic (through `POST /v1/admin/faults`) while writes go
//! on: the other two keep serving, the isolated one falls behind, and once healed it catches up
//! to the same journal head and state hash with nothing lost or doubled.

use std::time::Duration;
use tests::{check_exactly_once, Cluster, Load};

/// Writes acknowledged while the follower is cut off.
const WRITES_WHILE_ISOLATED: usize = 60;

#[test]
fn an_isolated_follower_falls_behind_and_catches_up_when_healed() {
    let mut cluster = Cluster::start(3);
    let isolated = cluster.followers()[0];
    let connected: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| *id != isolated)
        .collect();
    let client = cluster.client().with_timeout(Duration::from_secs(3));
    let load = Load::start(&client, 3, &connected);
    load.wait_acknowledged(20, Duration::from_secs(20));

    cluster.isolate(isolated);
    let acknowledged_at_isolation = client.acknowledged_count();
    load.wait_acknowledged(
        acknowledged_at_isolation + WRITES_WHILE_ISOLATED,
        Duration::from_secs(20),
    );
    let behind = cluster
        .state(isolated)
        .expect("the isolated node still serves local reads");
    let leader = cluster.leader();
    assert_ne!(
        leader, isolated,
        "an isolated node cannot stay leader of the majority"
    );
    let ahead = cluster.state(leader).expect("the leader serves reads");
    // A few entries may have been in flight when the cut happened; dozens cannot.
    assert!(
        behind.journal_head.index + WRITES_WHILE_ISOLATED as u64 / 2 <= ahead.journal_head.index,
        "the isolated node kept up ({} vs the leader's {}): the cut did not hold",
        behind.journal_head.index,
        ahead.journal_head.index
    );

    cluster.heal(isolated);
    load.wait_acknowledged(client.acknowledged_count() + 20, Duration::from_secs(20));
    load.stop();
    cluster.wait_converged();
    let found = check_exactly_once(&mut cluster, &client);
    eprintln!("after isolation: {found:?}");
}
