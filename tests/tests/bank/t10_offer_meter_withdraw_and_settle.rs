//! The whole path once, with no fault: the university's agent offers 8 H100 for two hours and
//! reports every second; the SME, holding `GPUH:H100` (minted by the operator, plus a sale by the
//! university), draws 4 GPUs for an hour; the allocation lands on `gpu-01`, the agent runs the
//! hook, which exits after 2 s, and reports `completed` with what the hook ran.
//!
//! Numbers by hand, with `R` the reported seconds of the window when the agent is stopped and
//! `D` the scripted downtime in them (GPU 7 down in `[1 s, 4 s)`, GPU 6 in `[2 s, 3 s)`, so
//! `D = 4` once `R >= 4`):
//! - the university: credited `8 R − D` posted, `8 × (7,200 − R)` pending, debited the sale;
//! - the SME: `14,400 + 16` credited, `d` debited where `d = 4 × whole seconds the hook ran`
//!   (the charge `ceil(14,400 × d / 14,400) = d`), the other `14,400 − d` released;
//! - the mint: issued `8 R − D + 14,400`, took back `d`, reserves what the university has pending;
//! - both statements close on the balances, line by line.

use crate::fixture::{
    agent_key, allocation_id_of, env_writing_hook, h100_mint, move_gpu_s, open_bank,
    request_withdrawal, univ_agent_settings, wait_hook_env, AGENT_STEP_TIMEOUT, GPU_COUNT,
    HOOK_STARTS_FILE, HOST, OFFER_WINDOW_S, SME, SME_ACCOUNT, UNIV, UNIV_ACCOUNT,
};
use crate::ledger_reads::{account, allocation, offer, statement, withdrawal};
use crate::metering::check_metering;
use ledger::bank::{AllocationState, WithdrawalState};
use ledger::ids::{derived_id, LEDGER_ID_BIT};
use ledger::limits::NS_PER_S;
use ledger::statement::{Movement, Side};
use ledger::testing::OPERATOR;
use ledger::{Balances, PendingState};
use std::time::Instant;
use tests::{wait_for, AgentProcess, Cluster, SimDown};

const SIM_DOWN: [SimDown; 2] = [
    SimDown {
        gpu: 7,
        from_s: 1,
        to_s: 4,
    },
    SimDown {
        gpu: 6,
        from_s: 2,
        to_s: 3,
    },
];

/// What the university sells the SME once it has earned it.
const SALE_GPU_S: u128 = 16;
/// What the operator mints to the SME: exactly the draw.
const MINTED_GPU_S: u128 = 14_400;
const DRAW_GPUS: u32 = 4;
const DRAW_S: u32 = 3_600;
const WITHDRAWAL_ID: u128 = 700;
/// How long the hook runs before exiting 0.
const HOOK_RUN_S: u32 = 2;

