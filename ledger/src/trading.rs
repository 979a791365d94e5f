//! The supermarket's order books: products, orders, matching and settlement.
//!
//! Matching itself is the `market` crate's (`market::book`); this module checks orders against
//! the catalogue and the parties' balances, reserves what resting orders promise, and settles
//! every fill in the same journal entry as the command that caused it:
//! - a resting buy reserves `price × lots` of its quote account as a pending transfer to the
//!   quote asset's escrow; a resting sell reserves `lots × lot_size` of its base account the
//!   same way. Nobody can trade what they do not have.
//! - a fill voids the maker's reservation, moves the goods seller → buyer and the money buyer →
//!   seller (less the fee, which goes to the quote asset's fee account; a residue of the two
//!   half-even roundings goes to or comes from its rounding account), then reserves what is
//!   still open again.
//! - continuous products match on arrival; auction products collect orders and clear at one
//!   uniform price every `auction_interval_s` of command time (`spec/market.md`).
//!
//! Deterministic like the rest of the ledger.

use crate::account::AccountKind;
use crate::asset::Asset;
use crate::ids::{derived_id, system_account_id};
use crate::limits::{
    AUCTION_INTERVAL_S_MAX, FEE_BPS_MAX, NS_PER_S, ORDERS_PER_BOOK_MAX, ORDER_LOTS_MAX, PRICE_MAX,
    PRODUCTS_MAX,
};
use crate::party::PartyId;
use crate::reason::Reason;
use crate::state_machine::{Ledger, Undo};
use crate::transfer::Transfer;
use crate::vouchers::{Claim, Target, VoucherPaid};
use market::book::{
    Book, Execution, Fill, OrderRequest, Refusal, SelfTrade, Side, TimeInForce, Unrested,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Transfer codes of trading's derived transfers.
pub mod codes {
    /// Goods from seller to buyer.
    pub const TRADE_GOODS: u16 = 2001;
    /// Money from buyer to seller.
    pub const TRADE_MONEY: u16 = 2002;
    /// The trading fee, from the buyer's payment to the fee account.
    pub const TRADE_FEE: u16 = 2003;
    /// The residue of rounding the seller's share and the fee separately.
    pub const TRADE_ROUNDING: u16 = 2004;
    /// A resting order's reservation.
    pub const ORDER_RESERVED: u16 = 2010;
    /// A reservation released (by a fill, an amendment or a cancel).
    pub const ORDER_RELEASED: u16 = 2011;
}

/// A tradable product as the operator lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    /// 1 to 64 bytes of `[A-Za-z0-9:@/._-]`, e.g. `GPUH:H100/CNY` or `GPUH:H100@cn-east/CNY`.
    pub product_id: String,
    /// What is bought and sold, e.g. `GPUH:H100`.
    pub base: Asset,
    /// What prices are paid in, e.g. `CNY`.
    pub quote: Asset,
    /// Base minor units in one lot (3,600 GPU-seconds: one GPU-hour).
    #[serde(with = "crate::wire::u128_text")]
    pub lot_size: u128,
    /// Prices are whole multiples of this many quote minor units per lot.
    #[serde(with = "crate::wire::u64_text")]
    pub tick: u64,
    /// The seller's fee in basis points of each fill's money.
    pub fee_bps: u16,
    /// `None`: continuous matching. `Some(n)`: a uniform-price call auction every n seconds.
    #[serde(default)]
    pub auction_interval_s: Option<u32>,
}

/// A listed product, its book and its trades.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub spec: ProductSpec,
    #[serde(with = "crate::wire::u64_text")]
    pub listed_at_ns: u64,
    pub book: Book<PartyId>,
    /// The last trade's price (the auction's reference price).
    #[serde(with = "crate::wire::option_u64_text")]
    pub last_price: Option<u64>,
    /// When the next auction clears (auction products only).
    #[serde(with = "crate::wire::option_u64_text")]
    pub next_clearing_ns: Option<u64>,
    pub trades: Vec<Trade>,
}

/// An order as a party signs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    #[serde(with = "crate::wire::u128_text")]
    pub order_id: u128,
    pub product_id: String,
    pub side: Side,
    /// Limit price per lot in quote minor units; absent for a market order.
    #[serde(default, with = "crate::wire::option_u64_text")]
    pub price: Option<u64>,
    /// How much to buy or sell, in base minor units: a whole number of lots.
    #[serde(with = "crate::wire::u128_text")]
    pub quantity: u128,
    pub time_in_force: TimeInForce,
    #[serde(default)]
    pub post_only: bool,
    #[serde(default = "default_self_trade")]
    pub self_trade: SelfTrade,
    /// The signer's account of the product's base asset (receives or delivers the goods).
    #[serde(with = "crate::wire::u128_text")]
    pub base_account_id: u128,
    /// The signer's account of the product's quote asset (pays or is paid).
    #[serde(with = "crate::wire::u128_text")]
    pub quote_account_id: u128,
    /// Buy orders: vouchers that pay their share of each fill (`spec/vouchers.md`).
    #[serde(default, with = "crate::wire::vec_u128_text")]
    pub vouchers: Vec<u128>,
}

