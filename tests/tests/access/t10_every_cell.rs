//! Every cell of "HTTP routes × roles" (`spec/access.md`) against a 3-node cluster, after
//! checking that the table and the router list the same routes.

use crate::table::{router_routes, spec_table, Cell, Route, ROLES};
use ledger::testing::{demo_key, OPERATOR};
use ledger::{Command, Role, SignedCommand};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tests::calls::register_parties;
use tests::{sign, Cluster, RawResponse};

/// The party that signs for a column: the fixture's operator, one registered party per other
/// role, and for anonymous a party nobody registered (its key is nobody's).
fn party_of(role: &str) -> String {
    match role {
        "operator" => OPERATOR.to_owned(),
        "anonymous" => "nobody".to_owned(),
        other => format!("acc-{other}"),
    }
}

#[test]
fn the_table_lists_exactly_the_routes_the_router_serves() {
    let table: BTreeSet<Route> = spec_table().into_keys().collect();
    let router = router_routes();
    let missing: Vec<_> = router.difference(&table).collect();
    let extra: Vec<_> = table.difference(&router).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes the router serves but spec/access.md lacks: {missing:?}; \
         routes in spec/access.md the router does not serve: {extra:?}"
    );
    assert!(router.len() >= 60, "only {} routes parsed", router.len());
}

#[test]
fn every_cell_holds() {
    let started = Instant::now();
    let table = spec_table();
    let mut cluster = Cluster::start(3);
    let parties: Vec<(String, Role)> = ROLES
        .iter()
        .filter(|role| !matches!(**role, "operator" | "anonymous"))
        .map(|role| {
            let ledger_role = Role::ALL
                .into_iter()
                .find(|known| known.as_str() == *role)
                .unwrap_or_else(|| panic!("{role} is not a ledger role"));
            (party_of(role), ledger_role)
        })
        .collect();
    let parties: Vec<(&str, Role)> = parties
        .iter()
        .map(|(party, role)| (party.as_str(), *role))
        .collect();
    register_parties(&mut cluster, &parties);
    let voters_before = voters(&cluster);
    let mut cells = 0;
    let mut requests = 0;
    for ((method, path), by_role) in &table {
        let route = format!("{method} {path}");
        if path.starts_with("/v1/admin/") {
            for role in ROLES {
                let answer = admin_call(&cluster, path, role);
                check(&route, role, &by_role[role], &answer, None);
                cells += 1;
                requests += 1;
            }
        } else if method == "GET" || path == "/v1/commands/canonical" {
            // Reads (and the canonical-bytes helper, which reads nothing and signs nothing)
            // carry no identity: one request answers for all seven cells, which the table must
            // therefore make equal.
            let first = &by_role[ROLES[0]];
            assert!(
                ROLES.iter().all(|role| by_role[role] == *first),
                "{route}: a read cannot tell roles apart, yet its cells differ"
            );
            let answer = if method == "GET" {
                read_call(&cluster, path)
            } else {
                canonical_call(&cluster)
            };
            for role in ROLES {
                check(&route, role, &by_role[role], &answer, None);
                cells += 1;
            }
            requests += 1;
        } else {
            for role in ROLES {
                cells += 1;
                requests += 1;
                let node = (cells % 3 + 1) as u64;
                let signer = party_of(role);
                let command = command_for(path, &signer, cells as u128);
                let signed = if role == "anonymous" {
                    tests::sign_with(&demo_key("nobody"), &signer, command)
                } else {
                    sign(&signer, command)
                };
                let answer = write_call(&cluster, node, path, &signed);
                let batch = (path == "/v1/commands/batch").then_some(());
                check(&route, role, &by_role[role], &answer, batch);
            }
        }
    }
    assert_eq!(cells, table.len() * ROLES.len());
    assert_eq!(
        voters(&cluster),
        voters_before,
        "an admin cell changed the membership"
    );
    cluster.wait_converged();
    println!(
        "access: {cells} cells of {} routes in {requests} requests, {:.1} s with start-up",
        table.len(),
        started.elapsed().as_secs_f64()
    );
}

