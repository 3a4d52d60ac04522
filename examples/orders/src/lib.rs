//! # An order service's processor under ruckus
//!
//! Each record is an order, `order-<n>:<amount>`. The processor validates
//! it (an amount of zero is refused: a permanent error, so the record is
//! dead-lettered) and writes it to the store under its order id, once: a
//! redelivered order finds its key written and changes nothing. A store
//! error is a transient processing error, so the record is retried and
//! never committed past before its write is acknowledged.
//!
//! Beside it, three processors with bugs teams actually ship, each caught
//! by the harness in `tests/`:
//!
//! - [`buggy::Buffered`] acknowledges a record before its buffered write is
//!   flushed (a batching writer): a crash loses the buffer, a commit passes
//!   writes that are not yet durable;
//! - [`buggy::Swallowing`] swallows the store's error and returns `Ok`;
//! - [`buggy::DoubleWriting`] inserts each order under a fresh row id, so a
//!   redelivered order is written twice.
//!
//! A processor is simulation-safe when it waits only on tokio's time and
//! does its I/O through the store client (no real sockets, no
//! `std::thread::sleep`, no wall clock): the simulation then drives it
//! deterministically, and a seed replays byte for byte.

use bytes::Bytes;
use ruckus_chaos::processor::MemberStart;
use ruckus_chaos::store::{StoreClient, StoreError};
use ruckus_chaos::Payload;
use ruckus_core::consumer::ProcessingError;
use ruckus_core::driver::{MessageProcessor, RecordContext};
use ruckus_core::model::Record;

/// An order, as the records carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// Its id (`order-<n>`).
    pub id: String,
    /// Its amount in cents.
    pub amount: u64,
}

impl Order {
    /// Parses `order-<n>:<amount>`.
    ///
    /// # Errors
    /// The record is not an order, or its amount is zero.
    pub fn parse(record: &Record) -> Result<Self, ProcessingError> {
        let value = record
            .value
            .as_deref()
            .ok_or_else(|| ProcessingError::permanent("a tombstone is not an order"))?;
        let text = std::str::from_utf8(value)
            .map_err(|_| ProcessingError::permanent("an order is text"))?;
        let (id, amount) = text
            .split_once(':')
            .ok_or_else(|| ProcessingError::permanent(format!("not an order: {text}")))?;
        let amount: u64 = amount
            .parse()
            .map_err(|_| ProcessingError::permanent(format!("bad amount in {text}")))?;
        if amount == 0 {
            return Err(ProcessingError::permanent(format!("{id} has no amount")));
        }
        Ok(Order {
            id: id.to_owned(),
            amount,
        })
    }
}

/// The workload: order `i`, keyed by customer, every 50th with no amount.
pub fn order_payload(i: usize) -> Payload {
    let amount = if i % 50 == 49 { 0 } else { 100 + (i % 7) * 25 };
    Payload::new(
        format!("customer-{}", i % 31),
        format!("order-{i}:{amount}"),
    )
}

fn store_failed(e: &StoreError) -> ProcessingError {
    // Retried: the record is not finished until its write is acknowledged.
    ProcessingError::transient(format!("the store: {e}"))
}

/// The order service's processor: validate, then write the order once.
#[derive(Debug)]
pub struct Orders {
    store: StoreClient,
}

impl Orders {
    /// A processor writing through `store`.
    pub fn new(store: StoreClient) -> Self {
        Self { store }
    }

    /// Its factory: one processor per member start.
    pub fn factory(member: &MemberStart) -> Self {
        Self::new(member.store.clone())
    }
}

impl MessageProcessor for Orders {
    async fn process(&self, record: &Record, _ctx: &RecordContext) -> Result<(), ProcessingError> {
        let order = Order::parse(record)?;
        self.store
            .put_once(record, order.id, Bytes::from(order.amount.to_string()))
            .await
            .map_err(|e| store_failed(&e))?;
        Ok(())
    }
}

pub mod buggy {
    //! Three processors with the bugs the harness must catch. Each is the
    //! good [`Orders`](super::Orders) with one mistake.

    use std::sync::Mutex;

    use super::*;

    /// Acknowledges each order at once and writes orders in batches of
    /// [`Buffered::BATCH`]: the batch is lost if the member crashes before
    /// the flush, and a commit can pass orders not yet written.
    #[derive(Debug)]
    pub struct Buffered {
        store: StoreClient,
        buffer: Mutex<Vec<(Record, Order)>>,
    }

    impl Buffered {
        /// Orders per flush.
        pub const BATCH: usize = 20;

        /// Its factory.
        pub fn factory(member: &MemberStart) -> Self {
            Self {
                store: member.store.clone(),
                buffer: Mutex::default(),
            }
        }
    }

    impl MessageProcessor for Buffered {
        async fn process(
            &self,
            record: &Record,
            _ctx: &RecordContext,
        ) -> Result<(), ProcessingError> {
            let order = Order::parse(record)?;
            let full = {
                let mut b = self.buffer.lock().expect("buffer");
                b.push((record.clone(), order));
                if b.len() >= Self::BATCH {
                    std::mem::take(&mut *b)
                } else {
                    Vec::new()
                }
            };
            // BUG: the record is acknowledged now, its write later.
            for (r, o) in full {
                let _ = self
                    .store
                    .put_once(&r, o.id, Bytes::from(o.amount.to_string()))
                    .await;
            }
            Ok(())
        }
    }

    /// Writes each order once, but swallows the store's error.
    #[derive(Debug)]
    pub struct Swallowing {
        store: StoreClient,
    }

    impl Swallowing {
        /// Its factory.
        pub fn factory(member: &MemberStart) -> Self {
            Self {
                store: member.store.clone(),
            }
        }
    }

    impl MessageProcessor for Swallowing {
        async fn process(
            &self,
            record: &Record,
            _ctx: &RecordContext,
        ) -> Result<(), ProcessingError> {
            let order = Order::parse(record)?;
            // BUG: a failed write is "logged" and the order acknowledged.
            let _ignored = self
                .store
                .put_once(record, order.id, Bytes::from(order.amount.to_string()))
                .await;
            Ok(())
        }
    }

    /// Inserts each order as a new row (a fresh row id per insert), so a
    /// redelivered order is inserted again.
    #[derive(Debug)]
    pub struct DoubleWriting {
        store: StoreClient,
        member: usize,
        next_row: Mutex<u64>,
    }

    impl DoubleWriting {
        /// Its factory.
        pub fn factory(member: &MemberStart) -> Self {
            Self {
                store: member.store.clone(),
                member: member.index,
                next_row: Mutex::new(member.seed),
            }
        }
    }

    impl MessageProcessor for DoubleWriting {
        async fn process(
            &self,
            record: &Record,
            _ctx: &RecordContext,
        ) -> Result<(), ProcessingError> {
            let order = Order::parse(record)?;
            let row = {
                let mut n = self.next_row.lock().expect("row");
                *n = n.wrapping_add(1);
                *n
            };
            // BUG: not idempotent — the key is a new row, not the order id.
            self.store
                .put(
                    record,
                    format!("row-{}-{row}", self.member),
                    Bytes::from(format!("{}:{}", order.id, order.amount)),
                )
                .await
                .map_err(|e| store_failed(&e))
        }
    }
}

/// The workspace README's examples, compiled as doctests so they stay true
/// (here, where both the consumer and the harness are dependencies).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
