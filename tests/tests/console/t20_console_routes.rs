//! The routes the console relies on, without a browser: the canonical bytes it signs, the
//! audit it asks for, and its files.

use ledger::testing::{demo_key, OPERATOR};
use ledger::{Command, CommandBody, PartyId, Signature, SignedCommand};
use serde_json::{json, Value};
use tests::{next_nonce, unix_now_ns, Cluster, ENVELOPE_LIFETIME_NS};

fn post_json(cluster: &Cluster, path: &str, body: &Value) -> tests::RawResponse {
    let bytes = serde_json::to_vec(body).expect("JSON");
    cluster
        .api()
        .raw(
            "POST",
            &format!("{}{path}", cluster.url(1)),
            Some("application/json"),
            None,
            bytes,
        )
        .expect("the node answers")
}

fn get(cluster: &Cluster, path: &str) -> tests::RawResponse {
    cluster
        .api()
        .raw(
            "GET",
            &format!("{}{path}", cluster.url(1)),
            None,
            None,
            Vec::new(),
        )
        .expect("the node answers")
}

#[test]
fn canonical_bytes_are_the_ledgers_and_verify_checks_the_chain() {
    let cluster = Cluster::start(1);

    // The bytes the browser signs are exactly `CommandBody::signing_bytes`, and a signature
    // over them is accepted as the CLI's is.
    let key = demo_key(OPERATOR);
    let body = CommandBody {
        signer: PartyId::new(OPERATOR),
        key: key.public_key(),
        nonce: next_nonce(),
        expires_at_ns: unix_now_ns() + ENVELOPE_LIFETIME_NS,
        command: Command::RegisterAsset {
            asset: "GPUH:L40S".parse().expect("an asset code"),
        },
    };
    let answer = post_json(
        &cluster,
        "/v1/commands/canonical",
        &serde_json::to_value(&body).expect("JSON"),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let signing_hex = answer.json()["signing_bytes"]
        .as_str()
        .expect("signing_bytes")
        .to_owned();
    assert_eq!(signing_hex, hex_of(&body.signing_bytes()));
    let signed = SignedCommand {
        signature: key.sign_bytes(&unhex(&signing_hex)),
        body,
    };
    let answer = post_json(
        &cluster,
        "/v1/assets",
        &serde_json::to_value(&signed).expect("JSON"),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.json());

    // Bad input: not a command body, not JSON, and a signature over other bytes.
    let cases = [
        (json!({"signer": OPERATOR}), 400, "malformed_json"),
        (
            json!({"command": {"no_such_command": {}}}),
            400,
            "malformed_json",
        ),
    ];
    for (bad, status, code) in cases {
        let answer = post_json(&cluster, "/v1/commands/canonical", &bad);
        assert_eq!(answer.status, status, "{bad}: {:?}", answer.json());
        assert_eq!(answer.code().as_deref(), Some(code), "{bad}");
        assert!(answer.json()["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let answer = cluster
        .api()
        .raw(
            "POST",
            &format!("{}/v1/commands/canonical", cluster.url(1)),
            Some("text/plain"),
            None,
            b"{}".to_vec(),
        )
        .expect("the node answers");
    assert_eq!(answer.status, 415);
    assert_eq!(answer.code().as_deref(), Some("unsupported_media_type"));
    let mut forged = operator_envelope();
    forged.signature = Signature([7; 64]);
    let answer = post_json(
        &cluster,
        "/v1/assets",
        &serde_json::to_value(&forged).expect("JSON"),
    );
    assert_eq!(answer.code().as_deref(), Some("signature_invalid"));

    // The audit on request: the whole chain verifies, signed by the one node.
    let answer = get(&cluster, "/v1/audit/verify");
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let verified = answer.json();
    assert_eq!(verified["verified"], json!(true), "{verified}");
    assert_eq!(verified["signers"], json!(1));
    let head = verified["head"]["index"].as_u64().expect("head index");
    assert_eq!(verified["entries"].as_u64(), Some(head));
    // An earlier range verifies too.
    let answer = get(&cluster, "/v1/audit/verify?to=2");
    assert_eq!(
        answer.json()["verified"],
        json!(true),
        "{:?}",
        answer.json()
    );
    assert_eq!(answer.json()["entries"], json!(2));
    // Trusting another key: the answer says the export is not verified, and why.
    let stranger = demo_key("stranger").public_key().to_string();
    let answer = get(&cluster, &format!("/v1/audit/verify?trust={stranger}"));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["verified"], json!(false));
    assert!(
        answer.json()["failure"]["what"]
            .as_str()
            .is_some_and(|what| what.contains("not a trusted node key")),
        "{:?}",
        answer.json()
    );
    for bad in [
        "?to=0",
        "?to=x",
        &format!("?to={}", head + 1_000),
        "?trust=zz",
    ] {
        let answer = get(&cluster, &format!("/v1/audit/verify{bad}"));
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.json());
        assert_eq!(answer.code().as_deref(), Some("invalid_parameter"), "{bad}");
    }

    // The journal as canonical bytes: each entry ends with its hash, as the JSON journal says.
    let raw = get(&cluster, "/v1/journal/raw?from=1&limit=3").json();
    let json = get(&cluster, "/v1/journal?from=1&limit=3").json();
    let raw_entries = raw["entries"].as_array().expect("entries");
    assert_eq!(raw_entries.len(), 3, "{raw}");
    for (bytes, entry) in raw_entries
        .iter()
        .zip(json["entries"].as_array().expect("entries"))
    {
        let bytes = bytes.as_str().expect("hex");
        assert!(
            bytes.ends_with(entry["hash"].as_str().expect("hash")),
            "{bytes}"
        );
    }
    for bad in ["?from=x", "?limit=0", "?limit=1001"] {
        let answer = get(&cluster, &format!("/v1/journal/raw{bad}"));
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.json());
        assert_eq!(answer.code().as_deref(), Some("invalid_parameter"), "{bad}");
    }

    // The console's files, and our JSON errors around them.
    let page = get(&cluster, "/");
    assert_eq!(page.status, 200, "/ redirects to the page");
    assert!(String::from_utf8_lossy(&page.body).contains("<title>Compute Bank console</title>"));
    for (path, media_type) in [
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let answer = get(&cluster, path);
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .content_type
                .as_deref()
                .is_some_and(|t| t.starts_with(media_type)),
            "{path}: {:?}",
            answer.content_type
        );
        let policy = answer.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("default-src 'self'"), "{path}: {policy:?}");
    }
    let answer = get(&cluster, "/console/nope.js");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.code().as_deref(), Some("not_found"));
    let answer = post_json(&cluster, "/console/", &json!({}));
    assert_eq!(answer.status, 405);
    assert_eq!(answer.code().as_deref(), Some("method_not_allowed"));
}

