//! # ruckus-integration — the reference consumer against real brokers
//!
//! - [`transport`]: `ruckus-core`'s `Transport` over rdkafka, so the
//!   reference consumer runs unchanged against Kafka-protocol brokers.
//! - [`mock`]: librdkafka's mock cluster as an in-process broker fixture
//!   (the default tier: no Docker), with its faults — brokers down and up,
//!   round-trip time, per-API request errors, coordinator and leader moves.
//!
//! Not built yet: the container tier (Redpanda through testcontainers, a
//! local Tansu stand-in image), the external-cluster tier, the KIP-848
//! protocol, the integration runner that maps scenario files to real
//! faults, and the nightly job. Tests in `tests/` judge runs with
//! `ruckus-chaos`'s checkers.

mod ffi;
pub mod mock;
pub mod transport;
