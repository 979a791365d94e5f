//! The compute bank in the pure ledger: offers, metering, withdrawals and allocations, with
//! balances checked against numbers computed by hand in the comments.

use ledger::bank::{
    AllocationState, AllocationUpdate, HostSpec, MeterReport, OfferSpec, WithdrawalSpec,
    WithdrawalState,
};
use ledger::ids::system_account_id;
use ledger::limits::NS_PER_S;
use ledger::testing::{demo_key, Harness, MAIN, OPERATOR};
use ledger::{AccountKind, Command, PartyId, Reason, Role, SignedCommand, Transfer, TransferFlags};

const UNIV_GPUH: u128 = 11;
const OTHER_GPUH: u128 = 12;
const SME_GPUH: u128 = 21;
const HOUR_S: u64 = 3600;
const HOUR_NS: u64 = HOUR_S * NS_PER_S;

struct Bank {
    h: Harness,
    start_ns: u64,
}

fn agent(host: &str) -> ledger::SigningKey {
    demo_key(&format!("agent-{host}"))
}

fn host(host_id: &str, account_id: u128, gpus: u32) -> HostSpec {
    HostSpec {
        host_id: host_id.into(),
        region: "beijing".into(),
        gpu_class: "H100".into(),
        gpu_count: gpus,
        agent_key: agent(host_id).public_key(),
        account_id,
    }
}

/// A university with an 8×H100 host `gpu-01`, another institution with `gpu-99`, and an SME.
fn bank() -> Bank {
    let mut h = Harness::new();
    h.step_ns = NS_PER_S;
    h.add_party("univ", Role::Institution);
    h.add_party("other", Role::Institution);
    h.add_party("sme", Role::Sme);
    h.open_account("univ", UNIV_GPUH, "GPUH:H100", MAIN, true);
    h.open_account("other", OTHER_GPUH, "GPUH:H100", MAIN, true);
    h.open_account("sme", SME_GPUH, "GPUH:H100", MAIN, true);
    h.expect_accepted(
        "univ",
        Command::RegisterHost {
            host: host("gpu-01", UNIV_GPUH, 8),
        },
    );
    h.expect_accepted(
        "other",
        Command::RegisterHost {
            host: host("gpu-99", OTHER_GPUH, 8),
        },
    );
    // Whole seconds: the window starts at the next command's timestamp.
    let start_ns = h.now_ns + h.step_ns;
    Bank { h, start_ns }
}

impl Bank {
    /// Signs with a host's agent key on behalf of its institution and applies.
    fn agent_submit(
        &mut self,
        host_id: &str,
        party: &str,
        command: Command,
    ) -> ledger::JournalEntry {
        let signed = self.agent_sign(host_id, party, command);
        self.h.apply(&signed)
    }

    fn agent_sign(&mut self, host_id: &str, party: &str, command: Command) -> SignedCommand {
        let nonce = u128::from(self.h.now_ns);
        agent(host_id).sign(
            PartyId::new(party),
            nonce,
            self.h.now_ns + 60 * NS_PER_S,
            command,
        )
    }

    fn accepted(&mut self, host_id: &str, party: &str, command: Command) -> ledger::Effect {
        let entry = self.agent_submit(host_id, party, command);
        match entry.body.outcome.result {
            ledger::CommandResult::Accepted(effect) => effect,
            ledger::CommandResult::Rejected(reason) => panic!("rejected: {reason}"),
        }
    }

    fn rejected(&mut self, host_id: &str, party: &str, command: Command) -> Reason {
        let before = balances(&self.h);
        let entry = self.agent_submit(host_id, party, command);
        assert_eq!(
            balances(&self.h),
            before,
            "a rejected command moved a balance"
        );
        entry.body.outcome.rejected().expect("rejected")
    }

    /// Moves time to `start + offset` for the next command.
    fn at(&mut self, offset_ns: u64) {
        self.h.now_ns = self.start_ns + offset_ns - self.h.step_ns;
    }

