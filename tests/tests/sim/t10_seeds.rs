//! 50 seeds: every one passes the checker, and every kind of fault was injected.

use super::sim;

#[test]
fn fifty_seeds_under_faults_pass_the_history_checker() {
    let run = sim(&["--seeds", "50", "--seed", "1", "--json"]);
    let totals = run.json();
    assert!(
        run.success,
        "a seed failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(totals["seeds"], 50, "{totals}");
    assert_eq!(totals["passed"], 50, "{totals}");
    assert_eq!(totals["failed"], serde_json::json!([]), "{totals}");
    for kind in [
        "partitions",
        "one_way_cuts",
        "isolations",
        "heals",
        "loss_spells",
        "delay_spells",
        "crashes",
        "power_losses",
        "restarts",
        "clock_skews",
    ] {
        assert!(
            totals["faults"][kind].as_u64() > Some(0),
            "no {kind} injected: {totals}"
        );
    }
    // The clients got work done through the faults, and the checker judged it.
    assert!(
        totals["acknowledged_writes"].as_u64() > Some(5_000),
        "{totals}"
    );
    assert!(totals["reads_checked"].as_u64() > Some(1_000), "{totals}");
    assert!(totals["unknown_writes"].as_u64() > Some(0), "{totals}");
    // Nodes caught up by installing a snapshot, and then fetched the journal before it (the
    // liveness check of every seed requires each node to hold the whole journal at the end).
    assert!(
        totals["faults"]["snapshot_catch_ups"].as_u64() > Some(0),
        "{totals}"
    );
}
