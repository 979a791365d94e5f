//! A token plan from the shelf, metered: the provider lists "10,000,000 tokens of qwen, 30
//! days, ¥9.9" (990 fen, 1,000 in stock); the SME buys one; the provider reports usage.
//!
//! By hand:
//! - the purchase: 990 fen from `sme` to `provider`; 10,000,000 TOK:qwen from the mint to
//!   `sme`'s token account, as a quota expiring 30 days (2,592,000 s) after the purchase;
//!   999 packages left.
//! - event 1, 8,000,000 tokens: consumed; 80% used → the first alert.
//! - events 2 (2,000,000) and 3 (1) in one batch: event 2 takes the last 2,000,000 → 100% →
//!   the second alert, the quota is exhausted; event 3 finds nothing left: `quota_exhausted`,
//!   0 consumed, 1 rejected.
//! - event 1 again: `usage_event_exists`, nothing consumed.
//! - a later event 4 (5 tokens): nothing consumed (see the note at its assertion).
//! - `sme`'s token account: 10,000,000 credited, 10,000,000 debited back to the mint.
//!
//! The alerts are read over `GET` and over the Server-Sent Events stream: the stream is opened
//! after the first alert (which it sends at once) and delivers the second as it is applied.

use crate::fixture::{
    balances, expect_accepted, number, open_market, posted, qwen, statement_closes, PROVIDER,
    PROVIDER_CNY, SME, SME_CNY, SME_FUNDS_FEN, SME_TOK,
};
use ledger::ids::system_account_id;
use ledger::shelf::{PackageSpec, PurchaseSpec, UsageEvent, UsageRecorded};
use ledger::{AccountKind, Command, CommandResult, Effect, PartyId, Reason};
use serde_json::Value;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tests::{unix_now_ns, Api, Cluster, SseEvent};

const PACKAGE_ID: &str = "qwen-10m-30d";
const TOKENS: u128 = 10_000_000;
const PRICE_FEN: u128 = 990;
const VALIDITY_S: u32 = 30 * 24 * 3600;
const PURCHASE_ID: u128 = 77;

/// How long the test waits for one event of the stream.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn record(cluster: &mut Cluster, events: &[(u128, u64)]) -> UsageRecorded {
    let at_ns = unix_now_ns();
    let events = events
        .iter()
        .map(|(event_id, tokens)| UsageEvent {
            event_id: *event_id,
            account_id: SME_TOK,
            tokens: *tokens,
            at_ns,
        })
        .collect();
    let outcome = expect_accepted(
        cluster,
        "/v1/usage",
        PROVIDER,
        Command::RecordUsage { events },
    );
    match outcome.result {
        CommandResult::Accepted(Effect::UsageRecorded(recorded)) => recorded,
        other => panic!("record_usage: {other:?}"),
    }
}

fn results(recorded: &UsageRecorded) -> Vec<(u32, Reason, u64, u64)> {
    recorded
        .results
        .iter()
        .map(|result| {
            (
                result.index,
                result.reason,
                result.consumed,
                result.rejected,
            )
        })
        .collect()
}

fn thresholds(recorded: &UsageRecorded) -> Vec<u8> {
    recorded
        .alerts
        .iter()
        .map(|alert| alert.threshold_pct)
        .collect()
}

fn quotas(cluster: &mut Cluster) -> Value {
    cluster.read(&format!("/v1/accounts/{SME_TOK}/quotas"))
}

