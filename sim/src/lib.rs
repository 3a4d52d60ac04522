//! # ruckus-sim — not built yet
//!
//! This crate will hold the turmoil world: a simulated broker cluster over one
//! shared, perfectly replicated log store, whose group coordinator is
//! `ruckus_core::coordinator` unchanged; a compact framed Kafka-like protocol
//! over turmoil TCP; the simulated transport the reference consumer runs on;
//! fault verbs (crash, restart, partition, hold, latency, pause, injected
//! request errors, clock skew); and the seed from which everything derives.
//!
//! It is deliberately empty today: nothing here pretends to work. See
//! `DESIGN.md` ("sim — turmoil") for what lands here.
