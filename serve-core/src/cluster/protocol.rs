//! The cluster's control messages (postcard), and the subjects they travel on.
//!
//! | subject | from → to | message |
//! |---|---|---|
//! | `<prefix>.join` | worker → head (request) | [`Join`] → [`Joined`] |
//! | `<prefix>.leave` | worker → head | [`Leave`] |
//! | `<prefix>.hb.<node>` | every node → all | [`Heartbeat`] |
//! | `<prefix>.node.<node>.start` | head → worker (request) | [`Start`] → [`Started`] |
//! | `<prefix>.node.<node>.stop` | head → worker | [`Stop`] |
//! | `<prefix>.node.<node>.rejoin` | head → worker | (empty): the head had declared it dead |
//! | `<prefix>.table` | head → workers | [`Table`] |
//! | `<prefix>.gone` | head → workers | [`Gone`]: a node died or left |
//! | `<prefix>._INBOX.…` | | replies to requests (NATS' request inboxes, kept in the namespace) |
//!
//! `<prefix>` is `serve.<cluster name>`. A message that does not parse is dropped with a log
//! line.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::ReplicaResources;
use crate::control::resources::InstanceResources;
use crate::error::{ErrorKind, ServeError};
use crate::request::context::Assignment;

/// The subjects of cluster `prefix`.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    pub(crate) prefix: String,
}

impl Subjects {
    pub(crate) fn join(&self) -> String {
        format!("{}.join", self.prefix)
    }
    pub(crate) fn leave(&self) -> String {
        format!("{}.leave", self.prefix)
    }
    pub(crate) fn heartbeat(&self, node: &str) -> String {
        format!("{}.hb.{node}", self.prefix)
    }
    pub(crate) fn heartbeats(&self) -> String {
        format!("{}.hb.*", self.prefix)
    }
    pub(crate) fn start(&self, node: &str) -> String {
        format!("{}.node.{node}.start", self.prefix)
    }
    pub(crate) fn stop(&self, node: &str) -> String {
        format!("{}.node.{node}.stop", self.prefix)
    }
    pub(crate) fn rejoin(&self, node: &str) -> String {
        format!("{}.node.{node}.rejoin", self.prefix)
    }
    pub(crate) fn table(&self) -> String {
        format!("{}.table", self.prefix)
    }
    pub(crate) fn gone(&self) -> String {
        format!("{}.gone", self.prefix)
    }
    /// Where replies to this process's requests (join, start) arrive: under the cluster's
    /// prefix too, so a NATS user limited to `serve.<cluster>.>` can run a node.
    pub(crate) fn inbox_prefix(&self) -> String {
        format!("{}._INBOX", self.prefix)
    }
}

/// The head declared a node dead (or it left): every node fails its calls waiting on it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Gone {
    pub(crate) node: String,
    /// Why, as the errors say it ("(node id ..) stopped answering: no heartbeat for 0.8s").
    pub(crate) why: String,
}

/// A worker asks to join.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Join {
    pub(crate) node: String,
    pub(crate) name: String,
    /// Which build of the application binary it runs (see `build`).
    pub(crate) build: String,
    /// The deployments of its application graph, in order.
    pub(crate) deployments: Vec<String>,
    pub(crate) resources: Amounts,
    pub(crate) gpu_labels: Vec<String>,
}

/// A node's resources on the wire (postcard cannot skip fields, as the config types' serde
/// attributes do).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Amounts {
    pub(crate) num_cpus: Option<f64>,
    pub(crate) num_gpus: f64,
    pub(crate) custom: Vec<(String, f64)>,
}

