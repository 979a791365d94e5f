//! A cluster of real `cbank` processes on loopback, bootstrapped through the admin API.
//!
//! [`Cluster::start`] spawns n nodes (ids 1..=n) with data directories in one temporary folder,
//! waits until each answers `GET /v1/health`, initialises node 1 as a one-node cluster, adds
//! every other node as a learner and promotes it, applies genesis signed by the operator's demo
//! key, and opens and funds the fixture accounts (`fixture.rs`). Faults are real: [`kill9`]
//! sends SIGKILL, [`wipe`] deletes the data directory, [`isolate`] cuts the node's Raft traffic
//! through `POST /v1/admin/faults`.
//!
//! Clusters in one test process run one at a time (a process-wide lock is held for each
//! cluster's lifetime): on a 2-core machine, several clusters electing leaders at once would
//! make timing assertions (a new leader within 5 s) measure the machine, not the code.
//!
//! On drop every node is killed; if the test is panicking, the tail of every node's log is
//! printed first (and the data kept when `CBANK_TEST_KEEP_DATA` is set).
//!
//! [`kill9`]: Cluster::kill9
//! [`wipe`]: Cluster::wipe
//! [`isolate`]: Cluster::isolate

use crate::api::{Api, ApiError, ClusterView, JournalPage, StateView};
use crate::client::Client;
use crate::fixture::{account_of, ASSETS, INITIAL_FUNDS, MINT_ACCOUNT, PARTIES};
use crate::netns::Netns;
use crate::ports::free_ports;
use crate::process::{NodeProcess, LOG_TAIL_LINES};
use crate::wait::wait_for;
use ledger::testing::{demo_key, OPERATOR};
use ledger::{
    Account, AccountFlags, AccountKind, Command, NewAccount, PartyId, Role, Transfer,
    TransferRecord,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a started (or restarted) node may take to answer its health check.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the cluster may take to agree on a leader after a fault.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// How long nodes may take to reach the same journal head and state hash. Covers a restarted
/// node replaying its log and a wiped node receiving a snapshot.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(45);

/// Admin calls wait for a learner to catch up (`add_learner` is blocking), so they get longer
/// than ordinary requests.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// One cluster at a time per test process (see the module doc).
static SERIAL: Mutex<()> = Mutex::new(());

/// How a cluster is started.
#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    /// Extra `cbank node start` arguments for every node (e.g. tuning knobs).
    pub node_args: Vec<String>,
    /// Extra environment variables for every node (e.g. `CBANK_SNAPSHOT_LOGS`).
    pub node_env: Vec<(String, String)>,
    /// Each node in its own network namespace on a bridge (`netns.rs`), so partitions are
    /// real: packets dropped by the kernel, not by the node.
    pub netns: bool,
}

impl Options {
    pub fn new(nodes: usize) -> Options {
        Options {
            nodes,
            node_args: Vec::new(),
            node_env: Vec::new(),
            netns: false,
        }
    }
}

/// n `cbank` processes forming one Raft cluster, with the fixture applied.
pub struct Cluster {
    nodes: BTreeMap<u64, NodeProcess>,
    isolated: BTreeSet<u64>,
    api: Api,
    admin_api: Api,
    dir: tempfile::TempDir,
    /// Dropped after the nodes are killed (fields drop after `Drop::drop`).
    netns: Option<Netns>,
    _serial: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts `nodes` nodes and bootstraps them (see the module doc). Panics, printing the
    /// nodes' logs, if any step fails or takes too long.
    pub fn start(nodes: usize) -> Cluster {
        Cluster::start_with(Options::new(nodes))
    }

    pub fn start_with(options: Options) -> Cluster {
        assert!(options.nodes >= 1, "a cluster has at least one node");
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = tempfile::Builder::new()
            .prefix("cbank-test-")
            .tempdir()
            .expect("create a temporary directory");
        let ports = free_ports(2 * options.nodes);
        let netns = options.netns.then(|| Netns::create(options.nodes as u64));
        let mut nodes = BTreeMap::new();
        for (index, pair) in ports.chunks(2).enumerate() {
            let id = index as u64 + 1;
            let (raft_addr, http_addr) = match &netns {
                // Each namespace has its own ports: fixed ones are free there.
                Some(netns) => (
                    SocketAddr::from((netns.addr(id), 7_100)),
                    SocketAddr::from((netns.addr(id), 7_000)),
                ),
                None => (
                    SocketAddr::from((Ipv4Addr::LOCALHOST, pair[0])),
                    SocketAddr::from((Ipv4Addr::LOCALHOST, pair[1])),
                ),
            };
            let mut node = NodeProcess::new(
                id,
                dir.path(),
                raft_addr,
                http_addr,
                options.node_args.clone(),
            );
            node.extra_env = options.node_env.clone();
            if let Some(netns) = &netns {
                node.launcher = netns.launcher(id);
            }
            nodes.insert(id, node);
        }
        let mut cluster = Cluster {
            nodes,
            isolated: BTreeSet::new(),
            api: Api::default(),
            admin_api: Api::new(ADMIN_TIMEOUT),
            dir,
            netns,
            _serial: serial,
        };
        for node in cluster.nodes.values_mut() {
            node.spawn();
        }
        for id in cluster.node_ids() {
            cluster.wait_healthy(id);
        }
        cluster.bootstrap();
        cluster.apply_fixture();
        cluster.wait_converged();
        cluster
    }

