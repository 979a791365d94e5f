//! The HTTP router: every route of `spec/http.md`, the state the handlers share, and the
//! layers around them (body limit, concurrency bound, response counting, JSON fallbacks).
//!
//! Every answer that is not a handler's own, an unknown route (404), a known route with the
//! wrong method (405), a body over the limit (413), is our JSON `{code, message}`; axum's
//! plain-text rejections never reach a client. This file never holds a business rule.

use super::admin;
use super::audit;
use super::bank;
use super::console;
use super::errors::ApiError;
use super::forward::Forwarder;
use super::market;
use super::metrics::{self, Metrics};
use super::proposer::Proposer;
use super::reads;
use super::signing;
use super::vouchers;
use super::writes;
use crate::limits::{ALERT_STREAMS_MAX, HTTP_REQUESTS_IN_FLIGHT_MAX, REQUEST_BYTES_MAX};
use crate::network::Faults;
use crate::raft_types::{NodeId, NodeInfo, Raft};
use crate::storage::AppliedState;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger::SigningKey;
use std::sync::Arc;
use tokio::sync::{watch, Mutex, Semaphore};

/// What every handler shares.
pub(crate) struct Api {
    pub node_id: NodeId,
    /// This node's own addresses, as bound (used by `init` with no members).
    pub node_info: NodeInfo,
    pub raft: Raft,
    pub applied: AppliedState,
    pub proposer: Proposer,
    pub forwarder: Forwarder,
    pub metrics: Arc<Metrics>,
    /// Signs checkpoints (`GET /v1/head`, `GET /v1/checkpoints/{index}`).
    pub node_key: SigningKey,
    pub admin_token: String,
    pub faults: Faults,
    pub enable_fault_admin: bool,
    /// Held across each membership change: openraft allows one at a time.
    pub membership_lock: Mutex<()>,
    /// Bounds the requests served at once (`HTTP_REQUESTS_IN_FLIGHT_MAX`).
    pub requests_in_flight: Arc<Semaphore>,
    /// Bounds the alert streams served at once (`ALERT_STREAMS_MAX`).
    pub alert_streams: Arc<Semaphore>,
    /// Becomes `true` when the HTTP server starts to shut down: streams end then, so that
    /// shutdown does not wait for clients that never hang up.
    pub stopping: watch::Receiver<bool>,
}

pub(crate) type ApiState = Arc<Api>;

