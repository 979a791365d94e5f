//! Key files: a party's ed25519 signing key on disk, as the CLI and the web console use it.
//!
//! # The key file format
//!
//! One JSON object, UTF-8, written with mode 0600 and never overwritten:
//!
//! ```json
//! {
//!   "party": "sme-alpha",
//!   "public_key": "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
//!   "secret_key": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
//! }
//! ```
//!
//! - `party`: the party id the key signs for (`[a-z0-9._-]`, 1 to 64 bytes).
//! - `public_key`: the ed25519 public key, 32 bytes as 64 lowercase hex characters.
//! - `secret_key`: the 32-byte ed25519 *seed* (the RFC 8032 private key, from which the
//!   public key is derived), 64 lowercase hex characters. It is not the 64-byte expanded
//!   "keypair" form some libraries use.
//!
//! Readers accept upper-case hex, ignore unknown fields, and refuse a file whose
//! `public_key` is not the one derived from `secret_key`. The web console imports this same
//! file.
//!
//! This module never talks to a node and never decides whether a key is registered: the
//! ledger does.

use anyhow::{bail, Context};
use ledger::{PartyId, PublicKey, SigningKey};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Key files larger than this are not key files: refuse them before reading them whole.
const KEY_FILE_BYTES_MAX: u64 = 64 * 1024;

/// The JSON form of a key file (see the module doc).
#[derive(Debug, Serialize, Deserialize)]
struct KeyFileJson {
    party: String,
    public_key: String,
    secret_key: String,
}

/// A key file's contents: the party and its signing key.
pub struct KeyFile {
    pub party: PartyId,
    pub key: SigningKey,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("KeyFile")
            .field("party", &self.party)
            .field("public_key", &self.key.public_key().to_string())
            .finish()
    }
}

/// A new signing key from the operating system's randomness.
pub fn generate_key() -> anyhow::Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).context("the operating system gave no randomness")?;
    Ok(SigningKey::from_seed(seed))
}

/// Generates a key for `party` and writes it to a new file at `path`; returns the public key.
pub fn create_key_file(path: &Path, party: &PartyId) -> anyhow::Result<PublicKey> {
    let key = generate_key()?;
    write_key_file(path, party, &key)?;
    Ok(key.public_key())
}

/// Writes `key` for `party` to a new file at `path` (mode 0600), creating missing parent
/// folders (mode 0700). Refuses to overwrite anything that exists.
pub fn write_key_file(path: &Path, party: &PartyId, key: &SigningKey) -> anyhow::Result<()> {
    if !party.is_valid() {
        bail!("invalid party id {:?}", party.as_str());
    }
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a key file (move it away or choose another path)",
            path.display()
        );
    }
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    let json = KeyFileJson {
        party: party.as_str().to_owned(),
        public_key: key.public_key().to_string(),
        secret_key: hex::encode(key.seed()),
    };
    // `serde_json` cannot fail on a struct of strings.
    let mut text = serde_json::to_string_pretty(&json).context("encoding the key file")?;
    text.push('\n');
    // `create_new` makes the existence check atomic: a file that appeared since is not touched.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists; refusing to overwrite a key file",
                    path.display()
                )
            } else {
                anyhow::Error::new(error).context(format!("cannot create {}", path.display()))
            }
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Reads and checks a key file.
pub fn read_key_file(path: &Path) -> anyhow::Result<KeyFile> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    if !metadata.is_file() {
        bail!("{} is not a file", path.display());
    }
    if metadata.len() > KEY_FILE_BYTES_MAX {
        bail!(
            "{} is {} bytes: too large to be a key file",
            path.display(),
            metadata.len()
        );
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "{} is readable by other users (mode {:o}); `chmod 600` it",
            path.display(),
            metadata.permissions().mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    parse_key_file(&text).with_context(|| format!("{} is not a valid key file", path.display()))
}

