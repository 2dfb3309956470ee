//! The request plane over NATS: [`NatsPlane`] calls replicas on other nodes and serves this
//! node's replicas to them.
//!
//! # Subjects
//!
//! Everything lives under the cluster's prefix `serve.<cluster>` (so two clusters share a NATS
//! server without crossing, and per-user permissions can fence a cluster in):
//!
//! | subject | who listens | what |
//! |---|---|---|
//! | `<prefix>.call.<node>` | the node | calls to its replicas ([`frame::CallHead`] names the replica), and pulls of the stream arguments it lent |
//! | `<prefix>.ctl.<node>` | the node | cancel a request or a pull, give a stream credit |
//! | `<prefix>.inbox.<node>.<call>` | the calling node | the replies of one call (or the items of one pull) |
//!
//! A caller picks the replica itself (power of two choices over every replica, local and remote),
//! so a call names its replica and goes to that replica's node; NATS does no load balancing.
//!
//! # Flow control and cancellation
//!
//! A streaming call carries a window: the producer sends that many items, then waits until the
//! consumer gives credit, which it does each time it has *taken* half a window. A slow consumer
//! therefore holds at most a window of items in flight plus its own stream buffer; nothing
//! buffers without bound. Dropping a call's future (or stream) before its end sends a cancel to
//! the serving node, which cancels the request and everything it started.
//!
//! # Stream arguments
//!
//! A call's stream argument (`ArgStream`) stays with the caller. Encoding the call's arguments
//! *lends* it to the caller's plane, under an id, and the argument tuple carries the caller's node
//! and that id (`request::crossing`). The serving node decodes that into an `ArgStream` which, when
//! the method first reads it, *pulls* the stream: a call with [`Op::Pull`] naming the id, sent to
//! the caller's call subject. The caller answers it exactly as a node answers a streaming call,
//! window and credit included, with the lent stream's items: the pumping caller sends at most
//! [`STREAM_WINDOW`] items ahead of what the method took. The method dropping its `ArgStream`
//! (or returning) cancels the pull like any call, which drops the stream on the caller; the
//! caller's call ending (answered, cancelled, failed) *releases* what it lent, which drops a
//! stream not pulled yet and stops the pumping of one that was.
//!
//! # Failure
//!
//! A call whose node is declared dead (see the cluster layer's heartbeats) fails with
//! [`ErrorKind::Unavailable`] naming the replica and node ([`NatsPlane::fail_node`]); so does a
//! call to a subject nobody listens on (NATS answers "no responders"). Requests a dead caller
//! started on this node are cancelled. A pull is a call like any other: the stream arguments a
//! dead caller lent end with `Unavailable` where they are read, and the streams this node lent to
//! calls on a dead node are dropped.
//!
//! [`ErrorKind::Unavailable`]: crate::ErrorKind::Unavailable

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_nats::{Client, Subject};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;

use super::frame::{self, CallHead, Control, Op, Reply};
use super::{Args, OnReply, Outcome, RemoteEndpoint, RemoteStream, Served};
use crate::error::{ErrorKind, ServeError};
use crate::request::crossing::{
    self, EncodedItems, LentStreams, PulledItems, Source, StreamPlane, StreamRef,
};
use crate::request::encoded::{EncodedResponse, EncodedUnary};
use crate::request::response::Cancel;
use crate::util::sync::{Lock, ReadWrite};

/// Subscribes `client` to `subject`; a failure names the subject.
pub(crate) async fn subscribe(
    client: &Client,
    subject: String,
) -> Result<async_nats::Subscriber, ServeError> {
    client
        .subscribe(subject.clone())
        .await
        .map_err(|e| ServeError::unavailable(format!("cannot subscribe to `{subject}`: {e}")))
}

/// Hands each message of `messages` to `handle`, with `node`, for as long as `node` lives; the
/// task ends when it is dropped or the subscription ends.
pub(crate) fn listen<N, F, Fut>(
    node: &std::sync::Weak<N>,
    mut messages: async_nats::Subscriber,
    handle: F,
) -> tokio::task::JoinHandle<()>
where
    N: Send + Sync + 'static,
    F: Fn(Arc<N>, async_nats::Message) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let node = node.clone();
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let Some(node) = node.upgrade() else { return };
            handle(node, message).await;
        }
    })
}

