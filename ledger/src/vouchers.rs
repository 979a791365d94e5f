//! Compute vouchers: programmes, issuance, redemption at settlement, revocation, expiry and the
//! reports an auditor recomputes from the journal.
//!
//! - A government creates a programme: its budget moves from the government's `CNY` account
//!   into the programme's own account (opened by the ledger, owned by the government, moved
//!   only by the ledger), with rules: eligible products, packages or asset categories, the most
//!   a voucher pays of one purchase (`max_share_bps`), a cap per beneficiary per calendar year,
//!   validity, eligible beneficiaries, and whether it stacks with other programmes.
//! - Issuing a voucher moves its amount from the programme account to the voucher's own
//!   account (also the ledger's to move). Revocation and expiry move what is left back.
//! - Redemption happens inside settlement (`trading.rs`, `shelf.rs`): the permitted share of an
//!   eligible purchase is paid from the voucher account straight to the seller, in the same
//!   journal entry; every cap is checked there, so it can never be exceeded.
//! - One claim per order or purchase: a programme pays towards one order (all its fills) or one
//!   purchase through one voucher at most.
//!
//! Money identity per programme, at every moment (invariant I8):
//! `budget = unissued + issued` and `issued = redeemed + expired + revoked + outstanding`.

use crate::account::{Account, AccountFlags, AccountKind, Balances};
use crate::asset::Asset;
use crate::ids::derived_id;
use crate::limits::{
    NS_PER_S, PROGRAMMES_MAX, PROGRAMME_ELIGIBLE_MAX, PROGRAMME_LIST_MAX, VOUCHERS_PER_ORDER_MAX,
};
use crate::party::{PartyId, Role};
use crate::reason::Reason;
use crate::state_machine::{Ledger, Undo};
use crate::transfer::Transfer;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Transfer codes of the vouchers' derived transfers.
pub mod codes {
    /// A programme's budget, government → programme account.
    pub const PROGRAMME_FUNDED: u16 = 3001;
    /// A voucher issued, programme → voucher account.
    pub const VOUCHER_ISSUED: u16 = 3002;
    /// A voucher's share of a purchase, voucher account → seller.
    pub const VOUCHER_REDEEMED: u16 = 3003;
    /// What was left of a revoked voucher, voucher account → programme.
    pub const VOUCHER_REVOKED: u16 = 3004;
    /// What was left of an expired voucher, voucher account → programme.
    pub const VOUCHER_EXPIRED: u16 = 3005;
}

/// Who may receive a programme's vouchers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Beneficiaries {
    /// These parties only.
    Parties(Vec<PartyId>),
    /// Any party registered with this role (e.g. every SME).
    Role(Role),
}

/// What a programme subsidises.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eligible {
    /// Order-book product ids.
    #[serde(default)]
    pub products: Vec<String>,
    /// Shelf package ids.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Categories: every product whose base asset, or package whose asset, is one of these.
    #[serde(default)]
    pub assets: Vec<Asset>,
}

impl Eligible {
    fn admits(&self, id: &str, asset: &Asset, is_package: bool) -> bool {
        let listed = if is_package {
            self.packages.iter().any(|p| p == id)
        } else {
            self.products.iter().any(|p| p == id)
        };
        listed || self.assets.contains(asset)
    }

    fn len(&self) -> usize {
        self.products.len() + self.packages.len() + self.assets.len()
    }
}

/// A programme as its government signs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeSpec {
    /// 1 to 64 bytes of `[a-z0-9._-]`.
    pub programme_id: String,
    pub title: String,
    /// Fen moved into the programme from `funding_account_id`.
    #[serde(with = "crate::wire::u128_text")]
    pub budget: u128,
    /// The government's own `CNY` account.
    #[serde(with = "crate::wire::u128_text")]
    pub funding_account_id: u128,
    pub eligible: Eligible,
    /// The most a voucher pays of one purchase, in basis points (3,000: 30%), 1 to 10,000.
    pub max_share_bps: u16,
    /// The most one beneficiary is paid by this programme in one calendar year (UTC), in fen.
    #[serde(with = "crate::wire::u128_text")]
    pub cap_per_beneficiary_per_year: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub valid_from_ns: u64,
    /// Vouchers expire at the latest here.
    #[serde(with = "crate::wire::u64_text")]
    pub valid_until_ns: u64,
    pub beneficiaries: Beneficiaries,
    /// Whether its vouchers may pay towards a purchase that another programme's voucher also
    /// pays towards (both programmes must allow it).
    pub stackable: bool,
}

