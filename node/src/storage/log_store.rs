//! The Raft log store: openraft's `RaftLogStorage` over our own write-ahead log (`wal.rs`).
//!
//! Each Raft entry is one WAL record (`codec::encode` of [`WalRecord::Entry`]); the committed
//! log id is a WAL record too. The vote and the last purged log id live in a small `meta` file
//! replaced atomically (`durable_file.rs`). In memory we keep only an index from log index to
//! record location; entries are read back from the segment files.
//!
//! Durability rules this file must never break:
//! - `append` calls the `LogFlushed` callback only after `sync_data` returned Ok.
//! - `truncate` removes the later segments (newest first) before cutting the one holding the
//!   first removed entry, so a crash part-way leaves a prefix of the log, never a gap.
//! - `purge` records the purged log id durably before removing any segment (oldest first).
//! - Any I/O or fsync failure is returned as a `StorageError`, which stops the node.

use super::durable_file::{self, remove_temporary_files, write_atomically};
use super::wal::{self, RecordLocation, Wal};
use super::{blocking, corruption, io_error, LOG_RECORD_BYTES_MAX, LOG_SEGMENT_BYTES_MAX};
use crate::raft_types::{NodeId, TypeConfig};
use ledger::codec;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    DefensiveError, Entry, ErrorSubject, ErrorVerb, LogId, RaftLogReader, StorageError, Violation,
    Vote,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// File name of the vote and purge record inside the log directory.
const META_FILE_NAME: &str = "meta";

/// The first bytes of the `meta` file: names the format and its version.
const META_MAGIC: [u8; 8] = *b"cbmeta\0\x01";

/// Bytes of the encoded `LogMeta` we agree to decode.
const META_BYTES_MAX: usize = 4096;

/// One WAL record, as decoded. Appended variants only: the variant index is in the bytes.
#[derive(Debug, Deserialize)]
enum WalRecord {
    Entry(Entry<TypeConfig>),
    Committed(Option<LogId<NodeId>>),
}

/// The same record, borrowed, for encoding without a clone. Must mirror `WalRecord`.
#[derive(Serialize)]
enum WalRecordRef<'a> {
    Entry(&'a Entry<TypeConfig>),
    Committed(&'a Option<LogId<NodeId>>),
}

/// What the `meta` file holds. `committed` is the value when the file was written; later
/// values are WAL records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LogMeta {
    vote: Option<Vote<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// Where an entry lives, and its log id (so log ids are known without reading the file).
#[derive(Clone, Copy, Debug)]
struct EntryLocation {
    log_id: LogId<NodeId>,
    record: RecordLocation,
}

struct LogInner {
    dir: PathBuf,
    wal: Wal,
    meta: LogMeta,
    /// The latest committed log id, from the meta file or a later WAL record.
    committed: Option<LogId<NodeId>>,
    /// Every entry after `meta.last_purged`, by index. Indices are consecutive.
    index: BTreeMap<u64, EntryLocation>,
}

/// The Raft log of one node. Mutations come from openraft one at a time (`&mut self`); reads
/// may also come from any number of [`LogReader`]s at once.
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

/// A read-only handle on the log, for openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    inner: Arc<Mutex<LogInner>>,
}

fn lock(inner: &Mutex<LogInner>) -> Result<MutexGuard<'_, LogInner>, StorageError<NodeId>> {
    // A poisoned lock means a thread panicked while changing the log: it may be half-changed,
    // so it is a fatal storage error, not something to read through.
    inner
        .lock()
        .map_err(|_| corruption(ErrorSubject::Logs, "the Raft log lock is poisoned"))
}

fn read_meta(dir: &Path) -> Result<LogMeta, StorageError<NodeId>> {
    let path = dir.join(META_FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(LogMeta::default()),
        Err(error) => return Err(io_error(ErrorSubject::Vote, ErrorVerb::Read, &error)),
    };
    let body = durable_file::unseal(&META_MAGIC, &bytes)
        .map_err(|why| corruption(ErrorSubject::Vote, format!("{}: {why}", path.display())))?;
    codec::decode(body, META_BYTES_MAX)
        .map_err(|error| corruption(ErrorSubject::Vote, format!("{}: {error}", path.display())))
}

fn write_meta(dir: &Path, meta: &LogMeta) -> io::Result<()> {
    write_atomically(
        dir,
        META_FILE_NAME,
        &durable_file::seal(&META_MAGIC, &codec::encode(meta)),
    )
}

