//! GPU discovery and sampling: which GPUs a host has, their class, and, at each sample, whether
//! each one is up and how busy its owner keeps it.
//!
//! Three sources (`gpu_source` in the config, `--gpu-source` on the command line):
//! - `nvml`: the NVIDIA Management Library, loaded at run time (`nvml.rs`); where it cannot be
//!   loaded the agent says why and falls back to `nvidia-smi`;
//! - `nvidia-smi`: runs `nvidia-smi --query-gpu=… --format=csv,noheader,nounits` and parses it;
//! - `sim:<N>x<CLASS>`: N simulated GPUs of a class, always up and idle; their scripted
//!   faults are metered from a schedule (`sim.rs`), not sampled.
//!
//! This module never decides what is reported to the ledger: it only observes (`meter.rs`
//! turns observations into GPU-seconds). Bad input (a malformed `nvidia-smi` line, an unknown
//! source) is an error, never a panic.

use serde::Serialize;
use std::time::Duration;

use super::sim::SimSpec;

/// How long one `nvidia-smi` run may take before the sample counts as failed.
pub const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);

/// The `nvidia-smi` query the agent runs; `parse_nvidia_smi` reads its output.
pub const NVIDIA_SMI_ARGS: [&str; 2] = [
    "--query-gpu=index,uuid,name,memory.total,utilization.gpu",
    "--format=csv,noheader,nounits",
];

/// Bytes of `nvidia-smi` output the agent reads: a host has at most 1,024 GPUs of ~120 bytes.
const NVIDIA_SMI_OUTPUT_BYTES_MAX: usize = 1024 * 1024;

/// One GPU as discovered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    /// The driver's index (`nvidia-smi -i`), or the position for simulated GPUs.
    pub index: u32,
    pub uuid: String,
    /// The product name as the driver reports it, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    pub memory_total_mib: u64,
    /// Utilisation at discovery, if the source reports one.
    pub utilisation_percent: Option<u32>,
    /// The ledger GPU class this name maps to (`gpu_class`), if known.
    pub class: Option<String>,
}

/// The state of one GPU at a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuHealth {
    /// Answering; `utilisation_percent` of the last sample period had a kernel running.
    Up { utilisation_percent: u32 },
    /// Not answering (GPU lost, driver error, missing from the list): counts as down.
    Lost { reason: String },
}

/// Where GPU information comes from, as named in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuSourceSpec {
    Nvml,
    NvidiaSmi,
    Sim(SimSpec),
}

impl std::str::FromStr for GpuSourceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<GpuSourceSpec, String> {
        match text.trim() {
            "nvml" => Ok(GpuSourceSpec::Nvml),
            "nvidia-smi" => Ok(GpuSourceSpec::NvidiaSmi),
            other => match other.strip_prefix("sim:") {
                Some(spec) => spec.parse().map(GpuSourceSpec::Sim),
                None => Err(format!(
                    "unknown GPU source {other:?}: use nvml, nvidia-smi or sim:<N>x<CLASS> (e.g. sim:8xH100)"
                )),
            },
        }
    }
}

impl std::fmt::Display for GpuSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuSourceSpec::Nvml => f.write_str("nvml"),
            GpuSourceSpec::NvidiaSmi => f.write_str("nvidia-smi"),
            GpuSourceSpec::Sim(spec) => write!(f, "sim:{}x{}", spec.gpu_count, spec.class),
        }
    }
}

/// An open GPU source.
pub enum GpuSource {
    Nvml(super::nvml::NvmlSource),
    NvidiaSmi,
    Sim(SimSpec),
}

impl GpuSource {
    /// Opens a source. `nvml` that cannot be loaded falls back to `nvidia-smi` with a warning;
    /// if that fails too, the error names both reasons.
    pub async fn open(spec: &GpuSourceSpec) -> Result<GpuSource, String> {
        match spec {
            GpuSourceSpec::Sim(sim) => Ok(GpuSource::Sim(sim.clone())),
            GpuSourceSpec::NvidiaSmi => {
                query_nvidia_smi().await?;
                Ok(GpuSource::NvidiaSmi)
            }
            GpuSourceSpec::Nvml => {
                let opened = tokio::task::spawn_blocking(super::nvml::NvmlSource::open)
                    .await
                    .map_err(|error| format!("NVML initialisation did not finish: {error}"))?;
                match opened {
                    Ok(source) => Ok(GpuSource::Nvml(source)),
                    Err(nvml_error) => {
                        tracing::warn!(
                            "NVML is not usable ({nvml_error}); falling back to nvidia-smi"
                        );
                        match query_nvidia_smi().await {
                            Ok(_) => Ok(GpuSource::NvidiaSmi),
                            Err(smi_error) => Err(format!(
                                "no NVIDIA GPUs can be read on this machine: NVML: {nvml_error}; \
                                 nvidia-smi: {smi_error}. For a simulated host use \
                                 --gpu-source sim:<N>x<CLASS> (e.g. sim:8xH100)"
                            )),
                        }
                    }
                }
            }
        }
    }

