//! A seed replays exactly: the same operations, times, answers and final heads.

use super::sim;

fn digest(seed: &str) -> String {
    let run = sim(&["--seed", seed]);
    assert!(run.success, "seed {seed}:\n{}\n{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|line| line.starts_with(&format!("seed {seed} passed")))
        .unwrap_or_else(|| panic!("no verdict for seed {seed}:\n{}", run.stdout))
        .to_owned();
    let digest = line
        .split("digest ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no digest in {line:?}"));
    digest.to_owned()
}

#[test]
fn the_same_seed_gives_the_same_history() {
    let first = digest("7");
    assert_eq!(first.len(), 16, "{first}");
    assert_eq!(digest("7"), first);
    assert_ne!(digest("8"), first);
}
