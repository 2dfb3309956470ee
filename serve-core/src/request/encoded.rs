//! Calls by method name with encoded arguments: how a replica will serve a caller in another
//! process (cluster mode). The generated handle decodes the argument tuple, makes the ordinary
//! typed call through the deployment's own router (so queueing, slots, cancellation and the
//! request context are the same as for a local caller), and encodes what comes back.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

use super::codec::Encoder;
use super::generator::DeploymentResponseGenerator;
use super::response::DeploymentResponse;
use crate::error::ServeError;

/// The response of a call made by method name: its encoded result, or its encoded items.
#[doc(hidden)]
pub enum EncodedResponse {
    /// A unary method.
    Unary(EncodedUnary),
    /// A streaming method. Dropping the stream stops the producer.
    Stream(Pin<Box<dyn Stream<Item = Result<Vec<u8>, ServeError>> + Send>>),
}

impl EncodedResponse {
    /// The encoded result of `response`.
    pub fn unary<T: Send + 'static>(response: DeploymentResponse<T>, encode: Encoder<T>) -> Self {
        EncodedResponse::Unary(EncodedUnary(Box::new(Typed { response, encode })))
    }

    /// The encoded items of `generator`.
    pub fn stream<T: Send + 'static>(
        generator: DeploymentResponseGenerator<T>,
        encode: Encoder<T>,
    ) -> Self {
        EncodedResponse::Stream(Box::pin(
            generator.map(move |item| item.and_then(|value| encode(&value))),
        ))
    }
}

/// The encoded result of a unary call: a future, which can also cancel the call.
pub struct EncodedUnary(Box<dyn ErasedUnary>);

impl EncodedUnary {
    /// The encoded result of `future` (which has nothing to cancel but itself).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn from_future(
        future: Pin<Box<dyn Future<Output = Result<Vec<u8>, ServeError>> + Send>>,
    ) -> Self {
        EncodedUnary(Box::new(Plain(future)))
    }

    /// Cancels the call, and the calls it started.
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

impl Future for EncodedUnary {
    type Output = Result<Vec<u8>, ServeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_encoded(cx)
    }
}

trait ErasedUnary: Send {
    fn poll_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<u8>, ServeError>>;
    fn cancel(&self);
}

struct Typed<T> {
    response: DeploymentResponse<T>,
    encode: Encoder<T>,
}

impl<T: Send + 'static> ErasedUnary for Typed<T> {
    fn poll_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<u8>, ServeError>> {
        Pin::new(&mut self.response)
            .poll(cx)
            .map(|result| result.and_then(|value| (self.encode)(&value)))
    }

    fn cancel(&self) {
        self.response.cancel();
    }
}

/// A plain future as an [`EncodedUnary`].
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
struct Plain(Pin<Box<dyn Future<Output = Result<Vec<u8>, ServeError>> + Send>>);

impl ErasedUnary for Plain {
    fn poll_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<u8>, ServeError>> {
        self.0.as_mut().poll(cx)
    }

    fn cancel(&self) {}
}
