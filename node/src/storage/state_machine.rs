//! The Raft state machine: openraft's `RaftStateMachine` as a thin adapter over `ledger`.
//!
//! `apply` runs `ledger::Ledger::apply` for every stamped command of every entry, in log order,
//! and writes what it produced (journal entries, account index, `last_applied`, membership)
//! in one sled batch per call (`applied_state.rs`). Snapshots are whole-ledger files
//! (`snapshot.rs`) written durably before they are returned or installed.
//!
//! This file must never contain business rules: an outcome is whatever the ledger returned, and
//! a business rejection is a response, never a `StorageError`. The only thing it decides is the
//! effective timestamp, `max(stamp, previous + 1)`, which depends on log order alone, so every
//! replica computes the same one.

use super::account_index::AccountIndex;
use super::applied_state::{
    self, record_applied, record_journal_entry, AppliedState, MachineState, Shared,
};
use super::snapshot::{SnapshotFile, SnapshotStore};
use super::{blocking, corruption, io_error, SNAPSHOT_JOURNAL_BYTES};
use crate::raft_types::{Applied, NodeId, NodeInfo, ProposalResponse, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    DefensiveError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder,
    StorageError, StoredMembership, Violation,
};
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The state machine of one node.
pub struct StateMachineStore {
    shared: Arc<Shared>,
    snapshots: Arc<SnapshotStore>,
}

/// Builds snapshots of the state machine it came from (openraft runs it beside `apply`).
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    snapshots: Arc<SnapshotStore>,
}

fn snapshot_error(error: &std::io::Error, verb: ErrorVerb) -> StorageError<NodeId> {
    io_error(ErrorSubject::Snapshot(None), verb, error)
}

impl StateMachineStore {
    /// Opens the sled state in `state_dir` and the snapshots in `snapshot_dir` (both created if
    /// missing), and rebuilds the ledger from the newest snapshot and the journal after it.
    pub fn open(
        state_dir: &Path,
        snapshot_dir: &Path,
    ) -> Result<StateMachineStore, StorageError<NodeId>> {
        let (snapshots, newest) = SnapshotStore::open(snapshot_dir)
            .map_err(|error| snapshot_error(&error, ErrorVerb::Read))?;
        let (db, tree) = applied_state::open_sled(state_dir)?;
        let state = applied_state::recover(&db, &tree, newest)?;
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                db,
                tree,
                state: RwLock::new(state),
                snapshot_due: Arc::new(tokio::sync::Notify::new()),
                snapshots_installed: AtomicU64::new(0),
                journal_entries_fetched: AtomicU64::new(0),
            }),
            snapshots: Arc::new(snapshots),
        })
    }

    /// A handle that says when this node should build a snapshot (see [`SnapshotDue`]).
    pub fn snapshot_due_handle(&self) -> SnapshotDue {
        SnapshotDue {
            notify: self.shared.snapshot_due.clone(),
        }
    }

    /// A read handle on the applied state for the API.
    /// (Named apart from `RaftStateMachine::applied_state`, which returns openraft's view.)
    pub fn applied_state_handle(&self) -> AppliedState {
        AppliedState {
            shared: self.shared.clone(),
        }
    }
}

/// Says when a node should build a snapshot because of how much journal it applied since the
/// last one, not how many Raft entries (openraft's policy counts entries, and one entry may
/// hold one small command or 8 MiB of them). Whoever holds the `Raft` handle waits on
/// [`SnapshotDue::due`] and then triggers a build. This bounds what a restart replays to about
/// `SNAPSHOT_JOURNAL_BYTES` after the newest snapshot.
/// It holds only the notification, not the store, so it never keeps the storage open.
pub struct SnapshotDue {
    notify: Arc<tokio::sync::Notify>,
}

impl SnapshotDue {
    /// Returns once `SNAPSHOT_JOURNAL_BYTES` of journal were applied since the last snapshot
    /// began (at once if that happened before this call).
    pub async fn due(&self) {
        self.notify.notified().await;
    }
}

