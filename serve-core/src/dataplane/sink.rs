//! [`StreamSink`]: where a streaming method's items go, on their way to the caller's generator.

use std::sync::Arc;

use futures::{Stream, StreamExt};

use crate::error::{BoxError, ServeError};
use crate::request::generator::GeneratorSender;

/// Where a streaming method's items go: the generated code hands the method's stream to
/// [`drive`](Self::drive) (or [`drive_fallible`](Self::drive_fallible) for `Result` items).
///
/// Items go into the request's bounded channel: a producer runs at most the channel's capacity
/// ahead of its consumer, and waits for it beyond that (flow control).
#[doc(hidden)]
pub struct StreamSink<T> {
    sender: GeneratorSender<T>,
    deployment: Arc<str>,
    method: &'static str,
}

impl<T: Send + 'static> StreamSink<T> {
    pub(crate) fn new(
        sender: GeneratorSender<T>,
        deployment: Arc<str>,
        method: &'static str,
    ) -> Self {
        Self {
            sender,
            deployment,
            method,
        }
    }

    /// Forwards an infallible stream's items until it ends or the consumer goes away.
    pub async fn drive<S>(self, stream: S)
    where
        S: Stream<Item = T>,
    {
        self.drive_fallible(stream.map(Ok::<T, std::convert::Infallible>))
            .await
    }

    /// Forwards items until the stream ends, yields an error (forwarded, then the stream ends), or
    /// the consumer goes away (the stream is dropped at once, even while it waits for its next item).
    pub async fn drive_fallible<S, E>(self, stream: S)
    where
        S: Stream<Item = Result<T, E>>,
        E: Into<BoxError>,
    {
        let mut stream = std::pin::pin!(stream);
        let tx = &self.sender.tx;
        loop {
            let item = tokio::select! {
                biased;
                _ = tx.closed() => return,
                item = stream.next() => item,
            };
            match item {
                None => break,
                Some(Ok(value)) => {
                    if tx.send(Ok(value)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let err = ServeError::user(e.into()).at(&self.deployment, self.method);
                    let _ = tx.send(Err(err)).await;
                    break;
                }
            }
        }
        self.sender.finish();
    }
}