/// Running totals of a programme, in fen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgrammeTotals {
    #[serde(with = "crate::wire::u128_text")]
    pub issued: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub redeemed: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub expired: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub revoked: u128,
}

impl ProgrammeTotals {
    /// Issued and not yet redeemed, expired or revoked.
    pub fn outstanding(&self) -> u128 {
        self.issued - self.redeemed - self.expired - self.revoked
    }
}

/// A programme.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Programme {
    pub spec: ProgrammeSpec,
    pub government: PartyId,
    /// The programme's own account (unissued budget).
    #[serde(with = "crate::wire::u128_text")]
    pub account_id: u128,
    pub totals: ProgrammeTotals,
    #[serde(with = "crate::wire::u64_text")]
    pub created_at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub journal_index: u64,
    /// Fen paid per (beneficiary, calendar year).
    pub paid_per_year: BTreeMap<(PartyId, i32), u128>,
}

impl Programme {
    /// Budget never issued: `budget − issued`.
    pub fn unissued(&self) -> u128 {
        self.spec.budget - self.totals.issued
    }

    /// What the programme account holds: the unissued budget and what revoked and expired
    /// vouchers returned (which is not issued again: `budget = unissued + issued` always).
    pub fn held(&self) -> u128 {
        self.unissued() + self.totals.expired + self.totals.revoked
    }
}

/// A voucher as its government signs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherSpec {
    #[serde(with = "crate::wire::u128_text")]
    pub voucher_id: u128,
    pub programme_id: String,
    pub beneficiary: PartyId,
    #[serde(with = "crate::wire::u128_text")]
    pub amount: u128,
    /// When it expires; at the latest the programme's `valid_until_ns`.
    #[serde(with = "crate::wire::u64_text")]
    pub expires_at_ns: u64,
}

/// Where a voucher stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoucherStatus {
    Live,
    Revoked,
    Expired,
}

/// A voucher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    pub spec: VoucherSpec,
    #[serde(with = "crate::wire::u128_text")]
    pub account_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub redeemed: u128,
    /// What went back to the programme at revocation or expiry.
    #[serde(with = "crate::wire::u128_text")]
    pub returned: u128,
    pub status: VoucherStatus,
    #[serde(with = "crate::wire::u64_text")]
    pub issued_at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub journal_index: u64,
    /// When it was revoked or expired, and in which journal entry.
    #[serde(with = "crate::wire::option_u64_text")]
    pub ended_at_ns: Option<u64>,
    #[serde(with = "crate::wire::option_u64_text")]
    pub ended_journal_index: Option<u64>,
    /// Derived transfers made so far (the next derived id's sequence).
    pub transfer_count: u32,
}

impl Voucher {
    pub fn remaining(&self) -> u128 {
        self.spec.amount - self.redeemed - self.returned
    }
}

/// What a voucher paid towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purchase {
    /// A fill of a buy order (all fills of one order are one claim).
    Order {
        #[serde(with = "crate::wire::u128_text")]
        order_id: u128,
        #[serde(with = "crate::wire::u64_text")]
        trade_id: u64,
    },
    /// A shelf purchase.
    Package {
        #[serde(with = "crate::wire::u128_text")]
        purchase_id: u128,
    },
}

/// One redemption: a voucher's share of one purchase (or fill).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redemption {
    #[serde(with = "crate::wire::u128_text")]
    pub voucher_id: u128,
    pub programme_id: String,
    pub beneficiary: PartyId,
    pub seller: PartyId,
    pub purchase: Purchase,
    /// What the purchase (or fill) cost in all, and what the voucher paid of it.
    #[serde(with = "crate::wire::u128_text")]
    pub price: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub paid: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub journal_index: u64,
}