    /// The source's name for logs: `nvml`, `nvidia-smi` or `sim:<N>x<CLASS>`.
    pub fn name(&self) -> String {
        match self {
            GpuSource::Nvml(_) => "nvml".to_owned(),
            GpuSource::NvidiaSmi => "nvidia-smi".to_owned(),
            GpuSource::Sim(spec) => GpuSourceSpec::Sim(spec.clone()).to_string(),
        }
    }

    /// Whether the source is simulated (metered from its schedule, not from samples).
    pub fn is_simulated(&self) -> bool {
        matches!(self, GpuSource::Sim(_))
    }

    /// The GPUs, sorted by index.
    pub async fn discover(&self) -> Result<Vec<GpuInfo>, String> {
        let mut gpus = match self {
            GpuSource::Sim(spec) => spec.discover(),
            GpuSource::NvidiaSmi => query_nvidia_smi().await?,
            GpuSource::Nvml(source) => {
                let source = source.clone();
                tokio::task::spawn_blocking(move || source.discover())
                    .await
                    .map_err(|error| format!("NVML discovery did not finish: {error}"))??
            }
        };
        gpus.sort_by_key(|gpu| gpu.index);
        Ok(gpus)
    }

    /// Samples the GPUs `uuids` (in that order): one health per GPU. A GPU that has gone
    /// missing, or a source that fails as a whole, gives `Lost` for the GPUs concerned.
    pub async fn sample(&self, uuids: &[String]) -> Vec<GpuHealth> {
        let lost_all = |reason: String| {
            uuids
                .iter()
                .map(|_| GpuHealth::Lost {
                    reason: reason.clone(),
                })
                .collect()
        };
        match self {
            GpuSource::Sim(_) => uuids
                .iter()
                .map(|_| GpuHealth::Up {
                    utilisation_percent: 0,
                })
                .collect(),
            GpuSource::NvidiaSmi => match query_nvidia_smi().await {
                Ok(gpus) => match_by_uuid(uuids, &gpus),
                Err(error) => lost_all(error),
            },
            GpuSource::Nvml(source) => {
                let source = source.clone();
                let wanted = uuids.to_vec();
                match tokio::task::spawn_blocking(move || source.sample(&wanted)).await {
                    Ok(healths) => healths,
                    Err(error) => lost_all(format!("NVML sampling did not finish: {error}")),
                }
            }
        }
    }
}

/// Healths of `uuids` from a fresh discovery; a GPU no longer listed is lost.
fn match_by_uuid(uuids: &[String], gpus: &[GpuInfo]) -> Vec<GpuHealth> {
    uuids
        .iter()
        .map(|uuid| match gpus.iter().find(|gpu| gpu.uuid == *uuid) {
            Some(GpuInfo {
                utilisation_percent: Some(percent),
                ..
            }) => GpuHealth::Up {
                utilisation_percent: *percent,
            },
            Some(_) => GpuHealth::Lost {
                reason: "utilisation not available".to_owned(),
            },
            None => GpuHealth::Lost {
                reason: format!("{uuid} is no longer listed"),
            },
        })
        .collect()
}

/// Runs the `nvidia-smi` query under a deadline and parses its output.
async fn query_nvidia_smi() -> Result<Vec<GpuInfo>, String> {
    let mut command = tokio::process::Command::new("nvidia-smi");
    command
        .args(NVIDIA_SMI_ARGS)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(NVIDIA_SMI_TIMEOUT, command.output()).await {
        Err(_) => {
            return Err(format!(
                "nvidia-smi did not answer within {} s",
                NVIDIA_SMI_TIMEOUT.as_secs()
            ))
        }
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err("nvidia-smi is not installed (not found on PATH)".to_owned())
        }
        Ok(Err(error)) => return Err(format!("cannot run nvidia-smi: {error}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr[..output.stderr.len().min(500)])
            .trim()
            .to_owned();
        let stdout = String::from_utf8_lossy(&output.stdout[..output.stdout.len().min(500)])
            .trim()
            .to_owned();
        return Err(format!(
            "nvidia-smi failed ({}): {}",
            output.status,
            if stderr.is_empty() { stdout } else { stderr }
        ));
    }
    if output.stdout.len() > NVIDIA_SMI_OUTPUT_BYTES_MAX {
        return Err(format!(
            "nvidia-smi printed {} bytes, more than the {NVIDIA_SMI_OUTPUT_BYTES_MAX} expected",
            output.stdout.len()
        ));
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&output.stdout))
}

