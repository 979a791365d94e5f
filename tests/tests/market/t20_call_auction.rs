//! The call auction: orders from four parties collect in the book, nothing trades until the
//! interval is over, and the first command stamped at or after the due time clears them all at
//! one price (`spec/market.md`: the most volume, then the least imbalance, then the price
//! nearest the last clearing, then the lowest).
//!
//! Round 1, by hand (lots; tick 10):
//!
//! | price | demand (bids ≥ p) | supply (asks ≤ p) | volume | imbalance |
//! |---|---|---|---|---|
//! | 2,400 | 7 | 3 | 3 | 4 |
//! | 2,450 | 7 | 5 | 5 | 2 |
//! | 2,500 | 7 | 5 | 5 | 2 |
//! | 2,700 | 5 | 5 | 5 | 0 |
//! | 2,800 | 0 | 9 | 0 | 9 |
//!
//! from bids `sme` 3 @ 2,700, `sme-b` 2 @ 2,700, `sme-b` 2 @ 2,500 and asks `univ` 3 @ 2,400,
//! `lab` 2 @ 2,450, `lab` 4 @ 2,800. The most volume, 5, is at 2,450, 2,500 and 2,700; the least
//! imbalance picks 2,700 over the lower prices. In price-time priority `sme`'s 3 meet `univ`'s 3
//! and `sme-b`'s 2 meet `lab`'s 2: 3 × 2,700 = 8,100 (fee 24.3 → 24, `univ` 8,076) and
//! 2 × 2,700 = 5,400 (fee 16.2 → 16, `lab` 5,384). `sme-b`'s bid at 2,500 and `lab`'s ask at
//! 2,800 rest.
//!
//! Round 2: `sme-b` cancels its bid; `sme` bids 2 @ 2,600 and `univ` asks 2 @ 2,400. Volume 2 and
//! imbalance 0 at both 2,400 and 2,600; the last price, 2,700, is nearer 2,600, which clears
//! (without a reference the lowest, 2,400, would): 2 × 2,600 = 5,200, fee 15.6 → 16, `univ`
//! 5,184.4 → 5,184.
//!
//! Balances after both: `sme` paid 13,300 for 18,000 GPU-s; `sme-b` 5,400 for 7,200; `univ` got
//! 13,260 for 18,000; `lab` 5,384 for 7,200 and reserves 14,400 for its ask; fees 56.
//!
//! The orders of a round go in one batch request, sent just after a clearing time has passed,
//! so that no clearing falls between them.

use crate::fixture::{
    balances, cny_fees, expect_accepted, h100, levels, number, open_market, order, posted,
    product_read, AUCTION, AUCTION_INTERVAL_S, FEE_BPS, INSTITUTION_FUNDS_GPU_S, LAB, LAB_CNY,
    LAB_GPU, LOT, SME, SME_B, SME_B_CNY, SME_B_GPU, SME_CNY, SME_FUNDS_FEN, SME_GPU, TICK_FEN,
    UNIV, UNIV_CNY, UNIV_GPU,
};
use ledger::limits::NS_PER_S;
use ledger::outcome::Scheduled;
use ledger::testing::OPERATOR;
use ledger::trading::{AuctionCleared, OrderSpec, ProductSpec};
use ledger::{Asset, Command, CommandResult, Effect, Outcome};
use market::book::{Side, TimeInForce};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tests::{sign, unix_now_ns, Cluster};

fn auction(id: u128, side: Side, price: u64, lots: u128, base: u128, quote: u128) -> OrderSpec {
    order(
        id,
        AUCTION,
        side,
        Some(price),
        lots,
        TimeInForce::Gtc,
        base,
        quote,
    )
}

/// When the auction clears next, from the catalogue.
fn next_clearing_ns(cluster: &mut Cluster) -> u64 {
    let catalogue: Value = cluster.read("/v1/products");
    let product = catalogue["products"]
        .as_array()
        .expect("products")
        .iter()
        .find(|product| product["spec"]["product_id"] == AUCTION)
        .cloned()
        .expect("the auction product is listed");
    u64::try_from(number(&product["next_clearing_ns"])).expect("a time in ns")
}

/// Sleeps until the wall clock (which the leader stamps commands with) is past `at_ns`.
fn sleep_past(at_ns: u64) {
    let now = unix_now_ns();
    if now <= at_ns {
        std::thread::sleep(Duration::from_nanos(at_ns - now) + Duration::from_millis(50));
    }
}

