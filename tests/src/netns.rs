//! Real network partitions: each node in its own network namespace, on a bridge, with its link
//! cut or throttled in the kernel (`BRIEF.md` §5: at least one partition test over real
//! sockets, beside the faults the node's own network wrapper injects).
//!
//! [`Netns::create`] makes a bridge in the test's namespace with address `10.R.N.254/24` and,
//! for each node, a namespace with a veth pair: one end on the bridge, the other in the
//! namespace with address `10.R.N.id/24`. Nodes run under `ip netns exec`, so the test (in the
//! root namespace) reaches every node over the bridge and the nodes reach each other only
//! through it. [`Netns::cut`] sets both ends of a node's link down: every packet to and from it
//! is dropped by the kernel, Raft and HTTP alike, exactly like an unplugged cable (open TCP
//! connections stay open and resume when the link comes back). [`Netns::throttle`] puts a token
//! bucket (`tc tbf`) on both ends, a slow link. [`Netns::heal`] undoes both. `tc netem` (delay,
//! loss) would be the finer tool, but this machine's kernel has no `sch_netem` ("Specified
//! qdisc kind is unknown"), while `tbf` and link state are always there. Dropping a `Netns`
//! deletes the namespaces and the bridge.
//!
//! Needs `ip` and `tc` (iproute2) and CAP_NET_ADMIN, as root in CI; it panics with the command's
//! output otherwise: a partition test that cannot partition must fail, not pass.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

/// A distinct `10.R.N.0/24` per `Netns` in this process (N), per process (R).
static NEXT_NET: AtomicU8 = AtomicU8::new(1);

/// Namespaces, veths and a bridge for `nodes` nodes.
pub struct Netns {
    tag: String,
    subnet: [u8; 3],
    nodes: u64,
}

fn run(args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error} (is iproute2 installed?)", args[0]));
    assert!(
        output.status.success(),
        "{} failed ({}): {}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Netns {
    /// Creates the bridge and one namespace per node (ids `1..=nodes`).
    pub fn create(nodes: u64) -> Netns {
        assert!((1..=200).contains(&nodes), "1 to 200 nodes");
        let pid = std::process::id();
        let net = NEXT_NET.fetch_add(1, Ordering::Relaxed);
        // Interface names are at most 15 bytes: "cb" + 5 digits of the pid + net + role + id.
        let tag = format!("cb{:05}{net:02x}", pid % 100_000);
        let netns = Netns {
            tag,
            subnet: [10, 100 + (pid % 100) as u8, net],
            nodes,
        };
        let bridge = netns.bridge();
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        let host = format!("{}/24", netns.host_addr());
        run(&["ip", "addr", "add", &host, "dev", &bridge]);
        run(&["ip", "link", "set", &bridge, "up"]);
        for id in 1..=nodes {
            let (ns, outer, inner) = (netns.ns(id), netns.outer(id), netns.inner(id));
            run(&["ip", "netns", "add", &ns]);
            run(&[
                "ip", "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            run(&["ip", "link", "set", &outer, "master", &bridge]);
            run(&["ip", "link", "set", &outer, "up"]);
            run(&["ip", "link", "set", &inner, "netns", &ns]);
            let addr = format!("{}/24", netns.addr(id));
            run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", &inner]);
            run(&["ip", "-n", &ns, "link", "set", &inner, "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        netns
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn ns(&self, id: u64) -> String {
        format!("{}n{id}", self.tag)
    }

    /// The bridge end of node `id`'s link.
    fn outer(&self, id: u64) -> String {
        format!("{}o{id}", self.tag)
    }

    /// The namespace end of node `id`'s link.
    fn inner(&self, id: u64) -> String {
        format!("{}i{id}", self.tag)
    }

    /// The test's own address on the bridge.
    pub fn host_addr(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 254)
    }

    /// Node `id`'s address.
    pub fn addr(&self, id: u64) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, u8::try_from(id).expect("at most 200 nodes"))
    }

    /// The command prefix that runs a program in node `id`'s namespace.
    pub fn launcher(&self, id: u64) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.ns(id)]
    }

    /// Drops every packet to and from node `id`: both ends of its link go down.
    pub fn cut(&self, id: u64) {
        self.link(id, "down");
    }

    /// Limits node `id`'s link to `kbit` kilobits per second each way (`tc tbf`).
    pub fn throttle(&self, id: u64, kbit: u32) {
        let rate = format!("{kbit}kbit");
        let (ns, outer, inner) = (self.ns(id), self.outer(id), self.inner(id));
        let tbf = [
            "root", "tbf", "rate", &rate, "burst", "32kbit", "latency", "400ms",
        ];
        let mut host = vec!["tc", "qdisc", "replace", "dev", &outer];
        host.extend_from_slice(&tbf);
        run(&host);
        let mut inside = vec![
            "ip", "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", &inner,
        ];
        inside.extend_from_slice(&tbf);
        run(&inside);
    }

    /// Undoes [`Netns::cut`] and [`Netns::throttle`] on node `id`'s link.
    pub fn heal(&self, id: u64) {
        self.link(id, "up");
        let (ns, outer, inner) = (self.ns(id), self.outer(id), self.inner(id));
        // No qdisc to delete is fine: only a throttle adds one.
        let _ = Command::new("tc")
            .args(["qdisc", "del", "dev", &outer, "root"])
            .output();
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &ns, "tc", "qdisc", "del", "dev", &inner, "root",
            ])
            .output();
    }

    fn link(&self, id: u64, state: &str) {
        let (ns, outer, inner) = (self.ns(id), self.outer(id), self.inner(id));
        run(&["ip", "link", "set", &outer, state]);
        run(&["ip", "-n", &ns, "link", "set", &inner, state]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Best effort: deleting a namespace removes its veth end, which removes the pair.
        for id in 1..=self.nodes {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(id)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
    }
}
