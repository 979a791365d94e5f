//! Parties (who acts), their roles, and their ed25519 public keys.
//!
//! A party's keys can be rotated: a key is added, later revoked, and both moments are kept so
//! that an old signature stays valid for what it signed (replaying the journal reproduces the
//! key set of that moment). This module never verifies signatures; `envelope.rs` does.

use crate::limits::PARTY_ID_BYTES_MAX;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A party's stable identifier, chosen at registration: 1 to 64 bytes of `[a-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PartyId(pub String);

impl<'de> Deserialize<'de> for PartyId {
    /// Decoding (JSON or canonical bytes) rejects ids that `is_valid` rejects.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PartyId, D::Error> {
        let id = PartyId(String::deserialize(deserializer)?);
        if !id.is_valid() {
            return Err(serde::de::Error::custom(format!(
                "invalid party id {:?}: 1 to {PARTY_ID_BYTES_MAX} bytes of [a-z0-9._-]",
                id.0
            )));
        }
        Ok(id)
    }
}

impl PartyId {
    pub fn new(id: impl Into<String>) -> PartyId {
        PartyId(id.into())
    }

    /// Whether the id has the allowed length and characters.
    pub fn is_valid(&self) -> bool {
        let bytes = self.0.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= PARTY_ID_BYTES_MAX
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PartyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a party is; its role decides which commands it may sign (see `rights.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Institution,
    Sme,
    Government,
    Provider,
    Operator,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Institution,
        Role::Sme,
        Role::Government,
        Role::Provider,
        Role::Operator,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Institution => "institution",
            Role::Sme => "sme",
            Role::Government => "government",
            Role::Provider => "provider",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }
}

/// An ed25519 public key (32 bytes; hex in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(#[serde(with = "crate::wire::hex_array")] pub [u8; 32]);

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// When a key was added and, if it was, revoked (command timestamps, nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    #[serde(with = "crate::wire::u64_text")]
    pub added_at_ns: u64,
    #[serde(with = "crate::wire::option_u64_text")]
    pub revoked_at_ns: Option<u64>,
}

/// A registered party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub id: PartyId,
    pub role: Role,
    /// Every key the party has had, active or revoked.
    pub keys: BTreeMap<PublicKey, KeyRecord>,
    #[serde(with = "crate::wire::u64_text")]
    pub registered_at_ns: u64,
}

impl Party {
    /// Whether `key` is one of this party's keys and has not been revoked.
    pub fn key_is_active(&self, key: &PublicKey) -> bool {
        self.keys
            .get(key)
            .is_some_and(|record| record.revoked_at_ns.is_none())
    }

    pub fn active_key_count(&self) -> usize {
        self.keys
            .values()
            .filter(|record| record.revoked_at_ns.is_none())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_id_validation() {
        assert!(PartyId::new("univ-tsinghua.cs_lab1").is_valid());
        assert!(!PartyId::new("").is_valid());
        assert!(!PartyId::new("Upper").is_valid());
        assert!(!PartyId::new("space here").is_valid());
        assert!(!PartyId::new("x".repeat(PARTY_ID_BYTES_MAX + 1)).is_valid());
        assert!(PartyId::new("x".repeat(PARTY_ID_BYTES_MAX)).is_valid());
    }
}
