//! Order books and continuous matching: strict price-time priority.
//!
//! Prices are integers in the quote asset's minor unit (fen) per lot; quantities are whole lots.
//! The caller (the ledger) checks tick and lot rules against the product and reserves funds;
//! this module only matches. Matching is two-phase so the caller can settle atomically:
//! [`Book::plan`] reads the book and says what would happen, [`Book::commit`] makes it so.
//! A plan is only valid for the book it was made on, unchanged.
//!
//! Deterministic and canonical: only ordered collections, so the serde encoding of a book is
//! the same on every replica that applied the same operations.
//!
//! Must never: do I/O, read a clock, draw randomness, iterate a hash map, or leave an empty
//! price level behind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub type OrderId = u128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// How long an order may live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till cancelled: the remainder rests on the book.
    Gtc,
    /// Immediate or cancel: fills what it can now, the remainder is cancelled.
    Ioc,
    /// Fill or kill: fills entirely now, or nothing happens at all.
    Fok,
}

/// Self-trade prevention: what happens when an order would trade with a resting order of the
/// same owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTrade {
    /// The incoming order's remainder is cancelled; the resting order stays.
    CancelTaker,
    /// The resting order is cancelled and matching goes on.
    CancelMaker,
    /// Both are cancelled.
    CancelBoth,
}

/// An incoming order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest<O> {
    pub id: OrderId,
    pub owner: O,
    pub side: Side,
    /// Limit price per lot; `None` is a market order (IOC or FOK only, never rests).
    pub price: Option<u64>,
    pub lots: u64,
    pub time_in_force: TimeInForce,
    pub post_only: bool,
    pub self_trade: SelfTrade,
    /// For buys: the most the order may spend in total (Σ price × lots of its fills). Matching
    /// stops before a fill that would exceed it (filling fewer lots at that level when some
    /// fit). `None`: no limit. The ledger sets it to the buyer's available money for market
    /// buys.
    pub budget: Option<u128>,
}

/// An order resting on the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestingOrder<O> {
    pub id: OrderId,
    pub owner: O,
    pub side: Side,
    pub price: u64,
    /// Lots still open.
    pub lots: u64,
    /// Arrival sequence within the book: lower is earlier. Amend-down keeps it; a reprice or an
    /// increase takes a new one (the back of the queue).
    pub sequence: u64,
}

/// One trade between a buy and a sell order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub buy: OrderId,
    pub sell: OrderId,
    pub price: u64,
    pub lots: u64,
    /// The side of the incoming (taker) order; `None` for an auction clearing.
    pub aggressor: Option<Side>,
}

/// Why the incoming order's remainder did not rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unrested {
    /// Fully filled.
    Filled,
    /// IOC or market remainder cancelled (no more liquidity within its price).
    ImmediateRemainderCancelled,
    /// Stopped by self-trade prevention (cancel taker or cancel both).
    SelfTrade,
    /// A buy's budget ran out.
    BudgetExhausted,
}

/// What an incoming order does to the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Fills in the order they happen.
    pub fills: Vec<Fill>,
    /// Resting orders removed by self-trade prevention, with the lots they still had.
    pub cancelled_makers: Vec<(OrderId, u64)>,
    /// Lots of the incoming order that rest on the book (GTC limit only).
    pub rests: u64,
    /// Set when `rests` is 0: why the incoming order is done.
    pub done: Option<Unrested>,
}

impl Execution {
    pub fn filled_lots(&self) -> u64 {
        self.fills.iter().map(|fill| fill.lots).sum()
    }
}

/// Why an order or amendment was refused; a refused order changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// An order with this id is resting already.
    DuplicateId,
    /// Zero lots, a zero price, market + GTC, market + post-only, post-only + IOC/FOK.
    InvalidOrder,
    /// A post-only order would trade on arrival.
    PostOnlyWouldCross,
    /// A fill-or-kill order cannot be filled entirely now.
    FillOrKillUnfillable,
    /// No resting order with this id.
    UnknownOrder,
    /// An amendment that would trade on arrival (amendments never trade).
    AmendWouldCross,
    /// An amendment to zero lots (cancel instead).
    AmendToZero,
}

/// What an amendment did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amended {
    /// Whether the order kept its place in the queue (same price, fewer or equal lots).
    pub kept_priority: bool,
    pub old_price: u64,
    pub old_lots: u64,
}

/// One price level of the depth view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    pub price: u64,
    pub lots: u64,
    pub orders: u32,
}

/// An order book for one product. `O` identifies an order's owner (for self-trade
/// prevention); the ledger uses its party ids, benchmarks use integers.
///
/// Each side is a map from price to a `PriceLevel`, whose queue is ordered by arrival
/// sequence; `places` finds any resting order from its id in O(log n). Every map is a
/// `BTreeMap`, so the serde encoding is a function of the resting orders and
/// `next_sequence` alone, the same on every replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book<O> {
    /// Buy orders by price; the best bid is the last key.
    bids: BTreeMap<u64, PriceLevel<O>>,
    /// Sell orders by price; the best ask is the first key.
    asks: BTreeMap<u64, PriceLevel<O>>,
    /// Where each resting order sits.
    places: BTreeMap<OrderId, Place>,
    /// The sequence the next order to join a queue takes.
    next_sequence: u64,
}

/// The orders resting at one price, earliest first. Never empty while on the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PriceLevel<O> {
    /// Σ lots of the queue. A u128, so that no number of u64 orders can overflow it.
    lots: u128,
    /// By sequence: lower is earlier, so iteration order is time priority.
    queue: BTreeMap<u64, RestingOrder<O>>,
}

impl<O> PriceLevel<O> {
    fn new() -> PriceLevel<O> {
        PriceLevel {
            lots: 0,
            queue: BTreeMap::new(),
        }
    }
}

/// Where a resting order sits: its side, its price level, and its key in that level's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Place {
    side: Side,
    price: u64,
    sequence: u64,
}

impl<O: Clone + Eq> Default for Book<O> {
    fn default() -> Self {
        Book::new()
    }
}

impl<O: Clone + Eq> Book<O> {
    pub fn new() -> Book<O> {
        Book {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            places: BTreeMap::new(),
            next_sequence: 0,
        }
    }

