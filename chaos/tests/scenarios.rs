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
            Trial::test(name, move || run(&path))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn seeds(sc: &Scenario) -> Result<std::ops::Range<u64>, Failed> {
    if let Ok(s) = std::env::var("RUCKUS_SEED") {
        let s: u64 = s
            .parse()
            .map_err(|_| format!("RUCKUS_SEED={s} is not a u64"))?;
        return Ok(s..s + 1);
    }
    let n = match std::env::var("RUCKUS_SEEDS") {
        Ok(n) => n
            .parse()
            .map_err(|_| format!("RUCKUS_SEEDS={n} is not a count"))?,
        Err(_) => sc.seeds.ci,
    };
    Ok(sc.seeds.first..sc.seeds.first + n)
}

fn run(path: &std::path::Path) -> Result<(), Failed> {
    let sc = Scenario::load(path).map_err(|e| e.to_string())?;
    let mut opts = Options::new(seeds(&sc)?);
    // libtest-mimic already runs scenarios side by side.
    opts.threads = 1;
    opts.progress = false;
    opts.determinism = std::env::var_os("RUCKUS_DETERMINISM").is_some();
    opts.vary_config = std::env::var("RUCKUS_VARY_CONFIG").is_ok_and(|v| v == "1");
    let r = runner::run_scenario(&sc, &opts);
    if r.passed {
        return Ok(());
    }
    let mut msg = format!("{}: {}\n", r.scenario, r.verdict);
    for s in r.failures().take(3) {
        msg.push_str(&format!("seed {}:\n", s.seed));
        if let Some(e) = &s.error {
            msg.push_str(&format!("  simulation failed: {e}\n"));
        }
        if s.deterministic == Some(false) {
            msg.push_str("  not deterministic: the second run's history differs\n");
        }
        for v in &s.violations {
            for line in v.to_string().lines() {
                msg.push_str(&format!("  {line}\n"));
            }
        }
        msg.push_str(&format!("  reproduce with: {}\n", s.repro));
    }
    if r.expected_violation.is_some() {
        msg.push_str(&format!(
            "seeds run: {:?}; reproduce one with: {}\n",
            r.seeds.iter().map(|s| s.seed).collect::<Vec<_>>(),
            r.seeds.first().map(|s| s.repro.as_str()).unwrap_or("")
        ));
    }
    Err(msg.into())
}
