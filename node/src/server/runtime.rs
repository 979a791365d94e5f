//! Starting and stopping a node: listeners, storage, Raft, the Raft gRPC server, the proposer
//! and the HTTP server, wired together in [`start_node`] and shut down in order.
//!
//! Start-up binds both listeners first (so a port clash fails at once, before anything slow),
//! writes the pid file, loads or creates `node.key` and `admin.token`, opens storage (which may
//! replay the journal), then starts the rest. Shutdown stops the HTTP server (in-flight requests
//! get `SHUTDOWN_GRACE` to finish), then the proposer, then Raft, then the Raft server. This file
//! never holds a business rule and never ignores a fatal Raft error: it ends the node.

use super::backfill::{self, HttpJournalSource, JournalSource};
use super::config::{raft_config_from_env, NodeConfig};
use super::forward::Forwarder;
use super::metrics::Metrics;
use super::node_files;
use super::proposer::{Proposer, WallClock};
use super::routes::{self, Api};
use crate::limits::SHUTDOWN_GRACE;
use crate::network::{
    raft_service_with_faults, serve_service, Faults, FaultyNetwork, Network, NetworkConfig,
};
use crate::raft_types::{NodeId, NodeInfo, Raft, TypeConfig};
use crate::storage::{self, AppliedState};
use anyhow::{anyhow, Context};
use ledger::SigningKey;
use openraft::RaftNetworkFactory;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;

/// A node started by [`start_node`]: its addresses and handles, until [`RunningNode::shutdown`].
pub struct RunningNode {
    id: NodeId,
    data_dir: PathBuf,
    raft_addr: SocketAddr,
    http_addr: SocketAddr,
    raft: Raft,
    applied: AppliedState,
    stop_http: watch::Sender<bool>,
    stop_raft_server: watch::Sender<bool>,
    http_server: JoinHandle<()>,
    raft_server: JoinHandle<()>,
    proposer: JoinHandle<()>,
    /// Why a part of the node stopped on its own (a server failed, or Raft hit a fatal error).
    failures: mpsc::Receiver<anyhow::Error>,
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Starts a node and returns once it serves both listeners. Raft starts as a learner with no
/// cluster until `POST /v1/admin/cluster/init` (or a leader adding it) makes it a member;
/// after a restart it rejoins its cluster from its stored state.
pub async fn start_node(config: NodeConfig) -> anyhow::Result<RunningNode> {
    let NodeConfig {
        id,
        data_dir,
        raft_addr,
        http_addr,
        enable_fault_admin,
    } = config;
    let raft_listener = TcpListener::bind(raft_addr)
        .await
        .with_context(|| format!("binding the Raft listener on {raft_addr}"))?;
    let http_listener = TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("binding the HTTP listener on {http_addr}"))?;
    let raft_addr = raft_listener
        .local_addr()
        .context("the Raft listener's address")?;
    let http_addr = http_listener
        .local_addr()
        .context("the HTTP listener's address")?;
    for address in [raft_addr, http_addr] {
        if address.ip().is_unspecified() {
            tracing::warn!(
                %address,
                "listening on an unspecified address; a cluster initialised by this node alone \
                 would advertise it to peers, who cannot dial it"
            );
        }
    }

    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    node_files::write_pid(&data_dir)?;
    let node_key = node_files::load_or_create_node_key(&data_dir)?;
    let admin_token = node_files::load_or_create_admin_token(&data_dir)?;

