//! Same scenario, same seed, same history — byte for byte: run twice in a
//! row, and beside another simulation on a second thread.

use ruckus_chaos::check::render;
use ruckus_chaos::scenario::Scenario;
use ruckus_chaos::world;

fn scenario(name: &str) -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn bytes(sc: &Scenario, seed: u64) -> String {
    let out = world::run(sc, seed);
    assert!(out.error.is_none(), "seed {seed}: {:?}", out.error);
    out.history
        .iter()
        .map(render)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_nemesis_seed_replays_byte_for_byte() {
    ruckus_chaos::quiet_simulated_panics();
    let sc = scenario("nemesis_mix");
    for seed in [1, 2, 3] {
        let (a, b) = (bytes(&sc, seed), bytes(&sc, seed));
        assert!(a.len() > 10_000, "seed {seed}: a short history");
        assert!(a == b, "seed {seed}: the second run differs; reproduce with RUCKUS_SEED={seed} cargo test -p ruckus-chaos --test determinism");
    }
}

#[test]
fn a_seed_replays_beside_another_simulation() {
    ruckus_chaos::quiet_simulated_panics();
    let crash = scenario("consumer_crash_loop");
    let zombie = scenario("zombie_member");
    let alone = bytes(&crash, 7);
    let beside = std::thread::scope(|s| {
        let other = s.spawn(|| bytes(&zombie, 7));
        let mine = bytes(&crash, 7);
        other.join().expect("the other simulation ran");
        mine
    });
    assert!(
        alone == beside,
        "seed 7 differs when another simulation runs beside it"
    );
}

#[test]
fn different_seeds_explore_different_histories() {
    let sc = scenario("steady_state");
    assert_ne!(bytes(&sc, 1), bytes(&sc, 2));
}