fn voters(cluster: &Cluster) -> Vec<u64> {
    let view = cluster
        .cluster_view(1)
        .expect("node 1's view of the cluster");
    let mut voters: Vec<u64> = view
        .members
        .iter()
        .filter(|member| member.voter)
        .map(|member| member.id)
        .collect();
    voters.sort_unstable();
    voters
}

/// Checks one answer against its cell. For the batch route the cell applies to the first
/// (only) command's result inside the `200` answer.
fn check(route: &str, role: &str, cell: &Cell, answer: &RawResponse, batch: Option<()>) {
    let body = answer.json();
    let (status, code, text) = if batch.is_some() && answer.status == 200 {
        let result = &body["results"][0];
        let status = result["status"].as_u64().map_or(200, |s| s as u16);
        (
            status,
            result["code"].as_str().unwrap_or("").to_owned(),
            result.to_string(),
        )
    } else {
        (
            answer.status,
            answer.code().unwrap_or_default(),
            String::from_utf8_lossy(&answer.body).into_owned(),
        )
    };
    match cell {
        Cell::Denied {
            status: want_status,
            code: want_code,
        } => {
            assert_eq!(
                (status, code.as_str()),
                (*want_status, want_code.as_str()),
                "{route} × {role}: the spec says denied with {want_status} {want_code}: {text}"
            );
            assert!(
                body.get("message").is_some() || batch.is_some(),
                "{route} × {role}: a refusal carries a message: {text}"
            );
        }
        Cell::Allowed(what) => {
            let refused_by_gate = matches!(
                code.as_str(),
                "not_permitted"
                    | "signer_unknown"
                    | "signature_invalid"
                    | "key_not_of_signer"
                    | "admin_token_invalid"
            );
            // The request itself must have been good: a cell that never reached its gate
            // proves nothing. (`invalid_parameter` is the admin handlers' own check, made only
            // after the token was accepted.)
            let malformed = matches!(code.as_str(), "malformed_json" | "wrong_command_type")
                || matches!(status, 405 | 413 | 415)
                || (status == 404 && text.contains("no route"))
                || status >= 500;
            assert!(
                !refused_by_gate && !malformed,
                "{route} × {role}: the spec says {what:?}, got {status} {code}: {text}"
            );
        }
    }
}

