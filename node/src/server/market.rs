//! Read handlers of the compute supermarket: the product catalogue, each book's depth, trades
//! and candles, orders and fills, the shelf's packages, and token quotas and their alerts, the
//! latter also as a Server-Sent Events stream.
//!
//! Every read takes `?consistency=linearizable|local` and is made fresh exactly as in
//! `reads.rs`; product ids hold `/` and `:`, so reads of one product name it in the query
//! (`?product=GPUH:H100/CNY`), never in the path. Lists that grow without bound are paged
//! (`after`, `limit`, `next`) with the shared helpers of `reads.rs`. Answers are the `ledger`
//! types as they serialize, with what a reader would otherwise compute beside them (a package's
//! remaining stock, a quota's usable remainder, an order's place in its queue); `u64` and `u128`
//! numbers are decimal strings, as in the ledger's own JSON. Candles are computed here from the
//! trades (by trade time `at_ns`), never stored.
//!
//! The alert stream serves this node's applied state as it grows: it polls every
//! `ALERT_STREAM_POLL` and ends when the node stops or the client goes. Its read point is
//! linearizable by default: on a follower it is the leader's journal head, which the stream
//! waits to have applied here before its first event (a stream is never forwarded).
//!
//! This file never writes anything and never decides a business outcome: the supermarket's
//! commands go through `writes.rs`.

use super::errors::ApiError;
use super::extract::{parse_bounded, parse_u128, Params, PathText};
use super::reads::{
    answer, answer_by_id, list_page, owned, page, page_limit, party_list, read_point, text_list,
    Consistency, ListParams, ReadParams, ReadPoint,
};
use super::routes::ApiState;
use crate::limits::{
    ALERT_STREAM_BATCH_MAX, ALERT_STREAM_KEEP_ALIVE, ALERT_STREAM_POLL, MARKET_CANDLES_DEFAULT,
    MARKET_CANDLES_MAX, MARKET_CANDLE_INTERVAL_S_DEFAULT, MARKET_CANDLE_INTERVAL_S_MAX,
    MARKET_DEPTH_LEVELS_DEFAULT, MARKET_DEPTH_LEVELS_MAX, READ_DEADLINE, READ_POINT_BYTES_MAX,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ledger::limits::NS_PER_S;
use ledger::shelf::{Alert, Package, Quota, QuotaState};
use ledger::trading::{Order, OrderStatus, Product, ProductSpec, Trade};
use ledger::{Ledger, PartyId};
use market::book::{Level, Side};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::VecDeque;
use std::ops::Bound;
use tokio::sync::{watch, OwnedSemaphorePermit};

/// Query parameters of the reads of one product.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProductParams {
    #[serde(default)]
    consistency: Consistency,
    product: Option<String>,
    levels: Option<String>,
    after: Option<String>,
    limit: Option<String>,
    interval_s: Option<String>,
}

/// Which orders `GET /v1/parties/{id}/orders` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OrderFilter {
    /// Resting on a book (or queued for an auction).
    #[default]
    Open,
    All,
}

/// Query parameters of `GET /v1/parties/{id}/orders`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrderListParams {
    #[serde(default)]
    consistency: Consistency,
    #[serde(default)]
    status: OrderFilter,
    after: Option<String>,
    limit: Option<String>,
}

/// Query parameters of the alert stream.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamParams {
    #[serde(default)]
    consistency: Consistency,
    after: Option<String>,
}

/// The `product` query parameter, which every read of one product needs.
fn product_param(product: Option<&str>) -> Result<String, ApiError> {
    match product {
        Some(product) if !product.is_empty() => Ok(product.to_owned()),
        _ => Err(ApiError::invalid_parameter(
            "name the product in the query, e.g. ?product=GPUH:H100/CNY",
        )),
    }
}

fn no_product(product_id: &str) -> ApiError {
    ApiError::not_found(format!("no product {product_id:?}"))
}