/// A lifecycle hook's outcome as a unary reply (an empty value when it passed).
fn hook_reply(hook: BoxFuture<'static, Result<(), ServeError>>) -> EncodedResponse {
    EncodedResponse::Unary(EncodedUnary::from_future(Box::pin(async move {
        hook.await.map(|()| Vec::new())
    })))
}

/// The reply a unary request will send (none if it was cancelled).
type UnaryReply = std::pin::Pin<Box<dyn Future<Output = Option<(Subject, Bytes)>> + Send>>;

/// Items a streaming call's producer, or the caller pumping a stream argument, may send ahead of
/// the consumer's credit. The consumer gives credit each time it has taken half of it.
pub const STREAM_WINDOW: u32 = 64;

/// The request plane of one node.
#[derive(Clone)]
pub(crate) struct NatsPlane {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// `serve.<cluster>`.
    prefix: Arc<str>,
    /// This node's id.
    node: Arc<str>,
    /// `<prefix>.inbox.<node>`.
    inbox: Arc<str>,
    next_call: AtomicU64,
    /// Calls this node made that wait for replies, by call id.
    calls: Mutex<HashMap<u64, Waiter>>,
    /// This node's replicas that other nodes may call, by key.
    served: RwLock<HashMap<u64, Arc<dyn Served>>>,
    /// Requests this node runs for other nodes, by reply subject; the pumping of a stream
    /// argument another node pulled is one.
    running: Mutex<HashMap<Arc<str>, Running>>,
    next_lent: AtomicU64,
    /// Stream arguments of this node's calls to other nodes, by id, until their calls end.
    lent: Mutex<HashMap<u64, LentStream>>,
    /// The subscription loops, stopped by [`NatsPlane::shutdown`].
    loops: Mutex<Vec<AbortHandle>>,
    /// Told when the last request run for another node ends.
    idle: tokio::sync::Notify,
    /// Messages to publish, in order, by one task: a call is sent without a task of its own,
    /// and a cancel always follows its call.
    outbox: mpsc::UnboundedSender<Outgoing>,
}

/// A message for the outbox.
struct Outgoing {
    subject: Subject,
    reply: Option<Subject>,
    payload: Bytes,
}

/// A call waiting for its replies.
struct Waiter {
    /// The node it went to.
    node: Arc<str>,
    /// "replica Adder#1 on node worker-a", for errors.
    target: Arc<str>,
    tx: WaiterTx,
    /// The stream arguments it lent: released when it is dropped, when the call ends.
    _lent: LentStreams,
}

/// A stream argument this node lent to one of its calls.
struct LentStream {
    source: Arc<dyn Source>,
    /// The reply subject of its pumping, once a node pulled it.
    pump: Option<Arc<str>>,
}

enum WaiterTx {
    Unary(OnReply),
    Stream(mpsc::UnboundedSender<Result<Reply, ServeError>>),
}

/// A request run for another node.
struct Running {
    /// Dropping it (taking the entry out) cancels the request.
    _cancel: oneshot::Sender<()>,
    /// A stream's credit: items it may still send.
    credit: Option<Arc<Semaphore>>,
}

