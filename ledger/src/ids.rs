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

    #[test]
    fn derived_transfer_ids_are_the_check_values_of_the_bank_spec() {
        // spec/bank.md §1.1 and §9: offer-transfer(offer, sequence) and
        // withdrawal-transfer(withdrawal, byte).
        let offer = |id: u128, sequence: u32| {
            derived_id(
                "cbank.offer-transfer.v1",
                &[&id.to_le_bytes(), &sequence.to_le_bytes()],
            )
        };
        let withdrawal = |id: u128, byte: u8| {
            derived_id(
                "cbank.withdrawal-transfer.v1",
                &[&id.to_le_bytes(), &[byte]],
            )
        };
        assert_eq!(
            offer(500, 0),
            241_945_553_054_130_536_024_084_394_711_148_046_157
        );
        assert_eq!(
            offer(500, 6),
            216_298_035_758_159_207_519_509_139_777_594_204_466
        );
        assert_eq!(
            withdrawal(700, 0),
            214_326_342_688_069_224_085_907_636_787_662_263_914
        );
        assert_eq!(
            withdrawal(700, 2),
            211_259_825_584_018_844_642_239_016_430_004_146_732
        );
    }
}
