//! `soak` in smoke mode: mixed writes (transfers, crossing orders, voucher-paid purchases,
//! voucher issues) sent to random nodes for 20 s while a random node, the leader included, is
//! killed with SIGKILL and restarted every 4 s; every acknowledged write must be in the journal
//! entry its answer named, and the replicas must converge.

use super::bench_json;

#[test]
fn no_acknowledged_write_is_lost_while_nodes_are_killed_and_the_replicas_converge() {
    let json = bench_json(&["soak", "--smoke", "--json"]);
    assert_eq!(json["bench"], "soak");
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["replicas_converged"], true, "{json}");
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(json["unacknowledged"], 0, "{json}");
    assert!(json["kills"].as_u64() >= Some(3), "{json}");
    assert!(json["operations"].as_u64() > Some(0), "{json}");
    for kind in ["transfers", "orders", "purchases", "vouchers_issued"] {
        assert!(json[kind].as_u64() > Some(0), "{kind}: {json}");
    }
    assert!(
        json["attempts"].as_u64() >= json["operations"].as_u64(),
        "{json}"
    );
}
