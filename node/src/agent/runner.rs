//! The agent's loop: once a second it samples the GPUs, takes on new allocations and watches
//! their hooks, sends the meter reports that are due, and offers the host when the policy says
//! it is idle and no window is open.
//!
//! On start it reads the host from a node and stops with a clear error if the host is not
//! registered, belongs to another party, has another agent key or another GPU class. The node
//! is the source of truth: offers and how far they were reported come from it at start and
//! after any refusal; the state file (`state.rs`) adds what only the agent knows.
//!
//! Every action prints one JSON line on stdout (`mod.rs`, `emit`). Network failures are
//! retried with the same command (a fresh envelope each time), after a growing pause; a
//! refusal by the ledger is logged and answered by re-reading the node. This module holds the
//! order of things; arithmetic lives in `meter.rs`, `sim.rs` and `policy.rs`.

use super::config::AgentConfig;
use super::emit;
use super::gpu::{GpuHealth, GpuInfo, GpuSource};
use super::hooks::{Hook, HookState};
use super::meter::{
    count, next_report_span, GpuTimeline, Grid, Observations, Span, UNTIL_FURTHER_NOTICE_S,
};
use super::nodes::{AllocationView, HostView, Nodes, OfferSpecView, OfferView, WriteError};
use super::policy::{Decision, IdleTracker};
use super::state::{AllocationRecord, OfferRecord, ReportRecord, StateFile};
use crate::cli::client::RequestError;
use crate::cli::keys::{read_key_file, KeyFile};
use anyhow::{bail, Context};
use ledger::bank::{AllocationState, AllocationUpdate, MeterReport, OfferSpec};
use ledger::limits::{METER_REPORT_LATE_NS_MAX, NS_PER_S};
use ledger::{Command, CommandResult, Effect};
use nix::sys::signal::Signal;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often the loop runs.
pub const TICK: Duration = Duration::from_secs(1);

/// The longest pause after repeated network failures.
pub const BACKOFF_NS_MAX: u64 = 30 * NS_PER_S;

/// A new window starts where the previous one ended if that was at most this long ago, so
/// back-to-back windows leave no gap; otherwise it starts now.
pub const ADJACENT_WINDOW_NS_MAX: u64 = 5 * NS_PER_S;

/// The ledger accepts a window starting this far in the past (`OFFER_START_PAST_NS_MAX`); an
/// unconfirmed offer older than that is not re-sent.
const OFFER_START_PAST_NS_MAX: u64 = ledger::limits::OFFER_START_PAST_NS_MAX;

/// The current time in nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|duration| u64::try_from(duration.as_nanos()).ok())
        .unwrap_or(0)
}

/// The offer id the agent uses for a window of `host_id` starting at `start_ns`: the same
/// construction as the ledger's derived ids (`spec/bank.md` §1.1) with domain
/// `cbank.agent-offer.v1`, but with the top bit clear (a client-chosen id). A retry or a
/// restart that offers the same window sends the same id and gets `repeated: true`.
pub fn offer_id(host_id: &str, start_ns: u64) -> u128 {
    let id = ledger::ids::derived_id(
        "cbank.agent-offer.v1",
        &[host_id.as_bytes(), &start_ns.to_le_bytes()],
    );
    let id = id & !ledger::ids::LEDGER_ID_BIT;
    id.max(1)
}

/// GPU-seconds an allocation delivered: its GPUs times the whole seconds its GPUs were busy,
/// capped at what was allocated.
pub fn delivered_gpu_s(record: &AllocationRecord, ended_at_ns: u64) -> u64 {
    let started = record.started_at_ns.unwrap_or(ended_at_ns);
    let ran_s = ended_at_ns.min(record.end_ns).saturating_sub(started) / NS_PER_S;
    let allocated_s = record.end_ns.saturating_sub(record.start_ns) / NS_PER_S;
    u64::from(record.gpu_count) * ran_s.min(allocated_s)
}

/// Picks `count` GPU positions out of `0..available` not in `used`, lowest first; if too few
/// are free (it should not happen: the ledger never allocates more than an offer has), the
/// rest are taken from the used ones.
pub fn assign_gpus(count: u32, available: u32, used: &[u32]) -> Vec<u32> {
    let mut free: Vec<u32> = (0..available).filter(|gpu| !used.contains(gpu)).collect();
    let mut taken: Vec<u32> = (0..available).filter(|gpu| used.contains(gpu)).collect();
    free.append(&mut taken);
    free.truncate(count as usize);
    free
}

/// The agent, started.
pub struct Runner {
    config: AgentConfig,
    key: KeyFile,
    nodes: Nodes,
    state: StateFile,
    source: GpuSource,
    /// The offered GPUs, by position.
    gpus: Vec<GpuInfo>,
    offer_gpu_count: u32,
    /// Real GPUs only: what sampling saw.
    observations: Option<Observations>,
    idle: IdleTracker,
    /// Offers of this host that still have something to report (or start later), by id.
    offers: BTreeMap<u128, OfferView>,
    /// The latest end of any offer of this host seen on the node.
    last_offer_end_ns: u64,
    /// A report sent without an answer: re-sent as it is until the node answers.
    pending_report: Option<MeterReport>,
    hooks: BTreeMap<u128, Hook>,
    /// When SIGTERM was sent to a hook at its allocation's end.
    stopping: BTreeMap<u128, u64>,
    next_sample_ns: u64,
    next_poll_ns: u64,
    /// No network action before this (after failures).
    backoff_until_ns: u64,
    failures: u32,
    /// The code of the last `waiting` line, so it is printed once per change.
    last_wait_reason: Option<&'static str>,
}

