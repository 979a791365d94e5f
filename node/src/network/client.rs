//! The sending side of the Raft transport: [`Network`] (openraft's `RaftNetworkFactory`) and
//! [`PeerConnection`] (its `RaftNetwork`, one per target node).
//!
//! Each target gets one lazily connected tonic `Channel` to `http://{raft_addr}`, shared by every
//! connection openraft makes to that target and reconnected by tonic after a failure. Every call
//! is bounded by a connect timeout and a request timeout. Failures are mapped so that openraft
//! reacts correctly: a peer that cannot be reached is `Unreachable` (openraft backs off), a call
//! that ran out of time is `Timeout`, any other transport failure is `NetworkError`, a request too
//! large to send is `PayloadTooLarge` (openraft sends fewer entries), and an error raised by the
//! remote Raft is a `RemoteError` carrying that very error.
//!
//! Snapshots use openraft 0.9's chunked `install_snapshot`: `RaftNetwork::full_snapshot`'s
//! default implementation reads the `Cursor<Vec<u8>>` in chunks of the configured
//! `snapshot_max_chunk_size` and sends one RPC per chunk.
//!
//! This file never panics on a peer's reply, never retries on its own (openraft decides) and
//! never blocks the runtime.

use crate::network::wire::{self, AppendEntriesResult, InstallSnapshotResult, VoteResult};
use crate::network::{
    CONNECT_TIMEOUT_DEFAULT, MESSAGE_BYTES_MAX, REQUEST_TIMEOUT_DEFAULT,
    UNREACHABLE_BACKOFF_DEFAULT,
};
use crate::raft_types::{NodeId, NodeInfo, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, RaftNetwork, RaftNetworkFactory};
use proto::raft::v1::raft_service_client::RaftServiceClient;
use proto::raft::v1::RaftPayload;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// How HTTP/2 keep-alive pings probe an idle connection to a peer. Without them a connection to
/// a host that vanished (no RST ever arrives) would stay open, every call on it would time out,
/// and tonic would never reconnect.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a keep-alive ping may go unanswered before the connection is dropped.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Timeouts for the Raft transport's client side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// How long to wait for a TCP connection to a peer before calling it unreachable.
    pub connect_timeout: Duration,
    /// The longest any one RPC may take; openraft's own per-call deadline wins when smaller.
    pub request_timeout: Duration,
    /// How long replication to an unreachable peer waits before trying again.
    pub unreachable_backoff: Duration,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            unreachable_backoff: UNREACHABLE_BACKOFF_DEFAULT,
        }
    }
}

/// A channel to one peer and the address it was made for.
#[derive(Clone)]
struct PeerChannel {
    raft_addr: String,
    /// `Err` holds why `raft_addr` cannot be a URI; every call to such a peer is `Unreachable`.
    client: Result<RaftServiceClient<Channel>, String>,
}

/// openraft's network factory: hands out a [`PeerConnection`] per target node, reusing one
/// lazily connected channel per target. Cloning shares the channels.
#[derive(Clone)]
pub struct Network {
    source: NodeId,
    config: NetworkConfig,
    channels: Arc<Mutex<BTreeMap<NodeId, PeerChannel>>>,
}

