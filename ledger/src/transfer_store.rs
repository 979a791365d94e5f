//! Where the ledger keeps every transfer it ever stored: records in the order they were
//! applied, in fixed-size chunks, plus an id → position map.
//!
//! A transfer's *ordinal* is its position in that order (0, 1, 2…). Transfers are only ever
//! appended, and an undone transfer is always the newest one (undo runs newest first), so an
//! ordinal never changes once its command is applied: a node can index accounts by ordinal and
//! page a statement by it. Keeping the records in a flat list instead of in the id map's nodes
//! costs about half the memory per transfer (the map holds 24 bytes per id, not a whole
//! record), and chunks mean a growing ledger never copies what it holds.
//!
//! Encoded (in snapshots, and so in the state hash) as the sequence of records in apply order;
//! decoding rebuilds the id map and refuses a repeated id.

use crate::transfer::TransferRecord;
use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// Records per chunk: 65,536 records of about 240 bytes, 15 MiB.
const CHUNK_RECORDS: usize = 1 << 16;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TransferStore {
    chunks: Vec<Vec<TransferRecord>>,
    by_id: BTreeMap<u128, u64>,
}

impl TransferStore {
    pub(crate) fn len(&self) -> u64 {
        self.by_id.len() as u64
    }

    pub(crate) fn contains(&self, id: u128) -> bool {
        self.by_id.contains_key(&id)
    }

    pub(crate) fn ordinal(&self, id: u128) -> Option<u64> {
        self.by_id.get(&id).copied()
    }

    pub(crate) fn get(&self, id: u128) -> Option<&TransferRecord> {
        self.at(self.ordinal(id)?)
    }

    pub(crate) fn get_mut(&mut self, id: u128) -> Option<&mut TransferRecord> {
        let (chunk, slot) = split(self.ordinal(id)?);
        self.chunks.get_mut(chunk)?.get_mut(slot)
    }

    /// The record at `ordinal`.
    pub(crate) fn at(&self, ordinal: u64) -> Option<&TransferRecord> {
        let (chunk, slot) = split(ordinal);
        self.chunks.get(chunk)?.get(slot)
    }

    /// Appends a record whose id is new (the caller checked it) and returns its ordinal.
    pub(crate) fn push(&mut self, record: TransferRecord) -> u64 {
        let ordinal = self.len();
        let previous = self.by_id.insert(record.transfer.id, ordinal);
        assert!(
            previous.is_none(),
            "a stored transfer id is never stored again"
        );
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK_RECORDS => chunk.push(record),
            _ => {
                let mut chunk = Vec::with_capacity(if self.chunks.is_empty() {
                    // A small ledger (a test, a new cluster) should not hold 15 MiB at once.
                    0
                } else {
                    CHUNK_RECORDS
                });
                chunk.push(record);
                self.chunks.push(chunk);
            }
        }
        ordinal
    }

    /// Removes the newest record, which must be `id` (undo runs newest first).
    pub(crate) fn pop(&mut self, id: u128) {
        let chunk = self
            .chunks
            .last_mut()
            .expect("undo removes a transfer that was stored");
        let record = chunk.pop().expect("chunks are never empty");
        assert_eq!(
            record.transfer.id, id,
            "undo removes the newest transfer first"
        );
        if chunk.is_empty() {
            self.chunks.pop();
        }
        self.by_id.remove(&id);
    }

    /// Every record, in apply order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &TransferRecord> {
        self.chunks.iter().flatten()
    }

    /// The records from `ordinal` on, in apply order.
    pub(crate) fn iter_from(&self, ordinal: u64) -> impl Iterator<Item = &TransferRecord> {
        let (chunk, slot) = split(ordinal);
        self.chunks
            .iter()
            .skip(chunk)
            .enumerate()
            .flat_map(move |(n, records)| records.iter().skip(if n == 0 { slot } else { 0 }))
    }
}

fn split(ordinal: u64) -> (usize, usize) {
    let chunk_records = CHUNK_RECORDS as u64;
    // Both fit: a chunk number below 2^48 and a slot below 2^16.
    (
        (ordinal / chunk_records) as usize,
        (ordinal % chunk_records) as usize,
    )
}