/// What one voucher paid towards one fill or purchase (recorded in the trade, so the journal
/// entry that settled it names the voucher).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherPaid {
    #[serde(with = "crate::wire::u128_text")]
    pub voucher_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub paid: u128,
}

/// A voucher that expired before a command (recorded in that command's outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherExpired {
    #[serde(with = "crate::wire::u128_text")]
    pub voucher_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub returned: u128,
}

/// The vouchers' part of the ledger state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VouchersState {
    pub programmes: BTreeMap<String, Programme>,
    pub vouchers: BTreeMap<u128, Voucher>,
    /// Live vouchers by (expiry, id).
    pub expiries: BTreeSet<(u64, u128)>,
    /// Every redemption, in order.
    pub redemptions: Vec<Redemption>,
    /// Claims: (programme, order or purchase id) → the voucher that paid towards it.
    pub claims: BTreeMap<(String, u128), u128>,
}

fn programme_id_is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// The calendar year (UTC, proleptic Gregorian) of a timestamp: days to civil date after
/// Howard Hinnant's `civil_from_days`.
pub fn year_of(timestamp_ns: u64) -> i32 {
    let days = i64::try_from(timestamp_ns / (86_400 * NS_PER_S)).unwrap_or(i64::MAX) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let year = year_of_era + era * 400 + i64::from(month_index >= 10);
    i32::try_from(year).unwrap_or(i32::MAX)
}

/// What a voucher may pay towards: an order-book product or a shelf package.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    pub id: &'a str,
    pub asset: &'a Asset,
    pub is_package: bool,
}

/// One redemption to make: the purchase, its price and what the seller is owed.
pub(crate) struct Claim<'a> {
    pub buyer: &'a PartyId,
    pub seller: &'a PartyId,
    pub seller_account: u128,
    pub purchase: Purchase,
    /// The order or purchase id: one claim per programme and id.
    pub claim_id: u128,
    pub price: u128,
    /// The most the vouchers may pay in all (what the seller receives of this price).
    pub payable: u128,
}

impl Ledger {
    pub fn vouchers(&self) -> &VouchersState {
        &self.state.vouchers
    }

    pub(crate) fn create_programme(
        &mut self,
        signer: &PartyId,
        spec: &ProgrammeSpec,
        timestamp_ns: u64,
    ) -> Result<bool, Reason> {
        if !programme_id_is_valid(&spec.programme_id) {
            return Err(Reason::ProgrammeIdInvalid);
        }
        if let Some(existing) = self.state.vouchers.programmes.get(&spec.programme_id) {
            return if existing.spec == *spec && existing.government == *signer {
                Ok(false)
            } else {
                Err(Reason::ProgrammeExistsWithDifferentFields)
            };
        }
        let beneficiaries_ok = match &spec.beneficiaries {
            Beneficiaries::Parties(list) => !list.is_empty() && list.len() <= PROGRAMME_LIST_MAX,
            Beneficiaries::Role(role) => !matches!(role, Role::Operator | Role::Auditor),
        };
        let eligible = spec.eligible.len();
        if spec.title.len() > crate::limits::PACKAGE_TITLE_BYTES_MAX
            || spec.budget == 0
            || !(1..=10_000).contains(&spec.max_share_bps)
            || spec.cap_per_beneficiary_per_year == 0
            || spec.valid_from_ns >= spec.valid_until_ns
            || spec.valid_until_ns <= timestamp_ns
            || eligible == 0
            || eligible > PROGRAMME_ELIGIBLE_MAX
            || !beneficiaries_ok
        {
            return Err(Reason::ProgrammeSpecInvalid);
        }
        if self.state.vouchers.programmes.len() >= PROGRAMMES_MAX {
            return Err(Reason::ProgrammesLimitReached);
        }
        self.check_order_account(signer, spec.funding_account_id, &Asset::Cny)?;
        let account_id = derived_id(
            "cbank.programme-account.v1",
            &[spec.programme_id.as_bytes()],
        );
        let funding = Transfer::plain(
            derived_id(
                "cbank.programme-transfer.v1",
                &[spec.programme_id.as_bytes()],
            ),
            spec.funding_account_id,
            account_id,
            spec.budget,
            codes::PROGRAMME_FUNDED,
            0,
        );
        let journal_index = self.head().index + 1;
        self.atomically(|ledger, undo| {
            ledger.open_ledger_account(account_id, signer, timestamp_ns, undo);
            ledger.ledger_transfer(funding, timestamp_ns, undo)
        })
        .map_err(|reason| match reason {
            Reason::ExceedsCredits => Reason::InsufficientFunds,
            other => other,
        })?;
        let programme = Programme {
            spec: spec.clone(),
            government: signer.clone(),
            account_id,
            totals: ProgrammeTotals::default(),
            created_at_ns: timestamp_ns,
            journal_index,
            paid_per_year: BTreeMap::new(),
        };
        self.state
            .vouchers
            .programmes
            .insert(spec.programme_id.clone(), programme);
        Ok(true)
    }

