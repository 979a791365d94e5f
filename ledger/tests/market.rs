//! The supermarket in the pure ledger: order books, settlement, auctions, packages, quotas and
//! usage, with balances checked against numbers computed by hand in the comments; and a seeded
//! random stream of market commands that must keep every invariant.

use ledger::limits::NS_PER_S;
use ledger::outcome::Scheduled;
use ledger::shelf::{PackageSpec, PurchaseSpec, QuotaState, UsageEvent};
use ledger::testing::{Harness, Rng, MAIN, OPERATOR};
use ledger::trading::{OrderSpec, OrderStatus, ProductSpec};
use ledger::{AccountKind, Asset, Command, CommandResult, Effect, JournalEntry, Reason, Role};
use market::book::{SelfTrade, Side, TimeInForce};

const HOUR: u128 = 3600;
const CONTINUOUS: &str = "GPUH:H100/CNY";
const AUCTION: &str = "GPUH:H100@call/CNY";

/// Account ids: party number × 10 + 1 for CNY, + 2 for GPUH:H100, + 3 for TOK:qwen.
fn cny(party: u128) -> u128 {
    party * 10 + 1
}
fn gpuh(party: u128) -> u128 {
    party * 10 + 2
}
fn tok(party: u128) -> u128 {
    party * 10 + 3
}

const PARTIES: [(&str, Role); 4] = [
    ("univ", Role::Institution),
    ("lab", Role::Institution),
    ("sme-a", Role::Sme),
    ("sme-b", Role::Sme),
];

fn number(party: &str) -> u128 {
    match party {
        "univ" => 1,
        "lab" => 2,
        "sme-a" => 3,
        "sme-b" => 4,
        "qwen-cloud" => 5,
        "audit" => 6,
        other => panic!("unknown test party {other}"),
    }
}

/// Parties with CNY, GPUH:H100 and TOK:qwen accounts; institutions hold 100 GPU-hours and
/// SMEs ¥10,000; a continuous product (lot 1 GPU-hour, tick 1 fen, fee 30 bps) and an auction
/// product (every 10 s).
fn market() -> Harness {
    let mut h = Harness::new();
    h.step_ns = NS_PER_S / 10;
    for (party, role) in PARTIES {
        h.add_party(party, role);
    }
    h.add_party("qwen-cloud", Role::Provider);
    h.add_party("audit", Role::Auditor);
    for party in ["univ", "lab", "sme-a", "sme-b", "qwen-cloud"] {
        let n = number(party);
        h.open_account(party, cny(n), "CNY", MAIN, true);
        h.open_account(party, gpuh(n), "GPUH:H100", MAIN, true);
        h.open_account(party, tok(n), "TOK:qwen", MAIN, true);
    }
    for party in ["univ", "lab"] {
        fund(&mut h, "GPUH:H100", gpuh(number(party)), 100 * HOUR);
    }
    for party in ["sme-a", "sme-b"] {
        fund(&mut h, "CNY", cny(number(party)), 1_000_000);
    }
    list(&mut h, CONTINUOUS, None);
    list(&mut h, AUCTION, Some(10));
    h
}

fn fund(h: &mut Harness, asset: &str, account: u128, amount: u128) {
    h.mint(asset, account, amount);
}

fn list(h: &mut Harness, product_id: &str, auction_interval_s: Option<u32>) {
    h.expect_accepted(
        OPERATOR,
        Command::ListProduct {
            product: ProductSpec {
                product_id: product_id.into(),
                base: "GPUH:H100".parse().unwrap(),
                quote: "CNY".parse().unwrap(),
                lot_size: HOUR,
                tick: 1,
                fee_bps: 30,
                auction_interval_s,
            },
        },
    );
}

fn order(
    party: &str,
    id: u128,
    product: &str,
    side: Side,
    price: Option<u64>,
    lots: u128,
    tif: TimeInForce,
) -> Command {
    let n = number(party);
    Command::PlaceOrder {
        order: OrderSpec {
            order_id: id,
            product_id: product.into(),
            side,
            price,
            quantity: lots * HOUR,
            time_in_force: tif,
            post_only: false,
            self_trade: SelfTrade::CancelTaker,
            base_account_id: gpuh(n),
            quote_account_id: cny(n),
            vouchers: Vec::new(),
        },
    }
}

fn limit(party: &str, id: u128, side: Side, price: u64, lots: u128) -> Command {
    order(
        party,
        id,
        CONTINUOUS,
        side,
        Some(price),
        lots,
        TimeInForce::Gtc,
    )
}

