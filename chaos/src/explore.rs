//! Continuous exploration: fresh seeds (and, with the configuration swarm,
//! fresh configurations) across every scenario until a time budget is
//! spent, each failing seed saved with its repro line, its picture and its
//! shrunk scenario.
//!
//! Seeds are never repeated: each scenario's next seed is kept in
//! `state.json` in the output directory, so a later exploration continues
//! where the last one stopped. Exploration starts at seed 1,000,000, above
//! the ranges the bundled sweeps use.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as WallInstant};

use ruckus_history::check::Invariant;
use serde::{Deserialize, Serialize};

use crate::picture::{self, Picture};
use crate::runner::{self, Options};
use crate::scenario::Scenario;
use crate::shrink;
use crate::swarm;

/// Where exploration starts a scenario it has not explored before.
pub const FIRST_SEED: u64 = 1_000_000;

/// How an exploration runs.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// How long to keep drawing seeds (a batch under way is finished, and
    /// its findings saved and shrunk; every scenario has one turn however
    /// short it is).
    pub duration: Duration,
    /// Where findings and the state go.
    pub out: PathBuf,
    /// Threads per batch.
    pub threads: usize,
    /// Seeds per scenario per turn.
    pub batch: u64,
    /// Each seed also draws the group's configuration.
    pub vary_config: bool,
    /// Wall time each shrink may take.
    pub shrink_budget: Duration,
    /// Print progress on standard error.
    pub progress: bool,
}

impl ExploreOptions {
    /// An hour into `out`, on every core.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            duration: Duration::from_secs(3600),
            out: out.into(),
            threads,
            batch: 2 * threads as u64,
            vary_config: false,
            shrink_budget: Duration::from_secs(60),
            progress: false,
        }
    }
}

/// A seed worth a look.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The scenario.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// What it broke.
    pub invariants: Vec<Invariant>,
    /// A known-bad scenario's bug, caught (as it must be), rather than a
    /// failure of a scenario that must hold.
    pub known_bad: bool,
    /// The line that reproduces it.
    pub repro: String,
    /// Its directory (repro.txt, picture.html, shrunk.toml).
    pub dir: String,
    /// The shrunk scenario, if the shrink succeeded.
    pub shrunk: Option<String>,
}

/// What an exploration did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExploreReport {
    /// Seeds run, per scenario, as `[first, end)` ranges in order.
    pub ranges: BTreeMap<String, Vec<(u64, u64)>>,
    /// Seeds run in all.
    pub seeds_run: u64,
    /// What was found.
    pub findings: Vec<Finding>,
    /// Wall time.
    pub wall_ms: u64,
}

impl ExploreReport {
    /// Failures of scenarios that must hold (not known-bad catches).
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.known_bad)
    }
}

/// Each scenario's next seed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    next: BTreeMap<String, u64>,
}

