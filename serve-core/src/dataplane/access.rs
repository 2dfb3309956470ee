//! A replica's access log: one line per call it runs, as Ray's replicas write them,
//! `CALL say_hello OK 0.5ms` (or `ERROR`, with the error), inside the request's span
//! `request{request_id=.. deployment=.. replica=..}`, so the line names the request, the
//! deployment and the replica.
//!
//! Lines go through `tracing` with the target [`ACCESS_TARGET`], so the subscriber decides their
//! format and whether they are written; the deployment's `enable_access_log` turns its lines off.
//! With no subscriber (or one that drops the target) a call pays one relaxed load of `tracing`'s
//! global level and a branch: the clock is read only when a line will be written.

use std::future::Future;
use std::time::Instant;

use crate::error::BoxError;
use crate::request::context;
use crate::util::panic::Panic;

/// The `tracing` target of access lines (the proxy's and the replicas').
pub const ACCESS_TARGET: &str = "serve::access";

/// When a call started, if its access line will be written: the subscriber wants the target
/// and the replica's deployment has its access log on. Call it inside the request's scope.
#[inline(always)]
pub(crate) fn start() -> Option<Instant> {
    // Errors are the most severe access lines: if they are off, every line is.
    if tracing::enabled!(target: ACCESS_TARGET, tracing::Level::ERROR) {
        replica_start()
    } else {
        None
    }
}

/// The replica's switch, and the clock.
#[cold]
#[inline(never)]
fn replica_start() -> Option<Instant> {
    context::current_logging()
        .is_some_and(|l| l.access_log)
        .then(Instant::now)
}

/// How a method's run ended, for its access line.
pub(crate) trait Outcome {
    /// What went wrong, or `None` when it succeeded.
    fn failure(&self) -> Option<String>;
}

impl<T> Outcome for Result<Result<T, BoxError>, Panic> {
    fn failure(&self) -> Option<String> {
        match self {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(crate::util::panic::message(&**panic)),
        }
    }
}

impl Outcome for Result<(), Panic> {
    fn failure(&self) -> Option<String> {
        self.as_ref()
            .err()
            .map(|panic| crate::util::panic::message(&**panic))
    }
}

/// Writes the access line of a call to `method` that started at `start` and ended with
/// `failure` (`None`: it succeeded).
#[cold]
pub(crate) fn line(method: &'static str, start: Instant, failure: Option<&str>) {
    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
    match failure {
        None => tracing::info!(
            target: ACCESS_TARGET,
            method,
            status = "OK",
            latency_ms,
            "CALL {method} OK {latency_ms:.1}ms"
        ),
        Some(error) => tracing::error!(
            target: ACCESS_TARGET,
            method,
            status = "ERROR",
            latency_ms,
            error,
            "CALL {method} ERROR {latency_ms:.1}ms"
        ),
    }
}

pin_project_lite::pin_project! {
    /// A method's run (polled inside its request's scope) that writes its access line when it
    /// ends: one small wrapper, whose only work without a subscriber is one check on its first
    /// poll.
    pub(crate) struct Timed<F> {
        #[pin]
        run: F,
        method: &'static str,
        // `None` until the first poll; then when it started, if its line will be written.
        start: Option<Option<Instant>>,
    }
}

/// `run` (a method's run, to be polled inside its request's scope) writing its access line.
#[inline(always)]
pub(crate) fn timed<F>(method: &'static str, run: F) -> Timed<F> {
    Timed {
        run,
        method,
        start: None,
    }
}

impl<F> Future for Timed<F>
where
    F: Future,
    F::Output: Outcome,
{
    type Output = F::Output;

    #[inline(always)]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        // Decided on the first poll, inside the request's scope.
        let start = *this.start.get_or_insert_with(start);
        let outcome = std::task::ready!(this.run.poll(cx));
        if let Some(start) = start {
            line(this.method, start, outcome.failure().as_deref());
        }
        std::task::Poll::Ready(outcome)
    }
}

/// Runs a sync method `f` (inside its request's scope) and writes its access line; a panic
/// unwinding out of `f` gets its `ERROR` line (with its message) and unwinds on, to the caller's
/// catch.
#[inline(always)]
pub(crate) fn timed_sync<T>(
    method: &'static str,
    f: impl FnOnce() -> Result<T, BoxError>,
) -> Result<T, BoxError> {
    match start() {
        None => f(),
        Some(start) => logged_sync(method, start, f),
    }
}

#[cold]
#[inline(never)]
fn logged_sync<T>(
    method: &'static str,
    start: Instant,
    f: impl FnOnce() -> Result<T, BoxError>,
) -> Result<T, BoxError> {
    match crate::util::panic::catch_unwind(f) {
        Ok(result) => {
            let failure = result.as_ref().err().map(ToString::to_string);
            line(method, start, failure.as_deref());
            result
        }
        Err(panic) => {
            line(method, start, Some(&crate::util::panic::message(&*panic)));
            std::panic::resume_unwind(panic)
        }
    }
}
