//! The replicated state machine: `Ledger::apply(command, timestamp) -> JournalEntry`.
//!
//! Deterministic: the same commands with the same timestamps give byte-identical state on every
//! replica. It never reads a clock (the leader stamps each command), never does I/O, and
//! iterates only ordered maps. A command that fails is a recorded outcome with a `Reason`; a
//! broken invariant (for example a timestamp that does not increase) is a bug and panics.

use crate::account::{Account, AccountFlags, AccountKind, Balances, NewAccount};
use crate::asset::Asset;
use crate::bank::Signer;
use crate::codec;
use crate::command::Command;
use crate::envelope::{key_is_valid, CommandBody, SignedCommand};
use crate::journal::{Hash, Head, JournalEntry};
use crate::limits::{
    ACCOUNTS_PER_BATCH_MAX, ACCOUNTS_PER_PARTY_MAX, ASSETS_MAX, ASSETS_PER_GENESIS_MAX,
    ENVELOPE_LIFETIME_NS_MAX, EXPIRIES_PER_COMMAND_MAX, KEYS_PER_COMMAND_MAX, KEYS_PER_PARTY_MAX,
    KEY_HISTORY_PER_PARTY_MAX, PARTIES_MAX, PENDING_TIMEOUT_S_MAX, SNAPSHOT_BYTES_MAX,
    TRANSFERS_PER_BATCH_MAX,
};
use crate::outcome::{CommandResult, Effect, EventResult, ExpiredTransfer, Outcome, Scheduled};
use crate::party::{KeyRecord, Party, PartyId, PublicKey, Role};
use crate::reason::Reason;
use crate::rights;
use crate::transfer::{PendingState, Transfer, TransferFlags, TransferRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Prefix of the state hash, so it can never equal a journal or signing hash.
const STATE_HASH_DOMAIN: &[u8] = b"cbank.state.v1\0";

/// Bytes gathered before each hasher update while hashing the state.
const STATE_HASH_BUFFER_BYTES: usize = 64 * 1024;

/// Everything the ledger knows. Only ordered collections: their encoding is canonical.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) operator: Option<PartyId>,
    pub(crate) parties: BTreeMap<PartyId, Party>,
    /// Every key ever registered and its party. Keys are never reused, even after revocation.
    pub(crate) key_owners: BTreeMap<PublicKey, PartyId>,
    pub(crate) assets: BTreeSet<Asset>,
    pub(crate) accounts: BTreeMap<u128, Account>,
    pub(crate) accounts_per_party: BTreeMap<PartyId, u32>,
    pub(crate) transfers: crate::transfer_store::TransferStore,
    /// Pending transfers with a timeout, by (deadline, id).
    pub(crate) pending_deadlines: BTreeSet<(u64, u128)>,
    /// Nonces of live envelopes, with their expiry.
    pub(crate) nonces: BTreeMap<(PartyId, u128), u64>,
    /// The same nonces ordered by expiry, to forget them once their envelopes expire.
    pub(crate) nonce_expiries: BTreeSet<(u64, PartyId, u128)>,
    /// The compute bank: hosts, offers, meter reports, withdrawals, allocations.
    pub(crate) bank: crate::bank::BankState,
    /// The supermarket: products, books, orders, trades, the shelf and token quotas.
    pub(crate) market: crate::trading::MarketState,
    /// Voucher programmes, vouchers, claims and redemptions.
    pub(crate) vouchers: crate::vouchers::VouchersState,
}

/// The replicated state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    head: Head,
    last_timestamp_ns: u64,
    /// Transfers stored so far by the command being applied (reset by every `apply`). Not
    /// state: it only numbers `TransferRecord::sequence` within one journal entry.
    #[serde(skip)]
    transfers_in_entry: u32,
    /// The ordinal of the first transfer the command being applied stores: the last command's
    /// transfers are those from it on. Not state: it tells the node which transfers to index.
    #[serde(skip)]
    entry_first_ordinal: u64,
    pub(crate) state: State,
}

/// Whether `apply` verifies the envelope's signature (always, but in `Ledger::replay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signature {
    Verify,
    /// The ledger's own journal recorded that this signature verified.
    RecordedValid,
}

/// On whose authority a transfer is made: a party (who must own the accounts the rules name)
/// or the ledger itself, applying a domain rule (crediting delivered GPU time, settling a
/// trade), which needs no owner's consent because the signed command that triggered it did.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Acting<'a> {
    Party(&'a PartyId),
    Ledger,
}

impl Acting<'_> {
    fn owns(&self, party: &PartyId) -> bool {
        match self {
            Acting::Party(signer) => *signer == party,
            Acting::Ledger => true,
        }
    }
}

/// What to restore when a linked chain (or a domain command) fails part-way.
pub(crate) enum Undo {
    Balances(u128, Balances),
    AccountInserted(u128, PartyId),
    TransferInserted(u128),
    TransferState(u128, PendingState),
    DeadlineInserted(u64, u128),
    DeadlineRemoved(u64, u128),
    /// A voucher as it was before a redemption.
    Voucher(Box<crate::vouchers::Voucher>),
    /// A programme's totals and one beneficiary's paid-this-year before a redemption.
    ProgrammeTotals(
        String,
        crate::vouchers::ProgrammeTotals,
        (PartyId, i32),
        u128,
    ),
    /// A claim recorded.
    Claim((String, u128)),
    /// A redemption appended.
    RedemptionPushed,
}

/// Whether an event applied (`Ok(None)`), was a harmless repeat (`Ok(Some(reason))`), or failed.
type EventOutcome = Result<Option<Reason>, Reason>;

impl Ledger {
    /// An empty ledger: only `Genesis` can be applied to it.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Applies one signed command at `timestamp_ns` and returns its journal entry.
    ///
    /// # Panics
    /// If `timestamp_ns` is not greater than the previous command's: the leader guarantees
    /// strictly increasing timestamps, so this is a bug, not bad input.
    pub fn apply(&mut self, command: &SignedCommand, timestamp_ns: u64) -> JournalEntry {
        self.apply_with(command, timestamp_ns, Signature::Verify)
    }

