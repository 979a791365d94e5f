//! The simulated GPU source (`sim:<N>x<CLASS>`) and its scripted faults.
//!
//! Simulated GPUs are always up and idle when sampled. Their downtime is a schedule,
//! `sim_down = [{gpu = 0, from_s = 10, to_s = 20}]`, in whole seconds **from the start of each
//! offer window**: GPU 0 is down during `[start + 10 s, start + 20 s)` of every window. Because
//! the schedule is anchored to the window and not to the agent's start, a restarted agent
//! meters exactly what an agent that never stopped would have: no GPU-second is lost or
//! counted twice. This module is pure arithmetic; it never reads a clock.

use super::gpu::GpuInfo;
use super::meter::Span;
use serde::{Deserialize, Serialize};

/// Simulated GPUs a host may have (the ledger's `HOST_GPUS_MAX`).
pub const SIM_GPUS_MAX: u32 = ledger::limits::HOST_GPUS_MAX;

/// Scripted faults a config may list; each is one span of one GPU.
pub const SIM_FAULTS_MAX: usize = 10_000;

/// `<N>x<CLASS>`: N simulated GPUs of one class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSpec {
    pub gpu_count: u32,
    pub class: String,
}

impl std::str::FromStr for SimSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<SimSpec, String> {
        let usage = || {
            format!("invalid simulated source {text:?}: expected sim:<N>x<CLASS>, e.g. sim:8xH100")
        };
        let (count, class) = text.split_once('x').ok_or_else(usage)?;
        let gpu_count: u32 = count.trim().parse().map_err(|_| usage())?;
        if gpu_count == 0 || gpu_count > SIM_GPUS_MAX {
            return Err(format!("{}: N must be 1 to {SIM_GPUS_MAX}", usage()));
        }
        let class = class.trim();
        if format!("GPUH:{class}").parse::<ledger::Asset>().is_err() {
            return Err(format!("{}: {class:?} is not a GPU class name", usage()));
        }
        Ok(SimSpec {
            gpu_count,
            class: class.to_owned(),
        })
    }
}

impl SimSpec {
    /// The simulated GPUs: indices 0 to N-1, UUIDs `SIM-GPU-<i>`.
    pub fn discover(&self) -> Vec<GpuInfo> {
        (0..self.gpu_count)
            .map(|index| GpuInfo {
                index,
                uuid: format!("SIM-GPU-{index}"),
                name: format!("Simulated {}", self.class),
                memory_total_mib: 81_559,
                utilisation_percent: Some(0),
                class: Some(self.class.clone()),
            })
            .collect()
    }
}

/// One scripted fault: GPU `gpu` (its position among the host's GPUs, from 0) is down during
/// `[from_s, to_s)` seconds after the start of every offer window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFault {
    pub gpu: u32,
    pub from_s: u64,
    pub to_s: u64,
}

/// Checks a fault list against the number of simulated GPUs.
pub fn check_faults(faults: &[SimFault], gpu_count: u32) -> Result<(), String> {
    if faults.len() > SIM_FAULTS_MAX {
        return Err(format!(
            "sim_down lists {} faults; at most {SIM_FAULTS_MAX}",
            faults.len()
        ));
    }
    for fault in faults {
        if fault.gpu >= gpu_count {
            return Err(format!(
                "sim_down: gpu {} does not exist (the simulated host has GPUs 0 to {})",
                fault.gpu,
                gpu_count.saturating_sub(1)
            ));
        }
        if fault.to_s <= fault.from_s {
            return Err(format!(
                "sim_down: {{gpu = {}, from_s = {}, to_s = {}}} is empty: to_s must be after from_s",
                fault.gpu, fault.from_s, fault.to_s
            ));
        }
        if fault.to_s > i64::MAX as u64 / 2 {
            return Err(format!("sim_down: to_s {} is too large", fault.to_s));
        }
    }
    Ok(())
}