#[test]
fn the_university_is_credited_what_it_delivered_and_the_sme_pays_what_the_hook_ran() {
    let began = Instant::now();
    let mut cluster = Cluster::start(3);
    open_bank(&mut cluster);
    let hook_output = tempfile::tempdir().expect("a temporary folder for the hook's output");
    let settings = univ_agent_settings(
        &cluster,
        env_writing_hook(hook_output.path(), HOOK_RUN_S),
        &SIM_DOWN,
    );
    let mut agent = AgentProcess::new(&settings, &agent_key(HOST));
    agent.spawn();

    // ---- the agent starts and offers the whole host for two hours ----
    let started = agent.wait_event("started", AGENT_STEP_TIMEOUT, |_| true);
    assert_eq!(
        (
            &started.line["host_id"],
            &started.line["party"],
            &started.line["gpu_class"],
            &started.line["gpu_count"],
            &started.line["open_offers"],
        ),
        (
            &serde_json::json!(HOST),
            &serde_json::json!(UNIV),
            &serde_json::json!("H100"),
            &serde_json::json!(GPU_COUNT),
            &serde_json::json!([]),
        ),
        "started: {}",
        started.line
    );
    let sent = agent.wait_event("offer_sent", AGENT_STEP_TIMEOUT, |_| true);
    let offer_id = sent.decimal("offer_id");
    let start_ns = sent.decimal("start_ns") as u64;
    let end_ns = sent.decimal("end_ns") as u64;
    assert_eq!(sent.line["repeated"], false);
    assert_eq!(sent.number("gpu_count"), u64::from(GPU_COUNT));
    assert_eq!(end_ns - start_ns, OFFER_WINDOW_S * NS_PER_S);
    assert_eq!(
        start_ns % NS_PER_S,
        0,
        "a fresh window starts on a whole second"
    );
    let expected_id = derived_id(
        "cbank.agent-offer.v1",
        &[HOST.as_bytes(), &start_ns.to_le_bytes()],
    ) & !LEDGER_ID_BIT;
    assert_eq!(
        offer_id, expected_id,
        "the offer id is spec/agent.md §5's construction"
    );
    let recorded = offer(&mut cluster, offer_id);
    assert_eq!(recorded.owner.as_str(), UNIV);
    assert_eq!(
        (
            recorded.spec.host_id.as_str(),
            recorded.spec.gpu_count,
            recorded.spec.start_ns,
            recorded.spec.end_ns
        ),
        (HOST, GPU_COUNT, start_ns, end_ns)
    );

    // ---- the SME gets GPU time: minted by the operator, and a sale by the university ----
    wait_for(
        "the university to earn the sale",
        AGENT_STEP_TIMEOUT,
        || {
            let credited = account(&mut cluster, UNIV_ACCOUNT).balances.credits_posted;
            if credited >= SALE_GPU_S {
                Ok(())
            } else {
                Err(format!("credited {credited}"))
            }
        },
    );
    move_gpu_s(
        &mut cluster,
        OPERATOR,
        h100_mint(),
        SME_ACCOUNT,
        MINTED_GPU_S,
    );
    move_gpu_s(&mut cluster, UNIV, UNIV_ACCOUNT, SME_ACCOUNT, SALE_GPU_S);

    // ---- the SME draws 4 GPU-hours: allocated at once, on the university's host ----
    request_withdrawal(&mut cluster, WITHDRAWAL_ID, DRAW_GPUS, DRAW_S);
    let allocation_id = allocation_id_of(WITHDRAWAL_ID);
    let drawn = withdrawal(&mut cluster, WITHDRAWAL_ID);
    assert_eq!(drawn.state, WithdrawalState::Allocated { allocation_id });
    assert_eq!(drawn.charged_gpu_s, u64::from(DRAW_GPUS * DRAW_S));
    assert_eq!((drawn.party.as_str(), drawn.rate_version), (SME, None));
    let granted = allocation(&mut cluster, allocation_id);
    assert_eq!(
        (
            granted.host_id.as_str(),
            granted.offer_id,
            granted.gpu_count,
            granted.party.as_str(),
            granted.withdrawal_id,
            granted.end_ns - granted.start_ns,
        ),
        (
            HOST,
            offer_id,
            DRAW_GPUS,
            SME,
            WITHDRAWAL_ID,
            u64::from(DRAW_S) * NS_PER_S
        )
    );
    assert!(granted.start_ns >= start_ns && granted.end_ns <= end_ns);
    let reserved = account(&mut cluster, SME_ACCOUNT).balances;
    assert_eq!(
        reserved,
        Balances {
            debits_pending: MINTED_GPU_S,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: MINTED_GPU_S + SALE_GPU_S,
        },
        "the draw is reserved on the SME's account"
    );

    // ---- the agent runs the hook with the allocation's environment ----
    let is_ours = |event: &tests::AgentEvent| event.decimal("allocation_id") == allocation_id;
    let hook_started = agent.wait_event("allocation_started", AGENT_STEP_TIMEOUT, is_ours);
    assert_eq!(hook_started.line["gpus"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(hook_started.line["hook"], true);
    assert_eq!(hook_started.decimal("offer_id"), offer_id);
    assert_eq!(hook_started.line["party"], SME);
    let env = wait_hook_env(hook_output.path(), allocation_id);
    let expected_env = [
        ("CBANK_ALLOCATION_ID", allocation_id.to_string()),
        ("CBANK_HOST_ID", HOST.to_owned()),
        ("CBANK_GPU_COUNT", DRAW_GPUS.to_string()),
        ("CBANK_PARTY", SME.to_owned()),
        ("CBANK_INSTITUTION", UNIV.to_owned()),
        ("CBANK_START_NS", granted.start_ns.to_string()),
        ("CBANK_END_NS", granted.end_ns.to_string()),
        ("CBANK_OFFER_ID", offer_id.to_string()),
        ("CBANK_GPU_INDICES", "0,1,2,3".to_owned()),
        (
            "CBANK_GPU_UUIDS",
            "SIM-GPU-0,SIM-GPU-1,SIM-GPU-2,SIM-GPU-3".to_owned(),
        ),
    ];
    for (name, value) in expected_env {
        assert_eq!(env.get(name), Some(&value), "the hook's {name}: {env:?}");
    }

    // ---- the hook exits 0 after 2 s: completed with what it ran ----
    let ended = agent.wait_event("allocation_ended", AGENT_STEP_TIMEOUT, is_ours);
    let delivered = ended.number("delivered_gpu_s");
    assert_eq!(
        (&ended.line["state"], &ended.line["exit_code"]),
        (&serde_json::json!("completed"), &serde_json::json!(0))
    );
    let gpus = u64::from(DRAW_GPUS);
    assert_eq!(delivered % gpus, 0, "delivered = 4 GPUs × whole seconds");
    let ran_s = delivered / gpus;
    assert!(
        (u64::from(HOOK_RUN_S)..=u64::from(HOOK_RUN_S) + 3).contains(&ran_s),
        "the hook ran {ran_s} s; it sleeps {HOOK_RUN_S} s"
    );
    let reported = agent.wait_event("allocation_reported", AGENT_STEP_TIMEOUT, is_ours);
    assert_eq!(reported.number("delivered_gpu_s"), delivered);
    assert_eq!(
        allocation(&mut cluster, allocation_id).state,
        AllocationState::Completed {
            delivered_gpu_s: delivered
        }
    );

    // Let the reports pass the hook's end, so its busy time is metered, then stop the agent.
    let hook_ended_ns = ended.decimal("ended_at_ns");
    agent.wait_event("report_sent", AGENT_STEP_TIMEOUT, |event| {
        event.decimal("to_ns") >= hook_ended_ns + u128::from(NS_PER_S)
    });
    let status = agent.terminate();
    assert!(status.success(), "the agent exits 0 on SIGTERM: {status}");
    let stopped = agent.wait_event("stopped", AGENT_STEP_TIMEOUT, |_| true);
    assert_eq!(stopped.line["running_hooks"], serde_json::json!([]));
    let hook_starts = std::fs::read_to_string(hook_output.path().join(HOOK_STARTS_FILE))
        .expect("the hook logs its starts");
    assert_eq!(
        hook_starts.lines().collect::<Vec<_>>(),
        vec![allocation_id.to_string()],
        "the hook ran once"
    );

    // ---- the university: exactly what was delivered, downtime not credited ----
    let metered = check_metering(&mut cluster, &agent, offer_id, &SIM_DOWN);
    assert!(
        metered.reported_s >= 4,
        "the scripted faults were all reported"
    );
    assert_eq!(metered.down_gpu_s, 4);
    assert_eq!(metered.delivered_gpu_s, 8 * metered.reported_s - 4);
    assert!(
        (1..=metered.reported_s as usize).contains(&metered.reports),
        "reports of whole seconds, one per tick or more when a tick was late"
    );
    assert_eq!(
        metered.reports_without_event, 0,
        "without faults the agent printed every accepted report"
    );
    assert!(
        (delivered..=delivered + 2 * gpus).contains(&metered.busy_gpu_s),
        "busy {} is the hook's {delivered} GPU-s widened to whole seconds of the grid",
        metered.busy_gpu_s
    );
    let reported_s = u128::from(metered.reported_s);
    let univ = account(&mut cluster, UNIV_ACCOUNT).balances;
    let univ_expected = Balances {
        debits_pending: 0,
        debits_posted: SALE_GPU_S,
        credits_pending: 8 * (u128::from(OFFER_WINDOW_S) - reported_s),
        credits_posted: 8 * reported_s - 4,
    };
    assert_eq!(univ, univ_expected, "the university's balances by hand");

    // ---- the SME: paid what the hook ran, the rest released ----
    let sme = account(&mut cluster, SME_ACCOUNT).balances;
    let delivered = u128::from(delivered);
    let sme_expected = Balances {
        debits_pending: 0,
        debits_posted: delivered,
        credits_pending: 0,
        credits_posted: MINTED_GPU_S + SALE_GPU_S,
    };
    assert_eq!(sme, sme_expected, "the SME's balances by hand");

    // ---- the mint: issued what was delivered and minted, took back what was drawn ----
    let mint = account(&mut cluster, h100_mint()).balances;
    let mint_expected = Balances {
        debits_pending: univ_expected.credits_pending,
        debits_posted: univ_expected.credits_posted + MINTED_GPU_S,
        credits_pending: 0,
        credits_posted: delivered,
    };
    assert_eq!(mint, mint_expected, "the mint's balances by hand");

    // ---- the SME's statement, line by line ----
    let sme_statement = statement(&mut cluster, SME_ACCOUNT);
    assert_eq!(sme_statement.closing, sme_expected);
    let reservation_id = derived_id(
        "cbank.withdrawal-transfer.v1",
        &[&WITHDRAWAL_ID.to_le_bytes(), &[0]],
    );
    let charge_id = derived_id(
        "cbank.withdrawal-transfer.v1",
        &[&WITHDRAWAL_ID.to_le_bytes(), &[2]],
    );
    let lines: Vec<_> = sme_statement
        .lines
        .iter()
        .map(|line| {
            (
                line.side,
                line.movement,
                line.amount,
                line.counterparty_account_id,
                line.code,
                line.balances_after,
            )
        })
        .collect();
    let after = |debits_pending, debits_posted| Balances {
        debits_pending,
        debits_posted,
        credits_pending: 0,
        credits_posted: MINTED_GPU_S + SALE_GPU_S,
    };
    assert_eq!(
        lines,
        vec![
            (
                Side::Credit,
                Movement::Posted,
                MINTED_GPU_S,
                h100_mint(),
                1,
                Balances {
                    credits_posted: MINTED_GPU_S,
                    ..Balances::default()
                }
            ),
            (
                Side::Credit,
                Movement::Posted,
                SALE_GPU_S,
                UNIV_ACCOUNT,
                1,
                after(0, 0)
            ),
            (
                Side::Debit,
                Movement::Reserved,
                MINTED_GPU_S,
                h100_mint(),
                1010,
                after(MINTED_GPU_S, 0)
            ),
            (
                Side::Debit,
                Movement::PostedFromReservation,
                delivered,
                h100_mint(),
                1011,
                after(0, delivered)
            ),
        ],
        "the SME's statement"
    );
    assert_eq!(sme_statement.lines[2].transfer_id, reservation_id);
    assert_eq!(sme_statement.lines[2].reference, WITHDRAWAL_ID);
    assert_eq!(
        sme_statement.lines[2].state,
        PendingState::Posted {
            by: charge_id,
            amount: delivered
        }
    );
    assert_eq!(sme_statement.lines[3].transfer_id, charge_id);

    // ---- the university's statement: one credit line per report, the rest pending ----
    let univ_statement = statement(&mut cluster, UNIV_ACCOUNT);
    assert_eq!(univ_statement.closing, univ_expected);
    let posted: Vec<u128> = univ_statement
        .lines
        .iter()
        .filter(|line| line.code == 1002)
        .map(|line| {
            assert_eq!((line.side, line.movement), (Side::Credit, Movement::Posted));
            assert_eq!(line.reference, offer_id);
            line.amount
        })
        .collect();
    let reports = crate::ledger_reads::meter_reports(&mut cluster, offer_id);
    let delivered_per_report: Vec<u128> = reports
        .iter()
        .filter(|entry| !entry.repeated)
        .map(|entry| u128::from(entry.report.available_gpu_s + entry.report.busy_gpu_s))
        .collect();
    assert_eq!(
        posted, delivered_per_report,
        "one delivered credit per report"
    );
    // Lines of one journal entry share a timestamp and are listed by transfer id, so the
    // reservations are checked by state, not by position: each report voided the one before.
    let reservations: Vec<_> = univ_statement
        .lines
        .iter()
        .filter(|line| line.code == 1001)
        .collect();
    assert_eq!(
        reservations.len(),
        posted.len() + 1,
        "the first reservation, then one per report"
    );
    let pending: Vec<_> = reservations
        .iter()
        .filter(|line| line.state == PendingState::Pending)
        .map(|line| (line.movement, line.amount))
        .collect();
    assert_eq!(
        pending,
        vec![(Movement::Reserved, univ_expected.credits_pending)],
        "only the reservation of the unreported rest is pending"
    );
    assert!(reservations.iter().all(|line| matches!(
        line.state,
        PendingState::Pending | PendingState::Voided { .. }
    )));
    assert_eq!(
        reservations[0].amount,
        u128::from(GPU_COUNT) * u128::from(OFFER_WINDOW_S),
        "the whole window was reserved first"
    );
    let sale: Vec<_> = univ_statement
        .lines
        .iter()
        .filter(|line| line.side == Side::Debit)
        .map(|line| (line.movement, line.amount, line.counterparty_account_id))
        .collect();
    assert_eq!(sale, vec![(Movement::Posted, SALE_GPU_S, SME_ACCOUNT)]);

    let converged = cluster.wait_converged();
    eprintln!(
        "t10: {metered:?}; hook delivered {delivered} GPU-s; univ {univ:?}; sme {sme:?}; \
         journal head {}; {:?}",
        converged.journal_head.index,
        began.elapsed()
    );
}
