//! The applied state: the in-memory `Ledger`, its account index, and its sled copy (journal,
//! meta).
//!
//! sled layout, all in one tree so that one `sled::Batch` per apply call is atomic across it
//! (a sled batch covers a single tree):
//! - `j ‖ journal index (u64 BE)` → `codec::encode(&JournalEntry)`: the journal.
//! - `m/last_applied`, `m/membership`, `m/first_journal_index`: Raft's applied state and the
//!   first journal index this node stores (later than 1 after a snapshot install, until the
//!   journal before it is fetched from peers: `server/backfill.rs`), and `m/journal_gap`: the
//!   missing range, from the end of the journal the node kept to the installed snapshot's head
//!   (the anchor), which the fetched entries must chain to.
//!
//! The account → transfers index is in memory (`account_index.rs`), rebuilt with the ledger.
//!
//! [`AppliedState`] is the read side the API uses. This file never decides business outcomes
//! (it records what `Ledger::apply` returned) and never trusts stored bytes without checking:
//! replaying the journal at start-up must reproduce every stored hash, or opening fails.

use super::account_index::AccountIndex;
use super::snapshot::{SnapshotFile, SnapshotHeader};
use super::{
    corruption, io_error, ACCOUNT_TRANSFERS_PAGE_MAX, JOURNAL_ENTRY_BYTES_MAX,
    JOURNAL_PAGE_BYTES_MAX, JOURNAL_PAGE_ENTRIES_MAX,
};
use crate::raft_types::{NodeId, NodeInfo};
use ledger::codec;
use ledger::{Head, JournalEntry, Ledger, TransferRecord};
use openraft::{ErrorSubject, ErrorVerb, LogId, StorageError, StoredMembership};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

const JOURNAL_PREFIX: u8 = b'j';
const META_LAST_APPLIED: &[u8] = b"m/last_applied";
const META_MEMBERSHIP: &[u8] = b"m/membership";
const META_FIRST_JOURNAL_INDEX: &[u8] = b"m/first_journal_index";
/// After a snapshot install, `(gap start, anchor)`: this node stores the journal up to the gap
/// start (exclusive) and from `m/first_journal_index` on; the gap ends at the anchor, the
/// installed snapshot's head, which the entries fetched from peers must chain to.
const META_JOURNAL_GAP: &[u8] = b"m/journal_gap";

/// Bytes of an encoded membership or log id we agree to decode.
const META_VALUE_BYTES_MAX: usize = 1024 * 1024;

/// The sled tree that holds everything (see the module doc).
const TREE_NAME: &[u8] = b"applied";

/// How long `open_sled` waits for sled's directory lock to be released, and how often it tries.
const SLED_LOCK_WAIT_MS_MAX: u64 = 5_000;
const SLED_LOCK_RETRY_MS: u64 = 20;

pub(crate) fn journal_key(index: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = JOURNAL_PREFIX;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// What the state machine holds in memory.
pub(crate) struct MachineState {
    pub ledger: Ledger,
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, NodeInfo>,
    /// The first journal index stored in sled; earlier entries came in a snapshot.
    pub first_journal_index: u64,
    /// Each account's transfers, derived from `ledger`.
    pub account_index: AccountIndex,
    /// Bytes of journal entries applied since the newest snapshot was taken (or, after a
    /// restart, replayed after it): the log a restart would replay (`SNAPSHOT_JOURNAL_BYTES`).
    pub journal_bytes_since_snapshot: u64,
    /// Whether a snapshot was asked for since the last one began.
    pub snapshot_requested: bool,
}

/// What the state machine and every `AppliedState` handle share.
pub(crate) struct Shared {
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub state: RwLock<MachineState>,
    /// Notified when enough journal has been applied since the last snapshot that a restart
    /// would replay too much of it (`SnapshotDue`).
    pub snapshot_due: Arc<tokio::sync::Notify>,
    /// Since this process opened the store: snapshots installed from a leader, and journal
    /// entries fetched from peers to fill the gap before one (`GET /v1/state`).
    pub snapshots_installed: AtomicU64,
    pub journal_entries_fetched: AtomicU64,
}

impl Shared {
    /// Reading through a poisoned lock is allowed: the lock is poisoned only if `apply`
    /// panicked, which fails the Raft core with a storage error and stops the node; until then
    /// readers see the last state, as they would a moment before.
    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, MachineState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writers refuse a poisoned lock: the state may be half-applied.
    pub(crate) fn write_state(
        &self,
    ) -> Result<RwLockWriteGuard<'_, MachineState>, StorageError<NodeId>> {
        self.state.write().map_err(|_| {
            corruption(
                ErrorSubject::StateMachine,
                "the state machine lock is poisoned",
            )
        })
    }

    /// Applies `batch` to sled and flushes it (sled's flush is not an fsync; see `mod.rs`).
    pub(crate) fn write_batch(&self, batch: sled::Batch) -> Result<(), StorageError<NodeId>> {
        let write_error =
            |error: sled::Error| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, &error);
        self.tree.apply_batch(batch).map_err(write_error)?;
        self.db.flush().map_err(write_error)?;
        Ok(())
    }
}

