//! `cbank agent`: the program that runs on an institution's GPU host. It offers the host's
//! idle GPUs to the pool (`offer_capacity`), meters what it offered (`report_meter`), and runs
//! the allocations the ledger grants on it (`report_allocation`), signing everything with the
//! host's agent key (`spec/bank.md` §3, `spec/agent.md`).
//!
//! Map: `config.rs` (the TOML config), `gpu.rs` (discovery, sampling, GPU classes; `nvml.rs`
//! and `sim.rs` are two of its sources), `policy.rs` (when to offer), `meter.rs` (GPU-second
//! arithmetic), `nodes.rs` (the ledger over HTTP), `hooks.rs` (the per-allocation command),
//! `state.rs` (durable local state), `runner.rs` (the loop).
//!
//! The agent never decides what the ledger accepts, and never holds business rules beyond
//! its own metering: it reports, and the ledger checks. It logs one JSON object per line on
//! stdout for every action (so a test or an operator can follow it) and diagnostics on stderr.
//!
//! Start here: [`runner::Runner::tick`].

pub mod config;
pub mod gpu;
pub mod hooks;
pub mod meter;
pub mod nodes;
pub mod nvml;
pub mod policy;
pub mod runner;
pub mod sim;
pub mod state;

use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `cbank agent`: run the agent, or `cbank agent discover`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentCli {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// The agent's config file (TOML; see spec/agent.md). The agent runs until SIGINT or
    /// SIGTERM and prints one JSON line per action on stdout.
    #[arg(long, value_name = "FILE", required = true)]
    pub config: Option<PathBuf>,
    /// Use this GPU source instead of the config's: nvml, nvidia-smi or sim:<N>x<CLASS>.
    #[arg(long, value_name = "SOURCE")]
    pub gpu_source: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Print the GPUs a source finds (index, UUID, name, memory, utilisation, class) as JSON.
    Discover {
        /// nvml (falls back to nvidia-smi), nvidia-smi, or sim:<N>x<CLASS>.
        #[arg(long, value_name = "SOURCE", default_value = "nvml")]
        gpu_source: String,
    },
}

/// Prints one event line on stdout: `{"ts_ns": "…", "event": "…", …fields}`. A closed
/// stdout is ignored (the agent goes on; its state and the ledger record what matters).
pub fn emit(event: &str, fields: serde_json::Value) {
    let mut line = serde_json::Map::new();
    line.insert(
        "ts_ns".to_owned(),
        serde_json::Value::String(runner::now_ns().to_string()),
    );
    line.insert(
        "event".to_owned(),
        serde_json::Value::String(event.to_owned()),
    );
    if let serde_json::Value::Object(fields) = fields {
        line.extend(fields);
    }
    let text = serde_json::Value::Object(line).to_string();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// Runs `cbank agent …`.
pub async fn run(cli: AgentCli) -> anyhow::Result<ExitCode> {
    if let Some(AgentCommand::Discover { gpu_source }) = cli.command {
        return discover(&gpu_source).await;
    }
    // clap requires --config when there is no subcommand.
    let path = cli.config.context("--config FILE is required")?;
    let config = config::load(&path, cli.gpu_source.as_deref()).map_err(anyhow::Error::msg)?;
    // Register the handlers first, so an early signal is not lost.
    let shutdown =
        crate::cli::shutdown_signal().context("cannot install the SIGINT/SIGTERM handlers")?;
    tokio::pin!(shutdown);
    let mut agent = tokio::select! {
        agent = runner::Runner::start(config) => agent?,
        signal = &mut shutdown => {
            emit("stopped", serde_json::json!({"signal": signal}));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let mut ticker = tokio::time::interval(runner::TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => agent.tick(runner::now_ns()).await,
            signal = &mut shutdown => {
                agent.stop(signal);
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

/// `cbank agent discover`: what a GPU source finds, as JSON on stdout.
async fn discover(source: &str) -> anyhow::Result<ExitCode> {
    let spec: gpu::GpuSourceSpec = source.parse().map_err(anyhow::Error::msg)?;
    let source = gpu::GpuSource::open(&spec)
        .await
        .map_err(anyhow::Error::msg)?;
    let gpus = source.discover().await.map_err(anyhow::Error::msg)?;
    let answer = serde_json::json!({
        "requested_source": spec.to_string(),
        "source": source.name(),
        "gpu_count": gpus.len(),
        "gpus": gpus,
    });
    crate::cli::commands::print_json(&answer)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, TopCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<AgentCli, String> {
        let cli = Cli::try_parse_from(std::iter::once("cbank").chain(args.iter().copied()))
            .map_err(|error| error.to_string())?;
        match cli.command {
            TopCommand::Agent(agent) => Ok(agent),
            other => Err(format!("parsed as {other:?}")),
        }
    }

    #[test]
    fn agent_command_lines_parse() {
        let run = parse(&[
            "agent",
            "--config",
            "agent.toml",
            "--gpu-source",
            "sim:8xH100",
        ])
        .unwrap();
        assert_eq!(run.config, Some(PathBuf::from("agent.toml")));
        assert_eq!(run.gpu_source.as_deref(), Some("sim:8xH100"));
        assert!(run.command.is_none());
        let discover = parse(&["agent", "discover"]).unwrap();
        assert!(
            matches!(discover.command, Some(AgentCommand::Discover { ref gpu_source }) if gpu_source == "nvml")
        );
        let discover = parse(&["agent", "discover", "--gpu-source", "nvidia-smi"]).unwrap();
        assert!(
            matches!(discover.command, Some(AgentCommand::Discover { ref gpu_source }) if gpu_source == "nvidia-smi")
        );
        let error = parse(&["agent"]).unwrap_err();
        assert!(error.contains("--config"), "{error}");
    }
}
