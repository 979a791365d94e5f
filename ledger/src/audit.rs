//! Offline audit: verifying an exported journal, and inclusion proofs for one voucher.
//!
//! An auditor needs no node and trusts no operator: given the journal entries (as canonical
//! bytes), checkpoints signed by node keys it knows, and the voucher reports the operator
//! published, [`verify_export`] checks
//! 1. every entry decodes and the blake3 chain links them from genesis;
//! 2. every checkpoint is signed by a trusted node key and names a head of this chain, and at
//!    least a majority of the trusted keys signed a checkpoint at or after the export's end;
//! 3. replaying every entry's signed command at its timestamp through a fresh [`Ledger`]
//!    gives the same entry (the same outcome and hash), and the ledger's invariants hold after;
//! 4. each published programme report equals the one recomputed from the replayed ledger.
//!
//! The first failure is reported with the journal index it concerns. Pure: the CLI reads and
//! writes the files (`node/src/cli`).

use crate::codec;
use crate::journal::{chain_hash, Checkpoint, Head, JournalEntry};
use crate::party::PublicKey;
use crate::state_machine::Ledger;
use crate::vouchers::ProgrammeReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The export file's format name.
pub const EXPORT_FORMAT: &str = "cbank-audit-export-v1";

/// The proof file's format name.
pub const PROOF_FORMAT: &str = "cbank-voucher-proof-v1";

/// Bytes of one exported journal entry, at most.
pub const ENTRY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A journal export: entries `1..=n` as hex canonical bytes, signed checkpoints, and the
/// programme reports as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub format: String,
    /// Hex of each entry's canonical bytes (`codec::encode(JournalEntry)`), from index 1.
    pub entries: Vec<String>,
    pub checkpoints: Vec<Checkpoint>,
    pub reports: Vec<ProgrammeReport>,
}

/// What an honest export verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub head: Head,
    pub entries: u64,
    /// Trusted node keys that signed a checkpoint at or after the head.
    pub signers: usize,
    pub reports: usize,
}

