//! Faults mid-window: the agent is killed with SIGKILL while an allocation's hook runs and a
//! scripted fault is on, and restarted after the hook has ended; later the leader is killed
//! with SIGKILL and restarted. Neither loses nor double-counts a GPU-second.
//!
//! What must hold afterwards, by hand:
//! - the accepted reports tile the reported part of the window with no gap and no overlap, each
//!   counting exactly the scripted downtime in its span, the one covering the agent's absence
//!   included (simulated GPUs are metered from the window's schedule, not from the agent's
//!   uptime); so the university holds `8 R − D` posted and `8 × (7,200 − R)` pending;
//! - the restarted agent adopts the hook it did not see end, reads how and when it ended, and
//!   reports `completed {d}` once, with `d = 4 × whole seconds the hook ran`; the SME pays `d`;
//! - the restarted agent offers nothing new (the node's offer is the truth), and reports go on
//!   through the new leader;
//! - every node converges to the same journal head and state hash.

use crate::fixture::{
    agent_key, allocation_id_of, env_writing_hook, h100_mint, move_gpu_s, open_bank,
    request_withdrawal, univ_agent_settings, wait_hook_env, AGENT_STEP_TIMEOUT, HOOK_STARTS_FILE,
    HOST, OFFER_WINDOW_S, SME_ACCOUNT,
};
use crate::ledger_reads::{account, allocation, offer};
use crate::metering::check_metering;
use ledger::bank::AllocationState;
use ledger::limits::NS_PER_S;
use ledger::testing::OPERATOR;
use ledger::Balances;
use std::time::Instant;
use tests::{unix_now_ns, wait_for, AgentEvent, AgentProcess, Cluster, SimDown};

/// GPU 7 is down from the window's start until after the agent's absence, GPU 0 (allocated to
/// the hook) while the hook runs (down wins over busy), GPU 5 around the leader's death. In
/// seconds from the window start; the agent is killed about 1 to 2 s in and back about 3 s
/// later, the leader is killed about 6 to 8 s in.
const SIM_DOWN: [SimDown; 3] = [
    SimDown {
        gpu: 7,
        from_s: 0,
        to_s: 8,
    },
    SimDown {
        gpu: 0,
        from_s: 3,
        to_s: 5,
    },
    SimDown {
        gpu: 5,
        from_s: 5,
        to_s: 12,
    },
];

const MINTED_GPU_S: u128 = 14_400;
const DRAW_GPUS: u32 = 4;
const DRAW_S: u32 = 3_600;
const WITHDRAWAL_ID: u128 = 701;
/// Long enough that the agent is killed while the hook runs, and the hook ends while the agent
/// is away.
const HOOK_RUN_S: u32 = 3;

