//! The hand-computed check of one offer's metering: every GPU-second of the reported part of
//! the window was reported exactly once, the scripted downtime and nothing else was left
//! uncredited, and the host's account holds exactly what was delivered.
//!
//! The ledger's record (the offer's totals and the accepted reports in the journal) is compared
//! with arithmetic on the window's grid: `R` reported seconds from the window start, `D(a, b)`
//! the scripted down GPU-seconds in `[a, b)`. The agent's `report_sent` lines are compared with
//! the journal too, so the agent says what the ledger recorded.

use crate::fixture::{agent_key, scripted_down_gpu_s, GPU_COUNT, HOST, UNIV_ACCOUNT};
use crate::ledger_reads::{account, meter_reports, offer};
use ledger::limits::NS_PER_S;
use tests::{AgentProcess, Cluster, SimDown};

/// What the check established.
#[derive(Debug)]
pub struct Metered {
    /// Seconds of the window reported (`R`).
    pub reported_s: u64,
    /// Accepted reports that were not repeats.
    pub reports: usize,
    pub delivered_gpu_s: u64,
    pub busy_gpu_s: u64,
    pub down_gpu_s: u64,
    /// Accepted reports the agent printed no `report_sent` line for (a kill between the
    /// ledger's answer and the line).
    pub reports_without_event: usize,
}

/// Runs the check for `offer_id` of [`HOST`] (see the module doc); panics on any mismatch.
/// The agent must be stopped, so that nothing moves while the check reads.
pub fn check_metering(
    cluster: &mut Cluster,
    agent: &AgentProcess,
    offer_id: u128,
    faults: &[SimDown],
) -> Metered {
    let offer = offer(cluster, offer_id);
    let start_ns = offer.spec.start_ns;
    let end_ns = offer.spec.end_ns;
    let gpus = u64::from(GPU_COUNT);
    assert_eq!(
        offer.spec.gpu_count, GPU_COUNT,
        "the agent offers every GPU"
    );
    assert_eq!(
        (offer.reported_until_ns - start_ns) % NS_PER_S,
        0,
        "reports end on whole seconds of the window"
    );
    let reported_s = (offer.reported_until_ns - start_ns) / NS_PER_S;
    let down = scripted_down_gpu_s(faults, 0, reported_s);

    // The offer's totals, by hand.
    assert_eq!(
        offer.unreported_gpu_s, 0,
        "no gap between reports: every second up to reported_until was reported"
    );
    assert_eq!(
        offer.down_gpu_s, down,
        "down is exactly the scripted downtime of the first {reported_s} s"
    );
    assert_eq!(
        offer.delivered_gpu_s,
        gpus * reported_s - down,
        "delivered = {gpus} GPUs × {reported_s} s − {down} scripted down"
    );

    // The journal: the accepted reports tile [start, reported_until) in order, each one exact.
    let journaled = meter_reports(cluster, offer_id);
    let agent_key = agent_key(HOST).public_key();
    let mut covered_until_s = 0;
    let mut delivered_sum = 0;
    let mut busy_sum = 0;
    let mut reports = 0;
    for entry in &journaled {
        let report = &entry.report;
        assert_eq!(
            entry.key, agent_key,
            "report {report:?} signed by the agent key"
        );
        let from_s = (report.from_ns - start_ns) / NS_PER_S;
        let to_s = (report.to_ns - start_ns) / NS_PER_S;
        if entry.repeated {
            let original = journaled.iter().find(|other| {
                !other.repeated
                    && other.report == *report
                    && other.journal_index < entry.journal_index
            });
            assert!(
                original.is_some(),
                "repeat at {} of a report never accepted before: {report:?}",
                entry.journal_index
            );
            continue;
        }
        assert_eq!(
            from_s, covered_until_s,
            "report {report:?} at {} starts where the previous one ended: no overlap, no gap",
            entry.journal_index
        );
        assert_eq!((report.from_ns - start_ns) % NS_PER_S, 0);
        assert_eq!((report.to_ns - start_ns) % NS_PER_S, 0);
        assert!(to_s > from_s);
        assert_eq!(
            report.available_gpu_s + report.busy_gpu_s + report.down_gpu_s,
            gpus * (to_s - from_s),
            "report {report:?} accounts for every GPU-second of its span"
        );
        assert_eq!(
            report.down_gpu_s,
            scripted_down_gpu_s(faults, from_s, to_s),
            "report [{from_s} s, {to_s} s) counts exactly the scripted downtime in it: {report:?}"
        );
        covered_until_s = to_s;
        delivered_sum += report.available_gpu_s + report.busy_gpu_s;
        busy_sum += report.busy_gpu_s;
        reports += 1;
    }
    assert_eq!(
        covered_until_s, reported_s,
        "the accepted reports end where the offer says it was reported"
    );
    assert_eq!(delivered_sum, offer.delivered_gpu_s);
    assert_eq!(busy_sum, offer.busy_gpu_s);

    // The agent's lines say what the journal recorded.
    let events = agent.events_named("report_sent");
    for event in &events {
        let index = event.number("journal_index");
        let entry = journaled
            .iter()
            .find(|entry| entry.journal_index == index)
            .unwrap_or_else(|| panic!("report_sent names journal entry {index}, which holds no accepted report of the offer: {}", event.line));
        let report = &entry.report;
        assert_eq!(
            (
                event.decimal("offer_id"),
                event.decimal("from_ns"),
                event.decimal("to_ns"),
                event.number("available_gpu_s"),
                event.number("busy_gpu_s"),
                event.number("down_gpu_s"),
                event.line["repeated"].as_bool(),
            ),
            (
                report.offer_id,
                u128::from(report.from_ns),
                u128::from(report.to_ns),
                report.available_gpu_s,
                report.busy_gpu_s,
                report.down_gpu_s,
                Some(entry.repeated),
            ),
            "the agent's line matches journal entry {index}"
        );
    }
    let reports_without_event = journaled
        .iter()
        .filter(|entry| {
            !events
                .iter()
                .any(|event| event.number("journal_index") == entry.journal_index)
        })
        .count();

    // The host's account holds exactly the delivered time, and the rest of the window pending.
    let univ = account(cluster, UNIV_ACCOUNT);
    assert_eq!(
        univ.balances.credits_posted,
        u128::from(offer.delivered_gpu_s),
        "the university is credited exactly what was delivered"
    );
    assert_eq!(
        univ.balances.credits_pending,
        u128::from(gpus * ((end_ns - offer.reported_until_ns) / NS_PER_S)),
        "the unreported rest of the window is reserved: {gpus} × (end − reported_until)"
    );

    Metered {
        reported_s,
        reports,
        delivered_gpu_s: offer.delivered_gpu_s,
        busy_gpu_s: offer.busy_gpu_s,
        down_gpu_s: offer.down_gpu_s,
        reports_without_event,
    }
}
