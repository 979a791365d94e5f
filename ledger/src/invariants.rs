//! The ledger's invariants (`spec/invariants.md`), checked over a whole state.
//!
//! Used by property tests, by `cbank audit verify` and by replicas that want to prove their
//! state sound. It only reads; a violation is reported as text naming what broke.

use crate::asset::Asset;
use crate::state_machine::Ledger;
use crate::transfer::PendingState;
use std::collections::BTreeMap;

/// A 256-bit sum: totals over many accounts can pass `u128::MAX` even though every single
/// balance fits (money can go round in circles), so asset totals are added without overflow.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Wide {
    high: u128,
    low: u128,
}

impl Wide {
    fn add(&mut self, value: u128) {
        let (low, carry) = self.low.overflowing_add(value);
        self.low = low;
        self.high += u128::from(carry);
    }
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Totals {
    debits_pending: Wide,
    debits_posted: Wide,
    credits_pending: Wide,
    credits_posted: Wide,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Sums {
    debits_pending: u128,
    debits_posted: u128,
    credits_pending: u128,
    credits_posted: u128,
}

/// Returns the first invariant violation found, if any.
pub fn check(ledger: &Ledger) -> Result<(), String> {
    // I1: per asset, Σ debits = Σ credits, pending and posted separately.
    let mut per_asset: BTreeMap<&Asset, Totals> = BTreeMap::new();
    for account in ledger.accounts() {
        let sums = per_asset.entry(&account.asset).or_default();
        let b = &account.balances;
        sums.debits_pending.add(b.debits_pending);
        sums.debits_posted.add(b.debits_posted);
        sums.credits_pending.add(b.credits_pending);
        sums.credits_posted.add(b.credits_posted);
        // I2: flagged accounts never go past their limit (an overflowing sum is past it too).
        let over = |pending: u128, posted: u128, limit: u128| {
            pending
                .checked_add(posted)
                .is_none_or(|total| total > limit)
        };
        if account.flags.debits_must_not_exceed_credits
            && over(b.debits_pending, b.debits_posted, b.credits_posted)
        {
            return Err(format!("I2: account {} is overdrawn: {b:?}", account.id));
        }
        if account.flags.credits_must_not_exceed_debits
            && over(b.credits_pending, b.credits_posted, b.debits_posted)
        {
            return Err(format!(
                "I2: account {} has credits beyond debits: {b:?}",
                account.id
            ));
        }
    }
    for (asset, sums) in &per_asset {
        if sums.debits_pending != sums.credits_pending || sums.debits_posted != sums.credits_posted
        {
            return Err(format!("I1: asset {asset} does not balance: {sums:?}"));
        }
    }

    // I3: every balance is exactly the sum of the transfers that touched it.
    let mut recomputed: BTreeMap<u128, Sums> = BTreeMap::new();
    for record in ledger.transfers() {
        let t = &record.transfer;
        let (debit, credit) = (record.debit_account_id, record.credit_account_id);
        let overflow = || format!("I3: balances touched by transfer {} overflow", t.id);
        if t.flags.pending {
            if record.state == PendingState::Pending {
                let d = &mut recomputed.entry(debit).or_default().debits_pending;
                *d = d.checked_add(record.amount).ok_or_else(overflow)?;
                let c = &mut recomputed.entry(credit).or_default().credits_pending;
                *c = c.checked_add(record.amount).ok_or_else(overflow)?;
            }
        } else if !t.flags.void_pending {
            // Single-phase transfers and posts move posted balances.
            let d = &mut recomputed.entry(debit).or_default().debits_posted;
            *d = d.checked_add(record.amount).ok_or_else(overflow)?;
            let c = &mut recomputed.entry(credit).or_default().credits_posted;
            *c = c.checked_add(record.amount).ok_or_else(overflow)?;
        }
    }
    for account in ledger.accounts() {
        let b = &account.balances;
        let expected = recomputed.remove(&account.id).unwrap_or_default();
        let actual = Sums {
            debits_pending: b.debits_pending,
            debits_posted: b.debits_posted,
            credits_pending: b.credits_pending,
            credits_posted: b.credits_posted,
        };
        if expected != actual {
            return Err(format!(
                "I3: account {} balances {actual:?} differ from its transfers {expected:?}",
                account.id
            ));
        }
    }
    if let Some((id, _)) = recomputed.first_key_value() {
        return Err(format!(
            "I3: transfers name account {id}, which does not exist"
        ));
    }

    // I4: a pending transfer has a deadline entry exactly when it is pending with a timeout.
    let mut deadlines = 0;
    for record in ledger.transfers() {
        if record.state == PendingState::Pending {
            if let Some(deadline) = record.deadline_ns() {
                deadlines += 1;
                if !ledger
                    .pending_deadlines()
                    .contains(&(deadline, record.transfer.id))
                {
                    return Err(format!(
                        "I4: pending transfer {} has no deadline entry",
                        record.transfer.id
                    ));
                }
            }
        }
    }
    if deadlines != ledger.pending_deadlines().len() {
        return Err(format!(
            "I4: {} deadline entries for {deadlines} pending transfers with timeouts",
            ledger.pending_deadlines().len()
        ));
    }

    // I5: replay protection indexes agree; account counts per party agree.
    if !ledger.nonce_indexes_agree() {
        return Err("I5: the nonce index and the nonce expiry index differ".to_owned());
    }
    let mut counts: BTreeMap<&crate::party::PartyId, u32> = BTreeMap::new();
    for account in ledger.accounts() {
        *counts.entry(&account.party).or_default() += 1;
    }
    let stored: BTreeMap<&crate::party::PartyId, u32> = ledger
        .accounts_per_party()
        .iter()
        .map(|(party, count)| (party, *count))
        .collect();
    if counts != stored {
        return Err("I5: accounts per party do not match the accounts".to_owned());
    }
    Ok(())
}
