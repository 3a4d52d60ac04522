//! # ruckus-core
//!
//! The sans-IO, deterministic heart of ruckus: the data model of Kafka
//! consumer groups, partition assignors, the broker-side group coordinator
//! and the client-side membership state machine.
//!
//! ## The contract
//!
//! Nothing in this crate performs I/O, reads a clock or draws OS randomness.
//! Every input that depends on time takes `now` as an argument (an
//! [`Instant`](model::Instant) on a virtual or real clock chosen by the
//! caller); outputs are data — requests to send, responses to deliver,
//! events, and the next deadline at which the caller must call
//! `handle_timeout`. Nothing iterates a hash map where the order could reach
//! an output. The same inputs therefore give the same outputs, byte for byte,
//! which is what lets the simulation replay any run from its seed.
//!
//! The method families follow quinn-proto: getters without prefix,
//! `handle_*` for inputs, `poll_*` for outputs.
//!
//! ## Modules
//!
//! - [`model`]: identifiers, records, offsets and Kafka's error codes.
//! - [`assign`]: the [`Assignor`](assign::Assignor) trait and the `range`,
//!   `round_robin`, `sticky` and `cooperative_sticky` assignors.
//! - [`protocol`]: the consumer protocol's subscription and assignment,
//!   encoded as Kafka encodes them inside JoinGroup and SyncGroup.
//! - [`coordinator`]: the broker side of the classic group protocol.
//! - [`membership`]: the client side of the classic group protocol.
//! - [`consumer`]: the reference consumer engine — offset tracking,
//!   retry, dead-letter queue, backpressure, commits, revocation, shutdown.
//! - `driver` (feature `driver`, on by default): the async driver that runs
//!   the engine with a `MessageProcessor` over a `Transport` on tokio.
//! - [`events`]: the [`Event`](events::Event)s a run's history is made of.
//! - [`rng`]: randomness as an argument.
//! - [`testing`]: a deterministic driver that wires members to a
//!   coordinator through in-memory queues on a virtual clock.

pub mod assign;
pub mod consumer;
pub mod coordinator;
#[cfg(feature = "driver")]
pub mod driver;
pub mod events;
pub mod membership;
pub mod model;
pub mod protocol;
pub mod rng;
pub mod testing;

/// The message a panic carried (`panic!("...")` payloads are `&str` or
/// `String`); "non-string panic payload" for any other payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
