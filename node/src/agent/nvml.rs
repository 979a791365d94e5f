//! GPU discovery and sampling through NVML (the NVIDIA Management Library), via the
//! `nvml-wrapper` crate.
//!
//! The library (`libnvidia-ml.so.1`, installed with the NVIDIA driver) is loaded with dlopen
//! when the agent opens the source, never linked: the `cbank` binary builds and runs on
//! machines without a driver, where `open` returns an error that says so and `gpu.rs` falls back.
//! Every call here blocks (NVML talks to the kernel driver), so callers run them on tokio's
//! blocking pool. This module never decides what a sample means for metering.

use super::gpu::{gpu_class, GpuHealth, GpuInfo};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use std::sync::Arc;

/// An initialised NVML, shared between the agent's tasks.
#[derive(Clone)]
pub struct NvmlSource {
    nvml: Arc<Nvml>,
}

/// A message that says what to do about an NVML error.
fn explain(error: &NvmlError) -> String {
    match error {
        NvmlError::LibloadingError(inner) => {
            format!("libnvidia-ml.so.1 cannot be loaded ({inner}): is the NVIDIA driver installed?")
        }
        NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".to_owned(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_owned(),
        NvmlError::LibraryNotFound => "NVML could not find its shared library".to_owned(),
        NvmlError::GpuLost => "the GPU has fallen off the bus or is otherwise lost".to_owned(),
        other => other.to_string(),
    }
}

impl NvmlSource {
    /// Loads the library and initialises NVML.
    pub fn open() -> Result<NvmlSource, String> {
        let nvml = Nvml::init().map_err(|error| explain(&error))?;
        Ok(NvmlSource {
            nvml: Arc::new(nvml),
        })
    }

    /// Every GPU NVML sees. A GPU that answers its index but not the rest is still listed,
    /// with what could be read, so that `cbank agent discover` shows it.
    pub fn discover(&self) -> Result<Vec<GpuInfo>, String> {
        let count = self
            .nvml
            .device_count()
            .map_err(|error| format!("NVML cannot count the GPUs: {}", explain(&error)))?;
        let mut gpus = Vec::new();
        for position in 0..count {
            let device = self
                .nvml
                .device_by_index(position)
                .map_err(|error| format!("NVML cannot open GPU {position}: {}", explain(&error)))?;
            let index = device.index().unwrap_or(position);
            let uuid = device.uuid().map_err(|error| {
                format!("NVML cannot read GPU {index}'s UUID: {}", explain(&error))
            })?;
            let name = device.name().unwrap_or_else(|_| "unknown".to_owned());
            let memory_total_mib = device
                .memory_info()
                .map(|memory| memory.total / (1024 * 1024))
                .unwrap_or(0);
            let utilisation_percent = device.utilization_rates().ok().map(|rates| rates.gpu);
            gpus.push(GpuInfo {
                index,
                class: gpu_class(&name),
                uuid,
                name,
                memory_total_mib,
                utilisation_percent,
            });
        }
        Ok(gpus)
    }

    /// The health of each GPU in `uuids`, found by UUID (indices may change across reboots).
    pub fn sample(&self, uuids: &[String]) -> Vec<GpuHealth> {
        uuids
            .iter()
            .map(|uuid| {
                let device = match self.nvml.device_by_uuid(uuid.as_str()) {
                    Ok(device) => device,
                    Err(error) => {
                        return GpuHealth::Lost {
                            reason: format!("{uuid}: {}", explain(&error)),
                        }
                    }
                };
                match device.utilization_rates() {
                    Ok(rates) => GpuHealth::Up {
                        utilisation_percent: rates.gpu.min(100),
                    },
                    Err(error) => GpuHealth::Lost {
                        reason: format!("{uuid}: {}", explain(&error)),
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_nvml_without_a_driver_is_an_error_that_says_so() {
        // On a machine with a driver this opens; without one, the error must explain itself.
        match NvmlSource::open() {
            Ok(source) => {
                let gpus = source.discover().unwrap();
                let uuids: Vec<String> = gpus.iter().map(|gpu| gpu.uuid.clone()).collect();
                assert_eq!(source.sample(&uuids).len(), gpus.len());
            }
            Err(message) => assert!(
                message.contains("NVIDIA") || message.contains("NVML"),
                "{message}"
            ),
        }
    }
}
