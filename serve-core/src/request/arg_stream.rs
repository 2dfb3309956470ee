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
//!
//! To a replica in another process the stream is lent instead ([`super::crossing`]): an
//! `ArgStream` is serde, and encodes (only while the request plane encodes a call's arguments) as
//! a descriptor of the stream, which stays with the caller; the serving node decodes it into an
//! `ArgStream` that pulls the items over the request plane. Until a node pulls it, the lent stream
//! is shared with the `ArgStream` that was encoded, so a call that reached no node and is sent
//! again (to a replica here, or elsewhere) still has it.

use std::cell::Cell;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::codec;
use super::crossing::{self, EncodedItems, Source, StreamRef};
use crate::error::{ErrorKind, ServeError};
use crate::util::sync::Lock;

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
/// `#[remote]` task's parameter.
///
/// In cluster mode the method may run in another process: the stream then stays with the caller,
/// and the method's node pulls its items over the request plane as the method reads them, a
/// bounded window ahead (see the guide's cluster chapter). An `ArgStream` is `Serialize` and
/// `Deserialize` for that alone: it encodes only as the argument of such a call, and encoding it
/// anywhere else is an error.
#[must_use = "streams do nothing unless polled; dropping this stops the upstream"]
pub struct ArgStream<T> {
    /// A `Cell`, so that encoding (`Serialize` takes `&self`) can lend the stream to the request
    /// plane. Reading takes `&mut self`, which reaches it without a check.
    state: Cell<State<T>>,
    /// Set after the last item (an error, or the end): the upstream is not polled again.
    ended: bool,
}

/// A boxed stream of an `ArgStream`'s items.
type Items<T> = Pin<Box<dyn Stream<Item = Result<T, ServeError>> + Send>>;

enum State<T> {
    /// The stream, in this process.
    Here(Items<T>),
    /// Lent to the request plane, for a call to a replica in another process.
    Lent(Arc<Shared<T>>),
    /// Only while the state is being replaced.
    Moving,
}

impl<T> ArgStream<T> {
    /// An `ArgStream` of any stream a stub accepts (to call a method directly, or in a test).
    pub fn new(stream: impl IntoArgStream<T>) -> Self {
        stream.into_arg_stream()
    }

    fn here(items: Items<T>) -> Self {
        ArgStream {
            state: Cell::new(State::Here(items)),
            ended: false,
        }
    }
}

impl<T> Stream for ArgStream<T> {
    type Item = Result<T, ServeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let state = self.state.get_mut();
        let item = match state {
            State::Here(items) => std::task::ready!(items.as_mut().poll_next(cx)),
            // Lent for a call that never reached its node, and now read here: take it back.
            State::Lent(shared) => {
                let taken_back = shared.0.locked().take();
                match taken_back {
                    Some(mut items) => {
                        let item = items.as_mut().poll_next(cx);
                        *state = State::Here(items);
                        std::task::ready!(item)
                    }
                    None => Some(Err(ServeError::new(ErrorKind::Runtime)
                        .with_message("this stream argument was sent to another process"))),
                }
            }
            State::Moving => None,
        };
        if !matches!(item, Some(Ok(_))) {
            self.ended = true;
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ended {
            return (0, Some(0));
        }
        let state = self.state.replace(State::Moving);
        let upper = match &state {
            State::Here(items) => items.size_hint().1,
            State::Lent(_) | State::Moving => None,
        };
        self.state.set(state);
        (0, upper)
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
        ArgStream::here(Box::pin(self.map(ArgItem::into_item)))
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

/// A stream argument lent to the request plane: shared by the `ArgStream` that was encoded and
/// the plane, until a node pulls it (or the `ArgStream` is read here after all).
struct Shared<T>(Mutex<Option<Items<T>>>);

impl<T: Serialize + Send + 'static> Source for Shared<T> {
    fn take(&self) -> Option<EncodedItems> {
        let items = self.0.locked().take()?;
        Some(Box::pin(
            items.map(|item| item.and_then(|value| codec::encode(&value))),
        ))
    }
}

impl<T: Serialize + Send + 'static> ArgStream<T> {
    /// The stream as a source to lend (this `ArgStream` then holds it lent).
    fn share(&self) -> Arc<dyn Source> {
        let shared = match self.state.replace(State::Moving) {
            State::Here(items) => Arc::new(Shared(Mutex::new(Some(items)))),
            State::Lent(shared) => shared,
            // Read to its end already (`ended`): nothing more will come.
            State::Moving => Arc::new(Shared(Mutex::new(None))),
        };
        self.state.set(State::Lent(shared.clone()));
        shared
    }
}

