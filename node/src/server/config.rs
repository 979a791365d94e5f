//! What a node is started with ([`NodeConfig`]) and the openraft configuration all nodes share.
//!
//! Every node of a cluster must run with the same Raft timing, so [`raft_config`] takes no
//! arguments: the values are the constants of `limits.rs`. This file never reads files or the
//! environment; the CLI turns flags into a `NodeConfig`.

use crate::limits::{
    ELECTION_TIMEOUT_MS_MAX, ELECTION_TIMEOUT_MS_MIN, HEARTBEAT_INTERVAL_MS,
    INSTALL_SNAPSHOT_TIMEOUT_MS, LOG_ENTRIES_KEPT_AFTER_SNAPSHOT, RAFT_ENTRIES_PER_APPEND_MAX,
    SNAPSHOT_CHUNK_BYTES,
};
use crate::storage::SNAPSHOT_POLICY_DEFAULT;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The name every Compute Bank Raft cluster runs under.
pub const CLUSTER_NAME: &str = "cbank";

/// How to start one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// The Raft node id: unique in the cluster, never reused for another data directory.
    pub id: u64,
    /// Where the node keeps its Raft log, applied state, snapshots, key, token and pid file.
    pub data_dir: PathBuf,
    /// Where the node listens for Raft traffic from its peers (gRPC). Peers dial the address
    /// the cluster membership names for this node, which `init` with no members takes from the
    /// bound listener, so bind a reachable address rather than `0.0.0.0` when a node starts a
    /// cluster on its own. Port 0 picks a free port (tests).
    pub raft_addr: SocketAddr,
    /// Where the node serves the HTTP API (`spec/http.md`). Port 0 picks a free port.
    pub http_addr: SocketAddr,
    /// Whether `POST /v1/admin/faults` may cut this node off (tests and operator drills only).
    pub enable_fault_admin: bool,
}

/// The openraft configuration of every node: cluster name `cbank`, a 100 ms heartbeat, a
/// 400–800 ms election timeout (a new leader within about a second of losing one), the storage
/// layer's snapshot policy, 1,000 log entries kept after a snapshot, and snapshot chunks well
/// under the transport's message limit.
pub fn raft_config() -> Result<Arc<openraft::Config>, Box<openraft::ConfigError>> {
    raft_config_with(None)
}

/// The environment variable that overrides how many log entries trigger a snapshot
/// (default: the storage layer's `SNAPSHOT_POLICY_DEFAULT`). Snapshot timing is local to each
/// node, so nodes may differ; tests lower it so a wiped node rejoins by snapshot quickly.
pub const SNAPSHOT_LOGS_ENV: &str = "CBANK_SNAPSHOT_LOGS";

/// [`raft_config`] with the snapshot threshold from [`SNAPSHOT_LOGS_ENV`], if set.
pub fn raft_config_from_env() -> anyhow::Result<Arc<openraft::Config>> {
    let logs = match std::env::var(SNAPSHOT_LOGS_ENV) {
        Ok(text) => Some(text.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            anyhow::anyhow!("{SNAPSHOT_LOGS_ENV} must be a positive integer, not {text:?}")
        })?),
        Err(_) => None,
    };
    Ok(raft_config_with(logs)?)
}

/// [`raft_config`] with a snapshot every `snapshot_logs` log entries instead of the default.
pub fn raft_config_with(
    snapshot_logs: Option<u64>,
) -> Result<Arc<openraft::Config>, Box<openraft::ConfigError>> {
    let snapshot_policy = match snapshot_logs {
        Some(logs) => openraft::SnapshotPolicy::LogsSinceLast(logs),
        None => SNAPSHOT_POLICY_DEFAULT,
    };
    let config = openraft::Config {
        cluster_name: CLUSTER_NAME.to_owned(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MS_MIN,
        election_timeout_max: ELECTION_TIMEOUT_MS_MAX,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        snapshot_policy,
        max_in_snapshot_log_to_keep: LOG_ENTRIES_KEPT_AFTER_SNAPSHOT,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES as u64,
        max_payload_entries: RAFT_ENTRIES_PER_APPEND_MAX,
        ..openraft::Config::default()
    };
    Ok(Arc::new(config.validate().map_err(Box::new)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raft_configuration_is_valid_and_uses_the_limits() {
        let config = raft_config().expect("the node's Raft configuration validates");
        assert_eq!(config.cluster_name, "cbank");
        assert_eq!(config.heartbeat_interval, 100);
        assert_eq!(
            (config.election_timeout_min, config.election_timeout_max),
            (400, 800)
        );
        assert!(
            config.snapshot_max_chunk_size as usize <= crate::network::SNAPSHOT_CHUNK_BYTES_MAX
        );
        assert_eq!(config.snapshot_policy, SNAPSHOT_POLICY_DEFAULT);
    }
}
