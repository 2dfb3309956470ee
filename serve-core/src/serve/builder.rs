//! [`ServeBuilder`]: an instance's resources, set before it starts.

use std::collections::BTreeMap;

use crate::control::resources::{ResourcePool, detected_gpu_labels};
#[cfg(doc)]
use crate::control::resources::{detect_cpus, detect_gpus};
use crate::error::{ErrorKind, ServeError};

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

    /// The instance's resources as set, checked: fails on a negative or non-finite amount, an
    /// empty resource name, or a custom resource named `CPU` or `GPU`. (`start` is next to
    /// [`Serve`](crate::Serve), which it makes.)
    pub(crate) fn pool(self) -> Result<ResourcePool, ServeError> {
        let invalid = |what: String| Err(ServeError::new(ErrorKind::Runtime).with_message(what));
        let amounts = self
            .num_cpus
            .map(|n| ("num_cpus".to_owned(), n))
            .into_iter()
            .chain(self.num_gpus.map(|n| ("num_gpus".to_owned(), n)))
            .chain(
                self.custom
                    .iter()
                    .map(|(k, v)| (format!("resource `{k}`"), *v)),
            );
        for (what, amount) in amounts {
            if !amount.is_finite() || amount < 0.0 {
                return invalid(format!(
                    "{what} must be a number of at least 0, not {amount}"
                ));
            }
        }
        // CPUs and GPUs are numbered devices: keep their count sane.
        for (what, amount) in [("num_cpus", self.num_cpus), ("num_gpus", self.num_gpus)] {
            if amount.is_some_and(|n| n > MAX_DEVICES) {
                return invalid(format!("{what} must be at most {MAX_DEVICES}"));
            }
        }
        for name in self.custom.keys() {
            if name.is_empty() || name == "CPU" || name == "GPU" {
                return invalid(format!(
                    "`{name}` is not a custom resource name (use `num_cpus` / `num_gpus` for CPUs and GPUs)"
                ));
            }
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
