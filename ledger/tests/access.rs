//! Every cell of the command × role table in `spec/access.md`, tried against the ledger.
//!
//! The table is read from the spec itself, so the spec and the code cannot drift apart: a cell
//! that says "denied" must give `not_permitted`; "allowed…" must not; "own party only" must be
//! allowed for the signer's own party and `not_permitted` for another's.

use ledger::testing::{demo_key, Harness, MAIN, OPERATOR};
use ledger::{Command, NewAccount, PartyId, Reason, Role, Transfer, TransferFlags};
use std::collections::BTreeMap;

/// The rows of the "Commands × roles" table: command name → role name → cell text.
fn spec_table() -> BTreeMap<String, BTreeMap<String, String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/access.md");
    let text = std::fs::read_to_string(path).expect("spec/access.md exists");
    let mut lines = text
        .lines()
        .skip_while(|line| !line.starts_with("| command |"));
    let header: Vec<String> = cells(lines.next().expect("the table has a header"));
    lines.next(); // |---|---|
    let mut table = BTreeMap::new();
    for line in lines.take_while(|line| line.starts_with('|')) {
        let row = cells(line);
        let command = row[0].trim_matches('`').to_owned();
        let by_role = header
            .iter()
            .skip(1)
            .cloned()
            .zip(row.into_iter().skip(1))
            .collect();
        table.insert(command, by_role);
    }
    table
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|cell| cell.trim().to_owned())
        .collect()
}

fn party_of(role: Role) -> String {
    if role == Role::Operator {
        OPERATOR.to_owned()
    } else {
        format!("p-{}", role.as_str())
    }
}

/// One instance of the command, signed by `signer`; `own` picks the signer's own party where
/// the command names one.
fn command(name: &str, signer: &str, own: bool, serial: u128) -> Command {
    let target = PartyId::new(if own {
        signer.to_owned()
    } else {
        "p-sme".to_owned()
    });
    let target = if !own && signer == "p-sme" {
        PartyId::new("p-institution")
    } else {
        target
    };
    match name {
        "register_party" => Command::RegisterParty {
            party: PartyId::new(format!("new-{serial}")),
            role: Role::Sme,
            keys: vec![demo_key(&format!("new-{serial}")).public_key()],
        },
        "register_asset" => Command::RegisterAsset {
            asset: format!("TOK:family{serial}").parse().unwrap(),
        },
        "add_key" => Command::AddKey {
            party: target,
            key: demo_key(&format!("extra-{serial}")).public_key(),
        },
        "revoke_key" => Command::RevokeKey {
            party: target,
            key: demo_key(&format!("never-{serial}")).public_key(),
        },
        "create_accounts" => Command::CreateAccounts {
            accounts: vec![NewAccount {
                id: 1_000 + serial,
                asset: "CNY".parse().unwrap(),
                kind: MAIN,
                flags: ledger::AccountFlags {
                    debits_must_not_exceed_credits: true,
                    ..Default::default()
                },
                reference: 0,
            }],
        },
        "create_transfers" => Command::CreateTransfers {
            transfers: vec![Transfer {
                id: 1_000 + serial,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 1,
                pending_id: 0,
                timeout_s: 0,
                code: 0,
                reference: 0,
                flags: TransferFlags::default(),
            }],
        },
        other => panic!("spec/access.md names a command the test does not know: {other}"),
    }
}

#[test]
fn every_cell_of_the_access_table_holds() {
    let table = spec_table();
    let mut h = Harness::new();
    for role in Role::ALL {
        if role != Role::Operator {
            h.add_party(&party_of(role), role);
        }
    }
    let mut serial = 0;
    let mut cells_tried = 0;
    for (name, by_role) in &table {
        if name == "genesis" {
            continue; // Only valid on an empty ledger: see commands.rs.
        }
        for role in Role::ALL {
            let cell = by_role
                .get(role.as_str())
                .unwrap_or_else(|| panic!("{name}: no column for {}", role.as_str()));
            let signer = party_of(role);
            let cases: Vec<(bool, bool)> = if cell == "denied" {
                vec![(true, false)]
            } else if cell.starts_with("allowed") {
                vec![(true, true)]
            } else if cell == "own party only" {
                vec![(true, true), (false, false)]
            } else {
                panic!("{name} × {}: unknown cell text {cell:?}", role.as_str());
            };
            for (own, allowed) in cases {
                serial += 1;
                cells_tried += 1;
                let entry = h.submit(&signer, command(name, &signer, own, serial));
                let refused = entry.body.outcome.rejected() == Some(Reason::NotPermitted);
                assert_eq!(
                    !refused,
                    allowed,
                    "{name} signed by a {} (own party: {own}): spec says {cell:?}, outcome {:?}",
                    role.as_str(),
                    entry.body.outcome
                );
            }
        }
    }
    assert!(
        cells_tried >= 36,
        "only {cells_tried} cells tried: is the table complete?"
    );
}