    /// Opens a `CNY` escrow account that only the ledger moves (a programme's or a voucher's),
    /// owned by `owner`.
    fn open_ledger_account(
        &mut self,
        id: u128,
        owner: &PartyId,
        timestamp_ns: u64,
        undo: &mut Vec<Undo>,
    ) {
        let account = Account {
            id,
            party: owner.clone(),
            asset: Asset::Cny,
            kind: AccountKind::Escrow,
            flags: AccountFlags {
                debits_must_not_exceed_credits: true,
                ..AccountFlags::default()
            },
            reference: 0,
            balances: Balances::default(),
            timestamp_ns,
        };
        self.state.accounts.insert(id, account);
        *self
            .state
            .accounts_per_party
            .entry(owner.clone())
            .or_insert(0) += 1;
        undo.push(Undo::AccountInserted(id, owner.clone()));
    }

    pub(crate) fn issue_voucher(
        &mut self,
        signer: &PartyId,
        spec: &VoucherSpec,
        timestamp_ns: u64,
    ) -> Result<bool, Reason> {
        if let Some(existing) = self.state.vouchers.vouchers.get(&spec.voucher_id) {
            let same_government =
                self.state.vouchers.programmes[&existing.spec.programme_id].government == *signer;
            return if existing.spec == *spec && same_government {
                Ok(false)
            } else {
                Err(Reason::VoucherExistsWithDifferentFields)
            };
        }
        if spec.voucher_id == 0 || spec.voucher_id & crate::ids::LEDGER_ID_BIT != 0 {
            return Err(Reason::IdReserved);
        }
        let programme = self
            .state
            .vouchers
            .programmes
            .get(&spec.programme_id)
            .ok_or(Reason::ProgrammeUnknown)?;
        if programme.government != *signer {
            return Err(Reason::NotProgrammeOwner);
        }
        if spec.amount == 0
            || spec.expires_at_ns <= timestamp_ns
            || spec.expires_at_ns > programme.spec.valid_until_ns
            || timestamp_ns < programme.spec.valid_from_ns
        {
            return Err(Reason::VoucherInvalid);
        }
        let eligible = match &programme.spec.beneficiaries {
            Beneficiaries::Parties(list) => list.contains(&spec.beneficiary),
            Beneficiaries::Role(role) => self
                .state
                .parties
                .get(&spec.beneficiary)
                .is_some_and(|party| party.role == *role),
        };
        if !eligible || !self.state.parties.contains_key(&spec.beneficiary) {
            return Err(Reason::BeneficiaryNotEligible);
        }
        if spec.amount > programme.unissued() {
            return Err(Reason::ProgrammeBudgetExceeded);
        }
        let programme_account = programme.account_id;
        let government = programme.government.clone();
        let account_id = derived_id(
            "cbank.voucher-account.v1",
            &[&spec.voucher_id.to_le_bytes()],
        );
        let mut voucher = Voucher {
            spec: spec.clone(),
            account_id,
            redeemed: 0,
            returned: 0,
            status: VoucherStatus::Live,
            issued_at_ns: timestamp_ns,
            journal_index: self.head().index + 1,
            ended_at_ns: None,
            ended_journal_index: None,
            transfer_count: 0,
        };
        let transfer = Transfer::plain(
            voucher_transfer_id(&mut voucher),
            programme_account,
            account_id,
            spec.amount,
            codes::VOUCHER_ISSUED,
            spec.voucher_id,
        );
        self.atomically(|ledger, undo| {
            ledger.open_ledger_account(account_id, &government, timestamp_ns, undo);
            ledger.ledger_transfer(transfer, timestamp_ns, undo)
        })?;
        let vouchers = &mut self.state.vouchers;
        if let Some(programme) = vouchers.programmes.get_mut(&spec.programme_id) {
            programme.totals.issued += spec.amount;
        }
        vouchers
            .expiries
            .insert((spec.expires_at_ns, spec.voucher_id));
        vouchers.vouchers.insert(spec.voucher_id, voucher);
        Ok(true)
    }