#[test]
fn a_token_plan_is_bought_metered_and_alerted() {
    let began = Instant::now();
    let mut cluster = Cluster::start(3);
    open_market(&mut cluster);
    let mint = system_account_id(&qwen(), AccountKind::Mint);
    let mint_before = balances(&mut cluster, mint);

    let package = PackageSpec {
        package_id: PACKAGE_ID.to_owned(),
        title: "10,000,000 tokens of qwen, 30 days".to_owned(),
        asset: qwen(),
        quantity: TOKENS,
        price: PRICE_FEN,
        validity_s: VALIDITY_S,
        stock: 1_000,
        seller_account_id: PROVIDER_CNY,
        goods_account_id: None,
        provider: Some(PartyId::new(PROVIDER)),
    };
    expect_accepted(
        &mut cluster,
        "/v1/packages",
        PROVIDER,
        Command::ListPackage { package },
    );
    let purchase = PurchaseSpec {
        purchase_id: PURCHASE_ID,
        package_id: PACKAGE_ID.to_owned(),
        pay_account_id: SME_CNY,
        receive_account_id: SME_TOK,
        vouchers: Vec::new(),
    };
    let outcome = expect_accepted(
        &mut cluster,
        "/v1/purchases",
        SME,
        Command::BuyPackage { purchase },
    );
    assert_eq!(
        outcome.result,
        CommandResult::Accepted(Effect::PackageBought {
            repeated: false,
            vouchers: Vec::new()
        })
    );
    assert_eq!(
        balances(&mut cluster, SME_CNY),
        posted(SME_FUNDS_FEN, PRICE_FEN, 0)
    );
    assert_eq!(
        balances(&mut cluster, PROVIDER_CNY),
        posted(PRICE_FEN, 0, 0)
    );
    assert_eq!(balances(&mut cluster, SME_TOK), posted(TOKENS, 0, 0));
    let shelf: Value = cluster.read("/v1/packages");
    assert_eq!(shelf["packages"][0]["spec"]["package_id"], PACKAGE_ID);
    assert_eq!(number(&shelf["packages"][0]["remaining"]), 999);
    let one: Value = cluster.read(&format!("/v1/packages/{PACKAGE_ID}"));
    assert_eq!(
        (number(&one["sold"]), one["lister"].as_str()),
        (1, Some(PROVIDER))
    );

    let view = quotas(&mut cluster);
    let quota = &view["quotas"][0];
    assert_eq!(number(&quota["quota_id"]), PURCHASE_ID);
    assert_eq!(
        (
            number(&quota["granted"]),
            number(&quota["used"]),
            number(&quota["remaining"])
        ),
        (TOKENS, 0, TOKENS)
    );
    assert_eq!(quota["state"], "live");
    assert_eq!(
        number(&quota["expires_at_ns"]) - number(&quota["granted_at_ns"]),
        u128::from(VALIDITY_S) * u128::from(ledger::limits::NS_PER_S)
    );
    assert_eq!(quota["provider"], PROVIDER);

    // 8,000,000 of 10,000,000: the 80% alert.
    let first = record(&mut cluster, &[(1, 8_000_000)]);
    assert_eq!((first.consumed, thresholds(&first)), (8_000_000, vec![80]));
    assert!(first.results.is_empty());
    assert_eq!(
        balances(&mut cluster, SME_TOK),
        posted(TOKENS, 8_000_000, 0)
    );

    // The stream sends the existing alert at once; a thread hands its events over.
    let leader = cluster.leader();
    let url = format!(
        "{}/v1/accounts/{SME_TOK}/alerts/stream",
        cluster.url(leader)
    );
    let (sender, events) = mpsc::channel::<SseEvent>();
    let reader = std::thread::spawn(move || {
        let api = Api::new(Duration::from_secs(30));
        let mut received = 0;
        api.sse(&url, |event| {
            received += 1;
            sender.send(event).is_ok() && received < 2
        })
    });
    let event = events
        .recv_timeout(EVENT_TIMEOUT)
        .expect("the stream sends the existing alert");
    assert_eq!(
        (event.id.as_deref(), event.event.as_deref()),
        (Some("1"), Some("alert"))
    );
    let data: Value = serde_json::from_str(&event.data).expect("an alert as JSON");
    assert_eq!(
        (data["threshold_pct"].as_u64(), number(&data["used"])),
        (Some(80), 8_000_000)
    );

    // The last 2,000,000 (100%), and one token more in the same batch: quota_exhausted.
    let second = record(&mut cluster, &[(2, 2_000_000), (3, 1)]);
    assert_eq!(second.consumed, 2_000_000);
    assert_eq!(thresholds(&second), [100]);
    assert_eq!(results(&second), [(1, Reason::QuotaExhausted, 0, 1)]);
    let event = events
        .recv_timeout(EVENT_TIMEOUT)
        .expect("the stream delivers the new alert as it is applied");
    assert_eq!(event.id.as_deref(), Some("2"));
    let data: Value = serde_json::from_str(&event.data).expect("an alert as JSON");
    assert_eq!(
        (
            data["threshold_pct"].as_u64(),
            number(&data["used"]),
            number(&data["granted"])
        ),
        (Some(100), TOKENS, TOKENS)
    );
    reader
        .join()
        .expect("the stream reader does not panic")
        .unwrap_or_else(|error| panic!("the alert stream: {error}"));

    // A repeated event id changes nothing.
    let repeat = record(&mut cluster, &[(1, 8_000_000)]);
    assert_eq!(repeat.consumed, 0);
    assert_eq!(results(&repeat), [(0, Reason::UsageEventExists, 0, 0)]);
    // A later event, in another batch, is refused whole the same way: the exhausted quota
    // stays on the books until it expires.
    let later = record(&mut cluster, &[(4, 5)]);
    assert_eq!(later.consumed, 0);
    assert_eq!(results(&later), [(0, Reason::QuotaExhausted, 0, 5)]);

    assert_eq!(balances(&mut cluster, SME_TOK), posted(TOKENS, TOKENS, 0));
    let mint_after = balances(&mut cluster, mint);
    assert_eq!(mint_after.debits_posted - mint_before.debits_posted, TOKENS);
    assert_eq!(
        mint_after.credits_posted - mint_before.credits_posted,
        TOKENS
    );
    let view = quotas(&mut cluster);
    assert_eq!(view["quotas"][0]["state"], "exhausted");
    assert_eq!(view["quotas"][0]["alerted"], serde_json::json!([80, 100]));
    let totals = &view["totals"];
    assert_eq!(
        (
            totals["quotas"].as_u64(),
            totals["live"].as_u64(),
            number(&totals["granted"]),
            number(&totals["used"]),
            number(&totals["remaining"]),
        ),
        (Some(1), Some(0), TOKENS, TOKENS, 0)
    );

    // The purchase's legs and the usage are in the statements: the token account has the
    // delivery and two usage transfers back to the mint.
    assert_eq!(statement_closes(&mut cluster, SME_TOK), 3);
    assert_eq!(statement_closes(&mut cluster, SME_CNY), 2);
    assert_eq!(statement_closes(&mut cluster, PROVIDER_CNY), 1);

    let alerts: Value = cluster.read(&format!("/v1/accounts/{SME_TOK}/alerts"));
    let listed: Vec<(u128, u64)> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|alert| {
            (
                number(&alert["sequence"]),
                alert["threshold_pct"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(listed, [(1, 80), (2, 100)]);
    let page: Value = cluster.read(&format!("/v1/accounts/{SME_TOK}/alerts?limit=1"));
    assert_eq!(page["next"], "1");
    let page: Value = cluster.read(&format!("/v1/accounts/{SME_TOK}/alerts?after=1"));
    assert_eq!(
        (page["alerts"].as_array().map(Vec::len), &page["next"]),
        (Some(1), &Value::Null)
    );
    // A bad cursor is refused before any stream starts.
    let leader = cluster.leader();
    let bad = cluster
        .api()
        .get::<Value>(&format!(
            "{}/v1/accounts/{SME_TOK}/alerts/stream?after=x",
            cluster.url(leader)
        ))
        .expect_err("a bad cursor");
    assert_eq!(
        (bad.status, bad.code.as_str()),
        (Some(400), "invalid_parameter")
    );
    cluster.wait_converged();
    eprintln!(
        "market t30: token package and usage checked in {:.1?}",
        began.elapsed()
    );
}
