//! [`MetricsSnapshot`]: the metrics as numbers, for code in the same process (a dashboard, a
//! test, an autoscaler of your own): per deployment, its requests, errors, processing latency and
//! load; per HTTP route, its requests, errors and latency.
//!
//! Counters and histograms only grow, so a reader takes a snapshot now and one later: the
//! difference ([`DeploymentMetrics::since`], [`RouteMetrics::since`]) gives the window's request
//! and error rates (divide by the time between [`MetricsSnapshot::taken`]s) and its latency
//! percentiles ([`LatencyHistogram::quantile`]). Taking one reads the series the registry holds
//! (no request is slowed: requests never take the locks it takes).

use std::collections::BTreeMap;
use std::time::Instant;

use prometheus::core::Collector;
use prometheus::proto::{Metric, MetricFamily};

use super::label::Label;
use super::registry::Metrics;

/// The metrics of one instance (one node) at one moment ([`Serve::metrics`](crate::Serve::metrics)):
/// per deployment its requests, errors, processing latency and load; per HTTP route its requests,
/// errors and latency.
///
/// Counters and histograms only grow, so take one snapshot now and one later: the difference
/// ([`DeploymentMetrics::since`], [`RouteMetrics::since`]) gives the window's request and error
/// rates (divide by the time between the two [`taken`](Self::taken)s) and its latency
/// percentiles ([`LatencyHistogram::quantile`]).
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// When it was taken.
    pub taken: Instant,
    /// Every deployment with a replica or a caller on this node, by application and name.
    pub deployments: Vec<DeploymentMetrics>,
    /// Every route of the HTTP proxy that has had a request (requests no application serves are
    /// under the route `""`).
    pub routes: Vec<RouteMetrics>,
}

impl MetricsSnapshot {
    /// The deployment `deployment` of application `application`, if it is here.
    pub fn deployment(&self, application: &str, deployment: &str) -> Option<&DeploymentMetrics> {
        self.deployments
            .iter()
            .find(|d| d.application == application && d.deployment == deployment)
    }

    /// The HTTP route `route` (a route prefix, as mounted), if it has had a request.
    pub fn route(&self, route: &str) -> Option<&RouteMetrics> {
        self.routes.iter().find(|r| r.route == route)
    }
}

/// One deployment's numbers on one node: what its replicas here did, and what this node's
/// callers have waiting and running.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentMetrics {
    /// Its application.
    pub application: String,
    /// Its name.
    pub deployment: String,
    /// Requests its replicas here finished without an error, since they started.
    pub requests: u64,
    /// Requests its replicas here failed (an error, a panic, or cancelled).
    pub errors: u64,
    /// How long its replicas here took per request (finished or failed).
    pub latency_ms: LatencyHistogram,
    /// Calls from this node waiting for a replica now.
    pub queued: u64,
    /// Requests its replicas here run now.
    pub running: u64,
}

impl DeploymentMetrics {
    /// What happened between `earlier` (a snapshot of the same deployment) and this one: the
    /// counts and latencies of that window; `queued` and `running` stay as they are now.
    pub fn since(&self, earlier: &DeploymentMetrics) -> DeploymentMetrics {
        DeploymentMetrics {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            latency_ms: self.latency_ms.since(&earlier.latency_ms),
            ..self.clone()
        }
    }

    /// The share of requests that failed (0 with no request).
    pub fn error_ratio(&self) -> f64 {
        ratio(self.errors, self.requests + self.errors)
    }
}

/// One HTTP route's numbers (one application mounted on the proxy).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteMetrics {
    /// The application mounted there (`""` for requests no application serves).
    pub application: String,
    /// The route prefix.
    pub route: String,
    /// Responses sent, every status.
    pub requests: u64,
    /// Responses with a 4xx or 5xx status.
    pub errors: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
    /// Time from the request's arrival to the end of its response.
    pub latency_ms: LatencyHistogram,
}

impl RouteMetrics {
    /// What happened between `earlier` (a snapshot of the same route) and this one.
    pub fn since(&self, earlier: &RouteMetrics) -> RouteMetrics {
        RouteMetrics {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            server_errors: self.server_errors.saturating_sub(earlier.server_errors),
            latency_ms: self.latency_ms.since(&earlier.latency_ms),
            ..self.clone()
        }
    }

    /// The share of responses with a 4xx or 5xx status (0 with no request).
    pub fn error_ratio(&self) -> f64 {
        ratio(self.errors, self.requests)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A latency histogram in milliseconds, as Prometheus keeps one: cumulative counts per upper
/// bound, the number of observations and their sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// `(upper bound, observations at or below it)`, bounds rising; observations above the last
    /// bound are in `count` only.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Their sum, in milliseconds.
    pub sum: f64,
}

impl LatencyHistogram {
    /// The `q`-quantile (`0.99` for the 99th percentile) in milliseconds, estimated as
    /// Prometheus's `histogram_quantile` does (linearly within the bucket it falls in; the last
    /// bound if it falls above it). `None` without observations or for a `q` outside `0..=1`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let mut below = (0.0, 0u64);
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank && cumulative > below.1 {
                let within = (rank - below.1 as f64) / (cumulative - below.1) as f64;
                return Some(below.0 + (bound - below.0) * within.clamp(0.0, 1.0));
            }
            below = (bound, cumulative);
        }
        Some(below.0)
    }

    /// The mean in milliseconds (`None` without observations).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The observations made after `earlier` (a reading of the same histogram).
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let before = |i: usize| earlier.buckets.get(i).map_or(0, |b| b.1);
        LatencyHistogram {
            buckets: (self.buckets.iter().enumerate())
                .map(|(i, &(bound, n))| (bound, n.saturating_sub(before(i))))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
            sum: (self.sum - earlier.sum).max(0.0),
        }
    }

    fn add(&mut self, metric: &Metric) {
        let h = metric.get_histogram();
        if self.buckets.is_empty() {
            self.buckets = (h.get_bucket().iter())
                .map(|b| (b.upper_bound(), 0))
                .collect();
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(h.get_bucket()) {
            mine.1 += theirs.cumulative_count();
        }
        self.count += h.get_sample_count();
        self.sum += h.get_sample_sum();
    }
}

