//! The HTTP API's parsers of outside input as plain functions, for the fuzz targets in `fuzz/`
//! (`spec/fuzzing.md`): the JSON bodies the write and admin routes take, the query strings of
//! the reads, and the number parser every id, page and bound in a path or query goes through.
//!
//! Each function runs exactly the parser its handler runs (the same types, the same
//! `serde_json`/`serde_urlencoded` calls, the same error mapping), so a fuzz target that
//! calls it exercises what a client's bytes reach. Nothing here reads state or does I/O.

use super::admin::{FaultsRequest, InitRequest, Member, NodeRequest};
use super::bank::{AllocationListParams, StatementParams};
use super::errors::ApiError;
use super::extract;
use super::market::{OrderListParams, ProductParams, StreamParams};
use super::reads::{ListParams, PageParams, ReadParams};
use super::vouchers::ReportParams;
use super::writes::BatchRequest;
use axum::extract::Query;
use axum::http::Uri;
use ledger::SignedCommand;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// The JSON bodies the routes take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// `POST /v1/commands` and every typed command route: a `SignedCommand`.
    Command,
    /// `POST /v1/commands/batch`: `{"commands": [SignedCommand, ...]}`.
    Batch,
    /// `POST /v1/admin/cluster/init`: `{"members": [{"id", "raft_addr", "http_addr"}]}`.
    AdminInit,
    /// `POST /v1/admin/cluster/learners`: `{"id", "raft_addr", "http_addr"}`.
    AdminLearner,
    /// `POST /v1/admin/cluster/promote` and `/remove`: `{"id"}`.
    AdminNode,
    /// `POST /v1/admin/faults`: `{"isolate"}`.
    AdminFaults,
}

/// Every [`Body`], in a fixed order (a fuzz target picks one by its first byte).
pub const BODIES: [Body; 6] = [
    Body::Command,
    Body::Batch,
    Body::AdminInit,
    Body::AdminLearner,
    Body::AdminNode,
    Body::AdminFaults,
];

/// A body as its route's extractor parsed it.
#[derive(Debug)]
pub enum ParsedBody {
    /// A single signed command (boxed: it is large beside the other variants).
    Command(Box<SignedCommand>),
    /// The commands of a batch (their number is checked by the handler, after parsing).
    Batch(Vec<SignedCommand>),
    /// An administrative body, as its `Debug` text.
    Admin(String),
}

/// Parses `bytes` as the route's JSON body: `400 malformed_json` or the value.
pub fn parse_body(body: Body, bytes: &[u8]) -> Result<ParsedBody, ApiError> {
    Ok(match body {
        Body::Command => ParsedBody::Command(Box::new(extract::parse_json(bytes)?)),
        Body::Batch => ParsedBody::Batch(extract::parse_json::<BatchRequest>(bytes)?.commands),
        Body::AdminInit => admin(extract::parse_json::<InitRequest>(bytes)?),
        Body::AdminLearner => admin(extract::parse_json::<Member>(bytes)?),
        Body::AdminNode => admin(extract::parse_json::<NodeRequest>(bytes)?),
        Body::AdminFaults => admin(extract::parse_json::<FaultsRequest>(bytes)?),
    })
}

fn admin(value: impl Debug) -> ParsedBody {
    ParsedBody::Admin(format!("{value:?}"))
}

/// The query-parameter sets the reads take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    Read,
    Page,
    List,
    AllocationList,
    Statement,
    Product,
    OrderList,
    Stream,
    Report,
}

/// Every [`QueryKind`], in a fixed order.
pub const QUERY_KINDS: [QueryKind; 9] = [
    QueryKind::Read,
    QueryKind::Page,
    QueryKind::List,
    QueryKind::AllocationList,
    QueryKind::Statement,
    QueryKind::Product,
    QueryKind::OrderList,
    QueryKind::Stream,
    QueryKind::Report,
];

/// Parses a query string (what follows `?`) as `kind`: `400 invalid_parameter` or the value's
/// `Debug` text. A query that cannot be part of a URI at all is refused the same way (hyper
/// refuses such a request line before the router sees it).
pub fn parse_query(kind: QueryKind, query: &str) -> Result<String, ApiError> {
    let uri: Uri = format!("/?{query}")
        .parse()
        .map_err(|error| ApiError::invalid_parameter(format!("not a URI: {error}")))?;
    match kind {
        QueryKind::Read => query_of::<ReadParams>(&uri),
        QueryKind::Page => query_of::<PageParams>(&uri),
        QueryKind::List => query_of::<ListParams>(&uri),
        QueryKind::AllocationList => query_of::<AllocationListParams>(&uri),
        QueryKind::Statement => query_of::<StatementParams>(&uri),
        QueryKind::Product => query_of::<ProductParams>(&uri),
        QueryKind::OrderList => query_of::<OrderListParams>(&uri),
        QueryKind::Stream => query_of::<StreamParams>(&uri),
        QueryKind::Report => query_of::<ReportParams>(&uri),
    }
}

/// What [`extract::Params`] does with a request's URI.
fn query_of<T: DeserializeOwned + Debug>(uri: &Uri) -> Result<String, ApiError> {
    match Query::<T>::try_from_uri(uri) {
        Ok(Query(value)) => Ok(format!("{value:?}")),
        Err(rejection) => Err(ApiError::invalid_parameter(format!(
            "bad query parameters: {}",
            rejection.body_text()
        ))),
    }
}

/// The parser of every id in a path and every number in a query: a decimal `u128`.
pub fn parse_u128(what: &str, text: &str) -> Result<u128, ApiError> {
    extract::parse_u128(what, text)
}

/// The parser of every bounded number in a query (`limit`, `levels`, `from_ns`, …).
pub fn parse_bounded(
    what: &str,
    text: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    extract::parse_bounded(what, text, default, min, max)
}
