//! The order processor under ruckus's bundled scenarios and two of its own,
//! in the simulation and on librdkafka's mock cluster where a scenario
//! declares it, and each buggy processor caught with the violation it must
//! break.

use ruckus_chaos::check::Invariant;
use ruckus_chaos::scenario::Backend;
use ruckus_chaos::suite::{Suite, SuiteReport};
use ruckus_example_orders::{buggy, order_payload, Orders};
use ruckus_integration::RealBrokers;

const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
const STORE_FAULTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/store_faults.toml");
const STORE_OUTAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/store_outage.toml");
const CRASH_REDELIVERY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scenarios/crash_redelivery.toml"
);

fn bundled(name: &str) -> String {
    format!("{BUNDLED}/{name}.toml")
}

/// Asserts a buggy processor was caught breaking `inv` in the simulation
/// and on the mock cluster (which always runs here).
fn caught(report: &SuiteReport, inv: Invariant) {
    assert!(report.passed(), "{}", report.explain());
    assert!(
        report.found_in_simulation(inv),
        "not caught in the simulation"
    );
    assert!(
        report.found_on(inv).any(|b| b == Backend::Mock),
        "not caught on the mock cluster: {:?}",
        report.real
    );
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
        .on_real_brokers(RealBrokers)
        .check();
}

#[test]
fn orders_survive_store_faults_and_redelivery() {
    Suite::new(Orders::factory)
        .scenario(STORE_FAULTS)
        .scenario(STORE_OUTAGE)
        .scenario(CRASH_REDELIVERY)
        .payloads(order_payload)
        .on_real_brokers(RealBrokers)
        .check();
}

#[test]
fn a_processor_that_acknowledges_before_its_buffered_write_is_caught() {
    let report = Suite::new(buggy::Buffered::factory)
        .scenario(bundled("consumer_crash_loop"))
        .payloads(order_payload)
        .judge_effects()
        .expect_violation(Invariant::EffectBeforeCommit)
        .on_real_brokers(RealBrokers)
        .run()
        .expect("runs");
    caught(&report, Invariant::EffectBeforeCommit);
}

#[test]
fn a_processor_that_swallows_a_store_error_is_caught() {
    let report = Suite::new(buggy::Swallowing::factory)
        .scenario(STORE_OUTAGE)
        .payloads(order_payload)
        .expect_violation(Invariant::EffectLoss)
        .on_real_brokers(RealBrokers)
        .run()
        .expect("runs");
    caught(&report, Invariant::EffectLoss);
}

#[test]
fn a_processor_that_writes_twice_on_redelivery_is_caught() {
    let report = Suite::new(buggy::DoubleWriting::factory)
        .scenario(CRASH_REDELIVERY)
        .payloads(order_payload)
        .judge_effects()
        .expect_violation(Invariant::EffectDuplicates)
        .on_real_brokers(RealBrokers)
        .run()
        .expect("runs");
    caught(&report, Invariant::EffectDuplicates);
}

/// The store faults reach the writes: the good processor sees its writes
/// fail and time out, and retries them, in every seed of its scenario.
#[test]
fn the_store_faults_reach_the_writes() {
    use ruckus_chaos::scenario::Scenario;
    use ruckus_chaos::world::{run_with, App};
    use ruckus_core::events::Event;

    let sc = Scenario::load(std::path::Path::new(STORE_FAULTS)).expect("valid");
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
