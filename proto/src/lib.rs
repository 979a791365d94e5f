//! Protobuf wire definitions and their tonic/prost generated code.
//!
//! `raft` is the node-to-node Raft transport (`proto/raft.proto`): three unary RPCs, each
//! carrying one opaque payload that the node encodes and decodes. This crate holds no business
//! logic and no hand-written encoding: it is what `tonic-prost-build` generates, nothing more.
//!
//! Start here: [`raft::v1`].

/// Package `cbank.raft.v1`.
pub mod raft {
    /// Version 1 of the Raft transport: `RaftService` and its `RaftPayload` message.
    pub mod v1 {
        // Generated code: its style is tonic-prost-build's, not ours.
        #![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
        tonic::include_proto!("cbank.raft.v1");
    }
}