    let faults = Faults::new(id);
    let network = FaultyNetwork::new(
        id,
        Network::new(id, NetworkConfig::default()),
        faults.clone(),
    );
    let (failure_sender, failures) = mpsc::channel(4);
    let (stop_raft_server, stop_raft_receiver) = watch::channel(false);
    let (stop_http, stop_http_receiver) = watch::channel(false);
    let core = start_core(
        CoreConfig {
            id,
            data_dir: data_dir.clone(),
            node_info: NodeInfo {
                raft_addr: raft_addr.to_string(),
                http_addr: http_addr.to_string(),
            },
            raft_config: raft_config_from_env()?,
            node_key,
            admin_token,
            faults: faults.clone(),
            enable_fault_admin,
            clock: WallClock::system(),
            journal_source: Arc::new(HttpJournalSource::new()),
        },
        network,
        stop_raft_server.subscribe(),
        stop_http_receiver.clone(),
    )
    .await?;
    let Core {
        raft,
        applied,
        router: app,
        proposer_task,
    } = core;
    let service = raft_service_with_faults(raft.clone(), faults.clone());
    let raft_server = {
        let failure_sender = failure_sender.clone();
        tokio::spawn(async move {
            let result = serve_service(service, raft_listener, stopped(stop_raft_receiver)).await;
            let why = match result {
                Ok(()) => anyhow!("the Raft server stopped"),
                Err(error) => anyhow!("the Raft server failed: {error}"),
            };
            let _ = failure_sender.send(why).await;
        })
    };
    {
        // A fatal Raft error (a failed fsync, a broken invariant) ends the node.
        let raft = raft.clone();
        let failure_sender = failure_sender.clone();
        tokio::spawn(async move {
            let waited = raft
                .wait(None)
                .metrics(
                    |metrics| metrics.running_state.is_err(),
                    "a fatal Raft error",
                )
                .await;
            // A panicked Raft core drops its metrics channel instead of reporting an error:
            // that ends the node too (a clean shutdown has stopped listening by then).
            let why = match waited {
                Ok(metrics) => match metrics.running_state {
                    Err(fatal) => anyhow!("Raft stopped: {fatal}"),
                    Ok(()) => anyhow!("Raft stopped without an error"),
                },
                Err(error) => anyhow!("the Raft core stopped: {error}"),
            };
            let _ = failure_sender.send(why).await;
        });
    }

    let http_server = tokio::spawn(async move {
        let result = axum::serve(http_listener, app)
            .with_graceful_shutdown(stopped(stop_http_receiver))
            .await;
        let why = match result {
            Ok(()) => anyhow!("the HTTP server stopped"),
            Err(error) => anyhow!("the HTTP server failed: {error}"),
        };
        let _ = failure_sender.send(why).await;
    });
    tracing::info!(
        node_id = id,
        %raft_addr,
        %http_addr,
        data_dir = %data_dir.display(),
        "node started"
    );
    Ok(RunningNode {
        id,
        data_dir,
        raft_addr,
        http_addr,
        raft,
        applied,
        stop_http,
        stop_raft_server,
        http_server,
        raft_server,
        proposer: proposer_task,
        failures,
    })
}

/// What a node is assembled from before any listener (a served node and a simulated one alike).
pub(crate) struct CoreConfig {
    pub id: NodeId,
    pub data_dir: PathBuf,
    /// The addresses this node advertises (the simulator's nodes advertise no HTTP address, so
    /// a follower answers `503` instead of forwarding).
    pub node_info: NodeInfo,
    pub raft_config: Arc<openraft::Config>,
    pub node_key: SigningKey,
    pub admin_token: String,
    pub faults: Faults,
    pub enable_fault_admin: bool,
    pub clock: WallClock,
    /// Where the node fetches the journal before a snapshot it installed.
    pub journal_source: Arc<dyn JournalSource>,
}

/// A node's storage, Raft, proposer and HTTP router, started by [`start_core`].
pub(crate) struct Core {
    pub raft: Raft,
    pub applied: AppliedState,
    pub router: axum::Router,
    pub proposer_task: JoinHandle<()>,
}

