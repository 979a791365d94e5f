//! Command-level tests of the ledger: one case per rule, each through `check`.
//!
//! Every rejection case asserts its own reason code and that no balance and no transfer
//! changed. Accepted cases assert the balances that result.

use ledger::account::AccountKind;
use ledger::envelope::Signature;
use ledger::limits::{NS_PER_S, TRANSFERS_PER_BATCH_MAX};
use ledger::testing::{demo_key, Harness, MAIN, OPERATOR};
use ledger::{Command, Ledger, PartyId, Reason, Role, SignedCommand, Transfer, TransferFlags};

const MINT_CNY: u128 = 1;
const MINT_GPUH: u128 = 2;
const UNIV_CNY: u128 = 10;
const UNIV_GPUH: u128 = 11;
const SME_CNY: u128 = 20;
const SME_GPUH: u128 = 21;
const SME2_CNY: u128 = 30;

/// A university and two SMEs; the university holds ¥1,000.00 and the SME ¥500.00.
fn funded() -> Harness {
    let mut h = Harness::new();
    h.add_party("univ", Role::Institution);
    h.add_party("sme", Role::Sme);
    h.add_party("sme2", Role::Sme);
    h.add_party("audit", Role::Auditor);
    h.open_account(OPERATOR, MINT_CNY, "CNY", AccountKind::Mint, false);
    h.open_account(OPERATOR, MINT_GPUH, "GPUH:H100", AccountKind::Mint, false);
    h.open_account("univ", UNIV_CNY, "CNY", MAIN, true);
    h.open_account("univ", UNIV_GPUH, "GPUH:H100", MAIN, true);
    h.open_account("sme", SME_CNY, "CNY", MAIN, true);
    h.open_account("sme", SME_GPUH, "GPUH:H100", MAIN, true);
    h.open_account("sme2", SME2_CNY, "CNY", MAIN, true);
    h.expect_accepted(
        OPERATOR,
        transfers(vec![
            plain(100, MINT_CNY, UNIV_CNY, 100_000),
            plain(101, MINT_CNY, SME_CNY, 50_000),
        ]),
    );
    h
}

fn plain(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        pending_id: 0,
        timeout_s: 0,
        code: 1,
        reference: 0,
        flags: TransferFlags::default(),
    }
}

fn pending(id: u128, debit: u128, credit: u128, amount: u128, timeout_s: u32) -> Transfer {
    Transfer {
        timeout_s,
        flags: TransferFlags {
            pending: true,
            ..Default::default()
        },
        ..plain(id, debit, credit, amount)
    }
}

fn post(id: u128, pending_id: u128, amount: u128) -> Transfer {
    Transfer {
        pending_id,
        flags: TransferFlags {
            post_pending: true,
            ..Default::default()
        },
        ..plain(id, 0, 0, amount)
    }
}

fn void(id: u128, pending_id: u128) -> Transfer {
    Transfer {
        pending_id,
        flags: TransferFlags {
            void_pending: true,
            ..Default::default()
        },
        ..plain(id, 0, 0, 0)
    }
}

fn linked(mut transfer: Transfer) -> Transfer {
    transfer.flags.linked = true;
    transfer
}

fn transfers(transfers: Vec<Transfer>) -> Command {
    Command::CreateTransfers { transfers }
}

/// (account id, debits_pending, debits_posted, credits_pending, credits_posted) of every account.
fn balances(h: &Harness) -> Vec<(u128, u128, u128, u128, u128)> {
    h.ledger
        .accounts()
        .map(|a| {
            let b = a.balances;
            (
                a.id,
                b.debits_pending,
                b.debits_posted,
                b.credits_pending,
                b.credits_posted,
            )
        })
        .collect()
}

/// What a case expects.
enum Expect {
    /// The whole command is rejected with this reason.
    Rejected(Reason),
    /// The command is accepted; these events (index, reason) did not apply.
    Events(Vec<(u32, Reason)>),
}

