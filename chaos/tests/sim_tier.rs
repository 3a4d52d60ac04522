//! The simulation's own tests of the reference consumer, on the one run
//! builder ([`world::run`]) every entry point uses: each runs a scenario
//! written here, judges it with every invariant, and then checks that its
//! fault mattered (what the bundled scenario files cannot say).
//!
//! The simpler cases of the old simulator tier — steady state, broker,
//! coordinator and member crashes, network stalls, paused members, lossy
//! links, clock jumps, commit-error bursts, dead-letter outages, poison
//! records — are bundled scenario files (`scenarios/`), run by
//! `tests/scenarios.rs`.

use ruckus_chaos::check::{self, Invariant};
use ruckus_chaos::scenario::Scenario;
use ruckus_chaos::world::{self, RunOutput};
use ruckus_core::events::Event;
use ruckus_history::Entry;

fn run(text: &str, seed: u64) -> RunOutput {
    ruckus_chaos::quiet_simulated_panics();
    let sc = Scenario::parse("sim_tier.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let out = world::run(&sc, seed);
    assert!(out.error.is_none(), "seed {seed}: {:?}", out.error);
    let v = check::check(&out.history, &out.context, &Invariant::ALL);
    assert!(
        v.is_empty(),
        "seed {seed}: {}",
        v.iter().map(ToString::to_string).collect::<String>()
    );
    out
}

/// Events of `host` from `ms` on matching `f`.
fn after(h: &[Entry], host: &str, ms: u64, f: impl Fn(&Event) -> bool) -> usize {
    h.iter()
        .filter(|e| e.host == host && e.at.as_millis() >= ms)
        .filter(|e| e.event().is_some_and(&f))
        .count()
}

fn assigned(e: &Event) -> bool {
    matches!(e, Event::Assigned { partitions, .. } if !partitions.is_empty())
}

const BASE: &str = "description = \"sim tier\"\n[workload]\nmessages = 3000\ninterval = \"5ms\"\n";

#[test]
fn a_member_crashing_mid_stream_is_taken_over_and_emits_nothing() {
    for seed in [1, 2] {
        let out = run(
            &format!("{BASE}[[fault]]\nkind = \"crash-member\"\nat = \"5s\"\nmember = 1\n"),
            seed,
        );
        let h = &out.history;
        let taken =
            after(h, "consumer-0", 5_000, assigned) + after(h, "consumer-2", 5_000, assigned);
        assert!(
            taken > 0,
            "seed {seed}: nobody took over the crashed member's partitions"
        );
        assert_eq!(
            after(h, "consumer-1", 5_000, |_| true),
            0,
            "seed {seed}: a crashed host emits nothing"
        );
    }
}

#[test]
fn a_member_restarted_after_a_crash_gets_partitions_back() {
    let out = run(
        &format!(
            "{BASE}[[fault]]\nkind = \"crash-member\"\nat = \"5s\"\nmember = 1\nrestart_after = \"1s\"\n"
        ),
        3,
    );
    assert!(
        after(&out.history, "consumer-1", 6_000, assigned) > 0,
        "the restarted member never got partitions back"
    );
}

#[test]
fn a_partition_leader_crash_does_not_stop_its_partitions() {
    // Broker 2 leads partitions 2, 5, 8 and 11 (of 12, on 3 brokers).
    let out = run(
        &format!(
            "{BASE}[cluster]\nbrokers = 3\npartitions = 12\n[[fault]]\nkind = \"crash-broker\"\nat = \"3s\"\nbroker = \"broker-2\"\nrestart_after = \"10s\"\n"
        ),
        1,
    );
    let moved = out.history.iter().any(|e| {
        (3_500..13_000).contains(&e.at.as_millis())
            && matches!(e.event(), Some(Event::ProcessingSucceeded { tp, .. }) if tp.partition.0 % 3 == 2)
    });
    assert!(
        moved,
        "no record of broker 2's partitions was processed while it was down"
    );
}

#[test]
fn every_member_takes_part() {
    let out = run(BASE, 1);
    for i in 0..3 {
        let host = format!("consumer-{i}");
        let n = after(&out.history, &host, 0, |e| {
            matches!(e, Event::ProcessingSucceeded { .. })
        });
        assert!(n > 300, "{host} processed only {n} of 3000");
    }
}

#[test]
fn processor_panics_are_caught_and_lose_nothing() {
    let out = run(&format!("{BASE}[processing]\npanic_rate = 0.005\n"), 1);
    let panics = out
        .history
        .iter()
        .filter(|e| {
            matches!(e.event(), Some(Event::ProcessingFailed { message, .. }) if message.contains("panicked"))
        })
        .count();
    assert!(panics > 5, "only {panics} panics caught");
}

#[test]
fn a_store_fault_on_a_run_without_a_store_is_refused_not_skipped() {
    ruckus_chaos::quiet_simulated_panics();
    let text =
        format!("{BASE}[[fault]]\nkind = \"store-outage\"\nat = \"1s\"\nduration = \"1s\"\n");
    let sc = Scenario::parse("sim_tier.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    // The scenario's scripted processor writes nothing: no store runs.
    let out = world::run(&sc, 1);
    let e = out.error.expect("the run fails at the fault");
    assert!(e.to_string().contains("has no store"), "{e}");
}

#[test]
fn a_processor_factory_is_called_at_every_member_start() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use ruckus_chaos::processor::{MemberStart, Scripted};
    use ruckus_chaos::world::App;

    ruckus_chaos::quiet_simulated_panics();
    let text = format!(
        "{BASE}[[fault]]\nkind = \"crash-member\"\nat = \"2s\"\nmember = 1\nrestart_after = \"1s\"\n\
         [[fault]]\nkind = \"crash-member\"\nat = \"5s\"\nmember = 1\nrestart_after = \"1s\"\n"
    );
    let sc = Scenario::parse("sim_tier.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let starts = Arc::new(AtomicUsize::new(0));
    let (counted, scripted) = (starts.clone(), Scripted(sc.processing.behaviour()));
    let factory = move |m: &MemberStart| {
        counted.fetch_add(1, Ordering::SeqCst);
        ruckus_chaos::processor::ProcessorFactory::start(&scripted, m)
    };
    let out = world::run_with(&sc, 1, &App::new(factory));
    assert!(out.error.is_none(), "{:?}", out.error);
    // Three members at the start, and member 1 twice more.
    assert_eq!(starts.load(Ordering::SeqCst), 5);
    assert!(out.violations.is_empty(), "{:?}", out.violations);
}

/// The bundled crash loop reaches what it is about: every crash lands on a
/// member that owns partitions.
#[test]
fn the_crash_loop_crashes_members_that_own_partitions() {
    ruckus_chaos::quiet_simulated_panics();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/consumer_crash_loop.toml");
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let out = world::run(&sc, 1);
    let reach = out.reach.expect("the simulation records ownership");
    let crashes: Vec<_> = reach.iter().filter(|r| r.kind == "crash-member").collect();
    assert_eq!(crashes.len(), 4, "{reach:?}");
    assert!(
        crashes.iter().all(|r| r.owned > 0),
        "a crash landed on an idle member: {reach:?}"
    );
}
