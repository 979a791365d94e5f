//! Read handlers: health, cluster, state, head, journal, accounts, transfers, parties.
//!
//! Reads of the ledger take `?consistency=linearizable` (the default) or `local`. A
//! linearizable read on the leader first confirms leadership with a quorum and waits until the
//! read point is applied (`ensure_linearizable`); on a follower it is forwarded to the leader.
//! A local read answers from this node's applied state at once. `health`, `cluster` and `state`
//! describe this node and are always local. This file also holds what every read module shares
//! (`bank.rs`, `market.rs`, `vouchers.rs`): [`answer`], the list pages ([`list_page`],
//! [`page`], [`text_list`]) and party ids ([`parse_party`]). This file never writes anything.

use super::errors::ApiError;
use super::extract::{parse_bounded, parse_u128, Params, PathText};
use super::forward::{leader_from, leadership, no_leader, LeaderAddr, Leadership};
use super::metrics::role_name;
use super::routes::ApiState;
use crate::limits::{
    ACCOUNT_TRANSFERS_PAGE_DEFAULT, ACCOUNT_TRANSFERS_PAGE_MAX, BANK_LIST_PAGE_DEFAULT,
    BANK_LIST_PAGE_MAX, JOURNAL_PAGE_ENTRIES_DEFAULT, JOURNAL_PAGE_ENTRIES_MAX, READ_DEADLINE,
};
use crate::storage::ReadError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::{Checkpoint, Ledger, PartyId};
use openraft::error::{CheckIsLeaderError, RaftError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::ops::Bound;

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

/// Query parameters of the paged lists (`after`, `limit`; numbers are parsed by [`list_page`]).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    #[serde(default)]
    pub(super) consistency: Consistency,
    pub(super) after: Option<String>,
    pub(super) limit: Option<String>,
}

/// Where a read as fresh as its `consistency` asks can be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ReadPoint {
    /// From this node's applied state, now: a local read, or a linearizable one on a leader
    /// that has confirmed its leadership and applied up to the read point.
    Here,
    /// Only by the leader (this node is a follower, or found it no longer leads).
    AtLeader(LeaderAddr),
}

