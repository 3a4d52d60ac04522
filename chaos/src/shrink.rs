//! The shrinker: from a failing seed of a scenario to a small scenario
//! file that fails the same way on that one seed.
//!
//! It first makes the nemesis's draws explicit, as scheduled faults, so
//! every fault of the run is data it can cut; then it removes faults (delta
//! debugging, as Zeller's ddmin) and shortens the ones left (their heal
//! times and error counts); then it reduces the workload (messages,
//! partitions), the group (members, brokers) and the phases. Each candidate
//! is written as a scenario file, read back (so what it keeps is always a
//! valid file) and run on the seed; it is kept when the run still fails with
//! the same **fingerprint**: the invariant the original failure broke is
//! broken again, and nothing is broken that the original run did not break
//! (a reduction that turns a lost record into a stuck group is a different
//! failure, and is refused).
//!
//! The run is a parameter ([`shrink`] takes it as a closure), so a suite
//! with its own processor shrinks with that processor; the `ruckus shrink`
//! command uses the scenario's scripted one.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant as WallInstant};

use ruckus_history::check::Invariant;
use ruckus_history::duration::Dur;
use ruckus_history::fault::Fault;
use toml::Spanned;

use crate::run::{self, RunOutput};
use crate::scenario::Scenario;

/// How a shrink runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Wall time it may take; when it is spent, the smallest failing
    /// scenario found so far is the result.
    pub budget: Duration,
    /// Print a progress line (on standard error).
    pub progress: bool,
    /// Passes over every reduction, at most (a pass that keeps nothing
    /// ends the shrink earlier).
    pub max_rounds: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(120),
            progress: false,
            max_rounds: 3,
        }
    }
}

/// How big a scenario is, in what the shrinker reduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Size {
    /// Faults (the nemesis's draws counted as faults).
    pub faults: usize,
    /// The faults' durations (until they heal) and error counts, summed
    /// (a count as one millisecond each).
    pub fault_weight: u64,
    /// Messages produced.
    pub messages: usize,
    /// Records per produce request (with the pause between requests, the
    /// rate).
    pub batch: usize,
    /// Partitions of the source topic.
    pub partitions: u32,
    /// Members of the group, late ones included.
    pub members: usize,
    /// Brokers.
    pub brokers: u32,
    /// The fault phase and the quiet phase, in milliseconds.
    pub phases_ms: u64,
}

impl Size {
    /// The size of `sc` run with `seed` (its nemesis's draws for that seed
    /// count as faults).
    pub fn of(sc: &Scenario, seed: u64) -> Self {
        let plan = run::plan(sc, seed);
        Self {
            faults: plan.len(),
            fault_weight: plan.iter().map(weight).sum(),
            messages: sc.workload.messages,
            batch: sc.workload.batch,
            partitions: sc.cluster.partitions,
            members: sc.group.all_members(),
            brokers: sc.cluster.brokers,
            phases_ms: (sc.phases.faults.0 + sc.phases.quiet.0).as_millis() as u64,
        }
    }

    /// Whether `self` is no bigger than `other` in every measure and
    /// smaller in at least one.
    pub fn strictly_smaller_than(&self, other: &Size) -> bool {
        let le = self.faults <= other.faults
            && self.fault_weight <= other.fault_weight
            && self.messages <= other.messages
            && self.batch <= other.batch
            && self.partitions <= other.partitions
            && self.members <= other.members
            && self.brokers <= other.brokers
            && self.phases_ms <= other.phases_ms;
        le && self != other
    }
}

fn weight(f: &Fault) -> u64 {
    let count = match f {
        Fault::Errors { count, .. }
        | Fault::DeadLetterOutage { count, .. }
        | Fault::ProduceErrors { count, .. } => u64::from(*count),
        _ => 0,
    };
    f.heal_after().map_or(0, |d| d.as_millis() as u64) + count
}

/// What a failure is, for the shrinker: the invariant it broke, and every
/// invariant the original run broke (a candidate may break no other).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Fingerprint {
    /// The invariant that must break.
    pub invariant: Invariant,
    /// The invariants the original run broke.
    pub allowed: BTreeSet<Invariant>,
}