impl NatsPlane {
    /// The plane of node `node` in the cluster `prefix` (`serve.<cluster>`): listens for replies
    /// to its own calls, and for calls and control messages to its replicas.
    pub(crate) async fn start(
        client: Client,
        prefix: &str,
        node: &str,
    ) -> Result<Self, ServeError> {
        let (outbox, mut outgoing) = mpsc::unbounded_channel::<Outgoing>();
        let inner = Arc::new(Inner {
            outbox,
            client,
            prefix: prefix.into(),
            node: node.into(),
            inbox: format!("{prefix}.inbox.{node}").into(),
            next_call: AtomicU64::new(1),
            calls: Mutex::default(),
            served: RwLock::default(),
            running: Mutex::default(),
            next_lent: AtomicU64::new(1),
            lent: Mutex::default(),
            loops: Mutex::default(),
            idle: tokio::sync::Notify::new(),
        });
        let client = &inner.client;
        let mut replies = subscribe(client, format!("{}.*", inner.inbox)).await?;
        let mut calls = subscribe(client, format!("{prefix}.call.{node}")).await?;
        let mut controls = subscribe(client, format!("{prefix}.ctl.{node}")).await?;
        let loops = [
            tokio::spawn({
                let client = inner.client.clone();
                async move {
                    while let Some(message) = outgoing.recv().await {
                        let sent = match message.reply {
                            Some(reply) => {
                                client
                                    .publish_with_reply(message.subject, reply, message.payload)
                                    .await
                            }
                            None => client.publish(message.subject, message.payload).await,
                        };
                        if let Err(e) = sent {
                            tracing::debug!("a message could not be sent: {e}");
                        }
                    }
                }
            }),
            tokio::spawn({
                let inner = inner.clone();
                async move {
                    while let Some(message) = replies.next().await {
                        inner.deliver(message);
                    }
                }
            }),
            tokio::spawn({
                let inner = inner.clone();
                async move {
                    // Unary requests are awaited here, not each in a task of its own: one task
                    // fewer to start and wake per request.
                    let mut unary = FuturesUnordered::new();
                    loop {
                        tokio::select! {
                            message = calls.next() => match message {
                                Some(message) => {
                                    if let Some(request) = inner.clone().handle_call(message) {
                                        unary.push(request);
                                    }
                                }
                                None => return,
                            },
                            Some(done) = unary.next(), if !unary.is_empty() => {
                                if let Some((reply, payload)) = done
                                    && let Err(e) = inner.client.publish(reply, payload).await
                                {
                                    tracing::debug!("a reply could not be sent: {e}");
                                }
                            }
                        }
                    }
                }
            }),
            tokio::spawn({
                let inner = inner.clone();
                async move {
                    while let Some(message) = controls.next().await {
                        inner.handle_control(&message.payload);
                    }
                }
            }),
        ];
        *inner.loops.locked() = loops.iter().map(|l| l.abort_handle()).collect();
        Ok(Self { inner })
    }

    /// Stops listening; calls still waiting fail.
    pub(crate) fn shutdown(&self) {
        for l in self.inner.loops.locked().drain(..) {
            l.abort();
        }
        let waiting: Vec<_> = self.inner.calls.locked().drain().collect();
        for (_, waiter) in waiting {
            waiter.fail(ServeError::shut_down());
        }
        let running = std::mem::take(&mut *self.inner.running.locked());
        let lent = std::mem::take(&mut *self.inner.lent.locked());
        drop((running, lent));
    }

    /// The endpoint of replica `replica` on node `node` (`target` describes it in errors).
    pub(crate) fn endpoint(
        &self,
        node: &str,
        replica: u64,
        target: String,
    ) -> Arc<dyn RemoteEndpoint> {
        let prefix = &self.inner.prefix;
        Arc::new(NatsEndpoint {
            inner: self.inner.clone(),
            node: node.into(),
            target: target.into(),
            call_subject: Subject::from(format!("{prefix}.call.{node}")),
            control_subject: Subject::from(format!("{prefix}.ctl.{node}")),
            replica,
        })
    }

    /// Serves `served` to other nodes under `key`.
    pub(crate) fn serve(&self, key: u64, served: Arc<dyn Served>) {
        self.inner.served.write_locked().insert(key, served);
    }

    /// Stops serving `key`; calls to it from now on fail.
    pub(crate) fn unserve(&self, key: u64) {
        let served = self.inner.served.write_locked().remove(&key);
        drop(served);
    }

    /// Node `node` is gone: the calls waiting for it fail with `why` (naming each call's replica
    /// and node), and the requests it started here are cancelled.
    pub(crate) fn fail_node(&self, node: &str, why: &str) {
        let failed: Vec<_> = self
            .inner
            .calls
            .locked()
            .extract_if(|_, waiter| &*waiter.node == node)
            .map(|(_, waiter)| waiter)
            .collect();
        for waiter in failed {
            let err = ServeError::unavailable(format!("{} {why}", waiter.target));
            waiter.fail(err);
        }
        let callers_inbox = format!("{}.inbox.{node}.", self.inner.prefix);
        let cancelled: Vec<_> = self
            .inner
            .running
            .locked()
            .extract_if(|reply, _| reply.starts_with(&callers_inbox))
            .collect();
        drop(cancelled);
        if self.running() == 0 {
            self.inner.idle.notify_waiters();
        }
    }

