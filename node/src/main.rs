//! The `cbank` binary's entry point: parse the command line, set up logging, run the command.
//!
//! Everything else lives in `node::cli`; this file only turns an error into a message on
//! stderr and a non-zero exit status.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = node::cli::Cli::parse();
    node::cli::init_tracing(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(node::cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
