//! The caller's side of a unary request: [`DeploymentResponse`] and [`ObjectRef`] (a streaming
//! request's is [`DeploymentResponseGenerator`](super::generator::DeploymentResponseGenerator)).
//!
//! A unary request owns one shared result cell (one allocation). The replica (or task) writes the
//! outcome into it through a [`Completer`]; every [`DeploymentResponse`] / [`ObjectRef`] that refers to
//! the request is a *consumer* of the cell. The last consumer takes the value out without cloning;
//! while several consumers exist, each gets a clone (so `T: Clone` is only needed by code that
//! actually shares a response). A completer dropped before it wrote anything (its task was dropped
//! by a runtime shutdown) fails the request instead of leaving its callers waiting forever.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use crate::error::{ErrorKind, ServeError};
use crate::util::blocking;
use crate::util::sync::Lock;

enum Outcome<T> {
    Pending,
    Ready(Result<T, ServeError>),
    Taken,
}

struct State<T> {
    outcome: Outcome<T>,
    /// The first waiter's waker is stored inline: the common case (one awaiter) allocates nothing.
    waker: Option<Waker>,
    more_wakers: Vec<Waker>,
    /// The task currently working on the request (argument resolution, then the method itself).
    abort: Option<AbortHandle>,
    /// Requests this request started while it ran: cancelling it cancels them too.
    children: Vec<Arc<dyn Cancel>>,
}

/// What a request held when it finished: the task working on it, and the requests it started.
type Held = (Option<AbortHandle>, Vec<Arc<dyn Cancel>>);

/// A request that can be cancelled, and that adopts the requests started on its behalf.
pub(crate) trait Cancel: Send + Sync {
    /// Cancels the request and, recursively, the requests it started.
    fn cancel(&self);
    /// Records `child` as started by this request (cancelled at once if this one already was).
    fn adopt(&self, child: Arc<dyn Cancel>);
    /// The multiplexed model id it was sent for, if any (it lives with the request, so the
    /// request scope and a plain call carry nothing for it).
    fn model_id(&self) -> Option<&Arc<str>> {
        None
    }
}

impl<T: Send> Cancel for Cell<T> {
    fn cancel(&self) {
        Cell::cancel(self);
    }

    fn model_id(&self) -> Option<&Arc<str>> {
        self.model_id.as_ref()
    }

    fn adopt(&self, child: Arc<dyn Cancel>) {
        let mut state = self.lock();
        if matches!(state.outcome, Outcome::Pending) {
            state.children.push(child);
        } else if matches!(&state.outcome, Outcome::Ready(Err(e))
            if matches!(e.kind(), ErrorKind::Cancelled | ErrorKind::Timeout | ErrorKind::ShutDown))
        {
            drop(state);
            child.cancel();
        }
    }
}

/// The shared result cell of one unary request.
pub(crate) struct Cell<T> {
    state: Mutex<State<T>>,
    /// The id of the request (shared by every call made on behalf of one outside request).
    request_id: u64,
    consumers: AtomicUsize,
    /// Set by the first clone of a consumer (which is where `T: Clone` is known).
    clone_fn: OnceLock<fn(&T) -> T>,
    /// The multiplexed model id the request was sent for.
    model_id: Option<Arc<str>>,
}

impl<T> Cell<T> {
    pub(crate) fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The multiplexed model id the request was sent for, if any.
    #[inline]
    pub(crate) fn model_id(&self) -> Option<&Arc<str>> {
        self.model_id.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A poisoned lock only means a waker panicked while we held it; the state is still whole.
        self.state.locked()
    }

    /// Writes the outcome if none was written yet; returns whether this call wrote it.
    pub(crate) fn complete(&self, result: Result<T, ServeError>) -> bool {
        self.finish(result).is_some()
    }

