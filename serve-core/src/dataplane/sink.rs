//! [`StreamSink`]: where a streaming method's items go, on their way to the caller's generator.
//!
//! The sink turns the method's errors into located [`ServeError`]s and hands the stream to
//! [`GeneratorSender::forward`], which sends the items in batches of what the stream has ready
//! (see the [generator's module docs](crate::request::generator) for the flow control).

use std::sync::Arc;

use futures::{Stream, StreamExt};

use crate::error::{BoxError, ServeError};
use crate::request::context::{Processing, ReplicaInfo};
use crate::request::generator::{Forwarded, GeneratorSender};

/// Where a streaming method's items go: the generated code hands the method's stream to
/// [`drive`](Self::drive) (or [`drive_fallible`](Self::drive_fallible) for `Result` items).
///
/// Items go into the request's bounded channel in messages of what the stream has ready (an item
/// yielded alone goes alone, at once); a producer runs a bounded number of items ahead of its
/// consumer, and waits for it beyond that (flow control).
#[doc(hidden)]
pub struct StreamSink<T> {
    sender: GeneratorSender<T>,
    deployment: Arc<str>,
    method: &'static str,
    /// Times the stream on its replica: counted when the stream ends (failed if it yielded an
    /// error or its consumer left first), or as failed if it never ran to an end.
    processing: Option<Processing<Arc<ReplicaInfo>>>,
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
            processing: None,
        }
    }

    /// The same, timed on `replica` from now on.
    pub(crate) fn on_replica(mut self, replica: &Arc<ReplicaInfo>) -> Self {
        if replica.metrics.is_some() {
            self.processing = Some(Processing::start(replica.clone()));
        }
        self
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
        let (deployment, method) = (&self.deployment, self.method);
        let items =
            stream.map(|item| item.map_err(|e| ServeError::user(e.into()).at(deployment, method)));
        let forwarded = self.sender.forward(items).await;
        if let Some(processing) = self.processing {
            processing.finish(forwarded != Forwarded::Ended);
        }
        match forwarded {
            Forwarded::Ended | Forwarded::Failed => self.sender.finish(),
            Forwarded::Left => {}
        }
    }
}

#[cfg(test)]
mod tests;