    pub(crate) fn revoke_voucher(
        &mut self,
        signer: &PartyId,
        voucher_id: u128,
        timestamp_ns: u64,
    ) -> Result<u128, Reason> {
        let voucher = self
            .state
            .vouchers
            .vouchers
            .get(&voucher_id)
            .ok_or(Reason::VoucherUnknown)?;
        let programme = &self.state.vouchers.programmes[&voucher.spec.programme_id];
        if programme.government != *signer {
            return Err(Reason::NotProgrammeOwner);
        }
        if voucher.status != VoucherStatus::Live {
            return Err(Reason::VoucherNotLive);
        }
        self.end_voucher(voucher_id, VoucherStatus::Revoked, timestamp_ns)
    }

    /// Returns what is left of a voucher to its programme and ends it.
    fn end_voucher(
        &mut self,
        voucher_id: u128,
        status: VoucherStatus,
        timestamp_ns: u64,
    ) -> Result<u128, Reason> {
        let vouchers = &mut self.state.vouchers;
        let mut voucher = vouchers.vouchers[&voucher_id].clone();
        let programme_account = vouchers.programmes[&voucher.spec.programme_id].account_id;
        let remaining = voucher.remaining();
        if remaining > 0 {
            let code = match status {
                VoucherStatus::Revoked => codes::VOUCHER_REVOKED,
                _ => codes::VOUCHER_EXPIRED,
            };
            let transfer = Transfer::plain(
                voucher_transfer_id(&mut voucher),
                voucher.account_id,
                programme_account,
                remaining,
                code,
                voucher_id,
            );
            self.atomically(|ledger, undo| ledger.ledger_transfer(transfer, timestamp_ns, undo))?;
        }
        voucher.returned = remaining;
        voucher.status = status;
        voucher.ended_at_ns = Some(timestamp_ns);
        voucher.ended_journal_index = Some(self.head().index + 1);
        let vouchers = &mut self.state.vouchers;
        vouchers
            .expiries
            .remove(&(voucher.spec.expires_at_ns, voucher_id));
        if let Some(programme) = vouchers.programmes.get_mut(&voucher.spec.programme_id) {
            match status {
                VoucherStatus::Revoked => programme.totals.revoked += remaining,
                _ => programme.totals.expired += remaining,
            }
        }
        vouchers.vouchers.insert(voucher_id, voucher);
        Ok(remaining)
    }

    /// Ends vouchers whose expiry is at or before `timestamp_ns`; what is left returns.
    pub(crate) fn expire_vouchers(&mut self, timestamp_ns: u64) -> Vec<VoucherExpired> {
        let mut expired = Vec::new();
        while let Some(&(expiry, voucher_id)) = self.state.vouchers.expiries.first() {
            if expiry > timestamp_ns || expired.len() == crate::limits::SCHEDULED_PER_COMMAND_MAX {
                break;
            }
            // The voucher account holds exactly what is left, so the transfer cannot fail; if
            // it did, the voucher would stay live rather than half-end.
            match self.end_voucher(voucher_id, VoucherStatus::Expired, timestamp_ns) {
                Ok(returned) => expired.push(VoucherExpired {
                    voucher_id,
                    returned,
                }),
                Err(_) => {
                    self.state.vouchers.expiries.remove(&(expiry, voucher_id));
                }
            }
        }
        expired
    }

