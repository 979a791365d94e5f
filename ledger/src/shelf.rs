//! The shelf: fixed-price packages, the token quotas they grant, and token usage metering.
//!
//! - A package is listed by the operator or a provider, with stock. A GPU-hour package's goods
//!   are moved into the asset's escrow when it is listed (`stock × quantity`), so the shelf
//!   never sells what its lister does not have. A token package's tokens are issued from the
//!   `TOK:<family>` mint when bought, as a quota with an expiry, served and metered by the
//!   package's provider.
//! - Buying settles at once: money buyer → lister, goods escrow (or mint) → buyer.
//! - A provider reports usage in signed batches of events, idempotent by (provider, event id),
//!   accepted up to `USAGE_LATE_NS_MAX` late. Usage draws the buyer's live quotas from that
//!   provider, earliest expiry first, and moves the tokens back to the mint; it never takes a
//!   quota below zero: the excess is rejected and reported per event. Alerts are recorded when
//!   a quota's use reaches 80% and 100%.
//! - At expiry, what is left of a quota returns to the mint.

use crate::account::AccountKind;
use crate::asset::Asset;
use crate::ids::{derived_id, system_account_id};
use crate::limits::{
    NS_PER_S, PACKAGES_MAX, PACKAGE_STOCK_MAX, PACKAGE_TITLE_BYTES_MAX, QUOTA_VALIDITY_S_MAX,
    SCHEDULED_PER_COMMAND_MAX, USAGE_EVENTS_PER_BATCH_MAX, USAGE_FUTURE_NS_MAX, USAGE_LATE_NS_MAX,
    USAGE_TOKENS_MAX,
};
use crate::party::{PartyId, Role};
use crate::reason::Reason;
use crate::state_machine::{Ledger, Undo};
use crate::transfer::Transfer;
use crate::vouchers::{Claim, Target, VoucherPaid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Transfer codes of the shelf's derived transfers.
pub mod codes {
    /// A lister's goods moved into escrow as package stock.
    pub const PACKAGE_STOCKED: u16 = 2020;
    /// A package's price, buyer → lister.
    pub const PACKAGE_PAID: u16 = 2021;
    /// A package's goods, escrow (or mint) → buyer.
    pub const PACKAGE_DELIVERED: u16 = 2022;
    /// Tokens used, buyer → mint.
    pub const TOKENS_USED: u16 = 2030;
    /// What was left of a quota at its expiry, buyer → mint.
    pub const QUOTA_EXPIRED: u16 = 2031;
}

/// Usage thresholds that record an alert, in percent of a quota.
pub const ALERT_THRESHOLDS_PCT: [u8; 2] = [80, 100];

/// A package as its lister signs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    /// 1 to 64 bytes of `[a-z0-9._-]`.
    pub package_id: String,
    /// Shown to buyers, at most `PACKAGE_TITLE_BYTES_MAX` bytes.
    pub title: String,
    /// `TOK:<family>` or `GPUH:<class>`.
    pub asset: Asset,
    /// Minor units of `asset` in one package (tokens, GPU-seconds).
    #[serde(with = "crate::wire::u128_text")]
    pub quantity: u128,
    /// Price of one package in minor units of the lister's money account.
    #[serde(with = "crate::wire::u128_text")]
    pub price: u128,
    /// Token packages: how long the quota lasts after purchase. GPU packages: 0.
    #[serde(default)]
    pub validity_s: u32,
    #[serde(with = "crate::wire::u64_text")]
    pub stock: u64,
    /// The lister's account that is paid.
    #[serde(with = "crate::wire::u128_text")]
    pub seller_account_id: u128,
    /// GPU packages: the lister's account the stock comes from. Token packages: absent.
    #[serde(default, with = "crate::wire::option_u128_text")]
    pub goods_account_id: Option<u128>,
    /// Token packages: the provider that serves and meters the tokens (a provider lists only
    /// its own). GPU packages: absent.
    #[serde(default)]
    pub provider: Option<PartyId>,
}

/// A listed package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub spec: PackageSpec,
    pub lister: PartyId,
    #[serde(with = "crate::wire::u64_text")]
    pub sold: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub listed_at_ns: u64,
}

impl Package {
    pub fn remaining(&self) -> u64 {
        self.spec.stock - self.sold
    }
}

