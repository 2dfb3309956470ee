//! The caller's side of a streaming request: [`DeploymentResponseGenerator`], and the sending
//! half ([`GeneratorSender`]) that the replica's stream sink and a remote stream write into.
//!
//! # Flow control and batching
//!
//! The two sides share a bounded tokio channel of [`STREAM_BUFFER`] messages. A message holds one
//! item or a batch of up to [`BATCH_MAX`] items. [`GeneratorSender::forward`] takes whatever the
//! producer's stream has ready *without waiting* for more (it polls the stream while it returns
//! ready items, up to the cap) and sends that as one message the moment the stream has nothing
//! ready. So an item yielded alone (the first one, one after a pause) is sent at once; nothing
//! waits for a batch to fill. Items ready together go together: an iterator's, a re-streamed
//! generator's, and those that pile up when the consumer is behind: then the channel is full and
//! the producer keeps collecting ready items into its next message while it waits for room.
//! Batches cut the cost per item (one channel operation and at most one wake-up per batch).
//!
//! A producer runs at most `STREAM_BUFFER` messages ahead in the channel plus the batch it is
//! collecting: `(STREAM_BUFFER + 1) × BATCH_MAX` items (320), and the consumer holds at most
//! one received batch. It waits for the consumer beyond that.
//!
//! The consumer ([`DeploymentResponseGenerator`]) keeps the batch it received and hands its items
//! out one by one. A re-streaming method (one that yields the items of another call's generator)
//! therefore gets a whole batch of ready items at once, and forwards them as a batch in turn.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::coop;

use super::response::{Cancel, check_may_block};
use crate::error::ServeError;
use crate::util::blocking;
use crate::util::sync::Lock;

/// Capacity of a streaming request's channel, in messages (each one item or one batch). Small,
/// because a message may hold [`BATCH_MAX`] items: 16 (as before batching) was a little faster
/// but let a slow consumer's producer hold 3.4 times as many items (docs/benchmarks.md).
pub const STREAM_BUFFER: usize = 4;

/// The most items one message carries.
pub const BATCH_MAX: usize = 64;

/// One message of a stream's channel. An error is always alone: it ends the stream.
pub(crate) enum Batch<T> {
    One(Result<T, ServeError>),
    /// Two or more items, in order.
    Many(Vec<T>),
}

/// A streaming request as the handle calls its method makes see it: their parent, so that a
/// stream cut short (its consumer went away, its replica stopped it, it panicked) cancels them,
/// recursively, as a cancelled unary request cancels its calls. A stream that ends (whole, or
/// with an error item) leaves them alone, as a unary request that returns does.
///
/// It holds its calls weakly: a call that finished and that nobody awaits any more is gone, and
/// the list drops it when it next grows, so a long stream that makes many calls keeps only those
/// still running.
pub(crate) struct StreamRequest {
    /// `None` once cancelled: a call adopted later is cancelled at once.
    children: Mutex<Option<Vec<Weak<dyn Cancel>>>>,
    /// The multiplexed model id the stream was requested for.
    model_id: Option<Arc<str>>,
}

impl StreamRequest {
    /// The smallest list worth pruning.
    const PRUNE_FROM: usize = 16;

    /// A streaming request that runs (not cancelled), sent for multiplexed model `model_id`.
    pub(crate) fn new(model_id: Option<Arc<str>>) -> Self {
        Self {
            children: Mutex::new(Some(Vec::new())),
            model_id,
        }
    }
}

impl Cancel for StreamRequest {
    fn model_id(&self) -> Option<&Arc<str>> {
        self.model_id.as_ref()
    }

    fn cancel(&self) {
        let children = self.children.locked().take();
        for child in children.into_iter().flatten() {
            if let Some(child) = child.upgrade() {
                child.cancel();
            }
        }
    }

    fn adopt(&self, child: Arc<dyn Cancel>) {
        let mut children = self.children.locked();
        match &mut *children {
            Some(list) => {
                if list.len() == list.capacity() && list.len() >= Self::PRUNE_FROM {
                    list.retain(|c| c.strong_count() > 0);
                }
                list.push(Arc::downgrade(&child));
            }
            None => {
                drop(children);
                child.cancel();
            }
        }
    }
}

/// The items of a streaming handle call, as they are produced.
///
/// In async code it is a [`Stream`] of `Result<T, ServeError>` (`while let Some(item) =
/// gen.next().await`); in synchronous code iterate it (`for item in gen`), which blocks for each
/// item. An error ends the stream after the items produced before it. Dropping the generator stops
/// the producer on the replica.
///
/// A generator cannot be passed to another handle call, and a unary method's
/// [`DeploymentResponse`](crate::DeploymentResponse) is not a stream: the compiler checks both.
#[must_use = "streams do nothing unless consumed; dropping this stops the producer"]
pub struct DeploymentResponseGenerator<T> {
    rx: mpsc::Receiver<Batch<T>>,
    /// The rest of the last batch received, handed out before the channel is read again.
    buffered: std::vec::IntoIter<T>,
    finished: Arc<AtomicBool>,
    ended: bool,
    /// Messages received, for tests that check that batches form.
    #[cfg(test)]
    pub(crate) messages: usize,
}

