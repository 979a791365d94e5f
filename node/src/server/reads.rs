//! Read handlers: health, cluster, state, head, journal, accounts, transfers, parties.
//!
//! Reads of the ledger take `?consistency=linearizable` (the default) or `local`. A
//! linearizable read on the leader first confirms leadership with a quorum and waits until the
//! read point is applied (`ensure_linearizable`); on a follower it is forwarded to the leader.
//! A local read answers from this node's applied state at once. `health`, `cluster` and `state`
//! describe this node and are always local. This file never writes anything.

use super::errors::ApiError;
use super::extract::{parse_bounded, parse_u128, Params, PathText};
use super::forward::{leader_from, leadership, no_leader, Leadership};
use super::metrics::role_name;
use super::routes::ApiState;
use crate::limits::{
    ACCOUNT_TRANSFERS_PAGE_DEFAULT, ACCOUNT_TRANSFERS_PAGE_MAX, JOURNAL_PAGE_ENTRIES_DEFAULT,
    JOURNAL_PAGE_ENTRIES_MAX, READ_DEADLINE,
};
use crate::storage::ReadError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::{Checkpoint, PartyId};
use openraft::error::{CheckIsLeaderError, RaftError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Consistency {
    /// Reflects every write acknowledged before the read began.
    #[default]
    Linearizable,
    /// Whatever this node has applied.
    Local,
}

/// Query parameters every ledger read takes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReadParams {
    #[serde(default)]
    pub(super) consistency: Consistency,
}

/// Query parameters of the paged reads (numbers are parsed here, for clear errors).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageParams {
    #[serde(default)]
    consistency: Consistency,
    after: Option<String>,
    from: Option<String>,
    limit: Option<String>,
}

/// Makes a read as fresh as `consistency` asks. `Err` carries the whole answer: the leader's
/// relayed response (on a follower) or an error.
pub(super) async fn ensure_fresh(
    api: &ApiState,
    consistency: Consistency,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Response> {
    if consistency == Consistency::Local {
        return Ok(());
    }
    let forward = |leader| async move {
        api.forwarder
            .forward(&leader, Method::GET, uri, headers, Bytes::new())
            .await
    };
    match leadership(&api.raft).await {
        Leadership::Leader => {}
        Leadership::Follower(leader) => return Err(forward(leader).await),
        Leadership::Unknown(why) => return Err(no_leader(&why)),
    }
    match tokio::time::timeout(READ_DEADLINE, api.raft.ensure_linearizable()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to)))) => {
            match leader_from(&to) {
                Some(leader) => Err(forward(leader).await),
                None => Err(no_leader("this node is no longer the leader")),
            }
        }
        Ok(Err(error)) => Err(ApiError::unavailable(format!(
            "the leader could not confirm its leadership with a quorum: {error}"
        ))
        .into_response()),
        Err(_) => Err(ApiError::timeout(format!(
            "the leader could not confirm its leadership within {} s",
            READ_DEADLINE.as_secs()
        ))
        .into_response()),
    }
}

/// A value as a JSON response.
pub(super) fn json_answer(value: &impl Serialize) -> Response {
    match serde_json::to_value(value) {
        Ok(value) => Json(value).into_response(),
        Err(error) => ApiError::internal(format!("encoding the answer: {error}")).into_response(),
    }
}

pub(super) fn storage_error(error: ReadError) -> ApiError {
    match error {
        ReadError::JournalNotStored {
            first_journal_index,
        } => ApiError::not_found(format!(
            "this node stores the journal from index {first_journal_index} on (earlier \
             entries came in a snapshot); ask another node or start at {first_journal_index}"
        ))
        .with_field("first_index", first_journal_index),
        ReadError::CursorTransferUnknown { transfer_id } => ApiError::invalid_parameter(format!(
            "after names transfer {transfer_id}, which does not exist"
        )),
        ReadError::Storage(why) => ApiError::internal(format!("reading the applied state: {why}")),
    }
}

/// `GET /v1/health`.
pub(crate) async fn health(State(api): State<ApiState>) -> Response {
    Json(json!({ "status": "ok", "node_id": api.node_id })).into_response()
}

/// The JSON of `GET /v1/cluster`, also returned by the admin routes.
pub(crate) fn cluster_view(api: &ApiState) -> Value {
    let metrics = api.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: std::collections::BTreeSet<_> = membership.voter_ids().collect();
    let members: Vec<Value> = membership
        .nodes()
        .map(|(id, node)| {
            json!({
                "id": id,
                "raft_addr": node.raft_addr,
                "http_addr": node.http_addr,
                "voter": voters.contains(id),
            })
        })
        .collect();
    let head = api.applied.read(|ledger| ledger.head());
    json!({
        "node_id": api.node_id,
        "leader_id": metrics.current_leader,
        "term": metrics.current_term,
        "role": role_name(metrics.state),
        "members": members,
        "last_applied": metrics.last_applied.map_or(0, |log_id| log_id.index),
        "last_log_index": metrics.last_log_index.unwrap_or(0),
        "journal_head": head,
    })
}

/// `GET /v1/cluster`.
pub(crate) async fn cluster(State(api): State<ApiState>) -> Response {
    Json(cluster_view(&api)).into_response()
}