    /// Checks, before anything changes, that `buyer` may use `vouchers` towards `target`:
    /// each exists, is the buyer's, is live, and its programme covers the target and is in its
    /// validity; at most one per programme; more than one only if every programme stacks.
    pub(crate) fn check_vouchers(
        &self,
        buyer: &PartyId,
        vouchers: &[u128],
        target: Target<'_>,
        timestamp_ns: u64,
    ) -> Result<(), Reason> {
        if vouchers.len() > VOUCHERS_PER_ORDER_MAX {
            return Err(Reason::VouchersTooMany);
        }
        let mut programmes = BTreeSet::new();
        for id in vouchers {
            let voucher = self
                .state
                .vouchers
                .vouchers
                .get(id)
                .ok_or(Reason::VoucherUnknown)?;
            if voucher.spec.beneficiary != *buyer {
                return Err(Reason::VoucherNotBeneficiary);
            }
            if voucher.status != VoucherStatus::Live || voucher.spec.expires_at_ns <= timestamp_ns {
                return Err(Reason::VoucherNotLive);
            }
            let programme = &self.state.vouchers.programmes[&voucher.spec.programme_id];
            if !programme
                .spec
                .eligible
                .admits(target.id, target.asset, target.is_package)
            {
                return Err(Reason::VoucherNotEligible);
            }
            if !programmes.insert(voucher.spec.programme_id.as_str()) {
                return Err(Reason::VoucherAlreadyClaimed);
            }
        }
        let stack = programmes.len() > 1;
        if stack
            && programmes
                .iter()
                .any(|id| !self.state.vouchers.programmes[*id].spec.stackable)
        {
            return Err(Reason::VouchersNotStackable);
        }
        Ok(())
    }

