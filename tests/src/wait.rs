//! The one polling loop: try a probe until it succeeds or a deadline passes, then fail loudly.
//!
//! Tests never sleep for a fixed time to let something happen; they poll for it with a bound.

use std::time::{Duration, Instant};

/// How long to pause between two probes. Short enough that a wait ends soon after the
/// condition holds; long enough not to load a 2-core machine with polling.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Calls `probe` until it returns `Ok`, and returns that value. Panics after `timeout` with
/// `what` and the last error the probe gave.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last_error) => {
                if start.elapsed() >= timeout {
                    panic!("timed out after {timeout:?} waiting for {what}; last: {last_error}");
                }
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
