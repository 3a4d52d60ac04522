//! One test per file in `scenarios/`, named after the file, so
//! `cargo test broker_crash` runs just those. Each runs the file's CI seed
//! count; `RUCKUS_SEED=<n>` runs one seed, `RUCKUS_SEEDS=<n>` the first n.
//! A good scenario passes when every seed holds every invariant; a
//! known-bad one when its expected violation is found.

// Failures are reported on stdout by the test harness.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};
use ruckus_chaos::runner::{self, Options};
use ruckus_chaos::scenario::Scenario;

fn main() {
    ruckus_chaos::quiet_simulated_panics();
    let args = Arguments::from_args();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = runner::discover(&dir).expect("the scenarios directory is readable");
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    let trials = files
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A file for real brokers only is skipped here, and says so.
            let real_only = Scenario::load(&path).is_ok_and(|sc| !sc.runs_in_simulation());
            if real_only {
                eprintln!(
                    "SKIPPED: {name} runs on real brokers only (its `backends` omit \"sim\"); \
                     ruckus-integration's scenario tier runs it"
                );
            }
            Trial::test(name, move || run(&path)).with_ignored_flag(real_only)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn run(path: &std::path::Path) -> Result<(), Failed> {
    let sc = Scenario::load(path).map_err(|e| e.to_string())?;
    let mut opts = Options::new(runner::ci_seeds(&sc).map_err(|e| e.to_string())?);
    // libtest-mimic already runs scenarios side by side.
    opts.threads = 1;
    opts.progress = false;
    opts.determinism = std::env::var_os("RUCKUS_DETERMINISM").is_some();
    opts.vary_config = std::env::var("RUCKUS_VARY_CONFIG").is_ok_and(|v| v == "1");
    let r = runner::run_scenario(&sc, &opts);
    if r.passed {
        return Ok(());
    }
    Err(r.explain().into())
}
