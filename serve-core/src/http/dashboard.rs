//! The dashboard: a page the proxy serves at `/-/dashboard` (one HTML file with its script and
//! styles, built into the binary: no CDN, nothing to install), and the data it polls,
//! `/-/dashboard/data?since=N`.
//!
//! The page shows the applications, their deployments with status and replicas (node, state,
//! ongoing requests, loaded models), and live charts per deployment of requests/s, errors/s and
//! latency percentiles (p50, p95, p99) over the last five minutes, updated every second without
//! reloading.
//!
//! The history lives in the server, so a page opened late still shows the last minutes: while the
//! proxy runs, a task takes a [`MetricsSnapshot`](crate::metrics::snapshot::MetricsSnapshot)
//! every second and keeps, per deployment, the rates and percentiles of that second (the
//! difference of two snapshots) for the last [`KEPT`] seconds. That costs one snapshot a second
//! and nothing on the request path. In cluster mode each node's dashboard shows its own replicas'
//! figures (the deployments of the whole cluster, from the head's status, on the head).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::control::registry::Registry;
use crate::metrics::registry::Metrics;
use crate::metrics::snapshot::{self, DeploymentMetrics, MetricsSnapshot};
use crate::util::sync::Lock;

/// The page.
pub(crate) const PAGE: &str = include_str!("dashboard.html");

/// How often the history takes a sample.
const EVERY: Duration = Duration::from_secs(1);

/// How many samples the history keeps (five minutes of them).
pub(crate) const KEPT: usize = 300;

/// One deployment's figures over one sample's second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Rates {
    /// Requests its replicas finished (with or without an error), per second.
    pub(crate) requests_per_s: f64,
    /// Requests its replicas failed, per second.
    pub(crate) errors_per_s: f64,
    /// Processing latency percentiles of the requests finished in that second (`None` with
    /// none).
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p95_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
}

/// One sample: every deployment's figures over the second before `t_ms`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    /// Its place in the history (counts up from 0).
    pub(crate) seq: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub(crate) t_ms: u64,
    /// By deployment name.
    pub(crate) deployments: BTreeMap<String, Rates>,
}

/// The rates of `window` (a snapshot's difference) over `seconds`.
fn rates(window: &DeploymentMetrics, seconds: f64) -> Rates {
    let seconds = seconds.max(1e-3);
    Rates {
        requests_per_s: (window.requests + window.errors) as f64 / seconds,
        errors_per_s: window.errors as f64 / seconds,
        p50_ms: window.latency_ms.quantile(0.50),
        p95_ms: window.latency_ms.quantile(0.95),
        p99_ms: window.latency_ms.quantile(0.99),
    }
}

/// The samples of the last [`KEPT`] seconds.
#[derive(Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// Starts sampling `metrics` every second, for as long as the returned history lives.
    pub(crate) fn start(metrics: Metrics) -> Arc<History> {
        let history = Arc::new(History::default());
        let weak = Arc::downgrade(&history);
        tokio::spawn(sample_every_second(weak, metrics));
        history
    }

    /// Adds the sample between snapshots `earlier` and `now`.
    pub(crate) fn record(&self, earlier: &MetricsSnapshot, now: &MetricsSnapshot) {
        let seconds = (now.taken - earlier.taken).as_secs_f64();
        let deployments = now
            .deployments
            .iter()
            .map(|d| {
                let window = match earlier.deployment(&d.application, &d.deployment) {
                    Some(before) => d.since(before),
                    None => d.clone(),
                };
                (d.deployment.clone(), rates(&window, seconds))
            })
            .collect();
        let t_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_millis() as u64);
        let mut samples = self.samples.locked();
        let seq = samples.back().map_or(0, |s| s.seq + 1);
        samples.push_back(Sample {
            seq,
            t_ms,
            deployments,
        });
        while samples.len() > KEPT {
            samples.pop_front();
        }
    }

    /// The samples after `since` (all of them for `None`), oldest first.
    pub(crate) fn after(&self, since: Option<u64>) -> Vec<Sample> {
        let samples = self.samples.locked();
        samples
            .iter()
            .filter(|s| since.is_none_or(|since| s.seq > since))
            .cloned()
            .collect()
    }
}

async fn sample_every_second(history: Weak<History>, metrics: Metrics) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut earlier = snapshot::take(&metrics);
    loop {
        ticks.tick().await;
        let Some(history) = history.upgrade() else {
            return;
        };
        let now = snapshot::take(&metrics);
        history.record(&earlier, &now);
        earlier = now;
    }
}

/// What `/-/dashboard/data?since=N` answers: the status of every application, and the samples
/// after `N` (all that are kept without it, or with a value that is not a number).
pub(crate) fn data(
    registry: &Registry,
    history: &History,
    query: Option<&str>,
) -> serde_json::Value {
    let since = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("since="))
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|n| u64::try_from(n).ok());
    serde_json::json!({
        "applications": registry.snapshot(),
        "interval_s": EVERY.as_secs_f64(),
        "samples": history.after(since),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::metrics::snapshot::LatencyHistogram;

    fn snapshot(
        taken: Instant,
        requests: u64,
        errors: u64,
        fast: u64,
        slow: u64,
    ) -> MetricsSnapshot {
        MetricsSnapshot {
            taken,
            deployments: vec![DeploymentMetrics {
                application: "app".into(),
                deployment: "Model".into(),
                requests,
                errors,
                latency_ms: LatencyHistogram {
                    buckets: vec![(1.0, fast), (100.0, fast + slow)],
                    count: fast + slow,
                    sum: 0.0,
                },
                queued: 0,
                running: 0,
            }],
            routes: vec![],
        }
    }

    #[test]
    fn a_sample_is_the_difference_of_two_snapshots_per_second() {
        let history = History::default();
        let t0 = Instant::now();
        let before = snapshot(t0, 100, 10, 100, 10);
        let after = snapshot(t0 + Duration::from_secs(2), 140, 20, 140, 20);
        history.record(&before, &after);
        let samples = history.after(None);
        assert_eq!(samples.len(), 1);
        let rates = &samples[0].deployments["Model"];
        assert_eq!(rates.requests_per_s, 25.0, "(40 + 10) requests over 2 s");
        assert_eq!(rates.errors_per_s, 5.0, "10 errors over 2 s");
        // 40 of the window's 50 took under 1 ms: the median is in the first bucket.
        assert!(rates.p50_ms.unwrap() <= 1.0, "{rates:?}");
        assert!(rates.p99_ms.unwrap() > 1.0, "{rates:?}");
    }

    #[test]
    fn the_history_keeps_the_last_samples_and_answers_those_after_a_seq() {
        let history = History::default();
        let t0 = Instant::now();
        let s = snapshot(t0, 0, 0, 0, 0);
        for _ in 0..KEPT + 5 {
            history.record(&s, &s);
        }
        let all = history.after(None);
        assert_eq!(all.len(), KEPT, "the oldest are dropped");
        assert_eq!(all[0].seq, 5);
        let last = all.last().unwrap().seq;
        assert_eq!(history.after(Some(last)).len(), 0);
        assert_eq!(history.after(Some(last - 2)).len(), 2);
    }

    #[test]
    fn a_deployment_without_requests_in_a_window_has_no_percentiles() {
        let history = History::default();
        let t0 = Instant::now();
        let s = snapshot(t0, 3, 0, 3, 0);
        history.record(&s, &snapshot(t0 + EVERY, 3, 0, 3, 0));
        let rates = &history.after(None)[0].deployments["Model"];
        assert_eq!(rates.requests_per_s, 0.0);
        assert_eq!(rates.p50_ms, None);
    }
}