fn io(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Explores `scenarios` (those that run in the simulation) until
/// `opts.duration` is spent.
///
/// # Errors
/// The output directory or its state cannot be read or written.
pub fn explore(scenarios: &[Scenario], opts: &ExploreOptions) -> std::io::Result<ExploreReport> {
    let start = WallInstant::now();
    std::fs::create_dir_all(&opts.out).map_err(|e| io(&opts.out, e))?;
    let state_path = opts.out.join("state.json");
    let mut state: State = match std::fs::read_to_string(&state_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not an exploration state: {e}", state_path.display()),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(io(&state_path, e)),
    };
    let scenarios: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| s.runs_in_simulation())
        .collect();
    let mut report = ExploreReport::default();
    if scenarios.is_empty() {
        return Ok(report);
    }
    // Known-bad scenarios catch their bug in most seeds: the first catch of
    // each is saved, not every one.
    let mut caught: BTreeSet<String> = BTreeSet::new();
    let show = opts.progress && std::io::stderr().is_terminal();
    // Every scenario gets its turn in the first round, however short the
    // duration; after that, turns stop when the time is spent.
    let mut round = 0;
    'explore: loop {
        for sc in &scenarios {
            if round > 0 && start.elapsed() >= opts.duration {
                break 'explore;
            }
            let first = *state.next.get(&sc.name).unwrap_or(&FIRST_SEED);
            let end = first + opts.batch.max(1);
            let mut o = Options::new(first..end);
            o.threads = opts.threads;
            o.vary_config = opts.vary_config;
            let r = runner::run_scenario(sc, &o);
            // Saved before the findings are written: a seed once run is
            // never run again, even if this exploration is interrupted.
            state.next.insert(sc.name.clone(), end);
            let text = serde_json::to_string_pretty(&state).expect("state serializes");
            std::fs::write(&state_path, text).map_err(|e| io(&state_path, e))?;
            report.seeds_run += end - first;
            report
                .ranges
                .entry(sc.name.clone())
                .or_default()
                .push((first, end));
            let mut seeds: Vec<_> = r.seeds.iter().collect();
            seeds.sort_by_key(|s| s.seed);
            for s in seeds {
                let known_bad = match sc.expect.violation {
                    Some(x) => {
                        let hit = s.violations.iter().any(|v| v.invariant == x);
                        if !hit || !caught.insert(sc.name.clone()) {
                            continue;
                        }
                        true
                    }
                    None if s.passed => continue,
                    None => false,
                };
                // Saving includes the shrink, which may run past the
                // duration by its own budget: no new batch starts after it.
                let f = save(sc, s, known_bad, opts, opts.shrink_budget)?;
                if opts.progress {
                    let mut e = std::io::stderr().lock();
                    let _ = writeln!(
                        e,
                        "{}{} {} seed {}: {:?} → {}",
                        if show { "\r" } else { "" },
                        if known_bad { "caught" } else { "FAILED" },
                        f.scenario,
                        f.seed,
                        f.invariants,
                        f.dir
                    );
                }
                report.findings.push(f);
            }
            if show {
                let mut e = std::io::stderr().lock();
                let _ = write!(
                    e,
                    "\rexplored {} seeds in {:.0}s, {} findings ",
                    report.seeds_run,
                    start.elapsed().as_secs_f64(),
                    report.findings.len()
                );
                let _ = e.flush();
            }
        }
        round += 1;
    }
    if show {
        let _ = writeln!(std::io::stderr());
    }
    report.wall_ms = start.elapsed().as_millis() as u64;
    let path = opts.out.join("findings.json");
    // Findings accumulate over explorations.
    let mut all: Vec<Finding> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    all.extend(report.findings.iter().cloned());
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&all).expect("findings serialize"),
    )
    .map_err(|e| io(&path, e))?;
    Ok(report)
}

/// Saves a finding: its repro and violations, its picture, its shrunk
/// scenario.
fn save(
    sc: &Scenario,
    s: &runner::SeedResult,
    known_bad: bool,
    opts: &ExploreOptions,
    shrink_budget: Duration,
) -> std::io::Result<Finding> {
    let dir = opts.out.join(format!("{}-seed{}", sc.name, s.seed));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let target = swarm::as_run(sc, s.seed, opts.vary_config);
    let mut text = format!("{} seed {}\nreproduce with: {}\n", sc.name, s.seed, s.repro);
    if let Some(c) = &s.config {
        text.push_str(&format!("configuration drawn: {c}\n"));
    }
    if let Some(e) = &s.error {
        text.push_str(&format!("the run failed: {e}\n"));
    }
    for v in &s.violations {
        text.push_str(&v.to_string());
    }
    let repro = dir.join("repro.txt");
    std::fs::write(&repro, text).map_err(|e| io(&repro, e))?;
    if let Ok(out) = runner::run_caught(&target, s.seed) {
        let p = Picture::new(
            &sc.name,
            &sc.description,
            s.seed,
            &out.history,
            &out.violations,
            s.repro.clone(),
        );
        let page = dir.join("picture.html");
        std::fs::write(&page, picture::html(&p)).map_err(|e| io(&page, e))?;
    }
    let shrink_opts = shrink::Options {
        budget: shrink_budget,
        progress: false,
        ..shrink::Options::default()
    };
    let run = |c: &Scenario, seed: u64| runner::run_caught(c, seed).map_err(|p| p.to_string());
    let shrunk = match shrink::shrink(&target, s.seed, &shrink_opts, run) {
        Ok(sh) => {
            let path = dir.join("shrunk.toml");
            std::fs::write(&path, format!("# {sh}\n{}", sh.text)).map_err(|e| io(&path, e))?;
            Some(path.display().to_string())
        }
        Err(e) => {
            let path = dir.join("shrink-refused.txt");
            std::fs::write(&path, e.to_string()).map_err(|e| io(&path, e))?;
            None
        }
    };
    Ok(Finding {
        scenario: sc.name.clone(),
        seed: s.seed,
        invariants: s.violations.iter().map(|v| v.invariant).collect(),
        known_bad,
        repro: s.repro.clone(),
        dir: dir.display().to_string(),
        shrunk,
    })
}