/// (posted balance, pending debits) of an account: credits − debits posted, debits pending.
fn balance(h: &Harness, id: u128) -> (i128, u128) {
    let b = h.ledger.account(id).unwrap().balances;
    (
        b.credits_posted as i128 - b.debits_posted as i128,
        b.debits_pending,
    )
}

fn system(h: &Harness, asset: &str, kind: AccountKind) -> i128 {
    let asset: Asset = asset.parse().unwrap();
    let b = h.ledger.system_account(&asset, kind).unwrap().balances;
    b.credits_posted as i128 - b.debits_posted as i128
}

fn rejected(entry: &JournalEntry) -> Option<Reason> {
    entry.body.outcome.rejected()
}

fn placed(entry: &JournalEntry) -> &ledger::trading::Placed {
    match &entry.body.outcome.result {
        CommandResult::Accepted(Effect::OrderPlaced(Some(placed))) => placed,
        other => panic!("order placed: {other:?}"),
    }
}

#[test]
fn a_trade_settles_goods_money_and_fee_and_reservations_follow_the_book() {
    let mut h = market();
    // univ sells 10 GPU-hours at ¥25.00 (2,500 fen) per hour: 36,000 GPU-s reserved.
    let sell = h.expect_accepted("univ", limit("univ", 1, Side::Sell, 2_500, 10));
    assert_eq!(placed(&sell).rests, 10);
    assert_eq!(balance(&h, gpuh(1)), (360_000, 36_000));
    // sme-a buys 4 at up to 2,600: 4 × 2,500 = 10,000 fen; fee 30 bps = 30 fen.
    let buy = h.expect_accepted("sme-a", limit("sme-a", 2, Side::Buy, 2_600, 4));
    let trades = &placed(&buy).trades;
    assert_eq!(trades.len(), 1);
    assert_eq!((trades[0].price, trades[0].lots), (2_500, 4));
    assert_eq!((trades[0].money, trades[0].fee), (10_000, 30));
    assert_eq!(placed(&buy).status, OrderStatus::Filled);
    // Buyer: 1,000,000 − 10,000; 4 hours in. Seller: +9,970; 360,000 − 14,400 GPU-s, and
    // the 6 open hours (21,600 GPU-s) reserved again.
    assert_eq!(balance(&h, cny(3)), (990_000, 0));
    assert_eq!(balance(&h, gpuh(3)), (14_400, 0));
    assert_eq!(balance(&h, cny(1)), (9_970, 0));
    assert_eq!(balance(&h, gpuh(1)), (345_600, 21_600));
    assert_eq!(system(&h, "CNY", AccountKind::Fees), 30);
    let maker = h.ledger.order(1).unwrap();
    assert_eq!((maker.filled_lots, maker.open_lots), (4, 6));
    // sme-b bids 2,400 for 5: 12,000 fen reserved; the book is 2,400 × 5 / 2,500 × 6.
    h.expect_accepted("sme-b", limit("sme-b", 3, Side::Buy, 2_400, 5));
    assert_eq!(balance(&h, cny(4)), (1_000_000, 12_000));
    let book = &h.ledger.product(CONTINUOUS).unwrap().book;
    assert_eq!(
        (book.best_bid(), book.best_ask()),
        (Some(2_400), Some(2_500))
    );
    // Cancel releases the reservation in full.
    h.expect_accepted("sme-b", Command::CancelOrder { order_id: 3 });
    assert_eq!(balance(&h, cny(4)), (1_000_000, 0));
    assert_eq!(h.ledger.product(CONTINUOUS).unwrap().book.best_bid(), None);
    // A market buy of 10 takes the 6 left and stops: 6 × 2,500 = 15,000; fee 45.
    let market_buy = h.expect_accepted(
        "sme-b",
        order(
            "sme-b",
            4,
            CONTINUOUS,
            Side::Buy,
            None,
            10,
            TimeInForce::Ioc,
        ),
    );
    assert_eq!(placed(&market_buy).trades[0].lots, 6);
    assert_eq!(balance(&h, cny(4)), (985_000, 0));
    assert_eq!(balance(&h, cny(1)), (9_970 + 14_955, 0));
    assert_eq!(balance(&h, gpuh(1)), (360_000 - 36_000, 0));
    assert_eq!(system(&h, "CNY", AccountKind::Fees), 75);
    assert_eq!(system(&h, "CNY", AccountKind::Escrow), 0);
    assert!(h.ledger.product(CONTINUOUS).unwrap().book.is_empty());
    h.ledger.check_invariants().unwrap();
}

