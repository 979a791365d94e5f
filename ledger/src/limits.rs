//! Every bound the ledger enforces, in one place, each with the reason it exists.
//!
//! "Put a limit on everything": a bound that is not here does not exist. The compile-time
//! checks at the bottom state how the limits relate. This file must never read configuration
//! at run time: the limits are part of the replicated state machine's definition, and two
//! replicas with different limits would diverge.

/// Transfers in one `CreateTransfers` command. 8,190 fits a 1 MiB request with room for the
/// envelope, and matches the batch size the benchmarks compare against.
pub const TRANSFERS_PER_BATCH_MAX: usize = 8_190;

/// Accounts in one `CreateAccounts` command.
pub const ACCOUNTS_PER_BATCH_MAX: usize = 8_190;

/// Accounts one party may own. Bounds the state a single party can make every replica hold.
pub const ACCOUNTS_PER_PARTY_MAX: u32 = 1_000_000;

/// Active keys one party may have at once.
pub const KEYS_PER_PARTY_MAX: usize = 16;

/// Keys one party may register over its life. Revoked keys are kept (so rotation history stays
/// auditable and a key is never reused), so this bounds a party's key records.
pub const KEY_HISTORY_PER_PARTY_MAX: usize = 1_024;

/// Parties the ledger holds.
pub const PARTIES_MAX: usize = 10_000_000;

/// Assets in the catalogue.
pub const ASSETS_MAX: usize = 4_096;

/// Pending transfers one command's timestamp may expire. Bounds the work of one `apply` and the
/// size of one journal entry; further expiries wait for the next command (in deadline order),
/// and a post or void after the deadline is refused whether or not the sweep has reached it.
pub const EXPIRIES_PER_COMMAND_MAX: usize = 8_190;

/// Keys named in one `Genesis` or `RegisterParty` command.
pub const KEYS_PER_COMMAND_MAX: usize = KEYS_PER_PARTY_MAX;

/// Assets named in one `Genesis` command.
pub const ASSETS_PER_GENESIS_MAX: usize = 64;

/// Bytes of a party id (`[a-z0-9._-]`).
pub const PARTY_ID_BYTES_MAX: usize = 64;

/// Bytes of a GPU class or model family name inside an asset code (`GPUH:<class>`).
pub const ASSET_NAME_BYTES_MAX: usize = 32;

/// Bytes of one encoded signed command. The HTTP body limit is derived from this.
/// A transfer is 106 canonical bytes, so a full batch is 8,190 × 106 ≈ 0.87 MB; the rest is
/// headroom for the envelope.
pub const COMMAND_BYTES_MAX: usize = 1_200_000;

/// Bytes of a whole snapshot the ledger agrees to decode (the state of a large ledger).
pub const SNAPSHOT_BYTES_MAX: usize = 8 * 1024 * 1024 * 1024;

/// How far in the future an envelope may expire. Bounds the replay-protection set: a nonce need
/// only be remembered until its envelope expires.
pub const ENVELOPE_LIFETIME_NS_MAX: u64 = 120 * NS_PER_S;

/// The longest timeout of a pending transfer (30 days).
pub const PENDING_TIMEOUT_S_MAX: u32 = 30 * 24 * 3600;

/// GPUs on one host.
pub const HOST_GPUS_MAX: u32 = 1_024;

/// Hosts one institution may register.
pub const HOSTS_PER_PARTY_MAX: u32 = 100_000;

/// The longest capacity offer window (7 days); its reservation must fit a pending timeout.
pub const OFFER_WINDOW_NS_MAX: u64 = 7 * 24 * 3600 * NS_PER_S;

/// How far in the past an offer window may start when it is offered (agents offer a little
/// late; more than this would credit time nobody could have used).
pub const OFFER_START_PAST_NS_MAX: u64 = 10 * 60 * NS_PER_S;

/// How far ahead an offer window may start: with the window and the late allowance, its
/// reservation must fit in a pending timeout.
pub const OFFER_START_AHEAD_NS_MAX: u64 = 7 * 24 * 3600 * NS_PER_S;

/// How long after an interval ends its meter report is still accepted.
pub const METER_REPORT_LATE_NS_MAX: u64 = 3600 * NS_PER_S;

/// GPU classes in one rate table.
pub const RATE_TABLE_CLASSES_MAX: usize = 256;

/// Withdrawals waiting for capacity at once.
pub const WITHDRAWALS_QUEUED_MAX: usize = 100_000;

