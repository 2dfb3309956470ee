//! Metrics: what an instance counts and measures, in Prometheus's text format at the proxy's
//! `/metrics` (or [`Serve::metrics_text`](crate::Serve::metrics_text)), and as numbers for code to
//! read ([`Serve::metrics`](crate::Serve::metrics), a [`MetricsSnapshot`]).
//!
//! The metrics are Ray Serve's built-in ones, with their meaning and labels, named `serve_*`
//! (`ray_serve_*` with [`ServeBuilder::ray_metric_names`](crate::ServeBuilder::ray_metric_names));
//! the guide's chapter "Operating it" lists them next to Ray's names.
//!
//! # What a request pays
//!
//! Every label set is resolved once, when the thing it measures is made: a replica's series when
//! the replica is placed ([`ReplicaSeries`]), a deployment's caller-side series when its router is
//! made ([`DeploymentSeries`]), an HTTP route's when it is mounted ([`RouteSeries`], which resolves
//! each method and status code it sees once). A request then only updates metrics it already
//! holds: atomic additions on a counter and a histogram (the `prometheus` crate's, whose
//! histogram is lock-free). Gauges that the runtime already keeps as atomics (requests waiting
//! for a replica, requests running on one) are not updated per request at all: they are read when
//! the metrics are scraped (see [`Refresh`]).
//!
//! This layer sits just above `util`, below everything that measures something, and knows none of
//! what it measures: the data plane, the control plane and the proxy hold the series they update.

mod builder;
mod families;
mod family;
pub(crate) mod http;
mod label;
pub(crate) mod registry;
pub(crate) mod series;
pub(crate) mod snapshot;