/// A command of the route's type for `signer`; only the role gate is tried, so the content
/// need not be valid beyond decoding (as in `ledger/tests/access.rs`).
fn command_for(path: &str, signer: &str, serial: u128) -> Command {
    let key_hex = |name: String| hex(&demo_key(&name).public_key().0);
    let json = match path {
        "/v1/commands" | "/v1/commands/batch" | "/v1/keys" => format!(
            r#"{{"add_key": {{"party": "{signer}", "key": "{}"}}}}"#,
            key_hex(format!("access-extra-{serial}"))
        ),
        "/v1/parties" => format!(
            r#"{{"register_party": {{"party": "access-new-{serial}", "role": "sme", "keys": ["{}"]}}}}"#,
            key_hex(format!("access-new-{serial}"))
        ),
        "/v1/accounts" => format!(
            r#"{{"create_accounts": {{"accounts": [{{"id": "{}", "asset": "CNY", "kind": "main", "flags": {{"debits_must_not_exceed_credits": true}}, "reference": "0"}}]}}}}"#,
            7_000_000 + serial
        ),
        "/v1/transfers" => format!(
            r#"{{"create_transfers": {{"transfers": [{{"id": "{}", "debit_account_id": "1", "credit_account_id": "1001", "amount": "1", "pending_id": "0", "timeout_s": 0, "code": 1, "reference": "0", "flags": {{}}}}]}}}}"#,
            7_000_000 + serial
        ),
        "/v1/assets" => format!(r#"{{"register_asset": {{"asset": "TOK:access{serial}"}}}}"#),
        "/v1/rates" => r#"{"set_rate_table": {"version": 1, "rates": []}}"#.to_owned(),
        "/v1/hosts" => format!(
            r#"{{"register_host": {{"host": {{"host_id": "access-h{serial}", "region": "r", "gpu_class": "H100", "gpu_count": 1, "agent_key": "{}", "account_id": "1"}}}}}}"#,
            key_hex(format!("access-agent-{serial}"))
        ),
        "/v1/offers" => r#"{"offer_capacity": {"offer": {"offer_id": "1", "host_id": "h", "gpu_count": 1, "start_ns": "0", "end_ns": "1"}}}"#.to_owned(),
        "/v1/meter-reports" => r#"{"report_meter": {"report": {"offer_id": "1", "from_ns": "0", "to_ns": "1", "available_gpu_s": 0, "busy_gpu_s": 0, "down_gpu_s": 0}}}"#.to_owned(),
        "/v1/allocation-reports" => r#"{"report_allocation": {"allocation_id": "1", "update": "running"}}"#.to_owned(),
        "/v1/withdrawals" => r#"{"request_withdrawal": {"withdrawal": {"withdrawal_id": "1", "account_id": "1", "gpu_class": "H100", "gpu_count": 1, "duration_s": 1}}}"#.to_owned(),
        "/v1/withdrawals/cancel" => r#"{"cancel_withdrawal": {"withdrawal_id": "1"}}"#.to_owned(),
        "/v1/products" => r#"{"list_product": {"product": {"product_id": "P", "base": "GPUH:H100", "quote": "CNY", "lot_size": "1", "tick": "1", "fee_bps": 0}}}"#.to_owned(),
        "/v1/orders" => r#"{"place_order": {"order": {"order_id": "1", "product_id": "P", "side": "buy", "price": "1", "quantity": "1", "time_in_force": "gtc", "base_account_id": "1", "quote_account_id": "1"}}}"#.to_owned(),
        "/v1/orders/cancel" => r#"{"cancel_order": {"order_id": "1"}}"#.to_owned(),
        "/v1/orders/amend" => r#"{"amend_order": {"order_id": "1", "quantity": "1"}}"#.to_owned(),
        "/v1/packages" => r#"{"list_package": {"package": {"package_id": "p", "title": "t", "asset": "TOK:qwen", "quantity": "1", "price": "1", "validity_s": 1, "stock": "1", "seller_account_id": "1", "provider": "acc-provider"}}}"#.to_owned(),
        "/v1/purchases" => r#"{"buy_package": {"purchase": {"purchase_id": "1", "package_id": "p", "pay_account_id": "1", "receive_account_id": "2"}}}"#.to_owned(),
        "/v1/usage" => r#"{"record_usage": {"events": [{"event_id": "1", "account_id": "1", "tokens": "1", "at_ns": "0"}]}}"#.to_owned(),
        "/v1/programmes" => r#"{"create_programme": {"programme": {"programme_id": "p", "title": "t", "budget": "1", "funding_account_id": "1", "eligible": {"assets": ["CNY"]}, "max_share_bps": 1, "cap_per_beneficiary_per_year": "1", "valid_from_ns": "0", "valid_until_ns": "1", "beneficiaries": {"role": "sme"}, "stackable": false}}}"#.to_owned(),
        "/v1/vouchers" => r#"{"issue_voucher": {"voucher": {"voucher_id": "1", "programme_id": "p", "beneficiary": "acc-sme", "amount": "1", "expires_at_ns": "1"}}}"#.to_owned(),
        "/v1/vouchers/revoke" => r#"{"revoke_voucher": {"voucher_id": "1"}}"#.to_owned(),
        other => panic!("spec/access.md names a write route this test does not know: {other}"),
    };
    serde_json::from_str(&json).unwrap_or_else(|error| panic!("{path}: {error}: {json}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn write_call(cluster: &Cluster, node: u64, path: &str, signed: &SignedCommand) -> RawResponse {
    let body = if path == "/v1/commands/batch" {
        serde_json::to_vec(&serde_json::json!({ "commands": [signed] }))
    } else {
        serde_json::to_vec(signed)
    }
    .expect("a signed command is JSON");
    cluster
        .api()
        .raw(
            "POST",
            &format!("{}{path}", cluster.url(node)),
            Some("application/json"),
            None,
            body,
        )
        .unwrap_or_else(|error| panic!("POST {path} on node {node}: {error}"))
}

/// A read with its path parameters filled with ids the cluster has (the mint account, a
/// fixture party and its funding transfer) or may not have (a 404 for a missing resource still
/// shows the route served the caller).
fn read_call(cluster: &Cluster, path: &str) -> RawResponse {
    let id = if path.starts_with("/v1/parties/") {
        "alice"
    } else if path.starts_with("/v1/transfers/") {
        "101"
    } else if path.starts_with("/v1/hosts/") {
        "access-h1"
    } else if path.starts_with("/v1/programmes/") || path.starts_with("/v1/packages/") {
        "p"
    } else {
        "1"
    };
    let mut url = format!(
        "{}{}",
        cluster.url(2),
        path.replace("{id}", id)
            .replace("{index}", "1")
            .replace("{file}", "app.js")
    );
    if path.starts_with("/v1/market/") {
        url.push_str("?product=GPUH:H100/CNY");
    }
    if path.ends_with("/alerts/stream") {
        return stream_head(&url);
    }
    cluster
        .api()
        .raw("GET", &url, None, None, Vec::new())
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

/// `POST /v1/commands/canonical` with an unsigned command body, as the web console sends it.
fn canonical_call(cluster: &Cluster) -> RawResponse {
    let body = serde_json::json!({
        "signer": "acc-sme",
        "key": hex(&demo_key("acc-sme").public_key().0),
        "nonce": "1",
        "expires_at_ns": "1",
        "command": {"cancel_order": {"order_id": "1"}},
    });
    cluster
        .api()
        .raw(
            "POST",
            &format!("{}/v1/commands/canonical", cluster.url(2)),
            Some("application/json"),
            None,
            serde_json::to_vec(&body).expect("JSON"),
        )
        .unwrap_or_else(|error| panic!("POST /v1/commands/canonical: {error}"))
}

/// The status and headers of an event stream, without waiting for its (endless) body.
fn stream_head(url: &str) -> RawResponse {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let response = client
        .get(url)
        .send()
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    assert!(
        status != 200 || content_type.as_deref() == Some("text/event-stream"),
        "{url}: a stream answers text/event-stream, not {content_type:?}"
    );
    RawResponse {
        status,
        content_type,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// An admin call on node 1: the operator column brings the node's token, the other roles a
/// made-up one, anonymous none. The bodies change nothing: `init` on an initialised cluster,
/// a learner with an address that does not parse, `promote` and `remove` of a node that is not
/// a member, and `faults` healing a node that is not isolated.
fn admin_call(cluster: &Cluster, path: &str, role: &str) -> RawResponse {
    let body = match path {
        "/v1/admin/cluster/init" => r#"{"members": []}"#,
        "/v1/admin/cluster/learners" => {
            r#"{"id": 99, "raft_addr": "nowhere", "http_addr": "nowhere"}"#
        }
        "/v1/admin/cluster/promote" | "/v1/admin/cluster/remove" => r#"{"id": 99}"#,
        "/v1/admin/faults" => r#"{"isolate": false}"#,
        other => panic!("an admin route this test does not know: {other}"),
    };
    let token = match role {
        "operator" => Some(cluster.admin_token(1)),
        "anonymous" => None,
        _ => Some(format!("{role}-has-no-token")),
    };
    cluster
        .api()
        .raw(
            "POST",
            &format!("{}{path}", cluster.url(1)),
            Some("application/json"),
            token.as_deref(),
            body.as_bytes().to_vec(),
        )
        .unwrap_or_else(|error| panic!("POST {path}: {error}"))
}