/// The sending half of a streaming request's channel.
pub(crate) struct GeneratorSender<T> {
    tx: mpsc::Sender<Batch<T>>,
    finished: Arc<AtomicBool>,
}

/// A clone of a stream's sending half that can only end it with an error (a stop, a panic).
pub(crate) struct ErrorSender<T>(mpsc::Sender<Batch<T>>);

/// How [`GeneratorSender::forward`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// The stream ended and all its items were sent.
    Ended,
    /// The stream yielded an error: it was sent after the items before it, and the stream dropped.
    Failed,
    /// The consumer went away: the stream was dropped at once.
    Left,
}

impl<T> GeneratorSender<T> {
    /// Marks the stream as complete, so the consumer does not report a cut-off stream.
    pub(crate) fn finish(self) {
        self.finished.store(true, Ordering::Release);
    }

    /// The flag [`finish`](Self::finish) sets.
    pub(crate) fn finished_flag(&self) -> Arc<AtomicBool> {
        self.finished.clone()
    }

    /// The consumer went away (or the stream was stopped and the channel closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// A sender for the error that may end this stream from elsewhere.
    pub(crate) fn errors(&self) -> ErrorSender<T> {
        ErrorSender(self.tx.clone())
    }

    /// Sends `stream`'s items to the consumer until the stream ends, yields an error (sent after
    /// the items before it), or the consumer goes away (then the stream is dropped at once, even
    /// while it waits for its next item).
    ///
    /// Items go out in batches of what the stream has ready, as described in the [module
    /// docs](self): never waiting for more items, only for room in the channel. A panic in the
    /// stream sends the items collected before it, then carries on unwinding.
    pub(crate) async fn forward<S>(&self, stream: S) -> Forwarded
    where
        S: Stream<Item = Result<T, ServeError>>,
    {
        let mut stream = pin!(stream);
        // Ready values waiting to go out; reused from batch to batch.
        let mut staged: Vec<T> = Vec::new();
        // The error that ends the stream, sent after `staged`.
        let mut failed: Option<ServeError> = None;
        let mut ended = false;
        let mut errored = false;
        let mut panicked = None;
        // Resolves when the consumer goes away; polled only while the stream has nothing ready.
        let mut left = pin!(self.tx.closed());
        // Waits for room in the channel while it is full.
        let mut room = pin!(None);
        poll_fn(|cx| {
            loop {
                // Collect what the stream has ready, without waiting for more.
                while !ended && staged.len() < BATCH_MAX {
                    let polled = catch_unwind(AssertUnwindSafe(|| stream.as_mut().poll_next(cx)));
                    match polled {
                        Ok(Poll::Ready(Some(Ok(value)))) => staged.push(value),
                        Ok(Poll::Ready(Some(Err(e)))) => {
                            (failed, errored, ended) = (Some(e), true, true)
                        }
                        Ok(Poll::Ready(None)) => ended = true,
                        Ok(Poll::Pending) => break,
                        Err(panic) => (panicked, ended) = (Some(panic), true),
                    }
                }
                if staged.is_empty() && failed.is_none() {
                    if let Some(panic) = panicked.take() {
                        resume_unwind(panic);
                    }
                    if ended {
                        return Poll::Ready(if errored {
                            Forwarded::Failed
                        } else {
                            Forwarded::Ended
                        });
                    }
                    // The stream has nothing ready: wait for it, or for the consumer to leave.
                    ready!(left.as_mut().poll(cx));
                    return Poll::Ready(Forwarded::Left);
                }
                // Send what was collected as one message, now if there is room. Otherwise wait for
                // room; each wake-up collects what became ready in the meantime (up to the cap).
                if room.is_none() {
                    // A send that never waits still counts against the task's budget, so a
                    // stream that is always ready cannot keep its worker thread to itself.
                    let budget = ready!(coop::poll_proceed(cx));
                    match self.tx.try_reserve() {
                        Ok(permit) => {
                            permit.send(take_message(&mut staged, &mut failed));
                            budget.made_progress();
                            continue;
                        }
                        Err(TrySendError::Closed(())) => return Poll::Ready(Forwarded::Left),
                        Err(TrySendError::Full(())) => room.set(Some(self.tx.reserve())),
                    }
                }
                let reserved = ready!(
                    room.as_mut()
                        .as_pin_mut()
                        .expect("waiting for room")
                        .poll(cx)
                );
                room.set(None);
                match reserved {
                    Ok(permit) => permit.send(take_message(&mut staged, &mut failed)),
                    Err(_) => return Poll::Ready(Forwarded::Left),
                }
            }
        })
        .await
    }
}

/// The next message from what [`GeneratorSender::forward`] collected: the values, then the error.
fn take_message<T>(staged: &mut Vec<T>, failed: &mut Option<ServeError>) -> Batch<T> {
    match staged.len() {
        0 => Batch::One(Err(failed.take().expect("an error to send"))),
        1 => Batch::One(Ok(staged.pop().expect("one value"))),
        // Exactly as large as the batch; `staged` keeps its capacity for the next one.
        n => {
            let mut batch = Vec::with_capacity(n);
            batch.append(staged);
            Batch::Many(batch)
        }
    }
}

