//! Reason codes: why a command or one event of a batch was not applied.
//!
//! Codes are stable: the number and the snake_case name of a code never change once released,
//! and new codes are only appended. `spec/ledger.md` lists each with its meaning; the node maps
//! them to HTTP statuses in one place. A reason is a recorded result, never a panic.

use serde::{Deserialize, Serialize};

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $variant:ident = $number:literal, $name:literal; )*) => {
        /// A stable reason code. See `spec/ledger.md` for each one's meaning.
        ///
        /// In JSON a reason is its name; in canonical bytes it is its number (a `u16`), so new
        /// codes can be added in any group without changing the bytes of old ones.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $variant = $number, )*
        }

        impl Reason {
            /// Every reason, in number order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// The stable snake_case name (the JSON `code`).
            pub fn name(self) -> &'static str {
                match self { $(Reason::$variant => $name,)* }
            }

            /// The stable number.
            pub fn number(self) -> u16 {
                self as u16
            }

            /// The reason with this number, if there is one.
            pub fn from_number(number: u16) -> Option<Reason> {
                match number { $($number => Some(Reason::$variant),)* _ => None }
            }

            /// The reason with this name, if there is one.
            pub fn from_name(name: &str) -> Option<Reason> {
                match name { $($name => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reason_codes! {
    // Envelope: who signed, when, and whether it was seen before.
    /// The ledger has no genesis yet; only `Genesis` can be applied.
    LedgerNotInitialised = 1, "ledger_not_initialised";
    /// `Genesis` was already applied.
    GenesisAlreadyApplied = 2, "genesis_already_applied";
    /// The envelope's expiry is at or before the command timestamp.
    EnvelopeExpired = 3, "envelope_expired";
    /// The envelope expires further ahead than `ENVELOPE_LIFETIME_NS_MAX`.
    EnvelopeExpiryTooFar = 4, "envelope_expiry_too_far";
    /// The signer is not a registered party.
    SignerUnknown = 5, "signer_unknown";
    /// The key is not an active key of the signer (unknown, revoked, or another party's).
    KeyNotOfSigner = 6, "key_not_of_signer";
    /// The signature does not verify over the canonical bytes with the given key.
    SignatureInvalid = 7, "signature_invalid";
    /// The signer already used this nonce in an envelope that has not expired.
    NonceReplayed = 8, "nonce_replayed";
    /// The signer's role or identity does not allow this command.
    NotPermitted = 9, "not_permitted";

    // Parties and keys.
    PartyIdInvalid = 20, "party_id_invalid";
    PartyExists = 21, "party_exists";
    PartyUnknown = 22, "party_unknown";
    /// A command names no keys where at least one is needed.
    KeysEmpty = 23, "keys_empty";
    /// More keys than `KEYS_PER_PARTY_MAX`.
    KeysTooMany = 24, "keys_too_many";
    /// The key already belongs to a party (keys are never shared or reused).
    KeyInUse = 25, "key_in_use";
    /// The key is not one of the party's active keys.
    KeyUnknown = 26, "key_unknown";
    /// Revoking it would leave the party without an active key.
    KeyLast = 27, "key_last";
    /// The key bytes are not a valid ed25519 point.
    KeyInvalid = 28, "key_invalid";
    /// `register_party` cannot create an operator: the operator party comes from genesis.
    RoleNotRegistrable = 29, "role_not_registrable";
    /// The party has registered `KEY_HISTORY_PER_PARTY_MAX` keys over its life.
    KeyHistoryFull = 30, "key_history_full";
    /// The ledger holds `PARTIES_MAX` parties.
    PartiesLimitReached = 31, "parties_limit_reached";

    // Assets.
    AssetExists = 40, "asset_exists";
    AssetUnknown = 41, "asset_unknown";
    AssetsTooMany = 42, "assets_too_many";
    /// The catalogue holds `ASSETS_MAX` assets.
    AssetsLimitReached = 43, "assets_limit_reached";

    // Batches (accounts and transfers).
    BatchEmpty = 60, "batch_empty";
    BatchTooLarge = 61, "batch_too_large";
    /// Another event in the same linked chain failed.
    LinkedEventFailed = 62, "linked_event_failed";
    /// The last event of the batch has `linked` set: the chain is never closed.
    LinkedEventChainOpen = 63, "linked_event_chain_open";

    // Accounts.
    IdMustNotBeZero = 80, "id_must_not_be_zero";
    IdMustNotBeIntMax = 81, "id_must_not_be_int_max";
    AccountFlagsAreMutuallyExclusive = 82, "account_flags_are_mutually_exclusive";
    /// Only the operator may open system accounts or accounts without
    /// `debits_must_not_exceed_credits`.
    AccountFlagsNotPermitted = 83, "account_flags_not_permitted";
    AccountKindNotPermitted = 84, "account_kind_not_permitted";
    AccountExists = 85, "account_exists";
    AccountExistsWithDifferentFields = 86, "account_exists_with_different_fields";
    AccountsPerPartyLimitReached = 87, "accounts_per_party_limit_reached";
    /// Ids with the top bit set belong to the ledger (system accounts, derived transfers).
    IdReserved = 88, "id_reserved";

    // Transfers.
    TransferFlagsAreMutuallyExclusive = 100, "transfer_flags_are_mutually_exclusive";
    DebitAccountIdMustNotBeZero = 101, "debit_account_id_must_not_be_zero";
    CreditAccountIdMustNotBeZero = 102, "credit_account_id_must_not_be_zero";
    AccountsMustBeDifferent = 103, "accounts_must_be_different";
    DebitAccountUnknown = 104, "debit_account_unknown";
    CreditAccountUnknown = 105, "credit_account_unknown";
    /// The two accounts hold different assets.
    AssetMismatch = 106, "asset_mismatch";
    AmountMustNotBeZero = 107, "amount_must_not_be_zero";
    /// The signer does not own the account this transfer needs it to own.
    NotAccountOwner = 108, "not_account_owner";
    PendingIdMustBeZero = 109, "pending_id_must_be_zero";
    PendingIdMustNotBeZero = 110, "pending_id_must_not_be_zero";
    PendingIdMustNotBeIntMax = 111, "pending_id_must_not_be_int_max";
    PendingIdMustBeDifferent = 112, "pending_id_must_be_different";
    TimeoutReservedForPendingTransfer = 113, "timeout_reserved_for_pending_transfer";
    TimeoutTooLong = 114, "timeout_too_long";
    PendingTransferNotFound = 115, "pending_transfer_not_found";
    PendingTransferNotPending = 116, "pending_transfer_not_pending";
    PendingTransferHasDifferentDebitAccountId = 117, "pending_transfer_has_different_debit_account_id";
    PendingTransferHasDifferentCreditAccountId = 118, "pending_transfer_has_different_credit_account_id";
    ExceedsPendingTransferAmount = 119, "exceeds_pending_transfer_amount";
    PendingTransferHasDifferentAmount = 120, "pending_transfer_has_different_amount";
    PendingTransferAlreadyPosted = 121, "pending_transfer_already_posted";
    PendingTransferAlreadyVoided = 122, "pending_transfer_already_voided";
    PendingTransferExpired = 123, "pending_transfer_expired";
    /// The same id was already applied with exactly these fields: nothing changed (idempotent).
    TransferExists = 124, "transfer_exists";
    /// The same id was already applied with other fields: rejected.
    TransferExistsWithDifferentFields = 125, "transfer_exists_with_different_fields";
    OverflowsDebitsPending = 126, "overflows_debits_pending";
    OverflowsCreditsPending = 127, "overflows_credits_pending";
    OverflowsDebitsPosted = 128, "overflows_debits_posted";
    OverflowsCreditsPosted = 129, "overflows_credits_posted";
    /// The debit account has `debits_must_not_exceed_credits` and would be overdrawn.
    ExceedsCredits = 130, "exceeds_credits";
    /// The credit account has `credits_must_not_exceed_debits` and would exceed its debits.
    ExceedsDebits = 131, "exceeds_debits";
    /// A pending transfer must have a timeout, so a reservation can never be stuck for ever.
    PendingTransferTimeoutRequired = 132, "pending_transfer_timeout_required";

    // The compute bank: hosts, offers, meter reports, withdrawals, allocations, rates.
    /// A host id or region is not 1 to 64 bytes of `[a-z0-9._-]`.
    HostIdInvalid = 140, "host_id_invalid";
    HostExists = 141, "host_exists";
    HostUnknown = 142, "host_unknown";
    /// The host belongs to another institution, or the agent key is another host's.
    NotHostOwner = 143, "not_host_owner";
    GpuCountInvalid = 144, "gpu_count_invalid";
    /// The credit account is not the institution's own main `GPUH:<class>` account.
    AccountNotForHost = 145, "account_not_for_host";
    HostsPerPartyLimitReached = 146, "hosts_per_party_limit_reached";
    OfferExistsWithDifferentFields = 150, "offer_exists_with_different_fields";
    /// Empty, not whole seconds, too long, already over, or starting too far in the past.
    OfferWindowInvalid = 151, "offer_window_invalid";
    /// Another offer of the same host overlaps this window.
    OfferOverlaps = 152, "offer_overlaps";
    /// No such offer (the window does not exist).
    OfferUnknown = 153, "offer_unknown";
    /// The report starts before the end of an earlier report of the same offer.
    MeterReportOverlaps = 160, "meter_report_overlaps";
    MeterReportOutsideWindow = 161, "meter_report_outside_window";
    MeterReportInFuture = 162, "meter_report_in_future";
    /// Reported more than `METER_REPORT_LATE_NS_MAX` after the interval ended.
    MeterReportTooLate = 163, "meter_report_too_late";
    /// available + busy + down is not gpu_count × the interval, or not whole seconds.
    MeterReportInconsistent = 164, "meter_report_inconsistent";
    WithdrawalExistsWithDifferentFields = 170, "withdrawal_exists_with_different_fields";
    WithdrawalInvalid = 171, "withdrawal_invalid";
    WithdrawalQueueFull = 172, "withdrawal_queue_full";
    WithdrawalUnknown = 173, "withdrawal_unknown";
    WithdrawalNotQueued = 174, "withdrawal_not_queued";
    /// The rate table has no rate for a class the conversion needs (or there is no table).
    RateUnknown = 175, "rate_unknown";
    /// A rate table's version must be the current version + 1 (1 for the first).
    RateTableVersionInvalid = 176, "rate_table_version_invalid";
    RateTableInvalid = 177, "rate_table_invalid";
    AllocationUnknown = 180, "allocation_unknown";
    /// The update does not follow granted → running → completed | failed.
    AllocationStateInvalid = 181, "allocation_state_invalid";
    DeliveredExceedsAllocation = 182, "delivered_exceeds_allocation";

    // The supermarket: products and orders (`spec/market.md`).
    ProductUnknown = 200, "product_unknown";
    /// A product id must be 1 to 64 bytes of `[A-Za-z0-9:@/._-]`.
    ProductIdInvalid = 201, "product_id_invalid";
    ProductExistsWithDifferentFields = 202, "product_exists_with_different_fields";
    /// Zero lot or tick, a fee above the maximum, base equal to quote, an auction interval out
    /// of range, or an unregistered asset.
    ProductSpecInvalid = 203, "product_spec_invalid";
    ProductsLimitReached = 204, "products_limit_reached";
    OrderExistsWithDifferentFields = 210, "order_exists_with_different_fields";
    OrderUnknown = 211, "order_unknown";
    /// The order belongs to another party.
    NotOrderOwner = 212, "not_order_owner";
    /// The order is filled or cancelled already.
    OrderNotOpen = 213, "order_not_open";
    /// A market order that is GTC or post-only, or a post-only order that is IOC or FOK.
    OrderTypeInvalid = 214, "order_type_invalid";
    /// A zero price, or one above `PRICE_MAX`.
    PriceInvalid = 215, "price_invalid";
    /// The price is not a whole number of the product's ticks.
    PriceNotOnTick = 216, "price_not_on_tick";
    /// Zero lots, or more than `ORDER_LOTS_MAX`.
    LotsInvalid = 217, "lots_invalid";
    /// The paying account's available balance does not cover the order.
    InsufficientFunds = 218, "insufficient_funds";
    /// The selling account's available balance does not cover the lots.
    InsufficientGoods = 219, "insufficient_goods";
    PostOnlyWouldCross = 220, "post_only_would_cross";
    FillOrKillUnfillable = 221, "fill_or_kill_unfillable";
    /// Auction products take GTC limit orders only.
    OrderTypeNotInAuction = 222, "order_type_not_in_auction";
    /// In an auction book an order may not cross the same party's own opposite order.
    SelfCrossInAuction = 223, "self_cross_in_auction";
    /// On a continuous book an amendment never trades; cancel and place instead.
    AmendWouldCross = 224, "amend_would_cross";
    /// An account the command names does not exist.
    AccountUnknown = 225, "account_unknown";
    /// The book holds `ORDERS_PER_BOOK_MAX` orders.
    BookFull = 226, "book_full";
    /// The quantity is not a whole number of the product's lots.
    QuantityNotOnLot = 227, "quantity_not_on_lot";

    // The shelf: fixed-price packages.
    PackageIdInvalid = 230, "package_id_invalid";
    PackageExistsWithDifferentFields = 231, "package_exists_with_different_fields";
    PackageUnknown = 232, "package_unknown";
    /// Zero quantity, price or stock; a token package without validity (or a GPU package with
    /// one); a title too long; the wrong accounts for the asset.
    PackageSpecInvalid = 233, "package_spec_invalid";
    PackageSoldOut = 234, "package_sold_out";
    PurchaseExistsWithDifferentFields = 235, "purchase_exists_with_different_fields";
    PackagesLimitReached = 236, "packages_limit_reached";
    /// A token package must name a registered provider party (a provider lists only its own).
    PackageProviderInvalid = 237, "package_provider_invalid";

    // Token quotas and usage metering.
    /// This provider already reported an event with this id (nothing changed).
    UsageEventExists = 240, "usage_event_exists";
    /// The event is older than `USAGE_LATE_NS_MAX` at the command's time.
    UsageEventTooLate = 241, "usage_event_too_late";
    /// The event is later than the command's time plus `USAGE_FUTURE_NS_MAX`.
    UsageEventInFuture = 242, "usage_event_in_future";
    /// The quotas ran out: the event's excess tokens were rejected.
    QuotaExhausted = 243, "quota_exhausted";
    /// The account has no live quota served by this provider.
    QuotaNone = 244, "quota_none";
    /// Zero tokens, or more than `USAGE_TOKENS_MAX`.
    UsageEventInvalid = 245, "usage_event_invalid";

    // Vouchers (`spec/vouchers.md`).
    /// A programme id must be 1 to 64 bytes of `[a-z0-9._-]`.
    ProgrammeIdInvalid = 250, "programme_id_invalid";
    ProgrammeExistsWithDifferentFields = 251, "programme_exists_with_different_fields";
    ProgrammeUnknown = 252, "programme_unknown";
    /// Zero budget or cap, a share outside 1 to 10,000 bps, an empty or over-long eligibility
    /// or beneficiary list, a validity that is empty or already over, a title too long.
    ProgrammeSpecInvalid = 253, "programme_spec_invalid";
    ProgrammesLimitReached = 254, "programmes_limit_reached";
    /// Only the government that created a programme issues and revokes its vouchers.
    NotProgrammeOwner = 255, "not_programme_owner";
    /// The voucher's amount is more than the programme has left to issue.
    ProgrammeBudgetExceeded = 256, "programme_budget_exceeded";
    /// The beneficiary is not registered or not eligible under the programme's rules.
    BeneficiaryNotEligible = 257, "beneficiary_not_eligible";
    VoucherExistsWithDifferentFields = 258, "voucher_exists_with_different_fields";
    VoucherUnknown = 259, "voucher_unknown";
    /// The voucher was revoked or has expired.
    VoucherNotLive = 260, "voucher_not_live";
    /// Zero amount, or an expiry not after now or after the programme's validity, or issued
    /// before the programme's validity starts.
    VoucherInvalid = 261, "voucher_invalid";
    /// The voucher belongs to another beneficiary.
    VoucherNotBeneficiary = 262, "voucher_not_beneficiary";
    /// The voucher's programme does not cover this product or package (or it is a sell).
    VoucherNotEligible = 263, "voucher_not_eligible";
    /// More than one voucher, and a programme does not stack.
    VouchersNotStackable = 264, "vouchers_not_stackable";
    /// Two vouchers of one programme towards one order or purchase (one claim each).
    VoucherAlreadyClaimed = 265, "voucher_already_claimed";
    /// More than `VOUCHERS_PER_ORDER_MAX` vouchers.
    VouchersTooMany = 266, "vouchers_too_many";
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(self.name())
        } else {
            serializer.serialize_u16(self.number())
        }
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Reason, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let name = String::deserialize(deserializer)?;
            Reason::from_name(&name)
                .ok_or_else(|| D::Error::custom(format!("unknown reason {name:?}")))
        } else {
            let number = u16::deserialize(deserializer)?;
            Reason::from_number(number)
                .ok_or_else(|| D::Error::custom(format!("unknown reason number {number}")))
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn numbers_and_names_are_unique_and_names_match_serde() {
        let numbers: BTreeSet<u16> = Reason::ALL.iter().map(|r| r.number()).collect();
        let names: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(numbers.len(), Reason::ALL.len());
        assert_eq!(names.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            let json = serde_json::to_string(reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.name()));
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), *reason);
            let bytes = crate::codec::encode(reason);
            assert_eq!(bytes, reason.number().to_le_bytes());
            assert_eq!(crate::codec::decode::<Reason>(&bytes, 2).unwrap(), *reason);
        }
    }
}
