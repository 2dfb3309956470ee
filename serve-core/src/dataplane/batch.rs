//! Dynamic batching: a `#[batch]` method's calls, grouped per replica.
//!
//! A batched method's stub is an ordinary unary call (routing, slots, the queue, back pressure,
//! cancellation, the request scope and cluster mode are those of any call). What differs is the
//! closure that runs on the replica: instead of calling the method, it hands its one item to the
//! replica's [`Batcher`] for that method ([`call_batched`]) and waits for its own result.
//!
//! A batcher (one per replica and method, kept in the replica's `ReplicaState`) runs a small loop
//! task: it takes a permit (at most `max_concurrent_batches` batches run at once), waits for a
//! first item, then for more until the batch holds `max_batch_size` items or
//! `batch_wait_timeout_s` has passed since the first one arrived, and starts the batch in a task
//! of its own: an `async fn` on the async workers, a sync `fn` on the blocking pool. Items keep
//! arriving while batches run, so under load the next batch is full as soon as a permit frees.
//!
//! A batch's outcome goes to each caller: its own item's result, in order; the method's `Err` to
//! all of them (a [`BatchError`] showing the method's message, with the error as its source); a
//! result of the wrong length fails them all (naming the deployment, the method and both
//! lengths); a panic fails that batch only (each caller's call panics with the same message, so
//! it is reported as a panic). A caller that goes away (its response dropped) before its batch
//! starts is left out of it; once a batch started it runs to its end, whoever still waits.
//!
//! The batch size and the wait can change at run time ([`Batching`], from `reconfigure`): each
//! batch reads them when it is formed.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::task::AbortHandle;

use crate::config::rules;
use crate::error::{BoxError, ErrorKind, ServeError};
use crate::metrics::series::BatchSeries;
use crate::request::context::{self, ReplicaInfo};
use crate::util::panic;
use crate::util::sync::Lock;

/// What `#[batch(..)]` says about a method: its name and its settings as written (or Ray's
/// defaults).
#[doc(hidden)]
#[derive(Debug)]
pub struct BatchSpec {
    method: &'static str,
    max_batch_size: usize,
    batch_wait_timeout_s: f64,
    max_concurrent_batches: usize,
}

impl BatchSpec {
    /// A batched method's spec; the macro has checked the values.
    pub const fn new(
        method: &'static str,
        max_batch_size: usize,
        batch_wait_timeout_s: f64,
        max_concurrent_batches: usize,
    ) -> Self {
        Self {
            method,
            max_batch_size,
            batch_wait_timeout_s,
            max_concurrent_batches,
        }
    }

    /// The method's name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// Its `max_batch_size` as written.
    pub fn max_batch_size(&self) -> usize {
        self.max_batch_size
    }
}

/// A batched method as the batcher calls it: the generated code's non-capturing closures.
#[doc(hidden)]
pub enum BatchFn<D, T, R> {
    /// An `async fn`: run as a task of its own.
    Async(fn(Arc<D>, Vec<T>) -> BatchFuture<R>),
    /// A sync `fn`: run on the blocking pool.
    Sync(fn(&D, Vec<T>) -> Result<Vec<R>, BoxError>),
}

impl<D, T, R> Clone for BatchFn<D, T, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D, T, R> Copy for BatchFn<D, T, R> {}

/// The run of an `async fn` batched method.
#[doc(hidden)]
pub type BatchFuture<R> = Pin<Box<dyn Future<Output = Result<Vec<R>, BoxError>> + Send>>;

/// The settings of one batched method on one replica; changed by [`Batching`], read as each batch
/// forms.
struct Settings {
    max_batch_size: AtomicUsize,
    /// Nanoseconds.
    wait: AtomicU64,
    max_concurrent_batches: usize,
    /// The batcher's queue, once the method was first called on the replica.
    queue: OnceLock<Weak<dyn Queue>>,
}

/// What [`Batching::queued`] reads of a batcher.
trait Queue: Send + Sync {
    /// The items waiting for a batch whose callers still wait.
    fn waiting(&self) -> usize;
    /// Has the loop look at its settings again (they changed).
    fn wake(&self);
}

impl<D: Send + Sync, T: Send, R: Send> Queue for Shared<D, T, R> {
    fn waiting(&self) -> usize {
        let queue = self.queue.locked();
        queue.iter().filter(|p| !p.reply.is_closed()).count()
    }

