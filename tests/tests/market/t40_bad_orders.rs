//! Bad orders over HTTP, each refused with its own reason code and HTTP status, each recorded
//! in the journal, and none changing a balance, the book or the orders.
//!
//! The book holds one ask: `univ` sells 5 lots at 2,500 (order 101). `sme` holds 1,000,000 fen
//! and no GPU time. The product's tick is 10 fen, its lot 3,600 GPU-seconds.

use crate::fixture::{
    balances, cny_fees, expect_rejected, levels, open_market, order, place, product_read, AUDITOR,
    CONTINUOUS, LOT, SME, SME_CNY, SME_GPU, UNIV, UNIV_CNY, UNIV_GPU,
};
use ledger::trading::OrderSpec;
use ledger::{Balances, Command};
use market::book::{Side, TimeInForce};
use serde_json::Value;
use std::time::Instant;
use tests::Cluster;

/// Everything a bad order could change.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    balances: Vec<(u128, Balances)>,
    bids: Vec<(u128, u128, u64)>,
    asks: Vec<(u128, u128, u64)>,
    sme_orders: Value,
    resting: Value,
}

fn observe(cluster: &mut Cluster) -> Observed {
    let balances = [SME_CNY, SME_GPU, UNIV_CNY, UNIV_GPU, cny_fees()]
        .into_iter()
        .map(|id| (id, balances(cluster, id)))
        .collect();
    let depth = product_read(cluster, "/v1/market/depth", CONTINUOUS, "");
    Observed {
        balances,
        bids: levels(&depth, "bids"),
        asks: levels(&depth, "asks"),
        sme_orders: cluster.read(&format!("/v1/parties/{SME}/orders?status=all")),
        resting: cluster.read("/v1/orders/101"),
    }
}

fn buy(id: u128, price: Option<u64>, lots: u128, time_in_force: TimeInForce) -> OrderSpec {
    order(
        id,
        CONTINUOUS,
        Side::Buy,
        price,
        lots,
        time_in_force,
        SME_GPU,
        SME_CNY,
    )
}

#[test]
fn bad_orders_are_refused_with_their_own_reason_and_change_nothing() {
    let began = Instant::now();
    let mut cluster = Cluster::start(3);
    open_market(&mut cluster);
    let ask = order(
        101,
        CONTINUOUS,
        Side::Sell,
        Some(2_500),
        5,
        TimeInForce::Gtc,
        UNIV_GPU,
        UNIV_CNY,
    );
    place(&mut cluster, UNIV, ask);
    let before = observe(&mut cluster);
    assert_eq!(before.asks, [(2_500, 5, 1)]);

    let gtc = TimeInForce::Gtc;
    let cases: Vec<(&str, &str, Command, u16, &str)> = vec![
        // 2,405 is not a multiple of the 10-fen tick.
        (
            SME,
            "/v1/orders",
            place_order(buy(201, Some(2_405), 1, gtc)),
            422,
            "price_not_on_tick",
        ),
        // One GPU-second more than a lot.
        (
            SME,
            "/v1/orders",
            place_order(OrderSpec {
                quantity: LOT + 1,
                ..buy(202, Some(2_400), 1, gtc)
            }),
            422,
            "quantity_not_on_lot",
        ),
        (
            SME,
            "/v1/orders",
            place_order(OrderSpec {
                product_id: "GPUH:A100/CNY".to_owned(),
                ..buy(203, Some(2_400), 1, gtc)
            }),
            404,
            "product_unknown",
        ),
        // 500 lots at 2,400 is 1,200,000 fen; sme has 1,000,000.
        (
            SME,
            "/v1/orders",
            place_order(buy(204, Some(2_400), 500, gtc)),
            422,
            "insufficient_funds",
        ),
        // sme holds no GPU time to sell.
        (
            SME,
            "/v1/orders",
            place_order(order(
                205,
                CONTINUOUS,
                Side::Sell,
                Some(2_600),
                1,
                gtc,
                SME_GPU,
                SME_CNY,
            )),
            422,
            "insufficient_goods",
        ),
        // A post-only bid at the ask would trade.
        (
            SME,
            "/v1/orders",
            place_order(OrderSpec {
                post_only: true,
                ..buy(206, Some(2_500), 1, gtc)
            }),
            422,
            "post_only_would_cross",
        ),
        // Fill or kill 6 lots when 5 are offered.
        (
            SME,
            "/v1/orders",
            place_order(buy(207, Some(2_500), 6, TimeInForce::Fok)),
            422,
            "fill_or_kill_unfillable",
        ),
        // A market order cannot rest.
        (
            SME,
            "/v1/orders",
            place_order(buy(208, None, 1, gtc)),
            422,
            "order_type_invalid",
        ),
        // Auditors hold nothing and may not trade.
        (
            AUDITOR,
            "/v1/orders",
            place_order(buy(209, Some(2_400), 1, gtc)),
            403,
            "not_permitted",
        ),
        // sme may not cancel univ's order.
        (
            SME,
            "/v1/orders/cancel",
            Command::CancelOrder { order_id: 101 },
            403,
            "not_order_owner",
        ),
    ];
    for (signer, path, command, status, code) in cases {
        expect_rejected(&mut cluster, path, signer, command, status, code);
        assert_eq!(
            observe(&mut cluster),
            before,
            "after {code}: nothing changed"
        );
    }
    for id in 201..=209u128 {
        let leader = cluster.leader();
        let answer = cluster
            .api()
            .get::<Value>(&format!("{}/v1/orders/{id}", cluster.url(leader)))
            .expect_err("a refused order is not recorded");
        assert_eq!(
            (answer.status, answer.code.as_str()),
            (Some(404), "not_found")
        );
    }
    // Reads refuse bad parameters with the stable error shape.
    let leader = cluster.leader();
    for (query, why) in [
        ("/v1/market/depth", "no product"),
        (
            "/v1/market/depth?product=GPUH:H100/CNY&levels=0",
            "levels below 1",
        ),
        (
            "/v1/market/candles?product=GPUH:H100/CNY&interval_s=x",
            "interval not a number",
        ),
        (
            "/v1/market/trades?product=GPUH:H100/CNY&after=-1",
            "a negative cursor",
        ),
        ("/v1/parties/SME/orders", "a party id out of the alphabet"),
        ("/v1/parties/sme/orders?status=closed", "an unknown status"),
    ] {
        let error = cluster
            .api()
            .get::<Value>(&format!("{}{query}", cluster.url(leader)))
            .expect_err(why);
        assert_eq!(
            (error.status, error.code.as_str()),
            (Some(400), "invalid_parameter"),
            "{why}: {error}"
        );
    }
    let unknown = cluster
        .api()
        .get::<Value>(&format!(
            "{}/v1/market/depth?product=GPUH:A100/CNY",
            cluster.url(leader)
        ))
        .expect_err("an unknown product");
    assert_eq!(
        (unknown.status, unknown.code.as_str()),
        (Some(404), "not_found")
    );
    cluster.wait_converged();
    eprintln!("market t40: bad orders checked in {:.1?}", began.elapsed());
}

fn place_order(order: OrderSpec) -> Command {
    Command::PlaceOrder { order }
}
