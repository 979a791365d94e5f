//! Durable storage for one node: the fsync'd Raft log and the sled-backed applied state.
//!
//! Layout under a node's data directory:
//! - `raft-log/`: our own write-ahead log (`wal.rs`) of Raft entries in segment files, every
//!   record length-prefixed and checksummed, plus a small `meta` file holding the vote and the
//!   last purged log id (`log_store.rs`); the committed log id is a synced WAL record. An append
//!   is acknowledged only after `sync_data`.
//! - `state/`: a sled database with the journal, `last_applied` and the membership, all
//!   written in one batch per apply (`applied_state.rs`). The account → transfers index is
//!   in memory, derived from the ledger (`account_index.rs`). sled's flush
//!   is not a real fsync; that is fine because the Raft log is the durable source and openraft
//!   replays it from `last_applied` after a crash.
//! - `snapshots/`: the latest Raft snapshot, written durably before the log is purged
//!   (`snapshot.rs`).
//!
//! This module must never hold business rules (`ledger::Ledger::apply` decides everything) and
//! must never acknowledge a write before it is fsync'd. A failed fsync is fatal: it is returned
//! as a `StorageError`, which stops the Raft node.
//!
//! Start here: [`open`].

// openraft's storage traits fix `StorageError` (about 224 bytes) as the error type, and every
// helper here returns it so `?` reaches the trait boundary unchanged. Errors are the cold, fatal
// path, so boxing them would add noise and buy nothing.
#![allow(clippy::result_large_err)]

mod account_index;
mod applied_state;
mod durable_file;
mod log_store;
pub mod sim_disk;
mod snapshot;
mod state_machine;
mod wal;

pub use applied_state::{AppliedState, ReadError};
pub use log_store::{LogReader, LogStore};
pub use state_machine::{SnapshotBuilder, SnapshotDue, StateMachineStore};

use crate::raft_types::NodeId;
use openraft::{AnyError, ErrorSubject, ErrorVerb, SnapshotPolicy, StorageError, StorageIOError};
use std::path::Path;

/// How often openraft should build a snapshot: after this many log entries since the last one.
/// Whoever builds the `openraft::Config` sets it; a snapshot lets the log be purged, and costs a
/// full encoding of the ledger, so it should be rare compared to the entry rate.
pub const SNAPSHOT_POLICY_DEFAULT: SnapshotPolicy = SnapshotPolicy::LogsSinceLast(10_000);

/// Bytes of journal applied since the newest snapshot after which a node builds a new one
/// (`SnapshotDue`), whatever the number of Raft entries. A restart replays at most about this
/// much journal after loading the snapshot: with 8,190-transfer commands (about 110 bytes per
/// transfer) some 2.4 million transfers, a few seconds (`tests/bench/README.md`, recovery).
pub const SNAPSHOT_JOURNAL_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes in one log segment file before a new one is started. Purging drops whole segments, so
/// smaller segments free disk sooner; larger ones create fewer files.
pub const LOG_SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Bytes of one encoded log record (one Raft entry). An entry holds the commands the leader
/// groups into one proposal; the group commit must keep a proposal well under this.
pub const LOG_RECORD_BYTES_MAX: usize = 128 * 1024 * 1024;

/// Bytes of one encoded journal entry read back from sled: one command (at most
/// `COMMAND_BYTES_MAX`) plus its outcome, which lists at most one result per event.
pub const JOURNAL_ENTRY_BYTES_MAX: usize = ledger::limits::COMMAND_BYTES_MAX + 1024 * 1024;

/// Journal entries returned by one `AppliedState::journal_range` call.
pub const JOURNAL_PAGE_ENTRIES_MAX: usize = 1_000;

/// Encoded bytes of journal entries returned by one `journal_range` call (at least one entry is
/// always returned, so a single large entry can still be read).
pub const JOURNAL_PAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Transfers returned by one `AppliedState::account_transfers` call.
pub const ACCOUNT_TRANSFERS_PAGE_MAX: usize = 8_190;

const _: () = assert!(LOG_RECORD_BYTES_MAX as u64 > JOURNAL_ENTRY_BYTES_MAX as u64);
const _: () = assert!((LOG_RECORD_BYTES_MAX as u64) < u32::MAX as u64);
const _: () = assert!(JOURNAL_PAGE_BYTES_MAX >= JOURNAL_ENTRY_BYTES_MAX);

/// Opens (or creates) a node's storage under `data_dir`: the Raft log, the state machine, and a
/// cheap handle on the applied state for the API.
///
/// On restart the ledger is rebuilt from the latest snapshot and the journal stored after it; a
/// journal entry whose re-applied hash differs from the stored one is fatal corruption.
pub async fn open(
    data_dir: &Path,
) -> Result<(LogStore, StateMachineStore, AppliedState), StorageError<NodeId>> {
    let data_dir = data_dir.to_path_buf();
    blocking(move || {
        durable_file::create_dir_durably(&data_dir)
            .map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Write, &error))?;
        let log_store = LogStore::open(&data_dir.join("raft-log"))?;
        let state_machine =
            StateMachineStore::open(&data_dir.join("state"), &data_dir.join("snapshots"))?;
        let applied_state = state_machine.applied_state_handle();
        Ok((log_store, state_machine, applied_state))
    })
    .await
}

/// A `StorageError` from an I/O (or any other) error.
pub(crate) fn io_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    error: &(impl std::error::Error + 'static),
) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::new(error)).into()
}

/// A `StorageError` from a message: corruption found while reading, or a broken invariant.
pub(crate) fn corruption(
    subject: ErrorSubject<NodeId>,
    message: impl ToString,
) -> StorageError<NodeId> {
    StorageIOError::new(subject, ErrorVerb::Read, AnyError::error(message)).into()
}

/// Runs blocking file and sled work off the async worker threads (fsync can take milliseconds,
/// and the machine has few cores). A panic inside `work` becomes a `StorageError`, which stops
/// the node instead of leaving it half-applied.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, StorageError<NodeId>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError<NodeId>> + Send + 'static,
{
    match crate::blocking::run(work).await {
        Ok(result) => result,
        Err(join_error) => Err(io_error(ErrorSubject::Store, ErrorVerb::Write, &join_error)),
    }
}
