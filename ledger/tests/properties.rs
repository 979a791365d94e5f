//! Seeded property tests: random command streams against the ledger's invariants.
//!
//! Each run prints its seed; `CBANK_SEED=<seed> cargo test -p ledger --test properties`
//! reproduces it exactly. `CBANK_COMMANDS=<n>` changes the stream length (default 12,000).
//! Checked after every command: per asset Σdebits = Σcredits (pending and posted), no flagged
//! account past its limit, balances equal to the sum of their transfers (`check_invariants`);
//! no transfer id applied twice; linked chains all-or-nothing. At the end: a second ledger fed
//! the same stream, and a third restored from a snapshot half-way, end with the same head and
//! state hash.

use ledger::account::AccountKind;
use ledger::envelope::Signature;
use ledger::limits::NS_PER_S;
use ledger::testing::Rng;
use ledger::testing::{demo_key, Harness, MAIN, OPERATOR};
use ledger::{Command, Ledger, PartyId, Reason, Role, SignedCommand, Transfer, TransferFlags};
use std::collections::{BTreeMap, BTreeSet};

fn seed() -> u64 {
    match std::env::var("CBANK_SEED") {
        Ok(text) => text.parse().expect("CBANK_SEED is a u64"),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970");
            now.as_nanos() as u64
        }
    }
}

fn command_count() -> usize {
    std::env::var("CBANK_COMMANDS")
        .map(|n| n.parse().expect("CBANK_COMMANDS is a count"))
        .unwrap_or(12_000)
}

const PARTIES: [(&str, Role); 5] = [
    ("univ-a", Role::Institution),
    ("univ-b", Role::Institution),
    ("sme-a", Role::Sme),
    ("sme-b", Role::Sme),
    ("city", Role::Government),
];
const ASSETS: [&str; 3] = ["CNY", "GPUH:H100", "TOK:qwen"];

/// The world the generator knows: who owns which account of which asset.
struct World {
    /// account id -> (owner, asset index)
    accounts: BTreeMap<u128, (String, usize)>,
    transfer_ids: Vec<u128>,
    pending_ids: Vec<u128>,
    next_id: u128,
    old_commands: Vec<SignedCommand>,
}

fn setup(h: &mut Harness, world: &mut World) {
    for (party, role) in PARTIES {
        h.add_party(party, role);
    }
    let mut id = 1u128;
    for (asset_index, asset) in ASSETS.iter().enumerate() {
        // The mint may run a debit balance; a "capped" system account must not exceed debits.
        h.open_account(OPERATOR, id, asset, AccountKind::Mint, false);
        world
            .accounts
            .insert(id, (OPERATOR.to_owned(), asset_index));
        id += 1;
        for (party, _) in PARTIES {
            for _ in 0..2 {
                h.open_account(party, id, asset, MAIN, true);
                world.accounts.insert(id, (party.to_owned(), asset_index));
                id += 1;
            }
        }
    }
    let capped = ledger::NewAccount {
        id,
        asset: "CNY".parse().unwrap(),
        kind: AccountKind::Pool,
        flags: ledger::AccountFlags {
            credits_must_not_exceed_debits: true,
            ..Default::default()
        },
        reference: 0,
    };
    h.expect_accepted(
        OPERATOR,
        Command::CreateAccounts {
            accounts: vec![capped],
        },
    );
    world.accounts.insert(id, (OPERATOR.to_owned(), 0));
}

