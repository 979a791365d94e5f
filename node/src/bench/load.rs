//! Load from pre-signed requests: closed loop (each client sends its next request when the
//! last one is answered) or open loop (requests leave on a fixed schedule, whatever the answers).
//!
//! Requests are built and signed before the clock starts, so the bench's own signing and JSON
//! encoding do not compete with the nodes for this machine's two cores. A run ends after its
//! duration or when the requests run out, whichever comes first; throughput is what was
//! confirmed applied divided by the time it really took. In the open loop, latency is measured
//! from each request's scheduled departure, so a stalled node cannot hide queueing (no
//! coordinated omission). A `429 overloaded` is retried with the same request (nothing was
//! proposed); any other failure is counted and reported, never retried.

use super::http::Http;
use super::report::Latencies;
use hyper::body::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One request, ready to send.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub(crate) path: &'static str,
    pub(crate) body: Bytes,
    /// Operations it carries (transfers, orders, events).
    pub(crate) ops: u64,
}

/// Reads a 200 answer: `Ok` if every operation of the request applied, else why not.
pub(crate) type Check = fn(&[u8]) -> Result<(), String>;

/// How the requests leave.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// Each client sends as soon as its previous request is answered.
    Closed,
    /// Requests leave at this many per second in total.
    Open { requests_per_s: f64 },
}

/// What a run did.
#[derive(Debug, Default)]
pub(crate) struct LoadOutcome {
    pub(crate) requests: u64,
    /// Operations confirmed applied.
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Latencies,
    /// Requests that failed (the first few reasons are kept).
    pub(crate) failed: u64,
    pub(crate) failures: Vec<String>,
    /// Requests answered `504 timeout`: they may still apply.
    pub(crate) uncertain: u64,
    /// `429` answers retried.
    pub(crate) retries: u64,
    /// The run ended because the prepared requests ran out, not because time was up.
    pub(crate) ran_out: bool,
}