fn default_self_trade() -> SelfTrade {
    SelfTrade::CancelTaker
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Resting on the book with `open_lots` open.
    Open,
    Filled,
    /// Done without filling entirely.
    Cancelled {
        why: OrderEnd,
    },
}

/// Why an order ended without filling entirely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderEnd {
    ByOwner,
    /// An IOC or market remainder.
    ImmediateRemainder,
    SelfTrade,
    BudgetExhausted,
}

/// An order and how far it got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub spec: OrderSpec,
    pub owner: PartyId,
    pub status: OrderStatus,
    #[serde(with = "crate::wire::u64_text")]
    pub filled_lots: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub open_lots: u64,
    /// The price it rests at (an amendment may change it).
    #[serde(with = "crate::wire::option_u64_text")]
    pub resting_price: Option<u64>,
    /// Money paid (buys) or received before fees (sells) over all fills.
    #[serde(with = "crate::wire::u128_text")]
    pub notional: u128,
    /// The current reservation, while the order rests.
    #[serde(with = "crate::wire::option_u128_text")]
    pub pending_transfer_id: Option<u128>,
    /// How many derived transfers this order has made (the next derived id's sequence).
    pub transfer_count: u32,
    #[serde(with = "crate::wire::u64_text")]
    pub placed_at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub updated_at_ns: u64,
}

/// One settled trade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    #[serde(with = "crate::wire::u64_text")]
    pub trade_id: u64,
    pub product_id: String,
    #[serde(with = "crate::wire::u128_text")]
    pub buy_order_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub sell_order_id: u128,
    pub buyer: PartyId,
    pub seller: PartyId,
    #[serde(with = "crate::wire::u64_text")]
    pub price: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub lots: u64,
    /// Base minor units delivered (`lots × lot_size`).
    #[serde(with = "crate::wire::u128_text")]
    pub goods: u128,
    /// Quote minor units the buyer paid (`price × lots`).
    #[serde(with = "crate::wire::u128_text")]
    pub money: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub fee: u128,
    /// What the buyer's vouchers paid of `money` (straight to the seller), voucher by voucher.
    pub vouchers: Vec<VoucherPaid>,
    /// The taker's side; `None` for an auction clearing.
    pub aggressor: Option<Side>,
    #[serde(with = "crate::wire::u64_text")]
    pub at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub journal_index: u64,
}

/// What placing an order did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    #[serde(with = "crate::wire::u128_text")]
    pub order_id: u128,
    pub trades: Vec<Trade>,
    /// Resting orders cancelled by self-trade prevention.
    #[serde(with = "crate::wire::vec_u128_text")]
    pub cancelled_makers: Vec<u128>,
    #[serde(with = "crate::wire::u64_text")]
    pub rests: u64,
    pub status: OrderStatus,
}

/// An auction that cleared before a command (recorded in that command's outcome).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionCleared {
    pub product_id: String,
    #[serde(with = "crate::wire::u64_text")]
    pub at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub price: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub lots: u64,
    pub trades: Vec<Trade>,
}

/// The supermarket's part of the ledger state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketState {
    pub products: BTreeMap<String, Product>,
    pub orders: BTreeMap<u128, Order>,
    /// Auction products by (next clearing time, product).
    pub auctions_due: BTreeSet<(u64, String)>,
    pub trade_next: u64,
    pub shelf: crate::shelf::ShelfState,
}

/// Whether `id` is a valid product id.
fn product_id_is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b':' | b'@' | b'/' | b'.' | b'_' | b'-')
        })
}

/// A fill's money split: what the seller gets, the fee, and the rounding residue.
///
/// Both shares are rounded half-even to the minor unit on their own; `residue` is what makes
/// them add up to `money` again: positive, the buyer pays it to the rounding account; negative,
/// the rounding account pays it towards the fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub seller: u128,
    pub fee: u128,
    pub residue: i8,
}