#[test]
fn killing_the_agent_and_the_leader_mid_window_loses_and_doubles_no_gpu_second() {
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
    let sent = agent.wait_event("offer_sent", AGENT_STEP_TIMEOUT, |_| true);
    let offer_id = sent.decimal("offer_id");
    let start_ns = sent.decimal("start_ns") as u64;

    // ---- an allocation whose hook outlives the agent ----
    move_gpu_s(
        &mut cluster,
        OPERATOR,
        h100_mint(),
        SME_ACCOUNT,
        MINTED_GPU_S,
    );
    request_withdrawal(&mut cluster, WITHDRAWAL_ID, DRAW_GPUS, DRAW_S);
    let allocation_id = allocation_id_of(WITHDRAWAL_ID);
    assert_eq!(allocation(&mut cluster, allocation_id).offer_id, offer_id);
    // The hook writes its environment first: once the file is there, the agent has recorded
    // the start in its state (it does so before spawning) and the hook runs.
    wait_hook_env(hook_output.path(), allocation_id);
    agent.kill9();
    let killed_agent_ns = unix_now_ns();
    let reported_before_kill = offer(&mut cluster, offer_id).reported_until_ns;

    // ---- the hook ends while nobody watches; the agent comes back ----
    let exit_file = agent
        .state_dir()
        .join("hooks")
        .join(format!("{allocation_id}.exit"));
    let exit_code = wait_for(
        "the hook to end while the agent is away",
        AGENT_STEP_TIMEOUT,
        || std::fs::read_to_string(&exit_file).map_err(|error| error.to_string()),
    );
    assert_eq!(exit_code.trim(), "0", "the hook's wrapper recorded exit 0");
    agent.spawn();
    let restart = agent.starts();
    let in_restart = |event: &AgentEvent| event.start == restart;
    let started = agent.wait_event("started", AGENT_STEP_TIMEOUT, in_restart);
    assert_eq!(
        started.line["open_offers"],
        serde_json::json!([offer_id.to_string()]),
        "the restarted agent takes the open window over from the node"
    );
    assert_eq!(
        started.line["adopted_hooks"],
        serde_json::json!([allocation_id.to_string()]),
        "the restarted agent adopts the hook it started"
    );
    let is_ours = |event: &AgentEvent| {
        event.start == restart && event.decimal("allocation_id") == allocation_id
    };
    let ended = agent.wait_event("allocation_ended", AGENT_STEP_TIMEOUT, is_ours);
    assert_eq!(
        (&ended.line["state"], &ended.line["exit_code"]),
        (&serde_json::json!("completed"), &serde_json::json!(0)),
        "the exit file tells the restarted agent how the hook ended: {}",
        ended.line
    );
    let delivered = ended.number("delivered_gpu_s");
    let gpus = u64::from(DRAW_GPUS);
    assert_eq!(delivered % gpus, 0);
    assert!(
        (u64::from(HOOK_RUN_S)..=u64::from(HOOK_RUN_S) + 3).contains(&(delivered / gpus)),
        "the hook ran {} s by its exit file; it sleeps {HOOK_RUN_S} s",
        delivered / gpus
    );
    let reported = agent.wait_event("allocation_reported", AGENT_STEP_TIMEOUT, is_ours);
    assert_eq!(reported.number("delivered_gpu_s"), delivered);
    assert_eq!(
        allocation(&mut cluster, allocation_id).state,
        AllocationState::Completed {
            delivered_gpu_s: delivered
        }
    );
    // The first report after the restart starts where the node's record stopped, before the
    // kill: the time the agent was away is metered, not skipped.
    let catch_up = agent.wait_event("report_sent", AGENT_STEP_TIMEOUT, in_restart);
    assert!(
        catch_up.decimal("from_ns") >= u128::from(reported_before_kill)
            && catch_up.decimal("from_ns") <= u128::from(killed_agent_ns),
        "the first report after the restart starts at the node's reported_until: {}",
        catch_up.line
    );

    // ---- the leader dies mid-window; the agent reports through the new one ----
    let old_leader = cluster.leader();
    cluster.kill9(old_leader);
    let killed_leader_ns = unix_now_ns();
    let new_leader = cluster.leader();
    assert_ne!(new_leader, old_leader);
    agent.wait_event("report_sent", AGENT_STEP_TIMEOUT, |event| {
        event.start == restart
            && event.decimal("to_ns") >= u128::from(killed_leader_ns + 2 * NS_PER_S)
    });
    cluster.restart(old_leader);
    // Metered past the leader's restart and past the last scripted fault.
    let last_fault_end_s = SIM_DOWN.iter().map(|fault| fault.to_s).max().unwrap_or(0);
    let metered_until_ns = unix_now_ns().max(start_ns + last_fault_end_s * NS_PER_S);
    agent.wait_event("report_sent", AGENT_STEP_TIMEOUT, |event| {
        event.start == restart && event.decimal("to_ns") >= u128::from(metered_until_ns)
    });
    let status = agent.terminate();
    assert!(status.success(), "the agent exits 0 on SIGTERM: {status}");

    // ---- no GPU-second lost or counted twice ----
    let metered = check_metering(&mut cluster, &agent, offer_id, &SIM_DOWN);
    assert!(
        metered.reported_s >= last_fault_end_s,
        "every scripted fault lies inside the reported part of the window ({} s)",
        metered.reported_s
    );
    let down: u64 = SIM_DOWN.iter().map(|fault| fault.to_s - fault.from_s).sum();
    assert_eq!(metered.down_gpu_s, down);
    let reported_s = u128::from(metered.reported_s);
    assert_eq!(
        account(&mut cluster, crate::fixture::UNIV_ACCOUNT).balances,
        Balances {
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 8 * (u128::from(OFFER_WINDOW_S) - reported_s),
            credits_posted: 8 * reported_s - u128::from(down),
        },
        "the university's balances by hand"
    );
    assert_eq!(
        agent
            .events_named("offer_sent")
            .iter()
            .map(|event| (event.start, event.decimal("offer_id")))
            .collect::<Vec<_>>(),
        vec![(1, offer_id)],
        "one window, offered once: the restarted agent offered nothing"
    );
    let hook_starts = std::fs::read_to_string(hook_output.path().join(HOOK_STARTS_FILE))
        .expect("the hook logs its starts");
    assert_eq!(
        hook_starts.lines().collect::<Vec<_>>(),
        vec![allocation_id.to_string()],
        "the hook was started once, never again by the restarted agent"
    );
    let delivered = u128::from(delivered);
    assert_eq!(
        account(&mut cluster, SME_ACCOUNT).balances,
        Balances {
            debits_pending: 0,
            debits_posted: delivered,
            credits_pending: 0,
            credits_posted: MINTED_GPU_S,
        },
        "the SME pays what the hook ran, once"
    );

    let converged = cluster.wait_converged();
    eprintln!(
        "t20: {metered:?}; hook delivered {delivered} GPU-s; leader {old_leader} killed, \
         {new_leader} took over; journal head {}; {:?}",
        converged.journal_head.index,
        began.elapsed()
    );
}
