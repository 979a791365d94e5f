//! The acceptance flows in chromium: SME, government, auditor; then the SME's usage, the
//! institution and the operator, after the test has given them something to show.

use crate::fixture::{check_browser_setup, run_flows, DevCluster};
use ledger::bank::{HostSpec, MeterReport, OfferSpec, WithdrawalSpec};
use ledger::limits::NS_PER_S;
use ledger::shelf::UsageEvent;
use ledger::{Command, SigningKey, Transfer, TransferFlags};
use std::sync::atomic::{AtomicBool, Ordering};
use tests::unix_now_ns;

/// sme-alpha's `TOK:qwen` account in the demo world (`cluster.json`).
const SME_TOKENS: u128 = 10_203;
/// sme-alpha's and sme-beta's CNY accounts in the demo world.
const SME_MONEY: u128 = 10_201;
const SME_BETA_MONEY: u128 = 10_301;
/// The first id of the transfers made while the browser looks.
const TRAFFIC_TRANSFER_ID: u128 = 5_000_000;
/// univ-tsinghua's `GPUH:H100` account in the demo world.
const UNIV_GPU: u128 = 10_102;

#[test]
fn sme_buys_with_a_voucher_government_issues_auditor_verifies() {
    // Before anything starts: without a browser the test fails at once, saying what to install.
    check_browser_setup();
    let dev = DevCluster::start();
    // Node 2 (a follower while node 1, which formed the cluster, leads) forwards the
    // console's writes and linearizable reads to the leader.
    let mut shots = run_flows(&dev, 2, &["sme", "government", "auditor"]);

    // The provider meters 8,500,000 of the 10,000,000 tokens the SME just bought: 85% used,
    // past the 80% alert.
    let usage = UsageEvent {
        event_id: 1,
        account_id: SME_TOKENS,
        tokens: 8_500_000,
        at_ns: unix_now_ns(),
    };
    dev.submit_as(
        "provider-telecom",
        "/v1/usage",
        Command::RecordUsage {
            events: vec![usage],
        },
    );
    seed_institution(&dev);
    // While the browser looks, sme-alpha pays sme-beta one fen at a time, so the operator's
    // throughput chart has something to show.
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut id = TRAFFIC_TRANSFER_ID;
            while !done.load(Ordering::Relaxed) && id < TRAFFIC_TRANSFER_ID + 2_000 {
                let transfer = Transfer {
                    id,
                    debit_account_id: SME_MONEY,
                    credit_account_id: SME_BETA_MONEY,
                    amount: 1,
                    pending_id: 0,
                    timeout_s: 0,
                    code: 1,
                    reference: 0,
                    flags: TransferFlags::default(),
                };
                dev.submit_as(
                    "sme-alpha",
                    "/v1/transfers",
                    Command::CreateTransfers {
                        transfers: vec![transfer],
                    },
                );
                id += 1;
            }
        });
        shots.extend(run_flows(&dev, 3, &["usage", "institution", "operator"]));
        done.store(true, Ordering::Relaxed);
    });
    for path in shots {
        println!("screenshot: {}", path.display());
    }
}

/// univ-tsinghua registers an 8×H100 host, offers it from five minutes ago for two hours,
/// reports four minutes of it (30 s down), and draws 2 GPUs for half an hour from it.
fn seed_institution(dev: &DevCluster) {
    let agent = SigningKey::from_seed([42; 32]).public_key();
    let host = HostSpec {
        host_id: "gpu-bj-01".to_owned(),
        region: "beijing".to_owned(),
        gpu_class: "H100".to_owned(),
        gpu_count: 8,
        agent_key: agent,
        account_id: UNIV_GPU,
    };
    dev.submit_as("univ-tsinghua", "/v1/hosts", Command::RegisterHost { host });
    let start_ns = (unix_now_ns() / NS_PER_S - 300) * NS_PER_S;
    let offer = OfferSpec {
        offer_id: 501,
        host_id: "gpu-bj-01".to_owned(),
        gpu_count: 8,
        start_ns,
        end_ns: start_ns + 7_200 * NS_PER_S,
    };
    dev.submit_as(
        "univ-tsinghua",
        "/v1/offers",
        Command::OfferCapacity { offer },
    );
    let report = MeterReport {
        offer_id: 501,
        from_ns: start_ns,
        to_ns: start_ns + 240 * NS_PER_S,
        available_gpu_s: 8 * 210,
        busy_gpu_s: 0,
        down_gpu_s: 8 * 30,
    };
    dev.submit_as(
        "univ-tsinghua",
        "/v1/meter-reports",
        Command::ReportMeter { report },
    );
    let withdrawal = WithdrawalSpec {
        withdrawal_id: 601,
        account_id: UNIV_GPU,
        gpu_class: "H100".to_owned(),
        gpu_count: 2,
        duration_s: 1_800,
        region: None,
    };
    dev.submit_as(
        "univ-tsinghua",
        "/v1/withdrawals",
        Command::RequestWithdrawal { withdrawal },
    );
}
