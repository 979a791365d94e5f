//! The receiving side of the Raft transport: the tonic `RaftService` that hands each request to
//! the local `Raft` and answers with its `Result`, and [`serve`] to run it on a bound listener.
//!
//! An error raised by the local Raft (for example `Fatal::Stopped`) is part of the reply
//! payload, so the caller sees it as a remote Raft error. A gRPC status means the request never
//! reached Raft: `InvalidArgument` for a payload that does not decode, `Unavailable` for a link
//! cut by [`Faults`].
//!
//! This file never panics on a request's bytes, never interprets a `Proposal`, and never binds
//! a socket itself: the caller binds (port 0 in tests) and passes the listener in.

use crate::network::wire::{self, AppendEntriesResult, InstallSnapshotResult, VoteResult};
use crate::network::{Faults, MESSAGE_BYTES_MAX, REQUEST_TIMEOUT_DEFAULT};
use crate::raft_types::{NodeId, Raft};
use openraft::Vote;
use proto::raft::v1::raft_service_server::{RaftService, RaftServiceServer};
use proto::raft::v1::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

/// How many Raft requests one peer connection may have in flight on this server. openraft sends
/// at most a few at a time per peer (replication, heartbeat, vote); this bounds a misbehaving
/// peer.
const REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX: usize = 32;

/// The tonic service implementation: a `Raft` handle and, optionally, the faults that may cut
/// links to this node.
pub struct RaftServer {
    raft: Raft,
    /// This node's id and the faults to apply to links between it and a sender.
    faults: Option<(NodeId, Faults)>,
}

/// The tonic service for `raft`, with message size limits set. Apply no faults.
pub fn raft_service(raft: Raft) -> RaftServiceServer<RaftServer> {
    with_limits(RaftServer { raft, faults: None })
}

/// The tonic service for `raft`, refusing requests whose link to this node `faults` has cut.
///
/// Together with a [`crate::network::FaultyNetwork`] on the sending side sharing the same
/// `faults`, `faults.isolate(this node)` cuts the node off in both directions, which is what an
/// operator drill on one running process needs. Drop and delay are applied only by senders, so a
/// message is never dropped twice.
pub fn raft_service_with_faults(raft: Raft, faults: Faults) -> RaftServiceServer<RaftServer> {
    let id = raft.metrics().borrow().id;
    with_limits(RaftServer {
        raft,
        faults: Some((id, faults)),
    })
}

fn with_limits(server: RaftServer) -> RaftServiceServer<RaftServer> {
    RaftServiceServer::new(server)
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX)
}

/// Serves `raft`'s Raft RPCs on `listener` until `shutdown` completes.
pub async fn serve(
    raft: Raft,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    serve_service(raft_service(raft), listener, shutdown).await
}

/// Serves an already built service (for example from [`raft_service_with_faults`]) on
/// `listener` until `shutdown` completes.
pub async fn serve_service(
    service: RaftServiceServer<RaftServer>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .concurrency_limit_per_connection(REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX)
        .timeout(REQUEST_TIMEOUT_DEFAULT)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

fn decode_request<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<T, Status> {
    wire::decode(&request.into_inner().data)
        .map_err(|error| Status::invalid_argument(format!("undecodable Raft request: {error}")))
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    Ok(Response::new(RaftPayload {
        data: wire::encode(result),
    }))
}

impl RaftServer {
    /// Refuses a request from the node named by `vote` (the sender: the candidate of a vote
    /// request, the leader of the others) when `faults` cuts the link from it to this node.
    fn check_inbound(&self, vote: &Vote<NodeId>) -> Result<(), Status> {
        match (&self.faults, vote.leader_id().voted_for()) {
            (Some((id, faults)), Some(source)) if faults.is_cut(source, *id) => Err(
                Status::unavailable(format!("link {source}->{id} is cut by fault injection")),
            ),
            _ => Ok(()),
        }
    }

    /// Loses the reply (after the request was handled) when `faults` cuts the link back to the
    /// sender: a one-way partition.
    fn check_outbound(&self, vote: &Vote<NodeId>) -> Result<(), Status> {
        match (&self.faults, vote.leader_id().voted_for()) {
            (Some((id, faults)), Some(source)) if faults.is_cut(*id, source) => Err(
                Status::unavailable(format!("link {id}->{source} is cut by fault injection")),
            ),
            _ => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc: wire::AppendEntries = decode_request(request)?;
        let vote = rpc.vote;
        self.check_inbound(&vote)?;
        let result: AppendEntriesResult = self.raft.append_entries(rpc).await;
        self.check_outbound(&vote)?;
        reply(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: wire::Vote = decode_request(request)?;
        let vote = rpc.vote;
        self.check_inbound(&vote)?;
        let result: VoteResult = self.raft.vote(rpc).await;
        self.check_outbound(&vote)?;
        reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc: wire::InstallSnapshot = decode_request(request)?;
        let vote = rpc.vote;
        self.check_inbound(&vote)?;
        let result: InstallSnapshotResult = self.raft.install_snapshot(rpc).await;
        self.check_outbound(&vote)?;
        reply(&result)
    }
}