/// Why an export or a proof does not verify: the journal index concerned (if any) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub index: Option<u64>,
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(index) => write!(f, "entry {index}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

fn fail(index: Option<u64>, what: impl Into<String>) -> Failure {
    Failure {
        index,
        what: what.into(),
    }
}

/// Encodes entries for an export.
pub fn export(
    entries: &[JournalEntry],
    checkpoints: Vec<Checkpoint>,
    reports: Vec<ProgrammeReport>,
) -> Export {
    Export {
        format: EXPORT_FORMAT.to_owned(),
        entries: entries
            .iter()
            .map(|entry| hex::encode(codec::encode(entry)))
            .collect(),
        checkpoints,
        reports,
    }
}

/// Decodes the entry at `position` (index `position + 1`).
fn decode_entry(text: &str, index: u64) -> Result<JournalEntry, Failure> {
    let bytes = hex::decode(text).map_err(|e| fail(Some(index), format!("not hex: {e}")))?;
    codec::decode::<JournalEntry>(&bytes, ENTRY_BYTES_MAX)
        .map_err(|e| fail(Some(index), format!("does not decode: {e}")))
}

/// Checks a checkpoint against the chain heads seen so far and the trusted keys.
fn check_checkpoint(
    checkpoint: &Checkpoint,
    heads: &[Head],
    trusted: &BTreeSet<PublicKey>,
) -> Result<(), Failure> {
    let index = checkpoint.head.index;
    if !trusted.contains(&checkpoint.node_key) {
        return Err(fail(
            Some(index),
            "checkpoint signed by a key that is not a trusted node key",
        ));
    }
    if !checkpoint.signature_is_valid() {
        return Err(fail(Some(index), "checkpoint signature does not verify"));
    }
    let position = usize::try_from(index).unwrap_or(usize::MAX);
    match position.checked_sub(1).and_then(|p| heads.get(p)) {
        Some(head) if *head == checkpoint.head => Ok(()),
        Some(_) => Err(fail(
            Some(index),
            "checkpoint names a different hash than the chain",
        )),
        None => Err(fail(
            Some(index),
            "checkpoint is beyond the exported entries",
        )),
    }
}

/// Verifies an export against the node keys the auditor trusts (see the module doc).
pub fn verify_export(export: &Export, trusted: &[PublicKey]) -> Result<Verified, Failure> {
    if export.format != EXPORT_FORMAT {
        return Err(fail(None, format!("not an {EXPORT_FORMAT} file")));
    }
    if trusted.is_empty() {
        return Err(fail(None, "no trusted node keys given"));
    }
    let trusted: BTreeSet<PublicKey> = trusted.iter().copied().collect();
    let mut ledger = Ledger::new();
    let mut previous = Head::default();
    let mut heads = Vec::with_capacity(export.entries.len());
    for (position, text) in export.entries.iter().enumerate() {
        let index = position as u64 + 1;
        let entry = decode_entry(text, index)?;
        if entry.body.index != index {
            return Err(fail(
                Some(index),
                format!("carries index {}", entry.body.index),
            ));
        }
        if chain_hash(&previous.hash, &entry.body) != entry.hash {
            return Err(fail(
                Some(index),
                "hash does not chain from the entry before",
            ));
        }
        if entry.body.timestamp_ns <= ledger.last_timestamp_ns() {
            return Err(fail(Some(index), "timestamp does not increase"));
        }
        let replayed = ledger.apply(&entry.body.command, entry.body.timestamp_ns);
        if replayed != entry {
            return Err(fail(
                Some(index),
                "replaying its command gives a different outcome",
            ));
        }
        previous = entry.head();
        heads.push(previous);
    }
    if heads.is_empty() {
        return Err(fail(None, "the export has no entries"));
    }
    ledger
        .check_invariants()
        .map_err(|e| fail(Some(previous.index), format!("invariant broken: {e}")))?;
    let mut signers = BTreeSet::new();
    for checkpoint in &export.checkpoints {
        check_checkpoint(checkpoint, &heads, &trusted)?;
        if checkpoint.head == previous {
            signers.insert(checkpoint.node_key);
        }
    }
    if signers.len() * 2 <= trusted.len() {
        return Err(fail(
            Some(previous.index),
            format!(
                "only {} of {} trusted node keys signed the export's head",
                signers.len(),
                trusted.len()
            ),
        ));
    }
    for report in &export.reports {
        let recomputed = ledger
            .programme_report(&report.programme_id)
            .ok_or_else(|| {
                fail(
                    None,
                    format!("report of unknown programme {}", report.programme_id),
                )
            })?;
        if let Some(what) = report_difference(report, &recomputed) {
            return Err(fail(
                None,
                format!("report of programme {}: {what}", report.programme_id),
            ));
        }
    }
    Ok(Verified {
        head: previous,
        entries: previous.index,
        signers: signers.len(),
        reports: export.reports.len(),
    })
}

/// The first difference between a published report and the recomputed one, in words.
fn report_difference(published: &ProgrammeReport, recomputed: &ProgrammeReport) -> Option<String> {
    let totals = [
        ("budget", published.budget, recomputed.budget),
        ("unissued", published.unissued, recomputed.unissued),
        ("issued", published.issued, recomputed.issued),
        ("redeemed", published.redeemed, recomputed.redeemed),
        ("expired", published.expired, recomputed.expired),
        ("revoked", published.revoked, recomputed.revoked),
        ("outstanding", published.outstanding, recomputed.outstanding),
    ];
    for (name, was, is) in totals {
        if was != is {
            return Some(format!("{name} is {was}, the journal gives {is}"));
        }
    }
    if published.lines.len() != recomputed.lines.len() {
        return Some(format!(
            "{} lines, the journal gives {}",
            published.lines.len(),
            recomputed.lines.len()
        ));
    }
    for (was, is) in published.lines.iter().zip(&recomputed.lines) {
        if was != is {
            return Some(format!(
                "the line of journal entry {} differs from the journal",
                was.journal_index
            ));
        }
    }
    if published != recomputed {
        return Some("per-party totals differ from the journal".to_owned());
    }
    None
}

/// An inclusion proof: the entries from the first one that concerns a voucher up to a signed
/// checkpoint, and the head before them. It verifies alone: the entries chain from `previous`
/// to the checkpoint's head, and the checkpoint is signed by a trusted node key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub format: String,
    #[serde(with = "crate::wire::u128_text")]
    pub voucher_id: u128,
    /// The journal indexes of the entries that concern the voucher (issue, redemptions, end).
    pub indexes: Vec<u64>,
    pub previous: Head,
    /// Hex of the canonical bytes of entries `previous.index + 1 ..= checkpoint index`.
    pub entries: Vec<String>,
    pub checkpoints: Vec<Checkpoint>,
}

