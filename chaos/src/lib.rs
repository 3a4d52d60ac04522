//! # ruckus-chaos — scenarios, nemesis, history checkers, runner
//!
//! A scenario file in `scenarios/` ([`scenario`]) describes a cluster, a
//! workload, a consumer group, processing behaviour, scheduled faults and a
//! randomized [`nemesis`]; [`run`] is the one run of a scenario on any
//! backend, and [`world`] the simulation's backend; [`check`] judges the history against the invariants; the
//! [`runner`] sweeps seeds in parallel and reports. The `ruckus` binary is
//! the command-line face of all of it.

pub use ruckus_history::{check, duration};
pub use ruckus_sim::producer::{Payload, Payloads};
pub use ruckus_sim::store;
pub mod coverage;
pub mod explain;
pub mod explore;
pub mod nemesis;
pub mod picture;
pub mod processor;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod shrink;
pub mod suite;
pub mod swarm;
pub mod world;

/// Keeps the default panic output for real panics but silences the ones
/// the simulation injects into processors on purpose (the driver catches
/// them; printing thousands of backtraces would bury real failures).
pub fn quiet_simulated_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = ruckus_core::panic_message(info.payload());
        if !msg.starts_with("simulated processor panic") {
            default(info);
        }
    }));
}