/// Applies `command` and checks the outcome; for any failure, checks that nothing moved.
fn check(h: &mut Harness, command: &SignedCommand, expect: Expect) {
    let balances_before = balances(h);
    let transfers_before = h.ledger.transfers().count();
    let entry = h.apply(command);
    let outcome = &entry.body.outcome;
    let moved_nothing = match &expect {
        Expect::Rejected(reason) => {
            assert_eq!(outcome.rejected(), Some(*reason), "outcome {outcome:?}");
            true
        }
        Expect::Events(events) => {
            assert_eq!(outcome.rejected(), None, "outcome {outcome:?}");
            let actual: Vec<(u32, Reason)> = outcome
                .event_results()
                .iter()
                .map(|e| (e.index, e.reason))
                .collect();
            assert_eq!(&actual, events);
            !events.is_empty() && events.iter().all(|(_, r)| *r != Reason::TransferExists)
        }
    };
    if moved_nothing {
        assert_eq!(
            balances(h),
            balances_before,
            "a rejected command moved a balance"
        );
        assert_eq!(
            h.ledger.transfers().count(),
            transfers_before,
            "a rejected command stored a transfer"
        );
    }
    h.ledger.check_invariants().expect("invariants hold");
}

fn balance(h: &Harness, id: u128) -> (u128, u128, u128, u128) {
    let b = h.ledger.account(id).expect("account exists").balances;
    (
        b.debits_pending,
        b.debits_posted,
        b.credits_pending,
        b.credits_posted,
    )
}

// ---- the envelope ----------------------------------------------------------------------------

#[test]
fn a_wrong_signature_is_rejected() {
    let mut h = funded();
    let mut command = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 100)]));
    command.signature = Signature([7; 64]);
    check(&mut h, &command, Expect::Rejected(Reason::SignatureInvalid));
    // A valid signature over different bytes is just as wrong.
    let mut command = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 100)]));
    command.body.command = transfers(vec![plain(200, SME_CNY, UNIV_CNY, 10_000)]);
    check(&mut h, &command, Expect::Rejected(Reason::SignatureInvalid));
}

#[test]
fn replaying_the_journal_gives_the_same_entries_and_still_rejects_a_bad_signature() {
    let mut h = funded();
    let mut forged = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 100)]));
    forged.signature = Signature([7; 64]);
    check(&mut h, &forged, Expect::Rejected(Reason::SignatureInvalid));
    let valid = h.sign("sme", transfers(vec![plain(201, SME_CNY, UNIV_CNY, 100)]));
    check(&mut h, &valid, Expect::Events(vec![]));

    let mut replica = Ledger::new();
    for recorded in &h.journal {
        let replayed = replica.replay(recorded);
        assert_eq!(&replayed, recorded, "entry {}", recorded.body.index);
    }
    assert_eq!(replica.state_hash(), h.ledger.state_hash());

    // A signature changed on disk is not verified again by `replay`, but the entry's hash
    // covers it: the node's hash comparison catches it. `apply` rejects it outright.
    let mut tampered = h.journal.clone();
    let last = tampered.len() - 1;
    tampered[last].body.command.signature = Signature([7; 64]);
    let mut replica = Ledger::new();
    let mut checked = Ledger::new();
    for recorded in &tampered[..last] {
        replica.replay(recorded);
        checked.apply(&recorded.body.command, recorded.body.timestamp_ns);
    }
    let replayed = replica.replay(&tampered[last]);
    assert_ne!(replayed.hash, tampered[last].hash);
    let applied = checked.apply(
        &tampered[last].body.command,
        tampered[last].body.timestamp_ns,
    );
    assert_eq!(
        applied.body.outcome.rejected(),
        Some(Reason::SignatureInvalid)
    );
}