impl Fingerprint {
    /// Whether `out` fails this way.
    pub fn matches(&self, out: &RunOutput) -> bool {
        out.error.is_none()
            && out.violations.iter().any(|v| v.invariant == self.invariant)
            && out
                .violations
                .iter()
                .all(|v| self.allowed.contains(&v.invariant))
    }
}

/// A shrunk failure.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The scenario it came from.
    pub original: String,
    /// The seed.
    pub seed: u64,
    /// What it keeps failing with.
    pub fingerprint: Fingerprint,
    /// The small scenario (its seeds: the one seed).
    pub scenario: Scenario,
    /// The scenario as a file, ready to write.
    pub text: String,
    /// The original's size.
    pub before: Size,
    /// The shrunk one's.
    pub after: Size,
    /// Simulated time of the original run and of the shrunk one.
    pub simulated: (Duration, Duration),
    /// Runs made.
    pub runs: usize,
    /// Wall time taken.
    pub wall: Duration,
    /// The budget ran out before no reduction was left to try.
    pub budget_spent: bool,
}

impl Shrunk {
    /// What was reduced, in one line: `faults 5→1, messages 2000→125, …`.
    pub fn summary(&self) -> String {
        let (b, a) = (&self.before, &self.after);
        let mut parts = vec![
            format!("faults {}→{}", b.faults, a.faults),
            format!("messages {}→{}", b.messages, a.messages),
            format!(
                "simulated seconds {:.1}→{:.1}",
                self.simulated.0.as_secs_f64(),
                self.simulated.1.as_secs_f64()
            ),
        ];
        for (what, x, y) in [
            ("records per produce request", b.batch, a.batch),
            ("partitions", b.partitions as usize, a.partitions as usize),
            ("members", b.members, a.members),
            ("brokers", b.brokers as usize, a.brokers as usize),
        ] {
            if x != y {
                parts.push(format!("{what} {x}→{y}"));
            }
        }
        if b.fault_weight != a.fault_weight {
            parts.push(format!(
                "fault time+counts {}→{}",
                b.fault_weight, a.fault_weight
            ));
        }
        parts.join(", ")
    }
}

/// Why there is nothing to shrink.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShrinkError {
    /// The seed does not fail.
    #[error(
        "{scenario} seed {seed} does not fail: {why}; there is nothing to shrink (shrink a seed \
         that `ruckus run` or `ruckus sweep` reported failing)"
    )]
    DoesNotFail {
        /// The scenario.
        scenario: String,
        /// The seed.
        seed: u64,
        /// What the run found instead.
        why: String,
    },
    /// The run itself failed (the simulation could not run it), which is
    /// not a consumer's failure the shrinker can keep a fingerprint of.
    #[error("{scenario} seed {seed}: the run failed before it could be judged: {why}")]
    RunFailed {
        /// The scenario.
        scenario: String,
        /// The seed.
        seed: u64,
        /// Why.
        why: String,
    },
    /// Its file form could not be written or read back.
    #[error("{scenario}: cannot write it as a scenario file: {why}")]
    Unwritable {
        /// The scenario.
        scenario: String,
        /// Why.
        why: String,
    },
}

/// The fingerprint of `out`, a run of `sc`: for a known-bad scenario the
/// violation it expects; otherwise the first invariant the run broke.
///
/// # Errors
/// The run does not fail.
pub fn fingerprint(sc: &Scenario, seed: u64, out: &RunOutput) -> Result<Fingerprint, ShrinkError> {
    if let Some(e) = &out.error {
        return Err(ShrinkError::RunFailed {
            scenario: sc.name.clone(),
            seed,
            why: e.to_string(),
        });
    }
    let allowed: BTreeSet<Invariant> = out.violations.iter().map(|v| v.invariant).collect();
    let invariant = match sc.expect.violation {
        Some(x) if allowed.contains(&x) => x,
        Some(x) => {
            return Err(ShrinkError::DoesNotFail {
                scenario: sc.name.clone(),
                seed,
                why: format!("the known-bad consumer does not break {x} on this seed"),
            })
        }
        None => match out.violations.first() {
            Some(v) => v.invariant,
            None => {
                return Err(ShrinkError::DoesNotFail {
                    scenario: sc.name.clone(),
                    seed,
                    why: "every invariant it checks holds".into(),
                })
            }
        },
    };
    Ok(Fingerprint { invariant, allowed })
}

