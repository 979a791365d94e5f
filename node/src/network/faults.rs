//! Fault injection for the Raft transport: cut links, drop and delay messages, deterministically.
//!
//! [`Faults`] is a shared, cloneable switchboard keyed by directed link (source node id, target
//! node id). [`FaultyNetwork`] wraps any `RaftNetworkFactory` and consults it on the sending
//! side before every RPC; `raft_service_with_faults` consults the cuts on the receiving side too,
//! so that on a running node `isolate(id)` cuts traffic both ways.
//!
//! Drops and delays are drawn from a small seeded PRNG, one stream per directed link, so the
//! sequence of verdicts on each link depends only on the seed and on how many messages that
//! link has carried, never on traffic elsewhere or on a global random source. (Which message a
//! verdict lands on still depends on task scheduling, as in any real cluster.)
//!
//! This file never touches a socket, a clock other than `tokio::time::sleep` for delays, or a
//! global random source, and never panics: a poisoned lock is recovered.

use crate::raft_types::{NodeId, NodeInfo, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, RaftNetwork, RaftNetworkFactory};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Drop rates are in messages per million: a rate of `DROP_PER_MILLION_MAX` drops every message.
pub const DROP_PER_MILLION_MAX: u32 = 1_000_000;

/// What happens to one message on one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it after waiting `delay` (zero when no delay is set).
    Deliver { delay: Duration },
    /// Lose it. With `after_delivery` the request reaches the target and only the reply is
    /// lost, so the target acts on a message whose sender sees a failure.
    Drop { after_delivery: bool },
    /// The link is cut (partition or isolation): the target is unreachable.
    Cut,
}

/// How many verdicts of each kind have been given, over all links.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub delivered: u64,
    pub delayed: u64,
    pub dropped: u64,
    pub cut: u64,
}

/// SplitMix64: a tiny, well-mixed PRNG. Not for secrets; for reproducible fault schedules.
#[derive(Clone, Debug)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`. The modulo bias is at most `bound / 2^64`: negligible for a
    /// million, or for a delay span of minutes in microseconds.
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

#[derive(Debug)]
struct FaultState {
    seed: u64,
    /// Directed links that carry nothing.
    cut_links: BTreeSet<(NodeId, NodeId)>,
    /// Nodes whose every link, in and out, carries nothing.
    isolated: BTreeSet<NodeId>,
    /// Messages dropped per million sent.
    drop_per_million: u32,
    delay_min: Duration,
    delay_max: Duration,
    /// One random stream per directed link, created on the link's first message.
    streams: BTreeMap<(NodeId, NodeId), SplitMix64>,
    stats: FaultStats,
}

impl FaultState {
    fn is_cut(&self, source: NodeId, target: NodeId) -> bool {
        self.cut_links.contains(&(source, target))
            || self.isolated.contains(&source)
            || self.isolated.contains(&target)
    }

    fn stream(&mut self, source: NodeId, target: NodeId) -> &mut SplitMix64 {
        let seed = self.seed;
        self.streams.entry((source, target)).or_insert_with(|| {
            // Mix the link into the seed so that links draw independent streams.
            let mut mixer = SplitMix64 {
                state: seed ^ source.rotate_left(32),
            };
            let state = mixer.next_u64() ^ target;
            SplitMix64 {
                state: SplitMix64 { state }.next_u64(),
            }
        })
    }

    fn verdict(&mut self, source: NodeId, target: NodeId) -> Verdict {
        if self.is_cut(source, target) {
            self.stats.cut += 1;
            return Verdict::Cut;
        }
        let (drop_per_million, delay_min, delay_max) =
            (self.drop_per_million, self.delay_min, self.delay_max);
        let stream = self.stream(source, target);
        // Draw the same number of values for every message whatever the settings, so that
        // changing the drop rate does not shift the delays of later messages.
        let drop_draw = stream.below(u64::from(DROP_PER_MILLION_MAX));
        let after_delivery = stream.next_u64() & 1 == 1;
        let delay_span_us = delay_max.saturating_sub(delay_min).as_micros();
        let delay_span_us = u64::try_from(delay_span_us).unwrap_or(u64::MAX);
        let delay_draw_us = stream.below(delay_span_us.saturating_add(1));
        if drop_draw < u64::from(drop_per_million) {
            self.stats.dropped += 1;
            return Verdict::Drop { after_delivery };
        }
        let delay = delay_min.saturating_add(Duration::from_micros(delay_draw_us));
        if delay.is_zero() {
            self.stats.delivered += 1;
        } else {
            self.stats.delayed += 1;
        }
        Verdict::Deliver { delay }
    }
}

/// A shared switchboard of network faults. Cloning shares it: the test (or the node's admin
/// API) keeps one clone and the networks of every node hold the others.
#[derive(Clone, Debug)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults::new(0)
    }
}