    /// Applies again an entry that this ledger's own journal recorded, as a node does when it
    /// rebuilds its state after a restart: the same as `apply(&recorded.body.command,
    /// recorded.body.timestamp_ns)`, except that a signature is not verified again when the
    /// recorded outcome shows it verified (any outcome but `signature_invalid`). Verification is
    /// a pure function of the key, the signed bytes and the signature, so it would give the
    /// same answer; it is a quarter of `apply`'s time on large batches.
    ///
    /// The caller must compare the returned entry's hash with the recorded one: a command,
    /// timestamp or outcome changed on disk changes it. Only a journal this process trusts as
    /// its own may be replayed this way; `audit::verify_export` re-verifies every signature.
    pub fn replay(&mut self, recorded: &JournalEntry) -> JournalEntry {
        let signature = match &recorded.body.outcome.result {
            CommandResult::Rejected(Reason::SignatureInvalid) => Signature::Verify,
            _ => Signature::RecordedValid,
        };
        self.apply_with(
            &recorded.body.command,
            recorded.body.timestamp_ns,
            signature,
        )
    }

    fn apply_with(
        &mut self,
        command: &SignedCommand,
        timestamp_ns: u64,
        signature: Signature,
    ) -> JournalEntry {
        assert!(
            timestamp_ns > self.last_timestamp_ns,
            "timestamps must strictly increase: {timestamp_ns} after {}",
            self.last_timestamp_ns
        );
        self.last_timestamp_ns = timestamp_ns;
        self.transfers_in_entry = 0;
        self.entry_first_ordinal = self.state.transfers.len();
        let expired = self.expire_pending_transfers(timestamp_ns);
        self.forget_expired_nonces(timestamp_ns);
        let mut scheduled: Vec<Scheduled> = self
            .clear_due_auctions(timestamp_ns)
            .into_iter()
            .map(Scheduled::AuctionCleared)
            .collect();
        scheduled.extend(
            self.expire_quotas(timestamp_ns)
                .into_iter()
                .map(Scheduled::QuotaExpired),
        );
        scheduled.extend(
            self.expire_vouchers(timestamp_ns)
                .into_iter()
                .map(Scheduled::VoucherExpired),
        );
        let result = match self.check_envelope(command, timestamp_ns, signature) {
            Err(reason) => CommandResult::Rejected(reason),
            Ok((role, agent_host)) => {
                match self.execute(role, agent_host.as_deref(), &command.body, timestamp_ns) {
                    Ok(effect) => CommandResult::Accepted(effect),
                    Err(reason) => CommandResult::Rejected(reason),
                }
            }
        };
        let entry = JournalEntry::new(
            &self.head,
            timestamp_ns,
            command.clone(),
            Outcome {
                expired,
                scheduled,
                result,
            },
        );
        self.head = entry.head();
        entry
    }

    /// The journal head: the index and hash of the last applied entry.
    pub fn head(&self) -> Head {
        self.head
    }

    pub fn last_timestamp_ns(&self) -> u64 {
        self.last_timestamp_ns
    }

    /// Whether `Genesis` has been applied.
    pub fn is_initialised(&self) -> bool {
        self.state.operator.is_some()
    }