impl Serialize for TransferStore {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.by_id.len()))?;
        for record in self.iter() {
            seq.serialize_element(record)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for TransferStore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Records;

        impl<'de> Visitor<'de> for Records {
            type Value = TransferStore;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a sequence of transfer records in apply order")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TransferStore, A::Error> {
                let mut store = TransferStore::default();
                let mut previous: Option<(u64, u32)> = None;
                // The length a snapshot claims is not trusted for allocation: chunks grow as
                // records arrive.
                while let Some(record) = seq.next_element::<TransferRecord>()? {
                    let place = (record.journal_index, record.sequence);
                    if previous.is_some_and(|previous| previous >= place) {
                        return Err(serde::de::Error::custom(format!(
                            "transfer {} is out of apply order",
                            record.transfer.id
                        )));
                    }
                    if store.contains(record.transfer.id) {
                        return Err(serde::de::Error::custom(format!(
                            "transfer {} is stored twice",
                            record.transfer.id
                        )));
                    }
                    previous = Some(place);
                    store.push(record);
                }
                Ok(store)
            }
        }

        deserializer.deserialize_seq(Records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::transfer::{PendingState, Transfer};

    fn record(id: u128, journal_index: u64, sequence: u32) -> TransferRecord {
        TransferRecord {
            transfer: Transfer {
                id,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 5,
                pending_id: 0,
                timeout_s: 0,
                code: 0,
                reference: 0,
                flags: Default::default(),
            },
            debit_account_id: 1,
            credit_account_id: 2,
            amount: 5,
            timestamp_ns: journal_index,
            state: PendingState::NotPending,
            journal_index,
            sequence,
        }
    }

    #[test]
    fn records_keep_their_ordinals_across_chunks_and_undo() {
        let mut store = TransferStore::default();
        let total = CHUNK_RECORDS as u128 * 2 + 3;
        for id in 0..total {
            // Ids out of order: ordinals follow the apply order, not the ids.
            let id = (id * 7919) % total + 1;
            let ordinal = store.push(record(id, 1 + store.len() / 10, 0));
            assert_eq!(store.ordinal(id), Some(ordinal));
        }
        assert_eq!(store.len() as u128, total);
        let last = store.at(store.len() - 1).unwrap().transfer.id;
        store.pop(last);
        assert_eq!(store.get(last), None);
        assert_eq!(store.len() as u128, total - 1);
        let ordinal = CHUNK_RECORDS as u64 + 5;
        let id = store.at(ordinal).unwrap().transfer.id;
        assert_eq!(store.get(id).unwrap().transfer.id, id);
        assert_eq!(store.iter_from(ordinal).next().unwrap().transfer.id, id);
        assert_eq!(
            store.iter_from(ordinal).count() as u64,
            store.len() - ordinal
        );
        assert_eq!(store.iter().count() as u64, store.len());
    }

    #[test]
    fn only_the_newest_transfer_can_be_undone() {
        let mut store = TransferStore::default();
        store.push(record(1, 1, 0));
        store.push(record(2, 1, 1));
        let undone_out_of_order =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.pop(1)));
        let message = undone_out_of_order.expect_err("undoing an older transfer is a bug");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            message.contains("undo removes the newest transfer first"),
            "{message}"
        );
    }

    #[test]
    fn encoding_round_trips_and_refuses_repeats_and_disorder() {
        let mut store = TransferStore::default();
        for id in [9, 3, 7] {
            store.push(record(id, 1, store.len() as u32));
        }
        let bytes = codec::encode(&store);
        let decoded: TransferStore = codec::decode(&bytes, 1 << 20).unwrap();
        assert_eq!(decoded, store);

        let repeated = vec![record(3, 1, 0), record(3, 1, 1)];
        let error = codec::decode::<TransferStore>(&codec::encode(&repeated), 1 << 20);
        assert!(error.is_err());
        let disordered = vec![record(3, 2, 0), record(4, 1, 0)];
        let error = codec::decode::<TransferStore>(&codec::encode(&disordered), 1 << 20);
        assert!(error.is_err());
    }
}