fn product_of<'a>(ledger: &'a Ledger, product_id: &str) -> Result<&'a Product, ApiError> {
    ledger
        .product(product_id)
        .ok_or_else(|| no_product(product_id))
}

fn no_account(id: u128) -> ApiError {
    ApiError::not_found(format!("no account {id}"))
}

/// A product in the catalogue: its spec, where its book stands, and its trading so far.
#[derive(Debug, Serialize)]
struct ProductView<'a> {
    spec: &'a ProductSpec,
    #[serde(with = "ledger::wire::u64_text")]
    listed_at_ns: u64,
    #[serde(with = "ledger::wire::option_u64_text")]
    best_bid: Option<u64>,
    #[serde(with = "ledger::wire::option_u64_text")]
    best_ask: Option<u64>,
    #[serde(with = "ledger::wire::option_u64_text")]
    last_price: Option<u64>,
    /// When the next auction clears (auction products only).
    #[serde(with = "ledger::wire::option_u64_text")]
    next_clearing_ns: Option<u64>,
    /// Orders resting on the book (or queued for the next auction).
    open_orders: usize,
    trades: usize,
}

impl<'a> ProductView<'a> {
    fn of(product: &'a Product) -> ProductView<'a> {
        ProductView {
            spec: &product.spec,
            listed_at_ns: product.listed_at_ns,
            best_bid: product.book.best_bid(),
            best_ask: product.book.best_ask(),
            last_price: product.last_price,
            next_clearing_ns: product.next_clearing_ns,
            open_orders: product.book.len(),
            trades: product.trades.len(),
        }
    }
}

/// One price level of a depth view.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct LevelView {
    #[serde(with = "ledger::wire::u64_text")]
    price: u64,
    #[serde(with = "ledger::wire::u64_text")]
    lots: u64,
    /// `lots × lot_size`, in the base asset's minor unit.
    #[serde(with = "ledger::wire::u128_text")]
    quantity: u128,
    orders: u32,
}

fn level_view(level: &Level, lot_size: u128) -> LevelView {
    LevelView {
        price: level.price,
        lots: level.lots,
        quantity: u128::from(level.lots).saturating_mul(lot_size),
        orders: level.orders,
    }
}

/// An order and, while it rests, its place in its price level's queue.
#[derive(Debug, Serialize)]
struct OrderView<'a> {
    #[serde(flatten)]
    order: &'a Order,
    queue: Option<QueueView>,
}

/// Where a resting order stands in its queue: what rests ahead of it at its price.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct QueueView {
    /// Arrival sequence in the book: an amendment down keeps it, a new price or more lots take
    /// a new one.
    #[serde(with = "ledger::wire::u64_text")]
    sequence: u64,
    orders_ahead: u32,
    #[serde(with = "ledger::wire::u64_text")]
    lots_ahead: u64,
}

fn queue_view(product: &Product, order_id: u128) -> Option<QueueView> {
    let resting = product.book.order(order_id)?;
    let ahead = product
        .book
        .queue(resting.side)
        .filter(|other| other.price == resting.price)
        .take_while(|other| other.id != order_id);
    let (orders_ahead, lots_ahead) = ahead.fold((0u32, 0u64), |(orders, lots), other| {
        (orders.saturating_add(1), lots.saturating_add(other.lots))
    });
    Some(QueueView {
        sequence: resting.sequence,
        orders_ahead,
        lots_ahead,
    })
}

/// A trade as one of its parties sees it.
#[derive(Debug, Serialize)]
struct FillView<'a> {
    /// The party's side of the trade.
    side: Side,
    #[serde(flatten)]
    trade: &'a Trade,
}

/// A package and what is left of its stock.
#[derive(Debug, Serialize)]
struct PackageView<'a> {
    #[serde(flatten)]
    package: &'a Package,
    #[serde(with = "ledger::wire::u64_text")]
    remaining: u64,
}

