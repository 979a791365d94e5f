//! The HTTP API of `spec/http.md`, end to end: real nodes started in this process with
//! `node::server::start_node` on 127.0.0.1 port 0 and temporary data directories, driven over
//! real sockets with a plain HTTP/1.1 client.
//!
//! One single-node test walks the happy path (init, genesis, party, accounts, transfers, every
//! read, a checkpoint that verifies, a restart) and the table of bad inputs, each of which must
//! change nothing. One three-node test forms a cluster through the admin routes, writes through
//! followers, isolates the leader, and checks that all nodes converge to the same journal head
//! and state hash. Every wait is bounded by [`WAIT`] and fails the test when it runs out.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ledger::account::{AccountFlags, AccountKind, NewAccount};
use ledger::journal::verify_chain;
use ledger::testing::{demo_key, OPERATOR};
use ledger::{
    Asset, Checkpoint, Command, Head, JournalEntry, PartyId, Role, SignedCommand, Transfer,
    TransferFlags,
};
use node::limits::REQUEST_BYTES_MAX;
use node::server::{
    start_node, NodeConfig, RunningNode, ADMIN_TOKEN_FILE, METRIC_NAMES, NODE_KEY_FILE,
};
use serde_json::{json, Value};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// The longest any single wait in these tests may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

const MINT_CNY: u128 = 1;
const LAB_CNY: u128 = 10;
const LAB_GPUH: u128 = 11;

/// Every route of the API (method, path), as `spec/openapi.yaml` lists them.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/console/"),
    ("GET", "/console/{file}"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/journal/raw"),
    ("POST", "/v1/commands/canonical"),
    ("POST", "/v1/commands"),
    ("POST", "/v1/parties"),
    ("POST", "/v1/accounts"),
    ("POST", "/v1/transfers"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/assets"),
    ("POST", "/v1/commands/batch"),
    ("GET", "/v1/health"),
    ("GET", "/v1/cluster"),
    ("GET", "/v1/state"),
    ("GET", "/v1/accounts/{id}"),
    ("GET", "/v1/accounts/{id}/transfers"),
    ("GET", "/v1/transfers/{id}"),
    ("GET", "/v1/parties/{id}"),
    ("GET", "/v1/journal"),
    ("GET", "/v1/head"),
    ("GET", "/metrics"),
    ("POST", "/v1/admin/cluster/init"),
    ("POST", "/v1/admin/cluster/learners"),
    ("POST", "/v1/admin/cluster/promote"),
    ("POST", "/v1/admin/cluster/remove"),
    ("POST", "/v1/admin/faults"),
    ("POST", "/v1/rates"),
    ("GET", "/v1/rates"),
    ("GET", "/v1/rates/{id}"),
    ("POST", "/v1/hosts"),
    ("GET", "/v1/hosts/{id}"),
    ("GET", "/v1/hosts/{id}/offers"),
    ("GET", "/v1/hosts/{id}/allocations"),
    ("POST", "/v1/offers"),
    ("GET", "/v1/offers/{id}"),
    ("POST", "/v1/meter-reports"),
    ("POST", "/v1/withdrawals"),
    ("POST", "/v1/withdrawals/cancel"),
    ("GET", "/v1/withdrawals/{id}"),
    ("POST", "/v1/allocation-reports"),
    ("GET", "/v1/allocations/{id}"),
    ("GET", "/v1/accounts/{id}/statement"),
    ("GET", "/v1/parties/{id}/withdrawals"),
    ("GET", "/v1/parties/{id}/statement"),
    ("POST", "/v1/products"),
    ("GET", "/v1/products"),
    ("GET", "/v1/market/depth"),
    ("GET", "/v1/market/trades"),
    ("GET", "/v1/market/candles"),
    ("POST", "/v1/orders"),
    ("POST", "/v1/orders/cancel"),
    ("POST", "/v1/orders/amend"),
    ("GET", "/v1/orders/{id}"),
    ("GET", "/v1/parties/{id}/orders"),
    ("GET", "/v1/parties/{id}/fills"),
    ("POST", "/v1/packages"),
    ("GET", "/v1/packages"),
    ("GET", "/v1/packages/{id}"),
    ("POST", "/v1/purchases"),
    ("POST", "/v1/usage"),
    ("GET", "/v1/accounts/{id}/quotas"),
    ("GET", "/v1/accounts/{id}/alerts"),
    ("GET", "/v1/accounts/{id}/alerts/stream"),
    ("POST", "/v1/programmes"),
    ("GET", "/v1/programmes"),
    ("GET", "/v1/programmes/{id}"),
    ("GET", "/v1/programmes/{id}/report"),
    ("POST", "/v1/vouchers"),
    ("POST", "/v1/vouchers/revoke"),
    ("GET", "/v1/vouchers/{id}"),
    ("GET", "/v1/parties/{id}/vouchers"),
    ("GET", "/v1/checkpoints/{index}"),
];

/// Writes sent at once to show group commit at work.
const CONCURRENT_WRITES: u128 = 40;

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

// ---- client ---------------------------------------------------------------------------------

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    fn expect(self, status: u16) -> Answer {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.text
        );
        self
    }

    #[track_caller]
    fn expect_error(self, status: u16, code: &str) -> Answer {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.text
        );
        assert_eq!(self.code(), code, "unexpected answer: {}", self.text);
        assert!(
            self.body["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty()),
            "an error has a message: {}",
            self.text
        );
        self
    }
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    fn new() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        let response = within(url, self.client.request(request))
            .await
            .unwrap_or_else(|error| panic!("{url}: {error}"));
        let (parts, body) = response.into_parts();
        let bytes = within(url, body.collect())
            .await
            .expect("the body arrives")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            text,
        }
    }

    async fn get(&self, url: &str) -> Answer {
        self.send(Method::GET, url, &[], Vec::new()).await
    }

    async fn post(&self, url: &str, body: &impl serde::Serialize) -> Answer {
        let bytes = serde_json::to_vec(body).expect("serialisable");
        self.send(
            Method::POST,
            url,
            &[("content-type", "application/json")],
            bytes,
        )
        .await
    }

    async fn admin(&self, url: &str, token: &str, body: &Value) -> Answer {
        let bearer = format!("Bearer {token}");
        let bytes = serde_json::to_vec(body).expect("serialisable");
        self.send(
            Method::POST,
            url,
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            bytes,
        )
        .await
    }
}

