//! A sweep spread over shards, merged, is the sweep: the same verdict, the
//! same seeds, the same violations — through the library and through the
//! `ruckus` command run as separate processes.

use std::path::{Path, PathBuf};

use ruckus_chaos::runner::{self, merge, MergeError, Options, ScenarioReport, Shard};
use ruckus_chaos::scenario::Scenario;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn sweep(sc: &Scenario, seeds: std::ops::Range<u64>, shard: Option<Shard>) -> ScenarioReport {
    let opts = Options {
        threads: 1,
        progress: false,
        shard,
        ..Options::new(seeds)
    };
    runner::run_scenario(sc, &opts)
}

/// What must agree: everything but wall time.
fn verdicts(r: &ScenarioReport) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        (
            r.passed,
            r.verdict.clone(),
            r.seeds_run,
            r.seeds_failed,
            r.simulated_ms,
        ),
        r.seeds
            .iter()
            .map(|s| {
                (
                    s.seed,
                    s.passed,
                    s.violations.clone(),
                    s.error.clone(),
                    s.events,
                    s.simulated_ms,
                )
            })
            .collect::<Vec<_>>(),
    )
}

#[test]
fn three_shards_merged_are_the_unsharded_sweep() {
    ruckus_chaos::quiet_simulated_panics();
    // A good scenario, and a known-bad one whose seeds differ in verdict.
    for name in ["steady_state", "known_bad_auto_commit"] {
        let sc = scenario(name);
        let seeds = 1..8;
        let whole = sweep(&sc, seeds.clone(), None);
        let shards: Vec<ScenarioReport> = (1..=3)
            .map(|k| sweep(&sc, seeds.clone(), Some(Shard { index: k, count: 3 })))
            .collect();
        assert_eq!(
            shards.iter().map(|s| s.seeds_run).sum::<usize>(),
            whole.seeds_run,
            "{name}: every seed in exactly one shard"
        );
        // Through JSON, as the shards' reports travel between machines.
        let travelled: Vec<ScenarioReport> = shards
            .iter()
            .map(|s| {
                let json = serde_json::to_string(s).expect("serializes");
                serde_json::from_str(&json).expect("reads back")
            })
            .collect();
        let merged = merge(travelled).expect("merges");
        assert_eq!(merged.len(), 1);
        assert_eq!(verdicts(&merged[0]), verdicts(&whole), "{name}");
        assert!(merged[0].shard.is_none());
        assert!(merged[0].seeds_per_min_per_core > 0.0);
        assert!(merged[0].sim_per_wall > 0.0);
    }
}

#[test]
fn overlapping_shards_are_refused() {
    let sc = scenario("steady_state");
    let a = sweep(&sc, 1..3, Some(Shard { index: 1, count: 2 }));
    let err = merge([a.clone(), a]).expect_err("the same seed twice");
    assert!(matches!(err, MergeError::Overlap { seed: 1, .. }), "{err}");
}

#[test]
fn a_shard_is_k_of_n_from_1() {
    assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, count: 8 }));
    for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
        assert!(Shard::parse(bad).is_err(), "{bad}");
    }
    let every: Vec<u64> = (0..10)
        .filter(|p| {
            (1..=3)
                .filter(|k| {
                    Shard {
                        index: *k,
                        count: 3,
                    }
                    .holds(*p)
                })
                .count()
                == 1
        })
        .collect();
    assert_eq!(every.len(), 10, "each position in exactly one shard");
}

/// Shards as separate `ruckus sweep --shard` processes, side by side, then
/// `ruckus merge`: the same verdicts as one `ruckus sweep`.
#[test]
fn the_command_shards_in_processes_and_merges() {
    let ruckus = env!("CARGO_BIN_EXE_ruckus");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shard-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/known_bad_auto_commit.toml");
    let sweep_args = |report: &Path| {
        let mut c = std::process::Command::new(ruckus);
        c.args(["sweep", "--count", "4", "--threads", "1", "--report"])
            .arg(report)
            .arg(&file)
            .stdout(std::process::Stdio::null());
        c
    };
    let shards: Vec<PathBuf> = (1..=2)
        .map(|k| dir.join(format!("shard-{k}.json")))
        .collect();
    let running: Vec<std::process::Child> = shards
        .iter()
        .enumerate()
        .map(|(k, p)| {
            sweep_args(p)
                .args(["--shard", &format!("{}/2", k + 1)])
                .spawn()
                .expect("ruckus runs")
        })
        .collect();
    for mut c in running {
        assert!(c.wait().expect("waits").success(), "a shard failed");
    }
    let merged = dir.join("merged.json");
    let status = std::process::Command::new(ruckus)
        .arg("merge")
        .args(&shards)
        .arg("--report")
        .arg(&merged)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("merge runs");
    assert!(status.success());
    let whole = dir.join("whole.json");
    assert!(sweep_args(&whole).status().expect("runs").success());
    let read = |p: &Path| -> Vec<ScenarioReport> {
        serde_json::from_str(&std::fs::read_to_string(p).expect("written")).expect("a report")
    };
    let (m, w) = (read(&merged), read(&whole));
    assert_eq!(verdicts(&m[0]), verdicts(&w[0]));
}
