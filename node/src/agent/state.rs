//! The agent's durable local state: `<state_dir>/agent-state.json`, written atomically (to a
//! temporary file, fsync'd, renamed over the old one, then the folder fsync'd), so a crash
//! leaves the old state or the new one, never a mix.
//!
//! It holds what only the agent knows: the offers it made (so a restart re-sends the same
//! offer and gets `repeated: true`), the last meter report it sent, and the allocations it
//! took on: which GPUs, whether their hook was started (so a restarted agent never starts it
//! twice), when it ended and how. The ledger stays the source of truth for everything it
//! records: on start the agent reads offers and allocations from a node and uses this file
//! only to fill in what the node cannot know.

use ledger::bank::{AllocationUpdate, MeterReport, OfferSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The state file's name inside `state_dir`.
pub const STATE_FILE_NAME: &str = "agent-state.json";

/// The format version this code writes and reads.
pub const STATE_VERSION: u32 = 1;

/// State files larger than this are refused (a week of one-minute windows is far smaller).
pub const STATE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// How long finished records are kept, in nanoseconds: longer than any window (7 days) plus
/// the ledger's hour of grace for late reports.
pub const RECORD_KEEP_NS: u64 = 8 * 24 * 3600 * 1_000_000_000;

/// An offer this agent made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferRecord {
    pub spec: OfferSpec,
    /// The node accepted it (or answered that it was a repeat).
    pub confirmed: bool,
}

/// The last meter report sent, and whether the node accepted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub report: MeterReport,
    pub confirmed: bool,
}

/// An allocation this agent took on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    #[serde(with = "ledger::wire::u128_text")]
    pub allocation_id: u128,
    #[serde(with = "ledger::wire::u128_text")]
    pub offer_id: u128,
    /// The drawer.
    pub party: String,
    pub gpu_count: u32,
    #[serde(with = "ledger::wire::u64_text")]
    pub start_ns: u64,
    #[serde(with = "ledger::wire::u64_text")]
    pub end_ns: u64,
    /// Positions (in the host's GPU list) of the GPUs it uses.
    pub gpus: Vec<u32>,
    /// `running` was accepted by the node.
    pub running_reported: bool,
    /// When its GPUs became busy: the hook's start (recorded before the hook is spawned), or
    /// the `running` report when there is no hook.
    #[serde(with = "ledger::wire::option_u64_text", default)]
    pub started_at_ns: Option<u64>,
    /// The hook's process id (also its process group id), once spawned.
    #[serde(default)]
    pub hook_pid: Option<u32>,
    /// When its GPUs stopped being busy.
    #[serde(with = "ledger::wire::option_u64_text", default)]
    pub ended_at_ns: Option<u64>,
    /// The hook's exit code, if it exited by itself.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// What the agent reports as its end (decided once, then sent until accepted).
    #[serde(default)]
    pub final_update: Option<AllocationUpdate>,
    /// The node accepted `final_update` (or had already recorded an end).
    #[serde(default)]
    pub final_reported: bool,
}

impl AllocationRecord {
    /// Its GPUs are busy at some time: started and not finished.
    pub fn is_open(&self) -> bool {
        self.final_update.is_none()
    }
}

/// Everything in the state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    pub version: u32,
    pub host_id: String,
    #[serde(default)]
    pub offers: Vec<OfferRecord>,
    #[serde(default)]
    pub last_report: Option<ReportRecord>,
    /// By allocation id (decimal).
    #[serde(default)]
    pub allocations: BTreeMap<String, AllocationRecord>,
}

impl AgentState {
    /// Drops records nobody needs any more: offers that ended, and reported allocations,
    /// more than [`RECORD_KEEP_NS`] before `now_ns`.
    pub fn forget_old(&mut self, now_ns: u64) {
        let horizon = now_ns.saturating_sub(RECORD_KEEP_NS);
        self.offers.retain(|offer| offer.spec.end_ns >= horizon);
        self.allocations
            .retain(|_, record| !(record.final_reported && record.end_ns < horizon));
    }
}

/// The state and the folder it lives in.
#[derive(Debug)]
pub struct StateFile {
    dir: PathBuf,
    pub state: AgentState,
}

