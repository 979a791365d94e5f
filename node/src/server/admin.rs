//! Administration: cluster init, learners, promotion, removal, and fault injection.
//!
//! Every route needs `authorization: Bearer <token>` with the token in this node's
//! `admin.token`. Membership changes are made on the leader only (a follower answers
//! `503 unavailable` naming the leader, since each node has its own token and a forwarded
//! request could not be authorised there) and one at a time, under `Api::membership_lock`.
//! This file never touches the ledger and never changes membership without the token.

use super::errors::{code, ApiError};
use super::extract::JsonBody;
use super::forward::{leadership, Leadership};
use super::reads::cluster_view;
use super::routes::ApiState;
use crate::limits::{INIT_MEMBERS_MAX, MEMBERSHIP_CHANGE_DEADLINE, NODE_ADDRESS_BYTES_MAX};
use crate::raft_types::{NodeId, NodeInfo};
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::ChangeMembers;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Compares two strings in time that depends only on their lengths.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// Proof that the request carries this node's admin token. As an extractor it runs before the
/// body is read, so a caller without the token learns nothing about the body's schema.
pub(crate) struct Admin;

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &ApiState) -> Result<Admin, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(token) if same_secret(token.as_bytes(), api.admin_token.as_bytes()) => Ok(Admin),
            _ => Err(ApiError::admin_token_invalid()),
        }
    }
}

/// A node named in an admin request.
#[derive(Debug, Deserialize)]
pub(crate) struct Member {
    pub id: NodeId,
    pub raft_addr: String,
    pub http_addr: String,
}

impl Member {
    fn node_info(&self) -> Result<NodeInfo, ApiError> {
        for (what, address) in [
            ("raft_addr", &self.raft_addr),
            ("http_addr", &self.http_addr),
        ] {
            if address.is_empty()
                || address.len() > NODE_ADDRESS_BYTES_MAX
                || !address.contains(':')
            {
                return Err(ApiError::invalid_parameter(format!(
                    "{what} of node {} must be host:port (at most {NODE_ADDRESS_BYTES_MAX} \
                     bytes), not {address:?}",
                    self.id
                )));
            }
        }
        Ok(NodeInfo {
            raft_addr: self.raft_addr.clone(),
            http_addr: self.http_addr.clone(),
        })
    }
}

/// The body of `POST /v1/admin/cluster/init`.
#[derive(Debug, Deserialize)]
pub(crate) struct InitRequest {
    #[serde(default)]
    pub members: Vec<Member>,
}

/// The body of `promote` and `remove`.
#[derive(Debug, Deserialize)]
pub(crate) struct NodeRequest {
    pub id: NodeId,
}

/// The body of `POST /v1/admin/faults`.
#[derive(Debug, Deserialize)]
pub(crate) struct FaultsRequest {
    pub isolate: bool,
}

/// The answer of a successful membership call: the cluster as this node now sees it.
fn cluster_answer(api: &ApiState) -> Response {
    Json(cluster_view(api)).into_response()
}

/// Membership changes are made on the leader: anywhere else, say who leads.
async fn require_leader(api: &ApiState) -> Result<(), ApiError> {
    match leadership(&api.raft).await {
        Leadership::Leader => Ok(()),
        Leadership::Follower(leader) => Err(not_leader(Some(leader.id), Some(&leader.http_addr))),
        Leadership::Unknown(why) => Err(ApiError::unavailable(format!("{why}; retry shortly"))),
    }
}

fn not_leader(leader_id: Option<NodeId>, http_addr: Option<&str>) -> ApiError {
    let message = match (leader_id, http_addr) {
        (Some(id), Some(addr)) => format!(
            "membership changes are made on the leader: send this to node {id} at {addr} \
             with that node's admin token"
        ),
        _ => {
            "membership changes are made on the leader, and none is known; retry shortly".to_owned()
        }
    };
    ApiError::unavailable(message)
        .with_field("leader_id", leader_id)
        .with_field("leader_http_addr", http_addr)
}

/// The error for a failed membership change.
fn change_error(error: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> ApiError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => not_leader(
            to.leader_id,
            to.leader_node.as_ref().map(|node| node.http_addr.as_str()),
        ),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => ApiError::new(
            StatusCode::CONFLICT,
            code::MEMBERSHIP_CHANGE_REFUSED,
            format!("Raft refused the membership change: {error}"),
        ),
        RaftError::Fatal(fatal) => ApiError::unavailable(format!("Raft has stopped: {fatal}")),
    }
}

/// Runs one membership change under the lock, within one deadline that covers waiting for
/// the lock too.
async fn change_membership<F, T>(api: &ApiState, change: F) -> Result<(), ApiError>
where
    F: std::future::Future<
        Output = Result<T, RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>>,
    >,
{
    let locked_change = async {
        let _one_at_a_time = api.membership_lock.lock().await;
        change.await
    };
    match tokio::time::timeout(MEMBERSHIP_CHANGE_DEADLINE, locked_change).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(change_error(error)),
        Err(_) => Err(ApiError::timeout(format!(
            "the membership change did not finish within {} s; it may still complete: check \
             GET /v1/cluster",
            MEMBERSHIP_CHANGE_DEADLINE.as_secs()
        ))),
    }
}

