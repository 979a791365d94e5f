//! Golden vectors: canonical bytes, hashes and signatures pinned in `spec/vectors/`.
//!
//! These bytes are what parties sign and what the journal chains. If this test fails, the
//! canonical encoding or hashing changed: every signature and every journal ever written would
//! stop verifying. Change the vectors only with a new `CODEC_VERSION`, by running
//! `CBANK_BLESS=1 cargo test -p ledger --test golden` and committing the new files.

use ledger::envelope::{verify_bytes, Signature, SIGNING_DOMAIN};
use ledger::limits::NS_PER_S;
use ledger::testing::{demo_key, START_NS};
use ledger::{
    codec, Command, CommandBody, Ledger, NewAccount, PartyId, Role, SignedCommand, Transfer,
    TransferFlags,
};
use serde_json::{json, Value};
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors")
}

/// The commands of the vectors, signed with the public demo keys, at fixed nonces and expiries.
fn commands() -> Vec<(&'static str, SignedCommand, u64)> {
    let operator = demo_key("operator");
    let sme = demo_key("sme-alpha");
    let expires = START_NS + 60 * NS_PER_S;
    let genesis = Command::Genesis {
        operator: PartyId::new("operator"),
        keys: vec![operator.public_key()],
        assets: vec![
            "CNY".parse().unwrap(),
            "GPUH:H100".parse().unwrap(),
            "TOK:qwen".parse().unwrap(),
        ],
    };
    let register = Command::RegisterParty {
        party: PartyId::new("sme-alpha"),
        role: Role::Sme,
        keys: vec![sme.public_key()],
    };
    let mint = NewAccount {
        id: 1,
        asset: "CNY".parse().unwrap(),
        kind: ledger::AccountKind::Mint,
        flags: ledger::AccountFlags::default(),
        reference: 0,
    };
    let operator_accounts = Command::CreateAccounts {
        accounts: vec![mint],
    };
    let sme_account = NewAccount {
        id: 2,
        asset: "CNY".parse().unwrap(),
        kind: ledger::AccountKind::Main,
        flags: ledger::AccountFlags {
            debits_must_not_exceed_credits: true,
            ..Default::default()
        },
        reference: 7,
    };
    let sme_accounts = Command::CreateAccounts {
        accounts: vec![sme_account],
    };
    let funding = Command::CreateTransfers {
        transfers: vec![
            Transfer {
                id: 100,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 990,
                pending_id: 0,
                timeout_s: 0,
                code: 1,
                reference: 0,
                flags: TransferFlags {
                    linked: true,
                    ..Default::default()
                },
            },
            Transfer {
                id: 101,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 10_000_000,
                pending_id: 0,
                timeout_s: 3600,
                code: 2,
                reference: u128::MAX - 1,
                flags: TransferFlags {
                    pending: true,
                    ..Default::default()
                },
            },
        ],
    };
    vec![
        (
            "genesis",
            operator.sign(PartyId::new("operator"), 1, expires, genesis),
            START_NS + 1,
        ),
        (
            "register_party",
            operator.sign(PartyId::new("operator"), 2, expires, register),
            START_NS + 2,
        ),
        (
            "create_accounts_operator",
            operator.sign(PartyId::new("operator"), 3, expires, operator_accounts),
            START_NS + 3,
        ),
        (
            "create_accounts_sme",
            sme.sign(PartyId::new("sme-alpha"), 1, expires, sme_accounts),
            START_NS + 4,
        ),
        (
            "create_transfers",
            operator.sign(PartyId::new("operator"), 4, expires, funding),
            START_NS + 5,
        ),
    ]
}

