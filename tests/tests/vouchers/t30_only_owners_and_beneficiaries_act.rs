//! Acceptance 4: only the issuing government issues and revokes in its programme, an SME cannot
//! redeem another SME's voucher, and an auditor reads the report but writes nothing. Each
//! attempt is journaled as rejected with its own reason code and status, and changes nothing:
//! the programme's report, the voucher, and every balance involved read the same after as
//! before, and the journal grew by exactly one entry per refusal.
//!
//! The world: the city programme (`gov`), V1 (101, `sme`, 100,000 fen), `univ` selling 5 lots
//! at 2,600.

use crate::fixture::{
    order, programme, programme_account, purchase, voucher, voucher_account, voucher_and_ask,
    AUDITOR, CITY, CITY_BUDGET_FEN, CITY_CAP_FEN, GOV, GOV_B, GOV_B_CNY, GOV_CNY, SME, SME_B,
    SME_B_CNY, SME_B_GPU, SME_B_TOK, UNIV_CNY, UNIV_GPU,
};
use ledger::vouchers::Beneficiaries;
use ledger::{Balances, Command, Role};
use market::book::Side;
use serde_json::Value;
use std::time::Instant;
use tests::calls::{balances, expect_rejected, submit};
use tests::Cluster;

const V1: u128 = 101;

/// What must not change: the report, the voucher, and the balances of everyone involved.
fn observed(cluster: &mut Cluster) -> (Value, Value, Vec<Balances>) {
    let mut report: Value = cluster.read(&format!("/v1/programmes/{CITY}/report"));
    // The head the report was read at moves with every refusal; nothing else may.
    report["journal_head"] = Value::Null;
    let voucher: Value = cluster.read(&format!("/v1/vouchers/{V1}"));
    let accounts = [
        GOV_CNY,
        GOV_B_CNY,
        SME_B_CNY,
        SME_B_TOK,
        UNIV_CNY,
        UNIV_GPU,
        programme_account(CITY),
        voucher_account(V1),
    ];
    let balances = accounts
        .into_iter()
        .map(|id| balances(cluster, id))
        .collect();
    (report, voucher, balances)
}

#[test]
fn only_the_issuing_government_the_beneficiary_and_nobody_auditing_may_act() {
    let began = Instant::now();
    let mut cluster = Cluster::start(3);
    let month_ns = voucher_and_ask(&mut cluster);
    let before = observed(&mut cluster);
    let head_before = cluster.wait_converged().journal_head.index;

    let another_programme = programme(
        "auditor-programme",
        CITY_BUDGET_FEN,
        CITY_CAP_FEN,
        Beneficiaries::Role(Role::Sme),
    );
    let sme_b_buys = order(302, Side::Buy, 2_600, 5, (SME_B_GPU, SME_B_CNY), vec![V1]);
    let auditor_buys = order(303, Side::Buy, 2_600, 5, (SME_B_GPU, SME_B_CNY), Vec::new());
    let refusals: Vec<(&str, &str, Command, u16, &str)> = vec![
        // Another government, in the city's programme.
        (
            "/v1/vouchers",
            GOV_B,
            voucher(109, CITY, SME_B, 1_000, month_ns),
            403,
            "not_programme_owner",
        ),
        (
            "/v1/vouchers/revoke",
            GOV_B,
            Command::RevokeVoucher { voucher_id: V1 },
            403,
            "not_programme_owner",
        ),
        // Another SME's voucher, on the book and on the shelf.
        (
            "/v1/orders",
            SME_B,
            sme_b_buys,
            403,
            "voucher_not_beneficiary",
        ),
        (
            "/v1/purchases",
            SME_B,
            purchase(402, SME_B_CNY, SME_B_TOK, vec![V1]),
            403,
            "voucher_not_beneficiary",
        ),
        // The beneficiary cannot revoke its own voucher: only governments run programmes.
        (
            "/v1/vouchers/revoke",
            SME,
            Command::RevokeVoucher { voucher_id: V1 },
            403,
            "not_permitted",
        ),
        // An auditor writes nothing.
        (
            "/v1/programmes",
            AUDITOR,
            Command::CreateProgramme {
                programme: another_programme,
            },
            403,
            "not_permitted",
        ),
        (
            "/v1/vouchers",
            AUDITOR,
            voucher(110, CITY, SME_B, 1_000, month_ns),
            403,
            "not_permitted",
        ),
        (
            "/v1/vouchers/revoke",
            AUDITOR,
            Command::RevokeVoucher { voucher_id: V1 },
            403,
            "not_permitted",
        ),
        ("/v1/orders", AUDITOR, auditor_buys, 403, "not_permitted"),
    ];
    let count = refusals.len() as u64;
    for (path, signer, command, status, code) in refusals {
        expect_rejected(&mut cluster, path, signer, command, status, code);
    }
    // A voucher command on another command's route is refused before the journal.
    match submit(
        &mut cluster,
        "/v1/orders",
        GOV,
        voucher(111, CITY, SME_B, 1_000, month_ns),
    ) {
        Err(error) => assert_eq!(
            (error.status, error.code.as_str()),
            (Some(400), "wrong_command_type"),
            "{error}"
        ),
        Ok(response) => panic!("an issue_voucher on /v1/orders: {:?}", response.outcome),
    }

    // The auditor reads the report; nothing changed but the rejections in the journal.
    let leader = cluster.leader();
    let report = cluster
        .api()
        .raw(
            "GET",
            &format!(
                "{}/v1/programmes/{CITY}/report?format=csv",
                cluster.url(leader)
            ),
            None,
            None,
            Vec::new(),
        )
        .expect("the auditor reads the report");
    assert_eq!(report.status, 200);
    assert_eq!(observed(&mut cluster), before);
    let head_after = cluster.wait_converged().journal_head.index;
    assert_eq!(head_after, head_before + count, "one entry per refusal");
    let held: Value = cluster.read(&format!("/v1/parties/{SME_B}/vouchers"));
    assert_eq!(held["vouchers"], Value::Array(Vec::new()));
    let programmes: Value = cluster.read("/v1/programmes");
    assert_eq!(programmes["programmes"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        before.0["issued"],
        Value::String("100000".to_owned()),
        "only V1 was ever issued"
    );

    eprintln!(
        "vouchers t30: {count} refusals checked in {:.1?}",
        began.elapsed()
    );
}
