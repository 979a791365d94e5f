//! A small HTTP/1.1 JSON client for one node's API (`spec/http.md`); text answers (a CSV
//! report) too.
//!
//! One connection per request (the CLI makes a handful), plain HTTP only (nodes serve no TLS),
//! every request under a deadline and every response body under a size bound. Errors keep the
//! node's stable `{code, message}` so callers can print them or act on a code. This module
//! never interprets ledger outcomes: `commands.rs` does.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Responses larger than this are refused (a page of 1,000 journal entries of large batches
/// is the biggest thing a node sends to the CLI).
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Bytes of one line of a streamed answer (an SSE `data:` line holds one JSON event).
pub const STREAM_LINE_BYTES_MAX: usize = 1024 * 1024;

/// How long an ordinary request may take, connection included. Longer than the node's own
/// apply deadline, so that its `504 timeout` arrives before ours.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a blocking admin call (adding a learner, which waits for it to catch up) may take.
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads a `u64` written as a JSON number or a decimal string (the API writes integers that
/// may pass 2^53 as strings).
pub fn lenient_u64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(number) => number
            .as_u64()
            .ok_or_else(|| D::Error::custom(format!("not a u64: {number}"))),
        serde_json::Value::String(text) => text
            .parse()
            .map_err(|_| D::Error::custom(format!("not a u64: {text:?}"))),
        other => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// Like [`lenient_u64`], with `null` (or absence, with `#[serde(default)]`) as `None`.
pub fn lenient_option_u64<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        value => lenient_u64(value)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// The stable error object of the API, plus the journal position of a recorded rejection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// For a command the ledger rejected: the journal entry that recorded the rejection.
    pub journal_index: Option<u64>,
    pub journal_hash: Option<String>,
    /// The whole error body, for printing.
    pub body: serde_json::Value,
}

/// Why a request did not produce a successful JSON response.
#[derive(Debug)]
pub enum RequestError {
    /// The node could not be reached, or the exchange broke off.
    Transport { url: String, message: String },
    /// The request took longer than its deadline.
    Timeout { url: String, after: Duration },
    /// The node answered with an error status.
    Api { url: String, error: ApiError },
    /// The node answered 2xx with a body that is not the expected JSON.
    Decode { url: String, message: String },
}

