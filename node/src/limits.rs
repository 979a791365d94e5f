//! Every bound the node itself enforces, in one place, each with the reason it exists.
//!
//! The ledger's bounds (batch sizes, command bytes, envelope lifetime) live in
//! `ledger::limits` because they are part of the replicated state machine; the storage and
//! transport bounds sit beside their code in `storage/mod.rs` and `network/mod.rs`. What is here
//! is what the node's runtime and HTTP API add: request sizes, queues, group commit, paging,
//! timeouts and the Raft timing. The compile-time checks at the bottom state how these relate to
//! the others. This file must never read configuration at run time.

use std::time::Duration;

/// Bytes of one HTTP request body. A full `CreateTransfers` batch (8,190 transfers, about 1 MB
/// in canonical bytes) is larger in JSON, where ids and amounts are decimal strings; 2 MiB holds
/// it with room for the envelope. Larger bodies get `413 body_too_large` before any parsing.
pub const REQUEST_BYTES_MAX: usize = 2 * 1024 * 1024;

/// HTTP requests one node serves at once; more get `429 overloaded` at once. Bounds the memory
/// that buffered bodies can take (this many times [`REQUEST_BYTES_MAX`], 512 MiB at worst).
pub const HTTP_REQUESTS_IN_FLIGHT_MAX: usize = 256;

/// How long a request's body may take to arrive after its headers; later gets
/// `408 body_timeout`. Every request holds one of [`HTTP_REQUESTS_IN_FLIGHT_MAX`] permits while
/// its body is read, so without this a client that sends headers and then nothing could hold
/// them all. 2 MiB in 10 s asks for at least 200 kB/s.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Signed commands waiting in the proposer's queue for a proposal. A full queue answers
/// `429 overloaded`: back-pressure reaches clients instead of growing memory without bound.
pub const PROPOSAL_QUEUE_LENGTH_MAX: usize = 4_096;

/// Signed commands the proposer puts into one Raft entry (group commit). Large enough that a
/// busy leader amortises each fsync and round trip over many requests.
pub const COMMANDS_PER_PROPOSAL_MAX: usize = 1_024;

/// Canonical bytes of the commands in one Raft entry. One proposal always takes at least one
/// command, and one command is at most `ledger::limits::COMMAND_BYTES_MAX`; beyond that the
/// proposer stops adding commands. Kept far under the transport's message limit, so that an
/// append-entries request carrying a few such entries still fits in one gRPC message.
pub const PROPOSAL_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Proposals handed to Raft and not yet applied. More than one in flight lets the next group
/// fill while the previous one is being replicated, so throughput is not capped at one group
/// per round trip; the bound keeps a slow quorum from piling up unbounded work in the leader.
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 8;

/// Raft entries the leader sends a follower in one append-entries request (openraft's
/// `max_payload_entries`, 300 by default). Each entry holds up to `PROPOSAL_BYTES_MAX`, and the
/// leader reads, decodes and encodes a whole request's entries at once for each follower, so a
/// lagging follower at openraft's default held hundreds of MiB on the leader
/// (`tests/bench/README.md`, memory). A few entries per request still amortise a round trip.
pub const RAFT_ENTRIES_PER_APPEND_MAX: u64 = 8;

/// Signed commands in one `POST /v1/commands/batch` request (`spec/http.md`).
pub const COMMANDS_PER_BATCH_REQUEST_MAX: usize = 64;

/// Entries in one `GET /v1/journal` page; also the page when `limit` is not given is
/// [`JOURNAL_PAGE_ENTRIES_DEFAULT`].
pub const JOURNAL_PAGE_ENTRIES_MAX: usize = 1_000;

/// Entries in a `GET /v1/journal` page when the client names no `limit`.
pub const JOURNAL_PAGE_ENTRIES_DEFAULT: usize = 100;

/// Transfers in one `GET /v1/accounts/{id}/transfers` page.
pub const ACCOUNT_TRANSFERS_PAGE_MAX: usize = 1_000;

/// Transfers in an account's page when the client names no `limit`.
pub const ACCOUNT_TRANSFERS_PAGE_DEFAULT: usize = 100;