    fn wake(&self) {
        self.arrived.notify_one();
    }
}

impl Settings {
    fn new(spec: &BatchSpec) -> Self {
        Self {
            max_batch_size: AtomicUsize::new(spec.max_batch_size.max(1)),
            wait: AtomicU64::new(nanos(spec.batch_wait_timeout_s)),
            max_concurrent_batches: spec.max_concurrent_batches.max(1),
            queue: OnceLock::new(),
        }
    }

    fn max_batch_size(&self) -> usize {
        self.max_batch_size.load(Ordering::Relaxed)
    }

    fn wait(&self) -> Duration {
        Duration::from_nanos(self.wait.load(Ordering::Relaxed))
    }

    /// A batch forming now sees a new size or wait at once (a smaller size may make it full).
    fn changed(&self) {
        if let Some(queue) = self.queue.get().and_then(Weak::upgrade) {
            queue.wake();
        }
    }
}

fn nanos(seconds: f64) -> u64 {
    Duration::try_from_secs_f64(seconds).map_or(u64::MAX, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    })
}

/// The settings entry of the method `F` (its fn item type) in a replica's state: the method's
/// handle for [`batching`], made when the replica is constructed.
struct Knobs<F> {
    settings: Arc<Settings>,
    _method: PhantomData<fn() -> F>,
}

/// The key of [`Knobs`] entries (the type tells the methods apart).
const KNOBS: &str = "#[batch] settings";

fn knobs<F: 'static>(replica: &ReplicaInfo, spec: &BatchSpec) -> Arc<Settings> {
    replica
        .state
        .get_or_init::<Knobs<F>>(KNOBS, || Knobs {
            settings: Arc::new(Settings::new(spec)),
            _method: PhantomData,
        })
        .settings
        .clone()
}

/// Records the batched method `F` on the replica being constructed, so that [`batching`] finds
/// it from the constructor on (the generated `bind` calls it before `new`).
#[doc(hidden)]
pub fn declare_batch<F: 'static>(_method: F, spec: &'static BatchSpec) {
    if let Some(replica) = context::current_replica() {
        knobs::<F>(&replica, spec);
    }
}

/// The run-time settings of a `#[batch]` method on the current replica: Ray's
/// `set_max_batch_size` / `set_batch_wait_timeout_s`, typed by the method itself.
///
/// Get it with [`batching`]`(Self::method)` inside the deployment's code (its constructor,
/// `reconfigure`, or a method); a change applies to the batches formed after it, on this replica.
///
/// ```
/// use serve_core::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// pub struct Tuning { batch: usize, wait_s: f64 }
///
/// #[deployment]
/// #[derive(Default)]
/// pub struct Model;
///
/// #[deployment]
/// impl Model {
///     #[batch(max_batch_size = 4)]
///     pub fn embed(&self, texts: Vec<String>) -> Vec<usize> {
///         texts.iter().map(String::len).collect()
///     }
///
///     pub fn reconfigure(&self, tuning: Tuning) -> Result<(), ServeError> {
///         let batching = serve_core::batching(Self::embed)?;
///         batching.set_max_batch_size(tuning.batch)?;
///         batching.set_batch_wait_timeout_s(tuning.wait_s)
///     }
/// }
/// # let serve = Serve::start()?;
/// # let handle = serve.run(Model::bind())?;
/// # assert_eq!(handle.embed.remote("four".to_string()).result()?, 4);
/// # Ok::<(), ServeError>(())
/// ```
#[derive(Clone)]
pub struct Batching {
    settings: Arc<Settings>,
    method: &'static str,
}

/// The [`Batching`] settings of the `#[batch]` method `method` (written `Self::embed`) on the
/// replica the calling code runs on.
///
/// Fails (`ErrorKind::Runtime`) outside a replica (no replica is running this code), and for a
/// method that is not a `#[batch]` method of this replica's deployment.
pub fn batching<F: 'static>(method: F) -> Result<Batching, ServeError> {
    let _ = method;
    let name = std::any::type_name::<F>();
    let Some(replica) = context::current_replica() else {
        return Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
            "`batching({name})` is called outside a replica: call it from the deployment's own code (its constructor, `reconfigure` or a method)"
        )));
    };
    match replica.state.get::<Knobs<F>>(KNOBS) {
        Some(knobs) => Ok(Batching {
            settings: knobs.settings.clone(),
            method: name,
        }),
        None => Err(ServeError::new(ErrorKind::Runtime)
            .with_message(format!(
                "`{name}` is not a `#[batch]` method of this deployment"
            ))
            .in_deployment(&replica.deployment)),
    }
}