/// Adds `last_applied` and the membership to `batch`.
pub(crate) fn record_applied(
    batch: &mut sled::Batch,
    last_applied: Option<LogId<NodeId>>,
    membership: &StoredMembership<NodeId, NodeInfo>,
) {
    batch.insert(META_LAST_APPLIED, codec::encode(&last_applied));
    batch.insert(META_MEMBERSHIP, codec::encode(membership));
}

/// Adds a journal entry to `batch` and returns its size in bytes.
pub(crate) fn record_journal_entry(batch: &mut sled::Batch, entry: &JournalEntry) -> u64 {
    let bytes = codec::encode(entry);
    let size = bytes.len() as u64;
    batch.insert(&journal_key(entry.body.index)[..], bytes);
    size
}

/// What sled holds about the applied state (defaults for a new database).
struct DurableMeta {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
    first_journal_index: u64,
}

fn read_meta(tree: &sled::Tree) -> Result<DurableMeta, StorageError<NodeId>> {
    let read = |key: &[u8]| {
        tree.get(key)
            .map_err(|error| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, &error))
    };
    let decode_error = |what: &str, error: codec::DecodeError| {
        corruption(ErrorSubject::StateMachine, format!("sled {what}: {error}"))
    };
    let last_applied = match read(META_LAST_APPLIED)? {
        Some(bytes) => codec::decode(&bytes, META_VALUE_BYTES_MAX)
            .map_err(|error| decode_error("last_applied", error))?,
        None => None,
    };
    let membership = match read(META_MEMBERSHIP)? {
        Some(bytes) => codec::decode(&bytes, META_VALUE_BYTES_MAX)
            .map_err(|error| decode_error("membership", error))?,
        None => StoredMembership::default(),
    };
    let first_journal_index = match read(META_FIRST_JOURNAL_INDEX)? {
        Some(bytes) => {
            codec::decode(&bytes, 8).map_err(|error| decode_error("first_journal_index", error))?
        }
        None => 1,
    };
    Ok(DurableMeta {
        last_applied,
        membership,
        first_journal_index,
    })
}

/// Opens sled under `dir`.
/// Opens sled under `dir`. sled's background threads keep its directory lock for a moment
/// after the last `Db` handle is dropped, so a reopen in the same process (a restart in tests,
/// or a node restarted in place) retries the lock for up to `SLED_LOCK_WAIT_MS_MAX`.
pub(crate) fn open_sled(dir: &Path) -> Result<(sled::Db, sled::Tree), StorageError<NodeId>> {
    let open_error =
        |error: sled::Error| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, &error);
    let mut waited_ms = 0;
    let db = loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => break db,
            // sled reports a held lock as `ErrorKind::Other` with this message (config.rs).
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && waited_ms < SLED_LOCK_WAIT_MS_MAX =>
            {
                std::thread::sleep(std::time::Duration::from_millis(SLED_LOCK_RETRY_MS));
                waited_ms += SLED_LOCK_RETRY_MS;
            }
            Err(error) => return Err(open_error(error)),
        }
    };
    let tree = db.open_tree(TREE_NAME).map_err(open_error)?;
    Ok((db, tree))
}

fn restore_ledger(file: &SnapshotFile) -> Result<Ledger, StorageError<NodeId>> {
    Ledger::restore(file.ledger_bytes()).map_err(|error| {
        corruption(
            ErrorSubject::Snapshot(None),
            format!(
                "snapshot {}: ledger bytes: {error}",
                file.header.snapshot_id
            ),
        )
    })
}

