//! Sweeps spread over engines that already exist: the nightly workflow's
//! matrix of shards and its merge job, and the Kubernetes Indexed Job.
//! Neither can run here, so they are validated against their schemas
//! (GitHub's workflow schema, from schemastore as `check-jsonschema`
//! vendors it; Kubernetes' API schemas, as `kubernetes-validate` bundles
//! them: both from PyPI, installed by `scripts/test.sh`), and their shard
//! arithmetic is checked against `ruckus sweep --shard`. Where a
//! validator is missing, its test is reported IGNORED with the reason,
//! never passed. (The shard-and-merge path itself runs in processes in
//! `tests/shard.rs`.)

// Skip reasons are reported on stderr.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use ruckus_chaos::runner::Shard;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const WORKFLOW: &str = ".github/workflows/nightly.yml";
const SWEEP_JOB: &str = "deploy/k8s/sweep-job.yaml";
const MERGE_JOB: &str = "deploy/k8s/merge-job.yaml";

/// The value after `key:` on the first line that sets it.
fn value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let t = l.trim_start();
        t.strip_prefix(key)?
            .strip_prefix(':')
            .map(|v| v.trim().trim_matches('"').to_owned())
    })
}

fn the_workflow_matrix_covers_every_shard_once() -> Result<(), Failed> {
    let w = read(WORKFLOW);
    let shards: u64 = value(&w, "SHARDS").ok_or("no SHARDS")?.parse()?;
    let matrix = value(&w, "shard").ok_or("no shard matrix")?;
    let listed: Vec<u64> = matrix
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    assert_eq!(listed, (1..=shards).collect::<Vec<_>>(), "matrix vs SHARDS");
    assert!(w.contains(r#"--shard "${{ matrix.shard }}/$SHARDS""#));
    assert!(
        w.contains("needs: sweep"),
        "the merge job waits for the shards"
    );
    assert!(w.contains("ruckus -- merge target/ruckus/shard-*.json"));
    shards_partition_the_seeds(shards, |i| listed[i as usize]);
    Ok(())
}

fn the_indexed_job_covers_every_shard_once() -> Result<(), Failed> {
    let j = read(SWEEP_JOB);
    let completions: u64 = value(&j, "completions").ok_or("no completions")?.parse()?;
    assert_eq!(value(&j, "completionMode").as_deref(), Some("Indexed"));
    let shards_env = j
        .split("- name: SHARDS")
        .nth(1)
        .and_then(|r| value(r, "value"))
        .ok_or("no SHARDS env")?;
    assert_eq!(
        shards_env.parse::<u64>()?,
        completions,
        "completions vs SHARDS"
    );
    assert!(j.contains(r#"--shard "$((JOB_COMPLETION_INDEX + 1))/$SHARDS""#));
    // JOB_COMPLETION_INDEX runs 0..completions.
    shards_partition_the_seeds(completions, |i| i + 1);
    let m = read(MERGE_JOB);
    assert!(m.contains("ruckus merge /reports/shard-*.json"));
    assert!(j.contains("/reports/shard-$((JOB_COMPLETION_INDEX + 1)).json"));
    Ok(())
}

/// Shards `k(0..n)` (as `--shard K/N` parses them) hold every seed
/// position exactly once.
fn shards_partition_the_seeds(n: u64, k: impl Fn(u64) -> u64) {
    let shards: Vec<Shard> = (0..n)
        .map(|i| Shard::parse(&format!("{}/{n}", k(i))))
        .collect::<Result<_, _>>()
        .expect("every shard parses");
    for position in 0..(3 * n + 7) {
        let holders = shards.iter().filter(|s| s.holds(position)).count();
        assert_eq!(holders, 1, "position {position} is in {holders} shards");
    }
}

/// `tool args…`, or why it cannot run here.
fn tool(name: &str, args: &[String]) -> Result<Result<String, String>, String> {
    match Command::new(name).args(args).output() {
        Err(e) => Err(format!("no `{name}` ({e}): pip install {name}")),
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            Ok(if o.status.success() {
                Ok(text)
            } else {
                Err(text)
            })
        }
    }
}

fn path(rel: &str) -> String {
    root().join(rel).display().to_string()
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test(
            "the_workflow_matrix_covers_every_shard_once",
            the_workflow_matrix_covers_every_shard_once,
        ),
        Trial::test(
            "the_indexed_job_covers_every_shard_once",
            the_indexed_job_covers_every_shard_once,
        ),
    ];
    let validators: [(&str, &str, Vec<String>); 2] = [
        (
            "the_workflow_is_a_valid_github_workflow",
            "check-jsonschema",
            vec![
                "--builtin-schema".into(),
                "vendor.github-workflows".into(),
                path(WORKFLOW),
            ],
        ),
        (
            "the_manifests_are_valid_kubernetes_objects",
            "kubernetes-validate",
            vec!["--strict".into(), path(SWEEP_JOB), path(MERGE_JOB)],
        ),
    ];
    for (name, program, argv) in validators {
        // Whether the validator runs at all (`--version`), before the test.
        match tool(program, &["--version".into()]) {
            Ok(Ok(_)) => trials.push(Trial::test(name, move || match tool(program, &argv) {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(out)) => Err(format!("{program} refused it:\n{out}").into()),
                Err(why) => Err(why.into()),
            })),
            Ok(Err(out)) | Err(out) => {
                eprintln!(
                    "SKIPPED {name}: {program} cannot run here ({}); pip install \
                     check-jsonschema kubernetes-validate: reported IGNORED, not passed",
                    out.lines().last().unwrap_or("").trim()
                );
                trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
