//! The HTTP proxy: one axum server per serve instance, routing each request by path prefix to an
//! application's ingress deployment through its handle (so the ingress's replicas and
//! `max_ongoing_requests` apply).
//!
//! A request's flow: hyper parses it; the proxy reads the body (up to a limit: 413 past it),
//! builds a [`Request`], picks the application with the longest matching route prefix (404 if
//! none), and calls the ingress's `call` with it. The call's result becomes the response (see
//! [`IntoHttpResponse`]); an [`HttpError`] from the method keeps its status, a downstream call's
//! failure passed on answers by its kind ([`handler_error_response`]), any other failure is a 500
//! with a one-line reason. A streaming `call`'s response head goes out with its first item. If the
//! client goes away first, hyper drops the handler future (or the body stream), and dropping it
//! cancels the ingress request and, through it, every downstream call it started.
//!
//! The request timeout (`Serve::set_http_request_timeout`) covers the whole request, counted from
//! dispatch: a unary call or a stream that has not produced its first item is answered `408`; a
//! stream past its first item is stopped and its body ends as on an error mid-stream.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use futures::{Stream, StreamExt};

use super::dashboard::{self, History};
use super::request::Request;
use super::response::{HttpError, HttpResponse, IntoHttpResponse, StatusCode};
use super::streaming::{IntoStreamPart, ResponseHead, StreamPart};
use crate::api::deployment::Deployment;
use crate::api::handle::{CallOne, CallStream, DeploymentHandle};
use crate::control::registry::Registry;
use crate::dataplane::access::ACCESS_TARGET;
use crate::dataplane::invoke;
use crate::error::{ErrorKind, ServeError};
use crate::metrics::http::{HttpRequest, ProxySeries, RouteSeries};
use crate::metrics::registry::Metrics;
use crate::request::generator::DeploymentResponseGenerator;
use crate::request::response::{DeploymentResponse, format_request_id};
use crate::util::sync::{Lock, ReadWrite};

/// The largest request body the proxy reads (16 MiB); larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the proxy sends back: a whole response, or a stream of chunks.
pub(crate) enum Reply {
    Full(HttpResponse),
    /// A whole response to a request that got as far as a deployment: its id goes in the
    /// `x-request-id` header.
    Answered(HttpResponse, u64),
    /// A streamed response: its head (status and headers; the body is the stream) and chunks.
    Stream(
        HttpResponse,
        Pin<Box<dyn Stream<Item = Result<Vec<u8>, ServeError>> + Send>>,
    ),
}

/// An application mounted on the proxy.
pub(crate) trait Ingress: Send + Sync {
    fn handle(&self, req: Request, sse: bool, timeout: Option<Duration>) -> BoxFuture<Reply>;
    /// The ingress deployment's name.
    fn deployment(&self) -> &str;
}

/// An ingress whose `call(&self, req: Request)` returns one response.
pub(crate) struct UnaryIngress<D: Deployment>(pub(crate) DeploymentHandle<D>);

impl<D, R> Ingress for UnaryIngress<D>
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    fn deployment(&self) -> &str {
        self.0.deployment_name()
    }

    fn handle(&self, req: Request, _sse: bool, timeout: Option<Duration>) -> BoxFuture<Reply> {
        // The ingress's `async fn` runs in this request's task when a replica has room for it.
        let (mut response, run) = match multiplexed_model_id(&req) {
            None => invoke::driven_by_caller(|| self.0.__call_one(req)),
            Some(id) => {
                let handle = self.0.options().multiplexed_model_id(id);
                invoke::driven_by_caller(|| handle.__call_one(req))
            }
        };
        if let Some(timeout) = timeout {
            response = response.timeout(timeout);
        }
        let request_id = response.raw_request_id();
        let response = CancelOnDrop(Some(response), run);
        Box::pin(async move {
            let reply = match response.await {
                Ok(value) => value.into_http_response(),
                Err(e) => error_response(&e),
            };
            Reply::Answered(reply, request_id)
        })
    }
}

/// An ingress whose `call(&self, req: Request)` streams: each item is flushed as a chunk.
///
/// The response head goes out with the first item, so a failure before it (a full queue, an
/// `HttpError` before anything was yielded, the request timeout) still gets its own status. A
/// [`StreamingResponse`](super::StreamingResponse)'s head (status, headers, media type) comes as
/// the stream's first item, before it. The request timeout covers the whole stream: past it the
/// generator is dropped, which stops the producer on the replica, and the body ends as it does on
/// an error mid-stream.
pub(crate) struct StreamingIngress<D: Deployment>(pub(crate) DeploymentHandle<D>);