/// Encodes as the descriptor of the stream, which is lent to the request plane: only while the
/// plane encodes the arguments of a call to a replica in another process.
impl<T: Serialize + Send + 'static> Serialize for ArgStream<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.ended {
            return Err(S::Error::custom(
                "this stream argument was read to its end: it cannot be sent",
            ));
        }
        match crossing::lend(|| self.share()) {
            Some(at) => at.serialize(serializer),
            None => Err(S::Error::custom(
                "an `ArgStream` is encoded only as the argument of a call to a replica in \
                 another process",
            )),
        }
    }
}

/// Decodes a descriptor into a stream of the items pulled from the node that lent it: only while
/// the request plane decodes the arguments of a call from another process.
impl<'de, T: DeserializeOwned + Send + 'static> Deserialize<'de> for ArgStream<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let at = StreamRef::deserialize(deserializer)?;
        let items = crossing::pull(at).ok_or_else(|| {
            D::Error::custom(
                "an `ArgStream` is decoded only as the argument of a call from another process",
            )
        })?;
        Ok(ArgStream::here(Box::pin(items.map(|item| {
            item.and_then(|bytes| codec::decode::<T>(&bytes))
        }))))
    }
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
    fn outside_a_call_to_another_process_an_arg_stream_does_not_encode() {
        let stream = ArgStream::<u8>::new(futures::stream::iter([1u8]));
        assert_eq!(
            codec::encode(&(1u8, &stream)).unwrap_err().kind(),
            ErrorKind::Wire
        );
        // A format that keeps serde's messages shows why.
        let err = serde_json::to_string(&stream).unwrap_err();
        assert!(
            err.to_string()
                .contains("encoded only as the argument of a call to a replica in another"),
            "{err}"
        );
        let err = serde_json::from_str::<ArgStream<u8>>(r#"{"node":"head","id":1}"#).unwrap_err();
        assert!(
            err.to_string().contains("decoded only as the argument"),
            "{err}"
        );
        let bytes = postcard::to_stdvec(&StreamRef {
            node: "head".into(),
            id: 1,
        })
        .unwrap();
        let err = codec::decode::<ArgStream<u8>>(&bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Wire);
        // Not lent: it is read here as before.
        let items: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
        assert_eq!(items.len(), 1);
    }

    /// Lends to a plane that keeps what it is lent; pulls what was lent from it.
    #[derive(Default)]
    struct Loopback {
        node: Arc<str>,
        lent: Mutex<Vec<Arc<dyn Source>>>,
    }

    impl crossing::StreamPlane for Loopback {
        fn node(&self) -> &Arc<str> {
            &self.node
        }
        fn lend(&self, source: Arc<dyn Source>) -> u64 {
            let mut lent = self.lent.lock().unwrap();
            lent.push(source);
            lent.len() as u64 - 1
        }
        fn release(&self, _: &[u64]) {}
        fn pull(self: Arc<Self>, at: StreamRef<'_>) -> crossing::PulledItems {
            let source = self.lent.lock().unwrap()[at.id as usize].clone();
            let items = source.take().expect("pulled once");
            Box::pin(items.map(|item| item.map(bytes::Bytes::from)))
        }
    }

    #[tokio::test]
    async fn an_encoded_stream_argument_decodes_into_the_same_items_errors_included() {
        let plane = Arc::new(Loopback::default());
        let dyn_plane: Arc<dyn crossing::StreamPlane> = plane.clone();
        let upstream = futures::stream::iter([Ok(1u32), Ok(2), Err(ServeError::cancelled())]);
        let args = (5u8, ArgStream::<u32>::new(upstream));
        let (bytes, lent) = crossing::lending(&dyn_plane, || codec::encode(&args));
        let bytes = bytes.unwrap();
        assert_eq!(lent.len(), 1);
        let (n, stream): (u8, ArgStream<u32>) =
            crossing::pulling(dyn_plane.clone(), || codec::decode(&bytes)).unwrap();
        assert_eq!(n, 5);
        let items: Vec<_> = stream.collect().await;
        assert_eq!(items.len(), 3);
        assert_eq!(
            (items[0].as_ref().unwrap(), items[1].as_ref().unwrap()),
            (&1, &2)
        );
        assert_eq!(items[2].as_ref().unwrap_err().kind(), ErrorKind::Cancelled);
    }

    #[tokio::test]
    async fn a_lent_stream_not_pulled_is_read_where_it_was_lent() {
        let dyn_plane: Arc<dyn crossing::StreamPlane> = Arc::new(Loopback::default());
        let mut args = (ArgStream::<u32>::new(futures::stream::iter([1u32, 2])),);
        // Lent twice (a call sent again after it reached no node): one stream all the same.
        for _ in 0..2 {
            let (bytes, _lent) = crossing::lending(&dyn_plane, || codec::encode(&args));
            bytes.unwrap();
        }
        let items: Vec<u32> = (&mut args.0).map(Result::unwrap).collect().await;
        assert_eq!(items, [1, 2]);
    }
}
