//! Canonical bytes from outside: a signed command (what a Raft entry and the journal carry), a
//! journal entry (what `cbank audit verify` reads from an export and a node reads from its
//! store), and a ledger snapshot (what a follower installs from its leader).
//!
//! The first byte picks the decoder. Checks: decoding never panics; a command or entry that
//! decodes was decoded from its one canonical encoding (re-encoding gives the input back, so
//! two different byte strings never stand for the same signed command); its JSON form parses
//! back to it; checking its signature or hash never panics. A snapshot that decodes re-encodes
//! to bytes that decode to the same ledger, and hashing or checking it never panics.

use super::{check_canonical_round_trip, check_json_round_trip};
use ledger::journal::chain_hash;
use ledger::limits::{COMMAND_BYTES_MAX, SNAPSHOT_BYTES_MAX};
use ledger::{JournalEntry, Ledger, SignedCommand};

pub fn run(data: &[u8]) {
    let Some((selector, bytes)) = crate::select(data) else {
        return;
    };
    match selector % 3 {
        0 => signed_command(bytes),
        1 => journal_entry(bytes),
        _ => snapshot(bytes),
    }
}

fn signed_command(bytes: &[u8]) {
    let Ok(command) = SignedCommand::from_bytes(bytes) else {
        return;
    };
    let encoded = check_canonical_round_trip(&command, COMMAND_BYTES_MAX);
    assert_eq!(encoded, bytes, "a command decoded from non-canonical bytes");
    assert_eq!(command.to_bytes(), encoded);
    check_json_round_trip(&command);
    let _ = command.signature_is_valid();
    let _ = command.body.command.name();
}

fn journal_entry(bytes: &[u8]) {
    let Ok(entry) = ledger::codec::decode::<JournalEntry>(bytes, ledger::audit::ENTRY_BYTES_MAX)
    else {
        return;
    };
    let encoded = check_canonical_round_trip(&entry, ledger::audit::ENTRY_BYTES_MAX);
    assert_eq!(encoded, bytes, "an entry decoded from non-canonical bytes");
    check_json_round_trip(&entry);
    let _ = chain_hash(&ledger::Hash::default(), &entry.body);
    let _ = entry.body.command.signature_is_valid();
}

fn snapshot(bytes: &[u8]) {
    let Ok(restored) = Ledger::restore(bytes) else {
        return;
    };
    let encoded = check_canonical_round_trip(&restored, SNAPSHOT_BYTES_MAX);
    assert_eq!(Ledger::restore(&encoded).as_ref(), Ok(&restored));
    let _ = restored.state_hash();
    let _ = restored.check_invariants();
}
