//! The Compute Bank ledger: the replicated state machine, as a pure library.
//!
//! `Ledger::apply(signed_command, timestamp_ns)` checks the envelope (expiry, signer, key,
//! signature, replay, role), applies the command deterministically and returns the journal
//! entry, whose blake3 hash chains to the previous one. Nothing here does I/O, reads a clock or
//! draws randomness: the node stamps time and brings keys; `tests/tests/tidy` enforces it.
//!
//! Map: `party.rs`, `asset.rs`, `account.rs`, `transfer.rs` are the nouns; `command.rs` and
//! `envelope.rs` what clients send; `outcome.rs` and `reason.rs` what they get back;
//! `journal.rs` the hash chain and checkpoints; `rights.rs` who may sign what; `limits.rs`
//! every bound; `codec.rs` the one canonical encoding; `invariants.rs` what must always hold.
//!
//! Start here: [`state_machine::Ledger::apply`].

pub mod account;
pub mod asset;
pub mod audit;
pub mod bank;
pub mod codec;
pub mod command;
pub mod envelope;
pub mod ids;
pub mod invariants;
pub mod journal;
pub mod limits;
pub mod outcome;
pub mod party;
pub mod reason;
pub mod rights;
pub mod shelf;
pub mod state_machine;
pub mod statement;
pub mod testing;
pub mod trading;
pub mod transfer;
mod transfer_store;
pub mod vouchers;
pub mod wire;

pub use account::{Account, AccountFlags, AccountKind, Balances, NewAccount};
pub use asset::Asset;
pub use command::Command;
pub use envelope::{CommandBody, Signature, SignedCommand, SigningKey};
pub use journal::{Checkpoint, Hash, Head, JournalEntry};
pub use outcome::{CommandResult, Effect, EventResult, Outcome};
pub use party::{PartyId, PublicKey, Role};
pub use reason::Reason;
pub use state_machine::Ledger;
pub use transfer::{PendingState, Transfer, TransferFlags, TransferRecord};
