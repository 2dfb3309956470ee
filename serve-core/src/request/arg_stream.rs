//! Stream arguments: a method parameter of type [`ArgStream<T>`] takes a stream of `T` (streams
//! into streams).
//!
//! At the call site the generated stub takes such a parameter as `impl IntoArgStream<T>`: another
//! call's [`DeploymentResponseGenerator<T>`](crate::DeploymentResponseGenerator), another
//! `ArgStream<T>`, or any `Stream<Item = T>` (or `Stream<Item = Result<T, ServeError>>`) that is
//! `Send + 'static`. The stream is handed to the method as it is, boxed once: no task, no
//! channel and no buffer of its own sits between the two, so an upstream generator's bounded
//! channel is the only buffer between two stages, and back pressure goes end to end (a stage reads
//! its input only as fast as its own consumer takes its output).
//!
//! A separate trait rather than more `IntoArg` impls: `IntoArg<T>` is implemented for every `T`,
//! so an impl for "any stream" would overlap it. The macro sees the `ArgStream<T>` parameter and
//! asks for `IntoArgStream<T>` instead; the stream then travels as an ordinary value argument.
//!
//! Errors are items: an upstream error (the generator's `Err`, or an `Err` of a stream of
//! `Result`s) is yielded as `Err(ServeError)` unchanged (it names the stage that failed), and it
//! is the last item. Dropping an `ArgStream` drops the upstream stream, which for a generator stops
//! its producer and cancels the calls it made.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::{ErrorKind, ServeError};

/// A stream of `T` passed as an argument: the type of a method parameter that takes a stream.
///
/// ```
/// use serve_core::prelude::*;
///
/// #[deployment]
/// #[derive(Default)]
/// pub struct Summer;
///
/// #[deployment]
/// impl Summer {
///     /// Adds up a stream of numbers.
///     pub async fn sum(&self, mut numbers: ArgStream<u64>) -> Result<u64, ServeError> {
///         let mut total = 0;
///         while let Some(n) = numbers.next().await {
///             total += n?; // an upstream error ends the input: pass it on
///         }
///         Ok(total)
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), ServeError> {
/// let summer = serve_core::run(Summer::bind())?;
/// let numbers = futures::stream::iter(1..=100u64);
/// assert_eq!(summer.sum.remote(numbers).await?, 5050);
/// # Ok(()) }
/// ```
///
/// It is a [`Stream`] of `Result<T, ServeError>`: an `Err` item is an upstream failure (the
/// upstream generator's error as it is, naming the deployment and method that failed), and it is
/// always the last item. Items arrive as the upstream produces them; the upstream waits when the
/// method does not read (back pressure), and stops when the method drops the stream. A method
/// that takes an `ArgStream` is an `async fn` or returns a stream (a synchronous unary method
/// could only block on it, so the macro refuses it), and it cannot be a constructor's or a
/// `#[remote]` task's parameter. A call with a stream argument runs on a replica in this process:
/// in cluster mode it fails with an [`ErrorKind::Wire`] error on a replica in another process.
#[must_use = "streams do nothing unless polled; dropping this stops the upstream"]
pub struct ArgStream<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, ServeError>> + Send>>,
    /// Set after the last item (an error, or the end): the upstream is not polled again.
    ended: bool,
}

impl<T> ArgStream<T> {
    /// An `ArgStream` of any stream a stub accepts (to call a method directly, or in a test).
    pub fn new(stream: impl IntoArgStream<T>) -> Self {
        stream.into_arg_stream()
    }
}

impl<T> Stream for ArgStream<T> {
    type Item = Result<T, ServeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let item = std::task::ready!(self.inner.as_mut().poll_next(cx));
        if !matches!(item, Some(Ok(_))) {
            self.ended = true;
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ended {
            (0, Some(0))
        } else {
            (0, self.inner.size_hint().1)
        }
    }
}

// The boxed stream is pinned on the heap; the struct itself can move.
impl<T> Unpin for ArgStream<T> {}