impl<D, T> Ingress for StreamingIngress<D>
where
    D: Deployment,
    D::Handle: CallStream<Request, Item = T>,
    T: IntoStreamPart,
{
    fn deployment(&self) -> &str {
        self.0.deployment_name()
    }

    fn handle(&self, req: Request, sse: bool, timeout: Option<Duration>) -> BoxFuture<Reply> {
        // Counted from dispatch, like the unary path's `.timeout()`.
        let deadline = timeout.map(Deadline::after);
        let mut items: DeploymentResponseGenerator<T> = match multiplexed_model_id(&req) {
            None => self.0.__call_stream(req),
            Some(id) => self.0.options().multiplexed_model_id(id).__call_stream(req),
        };
        Box::pin(async move {
            let mut head = None;
            loop {
                let next = match deadline {
                    Some(deadline) => {
                        match tokio::time::timeout_at(deadline.at, items.next()).await {
                            Ok(next) => next,
                            // Returning drops `items`, which stops the producer.
                            Err(_) => return Reply::Full(error_response(&deadline.error())),
                        }
                    }
                    None => items.next().await,
                };
                let first = match next.map(|item| item.map(IntoStreamPart::into_stream_part)) {
                    // A later head before the first item replaces the earlier one.
                    Some(Ok(StreamPart::Head(h))) => {
                        head = Some(h);
                        continue;
                    }
                    Some(Ok(StreamPart::Item(first))) => Some(first),
                    Some(Err(e)) => return Reply::Full(error_response(&e)),
                    None => None,
                };
                // A media type of the method's own: its items go out as they are.
                let sse = sse && head.as_ref().is_none_or(|h| h.media_type().is_none());
                let head = stream_head(head, sse);
                return match first {
                    Some(first) => {
                        Reply::Stream(head, Box::pin(chunks(first, items, sse, deadline)))
                    }
                    None => Reply::Stream(head, Box::pin(futures::stream::empty())),
                };
            }
        })
    }
}

/// The head of a streamed response: the method's (status, headers), with the default media type
/// and `cache-control` where it set none.
fn stream_head(head: Option<ResponseHead>, sse: bool) -> HttpResponse {
    let head = head.unwrap_or_default();
    let mut response = HttpResponse::new(head.status());
    if head.media_type().is_none() {
        let content_type = if sse {
            "text/event-stream"
        } else {
            "application/octet-stream"
        };
        response = response.with_header("content-type", content_type);
    }
    if head.header("cache-control").is_none() {
        response = response.with_header("cache-control", "no-cache");
    }
    for (name, value) in head.headers() {
        response = response.with_header(name, value.clone());
    }
    response
}

/// The header that sends a request for a multiplexed model, as in Ray.
pub const MULTIPLEXED_MODEL_ID_HEADER: &str = "serve_multiplexed_model_id";