// ---- nodes ----------------------------------------------------------------------------------

struct TestNode {
    node: RunningNode,
    dir: TempDir,
}

impl TestNode {
    async fn start(id: u64, dir: TempDir, enable_fault_admin: bool) -> TestNode {
        let config = NodeConfig {
            id,
            data_dir: dir.path().to_path_buf(),
            raft_addr: "127.0.0.1:0".parse().expect("an address"),
            http_addr: "127.0.0.1:0".parse().expect("an address"),
            enable_fault_admin,
        };
        let node = within("a node to start", start_node(config))
            .await
            .expect("the node starts");
        TestNode { node, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.node.http_addr())
    }

    fn token(&self) -> String {
        read_file(self.dir.path(), ADMIN_TOKEN_FILE)
    }

    fn member(&self) -> Value {
        json!({
            "id": self.node.id(),
            "raft_addr": self.node.raft_addr().to_string(),
            "http_addr": self.node.http_addr().to_string(),
        })
    }

    async fn stop(self) -> TempDir {
        within("a node to stop", self.node.shutdown())
            .await
            .expect("a clean shutdown");
        self.dir
    }
}

fn read_file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// Waits until `node` reports `leader` (or any leader, if `None`) and returns it.
async fn leader_seen_by(http: &Http, node: &TestNode, leader: Option<u64>) -> u64 {
    eventually("a leader", || async {
        let cluster = http.get(&node.url("/v1/cluster")).await;
        let seen = cluster.body["leader_id"].as_u64()?;
        (leader.is_none() || leader == Some(seen)).then_some(seen)
    })
    .await
}

// ---- commands -------------------------------------------------------------------------------

static NONCE: AtomicU64 = AtomicU64::new(1);

fn now_ns() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since_epoch.as_nanos()).expect("fits until 2554")
}

/// `command` signed by `party`'s demo key with a fresh nonce, expiring in 60 s.
fn signed(party: &str, command: Command) -> SignedCommand {
    let nonce = u128::from(NONCE.fetch_add(1, Ordering::Relaxed));
    demo_key(party).sign(
        PartyId::new(party),
        nonce,
        now_ns() + 60_000_000_000,
        command,
    )
}

fn genesis() -> SignedCommand {
    let assets = ["CNY", "GPUH:H100", "TOK:qwen"]
        .map(|code| code.parse::<Asset>().expect("an asset"))
        .to_vec();
    signed(
        OPERATOR,
        Command::Genesis {
            operator: PartyId::new(OPERATOR),
            keys: vec![demo_key(OPERATOR).public_key()],
            assets,
        },
    )
}

fn register_party(party: &str, role: Role) -> SignedCommand {
    signed(
        OPERATOR,
        Command::RegisterParty {
            party: PartyId::new(party),
            role,
            keys: vec![demo_key(party).public_key()],
        },
    )
}

fn open_account(
    party: &str,
    id: u128,
    asset: &str,
    kind: AccountKind,
    flagged: bool,
) -> SignedCommand {
    let account = NewAccount {
        id,
        asset: asset.parse().expect("an asset"),
        kind,
        flags: AccountFlags {
            debits_must_not_exceed_credits: flagged,
            ..AccountFlags::default()
        },
        reference: 0,
    };
    signed(
        party,
        Command::CreateAccounts {
            accounts: vec![account],
        },
    )
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        pending_id: 0,
        timeout_s: 0,
        code: 1,
        reference: 0,
        flags: TransferFlags::default(),
    }
}

fn transfers(party: &str, transfers: Vec<Transfer>) -> SignedCommand {
    signed(party, Command::CreateTransfers { transfers })
}