fn package_view(package: &Package) -> PackageView<'_> {
    PackageView {
        package,
        remaining: package.spec.stock.saturating_sub(package.sold),
    }
}

/// A quota with what can still be used of it.
#[derive(Debug, Serialize)]
struct QuotaView<'a> {
    #[serde(flatten)]
    quota: &'a Quota,
    /// Tokens that can still be used: `granted − used` while live, 0 once exhausted or
    /// expired (an expired quota's remainder went back to the mint).
    #[serde(with = "ledger::wire::u128_text")]
    remaining: u128,
}

fn usable(quota: &Quota) -> u128 {
    match quota.state {
        QuotaState::Live => quota.granted.saturating_sub(quota.used),
        QuotaState::Exhausted | QuotaState::Expired { .. } => 0,
    }
}

/// An account's quotas added up.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
struct QuotaTotals {
    quotas: u64,
    live: u64,
    #[serde(with = "ledger::wire::u128_text")]
    granted: u128,
    #[serde(with = "ledger::wire::u128_text")]
    used: u128,
    #[serde(with = "ledger::wire::u128_text")]
    remaining: u128,
}

fn quota_totals<'a>(quotas: impl Iterator<Item = &'a Quota>) -> QuotaTotals {
    quotas.fold(QuotaTotals::default(), |mut totals, quota| {
        totals.quotas += 1;
        if quota.state == QuotaState::Live {
            totals.live += 1;
        }
        totals.granted = totals.granted.saturating_add(quota.granted);
        totals.used = totals.used.saturating_add(quota.used);
        totals.remaining = totals.remaining.saturating_add(usable(quota));
        totals
    })
}

/// An alert with its place among the account's alerts (1 for the first): the cursor of the
/// alert list and the SSE event id.
#[derive(Clone, Debug, Serialize)]
struct AlertView {
    #[serde(with = "ledger::wire::u64_text")]
    sequence: u64,
    #[serde(flatten)]
    alert: Alert,
}

/// The account's alerts after the `after`-th, at most `limit` of them.
fn alerts_after(ledger: &Ledger, account_id: u128, after: u64, limit: usize) -> Vec<AlertView> {
    let Some(alerts) = ledger.shelf().alerts.get(&account_id) else {
        return Vec::new();
    };
    let skip = usize::try_from(after).unwrap_or(usize::MAX);
    alerts
        .iter()
        .enumerate()
        .skip(skip)
        .take(limit)
        .map(|(position, alert)| AlertView {
            // Positions are below usize::MAX, which fits u64 on every supported target.
            sequence: position as u64 + 1,
            alert: alert.clone(),
        })
        .collect()
}

/// One OHLC candle of a product's trades.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Candle {
    #[serde(with = "ledger::wire::u64_text")]
    start_ns: u64,
    #[serde(with = "ledger::wire::u64_text")]
    open: u64,
    #[serde(with = "ledger::wire::u64_text")]
    high: u64,
    #[serde(with = "ledger::wire::u64_text")]
    low: u64,
    #[serde(with = "ledger::wire::u64_text")]
    close: u64,
    /// Lots traded.
    #[serde(with = "ledger::wire::u64_text")]
    lots: u64,
    /// Base minor units traded (`Σ goods`).
    #[serde(with = "ledger::wire::u128_text")]
    volume: u128,
    /// Quote minor units paid (`Σ money`).
    #[serde(with = "ledger::wire::u128_text")]
    notional: u128,
    trades: u64,
}