/// Items in one page of the bank's lists (`GET /v1/hosts/{id}/offers`,
/// `/v1/hosts/{id}/allocations`, `/v1/parties/{id}/withdrawals`). These grow without bound over
/// time (`spec/bank.md` §10), so they are paged like an account's transfers.
pub const BANK_LIST_PAGE_MAX: usize = 1_000;

/// Items in a bank list page when the client names no `limit`: a whole page, so that a host's
/// agent asking for its active allocations gets them all in one answer in every ordinary case.
pub const BANK_LIST_PAGE_DEFAULT: usize = BANK_LIST_PAGE_MAX;

/// Price levels per side in one `GET /v1/market/depth` answer. A book has at most
/// `ledger::limits::ORDERS_PER_BOOK_MAX` orders, so its levels are bounded too, but a depth
/// view is for people and trading clients, who look at the top of the book.
pub const MARKET_DEPTH_LEVELS_MAX: usize = 1_000;

/// Price levels per side when the client names no `levels`.
pub const MARKET_DEPTH_LEVELS_DEFAULT: usize = 20;

/// Candles in one `GET /v1/market/candles` answer (the latest ones that have trades).
pub const MARKET_CANDLES_MAX: usize = 1_000;

/// Candles when the client names no `limit`.
pub const MARKET_CANDLES_DEFAULT: usize = 100;

/// The longest candle, in seconds (one week); the shortest is one second.
pub const MARKET_CANDLE_INTERVAL_S_MAX: u64 = 7 * 24 * 3600;

/// The candle length when the client names no `interval_s` (one minute).
pub const MARKET_CANDLE_INTERVAL_S_DEFAULT: u64 = 60;

/// `GET /v1/accounts/{id}/alerts/stream` connections one node serves at once; more get
/// `429 overloaded`. A stream outlives its request (the in-flight bound releases it once the
/// headers are sent), so it needs a bound of its own.
pub const ALERT_STREAMS_MAX: usize = 64;

/// How often an alert stream looks for new alerts in the applied state.
pub const ALERT_STREAM_POLL: Duration = Duration::from_millis(200);

/// Alerts an alert stream copies out of the ledger at once (it sends them one by one).
pub const ALERT_STREAM_BATCH_MAX: usize = 256;

/// How often an idle alert stream sends an SSE comment, so that proxies and clients can tell a
/// quiet stream from a dead connection.
pub const ALERT_STREAM_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Bytes of the leader's head that a follower reads to find a stream's read point.
pub const READ_POINT_BYTES_MAX: usize = 64 * 1024;

/// Statement lines one request builds (`GET /v1/accounts/{id}/statement`, and all the accounts
/// of `GET /v1/parties/{id}/statement` together): every transfer of the accounts read counts
/// one, and each account [`STATEMENT_HEADER_LINES`] more for its account and balances. A
/// statement recomputes balances from an account's first transfer, whatever the period asked
/// for, so this bounds the memory, time and size of one answer. A larger one gets
/// `422 statement_too_large`; its transfers can still be read page by page from
/// `GET /v1/accounts/{id}/transfers`.
pub const STATEMENT_LINES_MAX: usize = 80_000;

/// What one account's statement costs against [`STATEMENT_LINES_MAX`] before its first line:
/// its account, opening and closing balances take about as many bytes as two lines.
pub const STATEMENT_HEADER_LINES: usize = 2;

/// JSON bytes of one statement line at most (ids and amounts as 39-digit strings, the
/// balances after it); checked by a test in `server/bank.rs`. With [`STATEMENT_LINES_MAX`]
/// it bounds a statement's answer, which a follower must be able to relay.
pub const STATEMENT_LINE_BYTES_MAX: usize = 800;

/// Rows of one programme report (`GET /v1/programmes/{id}/report`): its lines plus its
/// per-beneficiary and per-seller totals. Each line costs a look-up of its journal entry's
/// hash, so this bounds the time, memory and size of one answer, as [`STATEMENT_LINES_MAX`]
/// does for statements. A larger report gets `422 report_too_large`; the journal itself can
/// still be exported page by page (`cbank audit export`).
pub const PROGRAMME_REPORT_ROWS_MAX: usize = 80_000;

/// JSON bytes of one report row at most (ids and amounts as 39-digit strings, two party ids,
/// the purchase and the entry hash); checked by a test in `server/vouchers.rs`.
pub const PROGRAMME_REPORT_ROW_BYTES_MAX: usize = 800;

