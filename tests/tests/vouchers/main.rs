//! Test area `vouchers`: compute vouchers and their audit end to end, against a 3-node cluster
//! of real `cbank` processes, through the HTTP API and the `cbank` binary.
//!
//! A city programme of ¥50,000,000 at 30% with a ¥2,000,000 yearly cap pays its share of SMEs'
//! purchases on the book and from the shelf, a small cap leaves a purchase to money alone, a
//! revoked and an expired voucher give their remainders back, and the report (JSON and CSV)
//! matches the hand computation to the fen, every line citing its journal entry by index and
//! hash (t10). `cbank audit export` collects the journal, every node's signed checkpoint and
//! the reports; `cbank audit verify` passes offline on the honest export and names the first
//! bad entry when a byte of an entry, a checkpoint signature or a report is changed; a
//! voucher's inclusion proof verifies alone and fails when tampered with (t20). Only the
//! issuing government issues and revokes, only the beneficiary redeems, and an auditor reads
//! but never writes, each refusal with its reason code and nothing changed (t30).
//!
//! Run with `cargo test -p tests --test vouchers`.

mod fixture;

mod t10_programme_pays_its_share_and_reports;
mod t20_audit_export_verifies_offline;
mod t30_only_owners_and_beneficiaries_act;
