//! Transfers: immutable double-entry movements of one asset between two accounts.
//!
//! A transfer is single-phase (posted at once) or two-phase: a *pending* transfer reserves the
//! amount; a later transfer *posts* it (fully or partly) or *voids* it; a pending transfer with
//! a timeout that passes (by command timestamps) is *expired*, which releases it like a void.
//! Transfers are never edited: mistakes are corrected by new transfers.

use serde::{Deserialize, Serialize};

/// Transfer flags. At most one of `pending`, `post_pending`, `void_pending` may be set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferFlags {
    /// Linked to the next transfer in the same batch: the chain succeeds or fails together.
    #[serde(default)]
    pub linked: bool,
    /// Reserve the amount now; post or void it later.
    #[serde(default)]
    pub pending: bool,
    /// Post the pending transfer named by `pending_id`.
    #[serde(default)]
    pub post_pending: bool,
    /// Void the pending transfer named by `pending_id`.
    #[serde(default)]
    pub void_pending: bool,
}

/// A transfer as a client asks for it (inside a `CreateTransfers` command). Unknown JSON fields
/// are errors.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// Client-chosen, unique for ever: the idempotency key. Not 0, not `u128::MAX`.
    #[serde(with = "crate::wire::u128_text")]
    pub id: u128,
    /// For post and void: 0, or the pending transfer's debit account.
    #[serde(default, with = "crate::wire::u128_text")]
    pub debit_account_id: u128,
    /// For post and void: 0, or the pending transfer's credit account.
    #[serde(default, with = "crate::wire::u128_text")]
    pub credit_account_id: u128,
    /// Minor units. For a post, 0 means the whole pending amount; for a void it must be 0 or the
    /// pending amount.
    #[serde(default, with = "crate::wire::u128_text")]
    pub amount: u128,
    /// For post and void: the pending transfer's id; otherwise 0.
    #[serde(default, with = "crate::wire::u128_text")]
    pub pending_id: u128,
    /// For pending transfers: seconds after which it expires (required, 1 to
    /// `PENDING_TIMEOUT_S_MAX`); otherwise 0.
    #[serde(default)]
    pub timeout_s: u32,
    /// Why the money moved (a reason code chosen by the application; 0 is allowed).
    #[serde(default)]
    pub code: u16,
    /// What it is for: an order, voucher or allocation id, or client data.
    #[serde(default, with = "crate::wire::u128_text")]
    pub reference: u128,
    #[serde(default)]
    pub flags: TransferFlags,
}

/// Where a two-phase transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingState {
    /// Not a pending transfer (single-phase, or itself a post or void).
    NotPending,
    /// Reserved, waiting for post, void or timeout.
    Pending,
    /// Posted by transfer `by` for `amount`.
    Posted {
        #[serde(with = "crate::wire::u128_text")]
        by: u128,
        #[serde(with = "crate::wire::u128_text")]
        amount: u128,
    },
    /// Voided by transfer `by`.
    Voided {
        #[serde(with = "crate::wire::u128_text")]
        by: u128,
    },
    /// Expired at the first command at or after its deadline.
    Expired {
        #[serde(with = "crate::wire::u64_text")]
        at_ns: u64,
    },
}

/// A transfer as stored: the request exactly as it was asked for (so a retry can be compared
/// field by field), the accounts and amount it resolved to, when it was applied, and (for
/// pending transfers) where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    pub transfer: Transfer,
    #[serde(with = "crate::wire::u128_text")]
    pub debit_account_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub credit_account_id: u128,
    /// The amount that moved (for a post: the posted amount; for a void: the released amount).
    #[serde(with = "crate::wire::u128_text")]
    pub amount: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub timestamp_ns: u64,
    pub state: PendingState,
    /// The journal index of the command that created it.
    pub journal_index: u64,
    /// Its place among the transfers the same journal entry stored (0, 1, 2…): the order in
    /// which they were applied, so a statement can replay them exactly.
    pub sequence: u32,
}

impl TransferRecord {
    /// When a pending transfer with a timeout expires; `None` if it never does.
    pub fn deadline_ns(&self) -> Option<u64> {
        if !self.transfer.flags.pending || self.transfer.timeout_s == 0 {
            return None;
        }
        let timeout_ns = u64::from(self.transfer.timeout_s) * crate::limits::NS_PER_S;
        Some(self.timestamp_ns.saturating_add(timeout_ns))
    }
}

impl Transfer {
    /// A posted transfer the ledger makes on its own authority (no flags, no timeout).
    pub(crate) fn plain(
        id: u128,
        debit: u128,
        credit: u128,
        amount: u128,
        code: u16,
        reference: u128,
    ) -> Transfer {
        Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            pending_id: 0,
            timeout_s: 0,
            code,
            reference,
            flags: TransferFlags::default(),
        }
    }

    /// A pending transfer (a reservation); `timeout_s` 0 only on the ledger's own authority.
    pub(crate) fn pending(
        id: u128,
        debit: u128,
        credit: u128,
        amount: u128,
        timeout_s: u32,
        code: u16,
        reference: u128,
    ) -> Transfer {
        Transfer {
            timeout_s,
            flags: TransferFlags {
                pending: true,
                ..TransferFlags::default()
            },
            ..Transfer::plain(id, debit, credit, amount, code, reference)
        }
    }

    /// Voids pending transfer `pending_id` in full.
    pub(crate) fn void(id: u128, pending_id: u128, code: u16) -> Transfer {
        Transfer {
            pending_id,
            flags: TransferFlags {
                void_pending: true,
                ..TransferFlags::default()
            },
            ..Transfer::plain(id, 0, 0, 0, code, 0)
        }
    }
}
