//! Small durable files: directory fsync, write-to-temp-then-rename, and checksummed blobs.
//!
//! `write_atomically` leaves either the old or the new content under the final name after a
//! crash, never a mix: the bytes are written to `<name>.tmp`, synced, renamed over the final
//! name, and the directory is synced so the rename itself survives. These helpers must never
//! report success before every sync they promise has returned; they hold no Raft or ledger
//! logic.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::Path;

/// Suffix of a file being written; such files are leftovers of a crash and are removed on open.
pub(crate) const TEMPORARY_SUFFIX: &str = ".tmp";

/// Bytes of the checksum that `seal` puts in front of a blob (a full blake3 hash).
const SEAL_CHECKSUM_BYTES: usize = 32;

/// Makes the creation, removal or rename of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, syncing each new directory's parent so the creation
/// survives a crash.
pub(crate) fn create_dir_durably(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(path) = cursor {
        if path.as_os_str().is_empty() || path.exists() {
            break;
        }
        missing.push(path.to_path_buf());
        cursor = path.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes`, durably and atomically (see the module doc).
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temporary = dir.join(format!("{name}{TEMPORARY_SUFFIX}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    drop(file);
    fs::rename(&temporary, dir.join(name))?;
    sync_dir(dir)
}

/// Removes `<something>.tmp` files left in `dir` by a crash during `write_atomically`.
pub(crate) fn remove_temporary_files(dir: &Path) -> io::Result<()> {
    let mut removed = false;
    for dir_entry in fs::read_dir(dir)? {
        let path = dir_entry?.path();
        let is_temporary = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.ends_with(TEMPORARY_SUFFIX));
        if is_temporary && path.is_file() {
            fs::remove_file(&path)?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// `magic ‖ blake3(body) ‖ body`: a blob whose corruption `unseal` detects.
pub(crate) fn seal(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(magic.len() + SEAL_CHECKSUM_BYTES + body.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(blake3::hash(body).as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Writes a `seal`ed blob to a file as its body is produced, for bodies too large to hold in
/// memory: the magic and a placeholder first, then the body (hashed on the way), then the
/// checksum over the placeholder (`finish`). Until `finish` returns, the file does not unseal.
pub(crate) struct SealWriter {
    file: File,
    hasher: blake3::Hasher,
    buffer: Vec<u8>,
    checksum_at: u64,
}

/// Bytes a `SealWriter` gathers before it hashes and writes them.
const SEAL_WRITER_BUFFER_BYTES: usize = 256 * 1024;

impl SealWriter {
    /// Starts the blob at the file's current position.
    pub(crate) fn new(magic: &[u8; 8], mut file: File) -> io::Result<SealWriter> {
        let start = file.stream_position()?;
        file.write_all(magic)?;
        file.write_all(&[0; SEAL_CHECKSUM_BYTES])?;
        Ok(SealWriter {
            file,
            hasher: blake3::Hasher::new(),
            buffer: Vec::with_capacity(SEAL_WRITER_BUFFER_BYTES),
            checksum_at: start + magic.len() as u64,
        })
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        self.hasher.update(&self.buffer);
        self.file.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the rest of the body and the checksum, and gives the file back for the caller to
    /// sync.
    pub(crate) fn finish(mut self) -> io::Result<File> {
        self.write_buffer()?;
        let end = self.file.stream_position()?;
        self.file.seek(io::SeekFrom::Start(self.checksum_at))?;
        self.file.write_all(self.hasher.finalize().as_bytes())?;
        self.file.seek(io::SeekFrom::Start(end))?;
        Ok(self.file)
    }
}

impl Write for SealWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + bytes.len() > SEAL_WRITER_BUFFER_BYTES {
            self.write_buffer()?;
        }
        if bytes.len() >= SEAL_WRITER_BUFFER_BYTES {
            self.hasher.update(bytes);
            self.file.write_all(bytes)?;
        } else {
            self.buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    /// Does nothing: the body reaches the file by `finish`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The body of a `seal`ed blob, or why it is not one.
pub(crate) fn unseal<'a>(magic: &[u8; 8], bytes: &'a [u8]) -> Result<&'a [u8], String> {
    let header_bytes = magic.len() + SEAL_CHECKSUM_BYTES;
    if bytes.len() < header_bytes {
        return Err(format!(
            "{} bytes is shorter than the {header_bytes}-byte header",
            bytes.len()
        ));
    }
    let (header, body) = bytes.split_at(header_bytes);
    if header[..magic.len()] != magic[..] {
        return Err(
            "wrong magic bytes (not this kind of file, or another format version)".to_string(),
        );
    }
    if header[magic.len()..] != blake3::hash(body).as_bytes()[..] {
        return Err("checksum mismatch".to_string());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"testblob";

    #[test]
    fn a_sealed_blob_unseals_and_any_flipped_byte_is_caught() {
        let sealed = seal(&MAGIC, b"hello");
        assert_eq!(unseal(&MAGIC, &sealed), Ok(&b"hello"[..]));
        for position in 0..sealed.len() {
            let mut broken = sealed.clone();
            broken[position] ^= 1;
            assert!(
                unseal(&MAGIC, &broken).is_err(),
                "flip at {position} not detected"
            );
        }
        assert!(unseal(&MAGIC, &sealed[..sealed.len() - 1]).is_err());
        assert!(unseal(&MAGIC, &sealed[..10]).is_err());
    }

    #[test]
    fn a_streamed_seal_equals_seal() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..1_000_000u32).map(|n| (n % 251) as u8).collect();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("blob"))
            .unwrap();
        let mut writer = SealWriter::new(&MAGIC, file).unwrap();
        // Pieces of every size: small ones gathered, large ones written through.
        for piece in [
            &body[..3],
            &body[3..300_003],
            &body[300_003..300_010],
            &body[300_010..],
        ] {
            writer.write_all(piece).unwrap();
        }
        drop(writer.finish().unwrap());
        let written = fs::read(dir.path().join("blob")).unwrap();
        assert_eq!(written, seal(&MAGIC, &body));
    }

    #[test]
    fn write_atomically_replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "meta", b"one").unwrap();
        write_atomically(dir.path(), "meta", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("meta")).unwrap(), b"two");
        assert!(!dir.path().join("meta.tmp").exists());
    }

    #[test]
    fn leftover_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("meta.tmp"), b"torn").unwrap();
        fs::write(dir.path().join("meta"), b"kept").unwrap();
        remove_temporary_files(dir.path()).unwrap();
        assert!(!dir.path().join("meta.tmp").exists());
        assert!(dir.path().join("meta").exists());
    }

    #[test]
    fn nested_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        create_dir_durably(&nested).unwrap();
        assert!(nested.is_dir());
        create_dir_durably(&nested).unwrap();
    }
}