/// Replaces what sled holds with the state of a snapshot: the snapshot's applied state, the
/// journal kept from entry 1 through `keep_through`, and the gap after it up to the snapshot's
/// head (filled later from peers: `server/backfill.rs`). Returns the first journal index the
/// node now stores after the gap (1 when there is none).
pub(crate) fn reset_to_snapshot(
    shared_db: &sled::Db,
    tree: &sled::Tree,
    ledger: &Ledger,
    header: &SnapshotHeader,
    keep_through: u64,
) -> Result<u64, StorageError<NodeId>> {
    let read_error =
        |error: sled::Error| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, &error);
    let anchor = ledger.head();
    // Committed entries never change, so the journal this node holds from entry 1 stays: it is
    // part of the same history, and a peer may need it to fill its own gap.
    let keep_through = keep_through.min(anchor.index);
    let mut batch = sled::Batch::default();
    let start = journal_key(keep_through.saturating_add(1));
    for key in tree.range(start..=journal_key(u64::MAX)).keys() {
        batch.remove(key.map_err(read_error)?);
    }
    record_applied(&mut batch, header.last_applied, &header.membership);
    // The node may already hold every entry the snapshot covers (the Raft entries it lacked
    // carried no commands): then there is no gap.
    let first_journal_index = if keep_through == anchor.index {
        batch.remove(META_JOURNAL_GAP);
        1
    } else {
        batch.insert(META_JOURNAL_GAP, codec::encode(&(keep_through + 1, anchor)));
        anchor.index + 1
    };
    batch.insert(
        META_FIRST_JOURNAL_INDEX,
        codec::encode(&first_journal_index),
    );
    let write_error =
        |error: sled::Error| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, &error);
    tree.apply_batch(batch).map_err(write_error)?;
    shared_db.flush().map_err(write_error)?;
    Ok(first_journal_index)
}

/// The journal gap recorded in `tree` (`m/journal_gap`), if any.
pub(crate) fn stored_gap(tree: &sled::Tree) -> Result<Option<(u64, Head)>, ReadError> {
    match tree.get(META_JOURNAL_GAP) {
        Ok(Some(bytes)) => codec::decode(&bytes, META_VALUE_BYTES_MAX)
            .map(Some)
            .map_err(storage_error),
        Ok(None) => Ok(None),
        Err(error) => Err(storage_error(error)),
    }
}