/// Applies `entries` in order and writes their effects in one sled batch.
fn apply_entries(
    shared: &Shared,
    entries: Vec<Entry<TypeConfig>>,
) -> Result<Vec<ProposalResponse>, StorageError<NodeId>> {
    let mut batch = sled::Batch::default();
    let mut responses = Vec::with_capacity(entries.len());
    {
        let mut state = shared.write_state()?;
        let state = &mut *state;
        for entry in entries {
            let log_id = entry.log_id;
            if state
                .last_applied
                .is_some_and(|last| log_id.index <= last.index)
            {
                let violation = Violation::ApplyNonConsecutive {
                    prev: state.last_applied,
                    next: log_id,
                };
                return Err(DefensiveError::new(ErrorSubject::Apply(log_id), violation).into());
            }
            let mut response = ProposalResponse::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(log_id), membership);
                }
                EntryPayload::Normal(proposal) => {
                    for stamped in &proposal.commands {
                        let floor =
                            state
                                .ledger
                                .last_timestamp_ns()
                                .checked_add(1)
                                .ok_or_else(|| {
                                    corruption(
                                        ErrorSubject::Apply(log_id),
                                        "the ledger's timestamp cannot increase any more",
                                    )
                                })?;
                        let timestamp_ns = stamped.timestamp_ns.max(floor);
                        let journal_entry = state.ledger.apply(&stamped.command, timestamp_ns);
                        state.account_index.add_last_entry(&state.ledger);
                        state.journal_bytes_since_snapshot +=
                            record_journal_entry(&mut batch, &journal_entry);
                        response.applied.push(Applied {
                            head: journal_entry.head(),
                            timestamp_ns,
                            outcome: journal_entry.body.outcome,
                        });
                    }
                }
            }
            state.last_applied = Some(log_id);
            responses.push(response);
        }
        record_applied(&mut batch, state.last_applied, &state.membership);
        if state.journal_bytes_since_snapshot >= SNAPSHOT_JOURNAL_BYTES && !state.snapshot_requested
        {
            state.snapshot_requested = true;
            // Stores a permit if nobody waits yet: the request is not lost.
            shared.snapshot_due.notify_one();
        }
    }
    // Written after the lock is released so readers are not held up by sled; if it fails the
    // node stops, so the in-memory state being ahead of sled never serves for long.
    shared.write_batch(batch)?;
    Ok(responses)
}

/// Writes the current state as a snapshot file, durably. The ledger is encoded straight into
/// the file under the state's read lock (applying waits for it, readers do not); the fsync
/// comes after the lock is released.
///
/// The returned snapshot's data is empty: openraft 0.9 keeps only the meta of a snapshot it
/// asked to be built (`core/sm/worker.rs`, `Response::BuildSnapshot(snap.meta)`) and sends
/// followers what `get_current_snapshot` reads from disk. Handing it the bytes would mean
/// holding a second copy of a state that may be gigabytes (`tests/bench/README.md`, memory).
fn build_snapshot(
    shared: &Shared,
    snapshots: &SnapshotStore,
) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
    let write_error = |error: std::io::Error| snapshot_error(&error, ErrorVerb::Write);
    let draft = {
        // The write lock, briefly, to restart the count at this snapshot's point; then the
        // same state read while it is encoded.
        let mut state = shared.write_state()?;
        state.journal_bytes_since_snapshot = 0;
        state.snapshot_requested = false;
        let state = std::sync::RwLockWriteGuard::downgrade(state);
        let mut draft = snapshots
            .draft(state.last_applied, state.membership.clone())
            .map_err(write_error)?;
        state
            .ledger
            .write_snapshot(&mut draft)
            .map_err(write_error)?;
        draft
    };
    let header = draft.header().clone();
    let kept = snapshots.keep(draft).map_err(write_error)?;
    tracing::info!(last_applied = ?header.last_applied, kept = kept.is_some(), "built a snapshot");
    Ok(Snapshot {
        meta: header.meta(),
        snapshot: Box::new(Cursor::new(Vec::new())),
    })
}

