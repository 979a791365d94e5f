//! The agent's view of the ledger: a client that tries each configured node in turn, and the
//! parts of the bank's HTTP answers the agent reads (`spec/http.md`, bank routes).
//!
//! The views read only the fields the agent needs and ignore the rest, so a node that adds
//! fields does not break an agent. Writes go through `POST /v1/commands`, each attempt in a
//! fresh envelope (new random nonce) around the same command: a command that applied after
//! a lost answer is then answered `repeated` (offers, reports) or detected by re-reading
//! (allocation reports), never refused as a replayed nonce. This module never decides what
//! to send.

use crate::cli::client::{lenient_u64, NodeClient, RequestError, REQUEST_TIMEOUT};
use crate::cli::commands::{sign, WriteResponse};
use crate::cli::keys::KeyFile;
use ledger::bank::AllocationState;
use ledger::{Command, CommandResult};
use serde::{Deserialize, Deserializer};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads a `u128` written as a decimal string or a JSON number.
fn lenient_u128<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => text
            .parse()
            .map_err(|_| D::Error::custom(format!("not a u128: {text:?}"))),
        serde_json::Value::Number(number) => number
            .as_u64()
            .map(u128::from)
            .ok_or_else(|| D::Error::custom(format!("not a u128: {number}"))),
        other => Err(D::Error::custom(format!("expected an id, got {other}"))),
    }
}

/// `GET /v1/hosts/{host_id}`: a registered host.
#[derive(Clone, Debug, Deserialize)]
pub struct HostView {
    pub spec: HostSpecView,
    pub owner: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HostSpecView {
    pub host_id: String,
    pub gpu_class: String,
    pub gpu_count: u32,
    /// 64 hex digits.
    pub agent_key: String,
}

/// `GET /v1/offers/{offer_id}`: an offer and how far it has been metered.
#[derive(Clone, Debug, Deserialize)]
pub struct OfferView {
    pub spec: OfferSpecView,
    #[serde(deserialize_with = "lenient_u64")]
    pub reported_until_ns: u64,
    #[serde(default)]
    pub delivered_gpu_s: u64,
    #[serde(default)]
    pub down_gpu_s: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct OfferSpecView {
    #[serde(deserialize_with = "lenient_u128")]
    pub offer_id: u128,
    pub host_id: String,
    pub gpu_count: u32,
    #[serde(deserialize_with = "lenient_u64")]
    pub start_ns: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub end_ns: u64,
}

#[derive(Debug, Deserialize)]
struct OfferList {
    offers: Vec<OfferView>,
    /// The `after` of the next page, if there is one.
    #[serde(default)]
    next: Option<String>,
}

/// Pages the agent follows in one listing: a week of one-minute windows is about 10 pages of
/// 1,000; the bound keeps a confused node from holding the agent in a loop.
pub const LIST_PAGES_MAX: usize = 1_000;

/// `GET /v1/allocations/{id}`: an allocation.
#[derive(Clone, Debug, Deserialize)]
pub struct AllocationView {
    #[serde(deserialize_with = "lenient_u128")]
    pub allocation_id: u128,
    pub party: String,
    pub host_id: String,
    #[serde(deserialize_with = "lenient_u128")]
    pub offer_id: u128,
    pub gpu_count: u32,
    #[serde(deserialize_with = "lenient_u64")]
    pub start_ns: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub end_ns: u64,
    pub state: AllocationState,
}

#[derive(Debug, Deserialize)]
struct AllocationList {
    allocations: Vec<AllocationView>,
    #[serde(default)]
    next: Option<String>,
}

/// What became of a write.
#[derive(Debug)]
pub enum WriteError {
    /// No node answered (or the answer was lost): the command may or may not have applied;
    /// retry the same command.
    Unreachable(String),
    /// The ledger (or the node) refused it with this stable code.
    Refused { code: String, message: String },
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Unreachable(message) => write!(f, "{message}"),
            WriteError::Refused { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

/// Whether an error means "try another node" rather than "this node says no".
fn is_retryable(error: &RequestError) -> bool {
    match error {
        RequestError::Transport { .. }
        | RequestError::Timeout { .. }
        | RequestError::Decode { .. } => true,
        RequestError::Api { error, .. } => {
            matches!(error.status.as_u16(), 429 | 502 | 503 | 504) || error.status.as_u16() >= 500
        }
    }
}

/// Posts a signed command to `POST /v1/commands`, the generic write route every node serves
/// (`spec/http.md`), whatever typed routes exist beside it.
async fn submit(
    client: &NodeClient,
    signed: &ledger::SignedCommand,
) -> Result<WriteResponse, RequestError> {
    let raw: serde_json::Value = client.post(COMMANDS_ROUTE, signed, REQUEST_TIMEOUT).await?;
    WriteResponse::from_json(raw).map_err(|error| RequestError::Decode {
        url: format!("{}{COMMANDS_ROUTE}", client.base_url()),
        message: format!("not a write answer: {error}"),
    })
}

/// The route the agent writes to.
const COMMANDS_ROUTE: &str = "/v1/commands";

/// The configured nodes, tried in turn from the last one that answered.
pub struct Nodes {
    clients: Vec<NodeClient>,
    preferred: AtomicUsize,
}

impl Nodes {
    pub fn new(urls: &[String]) -> anyhow::Result<Nodes> {
        let clients = urls
            .iter()
            .map(|url| NodeClient::new(url))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!clients.is_empty(), "no node URLs");
        Ok(Nodes {
            clients,
            preferred: AtomicUsize::new(0),
        })
    }

    /// The URL of the node last used.
    pub fn current_url(&self) -> &str {
        let index = self.preferred.load(Ordering::Relaxed) % self.clients.len();
        self.clients[index].base_url()
    }

    /// `GET path` from the first node that answers; a 404 and other refusals come back as
    /// they are, from that node.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, RequestError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for attempt in 0..self.clients.len() {
            let index = (first + attempt) % self.clients.len();
            match self.clients[index].get(path).await {
                Ok(value) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(error) if is_retryable(&error) => {
                    tracing::debug!(%error, "node did not answer; trying the next");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        // `clients` is never empty (checked in `new`), so an error was recorded.
        Err(last_error.unwrap_or_else(|| RequestError::Transport {
            url: path.to_owned(),
            message: "no nodes".to_owned(),
        }))
    }

    /// Signs `command` afresh for each attempt and submits it to the first node that answers.
    pub async fn write(
        &self,
        key: &KeyFile,
        command: &Command,
    ) -> Result<WriteResponse, WriteError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for attempt in 0..self.clients.len() {
            let index = (first + attempt) % self.clients.len();
            let signed = sign(key, command.clone())
                .map_err(|error| WriteError::Unreachable(format!("{error:#}")))?;
            match submit(&self.clients[index], &signed).await {
                Ok(response) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    if let CommandResult::Rejected(reason) = &response.outcome.result {
                        return Err(WriteError::Refused {
                            code: reason.to_string(),
                            message: format!(
                                "rejected in journal entry {}",
                                response.journal_index
                            ),
                        });
                    }
                    return Ok(response);
                }
                Err(error) if is_retryable(&error) => failures.push(error.to_string()),
                Err(RequestError::Api { error, .. }) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Err(WriteError::Refused {
                        code: error.code,
                        message: error.message,
                    });
                }
                Err(error) => failures.push(error.to_string()),
            }
        }
        Err(WriteError::Unreachable(failures.join("; ")))
    }