/// Rebuilds the in-memory state at start-up: the newest snapshot, then the journal after it.
pub(crate) fn recover(
    db: &sled::Db,
    tree: &sled::Tree,
    snapshot: Option<SnapshotFile>,
) -> Result<MachineState, StorageError<NodeId>> {
    let durable = read_meta(tree)?;
    if let Some(file) = &snapshot {
        if file.header.last_applied > durable.last_applied {
            // The snapshot was made durable by an install (or sled lost its unsynced tail) but
            // sled never caught up: finish the install now.
            tracing::warn!(
                snapshot = ?file.header.last_applied,
                sled = ?durable.last_applied,
                "the state store is behind the newest snapshot; resetting it to the snapshot"
            );
            let ledger = restore_ledger(file)?;
            // What sled kept of the journal is not known here without a scan: keep none of it
            // (the gap is fetched from peers like any other).
            let first_journal_index = reset_to_snapshot(db, tree, &ledger, &file.header, 0)?;
            return Ok(MachineState {
                account_index: AccountIndex::build(&ledger),
                ledger,
                last_applied: file.header.last_applied,
                membership: file.header.membership.clone(),
                first_journal_index,
                journal_bytes_since_snapshot: 0,
                snapshot_requested: false,
            });
        }
    }
    let mut ledger = match &snapshot {
        Some(file) => restore_ledger(file)?,
        None => Ledger::new(),
    };
    let replay_from = ledger.head().index + 1;
    if replay_from < durable.first_journal_index {
        return Err(corruption(
            ErrorSubject::StateMachine,
            format!(
                "cannot rebuild the ledger: the journal starts at {} but the newest snapshot ends at {}",
                durable.first_journal_index,
                replay_from - 1
            ),
        ));
    }
    let read_error =
        |error: sled::Error| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, &error);
    let mut replayed = 0u64;
    let mut replayed_bytes = 0u64;
    for item in tree.range(journal_key(replay_from)..=journal_key(u64::MAX)) {
        let (key, value) = item.map_err(read_error)?;
        replayed_bytes += value.len() as u64;
        let entry: JournalEntry =
            codec::decode(&value, JOURNAL_ENTRY_BYTES_MAX).map_err(|error| {
                corruption(
                    ErrorSubject::StateMachine,
                    format!("journal key {key:?}: {error}"),
                )
            })?;
        let index = ledger.head().index + 1;
        if entry.body.index != index || key.as_ref() != journal_key(index) {
            return Err(corruption(
                ErrorSubject::StateMachine,
                format!(
                    "journal entry {} found where {index} was expected",
                    entry.body.index
                ),
            ));
        }
        if entry.body.timestamp_ns <= ledger.last_timestamp_ns() {
            return Err(corruption(
                ErrorSubject::StateMachine,
                format!("journal entry {index}: timestamp does not increase"),
            ));
        }
        // Our own journal: signatures it recorded as valid are not verified again (the hash
        // comparison below still catches any change to the entry).
        let replayed_entry = ledger.replay(&entry);
        if replayed_entry.hash != entry.hash {
            return Err(corruption(
                ErrorSubject::StateMachine,
                format!(
                    "journal entry {index}: replay gives hash {} but {} is stored",
                    replayed_entry.hash, entry.hash
                ),
            ));
        }
        replayed += 1;
    }
    tracing::info!(
        replayed,
        head = ledger.head().index,
        last_applied = ?durable.last_applied,
        "rebuilt the ledger from the snapshot and the journal"
    );
    Ok(MachineState {
        account_index: AccountIndex::build(&ledger),
        ledger,
        last_applied: durable.last_applied,
        membership: durable.membership,
        first_journal_index: durable.first_journal_index,
        journal_bytes_since_snapshot: replayed_bytes,
        snapshot_requested: false,
    })
}

/// Why a read of the applied state failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The journal before `first_journal_index` is not stored on this node: it installed a
    /// snapshot that covers it. Another node may still have it.
    JournalNotStored { first_journal_index: u64 },
    /// The paging cursor names a transfer that does not exist.
    CursorTransferUnknown { transfer_id: u128 },
    /// sled failed, or stored bytes do not decode: the node's storage is broken.
    Storage(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::JournalNotStored {
                first_journal_index,
            } => {
                write!(
                    f,
                    "this node stores the journal from index {first_journal_index} on"
                )
            }
            ReadError::CursorTransferUnknown { transfer_id } => {
                write!(f, "no transfer {transfer_id}")
            }
            ReadError::Storage(why) => write!(f, "storage failure: {why}"),
        }
    }
}

impl std::error::Error for ReadError {}

fn storage_error(error: impl fmt::Display) -> ReadError {
    ReadError::Storage(error.to_string())
}

/// A cheap, cloneable handle on the applied state, shared with the state machine. Reads are
/// synchronous and short (memory, or sled's cache); they see every command applied so far
/// (the in-memory ledger may be a moment ahead of what sled's journal shows).
#[derive(Clone)]
pub struct AppliedState {
    pub(crate) shared: Arc<Shared>,
}

impl AppliedState {
    /// Runs `f` on the current ledger, holding a read lock (keep `f` short: applies wait).
    pub fn read<R>(&self, f: impl FnOnce(&Ledger) -> R) -> R {
        f(&self.shared.read_state().ledger)
    }

