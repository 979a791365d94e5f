//! Serde helpers that keep one type readable in JSON and compact in canonical bytes.
//!
//! In human-readable formats (JSON) a `u128` is a decimal string, because JavaScript numbers
//! lose precision past 2^53, and fixed byte arrays are lowercase hex. In the canonical codec
//! (bincode, not human-readable) they are plain integers and raw bytes. This module must never
//! change the canonical form: the golden vectors in `spec/vectors/` pin it.

use serde::de::{Error as _, Visitor};
use serde::{Deserializer, Serializer};

/// `#[serde(with = "crate::wire::u128_text")]`: a `u128` as a decimal string in JSON.
pub mod u128_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(value)
        } else {
            serializer.serialize_u128(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        struct U128Visitor;
        impl Visitor<'_> for U128Visitor {
            type Value = u128;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an unsigned integer or a decimal string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u128, E> {
                Ok(v.into())
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<u128, E> {
                Ok(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u128, E> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom(format!("not a decimal integer: {v:?}")));
                }
                v.parse()
                    .map_err(|_| E::custom(format!("out of range for u128: {v:?}")))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(U128Visitor)
        } else {
            deserializer.deserialize_u128(U128Visitor)
        }
    }
}

/// `#[serde(with = "crate::wire::u64_text")]`: a `u64` as a decimal string in JSON. Used for
/// nanosecond timestamps, which pass 2^53 and would lose precision in JavaScript.
pub mod u64_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(value)
        } else {
            serializer.serialize_u64(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        if !deserializer.is_human_readable() {
            return <u64 as serde::Deserialize>::deserialize(deserializer);
        }
        let wide = super::u128_text::deserialize(deserializer)?;
        u64::try_from(wide).map_err(|_| D::Error::custom(format!("out of range for u64: {wide}")))
    }
}

/// `Option<u64>` as an optional decimal string in JSON.
pub mod option_u64_text {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Text(#[serde(with = "super::u64_text")] u64);

    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        value.map(Text).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        Ok(Option::<Text>::deserialize(deserializer)?.map(|text| text.0))
    }
}

/// `Option<u128>` as an optional decimal string in JSON.
pub mod option_u128_text {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Text(#[serde(with = "super::u128_text")] u128);

    pub fn serialize<S: Serializer>(
        value: &Option<u128>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.map(Text).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u128>, D::Error> {
        Ok(Option::<Text>::deserialize(deserializer)?.map(|text| text.0))
    }
}

/// `Vec<u128>` as a list of decimal strings in JSON.
pub mod vec_u128_text {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Text(#[serde(with = "super::u128_text")] u128);

    pub fn serialize<S: Serializer>(value: &[u128], serializer: S) -> Result<S::Ok, S::Error> {
        let texts: Vec<Text> = value.iter().copied().map(Text).collect();
        texts.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u128>, D::Error> {
        Ok(Vec::<Text>::deserialize(deserializer)?
            .into_iter()
            .map(|text| text.0)
            .collect())
    }
}

/// A fixed-size byte array: hex in JSON, raw bytes (no length prefix) in canonical bytes.
pub mod hex_array {
    use super::*;
    use serde::ser::SerializeTuple;

    pub fn serialize<S: Serializer, const N: usize>(
        value: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(value))
        } else {
            let mut tuple = serializer.serialize_tuple(N)?;
            for byte in value {
                tuple.serialize_element(byte)?;
            }
            tuple.end()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        if deserializer.is_human_readable() {
            let text: String = serde::Deserialize::deserialize(deserializer)?;
            let mut out = [0u8; N];
            hex::decode_to_slice(&text, &mut out).map_err(|error| {
                D::Error::custom(format!(
                    "expected {N} bytes as {} hex digits: {error}",
                    N * 2
                ))
            })?;
            Ok(out)
        } else {
            struct ArrayVisitor<const N: usize>;
            impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
                type Value = [u8; N];
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(f, "{N} bytes")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<[u8; N], A::Error> {
                    let mut out = [0u8; N];
                    for (index, slot) in out.iter_mut().enumerate() {
                        *slot = seq
                            .next_element()?
                            .ok_or_else(|| A::Error::invalid_length(index, &self))?;
                    }
                    Ok(out)
                }
            }
            deserializer.deserialize_tuple(N, ArrayVisitor::<N>)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        #[serde(with = "super::u128_text")]
        amount: u128,
        #[serde(with = "super::hex_array")]
        key: [u8; 4],
    }

    #[test]
    fn json_uses_strings_and_hex() {
        let sample = Sample {
            amount: u128::MAX,
            key: [0xde, 0xad, 0xbe, 0xef],
        };
        let json = serde_json::to_string(&sample).unwrap();
        assert_eq!(
            json,
            r#"{"amount":"340282366920938463463374607431768211455","key":"deadbeef"}"#
        );
        assert_eq!(serde_json::from_str::<Sample>(&json).unwrap(), sample);
    }

    #[test]
    fn json_accepts_plain_numbers_and_rejects_signs() {
        let parsed: Sample = serde_json::from_str(r#"{"amount":12,"key":"00000000"}"#).unwrap();
        assert_eq!(parsed.amount, 12);
        assert!(serde_json::from_str::<Sample>(r#"{"amount":"-1","key":"00000000"}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"amount":"1","key":"000000"}"#).is_err());
    }

    #[test]
    fn canonical_bytes_are_raw() {
        let sample = Sample {
            amount: 1,
            key: [1, 2, 3, 4],
        };
        let bytes = crate::codec::encode(&sample);
        assert_eq!(bytes.len(), 16 + 4);
        assert_eq!(crate::codec::decode::<Sample>(&bytes, 64).unwrap(), sample);
    }
}
