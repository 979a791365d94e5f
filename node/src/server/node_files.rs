//! The files a node keeps in its data directory beside its storage: `node.key` (the ed25519
//! seed that signs checkpoints), `admin.token` (the bearer token of the admin API) and `pid`.
//!
//! The key and the token are created once, with mode 0600, from the operating system's random
//! source, and read back unchanged on every later start; both hold lowercase hex with no
//! trailing newline (a reader may trim whitespace). This file never logs or returns a secret
//! anywhere but to its caller, and never replaces an existing key or token: losing the key
//! would orphan every checkpoint it signed.

use anyhow::{bail, Context};
use ledger::SigningKey;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The node's checkpoint signing key: 32 random bytes, as 64 hex digits.
pub const NODE_KEY_FILE: &str = "node.key";

/// The admin API's bearer token: 32 random bytes, as 64 hex digits.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The process id of the running node, in decimal; removed at a clean shutdown.
pub const PID_FILE: &str = "pid";

/// Random bytes in the key seed and in the admin token.
const SECRET_BYTES: usize = 32;

/// Reads the secret in `name`, or creates it with fresh random bytes if the file does not exist.
fn load_or_create_secret(data_dir: &Path, name: &str) -> anyhow::Result<[u8; SECRET_BYTES]> {
    let path = data_dir.join(name);
    // Drawn before the file is created, so a failure here never leaves an empty file behind.
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut secret)
        .map_err(|error| anyhow::anyhow!("no random bytes for {}: {error}", path.display()))?;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(hex::encode(secret).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            // The new name must survive a crash too, or a restart would mint another secret.
            File::open(data_dir)
                .and_then(|dir| dir.sync_all())
                .with_context(|| format!("syncing {}", data_dir.display()))?;
            tracing::info!(file = %path.display(), "created");
            Ok(secret)
        }
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            let metadata =
                fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            if metadata.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{:o}", metadata.permissions().mode() & 0o777),
                    "secret file is readable by others; it should be mode 0600"
                );
            }
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let mut stored = [0u8; SECRET_BYTES];
            if hex::decode_to_slice(text.trim(), &mut stored).is_err() {
                bail!(
                    "{} does not hold {} hex digits; refusing to replace it",
                    path.display(),
                    SECRET_BYTES * 2
                );
            }
            Ok(stored)
        }
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}

/// The node's checkpoint signing key, created on first start.
pub(crate) fn load_or_create_node_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    Ok(SigningKey::from_seed(load_or_create_secret(
        data_dir,
        NODE_KEY_FILE,
    )?))
}

/// The admin API's bearer token, created on first start.
pub(crate) fn load_or_create_admin_token(data_dir: &Path) -> anyhow::Result<String> {
    Ok(hex::encode(load_or_create_secret(
        data_dir,
        ADMIN_TOKEN_FILE,
    )?))
}

/// Writes this process's id to the pid file (replacing a stale one).
pub(crate) fn write_pid(data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join(PID_FILE);
    fs::write(&path, std::process::id().to_string())
        .with_context(|| format!("writing {}", path.display()))
}

/// Removes the pid file if it still names this process.
pub(crate) fn remove_pid(data_dir: &Path) {
    let path = data_dir.join(PID_FILE);
    let ours =
        fs::read_to_string(&path).is_ok_and(|text| text.trim() == std::process::id().to_string());
    if ours {
        if let Err(error) = fs::remove_file(&path) {
            tracing::warn!(file = %path.display(), %error, "could not remove the pid file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_created_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = load_or_create_node_key(dir.path()).expect("create the key");
        let token = load_or_create_admin_token(dir.path()).expect("create the token");
        assert_eq!(token.len(), 64);
        for name in [NODE_KEY_FILE, ADMIN_TOKEN_FILE] {
            let mode = fs::metadata(dir.path().join(name))
                .expect("the file exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let again = load_or_create_node_key(dir.path()).expect("read the key");
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(
            load_or_create_admin_token(dir.path()).expect("read the token"),
            token
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(ADMIN_TOKEN_FILE)).expect("read the file"),
            token
        );
    }

    #[test]
    fn a_damaged_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::write(dir.path().join(NODE_KEY_FILE), "not hex").expect("write");
        assert!(load_or_create_node_key(dir.path()).is_err());
        assert_eq!(
            fs::read_to_string(dir.path().join(NODE_KEY_FILE)).expect("read"),
            "not hex"
        );
    }

    #[test]
    fn the_pid_file_names_this_process_until_removed() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        write_pid(dir.path()).expect("write the pid");
        let text = fs::read_to_string(dir.path().join(PID_FILE)).expect("read");
        assert_eq!(text, std::process::id().to_string());
        remove_pid(dir.path());
        assert!(!dir.path().join(PID_FILE).exists());
    }
}
