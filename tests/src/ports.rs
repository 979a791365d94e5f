//! Free loopback ports for test nodes.
//!
//! A node keeps its ports for the whole test, across kills and restarts, so its ports must not
//! be taken by anything else while it is down. Ports are therefore drawn below Linux's default
//! ephemeral range (32768–60999), where outgoing connections never land, from a window chosen by
//! the process id (so two test processes rarely probe the same ports), and each is checked free
//! by binding it. A port is handed out at most once per process.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::{Mutex, PoisonError};

/// Lowest port handed out: above the well-known and most registered service ports.
const PORT_MIN: u16 = 20_000;

/// One past the highest port handed out: the start of the kernel's ephemeral range.
const PORT_END: u16 = 32_768;

/// Ports handed out by this process so far.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// `count` distinct loopback ports that were free when this ran. Panics if none are left.
pub fn free_ports(count: usize) -> Vec<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let span = u32::from(PORT_END - PORT_MIN);
    let offset = (std::process::id().wrapping_mul(7_919)) % span;
    let mut ports = Vec::with_capacity(count);
    // Hold every probe listener until all are chosen, so one call never returns a port twice.
    let mut listeners = Vec::with_capacity(count);
    for step in 0..span {
        if ports.len() == count {
            break;
        }
        let port = PORT_MIN + u16::try_from((offset + step) % span).expect("below PORT_END");
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
            listeners.push(listener);
            handed_out.insert(port);
            ports.push(port);
        }
    }
    assert_eq!(
        ports.len(),
        count,
        "no {count} free loopback ports in {PORT_MIN}..{PORT_END}"
    );
    ports
}