    // ---- who is where -----------------------------------------------------------------------

    /// Every node id, running or not.
    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// The ids of nodes whose process is running.
    pub fn running_ids(&mut self) -> Vec<u64> {
        self.nodes
            .iter_mut()
            .filter_map(|(id, node)| node.is_running().then_some(*id))
            .collect()
    }

    pub fn node(&self, id: u64) -> &NodeProcess {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProcess {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// A node's HTTP base URL.
    pub fn url(&self, id: u64) -> String {
        self.node(id).url()
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    /// A client that can reach every node of this cluster (with a fresh attempt record).
    pub fn client(&self) -> Client {
        let urls = self
            .nodes
            .iter()
            .map(|(id, node)| (*id, node.url()))
            .collect();
        Client::new(self.api.clone(), urls)
    }

    /// The node's admin token, waiting (bounded) for the node to have written it.
    pub fn admin_token(&self, id: u64) -> String {
        wait_for(&format!("node {id}'s admin.token"), START_TIMEOUT, || {
            self.node(id)
                .admin_token()
                .ok_or_else(|| "not written yet".to_owned())
        })
    }

    // ---- reads ------------------------------------------------------------------------------

    pub fn cluster_view(&self, id: u64) -> Result<ClusterView, ApiError> {
        self.api.get(&format!("{}/v1/cluster", self.url(id)))
    }

    pub fn state(&self, id: u64) -> Result<StateView, ApiError> {
        self.api.get(&format!("{}/v1/state", self.url(id)))
    }

    /// `GET /v1/accounts/{account}` on `id` with `consistency` (`local` or `linearizable`).
    pub fn account(&self, id: u64, account: u128, consistency: &str) -> Result<Account, ApiError> {
        self.api.get(&format!(
            "{}/v1/accounts/{account}?consistency={consistency}",
            self.url(id)
        ))
    }

    /// `GET /v1/transfers/{transfer}` on `id` with `consistency`.
    pub fn transfer_record(
        &self,
        id: u64,
        transfer: u128,
        consistency: &str,
    ) -> Result<TransferRecord, ApiError> {
        self.api.get(&format!(
            "{}/v1/transfers/{transfer}?consistency={consistency}",
            self.url(id)
        ))
    }

    /// `GET /v1/journal?from=..&limit=..` on `id` with `consistency`.
    pub fn journal(
        &self,
        id: u64,
        from: u64,
        limit: u32,
        consistency: &str,
    ) -> Result<JournalPage, ApiError> {
        self.api.get(&format!(
            "{}/v1/journal?from={from}&limit={limit}&consistency={consistency}",
            self.url(id)
        ))
    }

    /// `GET <leader><path>` with a linearizable read, retried (bounded) while no leader answers
    /// (a leader change, an election); any other error fails the test.
    pub fn read<T: DeserializeOwned>(&mut self, path: &str) -> T {
        let separator = if path.contains('?') { '&' } else { '?' };
        wait_for(&format!("GET {path}"), LEADER_TIMEOUT, || {
            let leader = self.leader();
            let url = format!(
                "{}{path}{separator}consistency=linearizable",
                self.url(leader)
            );
            match self.api.get::<T>(&url) {
                Ok(value) => Ok(value),
                Err(error) if error.is_transient() => Err(error.to_string()),
                Err(error) => panic!("GET {path} on leader {leader}: {error}"),
            }
        })
    }

    /// Every transfer id listed for `account` by `GET /v1/accounts/{id}/transfers` on node
    /// `id`, following `next` page by page, in the order listed.
    pub fn account_transfer_ids(&self, id: u64, account: u128) -> Vec<u128> {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        // Bounded: each page is at most 1,000 transfers, and tests move far fewer than 10^6.
        for _ in 0..1_000 {
            let mut url = format!(
                "{}/v1/accounts/{account}/transfers?limit=1000",
                self.url(id)
            );
            if let Some(after) = &after {
                url.push_str(&format!("&after={after}"));
            }
            let page: serde_json::Value = self.api.get(&url).unwrap_or_else(|error| {
                panic!("list transfers of account {account} on node {id}: {error}")
            });
            let records: Vec<TransferRecord> = serde_json::from_value(page["transfers"].clone())
                .unwrap_or_else(|error| {
                    panic!("transfer list does not match the contract: {error}: {page}")
                });
            ids.extend(records.iter().map(|record| record.transfer.id));
            after = match &page["next"] {
                serde_json::Value::Null => return ids,
                serde_json::Value::String(next) => Some(next.clone()),
                serde_json::Value::Number(next) => Some(next.to_string()),
                other => panic!("`next` is neither null nor an id: {other}"),
            };
        }
        panic!("account {account} lists more than a million transfers")
    }

    // ---- waits ------------------------------------------------------------------------------

    /// Waits until node `id` answers its health check with its own id. Panics at once if the
    /// process exits.
    pub fn wait_healthy(&mut self, id: u64) {
        let url = format!("{}/v1/health", self.url(id));
        let api = self.api.clone();
        let node = self.node_mut(id);
        wait_for(
            &format!("node {id} to answer /v1/health"),
            START_TIMEOUT,
            || {
                if let Some(status) = node.exit_status() {
                    panic!("node {id} exited during start-up: {status}");
                }
                let health: serde_json::Value = api.get(&url).map_err(|error| error.to_string())?;
                if health["status"] == "ok" && health["node_id"] == id {
                    Ok(())
                } else {
                    Err(format!("unexpected health answer {health}"))
                }
            },
        );
    }

    /// The node that leads now: running, not isolated, calling itself leader, and named leader
    /// by a majority of all members. Waits (bounded) for one to exist.
    pub fn leader(&mut self) -> u64 {
        let reachable = self.reachable_ids();
        let majority = self.nodes.len() / 2 + 1;
        wait_for("a leader agreed by a majority", LEADER_TIMEOUT, || {
            let views: Vec<ClusterView> = reachable
                .iter()
                .filter_map(|id| self.cluster_view(*id).ok())
                .collect();
            // A deposed leader may still call itself leader (of an older term) for a while:
            // only the claimant a majority follows counts.
            let claimants = views
                .iter()
                .filter(|view| view.role == "leader" && view.leader_id == Some(view.node_id));
            for claimant in claimants {
                let votes = views
                    .iter()
                    .filter(|view| view.leader_id == Some(claimant.node_id))
                    .count();
                if votes >= majority {
                    return Ok(claimant.node_id);
                }
            }
            Err(format!(
                "no node calls itself leader and is named leader by {majority} nodes: {:?}",
                summary(&views)
            ))
        })
    }

    /// The running, reachable nodes other than the leader.
    pub fn followers(&mut self) -> Vec<u64> {
        let leader = self.leader();
        self.reachable_ids()
            .into_iter()
            .filter(|id| *id != leader)
            .collect()
    }

    /// Waits until every running node reports the same journal head and state hash, after a
    /// linearizable read on the leader has made sure the leader applied everything committed.
    /// Returns the common state. Panics if a node is isolated (heal it first).
    pub fn wait_converged(&mut self) -> StateView {
        assert!(
            self.isolated.is_empty(),
            "heal nodes {:?} before waiting for convergence",
            self.isolated
        );
        let leader = self.leader();
        wait_for(
            &format!("a linearizable read on leader {leader}"),
            LEADER_TIMEOUT,
            || {
                self.account(leader, MINT_ACCOUNT, "linearizable")
                    .map_err(|error| error.to_string())
            },
        );
        let running = self.running_ids();
        wait_for(
            &format!("nodes {running:?} to reach the same journal head and state hash"),
            CONVERGE_TIMEOUT,
            || {
                let mut states = BTreeMap::new();
                for id in &running {
                    let state = self
                        .state(*id)
                        .map_err(|error| format!("node {id}: {error}"))?;
                    states.insert(*id, state);
                }
                let leader_state = states[&leader].clone();
                if states.values().all(|state| {
                    state.journal_head == leader_state.journal_head
                        && state.state_hash == leader_state.state_hash
                }) {
                    Ok(leader_state)
                } else {
                    let heads: BTreeMap<u64, (u64, String)> = states
                        .iter()
                        .map(|(id, state)| {
                            (
                                *id,
                                (
                                    state.journal_head.index,
                                    state.state_hash.to_string()[..12].to_owned(),
                                ),
                            )
                        })
                        .collect();
                    Err(format!("heads and state hashes differ: {heads:?}"))
                }
            },
        )
    }

    // ---- faults -----------------------------------------------------------------------------

    /// SIGKILL the node's process (no shutdown code runs) and reap it.
    pub fn kill9(&mut self, id: u64) {
        self.node_mut(id).kill9();
        // Faults live in the process's memory: a restarted node is connected again.
        self.isolated.remove(&id);
    }

    /// Starts a stopped node again with its data directory as it was, and waits until it
    /// answers its health check.
    pub fn restart(&mut self, id: u64) {
        self.node_mut(id).spawn();
        self.wait_healthy(id);
    }

    /// Replaces a node's disk the safe way: the leader removes it from the membership, the
    /// node is killed and its data directory deleted, it starts empty, and the leader adds it
    /// back as a learner (which blocks until it caught up: by snapshot, when the leader's log
    /// has been purged) and promotes it. A voter must never come back with its vote and log
    /// forgotten while still a member: it could vote twice in one term.
    pub fn wipe(&mut self, id: u64) {
        let leader = self.leader();
        assert_ne!(leader, id, "wipe a follower, not the leader");
        self.admin(leader, "/v1/admin/cluster/remove", &json!({ "id": id }))
            .unwrap_or_else(|error| panic!("remove node {id}: {error}"));
        if self.node_mut(id).is_running() {
            self.kill9(id);
        }
        self.node_mut(id).wipe_data();
        self.restart(id);
        let node = self.node(id);
        let learner = json!({
            "id": id,
            "raft_addr": node.raft_addr.to_string(),
            "http_addr": node.http_addr.to_string(),
        });
        self.admin(leader, "/v1/admin/cluster/learners", &learner)
            .unwrap_or_else(|error| panic!("add node {id} back as a learner: {error}"));
        self.admin(leader, "/v1/admin/cluster/promote", &json!({ "id": id }))
            .unwrap_or_else(|error| panic!("promote node {id} again: {error}"));
    }

    /// The namespaces of a cluster started with `Options::netns` (panics otherwise).
    pub fn netns(&self) -> &Netns {
        self.netns
            .as_ref()
            .expect("the cluster was started with Options::netns")
    }

    /// Drops every packet to and from the node in the kernel (`netns` clusters only): Raft and
    /// HTTP alike, like an unplugged cable.
    pub fn cut_link(&mut self, id: u64) {
        self.netns().cut(id);
        self.isolated.insert(id);
    }

    /// Undoes [`Cluster::cut_link`].
    pub fn heal_link(&mut self, id: u64) {
        self.netns().heal(id);
        self.isolated.remove(&id);
    }

    /// Cuts all Raft traffic to and from the node (its HTTP API stays up).
    pub fn isolate(&mut self, id: u64) {
        self.set_isolated(id, true);
        self.isolated.insert(id);
    }

    /// Undoes [`Cluster::isolate`].
    pub fn heal(&mut self, id: u64) {
        self.set_isolated(id, false);
        self.isolated.remove(&id);
    }

    fn set_isolated(&self, id: u64, isolate: bool) {
        self.admin(id, "/v1/admin/faults", &json!({ "isolate": isolate }))
            .unwrap_or_else(|error| panic!("set isolate={isolate} on node {id}: {error}"));
    }

    /// `POST` an admin route on node `id` with its token.
    pub fn admin(
        &self,
        id: u64,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let token = self.admin_token(id);
        self.admin_api
            .post(&format!("{}{path}", self.url(id)), body, Some(&token))
    }

    fn reachable_ids(&mut self) -> Vec<u64> {
        let isolated = self.isolated.clone();
        self.running_ids()
            .into_iter()
            .filter(|id| !isolated.contains(id))
            .collect()
    }

    // ---- start-up ---------------------------------------------------------------------------

    /// Node 1 alone, then every other node added as a learner and promoted, one at a time.
    fn bootstrap(&mut self) {
        self.admin(1, "/v1/admin/cluster/init", &json!({ "members": [] }))
            .unwrap_or_else(|error| panic!("init node 1: {error}"));
        wait_for(
            "node 1 to lead its one-node cluster",
            LEADER_TIMEOUT,
            || match self.cluster_view(1) {
                Ok(view) if view.role == "leader" => Ok(()),
                Ok(view) => Err(format!(
                    "node 1 is {} (leader {:?})",
                    view.role, view.leader_id
                )),
                Err(error) => Err(error.to_string()),
            },
        );
        for id in self.node_ids().into_iter().skip(1) {
            let node = self.node(id);
            let learner = json!({
                "id": id,
                "raft_addr": node.raft_addr.to_string(),
                "http_addr": node.http_addr.to_string(),
            });
            self.admin(1, "/v1/admin/cluster/learners", &learner)
                .unwrap_or_else(|error| panic!("add node {id} as a learner: {error}"));
            self.admin(1, "/v1/admin/cluster/promote", &json!({ "id": id }))
                .unwrap_or_else(|error| panic!("promote node {id}: {error}"));
        }
        let count = self.nodes.len();
        for id in self.node_ids() {
            wait_for(
                &format!("node {id} to see {count} voters led by node 1"),
                LEADER_TIMEOUT,
                || {
                    let view = self.cluster_view(id).map_err(|error| error.to_string())?;
                    let voters = view.members.iter().filter(|member| member.voter).count();
                    if voters == count && view.leader_id == Some(1) {
                        Ok(())
                    } else {
                        Err(format!(
                            "node {id} sees {voters} voters, leader {:?}",
                            view.leader_id
                        ))
                    }
                },
            );
        }
    }

    /// Genesis, the fixture parties, their accounts and their funds, all through node 1.
    fn apply_fixture(&mut self) {
        let client = self.client();
        let assets = ASSETS
            .map(|code| code.parse().expect("fixture asset codes are valid"))
            .to_vec();
        let genesis = Command::Genesis {
            operator: PartyId::new(OPERATOR),
            keys: vec![demo_key(OPERATOR).public_key()],
            assets,
        };
        client.expect_applied(1, OPERATOR, genesis);
        for party in PARTIES {
            let register = Command::RegisterParty {
                party: PartyId::new(party),
                role: Role::Sme,
                keys: vec![demo_key(party).public_key()],
            };
            client.expect_applied(1, OPERATOR, register);
        }
        let cny = || "CNY".parse().expect("CNY is an asset");
        let mint = NewAccount {
            id: MINT_ACCOUNT,
            asset: cny(),
            kind: AccountKind::Mint,
            flags: AccountFlags::default(),
            reference: 0,
        };
        client.expect_applied(
            1,
            OPERATOR,
            Command::CreateAccounts {
                accounts: vec![mint],
            },
        );
        for party in PARTIES {
            let account = NewAccount {
                id: account_of(party),
                asset: cny(),
                kind: AccountKind::Main,
                flags: AccountFlags {
                    debits_must_not_exceed_credits: true,
                    ..AccountFlags::default()
                },
                reference: 0,
            };
            client.expect_applied(
                1,
                party,
                Command::CreateAccounts {
                    accounts: vec![account],
                },
            );
        }
        let funding = PARTIES
            .iter()
            .map(|party| Transfer {
                id: crate::fixture::funding_transfer_of(party),
                debit_account_id: MINT_ACCOUNT,
                credit_account_id: account_of(party),
                amount: INITIAL_FUNDS,
                pending_id: 0,
                timeout_s: 0,
                code: 0,
                reference: 0,
                flags: Default::default(),
            })
            .collect();
        client.expect_applied(1, OPERATOR, Command::CreateTransfers { transfers: funding });
    }

    // ---- failure reports --------------------------------------------------------------------

    /// Prints the tail of every node's log to stderr (captured by the test harness and shown
    /// when the test fails).
    pub fn dump_logs(&self) {
        for node in self.nodes.values() {
            eprintln!(
                "----- node {} (raft {}, http {}), last {LOG_TAIL_LINES} lines of {} -----\n{}",
                node.id,
                node.raft_addr,
                node.http_addr,
                node.log_path.display(),
                node.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            node.kill9();
        }
        if std::thread::panicking() {
            self.dump_logs();
            if std::env::var_os("CBANK_TEST_KEEP_DATA").is_some() {
                self.dir.disable_cleanup(true);
                eprintln!(
                    "kept the cluster's data and logs in {}",
                    self.dir.path().display()
                );
            }
        }
    }
}

fn summary(views: &[ClusterView]) -> Vec<(u64, String, Option<u64>, u64)> {
    views
        .iter()
        .map(|view| (view.node_id, view.role.clone(), view.leader_id, view.term))
        .collect()
}