/// Splits `money` into the seller's share and a fee of `fee_bps` basis points.
pub fn split_fee(money: u128, fee_bps: u16) -> Split {
    let fee = round_half_even(money * u128::from(fee_bps), 10_000);
    let seller = round_half_even(money * u128::from(10_000 - fee_bps), 10_000);
    // Each rounding moves its share by at most half a unit, so the sum is off by at most one.
    let residue = match (seller + fee).cmp(&money) {
        std::cmp::Ordering::Less => 1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => -1,
    };
    Split {
        seller,
        fee,
        residue,
    }
}

/// `numerator / denominator` rounded half to even.
pub fn round_half_even(numerator: u128, denominator: u128) -> u128 {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    match (remainder * 2).cmp(&denominator) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient & 1),
    }
}

/// One order's part in a settlement: whose accounts, and what changes.
struct Party<'a> {
    order_id: u128,
    owner: &'a PartyId,
    base_account: u128,
    quote_account: u128,
}

impl Ledger {
    pub fn market(&self) -> &MarketState {
        &self.state.market
    }

    pub fn product(&self, id: &str) -> Option<&Product> {
        self.state.market.products.get(id)
    }

    pub fn order(&self, id: u128) -> Option<&Order> {
        self.state.market.orders.get(&id)
    }

    pub(crate) fn list_product(
        &mut self,
        spec: &ProductSpec,
        timestamp_ns: u64,
    ) -> Result<bool, Reason> {
        if !product_id_is_valid(&spec.product_id) {
            return Err(Reason::ProductIdInvalid);
        }
        if let Some(existing) = self.state.market.products.get(&spec.product_id) {
            return if existing.spec == *spec {
                Ok(false)
            } else {
                Err(Reason::ProductExistsWithDifferentFields)
            };
        }
        let interval_ok = spec
            .auction_interval_s
            .is_none_or(|s| (1..=AUCTION_INTERVAL_S_MAX).contains(&s));
        if spec.lot_size == 0
            || spec.tick == 0
            || spec.tick > PRICE_MAX
            || spec.fee_bps > FEE_BPS_MAX
            || spec.base == spec.quote
            || !interval_ok
            || !self.state.assets.contains(&spec.base)
            || !self.state.assets.contains(&spec.quote)
        {
            return Err(Reason::ProductSpecInvalid);
        }
        if self.state.market.products.len() >= PRODUCTS_MAX {
            return Err(Reason::ProductsLimitReached);
        }
        let next_clearing_ns = spec
            .auction_interval_s
            .map(|s| timestamp_ns + u64::from(s) * NS_PER_S);
        if let Some(due) = next_clearing_ns {
            self.state
                .market
                .auctions_due
                .insert((due, spec.product_id.clone()));
        }
        let product = Product {
            spec: spec.clone(),
            listed_at_ns: timestamp_ns,
            book: Book::new(),
            last_price: None,
            next_clearing_ns,
            trades: Vec::new(),
        };
        self.state
            .market
            .products
            .insert(spec.product_id.clone(), product);
        Ok(true)
    }

