//! The one canonical encoding: bincode `=2.0.1` with a fixed configuration, behind a version.
//!
//! Everything that is hashed or signed (command bodies, journal entries, the state) is encoded
//! here and nowhere else, so the encoding can be swapped (bincode 2 is final and unmaintained,
//! RUSTSEC-2025-0141) by bumping [`CODEC_VERSION`] in one place. This module must never encode
//! JSON or protobuf: those are transport formats, not canonical bytes.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version of the canonical encoding. Every journal entry records it, and every signing and
/// hash domain names it (`cbank.command.v1`, `cbank.checkpoint.v1`, `cbank.state.v1`), so bytes
/// made under one version can never be mistaken for bytes of another: a new version comes with
/// new domain strings.
pub const CODEC_VERSION: u8 = 1;

/// Little-endian, fixed-width integers. Decoding adds a byte budget (`decode_claiming_at_most`)
/// that never changes what decodes, only what a hostile length prefix may allocate.
/// Fixed-width integers make every value's bytes independent of its magnitude, which keeps the
/// golden vectors easy to read by hand.
fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are not a valid encoding of the expected type.
    Malformed(String),
    /// A valid value was decoded but bytes were left over: not canonical.
    TrailingBytes { used: usize, total: usize },
    /// The input is larger than the caller allows.
    TooLarge { size: usize, size_max: usize },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(why) => write!(f, "malformed canonical bytes: {why}"),
            DecodeError::TrailingBytes { used, total } => {
                write!(f, "trailing bytes: decoded {used} of {total}")
            }
            DecodeError::TooLarge { size, size_max } => {
                write!(f, "input of {size} bytes exceeds the limit of {size_max}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a value into its canonical bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for our types: they contain no maps with non-string keys
    // that bincode rejects, no `collect_str`, and writing to memory has no I/O errors.
    bincode::serde::encode_to_vec(value, config()).expect("canonical encoding of a ledger type")
}

/// Writes a value's canonical bytes to `writer` as they are produced, so that a large value
/// (a whole ledger) is never held encoded in memory. Fails only if `writer` fails.
pub fn encode_to_writer<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    writer: &mut W,
) -> std::io::Result<()> {
    match bincode::serde::encode_into_std_write(value, writer, config()) {
        Ok(_) => Ok(()),
        Err(bincode::error::EncodeError::Io { inner, .. }) => Err(inner),
        Err(other) => Err(std::io::Error::other(other.to_string())),
    }
}

/// Appends a value's canonical bytes to `buffer` (used to hash without an extra allocation).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buffer: &mut Vec<u8>) {
    encode_to_writer(value, buffer).expect("writing to memory has no I/O errors");
}

/// Decodes with bincode's byte budget set to `CLAIM_BYTES_MAX`, at least the input's length.
///
/// With fixed-width integers every byte bincode's serde decoder claims is a byte it reads, so a
/// valid encoding never claims more than its own length; but a string's or byte vector's
/// length prefix is trusted as an allocation size before the bytes are read. Without a budget,
/// a few bytes claiming a string of 2^62 bytes made the process abort on a failed allocation
/// (found by the `command_bytes` and `raft_payload` fuzz targets: any Raft peer, or an audit
/// export, could crash a node or `cbank audit verify`). With it, such a length is refused
/// before anything is allocated, and no allocation exceeds the budget, at most 16 times the
/// input's length (or 4 KiB).
fn decode_claiming_at_most<T: DeserializeOwned, const CLAIM_BYTES_MAX: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let config = bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<CLAIM_BYTES_MAX>();
    bincode::serde::decode_from_slice(bytes, config)
}

/// Decodes canonical bytes, rejecting trailing bytes and inputs above `size_max`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], size_max: usize) -> Result<T, DecodeError> {
    if bytes.len() > size_max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            size_max,
        });
    }
    let (value, used) = match bytes.len() {
        n if n <= 1 << 12 => decode_claiming_at_most::<T, { 1 << 12 }>(bytes),
        n if n <= 1 << 16 => decode_claiming_at_most::<T, { 1 << 16 }>(bytes),
        n if n <= 1 << 20 => decode_claiming_at_most::<T, { 1 << 20 }>(bytes),
        n if n <= 1 << 24 => decode_claiming_at_most::<T, { 1 << 24 }>(bytes),
        n if n <= 1 << 28 => decode_claiming_at_most::<T, { 1 << 28 }>(bytes),
        n if n <= 1 << 32 => decode_claiming_at_most::<T, { 1 << 32 }>(bytes),
        _ => decode_claiming_at_most::<T, { 1 << 36 }>(bytes),
    }
    .map_err(|error| DecodeError::Malformed(error.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            used,
            total: bytes.len(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode(&1u64), vec![1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(&1u128).len(), 16);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&7u32);
        bytes.push(0);
        assert_eq!(
            decode::<u32>(&bytes, 64),
            Err(DecodeError::TrailingBytes { used: 4, total: 5 })
        );
    }

    #[test]
    fn oversized_input_is_rejected_before_decoding() {
        let bytes = encode(&7u64);
        assert_eq!(
            decode::<u64>(&bytes, 4),
            Err(DecodeError::TooLarge {
                size: 8,
                size_max: 4
            })
        );
    }

    #[test]
    fn a_huge_length_prefix_is_malformed_not_an_allocation() {
        // A string (here a `PartyId`'s) claiming 0x5800_0000_0000_0000 bytes: the process
        // used to abort trying to allocate it.
        let mut bytes = vec![0u8; 8];
        bytes[7] = 0x58;
        assert!(matches!(
            decode::<String>(&bytes, 64),
            Err(DecodeError::Malformed(_))
        ));
        let mut bytes = encode(&(7u64, vec![1u8; 3]));
        bytes[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(
            decode::<(u64, Vec<u8>)>(&bytes, 64),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn inputs_at_every_budget_boundary_still_decode() {
        for size in [
            0usize,
            1 << 12,
            (1 << 12) + 1,
            1 << 16,
            (1 << 16) + 1,
            1 << 20,
        ] {
            let text = "x".repeat(size);
            let bytes = encode(&text);
            assert_eq!(decode::<String>(&bytes, usize::MAX), Ok(text), "{size}");
        }
    }

    #[test]
    fn invalid_bool_is_malformed() {
        assert!(matches!(
            decode::<bool>(&[2], 1),
            Err(DecodeError::Malformed(_))
        ));
    }
}
