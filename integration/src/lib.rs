//! # ruckus-integration — the reference consumer against real brokers
//!
//! - [`transport`]: the `ruckus-rdkafka` crate, re-exported: `ruckus-core`'s
//!   `Transport` over rdkafka (a service depends on that crate alone, not
//!   on this one, which brings the fixtures and the test harness).
//! - [`mock`]: librdkafka's mock cluster as an in-process broker fixture
//!   (the default tier: no Docker), with its faults — brokers down and up,
//!   round-trip time, per-API request errors, coordinator and leader moves.
//! - [`container`]: a broker image through testcontainers, with pause,
//!   stop/start and network disconnect.
//! - [`harness`]: one run of reference-consumer members on any of those (or
//!   an external cluster), a wall-clock history, convergence, the verdict of
//!   `ruckus-chaos`'s checkers.
//! - [`scenario`]: the integration runner — scenario files on real brokers,
//!   their faults mapped to real faults; [`RealBrokers`] runs them with
//!   your processors for `ruckus_chaos::suite::Suite::on_real_brokers`.
//!
//! Tests: `tests/mock_cluster.rs` (hand-written, the default tier) and
//! `tests/scenarios.rs` (`<backend>::<scenario>` for every real backend a
//! file declares; a tier that cannot run here is reported skipped with its
//! reason).

pub mod blackbox;
pub mod container;
mod ffi;
pub mod harness;
pub mod mock;
pub mod scenario;
pub use ruckus_rdkafka as transport;
pub use scenario::RealBrokers;
