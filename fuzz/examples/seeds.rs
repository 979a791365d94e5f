//! Writes the seed inputs of every target (or of the targets named as arguments) into
//! `fuzz/corpus/<target>/seed-<name>`: `cargo run -p fuzz --example seeds [TARGET...]`.

use std::path::Path;

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in fuzz::TARGETS {
        if !names.is_empty() && !names.iter().any(|name| name == target.name) {
            continue;
        }
        let dir = corpus.join(target.name);
        std::fs::create_dir_all(&dir).expect("create the corpus folder");
        let seeds = fuzz::seeds::seeds(target.name);
        for (name, bytes) in &seeds {
            (target.run)(bytes);
            std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
        }
        println!(
            "{}: {} seeds in {}",
            target.name,
            seeds.len(),
            dir.display()
        );
    }
}
