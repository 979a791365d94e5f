//! Replays and retries: the same signed envelope sent again (to the same node or another) is
//! recorded as `409 nonce_replayed` and moves nothing; the same transfer re-signed (a client's
//! retry) answers `200` with `transfer_exists` and moves nothing; a transfer id reused for a
//! different transfer is refused by the ledger; expired envelopes and a second genesis are
//! recorded rejections.

use crate::table::{json_bytes, recorded, Table};
use ledger::testing::{demo_key, OPERATOR};
use ledger::{Command, PartyId};
use tests::{account_of, sign, unix_now_ns, Cluster, TransferSpec, ASSETS};

const JSON: Option<&str> = Some("application/json");

const NS_PER_S: u64 = 1_000_000_000;

#[test]
fn replayed_envelopes_and_retried_transfers_apply_once() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let api = cluster.api().clone();
    let client = cluster.client();
    let mut table = Table::new(&cluster, leader);

    for node in cluster.node_ids() {
        let transfers = format!("{}/v1/transfers", cluster.url(node));
        let commands = format!("{}/v1/commands", cluster.url(node));
        let case = |name: &str| format!("node {node}: {name}");

        // The original: applies once, moving 700 fen from alice to bob.
        let spec = TransferSpec::new("alice", "bob", 700);
        let envelope = sign("alice", spec.command());
        let alice_before = cluster
            .account(leader, account_of("alice"), "linearizable")
            .expect("alice's account")
            .balances;
        let applied = client
            .submit(node, "/v1/transfers", &envelope)
            .expect("the original transfer applies");
        assert!(
            applied.outcome.rejected().is_none() && applied.outcome.event_results().is_empty(),
            "{:?}",
            applied.outcome
        );
        table.count_good_write();
        let alice_after = cluster
            .account(leader, account_of("alice"), "linearizable")
            .expect("alice's account")
            .balances;
        assert_eq!(alice_after.debits_posted, alice_before.debits_posted + 700);

        // Replays of the very same bytes, through this node and through every other one.
        for via in cluster.node_ids() {
            let url = format!("{}/v1/transfers", cluster.url(via));
            table.check(
                &case(&format!("the same envelope again, via node {via}")),
                recorded(409, "nonce_replayed"),
                || api.raw("POST", &url, JSON, None, json_bytes(&envelope)),
            );
        }
        table.check(
            &case("the same envelope on /v1/commands"),
            recorded(409, "nonce_replayed"),
            || api.raw("POST", &commands, JSON, None, json_bytes(&envelope)),
        );
        table.check(
            &case("the same transfer re-signed (a retry)"),
            recorded(200, "transfer_exists"),
            || {
                api.raw(
                    "POST",
                    &transfers,
                    JSON,
                    None,
                    json_bytes(&sign("alice", spec.command())),
                )
            },
        );
        table.check(
            &case("the transfer id reused with another amount"),
            recorded(200, "transfer_exists_with_different_fields"),
            || {
                let changed = TransferSpec {
                    amount: 701,
                    ..spec
                };
                api.raw(
                    "POST",
                    &transfers,
                    JSON,
                    None,
                    json_bytes(&sign("alice", changed.command())),
                )
            },
        );
        table.check(
            &case("an expired envelope"),
            recorded(422, "envelope_expired"),
            || {
                let command = demo_key("alice").sign(
                    PartyId::new("alice"),
                    tests::next_nonce(),
                    unix_now_ns() - NS_PER_S,
                    TransferSpec::new("alice", "bob", 1).command(),
                );
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );
        table.check(
            &case("an envelope that lives ten minutes"),
            recorded(422, "envelope_expiry_too_far"),
            || {
                let command = demo_key("alice").sign(
                    PartyId::new("alice"),
                    tests::next_nonce(),
                    unix_now_ns() + 600 * NS_PER_S,
                    TransferSpec::new("alice", "bob", 1).command(),
                );
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );
        table.check(
            &case("genesis a second time"),
            recorded(409, "genesis_already_applied"),
            || {
                let genesis = Command::Genesis {
                    operator: PartyId::new(OPERATOR),
                    keys: vec![demo_key(OPERATOR).public_key()],
                    assets: ASSETS
                        .map(|code| code.parse().expect("asset code"))
                        .to_vec(),
                };
                api.raw(
                    "POST",
                    &commands,
                    JSON,
                    None,
                    json_bytes(&sign(OPERATOR, genesis)),
                )
            },
        );
    }
    table.finish();
    cluster.wait_converged();
}
