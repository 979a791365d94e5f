//! Signed command envelopes: who signs, with which key, against replay, until when.
//!
//! The signature covers `SIGNING_DOMAIN ‖ canonical bytes of the CommandBody`. Only bytes that
//! `codec.rs` makes are signed, never JSON or protobuf. This module checks signatures and
//! builds envelopes; it never decides rights (`rights.rs`) or applies anything.

use crate::codec;
use crate::command::Command;
use crate::party::{PartyId, PublicKey};
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};

/// Prefix of every signed message: names the purpose and the codec version, so a signature
/// over a command can never be replayed as a signature over anything else.
pub const SIGNING_DOMAIN: &[u8] = b"cbank.command.v1\0";

/// What the signer signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// The party the command acts for.
    pub signer: PartyId,
    /// The key that made the signature; must be an active key of `signer`.
    pub key: PublicKey,
    /// Chosen by the client, never reused by the same signer while the envelope is live.
    #[serde(with = "crate::wire::u128_text")]
    pub nonce: u128,
    /// The envelope is rejected by a command timestamp at or after this (nanoseconds since the
    /// Unix epoch); at most `ENVELOPE_LIFETIME_NS_MAX` ahead.
    #[serde(with = "crate::wire::u64_text")]
    pub expires_at_ns: u64,
    pub command: Command,
}

/// An ed25519 signature (64 bytes; hex in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "crate::wire::hex_array")] pub [u8; 64]);

/// A command body with its signature: what clients submit and the journal keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub body: CommandBody,
    pub signature: Signature,
}

/// A private key held by a client (CLI, agent, test). Never part of the ledger's state.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A key from its 32-byte seed. The caller brings the randomness: the ledger has none.
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs arbitrary bytes (checkpoints use their own domain; see `journal.rs`).
    pub fn sign_bytes(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }

    /// Wraps `command` in an envelope signed by this key on behalf of `signer`.
    pub fn sign(
        &self,
        signer: PartyId,
        nonce: u128,
        expires_at_ns: u64,
        command: Command,
    ) -> SignedCommand {
        let body = CommandBody {
            signer,
            key: self.public_key(),
            nonce,
            expires_at_ns,
            command,
        };
        let signature = self.sign_bytes(&body.signing_bytes());
        SignedCommand { body, signature }
    }
}

impl CommandBody {
    /// `SIGNING_DOMAIN ‖ canonical bytes`: exactly what is signed.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = SIGNING_DOMAIN.to_vec();
        codec::encode_into(self, &mut bytes);
        bytes
    }
}

/// Verifies `signature` over `message` with `key`. `false` for an invalid key or signature.
pub fn verify_bytes(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    let Ok(verifying_key) = ed25519_dalek::VerifyingKey::from_bytes(&key.0) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    verifying_key.verify_strict(message, &signature).is_ok()
}

/// Whether 32 bytes are a usable ed25519 public key (a valid, non-weak point).
pub fn key_is_valid(key: &PublicKey) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_ok_and(|k| !k.is_weak())
}

impl SignedCommand {
    /// Whether the signature verifies over the body with the body's own key. Whether that key
    /// belongs to the signer is the ledger's question, not this one's.
    pub fn signature_is_valid(&self) -> bool {
        verify_bytes(&self.body.key, &self.body.signing_bytes(), &self.signature)
    }

    /// Canonical bytes of the whole envelope (what the journal hashes and the node stores).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes an envelope from canonical bytes, bounded by `COMMAND_BYTES_MAX`.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedCommand, codec::DecodeError> {
        codec::decode(bytes, crate::limits::COMMAND_BYTES_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SignedCommand {
        let key = SigningKey::from_seed([7; 32]);
        key.sign(
            PartyId::new("op"),
            1,
            10,
            Command::RegisterAsset {
                asset: "GPUH:H100".parse().unwrap(),
            },
        )
    }

    #[test]
    fn a_signed_command_verifies_and_round_trips() {
        let signed = sample();
        assert!(signed.signature_is_valid());
        let decoded = SignedCommand::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(decoded, signed);
        let json = serde_json::to_string(&signed).unwrap();
        assert_eq!(
            serde_json::from_str::<SignedCommand>(&json).unwrap(),
            signed
        );
    }

    #[test]
    fn any_change_to_the_body_breaks_the_signature() {
        let mut signed = sample();
        signed.body.nonce = 2;
        assert!(!signed.signature_is_valid());
        let mut signed = sample();
        signed.body.expires_at_ns += 1;
        assert!(!signed.signature_is_valid());
    }

    #[test]
    fn a_signature_by_another_key_fails() {
        let mut signed = sample();
        signed.body.key = SigningKey::from_seed([8; 32]).public_key();
        assert!(!signed.signature_is_valid());
    }
}