/// The model id a request asks for with [`MULTIPLEXED_MODEL_ID_HEADER`] (an empty one is none).
fn multiplexed_model_id(req: &Request) -> Option<String> {
    req.header(MULTIPLEXED_MODEL_ID_HEADER)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// When the proxy's request timeout runs out for one request.
#[derive(Clone, Copy)]
struct Deadline {
    at: tokio::time::Instant,
    after: Duration,
}

impl Deadline {
    fn after(after: Duration) -> Self {
        Self {
            at: tokio::time::Instant::now() + after,
            after,
        }
    }

    /// The error of a request that ran out of time: the one a unary ingress's timed-out
    /// response fails with (`DeploymentResponse::timeout`), so both answer with the same body.
    fn error(self) -> ServeError {
        ServeError::new(ErrorKind::Timeout).with_message(format!(
            "no result within {:?}; the request was cancelled",
            self.after
        ))
    }
}

/// The body of a streaming response whose `first` item arrived: it, then the rest of `items`
/// until they end, fail, or the `deadline` passes.
fn chunks<T: IntoStreamPart>(
    first: Vec<u8>,
    mut items: DeploymentResponseGenerator<T>,
    sse: bool,
    deadline: Option<Deadline>,
) -> impl Stream<Item = Result<Vec<u8>, ServeError>> + Send {
    async_stream::stream! {
        yield Ok(encode(first, sse));
        let expired = async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.at).await,
                None => std::future::pending().await,
            }
        };
        let mut expired = std::pin::pin!(expired);
        let failure = loop {
            let item = tokio::select! {
                // The deadline first: a producer that is always ready must not outrun it.
                biased;
                () = &mut expired => break deadline.map(Deadline::error),
                item = items.next() => item,
            };
            match item.map(|item| item.map(IntoStreamPart::into_stream_part)) {
                Some(Ok(StreamPart::Item(chunk))) => yield Ok(encode(chunk, sse)),
                Some(Ok(StreamPart::Head(_))) => break Some(late_head()),
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        // Dropping the generator stops the producer (if it still runs) before the client hears.
        drop(items);
        match failure {
            // Server-Sent Events can say what went wrong, then end cleanly.
            Some(e) if sse => yield Ok(sse_event(Some("error"), error_text(&e).as_bytes())),
            // A plain chunked body can only be cut off: the client sees it broken. Hyper drops
            // what it buffered when a body fails, and flushes it when the body is not ready: so
            // be not ready once first, or the head and the items before the error get lost.
            Some(e) => {
                tokio::task::yield_now().await;
                yield Err(e);
            }
            None => {}
        }
    }
}

/// One item as it goes on the wire: its chunk, or a Server-Sent Event carrying it.
fn encode(chunk: Vec<u8>, sse: bool) -> Vec<u8> {
    if sse { sse_event(None, &chunk) } else { chunk }
}

/// A response head after the first item: the status went out already, so the stream ends.
fn late_head() -> ServeError {
    ServeError::new(ErrorKind::Runtime).with_message(
        "a streamed response's head came after its first item: the status and headers are sent \
         with the first item and cannot change after it",
    )
}

/// What a client is told about a failure: an [`HttpError`]'s message, or the error's one line.
fn error_text(e: &ServeError) -> String {
    match e.downcast_ref::<HttpError>() {
        Some(http) => http.message().to_owned(),
        None => e.to_string(),
    }
}

/// One Server-Sent Event carrying `data` (one `data:` line per line of it).
fn sse_event(kind: Option<&str>, data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    let mut event = String::with_capacity(data.len() + 16);
    if let Some(kind) = kind {
        event.push_str("event: ");
        event.push_str(kind);
        event.push('\n');
    }
    for line in text.trim_end_matches('\n').split('\n') {
        event.push_str("data: ");
        event.push_str(line);
        event.push('\n');
    }
    event.push('\n');
    event.into_bytes()
}

/// The response a failed ingress call gets.
///
/// A failure of the ingress request itself is the proxy's to answer: its request timeout ran out
/// (408), its queue was full (503, `Request dropped due to backpressure`), it was cancelled, the
/// instance is stopping, or (cluster mode) its replica's node stopped answering (503). Any other failure is what the ingress's own code returned (a
/// `User` error, a panic): see [`handler_error_response`].
pub(crate) fn error_response(e: &ServeError) -> HttpResponse {
    match e.kind() {
        ErrorKind::Timeout => {
            HttpResponse::text(StatusCode::REQUEST_TIMEOUT, format!("Request Timeout: {e}"))
        }
        ErrorKind::BackPressure => back_pressure(),
        ErrorKind::ShutDown | ErrorKind::Cancelled | ErrorKind::Unavailable => {
            service_unavailable(e)
        }
        _ => handler_error_response(e),
    }
}