impl Batching {
    /// The largest batch the method is called with.
    pub fn max_batch_size(&self) -> usize {
        self.settings.max_batch_size()
    }

    /// How long a batch waits for more items after its first one, in seconds.
    pub fn batch_wait_timeout_s(&self) -> f64 {
        self.settings.wait().as_secs_f64()
    }

    /// How many batches of the method may run at once (fixed by the attribute).
    pub fn max_concurrent_batches(&self) -> usize {
        self.settings.max_concurrent_batches
    }

    /// How many calls wait for a batch of the method on this replica now (not counting the
    /// batches running, nor calls cancelled while waiting).
    pub fn queued(&self) -> usize {
        let queue = self.settings.queue.get().and_then(Weak::upgrade);
        queue.map_or(0, |q| q.waiting())
    }

    /// Sets the largest batch (at least 1). Batches formed from now on use it, the one forming
    /// now included.
    pub fn set_max_batch_size(&self, max_batch_size: usize) -> Result<(), ServeError> {
        rules::count("max_batch_size", "max_batch_size", max_batch_size as u64)
            .map_err(|e| self.invalid(e))?;
        self.settings
            .max_batch_size
            .store(max_batch_size, Ordering::Relaxed);
        self.settings.changed();
        Ok(())
    }

    /// Sets how long a batch waits for more items after its first one (seconds, at least 0).
    /// Batches formed from now on use it, the one forming now included.
    pub fn set_batch_wait_timeout_s(&self, seconds: f64) -> Result<(), ServeError> {
        rules::number("batch_wait_timeout_s", "batch_wait_timeout_s", seconds)
            .map_err(|e| self.invalid(e))?;
        self.settings.wait.store(nanos(seconds), Ordering::Relaxed);
        self.settings.changed();
        Ok(())
    }

    fn invalid(&self, message: String) -> ServeError {
        ServeError::new(ErrorKind::Config).with_message(format!("{}: {message}", self.method))
    }
}

impl fmt::Debug for Batching {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batching")
            .field("method", &self.method)
            .field("max_batch_size", &self.max_batch_size())
            .field("batch_wait_timeout_s", &self.batch_wait_timeout_s())
            .field("max_concurrent_batches", &self.max_concurrent_batches())
            .finish()
    }
}

/// A batch's failure, as each of its callers gets it.
#[derive(Clone)]
enum Failure {
    /// The method's `Err`, or a result of the wrong length.
    Error(Arc<dyn std::error::Error + Send + Sync>),
    /// The method panicked with this message.
    Panic(String),
    /// The batch could not run: the runtime shut down.
    ShutDown,
}

/// The error of a batched call whose batch failed: shows the batch's error (the method's `Err`,
/// or a result of the wrong length), which is also its [`source`](std::error::Error::source), so
/// `ServeError::downcast_ref::<YourError>()` finds the method's error.
#[derive(Clone)]
pub struct BatchError {
    error: Arc<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.error, f)
    }
}

impl std::error::Error for BatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

/// A result of the wrong length.
#[derive(Debug)]
struct WrongLength {
    deployment: Arc<str>,
    method: &'static str,
    items: usize,
    results: usize,
}

impl fmt::Display for WrongLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the batched method `{}.{}` returned {} result(s) for a batch of {} item(s): it must return one result per item, in order",
            self.deployment, self.method, self.results, self.items
        )
    }
}

impl std::error::Error for WrongLength {}

/// One caller's item, waiting for its batch.
struct Pending<D, T, R> {
    this: Arc<D>,
    item: T,
    reply: oneshot::Sender<Result<R, Failure>>,
    arrived: Instant,
}

/// What the loop and the submitters share.
struct Shared<D, T, R> {
    queue: Mutex<VecDeque<Pending<D, T, R>>>,
    arrived: Notify,
    settings: Arc<Settings>,
    run: BatchFn<D, T, R>,
    /// The replica, for the scope batches run in and the errors' deployment name (weak: the
    /// replica's state holds the batcher).
    replica: Weak<ReplicaInfo>,
    deployment: Arc<str>,
    method: &'static str,
    rt: tokio::runtime::Handle,
    /// Its metrics, on a replica that has them.
    metrics: Option<BatchSeries>,
}