    /// What `request` would do, without changing the book. Refusals, checked in this order:
    /// `InvalidOrder`, `DuplicateId`, `PostOnlyWouldCross` (any resting order the price
    /// reaches, the owner's own included), `FillOrKillUnfillable`. A `budget` on a sell is
    /// ignored.
    pub fn plan(&self, request: &OrderRequest<O>) -> Result<Execution, Refusal> {
        validate(request)?;
        if self.places.contains_key(&request.id) {
            return Err(Refusal::DuplicateId);
        }
        if let (true, Some(price)) = (request.post_only, request.price) {
            if self.would_cross(request.side, price) {
                return Err(Refusal::PostOnlyWouldCross);
            }
        }
        let execution = match request.side {
            Side::Buy => walk(request, self.asks.iter()),
            Side::Sell => walk(request, self.bids.iter().rev()),
        };
        if request.time_in_force == TimeInForce::Fok && execution.done != Some(Unrested::Filled) {
            return Err(Refusal::FillOrKillUnfillable);
        }
        Ok(execution)
    }

    /// Applies a plan made by `plan(request)` on this unchanged book: fills reduce or remove
    /// resting orders, self-trade cancels remove them, and the remainder rests.
    ///
    /// A plan that does not fit the book (made on another book, or applied twice) is a bug in
    /// the caller and panics.
    pub fn commit(&mut self, request: &OrderRequest<O>, execution: &Execution) {
        for &(id, lots) in &execution.cancelled_makers {
            let cancelled = self
                .cancel(id)
                .expect("plan invariant: a cancelled maker rests on the book the plan was made on");
            assert_eq!(
                cancelled.lots, lots,
                "plan invariant: a cancelled maker is unchanged"
            );
        }
        for fill in &execution.fills {
            let maker = match request.side {
                Side::Buy => fill.sell,
                Side::Sell => fill.buy,
            };
            self.take(maker, fill.lots);
        }
        if execution.rests > 0 {
            let price = request
                .price
                .expect("plan invariant: only a limit order rests");
            self.rest(
                request.id,
                request.owner.clone(),
                request.side,
                price,
                execution.rests,
            );
        }
    }

    /// Puts an order on the book without matching (auction books collect orders this way; the
    /// book may then be crossed until the auction clears). Refuses `InvalidOrder` (market
    /// orders, zero lots or price) and then `DuplicateId`. Time in force, post-only, self-trade
    /// prevention and budget play no part here.
    pub fn insert_unmatched(&mut self, request: &OrderRequest<O>) -> Result<(), Refusal> {
        let price = match request.price {
            Some(price) if price > 0 && request.lots > 0 => price,
            _ => return Err(Refusal::InvalidOrder),
        };
        if self.places.contains_key(&request.id) {
            return Err(Refusal::DuplicateId);
        }
        self.rest(
            request.id,
            request.owner.clone(),
            request.side,
            price,
            request.lots,
        );
        Ok(())
    }

    /// Removes a resting order (O(log n)).
    pub fn cancel(&mut self, id: OrderId) -> Option<RestingOrder<O>> {
        let place = self.places.remove(&id)?;
        Some(self.unqueue(place))
    }

    /// Changes a resting order's lots and, optionally, its price. Fewer or equal lots at the
    /// same price keep queue priority; anything else goes to the back of the queue at its (new)
    /// price. On a continuous book (`may_cross` false) an amendment whose price would reach the
    /// opposite best is refused `AmendWouldCross`. Refusals, checked in this order:
    /// `UnknownOrder`, `AmendToZero`, `InvalidOrder` (a new price of zero), `AmendWouldCross`.
    pub fn amend(
        &mut self,
        id: OrderId,
        new_price: Option<u64>,
        new_lots: u64,
        may_cross: bool,
    ) -> Result<Amended, Refusal> {
        let place = *self.places.get(&id).ok_or(Refusal::UnknownOrder)?;
        if new_lots == 0 {
            return Err(Refusal::AmendToZero);
        }
        if new_price == Some(0) {
            return Err(Refusal::InvalidOrder);
        }
        let price = new_price.unwrap_or(place.price);
        if !may_cross && self.would_cross(place.side, price) {
            return Err(Refusal::AmendWouldCross);
        }
        let levels = match place.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels
            .get_mut(&place.price)
            .expect("book invariant: every place names a level");
        let order = level
            .queue
            .get_mut(&place.sequence)
            .expect("book invariant: every place names a queued order");
        let old_lots = order.lots;
        let kept_priority = price == place.price && new_lots <= old_lots;
        if kept_priority {
            order.lots = new_lots;
            level.lots -= u128::from(old_lots - new_lots);
        } else {
            self.places.remove(&id);
            let order = self.unqueue(place);
            self.rest(id, order.owner, place.side, price, new_lots);
        }
        Ok(Amended {
            kept_priority,
            old_price: place.price,
            old_lots,
        })
    }

    pub fn order(&self, id: OrderId) -> Option<&RestingOrder<O>> {
        self.places.get(&id).map(|place| self.at(place))
    }

    /// Every resting order, in id order.
    pub fn orders(&self) -> Box<dyn Iterator<Item = &RestingOrder<O>> + '_> {
        Box::new(self.places.values().map(|place| self.at(place)))
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn best_bid(&self) -> Option<u64> {
        self.bids.last_key_value().map(|(&price, _)| price)
    }

    pub fn best_ask(&self) -> Option<u64> {
        self.asks.first_key_value().map(|(&price, _)| price)
    }