impl Faults {
    /// No faults yet; drops and delays set later are drawn from streams seeded by `seed`.
    pub fn new(seed: u64) -> Faults {
        let state = FaultState {
            seed,
            cut_links: BTreeSet::new(),
            isolated: BTreeSet::new(),
            drop_per_million: 0,
            delay_min: Duration::ZERO,
            delay_max: Duration::ZERO,
            streams: BTreeMap::new(),
            stats: FaultStats::default(),
        };
        Faults {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // A poisoned lock means a thread panicked while holding it; every mutation here is a
        // single collection or field update, so the state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The seed the drop and delay streams are drawn from.
    pub fn seed(&self) -> u64 {
        self.lock().seed
    }

    /// Cuts the links between `a` and `b`, both directions.
    pub fn partition(&self, a: NodeId, b: NodeId) {
        let mut state = self.lock();
        state.cut_links.insert((a, b));
        state.cut_links.insert((b, a));
    }

    /// Cuts the link from `source` to `target` only: `target` still reaches `source`.
    pub fn partition_one_way(&self, source: NodeId, target: NodeId) {
        self.lock().cut_links.insert((source, target));
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&self, node: NodeId) {
        self.lock().isolated.insert(node);
    }

    /// Restores every cut link and isolated node. Drop rate and delay stay as set.
    pub fn heal(&self) {
        let mut state = self.lock();
        state.cut_links.clear();
        state.isolated.clear();
    }

    /// Drops each message with probability `drop_per_million / 1_000_000` (capped at always).
    pub fn set_drop_rate(&self, drop_per_million: u32) {
        self.lock().drop_per_million = drop_per_million.min(DROP_PER_MILLION_MAX);
    }

    /// Delays each delivered message by a duration drawn uniformly from
    /// `delay_min..=delay_max` (the bounds are swapped if given in the wrong order).
    pub fn set_delay(&self, delay_min: Duration, delay_max: Duration) {
        let mut state = self.lock();
        state.delay_min = delay_min.min(delay_max);
        state.delay_max = delay_min.max(delay_max);
    }

    /// Whether the link from `source` to `target` is cut. Draws nothing from the streams.
    pub fn is_cut(&self, source: NodeId, target: NodeId) -> bool {
        self.lock().is_cut(source, target)
    }

    /// Decides the fate of the next message from `source` to `target`.
    pub fn verdict(&self, source: NodeId, target: NodeId) -> Verdict {
        self.lock().verdict(source, target)
    }

    /// How many verdicts of each kind have been given so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }
}

/// A `RaftNetworkFactory` that applies [`Faults`] to every RPC node `source` sends through
/// `inner`.
#[derive(Clone)]
pub struct FaultyNetwork<N> {
    source: NodeId,
    inner: N,
    faults: Faults,
}

impl<N> FaultyNetwork<N> {
    pub fn new(source: NodeId, inner: N, faults: Faults) -> FaultyNetwork<N> {
        FaultyNetwork {
            source,
            inner,
            faults,
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl<N: RaftNetworkFactory<TypeConfig>> RaftNetworkFactory<TypeConfig> for FaultyNetwork<N> {
    type Network = FaultyConnection<N::Network>;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        let link = Link {
            source: self.source,
            target,
            faults: self.faults.clone(),
        };
        FaultyConnection {
            link,
            inner: self.inner.new_client(target, node).await,
        }
    }
}

/// One connection of a [`FaultyNetwork`].
pub struct FaultyConnection<C> {
    link: Link,
    inner: C,
}

/// The directed link a connection sends on, and the faults that govern it.
struct Link {
    source: NodeId,
    target: NodeId,
    faults: Faults,
}

/// The failure a sender sees for a message that was not delivered.
enum Lost {
    Cut(Unreachable),
    Dropped(NetworkError),
}

impl Lost {
    fn into_rpc_error<E: std::error::Error>(self) -> RPCError<NodeId, NodeInfo, E> {
        match self {
            Lost::Cut(error) => RPCError::Unreachable(error),
            Lost::Dropped(error) => RPCError::Network(error),
        }
    }
}

impl Link {
    fn lost_cut(&self) -> Lost {
        let message = format!(
            "link {}->{} is cut by fault injection",
            self.source, self.target
        );
        Lost::Cut(Unreachable::new(&AnyError::error(message)))
    }

    fn lost_dropped(&self) -> Lost {
        let message = format!(
            "message {}->{} dropped by fault injection",
            self.source, self.target
        );
        Lost::Dropped(NetworkError::new(&AnyError::error(message)))
    }

    /// Runs `send` (the inner RPC) under the next verdict for this link.
    async fn apply<T, E, F>(&self, send: F) -> Result<T, RPCError<NodeId, NodeInfo, E>>
    where
        E: std::error::Error,
        F: Future<Output = Result<T, RPCError<NodeId, NodeInfo, E>>>,
    {
        match self.faults.verdict(self.source, self.target) {
            Verdict::Cut => Err(self.lost_cut().into_rpc_error()),
            Verdict::Drop {
                after_delivery: false,
            } => Err(self.lost_dropped().into_rpc_error()),
            Verdict::Drop {
                after_delivery: true,
            } => {
                let _reply_lost = send.await;
                Err(self.lost_dropped().into_rpc_error())
            }
            Verdict::Deliver { delay } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                // The link may have been cut while the message was in flight.
                if self.faults.is_cut(self.source, self.target) {
                    return Err(self.lost_cut().into_rpc_error());
                }
                send.await
            }
        }
    }
}

impl<C: RaftNetwork<TypeConfig>> RaftNetwork<TypeConfig> for FaultyConnection<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.link
            .apply(self.inner.append_entries(rpc, option))
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.link
            .apply(self.inner.install_snapshot(rpc, option))
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.link.apply(self.inner.vote(rpc, option)).await
    }

    fn backoff(&self) -> Backoff {
        self.inner.backoff()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(faults: &Faults, source: NodeId, target: NodeId, count: usize) -> Vec<Verdict> {
        (0..count).map(|_| faults.verdict(source, target)).collect()
    }

    fn noisy(seed: u64) -> Faults {
        let faults = Faults::new(seed);
        faults.set_drop_rate(DROP_PER_MILLION_MAX / 4);
        faults.set_delay(Duration::from_millis(1), Duration::from_millis(50));
        faults
    }

    #[test]
    fn same_seed_gives_same_verdicts_per_link_whatever_other_links_carry() {
        let first = noisy(0xC0FFEE);
        let second = noisy(0xC0FFEE);
        // Traffic on another link must not shift this link's stream.
        verdicts(&second, 2, 3, 17);
        assert_eq!(verdicts(&first, 1, 2, 200), verdicts(&second, 1, 2, 200));
        assert_ne!(verdicts(&first, 1, 3, 200), verdicts(&first, 3, 1, 200));
    }

    #[test]
    fn different_seeds_give_different_verdicts() {
        assert_ne!(
            verdicts(&noisy(1), 1, 2, 200),
            verdicts(&noisy(2), 1, 2, 200)
        );
    }

    #[test]
    fn drop_rate_and_delay_bounds_are_respected() {
        let faults = noisy(7);
        let all = verdicts(&faults, 1, 2, 4000);
        let dropped = all
            .iter()
            .filter(|v| matches!(v, Verdict::Drop { .. }))
            .count();
        // A quarter, give or take: 1000 expected, the standard deviation is about 27.
        assert!((850..1150).contains(&dropped), "dropped {dropped} of 4000");
        for verdict in &all {
            if let Verdict::Deliver { delay } = verdict {
                assert!(*delay >= Duration::from_millis(1) && *delay <= Duration::from_millis(50));
            }
        }
        let stats = faults.stats();
        assert_eq!(stats.dropped, dropped as u64);
        assert_eq!(stats.delayed + stats.dropped, 4000);

        faults.set_drop_rate(0);
        faults.set_delay(Duration::ZERO, Duration::ZERO);
        assert!(verdicts(&faults, 1, 2, 100).iter().all(|v| *v
            == Verdict::Deliver {
                delay: Duration::ZERO
            }));
        faults.set_drop_rate(u32::MAX);
        assert!(verdicts(&faults, 1, 2, 100)
            .iter()
            .all(|v| matches!(v, Verdict::Drop { .. })));
    }

    #[test]
    fn partition_isolate_and_heal() {
        let faults = Faults::new(3);
        faults.partition(1, 2);
        assert!(faults.is_cut(1, 2) && faults.is_cut(2, 1));
        assert!(!faults.is_cut(1, 3) && !faults.is_cut(3, 2));
        assert_eq!(faults.verdict(2, 1), Verdict::Cut);

        faults.partition_one_way(3, 1);
        assert!(faults.is_cut(3, 1) && !faults.is_cut(1, 3));

        faults.isolate(4);
        assert!(faults.is_cut(4, 1) && faults.is_cut(1, 4) && faults.is_cut(4, 4));

        faults.heal();
        for (source, target) in [(1, 2), (2, 1), (3, 1), (4, 1), (1, 4)] {
            assert!(
                !faults.is_cut(source, target),
                "{source}->{target} still cut"
            );
            assert!(matches!(
                faults.verdict(source, target),
                Verdict::Deliver { .. }
            ));
        }
        assert_eq!(faults.stats().cut, 1);
    }

    #[test]
    fn clones_share_one_switchboard() {
        let faults = Faults::new(9);
        let admin = faults.clone();
        admin.isolate(2);
        assert!(faults.is_cut(1, 2));
        admin.heal();
        assert!(!faults.is_cut(1, 2));
        assert_eq!(admin.seed(), 9);
    }
}
