//! Raft RPC payloads from peers: the bytes inside a `RaftPayload` that `node::network::wire`
//! decodes into openraft's append-entries, vote and install-snapshot requests (on the server)
//! and the `Result`s of their responses (on the client).
//!
//! The first byte picks the message type. Checks: decoding never panics, and what decodes
//! encodes to bytes that decode to the same message (compared by `Debug`, since openraft's
//! messages do not all implement `PartialEq`). Unlike canonical ledger bytes, a payload need
//! not have one encoding: it is a transport format, never hashed or signed (a membership's
//! `BTreeMap` decoded from keys out of order re-encodes sorted).

use node::network::wire::{
    decode, encode, AppendEntries, AppendEntriesResult, InstallSnapshot, InstallSnapshotResult,
    Vote, VoteResult,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

pub fn run(data: &[u8]) {
    let Some((selector, bytes)) = crate::select(data) else {
        return;
    };
    match selector % 6 {
        0 => check::<AppendEntries>(bytes),
        1 => check::<Vote>(bytes),
        2 => check::<InstallSnapshot>(bytes),
        3 => check::<AppendEntriesResult>(bytes),
        4 => check::<VoteResult>(bytes),
        _ => check::<InstallSnapshotResult>(bytes),
    }
}

fn check<T: Serialize + DeserializeOwned + Debug>(bytes: &[u8]) {
    let Ok(message) = decode::<T>(bytes) else {
        return;
    };
    let encoded = encode(&message);
    let again: T = decode(&encoded).unwrap_or_else(|error| {
        panic!("re-encoded payload does not decode ({error}): {message:?}")
    });
    assert_eq!(format!("{again:?}"), format!("{message:?}"));
}
