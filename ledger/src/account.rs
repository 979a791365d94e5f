//! Accounts: (party, asset, kind) with TigerBeetle-style balances and flags.
//!
//! Balances are never edited directly; only transfers (`transfer.rs`) move them, and every
//! movement debits one account and credits another by the same amount of the same asset.

use crate::asset::Asset;
use crate::party::PartyId;
use serde::{Deserialize, Serialize};

/// What an account is for. `Main` accounts may be opened by any party for itself; the other
/// kinds are system accounts, opened only by the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A party's own balance of one asset.
    Main,
    /// Where an asset enters the ledger from outside (bank deposits, delivered GPU time). Opened
    /// by the operator without `debits_must_not_exceed_credits`, so it may run a debit balance.
    /// (The kind itself changes no balance rule: the flags do.)
    Mint,
    /// Capacity and goods held for the market or allocations.
    Pool,
    /// Fees earned by the operator.
    Fees,
    /// Rounding residue, so that sums stay exact to the minor unit.
    Rounding,
    /// Money or goods held on someone's behalf (voucher escrow, programme budgets).
    Escrow,
}

impl AccountKind {
    pub fn is_system(self) -> bool {
        self != AccountKind::Main
    }
}

/// Account flags (fixed at creation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFlags {
    /// Linked to the next account in the same batch: the chain succeeds or fails together.
    #[serde(default)]
    pub linked: bool,
    /// `debits_pending + debits_posted <= credits_posted` at all times: no overdraft. Every
    /// account a non-operator opens carries this flag.
    #[serde(default)]
    pub debits_must_not_exceed_credits: bool,
    /// `credits_pending + credits_posted <= debits_posted` at all times.
    #[serde(default)]
    pub credits_must_not_exceed_debits: bool,
}

/// A request to open an account, as it appears in a `CreateAccounts` command. The owner is the
/// party that signs the command. Unknown JSON fields are errors, so a misspelt flag is never
/// silently `false`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    #[serde(with = "crate::wire::u128_text")]
    pub id: u128,
    pub asset: Asset,
    pub kind: AccountKind,
    #[serde(default)]
    pub flags: AccountFlags,
    /// Free client data (e.g. an external reference); not interpreted.
    #[serde(default, with = "crate::wire::u128_text")]
    pub reference: u128,
}

/// The four balances of an account, in minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    #[serde(with = "crate::wire::u128_text")]
    pub debits_pending: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub debits_posted: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub credits_pending: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub credits_posted: u128,
}

impl Balances {
    /// What the owner could spend now: posted credits less posted and pending debits, or zero.
    pub fn available(&self) -> u128 {
        self.credits_posted
            .saturating_sub(self.debits_posted)
            .saturating_sub(self.debits_pending)
    }
}

/// An open account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    #[serde(with = "crate::wire::u128_text")]
    pub id: u128,
    pub party: PartyId,
    pub asset: Asset,
    pub kind: AccountKind,
    pub flags: AccountFlags,
    #[serde(with = "crate::wire::u128_text")]
    pub reference: u128,
    pub balances: Balances,
    /// The timestamp of the command that opened it.
    #[serde(with = "crate::wire::u64_text")]
    pub timestamp_ns: u64,
}

impl Account {
    /// Whether `new` asks for exactly this account (for idempotent retries).
    pub fn matches(&self, new: &NewAccount, party: &PartyId) -> bool {
        self.party == *party
            && self.asset == new.asset
            && self.kind == new.kind
            && self.reference == new.reference
            && AccountFlags {
                linked: false,
                ..self.flags
            } == AccountFlags {
                linked: false,
                ..new.flags
            }
    }
}
