//! The simulated cluster: three nodes in one process, on the simulator's one thread, over a
//! simulated network, on real files whose unsynced writes a crash loses.
//!
//! Each node is the node's own core (`server::start_core`: storage, openraft, the proposer and
//! the HTTP router), with two substitutions: Raft messages go through [`Transport`] (the wire
//! codec, then the target's `Raft`, no sockets) wrapped in the node's `FaultyNetwork`, and the
//! proposer reads a per-node skewed clock. Clients call a node's router in-process through the
//! same `Faults` switchboard (client ids from [`CLIENT_LINK_BASE`]), so an isolated node is cut
//! off from clients too. Nodes advertise no HTTP address, so a follower answers `503` instead
//! of forwarding over a real socket. This file holds no checks: `checker.rs` judges.

use crate::network::wire;
use crate::network::{Faults, FaultyNetwork, Verdict};
use crate::raft_types::{NodeId, NodeInfo, Raft, TypeConfig};
use crate::server::{
    raft_config_with, start_core, Core, CoreConfig, Fetched, JournalSource, WallClock,
};
use crate::storage::{sim_disk, AppliedState};
use anyhow::{anyhow, Context};
use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use ledger::SigningKey;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// The cluster's node ids.
pub(super) const NODES: [NodeId; 3] = [1, 2, 3];

/// Client `c` sends on the fault switchboard's link `(CLIENT_LINK_BASE + c, node)`.
pub(super) const CLIENT_LINK_BASE: NodeId = 100;

/// The simulated wall clock starts at 2026-01-01T00:00:00Z (nanoseconds since the epoch).
pub(super) const SIM_EPOCH_NS: u64 = 1_767_225_600_000_000_000;

/// Raft entries between snapshots, and log entries kept after one: low, so that seeds build
/// snapshots, purge the log, and catch lagging nodes up by sending a snapshot.
const SNAPSHOT_LOGS: u64 = 100;
const LOG_KEPT_AFTER_SNAPSHOT: u64 = 20;

/// How long a client waits for an answer before calling the request lost.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(12);

/// Bytes of one answer a client reads.
const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a map or option update; a panic cannot leave it half done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The nodes that are up, by id: where [`Transport`] delivers and [`PeerJournals`] reads.
type Peers = Arc<Mutex<BTreeMap<NodeId, (Raft, AppliedState)>>>;

/// Node-to-node transport: each request and answer goes through the wire codec (as over
/// tonic), and is handed to the target node's `Raft` in-process.
#[derive(Clone)]
pub(super) struct Transport {
    peers: Peers,
}

impl RaftNetworkFactory<TypeConfig> for Transport {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &NodeInfo) -> Connection {
        Connection {
            target,
            peers: self.peers.clone(),
        }
    }
}

/// A connection to one peer.
pub(super) struct Connection {
    target: NodeId,
    peers: Peers,
}

impl Connection {
    fn unreachable<E: std::error::Error>(&self, why: &str) -> RPCError<NodeId, NodeInfo, E> {
        let message = format!("node {}: {why}", self.target);
        RPCError::Unreachable(Unreachable::new(&AnyError::error(message)))
    }