#[test]
fn amend_down_keeps_priority_and_its_reservation_shrinks() {
    let mut h = market();
    h.expect_accepted("sme-a", limit("sme-a", 1, Side::Buy, 2_000, 5));
    h.expect_accepted("sme-b", limit("sme-b", 2, Side::Buy, 2_000, 5));
    let amended = h.expect_accepted(
        "sme-a",
        Command::AmendOrder {
            order_id: 1,
            price: None,
            quantity: 3 * HOUR,
        },
    );
    assert!(matches!(
        amended.body.outcome.result,
        CommandResult::Accepted(Effect::OrderAmended {
            kept_priority: true
        })
    ));
    assert_eq!(balance(&h, cny(3)), (1_000_000, 6_000));
    // univ sells 4 at 2,000: sme-a (first in the queue) gets 3, sme-b 1.
    let sell = h.expect_accepted("univ", limit("univ", 3, Side::Sell, 2_000, 4));
    let trades = &placed(&sell).trades;
    assert_eq!(
        trades
            .iter()
            .map(|t| (t.buy_order_id, t.lots))
            .collect::<Vec<_>>(),
        [(1, 3), (2, 1)]
    );
    // A reprice goes to the back of the queue.
    let repriced = h.expect_accepted(
        "sme-b",
        Command::AmendOrder {
            order_id: 2,
            price: Some(2_100),
            quantity: 4 * HOUR,
        },
    );
    assert!(matches!(
        repriced.body.outcome.result,
        CommandResult::Accepted(Effect::OrderAmended {
            kept_priority: false
        })
    ));
    assert_eq!(balance(&h, cny(4)), (998_000, 8_400));
    h.ledger.check_invariants().unwrap();
}

#[test]
fn self_trade_prevention_cancels_the_maker_and_releases_it() {
    let mut h = market();
    h.expect_accepted("univ", limit("univ", 1, Side::Sell, 2_500, 2));
    fund(&mut h, "CNY", cny(1), 100_000);
    let mut cmd = limit("univ", 2, Side::Buy, 2_500, 2);
    if let Command::PlaceOrder { order } = &mut cmd {
        order.self_trade = SelfTrade::CancelMaker;
    }
    let entry = h.expect_accepted("univ", cmd);
    let placed = placed(&entry);
    assert!(placed.trades.is_empty());
    assert_eq!(placed.cancelled_makers, [1]);
    assert_eq!(placed.rests, 2);
    assert_eq!(balance(&h, gpuh(1)), (360_000, 0));
    assert_eq!(balance(&h, cny(1)), (100_000, 5_000));
    h.ledger.check_invariants().unwrap();
}

#[test]
fn an_auction_clears_at_one_price_that_maximises_volume() {
    let mut h = market();
    // Bids: sme-a 3 @ 2,600, sme-b 2 @ 2,400. Asks: univ 2 @ 2,300, lab 2 @ 2,500.
    // Demand/supply: 2,300: 5/2 → 2; 2,400: 5/2 → 2; 2,500: 3/4 → 3; 2,600: 3/4 → 3.
    // Max volume 3 at 2,500 and 2,600; imbalance 1 at both; no reference; lowest: 2,500.
    let auction = |party: &str, id, side, price, lots| {
        order(
            party,
            id,
            AUCTION,
            side,
            Some(price),
            lots,
            TimeInForce::Gtc,
        )
    };
    h.expect_accepted("sme-a", auction("sme-a", 1, Side::Buy, 2_600, 3));
    h.expect_accepted("sme-b", auction("sme-b", 2, Side::Buy, 2_400, 2));
    h.expect_accepted("univ", auction("univ", 3, Side::Sell, 2_300, 2));
    h.expect_accepted("lab", auction("lab", 4, Side::Sell, 2_500, 2));
    assert_eq!(h.ledger.product(AUCTION).unwrap().trades.len(), 0);
    // Nothing clears until the interval is over; the next command (any) triggers it.
    h.now_ns += 10 * NS_PER_S;
    let entry = h.expect_accepted("sme-b", Command::CancelOrder { order_id: 2 });
    let cleared = entry
        .body
        .outcome
        .scheduled
        .iter()
        .find_map(|s| match s {
            Scheduled::AuctionCleared(c) => Some(c),
            _ => None,
        })
        .expect("the auction cleared before the command");
    assert_eq!((cleared.price, cleared.lots), (2_500, 3));
    // sme-a pays 3 × 2,500 = 7,500; univ sells 2 (5,000 − fee 15), lab 1 (2,500 − fee 7.5 →
    // 8 by half-even, the seller's 2,492.5 → 2,492: the pair sums to 2,500 exactly).
    assert_eq!(balance(&h, cny(3)), (992_500, 0));
    assert_eq!(balance(&h, gpuh(3)), (3 * HOUR as i128, 0));
    assert_eq!(balance(&h, cny(1)), (4_985, 0));
    assert_eq!(balance(&h, cny(2)), (2_492, 0));
    assert_eq!(balance(&h, gpuh(2)), (99 * HOUR as i128, HOUR));
    assert_eq!(system(&h, "CNY", AccountKind::Fees), 15 + 8);
    assert_eq!(system(&h, "CNY", AccountKind::Rounding), 0);
    h.ledger.check_invariants().unwrap();
}

