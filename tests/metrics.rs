//! Metrics (issue 12): `/metrics` on the HTTP proxy, scraped over real HTTP and parsed as
//! Prometheus's text format (`prometheus-parse`), while requests succeed, fail (an `Err`, a 404),
//! are refused (a full queue: 503) and run under load; batching, multiplexing, autoscaling and
//! health; Ray's names; the Grafana dashboard's queries; and, in cluster mode, each node's own
//! `/metrics`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use serve_core::http::{HttpError, Request};
use serve_core::prelude::*;
use serve_core::{BoxError, RunOptions};
use serve_test_support::cluster::{
    WorkerProcess, WorkerSpec, run_http_worker_reporting, test_cluster, worker_env,
};
use serve_test_support::http::send;
use serve_test_support::{
    Gate, NatsServer, Overloaded, PATIENCE, deployment_status, quick_autoscaling,
};

// --- reading what `/metrics` says -----------------------------------------------------------------

/// A metric, the labels its series has (among others), and the value it should have.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// One scrape, parsed.
struct Metrics(Scrape);

impl Metrics {
    fn parse(text: &str) -> Self {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        Metrics(Scrape::parse(lines).expect("the exposition parses"))
    }

    /// The samples of metric `name` whose labels include `labels`.
    fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.samples.iter().filter(move |s| {
            s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
    }

    /// The sum of the counters, gauges or untyped samples of `name` matching `labels` (0 if
    /// none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels)
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                ref other => panic!("{name} is not a single value: {other:?}"),
            })
            .sum()
    }

    /// Whether a sample of `name` matching `labels` is there.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples(name, labels).next().is_some()
    }

    /// Histogram `name` matching `labels` (exactly one series): its observations, checked to be
    /// its `+Inf` bucket, with buckets that never decrease.
    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let series: Vec<&Sample> = self.samples(name, labels).collect();
        assert_eq!(series.len(), 1, "one {name} series for {labels:?}");
        let Value::Histogram(buckets) = &series[0].value else {
            panic!("{name} is not a histogram");
        };
        let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "cumulative buckets never decrease: {counts:?}"
        );
        let inf = buckets
            .iter()
            .find(|b| b.less_than == f64::INFINITY)
            .expect("a +Inf bucket")
            .count;
        let count = self.value(&format!("{name}_count"), labels);
        assert_eq!(
            inf, count,
            "{name}: the +Inf bucket holds every observation"
        );
        count
    }

    /// Metric `name` with `labels`: a histogram's observations (see [`histogram_count`]), any
    /// other metric's value.
    ///
    /// [`histogram_count`]: Self::histogram_count
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let histogram =
            (self.samples(name, labels)).any(|s| matches!(s.value, Value::Histogram(_)));
        match histogram {
            true => self.histogram_count(name, labels),
            false => self.value(name, labels),
        }
    }

    /// Checks every `(metric, labels, value)` (see [`get`](Self::get)); fails listing all that
    /// differ.
    fn expect(&self, expected: &[Expected]) {
        let wrong: Vec<String> = (expected.iter())
            .filter_map(|&(name, labels, want)| {
                let got = self.get(name, labels);
                (got != want).then(|| format!("{name} {labels:?}: {got}, expected {want}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Every metric name in the scrape (histograms under their own name and their `_sum` and
    /// `_count`).
    fn names(&self) -> BTreeSet<&str> {
        self.0.samples.iter().map(|s| s.metric.as_str()).collect()
    }
}

/// Scrapes `/metrics` of the proxy at `addr` over HTTP.
async fn scrape(addr: SocketAddr) -> Metrics {
    let reply = send(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("text/plain; version=0.0.4")
    );
    Metrics::parse(&reply.body)
}

/// Polls `/metrics` until `pred` holds (an outside observation, not synchronisation); fails the
/// test after [`PATIENCE`].
async fn scrape_until(addr: SocketAddr, what: &str, pred: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = scrape(addr).await;
        if pred(&metrics) {
            return metrics;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// --- an API that succeeds, fails, and holds -------------------------------------------------------

/// One slot and room for one waiting request. `/ok` answers, `/fail` returns an error (500),
/// `/missing` a 404, `/hold` opens `entered` and waits for `release`.
#[deployment(max_ongoing_requests = 1, max_queued_requests = 1)]
pub struct Api {
    entered: Gate,
    release: Gate,
}

#[deployment]
impl Api {
    pub fn new(entered: Gate, release: Gate) -> Self {
        Self { entered, release }
    }

    pub async fn call(&self, req: Request) -> Result<String, BoxError> {
        match req.route_path() {
            "/fail" => Err(Box::new(Overloaded)),
            "/missing" => Err(HttpError::not_found("no such thing").into()),
            "/hold" => {
                self.entered.open();
                self.release.wait().await;
                Ok("held".into())
            }
            _ => Ok("ok".into()),
        }
    }
}

#[tokio::test]
async fn counters_and_histograms_move_with_successes_errors_404s_and_503s() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, release) = (Gate::new(), Gate::new());
    serve
        .run_http(
            Api::bind(entered.clone(), release.clone()),
            RunOptions::named("Api").route_prefix("/api"),
        )
        .unwrap();

    for _ in 0..5 {
        assert_eq!(send(addr, "GET", "/api/ok", &[], "").await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(send(addr, "POST", "/api/fail", &[], "").await.status, 500);
    }
    for _ in 0..2 {
        assert_eq!(send(addr, "GET", "/api/missing", &[], "").await.status, 404);
    }
    assert_eq!(send(addr, "GET", "/nowhere", &[], "").await.status, 404);

    // Back pressure: one request runs, one waits, the next is refused.
    let running = tokio::spawn(send(addr, "GET", "/api/hold", &[], ""));
    entered
        .expect_open("the first request holds the slot")
        .await;
    let waiting = tokio::spawn(send(addr, "GET", "/api/hold", &[], ""));
    let api = [("deployment", "Api"), ("application", "Api")];
    let during = scrape_until(addr, "the second request queued", |m| {
        m.value("serve_deployment_queued_queries", &api) == 1.0
    })
    .await;
    // Gauges read at scrape time: the request running, the one waiting, both in the proxy.
    let replica: &[_] = &[
        ("deployment", "Api"),
        ("replica", "Api#0"),
        ("application", "Api"),
    ];
    during.expect(&[
        ("serve_replica_processing_queries", replica, 1.0),
        ("serve_num_ongoing_requests_at_replicas", &api, 1.0),
        ("serve_num_ongoing_http_requests", &[], 2.0),
    ]);
    let refused = send(addr, "GET", "/api/hold", &[], "").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    release.open();
    for request in [running, waiting] {
        let reply = tokio::time::timeout(PATIENCE, request)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply.status, 200);
    }

    // The held requests are counted once their responses are made.
    let m = scrape_until(addr, "the held requests counted", |m| {
        m.value("serve_num_http_requests_total", &[("status_code", "200")]) == 7.0
    })
    .await;
    let route = |method, code| [("route", "/api"), ("method", method), ("status_code", code)];
    let (get_200, post_500) = (route("GET", "200"), route("POST", "500"));
    let (get_404, get_503) = (route("GET", "404"), route("GET", "503"));
    let error = |code| {
        [
            ("route", "/api"),
            ("error_code", code),
            ("application", "Api"),
        ]
    };
    let (e500, e404, e503) = (error("500"), error("404"), error("503"));
    // The replica's requests carry its application's route.
    let requests: &[_] = &[
        ("replica", "Api#0"),
        ("route", "/api"),
        ("application", "Api"),
    ];
    let handle: &[_] = &[
        ("deployment", "Api"),
        ("route", "/api"),
        ("handle", "local"),
    ];
    m.expect(&[
        ("serve_num_http_requests_total", &get_200, 7.0),
        ("serve_num_http_requests_total", &post_500, 3.0),
        ("serve_num_http_requests_total", &get_404, 2.0),
        ("serve_num_http_requests_total", &get_503, 1.0),
        // A path no application serves: route and application empty.
        (
            "serve_num_http_requests_total",
            &[("route", ""), ("application", ""), ("status_code", "404")],
            1.0,
        ),
        // Errors are the 4xx and 5xx, by route and by ingress deployment.
        ("serve_num_http_error_requests_total", &e500, 3.0),
        ("serve_num_http_error_requests_total", &e404, 2.0),
        ("serve_num_http_error_requests_total", &e503, 1.0),
        (
            "serve_num_deployment_http_error_requests_total",
            &[
                ("deployment", "Api"),
                ("error_code", "503"),
                ("method", "GET"),
            ],
            1.0,
        ),
        ("serve_http_request_latency_ms", &get_200, 7.0),
        ("serve_http_request_latency_ms", &post_500, 3.0),
        ("serve_num_ongoing_http_requests", &[], 0.0),
        // The replica answered 7 and failed 5 (the `Err`s and the 404s its code returned); the
        // refused request never reached it.
        ("serve_deployment_request_counter_total", requests, 7.0),
        ("serve_deployment_error_counter_total", requests, 5.0),
        ("serve_deployment_processing_latency_ms", requests, 12.0),
        ("serve_replica_processing_queries", replica, 0.0),
        ("serve_deployment_queued_queries", &api, 0.0),
        // Every call this node made to it, the refused one included.
        ("serve_handle_request_counter_total", handle, 13.0),
        ("serve_deployment_replica_starts_total", replica, 1.0),
        ("serve_deployment_replica_healthy", replica, 1.0),
        ("serve_deployment_running_replicas", &api, 1.0),
    ]);
    // `/metrics` itself is not counted; a success is no error.
    assert!(!m.has("serve_num_http_requests_total", &[("route", "/metrics")]));
    assert!(!m.has(
        "serve_num_http_error_requests_total",
        &[("error_code", "200")]
    ));

    // The same numbers in process, for a dashboard.
    let snapshot = serve.metrics();
    let api_metrics = snapshot.deployment("Api", "Api").unwrap();
    assert_eq!((api_metrics.requests, api_metrics.errors), (7, 5));
    assert_eq!(api_metrics.latency_ms.count, 12);
    let route = snapshot.route("/api").unwrap();
    assert_eq!(
        (route.requests, route.errors, route.server_errors),
        (13, 6, 4)
    );
    serve.shutdown();
}

// --- under load, through a composition ------------------------------------------------------------

#[deployment]
#[derive(Default)]
pub struct Upper;

#[deployment]
impl Upper {
    pub fn upper(&self, text: String) -> String {
        text.to_uppercase()
    }
}

#[deployment]
pub struct Shout {
    upper: DeploymentHandle<Upper>,
}

#[deployment]
impl Shout {
    pub fn new(upper: DeploymentHandle<Upper>) -> Self {
        Self { upper }
    }

    pub async fn call(&self, req: Request) -> Result<String, ServeError> {
        let text = String::from_utf8_lossy(req.body()).into_owned();
        self.upper.upper.remote(text).await
    }
}

fn shout_app() -> Application<Shout> {
    Shout::bind(Upper::bind())
}

/// The counter `name`'s value in every scrape, with `labels`.
fn series_of(scrapes: &[Metrics], name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    scrapes.iter().map(|m| m.value(name, labels)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_under_load_see_counters_grow_to_the_requests_made() {
    const CLIENTS: usize = 8;
    const EACH: usize = 50;
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .run_http(
            shout_app(),
            RunOptions::named("Shout").route_prefix("/shout"),
        )
        .unwrap();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..EACH {
                    let reply = send(addr, "POST", "/shout", &[], "hey").await;
                    assert_eq!((reply.status, reply.body.as_str()), (200, "HEY"));
                }
            })
        })
        .collect();
    let mut scrapes = Vec::new();
    while !clients.iter().all(|c| c.is_finished()) {
        scrapes.push(scrape(addr).await);
    }
    for client in clients {
        client.await.unwrap();
    }
    scrapes.push(scrape(addr).await);

    let total = (CLIENTS * EACH) as f64;
    let ok = [("route", "/shout"), ("status_code", "200")];
    let upper = [("deployment", "Upper"), ("application", "Shout")];
    for (name, labels) in [
        ("serve_num_http_requests_total", &ok[..]),
        ("serve_http_request_latency_ms_count", &ok[..]),
        ("serve_deployment_request_counter_total", &upper[..]),
        ("serve_handle_request_counter_total", &upper[..]),
    ] {
        let seen = series_of(&scrapes, name, labels);
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "{name} never goes down: {seen:?}"
        );
        assert_eq!(*seen.last().unwrap(), total, "{name}");
    }
    for ongoing in series_of(&scrapes, "serve_num_ongoing_http_requests", &[]) {
        assert!((0.0..=CLIENTS as f64).contains(&ongoing), "{ongoing}");
    }
    let last = scrapes.last().unwrap();
    // The downstream deployment's requests carry the route of the application they serve.
    let upper_requests = [
        ("deployment", "Upper"),
        ("route", "/shout"),
        ("application", "Shout"),
        ("replica", "Upper#0"),
    ];
    assert_eq!(
        last.histogram_count("serve_deployment_processing_latency_ms", &upper_requests),
        total
    );
    assert_eq!(
        last.value("serve_deployment_error_counter_total", &upper),
        0.0
    );
    serve.shutdown();
}

// --- batching, multiplexing, autoscaling ----------------------------------------------------------

#[deployment(max_ongoing_requests = 16)]
#[derive(Default)]
pub struct Batched;

#[deployment]
impl Batched {
    /// Batches go when full (the wait is long).
    #[batch(max_batch_size = 4, batch_wait_timeout_s = 30)]
    pub async fn double(&self, xs: Vec<i64>) -> Vec<i64> {
        xs.into_iter().map(|x| 2 * x).collect()
    }
}

#[deployment]
#[derive(Default)]
pub struct Models;

#[deployment]
impl Models {
    /// One model at a time.
    #[multiplexed(max_num_models_per_replica = 1)]
    pub async fn get_model(&self, model_id: String) -> Result<String, BoxError> {
        Ok(model_id)
    }

    pub async fn predict(&self) -> Result<String, ServeError> {
        let id = serve_core::get_multiplexed_model_id().unwrap_or_default();
        Ok(self.get_model(&id).await?.to_string())
    }
}

#[test]
fn batches_and_multiplexed_models_are_measured() {
    let serve = Serve::start().unwrap();
    let batched = serve
        .run_with(Batched::bind(), RunOptions::named("Batched"))
        .unwrap();
    let models = serve
        .run_with(Models::bind(), RunOptions::named("Models"))
        .unwrap();

    let calls: Vec<_> = (0..8).map(|x| batched.double.remote(x)).collect();
    for (x, call) in calls.into_iter().enumerate() {
        assert_eq!(call.result_timeout(PATIENCE).unwrap(), 2 * x as i64);
    }
    for id in ["a", "b", "a"] {
        let handle = models.options().multiplexed_model_id(id);
        assert_eq!(
            handle.predict.remote().result_timeout(PATIENCE).unwrap(),
            id
        );
    }

    // No proxy here: the same text, from the instance.
    let m = Metrics::parse(&serve.metrics_text());
    let batch: &[_] = &[("replica", "Batched#0"), ("function_name", "double")];
    let replica: &[_] = &[("replica", "Models#0"), ("application", "Models")];
    let model = |id| [("deployment", "Models"), ("model_id", id)];
    m.expect(&[
        // Two full batches of four.
        ("serve_batches_processed_total", batch, 2.0),
        ("serve_actual_batch_size", batch, 2.0),
        ("serve_actual_batch_size_sum", batch, 8.0),
        ("serve_batch_utilization_percent_sum", batch, 200.0),
        ("serve_batch_wait_time_ms", batch, 2.0),
        ("serve_batch_execution_time_ms", batch, 2.0),
        ("serve_batch_queue_length", batch, 0.0),
        // `a`, then `b` (evicting `a`), then `a` again (evicting `b`).
        (
            "serve_multiplexed_get_model_requests_counter_total",
            replica,
            3.0,
        ),
        ("serve_multiplexed_models_load_counter_total", replica, 3.0),
        (
            "serve_multiplexed_models_unload_counter_total",
            replica,
            2.0,
        ),
        ("serve_multiplexed_model_load_latency_ms", replica, 3.0),
        ("serve_multiplexed_model_unload_latency_ms", replica, 2.0),
        ("serve_num_multiplexed_models", replica, 1.0),
        ("serve_registered_multiplexed_model_id", &model("a"), 1.0),
    ]);
    assert!(!m.has("serve_registered_multiplexed_model_id", &model("b")));
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaling_decisions_and_replica_health_are_measured() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, release) = (Gate::new(), Gate::new());
    let app = Api::bind(entered, release.clone());
    let mut configs = app.deployment_configs();
    configs[0] = (configs[0].clone())
        .max_queued_requests(100)
        .autoscaling(quick_autoscaling(1, 3));
    serve
        .run_http_configured(app, RunOptions::named("Api"), configs)
        .unwrap();
    let api: &[_] = &[("deployment", "Api"), ("application", "Api")];
    scrape(addr)
        .await
        .expect(&[("serve_autoscaling_target_replicas", api, 1.0)]);

    // Six requests held at once (one slot per replica): a load of 6 for a target of 1 per
    // replica, clamped to 3.
    let held: Vec<_> = (0..6)
        .map(|_| tokio::spawn(send(addr, "GET", "/hold", &[], "")))
        .collect();
    let m = scrape_until(addr, "3 replicas running", |m| {
        m.value("serve_deployment_running_replicas", api) == 3.0
    })
    .await;
    m.expect(&[
        ("serve_autoscaling_target_replicas", api, 3.0),
        ("serve_autoscaling_desired_replicas", api, 3.0),
        // Each replica started once and is healthy.
        ("serve_deployment_replica_starts_total", api, 3.0),
        ("serve_deployment_replica_healthy", api, 3.0),
    ]);
    assert!(m.value("serve_autoscaling_total_requests", api) > 0.0);
    let up = [("deployment", "Api"), ("direction", "up")];
    assert!(m.value("serve_autoscaling_decisions_total", &up) >= 1.0);
    let policy = [("deployment", "Api"), ("policy_scope", "deployment")];
    assert!(m.has("serve_autoscaling_policy_execution_time_ms", &policy));
    let replicas: BTreeSet<&str> = m
        .samples("serve_deployment_replica_healthy", api)
        .map(|s| s.labels.get("replica").unwrap())
        .collect();
    assert_eq!(replicas, BTreeSet::from(["Api#0", "Api#1", "Api#2"]));

    release.open();
    for request in held {
        let reply = tokio::time::timeout(PATIENCE, request).await.unwrap();
        assert_eq!(reply.unwrap().status, 200);
    }
    // Idle: back to one replica; the others' series go with them.
    let m = scrape_until(addr, "back to 1 replica", |m| {
        m.value("serve_deployment_running_replicas", api) == 1.0
            && m.value("serve_deployment_replica_healthy", api) == 1.0
    })
    .await;
    let down = [("deployment", "Api"), ("direction", "down")];
    assert!(m.value("serve_autoscaling_decisions_total", &down) >= 1.0);
    m.expect(&[("serve_autoscaling_target_replicas", api, 1.0)]);
    serve.shutdown();
}