/// Finds where a read as fresh as `consistency` asks can be answered; on the leader, confirms
/// leadership with a quorum and waits until the read point is applied. `Err` is the whole
/// answer (no leader, or no quorum in time).
pub(super) async fn read_point(
    api: &ApiState,
    consistency: Consistency,
) -> Result<ReadPoint, Response> {
    if consistency == Consistency::Local {
        return Ok(ReadPoint::Here);
    }
    match leadership(&api.raft).await {
        Leadership::Leader => {}
        Leadership::Follower(leader) => return Ok(ReadPoint::AtLeader(leader)),
        Leadership::Unknown(why) => return Err(no_leader(&why)),
    }
    match tokio::time::timeout(READ_DEADLINE, api.raft.ensure_linearizable()).await {
        Ok(Ok(_)) => Ok(ReadPoint::Here),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to)))) => {
            match leader_from(&to) {
                Some(leader) => Ok(ReadPoint::AtLeader(leader)),
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

/// Makes a read as fresh as `consistency` asks. `Err` carries the whole answer: the leader's
/// relayed response (on a follower) or an error.
pub(super) async fn ensure_fresh(
    api: &ApiState,
    consistency: Consistency,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Response> {
    match read_point(api, consistency).await? {
        ReadPoint::Here => Ok(()),
        ReadPoint::AtLeader(leader) => Err(api
            .forwarder
            .forward(&leader, Method::GET, uri, headers, Bytes::new())
            .await),
    }
}

/// A value as a JSON response.
pub(super) fn json_answer(value: &impl Serialize) -> Response {
    match serde_json::to_value(value) {
        Ok(value) => Json(value).into_response(),
        Err(error) => ApiError::internal(format!("encoding the answer: {error}")).into_response(),
    }
}

/// A view that borrows from the ledger, copied out as JSON while the read lock is held.
pub(super) fn owned(view: impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(view)
        .map_err(|error| ApiError::internal(format!("encoding the answer: {error}")))
}

/// Reads from the ledger after making the read as fresh as `consistency` asks.
pub(super) async fn answer<T: Serialize>(
    api: &ApiState,
    consistency: Consistency,
    uri: &Uri,
    headers: &HeaderMap,
    read: impl FnOnce(&Ledger) -> Result<T, ApiError>,
) -> Response {
    if let Err(answer) = ensure_fresh(api, consistency, uri, headers).await {
        return answer;
    }
    match api.applied.read(read) {
        Ok(value) => json_answer(&value),
        Err(error) => error.into_response(),
    }
}

/// A read of one thing named by a decimal id in the path (`what` names the id in errors): 400
/// for an id that does not parse, else what `read` makes of it once the read is fresh.
pub(super) async fn answer_by_id<T: Serialize>(
    api: &ApiState,
    what: &str,
    id: &str,
    consistency: Consistency,
    uri: &Uri,
    headers: &HeaderMap,
    read: impl FnOnce(&Ledger, u128) -> Result<T, ApiError>,
) -> Response {
    let id = match parse_u128(what, id) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    answer(api, consistency, uri, headers, |ledger| read(ledger, id)).await
}

/// The `after` (an id) and `limit` of a list page.
pub(super) fn list_page(
    after: Option<&str>,
    limit: Option<&str>,
) -> Result<(Option<u128>, usize), ApiError> {
    let after = match after {
        Some(after) => Some(parse_u128("after", after)?),
        None => None,
    };
    Ok((after, page_limit(limit)?))
}

/// The `limit` of a list page: 1 to `BANK_LIST_PAGE_MAX`, a whole page by default.
pub(super) fn page_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    let limit = parse_bounded(
        "limit",
        limit,
        BANK_LIST_PAGE_DEFAULT as u64,
        1,
        BANK_LIST_PAGE_MAX as u64,
    )?;
    // `limit` is at most BANK_LIST_PAGE_MAX, which fits in usize.
    Ok(limit as usize)
}

/// At most `limit` items, and the cursor of the last one if more follow (the next page's
/// `after`).
pub(super) fn page<T, C: ToString>(
    items: impl Iterator<Item = T>,
    limit: usize,
    cursor_of: impl Fn(&T) -> C,
) -> (Vec<T>, Option<String>) {
    let mut items: Vec<T> = items.take(limit + 1).collect();
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(|item| cursor_of(item).to_string());
        (items, next)
    } else {
        (items, None)
    }
}

/// A paged list of things keyed by a text id (`?after=<id>&limit=`): parses the limit (400 if
/// bad), makes the read fresh, and answers what `read` makes of the range after the cursor
/// (the last id of the previous page itself) and the limit.
pub(super) async fn text_list<T: Serialize>(
    api: &ApiState,
    params: ListParams,
    uri: &Uri,
    headers: &HeaderMap,
    read: impl FnOnce(&Ledger, (Bound<String>, Bound<String>), usize) -> Result<T, ApiError>,
) -> Response {
    let limit = match page_limit(params.limit.as_deref()) {
        Ok(limit) => limit,
        Err(error) => return error.into_response(),
    };
    let start = params.after.map_or(Bound::Unbounded, Bound::Excluded);
    answer(api, params.consistency, uri, headers, |ledger| {
        read(ledger, (start, Bound::Unbounded), limit)
    })
    .await
}

/// A party id from a path, checked against the ledger's rules.
pub(super) fn parse_party(text: String) -> Result<PartyId, ApiError> {
    let party = PartyId::new(text);
    if party.is_valid() {
        Ok(party)
    } else {
        Err(ApiError::invalid_parameter(format!(
            "{:?} is not a party id (1 to 64 characters of a-z, 0-9, '.', '_', '-')",
            party.as_str()
        )))
    }
}

pub(super) fn no_party(party: &PartyId) -> ApiError {
    ApiError::not_found(format!("no party {party}"))
}

/// A paged list of one party's things (`/v1/parties/{id}/…?after=&limit=`): parses the party
/// and the page (400 if either is bad), makes the read fresh, answers 404 for an unknown
/// party, and otherwise what `read` makes of the party, the cursor and the limit.
pub(super) async fn party_list<T: Serialize>(
    api: &ApiState,
    party: String,
    params: &ListParams,
    uri: &Uri,
    headers: &HeaderMap,
    read: impl FnOnce(&Ledger, &PartyId, Option<u128>, usize) -> Result<T, ApiError>,
) -> Response {
    let parsed = parse_party(party).and_then(|party| {
        let (after, limit) = list_page(params.after.as_deref(), params.limit.as_deref())?;
        Ok((party, after, limit))
    });
    let (party, after, limit) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    answer(api, params.consistency, uri, headers, |ledger| {
        if ledger.party(&party).is_none() {
            return Err(no_party(&party));
        }
        read(ledger, &party, after, limit)
    })
    .await
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
    // On the leader: the highest log index each member is known to hold (null: none yet).
    let replication: Option<Vec<Value>> = metrics.replication.as_ref().map(|replication| {
        replication
            .iter()
            .map(|(id, matched)| json!({ "id": id, "matched_index": matched.map(|log_id| log_id.index) }))
            .collect()
    });
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
        "replication": replication,
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
        let (snapshots_installed, journal_entries_fetched) = applied.catch_up_counts();
        let state = applied.shared.read_state();
        json!({
            "journal_head": state.ledger.head(),
            "state_hash": state.ledger.state_hash().to_string(),
            "last_applied": state.last_applied.map_or(0, |log_id| log_id.index),
            "first_journal_index": state.first_journal_index,
            "snapshots_installed": snapshots_installed,
            "journal_entries_fetched": journal_entries_fetched,
        })
    };
    match crate::blocking::run(work).await {
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

/// The `from` and `limit` of a journal page (`GET /v1/journal`, `GET /v1/journal/raw`).
pub(crate) fn journal_page(
    from: Option<&str>,
    limit: Option<&str>,
) -> Result<(u64, usize), ApiError> {
    let from = parse_bounded("from", from, 1, 0, u64::MAX)?;
    let limit = parse_bounded(
        "limit",
        limit,
        JOURNAL_PAGE_ENTRIES_DEFAULT as u64,
        1,
        JOURNAL_PAGE_ENTRIES_MAX as u64,
    )?;
    // `limit` is at most JOURNAL_PAGE_ENTRIES_MAX, which fits in usize.
    Ok((from, limit as usize))
}

/// The body of `GET /v1/journal`.
#[derive(Serialize)]
struct JournalPage {
    entries: Vec<ledger::JournalEntry>,
    first_index: u64,
}

/// `GET /v1/journal?from=&limit=`.
pub(crate) async fn journal(
    State(api): State<ApiState>,
    Params(params): Params<PageParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (from, limit) = match journal_page(params.from.as_deref(), params.limit.as_deref()) {
        Ok(page) => page,
        Err(error) => return error.into_response(),
    };
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    let applied = api.applied.clone();
    let read = move || {
        let first_index = applied.first_journal_index();
        // Serialised straight from the entries: a `serde_json::Value` of a page of large
        // batches took over a GiB (tests/bench/README.md, "RSS is read before the check").
        applied
            .journal_range(from, limit)
            .map(|entries| JournalPage {
                entries,
                first_index,
            })
    };
    match crate::blocking::run(read).await {
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
    let mut transfers = match crate::blocking::run(read).await {
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
    let id = match parse_party(id) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        ledger.party(&id).cloned().ok_or_else(|| no_party(&id))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_the_next_cursor_only_when_more_follow() {
        let (items, next) = page(1..=3u128, 3, |item| *item);
        assert_eq!((items, next), (vec![1, 2, 3], None));
        let (items, next) = page(1..=4u128, 3, |item| *item);
        assert_eq!((items, next), (vec![1, 2, 3], Some("3".to_owned())));
        let (items, next) = page(["a", "b"].into_iter(), 1, |item| *item);
        assert_eq!((items, next), (vec!["a"], Some("a".to_owned())));
        assert_eq!(
            list_page(None, None).ok(),
            Some((None, BANK_LIST_PAGE_DEFAULT))
        );
        assert_eq!(list_page(Some("9"), Some("2")).ok(), Some((Some(9), 2)));
        assert!(list_page(Some("x"), None).is_err());
        assert!(list_page(None, Some("0")).is_err());
        assert!(list_page(None, Some("1001")).is_err());
    }

    #[test]
    fn party_ids_follow_the_ledger_rules() {
        assert!(parse_party("sme-alpha".to_owned()).is_ok());
        for bad in ["", "SME", "a/b", "a b"] {
            let error = parse_party(bad.to_owned()).expect_err(bad);
            assert_eq!(error.code, "invalid_parameter");
        }
    }
}
