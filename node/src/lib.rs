//! The `cbank` node: wires the pure ledger into a replicated, durable, networked service.
//!
//! This is the only crate that touches the network, the disk, the clock and tokio. It holds no
//! business rules: those live in `ledger` and `market`; here they are stamped, replicated,
//! stored and served.
//!
//! Map: `raft_types.rs` (what a Raft entry carries), `storage/` (the fsync'd Raft log and the
//! sled-backed applied state), `network/` (tonic Raft transport and its fault-injecting
//! wrapper), `server/` (the node runtime: group-commit proposer and the HTTP API of
//! `spec/http.md`), `agent/` (`cbank agent`, the GPU host agent), `bench/` (`cbank bench`, the
//! benchmarks), `limits.rs` (every bound the node adds).
//!
//! Start here: [`raft_types`], then [`server::run_node`].

pub mod agent;
pub mod bench;
pub mod blocking;
pub mod cli;
pub mod limits;
pub mod network;
pub mod raft_runtime;
pub mod raft_types;
pub mod server;
pub mod sim;
pub mod storage;
