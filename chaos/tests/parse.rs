//! Scenario files: malformed input gets file, line, column and what was
//! expected; no input panics.

use proptest::prelude::*;
use ruckus_chaos::scenario::{Scenario, ScenarioError};

fn err(text: &str) -> ScenarioError {
    Scenario::parse("bad.toml", text).expect_err("malformed")
}

#[test]
fn an_unknown_field_is_an_error_at_its_line() {
    let e = err("description = \"x\"\n\n[group]\nmembers = 3\nmemebrs = 4\n");
    assert_eq!((e.file.as_str(), e.line), ("bad.toml", 5), "{e}");
    assert!(e.message.contains("unknown field `memebrs`"), "{e}");
    assert!(e.message.contains("expected one of"), "{e}");
}

#[test]
fn a_bad_duration_names_the_expected_form() {
    let e = err("description = \"x\"\n[group]\nsession_timeout = \"3 parsecs\"\n");
    assert_eq!((e.line, e.column), (3, 19), "{e}");
    assert!(e.message.contains("unknown unit"), "{e}");
    let e = err("description = \"x\"\n[group]\nsession_timeout = 3000\n");
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("duration string"), "{e}");
}

#[test]
fn a_missing_description_is_reported() {
    let e = err("[group]\nmembers = 3\n");
    assert!(e.message.contains("missing field `description`"), "{e}");
}

#[test]
fn a_toml_syntax_error_has_its_line_and_column() {
    let e = err("description = \"x\"\n[group\nmembers = 3\n");
    assert_eq!(e.line, 2, "{e}");
    assert!(e.column > 1, "{e}");
    assert!(e.to_string().starts_with("bad.toml:2:"), "{e}");
}

#[test]
fn an_unknown_fault_kind_lists_the_kinds() {
    let e = err("description = \"x\"\n\n[[fault]]\nkind = \"meteor\"\nat = \"1s\"\n");
    assert_eq!((e.line, e.column), (4, 8), "{e}");
    assert!(e.message.contains("crash-member"), "{e}");
}

#[test]
fn a_fault_with_an_unknown_field_is_an_error() {
    let e = err(
        "description = \"x\"\n[[fault]]\nkind = \"crash-member\"\nat = \"1s\"\nmember = 1\nrestart = \"1s\"\n",
    );
    assert!(e.message.contains("restart"), "{e}");
    assert!(e.line >= 2, "{e}");
}

#[test]
fn a_fault_against_a_member_that_does_not_exist_points_at_the_fault() {
    let e = err(
        "description = \"x\"\n[group]\nmembers = 2\n\n[[fault]]\nkind = \"crash-member\"\nat = \"1s\"\nmember = 7\n",
    );
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("member 7 does not exist"), "{e}");
}

#[test]
fn a_semantic_error_points_at_its_key() {
    let e = err("description = \"x\"\n[group]\nassignor = \"fastest\"\n");
    assert_eq!((e.line, e.column), (3, 1), "{e}");
    assert!(e.message.contains("expected range, roundrobin"), "{e}");
    let e = err("description = \"x\"\n[processing]\npoison_rate = 1.5\n");
    assert_eq!(e.line, 3, "{e}");
    let e = err("description = \"x\"\n[group]\nheartbeat_interval = \"5s\"\n");
    assert!(e.message.contains("below the session timeout"), "{e}");
}

#[test]
fn an_unknown_invariant_lists_the_invariants() {
    let e = err("description = \"x\"\n[expect]\nviolation = \"no-bugs\"\n");
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("zero-loss"), "{e}");
}

#[test]
fn an_unknown_error_name_lists_the_names() {
    let e = err(
        "description = \"x\"\n[[fault]]\nkind = \"errors\"\nat = \"1s\"\napi = \"offset-commit\"\nerror = \"OOPS\"\ncount = 1\n",
    );
    assert!(e.message.contains("REBALANCE_IN_PROGRESS"), "{e}");
}

#[test]
fn every_bundled_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = ruckus_chaos::runner::discover(&dir).expect("readable");
    assert!(files.len() >= 16, "{} scenario files", files.len());
    for f in files {
        Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn bundled() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    ruckus_chaos::runner::discover(&dir)
        .expect("readable")
        .into_iter()
        .map(|f| std::fs::read_to_string(f).expect("readable"))
        .collect()
}

fn check_error(text: &str, e: &ScenarioError) {
    let lines = text.split('\n').count();
    assert!(
        e.line >= 1 && e.line <= lines.max(1),
        "line {} of {lines}: {e}",
        e.line
    );
    assert!(e.column >= 1, "{e}");
    assert!(!e.message.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = Scenario::parse("fuzz.toml", &text) {
            check_error(&text, &e);
        }
    }

    #[test]
    fn mutated_valid_files_never_panic(
        file in 0usize..64,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..3, any::<char>()), 1..6),
    ) {
        let files = bundled();
        let mut text: Vec<char> = files[file % files.len()].chars().collect();
        for (at, op, c) in edits {
            if text.is_empty() {
                text.push(c);
                continue;
            }
            let i = at.index(text.len());
            match op {
                0 => { text.remove(i); }
                1 => text.insert(i, c),
                _ => text[i] = c,
            }
        }
        let text: String = text.into_iter().collect();
        if let Err(e) = Scenario::parse("mutated.toml", &text) {
            check_error(&text, &e);
        }
    }
}

#[test]
fn kip848_in_the_simulation_is_refused_at_its_key() {
    let e = err("description = \"x\"\n[group]\nmembers = 3\nprotocol = \"consumer\"\n");
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("real brokers only"), "{e}");
    let sc = Scenario::parse(
        "ok.toml",
        "description = \"x\"\nbackends = [\"mock\"]\n[group]\nprotocol = \"consumer\"\n",
    )
    .expect("a real-brokers-only file");
    assert!(!sc.runs_in_simulation());
}

#[test]
fn every_bundled_scenario_survives_the_trip_through_its_file_form() {
    // The shrinker writes scenarios with `to_toml`: what it writes must
    // read back as the same scenario (same file form, same faults, same
    // nemesis draws).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for path in ruckus_chaos::runner::discover(&dir).expect("readable") {
        let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let path = path.display().to_string();
        let text = sc.to_toml().unwrap_or_else(|e| panic!("{path}: {e}"));
        let back = Scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back.to_toml().expect("writes"), text, "{path}");
        for seed in [1, 7] {
            assert_eq!(
                ruckus_chaos::run::plan(&back, seed),
                ruckus_chaos::run::plan(&sc, seed),
                "{path} seed {seed}"
            );
        }
        assert_eq!(back.expect.invariants(), sc.expect.invariants(), "{path}");
    }
}
