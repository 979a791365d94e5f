//! The compute bank: GPU hosts, capacity offers (deposits), meter reports, the rate table,
//! withdrawals (draws) and the allocations that serve them.
//!
//! Money-like effects are ordinary transfers the ledger makes on its own authority
//! (`Acting::Ledger`), with derived ids, in the same journal entry as the command:
//! - an offer reserves `gpu_count × window` GPU-seconds as a pending transfer from the class's
//!   mint to the institution;
//! - each meter report voids that reservation, posts the delivered (available + busy)
//!   GPU-seconds, and reserves what remains of the window again: downtime and unreported time
//!   are never credited;
//! - a withdrawal reserves the drawer's GPU-seconds as a pending transfer to the mint; it is
//!   posted for what the allocation delivered and the rest is released (the refund).
//!
//! Deterministic like the rest of the ledger; never reads a clock.

use crate::account::AccountKind;
use crate::asset::Asset;
use crate::ids::{derived_id, system_account_id};
use crate::limits::{
    HOSTS_PER_PARTY_MAX, HOST_GPUS_MAX, METER_REPORT_LATE_NS_MAX, NS_PER_S,
    OFFER_START_AHEAD_NS_MAX, OFFER_START_PAST_NS_MAX, OFFER_WINDOW_NS_MAX, RATE_TABLE_CLASSES_MAX,
    WITHDRAWALS_QUEUED_MAX, WITHDRAWAL_DURATION_S_MAX, WITHDRAWAL_WAIT_S_MAX,
};
use crate::party::{PartyId, PublicKey};
use crate::reason::Reason;
use crate::state_machine::{Acting, Ledger, Undo};
use crate::transfer::{PendingState, Transfer, TransferFlags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Transfer codes the bank's derived transfers carry.
pub mod codes {
    /// GPU time reserved for an open offer window.
    pub const OFFER_RESERVED: u16 = 1001;
    /// Delivered GPU time credited from a meter report.
    pub const OFFER_DELIVERED: u16 = 1002;
    /// A reservation voided by a meter report.
    pub const OFFER_RELEASED: u16 = 1003;
    /// GPU time reserved by a withdrawal.
    pub const WITHDRAWAL_RESERVED: u16 = 1010;
    /// A withdrawal's reservation posted for what its allocation delivered.
    pub const WITHDRAWAL_CHARGED: u16 = 1011;
    /// A withdrawal's reservation voided (cancelled before allocation).
    pub const WITHDRAWAL_CANCELLED: u16 = 1012;
}

/// One GPU class's weight in standard GPU-hours: `standard_milli / 1000` standard hours per
/// hour of this class (an H100 at 1000, an A100 at 600…).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuRate {
    pub gpu_class: String,
    pub standard_milli: u32,
}

/// A version of the rate table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateTable {
    pub version: u32,
    pub rates: BTreeMap<String, u32>,
    #[serde(with = "crate::wire::u64_text")]
    pub effective_at_ns: u64,
}

/// A GPU host as registered by its institution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// 1 to 64 bytes of `[a-z0-9._-]`, unique in the ledger.
    pub host_id: String,
    pub region: String,
    pub gpu_class: String,
    pub gpu_count: u32,
    /// The key the host's agent signs offers and meter reports with (and nothing else).
    pub agent_key: PublicKey,
    /// The institution's own `GPUH:<class>` account that delivered time is credited to.
    #[serde(with = "crate::wire::u128_text")]
    pub account_id: u128,
}

/// A registered host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub spec: HostSpec,
    pub owner: PartyId,
    #[serde(with = "crate::wire::u64_text")]
    pub registered_at_ns: u64,
}

/// A capacity offer as the agent (or institution) signs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferSpec {
    #[serde(with = "crate::wire::u128_text")]
    pub offer_id: u128,
    pub host_id: String,
    pub gpu_count: u32,
    #[serde(with = "crate::wire::u64_text")]
    pub start_ns: u64,
    /// `end_ns - start_ns` is a whole number of seconds.
    #[serde(with = "crate::wire::u64_text")]
    pub end_ns: u64,
}

/// An offer and how far it has been metered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub spec: OfferSpec,
    pub owner: PartyId,
    /// Reports cover time before this; the next report must start at or after it.
    #[serde(with = "crate::wire::u64_text")]
    pub reported_until_ns: u64,
    /// The reservation of the not yet reported part of the window, if any.
    #[serde(with = "crate::wire::option_u128_text")]
    pub pending_transfer_id: Option<u128>,
    /// How many derived transfers this offer has made (the next derived id's sequence).
    pub transfer_count: u32,
    pub delivered_gpu_s: u64,
    pub busy_gpu_s: u64,
    pub down_gpu_s: u64,
    /// GPU-seconds of the window no report covered (gaps), never credited.
    pub unreported_gpu_s: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub offered_at_ns: u64,
}