fn token_package(h: &mut Harness) {
    h.expect_accepted(
        "qwen-cloud",
        Command::ListPackage {
            package: PackageSpec {
                package_id: "qwen-10m".into(),
                title: "10,000,000 qwen tokens, 30 days".into(),
                asset: "TOK:qwen".parse().unwrap(),
                quantity: 10_000_000,
                price: 990,
                validity_s: 30 * 24 * 3600,
                stock: 100,
                seller_account_id: cny(5),
                goods_account_id: None,
                provider: Some(ledger::PartyId::new("qwen-cloud")),
            },
        },
    );
}

fn usage(events: &[(u128, u64)], account: u128, at_ns: u64) -> Command {
    Command::RecordUsage {
        events: events
            .iter()
            .map(|&(event_id, tokens)| UsageEvent {
                event_id,
                account_id: account,
                tokens,
                at_ns,
            })
            .collect(),
    }
}

fn recorded(entry: &JournalEntry) -> &ledger::shelf::UsageRecorded {
    match &entry.body.outcome.result {
        CommandResult::Accepted(Effect::UsageRecorded(recorded)) => recorded,
        other => panic!("usage recorded: {other:?}"),
    }
}

#[test]
fn a_token_package_grants_a_quota_that_usage_draws_down_with_alerts() {
    let mut h = market();
    token_package(&mut h);
    let buy = Command::BuyPackage {
        purchase: PurchaseSpec {
            purchase_id: 77,
            package_id: "qwen-10m".into(),
            pay_account_id: cny(3),
            receive_account_id: tok(3),
            vouchers: Vec::new(),
        },
    };
    h.expect_accepted("sme-a", buy.clone());
    // ¥9.90 from sme-a to the provider; 10,000,000 tokens from the TOK:qwen mint.
    assert_eq!(balance(&h, cny(3)), (999_010, 0));
    assert_eq!(balance(&h, cny(5)), (990, 0));
    assert_eq!(balance(&h, tok(3)), (10_000_000, 0));
    // The same purchase again changes nothing.
    let again = h.expect_accepted("sme-a", buy);
    assert!(matches!(
        again.body.outcome.result,
        CommandResult::Accepted(Effect::PackageBought { repeated: true, .. })
    ));
    assert_eq!(balance(&h, cny(3)), (999_010, 0));
    let now = h.now_ns;
    let first = h.expect_accepted(
        "qwen-cloud",
        usage(&[(1, 5_000_000), (2, 3_000_000)], tok(3), now),
    );
    let r = recorded(&first);
    assert_eq!(r.consumed, 8_000_000);
    assert_eq!(
        r.alerts.iter().map(|a| a.threshold_pct).collect::<Vec<_>>(),
        [80]
    );
    // Event 2 again is a repeat; event 3 takes the last 2,000,000 (100%); event 4 is refused.
    let second = h.expect_accepted(
        "qwen-cloud",
        usage(&[(2, 3_000_000), (3, 2_000_000), (4, 1)], tok(3), now),
    );
    let r = recorded(&second);
    assert_eq!(r.consumed, 2_000_000);
    assert_eq!(
        r.results
            .iter()
            .map(|x| (x.index, x.reason, x.rejected))
            .collect::<Vec<_>>(),
        [
            (0, Reason::UsageEventExists, 0),
            (2, Reason::QuotaExhausted, 1)
        ]
    );
    assert_eq!(
        r.alerts.iter().map(|a| a.threshold_pct).collect::<Vec<_>>(),
        [100]
    );
    assert_eq!(balance(&h, tok(3)), (0, 0));
    assert_eq!(h.ledger.shelf().quotas[&77].state, QuotaState::Exhausted);
    assert_eq!(h.ledger.shelf().alerts[&tok(3)].len(), 2);
    h.ledger.check_invariants().unwrap();
}