/// The router with every route and layer.
pub(crate) fn router(api: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(reads::health))
        .route("/v1/cluster", get(reads::cluster))
        .route("/v1/state", get(reads::state))
        .route("/v1/head", get(reads::head))
        .route("/v1/journal", get(reads::journal))
        .route("/v1/journal/raw", get(audit::raw_journal))
        .route("/v1/accounts/{id}", get(reads::account))
        .route("/v1/accounts/{id}/transfers", get(reads::account_transfers))
        .route("/v1/transfers/{id}", get(reads::transfer))
        .route("/v1/parties/{id}", get(reads::party))
        .route("/v1/commands", post(writes::commands))
        .route("/v1/commands/batch", post(writes::batch))
        .route("/v1/commands/canonical", post(signing::canonical))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/parties", post(writes::parties))
        .route("/v1/accounts", post(writes::accounts))
        .route("/v1/transfers", post(writes::transfers))
        .route("/v1/keys", post(writes::keys))
        .route("/v1/assets", post(writes::assets))
        .route("/v1/rates", get(bank::rate_table).post(writes::rates))
        .route("/v1/rates/{id}", get(bank::rate_table_version))
        .route("/v1/hosts", post(writes::hosts))
        .route("/v1/hosts/{id}", get(bank::host))
        .route("/v1/hosts/{id}/offers", get(bank::host_offers))
        .route("/v1/hosts/{id}/allocations", get(bank::host_allocations))
        .route("/v1/offers", post(writes::offers))
        .route("/v1/offers/{id}", get(bank::offer))
        .route("/v1/meter-reports", post(writes::meter_reports))
        .route("/v1/withdrawals", post(writes::withdrawals))
        .route("/v1/withdrawals/cancel", post(writes::withdrawal_cancels))
        .route("/v1/withdrawals/{id}", get(bank::withdrawal))
        .route("/v1/allocation-reports", post(writes::allocation_reports))
        .route("/v1/allocations/{id}", get(bank::allocation))
        .route("/v1/accounts/{id}/statement", get(bank::account_statement))
        .route("/v1/parties/{id}/withdrawals", get(bank::party_withdrawals))
        .route("/v1/parties/{id}/statement", get(bank::party_statement))
        .route("/v1/products", get(market::products).post(writes::products))
        .route("/v1/market/depth", get(market::depth))
        .route("/v1/market/trades", get(market::trades))
        .route("/v1/market/candles", get(market::candles_of_product))
        .route("/v1/orders", post(writes::orders))
        .route("/v1/orders/cancel", post(writes::order_cancels))
        .route("/v1/orders/amend", post(writes::order_amends))
        .route("/v1/orders/{id}", get(market::order))
        .route("/v1/parties/{id}/orders", get(market::party_orders))
        .route("/v1/parties/{id}/fills", get(market::party_fills))
        .route("/v1/packages", get(market::packages).post(writes::packages))
        .route("/v1/packages/{id}", get(market::package))
        .route("/v1/purchases", post(writes::purchases))
        .route("/v1/usage", post(writes::usage))
        .route("/v1/accounts/{id}/quotas", get(market::account_quotas))
        .route("/v1/accounts/{id}/alerts", get(market::account_alerts))
        .route("/v1/accounts/{id}/alerts/stream", get(market::alert_stream))
        .route(
            "/v1/programmes",
            get(vouchers::programmes).post(writes::programmes),
        )
        .route("/v1/programmes/{id}", get(vouchers::programme))
        .route(
            "/v1/programmes/{id}/report",
            get(vouchers::programme_report),
        )
        .route("/v1/vouchers", post(writes::vouchers))
        .route("/v1/vouchers/revoke", post(writes::voucher_revocations))
        .route("/v1/vouchers/{id}", get(vouchers::voucher))
        .route("/v1/parties/{id}/vouchers", get(vouchers::party_vouchers))
        .route("/v1/checkpoints/{index}", get(vouchers::checkpoint))
        .route("/v1/admin/cluster/init", post(admin::init))
        .route("/v1/admin/cluster/learners", post(admin::add_learner))
        .route("/v1/admin/cluster/promote", post(admin::promote))
        .route("/v1/admin/cluster/remove", post(admin::remove))
        .route("/v1/admin/faults", post(admin::faults))
        .route("/metrics", get(prometheus_text))
        .route("/", get(console::redirect))
        .route("/console", get(console::redirect))
        .route("/console/", get(console::index))
        .route("/console/{file}", get(console::file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .layer(middleware::from_fn_with_state(api.clone(), bound_and_count))
        .with_state(api)
}

/// A fresh semaphore for [`Api::requests_in_flight`].
pub(crate) fn requests_in_flight() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(HTTP_REQUESTS_IN_FLIGHT_MAX))
}

/// A fresh semaphore for [`Api::alert_streams`].
pub(crate) fn alert_streams() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(ALERT_STREAMS_MAX))
}

/// Refuses a request beyond `HTTP_REQUESTS_IN_FLIGHT_MAX` with `429 overloaded`, and counts
/// every response by status.
async fn bound_and_count(State(api): State<ApiState>, request: Request, next: Next) -> Response {
    let response = match api.requests_in_flight.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(_) => ApiError::overloaded(format!(
            "this node is serving {HTTP_REQUESTS_IN_FLIGHT_MAX} requests already; retry shortly"
        ))
        .into_response(),
    };
    if response.status().is_server_error() {
        tracing::warn!(status = %response.status(), "answered with a server error");
    }
    api.metrics
        .http_responses_total
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!("{} does not accept {method}", uri.path()))
}

/// `GET /metrics`.
async fn prometheus_text(State(api): State<ApiState>) -> Response {
    let raft_metrics = api.raft.metrics().borrow().clone();
    let journal_head_index = api.applied.read(|ledger| ledger.head().index);
    match api.metrics.render(
        &raft_metrics,
        journal_head_index,
        api.proposer.queue_depth(),
    ) {
        Ok(text) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
        Err(error) => ApiError::internal(format!("metrics: {error}")).into_response(),
    }
}