/// A purchase as the buyer signs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseSpec {
    #[serde(with = "crate::wire::u128_text")]
    pub purchase_id: u128,
    pub package_id: String,
    /// The buyer's account that pays (the asset of the lister's money account).
    #[serde(with = "crate::wire::u128_text")]
    pub pay_account_id: u128,
    /// The buyer's account of the package's asset, which receives the goods or the quota.
    #[serde(with = "crate::wire::u128_text")]
    pub receive_account_id: u128,
    /// Vouchers that pay their share (`spec/vouchers.md`), at most one per programme.
    #[serde(default, with = "crate::wire::vec_u128_text")]
    pub vouchers: Vec<u128>,
}

/// A recorded purchase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    pub spec: PurchaseSpec,
    pub buyer: PartyId,
    #[serde(with = "crate::wire::u128_text")]
    pub price: u128,
    /// What vouchers paid of the price.
    #[serde(with = "crate::wire::u128_text")]
    pub voucher_paid: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub at_ns: u64,
}

/// Where a quota stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaState {
    Live,
    /// Used up entirely.
    Exhausted,
    /// Expired; `returned` tokens went back to the mint.
    Expired {
        #[serde(with = "crate::wire::u128_text")]
        returned: u128,
    },
}

/// A grant of tokens from one purchase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// The purchase's id.
    #[serde(with = "crate::wire::u128_text")]
    pub quota_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub account_id: u128,
    pub owner: PartyId,
    pub provider: PartyId,
    pub asset: Asset,
    #[serde(with = "crate::wire::u128_text")]
    pub granted: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub used: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub granted_at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub expires_at_ns: u64,
    pub state: QuotaState,
    /// Thresholds (percent) already alerted.
    pub alerted: Vec<u8>,
    /// Derived transfers made so far (the next derived id's sequence).
    pub transfer_count: u32,
}

impl Quota {
    pub fn remaining(&self) -> u128 {
        self.granted - self.used
    }
}

/// One token usage event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageEvent {
    /// Unique per provider: a repeat is reported as `usage_event_exists` and changes nothing.
    #[serde(with = "crate::wire::u128_text")]
    pub event_id: u128,
    /// The buyer's `TOK:<family>` account.
    #[serde(with = "crate::wire::u128_text")]
    pub account_id: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub tokens: u64,
    /// When the tokens were used (provider's clock).
    #[serde(with = "crate::wire::u64_text")]
    pub at_ns: u64,
}

/// An event that was not simply consumed in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageResult {
    pub index: u32,
    pub reason: Reason,
    /// Tokens of the event that were consumed (less than asked with `quota_exhausted`).
    #[serde(with = "crate::wire::u64_text")]
    pub consumed: u64,
    /// Tokens rejected.
    #[serde(with = "crate::wire::u64_text")]
    pub rejected: u64,
}

/// A quota crossed a usage threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    #[serde(with = "crate::wire::u128_text")]
    pub quota_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub account_id: u128,
    pub owner: PartyId,
    pub threshold_pct: u8,
    #[serde(with = "crate::wire::u128_text")]
    pub used: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub granted: u128,
    #[serde(with = "crate::wire::u64_text")]
    pub at_ns: u64,
    #[serde(with = "crate::wire::u64_text")]
    pub journal_index: u64,
}

/// What a usage batch did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecorded {
    #[serde(with = "crate::wire::u128_text")]
    pub consumed: u128,
    /// The events not consumed in full, by index.
    pub results: Vec<UsageResult>,
    pub alerts: Vec<Alert>,
}

/// A quota that expired before a command (recorded in that command's outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaExpired {
    #[serde(with = "crate::wire::u128_text")]
    pub quota_id: u128,
    #[serde(with = "crate::wire::u128_text")]
    pub returned: u128,
}

/// The shelf's part of the ledger state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShelfState {
    pub packages: BTreeMap<String, Package>,
    pub purchases: BTreeMap<u128, Purchase>,
    pub quotas: BTreeMap<u128, Quota>,
    /// Unexpired quotas (live or exhausted) by (account, provider) → (expiry, quota id).
    pub live_quotas: BTreeMap<(u128, PartyId), BTreeSet<(u64, u128)>>,
    /// Unexpired quotas by (expiry, quota id).
    pub quota_expiries: BTreeSet<(u64, u128)>,
    /// Usage events seen, by (provider, event id) → the time after which they are too late
    /// anyway (and can be forgotten).
    pub usage_events: BTreeMap<(PartyId, u128), u64>,
    pub usage_event_expiries: BTreeSet<(u64, PartyId, u128)>,
    /// Alerts by account, in order.
    pub alerts: BTreeMap<u128, Vec<Alert>>,
}