impl<T> ErrorSender<T> {
    /// Ends the stream with `err` if there is room in the channel; `false` if there was none or
    /// the consumer is gone.
    pub(crate) fn try_send(&self, err: ServeError) -> bool {
        self.0.try_send(Batch::One(Err(err))).is_ok()
    }

    /// Ends the stream with `err`, waiting for room in the channel.
    pub(crate) async fn send(&self, err: ServeError) {
        let _ = self.0.send(Batch::One(Err(err))).await;
    }
}

pub(crate) fn generator<T>() -> (GeneratorSender<T>, DeploymentResponseGenerator<T>) {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let finished = Arc::new(AtomicBool::new(false));
    (
        GeneratorSender {
            tx,
            finished: finished.clone(),
        },
        DeploymentResponseGenerator {
            rx,
            buffered: Vec::new().into_iter(),
            finished,
            ended: false,
            #[cfg(test)]
            messages: 0,
        },
    )
}

impl<T> DeploymentResponseGenerator<T> {
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, ServeError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(value) = self.buffered.next() {
            return Poll::Ready(Some(Ok(value)));
        }
        loop {
            let message = ready!(self.rx.poll_recv(cx));
            #[cfg(test)]
            {
                self.messages += usize::from(message.is_some());
            }
            return match message {
                Some(Batch::One(Ok(value))) => Poll::Ready(Some(Ok(value))),
                Some(Batch::One(Err(e))) => {
                    self.ended = true;
                    Poll::Ready(Some(Err(e)))
                }
                Some(Batch::Many(values)) => {
                    self.buffered = values.into_iter();
                    match self.buffered.next() {
                        Some(value) => Poll::Ready(Some(Ok(value))),
                        None => continue, // never sent, but harmless
                    }
                }
                None => {
                    self.ended = true;
                    if self.finished.load(Ordering::Acquire) {
                        Poll::Ready(None)
                    } else {
                        // The producer went away without finishing: its task was dropped.
                        Poll::Ready(Some(Err(ServeError::shut_down())))
                    }
                }
            };
        }
    }
}

// Nothing in a generator is pinned (its buffered items are moved out, never borrowed), so it
// stays `Unpin` whatever `T` is, as it was before it buffered items.
impl<T> Unpin for DeploymentResponseGenerator<T> {}

impl<T> Stream for DeploymentResponseGenerator<T> {
    type Item = Result<T, ServeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }
}

impl<T> std::fmt::Debug for DeploymentResponseGenerator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentResponseGenerator")
            .field("ended", &self.ended)
            .finish()
    }
}

/// Blocking iterator over a [`DeploymentResponseGenerator`], for synchronous code.
///
/// On an async runtime thread it yields one `ErrorKind::BlockingInAsync` error and ends.
pub struct BlockingIter<T> {
    generator: DeploymentResponseGenerator<T>,
}

impl<T> Iterator for BlockingIter<T> {
    type Item = Result<T, ServeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.generator.ended {
            return None;
        }
        if let Err(e) = check_may_block("iterating a DeploymentResponseGenerator") {
            self.generator.ended = true;
            return Some(Err(e));
        }
        let generator = &mut self.generator;
        let mut poll = |cx: &mut Context<'_>| generator.poll_item(cx);
        blocking::block_on_poll(&mut poll, None).flatten()
    }
}

impl<T> IntoIterator for DeploymentResponseGenerator<T> {
    type Item = Result<T, ServeError>;
    type IntoIter = BlockingIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        BlockingIter { generator: self }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A call that counts its cancellations.
    #[derive(Default)]
    struct Call(AtomicUsize);

    impl Cancel for Call {
        fn cancel(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn adopt(&self, _: Arc<dyn Cancel>) {}
    }

    #[test]
    fn cancelling_a_stream_cancels_its_running_calls_and_any_adopted_later() {
        let stream = StreamRequest::new(None);
        let running = Arc::new(Call::default());
        stream.adopt(running.clone());
        stream.cancel();
        assert_eq!(running.0.load(Ordering::SeqCst), 1);
        let later = Arc::new(Call::default());
        stream.adopt(later.clone());
        assert_eq!(later.0.load(Ordering::SeqCst), 1, "cancelled at once");
        stream.cancel();
        assert_eq!(running.0.load(Ordering::SeqCst), 1, "cancelled once");
    }

    #[test]
    fn a_long_stream_keeps_only_the_calls_still_running() {
        let stream = StreamRequest::new(None);
        let kept = Arc::new(Call::default());
        stream.adopt(kept.clone());
        for _ in 0..10_000 {
            stream.adopt(Arc::new(Call::default())); // finished and gone at once
        }
        let len = stream.children.locked().as_ref().map_or(0, Vec::len);
        assert!(len <= 2 * StreamRequest::PRUNE_FROM, "{len} entries kept");
        stream.cancel();
        assert_eq!(kept.0.load(Ordering::SeqCst), 1);
    }
}
