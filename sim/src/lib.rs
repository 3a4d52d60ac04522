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
//! Not built yet: stop-the-world pauses of a host, per-link latency and loss
//! settings beyond turmoil's defaults, clock skew, and producer hosts with
//! idempotence.

pub mod client;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod processing;
pub mod producer;
pub mod transport;
pub mod wire;
