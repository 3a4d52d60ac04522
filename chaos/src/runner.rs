//! The runner: a scenario over a seed range, one simulation per thread,
//! with an optional determinism check (each seed twice), stop-at-first-
//! failure or continue, a progress line on a terminal, and a report that
//! serializes to JSON and carries a repro line for every failure.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant as WallInstant;

use serde::Serialize;

use crate::check::{Invariant, Violation};
use crate::processor::ProcessorFactory;
use crate::scenario::Scenario;
use crate::world::App;
use crate::{swarm, world};

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Seeds to run.
    pub seeds: Range<u64>,
    /// Threads (one simulation each).
    pub threads: usize,
    /// Stop at the first failing seed.
    pub stop_at_first: bool,
    /// Run each seed twice and compare the histories.
    pub determinism: bool,
    /// Draw a progress line on stderr (only if it is a terminal).
    pub progress: bool,
    /// Each seed also draws the group's configuration ([`swarm`]).
    pub vary_config: bool,
    /// How a failing seed is reproduced.
    pub repro: Repro,
    /// Run only this deterministic slice of `seeds` (one shard of a sweep
    /// spread over machines; [`merge`] puts the shards' reports together).
    pub shard: Option<Shard>,
}

/// Shard `index` (1-based) of `count`: the seeds whose position in the
/// seed range, modulo `count`, is `index - 1`. Every seed of a range is in
/// exactly one shard of `count`, whatever the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: u64,
    /// How many.
    pub count: u64,
}

impl Shard {
    /// `K/N`, with 1 <= K <= N.
    ///
    /// # Errors
    /// Not of that form.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected K/N, such as 2/8"))?;
        let (index, count): (u64, u64) = (
            k.trim()
                .parse()
                .map_err(|_| format!("`{k}` is not a number"))?,
            n.trim()
                .parse()
                .map_err(|_| format!("`{n}` is not a number"))?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(format!("`{s}`: K must be between 1 and N"));
        }
        Ok(Self { index, count })
    }

    /// Whether the seed at `position` in its range is in this shard.
    pub fn holds(self, position: u64) -> bool {
        position % self.count == self.index - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The command a report gives to reproduce a seed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Repro {
    /// The bundled scenarios' test and the `ruckus replay` command.
    #[default]
    Bundled,
    /// A command of the user's own; `{seed}` and `{scenario}` are replaced.
    Command(String),
}

impl Options {
    /// `seeds`, on every core, continuing past failures, no determinism
    /// check, progress on.
    pub fn new(seeds: Range<u64>) -> Self {
        Self {
            seeds,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stop_at_first: false,
            determinism: false,
            progress: true,
            vary_config: false,
            repro: Repro::Bundled,
            shard: None,
        }
    }
}

/// One seed's outcome.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Whether this seed passed: no violation (a good scenario), or the
    /// expected violation found (a known-bad one).
    pub passed: bool,
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// The simulation itself failed.
    pub error: Option<String>,
    /// With the determinism check: whether the second run matched.
    pub deterministic: Option<bool>,
    /// Events in the history.
    pub events: usize,
    /// Simulated milliseconds.
    pub simulated_ms: u64,
    /// Wall milliseconds (both runs, with the determinism check).
    pub wall_ms: u64,
    /// Reproduces this seed.
    pub repro: String,
    /// With the configuration swarm: the group configuration this seed drew.
    pub config: Option<String>,
    /// Faults applied to a member, and how many of them landed on a member
    /// that owned partitions (a fault on an idle member proves little).
    #[serde(default)]
    pub member_faults: (usize, usize),
    /// The interesting states this seed reached, and how often
    /// ([`crate::coverage`]).
    #[serde(default)]
    pub coverage: crate::coverage::Counts,
}

impl SeedResult {
    /// Whether this seed is a failure in itself: the run broke, replayed
    /// differently, or (in a good scenario) broke an invariant. A
    /// known-bad scenario's seed that found nothing is not one.
    pub fn needs_attention(&self, expected_violation: Option<Invariant>) -> bool {
        self.error.is_some()
            || self.deterministic == Some(false)
            || (!self.passed && expected_violation.is_none())
    }
}