/// Shrinks seed `seed` of `sc`, running each candidate with `run` (the
/// simulation, with whatever processor the caller's runs use).
///
/// # Errors
/// The seed does not fail, its run fails before it is judged, or the
/// scenario cannot be written as a file.
pub fn shrink<R>(
    sc: &Scenario,
    seed: u64,
    opts: &Options,
    mut run: R,
) -> Result<Shrunk, ShrinkError>
where
    R: FnMut(&Scenario, u64) -> Result<RunOutput, String>,
{
    let start = WallInstant::now();
    let original = run(sc, seed).map_err(|why| ShrinkError::RunFailed {
        scenario: sc.name.clone(),
        seed,
        why,
    })?;
    let fp = fingerprint(sc, seed, &original)?;
    let unwritable = |why: String| ShrinkError::Unwritable {
        scenario: sc.name.clone(),
        why,
    };
    let mut s = Shrinker {
        name: sc.name.clone(),
        seed,
        fp: fp.clone(),
        run: &mut run,
        start,
        opts,
        runs: 1,
        budget_spent: false,
        simulated: original.elapsed,
        show: opts.progress && std::io::stderr().is_terminal(),
    };

    // The nemesis's draws become scheduled faults; without a nemesis the
    // scenario's own faults, expanded (a rolling restart into its stops).
    let mut cur = explicit(sc, seed);
    let explicit = s
        .attempt(&cur)
        .map_err(|e| unwritable(e.to_string()))?
        .is_some();
    if !explicit {
        // The explicit schedule does not fail the same way (it should: it
        // is the same plan); shrink around the nemesis instead of its draws.
        cur = sc.clone();
        cur.seeds.first = seed;
        cur.seeds.ci = 1;
        cur.seeds.sweep = 1;
    }
    s.note("faults made explicit", &cur);

    for _ in 0..opts.max_rounds {
        let mut changed = false;
        if cur.nemesis.is_none() {
            changed |= s.remove_faults(&mut cur);
            changed |= s.shorten_faults(&mut cur);
        }
        // Halved while it fails; then the smallest of a geometric ladder
        // below that which still fails (a failure is not monotone in the
        // messages: halving alone stops at the first count that happens to
        // pass); then steps of a quarter.
        changed |= s.reduce(&mut cur, "messages", |c| {
            let m = c.workload.messages;
            (m > 1).then(|| c.workload.messages = m / 2)
        });
        let messages = cur.workload.messages;
        changed |= s.smallest(&mut cur, "messages", messages, |c, m| {
            c.workload.messages = m;
        });
        changed |= s.reduce(&mut cur, "messages", |c| {
            let m = c.workload.messages;
            (m > 3).then(|| c.workload.messages = m - m / 4)
        });
        // The rate: fewer records per produce request (the same pause
        // between requests).
        changed |= s.reduce(&mut cur, "records per produce request", |c| {
            let b = c.workload.batch;
            (b > 1).then(|| c.workload.batch = b / 2)
        });
        let partitions = cur.cluster.partitions as usize;
        changed |= s.smallest(&mut cur, "partitions", partitions, |c, p| {
            c.cluster.partitions = p as u32;
            c.cluster.dead_letter_partitions = c.cluster.dead_letter_partitions.min(p as u32);
        });
        changed |= s.reduce(&mut cur, "late members", |c| {
            let l = c.group.late_members;
            (l > 0).then(|| c.group.late_members = l - 1)
        });
        changed |= s.reduce(&mut cur, "members", |c| {
            let m = c.group.members;
            (m > 1).then(|| c.group.members = m - 1)
        });
        changed |= s.reduce(&mut cur, "brokers", |c| {
            let b = c.cluster.brokers;
            (b > 1).then(|| c.cluster.brokers = b - 1)
        });
        changed |= s.reduce(&mut cur, "fault phase", |c| {
            let f = c.phases.faults.0;
            let shorter = round_up((f / 2).max(fault_end(c)));
            (shorter < f).then(|| c.phases.faults = Dur(shorter))
        });
        changed |= s.reduce(&mut cur, "quiet phase", |c| {
            let q = c.phases.quiet.0;
            let shorter = round_up((q / 2).max(Duration::from_secs(5)));
            (shorter < q).then(|| c.phases.quiet = Dur(shorter))
        });
        if !changed || s.budget_spent {
            break;
        }
    }
    if s.show {
        let _ = writeln!(std::io::stderr());
    }

    let before = Size::of(sc, seed);
    let after = Size::of(&cur, seed);
    let simulated = s.simulated;
    let (runs, budget_spent) = (s.runs, s.budget_spent);
    // It was shown to fail in the simulation only.
    cur.backends = vec![crate::scenario::Backend::Sim];
    cur.description = format!(
        "Shrunk by `ruckus shrink` from {} seed {seed}, still breaking {} ({}).\n{}",
        sc.path.display(),
        fp.invariant,
        summarize(&before, &after),
        sc.description.trim()
    );
    let text = cur.to_toml().map_err(|e| unwritable(e.to_string()))?;
    let scenario = Scenario::parse(&format!("{}-shrunk", sc.name), &text)
        .map_err(|e| unwritable(e.to_string()))?;
    Ok(Shrunk {
        original: sc.name.clone(),
        seed,
        fingerprint: fp,
        scenario,
        text,
        before,
        after,
        simulated: (original.elapsed, simulated),
        runs,
        wall: start.elapsed(),
        budget_spent,
    })
}

