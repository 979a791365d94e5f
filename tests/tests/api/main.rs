//! Test area `api`: the bad-input table of `spec/bad-input.md`, over HTTP, against a cluster of
//! real `cbank` processes. Every case checks the status and the stable error code, and then
//! that nothing changed: the balances, and the journal head (which moves by exactly one entry
//! when the ledger recorded the rejection, and not at all when the node refused the request
//! before proposing it).
//!
//! Run with `cargo test --workspace --test api`.

mod table;

mod t10_http_errors;
mod t20_signatures_and_rights;
mod t30_replays_and_retries;