    fn balance(&self, id: u128) -> (u128, u128, u128, u128) {
        let b = self.h.ledger.account(id).expect("account").balances;
        (
            b.debits_pending,
            b.debits_posted,
            b.credits_pending,
            b.credits_posted,
        )
    }
}

fn balances(h: &Harness) -> Vec<(u128, ledger::Balances)> {
    h.ledger.accounts().map(|a| (a.id, a.balances)).collect()
}

fn offer(start_ns: u64, hours: u64) -> Command {
    Command::OfferCapacity {
        offer: OfferSpec {
            offer_id: 500,
            host_id: "gpu-01".into(),
            gpu_count: 8,
            start_ns,
            end_ns: start_ns + hours * HOUR_NS,
        },
    }
}

fn report(from_ns: u64, to_ns: u64, available: u64, busy: u64, down: u64) -> Command {
    Command::ReportMeter {
        report: MeterReport {
            offer_id: 500,
            from_ns,
            to_ns,
            available_gpu_s: available,
            busy_gpu_s: busy,
            down_gpu_s: down,
        },
    }
}

fn withdraw(id: u128, gpus: u32, hours: u32) -> Command {
    Command::RequestWithdrawal {
        withdrawal: WithdrawalSpec {
            withdrawal_id: id,
            account_id: SME_GPUH,
            gpu_class: "H100".into(),
            gpu_count: gpus,
            duration_s: hours * 3600,
            region: None,
        },
    }
}