/// A meter report for `[from_ns, to_ns)` of an offer window, in GPU-seconds. The three parts
/// add up to `gpu_count × (to_ns - from_ns)` seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterReport {
    #[serde(with = "crate::wire::u128_text")]
    pub offer_id: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub from_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub to_ns: u64,
    /// Idle and available to the pool.
    pub available_gpu_s: u64,
    /// Busy under an allocation.
    pub busy_gpu_s: u64,
    /// Down: not delivered, not credited.
    pub down_gpu_s: u64,
}

/// A withdrawal request: GPU time wanted, and the account that pays for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalSpec {
    #[serde(with = "crate::wire::u128_text")]
    pub withdrawal_id: u128,
    /// The drawer's `GPUH:<class>` account (any class the rate table converts).
    #[serde(with = "crate::wire::u128_text")]
    pub account_id: u128,
    pub gpu_class: String,
    pub gpu_count: u32,
    pub duration_s: u32,
    #[serde(default)]
    pub region: Option<String>,
}

/// Where a withdrawal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalState {
    Queued,
    Allocated {
        #[serde(with = "crate::wire::u128_text")]
        allocation_id: u128,
    },
    Cancelled,
    /// Its reservation timed out before capacity came: released in full.
    Expired,
}

/// A withdrawal and its reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub spec: WithdrawalSpec,
    pub party: PartyId,
    /// GPU-seconds of the paying account's class reserved.
    pub charged_gpu_s: u64,
    /// The rate table version used when the paying class differs (`None`: same class).
    pub rate_version: Option<u32>,
    #[serde(with = "crate::wire::u128_text")]
    pub pending_transfer_id: u128,
    pub state: WithdrawalState,
    #[serde(with = "crate::wire::u64_text")]
    pub requested_at_ns: u64,
}

/// Where an allocation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationState {
    Granted,
    Running,
    Completed { delivered_gpu_s: u64 },
    Failed { delivered_gpu_s: u64 },
}

/// Specific GPUs on a specific host for a time, serving one withdrawal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    #[serde(with = "crate::wire::u128_text")]
    pub allocation_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub withdrawal_id: u128,
    pub party: PartyId,
    pub host_id: String,
    #[serde(with = "crate::wire::u128_text")]
    pub offer_id: u128,
    pub gpu_count: u32,
    #[serde(with = "crate::wire::u64_text")]
    pub start_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub end_ns: u64,
    pub state: AllocationState,
}

/// What the host's agent reports about an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationUpdate {
    Running,
    /// Ended; `delivered_gpu_s` of the allocation's GPU-seconds were delivered.
    Completed {
        delivered_gpu_s: u64,
    },
    /// The host failed; only `delivered_gpu_s` were delivered and the rest is refunded.
    Failed {
        delivered_gpu_s: u64,
    },
}

/// The bank's part of the ledger state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankState {
    pub rate_tables: Vec<RateTable>,
    pub hosts: BTreeMap<String, Host>,
    pub hosts_per_party: BTreeMap<PartyId, u32>,
    /// Agent keys and the host each signs for.
    pub agent_keys: BTreeMap<PublicKey, String>,
    pub offers: BTreeMap<u128, Offer>,
    /// Offers per host, by (host, start), to find overlaps.
    pub host_offers: BTreeMap<(String, u64), u128>,
    /// Accepted meter reports by (offer, from).
    pub meter_reports: BTreeMap<(u128, u64), MeterReport>,
    pub withdrawals: BTreeMap<u128, Withdrawal>,
    /// Queued withdrawals in arrival order: sequence → withdrawal id.
    pub queue: BTreeMap<u64, u128>,
    pub queue_next: u64,
    pub allocations: BTreeMap<u128, Allocation>,
}

impl BankState {
    /// The rate table in force (the latest version).
    pub fn rate_table(&self) -> Option<&RateTable> {
        self.rate_tables.last()
    }
}

/// Who signed: a party with one of its own keys, or a host's agent key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Signer<'a> {
    Party(&'a PartyId),
    Agent {
        party: &'a PartyId,
        host_id: &'a str,
    },
}