/// `(start, end)` of a range of log indices, end exclusive; `None` if it is empty.
fn index_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => start.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&end) => end.saturating_add(1),
        Bound::Excluded(&end) => end,
        Bound::Unbounded => u64::MAX,
    };
    (start < end).then_some((start, end))
}

impl LogInner {
    fn open(dir: &Path) -> Result<LogInner, StorageError<NodeId>> {
        let write_error = |error: io::Error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error);
        durable_file::create_dir_durably(dir).map_err(write_error)?;
        remove_temporary_files(dir).map_err(write_error)?;
        let meta = read_meta(dir)?;
        let (wal, records) = Wal::open(dir, LOG_SEGMENT_BYTES_MAX, LOG_RECORD_BYTES_MAX)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
        let purged_index = meta.last_purged.map(|log_id| log_id.index);
        let mut committed = meta.committed;
        let mut index: BTreeMap<u64, EntryLocation> = BTreeMap::new();
        for record in records {
            let location = record.location;
            let decoded: WalRecord =
                codec::decode(&record.payload, LOG_RECORD_BYTES_MAX).map_err(|error| {
                    corruption(
                        ErrorSubject::Logs,
                        format!(
                            "log segment {} offset {}: {error}",
                            location.segment_id, location.offset
                        ),
                    )
                })?;
            match decoded {
                WalRecord::Committed(value) => committed = committed.max(value),
                WalRecord::Entry(entry) => {
                    let log_id = entry.log_id;
                    if location.segment_id > log_id.index {
                        return Err(corruption(
                            ErrorSubject::Log(log_id),
                            format!(
                                "entry {} is in segment {}, named after a later index",
                                log_id.index, location.segment_id
                            ),
                        ));
                    }
                    if purged_index.is_some_and(|purged| log_id.index <= purged) {
                        continue;
                    }
                    if let Some((&last_index, _)) = index.last_key_value() {
                        if log_id.index != last_index + 1 {
                            return Err(corruption(
                                ErrorSubject::Log(log_id),
                                format!("log entry {} follows entry {last_index}", log_id.index),
                            ));
                        }
                    }
                    index.insert(
                        log_id.index,
                        EntryLocation {
                            log_id,
                            record: location,
                        },
                    );
                }
            }
        }
        tracing::info!(
            dir = %dir.display(),
            entries = index.len(),
            last_purged = ?meta.last_purged,
            committed = ?committed,
            "opened the Raft log"
        );
        Ok(LogInner {
            dir: dir.to_path_buf(),
            wal,
            meta,
            committed,
            index,
        })
    }

    fn last_log_id(&self) -> Option<LogId<NodeId>> {
        self.index
            .last_key_value()
            .map(|(_, location)| location.log_id)
            .or(self.meta.last_purged)
    }

    /// The index the next appended entry must have, if it is constrained.
    fn next_index(&self) -> u64 {
        self.last_log_id()
            .map_or(0, |log_id| log_id.index.saturating_add(1))
    }

    fn append_record(&mut self, record: &WalRecordRef<'_>) -> io::Result<RecordLocation> {
        let next_segment_id = self.next_index();
        self.wal.append(&codec::encode(record), next_segment_id)
    }

    /// Writes the entries (not yet synced). Entries must continue the log.
    fn write_entries(&mut self, entries: &[Entry<TypeConfig>]) -> Result<(), StorageError<NodeId>> {
        for entry in entries {
            let log_id = entry.log_id;
            let previous = self.last_log_id();
            let continues = match self.index.last_key_value() {
                Some((&last_index, _)) => log_id.index == last_index + 1,
                None => true,
            };
            if self.index.is_empty()
                && self
                    .meta
                    .last_purged
                    .is_some_and(|purged| log_id.index <= purged.index)
            {
                // Already covered by the purge (openraft's start-up purges up to last_applied
                // when the log is behind the state machine): keeping it would make a gap.
                tracing::warn!(entry = %log_id, purged = ?self.meta.last_purged, "dropping an entry at or before the purged log id");
                continue;
            }
            if !continues {
                let violation = Violation::LogsNonConsecutive {
                    prev: previous,
                    next: log_id,
                };
                return Err(DefensiveError::new(ErrorSubject::Log(log_id), violation).into());
            }
            let record = self
                .append_record(&WalRecordRef::Entry(entry))
                .map_err(|error| io_error(ErrorSubject::Log(log_id), ErrorVerb::Write, &error))?;
            self.index
                .insert(log_id.index, EntryLocation { log_id, record });
        }
        Ok(())
    }

    fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let meta = LogMeta {
            vote: Some(*vote),
            committed: self.committed,
            ..self.meta.clone()
        };
        write_meta(&self.dir, &meta)
            .map_err(|error| io_error(ErrorSubject::Vote, ErrorVerb::Write, &error))?;
        self.meta = meta;
        Ok(())
    }

    fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        if committed == self.committed {
            return Ok(());
        }
        self.append_record(&WalRecordRef::Committed(&committed))
            .and_then(|_| self.wal.sync())
            .map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Write, &error))?;
        self.committed = committed;
        Ok(())
    }

    /// Deletes the entries at and after `log_id.index`.
    fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let first_removed = log_id.index;
        if let Some(purged) = self.meta.last_purged {
            if first_removed <= purged.index {
                let violation = Violation::AppliedWontConflict {
                    last_applied: Some(purged),
                    first_conflict_log_id: log_id,
                };
                return Err(DefensiveError::new(ErrorSubject::Log(log_id), violation).into());
            }
        }
        let write_error =
            |error: io::Error| io_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, &error);
        // Segments are named after the first index they may hold, so every segment named at or
        // after `first_removed` holds only entries to remove.
        self.wal
            .remove_segments_from(first_removed)
            .map_err(write_error)?;
        if let Some(location) = self.index.get(&first_removed).copied() {
            if location.record.segment_id < first_removed {
                self.wal.cut_before(location.record).map_err(write_error)?;
            }
        }
        self.index.split_off(&first_removed);
        // The cut may have dropped committed records written after the first removed entry;
        // write the current value again so a restart does not see an older one.
        if self.committed.is_some() {
            let committed = self.committed;
            self.append_record(&WalRecordRef::Committed(&committed))
                .and_then(|_| self.wal.sync())
                .map_err(write_error)?;
        }
        Ok(())
    }

    /// Deletes the entries up to and including `log_id.index` and records `log_id` as purged.
    fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        if self
            .meta
            .last_purged
            .is_some_and(|purged| purged.index >= log_id.index)
        {
            return Ok(());
        }
        let meta = LogMeta {
            last_purged: Some(log_id),
            committed: self.committed,
            ..self.meta.clone()
        };
        write_meta(&self.dir, &meta)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))?;
        self.meta = meta;
        let kept = self.index.split_off(&log_id.index.saturating_add(1));
        self.index = kept;
        let delete_error =
            |error: io::Error| io_error(ErrorSubject::Logs, ErrorVerb::Delete, &error);
        // Segments before the one holding the first kept entry hold only purged entries (and
        // committed records, whose latest value the meta file now has).
        match self.index.first_key_value() {
            Some((_, first_kept)) => self
                .wal
                .remove_segments_before(first_kept.record.segment_id),
            None => self.wal.remove_all_segments(),
        }
        .map_err(delete_error)
    }

    fn log_state(&self) -> LogState<TypeConfig> {
        LogState {
            last_purged_log_id: self.meta.last_purged,
            last_log_id: self.last_log_id(),
        }
    }

    /// The segment files and locations of the entries in `range`, to read without the lock.
    fn locate(
        &self,
        range: (u64, u64),
    ) -> Result<Vec<(Arc<fs::File>, EntryLocation)>, StorageError<NodeId>> {
        let (start, end) = range;
        self.index
            .range(start..end)
            .map(|(_, location)| {
                let file = self.wal.file(location.record.segment_id).ok_or_else(|| {
                    corruption(
                        ErrorSubject::Log(location.log_id),
                        format!(
                            "entry {} points at a missing segment",
                            location.log_id.index
                        ),
                    )
                })?;
                Ok((file, *location))
            })
            .collect()
    }
}

