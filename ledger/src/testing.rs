//! A deterministic harness for driving a `Ledger` in tests, benchmarks and demos.
//!
//! Keys are derived from the party id (never use these outside tests and demos: anyone can
//! derive them), nonces count up, and time advances by a fixed step per command, so the same
//! calls always produce the same journal. It never reads a clock or draws randomness.

use crate::account::{AccountFlags, AccountKind, NewAccount};
use crate::asset::Asset;
use crate::command::Command;
use crate::envelope::{SignedCommand, SigningKey};
use crate::journal::JournalEntry;
use crate::limits::NS_PER_S;
use crate::party::{PartyId, Role};
use crate::state_machine::Ledger;
use std::collections::BTreeMap;

/// The operator party every harness starts with.
pub const OPERATOR: &str = "operator";

/// 2026-01-01T00:00:00Z in nanoseconds: where harness time starts.
pub const START_NS: u64 = 1_767_225_600 * NS_PER_S;

/// How long harness envelopes live.
pub const ENVELOPE_LIFETIME_NS: u64 = 60 * NS_PER_S;

/// The demo/test key of a party: derived from its id, so it is public knowledge.
pub fn demo_key(party: &str) -> SigningKey {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"cbank.demo-key.v1\0");
    hasher.update(party.as_bytes());
    SigningKey::from_seed(*hasher.finalize().as_bytes())
}

/// Drives a ledger with signed commands at advancing timestamps.
pub struct Harness {
    pub ledger: Ledger,
    /// The timestamp of the last applied command.
    pub now_ns: u64,
    /// Added to `now_ns` before each command.
    pub step_ns: u64,
    /// Every entry applied through the harness, from genesis on.
    pub journal: Vec<JournalEntry>,
    next_nonce: u128,
    keys: BTreeMap<PartyId, SigningKey>,
}

impl Harness {
    /// A ledger after genesis: operator `operator` with assets CNY, GPUH:H100 and TOK:qwen.
    pub fn new() -> Harness {
        let mut harness = Harness {
            ledger: Ledger::new(),
            now_ns: START_NS,
            step_ns: 1_000_000,
            journal: Vec::new(),
            next_nonce: 1,
            keys: BTreeMap::new(),
        };
        let operator = PartyId::new(OPERATOR);
        let key = demo_key(OPERATOR);
        let assets =
            ["CNY", "GPUH:H100", "TOK:qwen"].map(|code| code.parse::<Asset>().expect("valid code"));
        let genesis = Command::Genesis {
            operator: operator.clone(),
            keys: vec![key.public_key()],
            assets: assets.to_vec(),
        };
        harness.keys.insert(operator.clone(), key);
        let entry = harness.submit(OPERATOR, genesis);
        assert!(
            entry.body.outcome.rejected().is_none(),
            "genesis applies: {:?}",
            entry.body.outcome
        );
        harness
    }

    pub fn key(&self, party: &str) -> &SigningKey {
        self.keys
            .get(&PartyId::new(party))
            .expect("party registered through the harness")
    }

    /// Registers a party with its demo key (signed by the operator); panics if rejected.
    pub fn add_party(&mut self, party: &str, role: Role) {
        let key = demo_key(party);
        let command = Command::RegisterParty {
            party: PartyId::new(party),
            role,
            keys: vec![key.public_key()],
        };
        self.keys.insert(PartyId::new(party), key);
        self.expect_accepted(OPERATOR, command);
    }

    /// Opens one account for `party`; operator accounts may run a debit balance (`flagged` off).
    pub fn open_account(
        &mut self,
        party: &str,
        id: u128,
        asset: &str,
        kind: AccountKind,
        flagged: bool,
    ) {
        let account = NewAccount {
            id,
            asset: asset.parse().expect("valid asset code"),
            kind,
            flags: AccountFlags {
                debits_must_not_exceed_credits: flagged,
                ..AccountFlags::default()
            },
            reference: 0,
        };
        let entry = self.submit(
            party,
            Command::CreateAccounts {
                accounts: vec![account],
            },
        );
        assert!(
            entry.body.outcome.rejected().is_none()
                && entry.body.outcome.event_results().is_empty(),
            "account {id} opens: {:?}",
            entry.body.outcome
        );
    }

    /// Signs `command` for `signer` with the next nonce, expiring a minute after the next tick.
    pub fn sign(&mut self, signer: &str, command: Command) -> SignedCommand {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let expires_at_ns = self.now_ns + self.step_ns + ENVELOPE_LIFETIME_NS;
        self.key(signer)
            .sign(PartyId::new(signer), nonce, expires_at_ns, command)
    }

    /// Applies an already signed command at the next tick.
    pub fn apply(&mut self, command: &SignedCommand) -> JournalEntry {
        self.now_ns += self.step_ns;
        let entry = self.ledger.apply(command, self.now_ns);
        self.journal.push(entry.clone());
        entry
    }

    /// Signs and applies.
    pub fn submit(&mut self, signer: &str, command: Command) -> JournalEntry {
        let signed = self.sign(signer, command);
        self.apply(&signed)
    }

    /// Signs and applies; panics unless the command and all its events applied.
    pub fn expect_accepted(&mut self, signer: &str, command: Command) -> JournalEntry {
        let entry = self.submit(signer, command);
        let outcome = &entry.body.outcome;
        assert!(
            outcome.rejected().is_none() && outcome.event_results().is_empty(),
            "accepted: {outcome:?}"
        );
        entry
    }
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    /// Issues `amount` of `asset` from its mint to `account` (signed by the operator); panics if
    /// refused. Transfer ids come from a range tests do not use (from 9,000,000,000).
    pub fn mint(&mut self, asset: &str, account: u128, amount: u128) {
        let asset: Asset = asset.parse().expect("valid asset code");
        let id = 9_000_000_000 + u128::from(self.ledger.head().index);
        let transfer = crate::transfer::Transfer::plain(
            id,
            crate::ids::system_account_id(&asset, AccountKind::Mint),
            account,
            amount,
            1,
            0,
        );
        self.expect_accepted(
            OPERATOR,
            Command::CreateTransfers {
                transfers: vec![transfer],
            },
        );
    }
}

/// The default account kind for tests.
pub const MAIN: AccountKind = AccountKind::Main;

/// SplitMix64: a small, seedable generator for test streams (tests bring their own seed; the
/// ledger itself never draws randomness).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
