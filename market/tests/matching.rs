//! Seeded property tests of `market::book` against naive reference models.
//!
//! `continuous_matching_agrees_with_the_reference` drives random limit orders near a drifting
//! mid, cancels, market orders (some with budgets) and amendments through `Book::plan` and
//! `Book::commit`, and through `Reference`: a `Vec` of resting orders that is filtered and
//! sorted afresh for every order. After every operation the two must agree on the result and on
//! every resting order, the book must not be crossed, and every fill must conserve lots and
//! money within both limits and the buyer's budget. Replaying the same stream into a fresh book
//! must give byte-identical encodings of the results and of the final book.
//!
//! `auctions_agree_with_brute_force` clears random (often crossed) auction books and compares
//! each clearing with one that tries every candidate price and pairs lot by lot.
//!
//! Both print their seed. `CBANK_SEED` (decimal or `0x` hex) and `CBANK_OPS` choose the seed and
//! the number of continuous operations; nothing here draws system randomness.

use std::collections::BTreeMap;
use std::time::Instant;

use market::book::{
    Amended, Book, Clearing, Execution, Fill, OrderId, OrderRequest, Refusal, RestingOrder,
    SelfTrade, Side, TimeInForce, Unrested,
};
use serde::Serialize;

type Owner = u8;

/// How many owners trade: few enough that self-trade prevention happens often.
const OWNERS: u64 = 8;
const SEED_DEFAULT: u64 = 0x00CB_A4C0_FFEE_2026;
const OPS_DEFAULT: usize = 100_000;
const AUCTIONS: usize = 2_000;

/// splitmix64: a small seedable generator, so a seed reproduces a run exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for testing (n is tiny next to 2^64).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// In `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn side(&mut self) -> Side {
        if self.percent(50) {
            Side::Buy
        } else {
            Side::Sell
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number")))
}

fn seed() -> u64 {
    env_number("CBANK_SEED").unwrap_or(SEED_DEFAULT)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let config = bincode::config::standard().with_fixed_int_encoding();
    bincode::serde::encode_to_vec(value, config).expect("test values encode")
}

