//! One module per fuzz target; each has `pub fn run(data: &[u8])` and says in its doc what it
//! feeds the bytes to and what it checks.

pub mod agent_inputs;
pub mod apply_commands;
pub mod audit_export;
pub mod command_bytes;
pub mod http_body;
pub mod http_query;
pub mod raft_payload;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// A value decoded from canonical bytes encodes to bytes that decode to the same value.
pub(crate) fn check_canonical_round_trip<T>(value: &T, size_max: usize) -> Vec<u8>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = ledger::codec::encode(value);
    let again: T = ledger::codec::decode(&bytes, size_max)
        .unwrap_or_else(|error| panic!("re-encoded bytes do not decode ({error}): {value:?}"));
    assert_eq!(&again, value, "canonical round trip changed the value");
    bytes
}

/// A value's JSON parses back to the same value.
pub(crate) fn check_json_round_trip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_vec(value).expect("our types serialise to JSON");
    let again: T = serde_json::from_slice(&json).unwrap_or_else(|error| {
        panic!(
            "its own JSON does not parse ({error}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(&again, value, "JSON round trip changed the value");
}