/// A scenario's outcome over its seeds.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub scenario: String,
    /// Its file.
    pub path: String,
    /// For a known-bad scenario, the violation it must find.
    pub expected_violation: Option<Invariant>,
    /// For a known-bad scenario: it must find it in every seed.
    #[serde(default)]
    pub in_every_seed: bool,
    /// The shard these seeds are (none: every seed of the range).
    #[serde(default)]
    pub shard: Option<Shard>,
    /// Whether the scenario passed.
    pub passed: bool,
    /// Why not, in a line.
    pub verdict: String,
    /// Seeds run.
    pub seeds_run: usize,
    /// Seeds whose result differs from what the scenario expects.
    pub seeds_failed: usize,
    /// Wall milliseconds for the whole sweep.
    pub wall_ms: u64,
    /// Simulated milliseconds, all seeds together.
    #[serde(default)]
    pub simulated_ms: u64,
    /// Simulated seconds per wall second of one core (the seeds' simulated
    /// time over the wall time each took on its thread).
    #[serde(default)]
    pub sim_per_wall: f64,
    /// Seeds per minute per core (each seed runs on one thread).
    #[serde(default)]
    pub seeds_per_min_per_core: f64,
    /// Faults applied to members over all seeds, and how many landed on a
    /// member that owned partitions: whether the scenario reached what it
    /// is about.
    #[serde(default)]
    pub member_faults: (usize, usize),
    /// The states the scenario names in `[expect] reach`.
    #[serde(default)]
    pub reach: Vec<crate::coverage::State>,
    /// For each state reached: in how many seeds.
    #[serde(default)]
    pub coverage: BTreeMap<crate::coverage::State, usize>,
    /// Named states no seed reached: the scenario did not get where it is
    /// about (flagged in its verdict).
    #[serde(default)]
    pub unreached: Vec<crate::coverage::State>,
    /// Per seed, in seed order.
    pub seeds: Vec<SeedResult>,
}

impl ScenarioReport {
    /// Faults that landed on a member owning partitions, of all faults on
    /// members: `on/all`, or `-` where no fault hit a member.
    pub fn on_owners(&self) -> String {
        match self.member_faults {
            (0, _) => "-".to_owned(),
            (all, on) => format!("{on}/{all}"),
        }
    }

    /// The seeds that need attention: failing seeds of a good scenario, or
    /// everything of a known-bad scenario that found nothing.
    pub fn failures(&self) -> impl Iterator<Item = &SeedResult> {
        self.seeds
            .iter()
            .filter(move |s| s.needs_attention(self.expected_violation))
    }

    /// What a failed test shows: the verdict, then up to three failing
    /// seeds, each with what broke and the line that reproduces it.
    pub fn explain(&self) -> String {
        let mut msg = format!("{}: {}\n", self.scenario, self.verdict);
        for s in self.failures().take(3) {
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
            if !s.violations.is_empty() {
                msg.push_str(&format!(
                    "  shrink and draw it: cargo run -p ruckus-chaos --bin ruckus -- shrink {path} \
                     --seed {seed}; ... replay {path} --seed {seed} --html seed{seed}.html\n",
                    path = self.path,
                    seed = s.seed
                ));
            }
        }
        if self.expected_violation.is_some() && !self.passed {
            msg.push_str(&format!(
                "seeds run: {:?}; reproduce one with: {}\n",
                self.seeds.iter().map(|s| s.seed).collect::<Vec<_>>(),
                self.seeds.first().map(|s| s.repro.as_str()).unwrap_or("")
            ));
        }
        msg
    }
}

/// The one-line command that reproduces `seed` of `sc` (with the
/// configuration swarm on, if `vary_config`).
pub fn repro(sc: &Scenario, seed: u64, vary_config: bool) -> String {
    let (env, flag) = if vary_config {
        ("RUCKUS_VARY_CONFIG=1 ", " --vary-config")
    } else {
        ("", "")
    };
    format!(
        "{env}RUCKUS_SEED={seed} cargo test -p ruckus-chaos --test scenarios -- --exact {}   \
         (or: cargo run -p ruckus-chaos --bin ruckus -- replay {} --seed {seed}{flag})",
        sc.name,
        sc.path.display()
    )
}