    /// A hash over the whole state (and the head): two replicas that applied the same journal
    /// have the same state hash.
    pub fn state_hash(&self) -> Hash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(STATE_HASH_DOMAIN);
        // Hashed as it is encoded: a large ledger's bytes are never all in memory at once.
        let mut buffered = std::io::BufWriter::with_capacity(STATE_HASH_BUFFER_BYTES, &mut hasher);
        self.write_snapshot(&mut buffered)
            .and_then(|()| std::io::Write::flush(&mut buffered))
            .expect("hashing in memory cannot fail");
        drop(buffered);
        Hash(*hasher.finalize().as_bytes())
    }

    /// The whole ledger as canonical bytes (for Raft snapshots).
    pub fn snapshot(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Writes `snapshot()`'s bytes to `writer` as they are encoded (a node streams a snapshot
    /// into its file this way). Fails only if `writer` fails.
    pub fn write_snapshot<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        codec::encode_to_writer(self, writer)
    }

    /// A ledger from `snapshot()` bytes.
    pub fn restore(bytes: &[u8]) -> Result<Ledger, codec::DecodeError> {
        codec::decode(bytes, SNAPSHOT_BYTES_MAX)
    }

    pub fn operator(&self) -> Option<&PartyId> {
        self.state.operator.as_ref()
    }

    pub fn party(&self, id: &PartyId) -> Option<&Party> {
        self.state.parties.get(id)
    }

    pub fn parties(&self) -> impl Iterator<Item = &Party> {
        self.state.parties.values()
    }

    pub fn account(&self, id: u128) -> Option<&Account> {
        self.state.accounts.get(&id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.state.accounts.values()
    }

    pub fn transfer(&self, id: u128) -> Option<&TransferRecord> {
        self.state.transfers.get(id)
    }

    /// A transfer's place in the order transfers were applied (0 for the first ever). It never
    /// changes, so it can index and page statements.
    pub fn transfer_ordinal(&self, id: u128) -> Option<u64> {
        self.state.transfers.ordinal(id)
    }

    /// The transfer at `ordinal` (see [`Ledger::transfer_ordinal`]).
    pub fn transfer_at(&self, ordinal: u64) -> Option<&TransferRecord> {
        self.state.transfers.at(ordinal)
    }

    /// How many transfers are stored: the next transfer's ordinal.
    pub fn transfer_count(&self) -> u64 {
        self.state.transfers.len()
    }

    /// The transfers the last applied command stored (those it listed, and those the ledger
    /// made for it or for what fell due before it), with their ordinals, in the order they
    /// were applied. A rejected command's or a failed chain's transfers were undone and are
    /// not listed.
    pub fn last_entry_transfers(&self) -> impl Iterator<Item = (u64, &TransferRecord)> {
        (self.entry_first_ordinal..).zip(self.state.transfers.iter_from(self.entry_first_ordinal))
    }

    /// Every stored transfer, in the order they were applied (by ordinal).
    pub fn transfers(&self) -> impl Iterator<Item = &TransferRecord> {
        self.state.transfers.iter()
    }

    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.state.assets.iter()
    }

    /// Checks every invariant of `spec/invariants.md` that the state alone can show. Returns
    /// the first violation found. Costs a pass over all accounts and transfers.
    pub fn check_invariants(&self) -> Result<(), String> {
        crate::invariants::check(self)
    }

    /// Whether the two replay-protection indexes hold exactly the same nonces.
    pub(crate) fn nonce_indexes_agree(&self) -> bool {
        self.state.nonces.len() == self.state.nonce_expiries.len()
            && self
                .state
                .nonce_expiries
                .iter()
                .all(|(expires, party, nonce)| {
                    self.state.nonces.get(&(party.clone(), *nonce)) == Some(expires)
                })
    }

    pub(crate) fn pending_deadlines(&self) -> &BTreeSet<(u64, u128)> {
        &self.state.pending_deadlines
    }

    pub(crate) fn accounts_per_party(&self) -> &BTreeMap<PartyId, u32> {
        &self.state.accounts_per_party
    }

    // ---- envelope -------------------------------------------------------------------------

    /// Checks time, signer, key, signature, replay and role, in that order; records the nonce
    /// once the signature is known good. Returns the signer's role and, when the key is a host
    /// agent's, that host.
    fn check_envelope(
        &mut self,
        command: &SignedCommand,
        timestamp_ns: u64,
        signature: Signature,
    ) -> Result<(Role, Option<String>), Reason> {
        let body = &command.body;
        let is_genesis = matches!(body.command, Command::Genesis { .. });
        match (is_genesis, self.is_initialised()) {
            (true, true) => return Err(Reason::GenesisAlreadyApplied),
            (false, false) => return Err(Reason::LedgerNotInitialised),
            _ => {}
        }
        if body.expires_at_ns <= timestamp_ns {
            return Err(Reason::EnvelopeExpired);
        }
        if body.expires_at_ns - timestamp_ns > ENVELOPE_LIFETIME_NS_MAX {
            return Err(Reason::EnvelopeExpiryTooFar);
        }
        let (role, agent_host) = if let Command::Genesis { operator, keys, .. } = &body.command {
            if body.signer != *operator || !keys.contains(&body.key) {
                return Err(Reason::KeyNotOfSigner);
            }
            (Role::Operator, None)
        } else {
            let party = self
                .state
                .parties
                .get(&body.signer)
                .ok_or(Reason::SignerUnknown)?;
            if party.key_is_active(&body.key) {
                (party.role, None)
            } else {
                match self.agent_host(&body.key) {
                    Some((host_id, owner)) if *owner == body.signer => {
                        (party.role, Some(host_id.to_owned()))
                    }
                    _ => return Err(Reason::KeyNotOfSigner),
                }
            }
        };
        if signature == Signature::Verify && !command.signature_is_valid() {
            return Err(Reason::SignatureInvalid);
        }
        let nonce_key = (body.signer.clone(), body.nonce);
        if self.state.nonces.contains_key(&nonce_key) {
            return Err(Reason::NonceReplayed);
        }
        self.state.nonces.insert(nonce_key, body.expires_at_ns);
        self.state
            .nonce_expiries
            .insert((body.expires_at_ns, body.signer.clone(), body.nonce));
        if !is_genesis && !rights::permitted(role, &body.signer, &body.command) {
            return Err(Reason::NotPermitted);
        }
        if agent_host.is_some() && !rights::agent_may_sign(&body.command) {
            return Err(Reason::NotPermitted);
        }
        Ok((role, agent_host))
    }

    /// Forgets nonces whose envelopes have expired: an expired envelope is rejected anyway.
    fn forget_expired_nonces(&mut self, timestamp_ns: u64) {
        while let Some(first) = self.state.nonce_expiries.first() {
            if first.0 > timestamp_ns {
                break;
            }
            let (_, party, nonce) = self.state.nonce_expiries.pop_first().expect("first exists");
            self.state.nonces.remove(&(party, nonce));
        }
    }

    // ---- commands -------------------------------------------------------------------------

    fn execute(
        &mut self,
        role: Role,
        agent_host: Option<&str>,
        body: &CommandBody,
        timestamp_ns: u64,
    ) -> Result<Effect, Reason> {
        let signer = &body.signer;
        let bank_signer = match agent_host {
            Some(host_id) => Signer::Agent {
                party: signer,
                host_id,
            },
            None => Signer::Party(signer),
        };
        match &body.command {
            Command::Genesis {
                operator,
                keys,
                assets,
            } => self.genesis(operator, keys, assets, timestamp_ns),
            Command::RegisterParty { party, role, keys } => {
                if *role == Role::Operator {
                    return Err(Reason::RoleNotRegistrable);
                }
                self.register_party(party, *role, keys, timestamp_ns)?;
                Ok(Effect::PartyRegistered)
            }
            Command::AddKey { party, key } => self.add_key(party, key, timestamp_ns),
            Command::RevokeKey { party, key } => self.revoke_key(party, key, timestamp_ns),
            Command::RegisterAsset { asset } => {
                if self.state.assets.contains(asset) {
                    return Err(Reason::AssetExists);
                }
                if self.state.assets.len() >= ASSETS_MAX {
                    return Err(Reason::AssetsLimitReached);
                }
                self.state.assets.insert(asset.clone());
                self.open_system_accounts(asset, timestamp_ns);
                Ok(Effect::AssetRegistered)
            }
            Command::CreateAccounts { accounts } => {
                check_batch_size(accounts.len(), ACCOUNTS_PER_BATCH_MAX)?;
                let results = self.apply_linked_events(
                    accounts,
                    |a| a.flags.linked,
                    |ledger, account, undo| {
                        ledger.create_account(signer, role, account, timestamp_ns, undo)
                    },
                );
                Ok(Effect::AccountsCreated { results })
            }
            Command::CreateTransfers { transfers } => {
                check_batch_size(transfers.len(), TRANSFERS_PER_BATCH_MAX)?;
                let journal_index = self.head.index + 1;
                let results = self.apply_linked_events(
                    transfers,
                    |t| t.flags.linked,
                    |ledger, transfer, undo| {
                        ledger.create_transfer(
                            Acting::Party(signer),
                            transfer,
                            timestamp_ns,
                            journal_index,
                            undo,
                        )
                    },
                );
                Ok(Effect::TransfersCreated { results })
            }
            Command::SetRateTable { version, rates } => {
                self.set_rate_table(*version, rates, timestamp_ns)?;
                Ok(Effect::RateTableSet)
            }
            Command::RegisterHost { host } => {
                self.register_host(signer, host, timestamp_ns)?;
                Ok(Effect::HostRegistered)
            }
            Command::OfferCapacity { offer } => {
                let new = self.offer_capacity(bank_signer, offer, timestamp_ns)?;
                Ok(Effect::CapacityOffered { repeated: !new })
            }
            Command::ReportMeter { report } => {
                let new = self.report_meter(bank_signer, report, timestamp_ns)?;
                Ok(Effect::MeterRecorded { repeated: !new })
            }
            Command::RequestWithdrawal { withdrawal } => {
                let new = self.request_withdrawal(signer, withdrawal, timestamp_ns)?;
                Ok(Effect::WithdrawalRequested { repeated: !new })
            }
            Command::CancelWithdrawal { withdrawal_id } => {
                self.cancel_withdrawal(signer, *withdrawal_id, timestamp_ns)?;
                Ok(Effect::WithdrawalCancelled)
            }
            Command::ReportAllocation {
                allocation_id,
                update,
            } => {
                self.report_allocation(bank_signer, *allocation_id, *update, timestamp_ns)?;
                Ok(Effect::AllocationUpdated)
            }
            Command::ListProduct { product } => {
                let new = self.list_product(product, timestamp_ns)?;
                Ok(Effect::ProductListed { repeated: !new })
            }
            Command::PlaceOrder { order } => Ok(Effect::OrderPlaced(self.place_order(
                signer,
                order,
                timestamp_ns,
            )?)),
            Command::CancelOrder { order_id } => {
                self.cancel_order(signer, *order_id, timestamp_ns)?;
                Ok(Effect::OrderCancelled)
            }
            Command::AmendOrder {
                order_id,
                price,
                quantity,
            } => {
                let kept_priority =
                    self.amend_order(signer, *order_id, *price, *quantity, timestamp_ns)?;
                Ok(Effect::OrderAmended { kept_priority })
            }
            Command::ListPackage { package } => {
                let new = self.list_package(signer, role, package, timestamp_ns)?;
                Ok(Effect::PackageListed { repeated: !new })
            }
            Command::BuyPackage { purchase } => {
                let bought = self.buy_package(signer, purchase, timestamp_ns)?;
                Ok(Effect::PackageBought {
                    repeated: bought.is_none(),
                    vouchers: bought.unwrap_or_default(),
                })
            }
            Command::RecordUsage { events } => Ok(Effect::UsageRecorded(self.record_usage(
                signer,
                events,
                timestamp_ns,
            )?)),
            Command::CreateProgramme { programme } => {
                let new = self.create_programme(signer, programme, timestamp_ns)?;
                Ok(Effect::ProgrammeCreated { repeated: !new })
            }
            Command::IssueVoucher { voucher } => {
                let new = self.issue_voucher(signer, voucher, timestamp_ns)?;
                Ok(Effect::VoucherIssued { repeated: !new })
            }
            Command::RevokeVoucher { voucher_id } => {
                let returned = self.revoke_voucher(signer, *voucher_id, timestamp_ns)?;
                Ok(Effect::VoucherRevoked { returned })
            }
        }
    }

    fn genesis(
        &mut self,
        operator: &PartyId,
        keys: &[PublicKey],
        assets: &[Asset],
        timestamp_ns: u64,
    ) -> Result<Effect, Reason> {
        if assets.len() > ASSETS_PER_GENESIS_MAX {
            return Err(Reason::AssetsTooMany);
        }
        let unique: BTreeSet<&Asset> = assets.iter().collect();
        if unique.len() != assets.len() {
            return Err(Reason::AssetExists);
        }
        self.register_party(operator, Role::Operator, keys, timestamp_ns)?;
        self.state.operator = Some(operator.clone());
        for asset in assets {
            self.state.assets.insert(asset.clone());
            self.open_system_accounts(asset, timestamp_ns);
        }
        Ok(Effect::GenesisApplied)
    }

    /// Opens the operator's system accounts for a newly registered asset (`ids::SYSTEM_ACCOUNTS`,
    /// at the ids `ids::system_account_id` gives).
    fn open_system_accounts(&mut self, asset: &Asset, timestamp_ns: u64) {
        let operator = self
            .state
            .operator
            .clone()
            .expect("assets are registered after genesis");
        for (kind, guarded) in crate::ids::SYSTEM_ACCOUNTS {
            let id = crate::ids::system_account_id(asset, kind);
            let account = Account {
                id,
                party: operator.clone(),
                asset: asset.clone(),
                kind,
                flags: AccountFlags {
                    debits_must_not_exceed_credits: guarded,
                    ..AccountFlags::default()
                },
                reference: 0,
                balances: Balances::default(),
                timestamp_ns,
            };
            let previous = self.state.accounts.insert(id, account);
            assert!(
                previous.is_none(),
                "system account ids are derived from unique assets"
            );
            *self
                .state
                .accounts_per_party
                .entry(operator.clone())
                .or_insert(0) += 1;
        }
    }

    /// The operator's system account of `kind` for `asset`, if the asset is registered.
    pub fn system_account(&self, asset: &Asset, kind: AccountKind) -> Option<&Account> {
        self.state
            .accounts
            .get(&crate::ids::system_account_id(asset, kind))
    }

    fn register_party(
        &mut self,
        id: &PartyId,
        role: Role,
        keys: &[PublicKey],
        timestamp_ns: u64,
    ) -> Result<(), Reason> {
        if !id.is_valid() {
            return Err(Reason::PartyIdInvalid);
        }
        if self.state.parties.contains_key(id) {
            return Err(Reason::PartyExists);
        }
        if self.state.parties.len() >= PARTIES_MAX {
            return Err(Reason::PartiesLimitReached);
        }
        if keys.is_empty() {
            return Err(Reason::KeysEmpty);
        }
        if keys.len() > KEYS_PER_COMMAND_MAX {
            return Err(Reason::KeysTooMany);
        }
        let mut records = BTreeMap::new();
        for key in keys {
            if !key_is_valid(key) {
                return Err(Reason::KeyInvalid);
            }
            if self.state.key_owners.contains_key(key) {
                return Err(Reason::KeyInUse);
            }
            let record = KeyRecord {
                added_at_ns: timestamp_ns,
                revoked_at_ns: None,
            };
            if records.insert(*key, record).is_some() {
                return Err(Reason::KeyInUse);
            }
        }
        for key in keys {
            self.state.key_owners.insert(*key, id.clone());
        }
        let party = Party {
            id: id.clone(),
            role,
            keys: records,
            registered_at_ns: timestamp_ns,
        };
        self.state.parties.insert(id.clone(), party);
        Ok(())
    }

    fn add_key(
        &mut self,
        id: &PartyId,
        key: &PublicKey,
        timestamp_ns: u64,
    ) -> Result<Effect, Reason> {
        let party = self.state.parties.get_mut(id).ok_or(Reason::PartyUnknown)?;
        if !key_is_valid(key) {
            return Err(Reason::KeyInvalid);
        }
        if self.state.key_owners.contains_key(key) {
            return Err(Reason::KeyInUse);
        }
        if party.active_key_count() >= KEYS_PER_PARTY_MAX {
            return Err(Reason::KeysTooMany);
        }
        if party.keys.len() >= KEY_HISTORY_PER_PARTY_MAX {
            return Err(Reason::KeyHistoryFull);
        }
        party.keys.insert(
            *key,
            KeyRecord {
                added_at_ns: timestamp_ns,
                revoked_at_ns: None,
            },
        );
        self.state.key_owners.insert(*key, id.clone());
        Ok(Effect::KeyAdded)
    }

    fn revoke_key(
        &mut self,
        id: &PartyId,
        key: &PublicKey,
        timestamp_ns: u64,
    ) -> Result<Effect, Reason> {
        let party = self.state.parties.get_mut(id).ok_or(Reason::PartyUnknown)?;
        if !party.key_is_active(key) {
            return Err(Reason::KeyUnknown);
        }
        if party.active_key_count() == 1 {
            return Err(Reason::KeyLast);
        }
        let record = party.keys.get_mut(key).expect("an active key has a record");
        record.revoked_at_ns = Some(timestamp_ns);
        Ok(Effect::KeyRevoked)
    }

    // ---- batches --------------------------------------------------------------------------

    /// Applies a batch of events in order. Consecutive events with `linked` set form a chain
    /// with the first event after them that does not: the chain applies whole or not at all.
    /// Returns the events that did not simply apply.
    fn apply_linked_events<E>(
        &mut self,
        events: &[E],
        linked: impl Fn(&E) -> bool,
        mut apply_one: impl FnMut(&mut Ledger, &E, &mut Vec<Undo>) -> EventOutcome,
    ) -> Vec<EventResult> {
        let mut results = Vec::new();
        let mut undo = Vec::new();
        let mut chain_results = Vec::new();
        let mut start = 0;
        while start < events.len() {
            let mut end = start;
            while end < events.len() && linked(&events[end]) {
                end += 1;
            }
            if end == events.len() {
                // The last event is linked: the chain never closes, so none of it applies.
                for index in start..events.len() {
                    let reason = if index + 1 == events.len() {
                        Reason::LinkedEventChainOpen
                    } else {
                        Reason::LinkedEventFailed
                    };
                    results.push(event_result(index, reason));
                }
                break;
            }
            undo.clear();
            chain_results.clear();
            let mut failed = None;
            for (index, event) in events.iter().enumerate().take(end + 1).skip(start) {
                match apply_one(self, event, &mut undo) {
                    Ok(None) => {}
                    Ok(Some(reason)) => chain_results.push(event_result(index, reason)),
                    Err(reason) => {
                        failed = Some((index, reason));
                        break;
                    }
                }
            }
            match failed {
                None => results.append(&mut chain_results),
                Some((failed_index, reason)) => {
                    self.roll_back(&mut undo);
                    for index in start..=end {
                        let reason = if index == failed_index {
                            reason
                        } else {
                            Reason::LinkedEventFailed
                        };
                        results.push(event_result(index, reason));
                    }
                }
            }
            start = end + 1;
        }
        results
    }

    pub(crate) fn roll_back(&mut self, undo: &mut Vec<Undo>) {
        let state = &mut self.state;
        while let Some(step) = undo.pop() {
            match step {
                Undo::Balances(id, balances) => {
                    state
                        .accounts
                        .get_mut(&id)
                        .expect("undone account exists")
                        .balances = balances;
                }
                Undo::AccountInserted(id, party) => {
                    state.accounts.remove(&id);
                    let count = state
                        .accounts_per_party
                        .get_mut(&party)
                        .expect("owner counted");
                    *count -= 1;
                    if *count == 0 {
                        state.accounts_per_party.remove(&party);
                    }
                }
                Undo::TransferInserted(id) => {
                    state.transfers.pop(id);
                }
                Undo::TransferState(id, previous) => {
                    state
                        .transfers
                        .get_mut(id)
                        .expect("undone transfer exists")
                        .state = previous;
                }
                Undo::DeadlineInserted(deadline, id) => {
                    state.pending_deadlines.remove(&(deadline, id));
                }
                Undo::DeadlineRemoved(deadline, id) => {
                    state.pending_deadlines.insert((deadline, id));
                }
                Undo::Voucher(voucher) => {
                    state
                        .vouchers
                        .vouchers
                        .insert(voucher.spec.voucher_id, *voucher);
                }
                Undo::ProgrammeTotals(programme_id, totals, year_key, paid) => {
                    let programme = state
                        .vouchers
                        .programmes
                        .get_mut(&programme_id)
                        .expect("undone programme exists");
                    programme.totals = totals;
                    if paid == 0 {
                        programme.paid_per_year.remove(&year_key);
                    } else {
                        programme.paid_per_year.insert(year_key, paid);
                    }
                }
                Undo::Claim(key) => {
                    state.vouchers.claims.remove(&key);
                }
                Undo::RedemptionPushed => {
                    state.vouchers.redemptions.pop();
                }
            }
        }
    }

    // ---- accounts -------------------------------------------------------------------------

    fn create_account(
        &mut self,
        signer: &PartyId,
        role: Role,
        new: &NewAccount,
        timestamp_ns: u64,
        undo: &mut Vec<Undo>,
    ) -> EventOutcome {
        check_id(new.id)?;
        let flags = new.flags;
        if flags.debits_must_not_exceed_credits && flags.credits_must_not_exceed_debits {
            return Err(Reason::AccountFlagsAreMutuallyExclusive);
        }
        if let Some(existing) = self.state.accounts.get(&new.id) {
            return if existing.matches(new, signer) {
                Ok(Some(Reason::AccountExists))
            } else {
                Err(Reason::AccountExistsWithDifferentFields)
            };
        }
        if !self.state.assets.contains(&new.asset) {
            return Err(Reason::AssetUnknown);
        }
        if role != Role::Operator {
            if new.kind.is_system() {
                return Err(Reason::AccountKindNotPermitted);
            }
            // Without this flag an account could pay from nothing: only the operator's mint
            // and system accounts may run a debit balance.
            if !flags.debits_must_not_exceed_credits {
                return Err(Reason::AccountFlagsNotPermitted);
            }
        }
        let count = self
            .state
            .accounts_per_party
            .entry(signer.clone())
            .or_insert(0);
        if *count >= ACCOUNTS_PER_PARTY_MAX {
            return Err(Reason::AccountsPerPartyLimitReached);
        }
        *count += 1;
        let account = Account {
            id: new.id,
            party: signer.clone(),
            asset: new.asset.clone(),
            kind: new.kind,
            flags: AccountFlags {
                linked: false,
                ..flags
            },
            reference: new.reference,
            balances: Balances::default(),
            timestamp_ns,
        };
        self.state.accounts.insert(new.id, account);
        undo.push(Undo::AccountInserted(new.id, signer.clone()));
        Ok(None)
    }

    // ---- transfers ------------------------------------------------------------------------

    pub(crate) fn create_transfer(
        &mut self,
        acting: Acting<'_>,
        transfer: &Transfer,
        timestamp_ns: u64,
        journal_index: u64,
        undo: &mut Vec<Undo>,
    ) -> EventOutcome {
        if matches!(acting, Acting::Party(_)) {
            check_id(transfer.id)?;
        }
        let flags = transfer.flags;
        let phases = [flags.pending, flags.post_pending, flags.void_pending];
        if phases.iter().filter(|set| **set).count() > 1 {
            return Err(Reason::TransferFlagsAreMutuallyExclusive);
        }
        if let Some(existing) = self.state.transfers.get(transfer.id) {
            // `linked` says how the request was batched, not what it asks for: a retry outside
            // its original chain is still the same transfer.
            let unlinked = |t: &Transfer| Transfer {
                flags: TransferFlags {
                    linked: false,
                    ..t.flags
                },
                ..t.clone()
            };
            return if unlinked(&existing.transfer) == unlinked(transfer) {
                Ok(Some(Reason::TransferExists))
            } else {
                Err(Reason::TransferExistsWithDifferentFields)
            };
        }
        if flags.post_pending || flags.void_pending {
            self.post_or_void(acting, transfer, timestamp_ns, journal_index, undo)
        } else {
            self.transfer_single_or_pending(acting, transfer, timestamp_ns, journal_index, undo)
        }
    }

    fn transfer_single_or_pending(
        &mut self,
        acting: Acting<'_>,
        transfer: &Transfer,
        timestamp_ns: u64,
        journal_index: u64,
        undo: &mut Vec<Undo>,
    ) -> EventOutcome {
        let pending = transfer.flags.pending;
        if transfer.pending_id != 0 {
            return Err(Reason::PendingIdMustBeZero);
        }
        if !pending && transfer.timeout_s != 0 {
            return Err(Reason::TimeoutReservedForPendingTransfer);
        }
        // Only the ledger may reserve without a deadline (a resting order's reservation lasts
        // as long as the order); a party's reservation must lapse on its own.
        if pending && transfer.timeout_s == 0 && matches!(acting, Acting::Party(_)) {
            return Err(Reason::PendingTransferTimeoutRequired);
        }
        if transfer.timeout_s > PENDING_TIMEOUT_S_MAX {
            return Err(Reason::TimeoutTooLong);
        }
        if transfer.debit_account_id == 0 {
            return Err(Reason::DebitAccountIdMustNotBeZero);
        }
        if transfer.credit_account_id == 0 {
            return Err(Reason::CreditAccountIdMustNotBeZero);
        }
        if transfer.debit_account_id == transfer.credit_account_id {
            return Err(Reason::AccountsMustBeDifferent);
        }
        if transfer.amount == 0 {
            return Err(Reason::AmountMustNotBeZero);
        }
        let debit = self
            .state
            .accounts
            .get(&transfer.debit_account_id)
            .ok_or(Reason::DebitAccountUnknown)?;
        let credit = self
            .state
            .accounts
            .get(&transfer.credit_account_id)
            .ok_or(Reason::CreditAccountUnknown)?;
        if debit.asset != credit.asset {
            return Err(Reason::AssetMismatch);
        }
        if !acting.owns(&debit.party) {
            return Err(Reason::NotAccountOwner);
        }
        let amount = transfer.amount;
        let (mut debit_balances, mut credit_balances) = (debit.balances, credit.balances);
        if pending {
            debit_balances.debits_pending = debit_balances
                .debits_pending
                .checked_add(amount)
                .ok_or(Reason::OverflowsDebitsPending)?;
            credit_balances.credits_pending = credit_balances
                .credits_pending
                .checked_add(amount)
                .ok_or(Reason::OverflowsCreditsPending)?;
        } else {
            debit_balances.debits_posted = debit_balances
                .debits_posted
                .checked_add(amount)
                .ok_or(Reason::OverflowsDebitsPosted)?;
            credit_balances.credits_posted = credit_balances
                .credits_posted
                .checked_add(amount)
                .ok_or(Reason::OverflowsCreditsPosted)?;
        }
        check_limits(debit.flags, &debit_balances, credit.flags, &credit_balances)?;
        let (debit_id, credit_id) = (transfer.debit_account_id, transfer.credit_account_id);
        self.set_balances(debit_id, debit_balances, undo);
        self.set_balances(credit_id, credit_balances, undo);
        let record = TransferRecord {
            transfer: transfer.clone(),
            debit_account_id: debit_id,
            credit_account_id: credit_id,
            amount,
            timestamp_ns,
            state: if pending {
                PendingState::Pending
            } else {
                PendingState::NotPending
            },
            journal_index,
            sequence: self.next_transfer_sequence(),
        };
        if let Some(deadline) = record.deadline_ns() {
            self.state.pending_deadlines.insert((deadline, transfer.id));
            undo.push(Undo::DeadlineInserted(deadline, transfer.id));
        }
        self.state.transfers.push(record);
        undo.push(Undo::TransferInserted(transfer.id));
        Ok(None)
    }

    fn post_or_void(
        &mut self,
        acting: Acting<'_>,
        transfer: &Transfer,
        timestamp_ns: u64,
        journal_index: u64,
        undo: &mut Vec<Undo>,
    ) -> EventOutcome {
        let post = transfer.flags.post_pending;
        check_pending_id(transfer)?;
        if transfer.timeout_s != 0 {
            return Err(Reason::TimeoutReservedForPendingTransfer);
        }
        let pending = self
            .state
            .transfers
            .get(transfer.pending_id)
            .ok_or(Reason::PendingTransferNotFound)?;
        let (debit_id, credit_id) = (pending.debit_account_id, pending.credit_account_id);
        let debit = &self.state.accounts[&debit_id];
        let credit = &self.state.accounts[&credit_id];
        // Ownership comes before anything else about the pending transfer, so a stranger learns
        // nothing of its state or amount. The payee may post or void; the payer may post (pay)
        // but not void its own reservation (it expires at its timeout).
        let owner_may_act = acting.owns(&credit.party) || (post && acting.owns(&debit.party));
        if !owner_may_act {
            return Err(Reason::NotAccountOwner);
        }
        if !pending.transfer.flags.pending {
            return Err(Reason::PendingTransferNotPending);
        }
        if transfer.debit_account_id != 0 && transfer.debit_account_id != pending.debit_account_id {
            return Err(Reason::PendingTransferHasDifferentDebitAccountId);
        }
        if transfer.credit_account_id != 0
            && transfer.credit_account_id != pending.credit_account_id
        {
            return Err(Reason::PendingTransferHasDifferentCreditAccountId);
        }
        match pending.state {
            // Past its deadline it is expired, even if the sweep has not reached it yet.
            PendingState::Pending if pending.deadline_ns().is_some_and(|d| d <= timestamp_ns) => {
                return Err(Reason::PendingTransferExpired)
            }
            PendingState::Pending => {}
            PendingState::Posted { .. } => return Err(Reason::PendingTransferAlreadyPosted),
            PendingState::Voided { .. } => return Err(Reason::PendingTransferAlreadyVoided),
            PendingState::Expired { .. } => return Err(Reason::PendingTransferExpired),
            PendingState::NotPending => {
                unreachable!("a transfer with the pending flag is never NotPending")
            }
        }
        let reserved = pending.amount;
        let amount = if post {
            let amount = if transfer.amount == 0 {
                reserved
            } else {
                transfer.amount
            };
            if amount > reserved {
                return Err(Reason::ExceedsPendingTransferAmount);
            }
            amount
        } else {
            if transfer.amount != 0 && transfer.amount != reserved {
                return Err(Reason::PendingTransferHasDifferentAmount);
            }
            reserved
        };
        let (mut debit_balances, mut credit_balances) = (debit.balances, credit.balances);
        debit_balances.debits_pending -= reserved;
        credit_balances.credits_pending -= reserved;
        if post {
            debit_balances.debits_posted = debit_balances
                .debits_posted
                .checked_add(amount)
                .ok_or(Reason::OverflowsDebitsPosted)?;
            credit_balances.credits_posted = credit_balances
                .credits_posted
                .checked_add(amount)
                .ok_or(Reason::OverflowsCreditsPosted)?;
        }
        let deadline = pending.deadline_ns();
        self.set_balances(debit_id, debit_balances, undo);
        self.set_balances(credit_id, credit_balances, undo);
        let new_state = if post {
            PendingState::Posted {
                by: transfer.id,
                amount,
            }
        } else {
            PendingState::Voided { by: transfer.id }
        };
        self.set_pending_state(transfer.pending_id, new_state, undo);
        if let Some(deadline) = deadline {
            self.state
                .pending_deadlines
                .remove(&(deadline, transfer.pending_id));
            undo.push(Undo::DeadlineRemoved(deadline, transfer.pending_id));
        }
        let record = TransferRecord {
            transfer: transfer.clone(),
            debit_account_id: debit_id,
            credit_account_id: credit_id,
            amount,
            timestamp_ns,
            state: PendingState::NotPending,
            journal_index,
            sequence: self.next_transfer_sequence(),
        };
        self.state.transfers.push(record);
        undo.push(Undo::TransferInserted(transfer.id));
        Ok(None)
    }

    /// Releases pending transfers whose deadline is at or before `timestamp_ns`, earliest first,
    /// at most `EXPIRIES_PER_COMMAND_MAX` (the rest wait for the next command).
    fn expire_pending_transfers(&mut self, timestamp_ns: u64) -> Vec<ExpiredTransfer> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.state.pending_deadlines.first() {
            if deadline > timestamp_ns || expired.len() == EXPIRIES_PER_COMMAND_MAX {
                break;
            }
            self.state.pending_deadlines.pop_first();
            let record = self
                .state
                .transfers
                .get_mut(id)
                .expect("a deadline names a stored transfer");
            assert_eq!(
                record.state,
                PendingState::Pending,
                "only pending transfers have deadlines"
            );
            record.state = PendingState::Expired {
                at_ns: timestamp_ns,
            };
            let (debit_id, credit_id, amount) = (
                record.debit_account_id,
                record.credit_account_id,
                record.amount,
            );
            let debit = self
                .state
                .accounts
                .get_mut(&debit_id)
                .expect("transfer accounts exist");
            debit.balances.debits_pending -= amount;
            let credit = self
                .state
                .accounts
                .get_mut(&credit_id)
                .expect("transfer accounts exist");
            credit.balances.credits_pending -= amount;
            expired.push(ExpiredTransfer { id });
        }
        expired
    }

    fn next_transfer_sequence(&mut self) -> u32 {
        let sequence = self.transfers_in_entry;
        self.transfers_in_entry += 1;
        sequence
    }

    fn set_balances(&mut self, id: u128, balances: Balances, undo: &mut Vec<Undo>) {
        let account = self
            .state
            .accounts
            .get_mut(&id)
            .expect("checked account exists");
        undo.push(Undo::Balances(id, account.balances));
        account.balances = balances;
    }

    fn set_pending_state(&mut self, id: u128, state: PendingState, undo: &mut Vec<Undo>) {
        let record = self
            .state
            .transfers
            .get_mut(id)
            .expect("checked transfer exists");
        undo.push(Undo::TransferState(id, record.state));
        record.state = state;
    }
}