/// Opens the node's storage (which may replay the journal), starts Raft over `network`, the
/// snapshot trigger (until `stop_snapshots` turns true) and the proposer, and builds the HTTP
/// router, whose streams end when `stopping` turns true.
pub(crate) async fn start_core<N>(
    config: CoreConfig,
    network: N,
    mut stop_snapshots: watch::Receiver<bool>,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<Core>
where
    N: RaftNetworkFactory<TypeConfig>,
{
    let CoreConfig {
        id,
        data_dir,
        node_info,
        raft_config,
        node_key,
        admin_token,
        faults,
        enable_fault_admin,
        clock,
        journal_source,
    } = config;
    let (log_store, state_machine, applied) = storage::open(&data_dir)
        .await
        .map_err(|error| anyhow!("opening storage in {}: {error}", data_dir.display()))?;
    let snapshot_due = state_machine.snapshot_due_handle();
    let raft = Raft::new(id, raft_config, network, log_store, state_machine)
        .await
        .map_err(|error| anyhow!("starting Raft: {error}"))?;
    tokio::spawn(backfill::run(
        raft.clone(),
        applied.clone(),
        journal_source,
        stop_snapshots.clone(),
    ));
    {
        // A snapshot once enough journal has been applied since the last (`SnapshotDue`),
        // until the node stops.
        let raft = raft.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop_snapshots.changed() => return,
                    () = snapshot_due.due() => {}
                }
                tracing::info!("enough journal since the last snapshot: building one");
                if let Err(error) = raft.trigger().snapshot().await {
                    // Raft has stopped; the fatal-error watch ends the node.
                    tracing::warn!(%error, "cannot trigger a snapshot");
                    return;
                }
            }
        });
    }
    let metrics = Arc::new(Metrics::new(id).context("registering the metrics")?);
    let (proposer, proposer_task) =
        Proposer::start(raft.clone(), applied.clone(), metrics.clone(), clock);
    let api = Arc::new(Api {
        node_id: id,
        node_info,
        raft: raft.clone(),
        applied: applied.clone(),
        proposer,
        forwarder: Forwarder::new(id, metrics.clone()),
        metrics,
        node_key,
        admin_token,
        faults,
        enable_fault_admin,
        membership_lock: Mutex::new(()),
        requests_in_flight: routes::requests_in_flight(),
        alert_streams: routes::alert_streams(),
        stopping,
    });
    Ok(Core {
        raft,
        applied,
        router: routes::router(api),
        proposer_task,
    })
}

/// Awaits `task` for at most `grace`, then aborts it.
async fn join_within(what: &str, mut task: JoinHandle<()>, grace: std::time::Duration) {
    if tokio::time::timeout(grace, &mut task).await.is_err() {
        tracing::warn!(what, "did not stop within the grace period; aborting it");
        task.abort();
        let _ = task.await;
    }
}

impl RunningNode {
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The bound Raft address (the real port when 0 was asked for).
    pub fn raft_addr(&self) -> SocketAddr {
        self.raft_addr
    }

    /// The bound HTTP address (the real port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn applied_state(&self) -> &AppliedState {
        &self.applied
    }

    /// Resolves when a part of the node stops on its own: the node cannot go on and should be
    /// shut down (and the process exit non-zero).
    pub async fn failure(&mut self) -> anyhow::Error {
        match self.failures.recv().await {
            Some(error) => error,
            // Every part holds a sender until it reports, so this is unreachable while the
            // parts run; treat it as a failure all the same.
            None => anyhow!("every part of the node has stopped"),
        }
    }

    /// Stops the node: the HTTP server (in-flight requests get `SHUTDOWN_GRACE`), the proposer,
    /// Raft, then the Raft server; removes the pid file.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!(node_id = self.id, "shutting down");
        let _ = self.stop_http.send(true);
        join_within("the HTTP server", self.http_server, SHUTDOWN_GRACE).await;
        self.proposer.abort();
        let _ = self.proposer.await;
        let raft_result = self.raft.shutdown().await;
        let _ = self.stop_raft_server.send(true);
        join_within("the Raft server", self.raft_server, SHUTDOWN_GRACE).await;
        node_files::remove_pid(&self.data_dir);
        tracing::info!(node_id = self.id, "stopped");
        raft_result.map_err(|error| anyhow!("Raft did not shut down cleanly: {error}"))
    }
}

/// Runs a node until `shutdown` resolves, then shuts it down cleanly (Raft included). Returns an
/// error if the node could not start, or if a part of it failed on its own before `shutdown`.
///
/// Writes `<data_dir>/node.key` and `<data_dir>/admin.token` (created once, mode 0600) and
/// `<data_dir>/pid`; binds both listeners before anything slow; logs with `tracing`.
pub async fn run_node(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut node = start_node(config).await?;
    let failure = tokio::select! {
        () = shutdown => None,
        error = node.failure() => Some(error),
    };
    if let Some(error) = &failure {
        tracing::error!(node_id = node.id(), %error, "the node cannot go on");
    }
    let stopped = node.shutdown().await;
    match failure {
        Some(error) => Err(error),
        None => stopped,
    }
}