impl<'a> Signer<'a> {
    pub(crate) fn party(&self) -> &'a PartyId {
        match self {
            Signer::Party(party) | Signer::Agent { party, .. } => party,
        }
    }

    /// Whether this signer may act for `host`.
    fn may_act_for(&self, host: &Host) -> bool {
        match self {
            Signer::Party(party) => host.owner == **party,
            Signer::Agent { party, host_id } => {
                host.owner == **party && host.spec.host_id == *host_id
            }
        }
    }
}

fn name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

fn whole_seconds(ns: u64) -> Option<u64> {
    ns.is_multiple_of(NS_PER_S).then_some(ns / NS_PER_S)
}

impl Ledger {
    pub fn bank(&self) -> &BankState {
        &self.state.bank
    }

    pub(crate) fn set_rate_table(
        &mut self,
        version: u32,
        rates: &[GpuRate],
        timestamp_ns: u64,
    ) -> Result<(), Reason> {
        let expected = self
            .state
            .bank
            .rate_table()
            .map_or(1, |table| table.version + 1);
        if version != expected {
            return Err(Reason::RateTableVersionInvalid);
        }
        if rates.is_empty() || rates.len() > RATE_TABLE_CLASSES_MAX {
            return Err(Reason::RateTableInvalid);
        }
        let mut table = BTreeMap::new();
        for rate in rates {
            let asset = Asset::Gpuh(rate.gpu_class.clone());
            if rate.standard_milli == 0 || !self.state.assets.contains(&asset) {
                return Err(Reason::RateTableInvalid);
            }
            if table
                .insert(rate.gpu_class.clone(), rate.standard_milli)
                .is_some()
            {
                return Err(Reason::RateTableInvalid);
            }
        }
        self.state.bank.rate_tables.push(RateTable {
            version,
            rates: table,
            effective_at_ns: timestamp_ns,
        });
        Ok(())
    }

    pub(crate) fn register_host(
        &mut self,
        signer: &PartyId,
        spec: &HostSpec,
        timestamp_ns: u64,
    ) -> Result<(), Reason> {
        if !name_is_valid(&spec.host_id) || !name_is_valid(&spec.region) {
            return Err(Reason::HostIdInvalid);
        }
        if self.state.bank.hosts.contains_key(&spec.host_id) {
            return Err(Reason::HostExists);
        }
        if spec.gpu_count == 0 || spec.gpu_count > HOST_GPUS_MAX {
            return Err(Reason::GpuCountInvalid);
        }
        let asset = Asset::Gpuh(spec.gpu_class.clone());
        let account = self
            .state
            .accounts
            .get(&spec.account_id)
            .ok_or(Reason::AccountNotForHost)?;
        if account.party != *signer || account.asset != asset || account.kind != AccountKind::Main {
            return Err(Reason::AccountNotForHost);
        }
        if !crate::envelope::key_is_valid(&spec.agent_key) {
            return Err(Reason::KeyInvalid);
        }
        if self.state.key_owners.contains_key(&spec.agent_key) {
            return Err(Reason::KeyInUse);
        }
        let count = self
            .state
            .bank
            .hosts_per_party
            .get(signer)
            .copied()
            .unwrap_or(0);
        if count >= HOSTS_PER_PARTY_MAX {
            return Err(Reason::HostsPerPartyLimitReached);
        }
        self.state
            .bank
            .hosts_per_party
            .insert(signer.clone(), count + 1);
        self.state.key_owners.insert(spec.agent_key, signer.clone());
        self.state
            .bank
            .agent_keys
            .insert(spec.agent_key, spec.host_id.clone());
        let host = Host {
            spec: spec.clone(),
            owner: signer.clone(),
            registered_at_ns: timestamp_ns,
        };
        self.state.bank.hosts.insert(spec.host_id.clone(), host);
        Ok(())
    }

    /// The agent key's host, if `key` is one, and its owner.
    pub(crate) fn agent_host(&self, key: &PublicKey) -> Option<(&str, &PartyId)> {
        let host_id = self.state.bank.agent_keys.get(key)?;
        let host = &self.state.bank.hosts[host_id];
        Some((host_id.as_str(), &host.owner))
    }

    fn offer_transfer_id(offer: &Offer) -> u128 {
        derived_id(
            "cbank.offer-transfer.v1",
            &[
                &offer.spec.offer_id.to_le_bytes(),
                &offer.transfer_count.to_le_bytes(),
            ],
        )
    }

