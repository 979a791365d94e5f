//! The continuous book end to end: an institution's H100-hours sold to an SME, every balance to
//! the fen and the GPU-second, and every read of the book.
//!
//! By hand (lot = 3,600 GPU-s, fee 30 bps of each fill's money, each share rounded half-even):
//! 1. `univ` sells 10 lots at 2,500 (order 101): 36,000 GPU-s reserved (`debits_pending`).
//! 2. `sme` buys 4 lots at 2,600 (201): 4 fills at the resting 2,500 = 10,000 fen; fee 30,
//!    `univ` gets 9,970; `sme` receives 14,400 GPU-s. `univ` still reserves 6 lots (21,600).
//! 3. `univ` cancels 101: its reservation is released (0 pending).
//! 4. `univ` sells 5 lots at 2,700 (102), then `lab` 3 lots at 2,700 (103).
//! 5. `univ` amends 102 down to 4 lots at the same price: it keeps its place (same sequence,
//!    nothing ahead of it; `lab`'s 103 has 1 order and 4 lots ahead); 14,400 reserved.
//! 6. `sme` buys 9 lots at 2,700 (202): 4 fill from 102 first (priority), then 3 from 103, and
//!    2 rest as a bid (a partial fill), reserving 2 × 2,700 = 5,400 fen.
//!    - 4 × 2,700 = 10,800: fee 32.4 → 32, `univ` 10,767.6 → 10,768 (sum 10,800);
//!    - 3 × 2,700 = 8,100: fee 24.3 → 24, `lab` 8,075.7 → 8,076 (sum 8,100).
//! 7. Totals: `sme` paid 10,000 + 10,800 + 8,100 = 28,900 and holds 14,400 + 25,200 = 39,600
//!    GPU-s; `univ` got 9,970 + 10,768 = 20,738 and gave 14,400 + 14,400 = 28,800 GPU-s; `lab`
//!    got 8,076 for 10,800 GPU-s; fees 30 + 32 + 24 = 86.
//! 8. `sme` cancels 202: its 5,400 fen are released.

use crate::fixture::{
    balances, cny_fees, levels, number, open_market, order, place, posted, product_read,
    CONTINUOUS, INSTITUTION_FUNDS_GPU_S, LAB, LAB_CNY, LAB_GPU, LOT, SME, SME_CNY, SME_FUNDS_FEN,
    SME_GPU, UNIV, UNIV_CNY, UNIV_GPU,
};
use crate::fixture::{expect_accepted, statement_closes};
use ledger::trading::{Order, OrderEnd, OrderStatus, Trade};
use ledger::{Command, CommandResult, Effect};
use market::book::{Side, TimeInForce};
use serde_json::Value;
use std::time::Instant;
use tests::Cluster;

fn limit(
    id: u128,
    side: Side,
    price: u64,
    lots: u128,
    base: u128,
    quote: u128,
) -> ledger::trading::OrderSpec {
    order(
        id,
        CONTINUOUS,
        side,
        Some(price),
        lots,
        TimeInForce::Gtc,
        base,
        quote,
    )
}

fn read_order(cluster: &mut Cluster, id: u128) -> (Order, Value) {
    let view: Value = cluster.read(&format!("/v1/orders/{id}"));
    let order: Order = serde_json::from_value(view.clone())
        .unwrap_or_else(|error| panic!("order {id} does not match the contract: {error}: {view}"));
    (order, view["queue"].clone())
}

fn depth(cluster: &mut Cluster) -> Value {
    product_read(cluster, "/v1/market/depth", CONTINUOUS, "")
}

