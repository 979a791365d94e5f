//! The `cbank` binary's entry point.

fn main() {}
