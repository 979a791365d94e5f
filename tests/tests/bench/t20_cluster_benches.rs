//! The cluster benches in smoke mode: each starts a real 3-node cluster, runs for two seconds,
//! then checks that the replicas converge to one state hash, that the replayed journal holds
//! the invariants, and that the ledger applied exactly what was acknowledged.

use super::{assert_rss_reported, bench_json};

#[test]
fn ledger_batches_are_applied_exactly_once_and_the_replicas_agree() {
    let json = bench_json(&[
        "ledger",
        "--smoke",
        "--json",
        "--batch",
        "100",
        "--clients",
        "4",
        "--half-load",
    ]);
    assert_eq!(json["bench"], "ledger");
    assert_eq!(json["failed"], 0, "{json}");
    assert!(json["transfers"].as_u64() > Some(0), "{json}");
    assert_eq!(
        json["transfers"].as_u64().map(|n| n % 100),
        Some(0),
        "whole batches: {json}"
    );
    assert!(json["half_load_p99_ms"].as_f64().is_some(), "{json}");
    assert_rss_reported(&json);
}

#[test]
fn orders_settle_and_the_ledger_holds_each_acknowledged_order() {
    let json = bench_json(&["orders", "--smoke", "--json", "--clients", "2"]);
    assert_eq!(json["bench"], "orders");
    assert_eq!(json["failed"], 0, "{json}");
    assert!(json["orders"].as_u64() >= Some(64), "{json}");
    assert!(
        json["trades_total"].as_u64() > Some(0),
        "orders traded: {json}"
    );
    assert_rss_reported(&json);
}

#[test]
fn usage_events_are_consumed_and_add_up_in_the_quotas() {
    let json = bench_json(&[
        "meter",
        "--smoke",
        "--json",
        "--batch",
        "500",
        "--clients",
        "2",
    ]);
    assert_eq!(json["bench"], "meter");
    assert_eq!(json["failed"], 0, "{json}");
    assert!(json["events"].as_u64() >= Some(500), "{json}");
    assert_rss_reported(&json);
}