// --- Ray's names ----------------------------------------------------------------------------------

#[tokio::test]
async fn ray_metric_names_are_rays_exactly() {
    let serve = Serve::builder().ray_metric_names(true).start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .run_http(shout_app(), RunOptions::named("Shout"))
        .unwrap();
    assert_eq!(send(addr, "POST", "/", &[], "hi").await.body, "HI");
    let m = scrape(addr).await;
    let ok: &[_] = &[("route", "/"), ("method", "POST"), ("status_code", "200")];
    let upper: &[_] = &[("deployment", "Upper"), ("application", "Shout")];
    m.expect(&[
        ("ray_serve_num_http_requests_total", ok, 1.0),
        ("ray_serve_http_request_latency_ms", ok, 1.0),
        ("ray_serve_deployment_request_counter_total", upper, 1.0),
    ]);
    let foreign: Vec<&str> = m
        .names()
        .into_iter()
        .filter(|name| !name.starts_with("ray_serve_"))
        .collect();
    assert!(foreign.is_empty(), "only Ray's names: {foreign:?}");
    serve.shutdown();
}

// --- the Grafana dashboard ------------------------------------------------------------------------

/// The metric names a PromQL expression reads: its identifiers that start with `serve_`.
fn metrics_in(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("serve_"))
        .map(str::to_owned)
        .collect()
}

