//! The shrinker: every bundled known-bad scenario shrinks to a strictly
//! smaller file that still breaks the same invariant on its seed; a
//! scenario whose seed does not fail is refused with a clear message.

// What each shrink reduced is printed for the record (nextest shows it).
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Duration;

use ruckus_chaos::runner;
use ruckus_chaos::scenario::Scenario;
use ruckus_chaos::shrink::{self, ShrinkError, Size};

fn load(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn run(sc: &Scenario, seed: u64) -> Result<ruckus_chaos::run::RunOutput, String> {
    runner::run_caught(sc, seed).map_err(|p| p.to_string())
}

fn shrinks_to_a_smaller_failure(name: &str) {
    let sc = load(name);
    let expected = sc.expect.violation.expect("a known-bad scenario");
    // The first of its CI seeds that finds the violation.
    let seed = (sc.seeds.first..sc.seeds.first + sc.seeds.ci)
        .find(|&s| run(&sc, s).is_ok_and(|o| o.violations.iter().any(|v| v.invariant == expected)))
        .unwrap_or_else(|| panic!("{name}: no CI seed finds {expected}"));
    let opts = shrink::Options {
        budget: Duration::from_secs(90),
        ..shrink::Options::default()
    };
    let shrunk = shrink::shrink(&sc, seed, &opts, run).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shrunk.fingerprint.invariant, expected, "{shrunk}");
    assert!(
        shrunk.after.strictly_smaller_than(&shrunk.before),
        "{name}: {:?} is not smaller than {:?}",
        shrunk.after,
        shrunk.before
    );
    assert!(
        shrunk.after.messages < shrunk.before.messages,
        "{name}: messages not reduced: {shrunk}"
    );

    // The file it writes is a valid scenario ...
    let back = Scenario::parse("shrunk.toml", &shrunk.text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Size::of(&back, seed), shrunk.after);
    assert_eq!((back.seeds.first, back.seeds.ci), (seed, 1));
    assert!(
        back.nemesis.is_none(),
        "the nemesis's draws are explicit faults"
    );
    // ... that fails the same way on its one seed, which for a known-bad
    // scenario means its expectation (the violation) is met.
    let out = run(&back, seed).expect("runs");
    assert!(shrunk.fingerprint.matches(&out), "{:?}", out.violations);
    assert!(back.expect.judge(&out.violations, false).is_ok());
    eprintln!("{shrunk}");
}

#[test]
fn known_bad_auto_commit_shrinks() {
    shrinks_to_a_smaller_failure("known_bad_auto_commit");
}

#[test]
fn known_bad_async_commit_reorder_shrinks() {
    shrinks_to_a_smaller_failure("known_bad_async_commit_reorder");
}

#[test]
fn known_bad_dead_letter_skip_shrinks() {
    shrinks_to_a_smaller_failure("known_bad_dead_letter_skip");
}

#[test]
fn known_bad_fatal_skip_shrinks() {
    shrinks_to_a_smaller_failure("known_bad_fatal_skip");
}

#[test]
fn every_bundled_known_bad_scenario_has_a_shrink_test() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let this = include_str!("shrink.rs");
    for f in runner::discover(&dir).expect("readable") {
        let sc = Scenario::load(&f).expect("valid");
        if sc.expect.violation.is_some() && sc.runs_in_simulation() {
            assert!(
                this.contains(&format!("fn {}_shrinks()", sc.name)),
                "{} has no shrink test here",
                sc.name
            );
        }
    }
}

#[test]
fn a_seed_that_passes_is_refused_with_a_clear_message() {
    let sc = load("steady_state");
    let e =
        shrink::shrink(&sc, 1, &shrink::Options::default(), run).expect_err("nothing to shrink");
    assert!(matches!(e, ShrinkError::DoesNotFail { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("steady_state seed 1 does not fail"), "{msg}");
    assert!(msg.contains("every invariant it checks holds"), "{msg}");
    assert!(msg.contains("nothing to shrink"), "{msg}");
}

#[test]
fn a_known_bad_seed_that_finds_nothing_is_refused() {
    // With no fault and no poison, the dead-letter-skipping consumer has
    // nothing to skip.
    let mut sc = load("known_bad_dead_letter_skip");
    sc.faults.clear();
    sc.processing.poison_rate = 0.0;
    let e =
        shrink::shrink(&sc, 1, &shrink::Options::default(), run).expect_err("nothing to shrink");
    assert!(
        e.to_string()
            .contains("does not break commit-safety on this seed"),
        "{e}"
    );
}

#[test]
fn the_nemesis_made_explicit_runs_the_same_history() {
    // The shrinker's first step: the nemesis's draws become scheduled
    // faults. Same seed, same history, byte for byte.
    let sc = load("nemesis_mix");
    for seed in [3, 4] {
        let explicit = shrink::explicit(&sc, seed);
        assert!(explicit.nemesis.is_none());
        assert!(!explicit.faults.is_empty(), "seed {seed} draws faults");
        let text = explicit.to_toml().expect("writes");
        let back = Scenario::parse("explicit.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        let a = run(&sc, seed).expect("runs");
        let b = run(&back, seed).expect("runs");
        assert!(a.history == b.history, "seed {seed}: the histories differ");
        assert_eq!(a.context.liveness.deadline, b.context.liveness.deadline);
    }
}
