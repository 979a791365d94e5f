//! The write-ahead log's files: segments of length-prefixed, checksummed records.
//!
//! A segment is `segment-<id, 20 digits>.wal`: an 8-byte magic header, then records, each
//! `payload length (u32 LE) ‖ checksum (first 8 bytes of blake3(length ‖ payload)) ‖ payload`.
//! Records are only ever appended at the end of the newest segment; a new segment is started
//! once the newest one is full, after the full one is synced, so only the newest segment can
//! end in a torn record after a crash. `Wal::open` truncates such a torn tail; a bad record
//! anywhere else is corruption and an error.
//!
//! This file knows bytes, not Raft: what a record means, and which segments may be removed, is
//! `log_store.rs`'s business. It must never report a record durable before `sync_data` on its
//! segment has returned, and never remove or create a segment without syncing the directory.

use super::durable_file::sync_dir;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The first bytes of every segment: names the format and its version.
const SEGMENT_MAGIC: [u8; 8] = *b"cbwal\0\0\x01";

/// `payload length (4) ‖ checksum (8)`.
const RECORD_HEADER_BYTES: u64 = 4 + 8;

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".wal";

/// Where a record lives: enough to read it back without scanning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordLocation {
    pub segment_id: u64,
    /// Offset of the record's header in the segment.
    pub offset: u64,
    pub payload_bytes: u32,
}

/// A record found by `Wal::open`.
pub(crate) struct ScannedRecord {
    pub location: RecordLocation,
    pub payload: Vec<u8>,
}

struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// Bytes written so far (the offset of the next record).
    bytes: u64,
}

/// The open segment files of one log directory.
pub(crate) struct Wal {
    dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    segment_bytes_max: u64,
    record_bytes_max: usize,
}

/// Makes a segment's written bytes durable. Every sync of a segment goes through here, so the
/// simulator's disk model (`sim_disk.rs`) knows what a power loss keeps.
pub(crate) fn sync_segment(file: &File) -> io::Result<()> {
    file.sync_data()?;
    super::sim_disk::note_synced(file);
    Ok(())
}

fn segment_file_name(segment_id: u64) -> String {
    format!("{SEGMENT_PREFIX}{segment_id:020}{SEGMENT_SUFFIX}")
}

fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn checksum(length: u32, payload: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&length.to_le_bytes());
    hasher.update(payload);
    let mut checksum = [0; 8];
    checksum.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    checksum
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Why scanning a segment stopped before its end.
struct TornRecord {
    offset: u64,
    why: &'static str,
}

/// Parses the records of one segment's bytes (after the header).
fn scan_segment(
    segment_id: u64,
    bytes: &[u8],
    record_bytes_max: usize,
    records: &mut Vec<ScannedRecord>,
) -> Result<(), TornRecord> {
    let mut offset = SEGMENT_MAGIC.len();
    while offset < bytes.len() {
        let torn = |why| TornRecord {
            offset: offset as u64,
            why,
        };
        let rest = &bytes[offset..];
        if rest.len() < RECORD_HEADER_BYTES as usize {
            return Err(torn("header cut short"));
        }
        let (length_bytes, rest) = rest.split_at(4);
        let (checksum_bytes, rest) = rest.split_at(8);
        let mut length_array = [0; 4];
        length_array.copy_from_slice(length_bytes);
        let payload_bytes = u32::from_le_bytes(length_array);
        let payload_len = payload_bytes as usize;
        if payload_len > record_bytes_max {
            return Err(torn("length above the record limit"));
        }
        if rest.len() < payload_len {
            return Err(torn("payload cut short"));
        }
        let payload = &rest[..payload_len];
        if checksum(payload_bytes, payload)[..] != checksum_bytes[..] {
            return Err(torn("checksum mismatch"));
        }
        records.push(ScannedRecord {
            location: RecordLocation {
                segment_id,
                offset: offset as u64,
                payload_bytes,
            },
            payload: payload.to_vec(),
        });
        offset += RECORD_HEADER_BYTES as usize + payload_len;
    }
    Ok(())
}

/// Reads the record at `location` from `file` and checks its length and checksum.
pub(crate) fn read_record(file: &File, location: RecordLocation) -> io::Result<Vec<u8>> {
    let mut header = [0; RECORD_HEADER_BYTES as usize];
    file.read_exact_at(&mut header, location.offset)?;
    let mut length_array = [0; 4];
    length_array.copy_from_slice(&header[..4]);
    let payload_bytes = u32::from_le_bytes(length_array);
    if payload_bytes != location.payload_bytes {
        return Err(invalid_data(format!(
            "segment {} offset {}: record length {payload_bytes}, index says {}",
            location.segment_id, location.offset, location.payload_bytes
        )));
    }
    let mut payload = vec![0; payload_bytes as usize];
    file.read_exact_at(&mut payload, location.offset + RECORD_HEADER_BYTES)?;
    if checksum(payload_bytes, &payload)[..] != header[4..] {
        return Err(invalid_data(format!(
            "segment {} offset {}: checksum mismatch",
            location.segment_id, location.offset
        )));
    }
    Ok(payload)
}