    /// Writes the outcome if none was written yet, wakes the waiters, and hands back what the
    /// request held: the task working on it and the requests it started.
    fn finish(&self, result: Result<T, ServeError>) -> Option<Held> {
        let (waker, more, held) = {
            let mut state = self.lock();
            if !matches!(state.outcome, Outcome::Pending) {
                return None;
            }
            state.outcome = Outcome::Ready(result);
            let held = (state.abort.take(), std::mem::take(&mut state.children));
            (
                state.waker.take(),
                std::mem::take(&mut state.more_wakers),
                held,
            )
        };
        if let Some(w) = waker {
            w.wake();
        }
        more.into_iter().for_each(Waker::wake);
        Some(held)
    }

    /// Whether an outcome was written (in particular: whether the request was cancelled).
    pub(crate) fn is_done(&self) -> bool {
        !matches!(self.lock().outcome, Outcome::Pending)
    }

    /// Records the task now working on the request, so `cancel` can abort it.
    pub(crate) fn set_abort(&self, handle: AbortHandle) {
        let mut state = self.lock();
        if matches!(state.outcome, Outcome::Pending) {
            state.abort = Some(handle);
        } else {
            drop(state);
            // Cancelled (or otherwise finished) before the task was recorded: stop it now.
            handle.abort();
        }
    }

    /// Cancels the request if it has not finished: stops its task and cancels, recursively, the
    /// requests it started. A request that already finished is left alone (its children finished
    /// or were handed off with its result).
    fn cancel(&self) {
        self.stop(ServeError::cancelled());
    }

    /// Stops the request with `err` (cancelled, timed out, stopped) if it has not finished:
    /// aborts its task and cancels the requests it started. Returns whether it was still going.
    pub(crate) fn stop(&self, err: ServeError) -> bool {
        let Some((abort, children)) = self.finish(Err(err)) else {
            return false;
        };
        if let Some(handle) = abort {
            handle.abort();
        }
        for child in children {
            child.cancel();
        }
        true
    }

    fn register(state: &mut State<T>, waker: &Waker) {
        match &state.waker {
            Some(w) if w.will_wake(waker) => {}
            None => state.waker = Some(waker.clone()),
            Some(_) => {
                if !state.more_wakers.iter().any(|w| w.will_wake(waker)) {
                    state.more_wakers.push(waker.clone());
                }
            }
        }
    }

    /// Polls for the outcome on behalf of a consumer: the only consumer takes the value, others clone it.
    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<T, ServeError>> {
        let mut state = self.lock();
        match &state.outcome {
            Outcome::Pending => {
                Self::register(&mut state, cx.waker());
                Poll::Pending
            }
            Outcome::Taken => Poll::Ready(Err(ServeError::new(ErrorKind::AlreadyTaken))),
            Outcome::Ready(Err(e)) => Poll::Ready(Err(e.clone())),
            Outcome::Ready(Ok(_)) => Poll::Ready(Ok(self.take_value(&mut state))),
        }
    }

    /// The value, if the request already succeeded (taken as [`poll_take`](Self::poll_take)
    /// would); `None` while it runs or when it failed.
    fn try_take_ok(&self) -> Option<T> {
        let mut state = self.lock();
        matches!(state.outcome, Outcome::Ready(Ok(_))).then(|| self.take_value(&mut state))
    }

    /// The value of a request that succeeded, for one consumer: the only consumer takes it,
    /// others clone it.
    #[inline(always)]
    fn take_value(&self, state: &mut State<T>) -> T {
        if let Outcome::Ready(Ok(v)) = &state.outcome
            && self.consumers.load(Ordering::Acquire) > 1
            && let Some(clone) = self.clone_fn.get()
        {
            return clone(v);
        }
        match std::mem::replace(&mut state.outcome, Outcome::Taken) {
            Outcome::Ready(Ok(v)) => v,
            _ => unreachable!("the request succeeded"),
        }
    }

