//! The vouchers' world on top of the cluster fixture, and the calls every voucher test makes.
//!
//! Parties (registered by the operator) and their main accounts:
//!
//! | party | role | CNY | GPUH:H100 | TOK:qwen | funded with |
//! |---|---|---|---|---|---|
//! | `gov` | government | 61 | | | 5,100,000,000 fen (¥51,000,000) |
//! | `gov-b` | government | 71 | | | 1,000,000 fen (¥10,000) |
//! | `univ` | institution | 11 | 12 | | 360,000 GPU-s (100 H100-hours) |
//! | `sme` | SME | 21 | 22 | 23 | 1,000,000 fen (¥10,000) |
//! | `sme-b` | SME | 31 | 32 | 33 | 1,000,000 fen |
//! | `provider` | provider | 51 | | | |
//! | `auditor` | auditor | | | | |
//!
//! Money comes from the cluster fixture's CNY mint (`tests::MINT_ACCOUNT`), GPU time from the
//! `GPUH:H100` system mint, both moved by the operator. On sale: [`PRODUCT`], one lot an
//! H100-hour (3,600 GPU-seconds), prices in fen per lot on a tick of 10 fen, a 30 bps seller's
//! fee; and the provider's token plan [`PACKAGE`], "15,000,000 tokens of qwen, 30 days, ¥39.9"
//! (3,990 fen). The city's programme [`CITY`]: ¥50,000,000 paying 30% of any GPUH:H100 or
//! TOK:qwen purchase by an SME, at most ¥2,000,000 per SME a year, for a year.

use ledger::ids::system_account_id;
use ledger::shelf::{PackageSpec, PurchaseSpec};
use ledger::testing::OPERATOR;
use ledger::trading::{OrderSpec, ProductSpec};
use ledger::vouchers::{Beneficiaries, Eligible, ProgrammeSpec, VoucherSpec};
use ledger::{AccountKind, Asset, Command, Hash, JournalEntry, PartyId, Role};
use market::book::{SelfTrade, Side, TimeInForce};
use std::path::Path;
use std::process::Output;
use tests::calls::{expect_accepted, fund, open_main_accounts, register_parties};
use tests::{cbank_binary, unix_now_ns, Cluster, MINT_ACCOUNT};

pub const GOV: &str = "gov";
pub const GOV_B: &str = "gov-b";
pub const UNIV: &str = "univ";
pub const SME: &str = "sme";
pub const SME_B: &str = "sme-b";
pub const PROVIDER: &str = "provider";
pub const AUDITOR: &str = "auditor";

pub const GOV_CNY: u128 = 61;
pub const GOV_B_CNY: u128 = 71;
pub const UNIV_CNY: u128 = 11;
pub const UNIV_GPU: u128 = 12;
pub const SME_CNY: u128 = 21;
pub const SME_GPU: u128 = 22;
pub const SME_TOK: u128 = 23;
pub const SME_B_CNY: u128 = 31;
pub const SME_B_GPU: u128 = 32;
pub const SME_B_TOK: u128 = 33;
pub const PROVIDER_CNY: u128 = 51;

/// What the city government is given: the programme's budget and ¥1,000,000 more.
pub const GOV_FUNDS_FEN: u128 = 5_100_000_000;
pub const GOV_B_FUNDS_FEN: u128 = 1_000_000;
/// What each SME is given to spend: ¥10,000.00.
pub const SME_FUNDS_FEN: u128 = 1_000_000;
/// What the institution is given to sell: 100 H100-hours.
pub const UNIV_FUNDS_GPU_S: u128 = 360_000;

pub const PRODUCT: &str = "GPUH:H100/CNY";
/// GPU-seconds in one lot: one H100-hour.
pub const LOT: u128 = 3_600;
pub const TICK_FEN: u64 = 10;
pub const FEE_BPS: u16 = 30;

pub const PACKAGE: &str = "qwen-15m-30d";
pub const PACKAGE_TOKENS: u128 = 15_000_000;
pub const PACKAGE_PRICE_FEN: u128 = 3_990;

/// The city's programme: ¥50,000,000 at 30% with a ¥2,000,000 yearly cap.
pub const CITY: &str = "city-ai-2026";
pub const CITY_BUDGET_FEN: u128 = 5_000_000_000;
pub const CITY_SHARE_BPS: u16 = 3_000;
pub const CITY_CAP_FEN: u128 = 200_000_000;

