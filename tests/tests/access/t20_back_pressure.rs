//! Bounds under load (`spec/http.md`, `node/src/limits.rs`): a node serving
//! `HTTP_REQUESTS_IN_FLIGHT_MAX` requests refuses the next one at once with `429 overloaded`
//! (no queue that grows), and a request whose body never arrives is ended with
//! `408 body_timeout` after `REQUEST_BODY_TIMEOUT`, which gives its place back, so stalled
//! clients cannot lock a node out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tests::{wait_for, Cluster};

/// `HTTP_REQUESTS_IN_FLIGHT_MAX` of `node/src/limits.rs`.
const HTTP_REQUESTS_IN_FLIGHT_MAX: usize = 256;

/// `REQUEST_BODY_TIMEOUT` of `node/src/limits.rs`.
const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The headers of a write whose 64-byte body never comes.
const STALLED_HEADERS: &str = "POST /v1/transfers HTTP/1.1\r\nHost: 127.0.0.1\r\n\
     Content-Type: application/json\r\nContent-Length: 64\r\n\r\n";

#[test]
fn a_full_node_answers_overloaded_and_a_stalled_body_times_out() {
    let cluster = Cluster::start(1);
    let address = cluster.node(1).http_addr;
    let health = format!("{}/v1/health", cluster.url(1));
    let started = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..HTTP_REQUESTS_IN_FLIGHT_MAX)
        .map(|n| {
            let mut stream = TcpStream::connect(address)
                .unwrap_or_else(|error| panic!("connection {n} to {address}: {error}"));
            stream
                .write_all(STALLED_HEADERS.as_bytes())
                .expect("send the headers");
            stream
        })
        .collect();
    // The node takes the connections as fast as it can; once all of them wait for their
    // bodies, the next request is refused, not queued.
    let refused = wait_for(
        "the node to refuse a request beyond its in-flight bound",
        REQUEST_BODY_TIMEOUT / 2,
        || {
            let answer = cluster
                .api()
                .raw("GET", &health, None, None, Vec::new())
                .map_err(|error| error.to_string())?;
            if answer.status == 429 {
                Ok(answer)
            } else {
                Err(format!("answered {}", answer.status))
            }
        },
    );
    assert_eq!(refused.code().as_deref(), Some("overloaded"));
    assert!(refused
        .content_type
        .as_deref()
        .is_some_and(|value| value.starts_with("application/json")));
    assert!(refused.json()["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));

    // Each stalled request is ended by the node, not by its client.
    let first = &mut stalled[0];
    first
        .set_read_timeout(Some(REQUEST_BODY_TIMEOUT * 2))
        .expect("a read timeout");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("body_timeout") {
        match first.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            Err(error) => panic!("no answer to a stalled request: {error}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("\"code\":\"body_timeout\""),
        "a stalled body gets 408 body_timeout: {answer}"
    );
    assert!(
        started.elapsed() + Duration::from_secs(1) >= REQUEST_BODY_TIMEOUT,
        "the body timeout fired after only {:?}",
        started.elapsed()
    );

    // Their places are free again while their connections are still open.
    wait_for("the node to serve again", REQUEST_BODY_TIMEOUT, || {
        let answer = cluster
            .api()
            .raw("GET", &health, None, None, Vec::new())
            .map_err(|error| error.to_string())?;
        if answer.status == 200 {
            Ok(())
        } else {
            Err(format!("answered {}", answer.status))
        }
    });
    drop(stalled);
}