/// The latest `limit` candles of `interval_ns` that have trades, oldest first. Candles start at
/// whole multiples of the interval since the Unix epoch; trades are in time order.
fn candles(trades: &[Trade], interval_ns: u64, limit: usize) -> Vec<Candle> {
    let mut candles: Vec<Candle> = Vec::new();
    // Newest first, so only the trades of the candles returned are visited.
    for trade in trades.iter().rev() {
        let start_ns = trade.at_ns - trade.at_ns % interval_ns;
        match candles.last_mut() {
            Some(candle) if candle.start_ns == start_ns => {
                candle.open = trade.price;
                candle.high = candle.high.max(trade.price);
                candle.low = candle.low.min(trade.price);
                candle.lots = candle.lots.saturating_add(trade.lots);
                candle.volume = candle.volume.saturating_add(trade.goods);
                candle.notional = candle.notional.saturating_add(trade.money);
                candle.trades += 1;
            }
            _ => {
                if candles.len() == limit {
                    break;
                }
                candles.push(Candle {
                    start_ns,
                    open: trade.price,
                    high: trade.price,
                    low: trade.price,
                    close: trade.price,
                    lots: trade.lots,
                    volume: trade.goods,
                    notional: trade.money,
                    trades: 1,
                });
            }
        }
    }
    candles.reverse();
    candles
}

/// `GET /v1/products`: the catalogue, by product id.
pub(crate) async fn products(
    State(api): State<ApiState>,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        let products: Vec<ProductView> = ledger
            .market()
            .products
            .values()
            .map(ProductView::of)
            .collect();
        Ok(json!({ "products": products }))
    })
    .await
}

/// A read of one product (`?product=`): parses the product id and, with `parse`, the rest of
/// the query (400 if either is bad), makes the read fresh, answers 404 for an unknown product,
/// and otherwise what `read` makes of the product.
async fn product_answer<P, T: Serialize>(
    api: &ApiState,
    params: &ProductParams,
    uri: &Uri,
    headers: &HeaderMap,
    parse: impl FnOnce(&ProductParams) -> Result<P, ApiError>,
    read: impl FnOnce(&Ledger, &Product, P) -> Result<T, ApiError>,
) -> Response {
    let parsed = product_param(params.product.as_deref())
        .and_then(|product_id| Ok((product_id, parse(params)?)));
    let (product_id, parsed) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    answer(api, params.consistency, uri, headers, |ledger| {
        read(ledger, product_of(ledger, &product_id)?, parsed)
    })
    .await
}

/// A bounded count from the query, as a `usize` (every bound here is far below `usize::MAX`).
fn count_param(
    what: &str,
    text: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let count = parse_bounded(what, text, default as u64, 1, max as u64)?;
    Ok(usize::try_from(count).unwrap_or(max))
}

/// `GET /v1/market/depth?product=&levels=`: the best `levels` price levels of each side.
pub(crate) async fn depth(
    State(api): State<ApiState>,
    Params(params): Params<ProductParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let parse = |params: &ProductParams| {
        let levels = params.levels.as_deref();
        count_param(
            "levels",
            levels,
            MARKET_DEPTH_LEVELS_DEFAULT,
            MARKET_DEPTH_LEVELS_MAX,
        )
    };
    product_answer(
        &api,
        &params,
        &uri,
        &headers,
        parse,
        |ledger, product, levels| {
            let lot_size = product.spec.lot_size;
            let (bids, asks) = product.book.depth(levels);
            let view = |levels: Vec<Level>| -> Vec<LevelView> {
                levels
                    .iter()
                    .map(|level| level_view(level, lot_size))
                    .collect()
            };
            Ok(json!({
                "product_id": product.spec.product_id,
                "journal_index": ledger.head().index,
                "bids": view(bids),
                "asks": view(asks),
                "last_price": product.last_price.map(|price| price.to_string()),
            }))
        },
    )
    .await
}

