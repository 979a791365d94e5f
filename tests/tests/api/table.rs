//! The one data-driven check every bad-input case goes through: send, compare the answer with
//! the expectation, then prove that nothing changed that should not have.
//!
//! A [`Table`] remembers the journal head when it starts and counts the entries its cases are
//! expected to add; [`Table::finish`] sends one last, good transfer and checks that it lands
//! exactly at the index that count predicts, so a bad request that was proposed late (after
//! its answer) cannot go unnoticed.

use ledger::{Balances, CommandResult, JournalEntry};
use std::collections::BTreeMap;
use tests::{account_of, ApiError, Cluster, RawResponse, TransferSpec, MINT_ACCOUNT, PARTIES};

/// What a case must get back.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub status: u16,
    /// The error `code`; for a `200` answer, the reason of the first failed event (batch event
    /// failures are inside the outcome, the status is still 200).
    pub code: &'static str,
    /// Whether the ledger records the rejection as one journal entry.
    pub journaled: bool,
}

/// Refused by the node before anything is proposed: the journal must not move.
pub const fn refused(status: u16, code: &'static str) -> Expect {
    Expect {
        status,
        code,
        journaled: false,
    }
}

/// Rejected by the ledger and recorded: exactly one journal entry, no balance moves.
pub const fn recorded(status: u16, code: &'static str) -> Expect {
    Expect {
        status,
        code,
        journaled: true,
    }
}

/// Balances of the mint and the fixture parties' accounts, and the journal head index.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    head: u64,
    balances: BTreeMap<u128, Balances>,
}

pub struct Table<'a> {
    cluster: &'a Cluster,
    /// Where the journal and balances are read (linearizable reads, so a rejection the leader
    /// recorded is visible as soon as its answer came back).
    leader: u64,
    start_head: u64,
    /// Entries the cases so far were expected to add.
    entries_added: u64,
}

impl<'a> Table<'a> {
    pub fn new(cluster: &'a Cluster, leader: u64) -> Table<'a> {
        let mut table = Table {
            cluster,
            leader,
            start_head: 0,
            entries_added: 0,
        };
        table.start_head = table.observe().head;
        table
    }

    /// Runs one case: `send` makes the request; the answer must match `expect`, and afterwards
    /// the balances must be unchanged and the journal head moved by 0 or 1 as expected.
    pub fn check(
        &mut self,
        case: &str,
        expect: Expect,
        send: impl FnOnce() -> Result<RawResponse, ApiError>,
    ) {
        let before = self.observe();
        let answer = send().unwrap_or_else(|error| panic!("{case}: no answer: {error}"));
        let body = answer.json();
        let code = answer_code(&answer);
        assert_eq!(
            (answer.status, code.as_str()),
            (expect.status, expect.code),
            "{case}: answer {}",
            String::from_utf8_lossy(&answer.body)
        );
        if answer.status != 200 {
            let message = body
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            assert!(
                !message.is_empty(),
                "{case}: an error carries a human message: {body}"
            );
            assert!(
                answer
                    .content_type
                    .as_deref()
                    .is_some_and(|value| value.starts_with("application/json")),
                "{case}: errors are JSON, not {:?}",
                answer.content_type
            );
        }
        let after = self.observe();
        assert_eq!(after.balances, before.balances, "{case}: balances moved");
        let added = u64::from(expect.journaled);
        assert_eq!(
            after.head,
            before.head + added,
            "{case}: the journal head moved by {}",
            after.head - before.head
        );
        if expect.journaled {
            self.check_recorded(case, &answer, before.head + 1, expect.code);
        }
        self.entries_added += added;
    }

    /// Counts a good write a test made on purpose between cases.
    pub fn count_good_write(&mut self) {
        self.entries_added += 1;
    }

    /// Sends one good transfer and checks it is the next entry after exactly the entries the
    /// cases added: no bad request was proposed after its answer came back.
    pub fn finish(self) {
        let client = self.cluster.client();
        let spec = TransferSpec::new("alice", "bob", 1);
        let response = client
            .transfer_once(self.leader, &spec)
            .unwrap_or_else(|error| panic!("the closing transfer: {error}"));
        assert_eq!(
            response.journal_index,
            self.start_head + self.entries_added + 1,
            "the journal holds other entries than the cases recorded"
        );
    }

    /// The entry at `index` records the command with the rejection `code`, and a non-200
    /// answer names that entry.
    fn check_recorded(&self, case: &str, answer: &RawResponse, index: u64, code: &str) {
        let page = self
            .cluster
            .journal(self.leader, index, 1, "linearizable")
            .unwrap_or_else(|error| panic!("{case}: read journal entry {index}: {error}"));
        let entry: JournalEntry =
            serde_json::from_value(page.entries.first().cloned().unwrap_or_default())
                .unwrap_or_else(|error| {
                    panic!("{case}: journal entry {index} does not match the contract: {error}")
                });
        assert_eq!(entry.body.index, index);
        let recorded = match &entry.body.outcome.result {
            CommandResult::Rejected(reason) => reason.name(),
            CommandResult::Accepted(_) => entry
                .body
                .outcome
                .event_results()
                .first()
                .map_or("applied", |result| result.reason.name()),
        };
        assert_eq!(
            recorded, code,
            "{case}: journal entry {index} records another outcome"
        );
        if answer.status != 200 {
            let body = answer.json();
            assert_eq!(
                body["journal_index"], index,
                "{case}: the error names the entry that recorded it: {body}"
            );
            assert_eq!(
                body["journal_hash"],
                entry.hash.to_string(),
                "{case}: the error names the entry's hash: {body}"
            );
        }
    }

    fn observe(&self) -> Observed {
        let state = self
            .cluster
            .state(self.leader)
            .unwrap_or_else(|error| panic!("read the leader's state: {error}"));
        let accounts =
            std::iter::once(MINT_ACCOUNT).chain(PARTIES.iter().map(|party| account_of(party)));
        let balances = accounts
            .map(|id| {
                let account = self
                    .cluster
                    .account(self.leader, id, "linearizable")
                    .unwrap_or_else(|error| panic!("read account {id}: {error}"));
                (id, account.balances)
            })
            .collect();
        Observed {
            head: state.journal_head.index,
            balances,
        }
    }
}

/// The code an answer carries: the error `code`, or for `200` the first failed event's reason
/// (`"applied"` when everything applied).
fn answer_code(answer: &RawResponse) -> String {
    let body = answer.json();
    if answer.status != 200 {
        return body
            .get("code")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("(no code)")
            .to_owned();
    }
    let outcome: ledger::Outcome = match serde_json::from_value(body["outcome"].clone()) {
        Ok(outcome) => outcome,
        Err(error) => return format!("(200 without an outcome: {error})"),
    };
    if let Some(reason) = outcome.rejected() {
        return reason.name().to_owned();
    }
    outcome
        .event_results()
        .first()
        .map_or("applied", |result| result.reason.name())
        .to_owned()
}

/// A signed command as the JSON bytes a client would send.
pub fn json_bytes(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("commands serialise to JSON")
}
