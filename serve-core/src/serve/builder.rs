//! [`ServeBuilder`]: an instance's resources, set before it starts.

use std::collections::BTreeMap;

use crate::config::rules;
use crate::control::resources::{ResourcePool, detected_gpu_labels};
#[cfg(doc)]
use crate::control::resources::{detect_cpus, detect_gpus};
use crate::error::{ErrorKind, ServeError};
use crate::metrics::registry::{Metrics, MetricsOptions};

/// The most CPUs or GPUs an instance may be given.
const MAX_DEVICES: f64 = 65536.0;

/// Sets up a [`Serve`](crate::Serve) instance's resources before it starts:
/// [`Serve::builder`](crate::Serve::builder).
///
/// ```
/// use serve_core::prelude::*;
///
/// let serve = Serve::builder().num_cpus(8.0).num_gpus(2.0).resource("a100", 2.0).start()?;
/// assert_eq!(serve.total_resources().num_gpus, 2.0);
/// assert_eq!(serve.available_resources().custom["a100"], 2.0);
/// # Ok::<(), ServeError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServeBuilder {
    num_cpus: Option<f64>,
    num_gpus: Option<f64>,
    custom: BTreeMap<String, f64>,
    /// Name the metrics as Ray does (`ray_serve_*`).
    ray_metric_names: bool,
    /// Cluster mode: the NATS server(s) and the cluster's name.
    #[cfg(feature = "cluster")]
    pub(super) cluster: Option<crate::config::ClusterOptions>,
    /// This node's name in a cluster.
    #[cfg(feature = "cluster")]
    pub(super) node_name: Option<String>,
}

impl ServeBuilder {
    /// The CPUs replicas reserve from (fractions allowed). Unset, CPUs are not limited and replicas
    /// get no CPU ids; [`detect_cpus`] gives the machine's count.
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.num_cpus = Some(n);
        self
    }

    /// The GPUs replicas reserve from (default: [`detect_gpus`]).
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.num_gpus = Some(n);
        self
    }

    /// Adds a custom resource (e.g. `"a100", 4.0`), reserved by deployments with
    /// `resources(a100 = 1)`.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.custom.insert(name.into(), amount);
        self
    }

    /// Names the instance's metrics exactly as Ray Serve does, `ray_serve_*` instead of
    /// `serve_*` (`ray_serve_num_http_requests_total`), so that dashboards and alerts written for
    /// Ray work unchanged. The labels are Ray's either way. See the guide's chapter "Operating
    /// it".
    ///
    /// ```
    /// use serve_core::prelude::*;
    ///
    /// let serve = Serve::builder().ray_metric_names(true).start()?;
    /// # let text = serve.metrics_text();
    /// # assert!(!text.contains("\nserve_"), "{text}");
    /// # Ok::<(), ServeError>(())
    /// ```
    pub fn ray_metric_names(mut self, ray: bool) -> Self {
        self.ray_metric_names = ray;
        self
    }

    /// How the instance's metrics are named, on node `node_id`.
    pub(crate) fn metrics(&self, node_id: &str) -> Metrics {
        Metrics::new(MetricsOptions {
            ray_names: self.ray_metric_names,
            node_id: node_id.to_owned(),
        })
    }

    /// The instance's resources as set, checked by the rules deployments' resources follow
    /// (`config/rules.rs`: amounts finite and at least 0; custom resources neither unnamed nor
    /// `CPU`/`GPU`), and at most [`MAX_DEVICES`] CPUs and GPUs. (`start` is next to
    /// [`Serve`](crate::Serve), which it makes.)
    pub(crate) fn pool(&self) -> Result<ResourcePool, ServeError> {
        let invalid = |what: String| ServeError::new(ErrorKind::Runtime).with_message(what);
        for (key, amount) in [("num_cpus", self.num_cpus), ("num_gpus", self.num_gpus)] {
            let Some(amount) = amount else { continue };
            rules::number(key, key, amount).map_err(invalid)?;
            // CPUs and GPUs are numbered devices: keep their count sane.
            if amount > MAX_DEVICES {
                return Err(invalid(format!(
                    "`{key}` must be at most {MAX_DEVICES}, not {amount}"
                )));
            }
        }
        for (name, amount) in &self.custom {
            rules::resource_name("", name).map_err(invalid)?;
            rules::resource_amount(&format!("resources.{name}"), *amount).map_err(invalid)?;
        }
        let labels = detected_gpu_labels();
        let num_gpus = self.num_gpus.unwrap_or(labels.len() as f64);
        Ok(ResourcePool::new(
            self.num_cpus,
            num_gpus,
            &self.custom,
            labels,
        ))
    }
}
