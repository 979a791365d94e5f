//! The bytes inside a `RaftPayload`: openraft requests and `Result`s of responses.
//!
//! Payloads use the ledger's canonical codec (`ledger::codec`, bincode with a fixed
//! configuration): it is compact for log entries and snapshot chunks, and the unit tests below
//! show that every openraft message and error this transport carries survives a round trip.
//! A response payload is the whole `Result`, so an error raised by the remote Raft (a
//! `RaftError`) arrives as that error and the caller can tell it from a transport failure.
//!
//! This file never hashes or signs these bytes: they are a transport format, not canonical
//! ledger bytes. Decoding never panics: malformed or oversized input is a `DecodeError`.

use crate::network::MESSAGE_BYTES_MAX;
use crate::raft_types::{NodeId, TypeConfig};
use ledger::codec::{self, DecodeError};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What the remote Raft answered to an append-entries request.
pub type AppendEntriesResult = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;

/// What the remote Raft answered to a vote request.
pub type VoteResult = Result<VoteResponse<NodeId>, RaftError<NodeId>>;

/// What the remote Raft answered to one snapshot chunk.
pub type InstallSnapshotResult =
    Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;

/// The request types, named once so client and server cannot disagree.
pub type AppendEntries = AppendEntriesRequest<TypeConfig>;
pub type Vote = VoteRequest<NodeId>;
pub type InstallSnapshot = InstallSnapshotRequest<TypeConfig>;

/// Encodes a request or a response result for a `RaftPayload`.
///
/// `ledger::codec::encode` cannot fail on these types: they hold only integers, booleans,
/// strings, byte vectors, options, enums and B-tree collections (whose lengths are known), and
/// writing into memory does no I/O. The round-trip tests below cover every one of them.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value)
}

