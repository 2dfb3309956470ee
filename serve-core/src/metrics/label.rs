//! Label names, and the label sets of Ray Serve's metrics.

/// A label name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Application,
    Deployment,
    Replica,
    Route,
    Method,
    StatusCode,
    ErrorCode,
    Handle,
    ActorId,
    NodeId,
    NodeIp,
    FunctionName,
    ModelId,
    PolicyScope,
    Direction,
}

impl Label {
    /// The label's name in the exposition.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Label::Application => "application",
            Label::Deployment => "deployment",
            Label::Replica => "replica",
            Label::Route => "route",
            Label::Method => "method",
            Label::StatusCode => "status_code",
            Label::ErrorCode => "error_code",
            Label::Handle => "handle",
            Label::ActorId => "actor_id",
            Label::NodeId => "node_id",
            Label::NodeIp => "node_ip_address",
            Label::FunctionName => "function_name",
            Label::ModelId => "model_id",
            Label::PolicyScope => "policy_scope",
            Label::Direction => "direction",
        }
    }
}

use Label::*;

/// The labels of an HTTP request's count and latency.
pub(crate) const HTTP: &[Label] = &[Route, Method, Application, StatusCode];
/// The labels of a failed HTTP request's count.
pub(crate) const HTTP_ERROR: &[Label] = &[Route, ErrorCode, Method, Application];
/// The labels of a failed HTTP request's count, by ingress deployment.
pub(crate) const DEPLOYMENT_HTTP_ERROR: &[Label] =
    &[Deployment, ErrorCode, Method, Route, Application];
/// The labels of the proxy's requests in progress.
pub(crate) const PROXY: &[Label] = &[NodeId, NodeIp];
/// The labels of a node's calls to a deployment.
pub(crate) const HANDLE: &[Label] = &[Handle, Deployment, Route, Application];
/// The labels of what a node's callers of a deployment have waiting or running.
pub(crate) const CALLERS: &[Label] = &[Deployment, Application, Handle, ActorId];
/// The labels of a replica's requests.
pub(crate) const REPLICA_REQUESTS: &[Label] = &[Deployment, Replica, Route, Application];
/// The labels of a replica.
pub(crate) const REPLICA: &[Label] = &[Deployment, Replica, Application];
/// The labels of a deployment.
pub(crate) const DEPLOYMENT: &[Label] = &[Deployment, Application];
/// The labels of a `#[batch]` method on a replica.
pub(crate) const BATCH: &[Label] = &[Deployment, Replica, Application, FunctionName];
/// The labels of a model a replica holds.
pub(crate) const MODEL: &[Label] = &[Deployment, Replica, Application, ModelId];

/// The names of `labels`.
pub(crate) fn names(labels: &[Label]) -> Vec<&'static str> {
    labels.iter().map(|l| l.name()).collect()
}
