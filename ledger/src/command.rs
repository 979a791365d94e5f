//! Commands: what a party asks the ledger to do.
//!
//! Enums are externally tagged (`{"create_transfers": {...}}` in JSON): the canonical codec
//! cannot decode internally tagged enums.
//! A command is always wrapped in a signed envelope (`envelope.rs`) before it reaches
//! `Ledger::apply`. The canonical encoding of an enum is its variant index, so variants are only
//! ever appended at the end of [`Command`]; reordering them would change signed bytes.

use crate::account::NewAccount;
use crate::asset::Asset;
use crate::bank::{AllocationUpdate, GpuRate, HostSpec, MeterReport, OfferSpec, WithdrawalSpec};
use crate::party::{PartyId, PublicKey, Role};
use crate::shelf::{PackageSpec, PurchaseSpec, UsageEvent};
use crate::trading::{OrderSpec, ProductSpec};
use crate::transfer::Transfer;
use crate::vouchers::{ProgrammeSpec, VoucherSpec};
use serde::{Deserialize, Serialize};

/// Every command the ledger knows. Append new variants at the end only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Bootstraps an empty ledger: registers the operator party with its keys and the first
    /// assets. Signed by one of the keys it registers.
    Genesis {
        operator: PartyId,
        keys: Vec<PublicKey>,
        assets: Vec<Asset>,
    },
    /// Registers a party with a role and its first keys (operator only).
    RegisterParty {
        party: PartyId,
        role: Role,
        keys: Vec<PublicKey>,
    },
    /// Adds a key to a party (the party itself).
    AddKey { party: PartyId, key: PublicKey },
    /// Revokes one of a party's keys (the party itself). The last active key
    /// cannot be revoked. Signatures made before the revocation stay valid for what they signed.
    RevokeKey { party: PartyId, key: PublicKey },
    /// Adds an asset (a GPU class or a model family) to the catalogue (operator only).
    RegisterAsset { asset: Asset },
    /// Opens accounts owned by the signer. Events may be linked into all-or-nothing chains.
    CreateAccounts { accounts: Vec<NewAccount> },
    /// Applies transfers. Events may be linked into all-or-nothing chains.
    CreateTransfers { transfers: Vec<Transfer> },
    /// Publishes the next version of the GPU-class rate table (operator only).
    SetRateTable { version: u32, rates: Vec<GpuRate> },
    /// Registers a GPU host and its agent's key (institution only).
    RegisterHost { host: HostSpec },
    /// Offers a host's GPUs for a window (the institution or the host's agent).
    OfferCapacity { offer: OfferSpec },
    /// Reports one interval of an offer window (the institution or the host's agent).
    ReportMeter { report: MeterReport },
    /// Asks for GPU time, paid from a `GPUH` balance; queued until capacity serves it.
    RequestWithdrawal { withdrawal: WithdrawalSpec },
    /// Cancels a queued withdrawal; its reservation is released.
    CancelWithdrawal {
        #[serde(with = "crate::wire::u128_text")]
        withdrawal_id: u128,
    },
    /// Reports an allocation's progress (the institution or the host's agent).
    ReportAllocation {
        #[serde(with = "crate::wire::u128_text")]
        allocation_id: u128,
        update: AllocationUpdate,
    },
    /// Lists an order-book product in the catalogue (operator only).
    ListProduct { product: ProductSpec },
    /// Places an order on a product's book.
    PlaceOrder { order: OrderSpec },
    /// Cancels one of the signer's open orders; its reservation is released.
    CancelOrder {
        #[serde(with = "crate::wire::u128_text")]
        order_id: u128,
    },
    /// Sets an open order's open quantity (base minor units, whole lots) and, optionally, its
    /// price. Less at the same price keeps queue priority; a new price or more goes to the
    /// back of the queue.
    AmendOrder {
        #[serde(with = "crate::wire::u128_text")]
        order_id: u128,
        #[serde(default, with = "crate::wire::option_u64_text")]
        price: Option<u64>,
        #[serde(with = "crate::wire::u128_text")]
        quantity: u128,
    },
    /// Lists a fixed-price package on the shelf (operator or provider).
    ListPackage { package: PackageSpec },
    /// Buys one package.
    BuyPackage { purchase: PurchaseSpec },
    /// Reports token usage against buyers' quotas (provider only).
    RecordUsage { events: Vec<UsageEvent> },
    /// Creates a voucher programme and moves its budget into it (government only).
    CreateProgramme { programme: ProgrammeSpec },
    /// Issues a voucher from one of the signer's programmes.
    IssueVoucher { voucher: VoucherSpec },
    /// Revokes a live voucher of one of the signer's programmes; what is left returns.
    RevokeVoucher {
        #[serde(with = "crate::wire::u128_text")]
        voucher_id: u128,
    },
}

impl Command {
    /// The command's name as used in `spec/ledger.md` and the access-control table.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Genesis { .. } => "genesis",
            Command::RegisterParty { .. } => "register_party",
            Command::AddKey { .. } => "add_key",
            Command::RevokeKey { .. } => "revoke_key",
            Command::RegisterAsset { .. } => "register_asset",
            Command::CreateAccounts { .. } => "create_accounts",
            Command::CreateTransfers { .. } => "create_transfers",
            Command::SetRateTable { .. } => "set_rate_table",
            Command::RegisterHost { .. } => "register_host",
            Command::OfferCapacity { .. } => "offer_capacity",
            Command::ReportMeter { .. } => "report_meter",
            Command::RequestWithdrawal { .. } => "request_withdrawal",
            Command::CancelWithdrawal { .. } => "cancel_withdrawal",
            Command::ReportAllocation { .. } => "report_allocation",
            Command::ListProduct { .. } => "list_product",
            Command::PlaceOrder { .. } => "place_order",
            Command::CancelOrder { .. } => "cancel_order",
            Command::AmendOrder { .. } => "amend_order",
            Command::ListPackage { .. } => "list_package",
            Command::BuyPackage { .. } => "buy_package",
            Command::RecordUsage { .. } => "record_usage",
            Command::CreateProgramme { .. } => "create_programme",
            Command::IssueVoucher { .. } => "issue_voucher",
            Command::RevokeVoucher { .. } => "revoke_voucher",
        }
    }
}
