//! Test area `market`: the compute supermarket end to end, against a 3-node cluster of real
//! `cbank` processes, through the HTTP API only.
//!
//! An institution's H100-hours are sold to an SME on the continuous book, with every balance,
//! reservation, fee and read (order, depth, trades, fills, candles, catalogue) checked against
//! numbers worked out by hand, and an amendment down shown to keep its place in the queue
//! (t10). Orders from four parties collect in a call auction and clear at the one price the
//! rules give: the most volume, then the least imbalance, then the price nearest the last
//! clearing (t20). A provider's token plan is bought, metered to 80% and 100% with alerts read
//! over `GET` and Server-Sent Events, and refuses what is left over or repeated (t30). Bad
//! orders are refused with their own reason codes and change nothing (t40).
//!
//! Run with `cargo test -p tests --test market`.

mod fixture;

mod t10_continuous_book;
mod t20_call_auction;
mod t30_token_package_and_usage;
mod t40_bad_orders;
