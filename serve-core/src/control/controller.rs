//! The deployment controller: keeps a deployment at its target number of healthy replicas.
//!
//! One controller task runs per deployment. Each tick (and whenever an update, a new replica or a
//! request at a deployment with no replica wakes it) it:
//!
//! 1. **autoscales** (if configured): measures the load (requests waiting for a replica plus
//!    requests running), feeds it to the [`AutoscalingPolicy`] and moves the deployment's *target*
//!    when the policy says so;
//! 2. **checks health** (every `health_check_period_s`, see [`health`](super::health)): a replica
//!    that fails 3 checks in a row is taken out of routing at once (it finishes what it runs) and
//!    replaced;
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
//! The task holds the deployment weakly and ends when the deployment is gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::autoscaling::AutoscalingPolicy;
use super::health::check_health;
use super::state::{DeploymentState, NewReplica};
use crate::api::deployment::Deployment;
use crate::config::DeploymentConfig;
use crate::error::{ErrorKind, ServeError};
use crate::metrics::series::Direction;
use crate::util::counted::Counted;
use crate::util::time;

/// Builds one more replica of a deployment (for autoscaling, recovery and rollouts): places it
/// (pending until its resources are free, which it holds from then on), constructs it and hands
/// it its `user_config`.
pub(crate) type ReplicaFactory<D> = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<NewReplica<D>, ServeError>> + Send>>
        + Send
        + Sync,
>;

/// How long the controller waits before it starts another replica after one could not be
/// started because its node went away (cluster mode).
const UNAVAILABLE_RETRY: Duration = Duration::from_millis(100);

/// Constructor failures in a row before the deployment is reported unhealthy.
pub(crate) const MAX_CONSTRUCTION_FAILURES: usize = 3;

/// Replicas being constructed, and constructions that failed in a row.
#[derive(Default)]
struct Construction {
    starting: Arc<AtomicUsize>,
    failures: AtomicUsize,
}

/// A period from the (validated) config: at least a millisecond, so a tick never spins.
fn period(s: f64) -> Duration {
    time::seconds(s)
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(1))
}

