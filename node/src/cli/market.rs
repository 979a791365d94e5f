//! The compute supermarket's `cbank` commands: `market` (products, order books, orders, fills),
//! `shelf` (fixed-price packages) and `usage` (token usage, quotas and alerts).
//!
//! Writes build one ledger command from the arguments, sign it with `--key` and post it to its
//! typed route (`commands.rs`); reads print the node's JSON. Prices are in the quote asset's
//! minor unit per lot (fen), quantities in the base asset's minor unit (GPU-seconds, tokens).
//! Product ids hold `/` and `:` (`GPUH:H100/CNY`), so they travel in the query string, checked
//! here against the ledger's alphabet so that none can change the request. `usage alerts
//! --follow` prints each alert of the node's Server-Sent Events stream as one JSON line. Exit
//! codes are those of every other command. This module never decides what the ledger will
//! accept; a usage event's time given as `now` is read from this machine's clock.

use super::bank::{id_segment, now_ns, parse_time, PageArgs, TimeArg};
use super::client::NodeClient;
use super::commands::{load_and_write, show, show_with_query};
use super::{parse_party, ReadOpts, SignOpts};
use anyhow::bail;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use ledger::shelf::{PackageSpec, PurchaseSpec, UsageEvent};
use ledger::trading::{OrderSpec, ProductSpec};
use ledger::{Asset, Command, PartyId};
use market::book::{SelfTrade, Side, TimeInForce};
use std::process::ExitCode;