/// `GET /v1/market/trades?product=&after=<trade id>&limit=`: a product's trades, oldest first.
pub(crate) async fn trades(
    State(api): State<ApiState>,
    Params(params): Params<ProductParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let parse =
        |params: &ProductParams| list_page(params.after.as_deref(), params.limit.as_deref());
    product_answer(
        &api,
        &params,
        &uri,
        &headers,
        parse,
        |_, product, (after, limit)| {
            let trades = &product.trades;
            // Trade ids grow with every trade, so a product's trades are in id order.
            let start = after.map_or(0, |after| {
                trades.partition_point(|trade| u128::from(trade.trade_id) <= after)
            });
            let (trades, next) = page(trades[start..].iter(), limit, |trade| trade.trade_id);
            Ok(json!({ "trades": trades, "next": next }))
        },
    )
    .await
}

/// `GET /v1/market/candles?product=&interval_s=&limit=`: OHLC and volume per interval.
pub(crate) async fn candles_of_product(
    State(api): State<ApiState>,
    Params(params): Params<ProductParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let parse = |params: &ProductParams| {
        let interval_s = parse_bounded(
            "interval_s",
            params.interval_s.as_deref(),
            MARKET_CANDLE_INTERVAL_S_DEFAULT,
            1,
            MARKET_CANDLE_INTERVAL_S_MAX,
        )?;
        let limit = params.limit.as_deref();
        let limit = count_param("limit", limit, MARKET_CANDLES_DEFAULT, MARKET_CANDLES_MAX)?;
        Ok((interval_s, limit))
    };
    product_answer(
        &api,
        &params,
        &uri,
        &headers,
        parse,
        |_, product, (interval_s, limit)| {
            Ok(json!({
                "product_id": product.spec.product_id,
                "interval_s": interval_s,
                "candles": candles(&product.trades, interval_s * NS_PER_S, limit),
            }))
        },
    )
    .await
}

/// `GET /v1/orders/{id}`.
pub(crate) async fn order(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer_by_id(
        &api,
        "order id",
        &id,
        params.consistency,
        &uri,
        &headers,
        |ledger, id| {
            let order = ledger
                .order(id)
                .ok_or_else(|| ApiError::not_found(format!("no order {id}")))?;
            let queue = match ledger.product(&order.spec.product_id) {
                Some(product) if order.status == OrderStatus::Open => queue_view(product, id),
                _ => None,
            };
            owned(OrderView { order, queue })
        },
    )
    .await
}

/// `GET /v1/parties/{id}/orders?status=open|all&after=&limit=`: by order id.
pub(crate) async fn party_orders(
    State(api): State<ApiState>,
    PathText(party): PathText,
    Params(params): Params<OrderListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let filter = params.status;
    let page_params = ListParams {
        consistency: params.consistency,
        after: params.after,
        limit: params.limit,
    };
    party_list(
        &api,
        party,
        &page_params,
        &uri,
        &headers,
        |ledger, party, after, limit| {
            let start = after.map_or(Bound::Unbounded, Bound::Excluded);
            // No index by owner: a scan of the orders, like the bank's allocations by host.
            let orders = ledger
                .market()
                .orders
                .range((start, Bound::Unbounded))
                .map(|(_, order)| order)
                .filter(|order| {
                    order.owner == *party
                        && (filter == OrderFilter::All || order.status == OrderStatus::Open)
                });
            let (orders, next) = page(orders, limit, |order| order.spec.order_id);
            Ok(json!({ "orders": orders, "next": next }))
        },
    )
    .await
}

/// The trades `party` took part in after trade `after`, by trade id, at most `limit + 1` (so a
/// page knows whether more follow).
fn fills_of<'a>(
    ledger: &'a Ledger,
    party: &PartyId,
    after: Option<u128>,
    limit: usize,
) -> Vec<FillView<'a>> {
    let mut fills: Vec<FillView> = Vec::new();
    // No index by party: each product's trades from the cursor on, merged by trade id.
    for product in ledger.market().products.values() {
        let trades = &product.trades;
        let start = after.map_or(0, |after| {
            trades.partition_point(|trade| u128::from(trade.trade_id) <= after)
        });
        let taken = trades[start..]
            .iter()
            .filter_map(|trade| {
                let side = if trade.buyer == *party {
                    Side::Buy
                } else if trade.seller == *party {
                    Side::Sell
                } else {
                    return None;
                };
                Some(FillView { side, trade })
            })
            .take(limit + 1);
        fills.extend(taken);
    }
    fills.sort_by_key(|fill| fill.trade.trade_id);
    fills.truncate(limit + 1);
    fills
}

