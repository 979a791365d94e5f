//! Acceptance 3: `cbank audit export` against the running cluster, then `cbank audit verify`
//! offline (the cluster is stopped first, so no node could answer): it passes on the honest
//! export and fails, naming what broke, when one hex digit of an entry in the middle, of a
//! checkpoint signature, or a report's total or line is changed. A voucher's inclusion proof
//! (`cbank audit prove`) verifies alone (`cbank audit verify-proof`) and fails when a digit of
//! one of its entries is changed.
//!
//! The journal holds the fixture, the city programme, a voucher V1 (101, `sme`, 100,000 fen)
//! that pays 3,900 of a fill of 5 lots at 2,600 and 1,197 of the token plan, and a voucher V4
//! (104, `sme-b`, 20,000) revoked at once.

use crate::fixture::{
    cbank, cbank_ok, order, purchase, voucher, voucher_and_ask, CITY, GOV, SME, SME_B, SME_CNY,
    SME_GPU, SME_TOK,
};
use ledger::{Checkpoint, Command, PublicKey};
use market::book::Side;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;
use tests::calls::{expect_accepted, expect_accepted_at};
use tests::Cluster;

const V1: u128 = 101;
const V4: u128 = 104;

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn write(path: &Path, value: &Value) {
    let text = serde_json::to_string_pretty(value).expect("JSON encodes");
    std::fs::write(path, text)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// Changes the hex digit at `position` of a hex string to another hex digit.
fn flip(value: &mut Value, position: usize) {
    let text = value.as_str().expect("a hex string");
    let mut digits: Vec<char> = text.chars().collect();
    digits[position] = if digits[position] == '0' { '1' } else { '0' };
    *value = Value::String(digits.into_iter().collect());
}

/// Runs `cbank audit verify` (or `verify-proof`) on `file` and returns (success, what it
/// printed).
fn verify(dir: &Path, command: &str, file: &Path, keys: &Path) -> (bool, String) {
    let output = cbank(
        &[
            "audit",
            command,
            &file.display().to_string(),
            "--node-keys",
            &keys.display().to_string(),
        ],
        dir,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// Writes `tampered` beside the honest file and expects `cbank audit <command>` to fail on it
/// with a message that contains `expected`.
fn expect_failure(dir: &Path, command: &str, tampered: &Value, keys: &Path, expected: &str) {
    let file = dir.join("tampered.json");
    write(&file, tampered);
    let (passed, stdout) = verify(dir, command, &file, keys);
    assert!(!passed, "a tampered file must not verify: {stdout}");
    assert!(
        stdout.contains(&format!("FAILED: {expected}")),
        "expected `FAILED: {expected}`, got: {stdout}"
    );
}

#[test]
fn an_exported_journal_verifies_offline_and_every_tampering_is_named() {
    let began = Instant::now();
    let mut cluster = Cluster::start(3);
    let month_ns = voucher_and_ask(&mut cluster);
    let buy = order(301, Side::Buy, 2_600, 5, (SME_GPU, SME_CNY), vec![V1]);
    expect_accepted(&mut cluster, "/v1/orders", SME, buy);
    expect_accepted(
        &mut cluster,
        "/v1/purchases",
        SME,
        purchase(401, SME_CNY, SME_TOK, vec![V1]),
    );
    expect_accepted(
        &mut cluster,
        "/v1/vouchers",
        GOV,
        voucher(V4, CITY, SME_B, 20_000, month_ns),
    );
    let last = expect_accepted_at(
        &mut cluster,
        "/v1/vouchers/revoke",
        GOV,
        Command::RevokeVoucher { voucher_id: V4 },
    );
    let head = cluster.wait_converged().journal_head;
    assert_eq!(head.index, last.journal_index);

    // Export and prove while the nodes run; each node's own key is in the keys file.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let work = dir.path();
    let urls: Vec<String> = cluster
        .node_ids()
        .into_iter()
        .map(|id| cluster.url(id))
        .collect();
    let mut args = vec!["audit", "export"];
    for url in &urls {
        args.extend(["--node", url.as_str()]);
    }
    let mut export_args = args.clone();
    export_args.extend(["--out", "audit.json"]);
    let said = cbank_ok(&export_args, work);
    assert!(said.contains(&format!("1..={}", head.index)), "{said}");
    let mut prove_args = args;
    prove_args[1] = "prove";
    let v1 = V1.to_string();
    prove_args.extend(["--voucher", v1.as_str(), "--out", "proof.json"]);
    cbank_ok(&prove_args, work);
    // A checkpoint of an entry not applied yet, or of no entry, is refused.
    let beyond = format!("{}/v1/checkpoints/{}", cluster.url(1), head.index + 1);
    let answer = cluster
        .api()
        .raw("GET", &beyond, None, None, Vec::new())
        .expect("an answer");
    assert_eq!(answer.status, 404, "{}", answer.json());
    assert_eq!(answer.json()["journal_head"], head.index);
    let zero = format!("{}/v1/checkpoints/0", cluster.url(1));
    let answer = cluster
        .api()
        .raw("GET", &zero, None, None, Vec::new())
        .expect("an answer");
    assert_eq!(answer.code().as_deref(), Some("invalid_parameter"));
    let mut node_keys = BTreeSet::new();
    for id in cluster.node_ids() {
        let answer: Value = cluster
            .api()
            .get(&format!("{}/v1/head?consistency=local", cluster.url(id)))
            .expect("each node's head");
        let checkpoint: Checkpoint =
            serde_json::from_value(answer["checkpoint"].clone()).expect("a checkpoint");
        node_keys.insert(checkpoint.node_key);
    }
    drop(cluster);

    let audit = work.join("audit.json");
    let keys = work.join("audit.json.node-keys.json");
    let export = read(&audit);
    let keys_file = read(&keys);
    let listed: BTreeSet<PublicKey> = keys_file["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| serde_json::from_value(node["public_key"].clone()).expect("a key"))
        .collect();
    assert_eq!(listed, node_keys, "the keys file names each node's own key");
    let entries = export["entries"].as_array().expect("entries").len() as u64;
    assert_eq!(entries, head.index);
    assert_eq!(export["checkpoints"].as_array().map(Vec::len), Some(3));
    assert_eq!(export["reports"][0]["programme_id"], CITY);

    // The honest export verifies with no node running.
    let (passed, stdout) = verify(work, "verify", &audit, &keys);
    assert!(passed, "the honest export verifies: {stdout}");
    assert!(
        stdout.contains(&format!("verified: journal entries 1..={entries}"))
            && stdout.contains("signed by 3 of 3 trusted node keys")
            && stdout.contains("1 programme reports match the journal: city-ai-2026"),
        "{stdout}"
    );

    // One hex digit of an entry in the middle: that entry is named.
    let middle = entries / 2;
    let mut tampered = export.clone();
    let entry = &mut tampered["entries"][(middle - 1) as usize];
    let digits = entry.as_str().expect("hex").len();
    flip(entry, digits / 2);
    expect_failure(
        work,
        "verify",
        &tampered,
        &keys,
        &format!("entry {middle}:"),
    );

    // One hex digit of a checkpoint signature: the checkpoint's entry is named.
    let mut tampered = export.clone();
    flip(&mut tampered["checkpoints"][1]["signature"], 10);
    expect_failure(
        work,
        "verify",
        &tampered,
        &keys,
        &format!("entry {entries}: checkpoint signature does not verify"),
    );

    // A report total, then a report line: the programme and the field or entry are named.
    let mut tampered = export.clone();
    let redeemed: u128 = tampered["reports"][0]["redeemed"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("redeemed");
    assert_eq!(redeemed, 3_900 + 1_197);
    tampered["reports"][0]["redeemed"] = Value::String((redeemed + 1).to_string());
    expect_failure(
        work,
        "verify",
        &tampered,
        &keys,
        "report of programme city-ai-2026: redeemed is 5098, the journal gives 5097",
    );
    let mut tampered = export.clone();
    let line = &mut tampered["reports"][0]["lines"][2];
    let cited = line["journal_index"].as_str().expect("an index").to_owned();
    line["amount"] = Value::String("3901".to_owned());
    expect_failure(
        work,
        "verify",
        &tampered,
        &keys,
        &format!(
            "report of programme city-ai-2026: the line of journal entry {cited} differs from \
             the journal"
        ),
    );

    // Keys the auditor does not trust: the export's checkpoints are refused.
    let stranger = work.join("stranger.json");
    let key = ledger::SigningKey::from_seed([9; 32]).public_key();
    std::fs::write(&stranger, format!("[\"{key}\"]")).expect("write the keys");
    let (passed, stdout) = verify(work, "verify", &audit, &stranger);
    assert!(
        !passed && stdout.contains("not a trusted node key"),
        "{stdout}"
    );

    // The voucher's proof verifies alone, and not with a digit of an entry changed.
    let proof_path = work.join("proof.json");
    let proof_keys = work.join("proof.json.node-keys.json");
    let proof = read(&proof_path);
    let (passed, stdout) = verify(work, "verify-proof", &proof_path, &proof_keys);
    assert!(passed, "the proof verifies: {stdout}");
    for command in [
        "issue_voucher by gov",
        "place_order by sme",
        "buy_package by sme",
    ] {
        assert!(stdout.contains(command), "{command}: {stdout}");
    }
    let first = proof["previous"]["index"].as_u64().expect("previous index") + 1;
    let mut tampered = proof.clone();
    let entry = &mut tampered["entries"][0];
    let digits = entry.as_str().expect("hex").len();
    flip(entry, digits / 2);
    expect_failure(
        work,
        "verify-proof",
        &tampered,
        &proof_keys,
        &format!("entry {first}:"),
    );

    eprintln!(
        "vouchers t20: export, offline verification and four tamperings checked in {:.1?}",
        began.elapsed()
    );
}
