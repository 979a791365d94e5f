//! The Raft type configuration: what a log entry carries and what applying it returns.
//!
//! A log entry carries a `Proposal`: one or more signed commands, each stamped by the leader
//! with a timestamp (group commit puts many client requests into one entry). Applying it runs
//! `ledger::Ledger::apply` once per command and answers with one `Applied` per command.
//! No business rule lives here.

use ledger::{Head, Outcome, SignedCommand};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Cursor;

/// Raft node id.
pub type NodeId = u64;

/// How to reach a node: its Raft (gRPC) address and its HTTP address, both `host:port`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub raft_addr: String,
    pub http_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} http={}", self.raft_addr, self.http_addr)
    }
}

/// One signed command with the timestamp the leader stamped on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampedCommand {
    pub timestamp_ns: u64,
    pub command: SignedCommand,
}

/// The application data of one Raft log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<StampedCommand>,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proposal({} commands)", self.commands.len())
    }
}

/// What applying one command gave: its journal position and outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The journal entry's index and hash.
    pub head: Head,
    /// The timestamp the journal recorded (the stamp, raised if needed to stay increasing).
    pub timestamp_ns: u64,
    pub outcome: Outcome,
}

/// The response to one Raft entry: one `Applied` per command, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalResponse {
    pub applied: Vec<Applied>,
}

openraft::declare_raft_types!(
    /// The Compute Bank Raft configuration.
    pub TypeConfig:
        D = Proposal,
        R = ProposalResponse,
        NodeId = NodeId,
        Node = NodeInfo,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::raft_runtime::NodeRuntime,
);

/// The Raft handle used throughout the node.
pub type Raft = openraft::Raft<TypeConfig>;