/// Every `expr` of the dashboard's panels (and of the panels inside rows).
fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_queries_is_exposed() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/serve.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["title"].is_string() && dashboard["panels"].is_array());
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    let queried: BTreeSet<String> = queries.iter().flat_map(|q| metrics_in(q)).collect();
    assert!(
        queried.len() >= 20,
        "the dashboard queries most metrics: {queried:?}"
    );

    // Everything that makes series: HTTP with errors, a composition, batching, multiplexing,
    // autoscaling.
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, release) = (Gate::new(), Gate::new());
    release.open();
    serve
        .run_http(
            Api::bind(entered, release),
            RunOptions::named("Api").route_prefix("/api"),
        )
        .unwrap();
    serve
        .run_http(
            shout_app(),
            RunOptions::named("Shout").route_prefix("/shout"),
        )
        .unwrap();
    let batched = serve
        .run_with_async(Batched::bind(), RunOptions::named("Batched"))
        .await
        .unwrap();
    // The model deployment autoscales too.
    let models = {
        let app = Models::bind();
        let mut configs = app.deployment_configs();
        configs[0] = configs[0].clone().autoscaling(quick_autoscaling(1, 2));
        let serve = serve.clone();
        tokio::task::spawn_blocking(move || {
            serve.run_with(app, RunOptions::named("Models").deployment_configs(configs))
        })
        .await
        .unwrap()
        .unwrap()
    };
    for path in ["/api/ok", "/api/fail", "/api/missing"] {
        send(addr, "GET", path, &[], "").await;
    }
    send(addr, "POST", "/shout", &[], "hey").await;
    let doubled: Vec<_> = (0..4).map(|x| batched.double.remote(x)).collect();
    for call in doubled {
        call.await.unwrap();
    }
    for id in ["a", "b"] {
        let handle = models.options().multiplexed_model_id(id);
        handle.predict.remote().await.unwrap();
    }

    let m = scrape(addr).await;
    let exposed = m.names();
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            !exposed.contains(name.as_str()) && !exposed.contains(base)
        })
        .collect();
    assert!(missing.is_empty(), "queried but not exposed: {missing:?}");
    serve.shutdown();
}

