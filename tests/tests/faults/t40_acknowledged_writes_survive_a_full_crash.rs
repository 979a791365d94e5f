//! Crash durability: every node is killed with SIGKILL while writes are in flight, then all are
//! restarted. Every transfer acknowledged before the crash is there afterwards, exactly once:
//! an acknowledgement means the entry was fsync'd on a quorum, not merely held in memory.

use std::time::Duration;
use tests::{check_exactly_once, Cluster, Load};

#[test]
fn acknowledged_writes_survive_kill_9_of_every_node() {
    let mut cluster = Cluster::start(3);
    let client = cluster.client().with_timeout(Duration::from_secs(3));
    let load = Load::start(&client, 3, &cluster.node_ids());
    load.wait_acknowledged(100, Duration::from_secs(20));

    // Leader first, so the followers die with entries they acknowledged but may not have
    // applied yet; the writers are still running.
    let leader = cluster.leader();
    cluster.kill9(leader);
    for id in cluster.node_ids() {
        cluster.kill9(id);
    }
    load.stop();
    // Counted after the writers stopped: an answer written just before the kill still counts.
    let acknowledged = client.acknowledged_count();

    for id in cluster.node_ids() {
        cluster.restart(id);
    }
    cluster.wait_converged();
    let found = check_exactly_once(&mut cluster, &client);
    eprintln!("after the crash: {found:?}");
    assert_eq!(found.acknowledged, acknowledged);
}
