//! Assets: what balances are counted in.
//!
//! `CNY` (minor unit: fen), `GPUH:<class>` GPU time of one class (minor unit: GPU-second) and
//! `TOK:<family>` tokens of one model family (minor unit: token). An asset is written as its
//! code everywhere, in JSON and in canonical bytes alike. New assets are added by the operator.

use crate::limits::ASSET_NAME_BYTES_MAX;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An asset code.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Asset {
    /// Renminbi, counted in fen.
    Cny,
    /// GPU time of one GPU class (e.g. `H100`), counted in GPU-seconds.
    Gpuh(String),
    /// Tokens of one model family, counted in tokens.
    Tok(String),
}

/// Why a string is not an asset code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetCodeError(pub String);

impl std::fmt::Display for AssetCodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid asset code {:?}: expected CNY, GPUH:<class> or TOK:<family> with a name of \
             1 to {ASSET_NAME_BYTES_MAX} characters of [A-Za-z0-9._-]",
            self.0
        )
    }
}

impl std::error::Error for AssetCodeError {}

fn name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= ASSET_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl std::str::FromStr for Asset {
    type Err = AssetCodeError;

    fn from_str(code: &str) -> Result<Asset, AssetCodeError> {
        let asset = if code == "CNY" {
            Asset::Cny
        } else if let Some(class) = code.strip_prefix("GPUH:") {
            Asset::Gpuh(class.to_owned())
        } else if let Some(family) = code.strip_prefix("TOK:") {
            Asset::Tok(family.to_owned())
        } else {
            return Err(AssetCodeError(code.to_owned()));
        };
        match &asset {
            Asset::Gpuh(name) | Asset::Tok(name) if !name_is_valid(name) => {
                Err(AssetCodeError(code.to_owned()))
            }
            _ => Ok(asset),
        }
    }
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Asset::Cny => f.write_str("CNY"),
            Asset::Gpuh(class) => write!(f, "GPUH:{class}"),
            Asset::Tok(family) => write!(f, "TOK:{family}"),
        }
    }
}

impl Asset {
    /// The name of the asset's minor unit, for display.
    pub fn minor_unit(&self) -> &'static str {
        match self {
            Asset::Cny => "fen",
            Asset::Gpuh(_) => "GPU-second",
            Asset::Tok(_) => "token",
        }
    }
}

impl Serialize for Asset {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Asset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Asset, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in ["CNY", "GPUH:H100", "TOK:qwen-2.5", "GPUH:A800_80G"] {
            let asset: Asset = code.parse().unwrap();
            assert_eq!(asset.to_string(), code);
        }
    }

    #[test]
    fn bad_codes_are_rejected() {
        for code in ["cny", "GPUH:", "TOK:", "GPUH:a b", "USD", "GPUH:H100/CNY"] {
            assert!(code.parse::<Asset>().is_err(), "{code} should be rejected");
        }
        let long = format!("TOK:{}", "x".repeat(ASSET_NAME_BYTES_MAX + 1));
        assert!(long.parse::<Asset>().is_err());
    }

    #[test]
    fn canonical_bytes_reject_bad_codes() {
        let bytes = crate::codec::encode("GPUH:");
        assert!(crate::codec::decode::<Asset>(&bytes, 64).is_err());
    }
}
