//! A pooled HTTP/1.1 client for the cluster benches: keep-alive connections to loopback nodes,
//! so that load measures the nodes and not TCP handshakes (the CLI's `NodeClient` opens one
//! connection per request, which suits a person, not 15,000 requests a second).
//!
//! Every request has a deadline and every answer a size bound. This file never interprets an
//! answer beyond its status and bytes.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long one request may take: longer than the node's own write deadline (10 s), so that a
/// node's `504 timeout` reaches the bench before the bench gives up.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of one answer: a journal page is the largest (`JOURNAL_PAGE_BYTES_MAX` of canonical
/// bytes, more as JSON).
pub(crate) const ANSWER_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Idle keep-alive connections kept per node: one per bench client at most.
const IDLE_CONNECTIONS_MAX: usize = 512;

/// A status and body, or why the exchange failed.
pub(crate) type Answer = Result<(u16, Bytes), String>;

/// A cheap-to-clone pooled client.
#[derive(Clone)]
pub(crate) struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub(crate) fn new() -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_CONNECTIONS_MAX)
            .build(connector);
        Http { client }
    }

    async fn exchange(&self, method: Method, url: &str, body: Bytes) -> Answer {
        let uri: Uri = url
            .parse()
            .map_err(|error| format!("bad URL {url}: {error}"))?;
        let mut request = Request::builder().method(method).uri(uri);
        if !body.is_empty() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| format!("cannot build a request to {url}: {error}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| format!("{url}: {error}"))?;
            let status = response.status().as_u16();
            let bytes = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await
                .map_err(|error| format!("{url}: reading the answer: {error}"))?
                .to_bytes();
            Ok((status, bytes))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "{url}: no answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            )),
        }
    }

    /// `POST url` with a JSON body.
    pub(crate) async fn post(&self, url: &str, body: Bytes) -> Answer {
        self.exchange(Method::POST, url, body).await
    }

    /// `GET url`.
    pub(crate) async fn get(&self, url: &str) -> Answer {
        self.exchange(Method::GET, url, Bytes::new()).await
    }

    /// `GET url`, which must answer 200 with JSON of type `T`.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        let (status, bytes) = self.get(url).await.map_err(anyhow::Error::msg)?;
        if status != 200 {
            anyhow::bail!(
                "GET {url}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            );
        }
        serde_json::from_slice(&bytes)
            .map_err(|error| anyhow::anyhow!("GET {url}: unexpected answer: {error}"))
    }
}
