//! # ruckus-integration — the reference consumer against real brokers
//!
//! - [`transport`]: `ruckus-core`'s `Transport` over rdkafka, so the
//!   reference consumer runs unchanged against Kafka-protocol brokers.
//! - [`mock`]: librdkafka's mock cluster as an in-process broker fixture
//!   (the default tier: no Docker), with its faults — brokers down and up,
//!   round-trip time, per-API request errors, coordinator and leader moves.
//!
//! Tests in `tests/` judge runs with `ruckus-chaos`'s checkers:
//! `mock_cluster.rs` (the default tier) and `container.rs` (a broker image
//! through testcontainers, skipped with its reason without Docker or the
//! image; the nightly workflow runs it against Redpanda).
//!
//! Not built yet: the external-cluster tier, the KIP-848 protocol, and the
//! integration runner that maps scenario files to real faults.

pub mod container;
mod ffi;
pub mod harness;
pub mod mock;
pub mod scenario;
pub mod transport;
