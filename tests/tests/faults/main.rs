//! Test area `faults`: real `cbank` processes under kill -9, isolation (through the node's
//! fault switch, and in the kernel with network namespaces), wiped disks and a
//! whole-cluster crash. After each fault, nothing acknowledged is lost, nothing is applied
//! twice, and every node converges to the same journal head and state hash.
//!
//! Run with `cargo test --workspace --test faults`.

mod t10_leader_killed_under_load;
mod t20_follower_isolated_and_healed;
mod t30_wiped_node_rejoins_by_snapshot;
mod t40_acknowledged_writes_survive_a_full_crash;
mod t50_real_partition_in_network_namespaces;
