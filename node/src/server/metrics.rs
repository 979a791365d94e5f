//! The node's Prometheus metrics: one registry per node (tests run several nodes in one
//! process), rendered as Prometheus text at `GET /metrics`.
//!
//! Counters and histograms are updated where things happen (the proposer, the HTTP layer);
//! gauges of Raft state are read from openraft's metrics at scrape time. This file never
//! blocks a request on a metric and never panics: a metric that cannot be registered is a bug
//! found by the unit test below.

use crate::raft_types::{NodeId, NodeInfo};
use openraft::{RaftMetrics, ServerState};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::HashMap;

/// Every metric name the node exports (each also carries the label `node_id`).
pub const METRIC_NAMES: &[&str] = &[
    "cbank_raft_applied_index",
    "cbank_raft_last_log_index",
    "cbank_raft_term",
    "cbank_raft_leader_id",
    "cbank_raft_state",
    "cbank_journal_head_index",
    "cbank_proposal_queue_depth",
    "cbank_proposals_in_flight",
    "cbank_proposal_commands",
    "cbank_commit_latency_seconds",
    "cbank_commands_total",
    "cbank_http_responses_total",
    "cbank_forwarded_requests_total",
];

/// The server states openraft reports, as label values of `cbank_raft_state`.
const SERVER_STATES: [(ServerState, &str); 5] = [
    (ServerState::Leader, "leader"),
    (ServerState::Follower, "follower"),
    (ServerState::Candidate, "candidate"),
    (ServerState::Learner, "learner"),
    (ServerState::Shutdown, "shutdown"),
];

/// The role name of a server state, as `GET /v1/cluster` and the metrics write it.
pub(crate) fn role_name(state: ServerState) -> &'static str {
    SERVER_STATES
        .iter()
        .find(|(known, _)| *known == state)
        .map_or("shutdown", |(_, name)| name)
}

/// The metrics of one node.
pub(crate) struct Metrics {
    registry: Registry,
    applied_index: IntGauge,
    last_log_index: IntGauge,
    term: IntGauge,
    leader_id: IntGauge,
    state: IntGaugeVec,
    journal_head_index: IntGauge,
    /// Signed commands waiting in the proposer's queue.
    pub queue_depth: IntGauge,
    /// Proposals handed to Raft and not yet answered.
    pub proposals_in_flight: IntGauge,
    /// Commands per proposal (group commit size).
    pub proposal_commands: Histogram,
    /// From a command entering the proposer's queue to its `Applied` answer.
    pub commit_latency_seconds: Histogram,
    /// Commands applied through this node, by result (`accepted` or `rejected`).
    pub commands_total: IntCounterVec,
    /// HTTP responses by status code.
    pub http_responses_total: IntCounterVec,
    /// Requests this node forwarded to the leader.
    pub forwarded_requests_total: IntCounter,
}

impl Metrics {
    pub(crate) fn new(node_id: NodeId) -> Result<Metrics, prometheus::Error> {
        let labels = HashMap::from([("node_id".to_owned(), node_id.to_string())]);
        let registry = Registry::new_custom(None, Some(labels))?;
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let applied_index = gauge(
            "cbank_raft_applied_index",
            "Index of the last Raft log entry applied to the state machine.",
        )?;
        let last_log_index = gauge(
            "cbank_raft_last_log_index",
            "Index of the last Raft log entry stored on this node.",
        )?;
        let term = gauge("cbank_raft_term", "Current Raft term.")?;
        let leader_id = gauge(
            "cbank_raft_leader_id",
            "Id of the leader this node knows of (0 when none).",
        )?;
        let journal_head_index = gauge(
            "cbank_journal_head_index",
            "Index of the last journal entry applied on this node.",
        )?;
        let queue_depth = gauge(
            "cbank_proposal_queue_depth",
            "Signed commands waiting in the proposer's queue.",
        )?;
        let proposals_in_flight = gauge(
            "cbank_proposals_in_flight",
            "Proposals handed to Raft and not yet applied.",
        )?;
        let state = IntGaugeVec::new(
            Opts::new(
                "cbank_raft_state",
                "1 for the Raft role this node is in, 0 for the others.",
            ),
            &["state"],
        )?;
        registry.register(Box::new(state.clone()))?;
        let proposal_commands = Histogram::with_opts(
            HistogramOpts::new(
                "cbank_proposal_commands",
                "Signed commands grouped into one Raft entry.",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
        )?;
        registry.register(Box::new(proposal_commands.clone()))?;
        let commit_latency_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "cbank_commit_latency_seconds",
                "Time from a command entering the proposal queue to its applied answer.",
            )
            .buckets(prometheus::exponential_buckets(0.000_25, 2.0, 16)?),
        )?;
        registry.register(Box::new(commit_latency_seconds.clone()))?;
        let commands_total = IntCounterVec::new(
            Opts::new(
                "cbank_commands_total",
                "Commands proposed by this node and applied, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(commands_total.clone()))?;
        let http_responses_total = IntCounterVec::new(
            Opts::new("cbank_http_responses_total", "HTTP responses by status."),
            &["status"],
        )?;
        registry.register(Box::new(http_responses_total.clone()))?;
        let forwarded_requests_total = IntCounter::new(
            "cbank_forwarded_requests_total",
            "Requests this node forwarded to the leader.",
        )?;
        registry.register(Box::new(forwarded_requests_total.clone()))?;
        Ok(Metrics {
            registry,
            applied_index,
            last_log_index,
            term,
            leader_id,
            state,
            journal_head_index,
            queue_depth,
            proposals_in_flight,
            proposal_commands,
            commit_latency_seconds,
            commands_total,
            http_responses_total,
            forwarded_requests_total,
        })
    }

    /// Refreshes the Raft gauges and renders every metric as Prometheus text.
    pub(crate) fn render(
        &self,
        raft: &RaftMetrics<NodeId, NodeInfo>,
        journal_head_index: u64,
        queue_depth: usize,
    ) -> Result<String, prometheus::Error> {
        let signed = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.applied_index
            .set(signed(raft.last_applied.map_or(0, |log_id| log_id.index)));
        self.last_log_index
            .set(signed(raft.last_log_index.unwrap_or(0)));
        self.term.set(signed(raft.current_term));
        self.leader_id.set(signed(raft.current_leader.unwrap_or(0)));
        for (state, name) in SERVER_STATES {
            self.state
                .with_label_values(&[name])
                .set(i64::from(raft.state == state));
        }
        self.journal_head_index.set(signed(journal_head_index));
        self.queue_depth
            .set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        String::from_utf8(text).map_err(|error| prometheus::Error::Msg(error.to_string()))
    }
}

/// The content type of Prometheus text.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_metric_is_rendered_with_the_node_label() {
        let metrics = Metrics::new(7).expect("the metrics register");
        metrics.proposal_commands.observe(3.0);
        metrics.commit_latency_seconds.observe(0.002);
        metrics
            .commands_total
            .with_label_values(&["accepted"])
            .inc();
        metrics
            .http_responses_total
            .with_label_values(&["200"])
            .inc();
        let raft = RaftMetrics::new_initial(7);
        let text = metrics.render(&raft, 5, 2).expect("render");
        for name in METRIC_NAMES {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(
            text.contains("cbank_journal_head_index{node_id=\"7\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("cbank_proposal_queue_depth{node_id=\"7\"} 2"),
            "{text}"
        );
        assert_eq!(role_name(ServerState::Candidate), "candidate");
    }
}
