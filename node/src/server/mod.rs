//! The node runtime and its HTTP API: start a Raft node on its data directory, propose signed
//! commands with group commit, and serve `spec/http.md`.
//!
//! - `config.rs`: [`NodeConfig`] and the openraft configuration every node uses.
//! - `runtime.rs`: [`run_node`] and [`start_node`]: bind the listeners, open storage, start
//!   Raft, the Raft gRPC server, the proposer and the HTTP server; shut them down in order.
//! - `node_files.rs`: the files a node keeps beside its storage (`node.key`, `admin.token`,
//!   `pid`).
//! - `proposer.rs`: the bounded queue and the group-commit loop that stamps commands and hands
//!   them to Raft.
//! - `routes.rs`: the axum router, the shared `Api` state, and the fallbacks that make
//!   every error our JSON; `writes.rs`, `reads.rs`, `bank.rs` (the compute bank's reads),
//!   `market.rs` (the supermarket's reads and the alert stream), `vouchers.rs` (programmes,
//!   reports, vouchers and signed checkpoints) and `admin.rs` are the handlers;
//!   `extract.rs` the request extractors; `forward.rs` follower-to-leader forwarding;
//!   `signing.rs` the bytes a browser signs (`POST /v1/commands/canonical`), `audit.rs` the
//!   audit of the journal on request (`GET /v1/audit/verify`), `console.rs` the web console's
//!   embedded files (`/console/`), `inputs.rs` the same parsers as plain functions, for the fuzz targets in `fuzz/`.
//! - `errors.rs`: the one mapping from ledger reasons and node errors to HTTP status and
//!   `{code, message}`; `metrics.rs`: the Prometheus registry behind `/metrics`.
//!
//! Architecture Invariant: nothing here decides whether a command is acceptable. The node checks
//! the envelope's signature (so a forged request never reaches the log) and the sizes in
//! `limits.rs`; every business decision is `ledger::Ledger::apply`'s, recorded in the journal.
//! Nothing here panics on client input.
//!
//! Start here: [`run_node`].

mod admin;
mod audit;
mod backfill;
mod bank;
mod config;
mod console;
pub mod errors;
mod extract;
mod forward;
pub mod inputs;
mod market;
mod metrics;
mod node_files;
mod proposer;
mod reads;
mod routes;
mod runtime;
mod signing;
mod vouchers;
mod writes;

pub(crate) use backfill::{Fetched, JournalSource};
pub(crate) use config::raft_config_with;
pub use config::{raft_config, NodeConfig};
pub use metrics::METRIC_NAMES;
pub use node_files::{ADMIN_TOKEN_FILE, NODE_KEY_FILE, PID_FILE};
pub(crate) use proposer::WallClock;
pub use runtime::{run_node, start_node, RunningNode};
pub(crate) use runtime::{start_core, Core, CoreConfig};