#[test]
fn a_signature_by_another_partys_key_is_rejected() {
    let mut h = funded();
    // sme2 signs with its own (valid) key but claims to act for sme, to spend sme's money.
    let command = demo_key("sme2").sign(
        PartyId::new("sme"),
        99,
        h.now_ns + 10 * NS_PER_S,
        transfers(vec![plain(200, SME_CNY, SME2_CNY, 100)]),
    );
    assert!(command.signature_is_valid());
    check(&mut h, &command, Expect::Rejected(Reason::KeyNotOfSigner));
}

#[test]
fn an_expired_envelope_is_rejected() {
    let mut h = funded();
    let command = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 100)]));
    h.now_ns = command.body.expires_at_ns; // the next tick is after the expiry
    check(&mut h, &command, Expect::Rejected(Reason::EnvelopeExpired));
}

#[test]
fn an_envelope_expiring_too_far_ahead_is_rejected() {
    let mut h = funded();
    let command = h.key("sme").sign(
        PartyId::new("sme"),
        5,
        h.now_ns + 3600 * NS_PER_S,
        transfers(vec![plain(200, SME_CNY, UNIV_CNY, 100)]),
    );
    check(
        &mut h,
        &command,
        Expect::Rejected(Reason::EnvelopeExpiryTooFar),
    );
}

#[test]
fn a_replayed_nonce_is_rejected_and_nothing_moves_twice() {
    let mut h = funded();
    let command = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 100)]));
    check(&mut h, &command, Expect::Events(vec![]));
    assert_eq!(balance(&h, SME_CNY), (0, 100, 0, 50_000));
    check(&mut h, &command, Expect::Rejected(Reason::NonceReplayed));
    assert_eq!(balance(&h, SME_CNY), (0, 100, 0, 50_000));
}

#[test]
fn an_unknown_signer_is_rejected() {
    let mut h = funded();
    let command = demo_key("ghost").sign(
        PartyId::new("ghost"),
        1,
        h.now_ns + NS_PER_S * 10,
        transfers(vec![plain(200, SME_CNY, UNIV_CNY, 1)]),
    );
    check(&mut h, &command, Expect::Rejected(Reason::SignerUnknown));
}

#[test]
fn commands_before_genesis_and_a_second_genesis_are_rejected() {
    let mut ledger = ledger::Ledger::new();
    let key = demo_key(OPERATOR);
    let command = key.sign(
        PartyId::new(OPERATOR),
        1,
        10 * NS_PER_S,
        Command::RegisterAsset {
            asset: "CNY".parse().unwrap(),
        },
    );
    assert_eq!(
        ledger.apply(&command, 1).body.outcome.rejected(),
        Some(Reason::LedgerNotInitialised)
    );
    let mut h = funded();
    let genesis = Command::Genesis {
        operator: PartyId::new(OPERATOR),
        keys: vec![key.public_key()],
        assets: vec![],
    };
    let command = h.sign(OPERATOR, genesis);
    check(
        &mut h,
        &command,
        Expect::Rejected(Reason::GenesisAlreadyApplied),
    );
}

// ---- rights and accounts ---------------------------------------------------------------------

#[test]
fn auditors_cannot_write_and_only_the_operator_registers() {
    let mut h = funded();
    let command = h.sign(
        "audit",
        Command::CreateAccounts {
            accounts: vec![new_account(40, "CNY", MAIN, true)],
        },
    );
    check(&mut h, &command, Expect::Rejected(Reason::NotPermitted));
    let command = h.sign(
        "sme",
        Command::RegisterParty {
            party: PartyId::new("x"),
            role: Role::Sme,
            keys: vec![demo_key("x").public_key()],
        },
    );
    check(&mut h, &command, Expect::Rejected(Reason::NotPermitted));
    let command = h.sign(
        "sme",
        Command::RegisterAsset {
            asset: "GPUH:A100".parse().unwrap(),
        },
    );
    check(&mut h, &command, Expect::Rejected(Reason::NotPermitted));
    let command = h.sign(
        "sme",
        Command::AddKey {
            party: PartyId::new("univ"),
            key: demo_key("y").public_key(),
        },
    );
    check(&mut h, &command, Expect::Rejected(Reason::NotPermitted));
    // Not even the operator may give itself a key of another party.
    let command = h.sign(
        OPERATOR,
        Command::AddKey {
            party: PartyId::new("sme"),
            key: demo_key("y").public_key(),
        },
    );
    check(&mut h, &command, Expect::Rejected(Reason::NotPermitted));
    // Nor create another operator.
    let command = h.sign(
        OPERATOR,
        Command::RegisterParty {
            party: PartyId::new("op2"),
            role: Role::Operator,
            keys: vec![demo_key("op2").public_key()],
        },
    );
    check(
        &mut h,
        &command,
        Expect::Rejected(Reason::RoleNotRegistrable),
    );
}