impl Network {
    /// The network of node `source` (used to name the caller in timeout errors).
    pub fn new(source: NodeId, config: NetworkConfig) -> Network {
        Network {
            source,
            config,
            channels: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// A connection to `target` at `node.raft_addr`. It connects on first use, not here.
    ///
    /// Must be called inside a tokio runtime: tonic spawns the channel's worker task.
    pub fn connect(&self, target: NodeId, node: &NodeInfo) -> PeerConnection {
        // A poisoned lock only means another thread panicked while holding it; the map of
        // channels is still consistent (each insert is one statement), so keep using it.
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let reusable = channels
            .get(&target)
            .filter(|peer| peer.raft_addr == node.raft_addr);
        let peer = match reusable {
            Some(peer) => peer.clone(),
            None => {
                let peer = PeerChannel {
                    raft_addr: node.raft_addr.clone(),
                    client: self.make_client(&node.raft_addr),
                };
                channels.insert(target, peer.clone());
                peer
            }
        };
        PeerConnection {
            source: self.source,
            target,
            node: node.clone(),
            client: peer.client,
            config: self.config.clone(),
        }
    }

    fn make_client(&self, raft_addr: &str) -> Result<RaftServiceClient<Channel>, String> {
        let endpoint = Endpoint::from_shared(format!("http://{raft_addr}"))
            .map_err(|error| format!("bad raft address {raft_addr:?}: {error}"))?
            .connect_timeout(self.config.connect_timeout)
            .timeout(self.config.request_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        Ok(RaftServiceClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerConnection {
        self.connect(target, node)
    }
}

/// openraft's connection to one target node.
pub struct PeerConnection {
    source: NodeId,
    target: NodeId,
    node: NodeInfo,
    client: Result<RaftServiceClient<Channel>, String>,
    config: NetworkConfig,
}

/// Why a call failed below Raft: the transport's own error, before it is shaped into the
/// `RPCError` of a particular RPC.
#[derive(Debug)]
enum TransportError {
    Unreachable(Unreachable),
    Timeout(Timeout<NodeId>),
    Network(NetworkError),
}

impl TransportError {
    fn network(message: String) -> TransportError {
        TransportError::Network(NetworkError::new(&AnyError::error(message)))
    }

    fn into_rpc_error<E: std::error::Error>(self) -> RPCError<NodeId, NodeInfo, E> {
        match self {
            TransportError::Unreachable(error) => RPCError::Unreachable(error),
            TransportError::Timeout(error) => RPCError::Timeout(error),
            TransportError::Network(error) => RPCError::Network(error),
        }
    }
}

impl PeerConnection {
    /// Sends one encoded request and returns the encoded reply.
    async fn send(
        &self,
        action: RPCTypes,
        payload: Vec<u8>,
        option: &RPCOption,
    ) -> Result<Vec<u8>, TransportError> {
        let mut client = match &self.client {
            Ok(client) => client.clone(),
            Err(why) => {
                return Err(TransportError::Unreachable(Unreachable::new(
                    &AnyError::error(why),
                )))
            }
        };
        if payload.len() > MESSAGE_BYTES_MAX {
            return Err(TransportError::network(format!(
                "{action} request of {} bytes exceeds the limit of {MESSAGE_BYTES_MAX}",
                payload.len()
            )));
        }
        let timeout = option.hard_ttl().min(self.config.request_timeout);
        let mut request = tonic::Request::new(RaftPayload { data: payload });
        // Tells the server how long the caller waits, so it can give up at the same time.
        request.set_timeout(timeout);
        let call = async move {
            match action {
                RPCTypes::AppendEntries => client.append_entries(request).await,
                RPCTypes::Vote => client.vote(request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let timed_out = || Timeout {
            action,
            id: self.source,
            target: self.target,
            timeout,
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_elapsed) => Err(TransportError::Timeout(timed_out())),
            Ok(Ok(response)) => Ok(response.into_inner().data),
            Ok(Err(status)) => Err(match status.code() {
                // tonic answers `Unavailable` when it cannot connect (refused, connect timeout,
                // no route) and when the connection broke; the server answers it when a fault
                // cuts the link. All of them mean: back off, the peer is not there now.
                Code::Unavailable => TransportError::Unreachable(Unreachable::new(&status)),
                // `Cancelled` is what tonic's client-side timeout produces.
                Code::DeadlineExceeded | Code::Cancelled => TransportError::Timeout(timed_out()),
                _ => TransportError::Network(NetworkError::new(&status)),
            }),
        }
    }

    /// Decodes a reply: the remote Raft's `Result`. Undecodable bytes are a network error.
    fn decode_reply<R: DeserializeOwned>(
        &self,
        action: RPCTypes,
        bytes: &[u8],
    ) -> Result<R, TransportError> {
        wire::decode(bytes).map_err(|error| {
            let message = format!(
                "undecodable {action} reply from node {}: {error}",
                self.target
            );
            TransportError::network(message)
        })
    }

    /// An error raised by the remote Raft, carried as itself so openraft can act on it.
    fn remote_error<E: std::error::Error>(&self, error: E) -> RPCError<NodeId, NodeInfo, E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.node.clone(),
            error,
        ))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        let entries = rpc.entries.len() as u64;
        let payload = wire::encode(&rpc);
        if payload.len() > MESSAGE_BYTES_MAX && entries > 1 {
            // openraft retries at once with at most this many entries, halving until it fits.
            let hint = PayloadTooLarge::new_entries_hint(entries / 2);
            return Err(RPCError::PayloadTooLarge(hint));
        }
        let reply = self
            .send(RPCTypes::AppendEntries, payload, &option)
            .await
            .map_err(TransportError::into_rpc_error)?;
        let result: AppendEntriesResult = self
            .decode_reply(RPCTypes::AppendEntries, &reply)
            .map_err(TransportError::into_rpc_error)?;
        result.map_err(|error| self.remote_error(error))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let payload = wire::encode(&rpc);
        let reply = self
            .send(RPCTypes::InstallSnapshot, payload, &option)
            .await
            .map_err(TransportError::into_rpc_error)?;
        let result: InstallSnapshotResult = self
            .decode_reply(RPCTypes::InstallSnapshot, &reply)
            .map_err(TransportError::into_rpc_error)?;
        result.map_err(|error| self.remote_error(error))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        let payload = wire::encode(&rpc);
        let reply = self
            .send(RPCTypes::Vote, payload, &option)
            .await
            .map_err(TransportError::into_rpc_error)?;
        let result: VoteResult = self
            .decode_reply(RPCTypes::Vote, &reply)
            .map_err(TransportError::into_rpc_error)?;
        result.map_err(|error| self.remote_error(error))
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.config.unreachable_backoff))
    }
}