    /// Whether the best bid reaches the best ask. A continuous book never is after an
    /// operation; an auction book may be until it clears.
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some(bid), Some(ask)) => bid >= ask,
            _ => false,
        }
    }

    /// Up to `levels` price levels per side, best first: (bids, asks). A level's `lots` and
    /// `orders` saturate at their type's maximum.
    pub fn depth(&self, levels: usize) -> (Vec<Level>, Vec<Level>) {
        fn view<O>((&price, level): (&u64, &PriceLevel<O>)) -> Level {
            Level {
                price,
                lots: u64::try_from(level.lots).unwrap_or(u64::MAX),
                orders: u32::try_from(level.queue.len()).unwrap_or(u32::MAX),
            }
        }
        let bids = self.bids.iter().rev().take(levels).map(view).collect();
        let asks = self.asks.iter().take(levels).map(view).collect();
        (bids, asks)
    }

    /// Resting orders of one side in priority order (best price, then earliest).
    pub fn queue(&self, side: Side) -> Box<dyn Iterator<Item = &RestingOrder<O>> + '_> {
        match side {
            Side::Buy => Box::new(
                self.bids
                    .values()
                    .rev()
                    .flat_map(|level| level.queue.values()),
            ),
            Side::Sell => Box::new(self.asks.values().flat_map(|level| level.queue.values())),
        }
    }

    /// Checks every structural invariant in O(n): each place names a queued order with that
    /// id, side, price and sequence; each queued order has a place; no level is empty; each
    /// level's total is the sum of its queue; lots and prices are positive; sequences are below
    /// `next_sequence`. Returns the first broken invariant. For tests and for checking a book
    /// decoded from a snapshot.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut queued = 0usize;
        for (side, levels) in [(Side::Buy, &self.bids), (Side::Sell, &self.asks)] {
            for (&price, level) in levels {
                if level.queue.is_empty() {
                    return Err("no level is empty");
                }
                let mut lots: u128 = 0;
                for (&sequence, order) in &level.queue {
                    let place = Place {
                        side,
                        price,
                        sequence,
                    };
                    if self.places.get(&order.id) != Some(&place) {
                        return Err("each queued order has the place it sits at");
                    }
                    if order.side != side || order.price != price || order.sequence != sequence {
                        return Err("a queued order's side, price and sequence are its place's");
                    }
                    if order.lots == 0 || price == 0 {
                        return Err("lots and prices are positive");
                    }
                    if sequence >= self.next_sequence {
                        return Err("sequences are below next_sequence");
                    }
                    lots += u128::from(order.lots);
                    queued += 1;
                }
                if lots != level.lots {
                    return Err("a level's lots are the sum of its queue");
                }
            }
        }
        if queued != self.places.len() {
            return Err("each place names a queued order");
        }
        Ok(())
    }

    /// Whether an order on `side` at `price` would reach the opposite best.
    fn would_cross(&self, side: Side, price: u64) -> bool {
        match side {
            Side::Buy => self.best_ask().is_some_and(|ask| price >= ask),
            Side::Sell => self.best_bid().is_some_and(|bid| price <= bid),
        }
    }

    fn at(&self, place: &Place) -> &RestingOrder<O> {
        let levels = match place.side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        };
        levels
            .get(&place.price)
            .and_then(|level| level.queue.get(&place.sequence))
            .expect("book invariant: every place names a queued order")
    }

    /// Puts an order at the back of the queue at `price`.
    fn rest(&mut self, id: OrderId, owner: O, side: Side, price: u64, lots: u64) {
        let sequence = self.next_sequence;
        self.next_sequence = sequence
            .checked_add(1)
            .expect("sequence invariant: fewer than 2^64 orders ever join a book");
        let previous = self.places.insert(
            id,
            Place {
                side,
                price,
                sequence,
            },
        );
        assert!(previous.is_none(), "book invariant: order ids are unique");
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels.entry(price).or_insert_with(PriceLevel::new);
        level.lots += u128::from(lots);
        level.queue.insert(
            sequence,
            RestingOrder {
                id,
                owner,
                side,
                price,
                lots,
                sequence,
            },
        );
    }

    /// Takes the order at `place` out of its queue, dropping the level if it empties. The
    /// caller removes its entry in `places`.
    fn unqueue(&mut self, place: Place) -> RestingOrder<O> {
        let levels = match place.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels
            .get_mut(&place.price)
            .expect("book invariant: every place names a level");
        let order = level
            .queue
            .remove(&place.sequence)
            .expect("book invariant: every place names a queued order");
        level.lots -= u128::from(order.lots);
        if level.queue.is_empty() {
            levels.remove(&place.price);
        }
        order
    }

    /// Fills `lots` of resting order `id`, removing it when nothing is left.
    fn take(&mut self, id: OrderId, lots: u64) {
        let place = *self
            .places
            .get(&id)
            .expect("plan invariant: a filled maker rests on the book the plan was made on");
        let levels = match place.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels
            .get_mut(&place.price)
            .expect("book invariant: every place names a level");
        let order = level
            .queue
            .get_mut(&place.sequence)
            .expect("book invariant: every place names a queued order");
        assert!(
            lots <= order.lots,
            "plan invariant: a fill takes no more than the maker has"
        );
        order.lots -= lots;
        level.lots -= u128::from(lots);
        if order.lots == 0 {
            level.queue.remove(&place.sequence);
            self.places.remove(&id);
            if level.queue.is_empty() {
                levels.remove(&place.price);
            }
        }
    }
}

/// Refuses the combinations that make no sense: zero lots, a zero price, a market order that
/// would rest (GTC) or is post-only, and a post-only order that does not rest (IOC, FOK).
fn validate<O>(request: &OrderRequest<O>) -> Result<(), Refusal> {
    let is_gtc = request.time_in_force == TimeInForce::Gtc;
    let valid = request.lots > 0
        && match request.price {
            // A limit order may rest; a post-only one must (or be refused), so it is GTC.
            Some(price) => price > 0 && (is_gtc || !request.post_only),
            // A market order never rests: IOC or FOK, and never post-only.
            None => !is_gtc && !request.post_only,
        };
    if valid {
        Ok(())
    } else {
        Err(Refusal::InvalidOrder)
    }
}