/// Any accepted command: the operator lists the auction product again (an exact repeat changes
/// nothing). Whatever is due clears before it; its outcome says what.
fn trigger(cluster: &mut Cluster) -> Outcome {
    let product = ProductSpec {
        product_id: AUCTION.to_owned(),
        base: h100(),
        quote: Asset::Cny,
        lot_size: LOT,
        tick: TICK_FEN,
        fee_bps: FEE_BPS,
        auction_interval_s: Some(AUCTION_INTERVAL_S),
    };
    expect_accepted(
        cluster,
        "/v1/products",
        OPERATOR,
        Command::ListProduct { product },
    )
}

fn cleared(outcome: &Outcome) -> Vec<&AuctionCleared> {
    outcome
        .scheduled
        .iter()
        .filter_map(|scheduled| match scheduled {
            Scheduled::AuctionCleared(cleared) if cleared.product_id == AUCTION => Some(cleared),
            _ => None,
        })
        .collect()
}

/// Sends `commands` (signer, command) in one `POST /v1/commands/batch`, early in an auction
/// interval, and checks that each was accepted and that no clearing happened among them.
fn send_round(cluster: &mut Cluster, commands: Vec<(&str, Command)>) {
    // At least a second left before the next clearing, or wait for it to pass (a clearing
    // with nothing in the book moves the next one on by whole intervals: look again).
    let mut tries = 0;
    loop {
        let due = next_clearing_ns(cluster);
        if due >= unix_now_ns() + NS_PER_S {
            break;
        }
        tries += 1;
        assert!(
            tries <= 5,
            "no interval with a second to spare after {tries} tries"
        );
        sleep_past(due);
        let outcome = trigger(cluster);
        assert!(
            cleared(&outcome).is_empty(),
            "nothing to clear yet: {outcome:?}"
        );
    }
    let signed: Vec<_> = commands
        .into_iter()
        .map(|(signer, command)| sign(signer, command))
        .collect();
    let leader = cluster.leader();
    let url = format!("{}/v1/commands/batch", cluster.url(leader));
    let answer: Value = cluster
        .api()
        .post(&url, &json!({ "commands": signed }), None)
        .unwrap_or_else(|error| panic!("the batch of orders: {error}"));
    for result in answer["results"].as_array().expect("results") {
        let outcome: Outcome = serde_json::from_value(result["outcome"].clone())
            .unwrap_or_else(|_| panic!("each command of the round is applied: {result}"));
        assert!(outcome.rejected().is_none(), "{outcome:?}");
        assert!(
            cleared(&outcome).is_empty(),
            "no clearing among the orders: {outcome:?}"
        );
        if let CommandResult::Accepted(Effect::OrderPlaced(Some(placed))) = &outcome.result {
            assert!(
                placed.trades.is_empty(),
                "an auction order waits: {placed:?}"
            );
        }
    }
}

/// Waits for the clearing time, triggers it, and returns what cleared.
fn clear(cluster: &mut Cluster) -> AuctionCleared {
    sleep_past(next_clearing_ns(cluster));
    let outcome = trigger(cluster);
    let cleared = cleared(&outcome);
    assert_eq!(cleared.len(), 1, "one clearing: {outcome:?}");
    cleared[0].clone()
}