/// The value of label `label` of `metric` (empty if it has none).
fn label(metric: &Metric, label: Label) -> &str {
    (metric.get_label().iter())
        .find(|l| l.name() == label.name())
        .map_or("", |l| l.value())
}

/// The series of a family now.
fn series(family: &impl Collector) -> Vec<Metric> {
    family
        .collect()
        .into_iter()
        .flat_map(|mf: MetricFamily| mf.get_metric().to_vec())
        .collect()
}

/// The entry of the deployment `m` is a series of.
fn deployment<'a>(
    map: &'a mut BTreeMap<(String, String), DeploymentMetrics>,
    m: &Metric,
) -> &'a mut DeploymentMetrics {
    let (application, deployment) = (label(m, Label::Application), label(m, Label::Deployment));
    map.entry((application.to_owned(), deployment.to_owned()))
        .or_insert_with(|| DeploymentMetrics {
            application: application.to_owned(),
            deployment: deployment.to_owned(),
            ..Default::default()
        })
}

/// The entry of the route `m` is a series of.
fn route<'a>(map: &'a mut BTreeMap<String, RouteMetrics>, m: &Metric) -> &'a mut RouteMetrics {
    let route = label(m, Label::Route);
    map.entry(route.to_owned()).or_insert_with(|| RouteMetrics {
        application: label(m, Label::Application).to_owned(),
        route: route.to_owned(),
        ..Default::default()
    })
}

/// A gauge's value as a count.
fn count(m: &Metric) -> u64 {
    m.get_gauge().get_value().max(0.0) as u64
}

/// Takes the snapshot of `metrics`.
pub(crate) fn take(metrics: &Metrics) -> MetricsSnapshot {
    metrics.refresh();
    let f = metrics.families();
    let mut deployments = BTreeMap::new();
    for m in series(f.requests.vec()) {
        deployment(&mut deployments, &m).requests += m.get_counter().get_value() as u64;
    }
    for m in series(f.errors.vec()) {
        deployment(&mut deployments, &m).errors += m.get_counter().get_value() as u64;
    }
    for m in series(f.processing_latency.vec()) {
        deployment(&mut deployments, &m).latency_ms.add(&m);
    }
    for m in series(f.queued.vec()) {
        deployment(&mut deployments, &m).queued += count(&m);
    }
    for m in series(f.processing.vec()) {
        deployment(&mut deployments, &m).running += count(&m);
    }
    let mut routes = BTreeMap::new();
    for m in series(f.http_requests.vec()) {
        let n = m.get_counter().get_value() as u64;
        let status: u16 = label(&m, Label::StatusCode).parse().unwrap_or(0);
        let r = route(&mut routes, &m);
        r.requests += n;
        if status >= 400 {
            r.errors += n;
        }
        if status >= 500 {
            r.server_errors += n;
        }
    }
    for m in series(f.http_latency.vec()) {
        route(&mut routes, &m).latency_ms.add(&m);
    }
    MetricsSnapshot {
        taken: Instant::now(),
        deployments: deployments.into_values().collect(),
        routes: routes.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(buckets: &[(f64, u64)], count: u64) -> LatencyHistogram {
        LatencyHistogram {
            buckets: buckets.to_vec(),
            count,
            sum: 0.0,
        }
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        // 10 at or below 1 ms, 10 more up to 2 ms, 0 more up to 4 ms.
        let h = histogram(&[(1.0, 10), (2.0, 20), (4.0, 20)], 20);
        assert_eq!(h.quantile(0.5), Some(1.0));
        assert_eq!(h.quantile(0.75), Some(1.5));
        assert_eq!(h.quantile(1.0), Some(2.0));
        assert_eq!(h.quantile(0.25), Some(0.5));
        assert_eq!(h.quantile(1.5), None);
        assert_eq!(histogram(&[(1.0, 0)], 0).quantile(0.5), None);
    }

    #[test]
    fn a_quantile_above_the_last_bound_is_the_last_bound() {
        let h = histogram(&[(1.0, 1), (2.0, 1)], 10);
        assert_eq!(h.quantile(0.9), Some(2.0));
    }

    #[test]
    fn since_is_the_window() {
        let then = histogram(&[(1.0, 1), (2.0, 3)], 4);
        let now = histogram(&[(1.0, 5), (2.0, 9)], 12);
        assert_eq!(now.since(&then), histogram(&[(1.0, 4), (2.0, 6)], 8));
    }
}
