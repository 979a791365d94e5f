//! Compute vouchers in the pure ledger: a city programme paid out on the order book and the
//! shelf, to the fen; the rules each refused with their own code; a seeded random stream of
//! purchases by many SMEs under several programmes that never exceeds a share, a yearly cap or
//! one claim per order, and always accounts for every fen; and the offline audit of an export.

use ledger::audit::{self, Export};
use ledger::limits::NS_PER_S;
use ledger::outcome::Scheduled;
use ledger::shelf::{PackageSpec, PurchaseSpec};
use ledger::testing::{Harness, Rng, MAIN, OPERATOR};
use ledger::trading::{OrderSpec, ProductSpec};
use ledger::vouchers::{Beneficiaries, Eligible, ProgrammeSpec, VoucherSpec, VoucherStatus};
use ledger::{Checkpoint, Command, JournalEntry, PartyId, Reason, Role};
use market::book::{SelfTrade, Side, TimeInForce};
use std::collections::{BTreeMap, BTreeSet};

const HOUR: u128 = 3600;
const DAY_NS: u64 = 86_400 * NS_PER_S;
const PRODUCT: &str = "GPUH:H100/CNY";
const PACKAGE: &str = "qwen-10m";

// Accounts: gov 100 (CNY), gov2 200; univ 11 (CNY) 12 (GPUH); provider 9051 (CNY);
// SME n: n0+1 CNY, n0+2 GPUH, n0+3 TOK (sme-a 31.., sme-b 41..).
const GOV_CNY: u128 = 100;
const GOV2_CNY: u128 = 200;
const UNIV_CNY: u128 = 11;
const UNIV_GPUH: u128 = 12;
const PROVIDER_CNY: u128 = 9_051;

fn sme_accounts(n: u128) -> (u128, u128, u128) {
    (n * 10 + 1, n * 10 + 2, n * 10 + 3)
}

/// A market with one continuous product (lot 1 GPU-hour, fee 30 bps), a token package of
/// ¥9.90, two governments, an institution selling GPU-hours and `smes` SMEs with ¥10,000,000.
fn world(smes: u128) -> Harness {
    let mut h = Harness::new();
    h.step_ns = NS_PER_S;
    h.add_party("gov", Role::Government);
    h.add_party("gov2", Role::Government);
    h.add_party("univ", Role::Institution);
    h.add_party("qwen-cloud", Role::Provider);
    h.add_party("audit", Role::Auditor);
    h.open_account("gov", GOV_CNY, "CNY", MAIN, true);
    h.open_account("gov2", GOV2_CNY, "CNY", MAIN, true);
    h.open_account("univ", UNIV_CNY, "CNY", MAIN, true);
    h.open_account("univ", UNIV_GPUH, "GPUH:H100", MAIN, true);
    h.open_account("qwen-cloud", PROVIDER_CNY, "CNY", MAIN, true);
    h.mint("CNY", GOV_CNY, 6_000_000_000);
    h.mint("CNY", GOV2_CNY, 100_000_000);
    h.mint("GPUH:H100", UNIV_GPUH, 1_000_000 * HOUR);
    for n in 3..3 + smes {
        let party = sme(n);
        h.add_party(&party, Role::Sme);
        let (cny, gpuh, tok) = sme_accounts(n);
        h.open_account(&party, cny, "CNY", MAIN, true);
        h.open_account(&party, gpuh, "GPUH:H100", MAIN, true);
        h.open_account(&party, tok, "TOK:qwen", MAIN, true);
        h.mint("CNY", cny, 1_000_000_000);
    }
    h.expect_accepted(
        OPERATOR,
        Command::ListProduct {
            product: ProductSpec {
                product_id: PRODUCT.into(),
                base: "GPUH:H100".parse().unwrap(),
                quote: "CNY".parse().unwrap(),
                lot_size: HOUR,
                tick: 1,
                fee_bps: 30,
                auction_interval_s: None,
            },
        },
    );
    h.expect_accepted(
        "qwen-cloud",
        Command::ListPackage {
            package: PackageSpec {
                package_id: PACKAGE.into(),
                title: "10,000,000 qwen tokens".into(),
                asset: "TOK:qwen".parse().unwrap(),
                quantity: 10_000_000,
                price: 990,
                validity_s: 30 * 24 * 3600,
                stock: 1_000_000,
                seller_account_id: PROVIDER_CNY,
                goods_account_id: None,
                provider: Some(PartyId::new("qwen-cloud")),
            },
        },
    );
    h
}