/// `sc` as run with `seed`, made explicit: every fault of the run (the
/// nemesis's draws for that seed included) a scheduled fault, no nemesis,
/// and the one seed as its seeds. It runs the same history on that seed.
pub fn explicit(sc: &Scenario, seed: u64) -> Scenario {
    let mut cur = sc.clone();
    let plan = run::plan(sc, seed);
    if sc.nemesis.is_some() {
        // With a nemesis the liveness deadline counts from the end of the
        // fault phase even when its last draw heals earlier; without one,
        // from the last heal. The quiet phase keeps the deadline where it
        // was.
        let end = plan.iter().map(Fault::over_at).max().unwrap_or_default();
        cur.phases.quiet = Dur(sc.phases.quiet.0 + sc.phases.faults.0.saturating_sub(end));
    }
    cur.faults = plan.into_iter().map(plain).collect();
    cur.nemesis = None;
    cur.seeds.first = seed;
    cur.seeds.ci = 1;
    cur.seeds.sweep = 1;
    cur
}

fn summarize(b: &Size, a: &Size) -> String {
    format!(
        "faults {}→{}, messages {}→{}, members {}→{}, partitions {}→{}",
        b.faults,
        a.faults,
        b.messages,
        a.messages,
        b.members,
        a.members,
        b.partitions,
        a.partitions
    )
}

/// A fault the shrinker wrote, held as the scenario model holds faults
/// (with a span: where a file's fault was read from; none here).
fn plain(f: Fault) -> Spanned<Fault> {
    Spanned::new(0..0, f)
}

/// When the last fault heals (or fires, if it never heals).
fn fault_end(sc: &Scenario) -> Duration {
    sc.faults
        .iter()
        .map(|f| f.get_ref().over_at())
        .max()
        .unwrap_or_default()
}

fn round_up(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms.div_ceil(100) * 100)
}

struct Shrinker<'a, R> {
    name: String,
    seed: u64,
    fp: Fingerprint,
    run: &'a mut R,
    start: WallInstant,
    opts: &'a Options,
    runs: usize,
    budget_spent: bool,
    simulated: Duration,
    show: bool,
}

