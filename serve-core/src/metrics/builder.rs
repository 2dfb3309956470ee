//! [`Builder`]: registers the metric families of a new registry.

use std::sync::Arc;

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::family::{Counters, Family, FloatGauges, Gauges, Histograms};
use super::label::{self, Label};

/// Registers the families, collecting their names.
pub(super) struct Builder {
    pub(super) registry: Registry,
    /// Every family's name as exposed.
    pub(super) names: Vec<String>,
    pub(super) prefix: &'static str,
}

impl Builder {
    fn register<B: MetricVecBuilder + 'static>(
        &mut self,
        name: &str,
        vec: MetricVec<B>,
    ) -> Arc<Family<B>> {
        self.names.push(format!("{}_{name}", self.prefix));
        // Names and label names are fixed and distinct: registering cannot fail.
        self.registry
            .register(Box::new(vec.clone()))
            .expect("metric families are distinct");
        Family::new(vec)
    }

    pub(super) fn counter(&mut self, name: &str, help: &str, labels: &[Label]) -> Counters {
        let vec = IntCounterVec::new(Opts::new(name, help), &label::names(labels));
        self.register(name, vec.expect("a valid counter"))
    }

    pub(super) fn gauge(&mut self, name: &str, help: &str, labels: &[Label]) -> Gauges {
        let vec = IntGaugeVec::new(Opts::new(name, help), &label::names(labels));
        self.register(name, vec.expect("a valid gauge"))
    }

    pub(super) fn float_gauge(&mut self, name: &str, help: &str, labels: &[Label]) -> FloatGauges {
        let vec = GaugeVec::new(Opts::new(name, help), &label::names(labels));
        self.register(name, vec.expect("a valid gauge"))
    }

    pub(super) fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[Label],
        buckets: &[f64],
    ) -> Histograms {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let vec = HistogramVec::new(opts, &label::names(labels));
        self.register(name, vec.expect("a valid histogram"))
    }
}