impl StateFile {
    /// Opens the state in `dir` (created if missing), or starts an empty one for `host_id`.
    /// A state file of another host, of an unknown version, or that does not parse is an
    /// error: the agent refuses to guess.
    pub fn open(dir: &Path, host_id: &str) -> Result<StateFile, String> {
        fs::create_dir_all(dir).map_err(|error| {
            format!("cannot create the state folder {}: {error}", dir.display())
        })?;
        let path = dir.join(STATE_FILE_NAME);
        let state = match fs::metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => AgentState {
                version: STATE_VERSION,
                host_id: host_id.to_owned(),
                ..AgentState::default()
            },
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
            Ok(metadata) if metadata.len() > STATE_BYTES_MAX => {
                return Err(format!(
                    "{} is over {STATE_BYTES_MAX} bytes: not an agent state file",
                    path.display()
                ))
            }
            Ok(_) => {
                let bytes = fs::read(&path)
                    .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                let state: AgentState = serde_json::from_slice(&bytes).map_err(|error| {
                    format!(
                        "{} is not a valid agent state file: {error}",
                        path.display()
                    )
                })?;
                if state.version != STATE_VERSION {
                    return Err(format!(
                        "{} has version {}; this agent reads version {STATE_VERSION}",
                        path.display(),
                        state.version
                    ));
                }
                if state.host_id != host_id {
                    return Err(format!(
                        "{} belongs to host {:?}, not {host_id:?}: give each host its own state_dir",
                        path.display(),
                        state.host_id
                    ));
                }
                state
            }
        };
        Ok(StateFile {
            dir: dir.to_path_buf(),
            state,
        })
    }

    /// The state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the state durably and atomically.
    pub fn save(&self) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(&self.state)
            .map_err(|error| format!("cannot encode the agent state: {error}"))?;
        write_atomically(&self.dir, STATE_FILE_NAME, &bytes).map_err(|error| {
            format!(
                "cannot write {}: {error}",
                self.dir.join(STATE_FILE_NAME).display()
            )
        })
    }
}

/// Replaces `dir/name` with `bytes`: temporary file, fsync, rename, fsync of the folder.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_state() -> AgentState {
        let mut state = AgentState {
            version: STATE_VERSION,
            host_id: "gpu-01".to_owned(),
            ..AgentState::default()
        };
        state.offers.push(OfferRecord {
            spec: OfferSpec {
                offer_id: 170_141_183_460_469_231_731_687_303_715_884_105_727,
                host_id: "gpu-01".to_owned(),
                gpu_count: 8,
                start_ns: 1_767_225_609_000_000_000,
                end_ns: 1_767_229_209_000_000_000,
            },
            confirmed: true,
        });
        state.last_report = Some(ReportRecord {
            report: MeterReport {
                offer_id: 5,
                from_ns: 1,
                to_ns: 2,
                available_gpu_s: 3,
                busy_gpu_s: 4,
                down_gpu_s: 5,
            },
            confirmed: false,
        });
        state.allocations.insert(
            "99".to_owned(),
            AllocationRecord {
                allocation_id: u128::MAX - 1,
                offer_id: 7,
                party: "sme".to_owned(),
                gpu_count: 2,
                start_ns: 10,
                end_ns: u64::MAX,
                gpus: vec![0, 3],
                running_reported: true,
                started_at_ns: Some(11),
                hook_pid: Some(4242),
                ended_at_ns: None,
                exit_code: None,
                final_update: Some(AllocationUpdate::Failed { delivered_gpu_s: 6 }),
                final_reported: false,
            },
        );
        state
    }

    #[test]
    fn the_state_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("nested/state");
        let mut file = StateFile::open(&folder, "gpu-01").unwrap();
        assert_eq!(file.state.version, STATE_VERSION);
        assert!(file.state.offers.is_empty());
        file.state = sample_state();
        file.save().unwrap();
        assert!(!folder.join(format!("{STATE_FILE_NAME}.tmp")).exists());
        let reopened = StateFile::open(&folder, "gpu-01").unwrap();
        assert_eq!(reopened.state, sample_state());
        // Large ids survive as decimal strings.
        let text = fs::read_to_string(folder.join(STATE_FILE_NAME)).unwrap();
        assert!(
            text.contains("\"340282366920938463463374607431768211454\""),
            "{text}"
        );
    }

    #[test]
    fn foreign_or_corrupt_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = StateFile::open(dir.path(), "gpu-01").unwrap();
        file.state = sample_state();
        file.save().unwrap();
        let error = StateFile::open(dir.path(), "gpu-02").unwrap_err();
        assert!(error.contains("belongs to host"), "{error}");
        fs::write(dir.path().join(STATE_FILE_NAME), b"{not json").unwrap();
        let error = StateFile::open(dir.path(), "gpu-01").unwrap_err();
        assert!(error.contains("not a valid agent state file"), "{error}");
        fs::write(
            dir.path().join(STATE_FILE_NAME),
            br#"{"version": 9, "host_id": "gpu-01"}"#,
        )
        .unwrap();
        let error = StateFile::open(dir.path(), "gpu-01").unwrap_err();
        assert!(error.contains("version 9"), "{error}");
    }

    #[test]
    fn old_records_are_forgotten() {
        let mut state = sample_state();
        let now = 1_767_229_209_000_000_000 + RECORD_KEEP_NS + 1;
        state.forget_old(now);
        assert!(state.offers.is_empty());
        // Unreported allocations stay until they are reported.
        assert_eq!(state.allocations.len(), 1);
        let record = state.allocations.get_mut("99").unwrap();
        record.final_reported = true;
        record.end_ns = 10;
        state.forget_old(now);
        assert!(state.allocations.is_empty());
    }
}
