//! The bank's parties on top of the cluster fixture: two institutions with one 8 × H100 host
//! each, an SME, their `GPUH:H100` main accounts, and the agent settings the tests share.
//!
//! `GPUH:H100` is registered at genesis by the cluster fixture (`tests/src/fixture.rs`), so its
//! system accounts, the mint among them, already exist. Each host's agent key is a demo key
//! derived from the host's name: never a party key, so `register_host` accepts it.

use ledger::bank::{HostSpec, WithdrawalSpec};
use ledger::ids::{derived_id, system_account_id};
use ledger::testing::{demo_key, OPERATOR};
use ledger::{AccountFlags, AccountKind, Asset, Command, CommandResult, Effect, NewAccount};
use ledger::{PartyId, Role, SigningKey, Transfer, TransferFlags};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tests::{next_transfer_id, sign, wait_for, AgentSettings, Cluster, SimDown};

/// The university that offers its host.
pub const UNIV: &str = "univ";
/// A second institution, with a host of its own.
pub const UNIV_B: &str = "univ-b";
/// The SME that draws GPU time.
pub const SME: &str = "sme";

/// `GPUH:H100` main accounts.
pub const UNIV_ACCOUNT: u128 = 11;
pub const SME_ACCOUNT: u128 = 21;
pub const UNIV_B_ACCOUNT: u128 = 31;

/// The university's host, and the second institution's.
pub const HOST: &str = "gpu-01";
pub const HOST_B: &str = "gpu-02";

/// GPUs of each host, and of the simulated source its agent runs.
pub const GPU_COUNT: u32 = 8;

/// The agent's offer window: long enough for a 1-hour allocation started in its first minute.
pub const OFFER_WINDOW_S: u64 = 7_200;

/// How long an agent may take to start, offer, or make the next report or allocation step.
/// It ticks once a second and backs off up to 30 s after failures; on a loaded 2-core machine
/// 20 s is generous for one step, and bounded.
pub const AGENT_STEP_TIMEOUT: Duration = Duration::from_secs(20);

pub fn h100() -> Asset {
    "GPUH:H100".parse().expect("GPUH:H100 is an asset code")
}

/// The `GPUH:H100` mint: delivered time is issued from it, drawn time goes back to it.
pub fn h100_mint() -> u128 {
    system_account_id(&h100(), AccountKind::Mint)
}

/// A host's agent key.
pub fn agent_key(host: &str) -> SigningKey {
    demo_key(&format!("agent-key.{host}"))
}

/// Registers the parties, opens their accounts and registers both hosts, through the leader.
pub fn open_bank(cluster: &mut Cluster) {
    let leader = cluster.leader();
    let client = cluster.client();
    for (party, role) in [
        (UNIV, Role::Institution),
        (UNIV_B, Role::Institution),
        (SME, Role::Sme),
    ] {
        let register = Command::RegisterParty {
            party: PartyId::new(party),
            role,
            keys: vec![demo_key(party).public_key()],
        };
        client.expect_applied(leader, OPERATOR, register);
    }
    for (party, id) in [
        (UNIV, UNIV_ACCOUNT),
        (SME, SME_ACCOUNT),
        (UNIV_B, UNIV_B_ACCOUNT),
    ] {
        let account = NewAccount {
            id,
            asset: h100(),
            kind: AccountKind::Main,
            flags: AccountFlags {
                debits_must_not_exceed_credits: true,
                ..AccountFlags::default()
            },
            reference: 0,
        };
        let open = Command::CreateAccounts {
            accounts: vec![account],
        };
        client.expect_applied(leader, party, open);
    }
    for (party, host_id, account_id) in
        [(UNIV, HOST, UNIV_ACCOUNT), (UNIV_B, HOST_B, UNIV_B_ACCOUNT)]
    {
        let host = HostSpec {
            host_id: host_id.to_owned(),
            region: "beijing".to_owned(),
            gpu_class: "H100".to_owned(),
            gpu_count: GPU_COUNT,
            agent_key: agent_key(host_id).public_key(),
            account_id,
        };
        client.expect_applied(leader, party, Command::RegisterHost { host });
    }
}

/// A single-phase transfer of `amount` GPU-seconds, signed by `signer` (the operator for the
/// mint). Returns the transfer id.
pub fn move_gpu_s(cluster: &mut Cluster, signer: &str, from: u128, to: u128, amount: u128) -> u128 {
    let leader = cluster.leader();
    let id = next_transfer_id();
    let transfer = Transfer {
        id,
        debit_account_id: from,
        credit_account_id: to,
        amount,
        pending_id: 0,
        timeout_s: 0,
        code: 1,
        reference: 0,
        flags: TransferFlags::default(),
    };
    cluster.client().expect_applied(
        leader,
        signer,
        Command::CreateTransfers {
            transfers: vec![transfer],
        },
    );
    id
}

