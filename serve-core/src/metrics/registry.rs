//! [`Metrics`]: one instance's registry, its metric families, and the gauges set at scrape time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use prometheus::{Registry, TextEncoder};

use super::builder::Builder;
use super::families::{self, Families};
use crate::util::sync::Lock;

/// The text format's content type (`/metrics` answers with it).
pub(crate) const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Something whose gauges are set when the metrics are read (a router: its queue and its
/// replicas' running requests), so requests never update them.
pub(crate) trait Refresh: Send + Sync {
    /// Sets the gauges it holds to what they measure now.
    fn refresh(&self);
}

/// How an instance names its metrics, and where it runs.
#[derive(Debug, Clone)]
pub(crate) struct MetricsOptions {
    /// `ray_serve_*` instead of `serve_*`.
    pub(crate) ray_names: bool,
    /// This node's id (`local` outside cluster mode).
    pub(crate) node_id: String,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self {
            ray_names: false,
            node_id: "local".into(),
        }
    }
}

/// One instance's metrics (one node's, in cluster mode): the registry, every metric family, and
/// what refreshes gauges at scrape time. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    options: MetricsOptions,
    /// Application -> the route prefix it is served under on this node (the `route` label of its
    /// deployments' series).
    routes: Mutex<HashMap<String, String>>,
    sources: Mutex<Vec<Weak<dyn Refresh>>>,
    /// Every metric's name as exposed, for the docs' check.
    #[cfg_attr(not(test), allow(dead_code))]
    names: Vec<String>,
    f: Families,
}

impl Metrics {
    /// A new instance's metrics.
    pub(crate) fn new(options: MetricsOptions) -> Self {
        let prefix = if options.ray_names {
            "ray_serve"
        } else {
            "serve"
        };
        let registry = Registry::new_custom(Some(prefix.into()), None).expect("a non-empty prefix");
        let mut b = Builder {
            registry,
            names: Vec::new(),
            prefix,
        };
        let f = families::register(&mut b);
        let Builder {
            registry, names, ..
        } = b;
        Self {
            inner: Arc::new(Inner {
                registry,
                options,
                routes: Mutex::default(),
                sources: Mutex::default(),
                names,
                f,
            }),
        }
    }

    /// The metric families.
    #[inline]
    pub(crate) fn families(&self) -> &Families {
        &self.inner.f
    }

    /// This node's id.
    pub(crate) fn node_id(&self) -> &str {
        &self.inner.options.node_id
    }

    /// Every metric's name as exposed (histograms without their `_bucket`, `_sum`, `_count`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn names(&self) -> &[String] {
        &self.inner.names
    }

    /// Records that application `app` is served under `route` on this node: the deployments'
    /// series made from now on carry it as their `route` label (`None`: served under none).
    pub(crate) fn set_route(&self, app: &str, route: Option<&str>) {
        let mut routes = self.inner.routes.locked();
        match route {
            Some(route) => routes.insert(app.to_owned(), route.to_owned()),
            None => routes.remove(app),
        };
    }

    /// The route prefix application `app` is served under on this node (empty if none).
    pub(crate) fn route_of(&self, app: &str) -> String {
        self.inner
            .routes
            .locked()
            .get(app)
            .cloned()
            .unwrap_or_default()
    }

    /// Has `source` set its gauges whenever the metrics are read, for as long as it lives.
    pub(crate) fn on_scrape(&self, source: Weak<dyn Refresh>) {
        let mut sources = self.inner.sources.locked();
        sources.retain(|s| s.strong_count() > 0);
        sources.push(source);
    }

    /// Sets every scrape-time gauge.
    pub(super) fn refresh(&self) {
        let sources: Vec<_> = {
            let mut sources = self.inner.sources.locked();
            sources.retain(|s| s.strong_count() > 0);
            sources.iter().filter_map(Weak::upgrade).collect()
        };
        // Outside the lock: a source may make series (which never registers a source).
        for source in sources {
            source.refresh();
        }
    }

    /// The metrics' families as they are now.
    pub(crate) fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.refresh();
        self.inner.registry.gather()
    }

    /// The metrics in Prometheus's text format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let families = self.gather();
        TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# the metrics could not be encoded: {e}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(MetricsOptions::default())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_lists_every_metric_and_its_ray_name() {
        let guide = include_str!("../../docs/operating.md");
        let metrics = Metrics::default();
        for name in metrics.names() {
            let ray = name.replacen("serve_", "ray_serve_", 1);
            assert!(
                guide.contains(&format!("| `{name}` | `{ray}` |"))
                    || guide.contains(&format!("| `{name}` | (none) |")),
                "the guide's table has no row for {name}"
            );
        }
        let rows: Vec<&str> = (guide.lines())
            .filter_map(|line| line.strip_prefix("| `serve_"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        for row in rows {
            let name = format!("serve_{row}");
            assert!(
                metrics.names().contains(&name),
                "the guide lists {name}, which is not a metric"
            );
        }
    }

    #[test]
    fn rays_names_are_rays_prefix_and_ours_otherwise() {
        let ray = Metrics::new(MetricsOptions {
            ray_names: true,
            ..MetricsOptions::default()
        });
        assert!(ray.names().iter().all(|n| n.starts_with("ray_serve_")));
        let ours = Metrics::default();
        assert!(ours.names().iter().all(|n| n.starts_with("serve_")));
        assert_eq!(ours.names().len(), ray.names().len());
    }
}
