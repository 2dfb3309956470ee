//! [`Family`]: one metric of the exposition (a name, its help and its label names) whose series
//! are handed out as [`Series`] guards: a label set resolved once, when the thing it measures is
//! made, and taken out of the exposition when the last guard of that label set is dropped (a
//! replica that stopped leaves no series behind).
//!
//! Holders of one label set share one series: two applications deployed under the same name in one
//! instance count together, and the first of them to go does not take the other's series along.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec};

use crate::util::sync::Lock;

/// The builder type of a metric vector (the `prometheus` crate names the histogram's only
/// through `HistogramVec`).
pub(crate) trait VecOf {
    type Builder: MetricVecBuilder;
}

impl<B: MetricVecBuilder> VecOf for MetricVec<B> {
    type Builder = B;
}

/// A family of series of the vector type `V`, and one of its series.
pub(crate) type FamilyOf<V> = Arc<Family<<V as VecOf>::Builder>>;
pub(crate) type SeriesOf<V> = Series<<V as VecOf>::Builder>;

pub(crate) type Counters = FamilyOf<IntCounterVec>;
pub(crate) type Gauges = FamilyOf<IntGaugeVec>;
pub(crate) type FloatGauges = FamilyOf<GaugeVec>;
pub(crate) type Histograms = FamilyOf<HistogramVec>;

/// A label set as the family keeps it.
type LabelSet = Box<[Box<str>]>;

/// One metric of the exposition: its series by label set, and how many guards hold each.
pub(crate) struct Family<B: MetricVecBuilder> {
    vec: MetricVec<B>,
    holders: Mutex<HashMap<LabelSet, usize>>,
}

impl<B: MetricVecBuilder> Family<B> {
    /// The family of `vec` (already registered with the instance's registry).
    pub(crate) fn new(vec: MetricVec<B>) -> Arc<Self> {
        Arc::new(Self {
            vec,
            holders: Mutex::default(),
        })
    }

    /// The series of `labels` (one value per label name, in the family's order), held until the
    /// guard is dropped. Takes a lock and looks the labels up: call it when the measured thing is
    /// made, never per request.
    pub(crate) fn series(self: &Arc<Self>, labels: &[&str]) -> Series<B> {
        let key: LabelSet = labels.iter().map(|l| Box::from(*l)).collect();
        // Under the lock, so a series being released is not handed out as it is removed.
        let mut holders = self.holders.locked();
        let metric = self.vec.with_label_values(labels);
        *holders.entry(key.clone()).or_default() += 1;
        Series {
            metric,
            family: self.clone(),
            labels: key,
        }
    }

    /// The vector of series (to read them all).
    pub(crate) fn vec(&self) -> &MetricVec<B> {
        &self.vec
    }

    fn release(&self, labels: &LabelSet) {
        let mut holders = self.holders.locked();
        let Some(count) = holders.get_mut(labels) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            holders.remove(labels);
            let values: Vec<&str> = labels.iter().map(|l| &**l).collect();
            let _ = self.vec.remove_label_values(&values);
        }
    }
}

/// A series of a [`Family`], resolved once: updating it is the metric's own atomic operations.
/// Dropping the last guard of a label set removes the series from the exposition.
pub(crate) struct Series<B: MetricVecBuilder> {
    metric: B::M,
    family: Arc<Family<B>>,
    labels: LabelSet,
}

impl<B: MetricVecBuilder> Series<B> {
    /// The label values, in the family's order.
    pub(crate) fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|l| &**l)
    }
}

impl<B: MetricVecBuilder> Deref for Series<B> {
    type Target = B::M;

    #[inline(always)]
    fn deref(&self) -> &B::M {
        &self.metric
    }
}

impl<B: MetricVecBuilder> Drop for Series<B> {
    fn drop(&mut self) {
        self.family.release(&self.labels);
    }
}

impl<B: MetricVecBuilder> std::fmt::Debug for Series<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.labels()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;
    use prometheus::core::Collector;

    fn family() -> Counters {
        Family::new(IntCounterVec::new(Opts::new("c", "a counter"), &["a"]).unwrap())
    }

    fn exposed(f: &Counters) -> usize {
        f.vec.collect()[0].get_metric().len()
    }

    #[test]
    fn a_series_goes_with_its_last_holder() {
        let f = family();
        let one = f.series(&["x"]);
        let two = f.series(&["x"]);
        one.inc();
        two.inc();
        assert_eq!(
            f.vec.with_label_values(&["x"]).get(),
            2,
            "holders of one label set share it"
        );
        drop(one);
        assert_eq!(exposed(&f), 1, "still held");
        drop(two);
        assert_eq!(exposed(&f), 0, "the last holder took it out");
    }
}