fn sme(n: u128) -> String {
    match n {
        3 => "sme-a".into(),
        4 => "sme-b".into(),
        n => format!("sme-{n}"),
    }
}

fn programme(id: &str, share_bps: u16, cap: u128, start: u64) -> ProgrammeSpec {
    ProgrammeSpec {
        programme_id: id.into(),
        title: format!("{id} compute vouchers"),
        budget: 5_000_000_000,
        funding_account_id: GOV_CNY,
        eligible: Eligible {
            assets: vec!["GPUH:H100".parse().unwrap(), "TOK:qwen".parse().unwrap()],
            ..Eligible::default()
        },
        max_share_bps: share_bps,
        cap_per_beneficiary_per_year: cap,
        valid_from_ns: start,
        valid_until_ns: start + 365 * DAY_NS,
        beneficiaries: Beneficiaries::Role(Role::Sme),
        stackable: false,
    }
}

fn voucher(id: u128, programme: &str, beneficiary: &str, amount: u128, expires: u64) -> Command {
    Command::IssueVoucher {
        voucher: VoucherSpec {
            voucher_id: id,
            programme_id: programme.into(),
            beneficiary: PartyId::new(beneficiary),
            amount,
            expires_at_ns: expires,
        },
    }
}

fn buy(n: u128, order_id: u128, price: u64, lots: u128, vouchers: Vec<u128>) -> Command {
    let (cny, gpuh, _) = sme_accounts(n);
    Command::PlaceOrder {
        order: OrderSpec {
            order_id,
            product_id: PRODUCT.into(),
            side: Side::Buy,
            price: Some(price),
            quantity: lots * HOUR,
            time_in_force: TimeInForce::Ioc,
            post_only: false,
            self_trade: SelfTrade::CancelTaker,
            base_account_id: gpuh,
            quote_account_id: cny,
            vouchers,
        },
    }
}

fn sell(order_id: u128, price: u64, lots: u128) -> Command {
    Command::PlaceOrder {
        order: OrderSpec {
            order_id,
            product_id: PRODUCT.into(),
            side: Side::Sell,
            price: Some(price),
            quantity: lots * HOUR,
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            self_trade: SelfTrade::CancelTaker,
            base_account_id: UNIV_GPUH,
            quote_account_id: UNIV_CNY,
            vouchers: Vec::new(),
        },
    }
}

fn package(n: u128, purchase_id: u128, vouchers: Vec<u128>) -> Command {
    let (cny, _, tok) = sme_accounts(n);
    Command::BuyPackage {
        purchase: PurchaseSpec {
            purchase_id,
            package_id: PACKAGE.into(),
            pay_account_id: cny,
            receive_account_id: tok,
            vouchers,
        },
    }
}

fn posted(h: &Harness, id: u128) -> i128 {
    let b = h.ledger.account(id).unwrap().balances;
    b.credits_posted as i128 - b.debits_posted as i128
}

fn rejected(entry: &JournalEntry) -> Option<Reason> {
    entry.body.outcome.rejected()
}