fn package_id_is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

impl Ledger {
    pub fn shelf(&self) -> &ShelfState {
        &self.state.market.shelf
    }

    pub(crate) fn list_package(
        &mut self,
        signer: &PartyId,
        role: Role,
        spec: &PackageSpec,
        timestamp_ns: u64,
    ) -> Result<bool, Reason> {
        if !package_id_is_valid(&spec.package_id) {
            return Err(Reason::PackageIdInvalid);
        }
        if let Some(existing) = self.state.market.shelf.packages.get(&spec.package_id) {
            return if existing.spec == *spec && existing.lister == *signer {
                Ok(false)
            } else {
                Err(Reason::PackageExistsWithDifferentFields)
            };
        }
        let is_tokens = matches!(spec.asset, Asset::Tok(_));
        let shape_ok = spec.quantity > 0
            && spec.price > 0
            && spec.stock > 0
            && spec.stock <= PACKAGE_STOCK_MAX
            && spec.title.len() <= PACKAGE_TITLE_BYTES_MAX
            && !matches!(spec.asset, Asset::Cny)
            && self.state.assets.contains(&spec.asset)
            && if is_tokens {
                (1..=QUOTA_VALIDITY_S_MAX).contains(&spec.validity_s)
                    && spec.goods_account_id.is_none()
            } else {
                spec.validity_s == 0 && spec.goods_account_id.is_some() && spec.provider.is_none()
            };
        if !shape_ok {
            return Err(Reason::PackageSpecInvalid);
        }
        let money = self
            .state
            .accounts
            .get(&spec.seller_account_id)
            .ok_or(Reason::AccountUnknown)?;
        if money.party != *signer {
            return Err(Reason::NotAccountOwner);
        }
        if money.asset == spec.asset {
            return Err(Reason::PackageSpecInvalid);
        }
        if is_tokens {
            let provider = spec
                .provider
                .as_ref()
                .ok_or(Reason::PackageProviderInvalid)?;
            let provider_ok = self
                .state
                .parties
                .get(provider)
                .is_some_and(|p| p.role == Role::Provider)
                && (role == Role::Operator || provider == signer);
            if !provider_ok {
                return Err(Reason::PackageProviderInvalid);
            }
        }
        if self.state.market.shelf.packages.len() >= PACKAGES_MAX {
            return Err(Reason::PackagesLimitReached);
        }
        if let Some(goods) = spec.goods_account_id {
            self.check_order_account(signer, goods, &spec.asset)?;
            let amount = spec
                .quantity
                .checked_mul(u128::from(spec.stock))
                .ok_or(Reason::PackageSpecInvalid)?;
            let escrow = system_account_id(&spec.asset, AccountKind::Escrow);
            let id = derived_id("cbank.package-transfer.v1", &[spec.package_id.as_bytes()]);
            let transfer = Transfer::plain(id, goods, escrow, amount, codes::PACKAGE_STOCKED, 0);
            self.atomically(|ledger, undo| ledger.ledger_transfer(transfer, timestamp_ns, undo))
                .map_err(|reason| match reason {
                    Reason::ExceedsCredits => Reason::InsufficientGoods,
                    other => other,
                })?;
        }
        let package = Package {
            spec: spec.clone(),
            lister: signer.clone(),
            sold: 0,
            listed_at_ns: timestamp_ns,
        };
        self.state
            .market
            .shelf
            .packages
            .insert(spec.package_id.clone(), package);
        Ok(true)
    }

