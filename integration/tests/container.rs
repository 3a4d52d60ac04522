//! The container tier: the reference consumer over rdkafka against a broker
//! in a container started through testcontainers, with container faults
//! (pause/unpause, network disconnect/reconnect), judged by the same
//! checkers as the simulation.
//!
//! The image is `RUCKUS_CONTAINER_IMAGE` (`name:tag`): `.ci/run` builds
//! `ruckus-tansu:local`, a `FROM scratch` image of the Tansu broker (this
//! machine has no image registry); the nightly job sets
//! `redpandadata/redpanda:<tag>`. If Docker or the image is missing, every
//! test here is reported IGNORED with the reason — never as passed.

// Progress and the skip reason are reported on stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

fn image() -> String {
    std::env::var("RUCKUS_CONTAINER_IMAGE").unwrap_or_else(|_| "ruckus-tansu:local".into())
}

/// Why the tier cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    let image = image();
    match Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
    {
        Err(e) => Some(format!("the docker command is not available ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "image {image} is not present locally (build it with .ci/run, or set \
             RUCKUS_CONTAINER_IMAGE): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts the broker, its Kafka port published on `127.0.0.1:<port>` and
/// advertised as such.
async fn broker(port: u16) -> Result<ContainerAsync<GenericImage>, Failed> {
    let image = image();
    let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
    let redpanda = name.contains("redpanda");
    let (ready, cmd): (&str, Vec<String>) = if redpanda {
        (
            "Successfully started Redpanda!",
            [
                "redpanda",
                "start",
                "--mode",
                "dev-container",
                "--smp",
                "1",
                "--kafka-addr",
                "0.0.0.0:9092",
                "--advertise-kafka-addr",
                &format!("127.0.0.1:{port}"),
                "--set",
                "redpanda.group_initial_rebalance_delay=0",
            ]
            .map(String::from)
            .to_vec(),
        )
    } else {
        (
            "ready in",
            [
                "broker",
                "--listener-url",
                "tcp://0.0.0.0:9092",
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--storage-engine",
                "memory://tansu/",
            ]
            .map(String::from)
            .to_vec(),
        )
    };
    GenericImage::new(name, tag)
        .with_wait_for(WaitFor::message_on_either_std(ready))
        .with_mapped_port(port, 9092.tcp())
        .with_cmd(cmd)
        .start()
        .await
        .map_err(|e| Failed::from(format!("starting {image}: {e}")))
}

fn docker(args: &[&str]) -> Result<(), Failed> {
    let o = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker {args:?}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("docker {args:?}: {}", String::from_utf8_lossy(&o.stderr)).into())
    }
}

enum Fault {
    Pause,
    Disconnect,
}

/// Three members, 1,000 messages, the fault 3 s into the run for 3 s.
fn run_with(name: &'static str, fault: Fault) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let port = free_port();
        let container = broker(port).await?;
        let bootstrap = format!("127.0.0.1:{port}");
        // Tansu makes every join wait half the session: keep it short but
        // above the broker pause.
        let mut run = Run::on_broker(
            &bootstrap,
            consumer_config(),
            (Duration::from_secs(6), Duration::from_millis(500)),
        )
        .await;
        for i in 0..3 {
            run.start_member(i);
        }
        let produce = run.produce(1_000, 0);
        tokio::time::sleep(Duration::from_secs(3)).await;
        match fault {
            Fault::Pause => {
                container.pause().await.map_err(|e| format!("pause: {e}"))?;
                run.fault("pause broker container");
                tokio::time::sleep(Duration::from_secs(3)).await;
                container
                    .unpause()
                    .await
                    .map_err(|e| format!("unpause: {e}"))?;
            }
            Fault::Disconnect => {
                docker(&["network", "disconnect", "bridge", container.id()])?;
                run.fault("disconnect broker container from its network");
                tokio::time::sleep(Duration::from_secs(3)).await;
                docker(&["network", "connect", "bridge", container.id()])?;
            }
        }
        produce.await.map_err(|e| format!("producer: {e}"))?;
        let (h, v) = run.finish(name, Duration::from_secs(120)).await;
        if !v.is_empty() {
            if let Ok(path) = std::env::var("RUCKUS_DUMP") {
                let lines: Vec<String> = h.iter().map(ruckus_chaos::check::render).collect();
                let _ = std::fs::write(path, lines.join("\n"));
            }
            let text: Vec<String> = v.iter().map(ToString::to_string).collect();
            return Err(format!("{name}: {}", text.join("\n")).into());
        }
        let produced = count(&h, |e| {
            matches!(e, ruckus_core::events::Event::Produced { .. })
        });
        if produced != 1_000 {
            return Err(format!("{name}: only {produced} of 1000 produces acknowledged").into());
        }
        Ok(())
    })
}

fn main() {
    let args = Arguments::from_args();
    let skip = unavailable();
    if let Some(why) = &skip {
        eprintln!("SKIPPED: the container tier cannot run here: {why}");
    }
    let tests = [
        Trial::test("broker_container_paused_for_3s_loses_nothing", || {
            run_with("container_pause", Fault::Pause)
        }),
        Trial::test("broker_container_disconnected_for_3s_loses_nothing", || {
            run_with("container_disconnect", Fault::Disconnect)
        }),
    ];
    let trials = tests
        .into_iter()
        .map(|t| t.with_ignored_flag(skip.is_some()))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
