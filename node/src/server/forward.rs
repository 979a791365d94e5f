//! Follower-to-leader forwarding: who leads, and relaying a request to the leader's HTTP API.
//!
//! A follower never proposes. It sends the client's original method, path, query, content type
//! and body bytes to the leader's `http_addr` (from the Raft membership), marked with
//! [`FORWARDED_FROM_HEADER`], and relays the leader's status and body. A request that already
//! carries that header is never forwarded again, so a leader change cannot make requests
//! bounce between nodes. This file never looks inside a body and never retries a write on its
//! own: a retry is the client's decision, with the same ids.

use super::errors::ApiError;
use super::metrics::Metrics;
use crate::limits::{
    FORWARDED_RESPONSE_BYTES_MAX, FORWARD_CONNECT_TIMEOUT, FORWARD_DEADLINE,
    FORWARD_IDLE_CONNECTIONS_MAX, LEADER_WAIT,
};
use crate::raft_types::{NodeId, NodeInfo, Raft};
use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openraft::RaftMetrics;
use std::sync::Arc;

/// Marks a request a follower forwarded (its value is the follower's node id).
pub(crate) const FORWARDED_FROM_HEADER: &str = "x-cbank-forwarded-from";

/// Marks a response a follower relayed from the leader (its value is the leader's node id).
pub(crate) const FORWARDED_TO_HEADER: &str = "x-cbank-forwarded-to";

/// The leader's id and HTTP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaderAddr {
    pub id: NodeId,
    pub http_addr: String,
}

/// Who should handle a request that needs the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Leadership {
    /// This node leads: handle it here.
    Leader,
    /// Another node leads: forward it there.
    Follower(LeaderAddr),
    /// No usable leader: answer `503 unavailable` with this explanation.
    Unknown(String),
}

/// Who leads according to `metrics`.
pub(crate) fn leadership_of(metrics: &RaftMetrics<NodeId, NodeInfo>) -> Leadership {
    let Some(leader_id) = metrics.current_leader else {
        return Leadership::Unknown("no leader is known (an election may be under way)".to_owned());
    };
    if leader_id == metrics.id {
        return Leadership::Leader;
    }
    match metrics.membership_config.membership().get_node(&leader_id) {
        Some(node) if !node.http_addr.is_empty() => Leadership::Follower(LeaderAddr {
            id: leader_id,
            http_addr: node.http_addr.clone(),
        }),
        _ => Leadership::Unknown(format!(
            "the leader, node {leader_id}, has no known HTTP address"
        )),
    }
}

/// Who leads, waiting up to `LEADER_WAIT` for a leader to be known.
pub(crate) async fn leadership(raft: &Raft) -> Leadership {
    let waited = raft
        .wait(Some(LEADER_WAIT))
        .metrics(|metrics| metrics.current_leader.is_some(), "a known leader")
        .await;
    match waited {
        Ok(metrics) => leadership_of(&metrics),
        Err(_) => leadership_of(&raft.metrics().borrow()),
    }
}

/// The leader named by an openraft `ForwardToLeader`, if it names one with an address.
pub(crate) fn leader_from(
    forward: &openraft::error::ForwardToLeader<NodeId, NodeInfo>,
) -> Option<LeaderAddr> {
    match (forward.leader_id, &forward.leader_node) {
        (Some(id), Some(node)) if !node.http_addr.is_empty() => Some(LeaderAddr {
            id,
            http_addr: node.http_addr.clone(),
        }),
        _ => None,
    }
}

/// The 503 for a request this node cannot serve and cannot forward.
pub(crate) fn no_leader(why: &str) -> Response {
    ApiError::unavailable(format!("{why}; retry shortly")).into_response()
}

/// Sends requests on to the leader over pooled HTTP/1.1 connections.
pub(crate) struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    node_id: NodeId,
    metrics: Arc<Metrics>,
}

impl Forwarder {
    pub(crate) fn new(node_id: NodeId, metrics: Arc<Metrics>) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(FORWARD_CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(FORWARD_IDLE_CONNECTIONS_MAX)
            .build(connector);
        Forwarder {
            client,
            node_id,
            metrics,
        }
    }

    /// Forwards the request to `leader` and relays its answer; a failure to reach the leader is
    /// `503 unavailable`, no answer within `FORWARD_DEADLINE` is `504 timeout`.
    pub(crate) async fn forward(
        &self,
        leader: &LeaderAddr,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        match self.try_forward(leader, method, uri, headers, body).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    async fn try_forward(
        &self,
        leader: &LeaderAddr,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        if headers.contains_key(FORWARDED_FROM_HEADER) {
            return Err(ApiError::unavailable(
                "this node received a forwarded request but is not the leader (the leader \
                 changed); retry shortly",
            ));
        }
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        let target: Uri = format!("http://{}{path}", leader.http_addr)
            .parse()
            .map_err(|error| {
                ApiError::unavailable(format!(
                    "the leader's HTTP address {:?} is not usable: {error}",
                    leader.http_addr
                ))
            })?;
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .header(FORWARDED_FROM_HEADER, self.node_id);
        if let Some(content_type) = headers.get(CONTENT_TYPE) {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let request = request.body(Full::new(body)).map_err(|error| {
            ApiError::unavailable(format!("could not build the forwarded request: {error}"))
        })?;
        self.metrics.forwarded_requests_total.inc();
        tracing::debug!(leader = leader.id, %uri, "forwarding to the leader");
        let deadline = tokio::time::Instant::now() + FORWARD_DEADLINE;
        let unreachable = |error: &dyn std::fmt::Display| {
            ApiError::unavailable(format!(
                "the leader, node {} at {}, cannot be reached: {error}",
                leader.id, leader.http_addr
            ))
        };
        let timed_out = || {
            ApiError::timeout(format!(
                "the leader, node {}, did not answer within {} s; the command may still \
                 apply: retry with the same ids",
                leader.id,
                FORWARD_DEADLINE.as_secs()
            ))
        };
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(unreachable(&error)),
            Err(_) => return Err(timed_out()),
        };
        let (parts, body) = response.into_parts();
        let collected = tokio::time::timeout_at(
            deadline,
            Limited::new(body, FORWARDED_RESPONSE_BYTES_MAX).collect(),
        )
        .await;
        let bytes = match collected {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) => return Err(unreachable(&error)),
            Err(_) => return Err(timed_out()),
        };
        let mut relayed = Response::new(Body::from(bytes));
        *relayed.status_mut() = parts.status;
        if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
            relayed
                .headers_mut()
                .insert(CONTENT_TYPE, content_type.clone());
        }
        // The leader's HTTP address (spec/http.md); an address that is not a valid header
        // value (it came from the membership, so it should be) is left out, never a panic.
        if let Ok(value) = HeaderValue::from_str(&leader.http_addr) {
            relayed.headers_mut().insert(FORWARDED_TO_HEADER, value);
        }
        Ok(relayed)
    }
}
