//! Whose processor a run puts under its faults: the scenario's scripted
//! one, or yours.
//!
//! A [`ProcessorFactory`] makes a member's [`MessageProcessor`] each time
//! the member starts — at the start of the run, and again after every
//! crash or graceful stop the fault schedule restarts it — so a crash
//! really loses whatever the processor held in memory (a buffer not yet
//! flushed, a cache, a counter). Any closure `Fn(&MemberStart) -> P` is
//! one.
//!
//! Every processor runs [`Gated`]: while the fault schedule pauses its
//! member (`pause-member`), no record finishes, whatever the processor's
//! code. The gate is the run's, in front of the processor, not code
//! inside it.

use ruckus_core::consumer::{DeadLetter, ProcessingError};
use ruckus_core::driver::{MessageProcessor, RecordContext};
use ruckus_core::model::Record;
use ruckus_sim::pause::PauseGate;
use ruckus_sim::processing::{Behaviour, SimProcessor};
use ruckus_sim::store::StoreClient;

/// What a member's processor is made with, each time the member starts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemberStart {
    /// The member's index (`consumer-<index>`).
    pub index: usize,
    /// Its host name.
    pub host: String,
    /// A seed for whatever the processor draws, derived from the run's
    /// seed and the member (the same at every start of that member).
    pub seed: u64,
    /// A fresh client of the run's store, for the processor's side
    /// effects.
    pub store: StoreClient,
}

impl MemberStart {
    /// What member `index` starts with (backends outside this crate build
    /// it: the real-broker runner).
    pub fn new(index: usize, seed: u64, store: StoreClient) -> Self {
        Self {
            index,
            host: ruckus_history::fault::member_host(index),
            seed,
            store,
        }
    }
}

/// Makes a member's processor each time the member starts.
pub trait ProcessorFactory: Send + Sync + 'static {
    /// The processor it makes.
    type Processor: MessageProcessor;

    /// A new processor for `member`, with nothing carried over from the
    /// member's previous run.
    fn start(&self, member: &MemberStart) -> Self::Processor;

    /// Whether its processors write to the store (the run then starts the
    /// store host).
    fn uses_store(&self) -> bool {
        true
    }
}

impl<F, P> ProcessorFactory for F
where
    F: Fn(&MemberStart) -> P + Send + Sync + 'static,
    P: MessageProcessor,
{
    type Processor = P;

    fn start(&self, member: &MemberStart) -> P {
        self(member)
    }
}

/// The scenario's scripted processor (its `[processing]` section:
/// latency, transient failures, poison records); it writes nothing.
#[derive(Clone, Debug)]
pub struct Scripted(pub Behaviour);

impl ProcessorFactory for Scripted {
    type Processor = SimProcessor;

    fn start(&self, member: &MemberStart) -> SimProcessor {
        SimProcessor::new(self.0.clone(), member.seed.rotate_left(7))
    }

    fn uses_store(&self) -> bool {
        false
    }
}

/// A processor whose records do not finish while its member is paused.
#[derive(Debug)]
pub struct Gated<P> {
    inner: P,
    gate: PauseGate,
}

impl<P> Gated<P> {
    /// `inner`, held back by `gate`.
    pub fn new(inner: P, gate: PauseGate) -> Self {
        Self { inner, gate }
    }
}

impl<P: MessageProcessor> MessageProcessor for Gated<P> {
    async fn process(&self, record: &Record, ctx: &RecordContext) -> Result<(), ProcessingError> {
        let out = self.inner.process(record, ctx).await;
        // A paused member finishes nothing until it thaws.
        self.gate.wait().await;
        out
    }

    fn on_success(&self, record: &Record) {
        self.inner.on_success(record);
    }

    fn on_failure(&self, record: &Record, error: &ProcessingError) {
        self.inner.on_failure(record, error);
    }

    fn on_dead_letter(&self, letter: &DeadLetter) {
        self.inner.on_dead_letter(letter);
    }
}

/// A processor behind a pointer, whatever its type: what a backend that
/// cannot be generic over your processor (the real-broker runner) holds.
pub struct BoxedProcessor(Box<dyn DynProcessor>);

impl std::fmt::Debug for BoxedProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxedProcessor(..)")
    }
}

type ProcessFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ProcessingError>> + Send + 'a>>;

trait DynProcessor: Send + Sync + 'static {
    fn process_boxed<'a>(&'a self, record: &'a Record, ctx: &'a RecordContext)
        -> ProcessFuture<'a>;
    fn on_success(&self, record: &Record);
    fn on_failure(&self, record: &Record, error: &ProcessingError);
    fn on_dead_letter(&self, letter: &DeadLetter);
}

impl<P: MessageProcessor> DynProcessor for P {
    fn process_boxed<'a>(
        &'a self,
        record: &'a Record,
        ctx: &'a RecordContext,
    ) -> ProcessFuture<'a> {
        Box::pin(MessageProcessor::process(self, record, ctx))
    }

    fn on_success(&self, record: &Record) {
        MessageProcessor::on_success(self, record);
    }

    fn on_failure(&self, record: &Record, error: &ProcessingError) {
        MessageProcessor::on_failure(self, record, error);
    }

    fn on_dead_letter(&self, letter: &DeadLetter) {
        MessageProcessor::on_dead_letter(self, letter);
    }
}

impl BoxedProcessor {
    /// `p`, boxed.
    pub fn new<P: MessageProcessor>(p: P) -> Self {
        Self(Box::new(p))
    }
}

impl MessageProcessor for BoxedProcessor {
    async fn process(&self, record: &Record, ctx: &RecordContext) -> Result<(), ProcessingError> {
        self.0.process_boxed(record, ctx).await
    }

    fn on_success(&self, record: &Record) {
        self.0.on_success(record);
    }

    fn on_failure(&self, record: &Record, error: &ProcessingError) {
        self.0.on_failure(record, error);
    }

    fn on_dead_letter(&self, letter: &DeadLetter) {
        self.0.on_dead_letter(letter);
    }
}

/// A processor factory with its type erased.
#[derive(Clone)]
pub struct DynFactory {
    make: std::sync::Arc<dyn Fn(&MemberStart) -> BoxedProcessor + Send + Sync>,
    uses_store: bool,
}

impl std::fmt::Debug for DynFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynFactory")
            .field("uses_store", &self.uses_store)
            .finish_non_exhaustive()
    }
}

impl DynFactory {
    /// `factory`, its processors boxed.
    pub fn new<F: ProcessorFactory>(factory: std::sync::Arc<F>) -> Self {
        let uses_store = factory.uses_store();
        Self {
            make: std::sync::Arc::new(move |m: &MemberStart| BoxedProcessor::new(factory.start(m))),
            uses_store,
        }
    }
}

impl ProcessorFactory for DynFactory {
    type Processor = BoxedProcessor;

    fn start(&self, member: &MemberStart) -> BoxedProcessor {
        (self.make)(member)
    }

    fn uses_store(&self) -> bool {
        self.uses_store
    }
}
