//! The deployment controller: keeps a deployment at its target number of healthy replicas.
//!
//! One controller task runs per deployment. Each tick (and whenever an update, a new replica or a
//! request at a deployment with no replica wakes it) it:
//!
//! 1. **autoscales** (if configured): measures the load (requests waiting for a replica plus
//!    requests running), feeds it to the [`AutoscalingPolicy`] and moves the router's *target*
//!    when the policy says so;
//! 2. **checks health** (every `health_check_period_s`): runs each replica's `check_health` with
//!    `health_check_timeout_s`; a replica that fails 3 times in a row is taken out of routing at
//!    once (it finishes what it runs) and replaced;
//! 3. **reconciles**: constructs replicas while fewer run or start than the target (each joins
//!    routing when its constructor returns, and the queue drains onto it at once) and takes
//!    replicas out of routing while more run than the target (they finish what they run, for up
//!    to `graceful_shutdown_timeout_s`; nothing waiting is dropped). When an update started a new
//!    *generation* (new resources, a restart), replicas of the old one are replaced rolling: a
//!    new replica is constructed first (at most 20% of the target, at least one, above the
//!    target at once), then an old one leaves routing and drains; if the new replica waits for
//!    resources only old replicas hold, one old replica leaves first to make room. A constructor
//!    that fails is retried; after [`MAX_CONSTRUCTION_FAILURES`]
//!    failures in a row the deployment is reported `UNHEALTHY` with the constructor's error and no
//!    more replicas are started until a construction succeeds again (a later tick retries once per
//!    health period).
//!
//! A request queued at a deployment with no replica wakes the controller at once instead of
//! waiting for the next tick, so a deployment scaled to zero comes back for its first request.
//! The task holds the router weakly and ends when the deployment is gone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::application::ReplicaFactory;
use crate::autoscaling::AutoscalingPolicy;
use crate::deployment::{Deployment, DeploymentConfig};
use crate::router::Router;

/// Health checks failed in a row before a replica is replaced.
pub(crate) const HEALTH_FAILURES_TO_REPLACE: usize = 3;

/// Constructor failures in a row before the deployment is reported unhealthy.
pub(crate) const MAX_CONSTRUCTION_FAILURES: usize = 3;

/// Replicas being constructed, and constructions that failed in a row.
#[derive(Default)]
struct Construction {
    starting: AtomicUsize,
    failures: AtomicUsize,
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() {
        s.clamp(0.001, 1e9)
    } else {
        1.0
    })
}

/// Runs the controller of one deployment until its router is dropped.
pub(crate) async fn run<D: Deployment>(
    router: Weak<Router<D>>,
    factory: ReplicaFactory<D>,
    config: DeploymentConfig,
) {
    let mut policy = config.autoscaling.clone().map(AutoscalingPolicy::new);
    let health_period = seconds(config.health_check_period_s);
    let health_timeout = seconds(config.health_check_timeout_s);
    let tick = match &config.autoscaling {
        Some(a) => seconds(a.metrics_interval_s).min(health_period),
        None => health_period,
    };
    let construction = Arc::new(Construction::default());
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_health_check = Instant::now() + health_period;
    loop {
        let wake = match router.upgrade() {
            Some(router) => router.wake_signal(),
            None => return,
        };
        tokio::select! {
            _ = ticker.tick() => {}
            _ = wake.notified() => {}
        }
        let Some(router) = router.upgrade() else {
            return;
        };
        let now = Instant::now();
        if let Some(policy) = policy.as_mut() {
            autoscale(&router, policy, now);
        }
        if now >= next_health_check {
            next_health_check = now + health_period;
            check_health(&router, health_timeout).await;
            if construction.failures.load(Ordering::SeqCst) >= MAX_CONSTRUCTION_FAILURES {
                // Unhealthy: try again once per health period.
                construction
                    .failures
                    .store(MAX_CONSTRUCTION_FAILURES - 1, Ordering::SeqCst);
            }
        }
        reconcile(&router, &factory, &construction);
    }
}

fn autoscale<D: Deployment>(router: &Router<D>, policy: &mut AutoscalingPolicy, now: Instant) {
    policy.record(now, router.ongoing());
    let target = router.target();
    let decided = policy.decide(now, target);
    if decided != target {
        tracing::info!(
            deployment = router.name(),
            from = target,
            to = decided,
            "autoscaling: {} to {decided} replica(s)",
            if decided > target {
                "upscaling"
            } else {
                "downscaling"
            },
        );
        router.set_target(decided);
    }
}