/// `GET /v1/state`: the journal head, the state hash and the Raft index they belong to, read
/// under one lock so the three describe the same moment.
pub(crate) async fn state(State(api): State<ApiState>) -> Response {
    let applied = api.applied.clone();
    let work = move || {
        // `AppliedState::read` shows only the ledger; the state machine updates the ledger and
        // `last_applied` under this same lock, so reading both here is consistent.
        let state = applied.shared.read_state();
        json!({
            "journal_head": state.ledger.head(),
            "state_hash": state.ledger.state_hash().to_string(),
            "last_applied": state.last_applied.map_or(0, |log_id| log_id.index),
        })
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(body) => Json(body).into_response(),
        Err(error) => ApiError::internal(format!("hashing the state: {error}")).into_response(),
    }
}

/// `GET /v1/head`: the journal head and this node's signed checkpoint of it.
pub(crate) async fn head(
    State(api): State<ApiState>,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    let head = api.applied.read(|ledger| ledger.head());
    let checkpoint = Checkpoint::sign(head, &api.node_key);
    json_answer(&json!({ "head": head, "checkpoint": checkpoint }))
}

/// `GET /v1/journal?from=&limit=`.
pub(crate) async fn journal(
    State(api): State<ApiState>,
    Params(params): Params<PageParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = || -> Result<(u64, usize), ApiError> {
        let from = parse_bounded("from", params.from.as_deref(), 1, 0, u64::MAX)?;
        let limit = parse_bounded(
            "limit",
            params.limit.as_deref(),
            JOURNAL_PAGE_ENTRIES_DEFAULT as u64,
            1,
            JOURNAL_PAGE_ENTRIES_MAX as u64,
        )?;
        // `limit` is at most JOURNAL_PAGE_ENTRIES_MAX, which fits in usize.
        Ok((from, limit as usize))
    };
    let (from, limit) = match page() {
        Ok(page) => page,
        Err(error) => return error.into_response(),
    };
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    let applied = api.applied.clone();
    let read = move || {
        let first_index = applied.first_journal_index();
        applied
            .journal_range(from, limit)
            .map(|entries| json!({ "entries": entries, "first_index": first_index }))
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(error)) => storage_error(error).into_response(),
        Err(error) => ApiError::internal(format!("reading the journal: {error}")).into_response(),
    }
}

/// `GET /v1/accounts/{id}`.
pub(crate) async fn account(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let id = match parse_u128("account id", &id) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    match api.applied.read(|ledger| ledger.account(id).cloned()) {
        Some(account) => json_answer(&account),
        None => ApiError::not_found(format!("no account {id}")).into_response(),
    }
}

/// `GET /v1/accounts/{id}/transfers?after=&limit=`: oldest first; `next` is the cursor of the
/// following page, or null on the last.
pub(crate) async fn account_transfers(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<PageParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = || -> Result<(u128, Option<u128>, usize), ApiError> {
        let id = parse_u128("account id", &id)?;
        let after = match params.after.as_deref() {
            Some(after) => Some(parse_u128("after", after)?),
            None => None,
        };
        let limit = parse_bounded(
            "limit",
            params.limit.as_deref(),
            ACCOUNT_TRANSFERS_PAGE_DEFAULT as u64,
            1,
            ACCOUNT_TRANSFERS_PAGE_MAX as u64,
        )?;
        // `limit` is at most ACCOUNT_TRANSFERS_PAGE_MAX, which fits in usize.
        Ok((id, after, limit as usize))
    };
    let (id, after, limit) = match page() {
        Ok(page) => page,
        Err(error) => return error.into_response(),
    };
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    if !api.applied.read(|ledger| ledger.account(id).is_some()) {
        return ApiError::not_found(format!("no account {id}")).into_response();
    }
    let applied = api.applied.clone();
    // One more than the page, to know whether another page follows.
    let read = move || applied.account_transfers(id, after, limit + 1);
    let mut transfers = match tokio::task::spawn_blocking(read).await {
        Ok(Ok(transfers)) => transfers,
        Ok(Err(error)) => return storage_error(error).into_response(),
        Err(error) => {
            return ApiError::internal(format!("reading the transfers: {error}")).into_response()
        }
    };
    let next = if transfers.len() > limit {
        transfers.truncate(limit);
        transfers
            .last()
            .map(|record| record.transfer.id.to_string())
    } else {
        None
    };
    json_answer(&json!({ "transfers": transfers, "next": next }))
}

/// `GET /v1/transfers/{id}`.
pub(crate) async fn transfer(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let id = match parse_u128("transfer id", &id) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    match api.applied.read(|ledger| ledger.transfer(id).cloned()) {
        Some(record) => json_answer(&record),
        None => ApiError::not_found(format!("no transfer {id}")).into_response(),
    }
}

/// `GET /v1/parties/{id}`.
pub(crate) async fn party(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let id = PartyId::new(id);
    if !id.is_valid() {
        return ApiError::invalid_parameter(format!(
            "{:?} is not a party id (1 to 64 characters of a-z, 0-9, '.', '_', '-')",
            id.as_str()
        ))
        .into_response();
    }
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    match api.applied.read(|ledger| ledger.party(&id).cloned()) {
        Some(party) => json_answer(&party),
        None => ApiError::not_found(format!("no party {id}")).into_response(),
    }
}
