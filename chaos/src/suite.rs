//! Your processor under chaos, from your own `cargo test`.
//!
//! ```no_run
//! use ruckus_chaos::suite::Suite;
//! use ruckus_chaos::processor::MemberStart;
//! # use ruckus_core::{consumer::ProcessingError, driver::{MessageProcessor, RecordContext}, model::Record};
//! # struct Orders(ruckus_chaos::store::StoreClient);
//! # impl MessageProcessor for Orders {
//! #     async fn process(&self, r: &Record, _: &RecordContext) -> Result<(), ProcessingError> { Ok(()) }
//! # }
//!
//! #[test]
//! fn orders_survive_the_bundled_scenarios() {
//!     Suite::new(|m: &MemberStart| Orders(m.store.clone()))
//!         .scenarios("../scenarios")           // every file there, or .scenario(file)
//!         .judge_effects()                     // effect-loss, -duplicates, -before-commit
//!         .check();                            // fails with the report and a repro line
//! }
//! ```
//!
//! Each scenario runs over its CI seeds (`RUCKUS_SEED=<n>` runs one seed,
//! `RUCKUS_SEEDS=<n>` the first n, `RUCKUS_SCENARIO=<name>` one scenario,
//! `RUCKUS_DETERMINISM=1` runs each seed twice and compares the histories)
//! in the simulation, with your factory making each member's processor at
//! every start. A directory's known-bad scenarios (which select a broken
//! reference consumer, not a broken processor) are left out and listed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::check::{Invariant, Violation};
use crate::processor::{DynFactory, ProcessorFactory};
use crate::runner::{self, Options, Repro, ScenarioReport};
use crate::scenario::{Backend, Scenario, ScenarioError};
use crate::world::App;
use ruckus_sim::producer::{Payload, Payloads};

/// Runs a scenario on a real backend with your processors: implemented by
/// `ruckus-integration` (`ruckus_integration::RealBrokers`), which this
/// crate cannot depend on.
pub trait RealRunner {
    /// Why `backend` cannot run here, if it cannot (its runs are then
    /// reported skipped, never passed).
    fn unavailable(&self, backend: Backend) -> Option<String>;

    /// Runs `sc` once on `backend` with `app`'s processors and payloads,
    /// and judges it by the scenario's expectation.
    fn run(&self, sc: &Scenario, backend: Backend, app: &App<DynFactory>) -> RealResult;
}

/// One scenario's run on a real backend.
#[derive(Clone, Debug)]
pub struct RealResult {
    /// The scenario.
    pub scenario: String,
    /// The backend.
    pub backend: Backend,
    /// Why it did not run here (never counted as passed).
    pub skipped: Option<String>,
    /// Whether the scenario's expectation was met.
    pub passed: bool,
    /// What the checkers found.
    pub violations: Vec<Violation>,
    /// What a failure shows: why, and the violations.
    pub explanation: String,
}

/// Scenario files run with your processor. See the [module](self) docs.
pub struct Suite<F> {
    app: App<F>,
    sources: Vec<(PathBuf, bool)>,
    effects: bool,
    expect: Option<Invariant>,
    seeds: Option<std::ops::Range<u64>>,
    repro: String,
    real: Option<Box<dyn RealRunner>>,
}

