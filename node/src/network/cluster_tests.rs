//! Tests of the Raft transport with real openraft nodes over real loopback tonic sockets.
//!
//! Each node runs in this process with a trivial in-memory store (`mem_store` below, shaped like
//! openraft's memstore example; the real stores live in `storage/` and are not used here), a
//! [`Network`] wrapped in a [`FaultyNetwork`], and a server on a port bound to 127.0.0.1:0.
//! The tests elect a leader, replicate proposals, partition the leader, heal, and send a
//! snapshot in many chunks; others check how transport failures map to openraft errors.
//!
//! These tests never sleep for a fixed time to let something happen: they wait on Raft metrics
//! or on state, always under a bounded timeout, and fail when it expires.

use crate::network::{
    raft_service_with_faults, serve_service, Faults, FaultyNetwork, Network, NetworkConfig,
    PeerConnection,
};
use crate::raft_types::{NodeId, NodeInfo, Proposal, Raft, StampedCommand};
use mem_store::{MemLogStore, MemStateMachine};
use openraft::error::{ClientWriteError, Fatal, RPCError, RaftError};
use openraft::network::RPCOption;
use openraft::raft::VoteRequest;
use openraft::{Config, RaftMetrics, RaftNetwork, ServerState, SnapshotPolicy, Vote};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest any single wait in these tests may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

/// Awaits `future` or fails the test after [`WAIT`], naming what was awaited.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A proposal with one command stamped `timestamp_ns`; the store records the stamps it applies.
fn proposal(timestamp_ns: u64) -> Proposal {
    use ledger::command::Command;
    use ledger::envelope::SigningKey;
    use ledger::party::PartyId;
    let key = SigningKey::from_seed([5; 32]);
    let party = PartyId::new("operator");
    let command = Command::AddKey {
        party: party.clone(),
        key: key.public_key(),
    };
    let signed = key.sign(party, u128::from(timestamp_ns), u64::MAX, command);
    Proposal {
        commands: vec![StampedCommand {
            timestamp_ns,
            command: signed,
        }],
    }
}

struct TestNode {
    id: NodeId,
    raft: Raft,
    state_machine: MemStateMachine,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

struct Cluster {
    nodes: Vec<TestNode>,
    faults: Faults,
}

fn raft_config(snapshot_chunk_bytes: u64) -> Arc<Config> {
    let config = Config {
        cluster_name: "network-tests".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        install_snapshot_timeout: 2000,
        snapshot_max_chunk_size: snapshot_chunk_bytes,
        // Snapshots are taken only when a test asks, and then every log entry may be purged.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        ..Config::default()
    };
    Arc::new(
        config
            .validate()
            .expect("the test Raft configuration is valid"),
    )
}

fn network_config() -> NetworkConfig {
    NetworkConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        unreachable_backoff: Duration::from_millis(100),
    }
}

impl Cluster {
    /// Starts `count` nodes (ids 1..=count) on loopback ports and initializes them as voters.
    async fn start(count: u64, seed: u64, snapshot_chunk_bytes: u64) -> Cluster {
        let faults = Faults::new(seed);
        let mut listeners = Vec::new();
        let mut members = BTreeMap::new();
        for id in 1..=count {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            let addr = listener.local_addr().expect("bound address").to_string();
            members.insert(
                id,
                NodeInfo {
                    raft_addr: addr,
                    http_addr: String::new(),
                },
            );
            listeners.push((id, listener));
        }
        let config = raft_config(snapshot_chunk_bytes);
        let mut nodes = Vec::new();
        for (id, listener) in listeners {
            let network =
                FaultyNetwork::new(id, Network::new(id, network_config()), faults.clone());
            let state_machine = MemStateMachine::default();
            let raft = Raft::new(
                id,
                config.clone(),
                network,
                MemLogStore::default(),
                state_machine.clone(),
            )
            .await
            .expect("start raft");
            let (stop_server, stopped) = oneshot::channel::<()>();
            let service = raft_service_with_faults(raft.clone(), faults.clone());
            let server = tokio::spawn(serve_service(service, listener, async {
                let _ = stopped.await;
            }));
            nodes.push(TestNode {
                id,
                raft,
                state_machine,
                stop_server: Some(stop_server),
                server: Some(server),
            });
        }
        nodes[0]
            .raft
            .initialize(members)
            .await
            .expect("initialize the cluster");
        Cluster { nodes, faults }
    }

