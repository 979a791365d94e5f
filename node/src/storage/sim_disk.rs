//! The simulator's model of a power loss: what the Raft log keeps of bytes that were written
//! but never synced.
//!
//! A real disk may lose any write that `sync_data` has not covered. The simulator (`sim/`)
//! runs nodes on real files, where the page cache would keep everything, so it records, on its
//! own thread only, how long each log segment was at its last sync ([`note_synced`], called by
//! `wal::sync_segment`). When it crashes a node, [`lose_unsynced_writes`] cuts every segment
//! back to that length plus a torn part of the unsynced tail of the simulator's choosing.
//! Nothing is recorded on a thread that did not ask for it, so a node never pays for this.
//!
//! Only the Raft log is modelled: it is the durable source. The vote and the snapshots are
//! written to a temporary file, synced and renamed (`durable_file.rs`), which a crash cannot
//! tear between two awaits; sled's applied state is rebuilt from the log after a crash anyway.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

thread_local! {
    /// (device, inode) of each segment file → its length at its last sync; `None` when this
    /// thread does not record.
    static SYNCED: RefCell<Option<BTreeMap<(u64, u64), u64>>> = const { RefCell::new(None) };
}

/// Starts recording segment syncs on this thread (the simulator's thread, before any node
/// opens its storage).
pub fn record_syncs_on_this_thread() {
    SYNCED.with(|synced| {
        synced.borrow_mut().get_or_insert_with(BTreeMap::new);
    });
}

/// Records that `file` (a log segment) was just synced, if this thread records.
pub(crate) fn note_synced(file: &File) {
    SYNCED.with(|synced| {
        if let Some(synced) = synced.borrow_mut().as_mut() {
            if let Ok(metadata) = file.metadata() {
                synced.insert((metadata.dev(), metadata.ino()), metadata.len());
            }
        }
    });
}

/// Cuts each log segment under `data_dir` back to its length at its last recorded sync, plus
/// `torn(unsynced_bytes)` bytes of its unsynced tail (at most all of it). Returns the bytes
/// lost. Call it only once the node's storage is closed.
pub fn lose_unsynced_writes(data_dir: &Path, mut torn: impl FnMut(u64) -> u64) -> io::Result<u64> {
    let log_dir = data_dir.join("raft-log");
    let mut names: Vec<_> = match fs::read_dir(&log_dir) {
        Ok(entries) => entries
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<io::Result<_>>()?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    // Directory order is the file system's; sort it so the torn lengths drawn are reproducible.
    names.sort();
    let mut lost = 0;
    for path in names {
        if path.extension().and_then(|extension| extension.to_str()) != Some("wal") {
            continue;
        }
        let metadata = fs::metadata(&path)?;
        let synced = SYNCED.with(|synced| {
            synced
                .borrow()
                .as_ref()
                .and_then(|synced| synced.get(&(metadata.dev(), metadata.ino())).copied())
        });
        let Some(synced) = synced else {
            continue;
        };
        if metadata.len() > synced {
            let unsynced = metadata.len() - synced;
            let kept = synced + torn(unsynced).min(unsynced);
            OpenOptions::new().write(true).open(&path)?.set_len(kept)?;
            lost += metadata.len() - kept;
        }
    }
    Ok(lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_crash_keeps_the_synced_bytes_and_the_torn_part_asked_for() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let log_dir = dir.path().join("raft-log");
        fs::create_dir(&log_dir).expect("the log folder");
        let path = log_dir.join("segment-00000000000000000001.wal");
        let mut file = File::create(&path).expect("a segment");
        file.write_all(&[1; 100]).expect("write");

        // Not recording: nothing is known, nothing is cut.
        note_synced(&file);
        assert_eq!(lose_unsynced_writes(dir.path(), |_| 0).expect("cut"), 0);

        record_syncs_on_this_thread();
        file.sync_data().expect("sync");
        note_synced(&file);
        file.write_all(&[2; 60]).expect("write");
        let lost = lose_unsynced_writes(dir.path(), |unsynced| {
            assert_eq!(unsynced, 60);
            10
        })
        .expect("cut");
        assert_eq!(lost, 50);
        assert_eq!(fs::metadata(&path).expect("metadata").len(), 110);
    }
}