#[test]
fn offer_meter_withdraw_allocate_and_settle() {
    let mut b = bank();
    let s = b.start_ns;
    // An 8-GPU window of 4 hours reserves 8 × 4 × 3600 = 115,200 GPU-seconds for the university.
    assert_eq!(
        b.accepted("gpu-01", "univ", offer(s, 4)),
        ledger::Effect::CapacityOffered { repeated: false }
    );
    assert_eq!(b.balance(UNIV_GPUH), (0, 0, 115_200, 0));
    let mint = system_account_id(&"GPUH:H100".parse().unwrap(), AccountKind::Mint);

    // Hour 1: one GPU down for 30 minutes: 28,800 − 1,800 = 27,000 delivered; 3 hours remain
    // reserved: 8 × 3 × 3600 = 86,400.
    b.at(HOUR_NS + 5 * NS_PER_S);
    b.accepted("gpu-01", "univ", report(s, s + HOUR_NS, 27_000, 0, 1_800));
    assert_eq!(b.balance(UNIV_GPUH), (0, 0, 86_400, 27_000));
    // The agent's retry of the same report credits nothing twice.
    assert_eq!(
        b.accepted("gpu-01", "univ", report(s, s + HOUR_NS, 27_000, 0, 1_800)),
        ledger::Effect::MeterRecorded { repeated: true }
    );
    assert_eq!(b.balance(UNIV_GPUH), (0, 0, 86_400, 27_000));

    // The university sells 21,600 GPU-seconds (6 GPU-hours) to the SME.
    let sale = Transfer {
        id: 900,
        debit_account_id: UNIV_GPUH,
        credit_account_id: SME_GPUH,
        amount: 21_600,
        pending_id: 0,
        timeout_s: 0,
        code: 0,
        reference: 0,
        flags: TransferFlags::default(),
    };
    b.h.expect_accepted(
        "univ",
        Command::CreateTransfers {
            transfers: vec![sale],
        },
    );

    // The SME withdraws 4 GPU-hours: 4 GPUs for 1 hour = 14,400 GPU-seconds reserved.
    let entry = b.h.expect_accepted("sme", withdraw(700, 4, 1));
    let now = entry.body.timestamp_ns;
    assert_eq!(b.balance(SME_GPUH), (14_400, 0, 0, 21_600));
    let withdrawal = &b.h.ledger.bank().withdrawals[&700];
    let WithdrawalState::Allocated { allocation_id } = withdrawal.state else {
        panic!("not allocated: {withdrawal:?}")
    };
    let allocation = b.h.ledger.bank().allocations[&allocation_id].clone();
    assert_eq!(
        (
            allocation.host_id.as_str(),
            allocation.gpu_count,
            allocation.offer_id
        ),
        ("gpu-01", 4, 500)
    );
    assert_eq!(
        (allocation.start_ns, allocation.end_ns),
        (now, now + HOUR_NS)
    );

    // The agent runs it and reports its end: the SME is charged 14,400; nothing is refunded.
    b.accepted(
        "gpu-01",
        "univ",
        Command::ReportAllocation {
            allocation_id,
            update: AllocationUpdate::Running,
        },
    );
    b.at(2 * HOUR_NS + 10 * NS_PER_S);
    b.accepted(
        "gpu-01",
        "univ",
        Command::ReportAllocation {
            allocation_id,
            update: AllocationUpdate::Completed {
                delivered_gpu_s: 14_400,
            },
        },
    );
    assert_eq!(b.balance(SME_GPUH), (0, 14_400, 0, 21_600));

    // Hour 2: 4 GPUs busy, 4 available, none down: 28,800 delivered; 2 hours remain reserved.
    b.accepted(
        "gpu-01",
        "univ",
        report(s + HOUR_NS, s + 2 * HOUR_NS, 14_400, 14_400, 0),
    );
    assert_eq!(b.balance(UNIV_GPUH), (0, 21_600, 57_600, 55_800));

    // A second withdrawal on a host that fails half-way: 2 GPUs × 1 h reserved 7,200, 3,600
    // delivered and charged, 3,600 refunded.
    let entry = b.h.expect_accepted("sme", withdraw(701, 2, 1));
    assert!(entry.body.outcome.rejected().is_none());
    let WithdrawalState::Allocated { allocation_id } = b.h.ledger.bank().withdrawals[&701].state
    else {
        panic!("not allocated")
    };
    b.accepted(
        "gpu-01",
        "univ",
        Command::ReportAllocation {
            allocation_id,
            update: AllocationUpdate::Failed {
                delivered_gpu_s: 3_600,
            },
        },
    );
    assert_eq!(b.balance(SME_GPUH), (0, 18_000, 0, 21_600));
    assert_eq!(
        b.h.ledger.bank().allocations[&allocation_id].state,
        AllocationState::Failed {
            delivered_gpu_s: 3_600
        }
    );

    // Hours 3 and 4 are never reported: after the window and the late-report allowance, the
    // reservation expires and the university is credited only what was delivered.
    b.at(5 * HOUR_NS + 10 * NS_PER_S);
    b.h.submit(
        OPERATOR,
        Command::RegisterAsset {
            asset: "GPUH:A100".parse().unwrap(),
        },
    );
    assert_eq!(b.balance(UNIV_GPUH), (0, 21_600, 0, 55_800));
    // The mint issued exactly what was delivered and took back what the SME consumed.
    assert_eq!(b.balance(mint), (0, 55_800, 0, 14_400 + 3_600));
    b.h.ledger.check_invariants().expect("invariants hold");
}