    /// Makes a transfer on the ledger's own authority; any failure undoes the command.
    pub(crate) fn ledger_transfer(
        &mut self,
        transfer: Transfer,
        timestamp_ns: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<(), Reason> {
        let journal_index = self.head().index + 1;
        match self.create_transfer(Acting::Ledger, &transfer, timestamp_ns, journal_index, undo) {
            Ok(None) => Ok(()),
            Ok(Some(reason)) | Err(reason) => Err(reason),
        }
    }

    /// Runs `f`, undoing every transfer it made if it fails.
    pub(crate) fn atomically<T>(
        &mut self,
        f: impl FnOnce(&mut Ledger, &mut Vec<Undo>) -> Result<T, Reason>,
    ) -> Result<T, Reason> {
        let mut undo = Vec::new();
        let result = f(self, &mut undo);
        if result.is_err() {
            self.roll_back(&mut undo);
        }
        result
    }

    pub(crate) fn offer_capacity(
        &mut self,
        signer: Signer<'_>,
        spec: &OfferSpec,
        timestamp_ns: u64,
    ) -> Result<bool, Reason> {
        if let Some(existing) = self.state.bank.offers.get(&spec.offer_id) {
            return if existing.spec == *spec && existing.owner == *signer.party() {
                Ok(false)
            } else {
                Err(Reason::OfferExistsWithDifferentFields)
            };
        }
        if spec.offer_id == 0 || spec.offer_id & crate::ids::LEDGER_ID_BIT != 0 {
            return Err(Reason::IdReserved);
        }
        let host = self
            .state
            .bank
            .hosts
            .get(&spec.host_id)
            .ok_or(Reason::HostUnknown)?;
        if !signer.may_act_for(host) {
            return Err(Reason::NotHostOwner);
        }
        if spec.gpu_count == 0 || spec.gpu_count > host.spec.gpu_count {
            return Err(Reason::GpuCountInvalid);
        }
        let window_ns = spec
            .end_ns
            .checked_sub(spec.start_ns)
            .filter(|w| *w > 0)
            .ok_or(Reason::OfferWindowInvalid)?;
        let window_s = whole_seconds(window_ns).ok_or(Reason::OfferWindowInvalid)?;
        if window_ns > OFFER_WINDOW_NS_MAX
            || spec.end_ns <= timestamp_ns
            || spec.start_ns.saturating_add(OFFER_START_PAST_NS_MAX) < timestamp_ns
            || spec.start_ns > timestamp_ns.saturating_add(OFFER_START_AHEAD_NS_MAX)
        {
            return Err(Reason::OfferWindowInvalid);
        }
        // Windows on one host never overlap: the neighbours by start time are enough to check.
        let host_offers = &self.state.bank.host_offers;
        let before = host_offers
            .range((spec.host_id.clone(), 0)..(spec.host_id.clone(), spec.start_ns))
            .next_back();
        let after = host_offers
            .range((spec.host_id.clone(), spec.start_ns)..=(spec.host_id.clone(), u64::MAX))
            .next();
        let offers = &self.state.bank.offers;
        if before.is_some_and(|(_, id)| offers[id].spec.end_ns > spec.start_ns)
            || after.is_some_and(|((_, start), _)| *start < spec.end_ns)
        {
            return Err(Reason::OfferOverlaps);
        }
        let account_id = host.spec.account_id;
        let mint = system_account_id(&Asset::Gpuh(host.spec.gpu_class.clone()), AccountKind::Mint);
        let amount = u128::from(spec.gpu_count) * u128::from(window_s);
        let mut offer = Offer {
            spec: spec.clone(),
            owner: signer.party().clone(),
            reported_until_ns: spec.start_ns,
            pending_transfer_id: None,
            transfer_count: 0,
            delivered_gpu_s: 0,
            busy_gpu_s: 0,
            down_gpu_s: 0,
            unreported_gpu_s: 0,
            offered_at_ns: timestamp_ns,
        };
        self.atomically(|ledger, undo| {
            let id = Ledger::offer_transfer_id(&offer);
            offer.transfer_count += 1;
            let timeout_s = reservation_timeout_s(spec.end_ns, timestamp_ns);
            ledger.ledger_transfer(
                Transfer::pending(
                    id,
                    mint,
                    account_id,
                    amount,
                    timeout_s,
                    codes::OFFER_RESERVED,
                    spec.offer_id,
                ),
                timestamp_ns,
                undo,
            )?;
            offer.pending_transfer_id = Some(id);
            Ok(())
        })?;
        self.state
            .bank
            .host_offers
            .insert((spec.host_id.clone(), spec.start_ns), spec.offer_id);
        self.state.bank.offers.insert(spec.offer_id, offer);
        self.run_allocation(timestamp_ns)?;
        Ok(true)
    }

    pub(crate) fn report_meter(
        &mut self,
        signer: Signer<'_>,
        report: &MeterReport,
        timestamp_ns: u64,
    ) -> Result<bool, Reason> {
        let offer = self
            .state
            .bank
            .offers
            .get(&report.offer_id)
            .ok_or(Reason::OfferUnknown)?;
        let host = &self.state.bank.hosts[&offer.spec.host_id];
        if !signer.may_act_for(host) {
            return Err(Reason::NotHostOwner);
        }
        if let Some(existing) = self
            .state
            .bank
            .meter_reports
            .get(&(report.offer_id, report.from_ns))
        {
            return if existing == report {
                Ok(false)
            } else {
                Err(Reason::MeterReportOverlaps)
            };
        }
        if report.from_ns < offer.reported_until_ns {
            return Err(Reason::MeterReportOverlaps);
        }
        if report.to_ns <= report.from_ns || report.to_ns > offer.spec.end_ns {
            return Err(Reason::MeterReportOutsideWindow);
        }
        if report.to_ns > timestamp_ns {
            return Err(Reason::MeterReportInFuture);
        }
        if report.to_ns.saturating_add(METER_REPORT_LATE_NS_MAX) < timestamp_ns {
            return Err(Reason::MeterReportTooLate);
        }
        let seconds =
            whole_seconds(report.to_ns - report.from_ns).ok_or(Reason::MeterReportInconsistent)?;
        let gap_s = whole_seconds(report.from_ns - offer.reported_until_ns)
            .ok_or(Reason::MeterReportInconsistent)?;
        let gpu_count = u64::from(offer.spec.gpu_count);
        let total = report
            .available_gpu_s
            .checked_add(report.busy_gpu_s)
            .and_then(|s| s.checked_add(report.down_gpu_s));
        if total != Some(gpu_count * seconds) {
            return Err(Reason::MeterReportInconsistent);
        }
        let delivered = report.available_gpu_s + report.busy_gpu_s;
        let remaining_s = whole_seconds(offer.spec.end_ns - report.to_ns)
            .ok_or(Reason::MeterReportInconsistent)?;
        let account_id = host.spec.account_id;
        let mint = system_account_id(&Asset::Gpuh(host.spec.gpu_class.clone()), AccountKind::Mint);
        let mut offer = offer.clone();
        self.atomically(|ledger, undo| {
            if let Some(pending_id) = offer.pending_transfer_id.take() {
                // An expired reservation (the window ended long ago) has nothing left to void.
                if ledger
                    .transfer(pending_id)
                    .is_some_and(|t| t.state == PendingState::Pending)
                {
                    let id = Ledger::offer_transfer_id(&offer);
                    offer.transfer_count += 1;
                    ledger.ledger_transfer(
                        Transfer::void(id, pending_id, codes::OFFER_RELEASED),
                        timestamp_ns,
                        undo,
                    )?;
                }
            }
            if delivered > 0 {
                let id = Ledger::offer_transfer_id(&offer);
                offer.transfer_count += 1;
                let transfer = Transfer::plain(
                    id,
                    mint,
                    account_id,
                    u128::from(delivered),
                    codes::OFFER_DELIVERED,
                    report.offer_id,
                );
                ledger.ledger_transfer(transfer, timestamp_ns, undo)?;
            }
            if remaining_s > 0 {
                let id = Ledger::offer_transfer_id(&offer);
                offer.transfer_count += 1;
                let amount = u128::from(gpu_count) * u128::from(remaining_s);
                let timeout_s = reservation_timeout_s(offer.spec.end_ns, timestamp_ns);
                ledger.ledger_transfer(
                    Transfer::pending(
                        id,
                        mint,
                        account_id,
                        amount,
                        timeout_s,
                        codes::OFFER_RESERVED,
                        report.offer_id,
                    ),
                    timestamp_ns,
                    undo,
                )?;
                offer.pending_transfer_id = Some(id);
            }
            Ok(())
        })?;
        offer.reported_until_ns = report.to_ns;
        offer.delivered_gpu_s += delivered;
        offer.busy_gpu_s += report.busy_gpu_s;
        offer.down_gpu_s += report.down_gpu_s;
        offer.unreported_gpu_s += gap_s * gpu_count;
        self.state.bank.offers.insert(report.offer_id, offer);
        self.state
            .bank
            .meter_reports
            .insert((report.offer_id, report.from_ns), report.clone());
        self.run_allocation(timestamp_ns)?;
        Ok(true)
    }

    pub(crate) fn request_withdrawal(
        &mut self,
        signer: &PartyId,
        spec: &WithdrawalSpec,
        timestamp_ns: u64,
    ) -> Result<bool, Reason> {
        if let Some(existing) = self.state.bank.withdrawals.get(&spec.withdrawal_id) {
            return if existing.spec == *spec && existing.party == *signer {
                Ok(false)
            } else {
                Err(Reason::WithdrawalExistsWithDifferentFields)
            };
        }
        if spec.withdrawal_id == 0 || spec.withdrawal_id & crate::ids::LEDGER_ID_BIT != 0 {
            return Err(Reason::IdReserved);
        }
        if spec.gpu_count == 0
            || spec.gpu_count > HOST_GPUS_MAX
            || spec.duration_s == 0
            || spec.duration_s > WITHDRAWAL_DURATION_S_MAX
        {
            return Err(Reason::WithdrawalInvalid);
        }
        if self.state.bank.queue.len() >= WITHDRAWALS_QUEUED_MAX {
            return Err(Reason::WithdrawalQueueFull);
        }
        let account = self
            .state
            .accounts
            .get(&spec.account_id)
            .ok_or(Reason::DebitAccountUnknown)?;
        if account.party != *signer {
            return Err(Reason::NotAccountOwner);
        }
        let Asset::Gpuh(paying_class) = &account.asset else {
            return Err(Reason::AssetMismatch);
        };
        let wanted_gpu_s = u64::from(spec.gpu_count) * u64::from(spec.duration_s);
        let (charged_gpu_s, rate_version) = if *paying_class == spec.gpu_class {
            (wanted_gpu_s, None)
        } else {
            let table = self.state.bank.rate_table().ok_or(Reason::RateUnknown)?;
            let wanted = *table
                .rates
                .get(&spec.gpu_class)
                .ok_or(Reason::RateUnknown)?;
            let paying = *table.rates.get(paying_class).ok_or(Reason::RateUnknown)?;
            // Rounded up to the GPU-second: the drawer never pays less than the rate says.
            let numerator = u128::from(wanted_gpu_s) * u128::from(wanted);
            let charged = numerator.div_ceil(u128::from(paying));
            (
                u64::try_from(charged).map_err(|_| Reason::WithdrawalInvalid)?,
                Some(table.version),
            )
        };
        let mint = system_account_id(&account.asset, AccountKind::Mint);
        let pending_id = derived_id(
            "cbank.withdrawal-transfer.v1",
            &[&spec.withdrawal_id.to_le_bytes(), &[0]],
        );
        let timeout_s =
            WITHDRAWAL_WAIT_S_MAX + spec.duration_s + (METER_REPORT_LATE_NS_MAX / NS_PER_S) as u32;
        self.atomically(|ledger, undo| {
            let transfer = Transfer::pending(
                pending_id,
                spec.account_id,
                mint,
                u128::from(charged_gpu_s),
                timeout_s,
                codes::WITHDRAWAL_RESERVED,
                spec.withdrawal_id,
            );
            ledger.ledger_transfer(transfer, timestamp_ns, undo)
        })?;
        let withdrawal = Withdrawal {
            spec: spec.clone(),
            party: signer.clone(),
            charged_gpu_s,
            rate_version,
            pending_transfer_id: pending_id,
            state: WithdrawalState::Queued,
            requested_at_ns: timestamp_ns,
        };
        self.state
            .bank
            .withdrawals
            .insert(spec.withdrawal_id, withdrawal);
        let sequence = self.state.bank.queue_next;
        self.state.bank.queue_next += 1;
        self.state.bank.queue.insert(sequence, spec.withdrawal_id);
        self.run_allocation(timestamp_ns)?;
        Ok(true)
    }

    pub(crate) fn cancel_withdrawal(
        &mut self,
        signer: &PartyId,
        withdrawal_id: u128,
        timestamp_ns: u64,
    ) -> Result<(), Reason> {
        let withdrawal = self
            .state
            .bank
            .withdrawals
            .get(&withdrawal_id)
            .ok_or(Reason::WithdrawalUnknown)?;
        if withdrawal.party != *signer {
            return Err(Reason::NotAccountOwner);
        }
        if withdrawal.state != WithdrawalState::Queued {
            return Err(Reason::WithdrawalNotQueued);
        }
        let pending_id = withdrawal.pending_transfer_id;
        if self
            .transfer(pending_id)
            .is_none_or(|t| t.state != PendingState::Pending)
        {
            // Its reservation already expired (refunded); the engine's next run marks it
            // expired. A rejected command changes nothing, so the engine does not run here.
            return Err(Reason::WithdrawalNotQueued);
        }
        let void_id = derived_id(
            "cbank.withdrawal-transfer.v1",
            &[&withdrawal_id.to_le_bytes(), &[1]],
        );
        self.atomically(|ledger, undo| {
            ledger.ledger_transfer(
                Transfer::void(void_id, pending_id, codes::WITHDRAWAL_CANCELLED),
                timestamp_ns,
                undo,
            )
        })?;
        self.state.bank.queue.retain(|_, id| *id != withdrawal_id);
        self.state
            .bank
            .withdrawals
            .get_mut(&withdrawal_id)
            .expect("checked above")
            .state = WithdrawalState::Cancelled;
        self.run_allocation(timestamp_ns)?;
        Ok(())
    }

    pub(crate) fn report_allocation(
        &mut self,
        signer: Signer<'_>,
        allocation_id: u128,
        update: AllocationUpdate,
        timestamp_ns: u64,
    ) -> Result<(), Reason> {
        let allocation = self
            .state
            .bank
            .allocations
            .get(&allocation_id)
            .ok_or(Reason::AllocationUnknown)?;
        let host = &self.state.bank.hosts[&allocation.host_id];
        if !signer.may_act_for(host) {
            return Err(Reason::NotHostOwner);
        }
        let allocated_gpu_s = u64::from(allocation.gpu_count)
            * ((allocation.end_ns - allocation.start_ns) / NS_PER_S);
        let (new_state, delivered) = match (allocation.state, update) {
            (AllocationState::Granted, AllocationUpdate::Running) => {
                (AllocationState::Running, None)
            }
            (
                AllocationState::Granted | AllocationState::Running,
                AllocationUpdate::Completed { delivered_gpu_s },
            ) => (
                AllocationState::Completed { delivered_gpu_s },
                Some(delivered_gpu_s),
            ),
            (
                AllocationState::Granted | AllocationState::Running,
                AllocationUpdate::Failed { delivered_gpu_s },
            ) => (
                AllocationState::Failed { delivered_gpu_s },
                Some(delivered_gpu_s),
            ),
            // A retry of the update that was already applied changes nothing.
            (AllocationState::Running, AllocationUpdate::Running) => return Ok(()),
            (
                AllocationState::Completed {
                    delivered_gpu_s: done,
                },
                AllocationUpdate::Completed { delivered_gpu_s },
            )
            | (
                AllocationState::Failed {
                    delivered_gpu_s: done,
                },
                AllocationUpdate::Failed { delivered_gpu_s },
            ) if done == delivered_gpu_s => return Ok(()),
            _ => return Err(Reason::AllocationStateInvalid),
        };
        if let Some(delivered) = delivered {
            if delivered > allocated_gpu_s {
                return Err(Reason::DeliveredExceedsAllocation);
            }
            let withdrawal = &self.state.bank.withdrawals[&allocation.withdrawal_id];
            // Charge in the paying class: the delivered share of what was reserved, rounded up.
            let charged = u128::from(withdrawal.charged_gpu_s) * u128::from(delivered);
            let charged = charged.div_ceil(u128::from(allocated_gpu_s.max(1)));
            let pending_id = withdrawal.pending_transfer_id;
            let post_id = derived_id(
                "cbank.withdrawal-transfer.v1",
                &[&allocation.withdrawal_id.to_le_bytes(), &[2]],
            );
            self.atomically(|ledger, undo| {
                if charged == 0 {
                    ledger.ledger_transfer(
                        Transfer::void(post_id, pending_id, codes::WITHDRAWAL_CHARGED),
                        timestamp_ns,
                        undo,
                    )
                } else {
                    let mut transfer =
                        Transfer::void(post_id, pending_id, codes::WITHDRAWAL_CHARGED);
                    transfer.flags = TransferFlags {
                        post_pending: true,
                        ..TransferFlags::default()
                    };
                    transfer.amount = charged;
                    ledger.ledger_transfer(transfer, timestamp_ns, undo)
                }
            })?;
        }
        self.state
            .bank
            .allocations
            .get_mut(&allocation_id)
            .expect("checked above")
            .state = new_state;
        if delivered.is_some() {
            self.run_allocation(timestamp_ns)?;
        }
        Ok(())
    }

    /// Serves the queue with the capacity offered now (`market::allocation`).
    fn run_allocation(&mut self, timestamp_ns: u64) -> Result<(), Reason> {
        let bank = &mut self.state.bank;
        // Withdrawals whose reservation expired while queued leave the queue, refunded.
        let transfers = &self.state.transfers;
        let mut expired = Vec::new();
        for (sequence, id) in &bank.queue {
            let pending_id = bank.withdrawals[id].pending_transfer_id;
            if transfers
                .get(pending_id)
                .is_none_or(|t| t.state != PendingState::Pending)
            {
                expired.push((*sequence, *id));
            }
        }
        for (sequence, id) in expired {
            bank.queue.remove(&sequence);
            bank.withdrawals
                .get_mut(&id)
                .expect("queued withdrawals exist")
                .state = WithdrawalState::Expired;
        }
        // Only withdrawals still within their wait: the reservation must outlast the allocation
        // (it times out `WITHDRAWAL_WAIT_S_MAX + duration + late allowance` after the request).
        let wait_ns_max = u64::from(WITHDRAWAL_WAIT_S_MAX) * NS_PER_S;
        let queue: Vec<market::allocation::Request> = bank
            .queue
            .values()
            .filter(|id| {
                bank.withdrawals[*id]
                    .requested_at_ns
                    .saturating_add(wait_ns_max)
                    >= timestamp_ns
            })
            .map(|id| {
                let spec = &bank.withdrawals[id].spec;
                market::allocation::Request {
                    id: *id,
                    gpu_class: spec.gpu_class.clone(),
                    region: spec.region.clone(),
                    gpu_count: spec.gpu_count,
                    duration_ns: u64::from(spec.duration_s) * NS_PER_S,
                }
            })
            .collect();
        if queue.is_empty() {
            return Ok(());
        }
        let mut used: BTreeMap<u128, u32> = BTreeMap::new();
        for allocation in bank.allocations.values() {
            if matches!(
                allocation.state,
                AllocationState::Granted | AllocationState::Running
            ) && allocation.end_ns > timestamp_ns
            {
                *used.entry(allocation.offer_id).or_default() += allocation.gpu_count;
            }
        }
        let slots: Vec<market::allocation::Slot> = bank
            .offers
            .values()
            .filter(|offer| offer.spec.start_ns <= timestamp_ns && offer.spec.end_ns > timestamp_ns)
            .map(|offer| {
                let host = &bank.hosts[&offer.spec.host_id];
                market::allocation::Slot {
                    offer_id: offer.spec.offer_id,
                    gpu_class: host.spec.gpu_class.clone(),
                    region: host.spec.region.clone(),
                    free_gpus: offer
                        .spec
                        .gpu_count
                        .saturating_sub(used.get(&offer.spec.offer_id).copied().unwrap_or(0)),
                    end_ns: offer.spec.end_ns,
                }
            })
            .collect();
        for assignment in market::allocation::allocate(&queue, &slots, timestamp_ns) {
            let withdrawal = bank
                .withdrawals
                .get_mut(&assignment.request_id)
                .expect("queued withdrawals exist");
            let offer = &bank.offers[&assignment.offer_id];
            let allocation_id = derived_id(
                "cbank.allocation.v1",
                &[&assignment.request_id.to_le_bytes()],
            );
            let allocation = Allocation {
                allocation_id,
                withdrawal_id: assignment.request_id,
                party: withdrawal.party.clone(),
                host_id: offer.spec.host_id.clone(),
                offer_id: assignment.offer_id,
                gpu_count: withdrawal.spec.gpu_count,
                start_ns: timestamp_ns,
                end_ns: timestamp_ns + u64::from(withdrawal.spec.duration_s) * NS_PER_S,
                state: AllocationState::Granted,
            };
            withdrawal.state = WithdrawalState::Allocated { allocation_id };
            bank.queue.retain(|_, id| *id != assignment.request_id);
            bank.allocations.insert(allocation_id, allocation);
        }
        Ok(())
    }
}

/// A reservation lasts until the window ends plus the time allowed for late reports.
fn reservation_timeout_s(end_ns: u64, timestamp_ns: u64) -> u32 {
    let seconds = end_ns.saturating_sub(timestamp_ns).div_ceil(NS_PER_S)
        + METER_REPORT_LATE_NS_MAX / NS_PER_S;
    u32::try_from(seconds)
        .unwrap_or(u32::MAX)
        .min(crate::limits::PENDING_TIMEOUT_S_MAX)
}