/// The response to an error an ingress's code produced: a plain ingress's failed call (its
/// `User` error, whose source is what `call` returned) or an `#[ingress]` route handler's `Err`.
///
/// The error and its source chain are searched, outermost first: an [`HttpError`] keeps its
/// status; else the first [`ServeError`] of a failed downstream call answers by its kind, as if
/// the ingress had failed that way itself, except that a downstream `.timeout(..)` that ran out
/// is `504 Gateway Timeout` (the proxy's own request timeout is the 408), and a cancelled one is
/// a 503 (as a cancelled ingress request is). Everything else is a 500 with the error's one line.
pub(crate) fn handler_error_response(e: &(dyn StdError + 'static)) -> HttpResponse {
    if let Some(http) = chain(e).find_map(|err| err.downcast_ref::<HttpError>()) {
        return http.clone().into_http_response();
    }
    let downstream = chain(e)
        .filter_map(|err| err.downcast_ref::<ServeError>())
        .map(ServeError::kind)
        .find(|kind| {
            matches!(
                kind,
                ErrorKind::BackPressure
                    | ErrorKind::ShutDown
                    | ErrorKind::Timeout
                    | ErrorKind::Cancelled
                    | ErrorKind::Unavailable
            )
        });
    match downstream {
        Some(ErrorKind::BackPressure) => back_pressure(),
        Some(ErrorKind::Timeout) => {
            HttpResponse::text(StatusCode::GATEWAY_TIMEOUT, format!("Gateway Timeout: {e}"))
        }
        Some(_) => service_unavailable(e),
        None => HttpResponse::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal Server Error: {e}"),
        ),
    }
}

/// `e`, then its sources.
fn chain<'e>(
    e: &'e (dyn StdError + 'static),
) -> impl Iterator<Item = &'e (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&err| err.source())
}

fn back_pressure() -> HttpResponse {
    HttpResponse::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "Request dropped due to backpressure",
    )
}

fn service_unavailable(e: &dyn std::fmt::Display) -> HttpResponse {
    HttpResponse::text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Service Unavailable: {e}"),
    )
}

/// A response whose request is cancelled if this is dropped before it completes (the client
/// disconnected and hyper dropped the handler), and the method's run when this task drives it
/// (polled first: it completes the response).
struct CancelOnDrop<T>(Option<DeploymentResponse<T>>, Option<invoke::CallerDriven>);

impl<T> Future for CancelOnDrop<T> {
    type Output = Result<T, ServeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(run) = self.1.as_mut()
            && run.as_mut().poll(cx).is_ready()
        {
            self.1 = None;
        }
        let Some(response) = self.0.as_mut() else {
            return Poll::Ready(Err(ServeError::new(ErrorKind::AlreadyTaken)));
        };
        let result = std::task::ready!(Pin::new(response).poll(cx));
        // A response that ended first (a timeout) stops the run: dropping it cancels the method.
        self.1 = None;
        self.0 = None;
        Poll::Ready(result)
    }
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        if let Some(response) = self.0.take() {
            response.cancel();
        }
    }
}

#[derive(Clone)]
struct Route {
    /// Shared with each request routed here (no copy per request).
    prefix: Arc<str>,
    app: Arc<str>,
    ingress: Arc<dyn Ingress>,
    /// Its requests' counts and latencies.
    metrics: Arc<RouteSeries>,
}

/// The routing table and the server's state.
pub(crate) struct Proxy {
    routes: RwLock<Vec<Route>>,
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    registry: Arc<Registry>,
    /// Ray's `request_timeout_s`, in milliseconds (0: none).
    request_timeout_ms: AtomicU64,
    /// The instance's metrics (served at `/metrics`).
    metrics: Metrics,
    /// The proxy's own series: its requests in progress, and those no application serves.
    series: Arc<ProxySeries>,
    /// The dashboard's last minutes of rates and latencies, sampled every second.
    history: Arc<History>,
    /// Whether each request gets an access line (Ray's `enable_access_log`; on by default).
    access_log: AtomicBool,
}

