//! `recovery` in smoke mode: a follower killed and restarted serves again, and a wiped node is
//! caught up by a snapshot (its journal starts after entry 1), with every acknowledged
//! transfer applied and the replicas at one state hash.

use super::bench_json;

#[test]
fn a_restarted_node_serves_again_and_an_empty_one_catches_up_by_snapshot() {
    let json = bench_json(&["recovery", "--smoke", "--json"]);
    assert_eq!(json["bench"], "recovery");
    assert_eq!(json["transfers"], 20_000, "{json}");
    assert_eq!(json["by_snapshot"], true, "{json}");
    for field in [
        "restart_serving_s",
        "restart_caught_up_s",
        "snapshot_catch_up_s",
    ] {
        assert!(json[field].as_f64() > Some(0.0), "{field}: {json}");
    }
    assert!(
        json["restart_serving_s"].as_f64() <= json["restart_caught_up_s"].as_f64(),
        "{json}"
    );
    assert!(json["snapshot_bytes"].as_u64() > Some(0), "{json}");
}
