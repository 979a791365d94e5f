//! The ledger's invariants (`spec/invariants.md`), checked over a whole state.
//!
//! Used by property tests, by `cbank audit verify` and by replicas that want to prove their
//! state sound. It only reads; a violation is reported as text naming what broke.

use crate::account::AccountKind;
use crate::asset::Asset;
use crate::shelf::QuotaState;
use crate::state_machine::Ledger;
use crate::trading::OrderStatus;
use crate::transfer::PendingState;
use market::book::Side;
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
    check_market(ledger)?;
    check_quotas(ledger)?;
    check_vouchers(ledger)
}

/// I8: every programme's money is accounted for: its account holds the unissued budget and
/// what vouchers returned, each
/// voucher account what the voucher has left; issued = redeemed + expired + revoked +
/// outstanding; no beneficiary is paid beyond the yearly cap and no redemption beyond the
/// programme's share of its purchase.
fn check_vouchers(ledger: &Ledger) -> Result<(), String> {
    let state = ledger.vouchers();
    let posted = |id: u128| {
        ledger.account(id).map(|a| {
            let b = a.balances;
            b.credits_posted.checked_sub(b.debits_posted)
        })
    };
    let mut outstanding: BTreeMap<&str, u128> = BTreeMap::new();
    for voucher in state.vouchers.values() {
        if posted(voucher.account_id) != Some(Some(voucher.remaining())) {
            return Err(format!(
                "I8: voucher {} holds other than its remainder {}",
                voucher.spec.voucher_id,
                voucher.remaining()
            ));
        }
        *outstanding.entry(&voucher.spec.programme_id).or_default() += voucher.remaining();
    }
    for (id, programme) in &state.programmes {
        let t = programme.totals;
        let accounted = t.redeemed + t.expired + t.revoked + t.outstanding();
        if posted(programme.account_id) != Some(Some(programme.held()))
            || programme.unissued() + t.issued != programme.spec.budget
            || accounted != t.issued
            || outstanding.get(id.as_str()).copied().unwrap_or(0) != t.outstanding()
        {
            return Err(format!("I8: programme {id} money does not add up: {t:?}"));
        }
        if programme
            .paid_per_year
            .values()
            .any(|paid| *paid > programme.spec.cap_per_beneficiary_per_year)
        {
            return Err(format!(
                "I8: programme {id} paid a beneficiary beyond its cap"
            ));
        }
    }
    for redemption in &state.redemptions {
        let share = state.programmes[&redemption.programme_id]
            .spec
            .max_share_bps;
        if redemption.paid * 10_000 > redemption.price * u128::from(share) {
            return Err(format!(
                "I8: voucher {} paid beyond its share",
                redemption.voucher_id
            ));
        }
    }
    Ok(())
}

/// I6: books and orders agree, continuous books are not crossed, and escrow holds exactly what
/// open orders reserve (pending) and what packages have in stock (posted).
fn check_market(ledger: &Ledger) -> Result<(), String> {
    let market = ledger.market();
    let mut reserved: BTreeMap<&Asset, u128> = BTreeMap::new();
    let mut on_books = 0usize;
    for product in market.products.values() {
        on_books += product.book.len();
        if product.spec.auction_interval_s.is_none() {
            if let (Some(bid), Some(ask)) = (product.book.best_bid(), product.book.best_ask()) {
                if bid >= ask {
                    return Err(format!(
                        "I6: book {} is crossed: bid {bid} ≥ ask {ask}",
                        product.spec.product_id
                    ));
                }
            }
        }
    }
    let mut open = 0usize;
    for order in market.orders.values() {
        let id = order.spec.order_id;
        if order.status != OrderStatus::Open {
            if order.pending_transfer_id.is_some() {
                return Err(format!("I6: order {id} is done but still reserves"));
            }
            continue;
        }
        open += 1;
        let product = &market.products[&order.spec.product_id];
        let resting = product.book.order(id);
        let price = order.resting_price.unwrap_or(0);
        if resting.is_none_or(|r| r.lots != order.open_lots || r.price != price) {
            return Err(format!("I6: open order {id} differs from its book entry"));
        }
        let (asset, amount) = match order.spec.side {
            Side::Buy => (
                &product.spec.quote,
                u128::from(price) * u128::from(order.open_lots),
            ),
            Side::Sell => (
                &product.spec.base,
                u128::from(order.open_lots) * product.spec.lot_size,
            ),
        };
        let pending = order
            .pending_transfer_id
            .and_then(|pending| ledger.transfer(pending));
        if pending.is_none_or(|t| t.state != PendingState::Pending || t.amount != amount) {
            return Err(format!(
                "I6: open order {id} does not reserve exactly {amount}"
            ));
        }
        *reserved.entry(asset).or_default() += amount;
    }
    if open != on_books {
        return Err(format!(
            "I6: {on_books} orders on the books, {open} open orders"
        ));
    }
    let mut stocked: BTreeMap<&Asset, u128> = BTreeMap::new();
    for package in market.shelf.packages.values() {
        if package.spec.goods_account_id.is_some() {
            *stocked.entry(&package.spec.asset).or_default() +=
                package.spec.quantity * u128::from(package.remaining());
        }
    }
    for asset in ledger.assets() {
        let escrow = ledger
            .system_account(asset, AccountKind::Escrow)
            .map(|a| a.balances)
            .unwrap_or_default();
        let want_pending = reserved.get(asset).copied().unwrap_or(0);
        let want_posted = stocked.get(asset).copied().unwrap_or(0);
        let posted = escrow.credits_posted - escrow.debits_posted.min(escrow.credits_posted);
        if escrow.credits_pending != want_pending || posted != want_posted {
            return Err(format!(
                "I6: {asset} escrow holds {} pending / {posted} posted, orders reserve \
                 {want_pending} and packages stock {want_posted}",
                escrow.credits_pending
            ));
        }
    }
    Ok(())
}

/// I7: no quota is used beyond its grant, and the quota indexes name exactly the unexpired
/// quotas.
fn check_quotas(ledger: &Ledger) -> Result<(), String> {
    let shelf = ledger.shelf();
    let mut unexpired = 0usize;
    for quota in shelf.quotas.values() {
        if quota.used > quota.granted {
            return Err(format!(
                "I7: quota {} used beyond its grant",
                quota.quota_id
            ));
        }
        if !matches!(quota.state, QuotaState::Expired { .. }) {
            unexpired += 1;
            let indexed = shelf
                .live_quotas
                .get(&(quota.account_id, quota.provider.clone()))
                .is_some_and(|set| set.contains(&(quota.expires_at_ns, quota.quota_id)));
            if !indexed
                || !shelf
                    .quota_expiries
                    .contains(&(quota.expires_at_ns, quota.quota_id))
            {
                return Err(format!("I7: quota {} is not indexed", quota.quota_id));
            }
        }
    }
    let live: usize = shelf.live_quotas.values().map(|set| set.len()).sum();
    if live != unexpired || shelf.quota_expiries.len() != unexpired {
        return Err(format!(
            "I7: {unexpired} unexpired quotas, {live} live and {} expiry entries",
            shelf.quota_expiries.len()
        ));
    }
    Ok(())
}