/// The seeds `cargo test` runs for `sc`: its CI seeds, or `RUCKUS_SEED`
/// (one seed) or `RUCKUS_SEEDS` (the first n) from the environment.
///
/// # Errors
/// The variable is set to something that is not a number.
pub fn ci_seeds(sc: &Scenario) -> Result<Range<u64>, SeedsError> {
    if let Ok(s) = std::env::var("RUCKUS_SEED") {
        let n: u64 = s.parse().map_err(|_| SeedsError("RUCKUS_SEED", s))?;
        return Ok(n..n + 1);
    }
    let n = match std::env::var("RUCKUS_SEEDS") {
        Ok(n) => n.parse().map_err(|_| SeedsError("RUCKUS_SEEDS", n))?,
        Err(_) => sc.seeds.ci,
    };
    Ok(sc.seeds.first..sc.seeds.first + n)
}

/// A seed variable that is not a number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}={1} is not a number")]
pub struct SeedsError(pub &'static str, pub String);

/// Runs one seed and judges it; with `vary_config`, in the group
/// configuration the seed draws ([`swarm::vary`]).
pub fn run_seed(sc: &Scenario, seed: u64, determinism: bool, vary_config: bool) -> SeedResult {
    let opts = Options {
        determinism,
        vary_config,
        ..Options::new(seed..seed + 1)
    };
    run_seed_with(sc, seed, &opts, &App::scripted(sc))
}

/// [`run_seed`] with `app`'s processor and payloads.
pub fn run_seed_with<F: ProcessorFactory>(
    sc: &Scenario,
    seed: u64,
    opts: &Options,
    app: &App<F>,
) -> SeedResult {
    let (determinism, vary_config) = (opts.determinism, opts.vary_config);
    let varied = vary_config.then(|| swarm::vary(sc, seed));
    let config = varied.as_ref().map(|v| swarm::describe(&v.group));
    let repro_line = match &opts.repro {
        Repro::Bundled => repro(sc, seed, vary_config),
        Repro::Command(c) => c
            .replace("{seed}", &seed.to_string())
            .replace("{scenario}", &sc.name),
    };
    let sc = varied.as_ref().unwrap_or(sc);
    let start = WallInstant::now();
    // A panic inside the simulation (turmoil's or ours) fails this seed,
    // with its repro line; it never takes the whole run down.
    let effects = sc
        .expect
        .invariants()
        .iter()
        .any(|i| Invariant::EFFECTS.contains(i));
    let run = if effects && !app.processor.uses_store() {
        // Judging effects of a processor that writes none would report
        // every record lost.
        Err(format!(
            "{} judges side effects (effect-*), but its processor writes none: run it with \
             a processor that writes to the store (ruckus_chaos::suite::Suite)",
            sc.name
        ))
    } else {
        run_caught_with(sc, seed, app).map_err(|p| p.to_string())
    };
    let out = match run {
        Ok(out) => out,
        Err(why) => {
            return SeedResult {
                seed,
                passed: false,
                violations: Vec::new(),
                error: Some(why),
                deterministic: None,
                events: 0,
                simulated_ms: 0,
                wall_ms: start.elapsed().as_millis() as u64,
                repro: repro_line,
                config,
                member_faults: (0, 0),
                coverage: crate::coverage::Counts::new(),
            }
        }
    };
    let deterministic = determinism
        .then(|| run_caught_with(sc, seed, app).is_ok_and(|again| again.history == out.history));
    let violations = out.violations.clone();
    let member_faults = out.reach.as_ref().map_or((0, 0), |r| {
        (r.len(), r.iter().filter(|x| x.owned > 0).count())
    });
    let passed = out.error.is_none()
        && deterministic != Some(false)
        && sc.expect.judge(&violations, false).is_ok();
    SeedResult {
        seed,
        passed,
        violations,
        error: out.error.map(|e| e.to_string()),
        deterministic,
        events: out.history.len(),
        simulated_ms: out.elapsed.as_millis() as u64,
        wall_ms: start.elapsed().as_millis() as u64,
        repro: repro_line,
        config,
        member_faults,
        coverage: crate::coverage::count_with(&out.history, out.reach.as_deref()),
    }
}

/// [`world::run`], with a panic inside the simulation turned into its
/// message.
///
/// # Errors
/// The simulation panicked.
pub fn run_caught(sc: &Scenario, seed: u64) -> Result<world::RunOutput, Panicked> {
    run_caught_with(sc, seed, &App::scripted(sc))
}

/// [`run_caught`] with `app`'s processor and payloads.
///
/// # Errors
/// The simulation panicked.
pub fn run_caught_with<F: ProcessorFactory>(
    sc: &Scenario,
    seed: u64,
    app: &App<F>,
) -> Result<world::RunOutput, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        world::run_with(sc, seed, app)
    }))
    .map_err(|p| Panicked(ruckus_core::panic_message(&*p).to_owned()))
}