impl<F> std::fmt::Debug for Suite<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("sources", &self.sources)
            .field("effects", &self.effects)
            .field("expect", &self.expect)
            .field("real", &self.real.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a suite could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuiteError {
    /// A scenario file is malformed.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A directory could not be read.
    #[error("{path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A seed variable is not a number.
    #[error(transparent)]
    Seeds(#[from] runner::SeedsError),
    /// Nothing to run: no file given, or `RUCKUS_SCENARIO` matched none.
    #[error("no scenario to run{0}")]
    Empty(String),
}

/// What a suite found.
#[derive(Debug)]
pub struct SuiteReport {
    /// One report per scenario run in the simulation.
    pub scenarios: Vec<ScenarioReport>,
    /// One result per (scenario, real backend it declares), with
    /// [`Suite::on_real_brokers`].
    pub real: Vec<RealResult>,
    /// Known-bad scenarios of a directory that were left out.
    pub left_out: Vec<String>,
}

impl SuiteReport {
    /// Whether every scenario passed, in the simulation and on every real
    /// backend that ran (a skipped one is not a failure, and not a pass:
    /// see [`SuiteReport::skipped`]).
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|r| r.passed)
            && self.real.iter().all(|r| r.skipped.is_some() || r.passed)
    }

    /// Real runs that could not run here, and why.
    pub fn skipped(&self) -> impl Iterator<Item = &RealResult> {
        self.real.iter().filter(|r| r.skipped.is_some())
    }

    /// Whether some seed of some scenario (or some real run) broke `inv`.
    pub fn found(&self, inv: Invariant) -> bool {
        self.found_in_simulation(inv) || self.found_on(inv).next().is_some()
    }

    /// Whether some seed of some scenario broke `inv` in the simulation.
    pub fn found_in_simulation(&self, inv: Invariant) -> bool {
        self.scenarios
            .iter()
            .flat_map(|r| &r.seeds)
            .any(|s| s.violations.iter().any(|v| v.invariant == inv))
    }

    /// The real backends on which some run broke `inv`.
    pub fn found_on(&self, inv: Invariant) -> impl Iterator<Item = Backend> + '_ {
        self.real
            .iter()
            .filter(move |r| r.violations.iter().any(|v| v.invariant == inv))
            .map(|r| r.backend)
    }

    /// The failed scenarios, explained (verdict, violations, repro lines).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for r in self.scenarios.iter().filter(|r| !r.passed) {
            out.push_str(&r.explain());
        }
        for r in self
            .real
            .iter()
            .filter(|r| r.skipped.is_none() && !r.passed)
        {
            out.push_str(&format!(
                "{} on {:?}: {}\n",
                r.scenario, r.backend, r.explanation
            ));
        }
        out
    }
}

impl<F: ProcessorFactory> Suite<F> {
    /// A suite whose members run the processors `factory` makes.
    pub fn new(factory: F) -> Self {
        Self {
            app: App::new(factory),
            sources: Vec::new(),
            effects: false,
            expect: None,
            seeds: None,
            repro: "RUCKUS_SCENARIO={scenario} RUCKUS_SEED={seed} cargo test".into(),
            real: None,
        }
    }

    /// Also runs each scenario once on every real backend it declares
    /// (`backends = ["sim", "mock", ...]`) through `runner`
    /// (`ruckus_integration::RealBrokers`); a backend that cannot run here
    /// is reported skipped, with why.
    #[must_use]
    pub fn on_real_brokers(mut self, runner: impl RealRunner + 'static) -> Self {
        self.real = Some(Box::new(runner));
        self
    }

    /// Runs this scenario file (a known-bad one too).
    #[must_use]
    pub fn scenario(mut self, file: impl AsRef<Path>) -> Self {
        self.sources.push((file.as_ref().to_path_buf(), false));
        self
    }

    /// Runs every scenario file (`*.toml`) in `dir`, known-bad ones left
    /// out.
    #[must_use]
    pub fn scenarios(mut self, dir: impl AsRef<Path>) -> Self {
        self.sources.push((dir.as_ref().to_path_buf(), true));
        self
    }

    /// The workload's `i`-th record is `payload(i)` (default: key
    /// `key-<i mod 97>`, value `message-<i>`).
    #[must_use]
    pub fn payloads(mut self, payload: impl Fn(usize) -> Payload + Send + Sync + 'static) -> Self {
        self.app.payloads = Payloads::new(payload);
        self
    }

    /// Also judges the processor's side effects in the store
    /// ([`Invariant::EFFECTS`]).
    #[must_use]
    pub fn judge_effects(mut self) -> Self {
        self.effects = true;
        self
    }

    /// The processor is known to be broken: each scenario passes only if
    /// some seed finds `inv` violated (and the suite fails if none does).
    #[must_use]
    pub fn expect_violation(mut self, inv: Invariant) -> Self {
        self.expect = Some(inv);
        self
    }

    /// These seeds for every scenario instead of each one's CI seeds.
    #[must_use]
    pub fn seeds(mut self, seeds: std::ops::Range<u64>) -> Self {
        self.seeds = Some(seeds);
        self
    }

