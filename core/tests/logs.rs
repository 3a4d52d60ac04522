//! The driver's log lines (target `ruckus`), captured by a subscriber: an
//! operator sees assignments with their generation, revocations and how
//! long they took, commit failures, dead-letter write failures, fatal
//! failures and why the consumer stopped — each at its level, and nothing
//! per record.

#![cfg(feature = "driver")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruckus_core::consumer::{
    CommitStrategy, ConsumerConfig, DeadLetterConfig, DlqLimit, ProcessingError, RetryPolicy,
    StopReason,
};
use ruckus_core::driver::memory::{MemoryCluster, MemoryTransport};
use ruckus_core::driver::{Driver, MessageProcessor, NoSink, RecordContext};
use ruckus_core::model::{Offset, Record, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::{Level, Metadata, Subscriber};

/// One captured line: its level, its message and its other fields.
#[derive(Clone, Debug)]
struct Line {
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Line>>>);

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() != "ruckus" {
            return;
        }
        let mut f = Fields(BTreeMap::new());
        event.record(&mut f);
        let message = f.0.remove("message").unwrap_or_default();
        self.0.lock().unwrap().push(Line {
            level: *event.metadata().level(),
            message,
            fields: f.0,
        });
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

fn config() -> ConsumerConfig {
    let mut c = ConsumerConfig::new("g", vec![Topic::new("orders")]);
    c.commit = CommitStrategy::Periodic {
        records: 5,
        interval: Duration::from_millis(100),
    };
    c.retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    c.dead_letter = Some(DeadLetterConfig {
        topic: Topic::new("orders.dlq"),
        limit: DlqLimit::default(),
        write_backoff: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            jitter: 0.0,
            ..RetryPolicy::default()
        },
    });
    c
}

/// Poison at offset 3 of partition 0; fatal at `fatal` of partition 1.
struct Rules {
    fatal: Option<i64>,
}

impl MessageProcessor for Rules {
    async fn process(&self, r: &Record, _: &RecordContext) -> Result<(), ProcessingError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (p, o) = (r.topic_partition.partition.0, r.offset.0);
        if p == 0 && o == 3 {
            return Err(ProcessingError::permanent("poison"));
        }
        if p == 1 && Some(o) == self.fatal {
            return Err(ProcessingError::fatal("the ledger is corrupt"));
        }
        Ok(())
    }
}

async fn run(cluster: &MemoryCluster, fatal: Option<i64>, revoke: bool) -> (StopReason, Vec<Line>) {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let driver = Driver::new(
        config(),
        MemoryTransport::new(cluster.clone()),
        Rules { fatal },
        Box::new(SplitMix64::new(3)),
        Arc::new(NoSink),
    )
    .expect("valid");
    let handle = driver.shutdown_handle();
    let c = cluster.clone();
    let watcher = tokio::spawn(async move {
        for _ in 0..20_000 {
            if revoke && c.revocations_done().is_empty() && c.committed(&tp(1)).is_some() {
                c.revoke(vec![tp(1)]);
            }
            let done = c.committed(&tp(0)) == Some(Offset(20))
                && (!revoke || !c.revocations_done().is_empty());
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        handle.shutdown();
    });
    let reason = driver.run().await.expect("runs");
    watcher.abort();
    let lines = capture.0.lock().unwrap().clone();
    (reason, lines)
}

fn cluster() -> MemoryCluster {
    let c = MemoryCluster::new();
    c.create_topic("orders", 2);
    for p in 0..2 {
        for i in 0..20 {
            c.produce(&tp(p), &format!("k{i}"), &format!("v{i}"));
        }
    }
    c
}

fn find<'a>(lines: &'a [Line], message: &str) -> &'a Line {
    lines
        .iter()
        .find(|l| l.message.starts_with(message))
        .unwrap_or_else(|| panic!("no {message:?} in {lines:#?}"))
}

#[tokio::test(start_paused = true)]
async fn an_operator_sees_assignments_revocations_failures_and_the_stop() {
    let c = cluster();
    c.fail_commits(2);
    c.fail_dead_letters(1);
    let (reason, lines) = run(&c, None, true).await;
    assert_eq!(reason, StopReason::Shutdown);

    let assigned = find(&lines, "partitions assigned");
    assert_eq!(assigned.level, Level::INFO);
    assert!(assigned.fields.contains_key("generation"), "{assigned:?}");
    assert!(
        assigned.fields["partitions"].contains("orders-0@0"),
        "{assigned:?}"
    );

    let revoked = find(&lines, "partitions revoked");
    assert_eq!(revoked.level, Level::INFO);
    assert!(
        revoked.fields["partitions"].contains("orders-1"),
        "{revoked:?}"
    );
    assert!(revoked.fields.contains_key("took_ms"), "{revoked:?}");

    let commit = find(&lines, "commit failed");
    assert_eq!(commit.level, Level::WARN);
    for f in ["partition", "offset", "generation", "error"] {
        assert!(commit.fields.contains_key(f), "{commit:?} lacks {f}");
    }
    let dlq = find(&lines, "dead-letter write failed");
    assert_eq!(dlq.level, Level::WARN);
    assert_eq!(dlq.fields["offset"], "3");

    let stopped = find(&lines, "stopped: shutdown");
    assert_eq!(stopped.level, Level::INFO);
    // Nothing per record: 40 records, a handful of lines.
    assert!(lines.len() < 20, "{} lines: {lines:#?}", lines.len());
}

#[tokio::test(start_paused = true)]
async fn a_fatal_failure_and_the_stop_it_causes_are_errors() {
    let c = cluster();
    let (reason, lines) = run(&c, Some(7), false).await;
    assert!(matches!(reason, StopReason::Fatal { .. }), "{reason:?}");
    let fatal = find(&lines, "fatal processing failure");
    assert_eq!(fatal.level, Level::ERROR);
    assert_eq!(fatal.fields["error"], "the ledger is corrupt");
    let stopped = find(&lines, "stopped");
    assert_eq!(stopped.level, Level::ERROR);
    assert!(stopped.fields["reason"].contains("Fatal"), "{stopped:?}");
}

#[tokio::test(start_paused = true)]
async fn lost_partitions_are_a_warning() {
    let c = cluster();
    let lost = c.clone();
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let driver = Driver::new(
        config(),
        MemoryTransport::new(c.clone()),
        Rules { fatal: None },
        Box::new(SplitMix64::new(3)),
        Arc::new(NoSink),
    )
    .expect("valid");
    let handle = driver.shutdown_handle();
    let watcher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        lost.lose(vec![tp(1)]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        handle.shutdown();
    });
    driver.run().await.expect("runs");
    watcher.abort();
    let lines = capture.0.lock().unwrap().clone();
    let l = find(&lines, "partitions lost");
    assert_eq!(l.level, Level::WARN);
    assert!(l.fields["partitions"].contains("orders-1"), "{l:?}");
}