    /// Places an order: checks it, matches it (continuous) or queues it (auction), settles the
    /// fills and reserves what rests. `Ok(None)`: the same order was placed before.
    pub(crate) fn place_order(
        &mut self,
        signer: &PartyId,
        spec: &OrderSpec,
        timestamp_ns: u64,
    ) -> Result<Option<Placed>, Reason> {
        if let Some(existing) = self.state.market.orders.get(&spec.order_id) {
            return if existing.spec == *spec && existing.owner == *signer {
                Ok(None)
            } else {
                Err(Reason::OrderExistsWithDifferentFields)
            };
        }
        if spec.order_id == 0 || spec.order_id & crate::ids::LEDGER_ID_BIT != 0 {
            return Err(Reason::IdReserved);
        }
        let product = self
            .state
            .market
            .products
            .get(&spec.product_id)
            .ok_or(Reason::ProductUnknown)?;
        let product_spec = product.spec.clone();
        self.check_order_account(signer, spec.base_account_id, &product_spec.base)?;
        self.check_order_account(signer, spec.quote_account_id, &product_spec.quote)?;
        if !spec.vouchers.is_empty() {
            if spec.side == Side::Sell {
                return Err(Reason::VoucherNotEligible);
            }
            let target = Target {
                id: &spec.product_id,
                asset: &product_spec.base,
                is_package: false,
            };
            self.check_vouchers(signer, &spec.vouchers, target, timestamp_ns)?;
        }
        let lots = lots_of(spec.quantity, &product_spec)?;
        if let Some(price) = spec.price {
            check_price(price, &product_spec)?;
        }
        let is_market = spec.price.is_none();
        if (is_market && (spec.time_in_force == TimeInForce::Gtc || spec.post_only))
            || (spec.post_only && spec.time_in_force != TimeInForce::Gtc)
        {
            return Err(Reason::OrderTypeInvalid);
        }
        let auction = product_spec.auction_interval_s.is_some();
        if auction && (is_market || spec.time_in_force != TimeInForce::Gtc || spec.post_only) {
            return Err(Reason::OrderTypeNotInAuction);
        }
        if product.book.len() >= ORDERS_PER_BOOK_MAX {
            return Err(Reason::BookFull);
        }
        // What the order may spend or deliver: checked up front, so settlement cannot fail.
        let mut budget = None;
        match (spec.side, spec.price) {
            (Side::Buy, Some(price)) => {
                let cost = u128::from(price) * u128::from(lots);
                if self.available(spec.quote_account_id) < cost {
                    return Err(Reason::InsufficientFunds);
                }
            }
            (Side::Buy, None) => {
                let available = self.available(spec.quote_account_id);
                if available == 0 {
                    return Err(Reason::InsufficientFunds);
                }
                budget = Some(available);
            }
            (Side::Sell, _) => {
                if self.available(spec.base_account_id) < spec.quantity {
                    return Err(Reason::InsufficientGoods);
                }
            }
        }
        let request = OrderRequest {
            id: spec.order_id,
            owner: signer.clone(),
            side: spec.side,
            price: spec.price,
            lots,
            time_in_force: spec.time_in_force,
            post_only: spec.post_only,
            self_trade: spec.self_trade,
            budget,
        };
        let mut order = Order {
            spec: spec.clone(),
            owner: signer.clone(),
            status: OrderStatus::Open,
            filled_lots: 0,
            open_lots: lots,
            resting_price: spec.price,
            notional: 0,
            pending_transfer_id: None,
            transfer_count: 0,
            placed_at_ns: timestamp_ns,
            updated_at_ns: timestamp_ns,
        };
        if auction {
            let price = spec.price.ok_or(Reason::OrderTypeNotInAuction)?;
            if product.book.crosses_own(signer, spec.side, price) {
                return Err(Reason::SelfCrossInAuction);
            }
            // The book first: if it refuses, nothing has been reserved; if the reservation
            // then fails, the order comes off the book again.
            self.product_mut(&spec.product_id)
                .book
                .insert_unmatched(&request)
                .map_err(refusal_reason)?;
            let reserved = self.atomically(|ledger, undo| {
                ledger.reserve(&product_spec, &mut order, timestamp_ns, undo)
            });
            if let Err(reason) = reserved {
                self.product_mut(&spec.product_id)
                    .book
                    .cancel(spec.order_id);
                return Err(reason);
            }
            self.state.market.orders.insert(spec.order_id, order);
            return Ok(Some(Placed {
                order_id: spec.order_id,
                trades: Vec::new(),
                cancelled_makers: Vec::new(),
                rests: lots,
                status: OrderStatus::Open,
            }));
        }
        let execution = product.book.plan(&request).map_err(refusal_reason)?;
        let mut orders = BTreeMap::new();
        orders.insert(spec.order_id, order);
        let trades = self.atomically(|ledger, undo| {
            ledger.settle_execution(
                &product_spec,
                &mut orders,
                &execution,
                Some(spec.order_id),
                timestamp_ns,
                undo,
            )
        })?;
        let product = self.product_mut(&spec.product_id);
        product.book.commit(&request, &execution);
        if let Some(last) = trades.last() {
            product.last_price = Some(last.price);
        }
        product.trades.extend(trades.iter().cloned());
        let taker = orders
            .get(&spec.order_id)
            .map(|o| o.status)
            .unwrap_or(OrderStatus::Open);
        self.keep_orders(orders);
        Ok(Some(Placed {
            order_id: spec.order_id,
            trades,
            cancelled_makers: execution
                .cancelled_makers
                .iter()
                .map(|(id, _)| *id)
                .collect(),
            rests: execution.rests,
            status: taker,
        }))
    }

    /// Cancels an open order and releases its reservation.
    pub(crate) fn cancel_order(
        &mut self,
        signer: &PartyId,
        order_id: u128,
        timestamp_ns: u64,
    ) -> Result<(), Reason> {
        let mut order = self.open_order_of(signer, order_id)?.clone();
        self.atomically(|ledger, undo| ledger.release(&mut order, timestamp_ns, undo))?;
        order.open_lots = 0;
        order.status = OrderStatus::Cancelled {
            why: OrderEnd::ByOwner,
        };
        order.updated_at_ns = timestamp_ns;
        self.product_mut(&order.spec.product_id)
            .book
            .cancel(order_id);
        self.state.market.orders.insert(order_id, order);
        Ok(())
    }

