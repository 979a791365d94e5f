//! Journal backfill: a node that caught up by installing a snapshot keeps the journal it
//! held from entry 1 and stores the snapshot's successors, with a gap between them up to the
//! snapshot's head (`AppliedState::journal_gap`). This fetches the gap from its peers, checks
//! that the entries chain on from the entry before the gap to the snapshot's head, and stores
//! them.
//!
//! Without it, once every node had installed a snapshot no node held the start of the
//! journal, and no auditor could export it: `cbank sim` found that (seed 11), and then that an
//! install must not delete the journal a node kept, since a peer may need it to fill its own
//! gap (seed 2003277; `spec/simulation.md`). A node trusts nothing it fetches: every entry is
//! checked against the hash chain, which ends at the snapshot head the node already holds, so
//! a peer can only fail to help, never plant an entry. Pages from several peers may fill one
//! gap. Meanwhile the node serves the journal it has (before the gap, and from
//! `first_journal_index` on) and says so when asked for an entry in the gap.
//!
//! Peers are asked over HTTP (`GET /v1/journal/raw`, their own stored journal, never
//! forwarded); the simulator supplies its own [`JournalSource`].

use crate::limits::{BACKFILL_PAGE_ENTRIES, BACKFILL_RETRY, FORWARD_DEADLINE};
use crate::raft_types::{NodeId, NodeInfo, Raft};
use crate::storage::{AppliedState, JOURNAL_ENTRY_BYTES_MAX, JOURNAL_PAGE_BYTES_MAX};
use axum::body::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ledger::journal::verify_chain;
use ledger::{codec, Head, JournalEntry};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// Journal entries fetched from a peer, or why not.
pub(crate) type Fetched = Pin<Box<dyn Future<Output = Result<Vec<JournalEntry>, String>> + Send>>;

/// Where a node fetches journal entries from.
pub(crate) trait JournalSource: Send + Sync {
    /// Up to `limit` entries of `peer`'s stored journal from index `from` on.
    fn fetch(&self, peer: NodeId, info: &NodeInfo, from: u64, limit: usize) -> Fetched;
}

/// Fetches from peers' `GET /v1/journal/raw`.
pub(crate) struct HttpJournalSource {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpJournalSource {
    pub(crate) fn new() -> HttpJournalSource {
        HttpJournalSource {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }
}

#[derive(Deserialize)]
struct RawPage {
    entries: Vec<String>,
}

/// Bytes of one page we agree to read: a peer answers about `JOURNAL_PAGE_BYTES_MAX` of
/// entries (at least one), hex-encoded, in JSON.
const PAGE_BYTES_MAX: usize = 2 * (JOURNAL_PAGE_BYTES_MAX + JOURNAL_ENTRY_BYTES_MAX) + 4096;

impl JournalSource for HttpJournalSource {
    fn fetch(&self, peer: NodeId, info: &NodeInfo, from: u64, limit: usize) -> Fetched {
        let client = self.client.clone();
        let url = format!(
            "http://{}/v1/journal/raw?from={from}&limit={limit}",
            info.http_addr
        );
        Box::pin(async move {
            let uri = url
                .parse()
                .map_err(|error| format!("node {peer}'s address: {error}"))?;
            let request = async {
                let response = client
                    .get(uri)
                    .await
                    .map_err(|error| format!("node {peer}: {error}"))?;
                let status = response.status();
                let body = Limited::new(response.into_body(), PAGE_BYTES_MAX)
                    .collect()
                    .await
                    .map_err(|error| format!("node {peer}'s answer: {error}"))?
                    .to_bytes();
                if !status.is_success() {
                    return Err(format!(
                        "node {peer} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                let page: RawPage = serde_json::from_slice(&body)
                    .map_err(|error| format!("node {peer}'s page: {error}"))?;
                page.entries
                    .iter()
                    .map(|text| {
                        let bytes = hex::decode(text)
                            .map_err(|error| format!("node {peer}'s entry: {error}"))?;
                        codec::decode(&bytes, JOURNAL_ENTRY_BYTES_MAX)
                            .map_err(|error| format!("node {peer}'s entry: {error}"))
                    })
                    .collect()
            };
            tokio::time::timeout(FORWARD_DEADLINE, request)
                .await
                .map_err(|_| format!("node {peer} did not answer in time"))?
        })
    }
}

/// Fills the journal gap from `peer`, page by page, from where it starts now (a fill from
/// another peer may have got part of the way). Each page must continue the chain from the
/// entry before the gap (entry 1 follows the empty head), and the last must end at the
/// anchor.
async fn fill_from(
    applied: &AppliedState,
    source: &dyn JournalSource,
    peer: NodeId,
    info: &NodeInfo,
) -> Result<(), String> {
    loop {
        let Some((gap_start, anchor)) = applied.journal_gap().map_err(|error| error.to_string())?
        else {
            return Ok(());
        };
        let mut head = match gap_start.checked_sub(1).filter(|&index| index > 0) {
            None => Head::default(),
            Some(index) => applied
                .stored_head(index)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("journal entry {index}, before the gap, is not stored"))?,
        };
        let wanted = usize::try_from(anchor.index + 1 - gap_start)
            .unwrap_or(usize::MAX)
            .min(BACKFILL_PAGE_ENTRIES);
        let mut entries = source.fetch(peer, info, gap_start, wanted).await?;
        entries.truncate(wanted);
        if entries.is_empty() {
            return Err(format!("node {peer} has no journal entry {gap_start}"));
        }
        head = verify_chain(head, &entries)
            .map_err(|error| format!("node {peer}'s journal does not chain: {error}"))?;
        let complete = head.index == anchor.index;
        if complete && head != anchor {
            return Err(format!(
                "node {peer}'s journal reaches entry {} with another hash than the installed \
                 snapshot's",
                anchor.index
            ));
        }
        let applied = applied.clone();
        let stored = crate::blocking::run(move || {
            applied
                .fill_journal_gap(gap_start, anchor, &entries, complete)
                .map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| format!("storing the fetched journal: {error}"))??;
        if !stored {
            return Err("the gap changed meanwhile (another snapshot was installed)".to_owned());
        }
    }
}

/// Until `stop` turns true: every `BACKFILL_RETRY`, if this node lacks the start of the
/// journal, fetches it from the first peer that has it.
pub(crate) async fn run(
    raft: Raft,
    applied: AppliedState,
    source: Arc<dyn JournalSource>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            () = tokio::time::sleep(BACKFILL_RETRY) => {}
        }
        let anchor = match applied.journal_gap() {
            Ok(Some((_, anchor))) => anchor,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "cannot read the journal gap");
                continue;
            }
        };
        let metrics = raft.metrics().borrow().clone();
        let peers: Vec<(NodeId, NodeInfo)> = metrics
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != metrics.id)
            .map(|(id, info)| (*id, info.clone()))
            .collect();
        for (peer, info) in peers {
            match fill_from(&applied, source.as_ref(), peer, &info).await {
                Ok(()) => {
                    tracing::info!(
                        peer,
                        through = anchor.index,
                        "fetched the journal before the installed snapshot"
                    );
                    break;
                }
                Err(why) => tracing::debug!(peer, %why, "cannot fetch the journal from this peer"),
            }
        }
    }
}
