//! The benches that need no cluster: `apply` (the state machine alone) and `match` (our order
//! book against two crates.io order books on the same stream).

use super::bench_json;

#[test]
fn apply_applies_every_transfer_and_keeps_the_invariants() {
    let json = bench_json(&["apply", "--smoke", "--json", "--batch", "1000"]);
    assert_eq!(json["bench"], "apply");
    assert_eq!(json["batch"], 1000);
    assert_eq!(json["transfers"], 40_000, "{json}");
    assert!(json["verify_us_per_command"].as_f64() > Some(0.0), "{json}");
    assert!(
        json["verify_small_command_us"].as_f64() > Some(0.0),
        "{json}"
    );
}

#[test]
fn match_runs_three_engines_on_one_stream_and_they_end_with_the_same_book() {
    let json = bench_json(&["match", "--smoke", "--json"]);
    assert_eq!(json["bench"], "match");
    assert_eq!(json["same_book"], true, "{json}");
    assert_eq!(json["operations"], 20_000);
    let limits = json["limits"].as_u64().unwrap_or(0);
    let cancels = json["cancels"].as_u64().unwrap_or(0);
    let markets = json["markets"].as_u64().unwrap_or(0);
    assert_eq!(limits + cancels + markets, 20_000, "{json}");
    assert!(
        (13_000..15_000).contains(&limits),
        "about 70% limits: {json}"
    );
    assert!(
        (3_400..4_600).contains(&cancels),
        "about 20% cancels: {json}"
    );
    for engine in ["lobster", "rust_order_book"] {
        assert!(
            json[format!("ratio_vs_{engine}")].as_f64() > Some(0.0),
            "{engine}: {json}"
        );
    }
}

#[test]
fn a_bad_argument_is_refused_with_a_message() {
    let run = super::bench(&["apply", "--smoke", "--batch", "0"]);
    assert!(!run.success);
    assert!(
        run.stderr.contains("--batch must be 1 to 8190"),
        "{}",
        run.stderr
    );
}
