//! openraft's async runtime for Compute Bank: tokio, with a random source a simulation can seed.
//!
//! openraft draws each election timeout from its runtime's `thread_rng`. With tokio's
//! `ThreadRng` those draws come from the OS, so two runs of one simulated cluster would elect
//! different leaders at different times. [`NodeRuntime`] is openraft's `TokioRuntime` in every
//! respect except that its random source is [`RaftRng`]: a per-thread `StdRng` seeded from the
//! OS on first use, or by [`seed_raft_rng`] (the simulator, `sim/`, which runs a whole cluster
//! on one thread). This file holds no Raft logic and never blocks.

use openraft::async_runtime::{AsyncRuntime, TokioOneShotSender};
use openraft::{OptionalSend, TokioInstant, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

thread_local! {
    /// This thread's random source for openraft; `None` until first use or a seed.
    static RAFT_RNG: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes every later `RaftRng` draw on this thread come from `seed`: the same seed gives the
/// same election timeouts.
pub fn seed_raft_rng(seed: u64) {
    RAFT_RNG.with(|rng| *rng.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// A handle on this thread's random source for openraft (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct RaftRng;

impl RaftRng {
    fn with<T>(draw: impl FnOnce(&mut StdRng) -> T) -> T {
        RAFT_RNG.with(|rng| {
            let mut rng = rng.borrow_mut();
            draw(rng.get_or_insert_with(StdRng::from_entropy))
        })
    }
}

impl RngCore for RaftRng {
    fn next_u32(&mut self) -> u32 {
        RaftRng::with(RngCore::next_u32)
    }

    fn next_u64(&mut self) -> u64 {
        RaftRng::with(RngCore::next_u64)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        RaftRng::with(|rng| rng.fill_bytes(dest));
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        RaftRng::with(|rng| rng.try_fill_bytes(dest))
    }
}

/// openraft's tokio runtime with [`RaftRng`] as its random source.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NodeRuntime;

impl AsyncRuntime for NodeRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = RaftRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        RaftRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn a_seed_fixes_the_draws_and_the_default_is_random() {
        let draw = || -> Vec<u64> { (0..4).map(|_| RaftRng.gen_range(400..800)).collect() };
        seed_raft_rng(7);
        let first = draw();
        seed_raft_rng(7);
        assert_eq!(draw(), first);
        seed_raft_rng(8);
        assert_ne!(draw(), first);
    }
}
