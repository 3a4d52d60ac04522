//! `ruckus`: run, sweep, replay, check and list chaos scenarios.

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ruckus_chaos::check::render;
use ruckus_chaos::nemesis;
use ruckus_chaos::runner::{self, Options, ScenarioReport};
use ruckus_chaos::scenario::{Scenario, ScenarioError};
use ruckus_chaos::shrink;
use ruckus_core::events::Event;
use ruckus_history::record::{BrokerEvent, Record};

#[derive(Parser)]
#[command(
    name = "ruckus",
    version,
    about = "Deterministic chaos scenarios for Kafka consumer groups"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario over its CI seeds (or the seeds given).
    Run {
        /// The scenario file.
        file: PathBuf,
        #[command(flatten)]
        seeds: SeedArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Run scenarios over a seed range: every file in a directory, or the
    /// files given. Prints a summary table and writes a JSON report.
    Sweep {
        /// Scenario files or directories (default: scenarios/).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        seeds: SeedArgs,
        #[command(flatten)]
        common: Common,
        /// Where to write the JSON report.
        #[arg(long, default_value = "target/ruckus/report.json")]
        report: PathBuf,
    },
    /// Replay one seed of a scenario as a readable timeline.
    Replay {
        /// The scenario file.
        file: PathBuf,
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Include per-record events (fetched, started, succeeded).
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a timeline.
        #[arg(long)]
        json: bool,
        /// The seed also draws the group's configuration (as `sweep
        /// --vary-config` did).
        #[arg(long)]
        vary_config: bool,
        /// Also write a picture of the run: one self-contained HTML page
        /// (member lanes, faults, commits, lag, the violation and how it
        /// happened).
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Shrink a failing seed: a small scenario file that fails the same way
    /// on that seed (same invariant broken, nothing else broken), written
    /// to --out.
    Shrink {
        /// The scenario file.
        file: PathBuf,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Wall time it may take (`90s`, `5m`).
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        budget: std::time::Duration,
        /// Where to write the shrunk scenario (default:
        /// target/ruckus/shrunk/<scenario>-seed<N>.toml).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The seed also draws the group's configuration (as `sweep
        /// --vary-config` did).
        #[arg(long)]
        vary_config: bool,
    },
    /// Keep drawing fresh seeds across every scenario for a while; save
    /// each failing seed (and each known-bad scenario's first catch) with
    /// its repro line, picture and shrunk file. Seeds never repeat: the
    /// next one per scenario is kept in OUT/state.json.
    Explore {
        /// Scenario files or directories (default: scenarios/).
        paths: Vec<PathBuf>,
        /// How long (`10m`, `1h`).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Where findings and the state go.
        #[arg(long, default_value = "target/ruckus/explore")]
        out: PathBuf,
        /// Threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Seeds per scenario per turn (default: twice the threads).
        #[arg(long)]
        batch: Option<u64>,
        /// Each seed also draws the group's configuration.
        #[arg(long)]
        vary_config: bool,
        /// Wall time each shrink may take.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        shrink_budget: std::time::Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate scenario files; prints file:line:col for every error.
    Check {
        /// Scenario files or directories (default: scenarios/).
        paths: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List scenarios.
    List {
        /// Scenario files or directories (default: scenarios/).
        paths: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge shard reports (`sweep --shard K/N --report …`) into one
    /// report, judged as one sweep over all their seeds.
    Merge {
        /// The shards' JSON reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long, default_value = "target/ruckus/report.json")]
        report: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a consumer you already have, any language, as black-box member
    /// processes against a real broker: `ruckus blackbox [--backend mock]
    /// SCENARIO -- COMMAND [ARGS...]`. Runs the `ruckus-blackbox` program of
    /// ruckus-integration (beside this one), which holds the brokers.
    #[command(disable_help_flag = true)]
    Blackbox {
        /// Its arguments, as `ruckus-blackbox` takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct SeedArgs {
    /// One seed.
    #[arg(long, conflicts_with_all = ["seeds", "count"])]
    seed: Option<u64>,
    /// A seed range, `A..B` (B excluded).
    #[arg(long, value_parser = parse_range, conflicts_with = "count")]
    seeds: Option<Range<u64>>,
    /// This many seeds from each scenario's first seed.
    #[arg(long)]
    count: Option<u64>,
}

#[derive(clap::Args)]
struct Common {
    /// Threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop a scenario at its first failing seed.
    #[arg(long)]
    stop_at_first: bool,
    /// Run each seed twice and compare the histories.
    #[arg(long)]
    determinism: bool,
    /// Configuration swarm: each seed also draws the group's assignor,
    /// commit strategy, ordering, in-flight bound, retry policy and static
    /// membership (known-bad scenarios and those with a no-rebalance window keep theirs).
    #[arg(long)]
    vary_config: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Do not shrink the first failing seed of each scenario.
    #[arg(long)]
    no_shrink: bool,
    /// Wall time the shrink of a failing seed may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    shrink_budget: std::time::Duration,
    /// Run only shard K of N of each scenario's seeds (`2/8`): a
    /// deterministic slice; `ruckus merge` puts the shards' reports
    /// together.
    #[arg(long, value_parser = runner::Shard::parse)]
    shard: Option<runner::Shard>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    ruckus_chaos::duration::parse(s).map_err(|e| e.to_string())
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}` is not a range: expected A..B"))?;
    let a: u64 = a.parse().map_err(|_| format!("`{a}` is not a seed"))?;
    let b: u64 = b.parse().map_err(|_| format!("`{b}` is not a seed"))?;
    if b <= a {
        return Err(format!("`{s}` is empty"));
    }
    Ok(a..b)
}

fn main() -> ExitCode {
    ruckus_chaos::quiet_simulated_panics();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            file,
            seeds,
            common,
        } => match load_all(&[file]) {
            Ok(scs) => sweep(&scs, &seeds, &common, false, None),
            Err(code) => code,
        },
        Command::Sweep {
            paths,
            seeds,
            common,
            report,
        } => match load_all(&paths) {
            Ok(scs) => sweep(&scs, &seeds, &common, true, Some(&report)),
            Err(code) => code,
        },
        Command::Replay {
            file,
            seed,
            all,
            json,
            vary_config,
            html,
        } => match load_all(&[file]) {
            Ok(scs) if vary_config => {
                let varied = ruckus_chaos::swarm::vary(&scs[0], seed);
                if !json {
                    println!(
                        "# configuration drawn: {}",
                        ruckus_chaos::swarm::describe(&varied.group)
                    );
                }
                replay(&varied, seed, all, json, html.as_deref(), true)
            }
            Ok(scs) => replay(&scs[0], seed, all, json, html.as_deref(), false),
            Err(code) => code,
        },
        Command::Shrink {
            file,
            seed,
            budget,
            out,
            vary_config,
        } => match load_all(&[file]) {
            Ok(scs) => {
                let sc = ruckus_chaos::swarm::as_run(&scs[0], seed, vary_config);
                let opts = shrink::Options {
                    budget,
                    progress: true,
                    ..shrink::Options::default()
                };
                match shrink_one(&sc, seed, &opts, out.as_deref()) {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(code) => code,
                }
            }
            Err(code) => code,
        },
        Command::Explore {
            paths,
            duration,
            out,
            threads,
            batch,
            vary_config,
            shrink_budget,
            json,
        } => match load_all(&paths) {
            Ok(scs) => {
                let mut o = ruckus_chaos::explore::ExploreOptions::new(out);
                o.duration = duration;
                if let Some(t) = threads {
                    o.threads = t;
                    o.batch = 2 * t as u64;
                }
                if let Some(b) = batch {
                    o.batch = b;
                }
                o.vary_config = vary_config;
                o.shrink_budget = shrink_budget;
                o.progress = !json;
                explore(&scs, &o, json)
            }
            Err(code) => code,
        },
        Command::Check { paths, json } => check_files(&paths, json),
        Command::Blackbox { args } => blackbox(&args),
        Command::Merge {
            reports,
            report,
            json,
        } => merge(&reports, &report, json),
        Command::List { paths, json } => match load_all(&paths) {
            Ok(scs) => list(&scs, json),
            Err(code) => code,
        },
    }
}

/// Hands `args` to `ruckus-blackbox`, found beside this program (cargo
/// builds both into the same directory).
fn blackbox(args: &[String]) -> ExitCode {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("ruckus-blackbox")));
    let Some(program) = beside.filter(|p| p.exists()) else {
        eprintln!(
            "ruckus blackbox: `ruckus-blackbox` is not built beside this program; build it with \
             `cargo build -p ruckus-integration --bin ruckus-blackbox` (the same profile), or run \
             `cargo run -p ruckus-integration --bin ruckus-blackbox -- ...`"
        );
        return ExitCode::from(2);
    };
    match std::process::Command::new(&program).args(args).status() {
        Ok(s) => ExitCode::from(s.code().map_or(2, |c| u8::try_from(c).unwrap_or(2))),
        Err(e) => {
            eprintln!("ruckus blackbox: {}: {e}", program.display());
            ExitCode::from(2)
        }
    }
}

fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths.to_vec()
    };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(runner::discover(&p).map_err(|e| format!("{}: {e}", p.display()))?);
        } else {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err("no scenario files found".into());
    }
    Ok(out)
}

fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, ExitCode> {
    let files = files(paths).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    let mut out = Vec::new();
    let mut bad = false;
    for f in files {
        match Scenario::load(&f) {
            Ok(s) => out.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
            }
        }
    }
    if bad {
        return Err(ExitCode::from(2));
    }
    Ok(out)
}

fn seed_range(sc: &Scenario, args: &SeedArgs, sweep: bool) -> Range<u64> {
    if let Some(s) = args.seed {
        return s..s + 1;
    }
    if let Some(r) = &args.seeds {
        return r.clone();
    }
    let n = args
        .count
        .unwrap_or(if sweep { sc.seeds.sweep } else { sc.seeds.ci });
    sc.seeds.first..sc.seeds.first + n
}

fn sweep(
    scs: &[Scenario],
    seeds: &SeedArgs,
    common: &Common,
    is_sweep: bool,
    report: Option<&Path>,
) -> ExitCode {
    let mut reports: Vec<ScenarioReport> = Vec::new();
    let mut pages = std::collections::BTreeMap::new();
    for sc in scs {
        if !sc.runs_in_simulation() {
            eprintln!(
                "skipped {}: it runs on real brokers only (its `backends` omit \"sim\")",
                sc.name
            );
            continue;
        }
        let mut opts = Options::new(seed_range(sc, seeds, is_sweep));
        if let Some(t) = common.threads {
            opts.threads = t;
        }
        opts.stop_at_first = common.stop_at_first;
        opts.determinism = common.determinism;
        opts.vary_config = common.vary_config;
        opts.progress = !common.json;
        opts.shard = common.shard;
        let r = runner::run_scenario(sc, &opts);
        if !common.json {
            print_failures(&r);
        }
        if !common.no_shrink {
            // The first failing seed that broke an invariant (a known-bad
            // scenario's seeds fail by finding nothing: nothing to shrink).
            if let Some(s) = r.failures().find(|s| !s.violations.is_empty()) {
                let seed = s.seed;
                let target = ruckus_chaos::swarm::as_run(sc, seed, common.vary_config);
                let opts = shrink::Options {
                    budget: common.shrink_budget,
                    progress: !common.json,
                    ..shrink::Options::default()
                };
                // Beside the report (`run`: under target/ruckus). Its
                // errors are printed; the sweep's verdict stands.
                let out = report.map(|r| {
                    r.parent()
                        .unwrap_or(Path::new("."))
                        .join("shrunk")
                        .join(format!("{}-seed{seed}.toml", sc.name))
                });
                let _ = shrink_one(&target, seed, &opts, out.as_deref());
            }
        }
        if let Some(report) = report {
            pages.insert(r.scenario.clone(), draw_seeds(sc, &r, common, report));
        }
        reports.push(r);
    }
    if let Some(report) = report {
        let path = report.with_extension("html");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::write(&path, ruckus_chaos::picture::summary_html(&reports, &pages)) {
            Ok(()) if !common.json => println!("summary page: {}", path.display()),
            Ok(()) => {}
            Err(e) => eprintln!("error: cannot write {}: {e}", path.display()),
        }
    }
    finish(&reports, report, common.json)
}

/// The pictures a sweep draws for a scenario, beside its report: every
/// failing seed's (rerun: the run is deterministic), and for a known-bad
/// scenario the first seed that caught its bug. Their links, relative to
/// the report.
fn draw_seeds(
    sc: &Scenario,
    r: &ScenarioReport,
    common: &Common,
    report: &Path,
) -> Vec<(u64, String)> {
    let mut seeds: Vec<u64> = r
        .failures()
        .filter(|s| s.error.is_none() || !s.violations.is_empty())
        .map(|s| s.seed)
        .collect();
    if let Some(x) = r.expected_violation {
        if let Some(s) = r
            .seeds
            .iter()
            .filter(|s| s.violations.iter().any(|v| v.invariant == x))
            .min_by_key(|s| s.seed)
        {
            seeds.push(s.seed);
        }
    }
    seeds.sort_unstable();
    seeds.dedup();
    let dir = report.parent().unwrap_or(Path::new(".")).join("pages");
    let mut links = Vec::new();
    for seed in seeds {
        let target = ruckus_chaos::swarm::as_run(sc, seed, common.vary_config);
        let Ok(out) = runner::run_caught(&target, seed) else {
            continue;
        };
        let name = format!("{}-seed{seed}.html", sc.name);
        match write_picture(&target, seed, &out, common.vary_config, &dir.join(&name)) {
            Ok(()) => links.push((seed, format!("pages/{name}"))),
            Err(e) => eprintln!("error: {e}"),
        }
    }
    links
}

/// Shrinks `seed` of `sc`, writes the small scenario and says what was
/// reduced; the path written.
fn shrink_one(
    sc: &Scenario,
    seed: u64,
    opts: &shrink::Options,
    out: Option<&Path>,
) -> Result<PathBuf, ExitCode> {
    let run = |c: &Scenario, s: u64| runner::run_caught(c, s).map_err(|p| p.to_string());
    let shrunk = shrink::shrink(sc, seed, opts, run).map_err(|e| {
        eprintln!("ruckus shrink: {e}");
        ExitCode::from(2)
    })?;
    let path = out.map_or_else(
        || PathBuf::from(format!("target/ruckus/shrunk/{}-seed{seed}.toml", sc.name)),
        Path::to_path_buf,
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let header = format!(
        "# {shrunk}\n# check it: ruckus check {p}\n# replay it: ruckus replay {p} --seed {seed}\n",
        p = path.display()
    );
    if let Err(e) = std::fs::write(&path, header + &shrunk.text) {
        eprintln!("ruckus shrink: cannot write {}: {e}", path.display());
        return Err(ExitCode::from(2));
    }
    println!("shrunk {shrunk}");
    println!("  written to {}", path.display());
    println!(
        "  replay it: cargo run -p ruckus-chaos --bin ruckus -- replay {} --seed {seed}",
        path.display()
    );
    Ok(path)
}

fn explore(scs: &[Scenario], o: &ruckus_chaos::explore::ExploreOptions, json: bool) -> ExitCode {
    let r = match ruckus_chaos::explore::explore(scs, o) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    } else {
        println!(
            "explored {} seeds of {} scenarios in {:.1}s: {} failing seeds, {} known-bad catches saved",
            r.seeds_run,
            r.ranges.len(),
            r.wall_ms as f64 / 1000.0,
            r.failures().count(),
            r.findings.len() - r.failures().count()
        );
        for (sc, ranges) in &r.ranges {
            let (a, b) = (ranges[0].0, ranges[ranges.len() - 1].1);
            println!("  {sc}: seeds {a}..{b}");
        }
        for f in &r.findings {
            println!(
                "{} {} seed {}: {:?}\n  {}\n  saved in {}{}",
                if f.known_bad { "caught" } else { "FAIL" },
                f.scenario,
                f.seed,
                f.invariants,
                f.repro,
                f.dir,
                f.shrunk
                    .as_ref()
                    .map_or(String::new(), |s| format!("\n  shrunk: {s}"))
            );
        }
        println!(
            "state (the next seed of each scenario): {}",
            o.out.join("state.json").display()
        );
    }
    if r.failures().next().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes the report, prints it, and exits by the verdicts.
fn finish(reports: &[ScenarioReport], report: Option<&Path>, as_json: bool) -> ExitCode {
    let json = serde_json::to_string_pretty(&reports).expect("reports serialize");
    if let Some(path) = report {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(path, &json) {
            eprintln!("error: cannot write the report to {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if as_json {
        println!("{json}");
    } else {
        print_table(reports);
        if let Some(path) = report {
            println!("report: {}", path.display());
        }
    }
    if reports.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn merge(paths: &[PathBuf], report: &Path, json: bool) -> ExitCode {
    let mut all = Vec::new();
    for p in paths {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return ExitCode::from(2);
            }
        };
        match serde_json::from_str::<Vec<ScenarioReport>>(&text) {
            Ok(rs) => all.extend(rs),
            Err(e) => {
                eprintln!(
                    "error: {}:{}:{}: not a ruckus sweep report: {e}",
                    p.display(),
                    e.line(),
                    e.column()
                );
                return ExitCode::from(2);
            }
        }
    }
    match runner::merge(all) {
        Ok(merged) => {
            if !json {
                for r in &merged {
                    print_failures(r);
                }
            }
            // The summary page, linking the pictures the shards drew that
            // are beside the merged report (`pages/`).
            let dir = report.parent().unwrap_or(Path::new("."));
            let mut pages: std::collections::BTreeMap<String, Vec<(u64, String)>> =
                std::collections::BTreeMap::new();
            if let Ok(entries) = std::fs::read_dir(dir.join("pages")) {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect();
                names.sort();
                for name in names {
                    let Some((scenario, seed)) = name
                        .strip_suffix(".html")
                        .and_then(|n| n.rsplit_once("-seed"))
                        .and_then(|(sc, s)| Some((sc.to_owned(), s.parse::<u64>().ok()?)))
                    else {
                        continue;
                    };
                    pages
                        .entry(scenario)
                        .or_default()
                        .push((seed, format!("pages/{name}")));
                }
            }
            let html = report.with_extension("html");
            let _ = std::fs::create_dir_all(dir);
            match std::fs::write(&html, ruckus_chaos::picture::summary_html(&merged, &pages)) {
                Ok(()) if !json => println!("summary page: {}", html.display()),
                Ok(()) => {}
                Err(e) => eprintln!("error: cannot write {}: {e}", html.display()),
            }
            finish(&merged, Some(report), json)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_failures(r: &ScenarioReport) {
    if r.expected_violation.is_some() && !r.passed && r.failures().next().is_none() {
        println!("FAIL {}: {}", r.scenario, r.verdict);
    }
    for s in r.failures().take(5) {
        println!("FAIL {} seed {}", r.scenario, s.seed);
        if let Some(e) = &s.error {
            println!("  simulation failed: {e}");
        }
        if s.deterministic == Some(false) {
            println!("  not deterministic: the second run's history differs");
        }
        if let Some(c) = &s.config {
            println!("  configuration drawn: {c}");
        }
        for v in &s.violations {
            for line in v.to_string().lines() {
                println!("  {line}");
            }
        }
        println!("  reproduce with: {}", s.repro);
    }
}

fn print_table(reports: &[ScenarioReport]) {
    let w = reports
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:<w$}  {:>6}  {:>6}  {:>9}  {:>9}  {:>13}  {:>8}  {:>11}  {:>7}  verdict",
        "scenario",
        "seeds",
        "failed",
        "wall",
        "seeds/min",
        "seeds/min/core",
        "sim/wall",
        "on owners",
        "reached"
    );
    for r in reports {
        let per_min = if r.wall_ms > 0 {
            r.seeds_run as f64 * 60_000.0 / r.wall_ms as f64
        } else {
            0.0
        };
        let reach = r.on_owners();
        // The named states reached in at least one seed, of those named.
        let reached = if r.reach.is_empty() {
            "-".to_owned()
        } else {
            format!("{}/{}", r.reach.len() - r.unreached.len(), r.reach.len())
        };
        println!(
            "{:<w$}  {:>6}  {:>6}  {:>8.1}s  {:>9.0}  {:>13.0}  {:>7.0}x  {:>11}  {:>7}  {} {}",
            r.scenario,
            r.seeds_run,
            r.seeds_failed,
            r.wall_ms as f64 / 1000.0,
            per_min,
            r.seeds_per_min_per_core,
            r.sim_per_wall,
            reach,
            reached,
            if r.passed { "PASS" } else { "FAIL" },
            r.verdict
        );
    }
    let failed = reports.iter().filter(|r| !r.passed).count();
    println!(
        "{} scenarios, {} passed, {} failed",
        reports.len(),
        reports.len() - failed,
        failed
    );
}

/// Draws a run of `sc` with `seed` into `path`.
fn write_picture(
    sc: &Scenario,
    seed: u64,
    out: &ruckus_chaos::run::RunOutput,
    vary_config: bool,
    path: &Path,
) -> Result<(), String> {
    let picture = ruckus_chaos::picture::Picture::new(
        &sc.name,
        &sc.description,
        seed,
        &out.history,
        &out.violations,
        runner::repro(sc, seed, vary_config),
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, ruckus_chaos::picture::html(&picture))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn replay(
    sc: &Scenario,
    seed: u64,
    all: bool,
    json: bool,
    html: Option<&Path>,
    vary_config: bool,
) -> ExitCode {
    let out = match ruckus_chaos::runner::run_caught(sc, seed) {
        Ok(out) => out,
        Err(why) => {
            eprintln!("{} seed {seed}: {why}", sc.name);
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = html {
        if let Err(e) = write_picture(sc, seed, &out, vary_config, path) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        eprintln!("picture: {}", path.display());
    }
    let violations = out.violations.clone();
    if json {
        let lines: Vec<String> = out.history.iter().map(render).collect();
        let v = serde_json::json!({
            "scenario": sc.name,
            "seed": seed,
            "error": out.error.as_ref().map(ToString::to_string),
            "violations": violations,
            "explanations": violations
                .iter()
                .map(|v| ruckus_chaos::explain::explain(&out.history, v))
                .collect::<Vec<_>>(),
            "history": lines,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!("# {} seed {seed}: {}", sc.name, sc.description.trim());
        if let Some(n) = &sc.nemesis {
            println!(
                "# nemesis kinds this seed: {:?}",
                nemesis::enabled_kinds(n, seed)
            );
        }
        for e in &out.history {
            let per_record = matches!(
                &e.record,
                Record::Client(
                    Event::Produced { .. }
                        | Event::Fetched { .. }
                        | Event::ProcessingStarted { .. }
                        | Event::ProcessingSucceeded { .. }
                        | Event::CommitRequested { .. }
                        | Event::Committed { .. }
                ) | Record::Broker(
                    BrokerEvent::Appended { .. } | BrokerEvent::CommitHandled { .. }
                )
            );
            if all || !per_record {
                println!("{}", render(e));
            }
        }
        println!(
            "# {} events, {:.3}s simulated; converged at {}; final stop of every member at {}",
            out.history.len(),
            out.elapsed.as_secs_f64(),
            out.context
                .liveness
                .converged_at
                .map_or("never".to_owned(), |t| t.to_string()),
            out.final_stop_at
                .map_or("never".to_owned(), |t| t.to_string())
        );
        if let Some(e) = &out.error {
            println!("# simulation failed: {e}");
        }
        for v in &violations {
            print!("# VIOLATION {v}");
            println!("# how it happened:");
            for line in ruckus_chaos::explain::explain(&out.history, v) {
                println!("#   {line}");
            }
        }
        if violations.is_empty() {
            println!("# every invariant holds");
        }
    }
    let ok = out.error.is_none() && sc.expect.judge(&violations, false).is_ok();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check_files(paths: &[PathBuf], json: bool) -> ExitCode {
    let files = match files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let results: Vec<(PathBuf, Result<Scenario, ScenarioError>)> = files
        .into_iter()
        .map(|f| {
            let r = Scenario::load(&f);
            (f, r)
        })
        .collect();
    let bad = results.iter().filter(|(_, r)| r.is_err()).count();
    if json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(f, r)| match r {
                Ok(_) => serde_json::json!({"file": f.display().to_string(), "ok": true}),
                Err(e) => serde_json::json!({
                    "file": e.file, "ok": false, "line": e.line,
                    "column": e.column, "message": e.message,
                }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        for (f, r) in &results {
            match r {
                Ok(_) => println!("ok    {}", f.display()),
                Err(e) => println!("error {e}"),
            }
        }
        println!("{} files, {} malformed", results.len(), bad);
    }
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn list(scs: &[Scenario], json: bool) -> ExitCode {
    if json {
        let v: Vec<serde_json::Value> = scs
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "path": s.path.display().to_string(),
                    "description": s.description.trim(),
                    "expected_violation": s.expect.violation,
                    "faults": s.faults.len(),
                    "nemesis": s.nemesis.is_some(),
                    "ci_seeds": s.seeds.ci,
                    "backends": s.backends,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return ExitCode::SUCCESS;
    }
    let w = scs.iter().map(|s| s.name.len()).max().unwrap_or(8);
    for s in scs {
        let kind = match s.expect.violation {
            Some(v) => format!("known-bad → {v}"),
            None => "must hold".to_owned(),
        };
        let first = s.description.trim().lines().next().unwrap_or("");
        println!("{:<w$}  {:<34}  {}", s.name, kind, first);
    }
    ExitCode::SUCCESS
}
