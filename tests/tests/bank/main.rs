//! Test area `bank`: the compute bank end to end, against a 3-node cluster of real `cbank`
//! processes and a real `cbank agent` process with the simulated GPU source.
//!
//! A university's agent offers 8 H100 and meters them; an SME draws 4 GPU-hours, which land on
//! the university's host and run its hook; every balance, offer total and statement line is
//! compared with numbers computed by hand from the scripted downtime and the times the ledger
//! recorded (t10). Killing the agent and the leader mid-window loses and double-counts no
//! GPU-second (t20). Bad meter reports are rejected with their own reason codes and move nothing
//! (t30).
//!
//! Run with `cargo test --workspace --test bank`.

mod fixture;
mod ledger_reads;
mod metering;

mod t10_offer_meter_withdraw_and_settle;
mod t20_agent_and_leader_killed_mid_window;
mod t30_bad_meter_reports;