fn new_account(id: u128, asset: &str, kind: AccountKind, flagged: bool) -> ledger::NewAccount {
    ledger::NewAccount {
        id,
        asset: asset.parse().unwrap(),
        kind,
        flags: ledger::AccountFlags {
            debits_must_not_exceed_credits: flagged,
            ..Default::default()
        },
        reference: 0,
    }
}

#[test]
fn account_rules() {
    let mut h = funded();
    let cases = [
        (new_account(0, "CNY", MAIN, true), Reason::IdMustNotBeZero),
        (
            new_account(u128::MAX, "CNY", MAIN, true),
            Reason::IdMustNotBeIntMax,
        ),
        (
            new_account(41, "TOK:unknown", MAIN, true),
            Reason::AssetUnknown,
        ),
        (
            new_account(42, "CNY", AccountKind::Mint, false),
            Reason::AccountKindNotPermitted,
        ),
        (
            new_account(43, "CNY", MAIN, false),
            Reason::AccountFlagsNotPermitted,
        ),
        (
            new_account(SME_CNY, "CNY", MAIN, true),
            Reason::AccountExistsWithDifferentFields,
        ),
    ];
    for (account, reason) in cases {
        let command = h.sign(
            "univ",
            Command::CreateAccounts {
                accounts: vec![account],
            },
        );
        check(&mut h, &command, Expect::Events(vec![(0, reason)]));
    }
    // The same account again is a harmless repeat.
    let command = h.sign(
        "sme",
        Command::CreateAccounts {
            accounts: vec![new_account(SME_CNY, "CNY", MAIN, true)],
        },
    );
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::AccountExists)]),
    );
    let mut both = new_account(44, "CNY", MAIN, true);
    both.flags.credits_must_not_exceed_debits = true;
    let command = h.sign(
        "sme",
        Command::CreateAccounts {
            accounts: vec![both],
        },
    );
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::AccountFlagsAreMutuallyExclusive)]),
    );
}

#[test]
fn key_rotation_keeps_old_entries_and_rejects_the_revoked_key() {
    let mut h = funded();
    let new_key = demo_key("sme-rotated");
    h.expect_accepted(
        "sme",
        Command::AddKey {
            party: PartyId::new("sme"),
            key: new_key.public_key(),
        },
    );
    let old = demo_key("sme").public_key();
    h.expect_accepted(
        "sme",
        Command::RevokeKey {
            party: PartyId::new("sme"),
            key: old,
        },
    );
    let command = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 1)]));
    check(&mut h, &command, Expect::Rejected(Reason::KeyNotOfSigner));
    let command = new_key.sign(
        PartyId::new("sme"),
        777,
        h.now_ns + 10 * NS_PER_S,
        transfers(vec![plain(200, SME_CNY, UNIV_CNY, 1)]),
    );
    check(&mut h, &command, Expect::Events(vec![]));
    let command = new_key.sign(
        PartyId::new("sme"),
        778,
        h.now_ns + 10 * NS_PER_S,
        Command::RevokeKey {
            party: PartyId::new("sme"),
            key: new_key.public_key(),
        },
    );
    check(&mut h, &command, Expect::Rejected(Reason::KeyLast));
    // A revoked key is never reused by anyone.
    let command = h.sign(
        OPERATOR,
        Command::RegisterParty {
            party: PartyId::new("reuse"),
            role: Role::Sme,
            keys: vec![old],
        },
    );
    check(&mut h, &command, Expect::Rejected(Reason::KeyInUse));
}