    pub async fn host(&self, host_id: &str) -> Result<HostView, RequestError> {
        self.get(&format!("/v1/hosts/{host_id}")).await
    }

    /// Every offer of the host, oldest window first (all pages).
    pub async fn host_offers(&self, host_id: &str) -> Result<Vec<OfferView>, RequestError> {
        let mut offers = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let path = match &after {
                None => format!("/v1/hosts/{host_id}/offers"),
                Some(after) => format!("/v1/hosts/{host_id}/offers?after={after}"),
            };
            let page: OfferList = self.get(&path).await?;
            offers.extend(page.offers);
            match page.next {
                Some(next) if Some(&next) != after.as_ref() => after = Some(next),
                _ => break,
            }
        }
        Ok(offers)
    }

    pub async fn offer(&self, offer_id: u128) -> Result<OfferView, RequestError> {
        self.get(&format!("/v1/offers/{offer_id}")).await
    }

    /// The host's allocations still `granted` or `running` (all pages).
    pub async fn active_allocations(
        &self,
        host_id: &str,
    ) -> Result<Vec<AllocationView>, RequestError> {
        let mut allocations = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let path = match &after {
                None => format!("/v1/hosts/{host_id}/allocations?state=active"),
                Some(after) => {
                    format!("/v1/hosts/{host_id}/allocations?state=active&after={after}")
                }
            };
            let page: AllocationList = self.get(&path).await?;
            allocations.extend(page.allocations);
            match page.next {
                Some(next) if Some(&next) != after.as_ref() => after = Some(next),
                _ => break,
            }
        }
        Ok(allocations)
    }

    pub async fn allocation(&self, allocation_id: u128) -> Result<AllocationView, RequestError> {
        self.get(&format!("/v1/allocations/{allocation_id}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_read_the_bank_json_and_ignore_extra_fields() {
        let offer: OfferView = serde_json::from_str(
            r#"{"spec": {"offer_id": "500", "host_id": "gpu-01", "gpu_count": 8,
                "start_ns": "1767225609001000000", "end_ns": "1767240009001000000", "new": 1},
                "owner": "univ", "reported_until_ns": "1767225609001000000",
                "pending_transfer_id": null, "transfer_count": 1, "delivered_gpu_s": 0,
                "busy_gpu_s": 0, "down_gpu_s": 0, "unreported_gpu_s": 0,
                "offered_at_ns": "1767225609001000000"}"#,
        )
        .unwrap();
        assert_eq!(offer.spec.offer_id, 500);
        assert_eq!(offer.spec.end_ns, 1_767_240_009_001_000_000);
        let allocation: AllocationView = serde_json::from_str(
            r#"{"allocation_id": "304097792948897586743317478207343898453", "withdrawal_id": "700",
                "party": "sme", "host_id": "gpu-01", "offer_id": "500", "gpu_count": 4,
                "start_ns": "10", "end_ns": "20", "state": {"completed": {"delivered_gpu_s": 40}}}"#,
        )
        .unwrap();
        assert_eq!(
            allocation.allocation_id,
            304_097_792_948_897_586_743_317_478_207_343_898_453
        );
        assert_eq!(
            allocation.state,
            AllocationState::Completed {
                delivered_gpu_s: 40
            }
        );
        let granted: AllocationView = serde_json::from_str(
            r#"{"allocation_id": "1", "party": "sme", "host_id": "h", "offer_id": 2,
                "gpu_count": 1, "start_ns": 1, "end_ns": 2, "state": "granted"}"#,
        )
        .unwrap();
        assert_eq!(granted.state, AllocationState::Granted);
        let host: HostView = serde_json::from_str(
            r#"{"spec": {"host_id": "gpu-01", "region": "beijing", "gpu_class": "H100", "gpu_count": 8,
                "agent_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "account_id": "11"}, "owner": "univ", "registered_at_ns": "5"}"#,
        )
        .unwrap();
        assert_eq!((host.spec.gpu_count, host.owner.as_str()), (8, "univ"));
    }
}
