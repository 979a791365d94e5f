//! The first inputs of each target's corpus, made from real commands and messages: the golden
//! command vectors of `spec/vectors/`, the fixture's journal, scenarios that drive the bank,
//! the supermarket and the vouchers, and sample agent files. `examples/seeds.rs` writes them
//! into `corpus/<target>/`; the fuzzer grows the corpus from there; `tests/corpus.rs` also runs
//! them directly, so a seed that stops parsing is noticed.

use crate::fixture::{account, fixture};
use crate::targets::apply_commands::{self, Step};
use crate::targets::audit_export::honest;
use ledger::audit::{Proof, PROOF_FORMAT};
use ledger::limits::NS_PER_S;
use ledger::testing::START_NS;
use ledger::{Command, Head, SignedCommand};
use node::raft_types::{NodeInfo, Proposal, StampedCommand};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote,
};
use std::collections::{BTreeMap, BTreeSet};

/// The seed inputs of `target`, each with a short name.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "command_bytes" => command_bytes(),
        "raft_payload" => raft_payload(),
        "http_body" => http_body(),
        "http_query" => http_query(),
        "apply_commands" => apply_commands(),
        "audit_export" => audit_export(),
        "agent_inputs" => agent_inputs(),
        other => panic!("no seeds for target {other}"),
    }
}

fn with_selector(selector: u8, bytes: &[u8]) -> Vec<u8> {
    let mut input = vec![selector];
    input.extend_from_slice(bytes);
    input
}

/// The signed commands of `spec/vectors/commands.json`.
pub fn vector_commands() -> Vec<SignedCommand> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/commands.json");
    let text = std::fs::read_to_string(path).expect("spec/vectors/commands.json exists");
    let json: serde_json::Value = serde_json::from_str(&text).expect("the vectors are JSON");
    json["vectors"]
        .as_array()
        .expect("a vectors array")
        .iter()
        .map(|vector| serde_json::from_value(vector["command"].clone()).expect("a SignedCommand"))
        .collect()
}

fn command_bytes() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = vector_commands()
        .iter()
        .map(|command| {
            (
                format!("command-{}", command.body.command.name()),
                with_selector(0, &command.to_bytes()),
            )
        })
        .collect();
    for entry in fixture().journal.iter().step_by(8) {
        seeds.push((
            format!("entry-{}", entry.body.index),
            with_selector(1, &ledger::codec::encode(entry)),
        ));
    }
    seeds.push((
        "snapshot-empty".into(),
        with_selector(2, &ledger::Ledger::new().snapshot()),
    ));
    seeds
}

fn log_id(term: u64, node_id: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node_id), index)
}

fn membership() -> Membership<u64, NodeInfo> {
    let nodes: BTreeMap<u64, NodeInfo> = (1..=3)
        .map(|id| {
            let info = NodeInfo {
                raft_addr: format!("127.0.0.1:{}", 7010 + id),
                http_addr: format!("127.0.0.1:{}", 7000 + id),
            };
            (id, info)
        })
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn raft_payload() -> Vec<(String, Vec<u8>)> {
    use node::network::wire::{encode, AppendEntriesResult, InstallSnapshotResult, VoteResult};
    let command = vector_commands().remove(0);
    let proposal = Proposal {
        commands: vec![StampedCommand {
            timestamp_ns: START_NS,
            command,
        }],
    };
    let append: node::network::wire::AppendEntries = AppendEntriesRequest {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(2, 2, 9)),
        entries: vec![
            Entry {
                log_id: log_id(3, 1, 10),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(3, 1, 11),
                payload: EntryPayload::Normal(proposal),
            },
            Entry {
                log_id: log_id(3, 1, 12),
                payload: EntryPayload::Membership(membership()),
            },
        ],
        leader_commit: Some(log_id(3, 1, 10)),
    };
    let vote = VoteRequest {
        vote: Vote::new(4, 2),
        last_log_id: Some(log_id(3, 1, 12)),
    };
    let snapshot: node::network::wire::InstallSnapshot = InstallSnapshotRequest {
        vote: Vote::new_committed(3, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 1, 12)),
            last_membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership()),
            snapshot_id: "3-1-12-snap".to_string(),
        },
        offset: 0,
        data: ledger::Ledger::new().snapshot(),
        done: true,
    };
    let append_result: AppendEntriesResult =
        Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(1, 1, 5))));
    let vote_result: VoteResult = Ok(VoteResponse {
        vote: Vote::new(4, 2),
        vote_granted: true,
        last_log_id: None,
    });
    let snapshot_result: InstallSnapshotResult = Ok(InstallSnapshotResponse {
        vote: Vote::new(3, 1),
    });
    vec![
        ("append-entries".into(), with_selector(0, &encode(&append))),
        ("vote".into(), with_selector(1, &encode(&vote))),
        (
            "install-snapshot".into(),
            with_selector(2, &encode(&snapshot)),
        ),
        (
            "append-entries-result".into(),
            with_selector(3, &encode(&append_result)),
        ),
        (
            "vote-result".into(),
            with_selector(4, &encode(&vote_result)),
        ),
        (
            "install-snapshot-result".into(),
            with_selector(5, &encode(&snapshot_result)),
        ),
    ]
}