    /// Encodes `rpc`, hands the decoded copy to `call` on the target, and decodes its answer
    /// the same way. A node that is down or stopped is unreachable.
    async fn deliver<Q, A, E, F, Fut>(
        &self,
        rpc: Q,
        call: F,
    ) -> Result<A, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Q: Serialize + DeserializeOwned,
        A: Serialize + DeserializeOwned,
        E: std::error::Error + Serialize + DeserializeOwned,
        F: FnOnce(Raft, Q) -> Fut,
        Fut: Future<Output = Result<A, RaftError<NodeId, E>>>,
    {
        let Some(raft) = lock(&self.peers)
            .get(&self.target)
            .map(|(raft, _)| raft.clone())
        else {
            return Err(self.unreachable("down"));
        };
        let codec_error = |error: ledger::codec::DecodeError| {
            RPCError::Network(NetworkError::new(&AnyError::error(error.to_string())))
        };
        let rpc: Q = wire::decode(&wire::encode(&rpc)).map_err(codec_error)?;
        let result = call(raft, rpc).await;
        let result: Result<A, RaftError<NodeId, E>> =
            wire::decode(&wire::encode(&result)).map_err(codec_error)?;
        match result {
            Ok(answer) => Ok(answer),
            Err(RaftError::Fatal(_)) => Err(self.unreachable("stopped")),
            Err(error) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.deliver(
            rpc,
            |raft, rpc| async move { raft.append_entries(rpc).await },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.deliver(
            rpc,
            |raft, rpc| async move { raft.install_snapshot(rpc).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.deliver(rpc, |raft, rpc| async move { raft.vote(rpc).await })
            .await
    }
}

/// Where a simulated node fetches the journal before a snapshot it installed: the peer's
/// stored journal, read in-process, over the same fault switchboard as Raft messages.
struct PeerJournals {
    source: NodeId,
    peers: Peers,
    faults: Faults,
}

impl JournalSource for PeerJournals {
    fn fetch(&self, peer: NodeId, _info: &NodeInfo, from: u64, limit: usize) -> Fetched {
        let answer = match self.faults.verdict(self.source, peer) {
            Verdict::Deliver { .. } => match lock(&self.peers).get(&peer) {
                Some((_, applied)) => applied
                    .journal_range(from, limit)
                    .map_err(|error| format!("node {peer}: {error}")),
                None => Err(format!("node {peer} is down")),
            },
            Verdict::Cut | Verdict::Drop { .. } => Err(format!("node {peer} unreachable")),
        };
        Box::pin(async move { answer })
    }
}

/// A node that is up.
struct Running {
    raft: Raft,
    applied: AppliedState,
    router: Router,
    proposer_task: JoinHandle<()>,
    /// Turns true when the node crashes: ends its snapshot trigger and its clients' requests.
    crashed: watch::Sender<bool>,
}

/// One node: its folder, key and clock skew, and its running parts when it is up.
struct SimNode {
    id: NodeId,
    dir: PathBuf,
    skew_ns: Arc<AtomicI64>,
    running: Mutex<Option<Running>>,
}

/// What a client got for one request.
#[derive(Clone, Debug)]
pub(super) enum Reply {
    /// The node answered.
    Answered { status: u16, body: Vec<u8> },
    /// No answer: the node was down, the link cut, the message or answer dropped, the node
    /// crashed meanwhile, or the client timed out. The request may or may not have acted.
    Lost(String),
}

/// The simulated cluster, shared by the clients and the fault injector.
pub(super) struct SimCluster {
    nodes: Vec<SimNode>,
    peers: Peers,
    pub(super) faults: Faults,
    raft_config: Arc<openraft::Config>,
    /// The virtual instant the simulation started at.
    start: tokio::time::Instant,
}

impl SimCluster {
    /// Starts three empty nodes under `dir` and initialises the cluster on node 1.
    pub(super) async fn start(dir: &Path, seed: u64) -> anyhow::Result<SimCluster> {
        let config = raft_config_with(Some(SNAPSHOT_LOGS))
            .map_err(|error| anyhow!("the simulation's Raft configuration: {error}"))?;
        let raft_config = Arc::new(
            openraft::Config {
                max_in_snapshot_log_to_keep: LOG_KEPT_AFTER_SNAPSHOT,
                ..(*config).clone()
            }
            .validate()
            .map_err(|error| anyhow!("the simulation's Raft configuration: {error}"))?,
        );
        let nodes = NODES
            .iter()
            .map(|&id| SimNode {
                id,
                dir: dir.join(format!("node-{id}")),
                skew_ns: Arc::new(AtomicI64::new(0)),
                running: Mutex::new(None),
            })
            .collect();
        let cluster = SimCluster {
            nodes,
            peers: Arc::default(),
            faults: Faults::new(seed),
            raft_config,
            start: tokio::time::Instant::now(),
        };
        for id in NODES {
            cluster.boot(id).await?;
        }
        let members: BTreeMap<NodeId, NodeInfo> =
            NODES.iter().map(|&id| (id, node_info(id))).collect();
        cluster
            .raft(NODES[0])
            .context("node 1 is up")?
            .initialize(members)
            .await
            .map_err(|error| anyhow!("initialising the cluster: {error}"))?;
        Ok(cluster)
    }

    fn node(&self, id: NodeId) -> anyhow::Result<&SimNode> {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .ok_or_else(|| anyhow!("no node {id}"))
    }

    /// Virtual nanoseconds since the simulation started.
    pub(super) fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The simulated wall clock, without skew.
    pub(super) fn wall_ns(&self) -> u64 {
        SIM_EPOCH_NS + self.elapsed_ns()
    }

    /// Opens node `id`'s storage (replaying its journal) and starts it.
    async fn boot(&self, id: NodeId) -> anyhow::Result<()> {
        let node = self.node(id)?;
        let (crashed, crashed_receiver) = watch::channel(false);
        let clock = {
            let start = self.start;
            let skew_ns = node.skew_ns.clone();
            WallClock::from_fn(move || {
                let elapsed = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                SIM_EPOCH_NS
                    .saturating_add(elapsed)
                    .saturating_add_signed(skew_ns.load(Ordering::Relaxed))
            })
        };
        let network = FaultyNetwork::new(
            id,
            Transport {
                peers: self.peers.clone(),
            },
            self.faults.clone(),
        );
        let Core {
            raft,
            applied,
            router,
            proposer_task,
        } = start_core(
            CoreConfig {
                id,
                data_dir: node.dir.clone(),
                node_info: node_info(id),
                raft_config: self.raft_config.clone(),
                node_key: SigningKey::from_seed([u8::try_from(id).unwrap_or(u8::MAX); 32]),
                admin_token: format!("sim-admin-{id}"),
                faults: self.faults.clone(),
                enable_fault_admin: false,
                clock,
                journal_source: Arc::new(PeerJournals {
                    source: id,
                    peers: self.peers.clone(),
                    faults: self.faults.clone(),
                }),
            },
            network,
            crashed_receiver.clone(),
            crashed_receiver,
        )
        .await
        .with_context(|| format!("starting node {id}"))?;
        lock(&self.peers).insert(id, (raft.clone(), applied.clone()));
        *lock(&node.running) = Some(Running {
            raft,
            applied,
            router,
            proposer_task,
            crashed,
        });
        Ok(())
    }

    /// Whether node `id` is up.
    pub(super) fn is_up(&self, id: NodeId) -> bool {
        self.node(id)
            .is_ok_and(|node| lock(&node.running).is_some())
    }

    /// Node `id`'s Raft, when it is up.
    pub(super) fn raft(&self, id: NodeId) -> Option<Raft> {
        let node = self.node(id).ok()?;
        let running = lock(&node.running);
        running.as_ref().map(|running| running.raft.clone())
    }

    /// Node `id`'s applied state, when it is up.
    pub(super) fn applied(&self, id: NodeId) -> Option<AppliedState> {
        let node = self.node(id).ok()?;
        let running = lock(&node.running);
        running.as_ref().map(|running| running.applied.clone())
    }

    /// Sets node `id`'s clock skew (its proposer stamps `wall + skew`).
    pub(super) fn set_skew(&self, id: NodeId, skew_ns: i64) {
        if let Ok(node) = self.node(id) {
            node.skew_ns.store(skew_ns, Ordering::Relaxed);
        }
    }

    /// Crashes node `id` at this instant: it stops answering, its Raft stops, and its log
    /// loses every byte written since its last sync, except `torn(unsynced)` bytes of a torn
    /// tail. Returns the bytes lost. A node already down is left alone.
    pub(super) async fn crash(
        &self,
        id: NodeId,
        torn: impl FnMut(u64) -> u64,
    ) -> anyhow::Result<u64> {
        let node = self.node(id)?;
        let Some(running) = lock(&node.running).take() else {
            return Ok(0);
        };
        lock(&self.peers).remove(&id);
        let _ = running.crashed.send(true);
        running.proposer_task.abort();
        let _ = running.raft.shutdown().await;
        drop(running);
        // Let the node's remaining tasks run to their end and drop its storage (virtual time).
        tokio::time::sleep(Duration::from_millis(20)).await;
        sim_disk::lose_unsynced_writes(&node.dir, torn)
            .with_context(|| format!("cutting node {id}'s unsynced writes"))
    }

    /// Starts node `id` again from its folder; a node already up is left alone.
    pub(super) async fn restart(&self, id: NodeId) -> anyhow::Result<()> {
        if self.is_up(id) {
            return Ok(());
        }
        self.boot(id).await
    }

    /// Which node leads, by the metrics of the nodes that are up (the highest term wins).
    pub(super) fn leader(&self) -> Option<NodeId> {
        NODES
            .iter()
            .filter_map(|&id| self.raft(id))
            .map(|raft| {
                let metrics = raft.metrics().borrow().clone();
                (metrics.current_term, metrics.current_leader)
            })
            .max()
            .and_then(|(_, leader)| leader)
    }

    /// Why each node that is up has stopped on a fatal error, if any has.
    pub(super) fn fatal_errors(&self) -> Vec<String> {
        NODES
            .iter()
            .filter_map(|&id| {
                let raft = self.raft(id)?;
                let state = raft.metrics().borrow().running_state.clone();
                state.err().map(|fatal| format!("node {id}: {fatal}"))
            })
            .collect()
    }

    /// Sends one HTTP request from client `client` to node `id`, through the fault
    /// switchboard, and waits for the answer.
    pub(super) async fn request(
        &self,
        client: u64,
        id: NodeId,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Reply {
        let link = CLIENT_LINK_BASE + client;
        let answer_lost = match self.faults.verdict(link, id) {
            Verdict::Cut => return Reply::Lost(format!("link to node {id} is cut")),
            Verdict::Drop {
                after_delivery: false,
            } => return Reply::Lost(format!("request to node {id} dropped")),
            Verdict::Drop {
                after_delivery: true,
            } => true,
            Verdict::Deliver { delay } => {
                tokio::time::sleep(delay).await;
                if self.faults.is_cut(link, id) {
                    return Reply::Lost(format!("link to node {id} cut in flight"));
                }
                false
            }
        };
        let (router, mut crashed) = {
            let Ok(node) = self.node(id) else {
                return Reply::Lost(format!("no node {id}"));
            };
            let running = lock(&node.running);
            match running.as_ref() {
                Some(running) => (running.router.clone(), running.crashed.subscribe()),
                None => return Reply::Lost(format!("node {id} is down")),
            }
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body));
        let request = match request {
            Ok(request) => request,
            Err(error) => return Reply::Lost(format!("building the request: {error}")),
        };
        let served = async {
            let response = router
                .oneshot(request)
                .await
                .map_err(|error| format!("{error}"))?;
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), ANSWER_BYTES_MAX)
                .await
                .map_err(|error| format!("reading the answer: {error}"))?;
            Ok::<_, String>((status, body.to_vec()))
        };
        let reply = tokio::select! {
            biased;
            _ = crashed.wait_for(|crashed| *crashed) => {
                Reply::Lost(format!("node {id} crashed while serving"))
            }
            answered = tokio::time::timeout(CLIENT_TIMEOUT, served) => match answered {
                Ok(Ok((status, body))) => Reply::Answered { status, body },
                Ok(Err(why)) => Reply::Lost(why),
                Err(_) => Reply::Lost(format!("no answer from node {id} in time")),
            },
        };
        if answer_lost {
            return Reply::Lost(format!("answer from node {id} dropped"));
        }
        reply
    }

    /// Stops every node (the end of a seed).
    pub(super) async fn shutdown(&self) {
        for id in NODES {
            let _ = self.crash(id, |_| 0).await;
        }
    }
}

/// What node `id` advertises: no HTTP address, so followers answer instead of forwarding.
fn node_info(id: NodeId) -> NodeInfo {
    NodeInfo {
        raft_addr: format!("sim-node-{id}"),
        http_addr: String::new(),
    }
}