    fn poll_clone(&self, cx: &mut Context<'_>) -> Poll<Result<T, ServeError>>
    where
        T: Clone,
    {
        let mut state = self.lock();
        match &state.outcome {
            Outcome::Pending => {
                Self::register(&mut state, cx.waker());
                Poll::Pending
            }
            Outcome::Taken => Poll::Ready(Err(ServeError::new(ErrorKind::AlreadyTaken))),
            Outcome::Ready(result) => Poll::Ready(result.clone()),
        }
    }
}

/// One consumer's reference to a result cell (counted, so the last one can take the value).
pub(crate) struct Consumer<T> {
    cell: Arc<Cell<T>>,
}

impl<T> Consumer<T> {
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<T, ServeError>> {
        self.cell.poll_take(cx)
    }

    /// The value, if the request already succeeded (taken as [`poll_take`](Self::poll_take)
    /// would); `None` while it runs or when it failed (the consumer is left as it was).
    pub(crate) fn try_take_ok(&self) -> Option<T> {
        self.cell.try_take_ok()
    }
}

impl<T: Clone> Clone for Consumer<T> {
    fn clone(&self) -> Self {
        let _ = self.cell.clone_fn.set(T::clone);
        self.cell.consumers.fetch_add(1, Ordering::AcqRel);
        Self {
            cell: self.cell.clone(),
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.cell.consumers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The producer's side of a result cell. Dropping it without completing fails the request with
/// [`ErrorKind::ShutDown`] (this happens when the runtime drops the task that held it).
pub(crate) struct Completer<T> {
    cell: Arc<Cell<T>>,
    completed: bool,
}

impl<T> Completer<T> {
    pub(crate) fn cell(&self) -> &Arc<Cell<T>> {
        &self.cell
    }

    pub(crate) fn complete(mut self, result: Result<T, ServeError>) {
        self.cell.complete(result);
        self.completed = true;
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if !self.completed {
            // A no-op if the request was cancelled in the meantime.
            self.cell.complete(Err(ServeError::shut_down()));
        }
    }
}

/// Creates a pending request: the producer's completer and the first consumer.
pub(crate) fn pending<T>(request_id: u64) -> (Completer<T>, Consumer<T>) {
    pending_for(request_id, None)
}

/// The same, for a request sent for multiplexed model `model_id`.
#[inline]
pub(crate) fn pending_for<T>(
    request_id: u64,
    model_id: Option<Arc<str>>,
) -> (Completer<T>, Consumer<T>) {
    let cell = Arc::new(Cell {
        request_id,
        model_id,
        state: Mutex::new(State {
            outcome: Outcome::Pending,
            waker: None,
            more_wakers: Vec::new(),
            abort: None,
            children: Vec::new(),
        }),
        consumers: AtomicUsize::new(1),
        clone_fn: OnceLock::new(),
    });
    (
        Completer {
            cell: cell.clone(),
            completed: false,
        },
        Consumer { cell },
    )
}

/// A request id as logs and `request_id()` show it: 16 hex digits.
pub(crate) fn format_request_id(id: u64) -> String {
    format!("{id:016x}")
}

/// Fails with `ErrorKind::BlockingInAsync` when the current thread runs async code of a tokio
/// runtime, where blocking could starve or deadlock it.
pub(crate) fn check_may_block(what: &str) -> Result<(), ServeError> {
    if blocking::may_block() {
        Ok(())
    } else {
        Err(ServeError::blocking_in_async(what))
    }
}

/// Blocks the current thread on a consumer, up to `deadline`.
fn block_on_consumer<T>(
    consumer: &Consumer<T>,
    deadline: Option<Instant>,
    what: &str,
) -> Result<T, ServeError> {
    check_may_block(what)?;
    let mut poll = |cx: &mut Context<'_>| consumer.poll_take(cx);
    match blocking::block_on_poll(&mut poll, deadline) {
        Some(result) => result,
        None => Err(ServeError::new(ErrorKind::Timeout)),
    }
}

/// A one-thread runtime that only runs timers set outside any serve instance (a `.timeout(..)`
/// in `fn main`), so such a timer needs no serve instance of its own.
fn timer_runtime() -> Result<&'static tokio::runtime::Handle, ServeError> {
    static TIMER: OnceLock<Result<tokio::runtime::Handle, String>> = OnceLock::new();
    let timer = TIMER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| e.to_string())?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("serve-timer".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map_err(|e| e.to_string())?;
        Ok(handle)
    });
    timer.as_ref().map_err(|e| {
        ServeError::new(ErrorKind::Runtime)
            .with_message(format!("cannot start the timer thread: {e}"))
    })
}

/// The future result of a unary handle call, returned at once by `.remote(..)`; a [`Future`].
///
/// The request is already on its way when you get this: it runs whether or not the response is
/// ever awaited. Get the value with `.await` (in async code), [`result`](Self::result) (in
/// synchronous code), or pass the response straight into another handle call as an argument; the
/// runtime resolves it first and the downstream method receives the value.
///
/// Clones (for `T: Clone`) share the one request, and each yields the same value.
#[must_use = "the request runs anyway; keep the response to get its result"]
pub struct DeploymentResponse<T> {
    consumer: Consumer<T>,
}

impl<T> DeploymentResponse<T> {
    pub(crate) fn from_consumer(consumer: Consumer<T>) -> Self {
        Self { consumer }
    }

