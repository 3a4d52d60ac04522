//! The order processor under ruckus's bundled scenarios and one of its own,
//! and each buggy processor caught, with the violation it must break.

use ruckus_chaos::check::Invariant;
use ruckus_chaos::suite::Suite;
use ruckus_example_orders::{buggy, order_payload, Orders};

const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/store_faults.toml");

fn bundled(name: &str) -> String {
    format!("{BUNDLED}/{name}.toml")
}

#[test]
fn orders_survive_member_and_broker_faults() {
    Suite::new(Orders::factory)
        .scenario(bundled("steady_state"))
        .scenario(bundled("consumer_crash_loop"))
        .scenario(bundled("broker_crash_coordinator"))
        .scenario(bundled("rolling_restart"))
        .payloads(order_payload)
        .judge_effects()
        .check();
}

#[test]
fn orders_survive_store_faults() {
    Suite::new(Orders::factory)
        .scenario(OWN)
        .payloads(order_payload)
        .check();
}

#[test]
fn a_processor_that_acknowledges_before_its_buffered_write_is_caught() {
    let suite = Suite::new(buggy::Buffered::factory)
        .scenario(bundled("consumer_crash_loop"))
        .payloads(order_payload)
        .judge_effects()
        .expect_violation(Invariant::EffectBeforeCommit);
    let report = suite.run().expect("runs");
    assert!(report.passed(), "{}", report.explain());
    assert!(report.found(Invariant::EffectBeforeCommit));
}

#[test]
fn a_processor_that_swallows_a_store_error_is_caught() {
    let suite = Suite::new(buggy::Swallowing::factory)
        .scenario(OWN)
        .payloads(order_payload)
        .expect_violation(Invariant::EffectLoss);
    let report = suite.run().expect("runs");
    assert!(report.passed(), "{}", report.explain());
    assert!(report.found(Invariant::EffectLoss));
}

#[test]
fn a_processor_that_writes_twice_on_redelivery_is_caught() {
    let suite = Suite::new(buggy::DoubleWriting::factory)
        .scenario(bundled("consumer_crash_loop"))
        .payloads(order_payload)
        .judge_effects()
        .expect_violation(Invariant::EffectDuplicates);
    let report = suite.run().expect("runs");
    assert!(report.passed(), "{}", report.explain());
    assert!(report.found(Invariant::EffectDuplicates));
}

/// The store faults reach the writes: the good processor sees its writes
/// fail and time out, and retries them, in every seed of its scenario.
#[test]
fn the_store_faults_reach_the_writes() {
    use ruckus_chaos::scenario::Scenario;
    use ruckus_chaos::world::{run_with, App};
    use ruckus_core::events::Event;

    let sc = Scenario::load(std::path::Path::new(OWN)).expect("valid");
    let mut app = App::new(Orders::factory);
    app.payloads = ruckus_chaos::Payloads::new(order_payload);
    for seed in sc.seeds.first..sc.seeds.first + sc.seeds.ci {
        let out = run_with(&sc, seed, &app);
        let failed_write = |during: std::ops::Range<u64>, what: &str| {
            out.history.iter().any(|e| {
                during.contains(&e.at.as_millis())
                    && matches!(e.event(), Some(Event::ProcessingFailed { message, .. })
                        if message.contains("the store") && message.contains(what))
            })
        };
        // The outage (1.5 s–3.5 s) and the cut link (4.5 s–6 s) fail writes;
        // the slow link (6.5 s–8.5 s) times them out.
        assert!(
            failed_write(1_500..3_600, ""),
            "seed {seed}: the outage hit no write"
        );
        assert!(
            failed_write(4_500..6_100, ""),
            "seed {seed}: the cut link hit no write"
        );
        assert!(
            failed_write(6_500..8_600, "no answer"),
            "seed {seed}: the slow link timed out no write"
        );
        assert!(
            out.violations.is_empty(),
            "seed {seed}: {:?}",
            out.violations
        );
    }
}