/// One batched method's batcher on one replica. Dropping it (with the replica) stops its loop;
/// the callers still waiting then fail.
pub(crate) struct Batcher<D, T, R> {
    shared: Arc<Shared<D, T, R>>,
    task: AbortHandle,
}

impl<D, T, R> Drop for Batcher<D, T, R> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<D, T, R> Batcher<D, T, R>
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    fn start(
        replica: &Arc<ReplicaInfo>,
        method: &'static str,
        settings: Arc<Settings>,
        run: BatchFn<D, T, R>,
    ) -> Self {
        let rt = tokio::runtime::Handle::current();
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            settings,
            run,
            replica: Arc::downgrade(replica),
            deployment: replica.deployment.clone(),
            method,
            rt: rt.clone(),
            metrics: replica.metrics.as_ref().map(|m| m.batch(method)),
        });
        let task = rt.spawn(form_batches(shared.clone())).abort_handle();
        let queue: Arc<dyn Queue> = shared.clone();
        let _ = shared.settings.queue.set(Arc::downgrade(&queue));
        Self { shared, task }
    }

    fn submit(&self, pending: Pending<D, T, R>) {
        let mut queue = self.shared.queue.locked();
        queue.push_back(pending);
        self.shared.queued(queue.len());
        drop(queue);
        self.shared.arrived.notify_one();
    }
}

/// Calls a `#[batch]` method with one item: the item joins the current replica's next batch of
/// `method`, and this returns the item's own result.
#[doc(hidden)]
pub async fn call_batched<F, D, T, R>(
    method: F,
    spec: &'static BatchSpec,
    run: BatchFn<D, T, R>,
    this: Arc<D>,
    item: T,
) -> Result<R, BoxError>
where
    F: 'static,
    D: Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    let _ = method;
    let Some(replica) = context::current_replica() else {
        // Not on a replica (never, from the generated stubs): a batch of one.
        return alone(run, this, item).await;
    };
    let batcher = match replica.state.get::<Batcher<D, T, R>>(spec.method) {
        Some(batcher) => batcher,
        None => {
            let settings = knobs::<F>(&replica, spec);
            replica.state.get_or_init(spec.method, || {
                Batcher::start(&replica, spec.method, settings, run)
            })
        }
    };
    let (reply, result) = oneshot::channel();
    batcher.submit(Pending {
        this,
        item,
        reply,
        arrived: Instant::now(),
    });
    // Dropping this future (the call was cancelled) closes `reply`: the item is left out of a
    // batch that has not started.
    match result.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Failure::Error(error))) => Err(Box::new(BatchError { error })),
        Ok(Err(Failure::Panic(message))) => std::panic::resume_unwind(Box::new(message)),
        Ok(Err(Failure::ShutDown)) | Err(_) => Err(Box::new(ServeError::shut_down())),
    }
}

/// A batch of one, run in place.
async fn alone<D, T, R>(run: BatchFn<D, T, R>, this: Arc<D>, item: T) -> Result<R, BoxError> {
    let results = match run {
        BatchFn::Async(f) => f(this, vec![item]).await?,
        BatchFn::Sync(f) => f(&this, vec![item])?,
    };
    results
        .into_iter()
        .next()
        .ok_or_else(|| "the batched method returned no result for its one item".into())
}

/// The batcher's loop: forms each batch and starts it.
async fn form_batches<D, T, R>(shared: Arc<Shared<D, T, R>>)
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(shared.settings.max_concurrent_batches));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        // Wait for a first item still wanted.
        let first = loop {
            if let Some(arrived) = first_live(&shared) {
                break arrived;
            }
            shared.arrived.notified().await;
        };
        // Then for a full batch, or the end of the wait that began with the first item.
        let mut deadline = first + shared.settings.wait();
        loop {
            let (live, first) = live(&shared);
            if live >= shared.settings.max_batch_size() {
                break;
            }
            if let Some(first) = first {
                deadline = first + shared.settings.wait();
            }
            if live > 0 && Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                () = shared.arrived.notified() => {}
                () = tokio::time::sleep_until(deadline.into()), if live > 0 => break,
            }
        }
        let batch = take(&shared, shared.settings.max_batch_size());
        if batch.is_empty() {
            continue;
        }
        let shared = shared.clone();
        let rt = shared.rt.clone();
        rt.spawn(async move {
            run_batch(&shared, batch).await;
            drop(permit);
        });
    }
}