pub const DAY_NS: u64 = 86_400 * ledger::limits::NS_PER_S;

pub fn h100() -> Asset {
    "GPUH:H100".parse().expect("GPUH:H100 is an asset code")
}

pub fn qwen() -> Asset {
    "TOK:qwen".parse().expect("TOK:qwen is an asset code")
}

/// The account that holds a programme's money (unissued budget and what came back).
pub fn programme_account(programme_id: &str) -> u128 {
    ledger::ids::derived_id("cbank.programme-account.v1", &[programme_id.as_bytes()])
}

/// The account that holds what is left of a voucher.
pub fn voucher_account(voucher_id: u128) -> u128 {
    ledger::ids::derived_id("cbank.voucher-account.v1", &[&voucher_id.to_le_bytes()])
}

/// A programme of `gov` over GPUH:H100 and TOK:qwen at 30%, valid from a minute ago for a year.
pub fn programme(
    programme_id: &str,
    budget: u128,
    cap: u128,
    beneficiaries: Beneficiaries,
) -> ProgrammeSpec {
    let now_ns = unix_now_ns();
    ProgrammeSpec {
        programme_id: programme_id.to_owned(),
        title: format!("{programme_id} compute vouchers"),
        budget,
        funding_account_id: GOV_CNY,
        eligible: Eligible {
            products: Vec::new(),
            packages: Vec::new(),
            assets: vec![h100(), qwen()],
        },
        max_share_bps: CITY_SHARE_BPS,
        cap_per_beneficiary_per_year: cap,
        valid_from_ns: now_ns - 60 * ledger::limits::NS_PER_S,
        valid_until_ns: now_ns + 365 * DAY_NS,
        beneficiaries,
        stackable: false,
    }
}

/// Registers the parties, opens and funds their accounts, lists the product and the package,
/// and creates the city's programme.
pub fn open_voucher_world(cluster: &mut Cluster) {
    register_parties(
        cluster,
        &[
            (GOV, Role::Government),
            (GOV_B, Role::Government),
            (UNIV, Role::Institution),
            (SME, Role::Sme),
            (SME_B, Role::Sme),
            (PROVIDER, Role::Provider),
            (AUDITOR, Role::Auditor),
        ],
    );
    open_main_accounts(
        cluster,
        &[
            (GOV, vec![(GOV_CNY, Asset::Cny)]),
            (GOV_B, vec![(GOV_B_CNY, Asset::Cny)]),
            (UNIV, vec![(UNIV_CNY, Asset::Cny), (UNIV_GPU, h100())]),
            (
                SME,
                vec![(SME_CNY, Asset::Cny), (SME_GPU, h100()), (SME_TOK, qwen())],
            ),
            (
                SME_B,
                vec![
                    (SME_B_CNY, Asset::Cny),
                    (SME_B_GPU, h100()),
                    (SME_B_TOK, qwen()),
                ],
            ),
            (PROVIDER, vec![(PROVIDER_CNY, Asset::Cny)]),
        ],
    );
    let h100_mint = system_account_id(&h100(), AccountKind::Mint);
    fund(
        cluster,
        &[
            (MINT_ACCOUNT, GOV_CNY, GOV_FUNDS_FEN),
            (MINT_ACCOUNT, GOV_B_CNY, GOV_B_FUNDS_FEN),
            (h100_mint, UNIV_GPU, UNIV_FUNDS_GPU_S),
            (MINT_ACCOUNT, SME_CNY, SME_FUNDS_FEN),
            (MINT_ACCOUNT, SME_B_CNY, SME_FUNDS_FEN),
        ],
    );
    let product = ProductSpec {
        product_id: PRODUCT.to_owned(),
        base: h100(),
        quote: Asset::Cny,
        lot_size: LOT,
        tick: TICK_FEN,
        fee_bps: FEE_BPS,
        auction_interval_s: None,
    };
    expect_accepted(
        cluster,
        "/v1/products",
        OPERATOR,
        Command::ListProduct { product },
    );
    let package = PackageSpec {
        package_id: PACKAGE.to_owned(),
        title: "15,000,000 tokens of qwen, 30 days".to_owned(),
        asset: qwen(),
        quantity: PACKAGE_TOKENS,
        price: PACKAGE_PRICE_FEN,
        validity_s: 30 * 24 * 3600,
        stock: 100,
        seller_account_id: PROVIDER_CNY,
        goods_account_id: None,
        provider: Some(PartyId::new(PROVIDER)),
    };
    expect_accepted(
        cluster,
        "/v1/packages",
        PROVIDER,
        Command::ListPackage { package },
    );
    let city = programme(
        CITY,
        CITY_BUDGET_FEN,
        CITY_CAP_FEN,
        Beneficiaries::Role(Role::Sme),
    );
    expect_accepted(
        cluster,
        "/v1/programmes",
        GOV,
        Command::CreateProgramme { programme: city },
    );
}

