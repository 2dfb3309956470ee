//! Tasks: plain functions run on the runtime with `#[remote]`, the counterpart of Ray's
//! `@ray.remote` functions.
//!
//! `say_hi_task.remote(arg)` starts the function at once and returns an [`ObjectRef`] to its result.
//! Arguments may be values, [`ObjectRef`]s or `DeploymentResponse`s: the task waits for them first.
//! A synchronous body runs on the blocking pool, an `async fn` body on the async workers. A task
//! runs on the runtime of the calling thread (so a task started inside a deployment runs on that
//! deployment's serve instance); from outside any runtime, on the process-wide default instance.

use std::future::Future;

use crate::error::{BoxError, ServeError};
use crate::request::args::ArgList;
use crate::request::context;
use crate::request::response::{self, Completer, ObjectRef};
use crate::util::panic::{self, Panic};

fn runtime() -> Result<tokio::runtime::Handle, ServeError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle),
        Err(_) => Ok(super::default_instance()?.handle().clone()),
    }
}

fn finish<T>(
    name: &'static str,
    completer: Completer<T>,
    outcome: Result<Result<T, BoxError>, Panic>,
) {
    let result = match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ServeError::user(e).in_task(name)),
        Err(panic) => Err(ServeError::panic(panic).in_task(name)),
    };
    completer.complete(result);
}

/// Starts a task with a synchronous body.
#[doc(hidden)]
pub fn spawn_task_sync<A, T, F>(name: &'static str, args: A, f: F) -> ObjectRef<T>
where
    A: ArgList,
    T: Send + 'static,
    F: FnOnce(A::Values) -> Result<T, BoxError> + Send + 'static,
{
    let (completer, consumer) = response::pending::<T>(context::request_id_for_new_call(
        context::current().as_ref(),
    ));
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            completer.complete(Err(e.in_task(name)));
            return ObjectRef::from_consumer(consumer);
        }
    };
    let run = move |values: A::Values, completer: Completer<T>| {
        let outcome = panic::catch_sync(move || f(values));
        finish(name, completer, outcome);
    };
    match args.ready() {
        Ok(values) => {
            rt.spawn_blocking(move || run(values, completer));
        }
        Err(args) => {
            let rt2 = rt.clone();
            rt.spawn(async move {
                match args.resolve().await {
                    Ok(values) => {
                        rt2.spawn_blocking(move || run(values, completer));
                    }
                    Err(e) => completer.complete(Err(e.in_task(name))),
                }
            });
        }
    }
    ObjectRef::from_consumer(consumer)
}

/// Starts a task with an `async fn` body.
#[doc(hidden)]
pub fn spawn_task_async<A, T, F, Fut>(name: &'static str, args: A, f: F) -> ObjectRef<T>
where
    A: ArgList,
    T: Send + 'static,
    F: FnOnce(A::Values) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
{
    let (completer, consumer) = response::pending::<T>(context::request_id_for_new_call(
        context::current().as_ref(),
    ));
    match runtime() {
        Ok(rt) => {
            rt.spawn(async move {
                match args.resolve().await {
                    Ok(values) => {
                        let outcome = panic::catch_async(f(values)).await;
                        finish(name, completer, outcome);
                    }
                    Err(e) => completer.complete(Err(e.in_task(name))),
                }
            });
        }
        Err(e) => completer.complete(Err(e.in_task(name))),
    }
    ObjectRef::from_consumer(consumer)
}
