//! What a running instance reports about itself (Ray's `serve status`): its applications, their
//! deployments, and each deployment's replicas.

use serde::{Deserialize, Serialize};

/// One application: a deployed graph, maybe served over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationStatus {
    /// The application's name (`"default"` unless it was run with one: `RunOptions`; the
    /// command line names it after the config file's application or its ingress deployment).
    pub name: String,
    /// The HTTP route prefix it is served under, if it is served over HTTP.
    pub route_prefix: Option<String>,
    /// `RUNNING` while the instance serves it.
    pub status: String,
    /// Its deployments, children first (the ingress last).
    pub deployments: Vec<DeploymentStatus>,
}

/// One deployment of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// The deployment's (unique) name.
    pub name: String,
    /// `HEALTHY` when it runs its target number of replicas, `UPSCALING` / `DOWNSCALING` while
    /// it heads for a new target, `UPDATING` while its replicas take a new `user_config`,
    /// `UNHEALTHY` when new replicas cannot be constructed.
    pub status: String,
    /// Why it is unhealthy, when it is; else why replicas are pending, when some are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many replicas take requests now.
    pub num_replicas: usize,
    /// Replicas it is short of that are not being constructed: waiting for resources (the
    /// message says what is missing), started as soon as a reservation is given back.
    #[serde(default)]
    pub pending_replicas: usize,
    /// How many replicas it is heading for (differs while scaling).
    pub target_replicas: usize,
    /// How many requests a replica runs at once.
    pub max_ongoing_requests: usize,
    /// Requests waiting for a free replica.
    pub queued_requests: usize,
    /// Its replicas.
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The replica's id within its deployment (ids are not reused).
    pub replica_id: usize,
    /// `RUNNING`, or `UNHEALTHY` while its health checks fail (it is replaced after 3 in a row).
    pub state: String,
    /// Requests it is running now.
    pub ongoing_requests: usize,
    /// The node it runs on, in cluster mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The multiplexed models it holds (`#[multiplexed]`), least recently used first as of the
    /// last load or eviction. For a replica in another process: as its last reply to a call sent
    /// for a model id reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multiplexed_model_ids: Vec<String>,
}
