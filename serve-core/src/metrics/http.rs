//! The HTTP proxy's series: its requests in progress ([`ProxySeries`]) and, per mounted route,
//! each request's count, latency and error ([`RouteSeries`]).
//!
//! A route's label sets differ by method and status code, known only when a request comes and
//! when it is answered. Each route keeps a table per method with a place per status code
//! (100-599): the first request of a method and status resolves its series (a lock and a lookup,
//! once); every later one finds them with an index and an atomic load. Methods outside the
//! standard nine, and statuses outside 100-599, are rare enough to go through a locked map.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};

use super::family::SeriesOf;
use super::registry::Metrics;
use super::series::ms;
use crate::util::sync::Lock;

/// The standard methods, each with a table of its own.
const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// The status codes with a place in a method's table.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

/// The status of a request whose client went away before it was answered (nginx's, and Ray's).
const CLIENT_CLOSED: u16 = 499;

/// The proxy's requests in progress, and the series of requests no application serves.
pub(crate) struct ProxySeries {
    ongoing: SeriesOf<IntGaugeVec>,
    unrouted: Arc<RouteSeries>,
}

impl ProxySeries {
    /// The series of a proxy on this node listening on `ip`.
    pub(crate) fn new(metrics: &Metrics, ip: &str) -> Arc<Self> {
        let ongoing = metrics
            .families()
            .http_ongoing
            .series(&[metrics.node_id(), ip]);
        Arc::new(Self {
            ongoing,
            unrouted: RouteSeries::new(metrics, "", "", None),
        })
    }

    /// A request came in: it counts as in progress until the returned guard is dropped.
    #[inline]
    pub(crate) fn started(self: &Arc<Self>, method: &str) -> HttpRequest {
        self.ongoing.inc();
        HttpRequest {
            proxy: self.clone(),
            route: None,
            method: method_key(method),
            // Until answered: a request whose client went away first is a 499, as in Ray.
            status: CLIENT_CLOSED,
            start: Instant::now(),
        }
    }
}

/// Where a method's series are: its index in [`METHODS`], or its name.
#[derive(Debug)]
enum MethodKey {
    Standard(usize),
    Other(String),
}

#[inline]
fn method_key(method: &str) -> MethodKey {
    match METHODS.iter().position(|m| *m == method) {
        Some(i) => MethodKey::Standard(i),
        None => MethodKey::Other(method.to_owned()),
    }
}

/// One request at the proxy, from its arrival to the end of its response (a streamed body's
/// end, for a stream): dropped, it is counted and timed under its route, method and status, and
/// leaves the requests in progress.
pub(crate) struct HttpRequest {
    proxy: Arc<ProxySeries>,
    route: Option<Arc<RouteSeries>>,
    method: MethodKey,
    status: u16,
    start: Instant,
}

impl HttpRequest {
    /// The request goes to the application mounted with `route`.
    #[inline]
    pub(crate) fn routed(&mut self, route: &Arc<RouteSeries>) {
        self.route = Some(route.clone());
    }

    /// The response's status.
    #[inline]
    pub(crate) fn answered(&mut self, status: u16) {
        self.status = status;
    }
}

impl Drop for HttpRequest {
    fn drop(&mut self) {
        let took = self.start.elapsed();
        let route = self.route.as_ref().unwrap_or(&self.proxy.unrouted);
        route.record(&self.method, self.status, took);
        self.proxy.ongoing.dec();
    }
}

/// The series of one route of the proxy (one mounted application).
pub(crate) struct RouteSeries {
    metrics: Metrics,
    app: String,
    route: String,
    /// The ingress deployment (none for requests no application serves).
    deployment: Option<String>,
    /// Per standard method, a place per status code, made on the method's first request.
    tables: [OnceLock<StatusTable>; METHODS.len()],
    /// Other methods and statuses.
    others: Mutex<HashMap<(String, u16), Arc<HttpSeries>>>,
}

/// One method's series of a route: a place per status code in [`STATUSES`].
type StatusTable = Box<[OnceLock<Box<HttpSeries>>]>;

/// The series of one route, method and status.
struct HttpSeries {
    requests: SeriesOf<IntCounterVec>,
    latency: SeriesOf<HistogramVec>,
    /// For a 4xx or 5xx status: by route, and by ingress deployment.
    errors: Option<(SeriesOf<IntCounterVec>, Option<SeriesOf<IntCounterVec>>)>,
}

impl RouteSeries {
    /// The series of application `app` (ingress `deployment`) mounted at `route`.
    pub(crate) fn new(
        metrics: &Metrics,
        app: &str,
        route: &str,
        deployment: Option<&str>,
    ) -> Arc<Self> {
        Arc::new(Self {
            metrics: metrics.clone(),
            app: app.to_owned(),
            route: route.to_owned(),
            deployment: deployment.map(str::to_owned),
            tables: Default::default(),
            others: Mutex::default(),
        })
    }

    /// Counts and times one request.
    #[inline]
    fn record(&self, method: &MethodKey, status: u16, took: Duration) {
        match (method, STATUSES.contains(&status)) {
            (MethodKey::Standard(m), true) => {
                let table = self.tables[*m]
                    .get_or_init(|| (0..STATUSES.len()).map(|_| OnceLock::new()).collect());
                let series = table[usize::from(status - STATUSES.start())]
                    .get_or_init(|| Box::new(self.series(METHODS[*m], status)));
                series.record(took);
            }
            (method, _) => {
                let name = match method {
                    MethodKey::Standard(m) => METHODS[*m],
                    MethodKey::Other(name) => name,
                };
                let series = self
                    .others
                    .locked()
                    .entry((name.to_owned(), status))
                    .or_insert_with(|| Arc::new(self.series(name, status)))
                    .clone();
                series.record(took);
            }
        }
    }

    /// Resolves the series of `method` and `status`.
    fn series(&self, method: &str, status: u16) -> HttpSeries {
        let f = self.metrics.families();
        let code = status.to_string();
        let (app, route) = (&*self.app, &*self.route);
        let errors = (status >= 400).then(|| {
            let by_route = f.http_errors.series(&[route, &code, method, app]);
            let by_deployment = self.deployment.as_deref().map(|deployment| {
                f.deployment_http_errors
                    .series(&[deployment, &code, method, route, app])
            });
            (by_route, by_deployment)
        });
        HttpSeries {
            requests: f.http_requests.series(&[route, method, app, &code]),
            latency: f.http_latency.series(&[route, method, app, &code]),
            errors,
        }
    }
}

impl HttpSeries {
    #[inline]
    fn record(&self, took: Duration) {
        self.requests.inc();
        self.latency.observe(ms(took));
        if let Some((by_route, by_deployment)) = &self.errors {
            by_route.inc();
            if let Some(by_deployment) = by_deployment {
                by_deployment.inc();
            }
        }
    }
}