    /// Buys one package and returns what each voucher paid. `Ok(None)`: the same purchase
    /// was made before.
    pub(crate) fn buy_package(
        &mut self,
        signer: &PartyId,
        spec: &PurchaseSpec,
        timestamp_ns: u64,
    ) -> Result<Option<Vec<VoucherPaid>>, Reason> {
        let shelf = &self.state.market.shelf;
        if let Some(existing) = shelf.purchases.get(&spec.purchase_id) {
            return if existing.spec == *spec && existing.buyer == *signer {
                Ok(None)
            } else {
                Err(Reason::PurchaseExistsWithDifferentFields)
            };
        }
        if spec.purchase_id == 0 || spec.purchase_id & crate::ids::LEDGER_ID_BIT != 0 {
            return Err(Reason::IdReserved);
        }
        let package = shelf
            .packages
            .get(&spec.package_id)
            .ok_or(Reason::PackageUnknown)?
            .clone();
        if package.remaining() == 0 {
            return Err(Reason::PackageSoldOut);
        }
        let money_asset = self.state.accounts[&package.spec.seller_account_id]
            .asset
            .clone();
        self.check_order_account(signer, spec.pay_account_id, &money_asset)?;
        self.check_order_account(signer, spec.receive_account_id, &package.spec.asset)?;
        if !spec.vouchers.is_empty() {
            let target = Target {
                id: &spec.package_id,
                asset: &package.spec.asset,
                is_package: true,
            };
            self.check_vouchers(signer, &spec.vouchers, target, timestamp_ns)?;
        }
        let price = package.spec.price;
        let asset = package.spec.asset.clone();
        let source = match package.spec.goods_account_id {
            Some(_) => system_account_id(&asset, AccountKind::Escrow),
            None => system_account_id(&asset, AccountKind::Mint),
        };
        let id = |leg: u8| {
            derived_id(
                "cbank.purchase-transfer.v1",
                &[&spec.purchase_id.to_le_bytes(), &[leg]],
            )
        };
        let claim = Claim {
            buyer: signer,
            seller: &package.lister,
            seller_account: package.spec.seller_account_id,
            purchase: crate::vouchers::Purchase::Package {
                purchase_id: spec.purchase_id,
            },
            claim_id: spec.purchase_id,
            price,
            payable: price,
        };
        // Vouchers pay their share first; the buyer pays the rest.
        let payments = self.atomically(|ledger, undo| {
            let payments = ledger.redeem(&spec.vouchers, &claim, timestamp_ns, undo)?;
            let paid: u128 = payments.iter().map(|v| v.paid).sum();
            let rest = price - paid;
            if ledger.available(spec.pay_account_id) < rest {
                return Err(Reason::InsufficientFunds);
            }
            let mut transfers = vec![Transfer::plain(
                id(1),
                source,
                spec.receive_account_id,
                package.spec.quantity,
                codes::PACKAGE_DELIVERED,
                spec.purchase_id,
            )];
            if rest > 0 {
                transfers.push(Transfer::plain(
                    id(0),
                    spec.pay_account_id,
                    package.spec.seller_account_id,
                    rest,
                    codes::PACKAGE_PAID,
                    spec.purchase_id,
                ));
            }
            for transfer in transfers {
                ledger.ledger_transfer(transfer, timestamp_ns, undo)?;
            }
            Ok(payments)
        })?;
        let voucher_paid: u128 = payments.iter().map(|v| v.paid).sum();
        let shelf = &mut self.state.market.shelf;
        if let Some(listed) = shelf.packages.get_mut(&spec.package_id) {
            listed.sold += 1;
        }
        shelf.purchases.insert(
            spec.purchase_id,
            Purchase {
                spec: spec.clone(),
                buyer: signer.clone(),
                price,
                voucher_paid,
                at_ns: timestamp_ns,
            },
        );
        if let Some(provider) = package.spec.provider {
            let expires_at_ns = timestamp_ns + u64::from(package.spec.validity_s) * NS_PER_S;
            let quota = Quota {
                quota_id: spec.purchase_id,
                account_id: spec.receive_account_id,
                owner: signer.clone(),
                provider: provider.clone(),
                asset,
                granted: package.spec.quantity,
                used: 0,
                granted_at_ns: timestamp_ns,
                expires_at_ns,
                state: QuotaState::Live,
                alerted: Vec::new(),
                transfer_count: 0,
            };
            shelf
                .live_quotas
                .entry((spec.receive_account_id, provider))
                .or_default()
                .insert((expires_at_ns, spec.purchase_id));
            shelf
                .quota_expiries
                .insert((expires_at_ns, spec.purchase_id));
            shelf.quotas.insert(spec.purchase_id, quota);
        }
        Ok(Some(payments))
    }

