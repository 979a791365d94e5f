//! A bounded HTTP client for the node API, and the JSON shapes `spec/http.md` promises.
//!
//! The shapes are deserialised strictly where the ledger owns the type (`Head`, `Hash`,
//! `Outcome`, `Account`, `TransferRecord`), so a test fails if the server's JSON drifts from
//! the contract. Every request has a timeout: a dead or partitioned node costs a test seconds,
//! never a hang.

use ledger::{Hash, Head, Outcome};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default time for one request, connection included. Writes wait for a quorum fsync and for
/// forwarding to the leader; a few seconds is generous on an idle loopback.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// Time to open a TCP connection on loopback: refused at once when nothing listens, so this
/// only bounds a stalled listener.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// An error answer from a node, or a transport failure (`status: None`).
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: Option<u16>,
    /// The stable `code` (`"transport"` when no answer came, `"unparsed"` when the body was not
    /// the error shape).
    pub code: String,
    pub message: String,
    /// The whole error body (error objects may carry more fields, e.g. `journal_index`).
    pub body: serde_json::Value,
}

impl ApiError {
    fn transport(error: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: None,
            code: "transport".into(),
            message: error.to_string(),
            body: serde_json::Value::Null,
        }
    }

    /// Whether the request may have failed for a reason that passes (no answer, no leader,
    /// overloaded, deadline): the same request, re-signed, may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.status,
            None | Some(429) | Some(502) | Some(503) | Some(504)
        )
    }

    /// The `journal_index` of the entry that recorded a ledger rejection, if the error has one.
    pub fn journal_index(&self) -> Option<u64> {
        self.body
            .get("journal_index")
            .and_then(serde_json::Value::as_u64)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status} {}: {}", self.code, self.message),
            None => write!(f, "no answer: {}", self.message),
        }
    }
}

/// A response as bytes, for bad-input tests that look at status and body themselves.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    /// Every header, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The first value of header `name` (lower case), if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The error `code`, when the body is an error object.
    pub fn code(&self) -> Option<String> {
        self.json()
            .get("code")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }
}

/// `GET /v1/cluster`.
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterView {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub role: String,
    pub members: Vec<MemberView>,
    pub last_applied: u64,
    pub last_log_index: u64,
    pub journal_head: Head,
}

/// One member in `GET /v1/cluster`.
#[derive(Clone, Debug, Deserialize)]
pub struct MemberView {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    pub voter: bool,
}

/// `GET /v1/state`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StateView {
    pub journal_head: Head,
    pub state_hash: Hash,
    pub last_applied: u64,
    /// The first journal entry the node stores.
    pub first_journal_index: u64,
    /// Since the node process started: snapshots installed from a leader, and journal entries
    /// fetched from peers to fill the gap before one.
    pub snapshots_installed: u64,
    pub journal_entries_fetched: u64,
}

/// The `200` answer to a write.
#[derive(Clone, Debug, Deserialize)]
pub struct WriteResponse {
    pub journal_index: u64,
    pub journal_hash: Hash,
    pub timestamp_ns: u64,
    pub outcome: Outcome,
}

/// `GET /v1/journal`.
#[derive(Clone, Debug, Deserialize)]
pub struct JournalPage {
    pub entries: Vec<serde_json::Value>,
    pub first_index: u64,
}

/// A blocking HTTP client with bounded requests. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Api {
    http: reqwest::blocking::Client,
}

impl Default for Api {
    fn default() -> Api {
        Api::new(REQUEST_TIMEOUT_DEFAULT)
    }
}

impl Api {
    /// A client whose every request, connection included, ends within `timeout`.
    pub fn new(timeout: Duration) -> Api {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .build()
            .expect("an HTTP client without TLS always builds");
        Api { http }
    }

    /// `GET url`, answer decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, url: &str) -> Result<T, ApiError> {
        decode(self.http.get(url).send())
    }

    /// `POST url` with a JSON body and, for admin routes, a bearer token.
    pub fn post<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl Serialize,
        token: Option<&str>,
    ) -> Result<T, ApiError> {
        let mut request = self.http.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        decode(request.send())
    }

    /// Any request with raw bytes; the answer is returned whatever its status.
    pub fn raw(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<RawResponse, ApiError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(ApiError::transport)?;
        let mut request = self.http.request(method, url).body(body);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(ApiError::transport)?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let content_type = headers
            .iter()
            .find(|(name, _)| name == "content-type")
            .map(|(_, value)| value.clone());
        let body = response.bytes().map_err(ApiError::transport)?.to_vec();
        Ok(RawResponse {
            status,
            content_type,
            headers,
            body,
        })
    }
}

/// One Server-Sent Event of a stream (`spec/http.md`: the alert stream).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

impl Api {
    /// `GET url` as a Server-Sent Events stream: hands each event to `on_event` as it arrives,
    /// until `on_event` returns `false`, the stream ends, or this client's timeout (which
    /// bounds the whole exchange) runs out. Comments (keep-alives) are skipped. A non-2xx
    /// answer is the usual error.
    pub fn sse(
        &self,
        url: &str,
        mut on_event: impl FnMut(SseEvent) -> bool,
    ) -> Result<(), ApiError> {
        use std::io::BufRead;
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .map_err(ApiError::transport)?;
        if !response.status().is_success() {
            return decode::<serde_json::Value>(Ok(response)).map(|_| ());
        }
        let mut event = SseEvent::default();
        let mut has_data = false;
        for line in std::io::BufReader::new(response).lines() {
            let line = line.map_err(ApiError::transport)?;
            if line.is_empty() {
                if has_data && !on_event(std::mem::take(&mut event)) {
                    return Ok(());
                }
                event = SseEvent::default();
                has_data = false;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(
    sent: reqwest::Result<reqwest::blocking::Response>,
) -> Result<T, ApiError> {
    let response = sent.map_err(ApiError::transport)?;
    let status = response.status();
    let bytes = response.bytes().map_err(ApiError::transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|error| ApiError {
            status: Some(status.as_u16()),
            code: "unparsed".into(),
            message: format!(
                "answer does not match the contract: {error}: {}",
                String::from_utf8_lossy(&bytes)
            ),
            body: serde_json::Value::Null,
        });
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let text = |field: &str| {
        body.get(field)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    Err(ApiError {
        status: Some(status.as_u16()),
        code: text("code").unwrap_or_else(|| "unparsed".into()),
        message: text("message").unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
        body,
    })
}
