//! Blocking work (file I/O, sled, signature checks) run off the async worker threads, or
//! inline on the simulator's one thread.
//!
//! A node runs [`run`]'s work on tokio's blocking pool, so an fsync never stalls the tasks
//! serving requests. The simulator (`sim/`) runs a whole cluster on one thread under a paused
//! clock, where a pool thread would make the order of events depend on the OS scheduler; it
//! calls [`run_inline_on_this_thread`] first, and the same work then runs as an ordinary task
//! on that thread. This file never decides what the work is.

use std::cell::Cell;
use tokio::task::JoinError;

thread_local! {
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Makes every later [`run`] on this thread run its work as a task on this thread's runtime
/// instead of on the blocking pool (the simulator only).
pub fn run_inline_on_this_thread() {
    INLINE.with(|inline| inline.set(true));
}

/// Runs `work` on the blocking pool (inline on the simulator's thread) and returns its result;
/// a panic inside `work` is the `JoinError`.
pub async fn run<T, F>(work: F) -> Result<T, JoinError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if INLINE.with(Cell::get) {
        tokio::spawn(async move { work() }).await
    } else {
        tokio::task::spawn_blocking(work).await
    }
}
