//! Bad meter reports over HTTP (`POST /v1/meter-reports`), each sent through another node of
//! the cluster: signed by a key that is not the university's, for another institution's host,
//! for a window that does not exist, and overlapping an accepted report. Each is rejected with
//! its own reason code, recorded as exactly one journal entry, and changes no balance and not
//! the offer. The exact repeat of the accepted report is answered `repeated: true` and credits
//! nothing again; the next good report is then accepted and credited by hand.
//!
//! No agent runs here: the university's offer and reports are signed with its host's agent key
//! by the test, so nothing else moves while a case is checked. The window starts a minute in
//! the past (the ledger takes windows up to 10 minutes old), so reports of its first seconds
//! are not in the future.

use crate::fixture::{
    agent_key, h100_mint, open_bank, GPU_COUNT, HOST, HOST_B, OFFER_WINDOW_S, SME, SME_ACCOUNT,
    UNIV, UNIV_ACCOUNT, UNIV_B, UNIV_B_ACCOUNT,
};
use crate::ledger_reads::{account, offer};
use ledger::bank::{MeterReport, Offer, OfferSpec};
use ledger::limits::NS_PER_S;
use ledger::testing::demo_key;
use ledger::{Balances, Command, CommandResult, Effect, JournalEntry, SignedCommand};
use std::collections::BTreeMap;
use tests::{sign, sign_with, unix_now_ns, Cluster, WriteResponse};

const OFFER_ID: u128 = 500;
/// An offer id no one used.
const UNKNOWN_OFFER_ID: u128 = 501;
const JSON: Option<&str> = Some("application/json");

/// Balances of every account a meter report could move, the offer, and the journal head.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    head: u64,
    balances: BTreeMap<u128, Balances>,
    offer: Offer,
}

fn observe(cluster: &mut Cluster) -> Observed {
    let balances = [UNIV_ACCOUNT, UNIV_B_ACCOUNT, SME_ACCOUNT, h100_mint()]
        .into_iter()
        .map(|id| (id, account(cluster, id).balances))
        .collect();
    let offer = offer(cluster, OFFER_ID);
    let leader = cluster.leader();
    let head = cluster
        .state(leader)
        .unwrap_or_else(|error| panic!("read the leader's state: {error}"))
        .journal_head
        .index;
    Observed {
        head,
        balances,
        offer,
    }
}

/// `[from_s, to_s)` of the window, with `down_gpu_s` down and the rest available.
fn report(offer_id: u128, start_ns: u64, from_s: u64, to_s: u64, down_gpu_s: u64) -> Command {
    Command::ReportMeter {
        report: MeterReport {
            offer_id,
            from_ns: start_ns + from_s * NS_PER_S,
            to_ns: start_ns + to_s * NS_PER_S,
            available_gpu_s: u64::from(GPU_COUNT) * (to_s - from_s) - down_gpu_s,
            busy_gpu_s: 0,
            down_gpu_s,
        },
    }
}

/// Sends a command the university's host's agent signs, panicking unless it is accepted with
/// `effect`.
fn expect_accepted(
    cluster: &mut Cluster,
    path: &str,
    command: Command,
    effect: Effect,
) -> WriteResponse {
    let leader = cluster.leader();
    let signed = sign_with(&agent_key(HOST), UNIV, command);
    let response = cluster
        .client()
        .submit(leader, path, &signed)
        .unwrap_or_else(|error| panic!("POST {path}: {error}"));
    assert_eq!(response.outcome.result, CommandResult::Accepted(effect));
    response
}

