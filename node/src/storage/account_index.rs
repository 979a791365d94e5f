//! The account → transfers index behind statements and `GET /v1/accounts/{id}/transfers`.
//!
//! It lives in memory beside the ledger and is derived from it: for each account, the
//! ordinals (`Ledger::transfer_ordinal`) of the transfers that debited or credited it, oldest
//! first. Ordinals never change once applied, so the index is appended to after every command
//! and rebuilt in one pass over the ledger's transfers (apply order) when the ledger is
//! rebuilt from a snapshot. It costs 16 bytes per transfer and a few nanoseconds per apply;
//! it used to be two sled keys per transfer, which took two thirds of a leader's CPU at 8,190
//! transfers per command (`tests/bench/README.md`).
//!
//! This file decides nothing: it records what `Ledger::apply` stored.

use ledger::{Ledger, TransferRecord};
use std::collections::HashMap;

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AccountIndex {
    by_account: HashMap<u128, Vec<u64>>,
}

impl AccountIndex {
    /// The index of every transfer `ledger` holds.
    pub(crate) fn build(ledger: &Ledger) -> AccountIndex {
        let mut index = AccountIndex::default();
        for (ordinal, record) in (0..).zip(ledger.transfers()) {
            index.add(ordinal, record);
        }
        index
    }

    /// Adds the transfers of the command `ledger` applied last. Call it after every apply.
    pub(crate) fn add_last_entry(&mut self, ledger: &Ledger) {
        for (ordinal, record) in ledger.last_entry_transfers() {
            self.add(ordinal, record);
        }
    }

    fn add(&mut self, ordinal: u64, record: &TransferRecord) {
        self.by_account
            .entry(record.debit_account_id)
            .or_default()
            .push(ordinal);
        if record.credit_account_id != record.debit_account_id {
            self.by_account
                .entry(record.credit_account_id)
                .or_default()
                .push(ordinal);
        }
    }

    /// At most `limit` ordinals of `account_id`'s transfers, oldest first, after the transfer
    /// at `after` (from the first if `None`).
    pub(crate) fn page(&self, account_id: u128, after: Option<u64>, limit: usize) -> &[u64] {
        let Some(ordinals) = self.by_account.get(&account_id) else {
            return &[];
        };
        let start = match after {
            None => 0,
            Some(after) => ordinals.partition_point(|ordinal| *ordinal <= after),
        };
        let end = start.saturating_add(limit).min(ordinals.len());
        &ordinals[start..end]
    }
}