    fn node(&self, id: NodeId) -> &TestNode {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .expect("a node of this cluster")
    }

    /// Waits until every node in `ids` names the same leader, other than `not`, and returns it.
    async fn agreed_leader(&self, ids: &[NodeId], not: Option<NodeId>) -> NodeId {
        within("an agreed leader", async {
            loop {
                let leaders: Vec<Option<NodeId>> = ids
                    .iter()
                    .map(|id| self.node(*id).raft.metrics().borrow().current_leader)
                    .collect();
                if let Some(Some(leader)) = leaders.first().copied() {
                    let agreed = leaders.iter().all(|l| *l == Some(leader));
                    let is_leader =
                        self.node(leader).raft.metrics().borrow().state == ServerState::Leader;
                    if agreed && is_leader && Some(leader) != not && ids.contains(&leader) {
                        return leader;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Waits until node `id`'s metrics satisfy `condition`.
    async fn wait_metrics(
        &self,
        id: NodeId,
        what: &str,
        condition: impl Fn(&RaftMetrics<NodeId, NodeInfo>) -> bool + Send,
    ) -> RaftMetrics<NodeId, NodeInfo> {
        let waited = self
            .node(id)
            .raft
            .wait(Some(WAIT))
            .metrics(condition, what)
            .await;
        waited.unwrap_or_else(|error| panic!("node {id}: {what}: {error}"))
    }

    /// Writes one proposal stamped `timestamp_ns` through `leader` and returns its log index.
    async fn write(&self, leader: NodeId, timestamp_ns: u64) -> u64 {
        let write = self.node(leader).raft.client_write(proposal(timestamp_ns));
        let response = within("a client write", write).await;
        response
            .unwrap_or_else(|error| panic!("write {timestamp_ns} via {leader}: {error}"))
            .log_id
            .index
    }

    /// Waits until every node has applied up to `index` and returns the stamps each applied.
    async fn applied_everywhere(&self, index: u64) -> Vec<Vec<u64>> {
        let ids: Vec<NodeId> = self.nodes.iter().map(|node| node.id).collect();
        self.applied_on(&ids, index).await
    }

    /// Waits until the nodes `ids` have applied up to `index` and returns the stamps each applied.
    async fn applied_on(&self, ids: &[NodeId], index: u64) -> Vec<Vec<u64>> {
        let mut applied = Vec::new();
        for id in ids {
            let what = format!("applied index {index}");
            self.wait_metrics(*id, &what, |m| {
                m.last_applied.is_some_and(|l| l.index >= index)
            })
            .await;
            applied.push(self.node(*id).state_machine.applied_stamps());
        }
        applied
    }

    async fn shutdown(mut self) {
        for node in &mut self.nodes {
            within("raft shutdown", node.raft.shutdown())
                .await
                .expect("raft shuts down");
            if let Some(stop) = node.stop_server.take() {
                let _ = stop.send(());
            }
            if let Some(server) = node.server.take() {
                let served = within("server shutdown", server)
                    .await
                    .expect("server task");
                served.expect("server ends without a transport error");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_three_nodes_replicate_then_survive_a_leader_partition() {
    let cluster = Cluster::start(3, 0x5EED, 3 * 1024 * 1024).await;
    let all = [1, 2, 3];
    let old_leader = cluster.agreed_leader(&all, None).await;
    let old_term = cluster
        .node(old_leader)
        .raft
        .metrics()
        .borrow()
        .current_term;

    let mut last_index = 0;
    for stamp in 1..=5 {
        last_index = cluster.write(old_leader, stamp).await;
    }
    let applied = cluster.applied_everywhere(last_index).await;
    for stamps in &applied {
        assert_eq!(
            stamps,
            &vec![1, 2, 3, 4, 5],
            "applied stamps per node: {applied:?}"
        );
    }

    // Cut the leader off from both followers: the followers elect a new leader among them.
    let followers: Vec<NodeId> = all.iter().copied().filter(|id| *id != old_leader).collect();
    for follower in &followers {
        cluster.faults.partition(old_leader, *follower);
    }
    let new_leader = cluster.agreed_leader(&followers, Some(old_leader)).await;
    let new_term = cluster
        .node(new_leader)
        .raft
        .metrics()
        .borrow()
        .current_term;
    assert!(
        new_term > old_term,
        "new term {new_term} must exceed old term {old_term}"
    );
    assert!(
        cluster.faults.stats().cut > 0,
        "the partition must have stopped some messages"
    );

    // The old leader cannot commit a write while it is cut off.
    let stale_raft = cluster.node(old_leader).raft.clone();
    let stale_write = tokio::spawn(async move { stale_raft.client_write(proposal(999)).await });

    for stamp in 6..=8 {
        last_index = cluster.write(new_leader, stamp).await;
    }

    // Heal: the old leader sees the higher term, steps down, and catches up.
    cluster.faults.heal();
    let old_metrics = cluster
        .wait_metrics(old_leader, "follow the new leader and catch up", |m| {
            m.state == ServerState::Follower
                && m.current_leader == Some(new_leader)
                && m.last_applied.is_some_and(|l| l.index >= last_index)
        })
        .await;
    assert!(old_metrics.current_term >= new_term);

    let applied = cluster.applied_everywhere(last_index).await;
    for stamps in &applied {
        assert_eq!(
            stamps,
            &vec![1, 2, 3, 4, 5, 6, 7, 8],
            "applied stamps per node: {applied:?}"
        );
    }
    // The stale leader's write was never committed: it failed or is still waiting.
    if stale_write.is_finished() {
        let outcome = stale_write.await.expect("stale write task");
        assert!(
            outcome.is_err(),
            "a write to a cut-off leader must not succeed: {outcome:?}"
        );
    } else {
        stale_write.abort();
    }

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_lagging_follower_catches_up_from_a_chunked_snapshot() {
    // Chunks of 64 bytes make the snapshot travel in many `InstallSnapshot` RPCs.
    let cluster = Cluster::start(3, 0xABCD, 64).await;
    let all = [1, 2, 3];
    let leader = cluster.agreed_leader(&all, None).await;
    let lagging = all
        .iter()
        .copied()
        .find(|id| *id != leader)
        .expect("a follower");
    cluster.faults.isolate(lagging);

    let mut last_index = 0;
    for stamp in 1..=20 {
        last_index = cluster.write(leader, stamp).await;
    }
    // Snapshot and purge the log on both up-to-date nodes, so that whichever of them leads
    // after the heal, the only way for the lagging node to catch up is the snapshot.
    for id in all.iter().copied().filter(|id| *id != lagging) {
        cluster.applied_on(&[id], last_index).await;
        let raft = &cluster.node(id).raft;
        raft.trigger().snapshot().await.expect("trigger snapshot");
        cluster
            .wait_metrics(id, "snapshot", |m| {
                m.snapshot.is_some_and(|s| s.index >= last_index)
            })
            .await;
        raft.trigger()
            .purge_log(last_index)
            .await
            .expect("trigger purge");
        cluster
            .wait_metrics(id, "purge", |m| {
                m.purged.is_some_and(|p| p.index >= last_index)
            })
            .await;
    }

    cluster.faults.heal();
    let applied = cluster.applied_everywhere(last_index).await;
    let expected: Vec<u64> = (1..=20).collect();
    for stamps in &applied {
        assert_eq!(stamps, &expected, "applied stamps per node: {applied:?}");
    }
    let installed = cluster.node(lagging).state_machine.snapshots_installed();
    assert!(
        installed >= 1,
        "node {lagging} must have caught up from a snapshot"
    );
    let snapshot_bytes = cluster.node(lagging).state_machine.snapshot_bytes();
    assert!(
        snapshot_bytes > 4 * 64,
        "a {snapshot_bytes}-byte snapshot is not several chunks"
    );
    let stats = cluster.faults.stats();
    assert!(
        stats.cut > 0,
        "the isolation must have stopped some messages: {stats:?}"
    );

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_drops_and_delays_still_converge() {
    let cluster = Cluster::start(3, 0xD1CE, 3 * 1024 * 1024).await;
    let all = [1, 2, 3];
    cluster.agreed_leader(&all, None).await;
    cluster.faults.set_drop_rate(100_000); // one message in ten
    cluster
        .faults
        .set_delay(Duration::from_millis(1), Duration::from_millis(20));

    let mut last_index = 0;
    for stamp in 1..=10 {
        // Drops can cost the leader its lease and trigger an election: write to whoever leads.
        let current = cluster.agreed_leader(&all, None).await;
        let write = cluster.node(current).raft.client_write(proposal(stamp));
        match within("a client write under faults", write).await {
            Ok(response) => last_index = response.log_id.index,
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {}
            Err(error) => panic!("write {stamp} via {current}: {error}"),
        }
    }
    cluster.faults.set_drop_rate(0);
    cluster.faults.set_delay(Duration::ZERO, Duration::ZERO);

    let applied = cluster.applied_everywhere(last_index).await;
    assert!(
        applied.iter().all(|stamps| stamps == &applied[0]),
        "diverged: {applied:?}"
    );
    assert!(!applied[0].is_empty(), "no write succeeded");
    let stats = cluster.faults.stats();
    assert!(
        stats.dropped > 0 && stats.delayed > 0,
        "faults not applied: {stats:?}"
    );

    cluster.shutdown().await;
}

fn vote_request() -> VoteRequest<NodeId> {
    VoteRequest {
        vote: Vote::new(1, 9),
        last_log_id: None,
    }
}

fn connection_to(raft_addr: &str) -> PeerConnection {
    let node = NodeInfo {
        raft_addr: raft_addr.to_string(),
        http_addr: String::new(),
    };
    Network::new(9, network_config()).connect(1, &node)
}

#[tokio::test]
async fn network_refused_connection_is_unreachable() {
    // Bind then drop, so nothing listens on the port.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address").to_string();
    drop(listener);
    let mut connection = connection_to(&addr);
    let option = RPCOption::new(Duration::from_secs(2));
    let result = within("a refused vote", connection.vote(vote_request(), option)).await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn network_unusable_address_is_unreachable_not_a_panic() {
    let mut connection = connection_to("not a host:port/\u{0}");
    let option = RPCOption::new(Duration::from_secs(2));
    let result = within(
        "a vote to a bad address",
        connection.vote(vote_request(), option),
    )
    .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn network_silent_peer_times_out() {
    // Accepts TCP connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address").to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut connection = connection_to(&addr);
    let option = RPCOption::new(Duration::from_millis(300));
    let result = within(
        "a vote to a silent peer",
        connection.vote(vote_request(), option),
    )
    .await;
    assert!(matches!(result, Err(RPCError::Timeout(_))), "{result:?}");
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_remote_raft_error_is_carried_as_remote_error() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address").to_string();
    let faults = Faults::new(1);
    let network = FaultyNetwork::new(1, Network::new(1, network_config()), faults.clone());
    let raft = Raft::new(
        1,
        raft_config(1024),
        network,
        MemLogStore::default(),
        MemStateMachine::default(),
    )
    .await
    .expect("start raft");
    let (stop_server, stopped) = oneshot::channel::<()>();
    let service = raft_service_with_faults(raft.clone(), faults.clone());
    let server = tokio::spawn(serve_service(service, listener, async {
        let _ = stopped.await;
    }));
    within("raft shutdown", raft.shutdown())
        .await
        .expect("raft shuts down");

    let mut connection = connection_to(&addr);
    let option = RPCOption::new(Duration::from_secs(2));
    let result = within(
        "a vote to a stopped raft",
        connection.vote(vote_request(), option),
    )
    .await;
    match result {
        Err(RPCError::RemoteError(remote)) => {
            assert_eq!(remote.target, 1);
            assert_eq!(remote.source, RaftError::Fatal(Fatal::Stopped));
        }
        other => panic!("expected a remote Fatal::Stopped, got {other:?}"),
    }

    // The server side of a cut link answers `Unavailable`, which the caller sees as unreachable.
    faults.isolate(1);
    let option = RPCOption::new(Duration::from_secs(2));
    let result = within(
        "a vote over a cut link",
        connection.vote(vote_request(), option),
    )
    .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );

    // A payload that does not decode is refused with `InvalidArgument`, and the server lives on.
    faults.heal();
    let endpoint = format!("http://{addr}");
    let mut raw = proto::raft::v1::raft_service_client::RaftServiceClient::connect(endpoint)
        .await
        .expect("connect a raw client");
    let garbage = proto::raft::v1::RaftPayload {
        data: vec![0xFF; 13],
    };
    for status in [
        raw.vote(garbage.clone()).await.expect_err("garbage vote"),
        raw.append_entries(garbage.clone())
            .await
            .expect_err("garbage append"),
        raw.install_snapshot(garbage)
            .await
            .expect_err("garbage snapshot"),
    ] {
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
    let option = RPCOption::new(Duration::from_secs(2));
    let result = within(
        "a vote after garbage",
        connection.vote(vote_request(), option),
    )
    .await;
    assert!(
        matches!(result, Err(RPCError::RemoteError(_))),
        "{result:?}"
    );

    let _ = stop_server.send(());
    within("server shutdown", server)
        .await
        .expect("server task")
        .expect("server ends");
}

/// A trivial in-memory Raft log and state machine, enough to run openraft in tests.
///
/// The state machine records the timestamp of every command it applies; that list is the
/// "state" the tests compare across nodes. Nothing here is durable.
mod mem_store {
    use crate::raft_types::{NodeId, NodeInfo, ProposalResponse, TypeConfig};
    use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
    use openraft::{
        Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader,
        RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StoredMembership, Vote,
    };
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use std::fmt::Debug;
    use std::io::Cursor;
    use std::ops::RangeBounds;
    use std::sync::{Arc, Mutex, MutexGuard};

    fn io_error(subject: ErrorSubject<NodeId>, error: impl ToString) -> StorageError<NodeId> {
        let error = std::io::Error::other(error.to_string());
        StorageError::from_io_error(subject, ErrorVerb::Read, error)
    }

    #[derive(Default)]
    struct Log {
        vote: Option<Vote<NodeId>>,
        committed: Option<LogId<NodeId>>,
        last_purged: Option<LogId<NodeId>>,
        entries: BTreeMap<u64, Entry<TypeConfig>>,
    }

    #[derive(Clone, Default)]
    pub struct MemLogStore {
        log: Arc<Mutex<Log>>,
    }

    impl MemLogStore {
        fn lock(&self) -> MutexGuard<'_, Log> {
            self.log.lock().expect("test store lock")
        }
    }

    impl RaftLogReader<TypeConfig> for MemLogStore {
        async fn try_get_log_entries<R: RangeBounds<u64> + Clone + Debug + Send>(
            &mut self,
            range: R,
        ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
            Ok(self
                .lock()
                .entries
                .range(range)
                .map(|(_, entry)| entry.clone())
                .collect())
        }
    }

    impl RaftLogStorage<TypeConfig> for MemLogStore {
        type LogReader = MemLogStore;

        async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
            let log = self.lock();
            let last = log.entries.values().next_back().map(|entry| entry.log_id);
            Ok(LogState {
                last_purged_log_id: log.last_purged,
                last_log_id: last.or(log.last_purged),
            })
        }

        async fn get_log_reader(&mut self) -> MemLogStore {
            self.clone()
        }

        async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
            self.lock().vote = Some(*vote);
            Ok(())
        }

        async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
            Ok(self.lock().vote)
        }

        async fn save_committed(
            &mut self,
            committed: Option<LogId<NodeId>>,
        ) -> Result<(), StorageError<NodeId>> {
            self.lock().committed = committed;
            Ok(())
        }

        async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
            Ok(self.lock().committed)
        }

        async fn append<I>(
            &mut self,
            entries: I,
            callback: LogFlushed<TypeConfig>,
        ) -> Result<(), StorageError<NodeId>>
        where
            I: IntoIterator<Item = Entry<TypeConfig>> + Send,
            I::IntoIter: Send,
        {
            {
                let mut log = self.lock();
                for entry in entries {
                    log.entries.insert(entry.log_id.index, entry);
                }
            }
            callback.log_io_completed(Ok(()));
            Ok(())
        }

        async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
            self.lock().entries.retain(|index, _| *index < log_id.index);
            Ok(())
        }

        async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
            let mut log = self.lock();
            log.entries.retain(|index, _| *index > log_id.index);
            log.last_purged = Some(log_id);
            Ok(())
        }
    }

    /// What a snapshot holds: everything the state machine knows.
    #[derive(Clone, Default, Serialize, Deserialize)]
    struct State {
        last_applied: Option<LogId<NodeId>>,
        membership: StoredMembership<NodeId, NodeInfo>,
        stamps: Vec<u64>,
    }

    #[derive(Default)]
    struct Machine {
        state: State,
        snapshot: Option<(SnapshotMeta<NodeId, NodeInfo>, Vec<u8>)>,
        snapshots_built: u64,
        snapshots_installed: u64,
    }

    #[derive(Clone, Default)]
    pub struct MemStateMachine {
        machine: Arc<Mutex<Machine>>,
    }

    impl MemStateMachine {
        fn lock(&self) -> MutexGuard<'_, Machine> {
            self.machine.lock().expect("test state machine lock")
        }

        /// The timestamps of every command applied so far, in order.
        pub fn applied_stamps(&self) -> Vec<u64> {
            self.lock().state.stamps.clone()
        }

        /// The size in bytes of the current snapshot, 0 if there is none.
        pub fn snapshot_bytes(&self) -> usize {
            self.lock()
                .snapshot
                .as_ref()
                .map_or(0, |(_, data)| data.len())
        }

        /// How many snapshots this state machine installed from a leader.
        pub fn snapshots_installed(&self) -> u64 {
            self.lock().snapshots_installed
        }
    }

    impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
        async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
            let mut machine = self.lock();
            let data = serde_json::to_vec(&machine.state)
                .map_err(|error| io_error(ErrorSubject::Snapshot(None), error))?;
            machine.snapshots_built += 1;
            let last = machine.state.last_applied;
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: machine.state.membership.clone(),
                snapshot_id: format!("{:?}-{}", last.map(|l| l.index), machine.snapshots_built),
            };
            machine.snapshot = Some((meta.clone(), data.clone()));
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        }
    }

    impl RaftStateMachine<TypeConfig> for MemStateMachine {
        type SnapshotBuilder = MemStateMachine;

        async fn applied_state(
            &mut self,
        ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeInfo>), StorageError<NodeId>>
        {
            let machine = self.lock();
            Ok((machine.state.last_applied, machine.state.membership.clone()))
        }

        async fn apply<I>(
            &mut self,
            entries: I,
        ) -> Result<Vec<ProposalResponse>, StorageError<NodeId>>
        where
            I: IntoIterator<Item = Entry<TypeConfig>> + Send,
            I::IntoIter: Send,
        {
            let mut machine = self.lock();
            let mut responses = Vec::new();
            for entry in entries {
                machine.state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(proposal) => {
                        let stamps = proposal.commands.iter().map(|c| c.timestamp_ns);
                        machine.state.stamps.extend(stamps);
                    }
                    EntryPayload::Membership(membership) => {
                        machine.state.membership =
                            StoredMembership::new(Some(entry.log_id), membership);
                    }
                }
                responses.push(ProposalResponse::default());
            }
            Ok(responses)
        }

        async fn get_snapshot_builder(&mut self) -> MemStateMachine {
            self.clone()
        }

        async fn begin_receiving_snapshot(
            &mut self,
        ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
            Ok(Box::new(Cursor::new(Vec::new())))
        }

        async fn install_snapshot(
            &mut self,
            meta: &SnapshotMeta<NodeId, NodeInfo>,
            snapshot: Box<Cursor<Vec<u8>>>,
        ) -> Result<(), StorageError<NodeId>> {
            let data = snapshot.into_inner();
            let subject = ErrorSubject::Snapshot(Some(meta.signature()));
            let state: State =
                serde_json::from_slice(&data).map_err(|error| io_error(subject, error))?;
            let mut machine = self.lock();
            machine.state = state;
            machine.snapshot = Some((meta.clone(), data));
            machine.snapshots_installed += 1;
            Ok(())
        }

        async fn get_current_snapshot(
            &mut self,
        ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
            let machine = self.lock();
            Ok(machine.snapshot.as_ref().map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(Cursor::new(data.clone())),
            }))
        }
    }
}