/// The simulation panicked (turmoil's or ruckus's code), with the panic's
/// message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the simulation panicked: {0}")]
pub struct Panicked(pub String);

/// Runs `sc` over `opts.seeds`.
pub fn run_scenario(sc: &Scenario, opts: &Options) -> ScenarioReport {
    run_scenario_with(sc, opts, &App::scripted(sc))
}

/// Runs `sc` over `opts.seeds` with `app`'s processor and payloads.
pub fn run_scenario_with<F: ProcessorFactory>(
    sc: &Scenario,
    opts: &Options,
    app: &App<F>,
) -> ScenarioReport {
    let start = WallInstant::now();
    let list: Vec<u64> = opts
        .seeds
        .clone()
        .filter(|s| opts.shard.map_or(true, |sh| sh.holds(s - opts.seeds.start)))
        .collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results = Mutex::new(Vec::new());
    let total = list.len();
    let show = opts.progress && std::io::stderr().is_terminal();
    let threads = opts.threads.clamp(1, total.max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(&seed) = list.get(next.fetch_add(1, Ordering::SeqCst)) else {
                    return;
                };
                let r = run_seed_with(sc, seed, opts, app);
                if r.needs_attention(sc.expect.violation) {
                    failed.fetch_add(1, Ordering::SeqCst);
                    if opts.stop_at_first {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                results.lock().expect("results").push(r);
                let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                if show {
                    let mut e = std::io::stderr().lock();
                    let _ = write!(
                        e,
                        "\r{}: {d}/{total} seeds, {} failed ",
                        sc.name,
                        failed.load(Ordering::SeqCst)
                    );
                    let _ = e.flush();
                }
            });
        }
    });
    if show {
        let _ = writeln!(std::io::stderr());
    }
    let seeds = results.into_inner().expect("results");
    let mut r = judge_seeds(sc, seeds, start.elapsed().as_millis() as u64);
    r.shard = opts.shard;
    r
}

/// A scenario's report from its seeds' results (in any order): the
/// verdict, the counts and the speed figures.
pub fn judge_seeds(sc: &Scenario, seeds: Vec<SeedResult>, wall_ms: u64) -> ScenarioReport {
    judge(
        ScenarioReport {
            scenario: sc.name.clone(),
            path: sc.path.display().to_string(),
            expected_violation: sc.expect.violation,
            in_every_seed: sc.expect.in_every_seed,
            shard: None,
            passed: false,
            verdict: String::new(),
            seeds_run: 0,
            seeds_failed: 0,
            wall_ms,
            simulated_ms: 0,
            sim_per_wall: 0.0,
            seeds_per_min_per_core: 0.0,
            member_faults: (0, 0),
            reach: sc.expect.reach.clone(),
            coverage: BTreeMap::new(),
            unreached: Vec::new(),
            seeds: Vec::new(),
        },
        seeds,
    )
}