    /// Fails every call waiting for a reply (the connection to NATS dropped: replies may be
    /// lost); each error names its replica and node, then `why`.
    pub(crate) fn fail_all(&self, why: &str) {
        let failed: Vec<_> = self.inner.calls.locked().drain().collect();
        for (_, waiter) in failed {
            let err = ServeError::unavailable(format!("{} {why}", waiter.target));
            waiter.fail(err);
        }
    }

    /// Requests this node runs for other nodes.
    pub(crate) fn running(&self) -> usize {
        self.inner.running.locked().len()
    }

    /// Resolves once this node runs no request for another node.
    pub(crate) async fn idle(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.running() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Waiter {
    fn fail(self, err: ServeError) {
        match self.tx {
            WaiterTx::Unary(on_reply) => on_reply(Outcome::Replied(Err(err), None)),
            WaiterTx::Stream(tx) => {
                let _ = tx.send(Err(err));
            }
        }
    }
}

impl Inner {
    fn reply_subject(&self, call: u64) -> Subject {
        Subject::from(format!("{}.{call}", self.inbox))
    }

    fn register(&self, node: &Arc<str>, target: &Arc<str>, tx: WaiterTx, lent: LentStreams) -> u64 {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let waiter = Waiter {
            node: node.clone(),
            target: target.clone(),
            tx,
            _lent: lent,
        };
        self.calls.locked().insert(id, waiter);
        id
    }

    /// A reply to one of this node's calls.
    fn deliver(&self, message: async_nats::Message) {
        let Some(id) = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            tracing::warn!(subject = %message.subject, "dropped a reply to no call of this node");
            return;
        };
        let no_responders = message.status == Some(async_nats::StatusCode::NO_RESPONDERS);
        let mut calls = self.calls.locked();
        let Some(waiter) = calls.get(&id) else {
            // The call was cancelled or failed already.
            return;
        };
        let reply = if no_responders {
            Err(ServeError::unavailable(format!(
                "{}: its node does not listen (it is gone, or has not joined)",
                waiter.target
            )))
        } else {
            frame::parse_reply(message.payload)
        };
        if let Err(e) = &reply
            && e.kind() == ErrorKind::Wire
        {
            tracing::warn!(subject = %message.subject, "dropped a malformed reply: {e}");
        }
        match &waiter.tx {
            WaiterTx::Stream(tx) => {
                let last = !matches!(reply, Ok(Reply::Item(_)));
                let _ = tx.send(reply);
                if last {
                    // Dropped outside the lock: it releases what the call lent.
                    let waiter = calls.remove(&id);
                    drop(calls);
                    drop(waiter);
                }
            }
            WaiterTx::Unary(_) => {
                let waiter = calls.remove(&id);
                drop(calls);
                let Some(Waiter {
                    tx: WaiterTx::Unary(on_reply),
                    ..
                }) = waiter
                else {
                    return;
                };
                let outcome = match reply {
                    Err(e) if no_responders => Outcome::Undelivered(e),
                    Ok(Reply::Value(bytes, models)) => Outcome::Replied(Ok(bytes), models),
                    Ok(Reply::Error(e)) | Err(e) => Outcome::Replied(Err(e), None),
                    Ok(Reply::Item(_) | Reply::End) => Outcome::Replied(
                        Err(ServeError::new(ErrorKind::Wire)
                            .with_message("a stream's reply to a unary call")),
                        None,
                    ),
                };
                on_reply(outcome);
            }
        }
    }

    /// A call from another node to one of this node's replicas. A unary one comes back as the
    /// future of its reply, for the call loop to await.
    fn handle_call(self: Arc<Self>, message: async_nats::Message) -> Option<UnaryReply> {
        let Some(reply) = message.reply else {
            tracing::warn!(subject = %message.subject, "dropped a call without a reply subject");
            return None;
        };
        let (head, args) = match frame::parse_call(&message.payload) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(subject = %message.subject, "dropped a malformed call: {e}");
                self.publish(reply, frame::error(&e));
                return None;
            }
        };
        if head.op == Op::Pull {
            self.pump(reply, head.replica, head.window.max(1));
            return None;
        }
        let served = self.served.read_locked().get(&head.replica).cloned();
        let Some(served) = served else {
            let gone = ServeError::unavailable(format!(
                "replica {} is not on node {} (it was stopped, or the node restarted)",
                head.replica, self.node
            ));
            self.publish(reply, frame::error(&gone));
            return None;
        };
        let response = match head.op {
            // The stream arguments it decodes are pulled from the caller through this plane.
            Op::Call => crossing::pulling(self.clone(), || {
                served.call_encoded(head.method, args, head.model_id)
            }),
            Op::CheckHealth => Ok(hook_reply(served.check_health())),
            Op::Reconfigure => match serde_json::from_slice(args) {
                Ok(config) => Ok(hook_reply(served.reconfigure(config))),
                Err(e) => Err(ServeError::new(ErrorKind::Wire)
                    .with_message(format!("a malformed user_config: {e}"))),
            },
            Op::Pull => return None, // answered above
        };
        match response {
            Err(e) => {
                self.publish(reply, frame::error(&e));
                None
            }
            Ok(EncodedResponse::Unary(future)) => {
                // A multiplexed call's reply says which models the replica holds then.
                let models = head.model_id.map(|_| served);
                Some(self.unary_reply(reply, future, models))
            }
            Ok(EncodedResponse::Stream(stream)) => {
                self.run_stream(reply, stream, head.window.max(1));
                None
            }
        }
    }

    fn publish(&self, subject: Subject, payload: Bytes) {
        self.send(subject, None, payload);
    }

    /// Queues a message for the outbox.
    fn send(&self, subject: Subject, reply: Option<Subject>, payload: Bytes) {
        let _ = self.outbox.send(Outgoing {
            subject,
            reply,
            payload,
        });
    }

    /// Records a request run for another node; dropping its entry cancels it.
    fn track(&self, reply: &Subject, credit: Option<Arc<Semaphore>>) -> oneshot::Receiver<()> {
        let (cancel, cancelled) = oneshot::channel();
        let running = Running {
            _cancel: cancel,
            credit,
        };
        self.running.locked().insert(reply.as_str().into(), running);
        cancelled
    }

    fn untrack(&self, reply: &Subject) {
        self.end(reply.as_str());
    }

    /// Forgets (and so cancels, if it still runs) the request answering to `reply`.
    fn end(&self, reply: &str) {
        let (running, now_idle) = {
            let mut all = self.running.locked();
            let running = all.remove(reply);
            (running, all.is_empty())
        };
        drop(running);
        if now_idle {
            self.idle.notify_waiters();
        }
    }

    /// The reply of a unary request: its result, or nothing if the caller cancelled it first.
    /// With `models`, a value's reply carries the model ids that replica holds.
    fn unary_reply(
        self: Arc<Self>,
        reply: Subject,
        mut future: EncodedUnary,
        models: Option<Arc<dyn Served>>,
    ) -> UnaryReply {
        let mut cancelled = self.track(&reply, None);
        Box::pin(async move {
            tokio::select! {
                result = &mut future => {
                    self.untrack(&reply);
                    let models = models.and_then(|served| served.model_ids());
                    let payload = match (result, models) {
                        (Ok(bytes), None) => frame::value(&bytes),
                        (Ok(bytes), Some(models)) => frame::value_with_models(&bytes, &models),
                        (Err(e), _) => frame::error(&e),
                    };
                    Some((reply, payload))
                }
                _ = &mut cancelled => {
                    future.cancel();
                    None
                }
            }
        })
    }

    /// Another node pulls stream argument `id`, which one of this node's calls lent: pumps its
    /// items to `reply` like a streaming call's, `window` ahead of the puller's credit.
    fn pump(self: Arc<Self>, reply: Subject, id: u64, window: u32) {
        let items = self.lent.locked().get_mut(&id).and_then(|lent| {
            let items = lent.source.take()?;
            lent.pump = Some(reply.as_str().into());
            Some(items)
        });
        let Some(items) = items else {
            let gone = ServeError::new(ErrorKind::Cancelled).with_message(format!(
                "stream argument {id} of node `{}` is gone: the call that lent it ended, or \
                 it was pulled already",
                self.node
            ));
            self.publish(reply, frame::error(&gone));
            return;
        };
        self.clone().run_stream(reply.clone(), items, window);
        // Its call ended while the pumping started: stop it.
        if !self.lent.locked().contains_key(&id) {
            self.end(reply.as_str());
        }
    }

    /// The items of stream argument `at.id` of node `at.node`, pulled once first polled: a
    /// call to that node, answered like a streaming call.
    fn pull_items(self: Arc<Self>, at: StreamRef<'_>) -> PulledItems {
        let node: Arc<str> = Arc::from(&*at.node);
        let id = at.id;
        let target: Arc<str> = format!("stream argument {id} of node `{node}`").into();
        Box::pin(async_stream::stream! {
            if !valid_node(&node) {
                yield Err(ServeError::new(ErrorKind::Wire)
                    .with_message(format!("{target}: not a node id")));
                return;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let call = self.register(&node, &target, WaiterTx::Stream(tx), LentStreams::NONE);
            let mut pending = Pending {
                inner: self.clone(),
                id: call,
                control: Subject::from(format!("{}.ctl.{node}", self.prefix)),
                reply: None,
                done: false,
            };
            let head = CallHead {
                replica: id,
                method: "",
                window: STREAM_WINDOW,
                op: Op::Pull,
                model_id: None,
            };
            match frame::call(&head, &[]) {
                Ok(payload) => {
                    let reply = self.reply_subject(call);
                    pending.reply = Some(reply.clone());
                    let subject = Subject::from(format!("{}.call.{node}", self.prefix));
                    self.send(subject, Some(reply), payload);
                }
                Err(e) => {
                    pending.done = true;
                    yield Err(e);
                    return;
                }
            }
            for await item in receive(pending, rx, target) {
                yield item;
            }
        })
    }

    fn run_stream(self: Arc<Self>, reply: Subject, mut stream: EncodedItems, window: u32) {
        let credit = Arc::new(Semaphore::new(window as usize));
        let mut cancelled = self.track(&reply, Some(credit.clone()));
        tokio::spawn(async move {
            let produce = async {
                loop {
                    match credit.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => return,
                    }
                    let (payload, last) = match stream.next().await {
                        Some(Ok(item)) => (frame::item(&item), false),
                        Some(Err(e)) => (frame::error(&e), true),
                        None => (frame::end(), true),
                    };
                    if self.client.publish(reply.clone(), payload).await.is_err() || last {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = produce => self.untrack(&reply),
                _ = &mut cancelled => {}
            }
            // Dropping the stream stops its producer.
        });
    }

    /// The calls that lent `ids` ended: drops the streams not pulled, stops the pumping of the
    /// others.
    fn release_lent(&self, ids: &[u64]) {
        let released: Vec<LentStream> = {
            let mut lent = self.lent.locked();
            ids.iter().filter_map(|id| lent.remove(id)).collect()
        };
        for lent in released {
            if let Some(reply) = &lent.pump {
                self.end(reply);
            }
        }
    }

    fn handle_control(&self, payload: &[u8]) {
        match frame::parse_control(payload) {
            Ok(Control::Cancel { reply }) => self.end(reply),
            Ok(Control::Credit { reply, items }) => {
                if let Some(credit) = self
                    .running
                    .locked()
                    .get(reply)
                    .and_then(|r| r.credit.as_ref())
                {
                    credit.add_permits(items as usize);
                }
            }
            Err(e) => tracing::warn!("dropped a malformed control message: {e}"),
        }
    }
}

/// The plane as stream arguments see it: the caller lends, the serving node pulls.
impl StreamPlane for Inner {
    fn node(&self) -> &Arc<str> {
        &self.node
    }

    fn lend(&self, source: Arc<dyn Source>) -> u64 {
        let id = self.next_lent.fetch_add(1, Ordering::Relaxed);
        let lent = LentStream { source, pump: None };
        self.lent.locked().insert(id, lent);
        id
    }

    fn release(&self, ids: &[u64]) {
        self.release_lent(ids);
    }

    fn pull(self: Arc<Self>, at: StreamRef<'_>) -> PulledItems {
        self.pull_items(at)
    }
}

/// Whether `node` (from another node's bytes) can be part of a subject: not empty, no token
/// separator, no wildcard, no white space.
fn valid_node(node: &str) -> bool {
    !node.is_empty()
        && !node
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
}

/// A unary call sent: cancelling it forgets it here and cancels it on the far side, unless its
/// reply came first.
struct Sent {
    inner: Option<Arc<Inner>>,
    id: u64,
    control: Subject,
    reply: Subject,
}

impl Sent {
    /// A call that never went out.
    fn nothing() -> Self {
        Self {
            inner: None,
            id: 0,
            control: Subject::from_static(""),
            reply: Subject::from_static(""),
        }
    }
}

impl Cancel for Sent {
    fn cancel(&self) {
        let Some(inner) = &self.inner else { return };
        let waiter = inner.calls.locked().remove(&self.id);
        if waiter.is_some() {
            // Still unanswered: the far side stops it (and what it started).
            drop(waiter);
            let cancel = frame::control(&Control::Cancel {
                reply: self.reply.as_str(),
            });
            inner.publish(self.control.clone(), cancel);
        }
    }

    fn adopt(&self, child: Arc<dyn Cancel>) {
        // Nothing runs here on its behalf; a child is cancelled with it at once if it is done.
        drop(child);
    }
}

/// One replica on another node.
struct NatsEndpoint {
    inner: Arc<Inner>,
    node: Arc<str>,
    target: Arc<str>,
    call_subject: Subject,
    control_subject: Subject,
    replica: u64,
}

/// A call sent and not answered: dropping it forgets the call and, if the request may still run
/// on the far side, cancels it there.
struct Pending {
    inner: Arc<Inner>,
    id: u64,
    control: Subject,
    /// Set once the call went out.
    reply: Option<Subject>,
    /// Set once the far side is done with it.
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let waiter = self.inner.calls.locked().remove(&self.id);
        drop(waiter);
        if let (Some(reply), false) = (&self.reply, self.done) {
            let cancel = frame::control(&Control::Cancel {
                reply: reply.as_str(),
            });
            self.inner.publish(self.control.clone(), cancel);
        }
    }
}

