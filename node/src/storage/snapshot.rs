//! Raft snapshot files: the whole ledger at a log id, written durably under `snapshots/`.
//!
//! A snapshot file is `durable_file::seal(SNAPSHOT_MAGIC, body)` with
//! `body = meta length (u64 LE) ‖ codec::encode(SnapshotHeader) ‖ ledger.snapshot() bytes`.
//! The same bytes are what openraft sends to a follower, so a follower checks the checksum and
//! the header before it trusts them. Files are named `snapshot-<last applied index + 1, 20
//! digits>.snap` (0 for a snapshot of nothing); only the newest is kept, and older ones are
//! removed only after the newest is durable. This file never interprets the ledger bytes
//! (`ledger::Ledger::restore` does) and never writes a snapshot non-durably.

use super::durable_file::{
    self, remove_temporary_files, sync_dir, write_atomically, TEMPORARY_SUFFIX,
};
use crate::raft_types::{NodeId, NodeInfo};
use ledger::codec;
use openraft::{LogId, SnapshotMeta, StoredMembership};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The first bytes of every snapshot file: names the format and its version. Version 2: the
/// ledger's transfers are encoded in apply order (`spec/ledger.md` 8), not by id.
const SNAPSHOT_MAGIC: [u8; 8] = *b"cbsnap\0\x02";

/// Bytes of the encoded header we agree to decode (log id, membership, id).
const SNAPSHOT_HEADER_BYTES_MAX: usize = 1024 * 1024;

const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".snap";

/// What a snapshot file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotHeader {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, NodeInfo>,
    pub snapshot_id: String,
}

impl SnapshotHeader {
    /// The header of a snapshot at `last_applied`. Its id names the log id it covers: two
    /// snapshots at one log id hold the same ledger (apply is deterministic).
    pub(crate) fn new(
        last_applied: Option<LogId<NodeId>>,
        membership: StoredMembership<NodeId, NodeInfo>,
    ) -> SnapshotHeader {
        let snapshot_id = match last_applied {
            Some(log_id) => format!(
                "{}-{}-{}",
                log_id.leader_id.term, log_id.leader_id.node_id, log_id.index
            ),
            None => "none".to_owned(),
        };
        SnapshotHeader {
            last_applied,
            membership,
            snapshot_id,
        }
    }

    pub(crate) fn meta(&self) -> SnapshotMeta<NodeId, NodeInfo> {
        SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: self.snapshot_id.clone(),
        }
    }
}

/// A snapshot file's bytes, checked, with its header decoded and the ledger bytes located.
pub(crate) struct SnapshotFile {
    pub header: SnapshotHeader,
    pub bytes: Vec<u8>,
    ledger_offset: usize,
}

impl SnapshotFile {
    /// Builds the file bytes for `ledger_bytes` at `last_applied` (tests; a node streams its
    /// snapshots with [`SnapshotStore::build`]).
    #[cfg(test)]
    pub(crate) fn build(
        last_applied: Option<LogId<NodeId>>,
        membership: StoredMembership<NodeId, NodeInfo>,
        ledger_bytes: &[u8],
    ) -> SnapshotFile {
        let header = SnapshotHeader::new(last_applied, membership);
        let header_bytes = codec::encode(&header);
        let mut body = Vec::with_capacity(8 + header_bytes.len() + ledger_bytes.len());
        body.extend_from_slice(&(header_bytes.len() as u64).to_le_bytes());
        body.extend_from_slice(&header_bytes);
        body.extend_from_slice(ledger_bytes);
        let bytes = durable_file::seal(&SNAPSHOT_MAGIC, &body);
        let ledger_offset = bytes.len() - ledger_bytes.len();
        SnapshotFile {
            header,
            bytes,
            ledger_offset,
        }
    }

    /// Checks and decodes snapshot file bytes (from disk or from the leader).
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<SnapshotFile, String> {
        let body = durable_file::unseal(&SNAPSHOT_MAGIC, &bytes)?;
        let body_offset = bytes.len() - body.len();
        if body.len() < 8 {
            return Err("snapshot body shorter than its header length".to_string());
        }
        let mut length_bytes = [0; 8];
        length_bytes.copy_from_slice(&body[..8]);
        let header_length = usize::try_from(u64::from_le_bytes(length_bytes))
            .map_err(|_| "snapshot header length does not fit in memory".to_string())?;
        let header_bytes = body
            .get(8..8usize.saturating_add(header_length))
            .ok_or_else(|| {
                format!("snapshot header of {header_length} bytes runs past the file")
            })?;
        let header: SnapshotHeader = codec::decode(header_bytes, SNAPSHOT_HEADER_BYTES_MAX)
            .map_err(|error| format!("snapshot header: {error}"))?;
        let ledger_offset = body_offset + 8 + header_length;
        Ok(SnapshotFile {
            header,
            bytes,
            ledger_offset,
        })
    }

