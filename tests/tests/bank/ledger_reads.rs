//! Reads of the bank's state through the HTTP API, bounded and tolerant of a leader change:
//! each read is linearizable and goes to the current leader, retried while the cluster has none.
//!
//! [`meter_reports`] reads the journal itself: the accepted `report_meter` commands of an offer,
//! in the order applied. It is the ledger's own record of every GPU-second credited, so a test
//! can check that the reports tile the window with no overlap and no gap.

use ledger::bank::{Allocation, MeterReport, Offer, Withdrawal};
use ledger::statement::Statement;
use ledger::{Account, Command, CommandResult, Effect, JournalEntry, PublicKey};
use serde::de::DeserializeOwned;
use tests::Cluster;

/// `GET <leader><path>` with a linearizable read, retried (bounded) while no leader answers.
pub fn read<T: DeserializeOwned>(cluster: &mut Cluster, path: &str) -> T {
    cluster.read(path)
}

pub fn account(cluster: &mut Cluster, id: u128) -> Account {
    read(cluster, &format!("/v1/accounts/{id}"))
}

pub fn offer(cluster: &mut Cluster, id: u128) -> Offer {
    read(cluster, &format!("/v1/offers/{id}"))
}

pub fn withdrawal(cluster: &mut Cluster, id: u128) -> Withdrawal {
    read(cluster, &format!("/v1/withdrawals/{id}"))
}

pub fn allocation(cluster: &mut Cluster, id: u128) -> Allocation {
    read(cluster, &format!("/v1/allocations/{id}"))
}

/// The all-time statement of an account.
pub fn statement(cluster: &mut Cluster, id: u128) -> Statement {
    read(cluster, &format!("/v1/accounts/{id}/statement"))
}

/// One accepted `report_meter` of the journal.
#[derive(Clone, Debug)]
pub struct JournaledReport {
    pub journal_index: u64,
    pub report: MeterReport,
    /// Accepted as an exact repeat of an earlier report (nothing credited again).
    pub repeated: bool,
    /// The key that signed it.
    pub key: PublicKey,
}

/// Every accepted `report_meter` of `offer_id` in the journal, in journal order.
pub fn meter_reports(cluster: &mut Cluster, offer_id: u128) -> Vec<JournaledReport> {
    const PAGE: u32 = 1_000;
    let mut reports = Vec::new();
    let mut from = 1u64;
    // Bounded: tests journal far fewer than 10^6 entries.
    for _ in 0..1_000 {
        let page: serde_json::Value =
            read(cluster, &format!("/v1/journal?from={from}&limit={PAGE}"));
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            return reports;
        }
        for value in entries {
            let entry: JournalEntry = serde_json::from_value(value).unwrap_or_else(|error| {
                panic!("a journal entry does not match the contract: {error}")
            });
            from = entry.body.index + 1;
            let Command::ReportMeter { report } = &entry.body.command.body.command else {
                continue;
            };
            if report.offer_id != offer_id {
                continue;
            }
            if let CommandResult::Accepted(Effect::MeterRecorded { repeated }) =
                entry.body.outcome.result
            {
                reports.push(JournaledReport {
                    journal_index: entry.body.index,
                    report: report.clone(),
                    repeated,
                    key: entry.body.command.body.key,
                });
            }
        }
    }
    panic!("the journal has more than a million entries")
}