impl NatsEndpoint {
    fn send(
        &self,
        method: &str,
        args: &[u8],
        model_id: Option<&str>,
        window: u32,
        pending: &mut Pending,
    ) -> Result<impl Future<Output = Result<(), ServeError>> + Send + 'static, ServeError> {
        let head = CallHead {
            replica: self.replica,
            method,
            window,
            op: Op::Call,
            model_id,
        };
        let payload = frame::call(&head, args)?;
        let reply = self.inner.reply_subject(pending.id);
        pending.reply = Some(reply.clone());
        let client = self.inner.client.clone();
        let subject = self.call_subject.clone();
        let target = self.target.clone();
        Ok(async move {
            client
                .publish_with_reply(subject, reply, payload)
                .await
                .map_err(|e| {
                    ServeError::unavailable(format!("{target}: the call could not be sent: {e}"))
                })
        })
    }

    fn pending(&self, id: u64) -> Pending {
        Pending {
            inner: self.inner.clone(),
            id,
            control: self.control_subject.clone(),
            reply: None,
            done: false,
        }
    }
}

impl RemoteEndpoint for NatsEndpoint {
    fn encode(&self, encode: &dyn Fn() -> Result<Vec<u8>, ServeError>) -> Result<Args, ServeError> {
        let plane: Arc<dyn StreamPlane> = self.inner.clone();
        let (bytes, lent) = crossing::lending(&plane, encode);
        Ok(Args {
            bytes: bytes?,
            lent,
        })
    }

