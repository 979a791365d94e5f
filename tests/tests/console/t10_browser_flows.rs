//! The acceptance flows in chromium: SME, government, auditor, then operator and institution.

use crate::fixture::{run_flows, DevCluster};

#[test]
fn sme_buys_with_a_voucher_government_issues_auditor_verifies() {
    let dev = DevCluster::start();
    // Node 2 (a follower while node 1, which formed the cluster, leads) forwards the
    // console's writes and linearizable reads to the leader.
    let shots = run_flows(
        &dev,
        2,
        &["sme", "government", "auditor", "operator", "institution"],
    );
    for path in shots {
        println!("screenshot: {}", path.display());
    }
}
