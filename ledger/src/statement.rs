//! Statements: an account's transfers over a period with opening and closing balances.
//!
//! Pure: it reads transfer records the caller brings (the node keeps an account → transfers
//! index) and recomputes balances from them, so a statement can be checked by hand line by
//! line. A line shows what the transfer did to this account at the time it was applied; a
//! pending transfer's later post, void or expiry is its own line (the post or void transfer),
//! or, for an expiry, shows in the pending line's `state`.

use crate::account::{Account, Balances};
use crate::transfer::{PendingState, TransferRecord};
use serde::{Deserialize, Serialize};

/// Which side of the transfer this account was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

/// What kind of movement a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// Posted at once.
    Posted,
    /// Reserved (pending).
    Reserved,
    /// A reservation posted (for `amount`; the rest of the reservation released).
    PostedFromReservation,
    /// A reservation voided (released in full).
    Released,
}

/// One line of a statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    #[serde(with = "crate::wire::u128_text")]
    pub transfer_id: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub timestamp_ns: u64,
    pub journal_index: u64,
    pub code: u16,
    #[serde(with = "crate::wire::u128_text")]
    pub reference: u128,
    pub side: Side,
    pub movement: Movement,
    #[serde(with = "crate::wire::u128_text")]
    pub amount: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub counterparty_account_id: u128,
    /// For reservations: where the reservation stands now.
    pub state: PendingState,
    /// Balances after this line (expiries of reservations are applied at their time).
    pub balances_after: Balances,
}

/// An account's statement for `[from_ns, to_ns)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub account: Account,
    #[serde(with = "crate::wire::u64_text")]
    pub from_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub to_ns: u64,
    pub opening: Balances,
    pub closing: Balances,
    pub lines: Vec<StatementLine>,
}