/// Parses and checks a key file's text.
pub fn parse_key_file(text: &str) -> anyhow::Result<KeyFile> {
    let json: KeyFileJson = serde_json::from_str(text)
        .context("expected {\"party\": ..., \"public_key\": hex, \"secret_key\": hex}")?;
    let party = crate::cli::parse_party(&json.party).map_err(anyhow::Error::msg)?;
    let seed = decode_32(&json.secret_key).context("secret_key")?;
    let public_key = decode_32(&json.public_key).context("public_key")?;
    let key = SigningKey::from_seed(seed);
    if key.public_key().0 != public_key {
        bail!("public_key does not match secret_key (the file is corrupt or was edited)");
    }
    Ok(KeyFile { party, key })
}

fn decode_32(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).context("not hex")?;
    let length = bytes.len();
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected 32 bytes (64 hex characters), got {length} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::Command;

    #[test]
    fn a_written_key_file_reads_back_and_signs_commands_that_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/sme-alpha.json");
        let party = PartyId::new("sme-alpha");
        let public_key = create_key_file(&path, &party).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["party"], "sme-alpha");
        assert_eq!(json["public_key"], public_key.to_string());
        assert_eq!(json["secret_key"].as_str().unwrap().len(), 64);

        let file = read_key_file(&path).unwrap();
        assert_eq!(file.party, party);
        assert_eq!(file.key.public_key(), public_key);
        let command = Command::RegisterAsset {
            asset: "GPUH:A100".parse().unwrap(),
        };
        let signed = file.key.sign(file.party.clone(), 42, 1_000, command);
        assert!(signed.signature_is_valid());
        assert_eq!(signed.body.key, public_key);
        assert!(!format!("{file:?}").contains(json["secret_key"].as_str().unwrap()));
    }

    #[test]
    fn two_new_keys_differ() {
        let a = generate_key().unwrap().public_key();
        let b = generate_key().unwrap().public_key();
        assert_ne!(a, b);
    }

    #[test]
    fn keys_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operator.json");
        let party = PartyId::new("operator");
        let first = create_key_file(&path, &party).unwrap();
        let before = std::fs::read(&path).unwrap();
        let error = create_key_file(&path, &party).unwrap_err();
        assert!(
            format!("{error:#}").contains("refusing to overwrite"),
            "{error:#}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(read_key_file(&path).unwrap().key.public_key(), first);
        // Any existing file counts, not only key files.
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "keep me").unwrap();
        assert!(create_key_file(&other, &party).is_err());
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep me");
    }

    #[test]
    fn corrupt_key_files_are_refused_with_a_reason() {
        let key = SigningKey::from_seed([9; 32]);
        let good = serde_json::json!({
            "party": "sme-beta",
            "public_key": key.public_key().to_string(),
            "secret_key": hex::encode(key.seed()),
        });
        assert!(parse_key_file(&good.to_string()).is_ok());
        let upper = good
            .to_string()
            .to_uppercase()
            .replace("SME-BETA", "sme-beta");
        let upper = upper
            .replace("\"PARTY\"", "\"party\"")
            .replace("\"PUBLIC_KEY\"", "\"public_key\"")
            .replace("\"SECRET_KEY\"", "\"secret_key\"");
        assert!(parse_key_file(&upper).is_ok(), "upper-case hex is accepted");

        let other = SigningKey::from_seed([10; 32]).public_key().to_string();
        let cases = [
            ("not json", "expected"),
            ("{}", "expected"),
            (
                &good
                    .to_string()
                    .replace(&key.public_key().to_string(), &other),
                "does not match",
            ),
            (
                &good.to_string().replace("sme-beta", "SME Beta"),
                "invalid party id",
            ),
            (
                &good.to_string().replace(&hex::encode(key.seed()), "abcd"),
                "32 bytes",
            ),
            (
                &good.to_string().replace(&hex::encode(key.seed()), "zz"),
                "not hex",
            ),
        ];
        for (text, expected) in cases {
            let error = format!("{:#}", parse_key_file(text).unwrap_err());
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