/// `GET /v1/parties/{id}/fills?after=<trade id>&limit=`: the party's trades, with its side.
pub(crate) async fn party_fills(
    State(api): State<ApiState>,
    PathText(party): PathText,
    Params(params): Params<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    party_list(
        &api,
        party,
        &params,
        &uri,
        &headers,
        |ledger, party, after, limit| {
            let fills = fills_of(ledger, party, after, limit);
            let (fills, next) = page(fills.into_iter(), limit, |fill| fill.trade.trade_id);
            Ok(json!({ "fills": fills, "next": next }))
        },
    )
    .await
}

/// `GET /v1/packages?after=<package id>&limit=`: the shelf, by package id.
pub(crate) async fn packages(
    State(api): State<ApiState>,
    Params(params): Params<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // Package ids are text, so the cursor is the last package id itself.
    text_list(&api, params, &uri, &headers, |ledger, range, limit| {
        let packages = ledger
            .shelf()
            .packages
            .range::<String, _>(range)
            .map(|(_, package)| package_view(package));
        let (packages, next) = page(packages, limit, |view| view.package.spec.package_id.clone());
        Ok(json!({ "packages": packages, "next": next }))
    })
    .await
}

/// `GET /v1/packages/{id}`.
pub(crate) async fn package(
    State(api): State<ApiState>,
    PathText(package_id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        let package = ledger.shelf().packages.get(&package_id);
        let package =
            package.ok_or_else(|| ApiError::not_found(format!("no package {package_id:?}")))?;
        owned(package_view(package))
    })
    .await
}

/// `GET /v1/accounts/{id}/quotas?after=<quota id>&limit=`: the account's token quotas by quota
/// id, with the totals of all of them.
pub(crate) async fn account_quotas(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let parsed = parse_u128("account id", &id).and_then(|id| {
        let (after, limit) = list_page(params.after.as_deref(), params.limit.as_deref())?;
        Ok((id, after, limit))
    });
    let (id, after, limit) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        let account = ledger.account(id).ok_or_else(|| no_account(id))?;
        // No index by account: quotas are one per token purchase, and a scan is cheap.
        let all = || {
            ledger
                .shelf()
                .quotas
                .values()
                .filter(|quota| quota.account_id == id)
        };
        let totals = quota_totals(all());
        let quotas = all()
            .filter(|quota| after.is_none_or(|after| quota.quota_id > after))
            .map(|quota| QuotaView {
                quota,
                remaining: usable(quota),
            });
        let (quotas, next) = page(quotas, limit, |view| view.quota.quota_id);
        Ok(json!({
            "account_id": id.to_string(),
            "owner": account.party,
            "asset": account.asset,
            "totals": totals,
            "quotas": quotas,
            "next": next,
        }))
    })
    .await
}

/// `GET /v1/accounts/{id}/alerts?after=<sequence>&limit=`: the account's quota alerts in the
/// order they fired.
pub(crate) async fn account_alerts(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let parsed = parse_u128("account id", &id).and_then(|id| {
        let after = parse_bounded("after", params.after.as_deref(), 0, 0, u64::MAX)?;
        Ok((id, after, page_limit(params.limit.as_deref())?))
    });
    let (id, after, limit) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        if ledger.account(id).is_none() {
            return Err(no_account(id));
        }
        let alerts = alerts_after(ledger, id, after, limit + 1);
        let (alerts, next) = page(alerts.into_iter(), limit, |alert| alert.sequence);
        Ok(json!({ "alerts": alerts, "next": next }))
    })
    .await
}