fn random_transfer(rng: &mut Rng, world: &mut World, signer: &str) -> Transfer {
    let ids: Vec<u128> = world.accounts.keys().copied().collect();
    // Mostly accounts of the signer with matching assets; sometimes anything, to hit errors.
    let owned: Vec<u128> = world
        .accounts
        .iter()
        .filter(|(_, (owner, _))| owner == signer)
        .map(|(id, _)| *id)
        .collect();
    let debit = if !owned.is_empty() && rng.chance(85) {
        *rng.pick(&owned)
    } else {
        *rng.pick(&ids)
    };
    let debit_asset = world
        .accounts
        .get(&debit)
        .map(|(_, asset)| *asset)
        .unwrap_or(0);
    let same_asset: Vec<u128> = world
        .accounts
        .iter()
        .filter(|(_, (_, asset))| *asset == debit_asset)
        .map(|(id, _)| *id)
        .collect();
    let credit = if rng.chance(92) {
        *rng.pick(&same_asset)
    } else {
        *rng.pick(&ids)
    };
    let amount = match rng.below(10) {
        0 => 0,
        1 => u128::from(rng.next_u64()) * u128::from(rng.next_u64()),
        2..=4 => u128::from(rng.below(1_000_000)),
        _ => u128::from(rng.below(5_000)) + 1,
    };
    let id = if rng.chance(4) && !world.transfer_ids.is_empty() {
        *rng.pick(&world.transfer_ids)
    } else {
        world.next_id += 1;
        world.next_id
    };
    let mut transfer = Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        pending_id: 0,
        timeout_s: 0,
        code: rng.below(4) as u16,
        reference: 0,
        flags: TransferFlags {
            linked: rng.chance(15),
            ..Default::default()
        },
    };
    match rng.below(10) {
        0..=1 => {
            transfer.flags.pending = true;
            // Mostly short timeouts that expire during the stream; sometimes none (rejected).
            transfer.timeout_s = if rng.chance(90) {
                1 + rng.below(30) as u32
            } else {
                0
            };
        }
        2 if !world.pending_ids.is_empty() => {
            transfer.flags.post_pending = true;
            transfer.pending_id = *rng.pick(&world.pending_ids);
            transfer.amount = if rng.chance(50) {
                0
            } else {
                u128::from(rng.below(3_000))
            };
            if rng.chance(70) {
                transfer.debit_account_id = 0;
                transfer.credit_account_id = 0;
            }
        }
        3 if !world.pending_ids.is_empty() => {
            transfer.flags.void_pending = true;
            transfer.pending_id = *rng.pick(&world.pending_ids);
            transfer.amount = 0;
            transfer.debit_account_id = 0;
            transfer.credit_account_id = 0;
        }
        _ => {}
    }
    transfer
}

fn random_command(rng: &mut Rng, h: &mut Harness, world: &mut World) -> SignedCommand {
    let signers: Vec<&str> = PARTIES.iter().map(|(p, _)| *p).chain([OPERATOR]).collect();
    let signer = *rng.pick(&signers);
    match rng.below(100) {
        // Replay an old envelope verbatim.
        0..=1 if !world.old_commands.is_empty() => rng.pick(&world.old_commands).clone(),
        // Corrupt a signature.
        2 => {
            let mut command = h.sign(
                signer,
                Command::CreateTransfers {
                    transfers: vec![random_transfer(rng, world, signer)],
                },
            );
            command.signature = Signature([rng.below(255) as u8; 64]);
            command
        }
        // A key of another party.
        3 => {
            let other = *rng.pick(&signers);
            demo_key(other).sign(
                PartyId::new(signer),
                u128::from(rng.next_u64()),
                h.now_ns + 30 * NS_PER_S,
                Command::CreateTransfers {
                    transfers: vec![random_transfer(rng, world, signer)],
                },
            )
        }
        // Open more accounts (with repeats and bad ones mixed in).
        4..=5 => {
            world.next_id += 1;
            let asset_index = rng.below(ASSETS.len() as u64) as usize;
            let id = if rng.chance(20) {
                *rng.pick(&world.accounts.keys().copied().collect::<Vec<_>>())
            } else {
                1_000_000 + world.next_id
            };
            let account = ledger::NewAccount {
                id,
                asset: ASSETS[asset_index].parse().unwrap(),
                kind: MAIN,
                flags: ledger::AccountFlags {
                    debits_must_not_exceed_credits: rng.chance(90),
                    ..Default::default()
                },
                reference: 0,
            };
            let command = h.sign(
                signer,
                Command::CreateAccounts {
                    accounts: vec![account],
                },
            );
            world
                .accounts
                .entry(id)
                .or_insert((signer.to_owned(), asset_index));
            command
        }
        // Operator funding so the parties have something to move.
        6..=15 => {
            let party_accounts: Vec<(u128, usize)> = world
                .accounts
                .iter()
                .filter(|(_, (o, _))| o != OPERATOR)
                .map(|(id, (_, a))| (*id, *a))
                .collect();
            let (account, asset_index) = *rng.pick(&party_accounts);
            world.next_id += 1;
            let transfer = Transfer {
                id: world.next_id,
                debit_account_id: asset_index as u128 * 11 + 1,
                credit_account_id: account,
                amount: u128::from(rng.below(100_000)) + 1,
                pending_id: 0,
                timeout_s: 0,
                code: 0,
                reference: 0,
                flags: TransferFlags::default(),
            };
            h.sign(
                OPERATOR,
                Command::CreateTransfers {
                    transfers: vec![transfer],
                },
            )
        }
        _ => {
            let count = 1 + rng.below(8) as usize;
            let transfers = (0..count)
                .map(|_| random_transfer(rng, world, signer))
                .collect();
            h.sign(signer, Command::CreateTransfers { transfers })
        }
    }
}