// ---- transfers -------------------------------------------------------------------------------

#[test]
fn transfer_rejections_each_have_their_own_code() {
    let cases: Vec<(Transfer, Reason)> = vec![
        (plain(0, SME_CNY, UNIV_CNY, 1), Reason::IdMustNotBeZero),
        (plain(200, 999, UNIV_CNY, 1), Reason::DebitAccountUnknown),
        (plain(200, SME_CNY, 999, 1), Reason::CreditAccountUnknown),
        (plain(200, SME_CNY, UNIV_GPUH, 1), Reason::AssetMismatch),
        (
            plain(200, SME_CNY, UNIV_CNY, 50_001),
            Reason::ExceedsCredits,
        ),
        (plain(200, UNIV_CNY, SME_CNY, 1), Reason::NotAccountOwner),
        (
            plain(200, SME_CNY, SME_CNY, 1),
            Reason::AccountsMustBeDifferent,
        ),
        (
            plain(200, SME_CNY, UNIV_CNY, 0),
            Reason::AmountMustNotBeZero,
        ),
        (
            plain(200, 0, UNIV_CNY, 1),
            Reason::DebitAccountIdMustNotBeZero,
        ),
        (
            Transfer {
                timeout_s: 5,
                ..plain(200, SME_CNY, UNIV_CNY, 1)
            },
            Reason::TimeoutReservedForPendingTransfer,
        ),
        (
            pending(200, SME_CNY, UNIV_CNY, 1, 0),
            Reason::PendingTransferTimeoutRequired,
        ),
        (
            pending(
                200,
                SME_CNY,
                UNIV_CNY,
                1,
                ledger::limits::PENDING_TIMEOUT_S_MAX + 1,
            ),
            Reason::TimeoutTooLong,
        ),
        (
            Transfer {
                pending_id: 5,
                ..plain(200, SME_CNY, UNIV_CNY, 1)
            },
            Reason::PendingIdMustBeZero,
        ),
        (post(200, 0, 1), Reason::PendingIdMustNotBeZero),
        (post(200, 200, 1), Reason::PendingIdMustBeDifferent),
        (post(200, 12345, 1), Reason::PendingTransferNotFound),
        (post(200, 101, 1), Reason::PendingTransferNotPending),
        (
            Transfer {
                flags: TransferFlags {
                    pending: true,
                    post_pending: true,
                    ..Default::default()
                },
                ..plain(200, SME_CNY, UNIV_CNY, 1)
            },
            Reason::TransferFlagsAreMutuallyExclusive,
        ),
        (
            plain(101, SME_CNY, UNIV_CNY, 1),
            Reason::TransferExistsWithDifferentFields,
        ),
    ];
    for (transfer, reason) in cases {
        let mut h = funded();
        let command = h.sign("sme", transfers(vec![transfer]));
        check(&mut h, &command, Expect::Events(vec![(0, reason)]));
    }
}

#[test]
fn an_oversized_batch_is_rejected_whole() {
    let mut h = funded();
    let batch: Vec<Transfer> = (0..=TRANSFERS_PER_BATCH_MAX as u128)
        .map(|i| plain(1000 + i, SME_CNY, UNIV_CNY, 1))
        .collect();
    let command = h.sign("sme", transfers(batch));
    check(&mut h, &command, Expect::Rejected(Reason::BatchTooLarge));
    let command = h.sign("sme", transfers(vec![]));
    check(&mut h, &command, Expect::Rejected(Reason::BatchEmpty));
}

