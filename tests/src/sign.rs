//! Envelopes signed with the demo keys (`ledger::testing::demo_key`), as a client would make them.
//!
//! The leader stamps commands with its wall clock, so an envelope here expires a minute after
//! the test's wall clock (same machine, same clock), well inside the ledger's
//! `ENVELOPE_LIFETIME_NS_MAX`. Nonces come from one counter per test process, so no two
//! envelopes made by a process ever share a nonce, whichever cluster they go to.

use ledger::testing::demo_key;
use ledger::{Command, PartyId, SignedCommand, SigningKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long an envelope made here stays valid.
pub const ENVELOPE_LIFETIME_NS: u64 = 60 * ledger::limits::NS_PER_S;

static NONCE: AtomicU64 = AtomicU64::new(1);

/// A nonce never returned before by this process.
pub fn next_nonce() -> u128 {
    u128::from(NONCE.fetch_add(1, Ordering::Relaxed))
}

/// Nanoseconds since the Unix epoch by the wall clock.
pub fn unix_now_ns() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since_epoch.as_nanos()).expect("nanoseconds since 1970 fit u64 until 2554")
}

/// `command` signed by `signer`'s demo key, with a fresh nonce, expiring in a minute.
pub fn sign(signer: &str, command: Command) -> SignedCommand {
    sign_with(&demo_key(signer), signer, command)
}

/// `command` signed by `key` on behalf of `signer` (which may not own `key`: bad-input tests).
pub fn sign_with(key: &SigningKey, signer: &str, command: Command) -> SignedCommand {
    key.sign(
        PartyId::new(signer),
        next_nonce(),
        unix_now_ns() + ENVELOPE_LIFETIME_NS,
        command,
    )
}
