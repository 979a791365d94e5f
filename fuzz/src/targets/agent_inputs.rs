//! What `cbank agent` and the CLI read that someone else wrote: the output of `nvidia-smi`, the
//! agent's TOML config file, a key file, and the strings of `--gpu-source`, policy windows and
//! time zones.
//!
//! The first byte picks the parser; the rest is text (invalid UTF-8 is read lossily, as the
//! agent reads `nvidia-smi`). Checks: nothing panics; `nvidia-smi` output gives at most one GPU
//! per non-empty line, each with a non-empty uuid and name and a utilisation of at most 100%;
//! a key file that parses holds a key whose public half is the file's; a config that parses
//! names 1 or more nodes.

use node::agent::gpu::{parse_nvidia_smi, GpuSourceSpec};
use node::agent::policy::{Window, Zone};
use node::agent::sim::SimSpec;
use std::path::Path;

pub fn run(data: &[u8]) {
    let Some((selector, bytes)) = crate::select(data) else {
        return;
    };
    let text = String::from_utf8_lossy(bytes);
    match selector % 6 {
        0 => nvidia_smi(&text),
        1 => {
            if let Ok(config) = node::agent::config::parse(&text, Path::new("/base"), None) {
                assert!(!config.nodes.is_empty());
            }
        }
        2 => {
            let _ = node::cli::keys::parse_key_file(&text);
        }
        3 => {
            let _ = text.parse::<GpuSourceSpec>();
        }
        4 => {
            let _ = text.parse::<SimSpec>();
        }
        _ => {
            let _ = text.parse::<Window>();
            let _ = text.parse::<Zone>();
        }
    }
}

fn nvidia_smi(text: &str) {
    let Ok(gpus) = parse_nvidia_smi(text) else {
        return;
    };
    let lines = text.lines().filter(|line| !line.trim().is_empty()).count();
    assert!(gpus.len() <= lines);
    for gpu in gpus {
        assert!(!gpu.uuid.is_empty() && !gpu.name.is_empty());
        assert!(gpu.utilisation_percent.is_none_or(|percent| percent <= 100));
    }
}
