//! The deployment controller: keeps a deployment at its target number of healthy replicas.
//!
//! One controller task runs per deployment. Every [`CONTROL_LOOP_INTERVAL`] (0.1 s, Ray Serve's
//! control-loop period), and whenever an update, a new replica or a request at a deployment with
//! no replica wakes it, it:
//!
//! 1. **autoscales** (if configured): measures the load (requests waiting for a replica plus
//!    requests running: a few atomic loads), feeds it to the [`AutoscalingPolicy`] and moves the
//!    deployment's *target* when the policy says so. Measuring at every decision keeps the
//!    look-back average a true average of the window, and lets `upscale_delay_s` and
//!    `downscale_delay_s` hold as written (to within a tick); `metrics_interval_s` only matters
//!    when it is shorter than a tick (the loop then runs that often);
//! 2. **checks health** (every `health_check_period_s`, see [`health`](super::health)): a replica
//!    that fails 3 checks in a row is taken out of routing at once (it finishes what it runs) and
//!    replaced. The checks run alongside the loop, not in it: a check that takes its whole
//!    `health_check_timeout_s` does not hold up scaling or a rollout;
//! 3. **reconciles**: constructs replicas while fewer run or start than the target (each joins
//!    routing when its constructor returns, and the queue drains onto it at once) and takes
//!    replicas out of routing while more run than the target (they finish what they run, for up
//!    to `graceful_shutdown_timeout_s`; nothing waiting is dropped). When an update started a new
//!    *generation* (new resources, a restart, a new version of the application), replicas of the
//!    old one are replaced rolling: a new replica is constructed first (at most 20% of the
//!    target, at least one, above the target at once), then an old one leaves routing and
//!    drains; if the new replica waits for resources only old replicas hold, one old replica
//!    leaves first to make room.
//!
//! A constructor that fails is retried at once, up to [`construction_bound`] failures in a row
//! (Ray's `min(3 * target, 20)`). Past that, the deployment is reported `UNHEALTHY` with the
//! constructor's error, keeps the replicas it has (they serve on), and tries one construction
//! per health-check period until one succeeds, which makes it healthy again. (When a deploy's
//! own initial replicas fail that often, the deploy fails instead: see `control/deploy.rs`.)
//!
//! A request queued at a deployment with no replica wakes the controller at once instead of
//! waiting for the next tick, so a deployment scaled to zero comes back for its first request.
//! The task holds the deployment weakly and ends when the deployment is gone, or when a new
//! controller took over (a new version of the application: `DeploymentState::controller_epoch`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::autoscaling::AutoscalingPolicy;
use super::health::check_health;
use super::state::{DeploymentState, construction_bound};
use crate::api::deployment::Deployment;
use crate::config::DeploymentConfig;
use crate::error::ErrorKind;
use crate::metrics::series::Direction;
use crate::util::counted::Counted;
use crate::util::sync::Lock;
use crate::util::time;

/// How often the controller looks at its deployment (Ray Serve's control loop runs every 0.1 s).
pub(crate) const CONTROL_LOOP_INTERVAL: Duration = Duration::from_millis(100);

/// How long the controller waits before it starts another replica after one could not be
/// started because its node went away (cluster mode).
const UNAVAILABLE_RETRY: Duration = Duration::from_millis(100);

/// Replicas being constructed by this controller.
#[derive(Default)]
struct Construction {
    starting: Arc<AtomicUsize>,
}

/// A period from the (validated) config: at least a millisecond, so a tick never spins.
fn period(s: f64) -> Duration {
    time::seconds(s)
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(1))
}

/// Starts the controller of `state` with its current configuration, on `rt`. A controller
/// already running for it (of an earlier version) ends at its next tick.
pub(crate) fn spawn<D: Deployment>(state: &Arc<DeploymentState<D>>, rt: &tokio::runtime::Handle) {
    let epoch = state.next_controller_epoch();
    let config = state.config.locked().clone();
    rt.spawn(run(Arc::downgrade(state), epoch, config));
}

