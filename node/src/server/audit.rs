//! `GET /v1/audit/verify`: the offline audit of `cbank audit verify`, run by the node asked;
//! and `GET /v1/journal/raw`: journal entries as canonical bytes, for clients that check the
//! chain themselves.
//!
//! The node builds the same export `cbank audit export` would (journal entries `1..=to` from
//! its own store, each member's signed checkpoint of entry `to`, and, when `to` is the head,
//! every programme's report) and runs `ledger::audit::verify_export` on it: the blake3 chain,
//! a replay of every signed command through a fresh ledger, the invariants, the checkpoint
//! signatures against the trusted node keys, and the reports. The web console's auditor view
//! uses it because WebCrypto has no blake3; the browser then checks each returned checkpoint's
//! Ed25519 signature itself, so a dishonest node cannot forge the other nodes' signatures.
//!
//! A verification that fails is an answer (`200`, `"verified": false`, with the first failure),
//! not an HTTP error. Always served by the node asked, never forwarded. This file never
//! decides what is valid: `ledger::audit` does.

use super::errors::ApiError;
use super::extract::Params;
use super::reads::{journal_page, storage_error};
use super::routes::ApiState;
use crate::limits::{
    AUDIT_CHECKPOINT_DEADLINE, AUDIT_VERIFICATIONS_MAX, AUDIT_VERIFY_ENTRIES_MAX,
    JOURNAL_PAGE_ENTRIES_MAX, JOURNAL_STORE_POLL, JOURNAL_STORE_WAIT,
};
use crate::raft_types::NodeId;
use crate::storage::{AppliedState, ReadError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ledger::audit::{export, verify_export};
use ledger::codec;
use ledger::{Checkpoint, Head, JournalEntry, PublicKey};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;
use tokio::sync::Semaphore;

/// Bytes of a peer's checkpoint answer at most (a checkpoint is about 300 bytes of JSON).
const CHECKPOINT_ANSWER_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
pub(crate) struct VerifyParams {
    /// The last entry to verify; the head by default.
    to: Option<String>,
    /// Comma-separated hex node keys to trust; by default the keys of the members' checkpoints.
    trust: Option<String>,
}

/// Verifications running on this node: each replays the whole journal, so they queue for none
/// and are refused beyond `AUDIT_VERIFICATIONS_MAX`.
static VERIFICATIONS: Semaphore = Semaphore::const_new(AUDIT_VERIFICATIONS_MAX);

/// `GET /v1/audit/verify?to=&trust=`.
pub(crate) async fn verify(
    State(api): State<ApiState>,
    Params(params): Params<VerifyParams>,
) -> Response {
    let Ok(_permit) = VERIFICATIONS.try_acquire() else {
        return ApiError::overloaded(format!(
            "this node is running {AUDIT_VERIFICATIONS_MAX} verification(s) already; retry shortly"
        ))
        .into_response();
    };
    match run(&api, params).await {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn run(api: &ApiState, params: VerifyParams) -> Result<Value, ApiError> {
    let trusted_given = match params.trust.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => Some(parse_keys(text)?),
        None => None,
    };
    // The head and the reports are read under one lock, so the reports belong to that head.
    let (head, reports) = api.applied.read(|ledger| {
        let reports: Vec<_> = ledger
            .vouchers()
            .programmes
            .keys()
            .filter_map(|programme_id| ledger.programme_report(programme_id))
            .collect();
        (ledger.head(), reports)
    });
    let to = match params.to.as_deref() {
        None | Some("") => head.index,
        Some(text) => text.parse::<u64>().map_err(|_| {
            ApiError::invalid_parameter(format!("to must be a journal index, got {text:?}"))
        })?,
    };
    if to == 0 || to > head.index {
        return Err(ApiError::invalid_parameter(format!(
            "to must be between 1 and this node's head, {}; got {to}",
            head.index
        ))
        .with_field("journal_head", head.index));
    }
    if to > AUDIT_VERIFY_ENTRIES_MAX {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "audit_too_large",
            format!(
                "verifying {to} entries is more than this route does \
                 ({AUDIT_VERIFY_ENTRIES_MAX}); use `cbank audit export` and `cbank audit verify`"
            ),
        ));
    }
    // Reports describe the head; an earlier range is verified without them.
    let reports = if to == head.index {
        reports
    } else {
        Vec::new()
    };
    let applied = api.applied.clone();
    let entries = crate::blocking::run(move || entries_up_to(&applied, to))
        .await
        .map_err(|error| ApiError::internal(format!("reading the journal: {error}")))?
        .map_err(storage_error)?;
    let Some(last) = entries.last() else {
        return Err(ApiError::internal("the journal store returned no entries"));
    };
    let checked_head = last.head();
    let (checkpoints, unreachable) = collect_checkpoints(api, checked_head).await;
    let trusted: Vec<PublicKey> = match &trusted_given {
        Some(keys) => keys.clone(),
        None => {
            let mut keys: Vec<PublicKey> = checkpoints
                .iter()
                .map(|(_, checkpoint)| checkpoint.node_key)
                .collect();
            keys.sort();
            keys.dedup();
            keys
        }
    };
    let report_count = reports.len();
    let exported = export(
        &entries,
        checkpoints.iter().map(|(_, c)| c.clone()).collect(),
        reports,
    );
    let trusted_for_check = trusted.clone();
    let outcome = crate::blocking::run(move || verify_export(&exported, &trusted_for_check))
        .await
        .map_err(|error| ApiError::internal(format!("verifying the export: {error}")))?;
    let checkpoints: Vec<Value> = checkpoints
        .iter()
        .map(|(node_id, checkpoint)| json!({ "node_id": node_id, "checkpoint": checkpoint }))
        .collect();
    let mut body = json!({
        "to": to,
        "head": checked_head,
        "entries": entries.len(),
        "reports": report_count,
        "trusted": trusted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "trusted_from": if trusted_given.is_some() { "the trust parameter" }
                        else { "the members' own checkpoints" },
        "checkpoints": checkpoints,
        "unreachable": unreachable,
    });
    match outcome {
        Ok(verified) => {
            body["verified"] = json!(true);
            body["signers"] = json!(verified.signers);
        }
        Err(failure) => {
            body["verified"] = json!(false);
            body["failure"] = json!({ "index": failure.index, "what": failure.what });
        }
    }
    Ok(body)
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawParams {
    from: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/journal/raw?from=&limit=`: entries as their canonical bytes (hex), for a client
/// that checks the blake3 chain itself (the console's auditor view does, in JavaScript).
/// Always this node's own store, never forwarded: an applied entry never changes.
pub(crate) async fn raw_journal(
    State(api): State<ApiState>,
    Params(params): Params<RawParams>,
) -> Response {
    let (from, limit) = match journal_page(params.from.as_deref(), params.limit.as_deref()) {
        Ok(page) => page,
        Err(error) => return error.into_response(),
    };
    let applied = api.applied.clone();
    let read = move || {
        let first_index = applied.first_journal_index();
        applied.journal_range(from, limit).map(|entries| {
            let entries: Vec<String> = entries
                .iter()
                .map(|entry| hex::encode(codec::encode(entry)))
                .collect();
            json!({ "entries": entries, "first_index": first_index })
        })
    };
    match crate::blocking::run(read).await {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(error)) => storage_error(error).into_response(),
        Err(error) => ApiError::internal(format!("reading the journal: {error}")).into_response(),
    }
}

fn parse_keys(text: &str) -> Result<Vec<PublicKey>, ApiError> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let mut key = [0u8; 32];
            hex::decode_to_slice(part, &mut key).map_err(|_| {
                ApiError::invalid_parameter(format!(
                    "trust must be node keys as 64 hex digits, comma-separated; got {part:?}"
                ))
            })?;
            Ok(PublicKey(key))
        })
        .collect()
}

/// Entries `1..=to` from this node's store, waiting (at most `JOURNAL_STORE_WAIT`) for the
/// last ones the ledger has applied but sled does not show yet. Blocking.
fn entries_up_to(applied: &AppliedState, to: u64) -> Result<Vec<JournalEntry>, ReadError> {
    let deadline = Instant::now() + JOURNAL_STORE_WAIT;
    let mut entries: Vec<JournalEntry> = Vec::new();
    while (entries.len() as u64) < to {
        let from = entries.len() as u64 + 1;
        let wanted = usize::try_from(to - entries.len() as u64)
            .unwrap_or(usize::MAX)
            .min(JOURNAL_PAGE_ENTRIES_MAX);
        let page = applied.journal_range(from, wanted)?;
        if page.is_empty() {
            if Instant::now() >= deadline {
                return Err(ReadError::Storage(format!(
                    "journal entry {from} is applied but not in the journal store after {} ms",
                    JOURNAL_STORE_WAIT.as_millis()
                )));
            }
            std::thread::sleep(JOURNAL_STORE_POLL);
            continue;
        }
        entries.extend(page);
    }
    entries.truncate(usize::try_from(to).unwrap_or(usize::MAX));
    Ok(entries)
}

/// Every member's signed checkpoint of `head` (an entry this node read from its store): this
/// node signs its own; the others are asked over HTTP (`GET /v1/checkpoints/{index}`), each
/// under `AUDIT_CHECKPOINT_DEADLINE`. Returns the checkpoints by node and, for each member that
/// gave none, why.
async fn collect_checkpoints(
    api: &ApiState,
    head: Head,
) -> (Vec<(NodeId, Checkpoint)>, Vec<Value>) {
    let members: Vec<(NodeId, String)> = {
        let metrics = api.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.http_addr.clone()))
            .collect()
    };
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut checkpoints = Vec::new();
    let mut unreachable = Vec::new();
    for (node_id, http_addr) in members {
        if node_id == api.node_id {
            checkpoints.push((node_id, Checkpoint::sign(head, &api.node_key)));
            continue;
        }
        let url = format!("http://{http_addr}/v1/checkpoints/{}", head.index);
        match peer_checkpoint(&client, &url).await {
            Ok(checkpoint) => checkpoints.push((node_id, checkpoint)),
            Err(message) => unreachable.push(json!({ "node_id": node_id, "message": message })),
        }
    }
    (checkpoints, unreachable)
}

async fn peer_checkpoint(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<Checkpoint, String> {
    #[derive(Deserialize)]
    struct Answer {
        checkpoint: Checkpoint,
    }
    let uri: hyper::Uri = url.parse().map_err(|error| format!("{url}: {error}"))?;
    let exchange = async {
        let response = client
            .get(uri)
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), CHECKPOINT_ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|error| format!("{url}: {error}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{url}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        serde_json::from_slice::<Answer>(&bytes)
            .map(|answer| answer.checkpoint)
            .map_err(|error| format!("{url}: not a checkpoint: {error}"))
    };
    match tokio::time::timeout(AUDIT_CHECKPOINT_DEADLINE, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{url}: no answer within {} ms",
            AUDIT_CHECKPOINT_DEADLINE.as_millis()
        )),
    }
}