#[test]
fn an_auction_clears_everything_at_one_price() {
    let began = Instant::now();
    let mut cluster = Cluster::start(3);
    open_market(&mut cluster);
    let fees_before = balances(&mut cluster, cny_fees()).credits_posted;

    let place = |order: OrderSpec| Command::PlaceOrder { order };
    send_round(
        &mut cluster,
        vec![
            (
                SME,
                place(auction(1, Side::Buy, 2_700, 3, SME_GPU, SME_CNY)),
            ),
            (
                SME_B,
                place(auction(2, Side::Buy, 2_700, 2, SME_B_GPU, SME_B_CNY)),
            ),
            (
                SME_B,
                place(auction(3, Side::Buy, 2_500, 2, SME_B_GPU, SME_B_CNY)),
            ),
            (
                UNIV,
                place(auction(4, Side::Sell, 2_400, 3, UNIV_GPU, UNIV_CNY)),
            ),
            (
                LAB,
                place(auction(5, Side::Sell, 2_450, 2, LAB_GPU, LAB_CNY)),
            ),
            (
                LAB,
                place(auction(6, Side::Sell, 2_800, 4, LAB_GPU, LAB_CNY)),
            ),
        ],
    );
    // Until it clears, the book may cross and every order holds its reservation.
    let book = product_read(&mut cluster, "/v1/market/depth", AUCTION, "");
    assert_eq!(levels(&book, "bids"), [(2_700, 5, 2), (2_500, 2, 1)]);
    assert_eq!(
        levels(&book, "asks"),
        [(2_400, 3, 1), (2_450, 2, 1), (2_800, 4, 1)]
    );
    assert_eq!(
        balances(&mut cluster, SME_CNY),
        posted(SME_FUNDS_FEN, 0, 8_100)
    );
    assert_eq!(
        balances(&mut cluster, SME_B_CNY),
        posted(SME_FUNDS_FEN, 0, 5_400 + 5_000)
    );
    assert_eq!(
        balances(&mut cluster, LAB_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 0, 6 * LOT)
    );

    let round = clear(&mut cluster);
    assert_eq!((round.price, round.lots), (2_700, 5));
    let fills: Vec<(u128, u128, u64, u128, u128)> = round
        .trades
        .iter()
        .map(|trade| {
            (
                trade.buy_order_id,
                trade.sell_order_id,
                trade.lots,
                trade.money,
                trade.fee,
            )
        })
        .collect();
    assert_eq!(fills, [(1, 4, 3, 8_100, 24), (2, 5, 2, 5_400, 16)]);
    assert!(round.trades.iter().all(|trade| trade.aggressor.is_none()));
    let book = product_read(&mut cluster, "/v1/market/depth", AUCTION, "");
    assert_eq!(levels(&book, "bids"), [(2_500, 2, 1)]);
    assert_eq!(levels(&book, "asks"), [(2_800, 4, 1)]);
    assert_eq!(number(&book["last_price"]), 2_700);

    send_round(
        &mut cluster,
        vec![
            (SME_B, Command::CancelOrder { order_id: 3 }),
            (
                SME,
                place(auction(7, Side::Buy, 2_600, 2, SME_GPU, SME_CNY)),
            ),
            (
                UNIV,
                place(auction(8, Side::Sell, 2_400, 2, UNIV_GPU, UNIV_CNY)),
            ),
        ],
    );
    let round = clear(&mut cluster);
    assert_eq!(
        (round.price, round.lots),
        (2_600, 2),
        "nearest the last price, 2,700"
    );
    let fills: Vec<(u128, u128, u128, u128)> = round
        .trades
        .iter()
        .map(|trade| {
            (
                trade.buy_order_id,
                trade.sell_order_id,
                trade.money,
                trade.fee,
            )
        })
        .collect();
    assert_eq!(fills, [(7, 8, 5_200, 16)]);

    assert_eq!(
        balances(&mut cluster, SME_CNY),
        posted(SME_FUNDS_FEN, 13_300, 0)
    );
    assert_eq!(balances(&mut cluster, SME_GPU), posted(18_000, 0, 0));
    assert_eq!(
        balances(&mut cluster, SME_B_CNY),
        posted(SME_FUNDS_FEN, 5_400, 0)
    );
    assert_eq!(balances(&mut cluster, SME_B_GPU), posted(7_200, 0, 0));
    assert_eq!(balances(&mut cluster, UNIV_CNY), posted(13_260, 0, 0));
    assert_eq!(
        balances(&mut cluster, UNIV_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 18_000, 0)
    );
    assert_eq!(balances(&mut cluster, LAB_CNY), posted(5_384, 0, 0));
    assert_eq!(
        balances(&mut cluster, LAB_GPU),
        posted(INSTITUTION_FUNDS_GPU_S, 7_200, 14_400)
    );
    assert_eq!(
        balances(&mut cluster, cny_fees()).credits_posted,
        fees_before + 56
    );

    let trades = product_read(&mut cluster, "/v1/market/trades", AUCTION, "");
    let prices: Vec<u128> = trades["trades"]
        .as_array()
        .expect("trades")
        .iter()
        .map(|trade| number(&trade["price"]))
        .collect();
    assert_eq!(prices, [2_700, 2_700, 2_600]);
    cluster.wait_converged();
    eprintln!(
        "market t20: call auction checked in {:.1?}",
        began.elapsed()
    );
}