/// A well-formed `register_asset` envelope of the operator (its signature is replaced).
fn operator_envelope() -> SignedCommand {
    tests::sign(
        OPERATOR,
        Command::RegisterAsset {
            asset: "GPUH:T4".parse().expect("an asset code"),
        },
    )
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The console's BLAKE3 in JavaScript gives the Rust crate's hashes, over inputs that need one
/// block, one chunk and trees of many chunks.
#[test]
fn the_consoles_blake3_is_the_crates() {
    let lengths = [
        0usize, 1, 64, 65, 1023, 1024, 1025, 2048, 3073, 8193, 31_745, 102_400,
    ];
    let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/console/blake3.js");
    let script = format!(
        "import {{ blake3 }} from {module:?};\n\
         const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');\n\
         for (const n of {lengths:?}) console.log(hex(blake3(Uint8Array.from({{ length: n }}, (_, i) => i % 251))));",
        module = module.display().to_string(),
    );
    let output = std::process::Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .output()
        .expect("`node` runs (the console's tests need Node.js)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let from_js: Vec<&str> = stdout.lines().collect();
    let from_rust: Vec<String> = lengths
        .iter()
        .map(|n| {
            let input: Vec<u8> = (0..*n).map(|i| (i % 251) as u8).collect();
            blake3::hash(&input).to_hex().to_string()
        })
        .collect();
    assert_eq!(from_js, from_rust);
}