/// Normalises a route prefix: leading `/`, no trailing `/` (except the root `/`).
pub(crate) fn normalize_prefix(prefix: &str) -> Result<String, ServeError> {
    if !prefix.starts_with('/') {
        return Err(ServeError::new(ErrorKind::Runtime)
            .with_message(format!("route prefix `{prefix}` must start with `/`")));
    }
    let trimmed = prefix.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

/// Takes application `app`'s route out of `routes`; returns its ingress.
fn take_route(routes: &mut Vec<Route>, app: &str) -> Option<Arc<dyn Ingress>> {
    let at = routes.iter().position(|r| *r.app == *app)?;
    Some(routes.remove(at).ingress)
}

fn matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

impl Proxy {
    /// Binds `addr` and starts serving on the current runtime.
    pub(crate) async fn start(
        addr: SocketAddr,
        registry: Arc<Registry>,
        metrics: Metrics,
    ) -> Result<Arc<Proxy>, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            ServeError::new(ErrorKind::Runtime)
                .with_message(format!("could not listen on {addr}"))
                .with_source(Box::new(e))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::new(ErrorKind::Runtime).with_source(Box::new(e)))?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let proxy = Arc::new(Proxy {
            routes: RwLock::new(Vec::new()),
            addr,
            stop,
            server: Mutex::new(None),
            registry,
            request_timeout_ms: AtomicU64::new(0),
            series: ProxySeries::new(&metrics, &addr.ip().to_string()),
            history: History::start(metrics.clone()),
            metrics,
            access_log: AtomicBool::new(true),
        });
        let router = axum::Router::new()
            .fallback(serve_request)
            .with_state(proxy.clone());
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        *proxy.server.locked() = Some(server);
        Ok(proxy)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets how long a request may take before it is cancelled and answered with 408.
    pub(crate) fn set_request_timeout(&self, timeout: Option<Duration>) {
        let ms = timeout.map_or(0, |t| (t.as_millis() as u64).max(1));
        self.request_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Turns the access log on or off.
    pub(crate) fn set_access_log(&self, on: bool) {
        self.access_log.store(on, Ordering::Relaxed);
    }

    /// When a request arrived, if its access line will be written.
    #[inline]
    fn access_start(&self) -> Option<Instant> {
        // Errors are the most severe access lines: if they are off, every line is.
        let wanted = tracing::enabled!(target: ACCESS_TARGET, tracing::Level::ERROR)
            && self.access_log.load(Ordering::Relaxed);
        wanted.then(Instant::now)
    }

    fn request_timeout(&self) -> Option<Duration> {
        match self.request_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Stops accepting connections; requests in flight finish.
    pub(crate) fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops accepting connections and waits (up to `timeout`) until every request in flight got
    /// its response and the connections closed. Returns whether that happened in time.
    pub(crate) async fn drain(&self, timeout: std::time::Duration) -> bool {
        self.stop();
        let server = self.server.locked().take();
        match server {
            Some(server) => tokio::time::timeout(timeout, server).await.is_ok(),
            None => true,
        }
    }

    /// Checks that application `app` may be served at `prefix`: no other application is.
    pub(crate) fn check_mount(&self, prefix: &str, app: &str) -> Result<(), ServeError> {
        let prefix = normalize_prefix(prefix)?;
        let routes = self.routes.read_locked();
        match routes
            .iter()
            .find(|r| *r.prefix == *prefix && *r.app != *app)
        {
            Some(taken) => Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
                "route prefix `{prefix}` is already served by application `{}`: give \
                 application `{app}` another prefix, or delete `{}` first",
                taken.app, taken.app
            ))),
            None => Ok(()),
        }
    }

    /// Serves `ingress` (the application `app`) at `prefix`, in the place of the application's
    /// route if it has one (a new version: requests from now on go to `ingress`). Returns the
    /// ingress it replaces.
    pub(crate) fn mount(
        &self,
        prefix: &str,
        app: &str,
        ingress: Arc<dyn Ingress>,
    ) -> Result<Option<Arc<dyn Ingress>>, ServeError> {
        let prefix = normalize_prefix(prefix)?;
        let mut routes = self.routes.write_locked();
        if let Some(taken) = routes
            .iter()
            .find(|r| *r.prefix == *prefix && *r.app != *app)
        {
            return Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
                "route prefix `{prefix}` is already served by application `{}`",
                taken.app
            )));
        }
        let metrics = RouteSeries::new(&self.metrics, app, &prefix, Some(ingress.deployment()));
        let replaced = take_route(&mut routes, app);
        routes.push(Route {
            prefix: prefix.into(),
            app: app.into(),
            ingress,
            metrics,
        });
        // Longest prefix first, so the most specific application wins.
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(replaced)
    }

    /// Stops serving application `app` (its prefix answers 404 from now on, unless another
    /// application's covers it); returns its ingress, if it was served.
    pub(crate) fn unmount(&self, app: &str) -> Option<Arc<dyn Ingress>> {
        take_route(&mut self.routes.write_locked(), app)
    }

    /// The proxy's own endpoints, under `/-/` like Ray Serve's: `/-/healthz`, `/-/routes` (route
    /// prefix -> application) and `/-/status` (applications, deployments, replicas; what the
    /// `status` command shows); and `/metrics`, the instance's metrics in Prometheus's text
    /// format. They are not counted in the metrics.
    fn builtin(&self, uri: &axum::http::Uri) -> Option<HttpResponse> {
        match uri.path() {
            "/-/dashboard" => Some(
                HttpResponse::new(StatusCode::OK)
                    .with_header("content-type", "text/html; charset=utf-8")
                    .with_body(dashboard::PAGE),
            ),
            "/-/dashboard/data" => Some(HttpResponse::json(
                StatusCode::OK,
                &dashboard::data(&self.registry, &self.history, uri.query()),
            )),
            "/metrics" => Some(
                HttpResponse::new(StatusCode::OK)
                    .with_header("content-type", METRICS_CONTENT_TYPE)
                    .with_body(self.metrics.render()),
            ),
            "/-/healthz" => Some(HttpResponse::text(StatusCode::OK, "success")),
            "/-/routes" => {
                let routes = self.routes.read_locked();
                let map: serde_json::Map<String, serde_json::Value> = routes
                    .iter()
                    .map(|r| (r.prefix.to_string(), r.app.to_string().into()))
                    .collect();
                Some(HttpResponse::json(StatusCode::OK, &map))
            }
            "/-/status" => Some(HttpResponse::json(
                StatusCode::OK,
                &serde_json::json!({ "applications": self.registry.snapshot() }),
            )),
            _ => None,
        }
    }

    /// The application serving `path`: its ingress, route prefix, name and metrics.
    fn route(&self, path: &str) -> Option<Route> {
        let routes = self.routes.read_locked();
        routes.iter().find(|r| matches(&r.prefix, path)).cloned()
    }
}