    /// Changes an open order's open lots and, optionally, its price; its reservation follows.
    /// Returns whether it kept its queue priority.
    pub(crate) fn amend_order(
        &mut self,
        signer: &PartyId,
        order_id: u128,
        price: Option<u64>,
        quantity: u128,
        timestamp_ns: u64,
    ) -> Result<bool, Reason> {
        let mut order = self.open_order_of(signer, order_id)?.clone();
        let product = &self.state.market.products[&order.spec.product_id];
        let spec = product.spec.clone();
        let lots = lots_of(quantity, &spec)?;
        if let Some(price) = price {
            check_price(price, &spec)?;
        }
        let new_price = price.or(order.resting_price).ok_or(Reason::OrderNotOpen)?;
        let auction = spec.auction_interval_s.is_some();
        if auction && product.book.crosses_own(signer, order.spec.side, new_price) {
            return Err(Reason::SelfCrossInAuction);
        }
        // Refusals of the book come first, so a refused amendment moves nothing.
        let mut book = product.book.clone();
        let amended = book
            .amend(order_id, price, lots, auction)
            .map_err(refusal_reason)?;
        order.open_lots = lots;
        order.resting_price = Some(new_price);
        order.updated_at_ns = timestamp_ns;
        self.atomically(|ledger, undo| {
            ledger.release(&mut order, timestamp_ns, undo)?;
            ledger.reserve(&spec, &mut order, timestamp_ns, undo)
        })
        .map_err(|reason| match reason {
            Reason::ExceedsCredits => match order.spec.side {
                Side::Buy => Reason::InsufficientFunds,
                Side::Sell => Reason::InsufficientGoods,
            },
            other => other,
        })?;
        self.product_mut(&order.spec.product_id).book = book;
        self.state.market.orders.insert(order_id, order);
        Ok(amended.kept_priority)
    }

    /// Clears every auction due at or before `timestamp_ns`, earliest first.
    pub(crate) fn clear_due_auctions(&mut self, timestamp_ns: u64) -> Vec<AuctionCleared> {
        let mut cleared = Vec::new();
        while let Some((due, product_id)) = self.state.market.auctions_due.first().cloned() {
            if due > timestamp_ns {
                break;
            }
            self.state.market.auctions_due.pop_first();
            let product = &self.state.market.products[&product_id];
            let spec = product.spec.clone();
            let interval_ns = u64::from(spec.auction_interval_s.unwrap_or(1)) * NS_PER_S;
            // Missed intervals cleared nothing new: the next clearing is the first one after now.
            let next = due + ((timestamp_ns - due) / interval_ns + 1) * interval_ns;
            self.state
                .market
                .auctions_due
                .insert((next, product_id.clone()));
            let clearing = product.book.auction(product.last_price);
            self.product_mut(&product_id).next_clearing_ns = Some(next);
            let Some(clearing) = clearing else {
                continue;
            };
            let mut orders = BTreeMap::new();
            let execution = Execution {
                fills: clearing.fills.clone(),
                cancelled_makers: Vec::new(),
                rests: 0,
                done: None,
            };
            let settled = self.atomically(|ledger, undo| {
                ledger.settle_execution(&spec, &mut orders, &execution, None, due, undo)
            });
            // Resting orders' reservations cover every fill, so settlement cannot fail; if it
            // ever did, the auction is skipped (nothing moved) rather than half-applied.
            let Ok(trades) = settled else {
                continue;
            };
            let product = self.product_mut(&product_id);
            product.book.commit_clearing(&clearing);
            product.last_price = Some(clearing.price);
            product.trades.extend(trades.iter().cloned());
            self.keep_orders(orders);
            cleared.push(AuctionCleared {
                product_id,
                at_ns: due,
                price: clearing.price,
                lots: clearing.lots,
                trades,
            });
        }
        cleared
    }

    // ---- settlement -----------------------------------------------------------------------