/// The `Last-Event-ID` header an SSE client sends when it reconnects.
const LAST_EVENT_ID: &str = "last-event-id";

/// `GET /v1/accounts/{id}/alerts/stream?after=<sequence>`: the account's alerts as Server-Sent
/// Events (`event: alert`, `id:` the sequence, `data:` the alert as JSON): those after `after`
/// (or the `Last-Event-ID` header; all by default), then each new one as it is applied.
pub(crate) async fn alert_stream(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<StreamParams>,
    headers: HeaderMap,
) -> Response {
    let last_event_id = headers
        .get(LAST_EVENT_ID)
        .and_then(|value| value.to_str().ok());
    let parsed = parse_u128("account id", &id).and_then(|id| {
        let after = params.after.as_deref().or(last_event_id);
        Ok((id, parse_bounded("after", after, 0, 0, u64::MAX)?))
    });
    let (id, after) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let Ok(permit) = api.alert_streams.clone().try_acquire_owned() else {
        return ApiError::overloaded(format!(
            "this node serves {} alert streams already; retry shortly",
            crate::limits::ALERT_STREAMS_MAX
        ))
        .into_response();
    };
    if let Err(answer) = stream_read_point(&api, params.consistency, &headers).await {
        return answer;
    }
    if api.applied.read(|ledger| ledger.account(id).is_none()) {
        return no_account(id).into_response();
    }
    let stream = AlertStream {
        stopping: api.stopping.clone(),
        api,
        account_id: id,
        sent: after,
        pending: VecDeque::new(),
        _permit: permit,
    };
    let events = futures_util::stream::unfold(stream, AlertStream::next_event);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(ALERT_STREAM_KEEP_ALIVE))
        .into_response()
}

/// Waits until this node has applied what a read at `consistency` must see: on the leader, as
/// for any read; on a follower, the leader's linearizable journal head (a stream cannot be
/// forwarded, so it is served here once this node has caught up).
async fn stream_read_point(
    api: &ApiState,
    consistency: Consistency,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let leader = match read_point(api, consistency).await? {
        ReadPoint::Here => return Ok(()),
        ReadPoint::AtLeader(leader) => leader,
    };
    let uri = Uri::from_static("/v1/head?consistency=linearizable");
    let response = api
        .forwarder
        .forward(&leader, Method::GET, &uri, headers, Bytes::new())
        .await;
    if !response.status().is_success() {
        return Err(response);
    }
    let body = axum::body::to_bytes(response.into_body(), READ_POINT_BYTES_MAX)
        .await
        .map_err(|error| {
            ApiError::unavailable(format!("reading the leader's head: {error}")).into_response()
        })?;
    #[derive(Deserialize)]
    struct HeadAnswer {
        head: ledger::Head,
    }
    let target = serde_json::from_slice::<HeadAnswer>(&body)
        .map_err(|error| {
            ApiError::unavailable(format!("the leader's head does not parse: {error}"))
                .into_response()
        })?
        .head
        .index;
    let deadline = tokio::time::Instant::now() + READ_DEADLINE;
    while api.applied.read(|ledger| ledger.head().index) < target {
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::timeout(format!(
                "this node did not apply up to the leader's journal index {target} within {} s",
                READ_DEADLINE.as_secs()
            ))
            .into_response());
        }
        tokio::time::sleep(ALERT_STREAM_POLL / 10).await;
    }
    Ok(())
}

/// The state of one alert stream.
struct AlertStream {
    api: ApiState,
    stopping: watch::Receiver<bool>,
    account_id: u128,
    /// The sequence of the last alert sent (0: none).
    sent: u64,
    /// Alerts read from the ledger and not sent yet.
    pending: VecDeque<AlertView>,
    /// Held while the stream lives (`ALERT_STREAMS_MAX`).
    _permit: OwnedSemaphorePermit,
}