#[test]
fn a_city_programme_pays_thirty_percent_up_to_its_cap_and_reports_every_fen() {
    let mut h = world(2);
    let start = h.now_ns;
    // ¥50,000,000 at 30%, at most ¥2,000,000 per SME per year.
    h.expect_accepted(
        "gov",
        Command::CreateProgramme {
            programme: programme("city-2026", 3_000, 200_000_000, start),
        },
    );
    assert_eq!(posted(&h, GOV_CNY), 1_000_000_000);
    // sme-a: a ¥3,000,000 voucher (more than the cap); sme-b: ¥100,000 for 10 days.
    h.expect_accepted(
        "gov",
        voucher(1, "city-2026", "sme-a", 300_000_000, start + 300 * DAY_NS),
    );
    h.expect_accepted(
        "gov",
        voucher(2, "city-2026", "sme-b", 10_000_000, start + 10 * DAY_NS),
    );
    h.expect_accepted("univ", sell(1, 2_500, 300_000));
    // sme-a buys 100,000 GPU-hours at ¥25: 250,000,000 fen. The voucher pays 30%:
    // 75,000,000 to univ; sme-a pays the seller's other 174,250,000 and the 750,000 fee.
    let sme_a = sme_accounts(3).0;
    h.expect_accepted("sme-a", buy(3, 10, 2_500, 100_000, vec![1]));
    assert_eq!(posted(&h, sme_a), 1_000_000_000 - 175_000_000);
    assert_eq!(posted(&h, UNIV_CNY), 249_250_000);
    // 200,000 more: 500,000,000 fen, 30% would be 150,000,000 but only 125,000,000 of the
    // ¥2,000,000 cap is left.
    h.expect_accepted("sme-a", buy(3, 11, 2_500, 200_000, vec![1]));
    assert_eq!(
        posted(&h, sme_a),
        1_000_000_000 - 175_000_000 - (500_000_000 - 125_000_000)
    );
    // Beyond the cap a purchase is paid with money only: a package, ¥9.90 in full.
    h.expect_accepted("sme-a", package(3, 20, vec![1]));
    assert_eq!(
        posted(&h, sme_a),
        1_000_000_000 - 175_000_000 - 375_000_000 - 990
    );
    // sme-b buys the package with its voucher: floor(990 × 30%) = 297 from the voucher.
    let sme_b = sme_accounts(4).0;
    h.expect_accepted("sme-b", package(4, 21, vec![2]));
    assert_eq!(posted(&h, sme_b), 1_000_000_000 - 693);
    assert_eq!(posted(&h, PROVIDER_CNY), 990 + 990);
    // sme-b's voucher expires after 10 days: its 9,999,703 return to the programme.
    h.now_ns = start + 10 * DAY_NS;
    let entry = h.submit("sme-b", Command::RevokeVoucher { voucher_id: 2 });
    assert_eq!(rejected(&entry), Some(Reason::NotPermitted));
    assert!(entry.body.outcome.scheduled.iter().any(|s| matches!(
        s,
        Scheduled::VoucherExpired(e) if e.voucher_id == 2 && e.returned == 9_999_703
    )));
    // issued 310,000,000 = redeemed 200,000,297 + expired 9,999,703 + outstanding 100,000,000.
    let report = h.ledger.programme_report("city-2026").unwrap();
    assert_eq!(
        (report.budget, report.unissued, report.issued),
        (5_000_000_000, 4_690_000_000, 310_000_000)
    );
    assert_eq!(
        (
            report.redeemed,
            report.expired,
            report.revoked,
            report.outstanding
        ),
        (200_000_297, 9_999_703, 0, 100_000_000)
    );
    let by_party: BTreeMap<&str, (u128, u128, u128)> = report
        .beneficiaries
        .iter()
        .map(|b| (b.party.as_str(), (b.issued, b.redeemed, b.outstanding)))
        .collect();
    assert_eq!(by_party["sme-a"], (300_000_000, 200_000_000, 100_000_000));
    assert_eq!(by_party["sme-b"], (10_000_000, 297, 0));
    let sellers: Vec<(&str, u128)> = report
        .sellers
        .iter()
        .map(|s| (s.party.as_str(), s.redeemed))
        .collect();
    assert_eq!(sellers, [("qwen-cloud", 297), ("univ", 200_000_000)]);
    // Revoking sme-a's voucher returns its last 100,000,000.
    let revoked = h.expect_accepted("gov", Command::RevokeVoucher { voucher_id: 1 });
    assert!(format!("{:?}", revoked.body.outcome).contains("100000000"));
    let report = h.ledger.programme_report("city-2026").unwrap();
    assert_eq!((report.revoked, report.outstanding), (100_000_000, 0));
    assert_eq!(
        h.ledger.vouchers().vouchers[&1].status,
        VoucherStatus::Revoked
    );
    // Every line cites a journal entry; lines come in journal order.
    let indexes: Vec<u64> = report.lines.iter().map(|l| l.journal_index).collect();
    assert!(indexes.windows(2).all(|w| w[0] <= w[1]));
    // Funded; two issued; three redemptions (two fills, one package); expired; revoked.
    assert_eq!(report.lines.len(), 1 + 2 + 3 + 2);
    h.ledger.check_invariants().unwrap();
}