    pub(crate) fn into_consumer(self) -> Consumer<T> {
        self.consumer
    }

    /// Blocks the current thread until the result is there.
    ///
    /// For synchronous code (`fn main`, a sync deployment method). On an async runtime thread it
    /// returns an [`ErrorKind::BlockingInAsync`] error instead of blocking: use `.await` there.
    pub fn result(self) -> Result<T, ServeError> {
        block_on_consumer(&self.consumer, None, "DeploymentResponse::result")
    }

    /// Like [`result`](Self::result), but gives up after `timeout` with an [`ErrorKind::Timeout`]
    /// error. The request keeps running, and this can be called again on the same response.
    pub fn result_timeout(&self, timeout: Duration) -> Result<T, ServeError> {
        block_on_consumer(
            &self.consumer,
            Some(Instant::now() + timeout),
            "DeploymentResponse::result_timeout",
        )
    }

    /// The request's id (also in its log lines and in the replica context of the method it runs),
    /// shared by the calls made on its behalf.
    pub fn request_id(&self) -> String {
        format_request_id(self.consumer.cell.request_id)
    }

    /// The request id as a number (what [`request_id`](Self::request_id) formats).
    pub(crate) fn raw_request_id(&self) -> u64 {
        self.consumer.cell.request_id
    }

    /// Cancels the request: if it has not finished, it is stopped (a request still waiting for a
    /// replica never runs; a running async method is dropped at its next `.await`) and awaiting
    /// any of its responses gives an [`ErrorKind::Cancelled`] error.
    pub fn cancel(&self) {
        self.consumer.cell.cancel();
    }

    /// Gives the request `after` to finish: past it the request is cancelled (with the calls it
    /// started) and the response fails with an [`ErrorKind::Timeout`] error, whether or not anyone
    /// is waiting for it. A per-call timeout:
    /// `self.model.predict.remote(x).timeout(Duration::from_secs(2)).await`.
    ///
    /// Inside a deployment the timer runs on the serve instance's runtime; elsewhere on one
    /// process-wide timer thread (started on first use; it starts no serve instance).
    pub fn timeout(self, after: Duration) -> Self
    where
        T: Send + 'static,
    {
        let cell = Arc::downgrade(&self.consumer.cell);
        let timer = async move {
            tokio::time::sleep(after).await;
            if let Some(cell) = cell.upgrade() {
                cell.stop(ServeError::new(ErrorKind::Timeout).with_message(format!(
                    "no result within {after:?}; the request was cancelled"
                )));
            }
        };
        let on_serve_thread = blocking::on_serve_thread();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if on_serve_thread => drop(rt.spawn(timer)),
            _ => match timer_runtime() {
                Ok(rt) => drop(rt.spawn(timer)),
                Err(e) => {
                    self.consumer.cell.stop(e);
                }
            },
        }
        self
    }

