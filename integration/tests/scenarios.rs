//! The scenario files of `scenarios/` on real brokers: one test per
//! (scenario, backend) the file declares besides `sim`, named
//! `<backend>::<scenario>`.
//!
//! - `mock`: librdkafka's mock cluster, in process — always runs.
//! - `container`: a broker image through testcontainers
//!   (`RUCKUS_CONTAINER_IMAGE`, default `ruckus-tansu:local`, which
//!   `.ci/run` builds).
//! - `external`: the cluster at `RUCKUS_KAFKA_BOOTSTRAP`.
//!
//! A tier that cannot run here has its tests reported IGNORED, and the
//! reason printed — never passed. A scenario that declares a backend on
//! which one of its faults has no real equivalent fails, naming the fault.

// Progress and skip reasons are reported on stderr.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};
use ruckus_chaos::scenario::{Backend, Scenario};
use ruckus_integration::scenario;

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn run(sc: &Scenario, backend: Backend) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = rt
        .block_on(scenario::run(sc, backend))
        .map_err(|e| Failed::from(e.to_string()))?;
    for n in &outcome.plan.notes {
        eprintln!("note: {n}");
    }
    for a in &outcome.broker_anomalies {
        eprintln!(
            "BROKER ANOMALY on {backend:?} (the broker's fault, not the consumer's; not counted): {a}"
        );
    }
    let v = &outcome.verdict;
    eprintln!(
        "{}: {} events in {:.1}s, converged at {}",
        sc.name,
        v.history.len(),
        v.elapsed.as_secs_f64(),
        v.converged_at.map_or("never".into(), |t| t.to_string())
    );
    if let Some(e) = &outcome.error {
        eprint!("{}", v.report(&sc.name));
        v.dump();
        return Err(format!("{} on {backend:?}: {e}", sc.path.display()).into());
    }
    match outcome.result {
        Ok(()) => Ok(()),
        Err(why) => {
            eprint!("{}", v.report(&sc.name));
            v.dump();
            Err(format!("{} on {backend:?}: {why}", sc.path.display()).into())
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    let mut skipped = std::collections::BTreeMap::new();
    for path in scenario_files() {
        let sc = match Scenario::load(&path) {
            Ok(sc) => sc,
            Err(e) => {
                let name = path.display().to_string();
                trials.push(Trial::test(format!("parse::{name}"), move || {
                    Err(e.to_string().into())
                }));
                continue;
            }
        };
        for backend in sc.backends.clone() {
            if backend == Backend::Sim {
                continue;
            }
            let tier = format!("{backend:?}").to_lowercase();
            let why = scenario::unavailable(backend);
            if let Some(why) = &why {
                skipped.insert(tier.clone(), why.clone());
            }
            let sc = sc.clone();
            trials.push(
                Trial::test(format!("{tier}::{}", sc.name), move || run(&sc, backend))
                    .with_ignored_flag(why.is_some()),
            );
        }
    }
    for (tier, why) in &skipped {
        eprintln!("SKIPPED: the {tier} tier cannot run here: {why}");
    }
    libtest_mimic::run(&args, trials).exit();
}