    /// Records a provider's batch of usage events. Nothing is changed until the whole batch
    /// is worked out, so a refused batch leaves no trace.
    pub(crate) fn record_usage(
        &mut self,
        provider: &PartyId,
        events: &[UsageEvent],
        timestamp_ns: u64,
    ) -> Result<UsageRecorded, Reason> {
        if events.is_empty() {
            return Err(Reason::BatchEmpty);
        }
        if events.len() > USAGE_EVENTS_PER_BATCH_MAX {
            return Err(Reason::BatchTooLarge);
        }
        let journal_index = self.head().index + 1;
        let mut results = Vec::new();
        // Tokens taken per quota and per account in this batch, and the event ids it records.
        let mut taken: BTreeMap<u128, u128> = BTreeMap::new();
        let mut taken_from_account: BTreeMap<u128, u128> = BTreeMap::new();
        let mut seen: BTreeSet<u128> = BTreeSet::new();
        let mut consumed_total = 0u128;
        let shelf = &self.state.market.shelf;
        for (index, event) in events.iter().enumerate() {
            let index = u32::try_from(index).expect("batches are bounded far below u32::MAX");
            let reject = |reason: Reason, consumed: u64| UsageResult {
                index,
                reason,
                consumed,
                rejected: event.tokens - consumed,
            };
            if event.tokens == 0 || event.tokens > USAGE_TOKENS_MAX || event.event_id == 0 {
                results.push(reject(Reason::UsageEventInvalid, 0));
                continue;
            }
            let key = (provider.clone(), event.event_id);
            if shelf.usage_events.contains_key(&key) || seen.contains(&event.event_id) {
                results.push(UsageResult {
                    rejected: 0,
                    ..reject(Reason::UsageEventExists, 0)
                });
                continue;
            }
            if event.at_ns.saturating_add(USAGE_LATE_NS_MAX) < timestamp_ns {
                results.push(reject(Reason::UsageEventTooLate, 0));
                continue;
            }
            if event.at_ns > timestamp_ns.saturating_add(USAGE_FUTURE_NS_MAX) {
                results.push(reject(Reason::UsageEventInFuture, 0));
                continue;
            }
            seen.insert(event.event_id);
            let Some(live) = shelf.live_quotas.get(&(event.account_id, provider.clone())) else {
                results.push(reject(Reason::QuotaNone, 0));
                continue;
            };
            // Never more than the account still holds, even if its owner moved tokens away.
            let account_taken = taken_from_account.entry(event.account_id).or_insert(0);
            let holds = self
                .available(event.account_id)
                .saturating_sub(*account_taken);
            let mut want = u128::from(event.tokens).min(holds);
            let capped = u128::from(event.tokens) - want;
            for (_, quota_id) in live {
                if want == 0 {
                    break;
                }
                let quota = &shelf.quotas[quota_id];
                let already = taken.get(quota_id).copied().unwrap_or(0);
                let take = want.min(quota.remaining() - already);
                if take > 0 {
                    *taken.entry(*quota_id).or_insert(0) += take;
                    want -= take;
                }
            }
            let rejected = want + capped;
            let consumed = u64::try_from(u128::from(event.tokens) - rejected)
                .expect("consumed is at most the event's tokens");
            *account_taken += u128::from(consumed);
            consumed_total += u128::from(consumed);
            if rejected > 0 {
                results.push(reject(Reason::QuotaExhausted, consumed));
            }
        }
        // One transfer per quota for the whole batch: account → mint.
        let mut undo: Vec<Undo> = Vec::new();
        for (quota_id, tokens) in &taken {
            let quota = &self.state.market.shelf.quotas[quota_id];
            let transfer = Transfer::plain(
                quota_transfer_id(quota),
                quota.account_id,
                system_account_id(&quota.asset, AccountKind::Mint),
                *tokens,
                codes::TOKENS_USED,
                *quota_id,
            );
            if let Err(reason) = self.ledger_transfer(transfer, timestamp_ns, &mut undo) {
                self.roll_back(&mut undo);
                return Err(reason);
            }
        }
        // Commit: event ids, quota use, exhaustion, alerts.
        let shelf = &mut self.state.market.shelf;
        let forget_at = |at_ns: u64| at_ns.saturating_add(USAGE_LATE_NS_MAX);
        for event in events.iter().filter(|e| seen.contains(&e.event_id)) {
            let key = (provider.clone(), event.event_id);
            if shelf
                .usage_events
                .insert(key, forget_at(event.at_ns))
                .is_none()
            {
                shelf.usage_event_expiries.insert((
                    forget_at(event.at_ns),
                    provider.clone(),
                    event.event_id,
                ));
            }
        }
        let mut alerts = Vec::new();
        for (quota_id, tokens) in taken {
            let quota = shelf
                .quotas
                .get_mut(&quota_id)
                .expect("taken quotas are recorded");
            quota.used += tokens;
            quota.transfer_count += 1;
            for threshold in ALERT_THRESHOLDS_PCT {
                let reached = quota.used * 100 >= quota.granted * u128::from(threshold);
                if reached && !quota.alerted.contains(&threshold) {
                    quota.alerted.push(threshold);
                    alerts.push(Alert {
                        quota_id,
                        account_id: quota.account_id,
                        owner: quota.owner.clone(),
                        threshold_pct: threshold,
                        used: quota.used,
                        granted: quota.granted,
                        at_ns: timestamp_ns,
                        journal_index,
                    });
                }
            }
            // An exhausted quota stays in the live index until it expires, so later events
            // against it are `quota_exhausted`, whatever batch they come in.
            if quota.remaining() == 0 {
                quota.state = QuotaState::Exhausted;
            }
        }
        for alert in &alerts {
            shelf
                .alerts
                .entry(alert.account_id)
                .or_default()
                .push(alert.clone());
        }
        Ok(UsageRecorded {
            consumed: consumed_total,
            results,
            alerts,
        })
    }