fn command_vectors() -> Value {
    let vectors: Vec<Value> = commands()
        .into_iter()
        .map(|(name, signed, _)| {
            let body_bytes = codec::encode(&signed.body);
            json!({
                "name": name,
                "command": serde_json::to_value(&signed).unwrap(),
                "body_canonical_hex": hex::encode(&body_bytes),
                "body_blake3": blake3::hash(&body_bytes).to_hex().to_string(),
                "signed_canonical_hex": hex::encode(signed.to_bytes()),
                "public_key": signed.body.key.to_string(),
                "signature": hex::encode(signed.signature.0),
            })
        })
        .collect();
    json!({
        "about": "Canonical bytes (bincode 2.0.1, little-endian, fixed-width integers), blake3 hashes and ed25519 signatures of signed commands. Signing bytes = SIGNING_DOMAIN ‖ body_canonical. Keys are the public demo keys of ledger::testing::demo_key.",
        "signing_domain_hex": hex::encode(SIGNING_DOMAIN),
        "vectors": vectors,
    })
}

fn journal_vector() -> Value {
    let mut ledger = Ledger::new();
    let mut entries = Vec::new();
    for (name, signed, timestamp_ns) in commands() {
        let entry = ledger.apply(&signed, timestamp_ns);
        assert!(
            entry.body.outcome.rejected().is_none(),
            "{name}: {:?}",
            entry.body.outcome
        );
        assert!(
            entry.body.outcome.event_results().is_empty(),
            "{name}: {:?}",
            entry.body.outcome
        );
        entries.push(json!({
            "index": entry.body.index,
            "timestamp_ns": entry.body.timestamp_ns,
            "outcome": serde_json::to_value(&entry.body.outcome).unwrap(),
            "entry_canonical_hex": hex::encode(codec::encode(&entry.body)),
            "hash": entry.hash.to_string(),
        }));
    }
    json!({
        "about": "A short journal: the commands of commands.json applied in order at the given timestamps. hash_n = blake3(hash_{n-1} ‖ entry_canonical_n), hash_0 = 32 zero bytes.",
        "entries": entries,
        "head": { "index": ledger.head().index, "hash": ledger.head().hash.to_string() },
        "state_hash": ledger.state_hash().to_string(),
    })
}

fn check_or_bless(file: &str, actual: Value) {
    let path = vectors_dir().join(file);
    let actual = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    if std::env::var_os("CBANK_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        expected == actual,
        "{} no longer matches the canonical encoding; if the change is intended, bump CODEC_VERSION and bless (see this file's doc)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn command_vectors_match() {
    check_or_bless("commands.json", command_vectors());
}

#[test]
fn journal_vector_matches() {
    check_or_bless("journal.json", journal_vector());
}

/// The files are self-consistent on their own: a third party can check them without our code
/// beyond ed25519 and blake3.
#[test]
fn stored_vectors_verify_independently() {
    let text = std::fs::read_to_string(vectors_dir().join("commands.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    for vector in file["vectors"].as_array().unwrap() {
        let body = hex::decode(vector["body_canonical_hex"].as_str().unwrap()).unwrap();
        assert_eq!(
            blake3::hash(&body).to_hex().to_string(),
            vector["body_blake3"].as_str().unwrap()
        );
        let key = ledger::PublicKey(
            hex::decode(vector["public_key"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let signature = Signature(
            hex::decode(vector["signature"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let mut message = SIGNING_DOMAIN.to_vec();
        message.extend_from_slice(&body);
        assert!(
            verify_bytes(&key, &message, &signature),
            "{}",
            vector["name"]
        );
        // The canonical bytes decode to the JSON form of the same command.
        let decoded: CommandBody = codec::decode(&body, body.len()).unwrap();
        let from_json: SignedCommand = serde_json::from_value(vector["command"].clone()).unwrap();
        assert_eq!(decoded, from_json.body);
    }
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("journal.json")).unwrap())
            .unwrap();
    let mut previous = [0u8; 32];
    for entry in journal["entries"].as_array().unwrap() {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&previous);
        hasher.update(&hex::decode(entry["entry_canonical_hex"].as_str().unwrap()).unwrap());
        let hash = hasher.finalize();
        assert_eq!(hash.to_hex().to_string(), entry["hash"].as_str().unwrap());
        previous = *hash.as_bytes();
    }
    assert_eq!(
        hex::encode(previous),
        journal["head"]["hash"].as_str().unwrap()
    );
}
