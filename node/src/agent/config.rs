//! The agent's configuration file (`cbank agent --config FILE`): TOML, every field checked
//! when the file is read, so a running agent never meets a bad setting.
//!
//! ```toml
//! nodes = ["http://127.0.0.1:7001", "http://127.0.0.1:7002", "http://127.0.0.1:7003"]
//! party = "univ-pku"
//! agent_key_file = "gpu-01.agent.json"
//! host_id = "gpu-01"
//! gpu_source = "sim:8xH100"        # or "nvml", "nvidia-smi"
//! state_dir = "state/gpu-01"
//! meter_interval_s = 60
//! offer_window_s = 3600
//! hook = ["/usr/local/bin/cbank-slurm-hook"]
//!
//! [policy]
//! utilisation_below_percent = 10
//! idle_for_s = 600
//! windows = ["22:00-08:00", "sat,sun"]
//! timezone = "local"
//!
//! [[sim_down]]
//! gpu = 0
//! from_s = 10
//! to_s = 20
//! ```
//!
//! Relative paths are relative to the folder of the config file. `spec/agent.md` is the
//! reference; each field of [`AgentConfig`] says the same. This module only reads and checks.

use super::gpu::GpuSourceSpec;
use super::policy::{Policy, Window, Zone, POLICY_WINDOWS_MAX};
use super::sim::{check_faults, SimFault};
use ledger::PartyId;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Config files larger than this are refused before parsing.
pub const CONFIG_BYTES_MAX: u64 = 1024 * 1024;

/// Node URLs a config may list.
pub const NODES_MAX: usize = 16;

/// Arguments of the hook command.
pub const HOOK_ARGS_MAX: usize = 256;

/// The longest meter, sample and poll interval: an hour. A meter interval must stay under the
/// ledger's one-hour grace for late reports (`METER_REPORT_LATE_NS_MAX`).
pub const INTERVAL_S_MAX: u64 = 3600;

/// The longest offer window: the ledger's `OFFER_WINDOW_NS_MAX` (7 days).
pub const OFFER_WINDOW_S_MAX: u64 = ledger::limits::OFFER_WINDOW_NS_MAX / ledger::limits::NS_PER_S;