/// Matches `request` against the opposite side's `levels`, given best first, and says what
/// would happen. Reads only; the refusal of an unfillable FOK is the caller's.
fn walk<'a, O: Eq + 'a>(
    request: &OrderRequest<O>,
    levels: impl Iterator<Item = (&'a u64, &'a PriceLevel<O>)>,
) -> Execution {
    let mut fills = Vec::new();
    let mut cancelled_makers = Vec::new();
    let mut remaining = request.lots;
    let mut budget_left = match request.side {
        Side::Buy => request.budget,
        Side::Sell => None,
    };
    let mut stopped: Option<Unrested> = None;
    'levels: for (&price, level) in levels {
        let reaches = match (request.side, request.price) {
            (_, None) => true,
            (Side::Buy, Some(limit)) => price <= limit,
            (Side::Sell, Some(limit)) => price >= limit,
        };
        if !reaches {
            break;
        }
        for maker in level.queue.values() {
            if maker.owner == request.owner {
                match request.self_trade {
                    SelfTrade::CancelTaker => {
                        stopped = Some(Unrested::SelfTrade);
                        break 'levels;
                    }
                    SelfTrade::CancelMaker => {
                        cancelled_makers.push((maker.id, maker.lots));
                        continue;
                    }
                    SelfTrade::CancelBoth => {
                        cancelled_makers.push((maker.id, maker.lots));
                        stopped = Some(Unrested::SelfTrade);
                        break 'levels;
                    }
                }
            }
            let mut lots = remaining.min(maker.lots);
            if let Some(left) = budget_left.as_mut() {
                let affordable = *left / u128::from(price);
                if affordable < u128::from(lots) {
                    lots = u64::try_from(affordable)
                        .expect("arithmetic: affordable is below lots, a u64");
                    stopped = Some(Unrested::BudgetExhausted);
                }
                *left -= u128::from(price) * u128::from(lots);
            }
            if lots > 0 {
                let (buy, sell) = match request.side {
                    Side::Buy => (request.id, maker.id),
                    Side::Sell => (maker.id, request.id),
                };
                fills.push(Fill {
                    buy,
                    sell,
                    price,
                    lots,
                    aggressor: Some(request.side),
                });
                remaining -= lots;
            }
            if stopped.is_some() {
                break 'levels;
            }
            if remaining == 0 {
                stopped = Some(Unrested::Filled);
                break 'levels;
            }
        }
    }
    let rests_if_left = request.price.is_some() && request.time_in_force == TimeInForce::Gtc;
    let (rests, done) = match stopped {
        Some(reason) => (0, Some(reason)),
        None if rests_if_left => (remaining, None),
        None => (0, Some(Unrested::ImmediateRemainderCancelled)),
    };
    Execution {
        fills,
        cancelled_makers,
        rests,
        done,
    }
}

/// The result of a uniform-price call auction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clearing {
    pub price: u64,
    /// Matched lots: the volume the price maximises, less any quantity withheld because
    /// priority would have paired an owner with itself. Always the sum of `fills`.
    pub lots: u64,
    /// Pairs of buy and sell orders, each at `price`, `aggressor: None`.
    pub fills: Vec<Fill>,
}

/// A candidate clearing price and what it would match.
#[derive(Clone, Copy)]
struct Candidate {
    price: u64,
    volume: u128,
    imbalance: u128,
    distance: u64,
}

impl Candidate {
    /// Whether `self` is strictly preferred to `other`, which has a lower price: more volume,
    /// then less imbalance, then nearer the reference. On a full tie `other`, the lower price,
    /// stays the choice.
    fn beats(&self, other: &Candidate) -> bool {
        (self.volume, other.imbalance, other.distance)
            > (other.volume, self.imbalance, self.distance)
    }
}

impl<O: Clone + Eq> Book<O> {
    /// The uniform-price clearing of the resting orders, or `None` when nothing would trade.
    /// Rule (spec/market.md): the price among the resting limit prices that maximises matched
    /// volume; ties by the smallest imbalance |demand − supply|; then the price nearest to
    /// `reference` (the last clearing price, if any); then the lowest price. Orders are matched
    /// in price-time priority on each side; orders of the same owner are never paired with each
    /// other (the ledger refuses a crossing self-order in an auction book on arrival): where
    /// priority would pair them, that quantity does not trade.
    ///
    /// O(levels + matched orders): one ascending merge of both sides' levels, then one walk.
    pub fn auction(&self, reference: Option<u64>) -> Option<Clearing> {
        let bids_total: u128 = self.bids.values().map(|level| level.lots).sum();
        // Visiting prices in ascending order: demand(p) = all bids − bids below p, and
        // supply(p) = asks at or below p.
        let mut bids_below: u128 = 0;
        let mut asks_at_or_below: u128 = 0;
        let mut bids = self.bids.iter().peekable();
        let mut asks = self.asks.iter().peekable();
        let mut best: Option<Candidate> = None;
        loop {
            let price = match (bids.peek(), asks.peek()) {
                (None, None) => break,
                (Some((&bid, _)), None) => bid,
                (None, Some((&ask, _))) => ask,
                (Some((&bid, _)), Some((&ask, _))) => bid.min(ask),
            };
            if let Some((_, level)) = asks.next_if(|(&ask, _)| ask == price) {
                asks_at_or_below += level.lots;
            }
            let demand = bids_total - bids_below;
            let candidate = Candidate {
                price,
                volume: demand.min(asks_at_or_below),
                imbalance: demand.abs_diff(asks_at_or_below),
                distance: reference.map_or(0, |reference| price.abs_diff(reference)),
            };
            if best.is_none_or(|best| candidate.beats(&best)) {
                best = Some(candidate);
            }
            if let Some((_, level)) = bids.next_if(|(&bid, _)| bid == price) {
                bids_below += level.lots;
            }
        }
        let best = best.filter(|best| best.volume > 0)?;
        let price = best.price;
        // A volume beyond u64::MAX lots (only possible past any sane lot limit) clears
        // u64::MAX lots: still a valid clearing at this price, just not all of it.
        let volume = u64::try_from(best.volume).unwrap_or(u64::MAX);
        let fills = self.pair(price, volume);
        if fills.is_empty() {
            return None;
        }
        Some(Clearing {
            price,
            lots: fills.iter().map(|fill| fill.lots).sum(),
            fills,
        })
    }

    /// Pairs up to `volume` lots of bids at or above `price` with asks at or below it, each side
    /// in price-time priority, at `price`.
    fn pair(&self, price: u64, volume: u64) -> Vec<Fill> {
        let mut bids = self
            .bids
            .range(price..)
            .rev()
            .flat_map(|(_, level)| level.queue.values());
        let mut asks = self
            .asks
            .range(..=price)
            .flat_map(|(_, level)| level.queue.values());
        let mut bid = bids.next().map(|order| (order, order.lots));
        let mut ask = asks.next().map(|order| (order, order.lots));
        let mut left = volume;
        let mut fills = Vec::new();
        while left > 0 {
            let (Some((buy, buy_left)), Some((sell, sell_left))) = (bid.as_mut(), ask.as_mut())
            else {
                break;
            };
            let lots = left.min(*buy_left).min(*sell_left);
            if buy.owner != sell.owner {
                fills.push(Fill {
                    buy: buy.id,
                    sell: sell.id,
                    price,
                    lots,
                    aggressor: None,
                });
            }
            left -= lots;
            *buy_left -= lots;
            *sell_left -= lots;
            if *buy_left == 0 {
                bid = bids.next().map(|order| (order, order.lots));
            }
            if *sell_left == 0 {
                ask = asks.next().map(|order| (order, order.lots));
            }
        }
        fills
    }