// --- cluster mode: each node its own `/metrics` ---------------------------------------------------

#[test]
#[ignore = "the worker processes of the cluster test"]
fn worker_process() {
    let Some(env) = worker_env() else { return };
    match env.app.as_str() {
        "shout" => run_http_worker_reporting(shout_app(), &env),
        other => panic!("no application `{other}`"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_mode_each_node_serves_its_own_metrics() {
    let nats = NatsServer::start();
    let serve = Serve::builder()
        .cluster(test_cluster(&nats.url(), "metrics"))
        .start()
        .unwrap();
    let head_addr = serve.start_http("127.0.0.1:0").unwrap();
    let worker = WorkerProcess::start(
        WorkerSpec::new("shout", &nats.url(), "metrics", "w1")
            .num_cpus(8.0)
            .http("127.0.0.1:0"),
    );
    let worker_addr = worker.http_addr();
    let deploy = serve.clone();
    tokio::task::spawn_blocking(move || {
        deploy.wait_for_workers(1, PATIENCE).unwrap();
        // Two replicas of `Upper`: they spread over the head and the worker.
        let app = shout_app();
        let mut configs = app.deployment_configs();
        configs[0] = configs[0].clone().num_replicas(2);
        deploy.run_http_configured(app, "/", configs).unwrap();
    })
    .await
    .unwrap();

    for _ in 0..4 {
        assert_eq!(send(head_addr, "POST", "/", &[], "a").await.body, "A");
    }
    for _ in 0..3 {
        assert_eq!(send(worker_addr, "POST", "/", &[], "b").await.body, "B");
    }
    let (head, on_worker) = (scrape(head_addr).await, scrape(worker_addr).await);
    // Each proxy counts its own requests.
    let ok = [("route", "/"), ("status_code", "200")];
    assert_eq!(head.value("serve_num_http_requests_total", &ok), 4.0);
    assert_eq!(on_worker.value("serve_num_http_requests_total", &ok), 3.0);
    // Each replica is counted on the node it runs on, and only there.
    let status = deployment_status(&serve, "Upper");
    let mut answered = 0.0;
    for replica in &status.replicas {
        let tag = format!("Upper#{}", replica.replica_id);
        let labels = [("deployment", "Upper"), ("replica", tag.as_str())];
        let (here, elsewhere) = match replica.node.as_deref() {
            Some("w1") => (&on_worker, &head),
            _ => (&head, &on_worker),
        };
        assert!(
            here.has("serve_deployment_request_counter_total", &labels),
            "{tag} where it runs"
        );
        assert!(
            !elsewhere.has("serve_deployment_request_counter_total", &labels),
            "{tag} only there"
        );
        answered += here.value("serve_deployment_request_counter_total", &labels);
    }
    assert_eq!(
        answered, 7.0,
        "every call answered by some replica: {status:?}"
    );
    assert!(
        status
            .replicas
            .iter()
            .any(|r| r.node.as_deref() == Some("w1")),
        "a replica runs on the worker: {status:?}"
    );
    // The controller (health, autoscaling, replica counts) runs on the head.
    let upper = [("deployment", "Upper")];
    assert_eq!(head.value("serve_deployment_replica_healthy", &upper), 2.0);
    assert!(!on_worker.has("serve_deployment_replica_healthy", &upper));
    assert!(!on_worker.has("serve_deployment_running_replicas", &upper));
    serve.shutdown();
}
