//! The deployment controller: keeps a deployment at its target number of replicas.
//!
//! With autoscaling on, a controller task per deployment measures the load every
//! `metrics_interval_s` (requests waiting for a replica plus requests running), feeds it to the
//! [`AutoscalingPolicy`], and moves the router's *target* when the policy says so. Then it
//! reconciles: it constructs replicas while fewer are running or starting than the target (each
//! joins routing when its constructor returns, and the queue drains onto it at once) and takes
//! replicas out of routing while more run than the target (each finishes what it runs; nothing is
//! dropped). A request queued at a deployment with no replica wakes the controller at once instead
//! of waiting for the next tick, so a deployment scaled to zero comes back for its first request.
//!
//! The task holds the router weakly and ends when the deployment is gone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::application::ReplicaFactory;
use crate::autoscaling::{AutoscalingConfig, AutoscalingPolicy};
use crate::router::Router;

/// Runs the autoscaling loop of one deployment until its router is dropped.
pub(crate) async fn autoscale<D: Send + Sync + 'static>(
    router: Weak<Router<D>>,
    factory: ReplicaFactory<D>,
    config: AutoscalingConfig,
) {
    let mut policy = AutoscalingPolicy::new(config.clone());
    let starting = Arc::new(AtomicUsize::new(0));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(
        config.metrics_interval_s.max(0.001),
    ));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
        reconcile(&router, &factory, &starting);
    }
}

/// Starts or stops replicas until running + starting equals the target.
fn reconcile<D: Send + Sync + 'static>(
    router: &Arc<Router<D>>,
    factory: &ReplicaFactory<D>,
    starting: &Arc<AtomicUsize>,
) {
    let target = router.target();
    let running = router.num_replicas();
    let have = running + starting.load(Ordering::SeqCst);
    for _ in have..target {
        starting.fetch_add(1, Ordering::SeqCst);
        let (router, factory, starting) =
            (Arc::downgrade(router), factory.clone(), starting.clone());
        tokio::spawn(async move {
            let built = factory().await;
            starting.fetch_sub(1, Ordering::SeqCst);
            let Some(router) = router.upgrade() else {
                return;
            };
            match built {
                Ok(instance) => router.add_replica(instance),
                Err(e) => tracing::error!(
                    deployment = router.name(),
                    "a new replica could not be constructed: {e}"
                ),
            }
        });
    }
    // Stop only running replicas; extra ones still starting are stopped once they run.
    for _ in target..running.min(have) {
        if !router.remove_replica() {
            break;
        }
    }
}