    fn call(
        &self,
        method: &'static str,
        args: Args,
        model_id: Option<&str>,
        on_reply: OnReply,
    ) -> Arc<dyn Cancel> {
        self.send_unary(Op::Call, method, args, model_id, on_reply)
    }

    fn check_health(&self) -> BoxFuture<'static, Result<(), ServeError>> {
        self.hook(Op::CheckHealth, Vec::new())
    }

    fn reconfigure(
        &self,
        config: &serde_json::Value,
    ) -> BoxFuture<'static, Result<(), ServeError>> {
        self.hook(Op::Reconfigure, config.to_string().into_bytes())
    }

    fn call_stream(
        &self,
        method: &'static str,
        args: Args,
        model_id: Option<&str>,
    ) -> RemoteStream {
        self.stream(method, args, model_id)
    }

    fn node(&self) -> &str {
        &self.node
    }
}

impl NatsEndpoint {
    /// Runs a lifecycle hook of the replica on its node; resolves when it answered (a dropped
    /// future cancels nothing: hooks are short and their caller bounds them with a timeout).
    fn hook(&self, op: Op, args: Vec<u8>) -> BoxFuture<'static, Result<(), ServeError>> {
        let (tx, rx) = oneshot::channel();
        let args = Args {
            bytes: args,
            lent: LentStreams::NONE,
        };
        let sent = self.send_unary(
            op,
            "",
            args,
            None,
            Box::new(move |outcome: Outcome| {
                let _ = tx.send(outcome.into_result().map(drop));
            }),
        );
        let target = self.target.clone();
        Box::pin(async move {
            let outcome = rx
                .await
                .unwrap_or_else(|_| Err(ServeError::unavailable(format!("{target}: no answer"))));
            drop(sent);
            outcome
        })
    }

    fn send_unary(
        &self,
        op: Op,
        method: &str,
        args: Args,
        model_id: Option<&str>,
        on_reply: OnReply,
    ) -> Arc<dyn Cancel> {
        let head = CallHead {
            replica: self.replica,
            method,
            window: 0,
            op,
            model_id,
        };
        let payload = match frame::call(&head, &args.bytes) {
            Ok(payload) => payload,
            Err(e) => {
                on_reply(Outcome::Replied(Err(e), None));
                return Arc::new(Sent::nothing());
            }
        };
        let id = self.inner.register(
            &self.node,
            &self.target,
            WaiterTx::Unary(on_reply),
            args.lent,
        );
        let reply = self.inner.reply_subject(id);
        self.inner
            .send(self.call_subject.clone(), Some(reply.clone()), payload);
        Arc::new(Sent {
            inner: Some(self.inner.clone()),
            id,
            control: self.control_subject.clone(),
            reply,
        })
    }

    fn stream(&self, method: &'static str, args: Args, model_id: Option<&str>) -> RemoteStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self
            .inner
            .register(&self.node, &self.target, WaiterTx::Stream(tx), args.lent);
        let mut pending = self.pending(id);
        let sent = self.send(method, &args.bytes, model_id, STREAM_WINDOW, &mut pending);
        let target = self.target.clone();
        Box::pin(async_stream::stream! {
            let mut pending = pending;
            if let Err(e) = async { sent?.await }.await {
                pending.done = true;
                yield Err(e);
                return;
            }
            for await item in receive(pending, rx, target) {
                yield item;
            }
        })
    }
}