    /// Settles the fills of `execution`. `orders` holds the orders being changed (the taker
    /// `taker_id`, when there is one, already in it); resting orders are loaded into it as they are
    /// touched, and every touched order's reservation is released and made again for what is
    /// still open. Returns the trades.
    fn settle_execution(
        &mut self,
        spec: &ProductSpec,
        orders: &mut BTreeMap<u128, Order>,
        execution: &Execution,
        taker_id: Option<u128>,
        timestamp_ns: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<Vec<Trade>, Reason> {
        let mut released = BTreeSet::new();
        let mut trades = Vec::with_capacity(execution.fills.len());
        let journal_index = self.head().index + 1;
        for fill in &execution.fills {
            for id in [fill.buy, fill.sell] {
                self.load_and_release(orders, &mut released, id, timestamp_ns, undo)?;
            }
            let trade = self.settle_fill(spec, orders, fill, timestamp_ns, journal_index, undo)?;
            trades.push(trade);
        }
        for (maker_id, _) in &execution.cancelled_makers {
            self.load_and_release(orders, &mut released, *maker_id, timestamp_ns, undo)?;
            let maker = orders.get_mut(maker_id).ok_or(Reason::OrderUnknown)?;
            maker.open_lots = 0;
            maker.status = OrderStatus::Cancelled {
                why: OrderEnd::SelfTrade,
            };
        }
        // The taker (if any): what rests, or why it is done.
        if let Some(taker_id) = taker_id {
            if let Some(taker) = orders.get_mut(&taker_id) {
                if execution.rests > 0 {
                    taker.open_lots = execution.rests;
                } else if taker.open_lots == 0 {
                    taker.open_lots = 0;
                    taker.status = OrderStatus::Filled;
                } else {
                    taker.open_lots = 0;
                    taker.status = OrderStatus::Cancelled {
                        why: match execution.done {
                            Some(Unrested::SelfTrade) => OrderEnd::SelfTrade,
                            Some(Unrested::BudgetExhausted) => OrderEnd::BudgetExhausted,
                            _ => OrderEnd::ImmediateRemainder,
                        },
                    };
                }
            }
        }
        // Reserve again what still rests.
        let resting: Vec<u128> = orders
            .iter()
            .filter(|(_, o)| o.open_lots > 0 && o.status == OrderStatus::Open)
            .map(|(id, _)| *id)
            .collect();
        for id in resting {
            let mut order = orders.remove(&id).ok_or(Reason::OrderUnknown)?;
            order.updated_at_ns = timestamp_ns;
            let result = self.reserve(spec, &mut order, timestamp_ns, undo);
            orders.insert(id, order);
            result?;
        }
        for order in orders.values_mut() {
            if order.open_lots == 0 && order.status == OrderStatus::Open {
                order.status = OrderStatus::Filled;
            }
        }
        Ok(trades)
    }

    /// Loads a resting order into `orders` (once) and releases its reservation.
    fn load_and_release(
        &mut self,
        orders: &mut BTreeMap<u128, Order>,
        released: &mut BTreeSet<u128>,
        id: u128,
        timestamp_ns: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<(), Reason> {
        let mut order = match orders.remove(&id) {
            Some(order) => order,
            None => self
                .state
                .market
                .orders
                .get(&id)
                .ok_or(Reason::OrderUnknown)?
                .clone(),
        };
        let result = if released.insert(id) {
            order.updated_at_ns = timestamp_ns;
            self.release(&mut order, timestamp_ns, undo)
        } else {
            Ok(())
        };
        orders.insert(id, order);
        result
    }

    /// Moves goods and money for one fill and records it on both orders.
    fn settle_fill(
        &mut self,
        spec: &ProductSpec,
        orders: &mut BTreeMap<u128, Order>,
        fill: &Fill,
        timestamp_ns: u64,
        journal_index: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<Trade, Reason> {
        let buy = &orders[&fill.buy];
        let sell = &orders[&fill.sell];
        let buyer = Party {
            order_id: fill.buy,
            owner: &buy.owner,
            base_account: buy.spec.base_account_id,
            quote_account: buy.spec.quote_account_id,
        };
        let seller = Party {
            order_id: fill.sell,
            owner: &sell.owner,
            base_account: sell.spec.base_account_id,
            quote_account: sell.spec.quote_account_id,
        };
        let trade_id = self.state.market.trade_next;
        let goods = u128::from(fill.lots) * spec.lot_size;
        let money = u128::from(fill.price) * u128::from(fill.lots);
        let split = split_fee(money, spec.fee_bps);
        let fees = system_account_id(&spec.quote, AccountKind::Fees);
        let rounding = system_account_id(&spec.quote, AccountKind::Rounding);
        let leg = |n: u8| trade_transfer_id(trade_id, n);
        let reference = u128::from(trade_id);
        let vouchers_paid = if buy.spec.vouchers.is_empty() {
            Vec::new()
        } else {
            let claim = Claim {
                buyer: buyer.owner,
                seller: seller.owner,
                seller_account: seller.quote_account,
                purchase: crate::vouchers::Purchase::Order {
                    order_id: fill.buy,
                    trade_id,
                },
                claim_id: fill.buy,
                price: money,
                payable: split.seller,
            };
            let vouchers = buy.spec.vouchers.clone();
            self.redeem(&vouchers, &claim, timestamp_ns, undo)?
        };
        let voucher_paid: u128 = vouchers_paid.iter().map(|v| v.paid).sum();
        let mut transfers = vec![
            Transfer::plain(
                leg(0),
                seller.base_account,
                buyer.base_account,
                goods,
                codes::TRADE_GOODS,
                reference,
            ),
            Transfer::plain(
                leg(1),
                buyer.quote_account,
                seller.quote_account,
                split.seller - voucher_paid,
                codes::TRADE_MONEY,
                reference,
            ),
        ];
        let fee_from_buyer = match split.residue {
            -1 => split.fee.saturating_sub(1),
            _ => split.fee,
        };
        if fee_from_buyer > 0 {
            transfers.push(Transfer::plain(
                leg(2),
                buyer.quote_account,
                fees,
                fee_from_buyer,
                codes::TRADE_FEE,
                reference,
            ));
        }
        match split.residue {
            1 => transfers.push(Transfer::plain(
                leg(3),
                buyer.quote_account,
                rounding,
                1,
                codes::TRADE_ROUNDING,
                reference,
            )),
            -1 => transfers.push(Transfer::plain(
                leg(3),
                rounding,
                fees,
                1,
                codes::TRADE_ROUNDING,
                reference,
            )),
            _ => {}
        }
        let trade = Trade {
            trade_id,
            product_id: spec.product_id.clone(),
            buy_order_id: buyer.order_id,
            sell_order_id: seller.order_id,
            buyer: buyer.owner.clone(),
            seller: seller.owner.clone(),
            price: fill.price,
            lots: fill.lots,
            goods,
            money,
            fee: split.fee,
            vouchers: vouchers_paid,
            aggressor: fill.aggressor,
            at_ns: timestamp_ns,
            journal_index,
        };
        for transfer in transfers {
            if transfer.amount > 0 {
                self.ledger_transfer(transfer, timestamp_ns, undo)?;
            }
        }
        self.state.market.trade_next += 1;
        for id in [fill.buy, fill.sell] {
            let order = orders.get_mut(&id).ok_or(Reason::OrderUnknown)?;
            order.filled_lots += fill.lots;
            order.open_lots = order.open_lots.saturating_sub(fill.lots);
            order.notional += money;
        }
        Ok(trade)
    }

    /// Reserves what `order` promises for its open lots (a pending transfer to escrow).
    fn reserve(
        &mut self,
        spec: &ProductSpec,
        order: &mut Order,
        timestamp_ns: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<(), Reason> {
        let price = order.resting_price.ok_or(Reason::OrderTypeInvalid)?;
        let (account, asset, amount, short) = match order.spec.side {
            Side::Buy => (
                order.spec.quote_account_id,
                &spec.quote,
                u128::from(price) * u128::from(order.open_lots),
                Reason::InsufficientFunds,
            ),
            Side::Sell => (
                order.spec.base_account_id,
                &spec.base,
                u128::from(order.open_lots) * spec.lot_size,
                Reason::InsufficientGoods,
            ),
        };
        let id = order_transfer_id(order);
        order.transfer_count += 1;
        let escrow = system_account_id(asset, AccountKind::Escrow);
        let transfer = Transfer::pending(
            id,
            account,
            escrow,
            amount,
            0,
            codes::ORDER_RESERVED,
            order.spec.order_id,
        );
        self.ledger_transfer(transfer, timestamp_ns, undo)
            .map_err(|reason| match reason {
                Reason::ExceedsCredits => short,
                other => other,
            })?;
        order.pending_transfer_id = Some(id);
        Ok(())
    }

    /// Voids `order`'s reservation, if it has one.
    fn release(
        &mut self,
        order: &mut Order,
        timestamp_ns: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<(), Reason> {
        let Some(pending_id) = order.pending_transfer_id.take() else {
            return Ok(());
        };
        let id = order_transfer_id(order);
        order.transfer_count += 1;
        self.ledger_transfer(
            Transfer::void(id, pending_id, codes::ORDER_RELEASED),
            timestamp_ns,
            undo,
        )
    }

    /// Stores the orders a command changed: one insert each (`BTreeMap::append` would rebuild
    /// the whole map, a cost in every order ever placed).
    fn keep_orders(&mut self, orders: BTreeMap<u128, Order>) {
        for (id, order) in orders {
            self.state.market.orders.insert(id, order);
        }
    }

    fn open_order_of(&self, signer: &PartyId, order_id: u128) -> Result<&Order, Reason> {
        let order = self
            .state
            .market
            .orders
            .get(&order_id)
            .ok_or(Reason::OrderUnknown)?;
        if order.owner != *signer {
            return Err(Reason::NotOrderOwner);
        }
        if order.status != OrderStatus::Open {
            return Err(Reason::OrderNotOpen);
        }
        Ok(order)
    }

    fn product_mut(&mut self, id: &str) -> &mut Product {
        self.state
            .market
            .products
            .get_mut(id)
            .expect("orders and auctions name listed products")
    }

    /// Checks that `id` is an account of `signer` in `asset`.
    pub(crate) fn check_order_account(
        &self,
        signer: &PartyId,
        id: u128,
        asset: &Asset,
    ) -> Result<(), Reason> {
        let account = self.state.accounts.get(&id).ok_or(Reason::AccountUnknown)?;
        if account.party != *signer {
            return Err(Reason::NotAccountOwner);
        }
        if account.asset != *asset {
            return Err(Reason::AssetMismatch);
        }
        Ok(())
    }

    /// What an account can still pay: posted credits less posted and pending debits.
    pub(crate) fn available(&self, id: u128) -> u128 {
        self.state.accounts.get(&id).map_or(0, |account| {
            let b = &account.balances;
            b.credits_posted
                .saturating_sub(b.debits_posted)
                .saturating_sub(b.debits_pending)
        })
    }
}

/// The whole number of lots in `quantity`.
fn lots_of(quantity: u128, spec: &ProductSpec) -> Result<u64, Reason> {
    if !quantity.is_multiple_of(spec.lot_size) {
        return Err(Reason::QuantityNotOnLot);
    }
    match u64::try_from(quantity / spec.lot_size) {
        Ok(lots) if (1..=ORDER_LOTS_MAX).contains(&lots) => Ok(lots),
        _ => Err(Reason::LotsInvalid),
    }
}

fn check_price(price: u64, spec: &ProductSpec) -> Result<(), Reason> {
    if price == 0 || price > PRICE_MAX {
        return Err(Reason::PriceInvalid);
    }
    if !price.is_multiple_of(spec.tick) {
        return Err(Reason::PriceNotOnTick);
    }
    Ok(())
}

fn refusal_reason(refusal: Refusal) -> Reason {
    match refusal {
        Refusal::DuplicateId => Reason::OrderExistsWithDifferentFields,
        Refusal::InvalidOrder => Reason::OrderTypeInvalid,
        Refusal::PostOnlyWouldCross => Reason::PostOnlyWouldCross,
        Refusal::FillOrKillUnfillable => Reason::FillOrKillUnfillable,
        Refusal::UnknownOrder => Reason::OrderUnknown,
        Refusal::AmendWouldCross => Reason::AmendWouldCross,
        Refusal::AmendToZero => Reason::LotsInvalid,
    }
}

fn order_transfer_id(order: &Order) -> u128 {
    derived_id(
        "cbank.order-transfer.v1",
        &[
            &order.spec.order_id.to_le_bytes(),
            &order.transfer_count.to_le_bytes(),
        ],
    )
}

fn trade_transfer_id(trade_id: u64, leg: u8) -> u128 {
    derived_id(
        "cbank.trade-transfer.v1",
        &[&trade_id.to_le_bytes(), &[leg]],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_even_rounding() {
        assert_eq!(round_half_even(5, 10), 0);
        assert_eq!(round_half_even(15, 10), 2);
        assert_eq!(round_half_even(25, 10), 2);
        assert_eq!(round_half_even(26, 10), 3);
        assert_eq!(round_half_even(24, 10), 2);
    }

    #[test]
    fn fee_split_residue_keeps_sums_exact() {
        // ¥1.00 at 0.3%: 0.3 fen rounds to 0, the seller's 99.7 to 100.
        assert_eq!(
            split_fee(100, 30),
            Split {
                seller: 100,
                fee: 0,
                residue: 0
            }
        );
        // 1 fen at 50%: both halves round to 0 (even), the buyer's fen goes to rounding.
        assert_eq!(split_fee(1, 5000).residue, 1);
        // 3 fen at 50%: both 1.5s round to 2, the rounding account pays one back.
        assert_eq!(
            split_fee(3, 5000),
            Split {
                seller: 2,
                fee: 2,
                residue: -1
            }
        );
        for money in 0..2_000u128 {
            for bps in [0u16, 1, 7, 25, 30, 500, 999, 1000, 5000] {
                let s = split_fee(money, bps);
                let total = (s.seller + s.fee) as i128 + i128::from(s.residue);
                assert_eq!(total, money as i128, "money {money} bps {bps}");
            }
        }
    }
}