impl AlertStream {
    /// The next event, waiting for a new alert as long as it takes; `None` ends the stream
    /// (the node is stopping).
    async fn next_event(mut self) -> Option<(Result<Event, axum::Error>, AlertStream)> {
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            if let Some(alert) = self.pending.pop_front() {
                self.sent = alert.sequence;
                let event = Event::default()
                    .event("alert")
                    .id(alert.sequence.to_string())
                    .json_data(&alert);
                return Some((event, self));
            }
            let (account_id, sent) = (self.account_id, self.sent);
            let fresh = self
                .api
                .applied
                .read(|ledger| alerts_after(ledger, account_id, sent, ALERT_STREAM_BATCH_MAX));
            if !fresh.is_empty() {
                self.pending.extend(fresh);
                continue;
            }
            tokio::select! {
                changed = self.stopping.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = tokio::time::sleep(ALERT_STREAM_POLL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::Asset;

    fn trade(trade_id: u64, at_s: u64, price: u64, lots: u64) -> Trade {
        Trade {
            trade_id,
            product_id: "GPUH:H100/CNY".to_owned(),
            buy_order_id: 1,
            sell_order_id: 2,
            buyer: PartyId::new("b"),
            seller: PartyId::new("s"),
            price,
            lots,
            vouchers: Vec::new(),
            goods: u128::from(lots) * 3_600,
            money: u128::from(price * lots),
            fee: 0,
            aggressor: Some(Side::Buy),
            at_ns: at_s * NS_PER_S,
            journal_index: trade_id,
        }
    }

    #[test]
    fn candles_bucket_trades_by_time_and_keep_the_latest() {
        let trades = [
            trade(1, 100, 2_500, 4),
            trade(2, 110, 2_600, 1),
            trade(3, 119, 2_400, 2),
            trade(4, 120, 2_700, 3),
            trade(5, 185, 2_550, 1),
        ];
        let all = candles(&trades, 60 * NS_PER_S, 10);
        assert_eq!(all.len(), 3);
        // [60, 120): three trades, opened at 2,500 and closed at 2,400.
        assert_eq!(
            all[0],
            Candle {
                start_ns: 60 * NS_PER_S,
                open: 2_500,
                high: 2_600,
                low: 2_400,
                close: 2_400,
                lots: 7,
                volume: 7 * 3_600,
                notional: 10_000 + 2_600 + 4_800,
                trades: 3,
            }
        );
        assert_eq!(
            (all[1].start_ns, all[1].open, all[1].close, all[1].lots),
            (120 * NS_PER_S, 2_700, 2_700, 3)
        );
        assert_eq!(all[2].start_ns, 180 * NS_PER_S);
        // The latest two only; a one-second interval splits every trade.
        let latest = candles(&trades, 60 * NS_PER_S, 2);
        assert_eq!(latest, all[1..].to_vec());
        assert_eq!(candles(&trades, NS_PER_S, 100).len(), 5);
        assert!(candles(&[], NS_PER_S, 100).is_empty());
    }

    #[test]
    fn quota_totals_count_only_what_can_still_be_used() {
        let quota = |quota_id: u128, used: u128, state: QuotaState| Quota {
            quota_id,
            account_id: 7,
            owner: PartyId::new("sme"),
            provider: PartyId::new("provider"),
            asset: Asset::Tok("qwen".to_owned()),
            granted: 1_000,
            used,
            granted_at_ns: 0,
            expires_at_ns: 1,
            state,
            alerted: Vec::new(),
            transfer_count: 0,
        };
        let quotas = [
            quota(1, 800, QuotaState::Live),
            quota(2, 1_000, QuotaState::Exhausted),
            quota(3, 100, QuotaState::Expired { returned: 900 }),
        ];
        assert_eq!(
            quota_totals(quotas.iter()),
            QuotaTotals {
                quotas: 3,
                live: 1,
                granted: 3_000,
                used: 1_900,
                remaining: 200,
            }
        );
    }
}