/// The items of a streaming call (or a pull) that went out as `pending`, as its replies arrive
/// on `rx`: gives the producer credit each time half a window was taken, and ends with the
/// stream's end or its error. Dropped before that, `pending` cancels it on the far side.
fn receive(
    pending: Pending,
    mut rx: mpsc::UnboundedReceiver<Result<Reply, ServeError>>,
    target: Arc<str>,
) -> impl futures::Stream<Item = Result<Bytes, ServeError>> + Send + 'static {
    async_stream::stream! {
        // Moves the whole guard in (a closure would capture only the fields it uses).
        let mut pending = pending;
        let mut taken = 0;
        loop {
            match rx.recv().await {
                Some(Ok(Reply::Item(item))) => {
                    yield Ok(item);
                    taken += 1;
                    if taken == STREAM_WINDOW / 2 {
                        taken = 0;
                        let credit = frame::control(&Control::Credit {
                            reply: pending.reply.as_ref().map_or("", |r| r.as_str()),
                            items: STREAM_WINDOW / 2,
                        });
                        let client = pending.inner.client.clone();
                        let _ = client.publish(pending.control.clone(), credit).await;
                    }
                }
                Some(Ok(Reply::End)) => {
                    pending.done = true;
                    break;
                }
                Some(Ok(Reply::Error(e)) | Err(e)) => {
                    pending.done = true;
                    yield Err(e);
                    break;
                }
                Some(Ok(Reply::Value(..))) => {
                    pending.done = true;
                    yield Err(ServeError::new(ErrorKind::Wire)
                        .with_message(format!("{target}: a unary reply to a streaming call")));
                    break;
                }
                None => {
                    pending.done = true;
                    yield Err(ServeError::unavailable(format!("{target}: the call was dropped")));
                    break;
                }
            }
        }
    }
}