#[test]
fn usage_beyond_a_live_quota_is_partly_rejected_and_a_quota_expires_back_to_the_mint() {
    let mut h = market();
    token_package(&mut h);
    h.expect_accepted(
        "sme-b",
        Command::BuyPackage {
            purchase: PurchaseSpec {
                purchase_id: 5,
                package_id: "qwen-10m".into(),
                pay_account_id: cny(4),
                receive_account_id: tok(4),
                vouchers: Vec::new(),
            },
        },
    );
    let now = h.now_ns;
    // 9,000,000 then 2,000,000: the second event gets 1,000,000 and 1,000,000 is rejected.
    let entry = h.expect_accepted(
        "qwen-cloud",
        usage(&[(10, 9_000_000), (11, 2_000_000)], tok(4), now),
    );
    let r = recorded(&entry);
    assert_eq!(r.consumed, 10_000_000);
    assert_eq!(r.results.len(), 1);
    assert_eq!(
        (
            r.results[0].reason,
            r.results[0].consumed,
            r.results[0].rejected
        ),
        (Reason::QuotaExhausted, 1_000_000, 1_000_000)
    );
    // Too late, and too far ahead.
    let late = h.expect_accepted(
        "qwen-cloud",
        usage(&[(12, 1)], tok(4), now - 7 * 3600 * NS_PER_S),
    );
    assert_eq!(recorded(&late).results[0].reason, Reason::UsageEventTooLate);
    let early = h.expect_accepted(
        "qwen-cloud",
        usage(&[(13, 1)], tok(4), now + 3600 * NS_PER_S),
    );
    assert_eq!(
        recorded(&early).results[0].reason,
        Reason::UsageEventInFuture
    );
    // A second purchase, used in part, expires after 30 days: the rest returns to the mint.
    h.expect_accepted(
        "sme-b",
        Command::BuyPackage {
            purchase: PurchaseSpec {
                purchase_id: 6,
                package_id: "qwen-10m".into(),
                pay_account_id: cny(4),
                receive_account_id: tok(4),
                vouchers: Vec::new(),
            },
        },
    );
    let now = h.now_ns;
    h.expect_accepted("qwen-cloud", usage(&[(20, 4_000_000)], tok(4), now));
    assert_eq!(balance(&h, tok(4)), (6_000_000, 0));
    h.now_ns += 30 * 24 * 3600 * NS_PER_S;
    // Any command after the expiry triggers it (this one is refused itself: no such order).
    let entry = h.submit("sme-b", Command::CancelOrder { order_id: 999 });
    assert!(entry
        .body
        .outcome
        .scheduled
        .iter()
        .any(|s| matches!(s, Scheduled::QuotaExpired(q) if q.quota_id == 6)));
    let quota = &h.ledger.shelf().quotas[&6];
    assert_eq!(
        quota.state,
        QuotaState::Expired {
            returned: 6_000_000
        }
    );
    assert_eq!(balance(&h, tok(4)), (0, 0));
    // Issued 20,000,000; used 14,000,000 and returned 6,000,000 went back: the mint is even.
    assert_eq!(system(&h, "TOK:qwen", AccountKind::Mint), 0);
    // An event in a later batch against the exhausted first quota is refused the same way.
    let now = h.now_ns;
    let after = h.expect_accepted("qwen-cloud", usage(&[(30, 1)], tok(4), now));
    assert_eq!(recorded(&after).results[0].reason, Reason::QuotaNone);
    h.ledger.check_invariants().unwrap();
}

