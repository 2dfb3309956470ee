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
#[inline]
pub(crate) fn start() -> Option<Instant> {
    // Errors are the most severe access lines: if they are off, every line is.
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::ERROR) {
        return None;
    }
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

/// Runs `fut` (a method's run, inside its request's scope) and writes its access line.
pub(crate) async fn timed<F>(method: &'static str, fut: F) -> F::Output
where
    F: Future,
    F::Output: Outcome,
{
    let Some(start) = start() else {
        return fut.await;
    };
    let outcome = fut.await;
    line(method, start, outcome.failure().as_deref());
    outcome
}

/// Runs a sync method `f` (inside its request's scope) and writes its access line; a panic
/// unwinding out of `f` gets its `ERROR` line (with its message) and unwinds on, to the caller's
/// catch.
#[inline]
pub(crate) fn timed_sync<T>(
    method: &'static str,
    f: impl FnOnce() -> Result<T, BoxError>,
) -> Result<T, BoxError> {
    let Some(start) = start() else {
        return f();
    };
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
