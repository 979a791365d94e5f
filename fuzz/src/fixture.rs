//! The ledger the `apply_commands` and `audit_export` targets start from: a party of every
//! role with funded accounts, a registered GPU host with its agent key, a rate table, a listed
//! product and a voucher programme, all built through `ledger::testing::Harness` with the
//! public demo keys. Built once per process; each input starts from a clone.

use ledger::account::AccountKind;
use ledger::testing::{demo_key, Harness, OPERATOR};
use ledger::{Command, JournalEntry, Ledger, Role, SigningKey};
use std::sync::OnceLock;

/// The parties a fuzz input may sign for, by index; the last is the agent of host `h1`,
/// which signs for `p-institution` with its own key.
pub const SIGNERS: [&str; 7] = [
    OPERATOR,
    "p-institution",
    "p-sme",
    "p-government",
    "p-provider",
    "p-auditor",
    AGENT,
];

/// The agent of host `h1` (a pseudo-signer: it signs for `p-institution`).
pub const AGENT: &str = "agent-h1";

/// The roles of `SIGNERS[1..6]`.
const ROLES: [Role; 5] = [
    Role::Institution,
    Role::Sme,
    Role::Government,
    Role::Provider,
    Role::Auditor,
];

/// Assets every party but the auditor has a `main` account in: account id
/// `100 × (signer index) + 1 + i`.
pub const ASSETS: [&str; 3] = ["CNY", "GPUH:H100", "TOK:qwen"];

/// What each flagged account is minted: ¥1,000,000 in fen, 1,000 GPU-hours, 10M tokens.
const FUNDS: [u128; 3] = [100_000_000, 3_600_000, 10_000_000];

/// The key node 1 signs checkpoints with in the audit fixture (demo key, public knowledge).
pub const NODE_KEY_PARTY: &str = "node-1";

/// The account of `signer` (index into [`SIGNERS`]) in `ASSETS[asset]`.
pub fn account(signer: usize, asset: usize) -> u128 {
    100 * signer as u128 + 1 + asset as u128
}

/// The party a signer index signs for, and the key it signs with.
pub fn signer(index: usize) -> (&'static str, SigningKey) {
    let name = SIGNERS[index % SIGNERS.len()];
    if name == AGENT {
        ("p-institution", demo_key(AGENT))
    } else {
        (name, demo_key(name))
    }
}

/// The fixture: the harness after setup (its ledger, time and journal).
pub struct Fixture {
    pub ledger: Ledger,
    pub now_ns: u64,
    pub journal: Vec<JournalEntry>,
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn command(json: &str) -> Command {
    serde_json::from_str(json).unwrap_or_else(|error| panic!("fixture command {json}: {error}"))
}

fn build() -> Fixture {
    let mut h = Harness::new();
    for role in ROLES {
        h.add_party(&format!("p-{}", role.as_str()), role);
    }
    // The auditor signs nothing but its own keys: it has no accounts.
    for (index, name) in SIGNERS.iter().enumerate().take(5) {
        for (asset_index, asset) in ASSETS.iter().enumerate() {
            let operator = index == 0;
            h.open_account(
                name,
                account(index, asset_index),
                asset,
                AccountKind::Main,
                !operator,
            );
            if !operator {
                h.mint(asset, account(index, asset_index), FUNDS[asset_index]);
            }
        }
    }
    let agent_key = hex::encode(demo_key(AGENT).public_key().0);
    let setup = [
        (
            OPERATOR,
            r#"{"set_rate_table": {"version": 1, "rates": [{"gpu_class": "H100", "standard_milli": 1000}]}}"#.to_owned(),
        ),
        (
            "p-institution",
            format!(
                r#"{{"register_host": {{"host": {{"host_id": "h1", "region": "bj", "gpu_class": "H100", "gpu_count": 8, "agent_key": "{agent_key}", "account_id": "{}"}}}}}}"#,
                account(1, 1)
            ),
        ),
        (
            OPERATOR,
            r#"{"list_product": {"product": {"product_id": "GPUH:H100/CNY", "base": "GPUH:H100", "quote": "CNY", "lot_size": "3600", "tick": "1", "fee_bps": 10}}}"#.to_owned(),
        ),
        (
            "p-government",
            format!(
                r#"{{"create_programme": {{"programme": {{"programme_id": "prog-1", "title": "SME compute", "budget": "10000000", "funding_account_id": "{}", "eligible": {{"assets": ["GPUH:H100", "TOK:qwen"]}}, "max_share_bps": 3000, "cap_per_beneficiary_per_year": "2000000", "valid_from_ns": "0", "valid_until_ns": "{}", "beneficiaries": {{"role": "sme"}}, "stackable": false}}}}}}"#,
                account(3, 0),
                ledger::testing::START_NS + 365 * 24 * 3600 * 1_000_000_000
            ),
        ),
    ];
    for (signer, json) in setup {
        h.expect_accepted(signer, command(&json));
    }
    Fixture {
        ledger: h.ledger,
        now_ns: h.now_ns,
        journal: h.journal,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fixture_builds_and_holds_its_invariants() {
        let fixture = super::fixture();
        fixture.ledger.check_invariants().expect("invariants");
        assert!(fixture.journal.len() > 20);
    }
}