#[test]
fn bad_orders_get_their_own_reason_and_change_nothing() {
    let mut h = market();
    h.expect_accepted("univ", limit("univ", 1, Side::Sell, 2_500, 2));
    h.expect_accepted("sme-b", limit("sme-b", 2, Side::Buy, 2_000, 1));
    let mut post_only = limit("sme-a", 10, Side::Buy, 2_500, 1);
    if let Command::PlaceOrder { order } = &mut post_only {
        order.post_only = true;
    }
    let mut off_lot = limit("sme-a", 11, Side::Buy, 2_500, 1);
    if let Command::PlaceOrder { order } = &mut off_lot {
        order.quantity = HOUR + 1;
    }
    let cases: Vec<(&str, Command, Reason)> = vec![
        (
            "sme-a",
            limit("sme-a", 12, Side::Buy, 0, 1),
            Reason::PriceInvalid,
        ),
        ("sme-a", off_lot, Reason::QuantityNotOnLot),
        (
            "sme-a",
            order(
                "sme-a",
                13,
                "GPUH:A100/CNY",
                Side::Buy,
                Some(1),
                1,
                TimeInForce::Gtc,
            ),
            Reason::ProductUnknown,
        ),
        (
            "sme-a",
            limit("sme-a", 14, Side::Buy, 2_500, 1_000),
            Reason::InsufficientFunds,
        ),
        (
            "sme-a",
            limit("sme-a", 15, Side::Sell, 2_500, 1),
            Reason::InsufficientGoods,
        ),
        ("sme-a", post_only, Reason::PostOnlyWouldCross),
        (
            "sme-a",
            order(
                "sme-a",
                16,
                CONTINUOUS,
                Side::Buy,
                Some(2_600),
                3,
                TimeInForce::Fok,
            ),
            Reason::FillOrKillUnfillable,
        ),
        (
            "sme-a",
            order(
                "sme-a",
                17,
                CONTINUOUS,
                Side::Buy,
                None,
                1,
                TimeInForce::Gtc,
            ),
            Reason::OrderTypeInvalid,
        ),
        (
            "sme-a",
            order(
                "sme-a",
                18,
                AUCTION,
                Side::Buy,
                Some(2_000),
                1,
                TimeInForce::Ioc,
            ),
            Reason::OrderTypeNotInAuction,
        ),
        (
            "sme-a",
            Command::CancelOrder { order_id: 2 },
            Reason::NotOrderOwner,
        ),
        (
            "sme-a",
            Command::CancelOrder { order_id: 404 },
            Reason::OrderUnknown,
        ),
        (
            "audit",
            limit("sme-a", 19, Side::Buy, 2_000, 1),
            Reason::NotPermitted,
        ),
        (
            "sme-b",
            limit("sme-b", 2, Side::Buy, 2_001, 1),
            Reason::OrderExistsWithDifferentFields,
        ),
    ];
    for (signer, command, reason) in cases {
        let before = (
            h.ledger.accounts().cloned().collect::<Vec<_>>(),
            h.ledger.market().clone(),
        );
        let entry = h.submit(signer, command);
        assert_eq!(rejected(&entry), Some(reason));
        let after = (
            h.ledger.accounts().cloned().collect::<Vec<_>>(),
            h.ledger.market().clone(),
        );
        assert!(before == after, "{reason:?} changed nothing");
    }
}

