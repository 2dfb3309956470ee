//! One request of a given kind waiting for its arguments and a slot: [`UnaryCall`] (a sync or
//! async method, differing only in how it is [invoked](super::invoke)) and [`StreamCall`]. Each
//! owns its request's result cell or stream channel, so it can tell whether anybody still wants
//! it, and fail it when an argument failed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

use super::access;
use super::invoke::Invoke;
use super::remote;
use super::replica::{Endpoint, Stop};
use super::sink::StreamSink;
use super::slot::{Job, Slot};
use crate::error::ServeError;
use crate::request::codec::CallWire;
use crate::request::context::{self, RequestScope};
use crate::request::generator::{ErrorSender, GeneratorSender, StreamRequest};
use crate::request::response::{Cancel as _, Completer};
use crate::transport::{OnReply, Outcome};
use crate::util::panic;
use crate::util::sync::Lock;

/// A request waiting for its arguments and a slot.
pub(crate) trait Call<D>: Send + 'static {
    type Values: Send + 'static;
    /// Nobody wants the result any more (cancelled, or a stream whose consumer left): such a
    /// request is dropped without running or taking a slot.
    fn abandoned(&self) -> bool;
    /// The multiplexed model id it was sent for: routing prefers a replica that holds it.
    #[inline]
    fn model_id(&self) -> Option<&Arc<str>> {
        None
    }
    /// An argument's request failed, or the request was refused: the method is never invoked.
    fn fail(self, err: ServeError);
    /// Runs the method on the slot's replica; the slot is released when the request ends.
    fn run(self, values: Self::Values, slot: Slot<D>);
}

impl<D, C: Call<D>> Job<D> for (C, C::Values) {
    fn abandoned(&self) -> bool {
        self.0.abandoned()
    }

    fn fail(self: Box<Self>, err: ServeError) {
        self.0.fail(err)
    }

    fn run(self: Box<Self>, slot: Slot<D>) {
        let (call, values) = *self;
        call.run(values, slot)
    }
}

/// A call to a unary (sync or async) method.
pub(crate) struct UnaryCall<T, I, V> {
    pub(crate) completer: Completer<T>,
    pub(crate) method: &'static str,
    pub(crate) invoke: I,
    /// How it crosses to a remote replica.
    pub(crate) wire: CallWire<V, T>,
}

impl<D, T, I, V> Call<D> for UnaryCall<T, I, V>
where
    D: 'static,
    T: Send + 'static,
    V: Send + 'static,
    I: Invoke<D, V, T>,
{
    type Values = V;

    fn abandoned(&self) -> bool {
        self.completer.cell().is_done()
    }

    #[inline(always)]
    fn model_id(&self) -> Option<&Arc<str>> {
        self.completer.cell().model_id()
    }

    fn fail(self, err: ServeError) {
        self.completer.complete(Err(err));
    }

    fn run(self, values: V, mut slot: Slot<D>) {
        let cell = self.completer.cell().clone();
        slot.track(cell.clone());
        match slot.endpoint() {
            Endpoint::Local(_) => {
                if let Some(abort) = self
                    .invoke
                    .invoke(values, slot, self.completer, self.method)
                {
                    cell.set_abort(abort);
                }
            }
            Endpoint::Remote(_) => Self::run_remote(self, values, slot),
        }
    }
}

impl<T, I, V> UnaryCall<T, I, V>
where
    T: Send + 'static,
    V: Send + 'static,
{
    /// Sends a unary call to the slot's remote replica. No task waits for it: the request plane
    /// hands the reply to a closure that decodes it, frees the slot and completes the request. The
    /// remote call is adopted by the request, so cancelling the request cancels it on the far side.
    ///
    /// A call that reached no node (its replica's node is gone, and not yet declared dead) never
    /// ran: the replica leaves this router's routing at once, and the request goes back to the
    /// router, to another replica. Each such retry takes a replica out, so retries end.
    fn run_remote<D: 'static>(call: UnaryCall<T, I, V>, values: V, slot: Slot<D>)
    where
        I: Invoke<D, V, T>,
    {
        let (method, wire) = (call.method, call.wire);
        let model_id = call.completer.cell().model_id().cloned();
        let deployment = slot.deployment().clone();
        let encoded = remote::endpoint(&slot)
            .map(|endpoint| (endpoint.clone(), endpoint.encode(&|| (wire.args)(&values))));
        let (endpoint, args) = match encoded {
            Some((endpoint, Ok(args))) => (endpoint, args),
            None => {
                drop(slot);
                call.completer.complete(Err(remote::located(
                    remote::not_remote(),
                    &deployment,
                    method,
                )));
                return;
            }
            Some((_, Err(e))) => {
                drop(slot);
                call.completer
                    .complete(Err(remote::located(e, &deployment, method)));
                return;
            }
        };
        let cell = call.completer.cell().clone();
        let on_reply: OnReply = Box::new(move |outcome| match outcome {
            Outcome::Undelivered(why) if !call.completer.cell().is_done() => {
                let source = slot.source().clone();
                source.evict(slot.replica(), &why);
                drop(slot);
                source.requeue(Box::new((call, values)));
            }
            outcome => {
                if let Outcome::Replied(_, Some(models)) = &outcome {
                    remote::loaded_models(slot.replica(), models);
                }
                let result = outcome
                    .into_result()
                    .and_then(|bytes| (wire.result)(&bytes))
                    .map_err(|e| remote::located(e, &deployment, method));
                drop(values);
                drop(slot); // free the slot before the caller sees the result
                call.completer.complete(result);
            }
        });
        let sent = endpoint.call(method, args, model_id.as_deref(), on_reply);
        cell.adopt(sent);
    }
}

