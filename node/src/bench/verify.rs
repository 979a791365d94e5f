//! Checking a cluster bench's result: the replicas agree, and the journal they agree on is a
//! correct ledger.
//!
//! After a run the nodes must reach the same journal head and the same state hash. Then the
//! bench reads the whole journal from the leader (or, if the leader installed a snapshot and no
//! longer stores entry 1, from a node that does), replays it into a local `Ledger` (which
//! re-checks every signature and every entry's chained hash), and checks the invariants
//! (`Ledger::check_invariants`: per asset Σdebits = Σcredits, no guarded account negative,
//! every fill settled, no crossed book) and that the replica's state hash is the nodes'. The
//! bench then checks its own counts against the replayed ledger. This file only reads.

use super::cluster::BenchCluster;
use anyhow::{bail, Context};
use ledger::{JournalEntry, Ledger};
use serde::Deserialize;

/// Entries asked for per journal page (the node's page limit).
const JOURNAL_PAGE_ENTRIES: usize = 1_000;

#[derive(Deserialize)]
struct JournalPage {
    entries: Vec<JournalEntry>,
}

#[derive(Deserialize)]
struct StateView {
    journal_head: ledger::Head,
    state_hash: String,
}

/// What the check found.
pub(crate) struct Verified {
    pub(crate) ledger: Ledger,
    pub(crate) head: ledger::Head,
    /// Entry `n`'s hash and timestamp at position `n - 1`: what a bench compares the answers
    /// it was given against.
    pub(crate) entries: Vec<EntryMark>,
}

/// One replayed journal entry's hash and timestamp.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryMark {
    pub(crate) hash: ledger::Hash,
    pub(crate) timestamp_ns: u64,
}

impl Verified {
    /// The mark of entry `index`, if the journal has it.
    pub(crate) fn entry(&self, index: u64) -> Option<&EntryMark> {
        let position = usize::try_from(index.checked_sub(1)?).ok()?;
        self.entries.get(position)
    }
}

/// Waits for the nodes to converge, compares their state hashes, replays the journal from the
/// leader and checks it (see the module doc). Returns the replayed ledger.
pub(crate) async fn verify(cluster: &BenchCluster) -> anyhow::Result<Verified> {
    let head = cluster.converge().await?;
    let mut hashes = Vec::new();
    for id in cluster.ids() {
        let url = format!("{}/v1/state", cluster.url(id)?);
        let state: StateView = cluster.http.get_json(&url).await?;
        if state.journal_head != head {
            bail!(
                "node {id} moved on to entry {} after converging at {}",
                state.journal_head.index,
                head.index
            );
        }
        hashes.push((id, state.state_hash));
    }
    if hashes.iter().any(|(_, hash)| *hash != hashes[0].1) {
        bail!(
            "the nodes' state hashes differ at entry {}: {hashes:?}",
            head.index
        );
    }
    let source = replay_source(cluster).await?;
    let base = cluster.url(source)?;
    let (ledger, entries) = replay(cluster, &base, head.index).await?;
    if ledger.head() != head {
        bail!(
            "the replayed journal ends at entry {}, the nodes at {}",
            ledger.head().index,
            head.index
        );
    }
    let replayed_hash = ledger.state_hash().to_string();
    if replayed_hash != hashes[0].1 {
        bail!(
            "replaying the journal gives state hash {replayed_hash}, the nodes have {}",
            hashes[0].1
        );
    }
    ledger
        .check_invariants()
        .map_err(|why| anyhow::anyhow!("an invariant is broken after the run: {why}"))?;
    Ok(Verified {
        ledger,
        head,
        entries,
    })
}

/// The node to read the journal from: the leader, unless it installed a snapshot and so no
/// longer stores the first entries; then a node that still does.
async fn replay_source(cluster: &BenchCluster) -> anyhow::Result<u64> {
    let leader = cluster.leader().await?;
    let mut others = cluster.ids();
    others.retain(|id| *id != leader);
    let mut starts = Vec::new();
    for id in std::iter::once(leader).chain(others) {
        let first = cluster.first_journal_index(id).await?;
        if first <= 1 {
            return Ok(id);
        }
        starts.push(format!("node {id} from entry {first}"));
    }
    bail!(
        "no node stores the journal from entry 1 (each installed a snapshot): {}",
        starts.join(", ")
    )
}

/// Replays entries 1..=`last` from `base`'s journal into a new ledger, checking each hash;
/// returns the ledger and each entry's mark.
async fn replay(
    cluster: &BenchCluster,
    base: &str,
    last: u64,
) -> anyhow::Result<(Ledger, Vec<EntryMark>)> {
    let mut ledger = Ledger::new();
    let mut marks = Vec::with_capacity(usize::try_from(last).unwrap_or(0));
    let mut next = 1;
    while next <= last {
        let url =
            format!("{base}/v1/journal?from={next}&limit={JOURNAL_PAGE_ENTRIES}&consistency=local");
        let page: JournalPage = cluster
            .http
            .get_json(&url)
            .await
            .with_context(|| format!("reading the journal from entry {next}"))?;
        if page.entries.is_empty() {
            bail!("the journal page from entry {next} is empty");
        }
        // Replaying is CPU work: off the async threads.
        let (replayed, page_marks) = tokio::task::spawn_blocking(move || {
            let mut page_marks = Vec::with_capacity(page.entries.len());
            for entry in &page.entries {
                if entry.body.index != ledger.head().index + 1 {
                    return Err(format!(
                        "journal entry {} found where {} was expected",
                        entry.body.index,
                        ledger.head().index + 1
                    ));
                }
                let again = ledger.apply(&entry.body.command, entry.body.timestamp_ns);
                if again.hash != entry.hash {
                    return Err(format!(
                        "journal entry {}: replay gives hash {}, the node stored {}",
                        entry.body.index, again.hash, entry.hash
                    ));
                }
                page_marks.push(EntryMark {
                    hash: entry.hash,
                    timestamp_ns: entry.body.timestamp_ns,
                });
            }
            Ok((ledger, page_marks))
        })
        .await
        .context("the replay task stopped")?
        .map_err(anyhow::Error::msg)?;
        ledger = replayed;
        next += page_marks.len() as u64;
        marks.extend(page_marks);
    }
    Ok((ledger, marks))
}
