//! Every metric: its name (without the `serve_` / `ray_serve_` prefix), what it says, and its
//! labels, as Ray Serve has them (the guide's "Operating it" lists them with Ray's names; a test
//! checks that the two agree).

use super::builder::Builder;
use super::family::{Counters, FloatGauges, Gauges, Histograms};
use super::label::{
    BATCH, CALLERS, DEPLOYMENT, DEPLOYMENT_HTTP_ERROR, HANDLE, HTTP, HTTP_ERROR, Label, MODEL,
    PROXY, REPLICA, REPLICA_REQUESTS,
};

/// Latency buckets in milliseconds: from 50 µs (a call inside one process takes a few) to 5
/// minutes.
const LATENCY_MS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0,
    5_000.0, 10_000.0, 30_000.0, 60_000.0, 300_000.0,
];
/// Batch utilization buckets, in percent of `max_batch_size`.
const PERCENT: &[f64] = &[10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0];
/// Batch size buckets.
const BATCH_SIZE: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Every metric family, by what it measures.
pub(crate) struct Families {
    // The HTTP proxy.
    pub(crate) http_requests: Counters,
    pub(crate) http_errors: Counters,
    pub(crate) deployment_http_errors: Counters,
    pub(crate) http_latency: Histograms,
    pub(crate) http_ongoing: Gauges,
    // A node's callers of a deployment (its router).
    pub(crate) handle_requests: Counters,
    pub(crate) queued: Gauges,
    pub(crate) ongoing_at_replicas: Gauges,
    // A replica.
    pub(crate) requests: Counters,
    pub(crate) errors: Counters,
    pub(crate) processing_latency: Histograms,
    pub(crate) processing: Gauges,
    pub(crate) replica_starts: Counters,
    // The controller.
    pub(crate) replica_healthy: Gauges,
    pub(crate) running_replicas: Gauges,
    pub(crate) target_replicas: Gauges,
    pub(crate) desired_replicas: Gauges,
    pub(crate) total_requests: FloatGauges,
    pub(crate) policy_time: FloatGauges,
    pub(crate) scaling_decisions: Counters,
    // `#[batch]` methods.
    pub(crate) batch_wait: Histograms,
    pub(crate) batch_execution: Histograms,
    pub(crate) batch_queue: Gauges,
    pub(crate) batch_utilization: Histograms,
    pub(crate) batch_size: Histograms,
    pub(crate) batches: Counters,
    // `#[multiplexed]` loaders.
    pub(crate) model_load_latency: Histograms,
    pub(crate) model_unload_latency: Histograms,
    pub(crate) models: Gauges,
    pub(crate) model_loads: Counters,
    pub(crate) model_unloads: Counters,
    pub(crate) model_ids: Gauges,
    pub(crate) get_model: Counters,
}