/// Builds the statement of `account` from all of its transfer records (any order), and the
/// records of the pending transfers its posts and voids refer to (`pending_of`).
pub fn statement<'a>(
    account: &Account,
    records: impl IntoIterator<Item = &'a TransferRecord>,
    pending_of: impl Fn(u128) -> Option<&'a TransferRecord>,
    from_ns: u64,
    to_ns: u64,
) -> Statement {
    // Events in time order: each transfer at its timestamp, and each expiry at its time.
    enum Event<'a> {
        Transfer(&'a TransferRecord),
        Expiry(&'a TransferRecord),
    }
    // At one timestamp, expiries come first (they happen before the command is applied), then
    // the command's transfers in the order it stored them.
    let mut events: Vec<(u64, u8, u32, u128, Event<'a>)> = Vec::new();
    for record in records {
        let key = (record.timestamp_ns, 1, record.sequence, record.transfer.id);
        events.push((key.0, key.1, key.2, key.3, Event::Transfer(record)));
        if let PendingState::Expired { at_ns } = record.state {
            events.push((at_ns, 0, 0, record.transfer.id, Event::Expiry(record)));
        }
    }
    events.sort_by_key(|(at, order, sequence, id, _)| (*at, *order, *sequence, *id));
    let mut balances = Balances::default();
    let mut opening = None;
    let mut lines = Vec::new();
    for (at, _, _, _, event) in events {
        if at >= to_ns {
            break;
        }
        if at >= from_ns && opening.is_none() {
            opening = Some(balances);
        }
        let record = match event {
            Event::Expiry(record) => {
                release(&mut balances, account.id, record, record.amount);
                continue;
            }
            Event::Transfer(record) => record,
        };
        let side = if record.debit_account_id == account.id {
            Side::Debit
        } else {
            Side::Credit
        };
        let counterparty = if side == Side::Debit {
            record.credit_account_id
        } else {
            record.debit_account_id
        };
        let flags = record.transfer.flags;
        let movement = if flags.pending {
            add_pending(&mut balances, side, record.amount);
            Movement::Reserved
        } else if flags.post_pending || flags.void_pending {
            let reserved =
                pending_of(record.transfer.pending_id).map_or(0, |pending| pending.amount);
            release(&mut balances, account.id, record, reserved);
            if flags.post_pending {
                add_posted(&mut balances, side, record.amount);
                Movement::PostedFromReservation
            } else {
                Movement::Released
            }
        } else {
            add_posted(&mut balances, side, record.amount);
            Movement::Posted
        };
        if at >= from_ns {
            lines.push(StatementLine {
                transfer_id: record.transfer.id,
                timestamp_ns: record.timestamp_ns,
                journal_index: record.journal_index,
                code: record.transfer.code,
                reference: record.transfer.reference,
                side,
                movement,
                amount: record.amount,
                counterparty_account_id: counterparty,
                state: record.state,
                balances_after: balances,
            });
        }
    }
    Statement {
        account: account.clone(),
        from_ns,
        to_ns,
        opening: opening.unwrap_or(balances),
        closing: balances,
        lines,
    }
}

fn add_pending(balances: &mut Balances, side: Side, amount: u128) {
    match side {
        Side::Debit => balances.debits_pending += amount,
        Side::Credit => balances.credits_pending += amount,
    }
}

fn add_posted(balances: &mut Balances, side: Side, amount: u128) {
    match side {
        Side::Debit => balances.debits_posted += amount,
        Side::Credit => balances.credits_posted += amount,
    }
}

/// Releases a reservation of `amount` that `record` (or its pending transfer) made.
fn release(balances: &mut Balances, account_id: u128, record: &TransferRecord, amount: u128) {
    if record.debit_account_id == account_id {
        balances.debits_pending = balances.debits_pending.saturating_sub(amount);
    } else {
        balances.credits_pending = balances.credits_pending.saturating_sub(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, MAIN, OPERATOR};
    use crate::{AccountKind, Command, Transfer, TransferFlags};

    fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
        Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            pending_id: 0,
            timeout_s: 0,
            code: 7,
            reference: 0,
            flags: TransferFlags::default(),
        }
    }

    #[test]
    fn a_statement_recomputes_the_account_balances() {
        let mut h = Harness::new();
        h.add_party("sme", Role::Sme);
        h.open_account(OPERATOR, 1, "CNY", AccountKind::Mint, false);
        h.open_account("sme", 2, "CNY", MAIN, true);
        h.open_account("sme", 3, "CNY", MAIN, true);
        h.expect_accepted(
            OPERATOR,
            Command::CreateTransfers {
                transfers: vec![transfer(10, 1, 2, 1_000)],
            },
        );
        let mut hold = transfer(11, 2, 3, 300);
        hold.flags.pending = true;
        hold.timeout_s = 5;
        let mut hold2 = transfer(12, 2, 3, 200);
        hold2.flags.pending = true;
        hold2.timeout_s = 60;
        h.expect_accepted(
            "sme",
            Command::CreateTransfers {
                transfers: vec![hold, hold2],
            },
        );
        let mut post = transfer(13, 0, 0, 150);
        post.pending_id = 12;
        post.flags.post_pending = true;
        h.expect_accepted(
            "sme",
            Command::CreateTransfers {
                transfers: vec![post],
            },
        );
        h.step_ns = 10 * crate::limits::NS_PER_S;
        h.expect_accepted(
            "sme",
            Command::CreateTransfers {
                transfers: vec![transfer(14, 2, 3, 1)],
            },
        );
        let account = h.ledger.account(2).unwrap().clone();
        let records: Vec<&TransferRecord> = h
            .ledger
            .transfers()
            .filter(|r| r.debit_account_id == 2 || r.credit_account_id == 2)
            .collect();
        let statement = statement(&account, records, |id| h.ledger.transfer(id), 0, u64::MAX);
        assert_eq!(statement.closing, account.balances, "{statement:#?}");
        let movements: Vec<Movement> = statement.lines.iter().map(|l| l.movement).collect();
        assert_eq!(
            movements,
            vec![
                Movement::Posted,
                Movement::Reserved,
                Movement::Reserved,
                Movement::PostedFromReservation,
                Movement::Posted
            ]
        );
        // A period that starts after the funding opens with it.
        let later = super::statement(
            &account,
            h.ledger
                .transfers()
                .filter(|r| r.credit_account_id == 2 || r.debit_account_id == 2),
            |id| h.ledger.transfer(id),
            statement.lines[1].timestamp_ns,
            u64::MAX,
        );
        assert_eq!(later.opening.credits_posted, 1_000);
        assert_eq!(later.lines.len(), 4);
    }

    use crate::Role;
}
