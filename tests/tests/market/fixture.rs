//! The supermarket's parties on top of the cluster fixture, and the calls every market test
//! makes: sign a command for a party and post it to its typed route through the leader, read
//! through the leader, observe balances.
//!
//! Parties (registered by the operator) and their main accounts:
//!
//! | party | role | CNY | GPUH:H100 | TOK:qwen | funded with |
//! |---|---|---|---|---|---|
//! | `univ` | institution | 11 | 12 | | 360,000 GPU-s (100 H100-hours) |
//! | `lab` | institution | 41 | 42 | | 360,000 GPU-s |
//! | `sme` | SME | 21 | 22 | 23 | 1,000,000 fen (¥10,000) |
//! | `sme-b` | SME | 31 | 32 | | 1,000,000 fen |
//! | `provider` | provider | 51 | | | |
//! | `auditor` | auditor | | | | |
//!
//! GPU time comes from the `GPUH:H100` system mint (`ledger::ids::system_account_id`), money from
//! the cluster fixture's CNY mint (`tests::MINT_ACCOUNT`), both moved by the operator. The
//! products (listed by the operator): [`CONTINUOUS`], one lot an H100-hour (3,600 GPU-seconds),
//! prices in fen per lot on a tick of 10 fen, a 30 bps seller's fee; and [`AUCTION`], the same
//! goods in a call auction every [`AUCTION_INTERVAL_S`] seconds.

use ledger::ids::system_account_id;
use ledger::testing::OPERATOR;
use ledger::trading::{OrderSpec, Placed, ProductSpec};
use ledger::{AccountKind, Asset, Command, CommandResult, Effect, Role};
use market::book::{SelfTrade, Side, TimeInForce};
pub use tests::calls::{
    balances, expect_accepted, expect_rejected, number, posted, statement_closes,
};
use tests::calls::{fund, open_main_accounts, register_parties};
use tests::{Cluster, MINT_ACCOUNT};

pub const UNIV: &str = "univ";
pub const LAB: &str = "lab";
pub const SME: &str = "sme";
pub const SME_B: &str = "sme-b";
pub const PROVIDER: &str = "provider";
pub const AUDITOR: &str = "auditor";

pub const UNIV_CNY: u128 = 11;
pub const UNIV_GPU: u128 = 12;
pub const SME_CNY: u128 = 21;
pub const SME_GPU: u128 = 22;
pub const SME_TOK: u128 = 23;
pub const SME_B_CNY: u128 = 31;
pub const SME_B_GPU: u128 = 32;
pub const LAB_CNY: u128 = 41;
pub const LAB_GPU: u128 = 42;
pub const PROVIDER_CNY: u128 = 51;

/// What each institution is given to sell: 100 H100-hours.
pub const INSTITUTION_FUNDS_GPU_S: u128 = 360_000;
/// What each SME is given to spend: ¥10,000.00.
pub const SME_FUNDS_FEN: u128 = 1_000_000;

pub const CONTINUOUS: &str = "GPUH:H100/CNY";
pub const AUCTION: &str = "GPUH:H100@auction/CNY";
pub const AUCTION_INTERVAL_S: u32 = 2;
/// GPU-seconds in one lot: one H100-hour.
pub const LOT: u128 = 3_600;
pub const TICK_FEN: u64 = 10;
pub const FEE_BPS: u16 = 30;

pub fn h100() -> Asset {
    "GPUH:H100".parse().expect("GPUH:H100 is an asset code")
}

pub fn qwen() -> Asset {
    "TOK:qwen".parse().expect("TOK:qwen is an asset code")
}

/// The CNY fee account, which every trade's fee is paid into.
pub fn cny_fees() -> u128 {
    system_account_id(&Asset::Cny, AccountKind::Fees)
}