    /// Pays the vouchers' shares of one purchase (or fill) to the seller, each capped by its
    /// programme's share, the voucher's balance, the beneficiary's yearly cap and what is still
    /// payable. A voucher that is no longer live or whose programme already paid towards this
    /// claim through another voucher pays nothing. Returns what each voucher paid.
    pub(crate) fn redeem(
        &mut self,
        vouchers: &[u128],
        claim: &Claim<'_>,
        timestamp_ns: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<Vec<VoucherPaid>, Reason> {
        let journal_index = self.head().index + 1;
        let year = year_of(timestamp_ns);
        let mut paid_total = 0u128;
        let mut payments = Vec::new();
        for &voucher_id in vouchers {
            let Some(voucher) = self.state.vouchers.vouchers.get(&voucher_id) else {
                continue;
            };
            if voucher.status != VoucherStatus::Live || voucher.spec.expires_at_ns <= timestamp_ns {
                continue;
            }
            let programme_id = voucher.spec.programme_id.clone();
            let programme = &self.state.vouchers.programmes[&programme_id];
            let claim_key = (programme_id.clone(), claim.claim_id);
            if self
                .state
                .vouchers
                .claims
                .get(&claim_key)
                .is_some_and(|v| *v != voucher_id)
            {
                continue;
            }
            if timestamp_ns < programme.spec.valid_from_ns
                || timestamp_ns >= programme.spec.valid_until_ns
            {
                continue;
            }
            // Rounded down: a share is never exceeded, not even by a fen.
            let share = claim.price * u128::from(programme.spec.max_share_bps) / 10_000;
            let year_key = (claim.buyer.clone(), year);
            let paid_this_year = programme.paid_per_year.get(&year_key).copied().unwrap_or(0);
            let cap_left = programme
                .spec
                .cap_per_beneficiary_per_year
                .saturating_sub(paid_this_year);
            let pay = share
                .min(voucher.remaining())
                .min(cap_left)
                .min(claim.payable - paid_total);
            if pay == 0 {
                continue;
            }
            let mut voucher = voucher.clone();
            let transfer = Transfer::plain(
                voucher_transfer_id(&mut voucher),
                voucher.account_id,
                claim.seller_account,
                pay,
                codes::VOUCHER_REDEEMED,
                claim.claim_id,
            );
            self.ledger_transfer(transfer, timestamp_ns, undo)?;
            voucher.redeemed += pay;
            paid_total += pay;
            payments.push(VoucherPaid {
                voucher_id,
                paid: pay,
            });
            undo.push(Undo::Voucher(Box::new(
                self.state.vouchers.vouchers[&voucher_id].clone(),
            )));
            self.state.vouchers.vouchers.insert(voucher_id, voucher);
            let programme = self
                .state
                .vouchers
                .programmes
                .get_mut(&programme_id)
                .expect("a voucher's programme exists");
            undo.push(Undo::ProgrammeTotals(
                programme_id.clone(),
                programme.totals,
                year_key.clone(),
                paid_this_year,
            ));
            programme.totals.redeemed += pay;
            programme
                .paid_per_year
                .insert(year_key, paid_this_year + pay);
            if self
                .state
                .vouchers
                .claims
                .insert(claim_key.clone(), voucher_id)
                .is_none()
            {
                undo.push(Undo::Claim(claim_key));
            }
            self.state.vouchers.redemptions.push(Redemption {
                voucher_id,
                programme_id,
                beneficiary: claim.buyer.clone(),
                seller: claim.seller.clone(),
                purchase: claim.purchase,
                price: claim.price,
                paid: pay,
                at_ns: timestamp_ns,
                journal_index,
            });
            undo.push(Undo::RedemptionPushed);
        }
        Ok(payments)
    }
}

fn voucher_transfer_id(voucher: &mut Voucher) -> u128 {
    let id = derived_id(
        "cbank.voucher-transfer.v1",
        &[
            &voucher.spec.voucher_id.to_le_bytes(),
            &voucher.transfer_count.to_le_bytes(),
        ],
    );
    voucher.transfer_count += 1;
    id
}

/// What a report line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Funded,
    Issued,
    Redeemed,
    Revoked,
    Expired,
}

/// One line of a programme report: one movement of programme money, citing the journal entry
/// it came from (the node and `cbank audit` add that entry's hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLine {
    pub kind: LineKind,
    #[serde(with = "crate::wire::option_u128_text")]
    pub voucher_id: Option<u128>,
    pub beneficiary: Option<PartyId>,
    pub seller: Option<PartyId>,
    pub purchase: Option<Purchase>,
    /// The purchase's price, for redemptions.
    #[serde(with = "crate::wire::option_u128_text")]
    pub price: Option<u128>,
    #[serde(with = "crate::wire::u128_text")]
    pub amount: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub journal_index: u64,
}

/// Totals of one party's part of a programme (as beneficiary or seller).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyTotals {
    pub party: PartyId,
    #[serde(with = "crate::wire::u128_text")]
    pub issued: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub redeemed: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub expired: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub revoked: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub outstanding: u128,
}

/// A programme's report: totals, per beneficiary, per seller, and every line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgrammeReport {
    pub programme_id: String,
    pub government: PartyId,
    #[serde(with = "crate::wire::u128_text")]
    pub budget: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub unissued: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub issued: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub redeemed: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub expired: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub revoked: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub outstanding: u128,
    pub beneficiaries: Vec<PartyTotals>,
    /// Per seller: only `redeemed` is used (what vouchers paid it).
    pub sellers: Vec<PartyTotals>,
    pub lines: Vec<ReportLine>,
}