/// The stored records of the transfers a command names, before it is applied.
fn transfers_before(
    ledger: &Ledger,
    command: &SignedCommand,
) -> BTreeMap<u128, ledger::TransferRecord> {
    let Command::CreateTransfers { transfers } = &command.body.command else {
        return BTreeMap::new();
    };
    transfers
        .iter()
        .filter_map(|t| ledger.transfer(t.id).map(|r| (t.id, r.clone())))
        .collect()
}

/// Checks one applied command's batch semantics against the ledger before and after.
fn check_batch(
    before: &BTreeMap<u128, ledger::TransferRecord>,
    after: &Ledger,
    command: &SignedCommand,
    entry: &ledger::JournalEntry,
) -> Result<(), String> {
    let Command::CreateTransfers { transfers } = &command.body.command else {
        return Ok(());
    };
    if entry.body.outcome.rejected().is_some() {
        // A rejected command stores no transfer.
        for t in transfers {
            if !before.contains_key(&t.id) && after.transfer(t.id).is_some() {
                return Err(format!("rejected command stored transfer {}", t.id));
            }
        }
        return Ok(());
    }
    let failed: BTreeMap<u32, Reason> = entry
        .body
        .outcome
        .event_results()
        .iter()
        .map(|e| (e.index, e.reason))
        .collect();
    let mut chain: Vec<usize> = Vec::new();
    for (index, t) in transfers.iter().enumerate() {
        chain.push(index);
        let is_last = index + 1 == transfers.len();
        if t.flags.linked && !is_last {
            continue;
        }
        // The chain is complete: all its events failed, or none did.
        let failures = chain
            .iter()
            .filter(|i| {
                failed
                    .get(&(**i as u32))
                    .is_some_and(|r| *r != Reason::TransferExists)
            })
            .count();
        if failures != 0 && failures != chain.len() {
            return Err(format!("linked chain {chain:?} partly applied: {failed:?}"));
        }
        chain.clear();
    }
    for (index, t) in transfers.iter().enumerate() {
        let result = failed.get(&(index as u32));
        let existed = before.get(&t.id);
        match (existed, result) {
            // An id applied before is never applied again: the stored record is unchanged.
            // (Its pending state may move on: posted, voided or expired; nothing else.)
            (Some(old), _) => {
                let now = after
                    .transfer(t.id)
                    .ok_or(format!("transfer {} disappeared", t.id))?;
                let same = ledger::TransferRecord {
                    state: old.state,
                    ..now.clone()
                };
                if same != *old {
                    return Err(format!("transfer {} was applied twice", t.id));
                }
            }
            (None, None) => {
                let record = after
                    .transfer(t.id)
                    .ok_or(format!("transfer {} succeeded but is not stored", t.id))?;
                if record.journal_index != entry.body.index {
                    return Err(format!("transfer {} stored under another entry", t.id));
                }
            }
            (None, Some(_)) => {}
        }
    }
    Ok(())
}

