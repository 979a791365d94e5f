//! Acceptance 2: a city programme of ¥50,000,000 at 30% with a ¥2,000,000 yearly cap pays 30%
//! of two SMEs' purchases on the book and from the shelf; a second programme with a small cap
//! shows a purchase beyond the cap paid by money only; one voucher is revoked and one expires,
//! their remainders going back; the report (JSON and CSV) matches the hand computation below,
//! and every line cites its journal entry by index and hash.
//!
//! By hand (fen; a fill of 5 lots at 2,600 costs 13,000, of which the 30 bps fee is 39 exactly
//! and the seller gets 12,961; a voucher pays `floor(price × 3,000 / 10,000)` straight to the
//! seller, capped by its remainder, the yearly cap and what the seller gets):
//! - `univ` sells 20 lots at 2,600 (order 201); it rests.
//! - V1 (101, `sme`, 100,000). Order 301, `sme` buys 5 lots with V1: share 3,900, V1 pays 3,900;
//!   `sme` pays 12,961 − 3,900 = 9,061 to `univ` and the 39 fee: 9,100.
//! - Purchase 401, `sme` buys the token plan (3,990) with V1: share 1,197; `sme` pays 2,793.
//!   V1 has 100,000 − 3,900 − 1,197 = 94,903 left.
//! - Programme `city-small-cap`: 100,000 budget, cap 5,000 per SME a year, for `sme` only.
//!   V3 (103, `sme`, 10,000). Orders 302, 303, 304, 5 lots each with V3: V3 pays 3,900 (share),
//!   then 1,100 (the cap: 5,000 − 3,900 left), then nothing: the third is paid by money only
//!   (`sme` pays 13,000, the trade names no voucher).
//! - V4 (104, `sme-b`, 20,000), revoked at once: 20,000 back to the city programme.
//! - V2 (102, `sme-b`, 50,000, expiring in 3 s). Purchase 402, `sme-b` buys the token plan with
//!   V2: 1,197 by V2, 2,793 by `sme-b`. After the expiry, the government's revocation of V2 is
//!   rejected `voucher_not_live`: its entry expired V2 first, 50,000 − 1,197 = 48,803 back.
//!
//! The city programme: budget 5,000,000,000; issued 100,000 + 20,000 + 50,000 = 170,000;
//! unissued 4,999,830,000; redeemed 3,900 + 1,197 + 1,197 = 6,294; expired 48,803; revoked
//! 20,000; outstanding 170,000 − 6,294 − 48,803 − 20,000 = 94,903 (V1's remainder). Its account
//! holds 5,000,000,000 − 170,000 + 20,000 + 48,803 = 4,999,898,803.
//! Balances: `sme` CNY debited 9,100 + 2,793 + 9,100 + (11,861 + 39) + 13,000 = 45,893; `sme-b`
//! 2,793; `univ` credited 4 × 12,961 = 51,844 (vouchers included); `provider` 2 × 3,990 =
//! 7,980; `gov` debited 5,000,000,000 + 100,000.

use crate::fixture::{
    journal_entry, journal_hash, open_voucher_world, order, programme, programme_account, purchase,
    voucher, voucher_account, CITY, CITY_BUDGET_FEN, DAY_NS, GOV, GOV_CNY, GOV_FUNDS_FEN,
    PACKAGE_PRICE_FEN, PACKAGE_TOKENS, PROVIDER_CNY, SME, SME_B, SME_B_CNY, SME_B_TOK, SME_CNY,
    SME_FUNDS_FEN, SME_GPU, SME_TOK, UNIV, UNIV_CNY, UNIV_FUNDS_GPU_S, UNIV_GPU,
};
use ledger::outcome::Scheduled;
use ledger::trading::Placed;
use ledger::vouchers::{Beneficiaries, ProgrammeReport, VoucherExpired, VoucherPaid};
use ledger::{CommandResult, Effect, PartyId, Reason};
use market::book::Side;
use serde_json::Value;
use std::time::{Duration, Instant};
use tests::calls::{
    balances, expect_accepted_at, expect_rejected, number, posted, statement_closes,
};
use tests::{unix_now_ns, Cluster};

const SMALL: &str = "city-small-cap";
const V1: u128 = 101;
const V2: u128 = 102;
const V3: u128 = 103;
const V4: u128 = 104;

/// How long V2 lives: long enough for its issue and one purchase, short enough to wait for.
const V2_LIFETIME_NS: u64 = 3_000_000_000;

