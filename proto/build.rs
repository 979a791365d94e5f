//! Generates the tonic/prost code for `proto/*.proto` at build time.
//!
//! It uses the `protoc` binary shipped in `protoc-bin-vendored`, so building needs no system
//! `protoc`. It must never generate code into the source tree: the output goes to `OUT_DIR`.

use std::io;

fn main() -> io::Result<()> {
    let protoc = protoc_bin_vendored::protoc_bin_path()
        .map_err(|error| io::Error::other(format!("no vendored protoc for this host: {error}")))?;
    // Handing the path to prost's `Config` is the same as setting `PROTOC` for this build, without
    // changing the build script's process environment.
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &["proto/raft.proto"], &["proto"])
}