    /// Turns the response into an [`ObjectRef`] that can be awaited any number of times and passed to
    /// tasks (`#[remote]` functions) and handle calls.
    ///
    /// Resolves once the request has been handed to the runtime (which `.remote(..)` already did),
    /// so it only fails if the request was cancelled.
    pub async fn to_object_ref(self) -> Result<ObjectRef<T>, ServeError> {
        self.into_object_ref()
    }

    /// The blocking form of [`to_object_ref`](Self::to_object_ref), for synchronous code.
    pub fn to_object_ref_blocking(self) -> Result<ObjectRef<T>, ServeError> {
        self.into_object_ref()
    }

    fn into_object_ref(self) -> Result<ObjectRef<T>, ServeError> {
        let state = self.consumer.cell.lock();
        if let Outcome::Ready(Err(e)) = &state.outcome
            && e.kind() == ErrorKind::Cancelled
        {
            return Err(e.clone());
        }
        drop(state);
        Ok(ObjectRef {
            consumer: self.consumer,
        })
    }
}

impl<T: Clone> Clone for DeploymentResponse<T> {
    fn clone(&self) -> Self {
        Self {
            consumer: self.consumer.clone(),
        }
    }
}

impl<T> std::fmt::Debug for DeploymentResponse<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentResponse")
            .field("done", &self.consumer.cell.is_done())
            .finish()
    }
}

/// Awaiting a response takes its value (or a clone, while other clones of it are alive).
impl<T> Future for DeploymentResponse<T> {
    type Output = Result<T, ServeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.consumer.poll_take(cx)
    }
}

/// A reference to the result of a request or a task, awaitable any number of times.
///
/// Made by [`DeploymentResponse::to_object_ref`] or returned by a `#[remote]` task's `.remote(..)`.
/// Pass it wherever a `T` argument is expected (a handle call or a task), or await it:
/// `obj_ref.await` takes the value (cloning it if other clones of the ref are alive), `(&obj_ref).await`
/// clones it and keeps the ref usable.
#[must_use = "the work runs anyway; keep the ref to get its result"]
pub struct ObjectRef<T> {
    consumer: Consumer<T>,
}

impl<T> ObjectRef<T> {
    pub(crate) fn from_consumer(consumer: Consumer<T>) -> Self {
        Self { consumer }
    }

    pub(crate) fn into_consumer(self) -> Consumer<T> {
        self.consumer
    }

    /// Blocks the current thread until the value is there (synchronous code only; see
    /// [`DeploymentResponse::result`]).
    pub fn result(self) -> Result<T, ServeError> {
        block_on_consumer(&self.consumer, None, "ObjectRef::result")
    }
}

impl<T: Clone> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        Self {
            consumer: self.consumer.clone(),
        }
    }
}

impl<T> std::fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRef")
            .field("done", &self.consumer.cell.is_done())
            .finish()
    }
}

impl<T> Future for ObjectRef<T> {
    type Output = Result<T, ServeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.consumer.poll_take(cx)
    }
}

/// The future of awaiting an `&ObjectRef<T>`: yields a clone of the value.
#[must_use = "futures do nothing unless polled"]
pub struct ObjectRefFuture<'a, T> {
    cell: &'a Cell<T>,
}

impl<T: Clone> Future for ObjectRefFuture<'_, T> {
    type Output = Result<T, ServeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_clone(cx)
    }
}

impl<'a, T: Clone> IntoFuture for &'a ObjectRef<T> {
    type Output = Result<T, ServeError>;
    type IntoFuture = ObjectRefFuture<'a, T>;

    fn into_future(self) -> Self::IntoFuture {
        ObjectRefFuture {
            cell: &self.consumer.cell,
        }
    }
}

#[cfg(test)]
mod tests;
