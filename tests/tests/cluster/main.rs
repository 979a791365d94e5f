//! Test area `cluster`: real `cbank` processes over loopback, replicating and serving writes.
//!
//! Run with `cargo test --workspace --test cluster`.

mod t10_writes_through_every_node;