impl Wal {
    /// Opens every segment in `dir` (which must exist) and returns all complete records in
    /// order. A torn record at the end of the newest segment is cut off, durably; a bad record
    /// in an older segment, or a bad header on a segment with records, is an error.
    pub(crate) fn open(
        dir: &Path,
        segment_bytes_max: u64,
        record_bytes_max: usize,
    ) -> io::Result<(Wal, Vec<ScannedRecord>)> {
        let mut ids = Vec::new();
        for dir_entry in fs::read_dir(dir)? {
            let name = dir_entry?.file_name();
            if let Some(id) = name.to_str().and_then(parse_segment_file_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            segment_bytes_max,
            record_bytes_max,
        };
        let mut records = Vec::new();
        let newest_id = ids.last().copied();
        for id in ids {
            let is_newest = Some(id) == newest_id;
            let path = dir.join(segment_file_name(id));
            let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            if bytes.len() < SEGMENT_MAGIC.len() || bytes[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
                if is_newest && bytes.len() <= SEGMENT_MAGIC.len() {
                    // Created but its header never reached the disk: it held no record yet.
                    tracing::warn!(segment = %path.display(), "removing a segment with a torn header");
                    drop(file);
                    fs::remove_file(&path)?;
                    sync_dir(dir)?;
                    continue;
                }
                return Err(invalid_data(format!(
                    "{}: not a log segment (bad header)",
                    path.display()
                )));
            }
            let mut length = bytes.len() as u64;
            if let Err(torn) = scan_segment(id, &bytes, record_bytes_max, &mut records) {
                if !is_newest {
                    return Err(invalid_data(format!(
                        "{}: corrupt record at offset {} ({}) in a segment that is not the newest",
                        path.display(),
                        torn.offset,
                        torn.why
                    )));
                }
                tracing::warn!(
                    segment = %path.display(),
                    offset = torn.offset,
                    why = torn.why,
                    dropped_bytes = length - torn.offset,
                    "truncating a torn tail of the Raft log"
                );
                file.set_len(torn.offset)?;
                sync_segment(&file)?;
                length = torn.offset;
            }
            wal.segments.insert(
                id,
                Segment {
                    path,
                    file: Arc::new(file),
                    bytes: length,
                },
            );
        }
        Ok((wal, records))
    }

    /// The ids of the segments, oldest first.
    #[cfg(test)]
    pub(crate) fn segment_ids(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// Appends one record to the newest segment (not synced: call `sync` or sync the handle
    /// from `newest_file`). Starts a new segment named `next_segment_id` first if there is none
    /// or the newest is full and has a smaller id.
    pub(crate) fn append(
        &mut self,
        payload: &[u8],
        next_segment_id: u64,
    ) -> io::Result<RecordLocation> {
        if payload.len() > self.record_bytes_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "log record of {} bytes exceeds the limit of {}",
                    payload.len(),
                    self.record_bytes_max
                ),
            ));
        }
        let needs_new_segment = match self.segments.last_key_value() {
            None => true,
            Some((&id, segment)) => segment.bytes >= self.segment_bytes_max && id < next_segment_id,
        };
        if needs_new_segment {
            self.start_segment(next_segment_id)?;
        }
        let (&segment_id, segment) = self
            .segments
            .iter_mut()
            .next_back()
            .ok_or_else(|| io::Error::other("no segment after starting one"))?;
        // Bounded by `record_bytes_max`, which the callers keep below u32::MAX (checked at
        // compile time in storage/mod.rs).
        let payload_bytes = u32::try_from(payload.len()).map_err(io::Error::other)?;
        let mut record = Vec::with_capacity(RECORD_HEADER_BYTES as usize + payload.len());
        record.extend_from_slice(&payload_bytes.to_le_bytes());
        record.extend_from_slice(&checksum(payload_bytes, payload));
        record.extend_from_slice(payload);
        let offset = segment.bytes;
        segment.file.write_all_at(&record, offset)?;
        segment.bytes += record.len() as u64;
        Ok(RecordLocation {
            segment_id,
            offset,
            payload_bytes,
        })
    }

    /// Creates a new newest segment, after syncing the current newest one so that only the
    /// newest segment can ever have a torn tail.
    fn start_segment(&mut self, segment_id: u64) -> io::Result<()> {
        if let Some((&newest_id, newest)) = self.segments.last_key_value() {
            if newest_id >= segment_id {
                return Err(io::Error::other(format!(
                    "new segment {segment_id} would not be newer than segment {newest_id}"
                )));
            }
            sync_segment(&newest.file)?;
        }
        let path = self.dir.join(segment_file_name(segment_id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.write_all_at(&SEGMENT_MAGIC, 0)?;
        sync_segment(&file)?;
        sync_dir(&self.dir)?;
        self.segments.insert(
            segment_id,
            Segment {
                path,
                file: Arc::new(file),
                bytes: SEGMENT_MAGIC.len() as u64,
            },
        );
        Ok(())
    }

    /// The newest segment's file, to sync it without holding whatever lock guards the `Wal`.
    pub(crate) fn newest_file(&self) -> Option<Arc<File>> {
        self.segments
            .last_key_value()
            .map(|(_, segment)| segment.file.clone())
    }

    /// Makes every appended record durable (`sync_data` on the newest segment; older segments
    /// were synced when the next one was started).
    pub(crate) fn sync(&self) -> io::Result<()> {
        match self.newest_file() {
            Some(file) => sync_segment(&file),
            None => Ok(()),
        }
    }

    /// A segment's file, for reading records without holding whatever lock guards the `Wal`.
    /// Reads through it keep working after the segment is removed (the file stays open).
    pub(crate) fn file(&self, segment_id: u64) -> Option<Arc<File>> {
        self.segments
            .get(&segment_id)
            .map(|segment| segment.file.clone())
    }

    /// Removes the segments with an id at or above `segment_id_min`, newest first, then syncs
    /// the directory. A crash part-way leaves a prefix of the log.
    pub(crate) fn remove_segments_from(&mut self, segment_id_min: u64) -> io::Result<()> {
        let doomed: Vec<u64> = self
            .segments
            .range(segment_id_min..)
            .map(|(&id, _)| id)
            .rev()
            .collect();
        self.remove_segments(&doomed)
    }

    /// Removes the segments with an id below `segment_id_end`, oldest first, then syncs the
    /// directory. A crash part-way leaves a suffix of the log.
    pub(crate) fn remove_segments_before(&mut self, segment_id_end: u64) -> io::Result<()> {
        let doomed: Vec<u64> = self
            .segments
            .range(..segment_id_end)
            .map(|(&id, _)| id)
            .collect();
        self.remove_segments(&doomed)
    }

    /// Removes every segment.
    pub(crate) fn remove_all_segments(&mut self) -> io::Result<()> {
        let doomed: Vec<u64> = self.segments.keys().copied().collect();
        self.remove_segments(&doomed)
    }

    fn remove_segments(&mut self, ids_in_order: &[u64]) -> io::Result<()> {
        if ids_in_order.is_empty() {
            return Ok(());
        }
        for id in ids_in_order {
            if let Some(segment) = self.segments.remove(id) {
                fs::remove_file(&segment.path)?;
            }
        }
        sync_dir(&self.dir)
    }

    /// Cuts the segment holding `location` just before that record, durably: the record and
    /// everything after it in that segment are gone. Later segments must be removed first.
    pub(crate) fn cut_before(&mut self, location: RecordLocation) -> io::Result<()> {
        if self
            .segments
            .range(location.segment_id + 1..)
            .next()
            .is_some()
        {
            return Err(io::Error::other("cutting a segment that is not the newest"));
        }
        let segment = self
            .segments
            .get_mut(&location.segment_id)
            .ok_or_else(|| io::Error::other(format!("no segment {}", location.segment_id)))?;
        segment.file.set_len(location.offset)?;
        sync_segment(&segment.file)?;
        segment.bytes = location.offset;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT_BYTES_MAX: u64 = 1024 * 1024;
    const RECORD_BYTES_MAX: usize = 64 * 1024;

    fn open(dir: &Path) -> (Wal, Vec<Vec<u8>>) {
        let (wal, records) = Wal::open(dir, SEGMENT_BYTES_MAX, RECORD_BYTES_MAX).unwrap();
        (
            wal,
            records.into_iter().map(|record| record.payload).collect(),
        )
    }

    fn payload(number: u8) -> Vec<u8> {
        vec![number; 10 + number as usize]
    }

    fn only_segment_path(dir: &Path) -> PathBuf {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(paths.len(), 1, "{paths:?}");
        paths.remove(0)
    }

    #[test]
    fn records_survive_a_reopen_and_read_back_by_location() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, records) = open(dir.path());
        assert!(records.is_empty());
        let locations: Vec<RecordLocation> = (1..=5)
            .map(|n| wal.append(&payload(n), 1).unwrap())
            .collect();
        wal.sync().unwrap();
        for (n, location) in (1..=5).zip(&locations) {
            let file = wal.file(location.segment_id).unwrap();
            assert_eq!(read_record(&file, *location).unwrap(), payload(n));
        }
        drop(wal);
        let (_wal, records) = open(dir.path());
        assert_eq!(records, (1..=5).map(payload).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_tail_is_truncated_and_the_complete_records_survive() {
        for chopped_bytes in [1, 5, RECORD_HEADER_BYTES as usize, 14] {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _) = open(dir.path());
            for n in 1..=3 {
                wal.append(&payload(n), 1).unwrap();
            }
            wal.sync().unwrap();
            drop(wal);
            let path = only_segment_path(dir.path());
            let full_length = fs::metadata(&path).unwrap().len();
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(full_length - chopped_bytes as u64).unwrap();
            drop(file);

            let (mut wal, records) = open(dir.path());
            assert_eq!(
                records,
                vec![payload(1), payload(2)],
                "chopped {chopped_bytes} bytes"
            );
            let cut_length = fs::metadata(&path).unwrap().len();
            let third_length = RECORD_HEADER_BYTES + payload(3).len() as u64;
            assert_eq!(
                cut_length,
                full_length - third_length,
                "the torn record's bytes are gone"
            );

            // The log is usable again: a new record lands where the torn one was.
            wal.append(&payload(4), 1).unwrap();
            wal.sync().unwrap();
            drop(wal);
            let (_wal, records) = open(dir.path());
            assert_eq!(records, vec![payload(1), payload(2), payload(4)]);
        }
    }

    #[test]
    fn a_corrupt_last_record_is_dropped_and_zero_filled_tails_too() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        wal.append(&payload(1), 1).unwrap();
        let second = wal.append(&payload(2), 1).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let path = only_segment_path(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        bytes.extend_from_slice(&[0; 100]);
        fs::write(&path, &bytes).unwrap();
        let (_wal, records) = open(dir.path());
        assert_eq!(records, vec![payload(1)]);
        assert_eq!(fs::metadata(&path).unwrap().len(), second.offset);
    }

    #[test]
    fn a_full_segment_rolls_over_and_corruption_in_an_old_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 64, RECORD_BYTES_MAX).unwrap();
        let mut locations = Vec::new();
        for n in 1..=6u8 {
            locations.push(wal.append(&payload(n), u64::from(n)).unwrap());
        }
        wal.sync().unwrap();
        let segment_ids = wal.segment_ids();
        assert!(segment_ids.len() >= 2, "{segment_ids:?}");
        drop(wal);
        let (_wal, records) = Wal::open(dir.path(), 64, RECORD_BYTES_MAX).unwrap();
        let payloads: Vec<Vec<u8>> = records.into_iter().map(|record| record.payload).collect();
        assert_eq!(payloads, (1..=6).map(payload).collect::<Vec<_>>());

        let oldest = dir.path().join(segment_file_name(segment_ids[0]));
        let mut bytes = fs::read(&oldest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&oldest, &bytes).unwrap();
        let error = Wal::open(dir.path(), 64, RECORD_BYTES_MAX)
            .err()
            .expect("corruption must be reported");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn cut_and_remove_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 64, RECORD_BYTES_MAX).unwrap();
        let locations: Vec<RecordLocation> = (1..=6u8)
            .map(|n| wal.append(&payload(n), u64::from(n)).unwrap())
            .collect();
        wal.sync().unwrap();
        // Keep records 1..=3: remove the segments after the one holding record 4, then cut it.
        let fourth = locations[3];
        wal.remove_segments_from(fourth.segment_id + 1).unwrap();
        wal.cut_before(fourth).unwrap();
        drop(wal);
        let (mut wal, records) = Wal::open(dir.path(), 64, RECORD_BYTES_MAX).unwrap();
        let payloads: Vec<Vec<u8>> = records.into_iter().map(|record| record.payload).collect();
        assert_eq!(payloads, (1..=3).map(payload).collect::<Vec<_>>());
        // Drop the oldest segment.
        let first_segment = wal.segment_ids()[0];
        wal.remove_segments_before(first_segment + 1).unwrap();
        drop(wal);
        let (_wal, records) = Wal::open(dir.path(), 64, RECORD_BYTES_MAX).unwrap();
        assert!(records
            .iter()
            .all(|record| record.location.segment_id > first_segment));
        assert!(records.len() < 3);
    }

    #[test]
    fn an_oversized_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        let error = wal.append(&vec![0; RECORD_BYTES_MAX + 1], 1).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_newest_segment_with_a_torn_header_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        wal.append(&payload(1), 1).unwrap();
        wal.sync().unwrap();
        drop(wal);
        fs::write(dir.path().join(segment_file_name(2)), b"cbw").unwrap();
        let (mut wal, records) = open(dir.path());
        assert_eq!(records, vec![payload(1)]);
        assert_eq!(wal.segment_ids(), vec![1]);
        // The next segment can be created under that name again.
        wal.remove_all_segments().unwrap();
        wal.append(&payload(2), 2).unwrap();
        assert_eq!(wal.segment_ids(), vec![2]);
    }
}
