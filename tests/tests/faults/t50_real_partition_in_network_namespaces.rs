//! A partition over real sockets (`BRIEF.md` §5): each node in its own network namespace on a
//! bridge, and the leader's link set down, so the kernel drops its packets, not the node
//! (`tests/src/netns.rs`; `tc netem` is missing from this kernel). The other two elect a new
//! leader and keep acknowledging writes; once its link is back the old leader follows the new
//! one and catches up. Then a follower's link is throttled to 256 kbit/s each way and writes
//! still go through. Nothing acknowledged is lost or doubled, and all nodes converge.

use std::time::{Duration, Instant};
use tests::{check_exactly_once, wait_for, Cluster, Load, Options};

/// Writes acknowledged while the old leader is cut off.
const WRITES_WHILE_CUT: usize = 40;

#[test]
fn a_leader_cut_off_in_the_kernel_loses_office_and_nothing_acknowledged_is_lost() {
    let mut options = Options::new(3);
    options.netns = true;
    let mut cluster = Cluster::start_with(options);
    let old_leader = cluster.leader();
    let others: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| *id != old_leader)
        .collect();
    let client = cluster.client().with_timeout(Duration::from_secs(3));
    let load = Load::start(&client, 3, &others);
    load.wait_acknowledged(20, Duration::from_secs(20));

    let cut_at = Instant::now();
    cluster.cut_link(old_leader);
    let before = client.acknowledged_count();
    load.wait_acknowledged(before + WRITES_WHILE_CUT, Duration::from_secs(30));
    let new_leader = cluster.leader();
    eprintln!(
        "kernel partition: node {new_leader} leads {:?} after node {old_leader}'s link was cut",
        cut_at.elapsed()
    );
    assert_ne!(new_leader, old_leader, "the majority elected a new leader");

    cluster.heal_link(old_leader);
    // Back on the network, the old leader follows the new term.
    wait_for(
        "the old leader to follow the new one",
        Duration::from_secs(20),
        || match cluster.cluster_view(old_leader) {
            Ok(view) if view.role != "leader" && view.leader_id == Some(new_leader) => Ok(()),
            Ok(view) => Err(format!("node {old_leader}: {view:?}")),
            Err(error) => Err(error.to_string()),
        },
    );

    // A slow link: a follower throttled to 256 kbit/s; the quorum still acknowledges.
    let slow = cluster.followers()[0];
    cluster.netns().throttle(slow, 256);
    load.wait_acknowledged(client.acknowledged_count() + 20, Duration::from_secs(30));
    cluster.netns().heal(slow);

    load.wait_acknowledged(client.acknowledged_count() + 10, Duration::from_secs(20));
    load.stop();
    cluster.wait_converged();
    let found = check_exactly_once(&mut cluster, &client);
    eprintln!("after the kernel partition: {found:?}");
}