impl From<&InstanceResources> for Amounts {
    fn from(r: &InstanceResources) -> Self {
        Self {
            num_cpus: r.num_cpus,
            num_gpus: r.num_gpus,
            custom: r.custom.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }
}

impl From<Amounts> for InstanceResources {
    fn from(a: Amounts) -> Self {
        Self {
            num_cpus: a.num_cpus,
            num_gpus: a.num_gpus,
            custom: a.custom.into_iter().collect(),
        }
    }
}

/// A replica's [`Assignment`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireAssignment {
    pub(crate) cpu_ids: Vec<usize>,
    pub(crate) gpu_ids: Vec<usize>,
    pub(crate) cuda_visible_devices: String,
    pub(crate) num_cpus: f64,
    pub(crate) num_gpus: f64,
    pub(crate) custom: Vec<(String, f64)>,
}

impl From<&Assignment> for WireAssignment {
    fn from(a: &Assignment) -> Self {
        Self {
            cpu_ids: a.cpu_ids.clone(),
            gpu_ids: a.gpu_ids.clone(),
            cuda_visible_devices: a.cuda_visible_devices.clone(),
            num_cpus: a.resources.num_cpus,
            num_gpus: a.resources.num_gpus,
            custom: a
                .resources
                .custom
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

impl From<WireAssignment> for Assignment {
    fn from(a: WireAssignment) -> Self {
        Self {
            cpu_ids: a.cpu_ids,
            gpu_ids: a.gpu_ids,
            cuda_visible_devices: a.cuda_visible_devices,
            resources: ReplicaResources {
                num_cpus: a.num_cpus,
                num_gpus: a.num_gpus,
                custom: a.custom.into_iter().collect(),
            },
        }
    }
}

/// The head's answer to a [`Join`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Joined {
    Accepted {
        head: String,
        /// The head did not know the node: it holds no replica there (a worker that rejoins
        /// after being declared dead drops the ones it still has).
        fresh: bool,
        /// The head's heartbeat period in seconds: the worker beats at it too, and takes the head
        /// for dead after the same bound the head uses for workers.
        heartbeat_s: f64,
        /// Each deployment's request-path settings on the head (config files included).
        settings: Vec<RouterConfig>,
        table: Table,
    },
    Refused {
        reason: String,
    },
}

/// What a worker's router of one deployment needs of the head's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RouterConfig {
    pub(crate) name: String,
    pub(crate) max_ongoing_requests: usize,
    pub(crate) max_queued_requests: Option<usize>,
    pub(crate) graceful_shutdown_timeout_s: f64,
}

/// A worker says it leaves (a graceful shutdown).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Leave {
    pub(crate) node: String,
}

/// A node says it is alive.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) node: String,
    /// The head's table version (0 from workers).
    pub(crate) table: u64,
}

/// The head asks a worker to construct a replica.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Start {
    pub(crate) app: String,
    pub(crate) deployment: String,
    pub(crate) replica_id: usize,
    pub(crate) assignment: WireAssignment,
    /// JSON, if any.
    pub(crate) user_config: Option<String>,
}

/// A worker's answer to a [`Start`]: the key it serves the replica under.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Started {
    Running { key: u64 },
    Failed { error: ServeError },
}

/// The head asks a worker to stop a replica.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Stop {
    pub(crate) key: u64,
    pub(crate) deployment: String,
    pub(crate) replica_id: usize,
}

/// Where every replica of the cluster runs, as the head sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Table {
    /// The head that made it (a restarted head starts a new table).
    pub(crate) head: String,
    /// Grows with each change.
    pub(crate) version: u64,
    pub(crate) replicas: Vec<Entry>,
}

/// One replica in the [`Table`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) deployment: String,
    pub(crate) replica_id: usize,
    pub(crate) node: String,
    pub(crate) node_name: String,
    /// Its key on its node's request plane.
    pub(crate) key: u64,
}

/// Encodes a control message.
pub(crate) fn encode<T: Serialize>(message: &T) -> bytes::Bytes {
    // Control messages are plain data: encoding cannot fail.
    bytes::Bytes::from(postcard::to_stdvec(message).unwrap_or_default())
}

/// Decodes a control message; says what `what` was when it does not parse.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ServeError> {
    postcard::from_bytes(bytes).map_err(|e| {
        ServeError::new(ErrorKind::Wire).with_message(format!("a malformed {what} message: {e}"))
    })
}
