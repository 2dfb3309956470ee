//! The series each part of the runtime holds, resolved when that part is made: a replica's
//! ([`ReplicaSeries`], and through it its batched methods' and its model loaders'), a node's
//! callers of a deployment ([`DeploymentSeries`]), a deployment's controller
//! ([`ControlSeries`]).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec};

use super::family::SeriesOf;
use super::registry::Metrics;
use crate::util::sync::Lock;

/// A duration in milliseconds, as the latency histograms take it.
#[inline]
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// A replica's label value: `Deployment#id`, as Ray writes replica tags.
pub(crate) fn replica_tag(deployment: &str, replica_id: usize) -> String {
    format!("{deployment}#{replica_id}")
}

/// What one replica running on this node measures: its requests (counted and timed where it
/// runs, whoever called), the requests it runs now, its start.
pub(crate) struct ReplicaSeries {
    requests: SeriesOf<IntCounterVec>,
    errors: SeriesOf<IntCounterVec>,
    latency: SeriesOf<HistogramVec>,
    processing: SeriesOf<IntGaugeVec>,
    _starts: SeriesOf<IntCounterVec>,
    metrics: Metrics,
    /// Deployment, replica and application, the labels its other series start with.
    labels: [String; 3],
}

impl ReplicaSeries {
    /// The series of replica `replica_id` of `deployment` in `app`, which starts now.
    pub(crate) fn new(metrics: &Metrics, app: &str, deployment: &str, replica_id: usize) -> Self {
        let f = metrics.families();
        let replica = replica_tag(deployment, replica_id);
        let route = metrics.route_of(app);
        let requests = [deployment, &replica, &route, app];
        let this = [deployment, &replica, app];
        let starts = f.replica_starts.series(&this);
        starts.inc();
        Self {
            requests: f.requests.series(&requests),
            errors: f.errors.series(&requests),
            latency: f.processing_latency.series(&requests),
            processing: f.processing.series(&this),
            _starts: starts,
            metrics: metrics.clone(),
            labels: [deployment.to_owned(), replica, app.to_owned()],
        }
    }

    /// A request finished after `took`, failed or not: a histogram observation and a counter.
    #[inline]
    pub(crate) fn finished(&self, took: Duration, failed: bool) {
        self.latency.observe(ms(took));
        if failed {
            self.errors.inc();
        } else {
            self.requests.inc();
        }
    }

    /// Sets how many requests it runs now (at scrape time).
    pub(crate) fn set_processing(&self, n: usize) {
        self.processing.set(n as i64);
    }

    /// The series of its `#[batch]` method `method`.
    pub(crate) fn batch(&self, method: &str) -> BatchSeries {
        let f = self.metrics.families();
        let [deployment, replica, app] = &self.labels;
        let labels = [&**deployment, replica, app, method];
        BatchSeries {
            wait: f.batch_wait.series(&labels),
            execution: f.batch_execution.series(&labels),
            queue: f.batch_queue.series(&labels),
            utilization: f.batch_utilization.series(&labels),
            size: f.batch_size.series(&labels),
            batches: f.batches.series(&labels),
        }
    }

    /// The series of its multiplexed models.
    pub(crate) fn models(&self) -> ModelSeries {
        let f = self.metrics.families();
        let [deployment, replica, app] = &self.labels;
        let labels = [&**deployment, replica, app];
        ModelSeries {
            load_latency: f.model_load_latency.series(&labels),
            unload_latency: f.model_unload_latency.series(&labels),
            models: f.models.series(&labels),
            loads: f.model_loads.series(&labels),
            unloads: f.model_unloads.series(&labels),
            get_model: f.get_model.series(&labels),
            ids: KeyedGauges::default(),
            metrics: self.metrics.clone(),
            labels: self.labels.clone(),
        }
    }
}

impl std::fmt::Debug for ReplicaSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReplicaSeries").field(&self.labels).finish()
    }
}

/// What one `#[batch]` method measures on one replica.
pub(crate) struct BatchSeries {
    wait: SeriesOf<HistogramVec>,
    execution: SeriesOf<HistogramVec>,
    queue: SeriesOf<IntGaugeVec>,
    utilization: SeriesOf<HistogramVec>,
    size: SeriesOf<HistogramVec>,
    batches: SeriesOf<IntCounterVec>,
}