    /// The log id of the last applied Raft entry.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.shared.read_state().last_applied
    }

    /// The first journal index stored on this node (1 unless it installed a snapshot and has
    /// not yet fetched the journal before it).
    pub fn first_journal_index(&self) -> u64 {
        self.shared.read_state().first_journal_index
    }

    /// When this node lacks part of the journal (it installed a snapshot): `(gap start,
    /// anchor)`, the entries `gap start..=anchor.index` are missing and must chain to the
    /// anchor, the installed snapshot's head. `None` when the journal is whole.
    pub fn journal_gap(&self) -> Result<Option<(u64, Head)>, ReadError> {
        if self.first_journal_index() <= 1 {
            return Ok(None);
        }
        self.stored_gap()
    }

    fn stored_gap(&self) -> Result<Option<(u64, Head)>, ReadError> {
        stored_gap(&self.shared.tree)
    }

    /// The head (index and hash) of stored journal entry `index`, whatever the gap: where a
    /// fill of the gap starting after it must chain from.
    pub fn stored_head(&self, index: u64) -> Result<Option<Head>, ReadError> {
        Ok(self.stored_entry(index)?.map(|entry| entry.head()))
    }

    /// Journal entry `index` as sled holds it, whatever the first stored index; an entry
    /// stored under another index is corruption.
    fn stored_entry(&self, index: u64) -> Result<Option<JournalEntry>, ReadError> {
        let Some(value) = self
            .shared
            .tree
            .get(journal_key(index))
            .map_err(storage_error)?
        else {
            return Ok(None);
        };
        let entry: JournalEntry =
            codec::decode(&value, JOURNAL_ENTRY_BYTES_MAX).map_err(storage_error)?;
        if entry.body.index != index {
            return Err(ReadError::Storage(format!(
                "journal entry {} found where {index} was expected",
                entry.body.index
            )));
        }
        Ok(Some(entry))
    }

    /// Stores `entries` (checked by the caller to chain on from entry `gap_start - 1` towards
    /// `anchor`) at the start of the gap `(gap_start, anchor)`; with `complete` (they reach
    /// `anchor`) the journal is whole again and reads may start at 1. Stores nothing and
    /// returns false when the gap is no longer that one (another fill or snapshot came
    /// meanwhile) or the entries do not start it consecutively.
    pub fn fill_journal_gap(
        &self,
        gap_start: u64,
        anchor: Head,
        entries: &[JournalEntry],
        complete: bool,
    ) -> Result<bool, StorageError<NodeId>> {
        let write_error =
            |error: sled::Error| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, &error);
        let mut state = self.shared.write_state()?;
        let stored = self
            .stored_gap()
            .map_err(|error| corruption(ErrorSubject::StateMachine, error))?;
        let consecutive = entries
            .iter()
            .zip(gap_start..)
            .all(|(entry, index)| entry.body.index == index);
        let end = gap_start + entries.len() as u64;
        if state.first_journal_index != anchor.index + 1
            || stored != Some((gap_start, anchor))
            || !consecutive
            || end > anchor.index + 1
            || complete != (end == anchor.index + 1)
        {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(&journal_key(entry.body.index), codec::encode(entry));
        }
        if complete {
            batch.insert(META_FIRST_JOURNAL_INDEX, codec::encode(&1u64));
            batch.remove(META_JOURNAL_GAP);
        } else {
            batch.insert(META_JOURNAL_GAP, codec::encode(&(end, anchor)));
        }
        self.shared.tree.apply_batch(batch).map_err(write_error)?;
        self.shared.db.flush().map_err(write_error)?;
        if complete {
            state.first_journal_index = 1;
        }
        self.shared
            .journal_entries_fetched
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(true)
    }

    /// Snapshots installed from a leader and journal entries fetched from peers since this
    /// process opened the store.
    pub fn catch_up_counts(&self) -> (u64, u64) {
        (
            self.shared.snapshots_installed.load(Ordering::Relaxed),
            self.shared.journal_entries_fetched.load(Ordering::Relaxed),
        )
    }

    /// Journal entries from `from_index` on (index 0 means 1), oldest first: at most
    /// `count_max`, `JOURNAL_PAGE_ENTRIES_MAX` and about `JOURNAL_PAGE_BYTES_MAX` bytes (at
    /// least one entry if there is one). Empty past the head.
    pub fn journal_range(
        &self,
        from_index: u64,
        count_max: usize,
    ) -> Result<Vec<JournalEntry>, ReadError> {
        let from_index = from_index.max(1);
        let first_journal_index = self.first_journal_index();
        let mut last_index = u64::MAX;
        if from_index < first_journal_index {
            // Before a gap this node still stores the journal it kept: serve it up to the gap.
            match self.stored_gap()? {
                Some((gap_start, _)) if from_index < gap_start => last_index = gap_start - 1,
                _ => {
                    return Err(ReadError::JournalNotStored {
                        first_journal_index,
                    })
                }
            }
        }
        let count_max = count_max.min(JOURNAL_PAGE_ENTRIES_MAX);
        let mut entries = Vec::new();
        let mut bytes_total = 0usize;
        for item in self
            .shared
            .tree
            .range(journal_key(from_index)..=journal_key(last_index))
        {
            if entries.len() >= count_max {
                break;
            }
            let (_, value) = item.map_err(storage_error)?;
            if !entries.is_empty() && bytes_total + value.len() > JOURNAL_PAGE_BYTES_MAX {
                break;
            }
            bytes_total += value.len();
            let entry: JournalEntry =
                codec::decode(&value, JOURNAL_ENTRY_BYTES_MAX).map_err(storage_error)?;
            let expected = from_index + entries.len() as u64;
            if entry.body.index != expected {
                return Err(ReadError::Storage(format!(
                    "journal entry {} found where {expected} was expected",
                    entry.body.index
                )));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The journal entry at `index`, if this node stores it: `None` past what sled holds (the
    /// in-memory ledger may be a moment ahead of it), `JournalNotStored` before the first
    /// stored index.
    pub fn journal_entry(&self, index: u64) -> Result<Option<JournalEntry>, ReadError> {
        let first_journal_index = self.first_journal_index();
        if index < first_journal_index {
            return Err(ReadError::JournalNotStored {
                first_journal_index,
            });
        }
        self.stored_entry(index)
    }

    /// Transfers applied to `account_id` (as debit or credit account), oldest first (in the
    /// order they were applied: by journal index, then their place in the entry), starting
    /// after the transfer `after_transfer_id` if given; at most `limit` and
    /// `ACCOUNT_TRANSFERS_PAGE_MAX`. Records show each transfer's current state (a pending
    /// transfer later posted shows as posted).
    pub fn account_transfers(
        &self,
        account_id: u128,
        after_transfer_id: Option<u128>,
        limit: usize,
    ) -> Result<Vec<TransferRecord>, ReadError> {
        let limit = limit.min(ACCOUNT_TRANSFERS_PAGE_MAX);
        let state = self.shared.read_state();
        let after = match after_transfer_id {
            None => None,
            Some(transfer_id) => Some(
                state
                    .ledger
                    .transfer_ordinal(transfer_id)
                    .ok_or(ReadError::CursorTransferUnknown { transfer_id })?,
            ),
        };
        state
            .account_index
            .page(account_id, after, limit)
            .iter()
            .map(|ordinal| {
                state.ledger.transfer_at(*ordinal).cloned().ok_or_else(|| {
                    ReadError::Storage(format!("account index names unknown transfer {ordinal}"))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::ids::system_account_id;
    use ledger::limits::NS_PER_S;
    use ledger::outcome::Scheduled;
    use ledger::shelf::{PackageSpec, PurchaseSpec, UsageEvent};
    use ledger::testing::{Harness, MAIN, OPERATOR};
    use ledger::trading::{OrderSpec, ProductSpec};
    use ledger::Command;
    use ledger::{AccountKind, Asset, PartyId, Role, Transfer, TransferFlags};
    use market::book::{SelfTrade, Side, TimeInForce};
    use std::collections::BTreeSet;

    /// Applies `command` and checks that the transfers the ledger reports for the entry are
    /// exactly those stored with its journal index, so the account index misses none.
    fn apply_and_check(h: &mut Harness, signer: &str, command: Command) -> JournalEntry {
        let entry = h.submit(signer, command);
        let reported: BTreeSet<u128> = h
            .ledger
            .last_entry_transfers()
            .map(|(_, record)| record.transfer.id)
            .collect();
        let made: BTreeSet<u128> = h
            .ledger
            .transfers()
            .filter(|record| record.journal_index == entry.body.index)
            .map(|record| record.transfer.id)
            .collect();
        assert_eq!(
            reported,
            made,
            "entry {} ({})",
            entry.body.index,
            entry.body.command.body.command.name()
        );
        entry
    }

    fn limit(
        id: u128,
        product: &str,
        side: Side,
        price: u64,
        lots: u128,
        accounts: (u128, u128),
    ) -> Command {
        Command::PlaceOrder {
            order: OrderSpec {
                order_id: id,
                product_id: product.to_owned(),
                side,
                price: Some(price),
                quantity: lots * 3_600,
                time_in_force: TimeInForce::Gtc,
                post_only: false,
                self_trade: SelfTrade::CancelMaker,
                base_account_id: accounts.0,
                quote_account_id: accounts.1,
                vouchers: Vec::new(),
            },
        }
    }

    #[test]
    fn every_transfer_the_market_derives_is_indexed() {
        let mut h = Harness::new();
        for (party, role) in [
            ("univ", Role::Institution),
            ("sme", Role::Sme),
            ("sme-b", Role::Sme),
            ("prov", Role::Provider),
        ] {
            h.add_party(party, role);
        }
        for (party, id, asset) in [
            ("univ", 11, "CNY"),
            ("univ", 12, "GPUH:H100"),
            ("sme", 21, "CNY"),
            ("sme", 22, "GPUH:H100"),
            ("sme", 23, "TOK:qwen"),
            ("sme-b", 31, "CNY"),
            ("sme-b", 32, "GPUH:H100"),
            ("prov", 51, "CNY"),
            ("prov", 52, "GPUH:H100"),
        ] {
            h.open_account(party, id, asset, MAIN, true);
        }
        let gpu: Asset = "GPUH:H100".parse().expect("an asset");
        let funding = [
            (system_account_id(&gpu, AccountKind::Mint), 12, 360_000),
            (system_account_id(&gpu, AccountKind::Mint), 52, 36_000),
            (
                system_account_id(&Asset::Cny, AccountKind::Mint),
                21,
                1_000_000,
            ),
            (
                system_account_id(&Asset::Cny, AccountKind::Mint),
                31,
                1_000_000,
            ),
        ];
        let transfers = funding
            .iter()
            .enumerate()
            .map(|(n, (from, to, amount))| Transfer {
                id: 1_000 + n as u128,
                debit_account_id: *from,
                credit_account_id: *to,
                amount: *amount,
                pending_id: 0,
                timeout_s: 0,
                code: 1,
                reference: 0,
                flags: TransferFlags::default(),
            })
            .collect();
        h.expect_accepted(OPERATOR, Command::CreateTransfers { transfers });
        for (product_id, auction_interval_s) in [("C", None), ("A", Some(1))] {
            let product = ProductSpec {
                product_id: product_id.to_owned(),
                base: gpu.clone(),
                quote: Asset::Cny,
                lot_size: 3_600,
                tick: 1,
                fee_bps: 30,
                auction_interval_s,
            };
            h.expect_accepted(OPERATOR, Command::ListProduct { product });
        }
        // Continuous: a rest, a trade, an amendment, a self-trade cancel, cancels.
        apply_and_check(
            &mut h,
            "univ",
            limit(101, "C", Side::Sell, 2_500, 10, (12, 11)),
        );
        apply_and_check(
            &mut h,
            "sme",
            limit(201, "C", Side::Buy, 2_600, 4, (22, 21)),
        );
        let amend = Command::AmendOrder {
            order_id: 101,
            price: None,
            quantity: 5 * 3_600,
        };
        apply_and_check(&mut h, "univ", amend);
        apply_and_check(
            &mut h,
            "sme",
            limit(202, "C", Side::Buy, 2_400, 1, (22, 21)),
        );
        apply_and_check(
            &mut h,
            "sme",
            limit(203, "C", Side::Sell, 2_400, 1, (22, 21)),
        );
        apply_and_check(
            &mut h,
            "sme-b",
            limit(301, "C", Side::Buy, 2_500, 7, (32, 31)),
        );
        apply_and_check(&mut h, "univ", Command::CancelOrder { order_id: 101 });
        // Auction: orders, then a clearing before a command that is itself rejected.
        apply_and_check(
            &mut h,
            "sme-b",
            limit(302, "A", Side::Buy, 2_500, 2, (32, 31)),
        );
        apply_and_check(
            &mut h,
            "univ",
            limit(102, "A", Side::Sell, 2_400, 2, (12, 11)),
        );
        h.now_ns += 2 * NS_PER_S;
        let entry = apply_and_check(&mut h, "sme", Command::CancelOrder { order_id: 999 });
        assert!(entry.body.outcome.rejected().is_some());
        assert!(
            !entry.body.outcome.scheduled.is_empty(),
            "the auction cleared"
        );
        // The shelf: a GPU package stocked from the lister, a token package, usage, expiry.
        let package = |package_id: &str, asset: &str, quantity, validity_s, goods| PackageSpec {
            package_id: package_id.to_owned(),
            title: package_id.to_owned(),
            asset: asset.parse().expect("an asset"),
            quantity,
            price: 990,
            validity_s,
            stock: 2,
            seller_account_id: 51,
            goods_account_id: goods,
            provider: goods.is_none().then(|| PartyId::new("prov")),
        };
        let buy = |purchase_id, package_id: &str, receive_account_id| Command::BuyPackage {
            purchase: PurchaseSpec {
                purchase_id,
                package_id: package_id.to_owned(),
                pay_account_id: 21,
                receive_account_id,
                vouchers: Vec::new(),
            },
        };
        for spec in [
            package("gpu", "GPUH:H100", 3_600, 0, Some(52)),
            package("tok", "TOK:qwen", 1_000, 3_600, None),
            package("tok-short", "TOK:qwen", 1_000, 1, None),
        ] {
            apply_and_check(&mut h, "prov", Command::ListPackage { package: spec });
        }
        apply_and_check(&mut h, "sme", buy(1, "gpu", 22));
        apply_and_check(&mut h, "sme", buy(2, "tok", 23));
        let usage = |h: &Harness, events: &[(u128, u64)]| Command::RecordUsage {
            events: events
                .iter()
                .map(|(event_id, tokens)| UsageEvent {
                    event_id: *event_id,
                    account_id: 23,
                    tokens: *tokens,
                    at_ns: h.now_ns,
                })
                .collect(),
        };
        let command = usage(&h, &[(1, 800)]);
        apply_and_check(&mut h, "prov", command);
        let command = usage(&h, &[(2, 200), (3, 1)]);
        apply_and_check(&mut h, "prov", command);
        apply_and_check(&mut h, "sme", buy(3, "tok-short", 23));
        h.now_ns += 2 * NS_PER_S;
        let entry = apply_and_check(&mut h, "sme", Command::CancelOrder { order_id: 202 });
        assert!(
            entry
                .body
                .outcome
                .scheduled
                .iter()
                .any(|scheduled| matches!(
                    scheduled,
                    Scheduled::QuotaExpired(expired) if expired.returned > 0
                )),
            "the short quota expired: {:?}",
            entry.body.outcome
        );
        // A linked chain whose second transfer overdraws: the first is undone, not indexed.
        let chain = [(21, 31, 10, true), (21, 31, 100_000_000, false)]
            .iter()
            .enumerate()
            .map(|(n, (from, to, amount, linked))| Transfer {
                id: 9_000 + n as u128,
                debit_account_id: *from,
                credit_account_id: *to,
                amount: *amount,
                pending_id: 0,
                timeout_s: 0,
                code: 1,
                reference: 0,
                flags: TransferFlags {
                    linked: *linked,
                    ..TransferFlags::default()
                },
            })
            .collect();
        let entry = apply_and_check(&mut h, "sme", Command::CreateTransfers { transfers: chain });
        assert!(
            h.ledger.transfer(9_000).is_none(),
            "{:?}",
            entry.body.outcome
        );
        apply_and_check(&mut h, "sme", Command::CancelOrder { order_id: 202 });
        h.ledger
            .check_invariants()
            .expect("the ledger's invariants hold");

        // The index kept after every apply equals the one rebuilt from the final ledger.
        let mut replica = Ledger::new();
        let mut kept = AccountIndex::default();
        for entry in &h.journal {
            replica.apply(&entry.body.command, entry.body.timestamp_ns);
            kept.add_last_entry(&replica);
        }
        assert_eq!(replica.state_hash(), h.ledger.state_hash());
        let rebuilt = AccountIndex::build(&h.ledger);
        assert_eq!(kept, rebuilt);
        let ordinals = rebuilt.page(21, None, usize::MAX);
        assert!(ordinals.len() > 5, "{ordinals:?}");
        assert!(ordinals.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(rebuilt.page(21, Some(ordinals[1]), 2), &ordinals[2..4]);
        assert!(rebuilt.page(12_345, None, 10).is_empty());
    }
}
