//! Support for the process-level test areas: real `cbank` nodes over loopback, driven through
//! the HTTP API exactly as a client or an operator would drive them.
//!
//! - `binary.rs`: [`cbank_binary`] builds the `cbank` binary once per test process.
//! - `ports.rs`: free loopback ports, outside the kernel's ephemeral range.
//! - `process.rs`: [`NodeProcess`], one node's child process, data directory and log file;
//!   SIGKILL, restart and wipe.
//! - `api.rs`: [`Api`], a bounded HTTP client, and the JSON shapes of `spec/http.md`.
//! - `sign.rs`: envelopes signed with the demo keys, with fresh nonces and live expiries.
//! - `fixture.rs`: the parties and accounts every cluster starts with.
//! - `client.rs`: [`Client`], which signs and submits transfers to any node and records
//!   which ones were acknowledged.
//! - `check.rs`: [`check_exactly_once`], nothing acknowledged lost and nothing applied twice.
//! - `load.rs`: [`Load`], writer threads keeping a steady stream of transfers going.
//! - `cluster.rs`: [`Cluster`], n nodes bootstrapped into one Raft cluster with the fixture
//!   applied, plus faults (kill -9, isolate, wipe) and convergence checks.
//! - `wait.rs`: [`wait_for`], the one polling loop; every wait in the tests is bounded.
//! - `agent.rs`: [`AgentProcess`], one `cbank agent` child process with its config, key file,
//!   state folder and JSON event lines; SIGKILL, SIGTERM and restart.
//! - `calls.rs`: what the business areas (`market`, `vouchers`) do against a cluster: sign and
//!   submit a command expecting it accepted or rejected, register parties, open and fund
//!   accounts, read balances.
//! - `netns.rs`: [`Netns`], nodes in their own network namespaces on a bridge, so a partition
//!   (the node's link set down) drops real packets in the kernel.
//!
//! Every child process is killed when its owner drops, on panic too, and a failing test prints
//! the tail of every node's log. This crate never sleeps where it can poll, and talks to nothing
//! but loopback and, for `netns` clusters, the bridge it made.
//!
//! Start here: [`Cluster::start`].

mod agent;
mod api;
mod binary;
pub mod calls;
mod check;
mod client;
mod cluster;
mod fixture;
mod load;
mod netns;
mod ports;
mod process;
mod sign;
mod wait;

pub use agent::{AgentEvent, AgentProcess, AgentSettings, SimDown};
pub use api::{
    Api, ApiError, ClusterView, JournalPage, MemberView, RawResponse, SseEvent, StateView,
    WriteResponse,
};
pub use binary::{cbank_binary, last_line_json};
pub use check::{check_exactly_once, ExactlyOnce};
pub use client::{Attempt, Client, TransferError, TransferSpec};
pub use cluster::{Cluster, Options, CONVERGE_TIMEOUT, LEADER_TIMEOUT, START_TIMEOUT};
pub use fixture::{
    account_of, funding_transfer_of, next_transfer_id, ASSETS, INITIAL_FUNDS, MINT_ACCOUNT, PARTIES,
};
pub use load::Load;
pub use netns::Netns;
pub use ports::free_ports;
pub use process::NodeProcess;
pub use sign::{next_nonce, sign, sign_with, unix_now_ns, ENVELOPE_LIFETIME_NS};
pub use wait::wait_for;