fn event_result(index: usize, reason: Reason) -> EventResult {
    // Batches are bounded by TRANSFERS_PER_BATCH_MAX, far below u32::MAX.
    EventResult {
        index: u32::try_from(index).expect("batch index fits u32"),
        reason,
    }
}

fn check_batch_size(len: usize, len_max: usize) -> Result<(), Reason> {
    if len == 0 {
        return Err(Reason::BatchEmpty);
    }
    if len > len_max {
        return Err(Reason::BatchTooLarge);
    }
    Ok(())
}

/// Checks an id a party chose: not 0, not `u128::MAX`, and not in the ledger's own half
/// (top bit set), where the ids of system accounts and derived transfers live.
fn check_id(id: u128) -> Result<(), Reason> {
    match id {
        0 => Err(Reason::IdMustNotBeZero),
        u128::MAX => Err(Reason::IdMustNotBeIntMax),
        id if id & crate::ids::LEDGER_ID_BIT != 0 => Err(Reason::IdReserved),
        _ => Ok(()),
    }
}

fn check_pending_id(transfer: &Transfer) -> Result<(), Reason> {
    match transfer.pending_id {
        0 => Err(Reason::PendingIdMustNotBeZero),
        u128::MAX => Err(Reason::PendingIdMustNotBeIntMax),
        id if id == transfer.id => Err(Reason::PendingIdMustBeDifferent),
        _ => Ok(()),
    }
}