/// `POST /v1/admin/cluster/init`: starts a cluster with the given voters, or with just this
/// node when none are named.
pub(crate) async fn init(
    State(api): State<ApiState>,
    _admin: Admin,
    body: JsonBody<InitRequest>,
) -> Response {
    let result = async {
        let members = body.value.members;
        if members.len() > INIT_MEMBERS_MAX {
            return Err(ApiError::invalid_parameter(format!(
                "at most {INIT_MEMBERS_MAX} members, not {}",
                members.len()
            )));
        }
        let mut nodes = BTreeMap::new();
        for member in &members {
            if nodes.insert(member.id, member.node_info()?).is_some() {
                return Err(ApiError::invalid_parameter(format!(
                    "node {} is named twice",
                    member.id
                )));
            }
        }
        if nodes.is_empty() {
            nodes.insert(api.node_id, api.node_info.clone());
        }
        let _one_at_a_time = api.membership_lock.lock().await;
        match api.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(error))) => Err(ApiError::new(
                StatusCode::CONFLICT,
                code::CLUSTER_ALREADY_INITIALISED,
                format!("this node already belongs to a cluster: {error}"),
            )),
            Err(RaftError::APIError(InitializeError::NotInMembers(error))) => {
                Err(ApiError::invalid_parameter(format!(
                    "this node (id {}) must be one of the members: {error}",
                    api.node_id
                )))
            }
            Err(RaftError::Fatal(fatal)) => {
                Err(ApiError::unavailable(format!("Raft has stopped: {fatal}")))
            }
        }
    }
    .await;
    match result {
        Ok(()) => cluster_answer(&api),
        Err(error) => error.into_response(),
    }
}

/// `POST /v1/admin/cluster/learners`: adds a learner and waits until it has caught up.
pub(crate) async fn add_learner(
    State(api): State<ApiState>,
    _admin: Admin,
    body: JsonBody<Member>,
) -> Response {
    let result = async {
        let member = body.value;
        let node = member.node_info()?;
        require_leader(&api).await?;
        change_membership(&api, api.raft.add_learner(member.id, node, true)).await
    }
    .await;
    match result {
        Ok(()) => cluster_answer(&api),
        Err(error) => error.into_response(),
    }
}

/// The voters and learners of the membership this node knows.
fn members(api: &ApiState) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
    let metrics = api.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    (
        membership.voter_ids().collect(),
        membership.learner_ids().collect(),
    )
}

/// `POST /v1/admin/cluster/promote`: makes a learner a voter (a voter already is: no change).
pub(crate) async fn promote(
    State(api): State<ApiState>,
    _admin: Admin,
    body: JsonBody<NodeRequest>,
) -> Response {
    let result = async {
        let id = body.value.id;
        require_leader(&api).await?;
        let (voters, learners) = members(&api);
        if voters.contains(&id) {
            return Ok(());
        }
        if !learners.contains(&id) {
            return Err(ApiError::not_found(format!(
                "node {id} is not a learner of this cluster; add it as a learner first"
            )));
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        change_membership(&api, api.raft.change_membership(change, false)).await
    }
    .await;
    match result {
        Ok(()) => cluster_answer(&api),
        Err(error) => error.into_response(),
    }
}

/// `POST /v1/admin/cluster/remove`: removes a voter or a learner from the cluster.
pub(crate) async fn remove(
    State(api): State<ApiState>,
    _admin: Admin,
    body: JsonBody<NodeRequest>,
) -> Response {
    let result = async {
        let id = body.value.id;
        require_leader(&api).await?;
        let (voters, learners) = members(&api);
        let change = if voters.contains(&id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else if learners.contains(&id) {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Err(ApiError::not_found(format!(
                "node {id} is not a member of this cluster"
            )));
        };
        // `retain = false`: a removed voter leaves the cluster instead of staying a learner.
        change_membership(&api, api.raft.change_membership(change, false)).await
    }
    .await;
    match result {
        Ok(()) => cluster_answer(&api),
        Err(error) => error.into_response(),
    }
}

/// `POST /v1/admin/faults`: cuts (or heals) all Raft traffic to and from this node.
pub(crate) async fn faults(
    State(api): State<ApiState>,
    _admin: Admin,
    body: JsonBody<FaultsRequest>,
) -> Response {
    if !api.enable_fault_admin {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            code::FAULT_ADMIN_DISABLED,
            "fault injection is disabled on this node; start it with fault administration \
             enabled",
        )
        .into_response();
    }
    let isolate = body.value.isolate;
    if isolate {
        api.faults.isolate(api.node_id);
    } else {
        api.faults.heal();
    }
    tracing::warn!(
        node_id = api.node_id,
        isolate,
        "fault injection changed by the admin API"
    );
    Json(json!({ "isolated": isolate })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn member_addresses_must_look_like_host_and_port() {
        let member = |raft_addr: &str| Member {
            id: 1,
            raft_addr: raft_addr.to_owned(),
            http_addr: "127.0.0.1:8080".to_owned(),
        };
        assert!(member("127.0.0.1:7000").node_info().is_ok());
        assert!(member("").node_info().is_err());
        assert!(member("nohostport").node_info().is_err());
        assert!(member(&"x:".repeat(200)).node_info().is_err());
    }
}