impl Runner {
    /// Reads the key and the host, checks them, discovers the GPUs, loads the state. Waits
    /// (with log lines) while no node can be reached.
    pub async fn start(config: AgentConfig) -> anyhow::Result<Runner> {
        let key = read_key_file(&config.agent_key_file)?;
        if key.party != config.party {
            bail!(
                "the agent key file {} is for party {:?}, but the config says party {:?}",
                config.agent_key_file.display(),
                key.party.as_str(),
                config.party.as_str()
            );
        }
        let nodes = Nodes::new(&config.nodes)?;
        let source = GpuSource::open(&config.gpu_source)
            .await
            .map_err(anyhow::Error::msg)?;
        let discovered = source.discover().await.map_err(anyhow::Error::msg)?;
        if discovered.is_empty() {
            bail!("the GPU source {} found no GPUs", source.name());
        }
        let host = Self::read_host(&nodes, &config.host_id).await?;
        if host.owner != config.party.as_str() {
            bail!(
                "host {} belongs to party {:?}, not {:?}",
                config.host_id,
                host.owner,
                config.party.as_str()
            );
        }
        let public_key = key.key.public_key().to_string();
        if !host.spec.agent_key.eq_ignore_ascii_case(&public_key) {
            bail!(
                "the agent key {public_key} is not host {}'s agent key {} (register the host with this key, or use its key file)",
                config.host_id,
                host.spec.agent_key
            );
        }
        let class = match &config.gpu_class {
            Some(class) => class.clone(),
            None => {
                let mut classes: Vec<Option<String>> =
                    discovered.iter().map(|gpu| gpu.class.clone()).collect();
                classes.dedup();
                match classes.as_slice() {
                    [Some(class)] => class.clone(),
                    [None] => bail!(
                        "cannot tell the GPU class of {:?}; set gpu_class in the config",
                        discovered[0].name
                    ),
                    _ => {
                        bail!("the host's GPUs are of several models; set gpu_class in the config")
                    }
                }
            }
        };
        if class != host.spec.gpu_class {
            bail!(
                "host {} is registered with GPU class {}, but its GPUs are {class}",
                config.host_id,
                host.spec.gpu_class
            );
        }
        let mut offer_gpu_count = host.spec.gpu_count.min(discovered.len() as u32);
        if let Some(limit) = config.offer_gpu_count {
            offer_gpu_count = offer_gpu_count.min(limit);
        }
        if discovered.len() as u32 != host.spec.gpu_count {
            tracing::warn!(
                "host {} is registered with {} GPUs but {} were found; offering {offer_gpu_count}",
                config.host_id,
                host.spec.gpu_count,
                discovered.len()
            );
        }
        let gpus: Vec<GpuInfo> = discovered
            .into_iter()
            .take(offer_gpu_count as usize)
            .collect();
        let state =
            StateFile::open(&config.state_dir, &config.host_id).map_err(anyhow::Error::msg)?;
        let observations = (!source.is_simulated()).then(|| Observations::new(gpus.len()));
        let mut runner = Runner {
            key,
            nodes,
            state,
            source,
            gpus,
            offer_gpu_count,
            observations,
            idle: IdleTracker::default(),
            offers: BTreeMap::new(),
            last_offer_end_ns: 0,
            pending_report: None,
            hooks: BTreeMap::new(),
            stopping: BTreeMap::new(),
            next_sample_ns: 0,
            next_poll_ns: 0,
            backoff_until_ns: 0,
            failures: 0,
            last_wait_reason: None,
            config,
        };
        // Hooks an earlier run started and that have not been seen to end.
        if !runner.config.hook.is_empty() {
            for record in runner.state.state.allocations.values() {
                if record.is_open() && record.started_at_ns.is_some() {
                    let hook =
                        Hook::adopt(runner.state.dir(), record.allocation_id, record.hook_pid);
                    runner.hooks.insert(record.allocation_id, hook);
                }
            }
        }
        let now = now_ns();
        runner
            .refresh_offers(now)
            .await
            .context("reading the host's offers")?;
        // A report sent just before the last stop and never confirmed is sent again as it
        // was, if the node still expects it: the same body, so a late apply reads as a repeat.
        if let Some(record) = &runner.state.state.last_report {
            let expected = runner
                .offers
                .get(&record.report.offer_id)
                .is_some_and(|offer| offer.reported_until_ns == record.report.from_ns);
            if !record.confirmed && expected {
                runner.pending_report = Some(record.report.clone());
            }
        }
        emit(
            "started",
            json!({
                "host_id": runner.config.host_id,
                "party": runner.config.party.as_str(),
                "gpu_source": runner.source.name(),
                "gpu_class": class,
                "gpu_count": runner.offer_gpu_count,
                "node": runner.nodes.current_url(),
                "open_offers": runner.offers.keys().map(|id| id.to_string()).collect::<Vec<_>>(),
                "adopted_hooks": runner.hooks.keys().map(|id| id.to_string()).collect::<Vec<_>>(),
            }),
        );
        Ok(runner)
    }