/// The balance limits the two accounts' flags ask for, after a transfer.
fn check_limits(
    debit_flags: AccountFlags,
    debit: &Balances,
    credit_flags: AccountFlags,
    credit: &Balances,
) -> Result<(), Reason> {
    if debit_flags.debits_must_not_exceed_credits {
        let debits = debit
            .debits_pending
            .checked_add(debit.debits_posted)
            .ok_or(Reason::ExceedsCredits)?;
        if debits > debit.credits_posted {
            return Err(Reason::ExceedsCredits);
        }
    }
    if credit_flags.credits_must_not_exceed_debits {
        let credits = credit
            .credits_pending
            .checked_add(credit.credits_posted)
            .ok_or(Reason::ExceedsDebits)?;
        if credits > credit.debits_posted {
            return Err(Reason::ExceedsDebits);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, MAIN, OPERATOR};

    /// A small funded ledger: mint 1 → account 2 (sme), with a pending transfer 11 → 3.
    fn funded() -> Harness {
        let mut h = Harness::new();
        h.add_party("sme", Role::Sme);
        h.open_account(OPERATOR, 1, "CNY", crate::AccountKind::Mint, false);
        h.open_account("sme", 2, "CNY", MAIN, true);
        h.open_account("sme", 3, "CNY", MAIN, true);
        let transfer = |id, debit, credit, pending: bool| Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount: 100,
            pending_id: 0,
            timeout_s: if pending { 60 } else { 0 },
            code: 0,
            reference: 0,
            flags: TransferFlags {
                pending,
                ..Default::default()
            },
        };
        h.expect_accepted(
            OPERATOR,
            Command::CreateTransfers {
                transfers: vec![transfer(10, 1, 2, false)],
            },
        );
        h.expect_accepted(
            "sme",
            Command::CreateTransfers {
                transfers: vec![transfer(11, 2, 3, true)],
            },
        );
        h.ledger.check_invariants().expect("a sound ledger passes");
        h
    }

    /// Each corruption must be caught: the checker can fail.
    #[test]
    fn invariants_catch_corrupted_state() {
        type Corruption = Box<dyn Fn(&mut State)>;
        let corruptions: Vec<(&str, Corruption)> = vec![
            (
                "I1",
                Box::new(|s| s.accounts.get_mut(&2).unwrap().balances.credits_posted += 1),
            ),
            (
                "I2",
                Box::new(|s| {
                    let b = &mut s.accounts.get_mut(&2).unwrap().balances;
                    b.debits_posted += 1_000;
                    s.accounts.get_mut(&1).unwrap().balances.credits_posted += 1_000;
                }),
            ),
            // Balanced and within limits, but not what the transfers say.
            (
                "I3",
                Box::new(|s| {
                    s.accounts.get_mut(&1).unwrap().balances.debits_posted += 1;
                    s.accounts.get_mut(&3).unwrap().balances.credits_posted += 1;
                }),
            ),
            ("I4", Box::new(|s| s.pending_deadlines.clear())),
            (
                "I5",
                Box::new(|s| {
                    let first = s.nonces.keys().next().unwrap().clone();
                    s.nonces.insert(first, 1);
                }),
            ),
        ];
        for (invariant, corrupt) in corruptions {
            let mut h = funded();
            corrupt(&mut h.ledger.state);
            let error = h.ledger.check_invariants().expect_err(invariant);
            assert!(
                error.starts_with(invariant),
                "{invariant} expected, got: {error}"
            );
        }
    }

    #[test]
    fn the_journal_chain_verifies_and_names_the_first_bad_entry() {
        let mut h = Harness::new();
        let mut entries = Vec::new();
        for party in ["a", "b", "c", "d"] {
            let key = crate::testing::demo_key(party);
            let command = Command::RegisterParty {
                party: PartyId::new(party),
                role: Role::Sme,
                keys: vec![key.public_key()],
            };
            entries.push(h.submit(OPERATOR, command));
        }
        // Entries 2..=5 follow the genesis entry (index 1): a fresh harness stops right there.
        let genesis_head = Harness::new().ledger.head();
        assert_eq!(
            crate::journal::verify_chain(genesis_head, &entries),
            Ok(h.ledger.head())
        );
        let mut tampered = entries.clone();
        tampered[2].body.timestamp_ns += 1;
        let error = crate::journal::verify_chain(genesis_head, &tampered).unwrap_err();
        assert_eq!(error.index, entries[2].body.index);
        let mut skipped = entries.clone();
        skipped.remove(1);
        assert_eq!(
            crate::journal::verify_chain(genesis_head, &skipped)
                .unwrap_err()
                .index,
            entries[1].body.index
        );
    }

    #[test]
    fn a_checkpoint_verifies_only_unchanged() {
        let h = funded();
        let node_key = crate::testing::demo_key("node-1");
        let checkpoint = crate::Checkpoint::sign(h.ledger.head(), &node_key);
        assert!(checkpoint.signature_is_valid());
        let mut moved = checkpoint.clone();
        moved.head.index += 1;
        assert!(!moved.signature_is_valid());
        let mut other_key = checkpoint;
        other_key.node_key = crate::testing::demo_key("node-2").public_key();
        assert!(!other_key.signature_is_valid());
    }
}
