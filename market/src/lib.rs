//! The compute supermarket's core: products, order books and matching.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Time, when it matters, is an argument.
//! This crate is filled in by the "Compute supermarket" work; for now it holds the product
//! identifiers that the ledger already needs to name instruments.
//!
//! Start here: [`Instrument`].

use serde::{Deserialize, Serialize};

/// An order-book instrument: a good priced in a currency, e.g. `GPUH:H100/CNY`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Instrument {
    /// The asset being bought and sold, e.g. `GPUH:H100`.
    pub base: String,
    /// The asset prices are quoted in, e.g. `CNY`.
    pub quote: String,
}

impl std::fmt::Display for Instrument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.quote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instrument_displays_as_base_slash_quote() {
        let instrument = Instrument { base: "GPUH:H100".into(), quote: "CNY".into() };
        assert_eq!(instrument.to_string(), "GPUH:H100/CNY");
    }
}