impl<T> fmt::Debug for ArgStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgStream")
            .field("ended", &self.ended)
            .finish()
    }
}

/// What a stub accepts for an [`ArgStream<T>`] parameter: any `Stream + Send + 'static` whose
/// items are `T`, or `Result<T, ServeError>` (a [`DeploymentResponseGenerator<T>`], another
/// `ArgStream<T>`).
///
/// [`DeploymentResponseGenerator<T>`]: crate::DeploymentResponseGenerator
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed where this call expects a stream of `{T}`",
    label = "expected a `DeploymentResponseGenerator<{T}>` or a `Stream<Item = {T}> + Send + 'static`",
    note = "an `ArgStream<{T}>` parameter takes another call's `DeploymentResponseGenerator<{T}>`, or any `futures::Stream` of `{T}` (or of `Result<{T}, ServeError>`) that is `Send + 'static`",
    note = "a single value is a stream of one: `futures::stream::iter([value])`"
)]
pub trait IntoArgStream<T> {
    /// Converts `self` into the argument.
    fn into_arg_stream(self) -> ArgStream<T>;
}

impl<T: 'static, S> IntoArgStream<T> for S
where
    S: Stream + Send + 'static,
    S::Item: ArgItem<T>,
{
    fn into_arg_stream(self) -> ArgStream<T> {
        use futures::StreamExt;
        ArgStream {
            inner: Box::pin(self.map(ArgItem::into_item)),
            ended: false,
        }
    }
}

/// An item of a stream passed as an [`ArgStream<T>`]: a `T`, or a `Result<T, ServeError>`.
///
/// The two impls cannot overlap (`T` would have to be `Result<T, ServeError>`), so the compiler
/// picks the one that fits the stream's item type.
#[diagnostic::on_unimplemented(
    message = "a stream of `{Self}` cannot be passed where this call expects a stream of `{T}`",
    label = "its items must be `{T}` or `Result<{T}, ServeError>`"
)]
pub trait ArgItem<T> {
    /// The item as an [`ArgStream`] yields it.
    fn into_item(self) -> Result<T, ServeError>;
}

impl<T> ArgItem<T> for T {
    #[inline]
    fn into_item(self) -> Result<T, ServeError> {
        Ok(self)
    }
}

impl<T> ArgItem<T> for Result<T, ServeError> {
    #[inline]
    fn into_item(self) -> Result<T, ServeError> {
        self
    }
}

/// The error of a call with a stream argument whose replica is in another process.
fn cannot_cross() -> ServeError {
    ServeError::new(ErrorKind::Wire).with_message(
        "stream arguments (`ArgStream`) cannot cross to a replica in another process yet; \
         call it on a replica in this process, or collect the stream and pass a `Vec`",
    )
}

/// The argument encoder of a method with a stream argument: it cannot cross processes (yet).
#[doc(hidden)]
pub fn stream_args_encoder<V>(_: &V) -> Result<Vec<u8>, ServeError> {
    Err(cannot_cross())
}

/// What a replica answers a caller in another process that calls a method with a stream argument.
#[doc(hidden)]
pub fn stream_args_cannot_cross() -> ServeError {
    cannot_cross()
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn values_and_results_are_both_accepted_and_an_error_is_the_last_item() {
        let plain: Vec<_> = ArgStream::<u8>::new(futures::stream::iter([1u8, 2]))
            .collect()
            .await;
        assert_eq!(plain.len(), 2);
        let failing = futures::stream::iter([
            Ok(1u8),
            Err(ServeError::cancelled()),
            Ok(3), // after the error: never seen
        ]);
        let items: Vec<_> = ArgStream::<u8>::new(failing).collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].as_ref().unwrap_err().kind(), ErrorKind::Cancelled);
    }

    #[test]
    fn crossing_processes_is_a_clear_wire_error() {
        let err = stream_args_encoder(&(1u8,)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Wire);
        assert!(err.to_string().contains("cannot cross"), "{err}");
    }
}