/// A call to a streaming method: `f` drives the method's stream into a [`StreamSink`].
pub(crate) struct StreamCall<T, F, V> {
    pub(crate) request_id: u64,
    pub(crate) sender: GeneratorSender<T>,
    pub(crate) method: &'static str,
    pub(crate) f: F,
    /// How it crosses to a remote replica.
    pub(crate) wire: CallWire<V, T>,
    /// The multiplexed model id it was sent for.
    pub(crate) model_id: Option<Arc<str>>,
}

impl<D, T, F, V, Fut> Call<D> for StreamCall<T, F, V>
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    V: Send + 'static,
    F: FnOnce(Arc<D>, V, StreamSink<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Values = V;

    fn abandoned(&self) -> bool {
        self.sender.is_closed()
    }

    #[inline(always)]
    fn model_id(&self) -> Option<&Arc<str>> {
        self.model_id.as_ref()
    }

    fn fail(self, err: ServeError) {
        // The channel is empty: nothing was sent before the arguments resolved.
        self.sender.errors().try_send(err);
    }

    fn run(self, values: V, mut slot: Slot<D>) {
        let Self {
            sender,
            method,
            f,
            request_id,
            wire,
            model_id,
        } = self;
        let errors = sender.errors();
        let stop = Arc::new(StreamStop {
            errors: sender.errors(),
            finished: sender.finished_flag(),
            task: Mutex::new(None),
        });
        slot.track(stop.clone());
        if let Endpoint::Remote(_) = slot.endpoint() {
            stop.started(remote::stream(values, slot, sender, method, wire, model_id));
            return;
        }
        // The parent of the calls the method makes: cancelled with them when the stream is cut
        // short, which is when the task ends (or is dropped) without the stream having ended.
        let parent = Arc::new(StreamRequest::new(model_id));
        let scope = RequestScope {
            request: Some(parent.clone()),
            request_id,
            replica: slot.replica().info().clone(),
        };
        let cut_short = CutShort {
            parent,
            ended: sender.finished_flag(),
        };
        let task = slot.runtime().clone().spawn(async move {
            let _cut_short = cut_short;
            let sink = StreamSink::new(sender, slot.deployment().clone(), method)
                .on_replica(slot.replica().info());
            let Endpoint::Local(instance) = slot.endpoint() else {
                return; // remote replicas were handled above
            };
            let produce = panic::catch_async(f(instance.clone(), values, sink));
            let result = context::in_scope(scope, access::timed(method, produce)).await;
            if let Err(panic) = result {
                let err = ServeError::panic(panic).at(slot.deployment(), method);
                drop(slot);
                errors.send(err).await;
            }
        });
        stop.started(task.abort_handle());
    }
}

/// Cancels a stream's calls when its producer ends without the stream having ended (the consumer
/// went away, the replica stopped it, it panicked).
struct CutShort {
    parent: Arc<StreamRequest>,
    ended: Arc<AtomicBool>,
}

impl Drop for CutShort {
    fn drop(&mut self) {
        if !self.ended.load(Ordering::Acquire) {
            self.parent.cancel();
        }
    }
}

/// A streaming request's stop: sends the error down the stream and aborts the producer.
struct StreamStop<T> {
    errors: ErrorSender<T>,
    /// Set once the stream ended whole: then there is nothing to stop.
    finished: Arc<AtomicBool>,
    /// The producer's task once spawned; `None` inside after a stop that came first.
    task: Mutex<Option<Option<AbortHandle>>>,
}

impl<T: Send> Stop for StreamStop<T> {
    fn stop(&self, err: ServeError) -> bool {
        let task = self.task.locked().replace(None);
        if self.finished.load(Ordering::Acquire) || matches!(task, Some(None)) {
            return false;
        }
        // When the buffer is full the consumer sees the cut-off stream's own shut-down error.
        self.errors.try_send(err);
        if let Some(Some(task)) = task {
            task.abort();
        }
        true
    }
}

impl<T> StreamStop<T> {
    /// Records the producer's task; aborts it at once if the stream was stopped already.
    fn started(&self, handle: AbortHandle) {
        let mut task = self.task.locked();
        match &*task {
            Some(None) => handle.abort(),
            _ => *task = Some(Some(handle)),
        }
    }
}