#[derive(Clone, Debug, Serialize)]
enum Op {
    Submit(OrderRequest<Owner>),
    Cancel(OrderId),
    Amend {
        id: OrderId,
        price: Option<u64>,
        lots: u64,
        may_cross: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
enum Outcome {
    Submitted(Result<Execution, Refusal>),
    Cancelled(Option<RestingOrder<Owner>>),
    Amended(Result<Amended, Refusal>),
}

/// The obviously-correct model: resting orders in a `Vec` kept in id order, every question
/// answered by a scan.
#[derive(Default)]
struct Reference {
    orders: Vec<RestingOrder<Owner>>,
    next_sequence: u64,
}

impl Reference {
    fn position(&self, id: OrderId) -> Option<usize> {
        self.orders.iter().position(|order| order.id == id)
    }

    fn rest(&mut self, id: OrderId, owner: Owner, side: Side, price: u64, lots: u64) {
        let order = RestingOrder {
            id,
            owner,
            side,
            price,
            lots,
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        let at = self.orders.partition_point(|resting| resting.id < id);
        self.orders.insert(at, order);
    }

    /// Takes `lots` from order `id`, removing it when none are left.
    fn take(orders: &mut Vec<RestingOrder<Owner>>, id: OrderId, lots: u64) {
        let order = orders
            .iter_mut()
            .find(|order| order.id == id)
            .expect("the reference fills only resting orders");
        order.lots -= lots;
        orders.retain(|order| order.lots > 0);
    }

    /// The opposite orders an order on `side` at `price` (`None`: any price) would reach.
    fn reached(&self, side: Side, price: Option<u64>) -> Vec<RestingOrder<Owner>> {
        let reaches = |order: &&RestingOrder<Owner>| {
            order.side != side
                && match (side, price) {
                    (_, None) => true,
                    (Side::Buy, Some(limit)) => order.price <= limit,
                    (Side::Sell, Some(limit)) => order.price >= limit,
                }
        };
        let mut reached: Vec<_> = self.orders.iter().filter(reaches).cloned().collect();
        reached.sort_by(|a, b| {
            let by_price = match side {
                Side::Buy => a.price.cmp(&b.price),
                Side::Sell => b.price.cmp(&a.price),
            };
            by_price.then(a.sequence.cmp(&b.sequence))
        });
        reached
    }

    fn submit(&mut self, request: &OrderRequest<Owner>) -> Result<Execution, Refusal> {
        let is_market = request.price.is_none();
        let is_gtc = request.time_in_force == TimeInForce::Gtc;
        // The spec's list, one rule per entry.
        let invalid = [
            request.lots == 0,
            request.price == Some(0),
            is_market && is_gtc,
            is_market && request.post_only,
            request.post_only && !is_gtc,
        ];
        if invalid.contains(&true) {
            return Err(Refusal::InvalidOrder);
        }
        if self.position(request.id).is_some() {
            return Err(Refusal::DuplicateId);
        }
        let makers = self.reached(request.side, request.price);
        if request.post_only && !makers.is_empty() {
            return Err(Refusal::PostOnlyWouldCross);
        }
        let mut after = self.orders.clone();
        let mut fills = Vec::new();
        let mut cancelled_makers = Vec::new();
        let mut done = None;
        let mut remaining = request.lots;
        let mut spent: u128 = 0;
        for maker in makers {
            if maker.owner == request.owner {
                if request.self_trade != SelfTrade::CancelTaker {
                    cancelled_makers.push((maker.id, maker.lots));
                    after.retain(|order| order.id != maker.id);
                }
                if request.self_trade == SelfTrade::CancelMaker {
                    continue;
                }
                done = Some(Unrested::SelfTrade);
                break;
            }
            let mut lots = remaining.min(maker.lots);
            let mut out_of_budget = false;
            if let (Side::Buy, Some(budget)) = (request.side, request.budget) {
                while lots > 0 && spent + u128::from(maker.price) * u128::from(lots) > budget {
                    lots -= 1;
                    out_of_budget = true;
                }
            }
            if lots > 0 {
                let (buy, sell) = match request.side {
                    Side::Buy => (request.id, maker.id),
                    Side::Sell => (maker.id, request.id),
                };
                fills.push(Fill {
                    buy,
                    sell,
                    price: maker.price,
                    lots,
                    aggressor: Some(request.side),
                });
                spent += u128::from(maker.price) * u128::from(lots);
                remaining -= lots;
                Self::take(&mut after, maker.id, lots);
            }
            if out_of_budget {
                done = Some(Unrested::BudgetExhausted);
                break;
            }
            if remaining == 0 {
                done = Some(Unrested::Filled);
                break;
            }
        }
        let mut rests = 0;
        if done.is_none() {
            if request.price.is_some() && is_gtc {
                rests = remaining;
            } else {
                done = Some(Unrested::ImmediateRemainderCancelled);
            }
        }
        if request.time_in_force == TimeInForce::Fok && done != Some(Unrested::Filled) {
            return Err(Refusal::FillOrKillUnfillable);
        }
        self.orders = after;
        if let (true, Some(price)) = (rests > 0, request.price) {
            self.rest(request.id, request.owner, request.side, price, rests);
        }
        Ok(Execution {
            fills,
            cancelled_makers,
            rests,
            done,
        })
    }

    fn insert_unmatched(&mut self, request: &OrderRequest<Owner>) -> Result<(), Refusal> {
        if request.lots == 0 || request.price.is_none_or(|price| price == 0) {
            return Err(Refusal::InvalidOrder);
        }
        if self.position(request.id).is_some() {
            return Err(Refusal::DuplicateId);
        }
        let price = request.price.expect("checked above");
        self.rest(request.id, request.owner, request.side, price, request.lots);
        Ok(())
    }

    fn cancel(&mut self, id: OrderId) -> Option<RestingOrder<Owner>> {
        let at = self.position(id)?;
        Some(self.orders.remove(at))
    }

    fn amend(
        &mut self,
        id: OrderId,
        price: Option<u64>,
        lots: u64,
        may_cross: bool,
    ) -> Result<Amended, Refusal> {
        let at = self.position(id).ok_or(Refusal::UnknownOrder)?;
        if lots == 0 {
            return Err(Refusal::AmendToZero);
        }
        if price == Some(0) {
            return Err(Refusal::InvalidOrder);
        }
        let old = self.orders[at].clone();
        let price = price.unwrap_or(old.price);
        if !may_cross && !self.reached(old.side, Some(price)).is_empty() {
            return Err(Refusal::AmendWouldCross);
        }
        let kept_priority = price == old.price && lots <= old.lots;
        if kept_priority {
            self.orders[at].lots = lots;
        } else {
            self.orders.remove(at);
            self.rest(id, old.owner, old.side, price, lots);
        }
        Ok(Amended {
            kept_priority,
            old_price: old.price,
            old_lots: old.lots,
        })
    }

    fn crosses_own(&self, owner: Owner, side: Side, price: u64) -> bool {
        self.reached(side, Some(price))
            .iter()
            .any(|order| order.owner == owner)
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Submit(ref request) => Outcome::Submitted(self.submit(request)),
            Op::Cancel(id) => Outcome::Cancelled(self.cancel(id)),
            Op::Amend {
                id,
                price,
                lots,
                may_cross,
            } => Outcome::Amended(self.amend(id, price, lots, may_cross)),
        }
    }

    /// Tries every resting price, then pairs the orders lot by lot.
    fn auction(&self, reference: Option<u64>) -> Option<Clearing> {
        let mut prices: Vec<u64> = self.orders.iter().map(|order| order.price).collect();
        prices.sort_unstable();
        prices.dedup();
        let lots_where = |keep: &dyn Fn(&RestingOrder<Owner>) -> bool| -> u128 {
            self.orders
                .iter()
                .filter(|order| keep(order))
                .map(|order| u128::from(order.lots))
                .sum()
        };
        // (price, volume, imbalance, distance to the reference)
        let mut candidates: Vec<(u64, u128, u128, u64)> = prices
            .iter()
            .map(|&price| {
                let demand = lots_where(&|order| order.side == Side::Buy && order.price >= price);
                let supply = lots_where(&|order| order.side == Side::Sell && order.price <= price);
                let distance = reference.map_or(0, |reference| price.abs_diff(reference));
                (price, demand.min(supply), demand.abs_diff(supply), distance)
            })
            .collect();
        let volume = candidates.iter().map(|candidate| candidate.1).max()?;
        if volume == 0 {
            return None;
        }
        candidates.retain(|candidate| candidate.1 == volume);
        let imbalance = candidates.iter().map(|candidate| candidate.2).min()?;
        candidates.retain(|candidate| candidate.2 == imbalance);
        let distance = candidates.iter().map(|candidate| candidate.3).min()?;
        candidates.retain(|candidate| candidate.3 == distance);
        let price = candidates.iter().map(|candidate| candidate.0).min()?;

        let units = |side: Side| -> Vec<&RestingOrder<Owner>> {
            let mut eligible: Vec<&RestingOrder<Owner>> = self
                .orders
                .iter()
                .filter(|order| {
                    order.side == side
                        && match side {
                            Side::Buy => order.price >= price,
                            Side::Sell => order.price <= price,
                        }
                })
                .collect();
            eligible.sort_by_key(|order| {
                let priority = match side {
                    Side::Buy => u64::MAX - order.price,
                    Side::Sell => order.price,
                };
                (priority, order.sequence)
            });
            eligible
                .into_iter()
                .flat_map(|order| std::iter::repeat_n(order, order.lots as usize))
                .collect()
        };
        let bid_units = units(Side::Buy);
        let ask_units = units(Side::Sell);
        let pairs = bid_units.iter().zip(&ask_units).take(volume as usize);
        let mut fills: Vec<Fill> = Vec::new();
        let mut last: Option<(OrderId, OrderId)> = None;
        for (buy, sell) in pairs {
            let pair = (buy.id, sell.id);
            if buy.owner != sell.owner {
                match fills.last_mut() {
                    Some(fill) if last == Some(pair) => fill.lots += 1,
                    _ => fills.push(Fill {
                        buy: buy.id,
                        sell: sell.id,
                        price,
                        lots: 1,
                        aggressor: None,
                    }),
                }
            }
            last = Some(pair);
        }
        if fills.is_empty() {
            return None;
        }
        Some(Clearing {
            price,
            lots: fills.iter().map(|fill| fill.lots).sum(),
            fills,
        })
    }

    fn commit_clearing(&mut self, clearing: &Clearing) {
        for fill in &clearing.fills {
            Self::take(&mut self.orders, fill.buy, fill.lots);
            Self::take(&mut self.orders, fill.sell, fill.lots);
        }
    }
}

/// Every kind of outcome `kind` names: a full-length run must see each of them.
const KINDS: [&str; 19] = [
    "filled",
    "rested",
    "rested after fills",
    "ioc remainder cancelled",
    "self-trade stopped",
    "self-trade cancelled makers",
    "budget exhausted",
    "invalid",
    "duplicate",
    "post-only would cross",
    "fill-or-kill unfillable",
    "cancelled",
    "cancel unknown",
    "amend kept priority",
    "amend moved",
    "amend unknown",
    "amend to zero",
    "amend would cross",
    "amend invalid",
];

/// Names an outcome for the coverage count.
fn kind(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Submitted(Ok(execution)) => match execution.done {
            _ if !execution.cancelled_makers.is_empty() => "self-trade cancelled makers",
            None if execution.fills.is_empty() => "rested",
            None => "rested after fills",
            Some(Unrested::Filled) => "filled",
            Some(Unrested::ImmediateRemainderCancelled) => "ioc remainder cancelled",
            Some(Unrested::SelfTrade) => "self-trade stopped",
            Some(Unrested::BudgetExhausted) => "budget exhausted",
        },
        Outcome::Submitted(Err(refusal)) | Outcome::Amended(Err(refusal)) => {
            let amend = matches!(outcome, Outcome::Amended(_));
            match (amend, refusal) {
                (false, Refusal::InvalidOrder) => "invalid",
                (false, Refusal::DuplicateId) => "duplicate",
                (false, Refusal::PostOnlyWouldCross) => "post-only would cross",
                (false, Refusal::FillOrKillUnfillable) => "fill-or-kill unfillable",
                (true, Refusal::UnknownOrder) => "amend unknown",
                (true, Refusal::AmendToZero) => "amend to zero",
                (true, Refusal::AmendWouldCross) => "amend would cross",
                (true, Refusal::InvalidOrder) => "amend invalid",
                _ => "impossible refusal",
            }
        }
        Outcome::Cancelled(Some(_)) => "cancelled",
        Outcome::Cancelled(None) => "cancel unknown",
        Outcome::Amended(Ok(amended)) if amended.kept_priority => "amend kept priority",
        Outcome::Amended(Ok(_)) => "amend moved",
    }
}

/// The engine side of `Reference::apply`.
fn apply(book: &mut Book<Owner>, op: &Op) -> Outcome {
    match *op {
        Op::Submit(ref request) => {
            let result = book.plan(request);
            if let Ok(execution) = &result {
                book.commit(request, execution);
            }
            Outcome::Submitted(result)
        }
        Op::Cancel(id) => Outcome::Cancelled(book.cancel(id)),
        Op::Amend {
            id,
            price,
            lots,
            may_cross,
        } => Outcome::Amended(book.amend(id, price, lots, may_cross)),
    }
}

/// Draws the next operation: about 60% limit orders near `mid`, 18% cancels (4% while the
/// book is under 150 orders, and more above 300, so it stays a few dozen orders deep), 12%
/// market orders, 10% amendments. A few orders are invalid or reuse a resting id on purpose.
fn draw(rng: &mut Rng, reference: &Reference, mid: u64, next_id: &mut OrderId) -> Op {
    let live = &reference.orders;
    let any_live = |rng: &mut Rng| -> OrderId {
        if live.is_empty() || rng.percent(5) {
            1_000_000_000 + OrderId::from(rng.below(1_000))
        } else {
            live[rng.below(live.len() as u64) as usize].id
        }
    };
    let roll = rng.below(100);
    let cancels = if live.len() < 150 { 60..64 } else { 60..78 };
    if (live.len() > 300 && rng.percent(50)) || cancels.contains(&roll) {
        return Op::Cancel(any_live(rng));
    }
    if roll >= 90 {
        let id = any_live(rng);
        let old_price = reference
            .position(id)
            .map_or(mid, |at| reference.orders[at].price);
        let price = match rng.below(40) {
            0 => Some(0),
            1..10 => None,
            10..20 => Some(old_price),
            _ => Some(old_price + rng.below(9) - 4),
        };
        return Op::Amend {
            id,
            price,
            lots: rng.below(25),
            may_cross: false,
        };
    }
    *next_id += 1;
    let id = if rng.percent(2) && !live.is_empty() {
        any_live(rng)
    } else {
        *next_id
    };
    let side = rng.side();
    let owner = rng.below(OWNERS) as Owner;
    let self_trade = match rng.below(3) {
        0 => SelfTrade::CancelTaker,
        1 => SelfTrade::CancelMaker,
        _ => SelfTrade::CancelBoth,
    };
    let mut request = if roll < 60 {
        let offset = rng.between(0, 12);
        let price = match side {
            Side::Buy => mid + 4 - offset,
            Side::Sell => mid - 4 + offset,
        };
        let time_in_force = match rng.below(100) {
            0..75 => TimeInForce::Gtc,
            75..88 => TimeInForce::Ioc,
            _ => TimeInForce::Fok,
        };
        let lots = if rng.percent(80) {
            rng.between(1, 10)
        } else {
            rng.between(11, 60)
        };
        OrderRequest {
            id,
            owner,
            side,
            price: Some(price),
            lots,
            time_in_force,
            post_only: time_in_force == TimeInForce::Gtc && rng.percent(20),
            self_trade,
            budget: None,
        }
    } else {
        OrderRequest {
            id,
            owner,
            side,
            price: None,
            lots: rng.between(1, 25),
            time_in_force: if rng.percent(80) {
                TimeInForce::Ioc
            } else {
                TimeInForce::Fok
            },
            post_only: false,
            self_trade,
            budget: None,
        }
    };
    if rng.percent(if request.price.is_none() { 50 } else { 15 }) {
        let most = u128::from(mid) * u128::from(request.lots);
        request.budget = Some(u128::from(rng.next()) % (most + most / 4 + 1));
    }
    if rng.percent(2) {
        match rng.below(4) {
            0 => request.lots = 0,
            1 => request.price = Some(0),
            2 => {
                request.price = None;
                request.time_in_force = TimeInForce::Gtc;
            }
            _ => {
                request.post_only = true;
                request.time_in_force = TimeInForce::Ioc;
            }
        }
    }
    Op::Submit(request)
}

/// Checks one accepted order's execution against the book as it was before the commit
/// (`makers_before`: each maker's resting order then) and after it.
fn check_execution(
    request: &OrderRequest<Owner>,
    execution: &Execution,
    makers_before: &[RestingOrder<Owner>],
    book: &Book<Owner>,
    context: &str,
) {
    let mut spent: u128 = 0;
    for (fill, maker) in execution.fills.iter().zip(makers_before) {
        let (taker_id, maker_id) = match request.side {
            Side::Buy => (fill.buy, fill.sell),
            Side::Sell => (fill.sell, fill.buy),
        };
        assert_eq!(taker_id, request.id, "{context}: the taker is on its side");
        assert_eq!(
            maker_id, maker.id,
            "{context}: the maker is on the other side"
        );
        assert_eq!(fill.aggressor, Some(request.side), "{context}: aggressor");
        assert_ne!(maker.owner, request.owner, "{context}: no self-trade");
        assert_eq!(maker.side, request.side.opposite(), "{context}: maker side");
        assert!(fill.lots > 0, "{context}: a fill moves lots");
        assert!(
            fill.lots <= maker.lots,
            "{context}: a fill takes what the maker has"
        );
        assert_eq!(fill.price, maker.price, "{context}: the maker's price");
        // The fill is within both limits: the maker's by the line above, the taker's here.
        if let Some(limit) = request.price {
            match request.side {
                Side::Buy => assert!(fill.price <= limit, "{context}: buy limit"),
                Side::Sell => assert!(fill.price >= limit, "{context}: sell limit"),
            }
        }
        // The buyer pays exactly price × lots, which the seller receives; nothing overflows.
        let money = u128::from(fill.price)
            .checked_mul(u128::from(fill.lots))
            .expect("price × lots fits");
        spent += money;
        let maker_after = book.order(maker.id).map_or(0, |order| order.lots);
        let taken: u64 = execution
            .fills
            .iter()
            .filter(|other| other.buy == maker.id || other.sell == maker.id)
            .map(|other| other.lots)
            .sum();
        assert_eq!(
            maker_after,
            maker.lots - taken,
            "{context}: the maker gives what the taker gets"
        );
    }
    if let (Side::Buy, Some(budget)) = (request.side, request.budget) {
        assert!(
            spent <= budget,
            "{context}: spent {spent} over budget {budget}"
        );
    }
    for &(id, lots) in &execution.cancelled_makers {
        assert!(
            book.order(id).is_none(),
            "{context}: cancelled maker {id} is gone"
        );
        assert!(lots > 0, "{context}: a cancelled maker had lots");
    }
    let filled = execution.filled_lots();
    assert!(
        filled + execution.rests <= request.lots,
        "{context}: no lots made up"
    );
    assert_eq!(
        execution.done.is_none(),
        execution.rests > 0,
        "{context}: done iff not resting"
    );
    if execution.done == Some(Unrested::Filled) {
        assert_eq!(filled, request.lots, "{context}: filled means all lots");
    }
    let resting = book.order(request.id).map(|order| order.lots);
    let expected = (execution.rests > 0).then_some(execution.rests);
    assert_eq!(resting, expected, "{context}: the remainder rests");
}

/// Compares every view of the book with the reference: order by order (in id order), each
/// side's queue in priority order, depth and the best prices.
fn check_views(book: &Book<Owner>, reference: &Reference, context: &str) {
    assert_eq!(book.check_invariants(), Ok(()), "{context}");
    for side in [Side::Buy, Side::Sell] {
        let limit = match side {
            Side::Buy => 0,
            Side::Sell => u64::MAX,
        };
        let expected = reference.reached(side.opposite(), Some(limit));
        let queue: Vec<_> = book.queue(side).cloned().collect();
        assert_eq!(queue, expected, "{context}: {side:?} queue");
    }
    let (bids, asks) = book.depth(usize::MAX);
    for (side, levels) in [(Side::Buy, bids), (Side::Sell, asks)] {
        for level in &levels {
            let orders: Vec<_> = reference
                .orders
                .iter()
                .filter(|order| order.side == side && order.price == level.price)
                .collect();
            assert_eq!(
                level.orders as usize,
                orders.len(),
                "{context}: level orders"
            );
            let lots: u64 = orders.iter().map(|order| order.lots).sum();
            assert_eq!(level.lots, lots, "{context}: level lots");
        }
        let mut prices: Vec<u64> = reference
            .orders
            .iter()
            .filter(|order| order.side == side)
            .map(|order| order.price)
            .collect();
        prices.sort_unstable();
        prices.dedup();
        assert_eq!(
            levels.len(),
            prices.len(),
            "{context}: {side:?} level count"
        );
    }
}

#[test]
fn continuous_matching_agrees_with_the_reference() {
    let seed = seed();
    let ops = env_number("CBANK_OPS").map_or(OPS_DEFAULT, |ops| ops as usize);
    println!(
        "matching: seed {seed:#x}, {ops} ops; reproduce: \
         CBANK_SEED={seed:#x} CBANK_OPS={ops} cargo test -p market --test matching continuous"
    );
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut book: Book<Owner> = Book::new();
    let mut reference = Reference::default();
    let mut mid: u64 = 1_000;
    let mut next_id: OrderId = 0;
    let mut stream = Vec::with_capacity(ops);
    let mut log = Vec::with_capacity(ops);
    let mut fills = 0usize;
    let mut depth_total = 0usize;
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for step in 0..ops {
        if step % 16 == 0 {
            mid = (mid + rng.below(3) - 1).max(20);
        }
        let op = draw(&mut rng, &reference, mid, &mut next_id);
        let context = format!("seed {seed:#x} step {step} {op:?}");
        let outcome = match &op {
            Op::Submit(request) => {
                let result = book.plan(request);
                if let Ok(execution) = &result {
                    let makers_before: Vec<RestingOrder<Owner>> = execution
                        .fills
                        .iter()
                        .map(|fill| {
                            let maker = match request.side {
                                Side::Buy => fill.sell,
                                Side::Sell => fill.buy,
                            };
                            book.order(maker).cloned().expect("a maker rests")
                        })
                        .collect();
                    book.commit(request, execution);
                    check_execution(request, execution, &makers_before, &book, &context);
                    fills += execution.fills.len();
                }
                Outcome::Submitted(result)
            }
            other => apply(&mut book, other),
        };
        let expected = reference.apply(&op);
        assert_eq!(outcome, expected, "{context}");
        assert!(
            book.orders().eq(reference.orders.iter()),
            "{context}: resting orders"
        );
        assert_eq!(book.len(), reference.orders.len(), "{context}");
        assert!(!book.is_crossed(), "{context}: crossed");
        depth_total += book.len();
        *seen.entry(kind(&outcome)).or_insert(0) += 1;
        if step % 1_000 == 0 {
            check_views(&book, &reference, &context);
        }
        stream.push(op);
        log.push(outcome);
    }
    check_views(&book, &reference, "end");

    let mut replayed: Book<Owner> = Book::new();
    let replayed_log: Vec<Outcome> = stream.iter().map(|op| apply(&mut replayed, op)).collect();
    assert_eq!(encode(&replayed_log), encode(&log), "replayed results");
    let bytes = encode(&book);
    assert_eq!(encode(&replayed), bytes, "replayed book");
    let config = bincode::config::standard().with_fixed_int_encoding();
    let (decoded, _): (Book<Owner>, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("a book decodes");
    assert_eq!(decoded, book, "decoded book");
    println!(
        "matching: {ops} ops in {} ms: {fills} fills, mean depth {} orders; {seen:?}",
        started.elapsed().as_millis(),
        depth_total / ops.max(1),
    );
    if ops >= OPS_DEFAULT {
        let missing: Vec<_> = KINDS
            .iter()
            .filter(|kind| !seen.contains_key(*kind))
            .collect();
        assert!(
            missing.is_empty(),
            "the generator never reached {missing:?}"
        );
    }
}

#[test]
fn auctions_agree_with_brute_force() {
    let seed = seed();
    println!(
        "auctions: seed {seed:#x}, {AUCTIONS} books; reproduce: \
         CBANK_SEED={seed:#x} cargo test -p market --test matching auctions"
    );
    let mut rng = Rng(seed ^ 0xA0C7_1011);
    let mut cleared = 0usize;
    for case in 0..AUCTIONS {
        // Half the books guard against crossing self-orders as the ledger does; the other
        // half exercise the rule that an owner is never paired with itself.
        let guarded = case % 2 == 0;
        let mut book: Book<Owner> = Book::new();
        let mut reference = Reference::default();
        let orders = rng.between(1, 40);
        for id in 1..=orders {
            let context = format!("seed {seed:#x} case {case} order {id}");
            let owner = rng.below(4) as Owner;
            let side = rng.side();
            let price = rng.between(90, 110);
            if guarded || rng.percent(20) {
                let crosses = book.crosses_own(&owner, side, price);
                assert_eq!(
                    crosses,
                    reference.crosses_own(owner, side, price),
                    "{context}"
                );
                if guarded && crosses {
                    continue;
                }
            }
            let request = OrderRequest {
                id: if rng.percent(3) { 1 } else { OrderId::from(id) },
                owner,
                side,
                price: if rng.percent(2) { None } else { Some(price) },
                lots: rng.below(11),
                time_in_force: TimeInForce::Gtc,
                post_only: false,
                self_trade: SelfTrade::CancelTaker,
                budget: None,
            };
            let inserted = book.insert_unmatched(&request);
            assert_eq!(inserted, reference.insert_unmatched(&request), "{context}");
            if rng.percent(10) {
                let id = OrderId::from(rng.between(1, id));
                assert_eq!(book.cancel(id), reference.cancel(id), "{context}");
            }
            if !guarded && rng.percent(10) {
                let id = OrderId::from(rng.between(1, id));
                let (price, lots) = (Some(rng.between(90, 110)), rng.below(11));
                let amended = book.amend(id, price, lots, true);
                assert_eq!(amended, reference.amend(id, price, lots, true), "{context}");
            }
        }
        let context = format!("seed {seed:#x} case {case}");
        assert!(book.orders().eq(reference.orders.iter()), "{context}");
        let last_price = if rng.percent(70) {
            Some(rng.between(85, 115))
        } else {
            None
        };
        let clearing = book.auction(last_price);
        assert_eq!(clearing, reference.auction(last_price), "{context}");
        if let Some(clearing) = clearing {
            cleared += 1;
            assert_eq!(
                clearing.lots,
                clearing.fills.iter().map(|fill| fill.lots).sum::<u64>()
            );
            book.commit_clearing(&clearing);
            reference.commit_clearing(&clearing);
        }
        assert!(
            book.orders().eq(reference.orders.iter()),
            "{context}: after clearing"
        );
        assert_eq!(book.check_invariants(), Ok(()), "{context}");
        if guarded {
            assert!(
                !book.is_crossed(),
                "{context}: a clearing uncrosses the book"
            );
            assert_eq!(
                book.auction(last_price),
                None,
                "{context}: nothing left to clear"
            );
        }
    }
    println!("auctions: {AUCTIONS} books, {cleared} cleared");
    assert!(
        cleared > AUCTIONS / 4,
        "the generator makes books that clear"
    );
}
