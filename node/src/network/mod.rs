//! The node-to-node Raft transport: openraft's three RPCs over tonic, plus fault injection.
//!
//! - `wire.rs` encodes openraft requests and `Result`s of responses into the opaque payload of
//!   `proto::raft::v1::RaftPayload`, and back, with the ledger's canonical codec (public so the
//!   fuzz targets in `fuzz/` decode exactly what a peer's bytes go through).
//! - `client.rs` is [`Network`], the `RaftNetworkFactory` a Raft node sends with: one lazily
//!   connected tonic `Channel` per peer, bounded connect and request times, transport failures
//!   mapped to the openraft errors that make it back off or retry.
//! - `server.rs` is [`raft_service`] and [`serve`]: the tonic service that hands each request to
//!   the local `Raft` and answers with its result.
//! - `faults.rs` is [`Faults`] and [`FaultyNetwork`]: seeded, deterministic dropping, delaying
//!   and partitioning, for tests and for an operator drill on a running node.
//!
//! Wiring a node: build `FaultyNetwork::new(id, Network::new(id, NetworkConfig::default()),
//! faults.clone())` as the Raft network, serve `raft_service_with_faults(raft, faults)` on the
//! Raft listener, and give the same `faults` to the admin API so that `isolate(id)` cuts the node
//! off in both directions.
//!
//! This module never looks inside a `Proposal`: it moves openraft's messages and holds no
//! business rule. It never panics on bytes from the network: a bad payload is a gRPC status.

mod client;
mod faults;
mod server;
pub mod wire;

#[cfg(test)]
mod cluster_tests;

use std::time::Duration;

pub use client::{Network, NetworkConfig, PeerConnection};
pub use faults::{
    FaultStats, Faults, FaultyConnection, FaultyNetwork, Verdict, DROP_PER_MILLION_MAX,
};
pub use server::{raft_service, raft_service_with_faults, serve, serve_service, RaftServer};

/// The largest gRPC message this transport sends or accepts, in bytes, in both directions.
///
/// tonic's default decoding limit is 4 MiB; a batch of Raft entries can be larger, so the limit
/// is set explicitly on both client and server. A request that would encode larger than this is
/// never sent: append-entries asks openraft to send fewer entries, a snapshot chunk fails.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest snapshot chunk, in bytes, to configure as openraft's `snapshot_max_chunk_size`.
///
/// Snapshots travel as chunks of at most this many bytes, one `InstallSnapshot` RPC each. Half
/// of [`MESSAGE_BYTES_MAX`] leaves ample room for the request's other fields (vote, snapshot
/// metadata with the cluster membership).
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = MESSAGE_BYTES_MAX / 2;

/// How long to wait for a TCP connection to a peer before calling it unreachable.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(1);

/// The longest any one RPC may take, end to end, unless openraft asks for less.
///
/// openraft passes its own deadline with each call (`RPCOption::hard_ttl`); the request uses the
/// smaller of the two. Installing a large snapshot chunk is the slowest call.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// How long replication to an unreachable peer waits before trying again.
pub const UNREACHABLE_BACKOFF_DEFAULT: Duration = Duration::from_millis(200);

const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX < MESSAGE_BYTES_MAX);
// openraft's default `snapshot_max_chunk_size` (3 MiB) must fit under our chunk bound.
const _: () = assert!(3 * 1024 * 1024 <= SNAPSHOT_CHUNK_BYTES_MAX);
const _: () = assert!(CONNECT_TIMEOUT_DEFAULT.as_millis() < REQUEST_TIMEOUT_DEFAULT.as_millis());