impl<R> Shrinker<'_, R>
where
    R: FnMut(&Scenario, u64) -> Result<RunOutput, String>,
{
    /// Runs `candidate` (written and read back as a file first): `Some`
    /// with the scenario read back if it fails the same way; `None` if it
    /// does not, is not a valid file, or the budget is spent.
    fn attempt(&mut self, candidate: &Scenario) -> Result<Option<Scenario>, toml::ser::Error> {
        if self.start.elapsed() >= self.opts.budget {
            self.budget_spent = true;
            return Ok(None);
        }
        let text = candidate.to_toml()?;
        let Ok(mut back) = Scenario::parse(&candidate.name, &text) else {
            // Not a valid scenario (a fault names a member or a partition
            // the reduced group no longer has): not a candidate.
            return Ok(None);
        };
        back.name.clone_from(&candidate.name);
        back.path.clone_from(&candidate.path);
        self.runs += 1;
        if self.show {
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\rshrinking {} seed {}: run {}, {:.0}s of {:.0}s ",
                self.name,
                self.seed,
                self.runs,
                self.start.elapsed().as_secs_f64(),
                self.opts.budget.as_secs_f64()
            );
            let _ = e.flush();
        }
        // A smaller scenario must not be a much longer run (fewer records
        // per request spread the same records over more time).
        let longest =
            (self.simulated + self.simulated / 4).max(self.simulated + Duration::from_secs(2));
        match (self.run)(&back, self.seed) {
            Ok(out) if self.fp.matches(&out) && out.elapsed <= longest => {
                self.simulated = out.elapsed;
                Ok(Some(back))
            }
            _ => Ok(None),
        }
    }

    fn keep(&mut self, candidate: &Scenario) -> Option<Scenario> {
        self.attempt(candidate).ok().flatten()
    }

    fn note(&self, what: &str, sc: &Scenario) {
        if self.opts.progress {
            let line = format!(
                "shrink {} seed {}: {what}: {} faults, {} messages, {} members, {} partitions, {} brokers ({} runs, {:.1}s)",
                self.name,
                self.seed,
                sc.faults.len(),
                sc.workload.messages,
                sc.group.all_members(),
                sc.cluster.partitions,
                sc.cluster.brokers,
                self.runs,
                self.start.elapsed().as_secs_f64()
            );
            let prefix = if self.show { "\r" } else { "" };
            let _ = writeln!(std::io::stderr().lock(), "{prefix}{line}");
        }
    }

    /// Delta debugging over the faults: the smallest subset (1-minimal:
    /// removing any one more fault loses the failure) it can find.
    fn remove_faults(&mut self, cur: &mut Scenario) -> bool {
        let mut faults: Vec<Spanned<Fault>> = cur.faults.clone();
        let before = faults.len();
        let with = |sc: &Scenario, fs: &[Spanned<Fault>]| {
            let mut c = sc.clone();
            c.faults = fs.to_vec();
            c
        };
        // No fault at all, first: a failure that needs none is the
        // smallest there is.
        if !faults.is_empty() {
            if let Some(k) = self.keep(&with(cur, &[])) {
                *cur = k;
                self.note("every fault removed", cur);
                return true;
            }
        }
        let mut n = 2;
        while faults.len() >= 2 && !self.budget_spent {
            let chunk = faults.len().div_ceil(n);
            let parts: Vec<Vec<Spanned<Fault>>> = faults.chunks(chunk).map(<[_]>::to_vec).collect();
            let mut reduced = false;
            for (i, part) in parts.iter().enumerate() {
                if let Some(k) = self.keep(&with(cur, part)) {
                    *cur = k;
                    faults = part.clone();
                    n = 2;
                    reduced = true;
                    break;
                }
                let rest: Vec<Spanned<Fault>> = parts
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, p)| p.iter().cloned())
                    .collect();
                if parts.len() > 2 {
                    if let Some(k) = self.keep(&with(cur, &rest)) {
                        *cur = k;
                        faults = rest;
                        n = (n - 1).max(2);
                        reduced = true;
                        break;
                    }
                }
            }
            if !reduced {
                if n >= faults.len() {
                    break;
                }
                n = (n * 2).min(faults.len());
            }
        }
        let changed = faults.len() < before;
        if changed {
            self.note("faults removed", cur);
        }
        changed
    }

    /// Each fault left, shortened: its heal time and its error count
    /// halved, again and again, while the run still fails.
    fn shorten_faults(&mut self, cur: &mut Scenario) -> bool {
        let mut changed = false;
        for i in 0..cur.faults.len() {
            loop {
                if self.budget_spent {
                    return changed;
                }
                let Some(shorter) = shorten(cur.faults[i].get_ref()) else {
                    break;
                };
                let mut c = cur.clone();
                c.faults[i] = plain(shorter);
                match self.keep(&c) {
                    Some(k) => {
                        *cur = k;
                        changed = true;
                    }
                    None => break,
                }
            }
        }
        if changed {
            self.note("faults shortened", cur);
        }
        changed
    }

    /// Sets a count (by `set`) to the smallest value of a geometric ladder
    /// below `now` (1, 2, 3, 4, 6, 9, …) with which the run still fails.
    fn smallest(
        &mut self,
        cur: &mut Scenario,
        what: &str,
        now: usize,
        set: impl Fn(&mut Scenario, usize),
    ) -> bool {
        let mut ladder = Vec::new();
        let mut v = 1usize;
        while v < now {
            ladder.push(v);
            v = (v + v / 2).max(v + 1);
        }
        for v in ladder {
            if self.budget_spent {
                return false;
            }
            let mut c = cur.clone();
            set(&mut c, v);
            if let Some(k) = self.keep(&c) {
                *cur = k;
                self.note(&format!("{what} reduced"), cur);
                return true;
            }
        }
        false
    }

    /// Applies `step` again and again while the run still fails.
    fn reduce(
        &mut self,
        cur: &mut Scenario,
        what: &str,
        step: impl Fn(&mut Scenario) -> Option<()>,
    ) -> bool {
        let mut changed = false;
        while !self.budget_spent {
            let mut c = cur.clone();
            if step(&mut c).is_none() {
                break;
            }
            match self.keep(&c) {
                Some(k) => {
                    *cur = k;
                    changed = true;
                }
                None => break,
            }
        }
        if changed {
            self.note(&format!("{what} reduced"), cur);
        }
        changed
    }
}

