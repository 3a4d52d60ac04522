//! # ruckus-sim — the simulation on turmoil
//!
//! A simulated Kafka-like cluster ([`cluster`]) of broker hosts over one
//! shared, perfectly replicated store, running `ruckus-core`'s group
//! coordinator unchanged; a framed request/response protocol over turmoil
//! TCP whose messages mirror Kafka's APIs ([`wire`]); client connections
//! with request timeouts and reconnects ([`client`]); and the simulated
//! [`Transport`](ruckus_core::driver::Transport) the reference consumer
//! runs on ([`transport`]), with group membership through `ruckus-core`'s
//! client state machine.
//!
//! Faults ([`faults`]): crash and restart hosts and brokers, partition and
//! repair links, and per-API errors injected at the brokers; processing
//! behaviour ([`processing`]): latency, transient failures, poison records.
//! Everything derives from the turmoil seed.
//!
//! Host faults: stop-the-world pauses ([`pause`]), clock skew ([`clock`])
//! and message loss on a host's links to the brokers ([`loss`]).
//!
//! Not built yet: producers with idempotence, and a coordinator whose state
//! is lost with its broker (coordination state is shared, so failover loses
//! nothing that Kafka's replicated offsets topic would keep).

pub mod client;
pub mod clock;
pub mod cluster;
pub mod history;
pub mod loss;
pub mod pause;
pub mod processing;
pub mod producer;
pub mod store;
pub mod transport;
pub mod wire;

use std::time::Duration;

/// The one-way latency of every simulated link.
pub const LINK_LATENCY: Duration = Duration::from_millis(20);

/// A turmoil builder configured for replayable runs: seeded, 1 ms ticks,
/// and a **fixed** default link latency (see [`seed_link_latencies`] for
/// per-link variety drawn from the seed).
///
/// Why fixed: turmoil draws each message's latency from its seeded RNG in
/// the order messages are sent. When a host crashes, tokio drops its tasks
/// (and their sockets, each sending a close) in an order that depends on
/// process-global task ids — so with random latencies the same seed gave
/// different histories after other simulations had run in the process, or
/// while one ran beside it. With a fixed latency the draws still happen but
/// cannot change any delivery time. Varied latency belongs in explicit,
/// seeded per-link fault verbs.
pub fn builder(seed: u64, duration: Duration) -> turmoil::Builder {
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .simulation_duration(duration)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(LINK_LATENCY)
        .max_message_latency(LINK_LATENCY)
        // A held link delivers everything it held at once on release,
        // connection attempts included: turmoil's default of 64 queued
        // connections per listener (and segments per socket) overflows —
        // a panic — when a broker is frozen for seconds. The bound only
        // matters where 64 would have been exceeded.
        .tcp_capacity(TCP_CAPACITY);
    b
}

/// Queued connections per listener, and segments per socket, in a
/// simulation.
pub const TCP_CAPACITY: usize = 8192;

/// A stable hash of `names` mixed with `seed` (FNV-1a, names separated by
/// a zero byte), for what a run derives per host or per link: it depends on
/// the names only, never on the order in which hosts or links appear.
pub fn seeded_hash(seed: u64, names: &[&str]) -> u64 {
    let mut h = seed;
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The latency of the link between hosts `a` and `b` (either order):
/// 5–50 ms, drawn from `seed` and the two names.
pub fn link_latency(seed: u64, a: &str, b: &str) -> Duration {
    use ruckus_core::rng::{Rng, SplitMix64};
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    let h = seeded_hash(seed ^ 0x1a7e_c0de, &[a, b]);
    Duration::from_millis(5 + SplitMix64::new(h).next_u64() % 46)
}

/// Gives every link between `hosts` its own latency, drawn once from
/// `seed` (5–50 ms), so different seeds explore different timings while
/// each run stays replayable: a link's latency is fixed, so the order in
/// which messages draw from turmoil's RNG cannot change a delivery time.
/// Call after every host is registered. (Draws in the order of `hosts`;
/// runs that add hosts later use [`link_latency`], which depends on the
/// names only. This one is kept as it is: changing it would change every
/// sim test's history.)
pub fn seed_link_latencies(sim: &turmoil::Sim<'_>, hosts: &[String], seed: u64) {
    use ruckus_core::rng::{Rng, SplitMix64};
    let mut rng = SplitMix64::new(seed ^ 0x1a7e_c0de);
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let ms = 5 + rng.next_u64() % 46;
            sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_millis(ms));
        }
    }
}