impl LoadOutcome {
    pub(crate) fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Failure reasons kept for the report.
const FAILURES_KEPT: usize = 5;

/// How long to wait before retrying a `429`.
const OVERLOAD_BACKOFF: Duration = Duration::from_millis(2);

/// Sends `requests` to `base_url` from `clients` concurrent clients for at most `duration`.
pub(crate) async fn run(
    http: &Http,
    base_url: &str,
    requests: Vec<Prepared>,
    clients: usize,
    duration: Duration,
    pace: Pace,
    check: Check,
) -> LoadOutcome {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        let (requests, next, http) = (requests.clone(), next.clone(), http.clone());
        let base_url = base_url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut outcome = LoadOutcome {
                latencies: Latencies::with_capacity(1024),
                ..LoadOutcome::default()
            };
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(index) else {
                    outcome.ran_out = true;
                    break;
                };
                let scheduled = match pace {
                    Pace::Closed => Instant::now(),
                    Pace::Open { requests_per_s } => {
                        started + Duration::from_secs_f64(index as f64 / requests_per_s)
                    }
                };
                if scheduled >= deadline {
                    break;
                }
                tokio::time::sleep_until(scheduled).await;
                let url = format!("{base_url}{}", request.path);
                let answer = loop {
                    let answer = http.post(&url, request.body.clone()).await;
                    if matches!(answer, Ok((429, _))) && Instant::now() < deadline {
                        outcome.retries += 1;
                        tokio::time::sleep(OVERLOAD_BACKOFF).await;
                        continue;
                    }
                    break answer;
                };
                outcome.latencies.record(scheduled.elapsed());
                outcome.requests += 1;
                let failure = match answer {
                    Ok((200, body)) => match check(&body) {
                        Ok(()) => {
                            outcome.ops += request.ops;
                            None
                        }
                        Err(why) => Some(why),
                    },
                    Ok((504, _)) => {
                        outcome.uncertain += 1;
                        Some("504 timeout: the request may still apply".to_owned())
                    }
                    Ok((status, body)) => Some(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )),
                    Err(why) => Some(why),
                };
                if let Some(why) = failure {
                    outcome.failed += 1;
                    if outcome.failures.len() < FAILURES_KEPT {
                        outcome.failures.push(why);
                    }
                }
            }
            outcome
        }));
    }
    let mut total = LoadOutcome::default();
    for task in tasks {
        match task.await {
            Ok(outcome) => {
                total.requests += outcome.requests;
                total.ops += outcome.ops;
                total.failed += outcome.failed;
                total.uncertain += outcome.uncertain;
                total.retries += outcome.retries;
                total.ran_out |= outcome.ran_out;
                total.latencies.merge(outcome.latencies);
                for why in outcome.failures {
                    if total.failures.len() < FAILURES_KEPT {
                        total.failures.push(why);
                    }
                }
            }
            Err(error) => {
                total.failed += 1;
                total
                    .failures
                    .push(format!("a load client stopped: {error}"));
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Builds `count` requests with `make(k)` for k in `first..first + count`, on every core
/// (signing is the slow part).
pub(crate) fn prepare(
    first: u64,
    count: u64,
    make: impl Fn(u64) -> Prepared + Sync,
) -> Vec<Prepared> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8) as u64;
    let per_thread = count.div_ceil(threads).max(1);
    let make = &make;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let start = first + thread * per_thread;
                let end = (start + per_thread).min(first + count);
                scope.spawn(move || (start..end).map(make).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}

/// How long a pre-signed envelope stays valid: long enough for the longest run it is made
/// for (`RUN_SECONDS_MAX`), within the ledger's `ENVELOPE_LIFETIME_NS_MAX`.
pub(crate) const ENVELOPE_LIFETIME: Duration = Duration::from_secs(110);

/// The longest timed phase: its requests are all signed before it starts, and must not expire.
pub(crate) const RUN_SECONDS_MAX: u64 = 90;

const _: () =
    assert!(ENVELOPE_LIFETIME.as_secs() * 1_000_000_000 < ledger::limits::ENVELOPE_LIFETIME_NS_MAX);
const _: () = assert!(RUN_SECONDS_MAX < ENVELOPE_LIFETIME.as_secs());

/// Bytes of pre-built request bodies one phase may hold in memory.
const PREPARED_BYTES_MAX: u64 = 3 * 1024 * 1024 * 1024;

/// Operations per second assumed for sizing a warm-up (a high guess: a warm-up that runs out
/// of requests only ends early).
const WARM_UP_RATE_GUESS: f64 = 50_000.0;

/// A stream of requests `make(k, expires_at_ns)` for k = 0, 1, 2, …, sent in phases.
pub(crate) struct Workload<'a> {
    pub(crate) http: &'a Http,
    pub(crate) base_url: String,
    pub(crate) clients: usize,
    pub(crate) ops_per_request: u64,
    pub(crate) make: &'a (dyn Fn(u64, u64) -> Prepared + Sync),
    pub(crate) check: Check,
    /// The next k.
    pub(crate) next: u64,
    /// Operations acknowledged as applied, over every phase (warm-up included).
    pub(crate) acknowledged: u64,
    /// Operations of requests that failed or timed out, over every phase: some may have
    /// applied.
    pub(crate) doubtful: u64,
}

/// Nanoseconds since the Unix epoch by this machine's clock.
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

impl Workload<'_> {
    /// Builds the next `count` requests (signed now, valid for `ENVELOPE_LIFETIME`).
    pub(crate) fn prepare(&mut self, count: u64) -> Vec<Prepared> {
        let expires_at_ns = now_ns() + ENVELOPE_LIFETIME.as_secs() * 1_000_000_000;
        let make = self.make;
        let requests = prepare(self.next, count, |k| make(k, expires_at_ns));
        self.next += count;
        requests
    }

    /// Requests for `seconds` at `ops_per_s`, with room to spare, bounded by memory.
    fn count_for(&self, ops_per_s: f64, seconds: f64, body_bytes: u64) -> u64 {
        let wanted = (ops_per_s * seconds * 1.5 / self.ops_per_request as f64).ceil() as u64;
        let by_memory = PREPARED_BYTES_MAX / body_bytes.max(1);
        (wanted + 2 * self.clients as u64).min(by_memory).max(1)
    }

    /// Runs a closed-loop warm-up of `duration` and returns the rate it reached (ops/s).
    pub(crate) async fn warm_up(&mut self, duration: Duration) -> Option<f64> {
        if duration.is_zero() {
            return None;
        }
        let sample = self.prepare(1);
        let body_bytes = sample
            .first()
            .map_or(1, |request| request.body.len() as u64);
        let count = self.count_for(WARM_UP_RATE_GUESS, duration.as_secs_f64(), body_bytes);
        let mut requests = sample;
        requests.extend(self.prepare(count));
        let outcome = run(
            self.http,
            &self.base_url,
            requests,
            self.clients,
            duration,
            Pace::Closed,
            self.check,
        )
        .await;
        self.tally(&outcome);
        let rate = outcome.ops_per_s();
        // A warm-up that ran out only shows a lower bound.
        Some(if outcome.ran_out { rate * 2.0 } else { rate })
    }

    /// Runs a timed phase of `duration` at `pace`, with requests for `expected_ops_per_s`.
    pub(crate) async fn phase(
        &mut self,
        duration: Duration,
        pace: Pace,
        expected_ops_per_s: f64,
    ) -> LoadOutcome {
        let sample = self.prepare(1);
        let body_bytes = sample
            .first()
            .map_or(1, |request| request.body.len() as u64);
        let count = match pace {
            Pace::Closed => self.count_for(expected_ops_per_s, duration.as_secs_f64(), body_bytes),
            Pace::Open { requests_per_s } => {
                (requests_per_s * duration.as_secs_f64()).ceil() as u64 + 1
            }
        };
        let mut requests = sample;
        requests.extend(self.prepare(count.saturating_sub(1)));
        let outcome = run(
            self.http,
            &self.base_url,
            requests,
            self.clients,
            duration,
            pace,
            self.check,
        )
        .await;
        self.tally(&outcome);
        outcome
    }

    /// Sends the next `count` requests, closed loop, for at most `duration`.
    pub(crate) async fn requests(&mut self, count: u64, duration: Duration) -> LoadOutcome {
        let requests = self.prepare(count);
        let outcome = run(
            self.http,
            &self.base_url,
            requests,
            self.clients,
            duration,
            Pace::Closed,
            self.check,
        )
        .await;
        self.tally(&outcome);
        outcome
    }

    fn tally(&mut self, outcome: &LoadOutcome) {
        self.acknowledged += outcome.ops;
        self.doubtful += outcome.failed * self.ops_per_request;
    }

    /// Checks that the ledger applied `applied` operations: every acknowledged one, and no
    /// more than those whose fate is unknown besides.
    pub(crate) fn check_applied(&self, applied: u64, what: &str) -> anyhow::Result<()> {
        if applied < self.acknowledged || applied > self.acknowledged + self.doubtful {
            anyhow::bail!(
                "the ledger applied {applied} {what}; {} were acknowledged and {} more may have applied",
                self.acknowledged,
                self.doubtful
            );
        }
        Ok(())
    }
}
