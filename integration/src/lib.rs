//! # ruckus-integration — not built yet
//!
//! This crate will hold the rdkafka transport, the broker fixtures
//! (librdkafka's mock cluster by default, Redpanda through testcontainers,
//! an external cluster by address), real fault injection, and the runner that
//! judges real-broker runs with `ruckus-chaos`'s checkers.
//!
//! It is deliberately empty today: nothing here pretends to work.