fn to_axum(response: HttpResponse) -> axum::response::Response {
    to_axum_with_id(response, None)
}

/// The response hyper sends, with an `x-request-id` header when `request_id` is given. Header
/// names and values move over without copies; a response with an invalid one becomes a 500.
fn to_axum_with_id(response: HttpResponse, request_id: Option<u64>) -> axum::response::Response {
    respond(response, request_id, Body::from)
}

/// [`to_axum_with_id`] with the body made by `body` (from the response's own body), which is
/// not called when the head is invalid: a stream's producer is then dropped (stopped).
fn respond(
    response: HttpResponse,
    request_id: Option<u64>,
    body: impl FnOnce(Vec<u8>) -> Body,
) -> axum::response::Response {
    use axum::http::{HeaderName, HeaderValue};
    let (status, headers, content) = response.into_parts();
    let mut response = axum::response::Response::new(Body::empty());
    let invalid = |what: String| {
        let mut fallback = axum::response::Response::new(Body::from(format!(
            "Internal Server Error: invalid response: {what}"
        )));
        *fallback.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    };
    match axum::http::StatusCode::from_u16(status.as_u16()) {
        Ok(status) => *response.status_mut() = status,
        Err(e) => return invalid(e.to_string()),
    }
    let map = response.headers_mut();
    map.reserve(headers.len() + usize::from(request_id.is_some()));
    for (name, value) in headers {
        let name = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => name,
            Err(e) => return invalid(format!("header name `{name}`: {e}")),
        };
        match HeaderValue::try_from(value) {
            Ok(value) => map.append(name, value),
            Err(e) => return invalid(format!("header `{name}`: {e}")),
        };
    }
    if let Some(id) = request_id
        && let Ok(value) = HeaderValue::try_from(format_request_id(id))
    {
        map.insert(HeaderName::from_static("x-request-id"), value);
    }
    *response.body_mut() = body(content);
    response
}

/// Where a request went, for its access line.
#[derive(Default)]
struct Served {
    /// The route prefix and the application's name.
    route: Option<(Arc<str>, Arc<str>)>,
    request_id: Option<u64>,
    /// One of the proxy's own endpoints (`/-/healthz`): logged at `DEBUG`.
    builtin: bool,
}

async fn serve_request(
    axum::extract::State(proxy): axum::extract::State<Arc<Proxy>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let Some(start) = proxy.access_start() else {
        return route_request(&proxy, request).await.0;
    };
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let (response, served) = route_request(&proxy, request).await;
    access_line(start, &method, &uri, response.status().as_u16(), &served);
    response
}