/// Registers every family with `b`.
pub(super) fn register(b: &mut Builder) -> Families {
    Families {
        http_requests: b.counter(
            "num_http_requests_total",
            "The number of HTTP requests processed.",
            HTTP,
        ),
        http_errors: b.counter(
            "num_http_error_requests_total",
            "The number of HTTP responses with a 4xx or 5xx status.",
            HTTP_ERROR,
        ),
        deployment_http_errors: b.counter(
            "num_deployment_http_error_requests_total",
            "The number of HTTP responses with a 4xx or 5xx status, by ingress deployment.",
            DEPLOYMENT_HTTP_ERROR,
        ),
        http_latency: b.histogram(
            "http_request_latency_ms",
            "The end-to-end latency of HTTP requests in milliseconds, measured from the proxy.",
            HTTP,
            LATENCY_MS,
        ),
        http_ongoing: b.gauge(
            "num_ongoing_http_requests",
            "The number of requests in progress at the HTTP proxy.",
            PROXY,
        ),
        handle_requests: b.counter(
            "handle_request_counter_total",
            "The number of calls made to the deployment through this node's handles.",
            HANDLE,
        ),
        queued: b.gauge(
            "deployment_queued_queries",
            "The number of calls to the deployment from this node waiting for a replica.",
            CALLERS,
        ),
        ongoing_at_replicas: b.gauge(
            "num_ongoing_requests_at_replicas",
            "The number of calls to the deployment from this node running on a replica.",
            CALLERS,
        ),
        requests: b.counter(
            "deployment_request_counter_total",
            "The number of requests this replica finished without an error.",
            REPLICA_REQUESTS,
        ),
        errors: b.counter(
            "deployment_error_counter_total",
            "The number of requests of this replica that failed (an error, a panic, or cancelled).",
            REPLICA_REQUESTS,
        ),
        processing_latency: b.histogram(
            "deployment_processing_latency_ms",
            "The time a replica took to process a request, in milliseconds.",
            REPLICA_REQUESTS,
            LATENCY_MS,
        ),
        processing: b.gauge(
            "replica_processing_queries",
            "The number of requests the replica is processing now.",
            REPLICA,
        ),
        replica_starts: b.counter(
            "deployment_replica_starts_total",
            "The number of times this replica was started.",
            REPLICA,
        ),
        replica_healthy: b.gauge(
            "deployment_replica_healthy",
            "Whether the replica passed its last health check (1) or not (0).",
            REPLICA,
        ),
        running_replicas: b.gauge(
            "deployment_running_replicas",
            "The number of replicas of the deployment in routing.",
            DEPLOYMENT,
        ),
        target_replicas: b.gauge(
            "autoscaling_target_replicas",
            "The number of replicas the autoscaler is heading for.",
            DEPLOYMENT,
        ),
        desired_replicas: b.gauge(
            "autoscaling_desired_replicas",
            "The number of replicas the load asks for now, before the upscale and downscale delays.",
            DEPLOYMENT,
        ),
        total_requests: b.float_gauge(
            "autoscaling_total_requests",
            "The load the autoscaler decides on: requests waiting plus running, averaged over the look-back period.",
            DEPLOYMENT,
        ),
        policy_time: b.float_gauge(
            "autoscaling_policy_execution_time_ms",
            "The time the last autoscaling decision took, in milliseconds.",
            &[Label::Deployment, Label::Application, Label::PolicyScope],
        ),
        scaling_decisions: b.counter(
            "autoscaling_decisions_total",
            "The number of times the autoscaler changed the target, by direction (up, down).",
            &[Label::Deployment, Label::Application, Label::Direction],
        ),
        batch_wait: b.histogram(
            "batch_wait_time_ms",
            "The time a batch's first request waited for the batch to fill, in milliseconds.",
            BATCH,
            LATENCY_MS,
        ),
        batch_execution: b.histogram(
            "batch_execution_time_ms",
            "The time the batched method took for one batch, in milliseconds.",
            BATCH,
            LATENCY_MS,
        ),
        batch_queue: b.gauge(
            "batch_queue_length",
            "The number of requests waiting for a batch.",
            BATCH,
        ),
        batch_utilization: b.histogram(
            "batch_utilization_percent",
            "The batch size in percent of max_batch_size.",
            BATCH,
            PERCENT,
        ),
        batch_size: b.histogram(
            "actual_batch_size",
            "The number of requests in each batch.",
            BATCH,
            BATCH_SIZE,
        ),
        batches: b.counter(
            "batches_processed_total",
            "The number of batches the method ran.",
            BATCH,
        ),
        model_load_latency: b.histogram(
            "multiplexed_model_load_latency_ms",
            "The time it took to load a model, in milliseconds.",
            REPLICA,
            LATENCY_MS,
        ),
        model_unload_latency: b.histogram(
            "multiplexed_model_unload_latency_ms",
            "The time it took to unload (drop) an evicted model, in milliseconds.",
            REPLICA,
            LATENCY_MS,
        ),
        models: b.gauge(
            "num_multiplexed_models",
            "The number of models loaded on the replica.",
            REPLICA,
        ),
        model_loads: b.counter(
            "multiplexed_models_load_counter_total",
            "The number of models loaded on the replica.",
            REPLICA,
        ),
        model_unloads: b.counter(
            "multiplexed_models_unload_counter_total",
            "The number of models unloaded (evicted) on the replica.",
            REPLICA,
        ),
        model_ids: b.gauge(
            "registered_multiplexed_model_id",
            "1 for each model id the replica holds.",
            MODEL,
        ),
        get_model: b.counter(
            "multiplexed_get_model_requests_counter_total",
            "The number of calls to the replica's multiplexed model loader.",
            REPLICA,
        ),
    }
}