/// The journal index of an accepted command.
fn entry_of(cluster: &mut Cluster, path: &str, signer: &str, command: ledger::Command) -> u64 {
    expect_accepted_at(cluster, path, signer, command).journal_index
}

/// Places an order for `signer` and returns the journal index and what placing it did.
fn place(cluster: &mut Cluster, signer: &str, command: ledger::Command) -> (u64, Placed) {
    let response = expect_accepted_at(cluster, "/v1/orders", signer, command);
    match response.outcome.result {
        CommandResult::Accepted(Effect::OrderPlaced(Some(placed))) => {
            (response.journal_index, placed)
        }
        other => panic!("not placed as new: {other:?}"),
    }
}

/// Buys 5 lots at 2,600 with `vouchers` against `univ`'s resting sell; returns the journal
/// index and what each voucher paid of the one fill.
fn buy(cluster: &mut Cluster, order_id: u128, vouchers: Vec<u128>) -> (u64, Vec<VoucherPaid>) {
    let command = order(order_id, Side::Buy, 2_600, 5, (SME_GPU, SME_CNY), vouchers);
    let (index, placed) = place(cluster, SME, command);
    assert_eq!(placed.trades.len(), 1, "order {order_id} fills at once");
    let trade = &placed.trades[0];
    assert_eq!(
        (trade.money, trade.fee, trade.seller.as_str()),
        (13_000, 39, UNIV)
    );
    (index, trade.vouchers.clone())
}

fn paid(voucher_id: u128, paid: u128) -> Vec<VoucherPaid> {
    vec![VoucherPaid { voucher_id, paid }]
}

/// `(kind, voucher, amount, journal index)` of each report line.
fn lines(report: &ProgrammeReport) -> Vec<(String, Option<u128>, u128, u64)> {
    report
        .lines
        .iter()
        .map(|line| {
            let kind = serde_json::to_value(line.kind).expect("a kind encodes");
            let kind = kind.as_str().expect("a kind is a name").to_owned();
            (kind, line.voucher_id, line.amount, line.journal_index)
        })
        .collect()
}

/// The seven totals of a report, in the order budget, unissued, issued, redeemed, expired,
/// revoked, outstanding.
fn totals(report: &ProgrammeReport) -> [u128; 7] {
    [
        report.budget,
        report.unissued,
        report.issued,
        report.redeemed,
        report.expired,
        report.revoked,
        report.outstanding,
    ]
}