/// Parses the output of `nvidia-smi --query-gpu=index,uuid,name,memory.total,utilization.gpu
/// --format=csv,noheader,nounits`: one line per GPU, five comma-separated fields. A field
/// `[N/A]` or `[Not Supported]` for utilisation gives `None`; any other malformed line is an
/// error naming the line.
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<GpuInfo>, String> {
    let mut gpus = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let malformed = |why: &str| format!("nvidia-smi line {}: {why}: {line:?}", number + 1);
        // The name may not contain a comma in practice, but split from both ends to be safe.
        let mut head = line.splitn(3, ',').map(str::trim);
        let index = head.next().ok_or_else(|| malformed("no index"))?;
        let uuid = head.next().ok_or_else(|| malformed("no uuid"))?;
        let rest = head.next().ok_or_else(|| malformed("too few fields"))?;
        let mut tail = rest.rsplitn(3, ',').map(str::trim);
        let utilisation = tail.next().ok_or_else(|| malformed("no utilisation"))?;
        let memory = tail.next().ok_or_else(|| malformed("no memory"))?;
        let name = tail.next().ok_or_else(|| malformed("too few fields"))?;
        let index: u32 = index
            .parse()
            .map_err(|_| malformed("the index is not a number"))?;
        if uuid.is_empty() || name.is_empty() {
            return Err(malformed("empty uuid or name"));
        }
        let memory_total_mib: u64 = memory
            .parse()
            .map_err(|_| malformed("memory.total is not a number of MiB"))?;
        let utilisation_percent = if utilisation.starts_with('[') {
            None
        } else {
            let percent: u32 = utilisation
                .parse()
                .map_err(|_| malformed("utilization.gpu is not a number"))?;
            if percent > 100 {
                return Err(malformed("utilization.gpu is over 100"));
            }
            Some(percent)
        };
        gpus.push(GpuInfo {
            index,
            uuid: uuid.to_owned(),
            name: name.to_owned(),
            memory_total_mib,
            utilisation_percent,
            class: gpu_class(name),
        });
    }
    Ok(gpus)
}

/// Data-centre and workstation GPU models the class mapping recognises by name token.
const KNOWN_MODELS: [&str; 27] = [
    "GB200", "GH200", "B200", "B100", "H200", "H100", "H800", "H20", "A100", "A800", "A40", "A30",
    "A16", "A10G", "A10", "A2", "L40S", "L40", "L20", "L4", "L2", "T4", "V100", "P100", "P40",
    "P4", "K80",
];