fn read_entries(
    inner: &Mutex<LogInner>,
    range: (u64, u64),
) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
    let located = lock(inner)?.locate(range)?;
    let mut entries = Vec::with_capacity(located.len());
    for (file, location) in located {
        let log_id = location.log_id;
        let payload = wal::read_record(&file, location.record)
            .map_err(|error| io_error(ErrorSubject::Log(log_id), ErrorVerb::Read, &error))?;
        let decoded: WalRecord = codec::decode(&payload, LOG_RECORD_BYTES_MAX)
            .map_err(|error| corruption(ErrorSubject::Log(log_id), error))?;
        match decoded {
            WalRecord::Entry(entry) if entry.log_id == log_id => entries.push(entry),
            other => {
                return Err(corruption(
                    ErrorSubject::Log(log_id),
                    format!("the record indexed as entry {log_id} holds {other:?}"),
                ))
            }
        }
    }
    Ok(entries)
}

impl LogStore {
    /// Opens the log in `dir` (created if missing), truncating a torn tail.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError<NodeId>> {
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner::open(dir)?)),
        })
    }

    async fn with_inner<T, F>(&self, work: F) -> Result<T, StorageError<NodeId>>
    where
        T: Send + 'static,
        F: FnOnce(&mut LogInner) -> Result<T, StorageError<NodeId>> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || work(&mut *lock(&inner)?)).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let Some(bounds) = index_bounds(&range) else {
            return Ok(Vec::new());
        };
        let inner = self.inner.clone();
        blocking(move || read_entries(&inner, bounds)).await
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let Some(bounds) = index_bounds(&range) else {
            return Ok(Vec::new());
        };
        let inner = self.inner.clone();
        blocking(move || read_entries(&inner, bounds)).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        Ok(lock(&self.inner)?.log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.with_inner(move |inner| inner.save_vote(&vote)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(lock(&self.inner)?.meta.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.with_inner(move |inner| inner.save_committed(committed))
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(lock(&self.inner)?.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let inner = self.inner.clone();
        let written = blocking(move || {
            // Write under the lock, then sync without it so replication can read meanwhile.
            let file = {
                let mut inner = lock(&inner)?;
                inner.write_entries(&entries)?;
                inner.wal.newest_file()
            };
            if let Some(file) = file {
                wal::sync_segment(&file)
                    .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))?;
            }
            Ok(())
        })
        .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.log_io_completed(Err(io::Error::other(error.to_string())));
                Err(error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.with_inner(move |inner| inner.truncate(log_id)).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.with_inner(move |inner| inner.purge(log_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::{NodeInfo, Proposal};
    use openraft::entry::RaftEntry;
    use openraft::{CommittedLeaderId, EntryPayload, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry::new_blank(log_id(term, index))
    }

    fn membership_entry(term: u64, index: u64) -> Entry<TypeConfig> {
        let nodes = BTreeMap::from([
            (
                1,
                NodeInfo {
                    raft_addr: "127.0.0.1:7001".into(),
                    http_addr: "127.0.0.1:8001".into(),
                },
            ),
            (
                2,
                NodeInfo {
                    raft_addr: "127.0.0.1:7002".into(),
                    http_addr: "127.0.0.1:8002".into(),
                },
            ),
        ]);
        let membership = Membership::new(vec![BTreeSet::from([1, 2])], nodes);
        Entry::new_membership(log_id(term, index), membership)
    }

    fn normal(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Proposal::default()),
        }
    }

    async fn append(store: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
        // The callback needs openraft's internal constructor, so tests write through the same
        // path `append` uses, minus the callback.
        let inner = store.inner.clone();
        blocking(move || {
            let mut inner = lock(&inner)?;
            inner.write_entries(&entries)?;
            inner
                .wal
                .sync()
                .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))
        })
        .await
        .unwrap();
    }

    async fn all_ids(store: &mut LogStore) -> Vec<LogId<NodeId>> {
        store
            .try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|entry| entry.log_id)
            .collect()
    }

    #[test]
    fn every_entry_kind_round_trips_through_the_codec() {
        for entry in [blank(3, 7), membership_entry(2, 5), normal(4, 9)] {
            let bytes = codec::encode(&WalRecordRef::Entry(&entry));
            let decoded: WalRecord = codec::decode(&bytes, LOG_RECORD_BYTES_MAX).unwrap();
            match decoded {
                WalRecord::Entry(decoded) => assert_eq!(decoded, entry),
                other => panic!("decoded {other:?}"),
            }
        }
        let committed = Some(log_id(2, 5));
        let decoded: WalRecord =
            codec::decode(&codec::encode(&WalRecordRef::Committed(&committed)), 64).unwrap();
        assert!(matches!(decoded, WalRecord::Committed(value) if value == committed));
        let meta = LogMeta {
            vote: Some(Vote::new_committed(3, 2)),
            last_purged: Some(log_id(1, 4)),
            committed: Some(log_id(2, 9)),
        };
        assert_eq!(
            codec::decode::<LogMeta>(&codec::encode(&meta), META_BYTES_MAX).unwrap(),
            meta
        );
    }

    #[tokio::test]
    async fn entries_vote_and_committed_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(
            &mut store,
            vec![blank(1, 1), membership_entry(1, 2), normal(1, 3)],
        )
        .await;
        append(&mut store, vec![normal(2, 4)]).await;
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        store.save_committed(Some(log_id(1, 3))).await.unwrap();
        let before = store.try_get_log_entries(0..10).await.unwrap();
        drop(store);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.try_get_log_entries(0..10).await.unwrap(), before);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 3)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 4)));
        assert_eq!(state.last_purged_log_id, None);
        // Reads through a separate reader see the same.
        let mut reader = store.get_log_reader().await;
        assert_eq!(
            reader.try_get_log_entries(2..=3).await.unwrap(),
            before[1..3].to_vec()
        );
    }

    #[tokio::test]
    async fn truncate_survives_a_reopen_and_the_log_continues_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, (1..=10).map(|index| blank(1, index)).collect()).await;
        store.save_committed(Some(log_id(1, 4))).await.unwrap();
        store.truncate(log_id(1, 6)).await.unwrap();
        assert_eq!(
            all_ids(&mut store).await,
            (1..=5).map(|index| log_id(1, index)).collect::<Vec<_>>()
        );
        append(&mut store, vec![blank(2, 6), blank(2, 7)]).await;
        drop(store);

        let mut store = LogStore::open(dir.path()).unwrap();
        let mut expected: Vec<LogId<NodeId>> = (1..=5).map(|index| log_id(1, index)).collect();
        expected.extend([log_id(2, 6), log_id(2, 7)]);
        assert_eq!(all_ids(&mut store).await, expected);
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 4)));
    }

    #[tokio::test]
    async fn truncate_to_nothing_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, (0..=4).map(|index| blank(1, index)).collect()).await;
        store.truncate(log_id(1, 0)).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert!(all_ids(&mut store).await.is_empty());
        assert_eq!(store.get_log_state().await.unwrap(), LogState::default());
    }

    #[tokio::test]
    async fn purge_survives_a_reopen_including_a_purge_past_the_last_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, (1..=10).map(|index| blank(1, index)).collect()).await;
        store.purge(log_id(1, 4)).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            all_ids(&mut store).await,
            (5..=10).map(|index| log_id(1, index)).collect::<Vec<_>>()
        );
        assert_eq!(
            store.get_log_state().await.unwrap().last_purged_log_id,
            Some(log_id(1, 4))
        );

        store.purge(log_id(1, 20)).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert!(all_ids(&mut store).await.is_empty());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 20)));
        assert_eq!(state.last_log_id, Some(log_id(1, 20)));
        append(&mut store, vec![blank(2, 21)]).await;
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(all_ids(&mut store).await, vec![log_id(2, 21)]);
    }

    #[tokio::test]
    async fn purge_removes_whole_segments_once_they_hold_only_purged_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        // Small segments: rebuild the inner log with a tiny segment size.
        {
            let mut inner = lock(&store.inner).unwrap();
            let (wal, _) = Wal::open(dir.path(), 200, LOG_RECORD_BYTES_MAX).unwrap();
            inner.wal = wal;
        }
        append(&mut store, (1..=40).map(|index| blank(1, index)).collect()).await;
        let segments_before = lock(&store.inner).unwrap().wal.segment_ids();
        assert!(segments_before.len() > 3, "{segments_before:?}");
        store.purge(log_id(1, 30)).await.unwrap();
        let segments_after = lock(&store.inner).unwrap().wal.segment_ids();
        assert!(segments_after.len() < segments_before.len());
        assert!(segments_after[0] <= 31, "{segments_after:?}");
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            all_ids(&mut store).await,
            (31..=40).map(|index| log_id(1, index)).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_gap_in_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, vec![blank(1, 1)]).await;
        let inner = store.inner.clone();
        let error = blocking(move || lock(&inner)?.write_entries(&[blank(1, 3)]))
            .await
            .unwrap_err();
        assert!(matches!(error, StorageError::Defensive { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn a_torn_last_entry_is_dropped_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, (1..=3).map(|index| normal(1, index)).collect()).await;
        drop(store);
        let segment = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|extension| extension == "wal"))
            .unwrap();
        let length = fs::metadata(&segment).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(length - 3)
            .unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(all_ids(&mut store).await, vec![log_id(1, 1), log_id(1, 2)]);
        append(&mut store, vec![normal(1, 3)]).await;
    }

    #[test]
    fn index_bounds_never_panic_on_odd_ranges() {
        assert_eq!(index_bounds(&(3..3)), None);
        let (start, end) = (5, 3);
        assert_eq!(index_bounds(&(start..end)), None);
        assert_eq!(index_bounds(&(..)), Some((0, u64::MAX)));
        assert_eq!(index_bounds(&(2..=4)), Some((2, 5)));
        assert_eq!(index_bounds(&(u64::MAX..)), None);
        assert_eq!(
            index_bounds(&(Bound::Excluded(u64::MAX), Bound::Unbounded)),
            None
        );
    }
}