#[test]
fn voucher_rules_are_refused_with_their_own_codes_and_change_nothing() {
    let mut h = world(2);
    let start = h.now_ns;
    h.expect_accepted(
        "gov",
        Command::CreateProgramme {
            programme: programme("city", 3_000, 200_000_000, start),
        },
    );
    let mut packages_only = programme("tokens-only", 5_000, 1_000_000, start);
    packages_only.budget = 10_000_000;
    packages_only.eligible = Eligible {
        packages: vec![PACKAGE.into()],
        ..Eligible::default()
    };
    h.expect_accepted(
        "gov",
        Command::CreateProgramme {
            programme: packages_only,
        },
    );
    h.expect_accepted(
        "gov",
        voucher(1, "city", "sme-a", 1_000_000, start + DAY_NS),
    );
    h.expect_accepted(
        "gov",
        voucher(2, "city", "sme-a", 1_000_000, start + DAY_NS),
    );
    h.expect_accepted(
        "gov",
        voucher(3, "tokens-only", "sme-a", 1_000_000, start + DAY_NS),
    );
    h.expect_accepted("univ", sell(1, 2_500, 10));
    let cases: Vec<(&str, Command, Reason)> = vec![
        (
            "gov2",
            voucher(9, "city", "sme-a", 1, start + DAY_NS),
            Reason::NotProgrammeOwner,
        ),
        (
            "gov2",
            Command::RevokeVoucher { voucher_id: 1 },
            Reason::NotProgrammeOwner,
        ),
        (
            "gov",
            voucher(9, "city", "univ", 1, start + DAY_NS),
            Reason::BeneficiaryNotEligible,
        ),
        (
            "gov",
            voucher(9, "city", "sme-a", 5_000_000_001, start + DAY_NS),
            Reason::ProgrammeBudgetExceeded,
        ),
        (
            "gov",
            voucher(9, "city", "sme-a", 1, start + 400 * DAY_NS),
            Reason::VoucherInvalid,
        ),
        (
            "audit",
            Command::CreateProgramme {
                programme: programme("audit-prog", 3_000, 1, start),
            },
            Reason::NotPermitted,
        ),
        (
            "audit",
            voucher(9, "city", "sme-a", 1, start + DAY_NS),
            Reason::NotPermitted,
        ),
        (
            "audit",
            Command::RevokeVoucher { voucher_id: 1 },
            Reason::NotPermitted,
        ),
        (
            "sme-a",
            Command::CreateProgramme {
                programme: programme("sme-prog", 3_000, 1, start),
            },
            Reason::NotPermitted,
        ),
        // sme-b tries sme-a's voucher.
        (
            "sme-b",
            buy(4, 50, 2_500, 1, vec![1]),
            Reason::VoucherNotBeneficiary,
        ),
        (
            "sme-b",
            package(4, 51, vec![1]),
            Reason::VoucherNotBeneficiary,
        ),
        (
            "sme-a",
            buy(3, 52, 2_500, 1, vec![99]),
            Reason::VoucherUnknown,
        ),
        // A packages-only programme on an order-book product.
        (
            "sme-a",
            buy(3, 53, 2_500, 1, vec![3]),
            Reason::VoucherNotEligible,
        ),
        // Two vouchers of one programme: one claim per order.
        (
            "sme-a",
            buy(3, 54, 2_500, 1, vec![1, 2]),
            Reason::VoucherAlreadyClaimed,
        ),
        // Two programmes that do not stack.
        (
            "sme-a",
            package(3, 55, vec![1, 3]),
            Reason::VouchersNotStackable,
        ),
    ];
    for (signer, command, reason) in cases {
        let before = (
            h.ledger.accounts().cloned().collect::<Vec<_>>(),
            h.ledger.vouchers().clone(),
            h.ledger.market().clone(),
        );
        let entry = h.submit(signer, command);
        assert_eq!(rejected(&entry), Some(reason), "{signer}");
        let after = (
            h.ledger.accounts().cloned().collect::<Vec<_>>(),
            h.ledger.vouchers().clone(),
            h.ledger.market().clone(),
        );
        assert!(before == after, "{reason:?} changed nothing");
    }
    // A revoked voucher can no longer pay.
    h.expect_accepted("gov", Command::RevokeVoucher { voucher_id: 2 });
    let entry = h.submit("sme-a", buy(3, 60, 2_500, 1, vec![2]));
    assert_eq!(rejected(&entry), Some(Reason::VoucherNotLive));
    h.ledger.check_invariants().unwrap();
}