/// The agent's settings, checked.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// `nodes`: HTTP URLs of ledger nodes (`http://HOST:PORT`), 1 to 16. Any node works
    /// (followers forward writes to the leader); the agent uses the first that answers and
    /// moves to the next when one cannot be reached.
    pub nodes: Vec<String>,
    /// `party`: the institution that owns the host; the agent signs as this party. The agent
    /// key file must name the same party.
    pub party: PartyId,
    /// `agent_key_file`: the host's agent key, a key file as `cbank keys new --party <party>`
    /// writes it. Its public key must be the host's registered `agent_key`.
    pub agent_key_file: PathBuf,
    /// `host_id`: the registered host this agent runs on.
    pub host_id: String,
    /// `gpu_source`: `nvml`, `nvidia-smi` or `sim:<N>x<CLASS>` (e.g. `sim:8xH100`);
    /// `--gpu-source` overrides it.
    pub gpu_source: GpuSourceSpec,
    /// `gpu_class` (optional): the ledger GPU class of the host's GPUs. By default the agent
    /// maps the product name (`NVIDIA H100 80GB HBM3` → `H100`); set this for a name it does
    /// not know. Either way it must equal the host's registered class.
    pub gpu_class: Option<String>,
    /// `offer_gpu_count` (optional): offer at most this many GPUs (default: all the host's
    /// GPUs that were found, up to its registered `gpu_count`). The first ones by index are offered.
    pub offer_gpu_count: Option<u32>,
    /// `state_dir`: where the agent keeps its durable local state (`agent-state.json`) and its
    /// hooks' output and exit files. Created if missing. One folder per host.
    pub state_dir: PathBuf,
    /// `meter_interval_s` (default 60, 1 to 3,600): reports end on multiples of this many
    /// seconds from the window start, and one is sent as soon as each boundary passes.
    pub meter_interval_s: u64,
    /// `sample_interval_s` (default 5, 1 to 3,600): how often real GPUs are sampled
    /// (utilisation, lost GPUs). A sample's state counts for the time since the previous one.
    pub sample_interval_s: u64,
    /// `allocation_poll_s` (default 5, 1 to 3,600): how often the agent asks the node for the
    /// host's active allocations.
    pub allocation_poll_s: u64,
    /// `offer_window_s` (default 3,600, 1 to 604,800): the length of each offer window. A
    /// window made inside a policy window ends by the policy window's end.
    pub offer_window_s: u64,
    /// `owner_use_above_percent` (default 10, 0 to 100): a real GPU that is not running one of
    /// the agent's allocations and is used above this utilisation is being used by its owner:
    /// it is not available to the pool and counts as down in meter reports.
    pub owner_use_above_percent: u32,
    /// `hook` (optional): the command (argv list, no shell) run for each granted allocation,
    /// with `CBANK_ALLOCATION_ID`, `CBANK_HOST_ID`, `CBANK_GPU_COUNT`, `CBANK_PARTY` (the
    /// drawer), `CBANK_INSTITUTION`, `CBANK_START_NS`, `CBANK_END_NS`, `CBANK_OFFER_ID`, `CBANK_GPU_INDICES` and
    /// `CBANK_GPU_UUIDS` in its environment. Exit 0 reports `completed`, another exit
    /// `failed`; at the allocation's end it gets SIGTERM. Without a hook an allocation is
    /// held (its GPUs busy) until its end and then reported `completed`.
    pub hook: Vec<String>,
    /// `hook_stop_grace_s` (default 10, 1 to 600): after SIGTERM at an allocation's end, how
    /// long the hook's process group has before SIGKILL.
    pub hook_stop_grace_s: u64,
    /// `[policy]`: when to offer (`policy.rs`): `utilisation_below_percent` (1 to 100) with
    /// `idle_for_s` (default 0), and/or `windows` (up to 64, e.g. `"22:00-08:00"`, `"sat,sun"`,
    /// `"mon-fri 18:00-24:00"`) read in `timezone` (`local` by default, `utc`, or `+08:00`).
    /// Without a policy the host is offered all the time.
    pub policy: Policy,
    /// `[[sim_down]]` (simulated sources only): scripted faults `{gpu, from_s, to_s}`: GPU
    /// `gpu` is down during `[from_s, to_s)` seconds after the start of every offer window.
    pub sim_down: Vec<SimFault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    nodes: Vec<String>,
    party: String,
    agent_key_file: PathBuf,
    host_id: String,
    gpu_source: String,
    #[serde(default)]
    gpu_class: Option<String>,
    #[serde(default)]
    offer_gpu_count: Option<u32>,
    state_dir: PathBuf,
    #[serde(default = "default_meter_interval_s")]
    meter_interval_s: u64,
    #[serde(default = "default_short_interval_s")]
    sample_interval_s: u64,
    #[serde(default = "default_short_interval_s")]
    allocation_poll_s: u64,
    #[serde(default = "default_offer_window_s")]
    offer_window_s: u64,
    #[serde(default = "default_owner_use_above_percent")]
    owner_use_above_percent: u32,
    #[serde(default)]
    hook: Vec<String>,
    #[serde(default = "default_hook_stop_grace_s")]
    hook_stop_grace_s: u64,
    #[serde(default)]
    policy: PolicyFile,
    #[serde(default)]
    sim_down: Vec<SimFault>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    utilisation_below_percent: Option<u32>,
    #[serde(default)]
    idle_for_s: u64,
    #[serde(default)]
    windows: Vec<String>,
    #[serde(default)]
    timezone: Option<String>,
}

fn default_meter_interval_s() -> u64 {
    60
}
fn default_short_interval_s() -> u64 {
    5
}
fn default_offer_window_s() -> u64 {
    3600
}
fn default_owner_use_above_percent() -> u32 {
    10
}
fn default_hook_stop_grace_s() -> u64 {
    10
}

/// Reads and checks the config file at `path`; `gpu_source` overrides the file's.
pub fn load(path: &Path, gpu_source: Option<&str>) -> Result<AgentConfig, String> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| format!("cannot read the config file {}: {error}", path.display()))?;
    if !metadata.is_file() || metadata.len() > CONFIG_BYTES_MAX {
        return Err(format!(
            "{} is not a config file (not a file, or over {CONFIG_BYTES_MAX} bytes)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the config file {}: {error}", path.display()))?;
    // Absolute, so that hooks and a restarted agent find the same files whatever their
    // working folder.
    let base = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base)
        .map_err(|error| format!("cannot resolve {}: {error}", base.display()))?;
    parse(&text, &base, gpu_source).map_err(|error| format!("{}: {error}", path.display()))
}

fn in_range(name: &str, value: u64, low: u64, high: u64) -> Result<u64, String> {
    if value < low || value > high {
        return Err(format!(
            "{name} = {value} is out of range: use {low} to {high}"
        ));
    }
    Ok(value)
}