impl Ledger {
    /// The report of one programme, from the ledger's records (recomputed the same way by
    /// `cbank audit verify` from a replayed journal).
    pub fn programme_report(&self, programme_id: &str) -> Option<ProgrammeReport> {
        let state = &self.state.vouchers;
        let programme = state.programmes.get(programme_id)?;
        let mut lines = vec![ReportLine {
            kind: LineKind::Funded,
            voucher_id: None,
            beneficiary: None,
            seller: None,
            purchase: None,
            price: None,
            amount: programme.spec.budget,
            at_ns: programme.created_at_ns,
            journal_index: programme.journal_index,
        }];
        let mut beneficiaries: BTreeMap<&PartyId, PartyTotals> = BTreeMap::new();
        let mut sellers: BTreeMap<&PartyId, PartyTotals> = BTreeMap::new();
        for voucher in state
            .vouchers
            .values()
            .filter(|v| v.spec.programme_id == programme_id)
        {
            let beneficiary = &voucher.spec.beneficiary;
            let totals = beneficiaries
                .entry(beneficiary)
                .or_insert_with(|| PartyTotals::new(beneficiary));
            totals.issued += voucher.spec.amount;
            totals.redeemed += voucher.redeemed;
            let line = |kind, amount, at_ns, journal_index| ReportLine {
                kind,
                voucher_id: Some(voucher.spec.voucher_id),
                beneficiary: Some(beneficiary.clone()),
                seller: None,
                purchase: None,
                price: None,
                amount,
                at_ns,
                journal_index,
            };
            lines.push(line(
                LineKind::Issued,
                voucher.spec.amount,
                voucher.issued_at_ns,
                voucher.journal_index,
            ));
            if let (Some(at_ns), Some(index)) = (voucher.ended_at_ns, voucher.ended_journal_index) {
                let kind = match voucher.status {
                    VoucherStatus::Revoked => {
                        totals.revoked += voucher.returned;
                        LineKind::Revoked
                    }
                    _ => {
                        totals.expired += voucher.returned;
                        LineKind::Expired
                    }
                };
                lines.push(line(kind, voucher.returned, at_ns, index));
            }
            totals.outstanding = voucher_outstanding(totals);
        }
        for redemption in state
            .redemptions
            .iter()
            .filter(|r| r.programme_id == programme_id)
        {
            let seller = sellers
                .entry(&redemption.seller)
                .or_insert_with(|| PartyTotals::new(&redemption.seller));
            seller.redeemed += redemption.paid;
            lines.push(ReportLine {
                kind: LineKind::Redeemed,
                voucher_id: Some(redemption.voucher_id),
                beneficiary: Some(redemption.beneficiary.clone()),
                seller: Some(redemption.seller.clone()),
                purchase: Some(redemption.purchase),
                price: Some(redemption.price),
                amount: redemption.paid,
                at_ns: redemption.at_ns,
                journal_index: redemption.journal_index,
            });
        }
        lines.sort_by_key(|line| (line.journal_index, line_order(line.kind)));
        let totals = programme.totals;
        Some(ProgrammeReport {
            programme_id: programme_id.to_owned(),
            government: programme.government.clone(),
            budget: programme.spec.budget,
            unissued: programme.unissued(),
            issued: totals.issued,
            redeemed: totals.redeemed,
            expired: totals.expired,
            revoked: totals.revoked,
            outstanding: totals.outstanding(),
            beneficiaries: beneficiaries.into_values().collect(),
            sellers: sellers.into_values().collect(),
            lines,
        })
    }
}

impl PartyTotals {
    fn new(party: &PartyId) -> PartyTotals {
        PartyTotals {
            party: party.clone(),
            issued: 0,
            redeemed: 0,
            expired: 0,
            revoked: 0,
            outstanding: 0,
        }
    }
}

fn voucher_outstanding(totals: &PartyTotals) -> u128 {
    totals.issued - totals.redeemed - totals.expired - totals.revoked
}

/// Within one journal entry: issue, then redemptions, then endings.
fn line_order(kind: LineKind) -> u8 {
    match kind {
        LineKind::Funded => 0,
        LineKind::Issued => 1,
        LineKind::Redeemed => 2,
        LineKind::Revoked | LineKind::Expired => 3,
    }
}
