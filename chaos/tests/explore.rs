//! `ruckus explore`: for a bounded time, fresh seeds across scenarios; a
//! known-bad scenario's violation is found and saved with its repro,
//! picture and shrunk file; a failing seed of a scenario that must hold is
//! saved too; and a second exploration never repeats a seed.

use std::path::PathBuf;
use std::time::Duration;

use ruckus_chaos::check::Invariant;
use ruckus_chaos::explore::{explore, ExploreOptions, FIRST_SEED};
use ruckus_chaos::scenario::Scenario;

fn load(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn explore_finds_saves_and_never_repeats_a_seed() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("explore");
    let _ = std::fs::remove_dir_all(&out);
    let known_bad = load("known_bad_fatal_skip");
    // The same consumer in a file that expects nothing broken: its seeds
    // fail.
    let mut failing = load("known_bad_fatal_skip");
    failing.name = "fatal_skip_must_hold".into();
    failing.expect.violation = None;
    failing.expect.in_every_seed = false;
    let scenarios = [failing, known_bad];
    let mut opts = ExploreOptions::new(&out);
    opts.duration = Duration::from_secs(2);
    opts.threads = 2;
    opts.shrink_budget = Duration::from_secs(20);
    opts.batch = 1;

    let first = explore(&scenarios, &opts).expect("explores");
    assert!(first.seeds_run >= 2);
    let caught: Vec<_> = first.findings.iter().filter(|f| f.known_bad).collect();
    assert_eq!(
        caught.len(),
        1,
        "the known-bad scenario's first catch: {:?}",
        first.findings
    );
    let c = caught[0];
    assert_eq!(c.scenario, "known_bad_fatal_skip");
    assert!(c.seed >= FIRST_SEED);
    assert!(c.invariants.contains(&Invariant::ZeroLoss));
    let dir = PathBuf::from(&c.dir);
    for file in ["repro.txt", "picture.html", "shrunk.toml"] {
        assert!(dir.join(file).is_file(), "{} has no {file}", c.dir);
    }
    let repro = std::fs::read_to_string(dir.join("repro.txt")).expect("readable");
    assert!(
        repro.contains(&format!("RUCKUS_SEED={}", c.seed)),
        "{repro}"
    );
    let shrunk = Scenario::load(&dir.join("shrunk.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shrunk.seeds.first, c.seed);
    assert!(shrunk.workload.messages < 2000);
    // The scenario that must hold failed, and its seed was saved too.
    let failed: Vec<_> = first.failures().collect();
    assert_eq!(failed.len(), 1, "{:?}", first.findings);
    assert_eq!(failed[0].scenario, "fatal_skip_must_hold");
    assert!(PathBuf::from(&failed[0].dir).join("repro.txt").is_file());

    // A second exploration continues where the first stopped.
    opts.shrink_budget = Duration::from_secs(1);
    let second = explore(&scenarios, &opts).expect("explores");
    for (sc, ranges) in &second.ranges {
        for &(a, b) in ranges {
            for &(x, y) in first.ranges.get(sc).into_iter().flatten() {
                assert!(b <= x || y <= a, "{sc}: {a}..{b} overlaps {x}..{y}");
            }
        }
    }
    let state = std::fs::read_to_string(out.join("state.json")).expect("state");
    assert!(state.contains("known_bad_fatal_skip"), "{state}");
    // Findings accumulate across explorations.
    let all: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(out.join("findings.json")).expect("findings"),
    )
    .expect("json");
    assert_eq!(all.len(), first.findings.len() + second.findings.len());
}