/// `shell` (a report's identity: scenario, path, expectation, wall time)
/// judged on `seeds`.
fn judge(shell: ScenarioReport, mut seeds: Vec<SeedResult>) -> ScenarioReport {
    seeds.sort_by_key(|r| r.seed);
    let seeds_run = seeds.len();
    let (passed, verdict, seeds_failed) = match shell.expected_violation {
        None => {
            let bad = seeds.iter().filter(|s| !s.passed).count();
            let verdict = if bad == 0 {
                format!("all {seeds_run} seeds hold every invariant")
            } else {
                let first = seeds.iter().find(|s| !s.passed).expect("one failed");
                let what = first
                    .error
                    .clone()
                    .or_else(|| {
                        (first.deterministic == Some(false)).then(|| "not deterministic".into())
                    })
                    .or_else(|| {
                        first
                            .violations
                            .first()
                            .map(|v| format!("{} at {}ms", v.invariant, v.at_ms))
                    })
                    .unwrap_or_default();
                format!(
                    "{bad} of {seeds_run} seeds failed; first: seed {} ({what})",
                    first.seed
                )
            };
            (bad == 0, verdict, bad)
        }
        Some(v) => {
            let found = seeds.iter().filter(|s| s.passed).count();
            let broken = seeds
                .iter()
                .filter(|s| s.error.is_some() || s.deterministic == Some(false))
                .count();
            let ok = broken == 0
                && if shell.in_every_seed {
                    found == seeds_run
                } else {
                    found > 0
                };
            let verdict = format!(
                "known-bad: {v} found in {found} of {seeds_run} seeds{}",
                if broken > 0 {
                    format!(", {broken} runs failed")
                } else {
                    String::new()
                }
            );
            (ok, verdict, seeds_run - found)
        }
    };
    let simulated_ms: u64 = seeds.iter().map(|s| s.simulated_ms).sum();
    // Each seed's wall time is its own thread's: with the determinism
    // check a seed ran twice, so its simulated time counts twice.
    let runs_per_seed = |s: &SeedResult| if s.deterministic.is_some() { 2 } else { 1 };
    let sim_run_ms: u64 = seeds
        .iter()
        .map(|s| s.simulated_ms * runs_per_seed(s))
        .sum();
    let core_ms: u64 = seeds.iter().map(|s| s.wall_ms).sum();
    let (sim_per_wall, seeds_per_min_per_core) = if core_ms > 0 {
        (
            sim_run_ms as f64 / core_ms as f64,
            seeds_run as f64 * 60_000.0 / core_ms as f64,
        )
    } else {
        (0.0, 0.0)
    };
    let member_faults = seeds.iter().fold((0, 0), |(a, b), s| {
        (a + s.member_faults.0, b + s.member_faults.1)
    });
    let mut coverage: BTreeMap<crate::coverage::State, usize> = BTreeMap::new();
    for s in &seeds {
        for state in s.coverage.keys() {
            *coverage.entry(*state).or_insert(0) += 1;
        }
    }
    let unreached: Vec<crate::coverage::State> = shell
        .reach
        .iter()
        .copied()
        .filter(|st| !coverage.contains_key(st))
        .collect();
    let mut verdict = verdict;
    if !unreached.is_empty() && seeds_run > 0 {
        verdict.push_str(&format!(
            "; UNREACHED in every seed: {}",
            unreached
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    ScenarioReport {
        passed,
        verdict,
        coverage,
        unreached,
        seeds_run,
        seeds_failed,
        member_faults,
        simulated_ms,
        sim_per_wall,
        seeds_per_min_per_core,
        seeds,
        ..shell
    }
}

/// Why shard reports cannot be merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// Two reports ran the same seed of a scenario.
    #[error("{scenario}: seed {seed} is in two reports (overlapping shards?)")]
    Overlap {
        /// The scenario.
        scenario: String,
        /// The seed.
        seed: u64,
    },
    /// Two reports disagree on what a scenario expects.
    #[error("{scenario}: the reports disagree on its expectation (different files?)")]
    Mismatch {
        /// The scenario.
        scenario: String,
    },
}

/// Puts shard reports together: per scenario (by file), every shard's
/// seeds, judged again as one sweep of them all would judge them. The
/// wall time is the longest shard's (shards run side by side).
///
/// # Errors
/// Two shards ran the same seed, or disagree on a scenario's expectation.
pub fn merge(
    shards: impl IntoIterator<Item = ScenarioReport>,
) -> Result<Vec<ScenarioReport>, MergeError> {
    let mut by_path: Vec<(ScenarioReport, Vec<SeedResult>)> = Vec::new();
    for r in shards {
        let seeds = r.seeds.clone();
        match by_path.iter_mut().find(|(m, _)| m.path == r.path) {
            Some((m, all)) => {
                if m.expected_violation != r.expected_violation
                    || m.in_every_seed != r.in_every_seed
                {
                    return Err(MergeError::Mismatch {
                        scenario: r.scenario,
                    });
                }
                for s in seeds {
                    if all.iter().any(|x| x.seed == s.seed) {
                        return Err(MergeError::Overlap {
                            scenario: r.scenario,
                            seed: s.seed,
                        });
                    }
                    all.push(s);
                }
                m.wall_ms = m.wall_ms.max(r.wall_ms);
            }
            None => {
                let shell = ScenarioReport {
                    shard: None,
                    seeds: Vec::new(),
                    ..r
                };
                by_path.push((shell, seeds));
            }
        }
    }
    Ok(by_path
        .into_iter()
        .map(|(shell, seeds)| judge(shell, seeds))
        .collect())
}

/// Every `*.toml` file under `dir`, sorted by name.
///
/// # Errors
/// The directory cannot be read.
pub fn discover(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