#[test]
fn random_market_streams_keep_every_invariant_and_replicas_agree() {
    let seed = std::env::var("CBANK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0005);
    println!("seed = {seed}; reproduce: CBANK_SEED={seed} cargo test -p ledger --test market");
    let mut rng = Rng(seed);
    let mut h = market();
    for party in ["sme-a", "sme-b"] {
        fund(&mut h, "GPUH:H100", gpuh(number(party)), 50 * HOUR);
    }
    for party in ["univ", "lab"] {
        fund(&mut h, "CNY", cny(number(party)), 500_000);
    }
    token_package(&mut h);
    let mut replica = h.ledger.clone();
    let parties = ["univ", "lab", "sme-a", "sme-b"];
    let mut next_id = 1_000u128;
    let mut placed_ids: Vec<(String, u128)> = Vec::new();
    let mut accepted = 0;
    let mut trades = 0;
    let (mut consumed, mut alerts, mut expired) = (0u128, 0, 0);
    for step in 0..3_000 {
        let party = parties[rng.below(4) as usize];
        let command = match rng.below(12) {
            0..=5 => {
                next_id += 1;
                let product = if rng.below(4) == 0 {
                    AUCTION
                } else {
                    CONTINUOUS
                };
                let side = if rng.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let tif = match (product, rng.below(6)) {
                    (AUCTION, _) => TimeInForce::Gtc,
                    (_, 0) => TimeInForce::Ioc,
                    (_, 1) => TimeInForce::Fok,
                    _ => TimeInForce::Gtc,
                };
                let price = if product == CONTINUOUS && tif != TimeInForce::Gtc && rng.below(2) == 0
                {
                    None
                } else {
                    Some(2_400 + rng.below(200))
                };
                let mut command = order(
                    party,
                    next_id,
                    product,
                    side,
                    price,
                    1 + rng.below(5) as u128,
                    tif,
                );
                if let Command::PlaceOrder { order } = &mut command {
                    order.self_trade = match rng.below(3) {
                        0 => SelfTrade::CancelTaker,
                        1 => SelfTrade::CancelMaker,
                        _ => SelfTrade::CancelBoth,
                    };
                    order.post_only =
                        price.is_some() && tif == TimeInForce::Gtc && rng.below(8) == 0;
                }
                placed_ids.push((party.to_owned(), next_id));
                (party.to_owned(), command)
            }
            6 | 7 if !placed_ids.is_empty() => {
                let (owner, id) = placed_ids[rng.below(placed_ids.len() as u64) as usize].clone();
                (owner, Command::CancelOrder { order_id: id })
            }
            8 if !placed_ids.is_empty() => {
                let (owner, id) = placed_ids[rng.below(placed_ids.len() as u64) as usize].clone();
                let price = (rng.below(2) == 0).then(|| 2_400 + rng.below(200));
                (
                    owner,
                    Command::AmendOrder {
                        order_id: id,
                        price,
                        quantity: (1 + rng.below(5) as u128) * HOUR,
                    },
                )
            }
            10 => {
                next_id += 1;
                let n = number(party);
                let buy = Command::BuyPackage {
                    purchase: PurchaseSpec {
                        purchase_id: next_id,
                        package_id: "qwen-10m".into(),
                        pay_account_id: cny(n),
                        receive_account_id: tok(n),
                        vouchers: Vec::new(),
                    },
                };
                (party.to_owned(), buy)
            }
            11 => {
                // Usage with event ids from a small range, so some repeat.
                let at = h.now_ns - rng.below(3) * NS_PER_S;
                let events = (0..1 + rng.below(4))
                    .map(|_| (1 + u128::from(rng.below(500)), 1 + rng.below(4_000_000)))
                    .collect::<Vec<_>>();
                let account = tok(number(parties[rng.below(4) as usize]));
                ("qwen-cloud".to_owned(), usage(&events, account, at))
            }
            _ => {
                // Let time pass so auctions clear (and, rarely, quotas expire).
                if rng.below(50) == 0 {
                    h.now_ns += 30 * 24 * 3600 * NS_PER_S;
                }
                h.now_ns += rng.below(5) * NS_PER_S;
                next_id += 1;
                (party.to_owned(), limit(party, next_id, Side::Buy, 1, 1))
            }
        };
        let signed = h.sign(&command.0, command.1);
        let entry = h.apply(&signed);
        let mirror = replica.apply(&signed, h.now_ns);
        // The ledger names exactly the transfers this entry stored (the node indexes them).
        let reported: Vec<u128> = h
            .ledger
            .last_entry_transfers()
            .map(|(ordinal, t)| {
                assert_eq!(h.ledger.transfer_ordinal(t.transfer.id), Some(ordinal));
                t.transfer.id
            })
            .collect();
        let mut stored: Vec<(u32, u128)> = h
            .ledger
            .transfers()
            .filter(|t| t.journal_index == entry.body.index)
            .map(|t| (t.sequence, t.transfer.id))
            .collect();
        stored.sort_unstable();
        let stored: Vec<u128> = stored.into_iter().map(|(_, id)| id).collect();
        assert_eq!(reported, stored, "transfers of entry {}", entry.body.index);
        assert_eq!(
            entry.head(),
            mirror.head(),
            "replica diverged at step {step}"
        );
        if entry.body.outcome.rejected().is_none() {
            accepted += 1;
        }
        if let CommandResult::Accepted(Effect::OrderPlaced(Some(p))) = &entry.body.outcome.result {
            trades += p.trades.len();
        }
        if let CommandResult::Accepted(Effect::UsageRecorded(r)) = &entry.body.outcome.result {
            consumed += r.consumed;
            alerts += r.alerts.len();
        }
        for s in &entry.body.outcome.scheduled {
            match s {
                Scheduled::AuctionCleared(c) => trades += c.trades.len(),
                Scheduled::QuotaExpired(_) => expired += 1,
                Scheduled::VoucherExpired(_) => {}
            }
        }
        let book = &h.ledger.product(CONTINUOUS).unwrap().book;
        if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
            assert!(
                bid < ask,
                "continuous book crossed at step {step}: {bid} ≥ {ask}"
            );
        }
        if step % 100 == 0 {
            check_market(&h);
        }
    }
    check_market(&h);
    assert_eq!(h.ledger.state_hash(), replica.state_hash());
    println!(
        "3000 commands, {accepted} accepted, {trades} trades, {consumed} tokens metered, \
         {alerts} alerts, {expired} quotas expired"
    );
    assert!(trades > 100, "the stream trades: {trades}");
    assert!(alerts > 0 && consumed > 0, "the stream meters usage");
}

