//! The after-the-fault check: nothing acknowledged was lost, and nothing applied twice.
//!
//! For every transfer a [`Client`] tried, a read on the leader (after a linearizable barrier)
//! says whether it is present. Every acknowledged transfer must be present, with the accounts and amount it was
//! sent with; one never acknowledged (its answer was lost to a fault) may be present or absent.
//! Then the fixture accounts' balances on every running node must equal the initial funds moved
//! by exactly the present transfers, each counted once, and each account's transfer listing
//! must name each of them exactly once. A transfer applied twice would show in both.
//!
//! Only valid when the client's transfers are the only ones moving the fixture accounts after
//! start-up.

use crate::client::{Attempt, Client};
use crate::cluster::{Cluster, LEADER_TIMEOUT};
use crate::fixture::{account_of, funding_transfer_of, INITIAL_FUNDS, MINT_ACCOUNT, PARTIES};
use crate::wait::wait_for;
use ledger::{Balances, TransferRecord};
use std::collections::{BTreeMap, BTreeSet};

/// What the check found.
#[derive(Clone, Debug)]
pub struct ExactlyOnce {
    /// Transfers that were acknowledged (all present, or the check panicked).
    pub acknowledged: usize,
    /// Transfers present in the ledger (acknowledged or not).
    pub present: usize,
    /// Transfers tried, never acknowledged, and absent.
    pub absent: usize,
}

/// How long in-doubt transfers (sent, never acknowledged, maybe still queued or being
/// forwarded when the load stopped) may take to settle before the check's reads must agree.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the check (see the module doc) and panics on the first violation. An acknowledged
/// transfer that is missing fails at once; disagreement between the transfers present and the
/// balances is re-checked until it settles (a transfer in doubt may apply late), and fails
/// only if it persists.
pub fn check_exactly_once(cluster: &mut Cluster, client: &Client) -> ExactlyOnce {
    wait_for("transfers and balances to agree", SETTLE_TIMEOUT, || {
        check_once(cluster, client)
    })
}

fn check_once(cluster: &mut Cluster, client: &Client) -> Result<ExactlyOnce, String> {
    let leader = cluster.leader();
    // One linearizable read makes the leader apply everything committed; the per-transfer reads
    // after it are local (no quorum round each), which matters when a test sent thousands.
    cluster
        .account(leader, MINT_ACCOUNT, "linearizable")
        .map_err(|error| format!("barrier read on leader {leader}: {error}"))?;
    let attempts = client.attempts();
    let mut present: Vec<&Attempt> = Vec::new();
    let mut lost = Vec::new();
    let mut absent = 0;
    for attempt in attempts.values() {
        let spec = &attempt.spec;
        let record: Option<TransferRecord> = wait_for(
            &format!("transfer {} on leader {leader}", spec.id),
            LEADER_TIMEOUT,
            || match cluster.transfer_record(leader, spec.id, "linearizable") {
                Ok(record) => Ok(Some(record)),
                Err(error) if error.status == Some(404) && error.code == "not_found" => Ok(None),
                Err(error) => Err(error.to_string()),
            },
        );
        match record {
            Some(record) => {
                assert_eq!(
                    (
                        record.transfer.id,
                        record.debit_account_id,
                        record.credit_account_id,
                        record.amount
                    ),
                    (
                        spec.id,
                        spec.debit_account_id,
                        spec.credit_account_id,
                        spec.amount
                    ),
                    "transfer {} is stored as something else than what was sent",
                    spec.id
                );
                present.push(attempt);
            }
            None if attempt.acknowledged_at.is_some() => lost.push(*spec),
            None => absent += 1,
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged transfers are missing: {lost:?}",
        lost.len()
    );

    let mut expected: BTreeMap<u128, Balances> = PARTIES
        .iter()
        .map(|party| {
            (
                account_of(party),
                Balances {
                    credits_posted: INITIAL_FUNDS,
                    ..Balances::default()
                },
            )
        })
        .collect();
    let mut expected_ids: BTreeMap<u128, BTreeSet<u128>> = PARTIES
        .iter()
        .map(|party| {
            (
                account_of(party),
                BTreeSet::from([funding_transfer_of(party)]),
            )
        })
        .collect();
    for attempt in &present {
        let spec = &attempt.spec;
        let debit = expected
            .get_mut(&spec.debit_account_id)
            .expect("client transfers use fixture accounts");
        debit.debits_posted += spec.amount;
        let credit = expected
            .get_mut(&spec.credit_account_id)
            .expect("client transfers use fixture accounts");
        credit.credits_posted += spec.amount;
        for account in [spec.debit_account_id, spec.credit_account_id] {
            expected_ids
                .get_mut(&account)
                .expect("fixture account")
                .insert(spec.id);
        }
    }

    for id in cluster.running_ids() {
        for (account, balances) in &expected {
            let stored = cluster
                .account(id, *account, "local")
                .unwrap_or_else(|error| panic!("read account {account} on node {id}: {error}"));
            if stored.balances != *balances {
                return Err(format!(
                    "node {id}: account {account} holds {:?}, not the initial funds moved by exactly the {} present transfers: {balances:?}",
                    stored.balances,
                    present.len()
                ));
            }
        }
    }

    for (account, ids) in &expected_ids {
        let listed = cluster.account_transfer_ids(leader, *account);
        let unique: BTreeSet<u128> = listed.iter().copied().collect();
        assert_eq!(
            unique.len(),
            listed.len(),
            "account {account} lists a transfer more than once"
        );
        if &unique != ids {
            let extra: Vec<_> = unique.difference(ids).collect();
            let missing: Vec<_> = ids.difference(&unique).collect();
            return Err(format!("account {account} lists {extra:?} beyond the present transfers and lacks {missing:?}"));
        }
    }

    Ok(ExactlyOnce {
        acknowledged: client.acknowledged_count(),
        present: present.len(),
        absent,
    })
}
