//! Consumers no one here wrote, run as black boxes on librdkafka's mock
//! cluster (and the container tier where it runs), judged from the broker:
//!
//! - a Python consumer on confluent-kafka with auto-commit at its default
//!   is caught losing records (`zero-loss`);
//! - the same consumer committing each record after its output write
//!   passes;
//! - the reference consumer built as a binary passes.
//!
//! The Python ones need `python3` with `confluent_kafka` importable
//! (`.ci/run` installs it from PyPI); without it they are reported IGNORED
//! and the reason printed, never passed.

// Progress and skip reasons are reported on stderr.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};
use ruckus_chaos::check::Invariant;
use ruckus_chaos::scenario::{Backend, Scenario};
use ruckus_integration::blackbox::{self, Command};
use ruckus_integration::scenario;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/blackbox")
}

/// Why the Python consumers cannot run here, if they cannot.
fn python_missing() -> Option<String> {
    match std::process::Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .output()
    {
        Err(e) => Some(format!("no python3: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "python3 cannot import confluent_kafka (pip install confluent-kafka): {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Ok(_) => None,
    }
}

/// Runs the bundled black-box scenario with `argv` on `backend`; `loses`:
/// whether the consumer must be caught losing records.
fn run(argv: &[String], backend: Backend, loses: bool) -> Result<(), Failed> {
    let sc = Scenario::load(&examples().join("stop_and_crash.toml")).map_err(|e| e.to_string())?;
    let cmd = Command::new(argv).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let o = rt
        .block_on(scenario::run_black_box(&sc, backend, &cmd))
        .map_err(|e| e.to_string())?;
    let v = &o.verdict;
    eprintln!(
        "{}: {} events in {:.1}s, converged at {}; output records per member: {:?}",
        argv.join(" "),
        v.history.len(),
        v.elapsed.as_secs_f64(),
        v.converged_at.map_or("never".into(), |t| t.to_string()),
        blackbox::per_member(&v.history)
    );
    if let Some(e) = &o.error {
        eprint!("{}", v.report(&sc.name));
        return Err(format!("{e}").into());
    }
    let lost = v
        .violations
        .iter()
        .any(|x| x.invariant == Invariant::ZeroLoss);
    match (loses, lost) {
        (true, true) => {
            eprintln!(
                "caught, as it must be: {} acknowledged records never in the output",
                lost_records(&v.history)
            );
            for x in v
                .violations
                .iter()
                .filter(|x| x.invariant == Invariant::ZeroLoss)
            {
                eprintln!("{x}");
            }
            Ok(())
        }
        (true, false) => {
            eprint!("{}", v.report(&sc.name));
            Err("the auto-committing consumer was expected to lose records and did not".into())
        }
        (false, _) if v.violations.is_empty() => Ok(()),
        (false, _) => {
            eprint!("{}", v.report(&sc.name));
            v.dump();
            Err(v
                .violations
                .iter()
                .map(ToString::to_string)
                .collect::<String>()
                .into())
        }
    }
}

/// A command line that cannot run, or a consumer that never writes, gets a
/// clear error in bounded time.
fn refused(argv: &[&str], within: std::time::Duration, says: &str) -> Result<(), Failed> {
    let sc = Scenario::parse(
        "quick.toml",
        "description = \"a short workload\"\nbackends = [\"mock\"]\n[workload]\nmessages = 100\n",
    )
    .map_err(|e| e.to_string())?;
    let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    let cmd = Command::new(&argv).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let what = match rt.block_on(scenario::run_black_box(&sc, Backend::Mock, &cmd)) {
        Err(e) => e.to_string(),
        Ok(o) => match o.error {
            Some(e) => e.to_string(),
            None => return Err("the run went through".into()),
        },
    };
    let took = started.elapsed();
    eprintln!("after {took:?}: {what}");
    if !what.contains(says) {
        return Err(format!("expected an error saying `{says}`, got: {what}").into());
    }
    if took > within {
        return Err(format!("took {took:?}, more than {within:?}").into());
    }
    Ok(())
}

/// Records acknowledged to the producer with no output record.
fn lost_records(h: &[ruckus_history::Entry]) -> usize {
    use ruckus_core::events::Event;
    let done: std::collections::BTreeSet<_> = h
        .iter()
        .filter_map(|e| match e.event() {
            Some(Event::ProcessingSucceeded { tp, offset, .. }) => Some((tp.clone(), *offset)),
            _ => None,
        })
        .collect();
    h.iter()
        .filter(|e| {
            matches!(e.event(), Some(Event::Produced { tp, offset }) if !done.contains(&(tp.clone(), *offset)))
        })
        .count()
}

fn main() {
    let args = Arguments::from_args();
    let python = python_missing();
    if let Some(why) = &python {
        eprintln!("SKIPPED: the Python black-box consumers cannot run here: {why}");
    }
    let py = |script: &str| -> Vec<String> {
        vec![
            "python3".into(),
            examples().join(script).display().to_string(),
        ]
    };
    let reference = vec![env!("CARGO_BIN_EXE_ruckus-reference-consumer").to_owned()];
    let mut trials = Vec::new();
    for backend in [Backend::Mock, Backend::Container] {
        let tier = format!("{backend:?}").to_lowercase();
        let unavailable = scenario::unavailable(backend);
        if let Some(why) = &unavailable {
            eprintln!("SKIPPED: the {tier} tier cannot run here: {why}");
        }
        let (auto, manual, refc) = (
            py("autocommit_consumer.py"),
            py("manual_commit_consumer.py"),
            reference.clone(),
        );
        trials.push(
            Trial::test(
                format!("{tier}::python_autocommit_is_caught_losing_records"),
                move || run(&auto, backend, true),
            )
            .with_ignored_flag(python.is_some() || unavailable.is_some()),
        );
        // The container tier runs the auto-commit one only: the slowest
        // tier gets the one verdict that matters most.
        if backend == Backend::Mock {
            trials.push(
                Trial::test(
                    format!("{tier}::python_manual_commit_loses_nothing"),
                    move || run(&manual, backend, false),
                )
                .with_ignored_flag(python.is_some()),
            );
            trials.push(Trial::test(
                format!("{tier}::reference_consumer_loses_nothing"),
                move || run(&refc, backend, false),
            ));
        }
    }
    trials.push(Trial::test(
        "mock::a_missing_program_is_a_clear_error",
        || {
            refused(
                &["/nonexistent/consumer"],
                std::time::Duration::from_secs(10),
                "cannot start `/nonexistent/consumer`",
            )
        },
    ));
    trials.push(Trial::test(
        "mock::a_program_that_exits_at_once_is_a_clear_error",
        || {
            refused(
                &["false"],
                std::time::Duration::from_secs(10),
                "exited at once",
            )
        },
    ));
    trials.push(Trial::test(
        "mock::a_consumer_that_never_writes_is_told_so",
        || {
            refused(
                &["sleep", "600"],
                std::time::Duration::from_secs(60),
                "no member wrote a record to RUCKUS_OUTPUT_TOPIC",
            )
        },
    ));
    libtest_mimic::run(&args, trials).exit();
}