    /// How a failure says to reproduce a seed (`{scenario}` and `{seed}`
    /// are replaced); default `RUCKUS_SCENARIO={scenario} RUCKUS_SEED={seed}
    /// cargo test`.
    #[must_use]
    pub fn repro(mut self, command: impl Into<String>) -> Self {
        self.repro = command.into();
        self
    }

    fn load(&self) -> Result<(Vec<Scenario>, Vec<String>), SuiteError> {
        let only = std::env::var("RUCKUS_SCENARIO").ok();
        let (mut out, mut left_out) = (Vec::new(), Vec::new());
        for (path, is_dir) in &self.sources {
            let files = if *is_dir {
                runner::discover(path).map_err(|source| SuiteError::Dir {
                    path: path.display().to_string(),
                    source,
                })?
            } else {
                vec![path.clone()]
            };
            for f in files {
                let mut sc = Scenario::load(&f)?;
                if only.as_ref().is_some_and(|n| *n != sc.name) {
                    continue;
                }
                if *is_dir && sc.expect.violation.is_some() {
                    left_out.push(sc.name.clone());
                    continue;
                }
                sc.expect.effects |= self.effects;
                if let Some(inv) = self.expect {
                    sc.expect.violation = Some(inv);
                    sc.expect.in_every_seed = false;
                }
                out.push(sc);
            }
        }
        if out.is_empty() {
            let why = only.map_or(String::new(), |n| {
                format!(": RUCKUS_SCENARIO={n} matched none")
            });
            return Err(SuiteError::Empty(why));
        }
        Ok((out, left_out))
    }

    /// Runs every scenario over its seeds.
    ///
    /// # Errors
    /// A file is malformed or missing, or a seed variable is not a number.
    pub fn run(&self) -> Result<SuiteReport, SuiteError> {
        let (scenarios, left_out) = self.load()?;
        let mut reports = Vec::new();
        for sc in scenarios.iter().filter(|sc| sc.runs_in_simulation()) {
            let seeds = match &self.seeds {
                Some(s) if std::env::var_os("RUCKUS_SEED").is_none() => s.clone(),
                _ => runner::ci_seeds(sc)?,
            };
            let opts = Options {
                progress: false,
                determinism: std::env::var_os("RUCKUS_DETERMINISM").is_some(),
                repro: Repro::Command(self.repro.clone()),
                ..Options::new(seeds)
            };
            reports.push(runner::run_scenario_with(sc, &opts, &self.app));
        }
        let mut real = Vec::new();
        if let Some(runner) = &self.real {
            let app = App {
                processor: Arc::new(DynFactory::new(self.app.processor.clone())),
                payloads: self.app.payloads.clone(),
            };
            for sc in &scenarios {
                for backend in sc.backends.iter().copied().filter(|b| *b != Backend::Sim) {
                    real.push(match runner.unavailable(backend) {
                        Some(why) => RealResult {
                            scenario: sc.name.clone(),
                            backend,
                            skipped: Some(why),
                            passed: false,
                            violations: Vec::new(),
                            explanation: String::new(),
                        },
                        None => runner.run(sc, backend, &app),
                    });
                }
            }
        }
        Ok(SuiteReport {
            scenarios: reports,
            real,
            left_out,
        })
    }

    /// Runs the suite and panics with the report if any scenario failed:
    /// for a `#[test]`.
    ///
    /// # Panics
    /// A scenario failed, or the suite could not run.
    #[allow(clippy::print_stderr)]
    pub fn check(&self) {
        let report = match self.run() {
            Ok(r) => r,
            Err(e) => panic!("ruckus: {e}"),
        };
        for r in report.skipped() {
            eprintln!(
                "ruckus: SKIPPED {} on {:?}: {}",
                r.scenario,
                r.backend,
                r.skipped.as_deref().unwrap_or_default()
            );
        }
        if !report.left_out.is_empty() {
            eprintln!(
                "ruckus: known-bad scenarios left out (they break the reference consumer, not \
                 your processor): {}",
                report.left_out.join(", ")
            );
        }
        assert!(report.passed(), "{}", report.explain());
    }
}