/// Posts `command` to `url` and expects it applied cleanly; returns the answer. A
/// `503 unavailable` (no leader known for a moment: nothing was proposed) is retried, as a
/// client would.
async fn accepted(http: &Http, url: &str, command: &SignedCommand) -> Answer {
    let answer = eventually("a leader to take the write", || async {
        let answer = http.post(url, command).await;
        (answer.status != StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
    })
    .await
    .expect(200);
    assert!(
        answer.body["journal_index"]
            .as_u64()
            .is_some_and(|index| index > 0),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.body["journal_hash"].as_str().map(str::len),
        Some(64),
        "{}",
        answer.text
    );
    assert!(
        !answer.body["outcome"]["result"]["accepted"].is_null(),
        "{}",
        answer.text
    );
    answer
}

/// The (debits_posted, credits_posted) of an account, read locally from `node`.
async fn posted(http: &Http, node: &TestNode, account: u128) -> (String, String) {
    let answer = http
        .get(&node.url(&format!("/v1/accounts/{account}?consistency=local")))
        .await
        .expect(200);
    let balances = &answer.body["balances"];
    (
        balances["debits_posted"]
            .as_str()
            .expect("a string")
            .to_owned(),
        balances["credits_posted"]
            .as_str()
            .expect("a string")
            .to_owned(),
    )
}

async fn journal_head(http: &Http, node: &TestNode) -> u64 {
    let head = http
        .get(&node.url("/v1/head?consistency=local"))
        .await
        .expect(200);
    head.body["head"]["index"].as_u64().expect("an index")
}

/// Reads the whole journal from `node` and checks that it chains to `head`.
async fn check_journal(http: &Http, node: &TestNode) -> Head {
    let answer = http
        .get(&node.url("/v1/journal?from=1&limit=1000"))
        .await
        .expect(200);
    assert_eq!(answer.body["first_index"], 1);
    let entries: Vec<JournalEntry> =
        serde_json::from_value(answer.body["entries"].clone()).expect("journal entries");
    let timestamps: Vec<u64> = entries
        .iter()
        .map(|entry| entry.body.timestamp_ns)
        .collect();
    assert!(
        timestamps.windows(2).all(|pair| pair[0] < pair[1]),
        "timestamps strictly increase"
    );
    verify_chain(Head::default(), &entries).expect("the journal chains")
}

/// The operations (method, path) under `paths:` of an OpenAPI document in our layout: a path
/// at two spaces of indent, its methods at four.
fn openapi_operations(openapi: &str) -> Vec<(String, String)> {
    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
    let mut operations = Vec::new();
    let mut path = None;
    for line in openapi.lines() {
        if let Some(rest) = line.strip_prefix("  /") {
            path = rest.strip_suffix(':').map(|rest| format!("/{rest}"));
        } else if line.starts_with(|c: char| !c.is_whitespace()) {
            // The next top-level key (`components:`) ends the paths.
            path = None;
        } else if let (Some(path), Some(method)) = (
            &path,
            line.strip_prefix("    ")
                .and_then(|rest| rest.strip_suffix(':')),
        ) {
            if METHODS.contains(&method) {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

// ---- the single-node test -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_serves_the_whole_api_and_refuses_bad_input() {
    let http = Http::new();
    let node = TestNode::start(
        1,
        tempfile::tempdir().expect("a temporary directory"),
        false,
    )
    .await;
    let token = node.token();
    assert_eq!(token.len(), 64);

    // Before the cluster exists there is no leader: writes are refused as unavailable (after
    // a bounded wait for one), local reads answer from the empty state.
    let no_leader = http.post(&node.url("/v1/commands"), &genesis()).await;
    no_leader.expect_error(503, "unavailable");
    http.get(&node.url("/v1/accounts/1?consistency=local"))
        .await
        .expect_error(404, "not_found");

    // Administration needs the token.
    http.admin(&node.url("/v1/admin/cluster/init"), "wrong", &json!({}))
        .await
        .expect_error(401, "admin_token_invalid");
    http.post(&node.url("/v1/admin/cluster/init"), &json!({}))
        .await
        .expect_error(401, "admin_token_invalid");
    http.admin(&node.url("/v1/admin/cluster/init"), &token, &json!({}))
        .await
        .expect(200);
    http.admin(&node.url("/v1/admin/cluster/init"), &token, &json!({}))
        .await
        .expect_error(409, "cluster_already_initialised");
    http.admin(
        &node.url("/v1/admin/faults"),
        &token,
        &json!({"isolate": true}),
    )
    .await
    .expect_error(403, "fault_admin_disabled");
    leader_seen_by(&http, &node, Some(1)).await;
    let health = http.get(&node.url("/v1/health")).await.expect(200);
    assert_eq!(health.body, json!({"status": "ok", "node_id": 1}));

    // Before genesis only genesis applies: the ledger's rejection comes back with its entry.
    let early = http
        .post(
            &node.url("/v1/parties"),
            &register_party("lab", Role::Institution),
        )
        .await;
    early.expect_error(422, "ledger_not_initialised");

    accepted(&http, &node.url("/v1/commands"), &genesis()).await;
    accepted(
        &http,
        &node.url("/v1/parties"),
        &register_party("lab", Role::Institution),
    )
    .await;
    accepted(
        &http,
        &node.url("/v1/accounts"),
        &open_account(OPERATOR, MINT_CNY, "CNY", AccountKind::Mint, false),
    )
    .await;
    accepted(
        &http,
        &node.url("/v1/accounts"),
        &open_account("lab", LAB_CNY, "CNY", AccountKind::Main, true),
    )
    .await;
    let funding = transfers(OPERATOR, vec![transfer(100, MINT_CNY, LAB_CNY, 100_000)]);
    let funded = accepted(&http, &node.url("/v1/transfers"), &funding).await;
    let funded_index = funded.body["journal_index"].as_u64().expect("an index");
    accepted(
        &http,
        &node.url("/v1/transfers"),
        &transfers(OPERATOR, vec![transfer(101, MINT_CNY, LAB_CNY, 2_500)]),
    )
    .await;

    // A batch: one good command, one forged, one of the wrong kind for nothing (any command is
    // fine in a batch), answered one by one.
    let good = open_account("lab", LAB_GPUH, "GPUH:H100", AccountKind::Main, true);
    let mut forged = transfers("lab", vec![transfer(102, LAB_CNY, MINT_CNY, 1)]);
    forged.body.nonce += 1_000_000;
    let batch = http
        .post(
            &node.url("/v1/commands/batch"),
            &json!({"commands": [good, forged]}),
        )
        .await
        .expect(200);
    let results = batch.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{}", batch.text);
    assert!(
        results[0]["journal_index"].as_u64().is_some(),
        "{}",
        batch.text
    );
    assert_eq!(results[1]["code"], "signature_invalid", "{}", batch.text);
    assert_eq!(results[1]["status"], 401, "{}", batch.text);

    // Reads.
    assert_eq!(
        posted(&http, &node, LAB_CNY).await,
        ("0".to_owned(), "102500".to_owned())
    );
    assert_eq!(
        posted(&http, &node, MINT_CNY).await,
        ("102500".to_owned(), "0".to_owned())
    );
    let account = http.get(&node.url("/v1/accounts/10")).await.expect(200);
    assert_eq!(account.body["party"], "lab");
    assert_eq!(account.body["asset"], "CNY");
    assert_eq!(account.body["id"], "10");
    let record = http.get(&node.url("/v1/transfers/100")).await.expect(200);
    assert_eq!(record.body["amount"], "100000");
    assert_eq!(record.body["journal_index"], funded_index);
    let page = http
        .get(&node.url("/v1/accounts/10/transfers?limit=1"))
        .await
        .expect(200);
    assert_eq!(
        page.body["transfers"].as_array().map(Vec::len),
        Some(1),
        "{}",
        page.text
    );
    assert_eq!(page.body["transfers"][0]["transfer"]["id"], "100");
    assert_eq!(page.body["next"], "100");
    let page = http
        .get(&node.url("/v1/accounts/10/transfers?after=100&limit=1000"))
        .await
        .expect(200);
    assert_eq!(
        page.body["transfers"][0]["transfer"]["id"], "101",
        "{}",
        page.text
    );
    assert_eq!(page.body["transfers"].as_array().map(Vec::len), Some(1));
    assert_eq!(page.body["next"], Value::Null);
    let party = http
        .get(&node.url("/v1/parties/lab?consistency=local"))
        .await
        .expect(200);
    assert_eq!(party.body["role"], "institution");
    // Concurrent writes all apply; the proposer groups them into fewer Raft entries when they
    // queue up behind the proposals in flight.
    let shared = Arc::new(Http::new());
    let mut writers = tokio::task::JoinSet::new();
    for offset in 0..CONCURRENT_WRITES {
        let (http, url) = (shared.clone(), node.url("/v1/transfers"));
        let command = transfers(
            OPERATOR,
            vec![transfer(1_000 + offset, MINT_CNY, LAB_CNY, 1)],
        );
        writers.spawn(async move { http.post(&url, &command).await });
    }
    while let Some(joined) = within("concurrent writes", writers.join_next()).await {
        joined.expect("the writer task").expect(200);
    }
    let lab = http.get(&node.url("/v1/accounts/10")).await.expect(200);
    let credited = 102_500 + CONCURRENT_WRITES;
    assert_eq!(lab.body["balances"]["credits_posted"], credited.to_string());
    let journal_end = check_journal(&http, &node).await;
    let head = http.get(&node.url("/v1/head")).await.expect(200);
    let checkpoint: Checkpoint =
        serde_json::from_value(head.body["checkpoint"].clone()).expect("a checkpoint");
    assert!(checkpoint.signature_is_valid(), "the checkpoint verifies");
    assert_eq!(checkpoint.head, journal_end);
    assert_eq!(head.body["head"]["index"], journal_end.index);
    let seed = read_file(node.dir.path(), NODE_KEY_FILE);
    let mut seed_bytes = [0u8; 32];
    hex::decode_to_slice(seed.trim(), &mut seed_bytes).expect("the key file is hex");
    assert_eq!(
        checkpoint.node_key,
        ledger::SigningKey::from_seed(seed_bytes).public_key()
    );
    let state = http.get(&node.url("/v1/state")).await.expect(200);
    assert_eq!(state.body["journal_head"]["index"], journal_end.index);
    assert_eq!(state.body["state_hash"].as_str().map(str::len), Some(64));
    let cluster = http.get(&node.url("/v1/cluster")).await.expect(200);
    assert_eq!(cluster.body["role"], "leader");
    assert_eq!(cluster.body["members"][0]["voter"], true);
    assert_eq!(cluster.body["journal_head"]["index"], journal_end.index);
    let metrics = http.get(&node.url("/metrics")).await.expect(200);
    for name in METRIC_NAMES {
        assert!(metrics.text.contains(name), "{name} missing from /metrics");
    }
    let proposed: f64 = metrics
        .text
        .lines()
        .find_map(|line| line.strip_prefix("cbank_proposal_commands_sum{node_id=\"1\"} "))
        .and_then(|value| value.parse().ok())
        .expect("the proposal size histogram has a sum");
    assert!(
        proposed >= CONCURRENT_WRITES as f64,
        "{proposed} commands proposed"
    );
    let proposals = metrics
        .text
        .lines()
        .find_map(|line| line.strip_prefix("cbank_proposal_commands_count{node_id=\"1\"} "))
        .unwrap_or("?");
    println!("group commit: {proposed} commands in {proposals} proposals");

    // The bad-input table: each gets its JSON error and changes nothing.
    let head_before = journal_head(&http, &node).await;
    let balances_before = posted(&http, &node, LAB_CNY).await;
    let json_type = [("content-type", "application/json")];
    let cases: Vec<(&str, Answer, u16, &str)> = vec![
        (
            "malformed JSON",
            http.send(Method::POST, &node.url("/v1/commands"), &json_type, b"{not json".to_vec()).await,
            400,
            "malformed_json",
        ),
        (
            "JSON that is not a command",
            http.post(&node.url("/v1/commands"), &json!({"body": 1})).await,
            400,
            "malformed_json",
        ),
        (
            "oversized body",
            http.send(Method::POST, &node.url("/v1/commands"), &json_type, vec![b' '; REQUEST_BYTES_MAX + 1]).await,
            413,
            "body_too_large",
        ),
        ("unknown route", http.get(&node.url("/v1/nothing-here")).await, 404, "not_found"),
        ("wrong method", http.send(Method::DELETE, &node.url("/v1/accounts"), &[], Vec::new()).await, 405, "method_not_allowed"),
        ("GET on a write route", http.get(&node.url("/v1/commands")).await, 405, "method_not_allowed"),
        (
            "no content type",
            http.send(Method::POST, &node.url("/v1/commands"), &[], serde_json::to_vec(&genesis()).expect("json")).await,
            415,
            "unsupported_media_type",
        ),
        (
            "wrong command type",
            http.post(&node.url("/v1/transfers"), &register_party("other", Role::Sme)).await,
            400,
            "wrong_command_type",
        ),
        ("bad account id", http.get(&node.url("/v1/accounts/ten")).await, 400, "invalid_parameter"),
        ("bad consistency", http.get(&node.url("/v1/accounts/10?consistency=eventual")).await, 400, "invalid_parameter"),
        ("bad limit", http.get(&node.url("/v1/journal?limit=1001")).await, 400, "invalid_parameter"),
        ("unknown account", http.get(&node.url("/v1/accounts/999")).await, 404, "not_found"),
        ("unknown transfer", http.get(&node.url("/v1/transfers/999")).await, 404, "not_found"),
        ("unknown party", http.get(&node.url("/v1/parties/nobody")).await, 404, "not_found"),
        (
            "oversized batch",
            http.post(
                &node.url("/v1/commands/batch"),
                &json!({"commands": (0..65).map(|_| register_party("x", Role::Sme)).collect::<Vec<_>>()}),
            )
            .await,
            413,
            "batch_too_large",
        ),
    ];
    for (what, answer, status, code) in cases {
        assert_eq!(
            (answer.status.as_u16(), answer.code()),
            (status, code),
            "{what}: {}",
            answer.text
        );
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty()),
            "{what}: {}",
            answer.text
        );
    }
    // A wrongly signed command is refused before it is proposed: the journal does not move.
    let mut wrongly_signed = transfers("lab", vec![transfer(103, LAB_CNY, MINT_CNY, 1)]);
    wrongly_signed.signature =
        demo_key("somebody-else").sign_bytes(&wrongly_signed.body.signing_bytes());
    http.post(&node.url("/v1/transfers"), &wrongly_signed)
        .await
        .expect_error(401, "signature_invalid");
    assert_eq!(journal_head(&http, &node).await, head_before);
    assert_eq!(posted(&http, &node, LAB_CNY).await, balances_before);
    // A replayed command is journaled as rejected, with its entry named, and moves nothing.
    let replay = http
        .post(&node.url("/v1/transfers"), &funding)
        .await
        .expect_error(409, "nonce_replayed");
    assert_eq!(
        replay.body["journal_index"].as_u64(),
        Some(head_before + 1),
        "{}",
        replay.text
    );
    assert_eq!(posted(&http, &node, LAB_CNY).await, balances_before);

    // Every route of the OpenAPI document is served, and the document lists every route.
    let mut documented = openapi_operations(include_str!("../../spec/openapi.yaml"));
    documented.sort();
    let mut listed: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    listed.sort();
    assert_eq!(
        documented, listed,
        "spec/openapi.yaml lists other routes than ROUTES"
    );
    for (method, path) in ROUTES {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let mut url = node.url(
            &path
                .replace("{id}", "1")
                .replace("{index}", "1")
                .replace("{file}", "app.js"),
        );
        if path.ends_with("/stream") {
            // A stream never ends on its own: a bad cursor shows the route is served.
            url.push_str("?after=x");
        }
        let answer = http.send(method.clone(), &url, &[], Vec::new()).await;
        let unrouted = answer.status == StatusCode::NOT_FOUND
            && answer.body["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("no route"));
        assert!(
            !unrouted && answer.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            answer.text
        );
    }

    // A restart keeps the key, the token and the state.
    let token_before = node.token();
    let dir = node.stop().await;
    let node = TestNode::start(1, dir, false).await;
    assert_eq!(node.token(), token_before);
    leader_seen_by(&http, &node, Some(1)).await;
    assert_eq!(posted(&http, &node, LAB_CNY).await, balances_before);
    let head = http.get(&node.url("/v1/head")).await.expect(200);
    let checkpoint: Checkpoint =
        serde_json::from_value(head.body["checkpoint"].clone()).expect("a checkpoint");
    assert!(checkpoint.signature_is_valid());
    assert_eq!(
        checkpoint.node_key,
        ledger::SigningKey::from_seed(seed_bytes).public_key()
    );
    assert_eq!(checkpoint.head.index, head_before + 1);
    node.stop().await;
}

// ---- the compute bank -----------------------------------------------------------------------

const UNIV_H100: u128 = 11;
const SME_H100: u128 = 21;
const OFFER: u128 = 500;
const WITHDRAWAL: u128 = 700;
const HOST: &str = "gpu-01";
const NS_PER_S: u64 = 1_000_000_000;

/// `command` signed by `host`'s agent key for its institution `party`.
fn signed_by_agent(host: &str, party: &str, command: Command) -> SignedCommand {
    let nonce = u128::from(NONCE.fetch_add(1, Ordering::Relaxed));
    demo_key(&format!("{host}-agent")).sign(
        PartyId::new(party),
        nonce,
        now_ns() + 60_000_000_000,
        command,
    )
}

/// The balances of an account, as the API writes them.
async fn balances(http: &Http, node: &TestNode, account: u128) -> Value {
    let answer = http
        .get(&node.url(&format!("/v1/accounts/{account}")))
        .await
        .expect(200);
    answer.body["balances"].clone()
}

/// Checks a statement against the account's balances: the closing balances are the account's,
/// and the last line's balances are the closing ones.
#[track_caller]
fn check_statement(statement: &Value, balances: &Value, lines: usize) {
    assert_eq!(&statement["closing"], balances, "{statement:#}");
    let statement_lines = statement["lines"].as_array().expect("lines");
    assert_eq!(statement_lines.len(), lines, "{statement:#}");
    assert_eq!(
        statement_lines.last().map(|line| &line["balances_after"]),
        Some(balances),
        "{statement:#}"
    );
    assert_eq!(
        statement["opening"],
        json!({"debits_pending": "0", "debits_posted": "0", "credits_pending": "0", "credits_posted": "0"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_routes_offer_meter_withdraw_allocate_and_state() {
    use ledger::bank::{
        AllocationUpdate, GpuRate, HostSpec, MeterReport, OfferSpec, WithdrawalSpec,
    };

    let http = Http::new();
    let node = TestNode::start(
        1,
        tempfile::tempdir().expect("a temporary directory"),
        false,
    )
    .await;
    http.admin(
        &node.url("/v1/admin/cluster/init"),
        &node.token(),
        &json!({}),
    )
    .await
    .expect(200);
    leader_seen_by(&http, &node, Some(1)).await;
    accepted(&http, &node.url("/v1/commands"), &genesis()).await;
    http.get(&node.url("/v1/rates"))
        .await
        .expect_error(404, "not_found");
    let rates = signed(
        OPERATOR,
        Command::SetRateTable {
            version: 1,
            rates: vec![GpuRate {
                gpu_class: "H100".to_owned(),
                standard_milli: 1_000,
            }],
        },
    );
    accepted(&http, &node.url("/v1/rates"), &rates).await;
    let table = http.get(&node.url("/v1/rates")).await.expect(200);
    assert_eq!(table.body["version"], 1, "{}", table.text);
    assert_eq!(table.body["rates"]["H100"], 1_000, "{}", table.text);
    http.get(&node.url("/v1/rates/1?consistency=local"))
        .await
        .expect(200);
    http.get(&node.url("/v1/rates/2"))
        .await
        .expect_error(404, "not_found");
    http.get(&node.url("/v1/rates/0"))
        .await
        .expect_error(400, "invalid_parameter");

    for (party, role) in [("univ", Role::Institution), ("sme", Role::Sme)] {
        accepted(
            &http,
            &node.url("/v1/parties"),
            &register_party(party, role),
        )
        .await;
    }
    for (party, account) in [("univ", UNIV_H100), ("sme", SME_H100)] {
        let command = open_account(party, account, "GPUH:H100", AccountKind::Main, true);
        accepted(&http, &node.url("/v1/accounts"), &command).await;
    }
    let host = HostSpec {
        host_id: HOST.to_owned(),
        region: "beijing".to_owned(),
        gpu_class: "H100".to_owned(),
        gpu_count: 8,
        agent_key: demo_key(&format!("{HOST}-agent")).public_key(),
        account_id: UNIV_H100,
    };
    let register = signed("univ", Command::RegisterHost { host });
    // A typed bank route takes only its command.
    http.post(&node.url("/v1/offers"), &register)
        .await
        .expect_error(400, "wrong_command_type");
    accepted(&http, &node.url("/v1/hosts"), &register).await;
    let shown = http.get(&node.url("/v1/hosts/gpu-01")).await.expect(200);
    assert_eq!(shown.body["owner"], "univ", "{}", shown.text);
    assert_eq!(shown.body["spec"]["account_id"], "11", "{}", shown.text);
    http.get(&node.url("/v1/hosts/gpu-99"))
        .await
        .expect_error(404, "not_found");

    // A window that started ten seconds ago, four hours long; its agent offers it.
    let start_ns = now_ns() / NS_PER_S * NS_PER_S - 10 * NS_PER_S;
    let offer = OfferSpec {
        offer_id: OFFER,
        host_id: HOST.to_owned(),
        gpu_count: 8,
        start_ns,
        end_ns: start_ns + 4 * 3_600 * NS_PER_S,
    };
    let offered = signed_by_agent(HOST, "univ", Command::OfferCapacity { offer });
    accepted(&http, &node.url("/v1/offers"), &offered).await;
    let offers = http
        .get(&node.url("/v1/hosts/gpu-01/offers"))
        .await
        .expect(200);
    assert_eq!(
        offers.body["offers"][0]["spec"]["offer_id"], "500",
        "{}",
        offers.text
    );
    assert_eq!(offers.body["next"], Value::Null, "{}", offers.text);
    http.get(&node.url("/v1/offers/500")).await.expect(200);
    http.get(&node.url("/v1/offers/501"))
        .await
        .expect_error(404, "not_found");

    // The first five seconds: 30 GPU-seconds available, 10 down.
    let report = MeterReport {
        offer_id: OFFER,
        from_ns: start_ns,
        to_ns: start_ns + 5 * NS_PER_S,
        available_gpu_s: 30,
        busy_gpu_s: 0,
        down_gpu_s: 10,
    };
    let metered = signed_by_agent(HOST, "univ", Command::ReportMeter { report });
    accepted(&http, &node.url("/v1/meter-reports"), &metered).await;
    let offer = http.get(&node.url("/v1/offers/500")).await.expect(200);
    assert_eq!(offer.body["delivered_gpu_s"], 30, "{}", offer.text);
    assert_eq!(offer.body["down_gpu_s"], 10, "{}", offer.text);

    // The university sells 20 of them to the SME, who draws 10 GPU-seconds on one GPU.
    let sale = transfers("univ", vec![transfer(900, UNIV_H100, SME_H100, 20)]);
    accepted(&http, &node.url("/v1/transfers"), &sale).await;
    let withdrawal = WithdrawalSpec {
        withdrawal_id: WITHDRAWAL,
        account_id: SME_H100,
        gpu_class: "H100".to_owned(),
        gpu_count: 1,
        duration_s: 10,
        region: None,
    };
    let draw = signed("sme", Command::RequestWithdrawal { withdrawal });
    accepted(&http, &node.url("/v1/withdrawals"), &draw).await;
    let drawn = http.get(&node.url("/v1/withdrawals/700")).await.expect(200);
    let allocation_id = drawn.body["state"]["allocated"]["allocation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("allocated at once: {}", drawn.text))
        .to_owned();
    assert_eq!(drawn.body["charged_gpu_s"], 10, "{}", drawn.text);
    let listed = http
        .get(&node.url("/v1/parties/sme/withdrawals"))
        .await
        .expect(200);
    assert_eq!(
        listed.body["withdrawals"][0]["spec"]["withdrawal_id"],
        "700"
    );
    http.get(&node.url("/v1/parties/nobody/withdrawals"))
        .await
        .expect_error(404, "not_found");

    // The allocation is on the host, active; an allocated withdrawal cannot be cancelled.
    let active = http
        .get(&node.url("/v1/hosts/gpu-01/allocations"))
        .await
        .expect(200);
    let allocations = active.body["allocations"].as_array().expect("allocations");
    assert_eq!(allocations.len(), 1, "{}", active.text);
    assert_eq!(allocations[0]["allocation_id"], allocation_id.as_str());
    assert_eq!(allocations[0]["withdrawal_id"], "700");
    assert_eq!(allocations[0]["offer_id"], "500");
    assert_eq!(allocations[0]["state"], "granted");
    http.get(&node.url("/v1/hosts/gpu-01/allocations?state=sleeping"))
        .await
        .expect_error(400, "invalid_parameter");
    let cancel = signed(
        "sme",
        Command::CancelWithdrawal {
            withdrawal_id: WITHDRAWAL,
        },
    );
    http.post(&node.url("/v1/withdrawals/cancel"), &cancel)
        .await
        .expect_error(422, "withdrawal_not_queued");

    // The agent reports it done: the SME is charged the 10 GPU-seconds.
    let allocation: u128 = allocation_id.parse().expect("a decimal id");
    let done = signed_by_agent(
        HOST,
        "univ",
        Command::ReportAllocation {
            allocation_id: allocation,
            update: AllocationUpdate::Completed {
                delivered_gpu_s: 10,
            },
        },
    );
    accepted(&http, &node.url("/v1/allocation-reports"), &done).await;
    let shown = http
        .get(&node.url(&format!("/v1/allocations/{allocation_id}")))
        .await
        .expect(200);
    assert_eq!(
        shown.body["state"],
        json!({"completed": {"delivered_gpu_s": 10}})
    );
    let active = http
        .get(&node.url("/v1/hosts/gpu-01/allocations?state=active&consistency=local"))
        .await
        .expect(200);
    assert_eq!(active.body["allocations"], json!([]), "{}", active.text);
    let all = http
        .get(&node.url("/v1/hosts/gpu-01/allocations?state=all&limit=1"))
        .await
        .expect(200);
    assert_eq!(all.body["allocations"].as_array().map(Vec::len), Some(1));

    // Statements recompute each account's balances from its transfers, the bank's derived
    // ones included: the SME's sale, reservation and charge; the university's offer
    // reservation, its void, the delivery, the new reservation and the sale.
    let sme = balances(&http, &node, SME_H100).await;
    assert_eq!(
        sme,
        json!({"debits_pending": "0", "debits_posted": "10", "credits_pending": "0", "credits_posted": "20"})
    );
    let statement = http
        .get(&node.url("/v1/accounts/21/statement"))
        .await
        .expect(200);
    check_statement(&statement.body, &sme, 3);
    let movements: Vec<&str> = statement.body["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|line| line["movement"].as_str())
        .collect();
    assert_eq!(movements, ["posted", "reserved", "posted_from_reservation"]);
    let univ = balances(&http, &node, UNIV_H100).await;
    assert_eq!(univ["credits_posted"], "30");
    assert_eq!(univ["debits_posted"], "20");
    let statement = http
        .get(&node.url("/v1/accounts/11/statement?consistency=local"))
        .await
        .expect(200);
    check_statement(&statement.body, &univ, 5);
    // A period after everything opens with the closing balances and has no lines.
    let later = now_ns() + 3_600 * NS_PER_S;
    let empty = http
        .get(&node.url(&format!("/v1/accounts/11/statement?from_ns={later}")))
        .await
        .expect(200);
    assert_eq!(empty.body["opening"], univ);
    assert_eq!(empty.body["lines"], json!([]));
    http.get(&node.url("/v1/accounts/11/statement?from_ns=9&to_ns=8"))
        .await
        .expect_error(400, "invalid_parameter");
    http.get(&node.url("/v1/accounts/12/statement"))
        .await
        .expect_error(404, "not_found");
    let party = http
        .get(&node.url("/v1/parties/univ/statement?asset=GPUH:H100"))
        .await
        .expect(200);
    assert_eq!(party.body["party"], "univ");
    let statements = party.body["statements"].as_array().expect("statements");
    assert_eq!(statements.len(), 1, "{}", party.text);
    check_statement(&statements[0], &univ, 5);
    let none = http
        .get(&node.url("/v1/parties/univ/statement?asset=CNY"))
        .await
        .expect(200);
    assert_eq!(none.body["statements"], json!([]));
    http.get(&node.url("/v1/parties/univ/statement?asset=dollars"))
        .await
        .expect_error(400, "invalid_parameter");
    node.stop().await;
}

// ---- the three-node test --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_forward_writes_to_the_leader_and_converge() {
    let http = Http::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(
            TestNode::start(
                id,
                tempfile::tempdir().expect("a temporary directory"),
                true,
            )
            .await,
        );
    }
    // Form the cluster through the admin routes: node 1 alone, then 2 and 3 as learners, then
    // promoted to voters.
    let (first, others) = nodes.split_first().expect("three nodes");
    http.admin(
        &first.url("/v1/admin/cluster/init"),
        &first.token(),
        &json!({"members": [first.member()]}),
    )
    .await
    .expect(200);
    leader_seen_by(&http, first, Some(1)).await;
    for node in others {
        http.admin(
            &first.url("/v1/admin/cluster/learners"),
            &first.token(),
            &node.member(),
        )
        .await
        .expect(200);
    }
    for node in others {
        let promoted = http
            .admin(
                &first.url("/v1/admin/cluster/promote"),
                &first.token(),
                &json!({"id": node.node.id()}),
            )
            .await
            .expect(200);
        let voter = promoted.body["members"]
            .as_array()
            .expect("members")
            .iter()
            .any(|member| member["id"] == node.node.id() && member["voter"] == true);
        assert!(voter, "{}", promoted.text);
    }
    // A follower refuses membership changes (each node has its own token) and names the leader.
    let refused = http
        .admin(
            &nodes[1].url("/v1/admin/cluster/promote"),
            &nodes[1].token(),
            &json!({"id": 3}),
        )
        .await;
    let refused = refused.expect_error(503, "unavailable");
    assert_eq!(refused.body["leader_id"], 1);
    for node in &nodes {
        leader_seen_by(&http, node, Some(1)).await;
    }

    // Writes sent to followers are forwarded to the leader and relayed back.
    let follower = &nodes[1];
    let answer = accepted(&http, &follower.url("/v1/commands"), &genesis()).await;
    assert_eq!(
        answer
            .headers
            .get("x-cbank-forwarded-to")
            .and_then(|value| value.to_str().ok()),
        Some(nodes[0].node.http_addr().to_string().as_str())
    );
    accepted(
        &http,
        &nodes[2].url("/v1/parties"),
        &register_party("lab", Role::Institution),
    )
    .await;
    let batch = json!({"commands": [
        open_account(OPERATOR, MINT_CNY, "CNY", AccountKind::Mint, false),
        open_account("lab", LAB_CNY, "CNY", AccountKind::Main, true),
    ]});
    let batch = http
        .post(&follower.url("/v1/commands/batch"), &batch)
        .await
        .expect(200);
    assert!(
        batch.body["results"]
            .as_array()
            .is_some_and(|results| results
                .iter()
                .all(|result| result["journal_index"].is_u64() && result.get("code").is_none())),
        "{}",
        batch.text
    );
    accepted(
        &http,
        &follower.url("/v1/transfers"),
        &transfers(OPERATOR, vec![transfer(100, MINT_CNY, LAB_CNY, 7_000)]),
    )
    .await;
    // A linearizable read on a follower is forwarded too, and sees the write.
    let account = http.get(&nodes[2].url("/v1/accounts/10")).await.expect(200);
    assert_eq!(
        account.body["balances"]["credits_posted"], "7000",
        "{}",
        account.text
    );
    assert!(account.headers.contains_key("x-cbank-forwarded-to"));

    // Isolate the leader: the others elect a new one and keep taking writes.
    http.admin(
        &nodes[0].url("/v1/admin/faults"),
        &nodes[0].token(),
        &json!({"isolate": true}),
    )
    .await
    .expect(200);
    let new_leader = eventually("a new leader", || async {
        let seen = leader_seen_by(&http, &nodes[1], None).await;
        (seen != 1).then_some(seen)
    })
    .await;
    leader_seen_by(&http, &nodes[2], Some(new_leader)).await;
    // Written through the follower that is not the new leader, so it is forwarded too.
    let via = if new_leader == 2 {
        &nodes[2]
    } else {
        &nodes[1]
    };
    accepted(
        &http,
        &via.url("/v1/transfers"),
        &transfers(OPERATOR, vec![transfer(101, MINT_CNY, LAB_CNY, 500)]),
    )
    .await;
    http.admin(
        &nodes[0].url("/v1/admin/faults"),
        &nodes[0].token(),
        &json!({"isolate": false}),
    )
    .await
    .expect(200);

    // All three converge on the same journal head and state hash.
    let converged = eventually("all nodes to converge", || async {
        let mut states = Vec::new();
        for node in &nodes {
            let state = http.get(&node.url("/v1/state")).await;
            if state.status != StatusCode::OK {
                return None;
            }
            states.push((
                state.body["journal_head"].clone(),
                state.body["state_hash"].clone(),
            ));
        }
        let same = states.iter().all(|state| *state == states[0]);
        let expected_index = states[0].0["index"].as_u64() == Some(6);
        (same && expected_index).then(|| states[0].clone())
    })
    .await;
    for node in &nodes {
        let end = check_journal(&http, node).await;
        assert_eq!(Some(end.index), converged.0["index"].as_u64());
        assert_eq!(
            posted(&http, node, LAB_CNY).await,
            ("0".to_owned(), "7500".to_owned())
        );
    }

    // The new leader removes the old one; removing a node that is not a member is refused.
    let leader = &nodes[usize::try_from(new_leader - 1).expect("a small id")];
    let removed = http
        .admin(
            &leader.url("/v1/admin/cluster/remove"),
            &leader.token(),
            &json!({"id": 1}),
        )
        .await
        .expect(200);
    let members: Vec<u64> = removed.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|member| member["id"].as_u64())
        .collect();
    assert!(
        !members.contains(&1) && members.len() == 2,
        "{}",
        removed.text
    );
    http.admin(
        &leader.url("/v1/admin/cluster/remove"),
        &leader.token(),
        &json!({"id": 9}),
    )
    .await
    .expect_error(404, "not_found");

    for node in nodes {
        node.stop().await;
    }
}
