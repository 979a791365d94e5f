//! A test client that signs transfers, submits them to any node, and remembers what was
//! acknowledged.
//!
//! A transfer is *acknowledged* when a node answered `200` with an outcome that applied it: the
//! command accepted and the transfer not failed (a `transfer_exists` result also counts: it is
//! the answer to a retry of a transfer that already applied). Every transfer the client tried is
//! kept as an [`Attempt`], so a fault test can check afterwards that every acknowledged one is
//! present exactly once, and that those never acknowledged are either present once or absent.
//!
//! Retries re-sign the same transfer (same id, new nonce): the transfer id is the idempotency
//! key, so a retry of a transfer that did apply changes nothing.

use crate::api::{Api, ApiError, WriteResponse};
use crate::fixture::{account_of, next_transfer_id};
use crate::sign::sign;
use ledger::{Command, Reason, SignedCommand, Transfer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Pause after a transient failure before trying the next node, so a client spinning through
/// nodes that have no leader does not load the machine.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// One transfer between two fixture parties' CNY accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferSpec {
    pub id: u128,
    /// The party that owns the debit account and signs.
    pub payer: &'static str,
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    pub amount: u128,
}

impl TransferSpec {
    /// A transfer with a fresh id from `payer`'s account to `payee`'s.
    pub fn new(payer: &'static str, payee: &'static str, amount: u128) -> TransferSpec {
        TransferSpec {
            id: next_transfer_id(),
            payer,
            debit_account_id: account_of(payer),
            credit_account_id: account_of(payee),
            amount,
        }
    }

    /// The ledger command that makes this transfer.
    pub fn command(&self) -> Command {
        Command::CreateTransfers {
            transfers: vec![Transfer {
                id: self.id,
                debit_account_id: self.debit_account_id,
                credit_account_id: self.credit_account_id,
                amount: self.amount,
                pending_id: 0,
                timeout_s: 0,
                code: 1,
                reference: 0,
                flags: Default::default(),
            }],
        }
    }
}

/// A transfer the client tried, and whether it was acknowledged.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub spec: TransferSpec,
    /// The journal index of the acknowledging answer; `None` if no answer said it applied.
    pub acknowledged_at: Option<u64>,
}

/// Why a transfer was not acknowledged.
#[derive(Clone, Debug)]
pub enum TransferError {
    /// The ledger answered and did not apply it: the command's or the event's reason.
    Rejected(Reason),
    /// The node answered with an HTTP error, or did not answer.
    Api(ApiError),
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::Rejected(reason) => {
                write!(f, "rejected by the ledger: {}", reason.name())
            }
            TransferError::Api(error) => error.fmt(f),
        }
    }
}

/// Signs and submits commands to the nodes of one cluster. Clones share the attempt record.
#[derive(Clone)]
pub struct Client {
    api: Api,
    /// Node id → HTTP base URL.
    urls: BTreeMap<u64, String>,
    attempts: Arc<Mutex<BTreeMap<u128, Attempt>>>,
}

impl Client {
    pub fn new(api: Api, urls: BTreeMap<u64, String>) -> Client {
        Client {
            api,
            urls,
            attempts: Arc::default(),
        }
    }

    /// The same client (same attempt record) with another per-request timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            api: Api::new(timeout),
            urls: self.urls.clone(),
            attempts: Arc::clone(&self.attempts),
        }
    }

    pub fn node_ids(&self) -> Vec<u64> {
        self.urls.keys().copied().collect()
    }

    pub fn url(&self, node: u64) -> &str {
        self.urls
            .get(&node)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    /// `POST <node><path>` with a signed command.
    pub fn submit(
        &self,
        node: u64,
        path: &str,
        command: &SignedCommand,
    ) -> Result<WriteResponse, ApiError> {
        self.api
            .post(&format!("{}{path}", self.url(node)), command, None)
    }

    /// Signs `command` for `signer` and submits it to `node` through `POST /v1/commands`;
    /// panics unless it applied cleanly (used for set-up).
    pub fn expect_applied(&self, node: u64, signer: &str, command: Command) -> WriteResponse {
        let name = command.name();
        let response = self
            .submit(node, "/v1/commands", &sign(signer, command))
            .unwrap_or_else(|error| panic!("{name} by {signer} through node {node}: {error}"));
        let outcome = &response.outcome;
        assert!(
            outcome.rejected().is_none() && outcome.event_results().is_empty(),
            "{name} by {signer} applies cleanly: {outcome:?}"
        );
        response
    }

    /// One try: signs `spec` afresh and submits it to `node`. Records the attempt, and the
    /// acknowledgement if the answer says the transfer applied.
    pub fn transfer_once(
        &self,
        node: u64,
        spec: &TransferSpec,
    ) -> Result<WriteResponse, TransferError> {
        self.record(spec, None);
        let response = self
            .submit(node, "/v1/transfers", &sign(spec.payer, spec.command()))
            .map_err(TransferError::Api)?;
        if let Some(reason) = response.outcome.rejected() {
            return Err(TransferError::Rejected(reason));
        }
        let failed = response
            .outcome
            .event_results()
            .iter()
            .find(|result| result.reason != Reason::TransferExists);
        if let Some(result) = failed {
            return Err(TransferError::Rejected(result.reason));
        }
        self.record(spec, Some(response.journal_index));
        Ok(response)
    }

    /// Tries `spec` on the nodes in turn (starting with `first`, skipping none) until one
    /// acknowledges it, the ledger rejects it, a non-transient error comes back, or `deadline`
    /// has passed. Returns the node that acknowledged it and its answer.
    pub fn transfer(
        &self,
        first: u64,
        spec: &TransferSpec,
        deadline: Duration,
    ) -> Result<(u64, WriteResponse), TransferError> {
        let start = Instant::now();
        let nodes = self.node_ids();
        let mut position = nodes.iter().position(|id| *id == first).unwrap_or(0);
        loop {
            let node = nodes[position % nodes.len()];
            match self.transfer_once(node, spec) {
                Ok(response) => return Ok((node, response)),
                Err(TransferError::Api(error))
                    if error.is_transient() && start.elapsed() < deadline =>
                {
                    position += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Every transfer this client (and its clones) tried, by id.
    pub fn attempts(&self) -> BTreeMap<u128, Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The acknowledged transfers.
    pub fn acknowledged(&self) -> Vec<Attempt> {
        self.attempts()
            .into_values()
            .filter(|attempt| attempt.acknowledged_at.is_some())
            .collect()
    }

    /// How many transfers were acknowledged so far.
    pub fn acknowledged_count(&self) -> usize {
        let attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        attempts
            .values()
            .filter(|attempt| attempt.acknowledged_at.is_some())
            .count()
    }

    fn record(&self, spec: &TransferSpec, acknowledged_at: Option<u64>) {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let attempt = attempts.entry(spec.id).or_insert(Attempt {
            spec: *spec,
            acknowledged_at: None,
        });
        assert_eq!(
            attempt.spec, *spec,
            "transfer id {} reused for another transfer",
            spec.id
        );
        if acknowledged_at.is_some() {
            attempt.acknowledged_at = acknowledged_at;
        }
    }
}