impl<D, T, R> Shared<D, T, R> {
    /// `n` items wait for a batch.
    #[inline]
    fn queued(&self, n: usize) {
        if let Some(metrics) = &self.metrics {
            metrics.set_queued(n);
        }
    }
}

/// Drops the items whose callers went away from the front of the queue; the arrival of the
/// first one left.
fn first_live<D, T, R>(shared: &Shared<D, T, R>) -> Option<Instant> {
    let mut queue = shared.queue.locked();
    while queue.front().is_some_and(|p| p.reply.is_closed()) {
        queue.pop_front();
    }
    queue.front().map(|p| p.arrived)
}

/// Drops the items whose callers went away; how many are left and when the first one arrived.
fn live<D, T, R>(shared: &Shared<D, T, R>) -> (usize, Option<Instant>) {
    let mut queue = shared.queue.locked();
    queue.retain(|p| !p.reply.is_closed());
    (queue.len(), queue.front().map(|p| p.arrived))
}

/// The next batch: up to `max` items whose callers still wait, oldest first.
fn take<D, T, R>(shared: &Shared<D, T, R>, max: usize) -> Vec<Pending<D, T, R>> {
    let mut queue = shared.queue.locked();
    let mut batch = Vec::with_capacity(max.min(queue.len()));
    while batch.len() < max {
        match queue.pop_front() {
            Some(p) if p.reply.is_closed() => {}
            Some(p) => batch.push(p),
            None => break,
        }
    }
    shared.queued(queue.len());
    if let (Some(metrics), Some(first)) = (&shared.metrics, batch.first()) {
        metrics.formed(first.arrived.elapsed(), batch.len(), max);
    }
    batch
}

/// Runs one batch and answers each of its callers.
async fn run_batch<D, T, R>(shared: &Shared<D, T, R>, batch: Vec<Pending<D, T, R>>)
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    let this = batch[0].this.clone();
    let mut items = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for p in batch {
        items.push(p.item);
        replies.push(p.reply);
    }
    let n = items.len();
    let replica = shared.replica.upgrade();
    let started = Instant::now();
    let outcome: Option<Result<Result<Vec<R>, BoxError>, panic::Panic>> = match shared.run {
        BatchFn::Async(f) => {
            let run = panic::catch_async(f(this, items));
            Some(match replica {
                Some(replica) => context::on_replica(replica, run).await,
                None => run.await,
            })
        }
        BatchFn::Sync(f) => {
            let call = move || match replica {
                Some(replica) => context::constructing_sync(replica, || f(&this, items)),
                None => f(&this, items),
            };
            panic::on_blocking_pool(&shared.rt, call).await
        }
    };
    if let Some(metrics) = &shared.metrics {
        metrics.ran(started.elapsed());
    }
    let failure = match outcome {
        Some(Ok(Ok(results))) if results.len() == n => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
            return;
        }
        Some(Ok(Ok(results))) => Failure::Error(Arc::new(WrongLength {
            deployment: shared.deployment.clone(),
            method: shared.method,
            items: n,
            results: results.len(),
        })),
        Some(Ok(Err(error))) => Failure::Error(Arc::from(error)),
        Some(Err(panic)) => Failure::Panic(crate::util::panic::message(&*panic)),
        None => Failure::ShutDown,
    };
    for reply in replies {
        let _ = reply.send(Err(failure.clone()));
    }
}

/// Warns when a replica cannot hold a full batch: it takes at most `max_ongoing_requests` calls
/// at once, so a batch never grows past that.
pub(crate) fn warn_if_capped(deployment: &str, max_ongoing_requests: usize, specs: &[BatchSpec]) {
    for spec in specs {
        if max_ongoing_requests < spec.max_batch_size {
            tracing::warn!(
                deployment,
                method = spec.method,
                "`{}` has max_batch_size = {} but the deployment's max_ongoing_requests is {}: a replica takes at most {} calls at once, so its batches never hold more than {}; raise max_ongoing_requests to at least {} (more, to fill the next batch while one runs)",
                spec.method,
                spec.max_batch_size,
                max_ongoing_requests,
                max_ongoing_requests,
                max_ongoing_requests,
                spec.max_batch_size,
            );
        }
    }
}

#[cfg(test)]
mod tests;
