//! Configuration swarm: a seed also draws the consumer group's
//! configuration, so one scenario file exercises the reference consumer
//! under every assignor, commit strategy, ordering, in-flight bound, retry
//! policy and membership kind, not only the one the file names.
//!
//! Turned on with `--vary-config` (CLI) or `RUCKUS_VARY_CONFIG=1` (the
//! scenario tests). The draw is a pure function of the seed, so a failing
//! seed replays with the same configuration; the report names it.
//! Known-bad scenarios keep their configuration: it is what they are about.

use ruckus_core::rng::{Rng, SplitMix64};

use crate::duration::Dur;
use crate::scenario::{CommitSpec, GroupSpec, OrderingSpec, RetrySpec, Scenario};

/// The assignors drawn from.
pub const ASSIGNORS: [&str; 4] = ["range", "roundrobin", "sticky", "cooperative-sticky"];

/// The scenario seed `seed` of `sc` runs: `sc` itself, or with the
/// configuration swarm on (`vary_config`), its [`vary`]ied copy.
pub fn as_run(sc: &Scenario, seed: u64, vary_config: bool) -> std::borrow::Cow<'_, Scenario> {
    if vary_config {
        std::borrow::Cow::Owned(vary(sc, seed))
    } else {
        std::borrow::Cow::Borrowed(sc)
    }
}

/// `sc` with its group configuration drawn from `seed` (unchanged for a
/// known-bad scenario and for one with a no-rebalance window).
pub fn vary(sc: &Scenario, seed: u64) -> Scenario {
    let mut out = sc.clone();
    // Known-bad scenarios keep their configuration; so do scenarios whose
    // expectation is tied to it: a no-rebalance window assumes the file's
    // group forms before the window opens and relies on its static
    // membership (a drawn configuration can stretch the forming rounds
    // past it: cooperative follow-ups behind slow revocations).
    if sc.expect.violation.is_some()
        || sc.group.known_bad.is_some()
        || sc.expect.no_rebalance_after.is_some()
    {
        return out;
    }
    let mut rng = SplitMix64::new(seed ^ 0x0053_5741_524d_4346);
    let mut pick = |n: usize| (rng.next_u64() % n as u64) as usize;
    let g = &mut out.group;
    g.assignor = ASSIGNORS[pick(ASSIGNORS.len())].to_owned();
    g.commit = [
        CommitSpec::PerRecord,
        CommitSpec::Periodic,
        CommitSpec::OnRevoke,
    ][pick(3)];
    if g.commit == CommitSpec::Periodic {
        g.commit_records = [1, 50, 200][pick(3)];
        g.commit_interval = [Dur::ms(100), Dur::ms(500), Dur::secs(2)][pick(3)];
    }
    g.ordering = [OrderingSpec::Partition, OrderingSpec::Key][pick(2)];
    g.max_in_flight = [1, 4, 16, 256][pick(4)];
    g.retry = match pick(3) {
        0 => RetrySpec::default(),
        // No retry: every failure is dead-lettered at once.
        1 => RetrySpec {
            max_attempts: 1,
            ..RetrySpec::default()
        },
        // Long backoffs: partitions sit paused for retries for seconds.
        _ => RetrySpec {
            max_attempts: 6,
            initial_backoff: Dur::ms(500),
            max_backoff: Dur::secs(3),
            multiplier: 2.0,
            jitter: 0.2,
        },
    };
    g.static_membership = pick(2) == 1;
    // Some draws are slow by nature, not stuck: per-record commits are
    // awaited one after another (a commit round trip per record with
    // max_in_flight = 1), and long retry backoffs hold partitions for
    // seconds. The liveness bound grows so that only a group that stops
    // making progress misses it. (A run that converges ends early; one
    // that commits only on revoke always runs to the bound, so it keeps
    // the file's.)
    if g.commit != CommitSpec::OnRevoke {
        out.phases.quiet = out.phases.quiet.max(Dur::secs(SWARM_QUIET_SECS));
    }
    out
}

/// The liveness bound of a varied run, in seconds (unless the file's is
/// longer).
pub const SWARM_QUIET_SECS: u64 = 240;

/// The drawn dimensions of a group configuration, in one line.
pub fn describe(g: &GroupSpec) -> String {
    let commit = match g.commit {
        CommitSpec::PerRecord => "per-record".to_owned(),
        CommitSpec::Periodic => format!(
            "periodic({} records/{})",
            g.commit_records, g.commit_interval
        ),
        CommitSpec::OnRevoke => "on-revoke".to_owned(),
        CommitSpec::KnownBadAutoCommit => "known-bad-auto-commit".to_owned(),
    };
    format!(
        "assignor={} commit={} ordering={} max_in_flight={} retry={}x{}..{} static={}",
        g.assignor,
        commit,
        match g.ordering {
            OrderingSpec::Partition => "partition",
            OrderingSpec::Key => "key",
        },
        g.max_in_flight,
        g.retry.max_attempts,
        g.retry.initial_backoff,
        g.retry.max_backoff,
        g.static_membership
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::parse("t.toml", "description = \"t\"\n").expect("valid")
    }

    #[test]
    fn the_draw_is_a_function_of_the_seed() {
        let sc = scenario();
        for seed in 0..50 {
            assert_eq!(
                describe(&vary(&sc, seed).group),
                describe(&vary(&sc, seed).group)
            );
        }
    }

    #[test]
    fn the_draw_covers_every_dimension() {
        let sc = scenario();
        let drawn: Vec<GroupSpec> = (0..400).map(|s| vary(&sc, s).group).collect();
        for a in ASSIGNORS {
            assert!(drawn.iter().any(|g| g.assignor == a), "{a}");
        }
        for c in [
            CommitSpec::PerRecord,
            CommitSpec::Periodic,
            CommitSpec::OnRevoke,
        ] {
            assert!(drawn.iter().any(|g| g.commit == c), "{c:?}");
        }
        assert!(drawn.iter().any(|g| g.ordering == OrderingSpec::Key));
        assert!(drawn.iter().any(|g| g.static_membership));
        assert!(drawn.iter().any(|g| g.max_in_flight == 1));
        assert!(drawn.iter().any(|g| g.retry.max_attempts == 1));
    }

    #[test]
    fn a_known_bad_scenario_keeps_its_configuration() {
        let mut sc = scenario();
        sc.group.commit = CommitSpec::KnownBadAutoCommit;
        sc.expect.violation = Some(crate::check::Invariant::ZeroLoss);
        for seed in 0..20 {
            assert_eq!(vary(&sc, seed).group.commit, CommitSpec::KnownBadAutoCommit);
        }
    }

    #[test]
    fn a_scenario_with_a_no_rebalance_window_keeps_its_configuration() {
        let mut sc = scenario();
        sc.group.static_membership = true;
        sc.expect.no_rebalance_after = Some(Dur::secs(2));
        for seed in 0..20 {
            let g = vary(&sc, seed).group;
            assert!(g.static_membership, "seed {seed}");
            assert_eq!(describe(&g), describe(&sc.group), "seed {seed}");
        }
    }
}
