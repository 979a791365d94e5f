//! The compute supermarket's core: products, order books and matching.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Time, when it matters, is an argument.
//! It holds the allocation engine (`allocation.rs`: which queued GPU requests get which offered
//! capacity), the order books (`book.rs`: continuous matching in strict price-time priority with
//! self-trade prevention and budgets, and uniform-price call auctions) and the instrument names.
//!
//! Start here: [`allocation::allocate`], then [`book::Book::plan`].

pub mod allocation;
pub mod book;

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
        let instrument = Instrument {
            base: "GPUH:H100".into(),
            quote: "CNY".into(),
        };
        assert_eq!(instrument.to_string(), "GPUH:H100/CNY");
    }
}