/// Decodes a `RaftPayload`'s bytes, rejecting more than [`MESSAGE_BYTES_MAX`] bytes, malformed
/// bytes and trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    codec::decode(bytes, MESSAGE_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::{NodeInfo, Proposal, StampedCommand};
    use ledger::command::Command;
    use ledger::envelope::SigningKey;
    use ledger::party::PartyId;
    use openraft::error::{Fatal, SnapshotMismatch};
    use openraft::{
        CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, SnapshotSegmentId,
        StorageError, StoredMembership, Vote as RaftVote,
    };
    use std::collections::{BTreeMap, BTreeSet};
    use std::fmt::Debug;

    /// Encodes and decodes `value` and checks that nothing changed (by `Debug`, because not
    /// every openraft message implements `PartialEq`).
    fn check_round_trip<T: Serialize + DeserializeOwned + Debug>(value: &T) {
        let bytes = encode(value);
        let back: T = decode(&bytes).unwrap_or_else(|error| panic!("{error} for {value:?}"));
        assert_eq!(format!("{back:?}"), format!("{value:?}"));
    }

    fn log_id(term: u64, node_id: NodeId, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, node_id), index)
    }

    fn membership() -> Membership<NodeId, NodeInfo> {
        let nodes: BTreeMap<NodeId, NodeInfo> = (1..=3)
            .map(|id| {
                let info = NodeInfo {
                    raft_addr: format!("127.0.0.1:{}", 7000 + id),
                    http_addr: format!("127.0.0.1:{}", 8000 + id),
                };
                (id, info)
            })
            .collect();
        let voters: BTreeSet<NodeId> = [1, 2].into_iter().collect();
        Membership::new(vec![voters], nodes)
    }

    fn proposal() -> Proposal {
        let key = SigningKey::from_seed([7; 32]);
        let party = PartyId::new("operator");
        let command = Command::AddKey {
            party: party.clone(),
            key: key.public_key(),
        };
        let signed = key.sign(party, u128::MAX - 1, 1_700_000_000_000_000_000, command);
        Proposal {
            commands: vec![StampedCommand {
                timestamp_ns: 42,
                command: signed,
            }],
        }
    }

    #[test]
    fn append_entries_request_round_trips_with_every_entry_kind() {
        let request = AppendEntries {
            vote: RaftVote::new_committed(3, 1),
            prev_log_id: Some(log_id(2, 2, 9)),
            entries: vec![
                Entry {
                    log_id: log_id(3, 1, 10),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: log_id(3, 1, 11),
                    payload: EntryPayload::Normal(proposal()),
                },
                Entry {
                    log_id: log_id(3, 1, 12),
                    payload: EntryPayload::Membership(membership()),
                },
            ],
            leader_commit: Some(log_id(3, 1, 10)),
        };
        check_round_trip(&request);
    }

    #[test]
    fn append_entries_results_round_trip() {
        let results: Vec<AppendEntriesResult> = vec![
            Ok(AppendEntriesResponse::Success),
            Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(1, 1, 5)))),
            Ok(AppendEntriesResponse::Conflict),
            Ok(AppendEntriesResponse::HigherVote(RaftVote::new(9, 3))),
            Err(RaftError::Fatal(Fatal::Stopped)),
            Err(RaftError::Fatal(Fatal::Panicked)),
            Err(RaftError::Fatal(Fatal::StorageError(
                StorageError::from_io_error(
                    openraft::ErrorSubject::Logs,
                    openraft::ErrorVerb::Write,
                    std::io::Error::other("disk full"),
                ),
            ))),
        ];
        for result in &results {
            check_round_trip(result);
        }
    }

    #[test]
    fn vote_request_and_results_round_trip() {
        check_round_trip(&Vote {
            vote: RaftVote::new(4, 2),
            last_log_id: Some(log_id(3, 1, 12)),
        });
        check_round_trip(&Vote {
            vote: RaftVote::new(1, 1),
            last_log_id: None,
        });
        let granted: VoteResult = Ok(VoteResponse {
            vote: RaftVote::new(4, 2),
            vote_granted: true,
            last_log_id: None,
        });
        check_round_trip(&granted);
        let stopped: VoteResult = Err(RaftError::Fatal(Fatal::Stopped));
        check_round_trip(&stopped);
    }

    #[test]
    fn install_snapshot_request_and_results_round_trip() {
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(3, 1, 12)),
            last_membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership()),
            snapshot_id: "3-1-12-snap".to_string(),
        };
        let request = InstallSnapshot {
            vote: RaftVote::new_committed(3, 1),
            meta,
            offset: 1 << 20,
            data: (0..=255u8).cycle().take(10_000).collect(),
            done: false,
        };
        check_round_trip(&request);
        let ok: InstallSnapshotResult = Ok(InstallSnapshotResponse {
            vote: RaftVote::new(3, 1),
        });
        check_round_trip(&ok);
        let mismatch: InstallSnapshotResult = Err(RaftError::APIError(
            InstallSnapshotError::SnapshotMismatch(SnapshotMismatch {
                expect: SnapshotSegmentId {
                    id: "a".to_string(),
                    offset: 0,
                },
                got: SnapshotSegmentId {
                    id: "b".to_string(),
                    offset: 7,
                },
            }),
        ));
        check_round_trip(&mismatch);
    }

    #[test]
    fn garbage_and_truncated_bytes_are_errors_not_panics() {
        let request = Vote {
            vote: RaftVote::new(4, 2),
            last_log_id: Some(log_id(3, 1, 12)),
        };
        let bytes = encode(&request);
        for end in 0..bytes.len() {
            assert!(
                decode::<Vote>(&bytes[..end]).is_err(),
                "prefix of {end} bytes decoded"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode::<Vote>(&trailing),
            Err(DecodeError::TrailingBytes { .. })
        ));
        // A length prefix claiming far more entries than there are bytes.
        let huge_length = [u8::MAX; 64];
        assert!(decode::<AppendEntries>(&huge_length).is_err());
        assert!(decode::<InstallSnapshot>(&huge_length).is_err());
    }

    #[test]
    fn oversized_payload_is_rejected_before_decoding() {
        let bytes = vec![0u8; MESSAGE_BYTES_MAX + 1];
        assert!(matches!(
            decode::<Vote>(&bytes),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
