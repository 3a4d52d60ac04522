//! `ruckus-blackbox`: run a consumer you already have — any language, any
//! client — as N member processes against a real broker, apply a
//! scenario's faults to it, and judge it from the broker.
//!
//! ```text
//! ruckus-blackbox [--backend mock|container|external] [--members N] SCENARIO.toml -- COMMAND [ARGS...]
//! ```
//!
//! The command must meet the black-box contract (`ruckus_integration::blackbox`):
//! read `RUCKUS_BOOTSTRAP`, `RUCKUS_GROUP`, `RUCKUS_TOPIC`,
//! `RUCKUS_OUTPUT_TOPIC`, `RUCKUS_MEMBER`; write `<partition>:<offset>` to
//! the output topic for each record it finishes, before committing it; exit
//! on SIGTERM. Exit status: 0 nothing lost, 1 a violation, 2 the run could
//! not be set up.

// A command-line tool reports on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use ruckus_chaos::scenario::{Backend, Scenario};
use ruckus_integration::blackbox::{self, Command};
use ruckus_integration::scenario;

const USAGE: &str = "usage: ruckus-blackbox [--backend mock|container|external] [--members N] \
                     SCENARIO.toml -- COMMAND [ARGS...]";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ruckus-blackbox: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args
        .iter()
        .position(|a| a == "--")
        .ok_or("no `--` before the consumer's command line")?;
    let (ours, theirs) = (&args[..split], &args[split + 1..]);
    let cmd = Command::new(theirs).map_err(|e| e.to_string())?;
    let (mut backend, mut members, mut file) = (Backend::Mock, None, None);
    let mut it = ours.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--backend" => {
                backend = match it.next().map(String::as_str) {
                    Some("mock") => Backend::Mock,
                    Some("container") => Backend::Container,
                    Some("external") => Backend::External,
                    other => {
                        return Err(format!("--backend {other:?}: mock, container or external"))
                    }
                }
            }
            "--members" => {
                let n = it.next().ok_or("--members needs a number")?;
                members = Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("--members {n}: not a number"))?,
                );
            }
            f if !f.starts_with("--") && file.is_none() => file = Some(f.to_owned()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let file = file.ok_or("no scenario file")?;
    let mut sc = Scenario::load(std::path::Path::new(&file)).map_err(|e| e.to_string())?;
    if let Some(n) = members {
        sc.group.members = n;
    }
    if let Some(why) = scenario::unavailable(backend) {
        return Err(format!("{backend:?} cannot run here: {why}"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let o = rt
        .block_on(scenario::run_black_box(&sc, backend, &cmd))
        .map_err(|e| e.to_string())?;
    let v = &o.verdict;
    println!(
        "{} on {backend:?}: {} members of `{}`; {:.1}s; converged at {}; output records per member: {:?}",
        sc.name,
        sc.group.members,
        theirs.join(" "),
        v.elapsed.as_secs_f64(),
        v.converged_at.map_or("never".into(), |t| t.to_string()),
        blackbox::per_member(&v.history)
    );
    println!("judged on: zero-loss, liveness (what a black box can be judged on)");
    if let Some(e) = &o.error {
        println!("the run failed: {e}");
        return Ok(ExitCode::from(2));
    }
    v.dump();
    if v.violations.is_empty() {
        println!("nothing lost");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", v.report(&sc.name));
    Ok(ExitCode::FAILURE)
}