/// The university's agent: `sim:8xH100`, reports every second, allocations polled every second,
/// offers at once (no policy) for [`OFFER_WINDOW_S`].
pub fn univ_agent_settings(
    cluster: &Cluster,
    hook: Vec<String>,
    sim_down: &[SimDown],
) -> AgentSettings {
    AgentSettings {
        nodes: cluster
            .node_ids()
            .into_iter()
            .map(|id| cluster.url(id))
            .collect(),
        party: UNIV.to_owned(),
        host_id: HOST.to_owned(),
        gpu_source: format!("sim:{GPU_COUNT}xH100"),
        meter_interval_s: 1,
        sample_interval_s: 1,
        allocation_poll_s: 1,
        offer_window_s: OFFER_WINDOW_S,
        hook,
        hook_stop_grace_s: 2,
        sim_down: sim_down.to_vec(),
    }
}

/// The file in which [`env_writing_hook`] logs one line (the allocation id) per start.
pub const HOOK_STARTS_FILE: &str = "hook-starts";

/// A hook that logs its start to `<folder>/hook-starts`, writes its `CBANK_*` environment to
/// `<folder>/<allocation id>.env` (atomically), then runs for `run_s` seconds and exits 0.
pub fn env_writing_hook(folder: &Path, run_s: u32) -> Vec<String> {
    let script = format!(
        "echo \"$CBANK_ALLOCATION_ID\" >> \"$0/{HOOK_STARTS_FILE}\" \
         && env | grep '^CBANK_' | sort > \"$0/$CBANK_ALLOCATION_ID.env.tmp\" \
         && mv \"$0/$CBANK_ALLOCATION_ID.env.tmp\" \"$0/$CBANK_ALLOCATION_ID.env\" \
         && sleep {run_s}"
    );
    vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        script,
        folder.to_string_lossy().into_owned(),
    ]
}

/// GPU-seconds the scripted faults take out of `[from_s, to_s)` seconds of a window (each
/// fault is one GPU down for its span, whatever else that GPU does).
pub fn scripted_down_gpu_s(faults: &[SimDown], from_s: u64, to_s: u64) -> u64 {
    faults
        .iter()
        .map(|fault| {
            let start = fault.from_s.max(from_s);
            let end = fault.to_s.min(to_s);
            end.saturating_sub(start)
        })
        .sum()
}

/// The SME asks for `gpu_count` H100 for `duration_s`, paid from its `GPUH:H100` account,
/// through `POST /v1/withdrawals`; panics unless the ledger accepted it as new.
pub fn request_withdrawal(
    cluster: &mut Cluster,
    withdrawal_id: u128,
    gpu_count: u32,
    duration_s: u32,
) {
    let leader = cluster.leader();
    let withdrawal = WithdrawalSpec {
        withdrawal_id,
        account_id: SME_ACCOUNT,
        gpu_class: "H100".to_owned(),
        gpu_count,
        duration_s,
        region: None,
    };
    let command = Command::RequestWithdrawal { withdrawal };
    let response = cluster
        .client()
        .submit(leader, "/v1/withdrawals", &sign(SME, command))
        .unwrap_or_else(|error| panic!("request_withdrawal {withdrawal_id}: {error}"));
    assert_eq!(
        response.outcome.result,
        CommandResult::Accepted(Effect::WithdrawalRequested { repeated: false }),
        "withdrawal {withdrawal_id} is accepted"
    );
}

/// The allocation that serves a withdrawal (`spec/bank.md` §1.1).
pub fn allocation_id_of(withdrawal_id: u128) -> u128 {
    derived_id("cbank.allocation.v1", &[&withdrawal_id.to_le_bytes()])
}

/// Waits (bounded) for the file [`env_writing_hook`] writes for `allocation_id`, and returns
/// its `NAME=value` lines.
pub fn wait_hook_env(folder: &Path, allocation_id: u128) -> BTreeMap<String, String> {
    let path = folder.join(format!("{allocation_id}.env"));
    let text = wait_for(
        &format!("the hook's output {}", path.display()),
        AGENT_STEP_TIMEOUT,
        || std::fs::read_to_string(&path).map_err(|error| error.to_string()),
    );
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}