/// Runs every replica's `check_health`; replaces those that failed too often.
async fn check_health<D: Deployment>(router: &Arc<Router<D>>, timeout: Duration) {
    let replicas = router.replicas();
    let checks = replicas.iter().map(|replica| async move {
        let healthy = match D::__check_health(replica.instance()) {
            None => true,
            Some(check) => match tokio::time::timeout(timeout, check).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::warn!(
                        deployment = router.name(),
                        replica = replica.id(),
                        "health check failed: {e}"
                    );
                    false
                }
                Err(_) => {
                    tracing::warn!(
                        deployment = router.name(),
                        replica = replica.id(),
                        "health check timed out after {timeout:?}"
                    );
                    false
                }
            },
        };
        (replica, healthy)
    });
    for (replica, healthy) in futures::future::join_all(checks).await {
        if replica.record_health(healthy) >= HEALTH_FAILURES_TO_REPLACE
            && router.remove_replica_id(replica.id())
        {
            tracing::error!(
                deployment = router.name(),
                replica = replica.id(),
                "replica failed {HEALTH_FAILURES_TO_REPLACE} health checks in a row: replacing it"
            );
        }
    }
}

/// Starts or stops replicas until running + starting equals the target, and replaces replicas
/// of an older generation (a rolling update).
fn reconcile<D: Deployment>(
    router: &Arc<Router<D>>,
    factory: &ReplicaFactory<D>,
    construction: &Arc<Construction>,
) {
    let target = router.target();
    let generation = router.generation();
    let (mut running, mut current) = {
        let replicas = router.replicas();
        let current = replicas
            .iter()
            .filter(|r| r.generation() == generation)
            .count();
        (replicas.len(), current)
    };
    // Stop only running replicas (old generation first); extra ones still starting are stopped
    // once they run.
    for _ in 0..running.saturating_sub(target) {
        if !router.remove_replica() {
            break;
        }
        if running == current {
            current -= 1;
        }
        running -= 1;
    }
    let old = running - current;
    let starting = construction.starting.load(Ordering::SeqCst);
    if construction.failures.load(Ordering::SeqCst) < MAX_CONSTRUCTION_FAILURES {
        let mut to_start = target.saturating_sub(current + starting);
        if old > 0 {
            // Rolling: new replicas start before old ones leave, at most `surge` above the target
            // at once (Ray's 20% rollout, at least one).
            let surge = (target / 5).max(1);
            to_start = to_start.min((target + surge).saturating_sub(running + starting));
        }
        for _ in 0..to_start {
            start_replica(router, factory, construction, generation);
        }
    }
    // A new replica waiting for resources that only old replicas hold would wait forever: make
    // room by taking one old replica out. One at a time: not while a replica drains, another is
    // being constructed, or resources already given back wait to be taken.
    if old > 0 && router.draining() == 0 && router.starved() {
        tracing::info!(
            deployment = router.name(),
            "rolling update: a new replica waits for resources; stopping an old one to make room"
        );
        router.remove_replica();
    }
}

/// Constructs one replica of `generation` in the background; it joins routing when built.
fn start_replica<D: Deployment>(
    router: &Arc<Router<D>>,
    factory: &ReplicaFactory<D>,
    construction: &Arc<Construction>,
    generation: u64,
) {
    construction.starting.fetch_add(1, Ordering::SeqCst);
    let (router, factory, construction) = (
        Arc::downgrade(router),
        factory.clone(),
        construction.clone(),
    );
    tokio::spawn(async move {
        let built = factory().await;
        construction.starting.fetch_sub(1, Ordering::SeqCst);
        let Some(router) = router.upgrade() else {
            return;
        };
        match built {
            Ok(mut replica) => {
                construction.failures.store(0, Ordering::SeqCst);
                router.set_unhealthy(None);
                if router.generation() == generation {
                    replica.generation = generation;
                    router.add_replica(replica);
                }
                // Else an update started a newer generation while it was built: dropped.
                // Either way the controller looks again at once (a rolling update goes on).
                router.wake_signal().notify_one();
            }
            Err(e) => {
                let failures = construction.failures.fetch_add(1, Ordering::SeqCst) + 1;
                tracing::error!(
                    deployment = router.name(),
                    "a new replica could not be constructed ({failures} in a row): {e}"
                );
                if failures >= MAX_CONSTRUCTION_FAILURES {
                    router.set_unhealthy(Some(format!(
                        "{failures} replica constructions failed in a row; the last: {e}"
                    )));
                }
                // Retry on the next tick, without waiting for a new measurement.
                router.wake_signal().notify_one();
            }
        }
    });
}
