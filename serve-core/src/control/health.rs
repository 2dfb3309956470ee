//! Health checks: each replica's `check_health`, run every `health_check_period_s` with
//! `health_check_timeout_s`; a replica that fails [`HEALTH_FAILURES_TO_REPLACE`] in a row is taken
//! out of routing at once (it finishes what it runs) and the controller replaces it.

use std::time::Duration;

use super::state::DeploymentState;
use crate::api::deployment::Deployment;
use crate::dataplane::replica::Endpoint;

/// Health checks failed in a row before a replica is replaced.
pub(crate) const HEALTH_FAILURES_TO_REPLACE: usize = 3;

/// Runs every replica's `check_health`; replaces those that failed too often.
pub(crate) async fn check_health<D: Deployment>(state: &DeploymentState<D>, timeout: Duration) {
    let replicas = state.router.replicas();
    let checks = replicas.iter().map(|replica| async move {
        let check = match replica.endpoint() {
            Endpoint::Local(instance) => D::__check_health(instance),
            // A replica in another process runs its check on its own node.
            Endpoint::Remote(endpoint) => {
                let check = endpoint.check_health();
                Some(
                    Box::pin(async move { check.await.map_err(crate::error::BoxError::from) })
                        as crate::api::deployment::Hook,
                )
            }
        };
        let healthy = match check {
            None => true,
            Some(check) => match tokio::time::timeout(timeout, check).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::warn!(
                        deployment = %state.name(),
                        replica = replica.info().replica_id,
                        "health check failed: {e}"
                    );
                    false
                }
                Err(_) => {
                    tracing::warn!(
                        deployment = %state.name(),
                        replica = replica.info().replica_id,
                        "health check timed out after {timeout:?}"
                    );
                    false
                }
            },
        };
        (replica, healthy)
    });
    for (replica, healthy) in futures::future::join_all(checks).await {
        let id = replica.info().replica_id;
        if state.record_health(id, healthy) >= HEALTH_FAILURES_TO_REPLACE
            && state.remove_replica_id(id)
        {
            tracing::error!(
                deployment = %state.name(),
                replica = replica.info().replica_id,
                "replica failed {HEALTH_FAILURES_TO_REPLACE} health checks in a row: replacing it"
            );
        }
    }
}