/// `f` with its heal time or its count halved, if there is one to halve.
fn shorten(f: &Fault) -> Option<Fault> {
    const MIN: Duration = Duration::from_millis(100);
    let half = |d: &Dur| (d.0 >= MIN * 2).then(|| Dur(round_up(d.0 / 2)));
    let mut f = f.clone();
    let done = match &mut f {
        Fault::CrashMember { restart_after, .. }
        | Fault::StopMember { restart_after, .. }
        | Fault::CrashBroker { restart_after, .. } => {
            restart_after.as_mut().and_then(|d| half(d).map(|h| *d = h))
        }
        Fault::PauseMember { duration, .. }
        | Fault::PauseBroker { duration, .. }
        | Fault::StoreOutage { duration, .. }
        | Fault::Hold { duration, .. } => half(duration).map(|h| *duration = h),
        Fault::DisconnectBroker { duration, .. }
        | Fault::Partition { duration, .. }
        | Fault::Latency { duration, .. }
        | Fault::Loss { duration, .. } => duration.as_mut().and_then(|d| half(d).map(|h| *d = h)),
        Fault::Errors { count, .. }
        | Fault::DeadLetterOutage { count, .. }
        | Fault::ProduceErrors { count, .. } => (*count > 1).then(|| *count /= 2),
        _ => None,
    };
    done.map(|()| f)
}

impl fmt::Display for Shrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seed {}: still breaks {} after {} runs in {:.1}s{}: {}",
            self.original,
            self.seed,
            self.fingerprint.invariant,
            self.runs,
            self.wall.as_secs_f64(),
            if self.budget_spent {
                " (budget spent: smallest found so far)"
            } else {
                ""
            },
            self.summary()
        )
    }
}