/// Registers the parties, opens and funds their accounts, and lists both products.
pub fn open_market(cluster: &mut Cluster) {
    register_parties(
        cluster,
        &[
            (UNIV, Role::Institution),
            (LAB, Role::Institution),
            (SME, Role::Sme),
            (SME_B, Role::Sme),
            (PROVIDER, Role::Provider),
            (AUDITOR, Role::Auditor),
        ],
    );
    open_main_accounts(
        cluster,
        &[
            (UNIV, vec![(UNIV_CNY, Asset::Cny), (UNIV_GPU, h100())]),
            (LAB, vec![(LAB_CNY, Asset::Cny), (LAB_GPU, h100())]),
            (
                SME,
                vec![(SME_CNY, Asset::Cny), (SME_GPU, h100()), (SME_TOK, qwen())],
            ),
            (SME_B, vec![(SME_B_CNY, Asset::Cny), (SME_B_GPU, h100())]),
            (PROVIDER, vec![(PROVIDER_CNY, Asset::Cny)]),
        ],
    );
    let h100_mint = system_account_id(&h100(), AccountKind::Mint);
    fund(
        cluster,
        &[
            (h100_mint, UNIV_GPU, INSTITUTION_FUNDS_GPU_S),
            (h100_mint, LAB_GPU, INSTITUTION_FUNDS_GPU_S),
            (MINT_ACCOUNT, SME_CNY, SME_FUNDS_FEN),
            (MINT_ACCOUNT, SME_B_CNY, SME_FUNDS_FEN),
        ],
    );
    for (product_id, auction_interval_s) in
        [(CONTINUOUS, None), (AUCTION, Some(AUCTION_INTERVAL_S))]
    {
        let product = ProductSpec {
            product_id: product_id.to_owned(),
            base: h100(),
            quote: Asset::Cny,
            lot_size: LOT,
            tick: TICK_FEN,
            fee_bps: FEE_BPS,
            auction_interval_s,
        };
        expect_accepted(
            cluster,
            "/v1/products",
            OPERATOR,
            Command::ListProduct { product },
        );
    }
}

/// A limit (or, with `price: None`, market) order on `product_id`, paid from and delivered to
/// `signer`'s main accounts.
#[allow(clippy::too_many_arguments)]
pub fn order(
    order_id: u128,
    product_id: &str,
    side: Side,
    price: Option<u64>,
    lots: u128,
    time_in_force: TimeInForce,
    base_account_id: u128,
    quote_account_id: u128,
) -> OrderSpec {
    OrderSpec {
        order_id,
        product_id: product_id.to_owned(),
        side,
        price,
        quantity: lots * LOT,
        time_in_force,
        post_only: false,
        self_trade: SelfTrade::CancelTaker,
        base_account_id,
        quote_account_id,
        vouchers: Vec::new(),
    }
}

/// Places `order` for `signer` through `POST /v1/orders`; panics unless it is accepted as new.
pub fn place(cluster: &mut Cluster, signer: &str, order: OrderSpec) -> Placed {
    let order_id = order.order_id;
    let outcome = expect_accepted(cluster, "/v1/orders", signer, Command::PlaceOrder { order });
    match outcome.result {
        CommandResult::Accepted(Effect::OrderPlaced(Some(placed))) => placed,
        other => panic!("order {order_id} by {signer} was not placed as new: {other:?}"),
    }
}

/// A read of one product: `path?product=<id>` plus `query`.
pub fn product_read(
    cluster: &mut Cluster,
    path: &str,
    product_id: &str,
    query: &str,
) -> serde_json::Value {
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("&{query}")
    };
    cluster.read(&format!("{path}?product={product_id}{query}"))
}

/// Price levels of a depth view as (price, lots, orders).
pub fn levels(depth: &serde_json::Value, side: &str) -> Vec<(u128, u128, u64)> {
    depth[side]
        .as_array()
        .unwrap_or_else(|| panic!("depth has no {side}: {depth}"))
        .iter()
        .map(|level| {
            assert_eq!(
                number(&level["quantity"]),
                number(&level["lots"]) * LOT,
                "a level's quantity is its lots in GPU-seconds: {level}"
            );
            (
                number(&level["price"]),
                number(&level["lots"]),
                level["orders"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{level}")),
            )
        })
        .collect()
}