fn http_body() -> Vec<(String, Vec<u8>)> {
    let commands = vector_commands();
    let mut seeds: Vec<(String, Vec<u8>)> = commands
        .iter()
        .map(|command| {
            (
                format!("command-{}", command.body.command.name()),
                with_selector(0, &serde_json::to_vec(command).expect("JSON")),
            )
        })
        .collect();
    let batch = serde_json::json!({ "commands": commands.iter().take(2).collect::<Vec<_>>() });
    seeds.push((
        "batch".into(),
        with_selector(1, batch.to_string().as_bytes()),
    ));
    let admin = [
        (
            2,
            "init",
            r#"{"members": [{"id": 1, "raft_addr": "127.0.0.1:7011", "http_addr": "127.0.0.1:7001"}]}"#,
        ),
        (
            3,
            "learner",
            r#"{"id": 2, "raft_addr": "127.0.0.1:7012", "http_addr": "127.0.0.1:7002"}"#,
        ),
        (4, "promote", r#"{"id": 2}"#),
        (5, "faults", r#"{"isolate": true}"#),
    ];
    for (selector, name, json) in admin {
        seeds.push((
            format!("admin-{name}"),
            with_selector(selector, json.as_bytes()),
        ));
    }
    seeds
}

fn http_query() -> Vec<(String, Vec<u8>)> {
    let queries = [
        (0, "consistency=local"),
        (1, "consistency=linearizable&after=5&from=1&limit=10"),
        (
            2,
            "after=340282366920938463463374607431768211455&limit=1000",
        ),
        (3, "state=all&after=1&limit=2"),
        (4, "from_ns=0&to_ns=1767225600000000000&asset=GPUH%3AH100"),
        (
            5,
            "product=GPUH%3AH100%2FCNY&levels=20&interval_s=60&after=0&limit=100",
        ),
        (6, "status=all&after=7"),
        (7, "after=3"),
        (8, "format=csv&consistency=local"),
    ];
    queries
        .iter()
        .enumerate()
        .map(|(n, (selector, query))| {
            (
                format!("query-{n}"),
                with_selector(*selector, query.as_bytes()),
            )
        })
        .collect()
}

fn command(json: &str) -> Command {
    serde_json::from_str(json).unwrap_or_else(|error| panic!("seed command {json}: {error}"))
}

fn step(signer: u8, pause_s: u16, json: &str) -> Step {
    Step {
        signer,
        pause_s,
        command: command(json),
    }
}

/// Scenarios of a few steps each, signer indexes as in `fixture::SIGNERS` (0 operator,
/// 1 institution, 2 sme, 3 government, 4 provider, 5 auditor, 6 the host's agent).
pub fn scenarios() -> Vec<(&'static str, Vec<Step>)> {
    let s = NS_PER_S;
    let start = START_NS + 3600 * s;
    let end = start + 7200 * s;
    let (inst_cny, inst_gpuh) = (account(1, 0), account(1, 1));
    let (sme_cny, sme_gpuh, sme_tok) = (account(2, 0), account(2, 1), account(2, 2));
    let provider_cny = account(4, 0);
    let offer = format!(
        r#"{{"offer_capacity": {{"offer": {{"offer_id": "1", "host_id": "h1", "gpu_count": 8, "start_ns": "{start}", "end_ns": "{end}"}}}}}}"#
    );
    let meter = |from: u64, to: u64, busy: u64| {
        format!(
            r#"{{"report_meter": {{"report": {{"offer_id": "1", "from_ns": "{from}", "to_ns": "{to}", "available_gpu_s": {}, "busy_gpu_s": {busy}, "down_gpu_s": 0}}}}}}"#,
            8 * (to - from) / s - busy
        )
    };
    let withdrawal = format!(
        r#"{{"request_withdrawal": {{"withdrawal": {{"withdrawal_id": "1", "account_id": "{sme_gpuh}", "gpu_class": "H100", "gpu_count": 1, "duration_s": 1800}}}}}}"#
    );
    let order = |id: u32, side: &str, price: u64, base: u128, quote: u128, vouchers: &str| {
        format!(
            r#"{{"place_order": {{"order": {{"order_id": "{id}", "product_id": "GPUH:H100/CNY", "side": "{side}", "price": "{price}", "quantity": "7200", "time_in_force": "gtc", "base_account_id": "{base}", "quote_account_id": "{quote}", "vouchers": [{vouchers}]}}}}}}"#
        )
    };
    let package = format!(
        r#"{{"list_package": {{"package": {{"package_id": "tok-10m", "title": "10M tokens", "asset": "TOK:qwen", "quantity": "10000", "price": "990", "validity_s": 2592000, "stock": "10", "seller_account_id": "{provider_cny}", "provider": "p-provider"}}}}}}"#
    );
    let purchase = |vouchers: &str| {
        format!(
            r#"{{"buy_package": {{"purchase": {{"purchase_id": "1", "package_id": "tok-10m", "pay_account_id": "{sme_cny}", "receive_account_id": "{sme_tok}", "vouchers": [{vouchers}]}}}}}}"#
        )
    };
    let usage = format!(
        r#"{{"record_usage": {{"events": [{{"event_id": "1", "account_id": "{sme_tok}", "tokens": "9000", "at_ns": "{}"}}, {{"event_id": "2", "account_id": "{sme_tok}", "tokens": "5000", "at_ns": "{}"}}]}}}}"#,
        START_NS + 2 * s,
        START_NS + 3 * s
    );
    let voucher = format!(
        r#"{{"issue_voucher": {{"voucher": {{"voucher_id": "1", "programme_id": "prog-1", "beneficiary": "p-sme", "amount": "100000", "expires_at_ns": "{}"}}}}}}"#,
        START_NS + 30 * 24 * 3600 * s
    );
    let transfer = |id: u32, debit: u128, credit: u128, flags: &str, pending_id: u32| {
        let timeout_s = if flags.contains("\"pending\"") { 60 } else { 0 };
        format!(
            r#"{{"create_transfers": {{"transfers": [{{"id": "{id}", "debit_account_id": "{debit}", "credit_account_id": "{credit}", "amount": "500", "pending_id": "{pending_id}", "timeout_s": {timeout_s}, "code": 1, "reference": "0", "flags": {flags}}}]}}}}"#
        )
    };
    vec![
        (
            "bank",
            vec![
                step(6, 0, &offer),
                step(2, 3700, &withdrawal),
                step(6, 1800, &meter(start, start + 1800 * s, 1800)),
                step(6, 1800, &meter(start + 1800 * s, start + 3600 * s, 0)),
                step(2, 0, r#"{"cancel_withdrawal": {"withdrawal_id": "1"}}"#),
                step(
                    6,
                    0,
                    r#"{"report_allocation": {"allocation_id": "1", "update": "running"}}"#,
                ),
            ],
        ),
        (
            "market",
            vec![
                step(2, 0, &order(1, "buy", 2000, sme_gpuh, sme_cny, "")),
                step(1, 1, &order(2, "sell", 1990, inst_gpuh, inst_cny, "")),
                step(2, 1, &order(3, "buy", 1980, sme_gpuh, sme_cny, "")),
                step(
                    2,
                    1,
                    r#"{"amend_order": {"order_id": "3", "quantity": "3600"}}"#,
                ),
                step(2, 1, r#"{"cancel_order": {"order_id": "3"}}"#),
            ],
        ),
        (
            "shelf",
            vec![
                step(4, 0, &package),
                step(2, 1, &purchase("")),
                step(4, 3, &usage),
            ],
        ),
        (
            "vouchers",
            vec![
                step(3, 0, &voucher),
                step(4, 0, &package),
                step(2, 1, &purchase(r#""1""#)),
                step(1, 1, &order(2, "sell", 1990, inst_gpuh, inst_cny, "")),
                step(2, 1, &order(1, "buy", 2000, sme_gpuh, sme_cny, r#""1""#)),
                step(3, 1, r#"{"revoke_voucher": {"voucher_id": "1"}}"#),
            ],
        ),
        (
            "transfers",
            vec![
                step(2, 0, &transfer(1, sme_cny, inst_cny, "{}", 0)),
                step(
                    2,
                    0,
                    &transfer(2, sme_cny, inst_cny, r#"{"pending": true}"#, 0),
                ),
                step(1, 0, &transfer(3, 0, 0, r#"{"post_pending": true}"#, 2)),
                step(
                    2,
                    0,
                    &transfer(4, sme_cny, inst_cny, r#"{"pending": true}"#, 0),
                ),
                step(1, 0, &transfer(5, 0, 0, r#"{"void_pending": true}"#, 4)),
                step(
                    2,
                    0,
                    &transfer(6, sme_cny, inst_cny, r#"{"pending": true}"#, 0),
                ),
                step(2, 120, &transfer(1, sme_cny, inst_cny, "{}", 0)),
            ],
        ),
    ]
}

fn apply_commands() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = scenarios()
        .into_iter()
        .map(|(name, steps)| (format!("scenario-{name}"), apply_commands::encode(&steps)))
        .collect();
    for (n, signed) in vector_commands().into_iter().enumerate() {
        let steps = [Step {
            signer: (n % 7) as u8,
            pause_s: 0,
            command: signed.body.command,
        }];
        seeds.push((format!("vector-{n}"), apply_commands::encode(&steps)));
    }
    seeds
}

fn audit_export() -> Vec<(String, Vec<u8>)> {
    let (export, _) = honest();
    let entries: Vec<String> = export.entries.iter().take(3).cloned().collect();
    let proof = Proof {
        format: PROOF_FORMAT.to_owned(),
        voucher_id: 1,
        indexes: vec![2],
        previous: Head::default(),
        entries,
        checkpoints: export.checkpoints.clone(),
    };
    vec![
        ("tamper-none".into(), vec![0]),
        ("tamper-one-byte".into(), vec![0, 40, 0, 1]),
        (
            "export".into(),
            with_selector(1, &serde_json::to_vec(export).expect("JSON")),
        ),
        (
            "proof".into(),
            with_selector(2, &serde_json::to_vec(&proof).expect("JSON")),
        ),
    ]
}

fn agent_inputs() -> Vec<(String, Vec<u8>)> {
    let key = ledger::testing::demo_key("univ");
    let key_file = serde_json::json!({
        "party": "univ",
        "public_key": hex::encode(key.public_key().0),
        "secret_key": hex::encode(key.seed()),
    });
    let config = r#"nodes = ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]
party = "univ"
agent_key_file = "agent.json"
host_id = "gpu-01"
gpu_source = "sim:8xH100"
state_dir = "state"
meter_interval_s = 60
offer_window_s = 3600
hook = ["/usr/local/bin/cbank-slurm-hook"]

[policy]
utilisation_below_percent = 10
idle_for_s = 600
windows = ["22:00-08:00", "sat,sun"]
timezone = "+08:00"

[[sim_down]]
gpu = 0
from_s = 10
to_s = 20
"#;
    let inputs: [(u8, &str, String); 9] = [
        (
            0,
            "nvidia-smi",
            "0, GPU-5e1c, NVIDIA H100 80GB HBM3, 81559, 3\n1, GPU-77aa, NVIDIA GeForce RTX 4090 D, 24564, [N/A]\n".into(),
        ),
        (1, "config", config.into()),
        (2, "key-file", key_file.to_string()),
        (3, "gpu-source-sim", "sim:8xH100".into()),
        (3, "gpu-source-nvml", "nvml".into()),
        (4, "sim", "4xA100".into()),
        (5, "window", "mon-fri 18:00-24:00".into()),
        (5, "window-days", "sat,sun".into()),
        (5, "zone", "-05:30".into()),
    ];
    inputs
        .into_iter()
        .map(|(selector, name, text)| {
            (
                format!("text-{name}"),
                with_selector(selector, text.as_bytes()),
            )
        })
        .collect()
}
