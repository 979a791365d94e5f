//! Commands from outside, applied: the bytes decode (canonical codec) into a short list of
//! steps, each a signer, a pause and a command; every command is signed with its signer's demo
//! key (so it passes the node's signature check, as a real client's would) and applied to a
//! clone of the fixture ledger (`fixture.rs`: every role, funded accounts, a host with its
//! agent, a product, a programme). This reaches every command's rules with outside values:
//! meter reports and offers from the agent, orders, withdrawals, usage, vouchers.
//!
//! Checks: `apply` never panics; each entry chains to the one before and round-trips through
//! canonical bytes and JSON; every invariant (`Ledger::check_invariants`) holds after every
//! command; a snapshot restores to the same ledger; and a second replica applying the same
//! signed commands at the same timestamps ends with the same state hash.

use super::{check_canonical_round_trip, check_json_round_trip};
use crate::fixture::{fixture, signer};
use ledger::journal::chain_hash;
use ledger::limits::{COMMAND_BYTES_MAX, NS_PER_S};
use ledger::{Command, Ledger, PartyId, SignedCommand};
use serde::{Deserialize, Serialize};

/// Steps in one input, at most.
pub const STEPS_MAX: usize = 16;

/// One step of an input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Index into `fixture::SIGNERS` (modulo its length).
    pub signer: u8,
    /// Seconds the clock moves before this command (plus one millisecond).
    pub pause_s: u16,
    pub command: Command,
}

/// The fuzz input's bytes for `steps` (used to write seeds).
pub fn encode(steps: &[Step]) -> Vec<u8> {
    ledger::codec::encode(steps)
}

pub fn run(data: &[u8]) {
    let Ok(steps) = ledger::codec::decode::<Vec<Step>>(data, COMMAND_BYTES_MAX) else {
        return;
    };
    if steps.is_empty() || steps.len() > STEPS_MAX {
        return;
    }
    let fixture = fixture();
    let mut ledger = fixture.ledger.clone();
    let mut now_ns = fixture.now_ns;
    let mut applied: Vec<(SignedCommand, u64)> = Vec::with_capacity(steps.len());
    for (position, step) in steps.into_iter().enumerate() {
        now_ns += 1_000_000 + u64::from(step.pause_s) * NS_PER_S;
        let (party, key) = signer(usize::from(step.signer));
        // Nonces above any the fixture used; one per step.
        let nonce = (1u128 << 64) + position as u128;
        let signed = key.sign(
            PartyId::new(party),
            nonce,
            now_ns + 60 * NS_PER_S,
            step.command,
        );
        let before = ledger.head();
        let entry = ledger.apply(&signed, now_ns);
        assert_eq!(entry.body.index, before.index + 1);
        assert_eq!(entry.hash, chain_hash(&before.hash, &entry.body));
        assert_eq!(ledger.head(), entry.head());
        check_canonical_round_trip(&entry, ledger::audit::ENTRY_BYTES_MAX);
        check_json_round_trip(&entry);
        if let Err(broken) = ledger.check_invariants() {
            panic!(
                "invariant broken after {} signed by {party}: {broken}\noutcome: {:?}",
                signed.body.command.name(),
                entry.body.outcome
            );
        }
        applied.push((signed, now_ns));
    }
    // Compared by their bytes: `Ledger`'s `PartialEq` also compares the scratch fields of the
    // last `apply`, which are not state and not in a snapshot.
    let snapshot = ledger.snapshot();
    let restored = Ledger::restore(&snapshot).expect("a snapshot restores");
    assert!(
        restored.snapshot() == snapshot,
        "a snapshot restores to another state"
    );
    let mut replica = fixture.ledger.clone();
    for (signed, timestamp_ns) in &applied {
        replica.apply(signed, *timestamp_ns);
    }
    assert_eq!(
        replica.state_hash(),
        ledger.state_hash(),
        "replicas diverged"
    );
}
