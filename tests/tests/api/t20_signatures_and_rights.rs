//! Unsigned, wrongly signed and unauthorised commands.
//!
//! A signature that does not verify with the body's own key is refused by the node that
//! receives it, before proposing (`401 signature_invalid`, the journal does not move). A
//! signature that verifies but with a key that is not the signer's, an unknown signer, or a
//! command the signer's role may not sign reach the ledger, which records the rejection as one
//! journal entry (`spec/http.md`: the ledger's reason as the code) and moves no balance.

use crate::table::{json_bytes, recorded, refused, Table};
use ledger::testing::demo_key;
use ledger::{Command, PartyId, Role, Signature};
use tests::{account_of, sign, sign_with, Cluster, TransferSpec};

const JSON: Option<&str> = Some("application/json");

#[test]
fn forged_and_unauthorised_commands_change_no_balance() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let api = cluster.api().clone();
    let mut table = Table::new(&cluster, leader);

    for node in cluster.node_ids() {
        let transfers = format!("{}/v1/transfers", cluster.url(node));
        let commands = format!("{}/v1/commands", cluster.url(node));
        let case = |name: &str| format!("node {node}: {name}");
        let alice_pays_bob = || TransferSpec::new("alice", "bob", 500).command();

        // ---- refused before proposing ----
        table.check(
            &case("unsigned (all-zero signature)"),
            refused(401, "signature_invalid"),
            || {
                let mut command = sign("alice", alice_pays_bob());
                command.signature = Signature([0; 64]);
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );
        table.check(
            &case("the signature field missing"),
            refused(400, "malformed_json"),
            || {
                let mut command =
                    serde_json::to_value(sign("alice", alice_pays_bob())).expect("serialise");
                command
                    .as_object_mut()
                    .expect("an object")
                    .remove("signature");
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );
        table.check(
            &case("amount raised after signing"),
            refused(401, "signature_invalid"),
            || {
                let mut command = sign("alice", alice_pays_bob());
                if let Command::CreateTransfers { transfers } = &mut command.body.command {
                    transfers[0].amount = 5_000_000;
                }
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );
        table.check(
            &case("signed by bob's key but naming alice's"),
            refused(401, "signature_invalid"),
            || {
                let mut command = sign("alice", alice_pays_bob());
                command.signature = demo_key("bob").sign_bytes(&command.body.signing_bytes());
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );
        table.check(
            &case("a signature over another command"),
            refused(401, "signature_invalid"),
            || {
                let mut command = sign("alice", alice_pays_bob());
                command.signature = sign("alice", alice_pays_bob()).signature;
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );

        // ---- recorded by the ledger ----
        table.check(
            &case("alice's transfer signed with bob's key"),
            recorded(401, "key_not_of_signer"),
            || {
                let command = sign_with(&demo_key("bob"), "alice", alice_pays_bob());
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );
        table.check(
            &case("an unknown signer"),
            recorded(401, "signer_unknown"),
            || {
                let command = sign("mallory", alice_pays_bob());
                api.raw("POST", &transfers, JSON, None, json_bytes(&command))
            },
        );
        table.check(
            &case("an SME registering a party"),
            recorded(403, "not_permitted"),
            || {
                let register = Command::RegisterParty {
                    party: PartyId::new(format!("sybil-{node}")),
                    role: Role::Operator,
                    keys: vec![demo_key(&format!("sybil-{node}")).public_key()],
                };
                api.raw(
                    "POST",
                    &commands,
                    JSON,
                    None,
                    json_bytes(&sign("alice", register)),
                )
            },
        );
        table.check(
            &case("alice paying from bob's account"),
            recorded(200, "not_account_owner"),
            || {
                let spec = TransferSpec {
                    payer: "alice",
                    ..TransferSpec::new("bob", "alice", 500)
                };
                assert_eq!(spec.debit_account_id, account_of("bob"));
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
            &case("alice overdrawing her account"),
            recorded(200, "exceeds_credits"),
            || {
                let spec = TransferSpec::new("alice", "bob", tests::INITIAL_FUNDS * 2);
                api.raw(
                    "POST",
                    &transfers,
                    JSON,
                    None,
                    json_bytes(&sign("alice", spec.command())),
                )
            },
        );
    }
    table.finish();
    cluster.wait_converged();
}
