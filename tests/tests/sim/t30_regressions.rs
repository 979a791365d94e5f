//! Seeds that once failed, each run again by name (`spec/simulation.md`, "What it has found").

use super::sim;

/// Each seed with the bug it found.
const FOUND: [(&str, &str); 2] = [
    (
        "11",
        "every node had installed a snapshot and dropped its journal: no node held entry 1",
    ),
    (
        "2003277",
        "with the journal fetched after a snapshot, all three nodes still lacked its start: an \
         install deleted the journal a node had kept, which its peers needed",
    ),
];

#[test]
fn seeds_that_found_bugs_pass() {
    for (seed, bug) in FOUND {
        let run = sim(&["--seed", seed]);
        assert!(
            run.success,
            "seed {seed} ({bug}) fails again:\n{}\n{}",
            run.stdout, run.stderr
        );
    }
}