/// The ledger GPU class (`GPUH:<class>`) for a product name, or `None` for a name it does not
/// know (the config's `gpu_class` then says what the host is). Data-centre models map to their
/// model (`NVIDIA H100 80GB HBM3` → `H100`, `NVIDIA A100-SXM4-80GB` → `A100`); GeForce RTX
/// cards to `RTX<number>[D|TI|SUPER]` (`NVIDIA GeForce RTX 4090` → `RTX4090`, `… 4090 D` →
/// `RTX4090D`).
/// Memory size and form factor do not change the class.
pub fn gpu_class(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    let tokens: Vec<&str> = upper
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_' || c == ',')
        .filter(|token| !token.is_empty())
        .collect();
    for token in &tokens {
        if let Some(model) = KNOWN_MODELS.iter().find(|model| **model == *token) {
            return Some((*model).to_owned());
        }
    }
    // GeForce / RTX: "RTX 4090", "RTX 4090 D", "RTX4090".
    for (position, token) in tokens.iter().enumerate() {
        let number = if *token == "RTX" {
            tokens.get(position + 1).copied()
        } else {
            token.strip_prefix("RTX")
        };
        let Some(number) =
            number.filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let offset = if *token == "RTX" { 2 } else { 1 };
        let suffix = match tokens.get(position + offset) {
            Some(&suffix @ ("D" | "TI" | "SUPER")) => suffix,
            _ => "",
        };
        return Some(format!("RTX{number}{suffix}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_output_parses() {
        let text = "0, GPU-5b1c8f1e-61b6-5d0a-8d5e-3c1b2a9f0e11, NVIDIA H100 80GB HBM3, 81559, 0\n\
                    1, GPU-77aa0000-0000-0000-0000-000000000001, NVIDIA H100 80GB HBM3, 81559, 97\n\
                    \n\
                    2, GPU-deadbeef, NVIDIA A100-SXM4-80GB, 81920, [N/A]\n";
        let gpus = parse_nvidia_smi(text).unwrap();
        assert_eq!(gpus.len(), 3);
        assert_eq!(
            gpus[0],
            GpuInfo {
                index: 0,
                uuid: "GPU-5b1c8f1e-61b6-5d0a-8d5e-3c1b2a9f0e11".to_owned(),
                name: "NVIDIA H100 80GB HBM3".to_owned(),
                memory_total_mib: 81559,
                utilisation_percent: Some(0),
                class: Some("H100".to_owned()),
            }
        );
        assert_eq!(gpus[1].utilisation_percent, Some(97));
        assert_eq!(gpus[2].utilisation_percent, None);
        assert_eq!(gpus[2].class.as_deref(), Some("A100"));
        assert_eq!(parse_nvidia_smi("").unwrap(), vec![]);
    }

    #[test]
    fn malformed_nvidia_smi_lines_are_errors_not_panics() {
        for (text, expected) in [
            ("x, GPU-1, NVIDIA H100, 81559, 0", "index is not a number"),
            ("0, GPU-1, NVIDIA H100, lots, 0", "memory.total"),
            ("0, GPU-1, NVIDIA H100, 81559, busy", "utilization.gpu"),
            ("0, GPU-1, NVIDIA H100, 81559, 101", "over 100"),
            ("0, GPU-1", "too few fields"),
            ("0, GPU-1, 81559, 0", "too few fields"),
            ("0, , NVIDIA H100, 81559, 0", "empty uuid"),
            (
                "NVIDIA-SMI has failed because it couldn't communicate",
                "no uuid",
            ),
        ] {
            let error = parse_nvidia_smi(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn product_names_map_to_classes() {
        for (name, class) in [
            ("NVIDIA H100 80GB HBM3", Some("H100")),
            ("NVIDIA H100 PCIe", Some("H100")),
            ("NVIDIA H100 NVL", Some("H100")),
            ("NVIDIA H800", Some("H800")),
            ("NVIDIA H20", Some("H20")),
            ("NVIDIA H200", Some("H200")),
            ("NVIDIA A100-SXM4-80GB", Some("A100")),
            ("NVIDIA A100-PCIE-40GB", Some("A100")),
            ("NVIDIA A800 80GB PCIe", Some("A800")),
            ("NVIDIA A10G", Some("A10G")),
            ("NVIDIA A10", Some("A10")),
            ("NVIDIA L40S", Some("L40S")),
            ("NVIDIA L40", Some("L40")),
            ("NVIDIA L4", Some("L4")),
            ("Tesla V100-SXM2-32GB", Some("V100")),
            ("Tesla T4", Some("T4")),
            ("NVIDIA GeForce RTX 4090", Some("RTX4090")),
            ("NVIDIA GeForce RTX 4090 D", Some("RTX4090D")),
            ("NVIDIA GeForce RTX 3090 Ti", Some("RTX3090TI")),
            ("NVIDIA B200", Some("B200")),
            ("NVIDIA GB200", Some("GB200")),
            ("Simulated H100", Some("H100")),
            ("NVIDIA RTX A6000", None),
            ("Quadro", None),
            ("", None),
        ] {
            assert_eq!(gpu_class(name).as_deref(), class, "{name}");
        }
    }

    #[test]
    fn every_class_is_a_valid_asset_name() {
        for model in KNOWN_MODELS {
            let code = format!("GPUH:{model}");
            assert!(code.parse::<ledger::Asset>().is_ok(), "{code}");
        }
    }

    #[test]
    fn sources_parse() {
        assert_eq!("nvml".parse::<GpuSourceSpec>(), Ok(GpuSourceSpec::Nvml));
        assert_eq!(
            " nvidia-smi ".parse::<GpuSourceSpec>(),
            Ok(GpuSourceSpec::NvidiaSmi)
        );
        let sim: GpuSourceSpec = "sim:8xH100".parse().unwrap();
        assert_eq!(sim.to_string(), "sim:8xH100");
        for bad in [
            "",
            "cuda",
            "sim:",
            "sim:0xH100",
            "sim:8x",
            "sim:8",
            "sim:ax H100",
        ] {
            assert!(bad.parse::<GpuSourceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn samples_match_gpus_by_uuid() {
        let gpus =
            parse_nvidia_smi("0, GPU-a, NVIDIA H100, 1, 40\n1, GPU-b, NVIDIA H100, 1, [N/A]")
                .unwrap();
        let healths = match_by_uuid(
            &["GPU-b".to_owned(), "GPU-a".to_owned(), "GPU-c".to_owned()],
            &gpus,
        );
        assert!(matches!(healths[0], GpuHealth::Lost { .. }));
        assert_eq!(
            healths[1],
            GpuHealth::Up {
                utilisation_percent: 40
            }
        );
        assert!(matches!(&healths[2], GpuHealth::Lost { reason } if reason.contains("GPU-c")));
    }
}