    /// The `ledger.snapshot()` bytes inside the file.
    pub(crate) fn ledger_bytes(&self) -> &[u8] {
        &self.bytes[self.ledger_offset..]
    }

    fn file_name(&self) -> String {
        snapshot_file_name(self.header.last_applied)
    }
}

/// Whether a snapshot with `header` is older than the current one (a slow build raced an
/// install): it is then not kept.
fn is_older(current: Option<&(SnapshotHeader, PathBuf)>, header: &SnapshotHeader) -> bool {
    let older = current.is_some_and(|(current, _)| current.last_applied > header.last_applied);
    if older {
        tracing::info!(
            current = ?current.map(|(current, _)| current.last_applied),
            built = ?header.last_applied,
            "not keeping a snapshot older than the current one"
        );
    }
    older
}

fn snapshot_file_name(last_applied: Option<LogId<NodeId>>) -> String {
    let number = last_applied.map_or(0, |log_id| u128::from(log_id.index) + 1);
    format!("{SNAPSHOT_PREFIX}{number:020}{SNAPSHOT_SUFFIX}")
}

fn parse_snapshot_file_name(name: &str) -> Option<u128> {
    let digits = name
        .strip_prefix(SNAPSHOT_PREFIX)?
        .strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A snapshot file being written (`SnapshotStore::draft`): the ledger's bytes go in through
/// `Write`.
pub(crate) struct SnapshotDraft {
    writer: durable_file::SealWriter,
    header: SnapshotHeader,
    name: String,
    temporary: PathBuf,
}

impl SnapshotDraft {
    pub(crate) fn header(&self) -> &SnapshotHeader {
        &self.header
    }
}

impl Write for SnapshotDraft {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.writer.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// The snapshot files of one node, and the meta of the current one.
pub(crate) struct SnapshotStore {
    dir: PathBuf,
    /// The current snapshot's header and file, if any. Also serialises writers.
    current: Mutex<Option<(SnapshotHeader, PathBuf)>>,
}

impl SnapshotStore {
    /// Opens `dir` (created if missing) and returns the newest snapshot in it, checked.
    pub(crate) fn open(dir: &Path) -> io::Result<(SnapshotStore, Option<SnapshotFile>)> {
        durable_file::create_dir_durably(dir)?;
        remove_temporary_files(dir)?;
        let mut newest: Option<(u128, PathBuf)> = None;
        for dir_entry in fs::read_dir(dir)? {
            let path = dir_entry?.path();
            let number = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(parse_snapshot_file_name);
            if let Some(number) = number {
                if newest
                    .as_ref()
                    .is_none_or(|(newest_number, _)| number > *newest_number)
                {
                    newest = Some((number, path));
                }
            }
        }
        let mut current = None;
        let mut file = None;
        if let Some((_, path)) = newest {
            let parsed = SnapshotFile::parse(fs::read(&path)?).map_err(|why| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {why}", path.display()),
                )
            })?;
            if parsed.file_name()
                != path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or_default()
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: holds a snapshot at {:?}",
                        path.display(),
                        parsed.header.last_applied
                    ),
                ));
            }
            current = Some((parsed.header.clone(), path));
            file = Some(parsed);
        }
        Ok((
            SnapshotStore {
                dir: dir.to_path_buf(),
                current: Mutex::new(current),
            },
            file,
        ))
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, Option<(SnapshotHeader, PathBuf)>>> {
        // Poisoned only if a thread panicked mid-write; the files on disk are still consistent
        // (atomic rename), but the cached header may not be, so refuse to go on.
        self.current
            .lock()
            .map_err(|_| io::Error::other("the snapshot lock is poisoned"))
    }

    /// Writes `file` durably and makes it current, then removes every other snapshot file, and
    /// returns `true`. A snapshot older than the current one is not written (a slow build raced
    /// an install) and `false` is returned.
    pub(crate) fn save(&self, file: &SnapshotFile) -> io::Result<bool> {
        let mut current = self.lock()?;
        if is_older(current.as_ref(), &file.header) {
            return Ok(false);
        }
        let name = file.file_name();
        write_atomically(&self.dir, &name, &file.bytes)?;
        self.make_current(&mut current, file.header.clone(), &name)?;
        Ok(true)
    }

    /// Starts a new snapshot file at `last_applied`: write the ledger's bytes into the draft
    /// (`Ledger::write_snapshot` streams them, so a large ledger's encoding is never all in
    /// memory), then [`SnapshotStore::keep`] it.
    pub(crate) fn draft(
        &self,
        last_applied: Option<LogId<NodeId>>,
        membership: StoredMembership<NodeId, NodeInfo>,
    ) -> io::Result<SnapshotDraft> {
        let header = SnapshotHeader::new(last_applied, membership);
        let name = snapshot_file_name(last_applied);
        // Not `save`'s temporary name, so an install racing a build never shares a file.
        // openraft runs one build at a time.
        let temporary = self.dir.join(format!("{name}.draft{TEMPORARY_SUFFIX}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        // `seal`'s layout, the checksum written last, once the body has been hashed.
        let mut writer = durable_file::SealWriter::new(&SNAPSHOT_MAGIC, file)?;
        let header_bytes = codec::encode(&header);
        writer.write_all(&(header_bytes.len() as u64).to_le_bytes())?;
        writer.write_all(&header_bytes)?;
        Ok(SnapshotDraft {
            writer,
            header,
            name,
            temporary,
        })
    }

    /// Finishes `draft` durably and makes it current, like `save`. Returns its header, or
    /// `None` (and removes the draft) if a newer snapshot is current already.
    pub(crate) fn keep(&self, draft: SnapshotDraft) -> io::Result<Option<SnapshotHeader>> {
        let SnapshotDraft {
            writer,
            header,
            name,
            temporary,
        } = draft;
        let file = writer.finish()?;
        file.sync_data()?;
        drop(file);
        let mut current = self.lock()?;
        if is_older(current.as_ref(), &header) {
            fs::remove_file(&temporary)?;
            return Ok(None);
        }
        fs::rename(&temporary, self.dir.join(&name))?;
        sync_dir(&self.dir)?;
        self.make_current(&mut current, header.clone(), &name)?;
        Ok(Some(header))
    }

    /// Records `name` as the current snapshot and removes every other snapshot file.
    fn make_current(
        &self,
        current: &mut Option<(SnapshotHeader, PathBuf)>,
        header: SnapshotHeader,
        name: &str,
    ) -> io::Result<()> {
        let mut removed = false;
        for dir_entry in fs::read_dir(&self.dir)? {
            let path = dir_entry?.path();
            let file_name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            if parse_snapshot_file_name(file_name).is_some() && file_name != name {
                fs::remove_file(&path)?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        *current = Some((header, self.dir.join(name)));
        Ok(())
    }

    /// The current snapshot's bytes, re-read and re-checked from disk.
    pub(crate) fn current(&self) -> io::Result<Option<SnapshotFile>> {
        let current = self.lock()?;
        let Some((header, path)) = current.as_ref() else {
            return Ok(None);
        };
        let parsed = SnapshotFile::parse(fs::read(path)?).map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        })?;
        if parsed.header != *header {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: header changed on disk", path.display()),
            ));
        }
        Ok(Some(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Membership};
    use std::collections::BTreeSet;

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn membership() -> StoredMembership<NodeId, NodeInfo> {
        StoredMembership::new(
            Some(log_id(1, 1)),
            Membership::new(vec![BTreeSet::from([1, 2, 3])], ()),
        )
    }

    #[test]
    fn a_file_round_trips_and_any_flipped_byte_is_caught() {
        let built = SnapshotFile::build(Some(log_id(2, 9)), membership(), b"ledger bytes");
        let parsed = SnapshotFile::parse(built.bytes.clone()).unwrap();
        assert_eq!(parsed.header, built.header);
        assert_eq!(parsed.ledger_bytes(), b"ledger bytes");
        for position in (0..built.bytes.len()).step_by(7) {
            let mut broken = built.bytes.clone();
            broken[position] ^= 0x10;
            assert!(
                SnapshotFile::parse(broken).is_err(),
                "flip at {position} not detected"
            );
        }
        assert!(SnapshotFile::parse(Vec::new()).is_err());
    }

    #[test]
    fn only_the_newest_snapshot_is_kept_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let (store, newest) = SnapshotStore::open(dir.path()).unwrap();
        assert!(newest.is_none());
        assert!(store.current().unwrap().is_none());
        store
            .save(&SnapshotFile::build(
                Some(log_id(1, 5)),
                membership(),
                b"five",
            ))
            .unwrap();
        store
            .save(&SnapshotFile::build(
                Some(log_id(1, 9)),
                membership(),
                b"nine",
            ))
            .unwrap();
        // An older build finishing late does not replace the newer one.
        store
            .save(&SnapshotFile::build(
                Some(log_id(1, 7)),
                membership(),
                b"seven",
            ))
            .unwrap();
        assert_eq!(store.current().unwrap().unwrap().ledger_bytes(), b"nine");
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![snapshot_file_name(Some(log_id(1, 9)))]);
        drop(store);
        let (store, newest) = SnapshotStore::open(dir.path()).unwrap();
        assert_eq!(newest.unwrap().header.last_applied, Some(log_id(1, 9)));
        assert_eq!(
            store.current().unwrap().unwrap().header.last_applied,
            Some(log_id(1, 9))
        );
    }

    #[test]
    fn a_corrupt_snapshot_file_is_an_error_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path()).unwrap();
        store
            .save(&SnapshotFile::build(
                Some(log_id(1, 5)),
                membership(),
                b"five",
            ))
            .unwrap();
        drop(store);
        let path = dir.path().join(snapshot_file_name(Some(log_id(1, 5))));
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let error = SnapshotStore::open(dir.path())
            .err()
            .expect("corruption must be reported");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
