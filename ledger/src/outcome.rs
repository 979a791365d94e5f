//! Outcomes: what applying one command did, recorded in the journal beside the command.
//!
//! A rejected command is an outcome too (with a stable `Reason`), never a lost request and never
//! a storage error. Batch commands report only the events that did not apply cleanly, by index,
//! so a full batch that succeeds records a short outcome.

use crate::reason::Reason;
use crate::shelf::{QuotaExpired, UsageRecorded};
use crate::trading::{AuctionCleared, Placed};
use serde::{Deserialize, Serialize};

/// One event of a batch that did not simply apply: its index in the batch and why.
/// `transfer_exists` and `account_exists` are listed too: they changed nothing, on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    pub index: u32,
    pub reason: Reason,
}

/// What an accepted command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    GenesisApplied,
    PartyRegistered,
    KeyAdded,
    KeyRevoked,
    AssetRegistered,
    /// Accounts opened, except the events listed.
    AccountsCreated {
        results: Vec<EventResult>,
    },
    /// Transfers applied, except the events listed.
    TransfersCreated {
        results: Vec<EventResult>,
    },
    RateTableSet,
    HostRegistered,
    /// `repeated`: the same offer was already recorded; nothing changed.
    CapacityOffered {
        repeated: bool,
    },
    /// `repeated`: the same report was already recorded; nothing was credited again.
    MeterRecorded {
        repeated: bool,
    },
    WithdrawalRequested {
        repeated: bool,
    },
    WithdrawalCancelled,
    AllocationUpdated,
    ProductListed {
        repeated: bool,
    },
    /// `None`: the same order was placed before; nothing changed.
    OrderPlaced(Option<Placed>),
    OrderCancelled,
    OrderAmended {
        kept_priority: bool,
    },
    PackageListed {
        repeated: bool,
    },
    PackageBought {
        repeated: bool,
        /// What each voucher paid of the price (`spec/vouchers.md`).
        vouchers: Vec<crate::vouchers::VoucherPaid>,
    },
    UsageRecorded(UsageRecorded),
    ProgrammeCreated {
        repeated: bool,
    },
    VoucherIssued {
        repeated: bool,
    },
    /// `returned`: what was left, back in the programme.
    VoucherRevoked {
        #[serde(with = "crate::wire::u128_text")]
        returned: u128,
    },
}

/// The result of one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandResult {
    Accepted(Effect),
    Rejected(Reason),
}

/// Everything applying one command changed, as recorded in its journal entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Pending transfers that timed out at this command's timestamp, before it was applied.
    pub expired: Vec<ExpiredTransfer>,
    /// What fell due by this command's timestamp, before it was applied: auctions that
    /// cleared, quotas and vouchers that expired.
    #[serde(default)]
    pub scheduled: Vec<Scheduled>,
    pub result: CommandResult,
}

/// Something the ledger did on schedule (by command time), before a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduled {
    AuctionCleared(AuctionCleared),
    QuotaExpired(QuotaExpired),
    VoucherExpired(crate::vouchers::VoucherExpired),
}

/// A pending transfer released by its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredTransfer {
    #[serde(with = "crate::wire::u128_text")]
    pub id: u128,
}

impl Outcome {
    pub fn rejected(&self) -> Option<Reason> {
        match self.result {
            CommandResult::Rejected(reason) => Some(reason),
            CommandResult::Accepted(_) => None,
        }
    }

    /// The per-event results of a batch command (empty for other commands or rejections).
    pub fn event_results(&self) -> &[EventResult] {
        match &self.result {
            CommandResult::Accepted(Effect::AccountsCreated { results })
            | CommandResult::Accepted(Effect::TransfersCreated { results }) => results,
            _ => &[],
        }
    }
}