/// Where t20 and t30 start: the world, V1 (101) of the city for `sme` (100,000 fen, for a
/// month), and `univ` selling 5 lots at 2,600 (order 201). Returns V1's expiry.
pub fn voucher_and_ask(cluster: &mut Cluster) -> u64 {
    open_voucher_world(cluster);
    let month_ns = unix_now_ns() + 30 * DAY_NS;
    expect_accepted(
        cluster,
        "/v1/vouchers",
        GOV,
        voucher(101, CITY, SME, 100_000, month_ns),
    );
    let sell = order(201, Side::Sell, 2_600, 5, (UNIV_GPU, UNIV_CNY), Vec::new());
    expect_accepted(cluster, "/v1/orders", UNIV, sell);
    month_ns
}

pub fn voucher(
    voucher_id: u128,
    programme_id: &str,
    beneficiary: &str,
    amount: u128,
    expires_at_ns: u64,
) -> Command {
    Command::IssueVoucher {
        voucher: VoucherSpec {
            voucher_id,
            programme_id: programme_id.to_owned(),
            beneficiary: PartyId::new(beneficiary),
            amount,
            expires_at_ns,
        },
    }
}

/// A GTC limit order of `lots` H100-hours at `price` fen per lot on [`PRODUCT`].
pub fn order(
    order_id: u128,
    side: Side,
    price: u64,
    lots: u128,
    accounts: (u128, u128),
    vouchers: Vec<u128>,
) -> Command {
    Command::PlaceOrder {
        order: OrderSpec {
            order_id,
            product_id: PRODUCT.to_owned(),
            side,
            price: Some(price),
            quantity: lots * LOT,
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            self_trade: SelfTrade::CancelTaker,
            base_account_id: accounts.0,
            quote_account_id: accounts.1,
            vouchers,
        },
    }
}

/// One [`PACKAGE`], paid from `pay` and delivered to `receive`.
pub fn purchase(purchase_id: u128, pay: u128, receive: u128, vouchers: Vec<u128>) -> Command {
    Command::BuyPackage {
        purchase: PurchaseSpec {
            purchase_id,
            package_id: PACKAGE.to_owned(),
            pay_account_id: pay,
            receive_account_id: receive,
            vouchers,
        },
    }
}

/// The journal entry at `index`, read from the leader.
pub fn journal_entry(cluster: &mut Cluster, index: u64) -> JournalEntry {
    let page: serde_json::Value = cluster.read(&format!("/v1/journal?from={index}&limit=1"));
    serde_json::from_value(page["entries"][0].clone())
        .unwrap_or_else(|error| panic!("journal entry {index}: {error}: {page}"))
}

pub fn journal_hash(cluster: &mut Cluster, index: u64) -> Hash {
    journal_entry(cluster, index).hash
}

/// Runs the `cbank` binary with `args` and returns what it did.
pub fn cbank(args: &[&str], cwd: &Path) -> Output {
    std::process::Command::new(cbank_binary())
        .args(args)
        .current_dir(cwd)
        .env_remove("CBANK_NODE")
        .output()
        .unwrap_or_else(|error| panic!("cannot run cbank {args:?}: {error}"))
}

/// Like [`cbank`], panicking (with its output) unless it exits 0; returns its stdout.
pub fn cbank_ok(args: &[&str], cwd: &Path) -> String {
    let output = cbank(args, cwd);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "cbank {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