impl BatchSeries {
    /// A batch of `size` items (of at most `max`) was formed; its first item waited `waited`.
    pub(crate) fn formed(&self, waited: Duration, size: usize, max: usize) {
        self.wait.observe(ms(waited));
        self.size.observe(size as f64);
        self.utilization
            .observe(100.0 * size as f64 / max.max(1) as f64);
    }

    /// A batch ran for `took`.
    pub(crate) fn ran(&self, took: Duration) {
        self.execution.observe(ms(took));
        self.batches.inc();
    }

    /// Sets how many items wait for a batch.
    pub(crate) fn set_queued(&self, n: usize) {
        self.queue.set(n as i64);
    }
}

/// What a replica's multiplexed model loader measures.
pub(crate) struct ModelSeries {
    load_latency: SeriesOf<HistogramVec>,
    unload_latency: SeriesOf<HistogramVec>,
    models: SeriesOf<IntGaugeVec>,
    loads: SeriesOf<IntCounterVec>,
    unloads: SeriesOf<IntCounterVec>,
    get_model: SeriesOf<IntCounterVec>,
    /// `registered_multiplexed_model_id`: one series per model id held.
    ids: KeyedGauges<String>,
    metrics: Metrics,
    labels: [String; 3],
}

impl ModelSeries {
    /// The loader was called (a cache hit or not).
    #[inline]
    pub(crate) fn requested(&self) {
        self.get_model.inc();
    }

    /// Model `id` was loaded in `took`.
    pub(crate) fn loaded(&self, id: &str, took: Duration) {
        self.load_latency.observe(ms(took));
        self.loads.inc();
        self.models.inc();
        let [deployment, replica, app] = &self.labels;
        let ids = &self.metrics.families().model_ids;
        self.ids.insert(
            id.to_owned(),
            ids.series(&[deployment, replica, app, id]),
            1,
        );
    }

    /// Model `id` was evicted.
    pub(crate) fn evicted(&self, id: &str) {
        self.unloads.inc();
        self.models.dec();
        self.ids.remove(id);
    }

    /// Evicted models took `took` to drop.
    pub(crate) fn unloaded(&self, took: Duration) {
        self.unload_latency.observe(ms(took));
    }
}

/// Gauges of one family made and dropped one key at a time (a model id, a replica id): each is
/// in the exposition from its key's `insert` to its `remove`.
struct KeyedGauges<K> {
    series: Mutex<HashMap<K, SeriesOf<IntGaugeVec>>>,
}

impl<K> Default for KeyedGauges<K> {
    fn default() -> Self {
        Self {
            series: Mutex::default(),
        }
    }
}

impl<K: Hash + Eq> KeyedGauges<K> {
    /// Holds `series` for `key`, set to `value`.
    fn insert(&self, key: K, series: SeriesOf<IntGaugeVec>, value: i64) {
        series.set(value);
        self.series.locked().insert(key, series);
    }

    /// Sets `key`'s gauge, if it has one.
    fn set<Q: Hash + Eq + ?Sized>(&self, key: &Q, value: i64)
    where
        K: Borrow<Q>,
    {
        if let Some(series) = self.series.locked().get(key) {
            series.set(value);
        }
    }

    /// Drops `key`'s gauge (out of the exposition, unless held elsewhere too).
    fn remove<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: Borrow<Q>,
    {
        let series = self.series.locked().remove(key);
        drop(series); // outside the lock
    }
}

/// What a node's callers of one deployment measure (its router on this node): the calls they
/// make, and at scrape time how many wait for a replica and how many run on one.
pub(crate) struct DeploymentSeries {
    calls: SeriesOf<IntCounterVec>,
    queued: SeriesOf<IntGaugeVec>,
    running: SeriesOf<IntGaugeVec>,
}

impl DeploymentSeries {
    /// The series of this node's callers of `deployment` in `app`.
    pub(crate) fn new(metrics: &Metrics, app: &str, deployment: &str) -> Self {
        let f = metrics.families();
        // One router per deployment and node serves every handle of it on the node: the node
        // is the handle and the actor holding it.
        let node = metrics.node_id();
        let route = metrics.route_of(app);
        let callers = [deployment, app, node, node];
        Self {
            calls: f.handle_requests.series(&[node, deployment, &route, app]),
            queued: f.queued.series(&callers),
            running: f.ongoing_at_replicas.series(&callers),
        }
    }

