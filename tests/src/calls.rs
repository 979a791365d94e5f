//! The calls every business test area makes against a [`Cluster`]: sign a command for a party
//! and post it to its typed route through the leader (expecting it accepted, or rejected with a
//! given status and code), register parties with their demo keys, open and fund accounts, and
//! read balances. Amounts are in minor units; the API writes `u64` and `u128` as decimal
//! strings, which [`number`] reads.

use crate::api::{ApiError, WriteResponse};
use crate::cluster::Cluster;
use crate::fixture::next_transfer_id;
use crate::sign::sign;
use ledger::testing::{demo_key, OPERATOR};
use ledger::{
    Account, AccountFlags, AccountKind, Asset, Balances, Command, NewAccount, Outcome, PartyId,
    Role, Transfer, TransferFlags,
};

/// Signs `command` for `signer` and posts it to `path` on the leader.
pub fn submit(
    cluster: &mut Cluster,
    path: &str,
    signer: &str,
    command: Command,
) -> Result<WriteResponse, ApiError> {
    let leader = cluster.leader();
    cluster
        .client()
        .submit(leader, path, &sign(signer, command))
}

/// Like [`submit`], panicking unless the ledger accepted the command with no failed event.
pub fn expect_accepted(
    cluster: &mut Cluster,
    path: &str,
    signer: &str,
    command: Command,
) -> Outcome {
    expect_accepted_at(cluster, path, signer, command).outcome
}

/// Like [`expect_accepted`], with the whole answer (journal index and hash, timestamp).
pub fn expect_accepted_at(
    cluster: &mut Cluster,
    path: &str,
    signer: &str,
    command: Command,
) -> WriteResponse {
    let name = command.name();
    let response = submit(cluster, path, signer, command)
        .unwrap_or_else(|error| panic!("{name} by {signer} on {path}: {error}"));
    let outcome = &response.outcome;
    assert!(
        outcome.rejected().is_none() && outcome.event_results().is_empty(),
        "{name} by {signer} applies cleanly: {outcome:?}"
    );
    response
}

/// Like [`submit`], panicking unless the answer is the error `status` and `code`, recorded in
/// the journal (a ledger rejection names its entry). Returns the error.
pub fn expect_rejected(
    cluster: &mut Cluster,
    path: &str,
    signer: &str,
    command: Command,
    status: u16,
    code: &str,
) -> ApiError {
    let name = command.name();
    match submit(cluster, path, signer, command) {
        Ok(response) => panic!(
            "{name} by {signer} should be rejected with {code}, got {:?}",
            response.outcome
        ),
        Err(error) => {
            assert_eq!(
                (error.status, error.code.as_str()),
                (Some(status), code),
                "{name} by {signer}: {error}"
            );
            assert!(
                error.journal_index().is_some(),
                "a ledger rejection names its journal entry: {}",
                error.body
            );
            error
        }
    }
}

/// Registers each party with its role and demo key (signed by the operator).
pub fn register_parties(cluster: &mut Cluster, parties: &[(&str, Role)]) {
    for (party, role) in parties {
        let register = Command::RegisterParty {
            party: PartyId::new(*party),
            role: *role,
            keys: vec![demo_key(party).public_key()],
        };
        expect_accepted(cluster, "/v1/parties", OPERATOR, register);
    }
}

/// Opens each party's main accounts (id, asset), guarded against overdraft, signed by the party.
pub fn open_main_accounts(cluster: &mut Cluster, accounts: &[(&str, Vec<(u128, Asset)>)]) {
    for (party, accounts) in accounts {
        let accounts = accounts
            .iter()
            .map(|(id, asset)| NewAccount {
                id: *id,
                asset: asset.clone(),
                kind: AccountKind::Main,
                flags: AccountFlags {
                    debits_must_not_exceed_credits: true,
                    ..AccountFlags::default()
                },
                reference: 0,
            })
            .collect();
        expect_accepted(
            cluster,
            "/v1/accounts",
            party,
            Command::CreateAccounts { accounts },
        );
    }
}

/// Moves (from, to, amount) from operator accounts (mints), in one command.
pub fn fund(cluster: &mut Cluster, funding: &[(u128, u128, u128)]) {
    let transfers = funding
        .iter()
        .map(|(from, to, amount)| Transfer {
            id: next_transfer_id(),
            debit_account_id: *from,
            credit_account_id: *to,
            amount: *amount,
            pending_id: 0,
            timeout_s: 0,
            code: 1,
            reference: 0,
            flags: TransferFlags::default(),
        })
        .collect();
    expect_accepted(
        cluster,
        "/v1/transfers",
        OPERATOR,
        Command::CreateTransfers { transfers },
    );
}

pub fn account(cluster: &mut Cluster, id: u128) -> Account {
    cluster.read(&format!("/v1/accounts/{id}"))
}

pub fn balances(cluster: &mut Cluster, id: u128) -> Balances {
    account(cluster, id).balances
}

/// Checks that the account's all-time statement, rebuilt from the node's index of the
/// account's transfers (the ledger's derived ones included), closes on its balances, and
/// returns how many lines it has.
pub fn statement_closes(cluster: &mut Cluster, id: u128) -> usize {
    let statement: ledger::statement::Statement =
        cluster.read(&format!("/v1/accounts/{id}/statement"));
    let balances = balances(cluster, id);
    assert_eq!(
        statement.closing, balances,
        "the statement of account {id} closes on its balances"
    );
    statement.lines.len()
}

/// Balances with only these fields set (the rest 0).
pub fn posted(credits_posted: u128, debits_posted: u128, debits_pending: u128) -> Balances {
    Balances {
        credits_posted,
        debits_posted,
        debits_pending,
        credits_pending: 0,
    }
}

/// A JSON decimal string as a number (the API writes u64 and u128 as strings).
pub fn number(value: &serde_json::Value) -> u128 {
    match value {
        serde_json::Value::String(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{text:?} is not a decimal number")),
        serde_json::Value::Number(number) => u128::from(
            number
                .as_u64()
                .unwrap_or_else(|| panic!("{number} is not a u64")),
        ),
        other => panic!("{other} is not a number"),
    }
}
