//! # ruckus-history — the typed history, its checkers, the fault model
//!
//! Everything a backend records and every checker reads, with no simulator
//! and no broker client in it, so the simulation, librdkafka's mock
//! cluster, a container and an external cluster all feed the same checkers:
//!
//! - [`record`]: the history ([`Entry`], [`Record`], [`BrokerEvent`]);
//! - [`fault`]: the one fault model ([`Fault`]) and how a fault is
//!   recorded ([`FaultRecord`]);
//! - [`check`]: the invariants and their checkers;
//! - [`duration`]: durations as scenario files write them.

pub mod check;
pub mod duration;
pub mod fault;
pub mod record;

pub use fault::{Fault, FaultRecord, Target, Unsupported};
pub use record::{
    render, BrokerEvent, Cause, Entry, GenerationMember, History, Record, StoreEvent,
};
