//! Ids the ledger makes itself: system accounts and derived transfers.
//!
//! A party chooses its own ids with the top bit clear; the ledger's ids have the top bit set, so
//! nobody can take an id the ledger will need (which would block, say, the crediting of an
//! offer). Derived ids are blake3 hashes of what they stand for, so anyone can recompute them.
//! This module only computes ids; it never stores anything.

use crate::account::AccountKind;
use crate::asset::Asset;

/// The top bit: set in every id the ledger makes, clear in every id a party chooses.
pub const LEDGER_ID_BIT: u128 = 1 << 127;

/// A ledger id from a domain and parts: `blake3(domain ‖ 0 ‖ len ‖ part …)`, top bit set.
pub fn derived_id(domain: &str, parts: &[&[u8]]) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(domain.as_bytes());
    hasher.update(&[0]);
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    let id = u128::from_le_bytes(bytes) | LEDGER_ID_BIT;
    // u128::MAX is never a valid id; the chance is 2^-127, but the rule is absolute.
    if id == u128::MAX {
        id - 1
    } else {
        id
    }
}

/// The operator's system account of `kind` for `asset` (opened when the asset is registered).
pub fn system_account_id(asset: &Asset, kind: AccountKind) -> u128 {
    let kind_name = kind_name(kind);
    derived_id(
        "cbank.system-account.v1",
        &[asset.to_string().as_bytes(), kind_name.as_bytes()],
    )
}

fn kind_name(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::Main => "main",
        AccountKind::Mint => "mint",
        AccountKind::Pool => "pool",
        AccountKind::Fees => "fees",
        AccountKind::Rounding => "rounding",
        AccountKind::Escrow => "escrow",
    }
}

/// The system accounts every asset gets, and whether each is guarded against overdraft. The
/// mint issues the asset (its debits are what entered the ledger); the rounding account takes
/// residue both ways; the others only hold what was moved into them.
pub const SYSTEM_ACCOUNTS: [(AccountKind, bool); 5] = [
    (AccountKind::Mint, false),
    (AccountKind::Pool, true),
    (AccountKind::Fees, true),
    (AccountKind::Rounding, false),
    (AccountKind::Escrow, true),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_in_the_ledger_half_and_distinct() {
        let cny: Asset = "CNY".parse().unwrap();
        let mint = system_account_id(&cny, AccountKind::Mint);
        let fees = system_account_id(&cny, AccountKind::Fees);
        assert_ne!(mint, fees);
        assert!(mint & LEDGER_ID_BIT != 0 && fees & LEDGER_ID_BIT != 0);
        assert_ne!(derived_id("a", &[b"bc"]), derived_id("a", &[b"b", b"c"]));
    }
}
