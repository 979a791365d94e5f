//! The journal: every applied command and its outcome, chained by blake3 hashes.
//!
//! Entry `n` carries `hash_n = blake3(hash_{n-1} ‖ canonical bytes of entry n)`, with
//! `hash_0 = [0; 32]` before the first entry (index 1). Changing any byte of any entry changes
//! every later hash, so a signed checkpoint `(index, hash)` pins the whole history before it.
//! This module computes and checks hashes; it never stores entries (the node does).

use crate::codec::{self, CODEC_VERSION};
use crate::envelope::{verify_bytes, Signature, SignedCommand, SigningKey};
use crate::outcome::Outcome;
use crate::party::PublicKey;
use serde::{Deserialize, Serialize};

/// A 32-byte blake3 hash (hex in JSON).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hash(#[serde(with = "crate::wire::hex_array")] pub [u8; 32]);

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The latest entry's index and hash: `(0, zeros)` for an empty journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub index: u64,
    pub hash: Hash,
}

/// The hashed part of a journal entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBody {
    /// The codec version the entry was encoded with.
    pub version: u8,
    pub index: u64,
    /// The timestamp the leader stamped on the command (nanoseconds since the Unix epoch).
    #[serde(with = "crate::wire::u64_text")]
    pub timestamp_ns: u64,
    pub command: SignedCommand,
    pub outcome: Outcome,
}

/// One journal entry: its body and its chained hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub body: EntryBody,
    pub hash: Hash,
}

/// `blake3(previous ‖ canonical bytes of body)`.
pub fn chain_hash(previous: &Hash, body: &EntryBody) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&previous.0);
    hasher.update(&codec::encode(body));
    Hash(*hasher.finalize().as_bytes())
}

impl JournalEntry {
    /// Builds the entry that follows `previous`.
    pub fn new(
        previous: &Head,
        timestamp_ns: u64,
        command: SignedCommand,
        outcome: Outcome,
    ) -> JournalEntry {
        let body = EntryBody {
            version: CODEC_VERSION,
            index: previous.index + 1,
            timestamp_ns,
            command,
            outcome,
        };
        let hash = chain_hash(&previous.hash, &body);
        JournalEntry { body, hash }
    }

    pub fn head(&self) -> Head {
        Head {
            index: self.body.index,
            hash: self.hash,
        }
    }
}

/// Why a range of entries does not chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainError {
    /// The index of the first entry that does not check out.
    pub index: u64,
    pub why: &'static str,
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "journal entry {}: {}", self.index, self.why)
    }
}

impl std::error::Error for ChainError {}

/// Checks that `entries` follow `previous` with consecutive indices and correct hashes, and
/// returns the head they end at.
pub fn verify_chain(previous: Head, entries: &[JournalEntry]) -> Result<Head, ChainError> {
    let mut head = previous;
    for entry in entries {
        let index = head.index + 1;
        if entry.body.index != index {
            return Err(ChainError {
                index,
                why: "index is not consecutive",
            });
        }
        if entry.body.version != CODEC_VERSION {
            return Err(ChainError {
                index,
                why: "unknown codec version",
            });
        }
        if chain_hash(&head.hash, &entry.body) != entry.hash {
            return Err(ChainError {
                index,
                why: "hash does not match the chain",
            });
        }
        head = entry.head();
    }
    Ok(head)
}

/// Prefix of a signed checkpoint.
pub const CHECKPOINT_DOMAIN: &[u8] = b"cbank.checkpoint.v1\0";

/// A node's signature over a journal head, so an auditor can verify an exported range offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub head: Head,
    /// The signing node's public key.
    pub node_key: PublicKey,
    pub signature: Signature,
}

fn checkpoint_bytes(head: &Head) -> Vec<u8> {
    let mut bytes = CHECKPOINT_DOMAIN.to_vec();
    codec::encode_into(head, &mut bytes);
    bytes
}

impl Checkpoint {
    pub fn sign(head: Head, node_key: &SigningKey) -> Checkpoint {
        let signature = node_key.sign_bytes(&checkpoint_bytes(&head));
        Checkpoint {
            head,
            node_key: node_key.public_key(),
            signature,
        }
    }

    pub fn signature_is_valid(&self) -> bool {
        verify_bytes(
            &self.node_key,
            &checkpoint_bytes(&self.head),
            &self.signature,
        )
    }
}
