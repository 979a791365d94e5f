//! Signed transfers sent to each of three nodes (followers forward to the leader) all apply, and
//! every node ends with the same journal head, the same state hash, and the balances computed
//! by hand below.

use ledger::Balances;
use std::collections::BTreeSet;
use tests::{account_of, sign, Cluster, TransferSpec, WriteResponse, INITIAL_FUNDS};

const F: u128 = INITIAL_FUNDS;

#[test]
fn transfers_through_every_node_converge_to_hand_computed_balances() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let head_before = cluster.wait_converged().journal_head;

    // (node, payer, payee, amount fen): two writes through each node, so two of the three
    // nodes take writes as followers and must forward them.
    let writes: [(u64, &str, &str, u128); 6] = [
        (1, "alice", "bob", 1_000),
        (2, "bob", "carol", 250),
        (3, "carol", "alice", 75),
        (1, "alice", "carol", 33),
        (2, "bob", "alice", 7),
        (3, "carol", "bob", 1),
    ];
    let mut journal_indices = Vec::new();
    let mut sent = Vec::new();
    for (node, payer, payee, amount) in writes {
        let spec = TransferSpec::new(payer, payee, amount);
        let url = format!("{}/v1/transfers", cluster.url(node));
        let body = serde_json::to_vec(&sign(payer, spec.command())).expect("serialise");
        let answer = cluster
            .api()
            .raw("POST", &url, Some("application/json"), None, body)
            .unwrap_or_else(|error| {
                panic!("transfer {payer} -> {payee} through node {node}: {error}")
            });
        assert_eq!(
            answer.status,
            200,
            "transfer through node {node}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let response: WriteResponse =
            serde_json::from_slice(&answer.body).expect("a write answer as in spec/http.md");
        let outcome = &response.outcome;
        assert!(
            outcome.rejected().is_none() && outcome.event_results().is_empty(),
            "applied: {outcome:?}"
        );
        // spec/http.md: a relayed answer carries `x-cbank-forwarded-to`: the leader's HTTP address.
        let leader_names = [cluster.node(leader).http_addr.to_string()];
        match answer.header("x-cbank-forwarded-to") {
            None => assert_eq!(
                node, leader,
                "follower {node} answered a write without forwarding it"
            ),
            Some(to) => {
                assert_ne!(node, leader, "the leader forwarded a write");
                assert!(
                    leader_names.iter().any(|name| name == to),
                    "follower {node} forwarded to {to}, not the leader"
                );
            }
        }
        journal_indices.push(response.journal_index);
        sent.push(spec);
        // Read-your-writes through another node: a linearizable read on a follower is
        // forwarded to the leader, so it already sees the transfer.
        let reader = node % 3 + 1;
        let record = cluster
            .transfer_record(reader, spec.id, "linearizable")
            .unwrap_or_else(|error| {
                panic!(
                    "read transfer {} on node {reader} just after it applied: {error}",
                    spec.id
                )
            });
        assert_eq!(record.amount, amount);
    }
    let expected_indices: Vec<u64> = (1..=6).map(|step| head_before.index + step).collect();
    assert_eq!(
        journal_indices, expected_indices,
        "each write is the next journal entry"
    );
    assert!(
        cluster.followers().len() == 2 && !cluster.followers().contains(&leader),
        "node {leader} led throughout, so writes to the other two were forwarded"
    );

    let converged = cluster.wait_converged();
    assert_eq!(converged.journal_head.index, head_before.index + 6);

    // By hand:
    //   alice: debits 1_000 + 33 = 1_033;   credits F + 75 + 7 = F + 82;      net F - 951
    //   bob:   debits 250 + 7 = 257;        credits F + 1_000 + 1 = F + 1_001; net F + 744
    //   carol: debits 75 + 1 = 76;          credits F + 250 + 33 = F + 283;    net F + 207
    //   -951 + 744 + 207 = 0: nothing created or lost.
    let expected = [
        (
            "alice",
            Balances {
                debits_posted: 1_033,
                credits_posted: F + 82,
                ..Balances::default()
            },
        ),
        (
            "bob",
            Balances {
                debits_posted: 257,
                credits_posted: F + 1_001,
                ..Balances::default()
            },
        ),
        (
            "carol",
            Balances {
                debits_posted: 76,
                credits_posted: F + 283,
                ..Balances::default()
            },
        ),
    ];
    let nets = [("alice", F - 951), ("bob", F + 744), ("carol", F + 207)];
    for node in cluster.node_ids() {
        for ((party, balances), (_, net)) in expected.iter().zip(nets) {
            let account = cluster
                .account(node, account_of(party), "local")
                .unwrap_or_else(|error| panic!("read {party}'s account on node {node}: {error}"));
            assert_eq!(
                account.balances, *balances,
                "{party}'s balances on node {node}"
            );
            assert_eq!(
                account.balances.available(),
                net,
                "{party}'s available balance on node {node}"
            );
        }
        for spec in &sent {
            let record = cluster
                .transfer_record(node, spec.id, "local")
                .unwrap_or_else(|error| {
                    panic!("read transfer {} on node {node}: {error}", spec.id)
                });
            assert_eq!(
                (
                    record.debit_account_id,
                    record.credit_account_id,
                    record.amount
                ),
                (spec.debit_account_id, spec.credit_account_id, spec.amount)
            );
        }
    }

    // The same journal on every node, entry for entry, not only the same head.
    let heads: BTreeSet<String> = cluster
        .node_ids()
        .into_iter()
        .map(|node| {
            let page = cluster
                .journal(node, head_before.index + 1, 6, "local")
                .unwrap_or_else(|error| panic!("read the journal on node {node}: {error}"));
            assert_eq!(
                page.entries.len(),
                6,
                "node {node} returns the six new entries"
            );
            serde_json::to_string(&page.entries).expect("JSON values serialise")
        })
        .collect();
    assert_eq!(
        heads.len(),
        1,
        "every node returns the same journal entries"
    );
}