    /// A call was made.
    #[inline]
    pub(crate) fn called(&self) {
        self.calls.inc();
    }

    /// Sets how many calls wait for a replica and how many run on one (at scrape time).
    pub(crate) fn set_load(&self, queued: usize, running: usize) {
        self.queued.set(queued as i64);
        self.running.set(running as i64);
    }
}

impl std::fmt::Debug for DeploymentSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DeploymentSeries")
            .field(&self.calls)
            .finish()
    }
}

/// Which way the autoscaler moved a deployment's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Up,
    Down,
}

/// What a deployment's controller measures (on the node that runs it: the head in cluster mode):
/// its replicas in routing and their health, and the autoscaler's decisions.
pub(crate) struct ControlSeries {
    running: SeriesOf<IntGaugeVec>,
    autoscaling: Option<AutoscalingSeries>,
    /// `deployment_replica_healthy`, by replica id.
    healthy: KeyedGauges<usize>,
    metrics: Metrics,
    /// Deployment and application.
    labels: [String; 2],
}

struct AutoscalingSeries {
    target: SeriesOf<IntGaugeVec>,
    desired: SeriesOf<IntGaugeVec>,
    load: SeriesOf<GaugeVec>,
    policy_time: SeriesOf<GaugeVec>,
    up: SeriesOf<IntCounterVec>,
    down: SeriesOf<IntCounterVec>,
}

impl ControlSeries {
    /// The series of `deployment` in `app`; with the autoscaler's if it `autoscales`.
    pub(crate) fn new(metrics: &Metrics, app: &str, deployment: &str, autoscales: bool) -> Self {
        let f = metrics.families();
        let labels = [deployment, app];
        let autoscaling = autoscales.then(|| AutoscalingSeries {
            target: f.target_replicas.series(&labels),
            desired: f.desired_replicas.series(&labels),
            load: f.total_requests.series(&labels),
            policy_time: f.policy_time.series(&[deployment, app, "deployment"]),
            up: f.scaling_decisions.series(&[deployment, app, "up"]),
            down: f.scaling_decisions.series(&[deployment, app, "down"]),
        });
        Self {
            running: f.running_replicas.series(&labels),
            autoscaling,
            healthy: KeyedGauges::default(),
            metrics: metrics.clone(),
            labels: [deployment.to_owned(), app.to_owned()],
        }
    }

    /// Sets how many replicas are in routing, and the autoscaler's target (at scrape time).
    pub(crate) fn set_replicas(&self, running: usize, target: usize) {
        self.running.set(running as i64);
        if let Some(a) = &self.autoscaling {
            a.target.set(target as i64);
        }
    }

    /// The autoscaler decided: the load it saw, the count it asks for before delays, how long
    /// deciding took, and which way the target moved, if it did.
    pub(crate) fn decided(
        &self,
        load: f64,
        desired: usize,
        took: Duration,
        moved: Option<Direction>,
    ) {
        let Some(a) = &self.autoscaling else {
            return;
        };
        a.load.set(load);
        a.desired.set(desired as i64);
        a.policy_time.set(ms(took));
        match moved {
            Some(Direction::Up) => a.up.inc(),
            Some(Direction::Down) => a.down.inc(),
            None => {}
        }
    }

    /// Replica `replica_id` joined routing (healthy until a check says otherwise).
    pub(crate) fn replica_added(&self, replica_id: usize) {
        let [deployment, app] = &self.labels;
        let replica = replica_tag(deployment, replica_id);
        let healthy = &self.metrics.families().replica_healthy;
        (self.healthy).insert(replica_id, healthy.series(&[deployment, &replica, app]), 1);
    }

    /// Replica `replica_id`'s last health check passed or not.
    pub(crate) fn replica_health(&self, replica_id: usize, healthy: bool) {
        self.healthy.set(&replica_id, i64::from(healthy));
    }

    /// Replica `replica_id` left routing.
    pub(crate) fn replica_removed(&self, replica_id: usize) {
        self.healthy.remove(&replica_id);
    }
}