/// Parses and checks config text; relative paths are joined to `base`.
pub fn parse(text: &str, base: &Path, gpu_source: Option<&str>) -> Result<AgentConfig, String> {
    let file: ConfigFile =
        toml::from_str(text).map_err(|error| format!("not a valid agent config: {error}"))?;
    if file.nodes.is_empty() || file.nodes.len() > NODES_MAX {
        return Err(format!("nodes must list 1 to {NODES_MAX} node URLs"));
    }
    for url in &file.nodes {
        crate::cli::client::NodeClient::new(url).map_err(|error| format!("nodes: {error}"))?;
    }
    let party = crate::cli::parse_party(&file.party).map_err(|error| format!("party: {error}"))?;
    let host_id_valid = !file.host_id.is_empty()
        && file.host_id.len() <= 64
        && file.host_id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if !host_id_valid {
        return Err(format!(
            "host_id {:?} is not 1 to 64 characters of a-z, 0-9, '.', '_' and '-'",
            file.host_id
        ));
    }
    let gpu_source: GpuSourceSpec = gpu_source.unwrap_or(&file.gpu_source).parse()?;
    if let Some(class) = &file.gpu_class {
        if format!("GPUH:{class}").parse::<ledger::Asset>().is_err() {
            return Err(format!("gpu_class {class:?} is not a GPU class name"));
        }
    }
    if file.offer_gpu_count == Some(0) {
        return Err("offer_gpu_count must be at least 1".to_owned());
    }
    let owner_use_above_percent = in_range(
        "owner_use_above_percent",
        u64::from(file.owner_use_above_percent),
        0,
        100,
    )? as u32;
    if file.hook.len() > HOOK_ARGS_MAX
        || file
            .hook
            .first()
            .is_some_and(|program| program.trim().is_empty())
    {
        return Err(format!(
            "hook must be an argv list of at most {HOOK_ARGS_MAX} strings with a program first"
        ));
    }
    let sim_down = match &gpu_source {
        GpuSourceSpec::Sim(spec) => {
            check_faults(&file.sim_down, spec.gpu_count)?;
            file.sim_down
        }
        _ => {
            if !file.sim_down.is_empty() {
                tracing::warn!("sim_down is ignored: the GPU source {gpu_source} is not simulated");
            }
            Vec::new()
        }
    };
    let policy = &file.policy;
    if let Some(percent) = policy.utilisation_below_percent {
        in_range(
            "policy.utilisation_below_percent",
            u64::from(percent),
            1,
            100,
        )?;
    }
    in_range(
        "policy.idle_for_s",
        policy.idle_for_s,
        0,
        OFFER_WINDOW_S_MAX,
    )?;
    if policy.windows.len() > POLICY_WINDOWS_MAX {
        return Err(format!(
            "policy.windows lists more than {POLICY_WINDOWS_MAX} windows"
        ));
    }
    let windows = policy
        .windows
        .iter()
        .map(|window| window.parse::<Window>())
        .collect::<Result<Vec<Window>, String>>()?;
    let zone: Zone = policy.timezone.as_deref().unwrap_or("local").parse()?;
    let absolute = |path: PathBuf| {
        if path.is_absolute() {
            path
        } else {
            base.join(path)
        }
    };
    Ok(AgentConfig {
        nodes: file.nodes,
        party,
        agent_key_file: absolute(file.agent_key_file),
        host_id: file.host_id,
        gpu_source,
        gpu_class: file.gpu_class,
        offer_gpu_count: file.offer_gpu_count,
        state_dir: absolute(file.state_dir),
        meter_interval_s: in_range("meter_interval_s", file.meter_interval_s, 1, INTERVAL_S_MAX)?,
        sample_interval_s: in_range(
            "sample_interval_s",
            file.sample_interval_s,
            1,
            INTERVAL_S_MAX,
        )?,
        allocation_poll_s: in_range(
            "allocation_poll_s",
            file.allocation_poll_s,
            1,
            INTERVAL_S_MAX,
        )?,
        offer_window_s: in_range("offer_window_s", file.offer_window_s, 1, OFFER_WINDOW_S_MAX)?,
        owner_use_above_percent,
        hook: file.hook,
        hook_stop_grace_s: in_range("hook_stop_grace_s", file.hook_stop_grace_s, 1, 600)?,
        policy: Policy {
            utilisation_below_percent: policy.utilisation_below_percent,
            idle_for_s: policy.idle_for_s,
            windows,
            zone,
        },
        sim_down,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
nodes = ["http://127.0.0.1:7001"]
party = "univ"
agent_key_file = "agent.json"
host_id = "gpu-01"
gpu_source = "sim:8xH100"
state_dir = "state"
"#;

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let config = parse(MINIMAL, Path::new("/etc/cbank"), None).unwrap();
        assert_eq!(
            config.agent_key_file,
            PathBuf::from("/etc/cbank/agent.json")
        );
        assert_eq!(config.state_dir, PathBuf::from("/etc/cbank/state"));
        assert_eq!(
            (
                config.meter_interval_s,
                config.sample_interval_s,
                config.allocation_poll_s
            ),
            (60, 5, 5)
        );
        assert_eq!(config.offer_window_s, 3600);
        assert_eq!(config.owner_use_above_percent, 10);
        assert!(config.hook.is_empty() && config.sim_down.is_empty());
        assert_eq!(config.policy.zone, Zone::Local);
        assert!(
            config.policy.windows.is_empty() && config.policy.utilisation_below_percent.is_none()
        );
        assert_eq!(config.gpu_source.to_string(), "sim:8xH100");
        // The command line overrides the source.
        let config = parse(MINIMAL, Path::new("."), Some("nvidia-smi")).unwrap();
        assert_eq!(config.gpu_source, GpuSourceSpec::NvidiaSmi);
    }

    #[test]
    fn load_reads_a_file_and_resolves_paths_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let config = load(&path, None).unwrap();
        assert_eq!(config.state_dir, dir.path().join("state"));
        assert_eq!(config.agent_key_file, dir.path().join("agent.json"));
        let missing = load(&dir.path().join("missing.toml"), None).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        let folder = load(dir.path(), None).unwrap_err();
        assert!(folder.contains("not a config file"), "{folder}");
    }

    #[test]
    fn a_full_config_parses() {
        let text = format!(
            r#"{MINIMAL}
gpu_class = "H100"
offer_gpu_count = 4
meter_interval_s = 2
sample_interval_s = 1
allocation_poll_s = 1
offer_window_s = 120
owner_use_above_percent = 30
hook = ["/bin/sh", "-c", "sleep 5"]
hook_stop_grace_s = 3

[policy]
utilisation_below_percent = 10
idle_for_s = 600
windows = ["22:00-08:00", "sat,sun"]
timezone = "+08:00"

[[sim_down]]
gpu = 0
from_s = 10
to_s = 20

[[sim_down]]
gpu = 7
from_s = 0
to_s = 1
"#
        );
        let config = parse(&text, Path::new("/x"), None).unwrap();
        assert_eq!(config.offer_gpu_count, Some(4));
        assert_eq!(config.hook, ["/bin/sh", "-c", "sleep 5"]);
        assert_eq!(config.policy.windows.len(), 2);
        assert_eq!(config.policy.zone, Zone::Fixed(8 * 3600));
        assert_eq!(
            config.sim_down[1],
            SimFault {
                gpu: 7,
                from_s: 0,
                to_s: 1
            }
        );
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let cases = [
            ("nodes = []", "nodes must list"),
            ("nodes = [\"https://x:1\"]", "plain HTTP"),
            ("party = \"Univ\"", "party"),
            ("host_id = \"GPU 01\"", "host_id"),
            ("gpu_source = \"cuda\"", "unknown GPU source"),
            ("gpu_source = \"sim:0xH100\"", "N must be"),
            (
                "meter_interval_s = 0",
                "meter_interval_s = 0 is out of range",
            ),
            ("meter_interval_s = 7200", "out of range"),
            ("offer_window_s = 700000", "offer_window_s"),
            ("owner_use_above_percent = 101", "owner_use_above_percent"),
            ("hook = [\"\"]", "hook must be"),
            ("gpu_class = \"H 100\"", "gpu_class"),
            ("offer_gpu_count = 0", "offer_gpu_count"),
            ("colour = \"red\"", "unknown field"),
            (
                "[policy]\nwindows = [\"25:00-08:00\"]",
                "invalid policy window",
            ),
            ("[policy]\ntimezone = \"mars\"", "invalid time zone"),
            (
                "[policy]\nutilisation_below_percent = 0",
                "utilisation_below_percent",
            ),
            (
                "[[sim_down]]\ngpu = 8\nfrom_s = 0\nto_s = 1",
                "does not exist",
            ),
            ("[[sim_down]]\ngpu = 0\nfrom_s = 5\nto_s = 1", "empty"),
            ("[[sim_down]]\ngpu = 0\nfrom_s = 5", "missing field"),
            ("nodes = 5", "invalid type"),
        ];
        for (change, expected) in cases {
            // Replace a key of the minimal config, or add a new one.
            let key = change.split([' ', '\n']).next().unwrap_or_default();
            let text: String = if MINIMAL.contains(&format!("\n{key} ")) {
                MINIMAL
                    .lines()
                    .map(|line| {
                        if line.starts_with(&format!("{key} ")) {
                            change
                        } else {
                            line
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                format!("{MINIMAL}\n{change}\n")
            };
            let error = parse(&text, Path::new("."), None).unwrap_err();
            assert!(error.contains(expected), "{change}: {error}");
        }
        // sim_down with a real source is ignored, not an error.
        let text = format!("{MINIMAL}\n[[sim_down]]\ngpu = 0\nfrom_s = 0\nto_s = 1\n");
        assert!(parse(&text, Path::new("."), Some("nvml"))
            .unwrap()
            .sim_down
            .is_empty());
    }
}
