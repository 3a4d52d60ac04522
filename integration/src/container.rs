//! A broker in a container, started through testcontainers, with the
//! container faults: pause/unpause, stop/start, network disconnect and
//! reconnect.
//!
//! The image is `RUCKUS_CONTAINER_IMAGE` (`name:tag`, default
//! [`DEFAULT_IMAGE`]). An image whose name contains `redpanda` is started
//! as Redpanda (`redpanda start --mode dev-container --smp 1`, group
//! initial rebalance delay 0); any other as Tansu (`tansu broker`, memory
//! storage), the stand-in `.ci/run` builds because this machine has no
//! image registry. Either way the Kafka port is published on
//! `127.0.0.1:<port>` and advertised as such, so clients connect through
//! the host's loopback.

use std::net::TcpListener;
use std::process::Command;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The image `.ci/run` builds.
pub const DEFAULT_IMAGE: &str = "ruckus-tansu:local";

/// The image to run: `RUCKUS_CONTAINER_IMAGE` or [`DEFAULT_IMAGE`].
pub fn image() -> String {
    std::env::var("RUCKUS_CONTAINER_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into())
}

/// Whether a broker of this image keeps its data across a stop (Redpanda
/// does; Tansu's memory storage does not, so stopping it is broker loss).
pub fn durable(image: &str) -> bool {
    image.contains("redpanda")
}

/// Why the container tier cannot run here, if it cannot: no docker
/// command, no engine, or no image.
pub fn unavailable() -> Option<String> {
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

/// A container operation failed.
#[derive(Debug, thiserror::Error)]
#[error("container: {0}")]
pub struct ContainerError(String);

/// A running broker container. Dropping it removes the container.
pub struct ContainerBroker {
    container: ContainerAsync<GenericImage>,
    port: u16,
    image: String,
}

impl std::fmt::Debug for ContainerBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerBroker")
            .field("image", &self.image)
            .field("id", &self.container.id())
            .field("port", &self.port)
            .finish()
    }
}

fn free_port() -> Result<u16, ContainerError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ContainerError(format!("no free loopback port: {e}")))
}

impl ContainerBroker {
    /// Starts [`image`] and waits until the broker says it is ready.
    ///
    /// # Errors
    /// Docker could not start it, or it never became ready.
    pub async fn start() -> Result<Self, ContainerError> {
        let image = image();
        let port = free_port()?;
        let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
        let advertised = format!("127.0.0.1:{port}");
        let (ready, cmd): (&str, Vec<String>) = if name.contains("redpanda") {
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
                    &advertised,
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
                    &format!("tcp://{advertised}"),
                    "--storage-engine",
                    "memory://tansu/",
                ]
                .map(String::from)
                .to_vec(),
            )
        };
        let container = GenericImage::new(name, tag)
            .with_wait_for(WaitFor::message_on_either_std(ready))
            .with_mapped_port(port, 9092.tcp())
            .with_cmd(cmd)
            .start()
            .await
            .map_err(|e| ContainerError(format!("starting {image}: {e}")))?;
        Ok(Self {
            container,
            port,
            image,
        })
    }

    /// `bootstrap.servers`: the mapped loopback port.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Whether the broker keeps its data across a stop (see [`durable`]).
    pub fn durable(&self) -> bool {
        durable(&self.image)
    }

    /// Freezes every process of the container (SIGSTOP through the cgroup
    /// freezer): connections stay open, nothing answers.
    ///
    /// # Errors
    /// Docker refused.
    pub async fn pause(&self) -> Result<(), ContainerError> {
        self.container
            .pause()
            .await
            .map_err(|e| ContainerError(format!("pause: {e}")))
    }

    /// Thaws a paused container.
    ///
    /// # Errors
    /// Docker refused.
    pub async fn unpause(&self) -> Result<(), ContainerError> {
        self.container
            .unpause()
            .await
            .map_err(|e| ContainerError(format!("unpause: {e}")))
    }

    /// Stops the container (SIGTERM, then SIGKILL).
    ///
    /// # Errors
    /// Docker refused.
    pub async fn stop(&self) -> Result<(), ContainerError> {
        self.container
            .stop()
            .await
            .map_err(|e| ContainerError(format!("stop: {e}")))
    }

    /// Starts a stopped container again.
    ///
    /// # Errors
    /// Docker refused.
    pub async fn restart(&self) -> Result<(), ContainerError> {
        self.container
            .start()
            .await
            .map_err(|e| ContainerError(format!("start: {e}")))
    }

    /// Disconnects the container from the `bridge` network: packets to and
    /// from it are dropped, connections hang until they time out.
    ///
    /// # Errors
    /// Docker refused.
    pub fn disconnect(&self) -> Result<(), ContainerError> {
        docker(&["network", "disconnect", "bridge", self.container.id()])
    }

    /// Connects it to the `bridge` network again.
    ///
    /// # Errors
    /// Docker refused.
    pub fn reconnect(&self) -> Result<(), ContainerError> {
        docker(&["network", "connect", "bridge", self.container.id()])
    }
}

fn docker(args: &[&str]) -> Result<(), ContainerError> {
    let o = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| ContainerError(format!("docker {args:?}: {e}")))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(ContainerError(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )))
    }
}
