//! A steady write load: a few writer threads, each sending one transfer at a time.
//!
//! Writer `w` pays from `PARTIES[w % 3]` to the next party, a small amount each time, so no
//! account ever runs short. Each transfer is retried (re-signed, same id) on the next node of
//! its list after a transient failure, until it is acknowledged, the ledger rejects it, or the
//! load is stopped; a transfer abandoned when the load stops stays *in doubt* in the client's
//! record, which [`crate::check_exactly_once`] resolves by reading the ledger. Anything other
//! than success or a transient failure (a ledger rejection, a 4xx) is recorded as a writer error
//! and fails the test when the load stops.

use crate::client::{Client, TransferError, TransferSpec};
use crate::fixture::PARTIES;
use crate::wait::wait_for;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Pause after a transient failure before the next node is tried.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Writer threads sending transfers until stopped.
pub struct Load {
    client: Client,
    stop: Arc<AtomicBool>,
    errors: Arc<Mutex<Vec<String>>>,
    writers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `writers` threads sending through `client` to the nodes in `nodes` (each writer
    /// starts at a different one).
    pub fn start(client: &Client, writers: usize, nodes: &[u64]) -> Load {
        assert!(
            !nodes.is_empty(),
            "a load needs at least one node to write to"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let writers = (0..writers)
            .map(|writer| {
                let (client, stop, errors) =
                    (client.clone(), Arc::clone(&stop), Arc::clone(&errors));
                let nodes = nodes.to_vec();
                std::thread::Builder::new()
                    .name(format!("writer-{writer}"))
                    .spawn(move || write_until_stopped(writer, &client, &nodes, &stop, &errors))
                    .expect("spawn a writer thread")
            })
            .collect();
        Load {
            client: client.clone(),
            stop,
            errors,
            writers,
        }
    }

    /// Waits (bounded) until the client has at least `count` acknowledged transfers in all.
    pub fn wait_acknowledged(&self, count: usize, timeout: Duration) {
        wait_for(&format!("{count} acknowledged transfers"), timeout, || {
            self.check_errors();
            let acknowledged = self.client.acknowledged_count();
            if acknowledged >= count {
                Ok(())
            } else {
                Err(format!("{acknowledged} acknowledged"))
            }
        });
    }

    /// Stops the writers, waits for them, and panics if any of them met an error that is not a
    /// transient failure.
    pub fn stop(mut self) {
        self.stop_and_join();
        self.check_errors();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for writer in self.writers.drain(..) {
            // A writer that panicked has already printed its panic; report it as an error.
            if writer.join().is_err() {
                self.errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push("a writer panicked".into());
            }
        }
    }

    fn check_errors(&self) {
        let errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            errors.is_empty(),
            "writers met errors that are not transient: {errors:?}"
        );
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // Writers must not outlive the test (nor keep writing to the next test's cluster).
        self.stop_and_join();
    }
}

fn write_until_stopped(
    writer: usize,
    client: &Client,
    nodes: &[u64],
    stop: &AtomicBool,
    errors: &Mutex<Vec<String>>,
) {
    let payer = PARTIES[writer % PARTIES.len()];
    let payee = PARTIES[(writer + 1) % PARTIES.len()];
    let mut position = writer;
    let mut sent: u128 = 0;
    while !stop.load(Ordering::Relaxed) {
        sent += 1;
        let spec = TransferSpec::new(payer, payee, 1 + sent % 97);
        loop {
            let node = nodes[position % nodes.len()];
            match client.transfer_once(node, &spec) {
                Ok(_) => break,
                Err(TransferError::Api(error)) if error.is_transient() => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    position += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(error) => {
                    let message = format!(
                        "writer {writer}, transfer {} through node {node}: {error}",
                        spec.id
                    );
                    errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(message);
                    return;
                }
            }
        }
    }
}
