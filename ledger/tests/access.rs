//! Every cell of the command × role table in `spec/access.md`, tried against the ledger.
//!
//! The table is read from the spec itself, so the spec and the code cannot drift apart: a cell
//! that says "denied" must give `not_permitted`; "allowed…" must not; "own party only" must be
//! allowed for the signer's own party and `not_permitted` for another's.

use ledger::testing::{demo_key, Harness, MAIN, OPERATOR};
use ledger::{Command, NewAccount, PartyId, Reason, Role, Transfer, TransferFlags};
use std::collections::BTreeMap;

/// The rows of the "… commands × roles" tables (core, bank, market): command name → role name
/// → cell text.
fn spec_table() -> BTreeMap<String, BTreeMap<String, String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/access.md");
    let text = std::fs::read_to_string(path).expect("spec/access.md exists");
    let mut table = BTreeMap::new();
    let mut lines = text.lines().peekable();
    let mut tables = 0;
    while let Some(line) = lines.next() {
        let header = cells(line);
        let is_header = line.starts_with('|')
            && header.len() == 7
            && (header[0] == "command" || header[0].ends_with(" command"));
        if !is_header {
            continue;
        }
        tables += 1;
        lines.next(); // |---|---|
        while let Some(line) = lines.next_if(|line| line.starts_with('|')) {
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
    }
    assert_eq!(
        tables, 4,
        "spec/access.md has the core, bank, market and voucher tables"
    );
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
        other => other_command(other, serial),
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
    let names: Vec<&str> = table.keys().map(String::as_str).collect();
    for name in ALL_COMMANDS {
        assert!(names.contains(name), "spec/access.md has no row for {name}");
    }
    assert!(
        cells_tried >= 36,
        "only {cells_tried} cells tried: is the table complete?"
    );
}

/// Every command's name: the access tables must have a row for each.
const ALL_COMMANDS: &[&str] = &[
    "genesis",
    "register_party",
    "add_key",
    "revoke_key",
    "register_asset",
    "create_accounts",
    "create_transfers",
    "set_rate_table",
    "register_host",
    "offer_capacity",
    "report_meter",
    "request_withdrawal",
    "cancel_withdrawal",
    "report_allocation",
    "list_product",
    "place_order",
    "cancel_order",
    "amend_order",
    "list_package",
    "buy_package",
    "record_usage",
    "create_programme",
    "issue_voucher",
    "revoke_voucher",
];

/// An instance of a bank or market command: only the role gate is tried, so the content need
/// not be valid beyond decoding.
fn other_command(name: &str, serial: u128) -> Command {
    let json = match name {
        "set_rate_table" => r#"{"set_rate_table": {"version": 1, "rates": []}}"#.to_owned(),
        "register_host" => format!(
            r#"{{"register_host": {{"host": {{"host_id": "h{serial}", "region": "r", "gpu_class": "H100", "gpu_count": 1, "agent_key": "{}", "account_id": "1"}}}}}}"#,
            hex_key(serial)
        ),
        "offer_capacity" => r#"{"offer_capacity": {"offer": {"offer_id": "1", "host_id": "h", "gpu_count": 1, "start_ns": "0", "end_ns": "1"}}}"#.to_owned(),
        "report_meter" => r#"{"report_meter": {"report": {"offer_id": "1", "from_ns": "0", "to_ns": "1", "available_gpu_s": 0, "busy_gpu_s": 0, "down_gpu_s": 0}}}"#.to_owned(),
        "report_allocation" => r#"{"report_allocation": {"allocation_id": "1", "update": "running"}}"#.to_owned(),
        "request_withdrawal" => r#"{"request_withdrawal": {"withdrawal": {"withdrawal_id": "1", "account_id": "1", "gpu_class": "H100", "gpu_count": 1, "duration_s": 1}}}"#.to_owned(),
        "cancel_withdrawal" => r#"{"cancel_withdrawal": {"withdrawal_id": "1"}}"#.to_owned(),
        "list_product" => r#"{"list_product": {"product": {"product_id": "P", "base": "GPUH:H100", "quote": "CNY", "lot_size": "1", "tick": "1", "fee_bps": 0}}}"#.to_owned(),
        "place_order" => r#"{"place_order": {"order": {"order_id": "1", "product_id": "P", "side": "buy", "price": "1", "quantity": "1", "time_in_force": "gtc", "base_account_id": "1", "quote_account_id": "1"}}}"#.to_owned(),
        "cancel_order" => r#"{"cancel_order": {"order_id": "1"}}"#.to_owned(),
        "amend_order" => r#"{"amend_order": {"order_id": "1", "quantity": "1"}}"#.to_owned(),
        "list_package" => r#"{"list_package": {"package": {"package_id": "p", "title": "t", "asset": "TOK:x", "quantity": "1", "price": "1", "validity_s": 1, "stock": "1", "seller_account_id": "1", "provider": "p-provider"}}}"#.to_owned(),
        "buy_package" => r#"{"buy_package": {"purchase": {"purchase_id": "1", "package_id": "p", "pay_account_id": "1", "receive_account_id": "2"}}}"#.to_owned(),
        "record_usage" => r#"{"record_usage": {"events": [{"event_id": "1", "account_id": "1", "tokens": "1", "at_ns": "0"}]}}"#.to_owned(),
        "create_programme" => r#"{"create_programme": {"programme": {"programme_id": "p", "title": "t", "budget": "1", "funding_account_id": "1", "eligible": {"assets": ["CNY"]}, "max_share_bps": 1, "cap_per_beneficiary_per_year": "1", "valid_from_ns": "0", "valid_until_ns": "1", "beneficiaries": {"role": "sme"}, "stackable": false}}}"#.to_owned(),
        "issue_voucher" => r#"{"issue_voucher": {"voucher": {"voucher_id": "1", "programme_id": "p", "beneficiary": "p-sme", "amount": "1", "expires_at_ns": "1"}}}"#.to_owned(),
        "revoke_voucher" => r#"{"revoke_voucher": {"voucher_id": "1"}}"#.to_owned(),
        other => panic!("spec/access.md names a command the test does not know: {other}"),
    };
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn hex_key(serial: u128) -> String {
    let key = demo_key(&format!("agent-{serial}")).public_key();
    serde_json::to_value(key)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}