#[test]
fn a_city_programme_pays_thirty_percent_up_to_the_cap_and_reports_every_fen() {
    let began = Instant::now();
    let mut cluster = Cluster::start(3);
    open_voucher_world(&mut cluster);
    let month_ns = unix_now_ns() + 30 * DAY_NS;
    let funded_at = {
        let programme: Value = cluster.read(&format!("/v1/programmes/{CITY}"));
        number(&programme["journal_index"]) as u64
    };

    // 1. V1 pays 30% of a fill and of a token plan.
    let issued_v1 = entry_of(
        &mut cluster,
        "/v1/vouchers",
        GOV,
        voucher(V1, CITY, SME, 100_000, month_ns),
    );
    let sell = order(201, Side::Sell, 2_600, 20, (UNIV_GPU, UNIV_CNY), Vec::new());
    let (_, placed) = place(&mut cluster, UNIV, sell);
    assert_eq!(placed.rests, 20);
    let (bought_301, paid_301) = buy(&mut cluster, 301, vec![V1]);
    assert_eq!(paid_301, paid(V1, 3_900));
    let bought_401 = entry_of(
        &mut cluster,
        "/v1/purchases",
        SME,
        purchase(401, SME_CNY, SME_TOK, vec![V1]),
    );
    assert_eq!(
        balances(&mut cluster, SME_CNY),
        posted(SME_FUNDS_FEN, 9_100 + 2_793, 0)
    );
    assert_eq!(
        balances(&mut cluster, voucher_account(V1)),
        posted(100_000, 3_900 + 1_197, 0)
    );

    // 2. A small yearly cap: 3,900, then 1,100, then nothing (money only).
    let small = programme(
        SMALL,
        100_000,
        5_000,
        Beneficiaries::Parties(vec![PartyId::new(SME)]),
    );
    let small_funded = entry_of(
        &mut cluster,
        "/v1/programmes",
        GOV,
        ledger::Command::CreateProgramme { programme: small },
    );
    let issued_v3 = entry_of(
        &mut cluster,
        "/v1/vouchers",
        GOV,
        voucher(V3, SMALL, SME, 10_000, month_ns),
    );
    let (bought_302, paid_302) = buy(&mut cluster, 302, vec![V3]);
    let (bought_303, paid_303) = buy(&mut cluster, 303, vec![V3]);
    let (_, paid_304) = buy(&mut cluster, 304, vec![V3]);
    assert_eq!(paid_302, paid(V3, 3_900));
    assert_eq!(paid_303, paid(V3, 1_100), "the cap leaves 1,100");
    assert!(paid_304.is_empty(), "beyond the cap, money only");
    let sme_spent = 9_100 + 2_793 + 9_100 + (11_861 + 39) + 13_000;
    assert_eq!(sme_spent, 45_893);
    assert_eq!(
        balances(&mut cluster, SME_CNY),
        posted(SME_FUNDS_FEN, sme_spent, 0)
    );
    assert_eq!(balances(&mut cluster, SME_GPU), posted(4 * 5 * 3_600, 0, 0));
    assert_eq!(balances(&mut cluster, UNIV_CNY), posted(4 * 12_961, 0, 0));
    assert_eq!(
        balances(&mut cluster, UNIV_GPU),
        posted(UNIV_FUNDS_GPU_S, 20 * 3_600, 0)
    );

    // 3. V4 revoked: all of it back.
    let issued_v4 = entry_of(
        &mut cluster,
        "/v1/vouchers",
        GOV,
        voucher(V4, CITY, SME_B, 20_000, month_ns),
    );
    let revoked = expect_accepted_at(
        &mut cluster,
        "/v1/vouchers/revoke",
        GOV,
        ledger::Command::RevokeVoucher { voucher_id: V4 },
    );
    assert_eq!(
        revoked.outcome.result,
        CommandResult::Accepted(Effect::VoucherRevoked { returned: 20_000 })
    );

    // 4. V2 pays once, then expires: its remainder goes back with the next command.
    let expires_at_ns = unix_now_ns() + V2_LIFETIME_NS;
    let issued_v2 = entry_of(
        &mut cluster,
        "/v1/vouchers",
        GOV,
        voucher(V2, CITY, SME_B, 50_000, expires_at_ns),
    );
    let bought_402 = entry_of(
        &mut cluster,
        "/v1/purchases",
        SME_B,
        purchase(402, SME_B_CNY, SME_B_TOK, vec![V2]),
    );
    assert!(
        unix_now_ns() < expires_at_ns,
        "the purchase came before the expiry (the test machine is slow: lengthen V2_LIFETIME_NS)"
    );
    let wait_ns = expires_at_ns.saturating_sub(unix_now_ns()) + 100_000_000;
    std::thread::sleep(Duration::from_nanos(wait_ns));
    let late = expect_rejected(
        &mut cluster,
        "/v1/vouchers/revoke",
        GOV,
        ledger::Command::RevokeVoucher { voucher_id: V2 },
        422,
        "voucher_not_live",
    );
    let expired_at = late.journal_index().expect("a rejection names its entry");
    let entry = journal_entry(&mut cluster, expired_at);
    assert_eq!(
        entry.body.outcome.scheduled,
        [Scheduled::VoucherExpired(VoucherExpired {
            voucher_id: V2,
            returned: 48_803
        })]
    );
    assert_eq!(
        entry.body.outcome.result,
        CommandResult::Rejected(Reason::VoucherNotLive)
    );

    // 5. Balances to the fen.
    assert_eq!(
        balances(&mut cluster, SME_B_CNY),
        posted(SME_FUNDS_FEN, 2_793, 0)
    );
    assert_eq!(
        balances(&mut cluster, SME_B_TOK).credits_posted,
        PACKAGE_TOKENS
    );
    assert_eq!(
        balances(&mut cluster, PROVIDER_CNY),
        posted(2 * PACKAGE_PRICE_FEN, 0, 0)
    );
    assert_eq!(
        balances(&mut cluster, GOV_CNY),
        posted(GOV_FUNDS_FEN, CITY_BUDGET_FEN + 100_000, 0)
    );
    assert_eq!(
        balances(&mut cluster, programme_account(CITY)),
        posted(CITY_BUDGET_FEN + 20_000 + 48_803, 170_000, 0)
    );
    assert_eq!(
        balances(&mut cluster, programme_account(SMALL)),
        posted(100_000, 10_000, 0)
    );
    assert_eq!(
        balances(&mut cluster, voucher_account(V2)),
        posted(50_000, 1_197 + 48_803, 0)
    );
    assert_eq!(
        balances(&mut cluster, voucher_account(V3)),
        posted(10_000, 5_000, 0)
    );
    assert_eq!(
        balances(&mut cluster, voucher_account(V4)),
        posted(20_000, 20_000, 0)
    );

    // 6. The reports, line by line, each citing its entry by index and hash.
    let json: Value = cluster.read(&format!("/v1/programmes/{CITY}/report"));
    let report: ProgrammeReport =
        serde_json::from_value(json.clone()).expect("the report reads as the ledger's");
    assert_eq!(
        totals(&report),
        [
            5_000_000_000,
            4_999_830_000,
            170_000,
            6_294,
            48_803,
            20_000,
            94_903
        ]
    );
    let expected = [
        ("funded", None, CITY_BUDGET_FEN, funded_at),
        ("issued", Some(V1), 100_000, issued_v1),
        ("redeemed", Some(V1), 3_900, bought_301),
        ("redeemed", Some(V1), 1_197, bought_401),
        ("issued", Some(V4), 20_000, issued_v4),
        ("revoked", Some(V4), 20_000, revoked.journal_index),
        ("issued", Some(V2), 50_000, issued_v2),
        ("redeemed", Some(V2), 1_197, bought_402),
        ("expired", Some(V2), 48_803, expired_at),
    ]
    .map(|(kind, voucher, amount, index)| (kind.to_owned(), voucher, amount, index));
    assert_eq!(lines(&report), expected);
    let parties = |list: &[ledger::vouchers::PartyTotals]| -> Vec<(String, [u128; 5])> {
        list.iter()
            .map(|t| {
                let amounts = [t.issued, t.redeemed, t.expired, t.revoked, t.outstanding];
                (t.party.to_string(), amounts)
            })
            .collect()
    };
    assert_eq!(
        parties(&report.beneficiaries),
        [
            (SME.to_owned(), [100_000, 5_097, 0, 0, 94_903]),
            (SME_B.to_owned(), [70_000, 1_197, 48_803, 20_000, 0]),
        ]
    );
    let sellers: Vec<(String, u128)> = report
        .sellers
        .iter()
        .map(|t| (t.party.to_string(), t.redeemed))
        .collect();
    assert_eq!(
        sellers,
        [("provider".to_owned(), 2_394), (UNIV.to_owned(), 3_900)]
    );
    for (position, line) in json["lines"].as_array().expect("lines").iter().enumerate() {
        let index = number(&line["journal_index"]) as u64;
        assert_eq!(
            line["journal_hash"].as_str(),
            Some(journal_hash(&mut cluster, index).to_string().as_str()),
            "line {position} cites entry {index} by its hash"
        );
    }
    let small: ProgrammeReport =
        serde_json::from_value(cluster.read(&format!("/v1/programmes/{SMALL}/report")))
            .expect("the report reads as the ledger's");
    assert_eq!(
        totals(&small),
        [100_000, 90_000, 10_000, 5_000, 0, 0, 5_000]
    );
    let small_lines: Vec<(String, Option<u128>, u128, u64)> = [
        ("funded", None, 100_000, small_funded),
        ("issued", Some(V3), 10_000, issued_v3),
        ("redeemed", Some(V3), 3_900, bought_302),
        ("redeemed", Some(V3), 1_100, bought_303),
    ]
    .map(|(kind, voucher, amount, index)| (kind.to_owned(), voucher, amount, index))
    .to_vec();
    assert_eq!(lines(&small), small_lines, "order 304 redeemed nothing");

    // 7. The CSV: the header, the same lines, the same totals.
    let leader = cluster.leader();
    let url = format!(
        "{}/v1/programmes/{CITY}/report?format=csv",
        cluster.url(leader)
    );
    let csv = cluster
        .api()
        .raw("GET", &url, None, None, Vec::new())
        .expect("the CSV report");
    assert_eq!(csv.status, 200);
    assert!(
        csv.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/csv")),
        "{:?}",
        csv.content_type
    );
    let text = String::from_utf8(csv.body).expect("CSV is text");
    let rows: Vec<Vec<&str>> = text.lines().map(|row| row.split(',').collect()).collect();
    assert_eq!(
        rows[0].join(","),
        "kind,voucher_id,beneficiary,seller,purchase,price,amount,at_ns,journal_index,journal_hash"
    );
    assert_eq!(rows.len(), 1 + 9 + 7);
    for (row, line) in rows[1..10]
        .iter()
        .zip(json["lines"].as_array().expect("lines"))
    {
        let expected_row = [
            line["kind"].as_str().unwrap_or_default().to_owned(),
            number(&line["amount"]).to_string(),
            number(&line["journal_index"]).to_string(),
            line["journal_hash"].as_str().unwrap_or_default().to_owned(),
        ];
        assert_eq!(
            [row[0], row[6], row[8], row[9]],
            expected_row.each_ref().map(String::as_str)
        );
    }
    assert!(rows[3][4].starts_with("order:301:trade:"), "{text}");
    assert_eq!(rows[4][4], "package:401", "{text}");
    let csv_totals: Vec<(&str, u128)> = rows[10..]
        .iter()
        .map(|row| (row[0], row[6].parse().expect("a total is a number")))
        .collect();
    assert_eq!(
        csv_totals,
        [
            ("total_budget", 5_000_000_000),
            ("total_unissued", 4_999_830_000),
            ("total_issued", 170_000),
            ("total_redeemed", 6_294),
            ("total_expired", 48_803),
            ("total_revoked", 20_000),
            ("total_outstanding", 94_903),
        ]
    );

    // 8. The vouchers as their holders read them.
    let v1: Value = cluster.read(&format!("/v1/vouchers/{V1}"));
    assert_eq!(number(&v1["remaining"]), 94_903);
    assert_eq!(number(&v1["redeemed"]), 5_097);
    assert_eq!(v1["redemptions"].as_array().map(Vec::len), Some(2));
    let held: Value = cluster.read(&format!("/v1/parties/{SME_B}/vouchers"));
    let held: Vec<(u128, &str, u128, u128)> = held["vouchers"]
        .as_array()
        .expect("vouchers")
        .iter()
        .map(|v| {
            (
                number(&v["spec"]["voucher_id"]),
                v["status"].as_str().unwrap_or_default(),
                number(&v["redeemed"]),
                number(&v["returned"]),
            )
        })
        .collect();
    assert_eq!(
        held,
        [(V2, "expired", 1_197, 48_803), (V4, "revoked", 0, 20_000)]
    );
    let list: Value = cluster.read("/v1/programmes");
    let ids: Vec<&str> = list["programmes"]
        .as_array()
        .expect("programmes")
        .iter()
        .filter_map(|p| p["spec"]["programme_id"].as_str())
        .collect();
    assert_eq!(ids, [CITY, SMALL]);
    assert_eq!(
        number(&list["programmes"][0]["totals"]["outstanding"]),
        94_903
    );
    assert_eq!(
        number(&list["programmes"][0]["held"]),
        4_999_898_803,
        "the unissued budget and what V2 and V4 gave back"
    );
    // Each account's statement, rebuilt from the node's index of its transfers (the vouchers'
    // derived ones included), closes on its balances.
    for account in [
        programme_account(CITY),
        voucher_account(V1),
        voucher_account(V2),
        SME_CNY,
        UNIV_CNY,
        PROVIDER_CNY,
    ] {
        assert!(statement_closes(&mut cluster, account) > 0);
    }
    assert_eq!(
        balances(&mut cluster, SME_TOK).credits_posted,
        PACKAGE_TOKENS
    );

    // 9. Reads that name nothing, or ask for what does not exist.
    let leader = cluster.leader();
    let base = cluster.url(leader);
    for (path, status, code) in [
        (
            format!("/v1/programmes/{CITY}/report?format=xml"),
            400,
            "invalid_parameter",
        ),
        ("/v1/programmes/no-such/report".to_owned(), 404, "not_found"),
        ("/v1/programmes/no-such".to_owned(), 404, "not_found"),
        ("/v1/vouchers/999".to_owned(), 404, "not_found"),
        ("/v1/vouchers/x".to_owned(), 400, "invalid_parameter"),
        ("/v1/parties/nobody/vouchers".to_owned(), 404, "not_found"),
    ] {
        let answer = cluster
            .api()
            .raw("GET", &format!("{base}{path}"), None, None, Vec::new())
            .expect("an answer");
        assert_eq!(
            (answer.status, answer.code().as_deref()),
            (status, Some(code)),
            "GET {path}"
        );
    }

    cluster.wait_converged();
    eprintln!(
        "vouchers t10: programme, cap, expiry and report checked in {:.1?}",
        began.elapsed()
    );
}
