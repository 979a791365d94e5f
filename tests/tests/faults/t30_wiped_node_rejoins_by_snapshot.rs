//! A node whose disk is replaced rejoins and is brought up to date by a snapshot, because the
//! leader has already purged the log it would need.
//!
//! The safe procedure (`Cluster::wipe`): the leader removes the node, its data directory is
//! deleted, it starts empty and is added back as a learner (blocking until it caught up) and
//! promoted. The nodes snapshot every `SNAPSHOT_LOGS` Raft entries here (`CBANK_SNAPSHOT_LOGS`;
//! the default is 10,000) and keep `LOG_ENTRIES_KEPT_AFTER_SNAPSHOT` = 1,000 entries behind a
//! snapshot (`node/src/limits.rs`), so the test writes past the first snapshot beyond that. It
//! watches the leader's `snapshots/` folder (`snapshot-<last applied index + 1>.snap`,
//! `node/src/storage/snapshot.rs`) to know when the snapshot exists.

use std::path::Path;
use std::time::Duration;
use tests::{check_exactly_once, wait_for, Cluster, Load, Options};

/// Raft log entries the node keeps after a snapshot; entries before the snapshot index less
/// this are purged. A snapshot beyond it means entry 1 is gone from the leader's log.
const LOG_ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

/// Raft entries between snapshots in this test.
const SNAPSHOT_LOGS: u64 = 200;

/// How long writing past the first useful snapshot may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The Raft index one past the newest snapshot in a node's data directory, if any.
fn newest_snapshot_end(data_dir: &Path) -> Option<u64> {
    std::fs::read_dir(data_dir.join("snapshots"))
        .ok()?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("snapshot-")?
                .strip_suffix(".snap")?
                .parse::<u64>()
                .ok()
        })
        .max()
}

#[test]
fn a_wiped_node_rejoins_by_snapshot_and_converges() {
    let mut options = Options::new(3);
    options
        .node_env
        .push(("CBANK_SNAPSHOT_LOGS".to_owned(), SNAPSHOT_LOGS.to_string()));
    let mut cluster = Cluster::start_with(options);
    let leader = cluster.leader();
    let wiped = cluster.followers()[0];
    // Down while the log grows: the leader then replicates to one follower only, and the
    // wiped node cannot catch up from the log when it returns.
    cluster.kill9(wiped);

    let client = cluster.client();
    let load = Load::start(&client, 8, &[leader]);
    let leader_dir = cluster.node(leader).data_dir.clone();
    let snapshot_end = wait_for(
        "the leader's first snapshot past the kept log",
        SNAPSHOT_TIMEOUT,
        || match newest_snapshot_end(&leader_dir) {
            Some(end) if end > LOG_ENTRIES_KEPT_AFTER_SNAPSHOT + 1 => Ok(end),
            other => {
                let log_index = cluster.cluster_view(leader).map(|view| view.last_log_index);
                Err(format!(
                    "newest snapshot {other:?}, leader's last log index {log_index:?}"
                ))
            }
        },
    );
    load.stop();
    eprintln!(
        "leader {leader} snapshotted up to Raft index {}",
        snapshot_end - 1
    );

    cluster.wipe(wiped);
    cluster.wait_converged();
    // The node caught up by installing a snapshot, so at first it stored the journal only from
    // the snapshot on; it then fetches the entries before it from a peer (checked against the
    // hash chain, `node/src/server/backfill.rs`) until it holds the whole journal again.
    let state = wait_for(
        "the rejoined node to hold the whole journal",
        Duration::from_secs(30),
        || {
            let state = cluster.state(wiped).map_err(|error| error.to_string())?;
            if state.first_journal_index == 1 {
                Ok(state)
            } else {
                Err(format!("{state:?}"))
            }
        },
    );
    assert!(
        state.snapshots_installed >= 1,
        "node {wiped} caught up without installing a snapshot: {state:?}"
    );
    assert!(
        state.journal_entries_fetched > 0,
        "node {wiped} installed a snapshot but fetched no journal: {state:?}"
    );
    let page = cluster
        .journal(wiped, 1, 1, "local")
        .unwrap_or_else(|error| panic!("the rejoined node serves journal entry 1: {error}"));
    assert_eq!(page.first_index, 1);
    let found = check_exactly_once(&mut cluster, &client);
    eprintln!(
        "after the wipe: {found:?}; node {wiped} installed {} snapshot(s) and fetched {} journal entries",
        state.snapshots_installed, state.journal_entries_fetched
    );
}
