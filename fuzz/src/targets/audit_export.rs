//! Audit exports and voucher proofs: the files `cbank audit verify` reads
//! (`ledger::audit::verify_export`, `verify_proof`), from anyone.
//!
//! The first byte picks the mode. 0: tamper with an honest export of the fixture's first
//! entries (the rest of the input is patches, `(u16 little-endian offset, xor byte)`, applied
//! to the entries' canonical bytes): the export must then fail to verify, unless every entry
//! still decodes to exactly the honest one. 1 and 2: the rest is a whole export or proof as
//! JSON, checked against the fixture's node key. Checks: nothing panics, a failure names what
//! failed, and nothing the honest node did not sign verifies.

use crate::fixture::{fixture, NODE_KEY_PARTY};
use ledger::audit::{export, verify_export, verify_proof, Export, Proof};
use ledger::testing::demo_key;
use ledger::{Checkpoint, JournalEntry, PublicKey};
use std::sync::OnceLock;

/// Entries in the honest export: genesis and the first parties and accounts, enough for every
/// kind of check while replaying quickly.
pub const EXPORT_ENTRIES: usize = 8;

pub fn run(data: &[u8]) {
    let Some((selector, rest)) = crate::select(data) else {
        return;
    };
    match selector % 3 {
        0 => tampered(rest),
        1 => {
            if let Ok(export) = serde_json::from_slice::<Export>(rest) {
                check_failure(verify_export(&export, &trusted()).err());
            }
        }
        _ => {
            if let Ok(proof) = serde_json::from_slice::<Proof>(rest) {
                let _ = verify_proof(&proof, &trusted());
            }
        }
    }
}

/// The node key the auditor trusts.
pub fn trusted() -> Vec<PublicKey> {
    vec![demo_key(NODE_KEY_PARTY).public_key()]
}

/// The honest export and its entries' canonical bytes.
pub fn honest() -> &'static (Export, Vec<Vec<u8>>) {
    static HONEST: OnceLock<(Export, Vec<Vec<u8>>)> = OnceLock::new();
    HONEST.get_or_init(|| {
        let entries: Vec<JournalEntry> = fixture().journal[..EXPORT_ENTRIES].to_vec();
        let head = entries.last().expect("the fixture has entries").head();
        let checkpoint = Checkpoint::sign(head, &demo_key(NODE_KEY_PARTY));
        let honest = export(&entries, vec![checkpoint], Vec::new());
        verify_export(&honest, &trusted()).expect("the honest export verifies");
        let bytes = entries.iter().map(ledger::codec::encode).collect();
        (honest, bytes)
    })
}

fn tampered(patches: &[u8]) {
    let (honest, bytes) = honest();
    let mut entries = bytes.clone();
    let total: usize = entries.iter().map(Vec::len).sum();
    for patch in patches.chunks_exact(3) {
        let mut offset = usize::from(u16::from_le_bytes([patch[0], patch[1]])) % total;
        for entry in entries.iter_mut() {
            if offset < entry.len() {
                entry[offset] ^= patch[2];
                break;
            }
            offset -= entry.len();
        }
    }
    let mut export = honest.clone();
    export.entries = entries.iter().map(hex::encode).collect();
    let unchanged = entries.iter().zip(bytes).all(|(patched, original)| {
        ledger::codec::decode::<JournalEntry>(patched, ledger::audit::ENTRY_BYTES_MAX)
            .is_ok_and(|entry| entry == ledger::codec::decode(original, usize::MAX).unwrap())
    });
    match verify_export(&export, &trusted()) {
        Ok(verified) => assert!(
            unchanged,
            "a tampered export verified: {verified:?} (patches {patches:?})"
        ),
        Err(failure) => {
            assert!(
                !unchanged,
                "an export equal to the honest one failed: {failure}"
            );
            check_failure(Some(failure));
        }
    }
}

fn check_failure(failure: Option<ledger::audit::Failure>) {
    if let Some(failure) = failure {
        assert!(!failure.what.is_empty());
        assert!(!failure.to_string().is_empty());
    }
}