#[test]
fn an_institution_sells_gpu_hours_to_an_sme_on_the_continuous_book() {
    let began = Instant::now();
    let mut cluster = Cluster::start(3);
    open_market(&mut cluster);
    let fees_before = balances(&mut cluster, cny_fees()).credits_posted;

    // 1. The resting sell reserves its lots.
    let placed = place(
        &mut cluster,
        UNIV,
        limit(101, Side::Sell, 2_500, 10, UNIV_GPU, UNIV_CNY),
    );
    assert!(placed.trades.is_empty());
    assert_eq!((placed.rests, placed.status), (10, OrderStatus::Open));
    assert_eq!(
        balances(&mut cluster, UNIV_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 0, 36_000)
    );
    let book = depth(&mut cluster);
    assert_eq!(levels(&book, "asks"), [(2_500, 10, 1)]);
    assert!(levels(&book, "bids").is_empty());

    // 2. A limit buy at 2,600 takes 4 lots at the resting 2,500.
    let placed = place(
        &mut cluster,
        SME,
        limit(201, Side::Buy, 2_600, 4, SME_GPU, SME_CNY),
    );
    assert_eq!((placed.rests, placed.status), (0, OrderStatus::Filled));
    assert_eq!(placed.trades.len(), 1);
    let trade = &placed.trades[0];
    assert_eq!(
        (trade.price, trade.lots, trade.goods, trade.money, trade.fee),
        (2_500, 4, 14_400, 10_000, 30)
    );
    assert_eq!((trade.buy_order_id, trade.sell_order_id), (201, 101));
    assert_eq!((trade.buyer.as_str(), trade.seller.as_str()), (SME, UNIV));
    assert_eq!(trade.aggressor, Some(Side::Buy));
    assert_eq!(
        balances(&mut cluster, SME_CNY),
        posted(SME_FUNDS_FEN, 10_000, 0)
    );
    assert_eq!(balances(&mut cluster, SME_GPU), posted(14_400, 0, 0));
    assert_eq!(balances(&mut cluster, UNIV_CNY), posted(9_970, 0, 0));
    assert_eq!(
        balances(&mut cluster, UNIV_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 14_400, 21_600)
    );
    assert_eq!(
        balances(&mut cluster, cny_fees()).credits_posted,
        fees_before + 30
    );
    let (sell, _) = read_order(&mut cluster, 101);
    assert_eq!(
        (sell.filled_lots, sell.open_lots, sell.status),
        (4, 6, OrderStatus::Open)
    );
    assert_eq!(levels(&depth(&mut cluster), "asks"), [(2_500, 6, 1)]);

    // 3. Cancelling the rest releases its reservation.
    expect_accepted(
        &mut cluster,
        "/v1/orders/cancel",
        UNIV,
        Command::CancelOrder { order_id: 101 },
    );
    assert_eq!(
        balances(&mut cluster, UNIV_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 14_400, 0)
    );
    let (sell, queue) = read_order(&mut cluster, 101);
    assert_eq!(
        sell.status,
        OrderStatus::Cancelled {
            why: OrderEnd::ByOwner
        }
    );
    // Its reservation is gone and nothing is open.
    assert_eq!(
        (sell.filled_lots, sell.open_lots, sell.pending_transfer_id),
        (4, 0, None)
    );
    assert!(
        queue.is_null(),
        "a cancelled order has no place in a queue: {queue}"
    );
    assert!(levels(&depth(&mut cluster), "asks").is_empty());

    // 4. Two asks at one price, univ's first.
    place(
        &mut cluster,
        UNIV,
        limit(102, Side::Sell, 2_700, 5, UNIV_GPU, UNIV_CNY),
    );
    place(
        &mut cluster,
        LAB,
        limit(103, Side::Sell, 2_700, 3, LAB_GPU, LAB_CNY),
    );
    assert_eq!(levels(&depth(&mut cluster), "asks"), [(2_700, 8, 2)]);
    let (_, queue_before) = read_order(&mut cluster, 102);
    assert_eq!(number(&queue_before["orders_ahead"]), 0);

    // 5. Amending down at the same price keeps the place in the queue.
    let outcome = expect_accepted(
        &mut cluster,
        "/v1/orders/amend",
        UNIV,
        Command::AmendOrder {
            order_id: 102,
            price: None,
            quantity: 4 * LOT,
        },
    );
    assert_eq!(
        outcome.result,
        CommandResult::Accepted(Effect::OrderAmended {
            kept_priority: true
        })
    );
    let (amended, queue) = read_order(&mut cluster, 102);
    assert_eq!((amended.open_lots, amended.resting_price), (4, Some(2_700)));
    assert_eq!(
        queue["sequence"], queue_before["sequence"],
        "the same sequence: {queue}"
    );
    assert_eq!(
        (number(&queue["orders_ahead"]), number(&queue["lots_ahead"])),
        (0, 0)
    );
    let (_, behind) = read_order(&mut cluster, 103);
    assert_eq!(
        (
            number(&behind["orders_ahead"]),
            number(&behind["lots_ahead"])
        ),
        (1, 4)
    );
    assert_eq!(levels(&depth(&mut cluster), "asks"), [(2_700, 7, 2)]);
    assert_eq!(
        balances(&mut cluster, UNIV_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 14_400, 14_400)
    );

    // 6. A buy of 9 takes univ's 4 first, then lab's 3, and rests 2.
    let placed = place(
        &mut cluster,
        SME,
        limit(202, Side::Buy, 2_700, 9, SME_GPU, SME_CNY),
    );
    assert_eq!((placed.rests, placed.status), (2, OrderStatus::Open));
    let fills: Vec<(u128, u64, u128, u128)> = placed
        .trades
        .iter()
        .map(|trade| (trade.sell_order_id, trade.lots, trade.money, trade.fee))
        .collect();
    assert_eq!(fills, [(102, 4, 10_800, 32), (103, 3, 8_100, 24)]);

    // 7. Every balance, by hand.
    assert_eq!(
        balances(&mut cluster, SME_CNY),
        posted(SME_FUNDS_FEN, 28_900, 5_400)
    );
    assert_eq!(balances(&mut cluster, SME_GPU), posted(39_600, 0, 0));
    assert_eq!(balances(&mut cluster, UNIV_CNY), posted(20_738, 0, 0));
    assert_eq!(
        balances(&mut cluster, UNIV_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 28_800, 0)
    );
    assert_eq!(balances(&mut cluster, LAB_CNY), posted(8_076, 0, 0));
    assert_eq!(
        balances(&mut cluster, LAB_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 10_800, 0)
    );
    assert_eq!(
        balances(&mut cluster, cny_fees()).credits_posted,
        fees_before + 86
    );

    // The reads: the order, the book, the trades (paged), the fills, the orders, the candles,
    // the catalogue.
    let (buy, queue) = read_order(&mut cluster, 202);
    assert_eq!(
        (buy.filled_lots, buy.open_lots, buy.notional, buy.status),
        (7, 2, 18_900, OrderStatus::Open)
    );
    assert_eq!(number(&queue["orders_ahead"]), 0);
    let book = depth(&mut cluster);
    assert_eq!(levels(&book, "bids"), [(2_700, 2, 1)]);
    assert!(levels(&book, "asks").is_empty());
    assert_eq!(number(&book["last_price"]), 2_700);

    let all: Value = product_read(&mut cluster, "/v1/market/trades", CONTINUOUS, "");
    let trades: Vec<Trade> = serde_json::from_value(all["trades"].clone()).expect("trades");
    let summary: Vec<(u128, u128, u64, u64)> = trades
        .iter()
        .map(|trade| {
            (
                trade.buy_order_id,
                trade.sell_order_id,
                trade.price,
                trade.lots,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (201, 101, 2_500, 4),
            (202, 102, 2_700, 4),
            (202, 103, 2_700, 3)
        ]
    );
    assert!(all["next"].is_null());
    let first: Value = product_read(&mut cluster, "/v1/market/trades", CONTINUOUS, "limit=2");
    assert_eq!(first["trades"].as_array().map(Vec::len), Some(2));
    assert_eq!(number(&first["next"]), u128::from(trades[1].trade_id));
    let rest: Value = product_read(
        &mut cluster,
        "/v1/market/trades",
        CONTINUOUS,
        &format!("after={}", trades[1].trade_id),
    );
    assert_eq!(rest["trades"][0]["trade_id"], all["trades"][2]["trade_id"]);
    assert!(rest["next"].is_null());

    let fills: Value = cluster.read(&format!("/v1/parties/{SME}/fills"));
    let sides: Vec<(&str, u128)> = fills["fills"]
        .as_array()
        .expect("fills")
        .iter()
        .map(|fill| (fill["side"].as_str().unwrap_or("?"), number(&fill["money"])))
        .collect();
    assert_eq!(sides, [("buy", 10_000), ("buy", 10_800), ("buy", 8_100)]);
    let fills: Value = cluster.read(&format!("/v1/parties/{UNIV}/fills"));
    let sides: Vec<(&str, u128)> = fills["fills"]
        .as_array()
        .expect("fills")
        .iter()
        .map(|fill| (fill["side"].as_str().unwrap_or("?"), number(&fill["fee"])))
        .collect();
    assert_eq!(sides, [("sell", 30), ("sell", 32)]);

    let open: Value = cluster.read(&format!("/v1/parties/{SME}/orders"));
    let ids: Vec<u128> = open["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|order| number(&order["spec"]["order_id"]))
        .collect();
    assert_eq!(ids, [202]);
    let every: Value = cluster.read(&format!("/v1/parties/{UNIV}/orders?status=all"));
    let ids: Vec<u128> = every["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|order| number(&order["spec"]["order_id"]))
        .collect();
    assert_eq!(ids, [101, 102]);

    // Candles of a week: the trades' own times say which candles there are.
    const WEEK_S: u64 = 7 * 24 * 3600;
    let candles: Value = product_read(
        &mut cluster,
        "/v1/market/candles",
        CONTINUOUS,
        &format!("interval_s={WEEK_S}"),
    );
    let week_ns = WEEK_S * ledger::limits::NS_PER_S;
    let mut expected: Vec<(u64, Vec<&Trade>)> = Vec::new();
    for trade in &trades {
        let start = trade.at_ns - trade.at_ns % week_ns;
        match expected.last_mut() {
            Some((last, group)) if *last == start => group.push(trade),
            _ => expected.push((start, vec![trade])),
        }
    }
    let candles = candles["candles"].as_array().expect("candles");
    assert_eq!(candles.len(), expected.len(), "{candles:?}");
    for (candle, (start, group)) in candles.iter().zip(&expected) {
        let prices: Vec<u128> = group.iter().map(|trade| u128::from(trade.price)).collect();
        assert_eq!(number(&candle["start_ns"]), u128::from(*start));
        assert_eq!(number(&candle["open"]), prices[0]);
        assert_eq!(number(&candle["close"]), prices[prices.len() - 1]);
        assert_eq!(
            number(&candle["high"]),
            prices.iter().copied().max().unwrap_or(0)
        );
        assert_eq!(
            number(&candle["low"]),
            prices.iter().copied().min().unwrap_or(0)
        );
        let lots: u64 = group.iter().map(|trade| trade.lots).sum();
        assert_eq!(number(&candle["lots"]), u128::from(lots));
        assert_eq!(number(&candle["volume"]), u128::from(lots) * LOT);
    }
    // All in one week (the usual case), by hand: open 2,500, high 2,700, close 2,700, 11 lots,
    // 28,900 fen.
    if let [candle] = candles.as_slice() {
        assert_eq!(number(&candle["notional"]), 28_900);
        assert_eq!(candle["trades"], 3);
    }

    let catalogue: Value = cluster.read("/v1/products");
    let product = catalogue["products"]
        .as_array()
        .expect("products")
        .iter()
        .find(|product| product["spec"]["product_id"] == CONTINUOUS)
        .cloned()
        .expect("the continuous product is listed");
    assert_eq!(number(&product["best_bid"]), 2_700);
    assert!(product["best_ask"].is_null());
    assert_eq!(number(&product["last_price"]), 2_700);
    assert!(product["next_clearing_ns"].is_null());
    assert_eq!(
        (product["open_orders"].as_u64(), product["trades"].as_u64()),
        (Some(1), Some(3))
    );

    // 8. Cancelling the rest of the bid releases its money.
    expect_accepted(
        &mut cluster,
        "/v1/orders/cancel",
        SME,
        Command::CancelOrder { order_id: 202 },
    );
    assert_eq!(
        balances(&mut cluster, SME_CNY),
        posted(SME_FUNDS_FEN, 28_900, 0)
    );
    assert!(levels(&depth(&mut cluster), "bids").is_empty());

    // Every trade leg, reservation and release is in the accounts' statements. sme's CNY, 9
    // lines: the funding; 201's payment and fee (a taker that fills at once reserves nothing);
    // 202's two payments and two fees, the reservation of its 2 resting lots, and their release
    // when it is cancelled.
    for id in [SME_GPU, UNIV_CNY, UNIV_GPU, LAB_CNY, LAB_GPU, cny_fees()] {
        assert!(statement_closes(&mut cluster, id) > 0);
    }
    assert_eq!(statement_closes(&mut cluster, SME_CNY), 9);
    cluster.wait_converged();
    eprintln!(
        "market t10: continuous book checked in {:.1?}",
        began.elapsed()
    );
}