/// How long a read that needs a journal entry the ledger has applied waits for it to reach
/// sled (the state machine updates the in-memory ledger first and writes its sled batch just
/// after), and how often it looks again.
pub const JOURNAL_STORE_WAIT: Duration = Duration::from_secs(2);
pub const JOURNAL_STORE_POLL: Duration = Duration::from_millis(5);

/// How long a write may wait to be applied before the client gets `504 timeout`. The command
/// may still apply later; the client retries with the same ids (transfers and accounts are
/// idempotent by id; a replayed envelope is rejected as `nonce_replayed`).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// How long a linearizable read may wait for the leader to confirm its leadership with a
/// quorum and apply up to the read point.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);

/// How long a request waits for a leader to be known (during an election) before it gets
/// `503 unavailable`. An election takes about one election timeout.
pub const LEADER_WAIT: Duration = Duration::from_secs(3);

/// How long a follower waits for the leader's answer to a forwarded request. Longer than
/// [`WRITE_DEADLINE`], so that the leader's own `504 timeout` reaches the client rather than
/// the follower giving up first.
pub const FORWARD_DEADLINE: Duration = Duration::from_secs(15);

/// How long a follower waits for a TCP connection to the leader's HTTP listener.
pub const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes of a forwarded answer a follower relays (the largest is a journal page, bounded by
/// `storage::JOURNAL_PAGE_BYTES_MAX` plus its JSON overhead).
pub const FORWARDED_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Idle connections to the leader kept open per follower, so forwarding does not pay a TCP
/// handshake per request.
pub const FORWARD_IDLE_CONNECTIONS_MAX: usize = 32;

/// How long an administrative membership change may take (adding a learner waits until it has
/// caught up with the log, which may mean installing a snapshot).
pub const MEMBERSHIP_CHANGE_DEADLINE: Duration = Duration::from_secs(60);

/// How long shutdown waits for in-flight HTTP requests and the Raft server to finish before it
/// stops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Raft leader heartbeat interval. A follower that hears nothing for an election timeout
/// (below) starts an election.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;

/// Raft election timeout, drawn at random in `[MIN, MAX)` per term. With a 100 ms heartbeat a
/// cluster elects a new leader within about one second of losing one (timeout plus one vote
/// round trip), and four missed heartbeats are needed before anyone campaigns.
pub const ELECTION_TIMEOUT_MS_MIN: u64 = 400;

/// See [`ELECTION_TIMEOUT_MS_MIN`].
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 800;

/// Log entries kept after a snapshot, so a follower that lags by less than this catches up from
/// the log instead of needing a whole snapshot.
pub const LOG_ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

/// Bytes of one snapshot chunk sent to a lagging follower (openraft's
/// `snapshot_max_chunk_size`). Small enough to be sent well within
/// [`INSTALL_SNAPSHOT_TIMEOUT_MS`] on a slow link.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// How long sending and installing one snapshot chunk may take.
pub const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 5_000;

/// Bytes of a node address (`host:port`) named in an administrative request.
pub const NODE_ADDRESS_BYTES_MAX: usize = 256;

/// Members named in one `POST /v1/admin/cluster/init`.
pub const INIT_MEMBERS_MAX: usize = 16;

/// Journal entries `GET /v1/audit/verify` checks at most. It holds them all in memory and
/// replays each through a fresh ledger, so this bounds the memory and time of one answer; a
/// longer journal is verified offline with `cbank audit export` and `cbank audit verify`.
pub const AUDIT_VERIFY_ENTRIES_MAX: u64 = 100_000;

/// `GET /v1/audit/verify` requests one node runs at once; more get `429 overloaded`.
pub const AUDIT_VERIFICATIONS_MAX: usize = 1;

/// How long `GET /v1/audit/verify` waits for each other member's signed checkpoint.
pub const AUDIT_CHECKPOINT_DEADLINE: Duration = Duration::from_secs(2);

const _: () = assert!(ledger::limits::COMMAND_BYTES_MAX <= PROPOSAL_BYTES_MAX);
const _: () = assert!(ledger::limits::COMMAND_BYTES_MAX < REQUEST_BYTES_MAX);
const _: () = assert!(PROPOSAL_BYTES_MAX * 4 <= crate::network::MESSAGE_BYTES_MAX);
const _: () = assert!(
    PROPOSAL_BYTES_MAX as u64 * RAFT_ENTRIES_PER_APPEND_MAX
        <= crate::network::MESSAGE_BYTES_MAX as u64
);
const _: () = assert!(PROPOSAL_BYTES_MAX < crate::storage::LOG_RECORD_BYTES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES <= crate::network::SNAPSHOT_CHUNK_BYTES_MAX);
const _: () = assert!(COMMANDS_PER_BATCH_REQUEST_MAX <= PROPOSAL_QUEUE_LENGTH_MAX);
const _: () = assert!(COMMANDS_PER_PROPOSAL_MAX <= PROPOSAL_QUEUE_LENGTH_MAX);
const _: () = assert!(JOURNAL_PAGE_ENTRIES_MAX <= crate::storage::JOURNAL_PAGE_ENTRIES_MAX);
const _: () = assert!(JOURNAL_PAGE_ENTRIES_DEFAULT <= JOURNAL_PAGE_ENTRIES_MAX);
// One more than a page is read to know whether another page follows.
const _: () = assert!(ACCOUNT_TRANSFERS_PAGE_MAX < crate::storage::ACCOUNT_TRANSFERS_PAGE_MAX);
const _: () = assert!(ACCOUNT_TRANSFERS_PAGE_DEFAULT <= ACCOUNT_TRANSFERS_PAGE_MAX);
const _: () = assert!(BANK_LIST_PAGE_DEFAULT <= BANK_LIST_PAGE_MAX);
/// Journal entries a node asks a peer for at a time when it fetches the journal before a
/// snapshot it installed (`server/backfill.rs`).
pub const BACKFILL_PAGE_ENTRIES: usize = 500;

/// How often a node that lacks the start of the journal tries to fetch it.
pub const BACKFILL_RETRY: Duration = Duration::from_secs(2);

const _: () = assert!(MARKET_DEPTH_LEVELS_DEFAULT <= MARKET_DEPTH_LEVELS_MAX);
const _: () = assert!(MARKET_CANDLES_DEFAULT <= MARKET_CANDLES_MAX);
const _: () = assert!(MARKET_CANDLE_INTERVAL_S_DEFAULT <= MARKET_CANDLE_INTERVAL_S_MAX);
const _: () = assert!(ALERT_STREAMS_MAX < HTTP_REQUESTS_IN_FLIGHT_MAX);
const _: () = assert!(ALERT_STREAM_POLL.as_millis() < ALERT_STREAM_KEEP_ALIVE.as_millis());
// A follower relays a forwarded statement whole.
const _: () =
    assert!(STATEMENT_LINES_MAX * STATEMENT_LINE_BYTES_MAX <= FORWARDED_RESPONSE_BYTES_MAX);
// A follower relays a forwarded programme report whole.
const _: () = assert!(
    PROGRAMME_REPORT_ROWS_MAX * PROGRAMME_REPORT_ROW_BYTES_MAX <= FORWARDED_RESPONSE_BYTES_MAX
);
const _: () = assert!(JOURNAL_STORE_POLL.as_millis() < JOURNAL_STORE_WAIT.as_millis());
const _: () = assert!(JOURNAL_STORE_WAIT.as_millis() < READ_DEADLINE.as_millis());
const _: () = assert!(HEARTBEAT_INTERVAL_MS * 3 < ELECTION_TIMEOUT_MS_MIN);
const _: () = assert!(ELECTION_TIMEOUT_MS_MIN < ELECTION_TIMEOUT_MS_MAX);
const _: () = assert!(WRITE_DEADLINE.as_millis() < FORWARD_DEADLINE.as_millis());
const _: () = assert!(REQUEST_BODY_TIMEOUT.as_millis() < FORWARD_DEADLINE.as_millis());
const _: () = assert!(crate::storage::JOURNAL_PAGE_BYTES_MAX * 3 <= FORWARDED_RESPONSE_BYTES_MAX);
const _: () = assert!(AUDIT_CHECKPOINT_DEADLINE.as_millis() < READ_DEADLINE.as_millis());
const _: () = assert!(BACKFILL_PAGE_ENTRIES <= crate::storage::JOURNAL_PAGE_ENTRIES_MAX);
