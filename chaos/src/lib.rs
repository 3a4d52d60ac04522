//! # ruckus-chaos — scenarios, nemesis, history checkers, runner
//!
//! A scenario file in `scenarios/` ([`scenario`]) describes a cluster, a
//! workload, a consumer group, processing behaviour, scheduled faults and a
//! randomized [`nemesis`]; [`world`] runs it for one seed in the
//! simulation; [`check`] judges the history against the invariants; the
//! [`runner`] sweeps seeds in parallel and reports. The `ruckus` binary is
//! the command-line face of all of it.

pub mod check;
pub mod duration;
pub mod nemesis;
pub mod runner;
pub mod scenario;
pub mod world;