#[test]
fn random_streams_keep_every_invariant_and_replay_identically() {
    let seed = seed();
    let count = command_count();
    println!("seed = {seed}; reproduce: CBANK_SEED={seed} cargo test -p ledger --test properties");
    let mut rng = Rng(seed);
    let mut h = Harness::new();
    let mut world = World {
        accounts: BTreeMap::new(),
        transfer_ids: Vec::new(),
        pending_ids: Vec::new(),
        next_id: 10_000,
        old_commands: Vec::new(),
    };
    setup(&mut h, &mut world);
    let genesis_state = h.ledger.clone();
    let mut stream: Vec<(SignedCommand, u64)> = Vec::new();
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut transfers_applied = 0usize;
    for step in 0..count {
        h.step_ns = 1 + rng.below(3 * NS_PER_S);
        let command = random_command(&mut rng, &mut h, &mut world);
        let before = transfers_before(&h.ledger, &command);
        let entry = h.apply(&command);
        // The full invariant pass costs O(state); run it often enough to pin a failure down.
        let invariants = if step % 50 == 0 || step + 1 == count {
            h.ledger.check_invariants()
        } else {
            Ok(())
        };
        if let Err(why) =
            invariants.and_then(|()| check_batch(&before, &h.ledger, &command, &entry))
        {
            panic!(
                "seed {seed}, command {step}: {why}\ncommand: {command:?}\noutcome: {:?}",
                entry.body.outcome
            );
        }
        match entry.body.outcome.rejected() {
            Some(reason) => *reasons.entry(reason.name()).or_default() += 1,
            None => {
                for event in entry.body.outcome.event_results() {
                    *reasons.entry(event.reason.name()).or_default() += 1;
                }
            }
        }
        if let Command::CreateTransfers { transfers } = &command.body.command {
            let failed: BTreeSet<u32> = entry
                .body
                .outcome
                .event_results()
                .iter()
                .map(|e| e.index)
                .collect();
            for (index, t) in transfers.iter().enumerate() {
                if entry.body.outcome.rejected().is_none() && !failed.contains(&(index as u32)) {
                    transfers_applied += 1;
                    world.transfer_ids.push(t.id);
                    if t.flags.pending {
                        world.pending_ids.push(t.id);
                    }
                }
            }
        }
        if rng.chance(3) {
            world.old_commands.push(command.clone());
        }
        stream.push((command, h.now_ns));
    }
    println!("{count} commands, {transfers_applied} transfers applied; reasons seen: {reasons:?}");
    assert!(
        transfers_applied > count / 2,
        "the stream must mostly apply, or it proves little"
    );
    assert!(
        reasons.len() >= 15,
        "the stream must hit many rejection paths: {reasons:?}"
    );

    // Determinism: a second replica fed the same stream ends identical; so does one restored
    // from a snapshot half-way.
    let mut replica = genesis_state.clone();
    let mut restored: Option<Ledger> = None;
    for (index, (command, timestamp_ns)) in stream.iter().enumerate() {
        if index == stream.len() / 2 {
            restored = Some(Ledger::restore(&replica.snapshot()).expect("snapshot restores"));
        }
        replica.apply(command, *timestamp_ns);
        if let Some(restored) = restored.as_mut() {
            restored.apply(command, *timestamp_ns);
        }
    }
    assert_eq!(replica.head(), h.ledger.head(), "seed {seed}: heads differ");
    assert_eq!(
        replica.state_hash(),
        h.ledger.state_hash(),
        "seed {seed}: state hashes differ"
    );
    let restored = restored.expect("the stream is not empty");
    assert_eq!(
        restored.state_hash(),
        h.ledger.state_hash(),
        "seed {seed}: restored replica differs"
    );
}