/// Builds the proof for `voucher_id` from the journal entries `1..=n` (as `entries`, index
/// `i` at position `i - 1`), the ledger state after them, and checkpoints of entry `n`.
pub fn prove_voucher(
    ledger: &Ledger,
    entries: &[JournalEntry],
    voucher_id: u128,
    checkpoints: Vec<Checkpoint>,
) -> Option<Proof> {
    let voucher = ledger.vouchers().vouchers.get(&voucher_id)?;
    let mut indexes: BTreeSet<u64> = BTreeSet::new();
    indexes.insert(voucher.journal_index);
    indexes.extend(voucher.ended_journal_index);
    indexes.extend(
        ledger
            .vouchers()
            .redemptions
            .iter()
            .filter(|r| r.voucher_id == voucher_id)
            .map(|r| r.journal_index),
    );
    let first = *indexes.first()?;
    let position = usize::try_from(first.checked_sub(1)?).ok()?;
    let previous = match position.checked_sub(1) {
        Some(before) => entries.get(before)?.head(),
        None => Head::default(),
    };
    Some(Proof {
        format: PROOF_FORMAT.to_owned(),
        voucher_id,
        indexes: indexes.into_iter().collect(),
        previous,
        entries: entries[position..]
            .iter()
            .map(|entry| hex::encode(codec::encode(entry)))
            .collect(),
        checkpoints,
    })
}

/// Verifies a proof alone: the listed indexes are within its entries, the entries chain from
/// `previous` to a head that a majority of the trusted node keys signed, and each listed
/// entry concerns the voucher. Returns the entries the voucher's history is in.
pub fn verify_proof(proof: &Proof, trusted: &[PublicKey]) -> Result<Vec<JournalEntry>, Failure> {
    if proof.format != PROOF_FORMAT {
        return Err(fail(None, format!("not a {PROOF_FORMAT} file")));
    }
    if trusted.is_empty() {
        return Err(fail(None, "no trusted node keys given"));
    }
    let trusted: BTreeSet<PublicKey> = trusted.iter().copied().collect();
    let mut previous = proof.previous;
    let mut decoded = Vec::with_capacity(proof.entries.len());
    for text in &proof.entries {
        let index = previous.index + 1;
        let entry = decode_entry(text, index)?;
        if entry.body.index != index || chain_hash(&previous.hash, &entry.body) != entry.hash {
            return Err(fail(Some(index), "does not chain from the entry before"));
        }
        previous = entry.head();
        decoded.push(entry);
    }
    let mut signers = BTreeSet::new();
    for checkpoint in &proof.checkpoints {
        if !trusted.contains(&checkpoint.node_key) || !checkpoint.signature_is_valid() {
            return Err(fail(
                Some(checkpoint.head.index),
                "checkpoint not validly signed by a trusted node key",
            ));
        }
        if checkpoint.head != previous {
            return Err(fail(
                Some(checkpoint.head.index),
                "checkpoint names another head than the proof's entries reach",
            ));
        }
        signers.insert(checkpoint.node_key);
    }
    if signers.len() * 2 <= trusted.len() {
        return Err(fail(
            Some(previous.index),
            format!(
                "only {} of {} trusted node keys signed the proof's head",
                signers.len(),
                trusted.len()
            ),
        ));
    }
    let mut concerned = Vec::new();
    for index in &proof.indexes {
        let entry = index
            .checked_sub(proof.previous.index + 1)
            .and_then(|p| usize::try_from(p).ok())
            .and_then(|p| decoded.get(p))
            .ok_or_else(|| fail(Some(*index), "listed but not among the proof's entries"))?;
        if !concerns_voucher(entry, proof.voucher_id) {
            return Err(fail(Some(*index), "does not concern the voucher"));
        }
        concerned.push(entry.clone());
    }
    Ok(concerned)
}

/// Whether `entry` issues, revokes, expires or redeems `voucher_id`: named by its command, its
/// scheduled expiries, or a trade it settled (a resting order's fill is settled by another
/// party's command, and an auction's by whichever command came next).
pub fn concerns_voucher(entry: &JournalEntry, voucher_id: u128) -> bool {
    use crate::command::Command;
    use crate::outcome::{CommandResult, Effect, Scheduled};
    let by_command = match &entry.body.command.body.command {
        Command::IssueVoucher { voucher } => voucher.voucher_id == voucher_id,
        Command::RevokeVoucher { voucher_id: id } => *id == voucher_id,
        Command::BuyPackage { purchase } => purchase.vouchers.contains(&voucher_id),
        _ => false,
    };
    let paid = |trades: &[crate::trading::Trade]| {
        trades
            .iter()
            .any(|t| t.vouchers.iter().any(|v| v.voucher_id == voucher_id))
    };
    let outcome = &entry.body.outcome;
    let by_schedule = outcome.scheduled.iter().any(|s| match s {
        Scheduled::VoucherExpired(e) => e.voucher_id == voucher_id,
        Scheduled::AuctionCleared(c) => paid(&c.trades),
        Scheduled::QuotaExpired(_) => false,
    });
    let by_trade = matches!(
        &outcome.result,
        CommandResult::Accepted(Effect::OrderPlaced(Some(placed))) if paid(&placed.trades)
    );
    by_command || by_schedule || by_trade
}