/// `cbank market`, `cbank shelf` and `cbank usage`.
#[derive(Debug, Subcommand)]
pub enum MarketTop {
    /// The order books: products, depth, trades, candles; list a product; place, cancel and
    /// amend orders; a party's orders and fills.
    Market {
        #[command(subcommand)]
        command: MarketCommand,
    },
    /// The shelf of fixed-price packages (GPU-hours, token plans): list, list a package, buy.
    Shelf {
        #[command(subcommand)]
        command: ShelfCommand,
    },
    /// Token usage: record a provider's usage event; an account's quotas and alerts.
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketCommand {
    /// The catalogue: every product's spec, best bid and ask, last price, next clearing time.
    Products {
        #[command(flatten)]
        read: ReadOpts,
    },
    /// The best price levels of a product's book.
    Depth {
        #[command(flatten)]
        product: ProductArg,
        /// Price levels per side (the node's default is 20, its maximum 1000).
        #[arg(long)]
        levels: Option<u32>,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// A product's trades, oldest first.
    Trades {
        #[command(flatten)]
        product: ProductArg,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// A product's OHLC candles (the latest ones that have trades).
    Candles {
        #[command(flatten)]
        product: ProductArg,
        /// Seconds per candle (default 60).
        #[arg(long)]
        interval_s: Option<u64>,
        /// At most this many candles (default 100).
        #[arg(long)]
        limit: Option<u32>,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// List an order-book product (operator only).
    ListProduct(ListProductArgs),
    /// Place an order.
    Place(PlaceArgs),
    /// Cancel one of your open orders; its reservation is released.
    Cancel {
        order_id: u128,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Set an open order's open quantity (and, optionally, its price). Less at the same price
    /// keeps the order's place in the queue.
    Amend {
        order_id: u128,
        /// The new open quantity, in base minor units (a whole number of lots).
        #[arg(long)]
        quantity: u128,
        /// A new limit price per lot, in quote minor units (fen).
        #[arg(long)]
        price: Option<u64>,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Show one order, or list a party's orders (by order id).
    #[command(group(ArgGroup::new("which").required(true).args(["id", "party"])))]
    Orders {
        /// The order to show.
        #[arg(long)]
        id: Option<u128>,
        /// The party whose orders to list.
        #[arg(long, value_parser = parse_party)]
        party: Option<PartyId>,
        /// With --party: open orders only, or all.
        #[arg(long, value_enum, default_value_t = OrderStatusArg::Open, conflicts_with = "id")]
        status: OrderStatusArg,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// A party's fills (the trades it bought or sold in), by trade id.
    Fills {
        #[arg(value_parser = parse_party)]
        party: PartyId,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
}

/// `--product`: which product a read is about.
#[derive(Debug, Clone, Args)]
pub struct ProductArg {
    /// The product id, e.g. GPUH:H100/CNY.
    #[arg(long = "product", value_name = "PRODUCT", value_parser = parse_product_id)]
    pub product_id: String,
}

#[derive(Debug, Args)]
pub struct ListProductArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// 1 to 64 characters of A-Z, a-z, 0-9, ':', '@', '/', '.', '_', '-', e.g. GPUH:H100/CNY.
    #[arg(long, value_parser = parse_product_id)]
    pub product_id: String,
    /// What is bought and sold (e.g. GPUH:H100).
    #[arg(long)]
    pub base: Asset,
    /// What prices are paid in (e.g. CNY).
    #[arg(long)]
    pub quote: Asset,
    /// Base minor units in one lot (3600: one GPU-hour).
    #[arg(long)]
    pub lot_size: u128,
    /// Prices are whole multiples of this many quote minor units per lot.
    #[arg(long)]
    pub tick: u64,
    /// The seller's fee in basis points of each fill's money.
    #[arg(long, default_value_t = 0)]
    pub fee_bps: u16,
    /// A uniform-price call auction every this many seconds (default: continuous matching).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub auction_interval_s: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PlaceArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// The order id: client-chosen, unique for ever, the idempotency key (retry with it).
    #[arg(long)]
    pub order_id: u128,
    #[arg(long, value_parser = parse_product_id)]
    pub product: String,
    #[arg(long, value_enum)]
    pub side: SideArg,
    /// Limit price per lot in quote minor units (fen); leave it out for a market order.
    #[arg(long)]
    pub price: Option<u64>,
    /// How much, in base minor units (a whole number of lots: 3600 per H100-hour lot).
    #[arg(long)]
    pub quantity: u128,
    /// Time in force: gtc rests on the book, ioc fills what it can now, fok all or nothing.
    #[arg(long = "tif", value_enum, default_value_t = TimeInForceArg::Gtc)]
    pub time_in_force: TimeInForceArg,
    /// Refuse to trade on arrival (rest or be refused).
    #[arg(long)]
    pub post_only: bool,
    /// What happens when the order would trade with one of your own.
    #[arg(long, value_enum, default_value_t = SelfTradeArg::CancelTaker)]
    pub self_trade: SelfTradeArg,
    /// Your account of the product's base asset (receives or delivers the goods).
    #[arg(long)]
    pub base_account: u128,
    /// Your account of the product's quote asset (pays or is paid).
    #[arg(long)]
    pub quote_account: u128,
    /// A voucher that pays its share of a buy (`spec/vouchers.md`); repeat for several.
    #[arg(long = "voucher")]
    pub vouchers: Vec<u128>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SideArg {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimeInForceArg {
    Gtc,
    Ioc,
    Fok,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SelfTradeArg {
    CancelTaker,
    CancelMaker,
    CancelBoth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderStatusArg {
    Open,
    All,
}

#[derive(Debug, Subcommand)]
pub enum ShelfCommand {
    /// List the shelf's packages (by package id), or show one.
    List {
        /// Show only this package.
        package_id: Option<String>,
        #[command(flatten)]
        page: ShelfPageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// List a fixed-price package (operator or provider).
    ListPackage(ListPackageArgs),
    /// Buy one package.
    Buy(BuyArgs),
}

/// The paging options of the shelf, whose cursor is a package id.
#[derive(Debug, Clone, Args)]
pub struct ShelfPageArgs {
    /// Start after this package id (the `next` of the previous page).
    #[arg(long)]
    pub after: Option<String>,
    /// At most this many (the node caps it at 1000, its default).
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("validity").args(["validity_s", "validity_days"])))]
pub struct ListPackageArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// 1 to 64 characters of a-z, 0-9, '.', '_', '-'.
    #[arg(long)]
    pub package_id: String,
    /// Shown to buyers, e.g. "10,000,000 tokens of qwen, 30 days".
    #[arg(long)]
    pub title: String,
    /// TOK:<family> or GPUH:<class>.
    #[arg(long)]
    pub asset: Asset,
    /// Minor units of the asset in one package (tokens, GPU-seconds).
    #[arg(long)]
    pub quantity: u128,
    /// Price of one package in minor units of the seller account's asset (fen).
    #[arg(long)]
    pub price: u128,
    /// Token packages: how long the quota lasts after purchase, in seconds.
    #[arg(long)]
    pub validity_s: Option<u32>,
    /// Token packages: the same in days.
    #[arg(long)]
    pub validity_days: Option<u32>,
    /// Packages in stock.
    #[arg(long)]
    pub stock: u64,
    /// Your account that is paid.
    #[arg(long)]
    pub seller_account: u128,
    /// GPU packages: your account the stock is taken from (moved to escrow at listing).
    #[arg(long)]
    pub goods_account: Option<u128>,
    /// Token packages: the provider that serves and meters the tokens (a provider names itself).
    #[arg(long, value_parser = parse_party)]
    pub provider: Option<PartyId>,
}

#[derive(Debug, Args)]
pub struct BuyArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// The purchase id: client-chosen, unique for ever, the idempotency key.
    #[arg(long)]
    pub purchase_id: u128,
    #[arg(long)]
    pub package_id: String,
    /// Your account that pays.
    #[arg(long)]
    pub pay_account: u128,
    /// Your account of the package's asset, which receives the goods or the token quota.
    #[arg(long)]
    pub receive_account: u128,
    /// A voucher that pays its share of the price (`spec/vouchers.md`); repeat for several.
    #[arg(long = "voucher")]
    pub vouchers: Vec<u128>,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Record one token usage event against a buyer's quotas (provider only).
    Record(RecordArgs),
    /// An account's token quotas: granted, used, remaining, expiry, state, and their totals.
    Quotas {
        account: u128,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        read: ReadOpts,
    },
    /// An account's quota alerts (80% and 100% used); `--follow` waits for new ones.
    Alerts {
        account: u128,
        /// Only the alerts after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        /// Keep printing new alerts as they fire, one JSON object a line, until interrupted.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        read: ReadOpts,
    },
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub sign: SignOpts,
    /// Unique per provider: a repeat is `usage_event_exists` and changes nothing.
    #[arg(long)]
    pub event_id: u128,
    /// The buyer's TOK:<family> account.
    #[arg(long)]
    pub account: u128,
    /// Tokens used.
    #[arg(long)]
    pub tokens: u64,
    /// When they were used: `now` (default), `+SECONDS` from now, or an RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = parse_time, default_value = "now")]
    pub at: TimeArg,
}

/// Parses a product id by the ledger's rule: 1 to 64 bytes of `[A-Za-z0-9:@/._-]`. None of
/// those changes a query string, so a checked id is sent as it is.
pub fn parse_product_id(text: &str) -> Result<String, String> {
    let allowed = |byte: u8| {
        byte.is_ascii_alphanumeric() || matches!(byte, b':' | b'@' | b'/' | b'.' | b'_' | b'-')
    };
    if text.is_empty() || text.len() > 64 || !text.bytes().all(allowed) {
        return Err(format!(
            "{text:?} is not a product id: 1 to 64 characters of A-Z, a-z, 0-9, ':', '@', '/', \
             '.', '_', '-' (e.g. GPUH:H100/CNY)"
        ));
    }
    Ok(text.to_owned())
}

impl From<SideArg> for Side {
    fn from(side: SideArg) -> Side {
        match side {
            SideArg::Buy => Side::Buy,
            SideArg::Sell => Side::Sell,
        }
    }
}

impl From<TimeInForceArg> for TimeInForce {
    fn from(time_in_force: TimeInForceArg) -> TimeInForce {
        match time_in_force {
            TimeInForceArg::Gtc => TimeInForce::Gtc,
            TimeInForceArg::Ioc => TimeInForce::Ioc,
            TimeInForceArg::Fok => TimeInForce::Fok,
        }
    }
}

impl From<SelfTradeArg> for SelfTrade {
    fn from(self_trade: SelfTradeArg) -> SelfTrade {
        match self_trade {
            SelfTradeArg::CancelTaker => SelfTrade::CancelTaker,
            SelfTradeArg::CancelMaker => SelfTrade::CancelMaker,
            SelfTradeArg::CancelBoth => SelfTrade::CancelBoth,
        }
    }
}

fn order_spec(args: &PlaceArgs) -> OrderSpec {
    OrderSpec {
        order_id: args.order_id,
        product_id: args.product.clone(),
        side: args.side.into(),
        price: args.price,
        quantity: args.quantity,
        time_in_force: args.time_in_force.into(),
        post_only: args.post_only,
        self_trade: args.self_trade.into(),
        base_account_id: args.base_account,
        quote_account_id: args.quote_account,
        vouchers: args.vouchers.clone(),
    }
}

fn package_spec(args: &ListPackageArgs) -> anyhow::Result<PackageSpec> {
    let validity_s = match (args.validity_s, args.validity_days) {
        (Some(seconds), _) => seconds,
        (None, Some(days)) => match days.checked_mul(24 * 3600) {
            Some(seconds) => seconds,
            None => bail!("--validity-days {days} is too long"),
        },
        (None, None) => 0,
    };
    Ok(PackageSpec {
        package_id: args.package_id.clone(),
        title: args.title.clone(),
        asset: args.asset.clone(),
        quantity: args.quantity,
        price: args.price,
        validity_s,
        stock: args.stock,
        seller_account_id: args.seller_account,
        goods_account_id: args.goods_account,
        provider: args.provider.clone(),
    })
}

/// `product=<id>` and any other query parameters.
fn product_query(product: &ProductArg, more: Vec<String>) -> Vec<String> {
    let mut query = vec![format!("product={}", product.product_id)];
    query.extend(more);
    query
}

/// Runs a market, shelf or usage command.
pub async fn run(command: MarketTop) -> anyhow::Result<ExitCode> {
    match command {
        MarketTop::Market { command } => run_market(command).await,
        MarketTop::Shelf { command } => run_shelf(command).await,
        MarketTop::Usage { command } => run_usage(command).await,
    }
}

async fn run_market(command: MarketCommand) -> anyhow::Result<ExitCode> {
    match command {
        MarketCommand::Products { read } => show(&read, "/v1/products").await,
        MarketCommand::Depth {
            product,
            levels,
            read,
        } => {
            let levels = levels.map(|levels| format!("levels={levels}"));
            let query = product_query(&product, levels.into_iter().collect());
            show_with_query(&read, "/v1/market/depth", query).await
        }
        MarketCommand::Trades {
            product,
            page,
            read,
        } => {
            let query = product_query(&product, page.query());
            show_with_query(&read, "/v1/market/trades", query).await
        }
        MarketCommand::Candles {
            product,
            interval_s,
            limit,
            read,
        } => {
            let mut more = Vec::new();
            if let Some(interval_s) = interval_s {
                more.push(format!("interval_s={interval_s}"));
            }
            if let Some(limit) = limit {
                more.push(format!("limit={limit}"));
            }
            let query = product_query(&product, more);
            show_with_query(&read, "/v1/market/candles", query).await
        }
        MarketCommand::ListProduct(args) => {
            let product = ProductSpec {
                product_id: args.product_id,
                base: args.base,
                quote: args.quote,
                lot_size: args.lot_size,
                tick: args.tick,
                fee_bps: args.fee_bps,
                auction_interval_s: args.auction_interval_s,
            };
            load_and_write(&args.sign, Command::ListProduct { product }).await
        }
        MarketCommand::Place(args) => {
            let order = order_spec(&args);
            load_and_write(&args.sign, Command::PlaceOrder { order }).await
        }
        MarketCommand::Cancel { order_id, sign } => {
            load_and_write(&sign, Command::CancelOrder { order_id }).await
        }
        MarketCommand::Amend {
            order_id,
            quantity,
            price,
            sign,
        } => {
            let command = Command::AmendOrder {
                order_id,
                price,
                quantity,
            };
            load_and_write(&sign, command).await
        }
        MarketCommand::Orders {
            id,
            party,
            status,
            page,
            read,
        } => match (id, party) {
            (Some(id), _) => show(&read, &format!("/v1/orders/{id}")).await,
            (None, Some(party)) => {
                let status = match status {
                    OrderStatusArg::Open => "open",
                    OrderStatusArg::All => "all",
                };
                let mut query = vec![format!("status={status}")];
                query.extend(page.query());
                show_with_query(&read, &format!("/v1/parties/{party}/orders"), query).await
            }
            (None, None) => bail!("cbank market orders: give --id or --party"),
        },
        MarketCommand::Fills { party, page, read } => {
            show_with_query(&read, &format!("/v1/parties/{party}/fills"), page.query()).await
        }
    }
}

async fn run_shelf(command: ShelfCommand) -> anyhow::Result<ExitCode> {
    match command {
        ShelfCommand::List {
            package_id: Some(package_id),
            read,
            ..
        } => {
            let path = format!("/v1/packages/{}", id_segment("package id", &package_id)?);
            show(&read, &path).await
        }
        ShelfCommand::List {
            package_id: None,
            page,
            read,
        } => {
            let mut query = Vec::new();
            if let Some(after) = &page.after {
                query.push(format!("after={}", id_segment("package id", after)?));
            }
            if let Some(limit) = page.limit {
                query.push(format!("limit={limit}"));
            }
            show_with_query(&read, "/v1/packages", query).await
        }
        ShelfCommand::ListPackage(args) => {
            let package = package_spec(&args)?;
            load_and_write(&args.sign, Command::ListPackage { package }).await
        }
        ShelfCommand::Buy(args) => {
            let purchase = PurchaseSpec {
                purchase_id: args.purchase_id,
                package_id: args.package_id,
                pay_account_id: args.pay_account,
                receive_account_id: args.receive_account,
                vouchers: args.vouchers,
            };
            load_and_write(&args.sign, Command::BuyPackage { purchase }).await
        }
    }
}

async fn run_usage(command: UsageCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsageCommand::Record(args) => {
            let now_ns = now_ns()?;
            let at_ns = args
                .at
                .resolve(now_ns, now_ns)
                .map_err(anyhow::Error::msg)?;
            let event = UsageEvent {
                event_id: args.event_id,
                account_id: args.account,
                tokens: args.tokens,
                at_ns,
            };
            let command = Command::RecordUsage {
                events: vec![event],
            };
            load_and_write(&args.sign, command).await
        }
        UsageCommand::Quotas {
            account,
            page,
            read,
        } => {
            show_with_query(
                &read,
                &format!("/v1/accounts/{account}/quotas"),
                page.query(),
            )
            .await
        }
        UsageCommand::Alerts {
            account,
            after,
            follow,
            read,
        } => {
            let mut query = Vec::new();
            if let Some(after) = after {
                query.push(format!("after={after}"));
            }
            if !follow {
                return show_with_query(&read, &format!("/v1/accounts/{account}/alerts"), query)
                    .await;
            }
            if read.local {
                query.push("consistency=local".to_owned());
            }
            let mut path = format!("/v1/accounts/{account}/alerts/stream");
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let client = NodeClient::new(&read.node.url)?;
            client
                .get_lines(&path, |line| {
                    if let Some(data) = line.strip_prefix("data:") {
                        println!("{}", data.trim_start());
                    }
                    Ok(())
                })
                .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, TopCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<MarketTop, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("cbank").chain(args.iter().copied()))?;
        match cli.command {
            TopCommand::Market(command) => Ok(command),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn place_builds_the_order_the_ledger_signs() {
        let command = parse(&[
            "market",
            "place",
            "--key",
            "sme.json",
            "--order-id",
            "7",
            "--product",
            "GPUH:H100/CNY",
            "--side",
            "buy",
            "--price",
            "2600",
            "--quantity",
            "14400",
            "--base-account",
            "21",
            "--quote-account",
            "22",
        ])
        .unwrap();
        let MarketTop::Market {
            command: MarketCommand::Place(args),
        } = command
        else {
            panic!("parsed as {command:?}");
        };
        let order = order_spec(&args);
        assert_eq!(
            (order.order_id, order.product_id.as_str(), order.side),
            (7, "GPUH:H100/CNY", Side::Buy)
        );
        assert_eq!((order.price, order.quantity), (Some(2_600), 14_400));
        assert_eq!(order.time_in_force, TimeInForce::Gtc);
        assert_eq!(order.self_trade, SelfTrade::CancelTaker);
        assert!(!order.post_only);
        // A market IOC sell: no price.
        let command = parse(&[
            "market",
            "place",
            "--key",
            "k",
            "--order-id",
            "8",
            "--product",
            "GPUH:H100/CNY",
            "--side",
            "sell",
            "--quantity",
            "3600",
            "--tif",
            "ioc",
            "--self-trade",
            "cancel-both",
            "--base-account",
            "1",
            "--quote-account",
            "2",
        ])
        .unwrap();
        let MarketTop::Market {
            command: MarketCommand::Place(args),
        } = command
        else {
            panic!("parsed as {command:?}");
        };
        let order = order_spec(&args);
        assert_eq!(order.price, None);
        assert_eq!(order.time_in_force, TimeInForce::Ioc);
        assert_eq!(order.self_trade, SelfTrade::CancelBoth);
    }

    #[test]
    fn bad_market_arguments_are_refused() {
        for bad in [
            // A product id that would change the query.
            &["market", "depth", "--product", "GPUH:H100/CNY&levels=5"][..],
            &["market", "trades", "--product", ""],
            // Prices and quantities are unsigned integers in minor units.
            &["market", "amend", "7", "--key", "k", "--quantity", "1.5"],
            &["market", "amend", "7", "--key", "k", "--quantity", "-1"],
            &["market", "orders"],
            &["market", "orders", "--id", "1", "--party", "sme"],
            &["market", "fills", "SME"],
            &[
                "usage",
                "record",
                "--key",
                "k",
                "--event-id",
                "1",
                "--account",
                "2",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse(&["market", "orders", "--party", "sme", "--status", "all"]).is_ok());
        assert!(parse(&["market", "orders", "--id", "9", "--local"]).is_ok());
        assert!(parse(&["market", "candles", "--product", "GPUH:H100@auction/CNY"]).is_ok());
        assert!(parse(&["usage", "alerts", "21", "--follow", "--after", "1"]).is_ok());
    }

    #[test]
    fn a_token_package_takes_its_validity_in_days() {
        let command = parse(&[
            "shelf",
            "list-package",
            "--key",
            "provider.json",
            "--package-id",
            "qwen-10m-30d",
            "--title",
            "10,000,000 tokens of qwen, 30 days",
            "--asset",
            "TOK:qwen",
            "--quantity",
            "10000000",
            "--price",
            "990",
            "--validity-days",
            "30",
            "--stock",
            "1000",
            "--seller-account",
            "10501",
            "--provider",
            "provider-telecom",
        ])
        .unwrap();
        let MarketTop::Shelf {
            command: ShelfCommand::ListPackage(args),
        } = command
        else {
            panic!("parsed as {command:?}");
        };
        let package = package_spec(&args).unwrap();
        assert_eq!(package.validity_s, 30 * 24 * 3600);
        assert_eq!((package.price, package.quantity), (990, 10_000_000));
        assert_eq!(package.provider, Some(PartyId::new("provider-telecom")));
        assert_eq!(package.goods_account_id, None);
        assert!(parse(&[
            "shelf",
            "list-package",
            "--key",
            "k",
            "--package-id",
            "p",
            "--title",
            "t",
            "--asset",
            "TOK:qwen",
            "--quantity",
            "1",
            "--price",
            "1",
            "--validity-days",
            "30",
            "--validity-s",
            "60",
            "--stock",
            "1",
            "--seller-account",
            "1",
        ])
        .is_err());
    }

    #[test]
    fn product_ids_follow_the_ledger_alphabet() {
        assert!(parse_product_id("GPUH:H100@cn-east/CNY").is_ok());
        for bad in ["", "a b", "a?b", "a#b", "a%2F", &"x".repeat(65)] {
            assert!(parse_product_id(bad).is_err(), "{bad:?}");
        }
    }
}