/// Checks a snapshot from the leader, writes it durably, then replaces the state with it.
fn install_snapshot(
    shared: &Shared,
    snapshots: &SnapshotStore,
    meta: &openraft::SnapshotMeta<NodeId, NodeInfo>,
    bytes: Vec<u8>,
) -> Result<(), StorageError<NodeId>> {
    let subject = ErrorSubject::Snapshot(Some(meta.signature()));
    let file = SnapshotFile::parse(bytes).map_err(|why| corruption(subject.clone(), why))?;
    if file.header.last_applied != meta.last_log_id
        || file.header.membership != meta.last_membership
    {
        return Err(corruption(
            subject,
            format!(
                "the snapshot's header {:?} does not match its meta {meta}",
                file.header
            ),
        ));
    }
    let ledger = ledger::Ledger::restore(file.ledger_bytes())
        .map_err(|error| corruption(subject.clone(), format!("ledger bytes: {error}")))?;
    // Durable first: if we crash after this, opening finds the snapshot ahead of sled and
    // finishes the install (`applied_state::recover`).
    let saved = snapshots
        .save(&file)
        .map_err(|error| io_error(subject.clone(), ErrorVerb::Write, &error))?;
    if !saved {
        // openraft installs only snapshots past what is committed here, so an older one than
        // ours means a bug; installing it would move the state backwards.
        return Err(corruption(
            subject,
            "refusing to install a snapshot older than the current one",
        ));
    }
    let mut state = shared.write_state()?;
    // The journal this node holds from entry 1 on: up to its head, or up to its own gap.
    let keep_through = if state.first_journal_index <= 1 {
        state.ledger.head().index
    } else {
        applied_state::stored_gap(&shared.tree)
            .map_err(|error| corruption(subject.clone(), error))?
            .map_or(0, |(gap_start, _)| gap_start - 1)
    };
    let first_journal_index = applied_state::reset_to_snapshot(
        &shared.db,
        &shared.tree,
        &ledger,
        &file.header,
        keep_through,
    )?;
    tracing::info!(
        last_applied = ?file.header.last_applied,
        journal_head = ledger.head().index,
        "installed a snapshot"
    );
    *state = MachineState {
        account_index: AccountIndex::build(&ledger),
        ledger,
        last_applied: file.header.last_applied,
        membership: file.header.membership,
        first_journal_index,
        journal_bytes_since_snapshot: 0,
        snapshot_requested: false,
    };
    shared.snapshots_installed.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (shared, snapshots) = (self.shared.clone(), self.snapshots.clone());
        blocking(move || build_snapshot(&shared, &snapshots)).await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeInfo>), StorageError<NodeId>>
    {
        let state = self.shared.read_state();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ProposalResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let shared = self.shared.clone();
        blocking(move || apply_entries(&shared, entries)).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &openraft::SnapshotMeta<NodeId, NodeInfo>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let (shared, snapshots, meta) = (self.shared.clone(), self.snapshots.clone(), meta.clone());
        let bytes = (*snapshot).into_inner();
        blocking(move || install_snapshot(&shared, &snapshots, &meta, bytes)).await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let snapshots = self.snapshots.clone();
        let file = blocking(move || {
            snapshots
                .current()
                .map_err(|error| snapshot_error(&error, ErrorVerb::Read))
        })
        .await?;
        Ok(file.map(|file| Snapshot {
            meta: file.header.meta(),
            snapshot: Box::new(Cursor::new(file.bytes)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::{Proposal, StampedCommand};
    use crate::storage::ReadError;
    use ledger::limits::NS_PER_S;
    use ledger::{
        AccountFlags, AccountKind, Command, CommandResult, Hash, NewAccount, PartyId, Reason,
        SigningKey, Transfer, TransferFlags,
    };
    use openraft::{CommittedLeaderId, Membership};
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    const ASSET: &str = "GPUH:H100";
    const MINT: u128 = 1;
    const ALICE: u128 = 2;
    const BOB: u128 = 3;

    fn log_id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn operator_key() -> SigningKey {
        SigningKey::from_seed([7; 32])
    }

    fn stamped(nonce: u128, timestamp_ns: u64, command: Command) -> StampedCommand {
        let expires_at_ns = timestamp_ns + 60 * NS_PER_S;
        let command = operator_key().sign(PartyId::new("op"), nonce, expires_at_ns, command);
        StampedCommand {
            timestamp_ns,
            command,
        }
    }

    fn genesis(timestamp_ns: u64) -> StampedCommand {
        let command = Command::Genesis {
            operator: PartyId::new("op"),
            keys: vec![operator_key().public_key()],
            assets: vec![ASSET.parse().unwrap()],
        };
        stamped(1, timestamp_ns, command)
    }

    fn account(id: u128, kind: AccountKind) -> NewAccount {
        NewAccount {
            id,
            asset: ASSET.parse().unwrap(),
            kind,
            flags: AccountFlags::default(),
            reference: 0,
        }
    }

    fn accounts(timestamp_ns: u64) -> StampedCommand {
        let accounts = vec![
            account(MINT, AccountKind::Mint),
            account(ALICE, AccountKind::Main),
            account(BOB, AccountKind::Main),
        ];
        stamped(2, timestamp_ns, Command::CreateAccounts { accounts })
    }

    fn transfer(
        id: u128,
        debit_account_id: u128,
        credit_account_id: u128,
        amount: u128,
    ) -> Transfer {
        Transfer {
            id,
            debit_account_id,
            credit_account_id,
            amount,
            pending_id: 0,
            timeout_s: 0,
            code: 0,
            reference: 0,
            flags: TransferFlags::default(),
        }
    }

    fn transfers(nonce: u128, timestamp_ns: u64, transfers: Vec<Transfer>) -> StampedCommand {
        stamped(nonce, timestamp_ns, Command::CreateTransfers { transfers })
    }

    fn normal(index: u64, commands: Vec<StampedCommand>) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(Proposal { commands }),
        }
    }

    fn membership(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], ())),
        }
    }

    /// A little history: membership, genesis and accounts in one entry, then two transfer
    /// batches, one with a transfer that fails (amount 0).
    fn history() -> Vec<Entry<TypeConfig>> {
        vec![
            membership(1),
            normal(2, vec![genesis(1_000), accounts(2_000)]),
            normal(
                3,
                vec![transfers(
                    3,
                    3_000,
                    vec![transfer(100, MINT, ALICE, 50), transfer(101, ALICE, BOB, 0)],
                )],
            ),
            Entry {
                log_id: log_id(4),
                payload: EntryPayload::Blank,
            },
            normal(
                5,
                vec![transfers(
                    4,
                    4_000,
                    vec![transfer(102, ALICE, BOB, 20), transfer(103, MINT, BOB, 5)],
                )],
            ),
        ]
    }

    struct Dirs {
        _root: tempfile::TempDir,
        state: PathBuf,
        snapshots: PathBuf,
    }

    fn dirs() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        let snapshots = root.path().join("snapshots");
        Dirs {
            _root: root,
            state,
            snapshots,
        }
    }

    fn open(dirs: &Dirs) -> StateMachineStore {
        StateMachineStore::open(&dirs.state, &dirs.snapshots).unwrap()
    }

    /// Builds a snapshot and reads it back as openraft would to send it to a follower.
    async fn build_and_read(store: &mut StateMachineStore) -> Snapshot<TypeConfig> {
        let built = store
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let current = store.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        current
    }

    fn state_hash(store: &StateMachineStore) -> Hash {
        store
            .applied_state_handle()
            .read(|ledger| ledger.state_hash())
    }

    fn transfer_ids(store: &StateMachineStore, account_id: u128) -> Vec<u128> {
        let records = store
            .applied_state_handle()
            .account_transfers(account_id, None, 100)
            .unwrap();
        records.iter().map(|record| record.transfer.id).collect()
    }

    #[tokio::test]
    async fn applying_records_outcomes_and_business_rejections_are_responses() {
        let dirs = dirs();
        let mut store = open(&dirs);
        let mut entries = history();
        // A replayed nonce is rejected by the ledger: a response, not a storage error.
        entries.push(normal(
            6,
            vec![transfers(4, 5_000, vec![transfer(104, MINT, ALICE, 1)])],
        ));
        let responses = store.apply(entries).await.unwrap();
        assert_eq!(responses.len(), 6);
        assert!(responses[0].applied.is_empty() && responses[3].applied.is_empty());
        assert_eq!(responses[1].applied.len(), 2);
        assert_eq!(responses[2].applied[0].outcome.event_results().len(), 1);
        assert_eq!(
            responses[5].applied[0].outcome.rejected(),
            Some(Reason::NonceReplayed)
        );
        let heads: Vec<u64> = responses
            .iter()
            .flat_map(|response| &response.applied)
            .map(|applied| applied.head.index)
            .collect();
        assert_eq!(heads, vec![1, 2, 3, 4, 5]);

        let (last_applied, stored_membership) = store.applied_state().await.unwrap();
        assert_eq!(last_applied, Some(log_id(6)));
        assert_eq!(stored_membership.log_id(), &Some(log_id(1)));

        let applied_state = store.applied_state_handle();
        let journal = applied_state.journal_range(1, 100).unwrap();
        assert_eq!(journal.len(), 5);
        assert_eq!(
            journal[4].head(),
            applied_state.read(|ledger| ledger.head())
        );
        assert_eq!(
            applied_state.journal_range(4, 100).unwrap(),
            journal[3..].to_vec()
        );
        assert_eq!(
            applied_state.journal_range(2, 1).unwrap(),
            journal[1..2].to_vec()
        );
        assert!(applied_state.journal_range(6, 100).unwrap().is_empty());
        assert_eq!(applied_state.first_journal_index(), 1);
    }

    #[tokio::test]
    async fn the_account_index_lists_applied_transfers_oldest_first_and_pages() {
        let dirs = dirs();
        let mut store = open(&dirs);
        store.apply(history()).await.unwrap();
        // 101 failed (amount 0): not listed.
        assert_eq!(transfer_ids(&store, ALICE), vec![100, 102]);
        assert_eq!(transfer_ids(&store, BOB), vec![102, 103]);
        assert_eq!(transfer_ids(&store, MINT), vec![100, 103]);
        let applied_state = store.applied_state_handle();
        let page = applied_state.account_transfers(BOB, Some(102), 10).unwrap();
        assert_eq!(
            page.iter()
                .map(|record| record.transfer.id)
                .collect::<Vec<_>>(),
            vec![103]
        );
        assert_eq!(
            applied_state
                .account_transfers(MINT, None, 1)
                .unwrap()
                .len(),
            1
        );
        assert!(applied_state
            .account_transfers(MINT, None, 0)
            .unwrap()
            .is_empty());
        assert_eq!(
            applied_state.account_transfers(MINT, Some(999), 10),
            Err(ReadError::CursorTransferUnknown { transfer_id: 999 })
        );
    }

    #[tokio::test]
    async fn timestamps_are_raised_to_stay_strictly_increasing() {
        let dirs = dirs();
        let mut store = open(&dirs);
        // The second command's stamp is behind the first's (a new leader with a slower clock).
        let responses = store
            .apply(vec![normal(1, vec![genesis(10_000), accounts(500)])])
            .await
            .unwrap();
        let stamps: Vec<u64> = responses[0]
            .applied
            .iter()
            .map(|applied| applied.timestamp_ns)
            .collect();
        assert_eq!(stamps, vec![10_000, 10_001]);
        assert!(matches!(
            responses[0].applied[1].outcome.result,
            CommandResult::Accepted(_)
        ));
        let journal = store.applied_state_handle().journal_range(1, 10).unwrap();
        assert_eq!(journal[1].body.timestamp_ns, 10_001);
    }

    #[tokio::test]
    async fn an_entry_at_or_below_last_applied_is_refused() {
        let dirs = dirs();
        let mut store = open(&dirs);
        store.apply(vec![membership(3)]).await.unwrap();
        let error = store.apply(vec![membership(3)]).await.unwrap_err();
        assert!(matches!(error, StorageError::Defensive { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn a_restart_rebuilds_the_same_state_hash() {
        let dirs = dirs();
        let mut store = open(&dirs);
        store.apply(history()).await.unwrap();
        let hash = state_hash(&store);
        let applied = store.applied_state().await.unwrap();
        let journal = store.applied_state_handle().journal_range(1, 100).unwrap();
        drop(store);

        let mut store = open(&dirs);
        assert_eq!(state_hash(&store), hash);
        assert_eq!(store.applied_state().await.unwrap(), applied);
        assert_eq!(
            store.applied_state_handle().journal_range(1, 100).unwrap(),
            journal
        );
        assert_eq!(transfer_ids(&store, ALICE), vec![100, 102]);
        // And it goes on from there.
        store
            .apply(vec![normal(
                6,
                vec![transfers(5, 6_000, vec![transfer(104, MINT, ALICE, 1)])],
            )])
            .await
            .unwrap();
        assert_eq!(transfer_ids(&store, ALICE), vec![100, 102, 104]);
    }

    #[tokio::test]
    async fn a_restart_after_a_snapshot_replays_only_the_journal_after_it() {
        let dirs = dirs();
        let mut store = open(&dirs);
        let mut entries = history();
        let later = entries.split_off(3);
        store.apply(entries).await.unwrap();
        let snapshot = store
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(3)));
        store.apply(later).await.unwrap();
        let hash = state_hash(&store);
        drop(store);

        let mut store = open(&dirs);
        assert_eq!(state_hash(&store), hash);
        assert_eq!(store.applied_state().await.unwrap().0, Some(log_id(5)));
        let current = store.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        // The file holds the ledger as it was at the snapshot's log id.
        let file = SnapshotFile::parse(current.snapshot.into_inner()).unwrap();
        let at_snapshot = ledger::Ledger::restore(file.ledger_bytes()).unwrap();
        assert_eq!(at_snapshot.head().index, 3);
    }

    #[tokio::test]
    async fn a_snapshot_installed_on_a_fresh_store_yields_the_same_state_hash() {
        let (leader_dirs, follower_dirs) = (dirs(), dirs());
        let mut leader = open(&leader_dirs);
        leader.apply(history()).await.unwrap();
        let snapshot = build_and_read(&mut leader).await;
        let hash = state_hash(&leader);

        let mut follower = open(&follower_dirs);
        let mut received = follower.begin_receiving_snapshot().await.unwrap();
        *received = Cursor::new(snapshot.snapshot.into_inner());
        follower
            .install_snapshot(&snapshot.meta, received)
            .await
            .unwrap();
        assert_eq!(state_hash(&follower), hash);
        assert_eq!(
            follower.applied_state().await.unwrap(),
            leader.applied_state().await.unwrap()
        );
        assert_eq!(
            follower.get_current_snapshot().await.unwrap().unwrap().meta,
            snapshot.meta
        );
        let applied_state = follower.applied_state_handle();
        // The history has four commands: the journal this node stores starts after them.
        assert_eq!(applied_state.first_journal_index(), 5);
        assert_eq!(
            applied_state.journal_range(1, 10),
            Err(ReadError::JournalNotStored {
                first_journal_index: 5
            })
        );
        assert!(applied_state.journal_range(5, 10).unwrap().is_empty());
        // The account index is rebuilt from the snapshot's transfers.
        assert_eq!(transfer_ids(&follower, ALICE), transfer_ids(&leader, ALICE));
        assert_eq!(transfer_ids(&follower, BOB), transfer_ids(&leader, BOB));

        // The follower goes on applying, and survives a restart.
        let next = normal(
            6,
            vec![transfers(5, 6_000, vec![transfer(104, MINT, ALICE, 1)])],
        );
        leader.apply(vec![next.clone()]).await.unwrap();
        follower.apply(vec![next]).await.unwrap();
        assert_eq!(state_hash(&follower), state_hash(&leader));
        assert_eq!(
            follower
                .applied_state_handle()
                .journal_range(5, 10)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            follower
                .applied_state_handle()
                .journal_range(5, 10)
                .unwrap(),
            leader.applied_state_handle().journal_range(5, 10).unwrap()
        );
        let hash = state_hash(&follower);
        // sled holds a lock on its directory until every handle on it is gone.
        drop((follower, applied_state));
        let follower = open(&follower_dirs);
        assert_eq!(state_hash(&follower), hash);
        assert_eq!(follower.applied_state_handle().first_journal_index(), 5);
    }

    #[tokio::test]
    async fn a_corrupt_snapshot_from_the_leader_is_refused_and_changes_nothing() {
        let (leader_dirs, follower_dirs) = (dirs(), dirs());
        let mut leader = open(&leader_dirs);
        leader.apply(history()).await.unwrap();
        let snapshot = build_and_read(&mut leader).await;
        let mut follower = open(&follower_dirs);
        let empty_hash = state_hash(&follower);
        let mut bytes = snapshot.snapshot.into_inner();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let error = follower
            .install_snapshot(&snapshot.meta, Box::new(Cursor::new(bytes)))
            .await;
        assert!(error.is_err());
        assert_eq!(state_hash(&follower), empty_hash);
        assert!(follower.get_current_snapshot().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_snapshot_older_than_the_current_one_is_not_installed() {
        let (old_dirs, new_dirs) = (dirs(), dirs());
        let mut old = open(&old_dirs);
        let mut entries = history();
        entries.truncate(3);
        old.apply(entries).await.unwrap();
        let old_snapshot = build_and_read(&mut old).await;
        let mut new = open(&new_dirs);
        new.apply(history()).await.unwrap();
        new.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let hash = state_hash(&new);
        let result = new
            .install_snapshot(&old_snapshot.meta, old_snapshot.snapshot)
            .await;
        assert!(result.is_err());
        assert_eq!(state_hash(&new), hash);
        assert_eq!(new.applied_state().await.unwrap().0, Some(log_id(5)));
    }

    #[tokio::test]
    async fn an_install_interrupted_after_the_snapshot_file_is_finished_on_open() {
        let (leader_dirs, follower_dirs) = (dirs(), dirs());
        let mut leader = open(&leader_dirs);
        leader.apply(history()).await.unwrap();
        leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let hash = state_hash(&leader);
        drop(open(&follower_dirs));
        // As if the follower crashed right after writing the snapshot file.
        for dir_entry in std::fs::read_dir(&leader_dirs.snapshots).unwrap() {
            let path = dir_entry.unwrap().path();
            std::fs::copy(
                &path,
                follower_dirs.snapshots.join(path.file_name().unwrap()),
            )
            .unwrap();
        }
        let mut follower = open(&follower_dirs);
        assert_eq!(state_hash(&follower), hash);
        assert_eq!(follower.applied_state().await.unwrap().0, Some(log_id(5)));
        assert_eq!(follower.applied_state_handle().first_journal_index(), 5);
        assert_eq!(transfer_ids(&follower, ALICE), vec![100, 102]);
    }

    #[tokio::test]
    async fn a_tampered_journal_entry_fails_the_replay_on_open() {
        let dirs = dirs();
        let mut store = open(&dirs);
        store.apply(history()).await.unwrap();
        drop(store);
        {
            let (db, tree) = applied_state::open_sled(&dirs.state).unwrap();
            let key = applied_state::journal_key(3);
            let mut entry: ledger::JournalEntry =
                ledger::codec::decode(&tree.get(key).unwrap().unwrap(), 1 << 24).unwrap();
            entry.body.timestamp_ns += 1;
            tree.insert(key, ledger::codec::encode(&entry)).unwrap();
            db.flush().unwrap();
        }
        let error = StateMachineStore::open(&dirs.state, &dirs.snapshots)
            .err()
            .expect("tampering must be found");
        assert!(error.to_string().contains("journal entry 3"), "{error}");
    }
}
