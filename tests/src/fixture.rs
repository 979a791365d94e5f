//! What every test cluster holds after start-up: genesis, three funded parties, one account each.
//!
//! The operator (`ledger::testing::OPERATOR`) owns a CNY mint account that may run a debit
//! balance; `alice`, `bob` and `carol` are SMEs with one flagged CNY main account each
//! (no overdraft), funded with `INITIAL_FUNDS` fen from the mint.

use std::sync::atomic::{AtomicU64, Ordering};

/// Assets registered at genesis.
pub const ASSETS: [&str; 3] = ["CNY", "GPUH:H100", "TOK:qwen"];

/// The operator's CNY mint account.
pub const MINT_ACCOUNT: u128 = 1;

/// The parties every cluster starts with.
pub const PARTIES: [&str; 3] = ["alice", "bob", "carol"];

/// Fen each party's account is funded with: enough that no test load overdraws it.
pub const INITIAL_FUNDS: u128 = 1_000_000_000_000;

/// The CNY main account of one of [`PARTIES`].
pub fn account_of(party: &str) -> u128 {
    let index = PARTIES
        .iter()
        .position(|p| *p == party)
        .unwrap_or_else(|| panic!("{party} is not a fixture party"));
    1_001 + index as u128
}

/// Transfer ids for tests: unique within the process, and clear of the fixture's ids.
static TRANSFER_ID: AtomicU64 = AtomicU64::new(1_000_000);

/// A transfer id never returned before by this process.
pub fn next_transfer_id() -> u128 {
    u128::from(TRANSFER_ID.fetch_add(1, Ordering::Relaxed))
}

/// The id of the transfer that funded `party`'s account at start-up.
pub fn funding_transfer_of(party: &str) -> u128 {
    100 + account_of(party) - 1_000
}