    /// Applies a clearing made by `auction` on this unchanged book.
    pub fn commit_clearing(&mut self, clearing: &Clearing) {
        for fill in &clearing.fills {
            self.take(fill.buy, fill.lots);
            self.take(fill.sell, fill.lots);
        }
    }

    /// Whether an order of `owner` on `side` at `price` would cross one of the same owner's
    /// resting orders (best opposite own price). Visits only the opposite orders that `price`
    /// reaches, so it costs O(log n + those orders).
    pub fn crosses_own(&self, owner: &O, side: Side, price: u64) -> bool {
        let owned = |level: &PriceLevel<O>| level.queue.values().any(|order| order.owner == *owner);
        match side {
            Side::Buy => self.asks.range(..=price).any(|(_, level)| owned(level)),
            Side::Sell => self.bids.range(price..).any(|(_, level)| owned(level)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Owner = u32;

    fn limit(id: OrderId, owner: Owner, side: Side, price: u64, lots: u64) -> OrderRequest<Owner> {
        OrderRequest {
            id,
            owner,
            side,
            price: Some(price),
            lots,
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            self_trade: SelfTrade::CancelTaker,
            budget: None,
        }
    }

    fn market(id: OrderId, owner: Owner, side: Side, lots: u64) -> OrderRequest<Owner> {
        OrderRequest {
            price: None,
            time_in_force: TimeInForce::Ioc,
            ..limit(id, owner, side, 1, lots)
        }
    }

    fn fill(buy: OrderId, sell: OrderId, price: u64, lots: u64, aggressor: Option<Side>) -> Fill {
        Fill {
            buy,
            sell,
            price,
            lots,
            aggressor,
        }
    }

    /// Plans and commits `request`, checking that a refusal changes nothing and that the book
    /// keeps its invariants.
    fn submit(book: &mut Book<Owner>, request: &OrderRequest<Owner>) -> Result<Execution, Refusal> {
        let before = book.clone();
        let result = book.plan(request);
        match &result {
            Ok(execution) => book.commit(request, execution),
            Err(_) => assert_eq!(*book, before, "a refused order changes nothing"),
        }
        assert_eq!(book.check_invariants(), Ok(()));
        result
    }

    /// A book holding these GTC orders, rested in the order given: (id, owner, side, price, lots).
    fn book(orders: &[(OrderId, Owner, Side, u64, u64)]) -> Book<Owner> {
        let mut book = Book::new();
        for &(id, owner, side, price, lots) in orders {
            book.insert_unmatched(&limit(id, owner, side, price, lots))
                .unwrap();
        }
        book
    }

    /// (id, lots) of one side in priority order.
    fn queue(book: &Book<Owner>, side: Side) -> Vec<(OrderId, u64)> {
        book.queue(side)
            .map(|order| (order.id, order.lots))
            .collect()
    }

    fn executed(fills: Vec<Fill>, rests: u64, done: Option<Unrested>) -> Execution {
        Execution {
            fills,
            cancelled_makers: Vec::new(),
            rests,
            done,
        }
    }

    use Side::{Buy, Sell};

    #[test]
    fn matches_best_price_first_then_earliest() {
        let mut book = book(&[
            (1, 1, Sell, 101, 5),
            (2, 2, Sell, 100, 5),
            (3, 3, Sell, 100, 5),
            (4, 4, Sell, 102, 5),
        ]);
        let execution = submit(&mut book, &limit(9, 9, Buy, 101, 12)).unwrap();
        let taker = Some(Buy);
        let fills = vec![
            fill(9, 2, 100, 5, taker),
            fill(9, 3, 100, 5, taker),
            fill(9, 1, 101, 2, taker),
        ];
        assert_eq!(execution, executed(fills, 0, Some(Unrested::Filled)));
        assert_eq!(queue(&book, Sell), vec![(1, 3), (4, 5)]);
        assert_eq!(queue(&book, Buy), vec![]);
    }

    #[test]
    fn a_sell_takes_the_highest_bid_at_the_makers_price() {
        let mut book = book(&[(1, 1, Buy, 99, 2), (2, 2, Buy, 100, 2)]);
        let execution = submit(&mut book, &limit(9, 9, Sell, 98, 3)).unwrap();
        let fills = vec![
            fill(2, 9, 100, 2, Some(Sell)),
            fill(1, 9, 99, 1, Some(Sell)),
        ];
        assert_eq!(execution, executed(fills, 0, Some(Unrested::Filled)));
        assert_eq!(queue(&book, Buy), vec![(1, 1)]);
    }

    #[test]
    fn a_gtc_remainder_rests_at_its_limit_behind_earlier_orders() {
        let mut book = book(&[(1, 1, Sell, 100, 5), (2, 2, Buy, 101, 1)]);
        let execution = submit(&mut book, &limit(9, 9, Buy, 101, 8)).unwrap();
        assert_eq!(
            execution,
            executed(vec![fill(9, 1, 100, 5, Some(Buy))], 3, None)
        );
        assert_eq!(queue(&book, Buy), vec![(2, 1), (9, 3)]);
        assert_eq!(book.best_ask(), None);
        assert!(!book.is_crossed());
    }

    #[test]
    fn an_ioc_remainder_is_cancelled() {
        let mut book = book(&[(1, 1, Sell, 100, 5), (2, 2, Sell, 101, 5)]);
        let request = OrderRequest {
            time_in_force: TimeInForce::Ioc,
            ..limit(9, 9, Buy, 100, 8)
        };
        let execution = submit(&mut book, &request).unwrap();
        let cancelled = Some(Unrested::ImmediateRemainderCancelled);
        assert_eq!(
            execution,
            executed(vec![fill(9, 1, 100, 5, Some(Buy))], 0, cancelled)
        );
        assert_eq!(queue(&book, Sell), vec![(2, 5)]);
        assert_eq!(book.order(9), None);
    }

    #[test]
    fn a_market_order_walks_every_level_and_never_rests() {
        let mut book = book(&[(1, 1, Sell, 100, 1), (2, 2, Sell, 5_000, 1)]);
        let execution = submit(&mut book, &market(9, 9, Buy, 3)).unwrap();
        let fills = vec![
            fill(9, 1, 100, 1, Some(Buy)),
            fill(9, 2, 5_000, 1, Some(Buy)),
        ];
        let cancelled = Some(Unrested::ImmediateRemainderCancelled);
        assert_eq!(execution, executed(fills, 0, cancelled));
        assert!(book.is_empty());
        assert_eq!(book.depth(10), (vec![], vec![]));
    }

    #[test]
    fn self_trade_cancel_taker_stops_and_keeps_the_maker() {
        let mut book = book(&[
            (1, 2, Sell, 99, 2),
            (2, 7, Sell, 100, 5),
            (3, 8, Sell, 100, 5),
        ]);
        let request = limit(9, 7, Buy, 100, 10);
        let execution = submit(&mut book, &request).unwrap();
        let fills = vec![fill(9, 1, 99, 2, Some(Buy))];
        assert_eq!(execution, executed(fills, 0, Some(Unrested::SelfTrade)));
        assert_eq!(queue(&book, Sell), vec![(2, 5), (3, 5)]);
        assert_eq!(queue(&book, Buy), vec![]);
    }

    #[test]
    fn self_trade_cancel_maker_removes_the_maker_and_goes_on() {
        let mut book = book(&[(1, 7, Sell, 100, 5), (2, 8, Sell, 100, 5)]);
        let request = OrderRequest {
            self_trade: SelfTrade::CancelMaker,
            ..limit(9, 7, Buy, 100, 10)
        };
        let execution = submit(&mut book, &request).unwrap();
        let expected = Execution {
            fills: vec![fill(9, 2, 100, 5, Some(Buy))],
            cancelled_makers: vec![(1, 5)],
            rests: 5,
            done: None,
        };
        assert_eq!(execution, expected);
        assert_eq!(queue(&book, Sell), vec![]);
        assert_eq!(queue(&book, Buy), vec![(9, 5)]);
    }

    #[test]
    fn self_trade_cancel_both_removes_the_maker_and_stops() {
        let mut book = book(&[(1, 7, Sell, 100, 5), (2, 8, Sell, 100, 5)]);
        let request = OrderRequest {
            self_trade: SelfTrade::CancelBoth,
            ..limit(9, 7, Buy, 100, 10)
        };
        let execution = submit(&mut book, &request).unwrap();
        let expected = Execution {
            fills: vec![],
            cancelled_makers: vec![(1, 5)],
            rests: 0,
            done: Some(Unrested::SelfTrade),
        };
        assert_eq!(execution, expected);
        assert_eq!(queue(&book, Sell), vec![(2, 5)]);
        assert_eq!(queue(&book, Buy), vec![]);
    }

    #[test]
    fn a_refused_fill_or_kill_changes_nothing_not_even_self_trade_cancels() {
        let mut book = book(&[(1, 7, Sell, 100, 5), (2, 8, Sell, 100, 3)]);
        let fok = |self_trade, budget| OrderRequest {
            time_in_force: TimeInForce::Fok,
            self_trade,
            budget,
            ..limit(9, 7, Buy, 100, 5)
        };
        let unfillable = Err(Refusal::FillOrKillUnfillable);
        // Cancelling maker 1 leaves only 3 lots: the FOK fails and maker 1 stays.
        assert_eq!(
            submit(&mut book, &fok(SelfTrade::CancelMaker, None)),
            unfillable
        );
        assert_eq!(
            submit(&mut book, &fok(SelfTrade::CancelTaker, None)),
            unfillable
        );
        assert_eq!(queue(&book, Sell), vec![(1, 5), (2, 3)]);

        // Another owner could fill 5 lots, but not with a budget for 4.
        let other = |budget| OrderRequest {
            owner: 6,
            ..fok(SelfTrade::CancelTaker, budget)
        };
        assert_eq!(submit(&mut book, &other(Some(499))), unfillable);
        let execution = submit(&mut book, &other(Some(500))).unwrap();
        let fills = vec![fill(9, 1, 100, 5, Some(Buy))];
        assert_eq!(execution, executed(fills, 0, Some(Unrested::Filled)));
    }

    #[test]
    fn a_fill_or_kill_market_order_fills_entirely_or_not_at_all() {
        let mut book = book(&[(1, 1, Sell, 100, 2), (2, 2, Sell, 300, 2)]);
        let fok = |lots| OrderRequest {
            time_in_force: TimeInForce::Fok,
            ..market(9, 9, Buy, lots)
        };
        assert_eq!(
            submit(&mut book, &fok(5)),
            Err(Refusal::FillOrKillUnfillable)
        );
        let execution = submit(&mut book, &fok(4)).unwrap();
        assert_eq!(execution.filled_lots(), 4);
        assert_eq!(execution.done, Some(Unrested::Filled));
        assert!(book.is_empty());
    }

    #[test]
    fn a_post_only_order_rests_or_is_refused() {
        let mut book = book(&[(1, 1, Sell, 100, 5)]);
        let post = |price| OrderRequest {
            post_only: true,
            ..limit(9, 9, Buy, price, 5)
        };
        assert_eq!(
            submit(&mut book, &post(100)),
            Err(Refusal::PostOnlyWouldCross)
        );
        assert_eq!(submit(&mut book, &post(99)), Ok(executed(vec![], 5, None)));
        assert_eq!(queue(&book, Buy), vec![(9, 5)]);
    }

    #[test]
    fn invalid_orders_are_refused() {
        let base = limit(9, 9, Buy, 100, 5);
        let cases = [
            ("zero lots", OrderRequest { lots: 0, ..base }),
            (
                "zero price",
                OrderRequest {
                    price: Some(0),
                    ..base
                },
            ),
            (
                "market GTC",
                OrderRequest {
                    price: None,
                    ..base
                },
            ),
            (
                "market post-only",
                OrderRequest {
                    post_only: true,
                    ..market(9, 9, Buy, 5)
                },
            ),
            (
                "post-only IOC",
                OrderRequest {
                    post_only: true,
                    time_in_force: TimeInForce::Ioc,
                    ..base
                },
            ),
            (
                "post-only FOK",
                OrderRequest {
                    post_only: true,
                    time_in_force: TimeInForce::Fok,
                    ..base
                },
            ),
        ];
        let mut book = book(&[(1, 1, Sell, 100, 5)]);
        for (name, request) in cases {
            let result = submit(&mut book, &request);
            assert_eq!(result, Err(Refusal::InvalidOrder), "{name}");
        }
        let duplicate = limit(1, 1, Buy, 100, 5);
        assert_eq!(submit(&mut book, &duplicate), Err(Refusal::DuplicateId));
    }

    #[test]
    fn a_budget_caps_spend_and_fills_what_fits_at_the_last_level() {
        let asks = [(1, 1, Sell, 100, 5), (2, 2, Sell, 110, 5)];
        let exhausted = Some(Unrested::BudgetExhausted);
        let fills = vec![fill(9, 1, 100, 5, Some(Buy)), fill(9, 2, 110, 2, Some(Buy))];

        // 500 for five lots at 100, then floor(260 / 110) = 2 lots at 110.
        let mut market_book = book(&asks);
        let request = OrderRequest {
            budget: Some(760),
            ..market(9, 9, Buy, 10)
        };
        let execution = submit(&mut market_book, &request).unwrap();
        assert_eq!(execution, executed(fills.clone(), 0, exhausted));
        assert_eq!(queue(&market_book, Sell), vec![(2, 3)]);

        // A limit order stopped by its budget does not rest.
        let mut limit_book = book(&asks);
        let request = OrderRequest {
            budget: Some(760),
            ..limit(9, 9, Buy, 110, 10)
        };
        let execution = submit(&mut limit_book, &request).unwrap();
        assert_eq!(execution, executed(fills, 0, exhausted));
        assert_eq!(limit_book, market_book);

        // Spent exactly: the next level is not affordable at all.
        let mut exact_book = book(&asks);
        let request = OrderRequest {
            budget: Some(500),
            ..market(9, 9, Buy, 10)
        };
        let execution = submit(&mut exact_book, &request).unwrap();
        let fills = vec![fill(9, 1, 100, 5, Some(Buy))];
        assert_eq!(execution, executed(fills, 0, exhausted));

        // A budget that never binds lets the remainder rest.
        let mut loose_book = book(&asks);
        let request = OrderRequest {
            budget: Some(1_000_000),
            ..limit(9, 9, Buy, 100, 8)
        };
        let execution = submit(&mut loose_book, &request).unwrap();
        assert_eq!(
            execution,
            executed(vec![fill(9, 1, 100, 5, Some(Buy))], 3, None)
        );
    }

    #[test]
    fn a_budget_on_a_sell_is_ignored() {
        let mut book = book(&[(1, 1, Buy, 100, 5)]);
        let request = OrderRequest {
            budget: Some(0),
            ..limit(9, 9, Sell, 100, 5)
        };
        let execution = submit(&mut book, &request).unwrap();
        assert_eq!(execution.done, Some(Unrested::Filled));
    }

    #[test]
    fn amending_down_at_the_same_price_keeps_priority() {
        let mut book = book(&[(1, 1, Buy, 100, 5), (2, 2, Buy, 100, 5)]);
        let sequence = book.order(1).unwrap().sequence;
        let amended = book.amend(1, None, 3, false).unwrap();
        let kept = Amended {
            kept_priority: true,
            old_price: 100,
            old_lots: 5,
        };
        assert_eq!(amended, kept);
        assert_eq!(book.order(1).unwrap().sequence, sequence);
        assert_eq!(queue(&book, Buy), vec![(1, 3), (2, 5)]);
        let amended = book.amend(1, Some(100), 3, false).unwrap();
        assert!(amended.kept_priority);
        assert_eq!(book.depth(1).0[0].lots, 8);
        assert_eq!(book.check_invariants(), Ok(()));
    }

    #[test]
    fn amending_up_or_to_a_new_price_goes_to_the_back() {
        let mut book = book(&[
            (1, 1, Buy, 100, 5),
            (2, 2, Buy, 100, 5),
            (3, 3, Buy, 101, 1),
        ]);
        let sequence = book.order(1).unwrap().sequence;
        let amended = book.amend(1, None, 6, false).unwrap();
        assert!(!amended.kept_priority);
        assert!(book.order(1).unwrap().sequence > sequence);
        assert_eq!(queue(&book, Buy), vec![(3, 1), (2, 5), (1, 6)]);

        // Fewer lots at another price lose priority too; the emptied level goes.
        let amended = book.amend(3, Some(100), 1, false).unwrap();
        let moved = Amended {
            kept_priority: false,
            old_price: 101,
            old_lots: 1,
        };
        assert_eq!(amended, moved);
        assert_eq!(queue(&book, Buy), vec![(2, 5), (1, 6), (3, 1)]);
        assert_eq!(book.best_bid(), Some(100));
        assert_eq!(book.depth(10).0.len(), 1);
        assert_eq!(book.check_invariants(), Ok(()));
    }

    #[test]
    fn amendments_that_cannot_be_made_change_nothing() {
        let mut book = book(&[(1, 1, Buy, 100, 5), (2, 2, Sell, 102, 5)]);
        let before = book.clone();
        assert_eq!(book.amend(7, None, 1, false), Err(Refusal::UnknownOrder));
        assert_eq!(book.amend(1, None, 0, false), Err(Refusal::AmendToZero));
        assert_eq!(book.amend(1, Some(0), 5, false), Err(Refusal::InvalidOrder));
        let refused = Err(Refusal::AmendWouldCross);
        assert_eq!(book.amend(1, Some(102), 5, false), refused);
        assert_eq!(book.amend(2, Some(100), 5, false), refused);
        assert_eq!(book, before);
        // An auction book may cross.
        assert!(book.amend(1, Some(103), 5, true).is_ok());
        assert!(book.is_crossed());
    }

    #[test]
    fn cancelling_removes_the_order_and_never_leaves_an_empty_level() {
        let mut book = book(&[(1, 1, Buy, 100, 5), (2, 2, Buy, 100, 4), (3, 3, Buy, 99, 3)]);
        let cancelled = book.cancel(1).unwrap();
        assert_eq!((cancelled.id, cancelled.price, cancelled.lots), (1, 100, 5));
        let level = Level {
            price: 100,
            lots: 4,
            orders: 1,
        };
        assert_eq!(book.depth(1).0, vec![level]);
        assert!(book.cancel(2).is_some());
        assert_eq!(book.best_bid(), Some(99));
        assert_eq!(book.depth(10).0.len(), 1);
        assert_eq!(book.cancel(2), None);
        assert_eq!(book.cancel(42), None);
        assert_eq!(book.len(), 1);
        assert_eq!(book.check_invariants(), Ok(()));
    }

    #[test]
    fn depth_sums_each_level_best_first() {
        let book = book(&[
            (1, 1, Buy, 99, 1),
            (2, 1, Buy, 100, 2),
            (3, 2, Buy, 100, 3),
            (4, 1, Sell, 103, 4),
            (5, 1, Sell, 102, 5),
        ]);
        let level = |price, lots, orders| Level {
            price,
            lots,
            orders,
        };
        assert_eq!(
            book.depth(10),
            (
                vec![level(100, 5, 2), level(99, 1, 1)],
                vec![level(102, 5, 1), level(103, 4, 1)]
            )
        );
        assert_eq!(book.depth(1).0, vec![level(100, 5, 2)]);
        let ids: Vec<OrderId> = book.orders().map(|order| order.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn insert_unmatched_may_cross_and_refuses_what_cannot_rest() {
        let book = book(&[(1, 1, Buy, 105, 5), (2, 2, Sell, 100, 5)]);
        assert!(book.is_crossed());
        assert_eq!(book.len(), 2);
        let refused = |request: OrderRequest<Owner>| book.clone().insert_unmatched(&request);
        assert_eq!(refused(market(9, 9, Buy, 1)), Err(Refusal::InvalidOrder));
        assert_eq!(refused(limit(9, 9, Buy, 0, 1)), Err(Refusal::InvalidOrder));
        assert_eq!(refused(limit(9, 9, Buy, 1, 0)), Err(Refusal::InvalidOrder));
        assert_eq!(refused(limit(1, 9, Buy, 1, 1)), Err(Refusal::DuplicateId));
        assert_eq!(book.check_invariants(), Ok(()));
    }

    #[test]
    fn the_auction_price_maximises_volume_then_breaks_ties_as_specified() {
        // Price:    98  100  101  102  104  105
        // Demand:   12   12    7    7    3    3
        // Supply:    2    2    6    6   12   12
        // Volume:    2    2    6    6    3    3
        // 101 and 102 tie on volume 6 and imbalance 1: the lowest wins without a reference,
        // the nearest with one.
        let book = book(&[
            (1, 1, Buy, 105, 3),
            (2, 2, Buy, 102, 4),
            (3, 3, Buy, 100, 5),
            (4, 4, Sell, 98, 2),
            (5, 5, Sell, 101, 4),
            (6, 6, Sell, 104, 6),
        ]);
        let clearing = book.auction(None).unwrap();
        let expected = Clearing {
            price: 101,
            lots: 6,
            fills: vec![
                fill(1, 4, 101, 2, None),
                fill(1, 5, 101, 1, None),
                fill(2, 5, 101, 3, None),
            ],
        };
        assert_eq!(clearing, expected);
        assert_eq!(book.auction(Some(99)).unwrap().price, 101);
        assert_eq!(book.auction(Some(103)).unwrap().price, 102);
        assert_eq!(book.auction(Some(1_000)).unwrap().price, 102);

        let mut cleared = book.clone();
        cleared.commit_clearing(&clearing);
        assert_eq!(cleared.check_invariants(), Ok(()));
        assert_eq!(queue(&cleared, Buy), vec![(2, 1), (3, 5)]);
        assert_eq!(queue(&cleared, Sell), vec![(6, 6)]);
        assert!(!cleared.is_crossed());
    }

    #[test]
    fn the_auction_prefers_the_smaller_imbalance_then_time_priority() {
        // At 99 and 100 the volume is 5; the imbalance is 0 at 99 and 2 at 100.
        let book = book(&[
            (1, 1, Buy, 100, 3),
            (2, 2, Buy, 100, 2),
            (3, 3, Sell, 99, 5),
            (4, 4, Sell, 100, 2),
        ]);
        let expected = Clearing {
            price: 99,
            lots: 5,
            fills: vec![fill(1, 3, 99, 3, None), fill(2, 3, 99, 2, None)],
        };
        assert_eq!(book.auction(Some(100)), Some(expected));
    }

    #[test]
    fn the_auction_clears_nothing_when_no_bid_meets_an_ask() {
        assert_eq!(Book::<Owner>::new().auction(None), None);
        let book = book(&[(1, 1, Buy, 99, 5), (2, 2, Sell, 100, 5)]);
        assert_eq!(book.auction(Some(99)), None);
    }

    #[test]
    fn the_auction_never_pairs_an_owner_with_itself() {
        // Priority pairs bid 1 with its owner's ask 2 for 3 lots: those do not trade.
        let book = book(&[
            (1, 1, Buy, 100, 5),
            (2, 1, Sell, 100, 3),
            (3, 2, Sell, 100, 5),
        ]);
        let expected = Clearing {
            price: 100,
            lots: 2,
            fills: vec![fill(1, 3, 100, 2, None)],
        };
        assert_eq!(book.auction(None), Some(expected));
        let only_self = self::book(&[(1, 1, Buy, 100, 5), (2, 1, Sell, 100, 3)]);
        assert_eq!(only_self.auction(None), None);
    }

    #[test]
    fn crosses_own_looks_only_at_the_owners_opposite_orders() {
        let book = book(&[
            (1, 1, Sell, 100, 1),
            (2, 2, Sell, 99, 1),
            (3, 1, Buy, 90, 1),
        ]);
        assert!(book.crosses_own(&1, Buy, 100));
        assert!(!book.crosses_own(&1, Buy, 99));
        assert!(!book.crosses_own(&2, Buy, 98));
        assert!(book.crosses_own(&2, Buy, 99));
        assert!(book.crosses_own(&1, Sell, 90));
        assert!(!book.crosses_own(&1, Sell, 91));
        assert!(!book.crosses_own(&3, Sell, 1));
    }

    #[test]
    fn the_encoding_is_canonical_and_round_trips() {
        let config = bincode::config::standard().with_fixed_int_encoding();
        let build = || {
            let mut book = book(&[(1, 1, Buy, 100, 5), (2, 2, Sell, 102, 5)]);
            submit(&mut book, &limit(3, 3, Sell, 100, 2)).unwrap();
            book.amend(2, Some(101), 4, false).unwrap();
            book
        };
        let bytes = bincode::serde::encode_to_vec(build(), config).unwrap();
        assert_eq!(
            bincode::serde::encode_to_vec(build(), config).unwrap(),
            bytes
        );
        let (decoded, read): (Book<Owner>, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(read, bytes.len());
        assert_eq!(decoded, build());
        assert_eq!(decoded.check_invariants(), Ok(()));
    }
}
