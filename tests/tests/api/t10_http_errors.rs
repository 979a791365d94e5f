//! Requests the node refuses before anything reaches Raft: bad JSON, oversized bodies, unknown
//! routes, wrong methods and media types, a command on the wrong typed route, bad parameters,
//! missing resources, oversized batches and admin calls without the token. Sent to every node
//! (followers answer these themselves); none may move the journal or a balance.

use crate::table::{json_bytes, refused, Table};
use ledger::{AccountFlags, AccountKind, Command, NewAccount};
use tests::{sign, Cluster, TransferSpec};

const JSON: Option<&str> = Some("application/json");

/// `REQUEST_BYTES_MAX` of `spec/http.md`: 2 MiB.
const REQUEST_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Commands in one `POST /v1/commands/batch` (`spec/http.md`: at most 64).
const COMMANDS_PER_BATCH_REQUEST_MAX: usize = 64;

/// An account alice could open: if any refused request were proposed, it would exist.
const CANARY_ACCOUNT: u128 = 5_555;

#[test]
fn requests_refused_before_proposing_change_nothing_on_any_node() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let api = cluster.api().clone();
    let mut table = Table::new(&cluster, leader);
    let open_canary = || {
        let account = NewAccount {
            id: CANARY_ACCOUNT,
            asset: "CNY".parse().expect("CNY"),
            kind: AccountKind::Main,
            flags: AccountFlags {
                debits_must_not_exceed_credits: true,
                ..AccountFlags::default()
            },
            reference: 0,
        };
        sign(
            "alice",
            Command::CreateAccounts {
                accounts: vec![account],
            },
        )
    };
    let good_transfer = || sign("alice", TransferSpec::new("alice", "bob", 10).command());

    for node in cluster.node_ids() {
        let url = |path: &str| format!("{}{path}", cluster.url(node));
        let case = |name: &str| format!("node {node}: {name}");

        // ---- bodies ----
        table.check(
            &case("malformed JSON"),
            refused(400, "malformed_json"),
            || {
                api.raw(
                    "POST",
                    &url("/v1/commands"),
                    JSON,
                    None,
                    b"{\"body\": {\"signer\": ".to_vec(),
                )
            },
        );
        table.check(
            &case("JSON that is not a signed command"),
            refused(400, "malformed_json"),
            || {
                api.raw(
                    "POST",
                    &url("/v1/commands"),
                    JSON,
                    None,
                    br#"{"hello": 1}"#.to_vec(),
                )
            },
        );
        table.check(
            &case("a signed command with a negative nonce"),
            refused(400, "malformed_json"),
            || {
                let mut command = serde_json::to_value(good_transfer()).expect("serialise");
                command["body"]["nonce"] = "-1".into();
                api.raw(
                    "POST",
                    &url("/v1/commands"),
                    JSON,
                    None,
                    json_bytes(&command),
                )
            },
        );
        table.check(
            &case("a body one byte over 2 MiB"),
            refused(413, "body_too_large"),
            || {
                let mut body = br#"{"pad": ""#.to_vec();
                body.resize(REQUEST_BYTES_MAX - 1, b'x');
                body.extend_from_slice(br#""}"#);
                assert_eq!(body.len(), REQUEST_BYTES_MAX + 1);
                api.raw("POST", &url("/v1/transfers"), JSON, None, body)
            },
        );
        table.check(
            &case("a good command sent as text/plain"),
            refused(415, "unsupported_media_type"),
            || {
                api.raw(
                    "POST",
                    &url("/v1/transfers"),
                    Some("text/plain"),
                    None,
                    json_bytes(&good_transfer()),
                )
            },
        );
        table.check(
            &case("a good command without a content type"),
            refused(415, "unsupported_media_type"),
            || {
                api.raw(
                    "POST",
                    &url("/v1/transfers"),
                    None,
                    None,
                    json_bytes(&good_transfer()),
                )
            },
        );
        table.check(
            &case("create_accounts on /v1/transfers"),
            refused(400, "wrong_command_type"),
            || {
                api.raw(
                    "POST",
                    &url("/v1/transfers"),
                    JSON,
                    None,
                    json_bytes(&open_canary()),
                )
            },
        );
        table.check(
            &case("create_transfers on /v1/parties"),
            refused(400, "wrong_command_type"),
            || {
                api.raw(
                    "POST",
                    &url("/v1/parties"),
                    JSON,
                    None,
                    json_bytes(&good_transfer()),
                )
            },
        );
        table.check(
            &case("a batch of 65 commands"),
            refused(413, "batch_too_large"),
            || {
                let commands: Vec<_> = (0..=COMMANDS_PER_BATCH_REQUEST_MAX)
                    .map(|_| good_transfer())
                    .collect();
                api.raw(
                    "POST",
                    &url("/v1/commands/batch"),
                    JSON,
                    None,
                    json_bytes(&serde_json::json!({ "commands": commands })),
                )
            },
        );

        // ---- routes and methods ----
        for (method, path) in [
            ("GET", "/v1/nope"),
            ("POST", "/v1/nope"),
            ("GET", "/v2/health"),
            ("GET", "/v1/accounts/1001/nope"),
        ] {
            table.check(
                &case(&format!("{method} {path}")),
                refused(404, "not_found"),
                || api.raw(method, &url(path), JSON, None, Vec::new()),
            );
        }
        for (method, path) in [
            ("GET", "/v1/commands"),
            ("PUT", "/v1/transfers"),
            ("DELETE", "/v1/accounts/1001"),
            ("POST", "/v1/health"),
            ("GET", "/v1/admin/faults"),
        ] {
            table.check(
                &case(&format!("{method} {path}")),
                refused(405, "method_not_allowed"),
                || api.raw(method, &url(path), JSON, None, b"{}".to_vec()),
            );
        }

        // ---- parameters and missing resources ----
        for path in [
            "/v1/accounts/abc",
            "/v1/transfers/-1",
            "/v1/accounts/340282366920938463463374607431768211456",
            "/v1/journal?from=x",
            "/v1/journal?from=1&limit=1001",
            "/v1/accounts/1001/transfers?limit=1001",
            "/v1/accounts/1001?consistency=eventual",
        ] {
            table.check(
                &case(&format!("GET {path}")),
                refused(400, "invalid_parameter"),
                || api.raw("GET", &url(path), None, None, Vec::new()),
            );
        }
        for path in [
            "/v1/accounts/424242",
            "/v1/transfers/424242",
            "/v1/parties/nobody",
            "/v1/accounts/5555",
        ] {
            table.check(
                &case(&format!("GET {path}")),
                refused(404, "not_found"),
                || api.raw("GET", &url(path), None, None, Vec::new()),
            );
        }

        // ---- administration without the token ----
        let other = if node == 3 { 1 } else { node + 1 };
        let admin_cases: [(&str, &str, serde_json::Value); 3] = [
            (
                "/v1/admin/faults",
                "",
                serde_json::json!({ "isolate": true }),
            ),
            (
                "/v1/admin/cluster/remove",
                "not-the-token",
                serde_json::json!({ "id": other }),
            ),
            (
                "/v1/admin/faults",
                "not-the-token",
                serde_json::json!({ "isolate": true }),
            ),
        ];
        for (path, token, body) in admin_cases {
            let token = (!token.is_empty()).then_some(token);
            table.check(
                &case(&format!("POST {path} with token {token:?}")),
                refused(401, "admin_token_invalid"),
                || api.raw("POST", &url(path), JSON, token, json_bytes(&body)),
            );
        }
        // And a token of another node is not this node's token.
        let foreign_token = cluster.admin_token(other);
        table.check(
            &case("POST /v1/admin/faults with another node's token"),
            refused(401, "admin_token_invalid"),
            || {
                api.raw(
                    "POST",
                    &url("/v1/admin/faults"),
                    JSON,
                    Some(&foreign_token),
                    json_bytes(&serde_json::json!({ "isolate": true })),
                )
            },
        );
    }
    table.finish();

    // Nothing was isolated or removed: three voters, one leader, and every node converges.
    for node in cluster.node_ids() {
        let view = cluster
            .cluster_view(node)
            .unwrap_or_else(|error| panic!("node {node}: {error}"));
        assert_eq!(
            view.members.iter().filter(|member| member.voter).count(),
            3,
            "node {node} still sees three voters"
        );
    }
    cluster.wait_converged();
}