#[test]
fn a_full_batch_applies() {
    let mut h = funded();
    let batch: Vec<Transfer> = (0..TRANSFERS_PER_BATCH_MAX as u128)
        .map(|i| plain(1000 + i, SME_CNY, UNIV_CNY, 1))
        .collect();
    let command = h.sign("sme", transfers(batch));
    assert!(command.to_bytes().len() <= ledger::limits::COMMAND_BYTES_MAX);
    check(&mut h, &command, Expect::Events(vec![]));
    assert_eq!(
        balance(&h, SME_CNY),
        (0, TRANSFERS_PER_BATCH_MAX as u128, 0, 50_000)
    );
}

#[test]
fn an_exact_retry_is_idempotent() {
    let mut h = funded();
    let command = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 300)]));
    check(&mut h, &command, Expect::Events(vec![]));
    let retry = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 300)]));
    check(
        &mut h,
        &retry,
        Expect::Events(vec![(0, Reason::TransferExists)]),
    );
    assert_eq!(balance(&h, SME_CNY), (0, 300, 0, 50_000));
}

#[test]
fn a_linked_chain_is_all_or_nothing() {
    let mut h = funded();
    // The second transfer overdraws, so the first must not apply either; the third is separate.
    let command = h.sign(
        "sme",
        transfers(vec![
            linked(plain(200, SME_CNY, UNIV_CNY, 100)),
            plain(201, SME_CNY, UNIV_CNY, 60_000),
            plain(202, SME_CNY, SME2_CNY, 7),
        ]),
    );
    let before = balance(&h, SME_CNY);
    let entry = h.apply(&command);
    let results: Vec<(u32, Reason)> = entry
        .body
        .outcome
        .event_results()
        .iter()
        .map(|e| (e.index, e.reason))
        .collect();
    assert_eq!(
        results,
        vec![(0, Reason::LinkedEventFailed), (1, Reason::ExceedsCredits)]
    );
    assert!(h.ledger.transfer(200).is_none() && h.ledger.transfer(201).is_none());
    assert_eq!(
        balance(&h, SME_CNY),
        (before.0, before.1 + 7, before.2, before.3)
    );
    // A chain left open at the end of the batch never applies.
    let command = h.sign(
        "sme",
        transfers(vec![linked(plain(203, SME_CNY, UNIV_CNY, 1))]),
    );
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::LinkedEventChainOpen)]),
    );
}

#[test]
fn two_phase_transfers_post_partly_void_and_expire() {
    let mut h = funded();
    h.expect_accepted(
        "sme",
        transfers(vec![
            pending(300, SME_CNY, UNIV_CNY, 1_000, 3600),
            pending(301, SME_CNY, UNIV_CNY, 2_000, 3600),
            pending(302, SME_CNY, UNIV_CNY, 4_000, 10),
        ]),
    );
    assert_eq!(balance(&h, SME_CNY), (7_000, 0, 0, 50_000));
    // More than what is left cannot be reserved.
    let command = h.sign(
        "sme",
        transfers(vec![pending(303, SME_CNY, UNIV_CNY, 43_001, 60)]),
    );
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::ExceedsCredits)]),
    );
    // The payee posts part of 300: 600 moves, 400 is released.
    h.expect_accepted("univ", transfers(vec![post(310, 300, 600)]));
    assert_eq!(balance(&h, SME_CNY), (6_000, 600, 0, 50_000));
    assert_eq!(balance(&h, UNIV_CNY), (0, 0, 6_000, 100_600));
    let command = h.sign("univ", transfers(vec![post(311, 300, 1)]));
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::PendingTransferAlreadyPosted)]),
    );
    let command = h.sign("univ", transfers(vec![post(311, 301, 2_001)]));
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::ExceedsPendingTransferAmount)]),
    );
    // The payer may not void its own reservation; the payee may; a stranger learns nothing.
    let command = h.sign("sme", transfers(vec![void(312, 301)]));
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::NotAccountOwner)]),
    );
    let command = h.sign("sme2", transfers(vec![post(312, 300, 1)]));
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::NotAccountOwner)]),
    );
    h.expect_accepted("univ", transfers(vec![void(312, 301)]));
    assert_eq!(balance(&h, SME_CNY), (4_000, 600, 0, 50_000));
    let command = h.sign("univ", transfers(vec![void(313, 301)]));
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::PendingTransferAlreadyVoided)]),
    );
    // 302 times out 10 s after it was applied, at the first command at or after that moment.
    h.step_ns = 11 * NS_PER_S;
    let entry = h.submit("sme", transfers(vec![plain(320, SME_CNY, UNIV_CNY, 1)]));
    assert_eq!(
        entry
            .body
            .outcome
            .expired
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![302]
    );
    assert_eq!(balance(&h, SME_CNY), (0, 601, 0, 50_000));
    let command = h.sign("univ", transfers(vec![post(314, 302, 0)]));
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::PendingTransferExpired)]),
    );
}