/// The invariants of `spec/invariants.md` plus the market's own: escrow holds exactly what
/// open orders reserve, and each open order's reservation is its open lots at its price.
fn check_market(h: &Harness) {
    h.ledger.check_invariants().unwrap();
    let mut reserved_money = 0u128;
    let mut reserved_goods = 0u128;
    for order in h.ledger.market().orders.values() {
        if order.status != OrderStatus::Open {
            assert!(order.pending_transfer_id.is_none());
            continue;
        }
        let pending = h
            .ledger
            .transfer(order.pending_transfer_id.unwrap())
            .unwrap();
        let expected = match order.spec.side {
            Side::Buy => u128::from(order.resting_price.unwrap()) * u128::from(order.open_lots),
            Side::Sell => u128::from(order.open_lots) * HOUR,
        };
        assert_eq!(pending.amount, expected, "order {}", order.spec.order_id);
        match order.spec.side {
            Side::Buy => reserved_money += expected,
            Side::Sell => reserved_goods += expected,
        }
    }
    let escrow = |asset: &str| {
        let asset: Asset = asset.parse().unwrap();
        h.ledger
            .system_account(&asset, AccountKind::Escrow)
            .unwrap()
            .balances
    };
    assert_eq!(escrow("CNY").credits_pending, reserved_money);
    assert_eq!(escrow("GPUH:H100").credits_pending, reserved_goods);
    assert_eq!(escrow("CNY").credits_posted, 0);
}

#[test]
fn a_gpu_package_is_stocked_in_escrow_and_sold_at_its_price() {
    let mut h = market();
    // The operator lists "100 H100 GPU-hours, ¥2,000" with 5 in stock, from its own account.
    h.open_account(OPERATOR, 900, "GPUH:H100", MAIN, true);
    h.open_account(OPERATOR, 901, "CNY", MAIN, true);
    fund(&mut h, "GPUH:H100", 900, 1_000 * HOUR);
    let package = |stock| PackageSpec {
        package_id: "h100-100h".into(),
        title: "100 H100 GPU-hours".into(),
        asset: "GPUH:H100".parse().unwrap(),
        quantity: 100 * HOUR,
        price: 200_000,
        validity_s: 0,
        stock,
        seller_account_id: 901,
        goods_account_id: Some(900),
        provider: None,
    };
    // Stock beyond the account's balance is refused; 5 × 100 hours move into escrow.
    let too_much = h.submit(
        OPERATOR,
        Command::ListPackage {
            package: package(11),
        },
    );
    assert_eq!(rejected(&too_much), Some(Reason::InsufficientGoods));
    h.expect_accepted(
        OPERATOR,
        Command::ListPackage {
            package: package(5),
        },
    );
    assert_eq!(balance(&h, 900), (500 * HOUR as i128, 0));
    assert_eq!(
        system(&h, "GPUH:H100", AccountKind::Escrow),
        500 * HOUR as i128
    );
    // An institution may not list; sme-a buys one: ¥2,000 out, 100 hours in.
    let listed_by_institution = h.submit(
        "univ",
        Command::ListPackage {
            package: PackageSpec {
                package_id: "univ-pack".into(),
                ..package(1)
            },
        },
    );
    assert_eq!(rejected(&listed_by_institution), Some(Reason::NotPermitted));
    h.expect_accepted(
        "sme-a",
        Command::BuyPackage {
            purchase: PurchaseSpec {
                purchase_id: 1,
                package_id: "h100-100h".into(),
                pay_account_id: cny(3),
                receive_account_id: gpuh(3),
                vouchers: Vec::new(),
            },
        },
    );
    assert_eq!(balance(&h, cny(3)), (800_000, 0));
    assert_eq!(balance(&h, gpuh(3)), (100 * HOUR as i128, 0));
    assert_eq!(balance(&h, 901), (200_000, 0));
    assert_eq!(
        system(&h, "GPUH:H100", AccountKind::Escrow),
        400 * HOUR as i128
    );
    assert_eq!(h.ledger.shelf().packages["h100-100h"].remaining(), 4);
    // Paying with another SME's account is refused.
    let theft = h.submit(
        "sme-a",
        Command::BuyPackage {
            purchase: PurchaseSpec {
                purchase_id: 2,
                package_id: "h100-100h".into(),
                pay_account_id: cny(4),
                receive_account_id: gpuh(3),
                vouchers: Vec::new(),
            },
        },
    );
    assert_eq!(rejected(&theft), Some(Reason::NotAccountOwner));
    h.ledger.check_invariants().unwrap();
}
