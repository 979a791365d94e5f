//! Rights: which role may sign which command, before any command-specific check.
//!
//! This is the first of two gates. It looks only at the signer's role and identity and the
//! command's kind; ownership of accounts is checked where the accounts are touched
//! (`state_machine.rs`). The table in `spec/access.md` is generated from the same rules and a
//! test tries every cell.

use crate::command::Command;
use crate::party::{PartyId, Role};

/// The only commands a host's agent key may sign (for its own host, checked where the host is
/// known): an agent can offer, meter and report allocations, and move nothing else.
pub fn agent_may_sign(command: &Command) -> bool {
    matches!(
        command,
        Command::OfferCapacity { .. }
            | Command::ReportMeter { .. }
            | Command::ReportAllocation { .. }
    )
}

/// Whether a party with `role` and id `signer` may sign `command` at all.
pub fn permitted(role: Role, signer: &PartyId, command: &Command) -> bool {
    match command {
        // Genesis is only valid on an empty ledger, where nobody has a role yet.
        Command::Genesis { .. } => false,
        Command::RegisterParty { .. } | Command::RegisterAsset { .. } => role == Role::Operator,
        // Only the party itself: operators do not fully trust each other or their users, so no
        // operator may give itself a key of someone else's and sign in their name.
        Command::AddKey { party, .. } | Command::RevokeKey { party, .. } => party == signer,
        // Auditors read; they never move or hold anything.
        Command::CreateAccounts { .. }
        | Command::CreateTransfers { .. }
        | Command::RequestWithdrawal { .. }
        | Command::CancelWithdrawal { .. } => role != Role::Auditor,
        Command::SetRateTable { .. } => role == Role::Operator,
        Command::RegisterHost { .. }
        | Command::OfferCapacity { .. }
        | Command::ReportMeter { .. }
        | Command::ReportAllocation { .. } => role == Role::Institution,
        Command::ListProduct { .. } => role == Role::Operator,
        // Anyone who holds balances may trade and buy; auditors hold nothing.
        Command::PlaceOrder { .. }
        | Command::CancelOrder { .. }
        | Command::AmendOrder { .. }
        | Command::BuyPackage { .. } => role != Role::Auditor,
        Command::ListPackage { .. } => matches!(role, Role::Operator | Role::Provider),
        Command::RecordUsage { .. } => role == Role::Provider,
        // Local governments run programmes; ownership of a programme is checked by the command.
        Command::CreateProgramme { .. }
        | Command::IssueVoucher { .. }
        | Command::RevokeVoucher { .. } => role == Role::Government,
    }
}