    /// Returns what is left of quotas expiring at or before `timestamp_ns` to the mint, and
    /// forgets usage event ids that are too late to be reported again.
    pub(crate) fn expire_quotas(&mut self, timestamp_ns: u64) -> Vec<QuotaExpired> {
        let shelf = &mut self.state.market.shelf;
        while let Some(first) = shelf.usage_event_expiries.first() {
            if first.0 > timestamp_ns {
                break;
            }
            let (_, provider, event_id) = shelf
                .usage_event_expiries
                .pop_first()
                .expect("first exists");
            shelf.usage_events.remove(&(provider, event_id));
        }
        let mut expired = Vec::new();
        while let Some(&(expiry, quota_id)) = self.state.market.shelf.quota_expiries.first() {
            if expiry > timestamp_ns || expired.len() == SCHEDULED_PER_COMMAND_MAX {
                break;
            }
            let shelf = &mut self.state.market.shelf;
            shelf.quota_expiries.pop_first();
            let quota = shelf
                .quotas
                .get_mut(&quota_id)
                .expect("expiring quotas exist");
            let key = (quota.account_id, quota.provider.clone());
            if let Some(live) = shelf.live_quotas.get_mut(&key) {
                live.remove(&(expiry, quota_id));
                if live.is_empty() {
                    shelf.live_quotas.remove(&key);
                }
            }
            let remaining = quota.remaining();
            let id = quota_transfer_id(quota);
            let mint = system_account_id(&quota.asset, AccountKind::Mint);
            let transfer = Transfer::plain(
                id,
                quota.account_id,
                mint,
                remaining,
                codes::QUOTA_EXPIRED,
                quota_id,
            );
            // If the owner moved tokens away, only what is still there can return.
            let available = self.available(transfer.debit_account_id);
            let returned = remaining.min(available);
            let mut undo = Vec::new();
            let moved = returned == 0
                || self
                    .ledger_transfer(
                        Transfer {
                            amount: returned,
                            ..transfer
                        },
                        timestamp_ns,
                        &mut undo,
                    )
                    .is_ok();
            let returned = if moved { returned } else { 0 };
            let quota = self
                .state
                .market
                .shelf
                .quotas
                .get_mut(&quota_id)
                .expect("expiring quotas exist");
            if returned > 0 {
                quota.transfer_count += 1;
            }
            quota.state = QuotaState::Expired { returned };
            expired.push(QuotaExpired { quota_id, returned });
        }
        expired
    }
}

fn quota_transfer_id(quota: &Quota) -> u128 {
    derived_id(
        "cbank.quota-transfer.v1",
        &[
            &quota.quota_id.to_le_bytes(),
            &quota.transfer_count.to_le_bytes(),
        ],
    )
}