/// Runs the controller of one deployment until the deployment is dropped.
pub(crate) async fn run<D: Deployment>(
    state: Weak<DeploymentState<D>>,
    factory: ReplicaFactory<D>,
    config: DeploymentConfig,
) {
    let mut policy = config.autoscaling.clone().map(AutoscalingPolicy::new);
    let health_period = period(config.health_check_period_s);
    let health_timeout = period(config.health_check_timeout_s);
    let tick = match &config.autoscaling {
        Some(a) => period(a.metrics_interval_s).min(health_period),
        None => health_period,
    };
    let construction = Arc::new(Construction::default());
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_health_check = Instant::now() + health_period;
    loop {
        let wake = match state.upgrade() {
            Some(state) => state.router.wake_signal(),
            None => return,
        };
        tokio::select! {
            _ = ticker.tick() => {}
            _ = wake.notified() => {}
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        let now = Instant::now();
        if let Some(policy) = policy.as_mut() {
            autoscale(&state, policy, now);
        }
        if now >= next_health_check {
            next_health_check = now + health_period;
            check_health(&state, health_timeout).await;
            if construction.failures.load(Ordering::SeqCst) >= MAX_CONSTRUCTION_FAILURES {
                // Unhealthy: try again once per health period.
                construction
                    .failures
                    .store(MAX_CONSTRUCTION_FAILURES - 1, Ordering::SeqCst);
            }
        }
        reconcile(&state, &factory, &construction);
    }
}

fn autoscale<D: Deployment>(
    state: &DeploymentState<D>,
    policy: &mut AutoscalingPolicy,
    now: Instant,
) {
    let started = Instant::now();
    policy.record(now, state.router.ongoing());
    let target = state.target();
    let decided = policy.decide(now, target);
    let took = started.elapsed();
    let moved = match decided.cmp(&target) {
        std::cmp::Ordering::Greater => Some(Direction::Up),
        std::cmp::Ordering::Less => Some(Direction::Down),
        std::cmp::Ordering::Equal => None,
    };
    let (load, desired) = (policy.load(now), policy.desired(now, target));
    state.metrics.decided(load, desired, took, moved);
    if decided != target {
        tracing::info!(
            deployment = %state.name(),
            from = target,
            to = decided,
            "autoscaling: {} to {decided} replica(s)",
            if decided > target {
                "upscaling"
            } else {
                "downscaling"
            },
        );
        state.set_target(decided);
    }
}

/// Starts or stops replicas until running + starting equals the target, and replaces replicas
/// of an older generation (a rolling update).
fn reconcile<D: Deployment>(
    state: &Arc<DeploymentState<D>>,
    factory: &ReplicaFactory<D>,
    construction: &Arc<Construction>,
) {
    let target = state.target();
    let generation = state.generation();
    // `starting` before `running`: a replica that joins routing in between is counted twice
    // (one start too few, made up at the next tick, which its joining triggers) rather than
    // not at all (one start too many), since a construction leaves `starting` only once its
    // replica is in routing.
    let starting = construction.starting.load(Ordering::SeqCst);
    let (mut running, mut current) = state.running_and_current();
    // Stop only running replicas (old generation first); extra ones still starting are stopped
    // once they run.
    for _ in 0..running.saturating_sub(target) {
        if !state.remove_replica() {
            break;
        }
        if running == current {
            current -= 1;
        }
        running -= 1;
    }
    let old = running - current;
    if construction.failures.load(Ordering::SeqCst) < MAX_CONSTRUCTION_FAILURES {
        let mut to_start = target.saturating_sub(current + starting);
        if old > 0 {
            // Rolling: new replicas start before old ones leave, at most `surge` above the target
            // at once (Ray's 20% rollout, at least one).
            let surge = (target / 5).max(1);
            to_start = to_start.min((target + surge).saturating_sub(running + starting));
        }
        for _ in 0..to_start {
            start_replica(state, factory, construction, generation);
        }
    }
    // Cluster mode: a worker that joined (or came back) gets replicas again, one move at a time.
    if old == 0
        && starting == 0
        && running == target
        && state.router.draining() == 0
        && construction.failures.load(Ordering::SeqCst) == 0
        && let Some((heavy, name)) = state.placement.imbalance()
    {
        tracing::info!(
            deployment = %state.name(),
            "rebalancing: moving a replica off node `{name}` to a node with fewer"
        );
        state.rebalance_from(heavy);
        start_replica(state, factory, construction, generation);
    }
    // A new replica waiting for resources that only old replicas hold would wait forever: make
    // room by taking one old replica out. One at a time: not while a replica drains, another is
    // being constructed, or resources already given back wait to be taken.
    if old > 0 && state.router.draining() == 0 && state.starved() {
        tracing::info!(
            deployment = %state.name(),
            "rolling update: a new replica waits for resources; stopping an old one to make room"
        );
        state.remove_replica();
    }
}

/// Constructs one replica of `generation` in the background; it joins routing when built.
fn start_replica<D: Deployment>(
    state: &Arc<DeploymentState<D>>,
    factory: &ReplicaFactory<D>,
    construction: &Arc<Construction>,
    generation: u64,
) {
    // Counts as starting until it is in routing (or failed, or dropped).
    let starting = Counted::new(construction.starting.clone());
    let (state, factory, construction) =
        (Arc::downgrade(state), factory.clone(), construction.clone());
    tokio::spawn(async move {
        let built = factory().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        match built {
            Ok(replica) => {
                construction.failures.store(0, Ordering::SeqCst);
                state.set_unhealthy(None);
                if state.generation() == generation {
                    state.add_replica(replica, generation);
                }
                // Else an update started a newer generation while it was built: dropped.
                // Either way the controller looks again at once (a rolling update goes on).
                drop(starting);
                state.router.wake_signal().notify_one();
            }
            // Its node went away (cluster mode): not the constructor's fault. Try again soon,
            // not at once: until the node is declared dead, placement may pick it again.
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                tracing::warn!(
                    deployment = %state.name(),
                    "a new replica could not be started: {e}; trying again"
                );
                drop(starting);
                let wake = state.router.wake_signal();
                drop(state);
                tokio::time::sleep(UNAVAILABLE_RETRY).await;
                wake.notify_one();
            }
            Err(e) => {
                let failures = construction.failures.fetch_add(1, Ordering::SeqCst) + 1;
                tracing::error!(
                    deployment = %state.name(),
                    "a new replica could not be constructed ({failures} in a row): {e}"
                );
                if failures >= MAX_CONSTRUCTION_FAILURES {
                    state.set_unhealthy(Some(format!(
                        "{failures} replica constructions failed in a row; the last: {e}"
                    )));
                }
                // Retry on the next tick, without waiting for a new measurement.
                drop(starting);
                state.router.wake_signal().notify_one();
            }
        }
    });
}
