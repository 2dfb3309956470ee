//! The caller's side of a streaming request: [`DeploymentResponseGenerator`], and the sending
//! half the replica's stream sink writes into.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use super::response::check_may_block;
use crate::error::ServeError;
use crate::util::blocking;

/// Capacity of a streaming request's channel: how far a producer may run ahead of its consumer.
pub(crate) const STREAM_BUFFER: usize = 16;

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
    rx: mpsc::Receiver<Result<T, ServeError>>,
    finished: Arc<AtomicBool>,
    ended: bool,
}

pub(crate) struct GeneratorSender<T> {
    pub(crate) tx: mpsc::Sender<Result<T, ServeError>>,
    finished: Arc<AtomicBool>,
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
            finished,
            ended: false,
        },
    )
}

impl<T> DeploymentResponseGenerator<T> {
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, ServeError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.ended = true;
                if self.finished.load(Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    // The producer went away without finishing: its task was dropped.
                    Poll::Ready(Some(Err(ServeError::shut_down())))
                }
            }
            other => other,
        }
    }
}

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