/// The down spans of GPU `gpu`, in seconds from the window start (`meter.rs` grid).
pub fn down_spans(faults: &[SimFault], gpu: u32) -> Vec<Span> {
    faults
        .iter()
        .filter(|fault| fault.gpu == gpu)
        // `check_faults` bounds the values well inside i64.
        .map(|fault| (fault.from_s as i64, fault.to_s as i64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_explain() {
        assert_eq!(
            "8xH100".parse::<SimSpec>(),
            Ok(SimSpec {
                gpu_count: 8,
                class: "H100".to_owned()
            })
        );
        assert_eq!("1xRTX4090".parse::<SimSpec>().unwrap().gpu_count, 1);
        for bad in [
            "",
            "8",
            "x",
            "0xH100",
            "8x",
            "8xH 100",
            "-1xH100",
            "2000xH100",
            "8xH100:",
        ] {
            assert!(bad.parse::<SimSpec>().is_err(), "{bad}");
        }
        let gpus = "3xA100".parse::<SimSpec>().unwrap().discover();
        assert_eq!(gpus.len(), 3);
        assert_eq!(gpus[2].uuid, "SIM-GPU-2");
        assert_eq!(gpus[2].class.as_deref(), Some("A100"));
    }

    #[test]
    fn a_schedule_meters_the_same_per_interval_whatever_the_restarts() {
        use crate::agent::meter::{count, GpuTimeline};
        // 4 GPUs; GPU 0 down [10, 20), GPU 1 down [15, 25) and [38, 50); GPU 2 busy [5, 30)
        // under an allocation and down [20, 22) during it.
        let faults = [
            SimFault {
                gpu: 0,
                from_s: 10,
                to_s: 20,
            },
            SimFault {
                gpu: 1,
                from_s: 15,
                to_s: 25,
            },
            SimFault {
                gpu: 1,
                from_s: 38,
                to_s: 50,
            },
            SimFault {
                gpu: 2,
                from_s: 20,
                to_s: 22,
            },
        ];
        let timelines: Vec<GpuTimeline> = (0..4)
            .map(|gpu| GpuTimeline {
                down: down_spans(&faults, gpu),
                busy: if gpu == 2 { vec![(5, 30)] } else { vec![] },
            })
            .collect();
        // Per 10-second interval of a 40-second window: (available, busy, down).
        let expected = [(35, 5, 0), (15, 10, 15), (25, 8, 7), (38, 0, 2)];
        for (interval, (available, busy, down)) in expected.into_iter().enumerate() {
            let from = interval as i64 * 10;
            let counts = count(&timelines, from, from + 10);
            assert_eq!(
                (counts.available_gpu_s, counts.busy_gpu_s, counts.down_gpu_s),
                (available, busy, down),
                "[{from}, {})",
                from + 10
            );
            assert_eq!(counts.total_gpu_s(), 4 * 10);
        }
        // An agent that stopped at 13 and came back at 27 reports [10, 20) and [20, 30) as one
        // catch-up report: the same GPU-seconds, nothing lost, nothing counted twice.
        let catch_up = count(&timelines, 10, 30);
        assert_eq!(
            (
                catch_up.available_gpu_s,
                catch_up.busy_gpu_s,
                catch_up.down_gpu_s
            ),
            (15 + 25, 10 + 8, 15 + 7)
        );
    }

    #[test]
    fn faults_are_checked() {
        let fault = |gpu, from_s, to_s| SimFault { gpu, from_s, to_s };
        assert!(check_faults(&[fault(0, 10, 20), fault(7, 0, 1)], 8).is_ok());
        assert!(check_faults(&[fault(8, 10, 20)], 8)
            .unwrap_err()
            .contains("does not exist"));
        assert!(check_faults(&[fault(0, 20, 20)], 8)
            .unwrap_err()
            .contains("empty"));
        assert!(check_faults(&[fault(0, 0, u64::MAX)], 8).is_err());
        assert_eq!(
            down_spans(&[fault(0, 10, 20), fault(1, 0, 5), fault(0, 30, 31)], 0),
            vec![(10, 20), (30, 31)]
        );
    }
}