#[test]
fn random_purchases_under_several_programmes_never_exceed_a_rule() {
    let seed = std::env::var("CBANK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0006_5eed);
    println!("seed = {seed}; reproduce: CBANK_SEED={seed} cargo test -p ledger --test vouchers");
    let mut rng = Rng(seed);
    const SMES: u128 = 8;
    let mut h = world(SMES);
    let start = h.now_ns;
    // Three programmes: 20% stackable, 30% stackable, 50% alone; small caps, so they bind.
    let specs = [
        ("p20", 2_000, 300_000, true),
        ("p30", 3_000, 500_000, true),
        ("p50", 5_000, 200_000, false),
    ];
    for (id, share, cap, stackable) in specs {
        let mut spec = programme(id, share, cap, start);
        spec.budget = 20_000_000;
        spec.stackable = stackable;
        h.expect_accepted("gov", Command::CreateProgramme { programme: spec });
    }
    h.expect_accepted("univ", sell(1, 2_000, 900_000));
    let mut next_id = 100u128;
    let mut issued: Vec<(u128, u128, &str)> = Vec::new(); // (voucher, sme, programme)
    let mut accepted = 0;
    for step in 0..2_500 {
        let n = 3 + u128::from(rng.below(SMES as u64));
        let party = sme(n);
        next_id += 1;
        let entry = match rng.below(10) {
            0 | 1 => {
                let (programme, _, _, _) = *rng.pick(&specs);
                let amount = 1 + u128::from(rng.below(400_000));
                let expires = h.now_ns + (1 + rng.below(60)) * DAY_NS;
                issued.push((next_id, n, programme));
                h.submit("gov", voucher(next_id, programme, &party, amount, expires))
            }
            2 if !issued.is_empty() => {
                let (id, _, _) = *rng.pick(&issued);
                h.submit("gov", Command::RevokeVoucher { voucher_id: id })
            }
            3 => {
                // Time passes: vouchers expire, and now and then a year turns.
                h.now_ns += rng.below(5) * DAY_NS;
                continue;
            }
            kind => {
                // Up to two of this SME's live vouchers; now and then any voucher at all (another
                // SME's, or a dead one), which must be refused.
                let live: Vec<u128> = h
                    .ledger
                    .vouchers()
                    .vouchers
                    .values()
                    .filter(|v| {
                        v.status == VoucherStatus::Live && v.spec.beneficiary.as_str() == party
                    })
                    .map(|v| v.spec.voucher_id)
                    .collect();
                let mut vouchers = Vec::new();
                for _ in 0..rng.below(3) {
                    if rng.chance(5) && !issued.is_empty() {
                        vouchers.push(rng.pick(&issued).0);
                    } else if !live.is_empty() {
                        vouchers.push(*rng.pick(&live));
                    }
                }
                vouchers.dedup();
                let command = if kind < 7 {
                    buy(
                        n,
                        next_id,
                        2_000 + rng.below(10),
                        1 + u128::from(rng.below(200)),
                        vouchers,
                    )
                } else {
                    package(n, next_id, vouchers)
                };
                h.submit(&party, command)
            }
        };
        if rejected(&entry).is_none() {
            accepted += 1;
        }
        if step % 100 == 0 {
            check_voucher_rules(&h);
        }
    }
    check_voucher_rules(&h);
    let state = h.ledger.vouchers();
    let redeemed: u128 = state.redemptions.iter().map(|r| r.paid).sum();
    let capped = state
        .programmes
        .values()
        .flat_map(|p| {
            p.paid_per_year
                .values()
                .filter(move |paid| **paid == p.spec.cap_per_beneficiary_per_year)
        })
        .count();
    println!(
        "2500 steps, {accepted} accepted, {} vouchers, {} redemptions, {redeemed} fen redeemed, \
         {capped} yearly caps reached",
        state.vouchers.len(),
        state.redemptions.len()
    );
    assert!(state.redemptions.len() > 100 && capped > 0);
}

/// The rules, checked from the records: no redemption above its share, no beneficiary above
/// its yearly cap, one voucher per programme and claim, and every programme's money adds up
/// (with the ledger's own invariants, I8 included).
fn check_voucher_rules(h: &Harness) {
    h.ledger.check_invariants().unwrap();
    let state = h.ledger.vouchers();
    let mut per_year: BTreeMap<(String, PartyId, i32), u128> = BTreeMap::new();
    let mut claims: BTreeMap<(String, u128), BTreeSet<u128>> = BTreeMap::new();
    for r in &state.redemptions {
        let programme = &state.programmes[&r.programme_id];
        assert!(r.paid * 10_000 <= r.price * u128::from(programme.spec.max_share_bps));
        *per_year
            .entry((
                r.programme_id.clone(),
                r.beneficiary.clone(),
                ledger::vouchers::year_of(r.at_ns),
            ))
            .or_default() += r.paid;
        let claim = match r.purchase {
            ledger::vouchers::Purchase::Order { order_id, .. } => order_id,
            ledger::vouchers::Purchase::Package { purchase_id } => purchase_id,
        };
        claims
            .entry((r.programme_id.clone(), claim))
            .or_default()
            .insert(r.voucher_id);
    }
    for ((programme, _, _), paid) in &per_year {
        assert!(
            *paid
                <= state.programmes[programme]
                    .spec
                    .cap_per_beneficiary_per_year
        );
    }
    assert!(claims.values().all(|vouchers| vouchers.len() == 1));
    for programme in state.programmes.values() {
        let t = programme.totals;
        assert_eq!(
            t.redeemed + t.expired + t.revoked + t.outstanding(),
            t.issued
        );
        assert_eq!(programme.unissued() + t.issued, programme.spec.budget);
    }
}

/// A short journal with a programme, a voucher and two redemptions, its checkpoints by three
/// node keys, and the report.
fn exported() -> (Export, Vec<ledger::PublicKey>, Harness) {
    let mut h = world(1);
    let start = h.now_ns;
    let commands = [
        (
            "gov",
            Command::CreateProgramme {
                programme: programme("city", 3_000, 200_000_000, start),
            },
        ),
        (
            "gov",
            voucher(7, "city", "sme-a", 1_000_000, start + 5 * DAY_NS),
        ),
        ("univ", sell(1, 2_500, 10)),
        ("sme-a", buy(3, 2, 2_500, 4, vec![7])),
        ("sme-a", package(3, 3, vec![7])),
    ];
    for (signer, command) in commands {
        h.expect_accepted(signer, command);
    }
    let head = h.ledger.head();
    let keys: Vec<ledger::SigningKey> = (1..=3)
        .map(|n| ledger::testing::demo_key(&format!("node-{n}")))
        .collect();
    let checkpoints: Vec<Checkpoint> = keys.iter().map(|k| Checkpoint::sign(head, k)).collect();
    let report = h.ledger.programme_report("city").unwrap();
    let export = audit::export(&h.journal, checkpoints, vec![report]);
    let trusted = keys.iter().map(|k| k.public_key()).collect();
    (export, trusted, h)
}

/// Flips one hex digit of `text` at `position`.
fn flip(text: &mut String, position: usize) {
    let digit = text.as_bytes()[position];
    let flipped = if digit == b'0' { '1' } else { '0' };
    text.replace_range(position..=position, &flipped.to_string());
}

#[test]
fn an_honest_export_verifies_offline_and_any_tampering_names_what_broke() {
    let (export, trusted, h) = exported();
    let verified = audit::verify_export(&export, &trusted).expect("an honest export verifies");
    assert_eq!(verified.head, h.ledger.head());
    assert_eq!((verified.signers, verified.reports), (3, 1));

    // Any byte of any entry: the first bad index is named. Try a spread of positions.
    let middle = export.entries.len() / 2;
    for position in [0, 10, 40, 100, export.entries[middle].len() - 1] {
        let mut tampered = export.clone();
        flip(&mut tampered.entries[middle], position);
        let failure = audit::verify_export(&tampered, &trusted).unwrap_err();
        assert_eq!(failure.index, Some(middle as u64 + 1), "{failure}");
    }
    // A checkpoint signature.
    let mut tampered = export.clone();
    tampered.checkpoints[1].signature.0[5] ^= 1;
    let failure = audit::verify_export(&tampered, &trusted).unwrap_err();
    assert!(failure.what.contains("signature"), "{failure}");
    assert_eq!(failure.index, Some(h.ledger.head().index));
    // Checkpoints by keys the auditor does not trust, or too few.
    let stranger = vec![ledger::testing::demo_key("stranger").public_key()];
    assert!(audit::verify_export(&export, &stranger).is_err());
    let mut too_few = export.clone();
    too_few.checkpoints.truncate(1);
    assert!(audit::verify_export(&too_few, &trusted).is_err());
    // A report total.
    let mut tampered = export.clone();
    tampered.reports[0].redeemed += 1;
    let failure = audit::verify_export(&tampered, &trusted).unwrap_err();
    assert!(failure.what.contains("redeemed"), "{failure}");
    // A report line.
    let mut tampered = export.clone();
    let line = tampered.reports[0].lines.len() - 1;
    tampered.reports[0].lines[line].amount -= 1;
    assert!(audit::verify_export(&tampered, &trusted).is_err());
}

#[test]
fn a_vouchers_inclusion_proof_verifies_alone() {
    let (_, trusted, h) = exported();
    let head = h.ledger.head();
    let checkpoints: Vec<Checkpoint> = (1..=3)
        .map(|n| Checkpoint::sign(head, &ledger::testing::demo_key(&format!("node-{n}"))))
        .collect();
    let proof = audit::prove_voucher(&h.ledger, &h.journal, 7, checkpoints).unwrap();
    // Issue, the order's fill and the package: three entries.
    assert_eq!(proof.indexes.len(), 3);
    let entries = audit::verify_proof(&proof, &trusted).expect("the proof verifies");
    assert_eq!(entries.len(), 3);
    let mut tampered = proof.clone();
    flip(&mut tampered.entries[0], 30);
    let failure = audit::verify_proof(&tampered, &trusted).unwrap_err();
    assert_eq!(failure.index, Some(proof.previous.index + 1));
    let mut other = proof.clone();
    other.voucher_id = 8;
    assert!(audit::verify_proof(&other, &trusted).is_err());
}

#[test]
fn a_package_purchase_records_what_its_voucher_paid() {
    let mut h = world(1);
    let start = h.now_ns;
    h.expect_accepted(
        "gov",
        Command::CreateProgramme {
            programme: programme("city", 3_000, 200_000_000, start),
        },
    );
    h.expect_accepted("gov", voucher(5, "city", "sme-a", 1_000, start + DAY_NS));
    let entry = h.expect_accepted("sme-a", package(3, 9, vec![5]));
    // floor(990 × 30%) = 297.
    let ledger::CommandResult::Accepted(ledger::Effect::PackageBought { vouchers, .. }) =
        &entry.body.outcome.result
    else {
        panic!("bought: {:?}", entry.body.outcome);
    };
    assert_eq!(
        vouchers,
        &[ledger::vouchers::VoucherPaid {
            voucher_id: 5,
            paid: 297
        }]
    );
    assert_eq!(h.ledger.shelf().purchases[&9].voucher_paid, 297);
}