/// The longest allocation one withdrawal may ask for (7 days).
pub const WITHDRAWAL_DURATION_S_MAX: u32 = 7 * 24 * 3600;

/// How long a withdrawal may wait in the queue before its reservation expires (refunded).
pub const WITHDRAWAL_WAIT_S_MAX: u32 = 7 * 24 * 3600;

/// Order-book products in the catalogue.
pub const PRODUCTS_MAX: usize = 1_024;

/// Resting orders in one book.
pub const ORDERS_PER_BOOK_MAX: usize = 1_000_000;

/// The most lots one order may ask for.
pub const ORDER_LOTS_MAX: u64 = 1_000_000_000;

/// The highest price per lot (¥10 billion in fen): price × lots always fits in u128.
pub const PRICE_MAX: u64 = 1_000_000_000_000;

/// The highest trading fee, in basis points (10%).
pub const FEE_BPS_MAX: u16 = 1_000;

/// The longest auction interval (one day).
pub const AUCTION_INTERVAL_S_MAX: u32 = 24 * 3600;

/// Packages on the shelf.
pub const PACKAGES_MAX: usize = 10_000;

/// The most units of one package in stock.
pub const PACKAGE_STOCK_MAX: u64 = 1_000_000_000;

/// The longest validity of a token package (366 days).
pub const QUOTA_VALIDITY_S_MAX: u32 = 366 * 24 * 3600;

/// Bytes of a package title.
pub const PACKAGE_TITLE_BYTES_MAX: usize = 128;

/// Usage events in one batch.
pub const USAGE_EVENTS_PER_BATCH_MAX: usize = 8_190;

/// How late a usage event may arrive (six hours after it happened).
pub const USAGE_LATE_NS_MAX: u64 = 6 * 3600 * NS_PER_S;

/// How far ahead of the command's time a usage event may be stamped (provider clock skew).
pub const USAGE_FUTURE_NS_MAX: u64 = 60 * NS_PER_S;

/// Tokens in one usage event.
pub const USAGE_TOKENS_MAX: u64 = 1_000_000_000_000;

/// Scheduled events (quota expiries) processed before one command; the rest wait.
pub const SCHEDULED_PER_COMMAND_MAX: usize = 1_024;

/// Voucher programmes in the ledger.
pub const PROGRAMMES_MAX: usize = 10_000;

/// Products, packages and asset categories one programme names as eligible.
pub const PROGRAMME_ELIGIBLE_MAX: usize = 256;

/// Parties a programme may name as its beneficiaries.
pub const PROGRAMME_LIST_MAX: usize = 10_000;

/// Vouchers one order or purchase may use (one per programme).
pub const VOUCHERS_PER_ORDER_MAX: usize = 4;

/// Nanoseconds in a second; timestamps are nanoseconds since the Unix epoch.
pub const NS_PER_S: u64 = 1_000_000_000;

const _: () = assert!(TRANSFERS_PER_BATCH_MAX * 106 < COMMAND_BYTES_MAX);
const _: () = assert!(KEYS_PER_PARTY_MAX <= KEY_HISTORY_PER_PARTY_MAX);
// Every reservation the bank makes must fit in a pending transfer's timeout.
const _: () = assert!(
    (OFFER_START_AHEAD_NS_MAX + OFFER_WINDOW_NS_MAX + METER_REPORT_LATE_NS_MAX) / NS_PER_S
        <= PENDING_TIMEOUT_S_MAX as u64
);
const _: () = assert!(
    WITHDRAWAL_WAIT_S_MAX as u64
        + WITHDRAWAL_DURATION_S_MAX as u64
        + METER_REPORT_LATE_NS_MAX / NS_PER_S
        <= PENDING_TIMEOUT_S_MAX as u64
);
const _: () = assert!(ACCOUNTS_PER_BATCH_MAX as u64 <= ACCOUNTS_PER_PARTY_MAX as u64);
const _: () = assert!(KEYS_PER_COMMAND_MAX <= KEYS_PER_PARTY_MAX);
const _: () = assert!((COMMAND_BYTES_MAX as u64) < u32::MAX as u64);
const _: () = assert!((PRICE_MAX as u128) * (ORDER_LOTS_MAX as u128) < u128::MAX / 4);
const _: () = assert!(USAGE_EVENTS_PER_BATCH_MAX * 64 < COMMAND_BYTES_MAX);
