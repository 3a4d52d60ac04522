//! The async driver's hot path: the engine, the driver loop and a no-op
//! processor over the in-memory transport, on a current-thread tokio
//! runtime — what the reference consumer costs per record on top of
//! whatever its transport costs.
//!
//! `cargo bench -p ruckus-benches --bench driver`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ruckus_core::consumer::{CommitStrategy, ConsumerConfig, ProcessingError};
use ruckus_core::driver::memory::{MemoryCluster, MemoryTransport};
use ruckus_core::driver::{Driver, MessageProcessor, NoSink, RecordContext, ShutdownHandle};
use ruckus_core::model::{Record, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;

const PARTITIONS: i32 = 6;
const PER_PARTITION: usize = 10_000;

/// Counts, and ends the run once everything was processed.
struct Noop {
    done: Arc<AtomicUsize>,
    stop: Arc<OnceLock<ShutdownHandle>>,
}

impl MessageProcessor for Noop {
    async fn process(&self, _r: &Record, _c: &RecordContext) -> Result<(), ProcessingError> {
        let n = self.done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        if n == PARTITIONS as usize * PER_PARTITION {
            if let Some(stop) = self.stop.get() {
                stop.shutdown();
            }
        }
        Ok(())
    }
}

fn cluster() -> MemoryCluster {
    let cluster = MemoryCluster::new();
    cluster.create_topic("in", PARTITIONS);
    let value = "v".repeat(100);
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new("in", p);
        for i in 0..PER_PARTITION {
            cluster.produce(&tp, &(i % 1024).to_string(), &value);
        }
    }
    cluster
}

fn run(rt: &tokio::runtime::Runtime, cluster: MemoryCluster) -> usize {
    let mut config = ConsumerConfig::new("g", vec![Topic::new("in")]);
    config.commit = CommitStrategy::Periodic {
        records: 5_000,
        interval: Duration::from_secs(1),
    };
    config.max_buffered_per_partition = 5_000;
    config.record_events = false;
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(OnceLock::new());
    let processor = Noop {
        done: done.clone(),
        stop: stop.clone(),
    };
    rt.block_on(async {
        let driver = Driver::new(
            config,
            MemoryTransport::new(cluster),
            processor,
            Box::new(SplitMix64::new(1)),
            Arc::new(NoSink),
        )
        .expect("valid config");
        // The processor stops the driver once it has seen every record.
        let _ = stop.set(driver.shutdown_handle());
        driver.run().await.expect("ran");
    });
    done.load(AtomicOrdering::Relaxed)
}

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("driver_hot_path");
    g.throughput(Throughput::Elements(
        (PARTITIONS as usize * PER_PARTITION) as u64,
    ));
    g.sample_size(20);
    g.bench_function("partition_order/noop/memory_transport", |b| {
        b.iter_batched(cluster, |cl| run(&rt, cl), BatchSize::PerIteration);
    });
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