#[test]
fn a_retry_outside_its_chain_is_the_same_transfer() {
    let mut h = funded();
    h.expect_accepted(
        "sme",
        transfers(vec![
            linked(plain(200, SME_CNY, UNIV_CNY, 5)),
            plain(201, SME_CNY, UNIV_CNY, 6),
        ]),
    );
    let command = h.sign("sme", transfers(vec![plain(200, SME_CNY, UNIV_CNY, 5)]));
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::TransferExists)]),
    );
}

#[test]
fn expiry_is_bounded_per_command_and_a_late_post_is_refused() {
    use ledger::limits::EXPIRIES_PER_COMMAND_MAX;
    let mut h = funded();
    let count = EXPIRIES_PER_COMMAND_MAX as u128 + 10;
    let batch: Vec<Transfer> = (0..count)
        .map(|i| pending(10_000 + i, SME_CNY, UNIV_CNY, 1, 1))
        .collect();
    let (first, second) = batch.split_at(ledger::limits::TRANSFERS_PER_BATCH_MAX);
    h.expect_accepted("sme", transfers(first.to_vec()));
    h.expect_accepted("sme", transfers(second.to_vec()));
    h.step_ns = 2 * NS_PER_S;
    // The first command after the deadline releases at most the bound, earliest first...
    let last_id = 10_000 + count - 1;
    let entry = h.submit("univ", transfers(vec![post(9_999, last_id, 1)]));
    assert_eq!(entry.body.outcome.expired.len(), EXPIRIES_PER_COMMAND_MAX);
    // ...and a post of one the sweep has not reached is refused all the same.
    assert_eq!(
        entry.body.outcome.event_results()[0].reason,
        Reason::PendingTransferExpired
    );
    assert_eq!(balance(&h, SME_CNY).0, 10);
    let entry = h.submit("univ", transfers(vec![plain(9_998, UNIV_CNY, SME_CNY, 1)]));
    assert_eq!(entry.body.outcome.expired.len(), 10);
    assert_eq!(balance(&h, SME_CNY).0, 0);
    h.ledger.check_invariants().expect("invariants hold");
}

#[test]
fn the_mint_can_issue_and_flagged_accounts_cannot_go_negative() {
    let mut h = funded();
    assert_eq!(balance(&h, MINT_CNY), (0, 150_000, 0, 0));
    let command = h.sign("univ", transfers(vec![plain(200, UNIV_GPUH, SME_GPUH, 1)]));
    check(
        &mut h,
        &command,
        Expect::Events(vec![(0, Reason::ExceedsCredits)]),
    );
    h.expect_accepted(
        OPERATOR,
        transfers(vec![plain(201, MINT_GPUH, UNIV_GPUH, 3600)]),
    );
    h.expect_accepted(
        "univ",
        transfers(vec![plain(202, UNIV_GPUH, SME_GPUH, 3600)]),
    );
    assert_eq!(balance(&h, SME_GPUH), (0, 0, 0, 3600));
}
