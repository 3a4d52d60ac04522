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
//! Status: the cluster, wire protocol, client, transport, producer and
//! history exist and run the reference consumer end to end. The fault
//! verbs beyond turmoil's own (crash, partition, hold) — per-API error
//! injection, pauses, clock skew, processing behaviour — are not built yet.

pub mod client;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod producer;
pub mod transport;
pub mod wire;
