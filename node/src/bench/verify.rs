//! Checking a cluster bench's result: the replicas agree, and the journal they agree on is a
//! correct ledger.
//!
//! After a run the nodes must reach the same journal head and the same state hash. Then the
//! bench reads the whole journal from the leader, replays it into a local `Ledger` (which
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
    let leader = cluster.leader().await?;
    let base = cluster.url(leader)?;
    let ledger = replay(cluster, &base, head.index).await?;
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
    Ok(Verified { ledger, head })
}

/// Replays entries 1..=`last` from `base`'s journal into a new ledger, checking each hash.
async fn replay(cluster: &BenchCluster, base: &str, last: u64) -> anyhow::Result<Ledger> {
    let mut ledger = Ledger::new();
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
        let (replayed, applied) = tokio::task::spawn_blocking(move || {
            let mut applied = 0u64;
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
                applied += 1;
            }
            Ok((ledger, applied))
        })
        .await
        .context("the replay task stopped")?
        .map_err(anyhow::Error::msg)?;
        ledger = replayed;
        next += applied;
    }
    Ok(ledger)
}