/// The proxy's access line of one request, as Ray's proxy writes it: `POST / 200 1.2ms`, with
/// the route prefix, the application and the request id; a 5xx at `ERROR`, the proxy's own
/// endpoints at `DEBUG`.
#[cold]
fn access_line(
    start: Instant,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    status: u16,
    served: &Served,
) {
    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
    let (method, path) = (method.as_str(), uri.path());
    let (route, application) = match &served.route {
        Some((prefix, app)) => (&**prefix, &**app),
        None => ("", ""),
    };
    let request_id = served.request_id.map(format_request_id).unwrap_or_default();
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                target: ACCESS_TARGET,
                $level,
                method,
                path,
                route,
                application,
                deployment = application,
                status,
                latency_ms,
                request_id,
                "{method} {path} {status} {latency_ms:.1}ms"
            )
        };
    }
    if served.builtin {
        line!(tracing::Level::DEBUG);
    } else if status >= 500 {
        line!(tracing::Level::ERROR);
    } else {
        line!(tracing::Level::INFO);
    }
}

/// Answers one request: the proxy's own endpoints, else the application its path is routed to.
async fn route_request(
    proxy: &Proxy,
    request: axum::extract::Request,
) -> (axum::response::Response, Served) {
    let (parts, body) = request.into_parts();
    if let Some(reply) = proxy.builtin(&parts.uri) {
        let served = Served {
            builtin: true,
            ..Served::default()
        };
        return (to_axum(reply), served);
    }
    // Counted and timed when dropped: after the response is made, or with a streamed body's end
    // (or as a 499 if the client goes away first, which drops this future).
    let mut measured = proxy.series.started(parts.method.as_str());
    let Some(Route {
        ingress,
        prefix,
        app,
        metrics,
    }) = proxy.route(parts.uri.path())
    else {
        let reply = HttpResponse::text(
            StatusCode::NOT_FOUND,
            format!("Not Found: no application serves `{}`", parts.uri.path()),
        );
        return (measured.answer(to_axum(reply)), Served::default());
    };
    measured.routed(&metrics);
    let mut served = Served {
        route: Some((prefix.clone(), app)),
        ..Served::default()
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let reply = HttpResponse::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Payload Too Large: the limit is {MAX_BODY_BYTES} bytes"),
            );
            return (measured.answer(to_axum(reply)), served);
        }
    };
    let mut sse = false;
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let value = match std::str::from_utf8(value.as_bytes()) {
            Ok(value) => value.to_owned(),
            Err(_) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        };
        if name == axum::http::header::ACCEPT && value.contains("text/event-stream") {
            sse = true;
        }
        // `http` keeps header names lower-case already.
        headers.push((name.as_str().to_owned(), value));
    }
    let req = Request::from_proxy(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &prefix,
        headers,
        // No copy when hyper handed over the body's only reference.
        Vec::from(body),
    );
    let response = match ingress.handle(req, sse, proxy.request_timeout()).await {
        Reply::Full(response) => measured.answer(to_axum(response)),
        Reply::Answered(response, request_id) => {
            served.request_id = Some(request_id);
            measured.answer(to_axum_with_id(response, Some(request_id)))
        }
        Reply::Stream(head, chunks) => {
            measured.answered(head.status().as_u16());
            let mut measured = Some(measured);
            // An error mid-stream ends the body with an error: hyper aborts the chunked
            // response, so the client sees a broken stream rather than a clean end.
            let response = respond(head, None, |_| {
                // The request is counted when its body ends (or is dropped).
                let measured = measured.take();
                Body::from_stream(chunks.map(move |chunk| {
                    let _counted_at_the_end = &measured;
                    chunk.map(bytes::Bytes::from)
                }))
            });
            // A head that could not be sent became a 500, and there is no body.
            if let Some(measured) = measured {
                measured.answer(response)
            } else {
                response
            }
        }
    };
    (response, served)
}

/// The content type of `/metrics`: Prometheus's text format.
const METRICS_CONTENT_TYPE: &str = crate::metrics::registry::CONTENT_TYPE;

/// Counting a request's response.
trait Answer {
    /// Records `response`'s status (the request is counted when this is dropped) and returns it.
    fn answer(self, response: axum::response::Response) -> axum::response::Response;
}

impl Answer for HttpRequest {
    fn answer(mut self, response: axum::response::Response) -> axum::response::Response {
        self.answered(response.status().as_u16());
        response
    }
}

#[cfg(test)]
mod tests;