impl RequestError {
    /// The API error code, if the node answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            RequestError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Transport { url, message } => {
                write!(f, "cannot reach the node at {url}: {message}")
            }
            RequestError::Timeout { url, after } => {
                write!(f, "{url}: no answer within {} s", after.as_secs())
            }
            RequestError::Api { url, error } => {
                write!(
                    f,
                    "{}: {} (HTTP {} from {url}",
                    error.code, error.message, error.status
                )?;
                if let Some(index) = error.journal_index {
                    write!(f, "; journal entry {index}")?;
                    if let Some(hash) = &error.journal_hash {
                        write!(f, ", hash {hash}")?;
                    }
                }
                write!(f, ")")
            }
            RequestError::Decode { url, message } => {
                write!(f, "{url}: unexpected response: {message}")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// A client of one node.
#[derive(Clone, Debug)]
pub struct NodeClient {
    /// `host:port`, as connected to and sent in the `host` header.
    authority: String,
    /// `http://host:port`, for messages.
    base_url: String,
    admin_token: Option<String>,
}

impl NodeClient {
    /// A client for `url` (`http://HOST:PORT`; `HOST:PORT` alone is taken as http).
    pub fn new(url: &str) -> anyhow::Result<NodeClient> {
        let text = url.trim();
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let uri: Uri = with_scheme.parse().map_err(|error| {
            anyhow::anyhow!("invalid node URL {url:?} ({error}); expected http://HOST:PORT")
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => anyhow::bail!(
                "invalid node URL {url:?}: nodes serve plain HTTP; use http://HOST:PORT"
            ),
            _ => anyhow::bail!("invalid node URL {url:?}: expected http://HOST:PORT"),
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            anyhow::bail!("invalid node URL {url:?}: give only http://HOST:PORT, without a path");
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("invalid node URL {url:?}: no host"))?;
        if authority.as_str().contains('@') {
            anyhow::bail!("invalid node URL {url:?}: credentials in the URL are not supported");
        }
        let host = authority.host();
        let port = match authority.as_str().strip_prefix(host) {
            Some("") => 80,
            Some(port) => port
                .strip_prefix(':')
                .and_then(|port| port.parse::<u16>().ok())
                .ok_or_else(|| anyhow::anyhow!("invalid node URL {url:?}: bad port"))?,
            None => anyhow::bail!("invalid node URL {url:?}: expected http://HOST:PORT"),
        };
        let authority = format!("{host}:{port}");
        Ok(NodeClient {
            base_url: format!("http://{authority}"),
            authority,
            admin_token: None,
        })
    }

    /// The same client, sending `authorization: Bearer <token>` (admin routes).
    pub fn with_admin_token(mut self, token: String) -> NodeClient {
        self.admin_token = Some(token);
        self
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET path` and decode the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RequestError> {
        self.request(Method::GET, path, None, REQUEST_TIMEOUT).await
    }

    /// `POST path` with a JSON body and decode the JSON answer.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, RequestError> {
        let url = self.url(path);
        let bytes = serde_json::to_vec(body).map_err(|error| RequestError::Decode {
            url,
            message: error.to_string(),
        })?;
        self.request(Method::POST, path, Some(bytes), timeout).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<T, RequestError> {
        let url = self.url(path);
        let bytes = self
            .successful(method, path, body, "application/json", timeout)
            .await?;
        serde_json::from_slice(&bytes).map_err(|error| RequestError::Decode {
            url,
            message: error.to_string(),
        })
    }

    /// `GET path` asking for `accept` (e.g. `text/csv`), and the answer as text.
    pub async fn get_text(&self, path: &str, accept: &'static str) -> Result<String, RequestError> {
        let bytes = self
            .successful(Method::GET, path, None, accept, REQUEST_TIMEOUT)
            .await?;
        String::from_utf8(bytes.to_vec()).map_err(|error| RequestError::Decode {
            url: self.url(path),
            message: format!("the answer is not UTF-8 text: {error}"),
        })
    }

    /// One request under `timeout`: the body of a 2xx answer, else the error.
    async fn successful(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        accept: &'static str,
        timeout: Duration,
    ) -> Result<Bytes, RequestError> {
        let url = self.url(path);
        let exchange = self.exchange(method, path, body, accept);
        let (status, bytes) = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(|message| RequestError::Transport {
                url: url.clone(),
                message,
            })?,
            Err(_) => {
                return Err(RequestError::Timeout {
                    url,
                    after: timeout,
                })
            }
        };
        if !status.is_success() {
            return Err(RequestError::Api {
                url,
                error: api_error(status, &bytes),
            });
        }
        Ok(bytes)
    }

    /// One request on a fresh connection; the error is a message for `Transport`.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        accept: &'static str,
    ) -> Result<(StatusCode, Bytes), String> {
        let sent = self.send(method, path, body, accept).await?;
        let status = sent.response.status();
        let collected = Limited::new(sent.response.into_body(), RESPONSE_BYTES_MAX)
            .collect()
            .await;
        drop(sent.sender);
        sent.connection.abort();
        let bytes = collected
            .map_err(|error| format!("reading the response: {error}"))?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Sends one request on a fresh connection and returns the response with its body unread.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        accept: &'static str,
    ) -> Result<Sent, String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|error| error.to_string())?;
        // Requests are small and answered at once: do not wait to fill a segment.
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| error.to_string())?;
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection to the node ended with an error");
            }
        });
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, accept);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.admin_token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| format!("cannot build the request: {error}"))?;
        match sender.send_request(request).await {
            Ok(response) => Ok(Sent {
                response,
                sender,
                connection,
            }),
            Err(error) => {
                connection.abort();
                Err(error.to_string())
            }
        }
    }

    /// `GET path` of a stream (Server-Sent Events): hands each line of the answer to `on_line`
    /// as it arrives, until the node ends the stream or `on_line` fails. Only the wait for the
    /// response's head is bounded by [`REQUEST_TIMEOUT`]; a stream may stay quiet for ever.
    pub async fn get_lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let url = self.url(path);
        let sent = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.send(Method::GET, path, None, "text/event-stream"),
        )
        .await;
        let Sent {
            response,
            sender,
            connection,
        } = match sent {
            Ok(Ok(sent)) => sent,
            Ok(Err(message)) => return Err(RequestError::Transport { url, message }.into()),
            Err(_) => {
                return Err(RequestError::Timeout {
                    url,
                    after: REQUEST_TIMEOUT,
                }
                .into())
            }
        };
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = Limited::new(body, RESPONSE_BYTES_MAX)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            drop(sender);
            connection.abort();
            let error = api_error(status, &bytes);
            return Err(RequestError::Api { url, error }.into());
        }
        let mut line = Vec::new();
        let result = loop {
            let frame = match body.frame().await {
                None => break Ok(()),
                Some(Err(error)) => {
                    let message = format!("the stream broke off: {error}");
                    break Err(RequestError::Transport { url, message }.into());
                }
                Some(Ok(frame)) => frame,
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let mut failed = None;
            for byte in data.iter() {
                if *byte != b'\n' {
                    line.push(*byte);
                    continue;
                }
                let text = String::from_utf8_lossy(&line).into_owned();
                line.clear();
                if let Err(error) = on_line(text.trim_end_matches('\r')) {
                    failed = Some(error);
                    break;
                }
            }
            if let Some(error) = failed {
                break Err(error);
            }
            if line.len() > STREAM_LINE_BYTES_MAX {
                let message = format!("a line of the stream is over {STREAM_LINE_BYTES_MAX} bytes");
                break Err(RequestError::Decode { url, message }.into());
            }
        };
        drop(sender);
        connection.abort();
        result
    }
}

/// A request sent on its own connection: the response (body unread), the sender (kept until
/// the body is read) and the task that drives the connection (aborted when done).
struct Sent {
    response: hyper::Response<hyper::body::Incoming>,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    connection: tokio::task::JoinHandle<()>,
}

/// The error object of a non-2xx answer; a body that is not one still gives a code.
fn api_error(status: StatusCode, bytes: &[u8]) -> ApiError {
    let body: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1_000)]).into_owned();
        serde_json::json!({ "message": text })
    });
    let code = body["code"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = body["message"]
        .as_str()
        .filter(|message| !message.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let journal_index = lenient_u64(&body["journal_index"]).ok();
    let journal_hash = body["journal_hash"].as_str().map(str::to_owned);
    ApiError {
        status,
        code,
        message,
        journal_index,
        journal_hash,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_parse_or_explain() {
        let client = NodeClient::new("http://127.0.0.1:7001").unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:7001");
        assert_eq!(
            NodeClient::new("127.0.0.1:7002/").unwrap().base_url(),
            "http://127.0.0.1:7002"
        );
        assert_eq!(
            NodeClient::new("http://localhost").unwrap().base_url(),
            "http://localhost:80"
        );
        assert_eq!(
            NodeClient::new("http://[::1]:7003").unwrap().base_url(),
            "http://[::1]:7003"
        );
        for (bad, expected) in [
            ("https://127.0.0.1:7001", "plain HTTP"),
            ("ftp://127.0.0.1:7001", "expected http://HOST:PORT"),
            ("http://127.0.0.1:7001/v1", "without a path"),
            ("http://user:pw@127.0.0.1:7001", "credentials"),
            ("http://127.0.0.1:notaport", "invalid node URL"),
            ("", "invalid node URL"),
        ] {
            let error = NodeClient::new(bad).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn error_bodies_keep_code_message_and_journal_position() {
        let body = br#"{"code":"exceeds_credits","message":"would overdraw","journal_index":12,"journal_hash":"ab"}"#;
        let error = api_error(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(error.code, "exceeds_credits");
        assert_eq!(error.journal_index, Some(12));
        let shown = RequestError::Api {
            url: "u".into(),
            error,
        }
        .to_string();
        assert!(
            shown.contains("exceeds_credits: would overdraw") && shown.contains("journal entry 12"),
            "{shown}"
        );

        let error = api_error(StatusCode::BAD_GATEWAY, b"<html>proxy</html>");
        assert_eq!(error.code, "http_502");
        assert_eq!(error.message, "<html>proxy</html>");
    }

    #[tokio::test]
    async fn an_unreachable_node_is_a_transport_error() {
        // Bind and drop to find a port that nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = NodeClient::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let error = client
            .get::<serde_json::Value>("/v1/health")
            .await
            .unwrap_err();
        assert!(matches!(error, RequestError::Transport { .. }), "{error}");
        assert!(
            error.to_string().contains("cannot reach the node"),
            "{error}"
        );
    }
}