#[test]
fn meter_reports_that_are_wrong_each_have_their_own_reason() {
    let mut b = bank();
    let s = b.start_ns;
    b.accepted("gpu-01", "univ", offer(s, 4));
    b.at(2 * HOUR_NS);
    b.accepted("gpu-01", "univ", report(s, s + HOUR_NS, 28_800, 0, 0));
    // Signed by another host's agent key (on behalf of the university or its own institution).
    assert_eq!(
        b.rejected(
            "gpu-99",
            "univ",
            report(s + HOUR_NS, s + 2 * HOUR_NS, 28_800, 0, 0)
        ),
        Reason::KeyNotOfSigner
    );
    assert_eq!(
        b.rejected(
            "gpu-99",
            "other",
            report(s + HOUR_NS, s + 2 * HOUR_NS, 28_800, 0, 0)
        ),
        Reason::NotHostOwner
    );
    // For a window that does not exist.
    let mut unknown = report(s + HOUR_NS, s + 2 * HOUR_NS, 28_800, 0, 0);
    if let Command::ReportMeter { report } = &mut unknown {
        report.offer_id = 501;
    }
    assert_eq!(b.rejected("gpu-01", "univ", unknown), Reason::OfferUnknown);
    // Overlapping the earlier report.
    assert_eq!(
        b.rejected(
            "gpu-01",
            "univ",
            report(s + HOUR_NS / 2, s + 2 * HOUR_NS, 43_200, 0, 0)
        ),
        Reason::MeterReportOverlaps
    );
    // Parts that do not add up, the future, beyond the window.
    assert_eq!(
        b.rejected(
            "gpu-01",
            "univ",
            report(s + HOUR_NS, s + 2 * HOUR_NS, 28_000, 0, 0)
        ),
        Reason::MeterReportInconsistent
    );
    assert_eq!(
        b.rejected(
            "gpu-01",
            "univ",
            report(s + HOUR_NS, s + 3 * HOUR_NS, 57_600, 0, 0)
        ),
        Reason::MeterReportInFuture
    );
    assert_eq!(
        b.rejected(
            "gpu-01",
            "univ",
            report(s + HOUR_NS, s + 5 * HOUR_NS, 115_200, 0, 0)
        ),
        Reason::MeterReportOutsideWindow
    );
    // An agent key moves nothing but its host's reports.
    let transfer = Transfer {
        id: 1,
        debit_account_id: UNIV_GPUH,
        credit_account_id: OTHER_GPUH,
        amount: 1,
        pending_id: 0,
        timeout_s: 0,
        code: 0,
        reference: 0,
        flags: TransferFlags::default(),
    };
    assert_eq!(
        b.rejected(
            "gpu-01",
            "univ",
            Command::CreateTransfers {
                transfers: vec![transfer]
            }
        ),
        Reason::NotPermitted
    );
    // Another institution cannot offer the university's host, and windows do not overlap.
    let mut foreign = offer(s + 3 * HOUR_NS, 1);
    if let Command::OfferCapacity { offer } = &mut foreign {
        offer.offer_id = 503;
    }
    assert_eq!(b.rejected("gpu-99", "other", foreign), Reason::NotHostOwner);
    let mut overlapping = offer(s + 3 * HOUR_NS, 2);
    if let Command::OfferCapacity { offer } = &mut overlapping {
        offer.offer_id = 502;
    }
    assert_eq!(
        b.rejected("gpu-01", "univ", overlapping),
        Reason::OfferOverlaps
    );
    b.h.ledger.check_invariants().expect("invariants hold");
}

#[test]
fn a_withdrawal_waits_in_order_until_capacity_is_offered() {
    let mut b = bank();
    let s = b.start_ns;
    let sale = Transfer {
        id: 900,
        debit_account_id: ledger::ids::system_account_id(
            &"GPUH:H100".parse().unwrap(),
            AccountKind::Mint,
        ),
        credit_account_id: SME_GPUH,
        amount: 100_000,
        pending_id: 0,
        timeout_s: 0,
        code: 0,
        reference: 0,
        flags: TransferFlags::default(),
    };
    b.h.expect_accepted(
        OPERATOR,
        Command::CreateTransfers {
            transfers: vec![sale],
        },
    );
    b.h.expect_accepted("sme", withdraw(700, 8, 1));
    b.h.expect_accepted("sme", withdraw(701, 1, 1));
    assert_eq!(b.h.ledger.bank().queue.len(), 2);
    // 8 GPUs arrive: the first request takes them all; the second waits behind it.
    b.at(10 * NS_PER_S);
    b.accepted("gpu-01", "univ", offer(s + 10 * NS_PER_S, 3));
    assert!(matches!(
        b.h.ledger.bank().withdrawals[&700].state,
        WithdrawalState::Allocated { .. }
    ));
    assert_eq!(
        b.h.ledger.bank().withdrawals[&701].state,
        WithdrawalState::Queued
    );
    // Cancelling the waiting one releases its reservation.
    b.h.expect_accepted("sme", Command::CancelWithdrawal { withdrawal_id: 701 });
    assert_eq!(b.balance(SME_GPUH), (28_800, 0, 0, 100_000));
    b.h.ledger.check_invariants().expect("invariants hold");
}