/// Runs until the deployment is dropped or another controller takes over.
async fn run<D: Deployment>(state: Weak<DeploymentState<D>>, epoch: u64, config: DeploymentConfig) {
    let mut policy = config.autoscaling.clone().map(AutoscalingPolicy::new);
    let health_period = period(config.health_check_period_s);
    let health_timeout = period(config.health_check_timeout_s);
    let tick = match &config.autoscaling {
        Some(a) => period(a.metrics_interval_s).min(CONTROL_LOOP_INTERVAL),
        None => CONTROL_LOOP_INTERVAL,
    };
    let construction = Arc::new(Construction::default());
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_health_check = Instant::now() + health_period;
    // The health checks in progress, if any.
    let mut health: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
    loop {
        let wake = match state.upgrade() {
            Some(state) if state.controller_epoch() == epoch => state.router.wake_signal(),
            _ => return,
        };
        tokio::select! {
            _ = ticker.tick() => {}
            _ = wake.notified() => {}
            () = checked(&mut health) => health = None,
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        if state.controller_epoch() != epoch {
            return;
        }
        let now = Instant::now();
        if let Some(policy) = policy.as_mut() {
            autoscale(&state, policy, now);
        }
        if health.is_none() && now >= next_health_check {
            next_health_check = now + health_period;
            let checked_state = state.clone();
            health = Some(Box::pin(async move {
                check_health(&checked_state, health_timeout).await;
            }));
            // Unhealthy (constructions failed too often in a row): one more try per period.
            let bound = construction_bound(state.target());
            state.constructions(|c| {
                if c.in_a_row >= bound {
                    c.in_a_row = bound - 1;
                }
            });
        }
        reconcile(&state, &construction);
    }
}

/// Waits for the health checks in progress; never resolves when there are none.
async fn checked(health: &mut Option<Pin<Box<dyn Future<Output = ()> + Send>>>) {
    match health {
        Some(check) => check.await,
        None => std::future::pending().await,
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
fn reconcile<D: Deployment>(state: &Arc<DeploymentState<D>>, construction: &Arc<Construction>) {
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
    let failures = state.constructions(|c| c.in_a_row);
    if failures < construction_bound(target) {
        let mut to_start = target.saturating_sub(current + starting);
        if old > 0 {
            // Rolling: new replicas start before old ones leave, at most `surge` above the target
            // at once (Ray's 20% rollout, at least one).
            let surge = (target / 5).max(1);
            to_start = to_start.min((target + surge).saturating_sub(running + starting));
        }
        for _ in 0..to_start {
            start_replica(state, construction, generation);
        }
    }
    // Cluster mode: a worker that joined (or came back) gets replicas again, one move at a time.
    if old == 0
        && starting == 0
        && running == target
        && state.router.draining() == 0
        && failures == 0
        && let Some((heavy, name)) = state.placement.imbalance()
    {
        tracing::info!(
            deployment = %state.name(),
            "rebalancing: moving a replica off node `{name}` to a node with fewer"
        );
        state.rebalance_from(heavy);
        start_replica(state, construction, generation);
    }
    // A new replica waiting for resources that only old replicas hold would wait forever: make
    // room by taking one old replica out. One at a time: not while a replica drains, another is
    // being constructed, resources already given back wait to be taken, or a replica taken out
    // has not given its resources back yet (it goes when its last request or health check
    // lets go of it: until then it holds a reservation but is neither in routing nor built).
    let (running_now, _) = state.running_and_current();
    let releasing = state
        .placement
        .held()
        .saturating_sub(running_now + state.placement.building());
    if old > 0 && releasing == 0 && state.router.draining() == 0 && state.starved() {
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
    construction: &Arc<Construction>,
    generation: u64,
) {
    // Counts as starting until it is in routing (or failed, or dropped).
    let starting = Counted::new(construction.starting.clone());
    let built = (state.factory())();
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        let built = built.await;
        let Some(state) = state.upgrade() else {
            return;
        };
        match built {
            Ok(replica) => {
                if state.generation() == generation {
                    state.add_replica(replica, generation);
                }
                // Else an update started a newer generation while it was built: dropped.
                // Either way the controller looks again at once (a rolling update goes on).
                state.construction_succeeded();
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
                let failures = state.construction_failed(e.clone());
                let bound = construction_bound(state.target());
                tracing::error!(
                    deployment = %state.name(),
                    "a new replica could not be constructed ({failures} in a row): {e}"
                );
                if failures >= bound {
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