#[test]
fn bad_meter_reports_are_rejected_with_their_own_codes_and_move_nothing() {
    let mut cluster = Cluster::start(3);
    open_bank(&mut cluster);

    // A window that started a minute ago, and its first 30 s reported with 5 GPU-s down.
    let now_s = unix_now_ns() / NS_PER_S;
    let start_ns = (now_s - 60) * NS_PER_S;
    let window = OfferSpec {
        offer_id: OFFER_ID,
        host_id: HOST.to_owned(),
        gpu_count: GPU_COUNT,
        start_ns,
        end_ns: start_ns + OFFER_WINDOW_S * NS_PER_S,
    };
    expect_accepted(
        &mut cluster,
        "/v1/offers",
        Command::OfferCapacity { offer: window },
        Effect::CapacityOffered { repeated: false },
    );
    let first = report(OFFER_ID, start_ns, 0, 30, 5);
    expect_accepted(
        &mut cluster,
        "/v1/meter-reports",
        first.clone(),
        Effect::MeterRecorded { repeated: false },
    );
    let gpus = u128::from(GPU_COUNT);
    let credited = gpus * 30 - 5;
    assert_eq!(
        account(&mut cluster, UNIV_ACCOUNT).balances,
        Balances {
            credits_posted: credited,
            credits_pending: gpus * (u128::from(OFFER_WINDOW_S) - 30),
            ..Balances::default()
        },
        "the first report is credited: 8 × 30 − 5 posted, the rest of the window pending"
    );

    let next = || report(OFFER_ID, start_ns, 30, 40, 0);
    let cases: Vec<(&str, u16, &str, SignedCommand)> = vec![
        (
            "signed by the SME's key as the university",
            401,
            "key_not_of_signer",
            sign_with(&demo_key(SME), UNIV, next()),
        ),
        (
            "signed by gpu-02's agent key as the university",
            401,
            "key_not_of_signer",
            sign_with(&agent_key(HOST_B), UNIV, next()),
        ),
        (
            "gpu-02's agent reporting for the university's host",
            422,
            "not_host_owner",
            sign_with(&agent_key(HOST_B), UNIV_B, next()),
        ),
        (
            "the other institution's own key, for the university's host",
            422,
            "not_host_owner",
            sign(UNIV_B, next()),
        ),
        (
            "a window that does not exist",
            422,
            "offer_unknown",
            sign_with(
                &agent_key(HOST),
                UNIV,
                report(UNKNOWN_OFFER_ID, start_ns, 30, 40, 0),
            ),
        ),
        (
            "overlapping the accepted report",
            422,
            "meter_report_overlaps",
            sign_with(
                &agent_key(HOST),
                UNIV,
                report(OFFER_ID, start_ns, 10, 40, 0),
            ),
        ),
        (
            "the accepted report's start, with other numbers",
            422,
            "meter_report_overlaps",
            sign_with(&agent_key(HOST), UNIV, report(OFFER_ID, start_ns, 0, 30, 0)),
        ),
    ];
    let nodes = cluster.node_ids();
    for (number, (case, status, code, signed)) in cases.into_iter().enumerate() {
        let node = nodes[number % nodes.len()];
        let before = observe(&mut cluster);
        let answer = cluster
            .api()
            .raw(
                "POST",
                &format!("{}/v1/meter-reports", cluster.url(node)),
                JSON,
                None,
                serde_json::to_vec(&signed).expect("a signed command serialises"),
            )
            .unwrap_or_else(|error| panic!("{case}: no answer from node {node}: {error}"));
        let body = answer.json();
        assert_eq!(
            (answer.status, body["code"].as_str()),
            (status, Some(code)),
            "{case} (through node {node}): {body}"
        );
        let after = observe(&mut cluster);
        assert_eq!(after.balances, before.balances, "{case}: no balance moved");
        assert_eq!(after.offer, before.offer, "{case}: the offer is unchanged");
        assert_eq!(
            after.head,
            before.head + 1,
            "{case}: the rejection is one journal entry"
        );
        assert_eq!(
            body["journal_index"], after.head,
            "{case}: the error names the entry that recorded it: {body}"
        );
        let page = crate::ledger_reads::read::<serde_json::Value>(
            &mut cluster,
            &format!("/v1/journal?from={}&limit=1", after.head),
        );
        let entry: JournalEntry = serde_json::from_value(page["entries"][0].clone())
            .unwrap_or_else(|error| panic!("{case}: journal entry {}: {error}", after.head));
        assert_eq!(
            entry.body.outcome.rejected().map(|reason| reason.name()),
            Some(code),
            "{case}: the journal records the reason"
        );
        assert_eq!(
            entry.body.command, signed,
            "{case}: the journal holds the command sent"
        );
    }

    // The exact repeat of the accepted report: accepted as a repeat, nothing credited again.
    let before = observe(&mut cluster);
    expect_accepted(
        &mut cluster,
        "/v1/meter-reports",
        first,
        Effect::MeterRecorded { repeated: true },
    );
    let after = observe(&mut cluster);
    assert_eq!(after.balances, before.balances, "a repeat credits nothing");
    assert_eq!(after.offer, before.offer);

    // The rejections left the offer where it was: the next report is accepted and credited.
    expect_accepted(
        &mut cluster,
        "/v1/meter-reports",
        next(),
        Effect::MeterRecorded { repeated: false },
    );
    assert_eq!(
        account(&mut cluster, UNIV_ACCOUNT).balances,
        Balances {
            credits_posted: credited + gpus * 10,
            credits_pending: gpus * (u128::from(OFFER_WINDOW_S) - 40),
            ..Balances::default()
        },
        "the next report is credited: + 8 × 10"
    );
    assert_eq!(
        account(&mut cluster, UNIV_B_ACCOUNT).balances,
        Balances::default(),
        "the other institution was never credited"
    );
    let recorded = offer(&mut cluster, OFFER_ID);
    assert_eq!(
        (
            recorded.reported_until_ns,
            recorded.delivered_gpu_s,
            recorded.down_gpu_s,
            recorded.unreported_gpu_s
        ),
        (start_ns + 40 * NS_PER_S, 8 * 40 - 5, 5, 0)
    );
    cluster.wait_converged();
}