    /// Reads the host, waiting while no node answers; a host that is not registered is an error.
    async fn read_host(nodes: &Nodes, host_id: &str) -> anyhow::Result<HostView> {
        let mut pause = Duration::from_secs(1);
        loop {
            match nodes.host(host_id).await {
                Ok(host) => return Ok(host),
                Err(RequestError::Api { error, .. }) if error.status.as_u16() == 404 => {
                    bail!("host {host_id} is not registered in the ledger (register it with the institution's key first)")
                }
                Err(error @ RequestError::Api { .. }) => {
                    bail!("cannot read host {host_id}: {error}")
                }
                Err(error) => {
                    emit(
                        "error",
                        json!({"action": "read_host", "message": error.to_string()}),
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Saves the state; a failure is logged and retried at the next save (the node holds
    /// the truth, and the state only spares repeats).
    fn save(&self) {
        if let Err(message) = self.state.save() {
            emit("error", json!({"action": "save_state", "message": message}));
        }
    }

    fn network_failed(&mut self, now: u64, action: &str, message: &str) {
        self.failures = self.failures.saturating_add(1);
        let pause = NS_PER_S
            .saturating_mul(1 << self.failures.min(5))
            .min(BACKOFF_NS_MAX);
        self.backoff_until_ns = now.saturating_add(pause);
        emit(
            "error",
            json!({"action": action, "message": message, "retry_in_s": pause / NS_PER_S}),
        );
    }

    fn network_ok(&mut self) {
        self.failures = 0;
        self.backoff_until_ns = 0;
    }

    /// Logs a refusal and pauses network actions a little, growing like network failures,
    /// so a refusal that lasts (a key the ledger does not accept) is not repeated every second.
    fn refused(&mut self, now: u64, action: &str, code: &str, message: &str) {
        self.failures = self.failures.saturating_add(1);
        let pause = NS_PER_S
            .saturating_mul(1 << self.failures.min(5))
            .min(BACKOFF_NS_MAX);
        self.backoff_until_ns = now.saturating_add(pause);
        emit(
            "error",
            json!({"action": action, "code": code, "message": message, "retry_in_s": pause / NS_PER_S}),
        );
    }

    /// Re-reads the host's offers: which still need reports, and where each stands.
    async fn refresh_offers(&mut self, now: u64) -> Result<(), RequestError> {
        let offers = self.nodes.host_offers(&self.config.host_id).await?;
        let mut tracked = BTreeMap::new();
        for offer in offers {
            if offer.spec.host_id != self.config.host_id {
                continue;
            }
            self.last_offer_end_ns = self.last_offer_end_ns.max(offer.spec.end_ns);
            for record in &mut self.state.state.offers {
                if record.spec.offer_id == offer.spec.offer_id {
                    record.confirmed = true;
                }
            }
            let open = offer.reported_until_ns < offer.spec.end_ns
                && offer.spec.end_ns.saturating_add(METER_REPORT_LATE_NS_MAX) > now;
            if open {
                tracked.insert(offer.spec.offer_id, offer);
            }
        }
        if let Some(report) = &self.pending_report {
            let still_needed = tracked
                .get(&report.offer_id)
                .is_some_and(|offer| offer.reported_until_ns <= report.from_ns);
            if !still_needed {
                self.pending_report = None;
            }
        }
        self.offers = tracked;
        Ok(())
    }

    /// One pass of the loop at `now`.
    pub async fn tick(&mut self, now: u64) {
        self.sample_if_due(now).await;
        if now >= self.backoff_until_ns {
            self.poll_allocations_if_due(now).await;
        }
        self.watch_allocations(now);
        if now >= self.backoff_until_ns {
            self.report_allocation_ends(now).await;
        }
        if now >= self.backoff_until_ns {
            self.meter(now).await;
        }
        if now >= self.backoff_until_ns {
            self.offer_if_idle(now).await;
        }
        let sizes =
            |state: &super::state::AgentState| (state.offers.len(), state.allocations.len());
        let before = sizes(&self.state.state);
        self.state.state.forget_old(now);
        if sizes(&self.state.state) != before {
            self.save();
        }
    }

    /// Stops the loop: saves the state and leaves hooks running (a restarted agent adopts them).
    pub fn stop(&mut self, signal: &str) {
        self.save();
        emit(
            "stopped",
            json!({"signal": signal, "running_hooks": self.hooks.keys().map(|id| id.to_string()).collect::<Vec<_>>()}),
        );
    }

    /// Whether GPU `position` runs one of the agent's allocations at `now`.
    fn is_allocated(&self, position: u32, now: u64) -> bool {
        self.state.state.allocations.values().any(|record| {
            record.gpus.contains(&position)
                && record.started_at_ns.is_some_and(|started| started <= now)
                && record.ended_at_ns.is_none_or(|ended| ended > now)
        })
    }

    async fn sample_if_due(&mut self, now: u64) {
        if now < self.next_sample_ns {
            return;
        }
        self.sample(now).await;
    }

    /// Samples every offered GPU: feeds the idle tracker and, for real GPUs, the observations.
    async fn sample(&mut self, now: u64) {
        self.next_sample_ns = now.saturating_add(self.config.sample_interval_s * NS_PER_S);
        let uuids: Vec<String> = self.gpus.iter().map(|gpu| gpu.uuid.clone()).collect();
        let healths = self.source.sample(&uuids).await;
        let mut utilisations = Vec::with_capacity(healths.len());
        let mut down = Vec::with_capacity(healths.len());
        for (position, health) in healths.iter().enumerate() {
            let allocated = self.is_allocated(position as u32, now);
            match health {
                GpuHealth::Up {
                    utilisation_percent,
                } => {
                    // The agent's own allocations keep GPUs busy; that is not the owner's use.
                    utilisations.push(Some(if allocated { 0 } else { *utilisation_percent }));
                    down.push(
                        !allocated && *utilisation_percent > self.config.owner_use_above_percent,
                    );
                }
                GpuHealth::Lost { reason } => {
                    tracing::warn!(gpu = position, %reason, "GPU lost");
                    utilisations.push(None);
                    down.push(true);
                }
            }
        }
        if let Some(threshold) = self.config.policy.utilisation_below_percent {
            self.idle.observe(now, &utilisations, threshold);
        }
        if let Some(observations) = &mut self.observations {
            observations.record(now, &down);
        }
    }

    async fn poll_allocations_if_due(&mut self, now: u64) {
        if now < self.next_poll_ns {
            return;
        }
        self.next_poll_ns = now.saturating_add(self.config.allocation_poll_s * NS_PER_S);
        let allocations = match self.nodes.active_allocations(&self.config.host_id).await {
            Ok(allocations) => allocations,
            Err(error @ RequestError::Api { .. }) => {
                emit(
                    "error",
                    json!({"action": "poll_allocations", "message": error.to_string()}),
                );
                return;
            }
            Err(error) => return self.network_failed(now, "poll_allocations", &error.to_string()),
        };
        self.network_ok();
        for allocation in allocations {
            if allocation.host_id != self.config.host_id {
                continue;
            }
            if !matches!(
                allocation.state,
                AllocationState::Granted | AllocationState::Running
            ) {
                continue;
            }
            let key = allocation.allocation_id.to_string();
            if !self.state.state.allocations.contains_key(&key) {
                self.take_on(&allocation, now);
            }
            if now < self.backoff_until_ns {
                return;
            }
            self.start_allocation(allocation.allocation_id, now).await;
        }
    }

    /// Records a newly seen allocation and picks its GPUs.
    fn take_on(&mut self, allocation: &AllocationView, now: u64) {
        let available = self
            .offers
            .get(&allocation.offer_id)
            .map_or(self.offer_gpu_count, |offer| offer.spec.gpu_count)
            .min(self.offer_gpu_count);
        let used: Vec<u32> = self
            .state
            .state
            .allocations
            .values()
            .filter(|record| record.is_open() && record.end_ns > now)
            .flat_map(|record| record.gpus.iter().copied())
            .collect();
        let record = AllocationRecord {
            allocation_id: allocation.allocation_id,
            offer_id: allocation.offer_id,
            party: allocation.party.clone(),
            gpu_count: allocation.gpu_count,
            start_ns: allocation.start_ns,
            end_ns: allocation.end_ns,
            gpus: assign_gpus(allocation.gpu_count, available, &used),
            // A `running` allocation unknown to the state: the state was lost; do not report twice.
            running_reported: allocation.state == AllocationState::Running,
            started_at_ns: None,
            hook_pid: None,
            ended_at_ns: None,
            exit_code: None,
            final_update: None,
            final_reported: false,
        };
        if record.running_reported {
            tracing::warn!(allocation = %allocation.allocation_id, "a running allocation the local state does not know: starting it again");
        }
        self.state
            .state
            .allocations
            .insert(allocation.allocation_id.to_string(), record);
        self.save();
    }

    /// Reports `running` (once) and starts the hook (at most once, recorded before it starts).
    async fn start_allocation(&mut self, allocation_id: u128, now: u64) {
        let key = allocation_id.to_string();
        let Some(record) = self.state.state.allocations.get(&key).cloned() else {
            return;
        };
        if !record.is_open() {
            return;
        }
        if record.started_at_ns.is_none() && now >= record.end_ns {
            // Granted while the agent was not running, and over before it could start: the
            // drawer got nothing and pays nothing.
            if let Some(record) = self.state.state.allocations.get_mut(&key) {
                record.ended_at_ns = Some(record.end_ns);
                record.final_update = Some(AllocationUpdate::Failed { delivered_gpu_s: 0 });
            }
            self.save();
            emit(
                "allocation_ended",
                json!({"allocation_id": key, "state": "failed", "delivered_gpu_s": 0, "reason": "ended before the agent could start it"}),
            );
            return;
        }
        if !record.running_reported {
            let command = Command::ReportAllocation {
                allocation_id,
                update: AllocationUpdate::Running,
            };
            match self.nodes.write(&self.key, &command).await {
                Ok(_) => self.network_ok(),
                Err(WriteError::Unreachable(message)) => {
                    return self.network_failed(now, "report_running", &message)
                }
                Err(WriteError::Refused { code, message }) => {
                    // Already running (a lost answer), or already ended: the node says which.
                    match self.nodes.allocation(allocation_id).await {
                        Ok(AllocationView {
                            state: AllocationState::Running,
                            ..
                        }) => {}
                        Ok(AllocationView {
                            state:
                                ended @ (AllocationState::Completed { .. }
                                | AllocationState::Failed { .. }),
                            ..
                        }) => {
                            let update = match ended {
                                AllocationState::Failed { delivered_gpu_s } => {
                                    AllocationUpdate::Failed { delivered_gpu_s }
                                }
                                AllocationState::Completed { delivered_gpu_s } => {
                                    AllocationUpdate::Completed { delivered_gpu_s }
                                }
                                _ => AllocationUpdate::Completed { delivered_gpu_s: 0 },
                            };
                            if let Some(record) = self.state.state.allocations.get_mut(&key) {
                                record.final_update = Some(update);
                                record.final_reported = true;
                            }
                            self.save();
                            return;
                        }
                        _ => return self.refused(now, "report_running", &code, &message),
                    }
                }
            }
            if let Some(record) = self.state.state.allocations.get_mut(&key) {
                record.running_reported = true;
            }
            self.save();
        }
        if record.started_at_ns.is_some() {
            return;
        }
        // Record the start before the hook starts: a crash in between never starts it twice.
        if let Some(record) = self.state.state.allocations.get_mut(&key) {
            record.started_at_ns = Some(now);
        }
        self.save();
        let mut pid = None;
        if !self.config.hook.is_empty() {
            let env = self.hook_env(&record);
            match Hook::spawn(self.state.dir(), allocation_id, &self.config.hook, &env) {
                Ok(hook) => {
                    pid = hook.pid();
                    self.hooks.insert(allocation_id, hook);
                }
                Err(error) => {
                    emit(
                        "error",
                        json!({"action": "start_hook", "allocation_id": key, "message": error.to_string()}),
                    );
                    if let Some(record) = self.state.state.allocations.get_mut(&key) {
                        record.ended_at_ns = Some(now);
                        record.final_update = Some(AllocationUpdate::Failed { delivered_gpu_s: 0 });
                    }
                    self.save();
                    return;
                }
            }
            if let Some(record) = self.state.state.allocations.get_mut(&key) {
                record.hook_pid = pid;
            }
            self.save();
        }
        emit(
            "allocation_started",
            json!({
                "allocation_id": key,
                "offer_id": record.offer_id.to_string(),
                "party": record.party,
                "gpu_count": record.gpu_count,
                "gpus": record.gpus,
                "start_ns": record.start_ns.to_string(),
                "end_ns": record.end_ns.to_string(),
                "hook": !self.config.hook.is_empty(),
                "pid": pid,
            }),
        );
    }

    fn hook_env(&self, record: &AllocationRecord) -> Vec<(String, String)> {
        let indices: Vec<String> = record
            .gpus
            .iter()
            .filter_map(|position| self.gpus.get(*position as usize))
            .map(|gpu| gpu.index.to_string())
            .collect();
        let uuids: Vec<String> = record
            .gpus
            .iter()
            .filter_map(|position| self.gpus.get(*position as usize))
            .map(|gpu| gpu.uuid.clone())
            .collect();
        [
            ("CBANK_ALLOCATION_ID", record.allocation_id.to_string()),
            ("CBANK_HOST_ID", self.config.host_id.clone()),
            ("CBANK_GPU_COUNT", record.gpu_count.to_string()),
            ("CBANK_PARTY", record.party.clone()),
            ("CBANK_INSTITUTION", self.config.party.as_str().to_owned()),
            ("CBANK_START_NS", record.start_ns.to_string()),
            ("CBANK_END_NS", record.end_ns.to_string()),
            ("CBANK_OFFER_ID", record.offer_id.to_string()),
            ("CBANK_GPU_INDICES", indices.join(",")),
            ("CBANK_GPU_UUIDS", uuids.join(",")),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Watches running allocations: a hook that exited, or an allocation whose end passed,
    /// gets its final update decided (reported by `report_allocation_ends`).
    fn watch_allocations(&mut self, now: u64) {
        let open: Vec<AllocationRecord> = self
            .state
            .state
            .allocations
            .values()
            .filter(|record| record.is_open() && record.started_at_ns.is_some())
            .cloned()
            .collect();
        let grace_ns = self.config.hook_stop_grace_s * NS_PER_S;
        for record in open {
            let id = record.allocation_id;
            let ended = if self.config.hook.is_empty() {
                (now >= record.end_ns).then_some((record.end_ns, None, true))
            } else {
                let hook = self
                    .hooks
                    .entry(id)
                    .or_insert_with(|| Hook::adopt(self.state.dir(), id, record.hook_pid));
                match hook.poll() {
                    HookState::Exited { code, at_ns } => {
                        let at = at_ns.unwrap_or(now).min(now);
                        let stopped_by_agent =
                            self.stopping.contains_key(&id) || at >= record.end_ns;
                        Some((at, code, stopped_by_agent || code == Some(0)))
                    }
                    HookState::Running if now >= record.end_ns => {
                        match self.stopping.get(&id) {
                            None => {
                                hook.signal(Signal::SIGTERM);
                                self.stopping.insert(id, now);
                                emit(
                                    "hook_stopping",
                                    json!({"allocation_id": id.to_string(), "signal": "SIGTERM"}),
                                );
                                None
                            }
                            Some(&sent) if now >= sent.saturating_add(grace_ns) => {
                                hook.signal(Signal::SIGKILL);
                                if hook.pid().is_none() {
                                    // Started by an earlier run that never recorded its id: it
                                    // cannot be stopped from here; the allocation ends anyway.
                                    Some((record.end_ns, None, true))
                                } else {
                                    None
                                }
                            }
                            Some(_) => None,
                        }
                    }
                    HookState::Running => None,
                }
            };
            let Some((at, code, completed)) = ended else {
                continue;
            };
            self.hooks.remove(&id);
            self.stopping.remove(&id);
            let ended_at = at.max(record.started_at_ns.unwrap_or(at));
            let delivered = delivered_gpu_s(&record, ended_at);
            let update = if completed {
                AllocationUpdate::Completed {
                    delivered_gpu_s: delivered,
                }
            } else {
                AllocationUpdate::Failed {
                    delivered_gpu_s: delivered,
                }
            };
            if let Some(stored) = self.state.state.allocations.get_mut(&id.to_string()) {
                stored.ended_at_ns = Some(ended_at);
                stored.exit_code = code;
                stored.final_update = Some(update);
            }
            self.save();
            emit(
                "allocation_ended",
                json!({
                    "allocation_id": id.to_string(),
                    "state": if completed { "completed" } else { "failed" },
                    "delivered_gpu_s": delivered,
                    "exit_code": code,
                    "ended_at_ns": ended_at.to_string(),
                }),
            );
        }
    }

    /// Sends the decided final updates that the node has not accepted yet.
    async fn report_allocation_ends(&mut self, now: u64) {
        let due: Vec<(u128, AllocationUpdate)> = self
            .state
            .state
            .allocations
            .values()
            .filter(|record| !record.final_reported)
            .filter_map(|record| {
                record
                    .final_update
                    .map(|update| (record.allocation_id, update))
            })
            .collect();
        for (allocation_id, update) in due {
            let command = Command::ReportAllocation {
                allocation_id,
                update,
            };
            let outcome = match self.nodes.write(&self.key, &command).await {
                Ok(_) => Ok(()),
                Err(WriteError::Unreachable(message)) => {
                    return self.network_failed(now, "report_allocation", &message)
                }
                Err(WriteError::Refused { code, message }) => Err((code, message)),
            };
            self.network_ok();
            if let Err((code, message)) = outcome {
                // A lost answer makes the retry look invalid: the node's state says whether
                // the end was recorded. Any other refusal is final (e.g. the drawer's
                // reservation expired): it is logged and not retried.
                let recorded = matches!(
                    self.nodes.allocation(allocation_id).await,
                    Ok(AllocationView {
                        state: AllocationState::Completed { .. } | AllocationState::Failed { .. },
                        ..
                    })
                );
                if !recorded {
                    self.refused(now, "report_allocation", &code, &message);
                }
            }
            if let Some(record) = self
                .state
                .state
                .allocations
                .get_mut(&allocation_id.to_string())
            {
                record.final_reported = true;
            }
            self.save();
            let (state, delivered) = match update {
                AllocationUpdate::Completed { delivered_gpu_s } => ("completed", delivered_gpu_s),
                AllocationUpdate::Failed { delivered_gpu_s } => ("failed", delivered_gpu_s),
                AllocationUpdate::Running => ("running", 0),
            };
            emit(
                "allocation_reported",
                json!({"allocation_id": allocation_id.to_string(), "state": state, "delivered_gpu_s": delivered}),
            );
        }
    }

    /// Busy spans of GPU `position` on `grid`: the agent's allocations on it, from when their
    /// GPUs became busy to when they stopped (or for now on), within each allocation's time.
    fn busy_spans(&self, position: u32, grid: Grid) -> Vec<Span> {
        self.state
            .state
            .allocations
            .values()
            .filter(|record| record.gpus.contains(&position))
            .filter_map(|record| {
                let started = record.started_at_ns?;
                let start = grid.floor(started.max(record.start_ns));
                let end = match record.ended_at_ns {
                    Some(ended) => grid.ceil(ended.min(record.end_ns)),
                    None => grid.ceil(record.end_ns).min(UNTIL_FURTHER_NOTICE_S),
                };
                Some((start, end))
            })
            .collect()
    }

    /// The report of `[from_s, to_s)` of `offer`.
    fn build_report(&self, offer: &OfferSpecView, from_s: i64, to_s: i64) -> Option<MeterReport> {
        let grid = Grid {
            start_ns: offer.start_ns,
        };
        let timelines: Vec<GpuTimeline> = (0..offer.gpu_count)
            .map(|position| {
                let down = match &self.observations {
                    // Real GPUs beyond the ones sampled (an offer larger than this agent's
                    // count, made by someone else) are not watched: down.
                    Some(observations) if (position as usize) < self.gpus.len() => {
                        observations.down_spans(position as usize, grid)
                    }
                    Some(_) => vec![(super::meter::SINCE_EVER_S, UNTIL_FURTHER_NOTICE_S)],
                    None => super::sim::down_spans(&self.config.sim_down, position),
                };
                GpuTimeline {
                    down,
                    busy: self.busy_spans(position, grid),
                }
            })
            .collect();
        let counts = count(&timelines, from_s, to_s);
        Some(MeterReport {
            offer_id: offer.offer_id,
            from_ns: grid.ns(from_s)?,
            to_ns: grid.ns(to_s)?,
            available_gpu_s: counts.available_gpu_s,
            busy_gpu_s: counts.busy_gpu_s,
            down_gpu_s: counts.down_gpu_s,
        })
    }

    /// Sends the reports that are due: the pending one first, then one per open offer whose
    /// next boundary has passed.
    async fn meter(&mut self, now: u64) {
        if let Some(report) = self.pending_report.clone() {
            if !self.send_report(report, now).await {
                return;
            }
        }
        let offers: Vec<OfferView> = self.offers.values().cloned().collect();
        for offer in offers {
            let grid = Grid {
                start_ns: offer.spec.start_ns,
            };
            let end_s = grid.floor(offer.spec.end_ns);
            let from_s = grid.floor(offer.reported_until_ns);
            let Some((from, to)) = next_report_span(
                from_s,
                grid.floor(now),
                end_s,
                self.config.meter_interval_s as i64,
            ) else {
                continue;
            };
            if let (Some(observations), Some(to_ns)) = (&self.observations, grid.ns(to)) {
                if observations
                    .last_sample_ns()
                    .is_none_or(|sampled| sampled < to_ns)
                {
                    self.sample(now).await;
                }
            }
            let Some(report) = self.build_report(&offer.spec, from, to) else {
                continue;
            };
            self.pending_report = Some(report.clone());
            self.state.state.last_report = Some(ReportRecord {
                report: report.clone(),
                confirmed: false,
            });
            self.save();
            if !self.send_report(report, now).await {
                return;
            }
        }
    }

    /// Sends one report; `false` if the loop should stop metering for now.
    async fn send_report(&mut self, report: MeterReport, now: u64) -> bool {
        let command = Command::ReportMeter {
            report: report.clone(),
        };
        match self.nodes.write(&self.key, &command).await {
            Ok(response) => {
                self.network_ok();
                let repeated = matches!(
                    response.outcome.result,
                    CommandResult::Accepted(Effect::MeterRecorded { repeated: true })
                );
                self.pending_report = None;
                if let Some(record) = &mut self.state.state.last_report {
                    if record.report == report {
                        record.confirmed = true;
                    }
                }
                self.save();
                let mut closed = None;
                if let Some(offer) = self.offers.get_mut(&report.offer_id) {
                    offer.reported_until_ns = offer.reported_until_ns.max(report.to_ns);
                    offer.delivered_gpu_s += report.available_gpu_s + report.busy_gpu_s;
                    offer.down_gpu_s += report.down_gpu_s;
                    if offer.reported_until_ns >= offer.spec.end_ns {
                        closed = Some(offer.clone());
                    }
                }
                emit(
                    "report_sent",
                    json!({
                        "offer_id": report.offer_id.to_string(),
                        "from_ns": report.from_ns.to_string(),
                        "to_ns": report.to_ns.to_string(),
                        "available_gpu_s": report.available_gpu_s,
                        "busy_gpu_s": report.busy_gpu_s,
                        "down_gpu_s": report.down_gpu_s,
                        "repeated": repeated,
                        "journal_index": response.journal_index,
                    }),
                );
                if let Some(offer) = closed {
                    self.offers.remove(&report.offer_id);
                    if let Some(observations) = &mut self.observations {
                        let oldest = self
                            .offers
                            .values()
                            .map(|offer| offer.reported_until_ns)
                            .min()
                            .unwrap_or(report.to_ns);
                        observations.forget_before(oldest);
                    }
                    emit(
                        "offer_closed",
                        json!({"offer_id": report.offer_id.to_string(), "end_ns": offer.spec.end_ns.to_string()}),
                    );
                } else if let Some(observations) = &mut self.observations {
                    let oldest = self
                        .offers
                        .values()
                        .map(|offer| offer.reported_until_ns)
                        .min()
                        .unwrap_or(report.to_ns);
                    observations.forget_before(oldest);
                }
                true
            }
            Err(WriteError::Unreachable(message)) => {
                self.network_failed(now, "report_meter", &message);
                false
            }
            Err(WriteError::Refused { code, message }) => {
                if code == "meter_report_in_future" {
                    // The node's clock is behind ours: send the same report a second later.
                    emit(
                        "error",
                        json!({"action": "report_meter", "code": code, "message": message, "retry_in_s": 1}),
                    );
                    self.backoff_until_ns = now.saturating_add(NS_PER_S);
                    return false;
                }
                self.refused(now, "report_meter", &code, &message);
                // Anything else: the node knows better where the offer stands.
                self.pending_report = None;
                if let Err(error) = self.refresh_offers(now).await {
                    self.network_failed(now, "read_offers", &error.to_string());
                }
                false
            }
        }
    }

    /// Offers a window when none is open, the policy allows, and re-sends an offer that was
    /// not confirmed.
    async fn offer_if_idle(&mut self, now: u64) {
        let covered = self
            .offers
            .values()
            .any(|offer| offer.spec.start_ns <= now && now < offer.spec.end_ns);
        // An offer made but not confirmed: re-send it while the ledger can still take it.
        let unconfirmed: Vec<OfferSpec> = self
            .state
            .state
            .offers
            .iter()
            .filter(|record| !record.confirmed)
            .map(|record| record.spec.clone())
            .collect();
        for spec in unconfirmed {
            let valid = spec.start_ns.saturating_add(OFFER_START_PAST_NS_MAX) >= now + NS_PER_S
                && spec.end_ns > now;
            if !valid || covered {
                self.state.state.offers.retain(|record| record.spec != spec);
                self.save();
                continue;
            }
            self.send_offer(spec, now).await;
            return;
        }
        if covered {
            self.last_wait_reason = None;
            return;
        }
        let length_max_s = match self.config.policy.decide(now, &self.idle) {
            Decision::Wait { code, reason } => {
                // One line each time the rule holding the offer back changes, not every second.
                if self.last_wait_reason != Some(code) {
                    emit("waiting", json!({"code": code, "reason": reason}));
                    self.last_wait_reason = Some(code);
                }
                return;
            }
            Decision::Offer { length_max_s } => length_max_s,
        };
        self.last_wait_reason = None;
        let start_ns = if self.last_offer_end_ns <= now
            && now - self.last_offer_end_ns <= ADJACENT_WINDOW_NS_MAX
        {
            self.last_offer_end_ns
        } else {
            now - now % NS_PER_S
        };
        let mut length_s = self.config.offer_window_s.min(length_max_s);
        // Never into a window that starts later (made by the institution, say).
        if let Some(next_start) = self
            .offers
            .values()
            .map(|offer| offer.spec.start_ns)
            .filter(|start| *start > now)
            .min()
        {
            length_s = length_s.min(next_start.saturating_sub(start_ns) / NS_PER_S);
        }
        let end_ns = start_ns.saturating_add(length_s.saturating_mul(NS_PER_S));
        if end_ns <= now.saturating_add(NS_PER_S) {
            return;
        }
        let spec = OfferSpec {
            offer_id: offer_id(&self.config.host_id, start_ns),
            host_id: self.config.host_id.clone(),
            gpu_count: self.offer_gpu_count,
            start_ns,
            end_ns,
        };
        self.state.state.offers.push(OfferRecord {
            spec: spec.clone(),
            confirmed: false,
        });
        self.save();
        self.send_offer(spec, now).await;
    }

    async fn send_offer(&mut self, spec: OfferSpec, now: u64) {
        let command = Command::OfferCapacity {
            offer: spec.clone(),
        };
        match self.nodes.write(&self.key, &command).await {
            Ok(response) => {
                self.network_ok();
                let repeated = matches!(
                    response.outcome.result,
                    CommandResult::Accepted(Effect::CapacityOffered { repeated: true })
                );
                for record in &mut self.state.state.offers {
                    if record.spec == spec {
                        record.confirmed = true;
                    }
                }
                self.save();
                self.last_offer_end_ns = self.last_offer_end_ns.max(spec.end_ns);
                emit(
                    "offer_sent",
                    json!({
                        "offer_id": spec.offer_id.to_string(),
                        "start_ns": spec.start_ns.to_string(),
                        "end_ns": spec.end_ns.to_string(),
                        "gpu_count": spec.gpu_count,
                        "repeated": repeated,
                        "journal_index": response.journal_index,
                    }),
                );
                // The node's record (how far it was reported) is the truth for a repeat.
                match self.nodes.offer(spec.offer_id).await {
                    Ok(offer) => {
                        if offer.reported_until_ns < offer.spec.end_ns {
                            self.offers.insert(spec.offer_id, offer);
                        }
                    }
                    Err(_) => {
                        self.offers.insert(
                            spec.offer_id,
                            OfferView {
                                spec: OfferSpecView {
                                    offer_id: spec.offer_id,
                                    host_id: spec.host_id.clone(),
                                    gpu_count: spec.gpu_count,
                                    start_ns: spec.start_ns,
                                    end_ns: spec.end_ns,
                                },
                                reported_until_ns: spec.start_ns,
                                delivered_gpu_s: 0,
                                down_gpu_s: 0,
                            },
                        );
                    }
                }
            }
            Err(WriteError::Unreachable(message)) => {
                self.network_failed(now, "offer_capacity", &message)
            }
            Err(WriteError::Refused { code, message }) => {
                self.refused(now, "offer_capacity", &code, &message);
                // The window cannot be offered as it is (it overlaps one made elsewhere, or
                // is too old): forget it and read what the node has.
                self.state.state.offers.retain(|record| record.spec != spec);
                self.save();
                if let Err(error) = self.refresh_offers(now).await {
                    self.network_failed(now, "read_offers", &error.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_ids_are_deterministic_client_ids() {
        let a = offer_id("gpu-01", 1_767_225_609_000_000_000);
        assert_eq!(a, offer_id("gpu-01", 1_767_225_609_000_000_000));
        assert_ne!(a, offer_id("gpu-02", 1_767_225_609_000_000_000));
        assert_ne!(a, offer_id("gpu-01", 1_767_225_610_000_000_000));
        assert_eq!(a & ledger::ids::LEDGER_ID_BIT, 0);
        assert_ne!(a, 0);
    }

    #[test]
    fn delivered_time_is_whole_seconds_capped_at_the_allocation() {
        let record = AllocationRecord {
            allocation_id: 1,
            offer_id: 2,
            party: "sme".to_owned(),
            gpu_count: 4,
            start_ns: 100 * NS_PER_S,
            end_ns: 160 * NS_PER_S,
            gpus: vec![0, 1, 2, 3],
            running_reported: true,
            started_at_ns: Some(101 * NS_PER_S + 500),
            hook_pid: None,
            ended_at_ns: None,
            exit_code: None,
            final_update: None,
            final_reported: false,
        };
        assert_eq!(delivered_gpu_s(&record, 131 * NS_PER_S + 499), 4 * 29);
        assert_eq!(delivered_gpu_s(&record, 131 * NS_PER_S + 500), 4 * 30);
        // Past the end: only up to the end.
        assert_eq!(delivered_gpu_s(&record, 500 * NS_PER_S), 4 * 58);
        assert_eq!(delivered_gpu_s(&record, 0), 0);
    }

    #[test]
    fn gpus_are_assigned_free_first() {
        assert_eq!(assign_gpus(2, 8, &[]), vec![0, 1]);
        assert_eq!(assign_gpus(3, 8, &[0, 2]), vec![1, 3, 4]);
        assert_eq!(assign_gpus(3, 3, &[1]), vec![0, 2, 1]);
        assert_eq!(assign_gpus(0, 3, &[]), Vec::<u32>::new());
    }
}
