//! A streamed HTTP response with its own status, headers and media type: [`StreamingResponse`],
//! Ray's `StreamingResponse(gen, status_code=.., media_type=.., headers=..)`.
//!
//! The head travels in the stream itself, as its first item ([`StreamPart::Head`]), so it
//! reaches the proxy the way the items do, also from an ingress replica in another process
//! (the items of a streaming call cross as they are: the head is one more of them).

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::response::{IntoChunk, StatusCode};

/// What a streaming ingress's `call` may return to set the response's status, headers and media
/// type: the stream of items, and the head that goes out before the first of them.
///
/// ```
/// use serve_core::http::{HttpError, Request, StatusCode, StreamingResponse};
/// use serve_core::prelude::*;
///
/// #[deployment]
/// #[derive(Default)]
/// pub struct Lines;
///
/// #[deployment]
/// impl Lines {
///     pub fn call(&self, req: Request)
///         -> StreamingResponse<impl Stream<Item = Result<String, HttpError>> + Send + use<>> {
///         StreamingResponse::new(try_stream! {
///             let n: usize = req.query("n").and_then(|n| n.parse().ok())
///                 .ok_or_else(|| HttpError::bad_request("`n` is a number"))?;
///             for i in 0..n {
///                 yield format!("line {i}\n");
///             }
///         })
///         .status(StatusCode::CREATED)
///         .media_type("text/plain; charset=utf-8")
///         .header("x-lines", "counted")
///     }
/// }
/// ```
///
/// `#[deployment]` recognises the return type `StreamingResponse<impl Stream<Item = T>>` (or of
/// `Result<T, E>` items): the method streams like any other, and its handle's items are
/// [`StreamPart<T>`]: first the head, then the items. Serve it with
/// [`run_http_streaming`](crate::Serve::run_http_streaming).
///
/// What is not set keeps the default of a plain streaming `call`: status 200, and
/// `application/octet-stream` (or Server-Sent Events when the client accepts
/// `text/event-stream`). With a media type of your own the items go out as they are, never
/// wrapped as Server-Sent Events: a stream that sets `text/event-stream` formats its events
/// itself. An error before the first item still answers with the error's status, not this one.
#[must_use = "a StreamingResponse does nothing unless returned from a streaming method"]
pub struct StreamingResponse<S> {
    stream: S,
    head: ResponseHead,
}

impl<S> StreamingResponse<S> {
    /// A `200` response with the default media type, streaming `stream`'s items.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            head: ResponseHead::default(),
        }
    }

    /// Sets the status (`201`, `206`, ..): Ray's `status_code`.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.head.status = status;
        self
    }

    /// Sets the media type (`content-type`): Ray's `media_type`, e.g. `text/plain; charset=utf-8`
    /// or `application/x-ndjson`.
    pub fn media_type(self, media_type: impl Into<String>) -> Self {
        self.header("content-type", media_type)
    }

    /// Adds a header (names are case-insensitive; a second `content-type` or `cache-control`
    /// replaces the first). A name or value HTTP does not allow fails the request with a `500`
    /// naming it, before anything is sent.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        let name = name.to_ascii_lowercase();
        if name == "content-type" || name == "cache-control" {
            self.head.headers.retain(|(n, _)| *n != name);
        }
        self.head.headers.push((name, value.into()));
        self
    }

    /// The head this response starts with.
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// The head, then the items (for the expansion of an infallible streaming method).
    #[doc(hidden)]
    pub fn __parts(self) -> impl Stream<Item = StreamPart<S::Item>>
    where
        S: Stream,
    {
        futures::stream::once(std::future::ready(StreamPart::Head(self.head)))
            .chain(self.stream.map(StreamPart::Item))
    }

    /// The head, then the items or the error (for a method whose items are `Result<T, E>`).
    #[doc(hidden)]
    pub fn __fallible_parts<T, E>(self) -> impl Stream<Item = Result<StreamPart<T>, E>>
    where
        S: Stream<Item = Result<T, E>>,
    {
        futures::stream::once(std::future::ready(Ok(StreamPart::Head(self.head))))
            .chain(self.stream.map(|item| item.map(StreamPart::Item)))
    }
}

/// The status and headers a [`StreamingResponse`] starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    status: StatusCode,
    headers: Vec<(String, String)>,
}

impl Default for ResponseHead {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
        }
    }
}

impl ResponseHead {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers set, names in lower case.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The media type, if one was set.
    pub fn media_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The value of header `name` (lower case), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One item of a method that returns a [`StreamingResponse`], as its handle's callers get it:
/// the head first, then the items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamPart<T> {
    /// The response's status and headers: the first item.
    Head(ResponseHead),
    /// An item of the stream.
    Item(T),
}

impl<T> StreamPart<T> {
    /// The item, `None` for the head.
    pub fn into_item(self) -> Option<T> {
        match self {
            Self::Item(item) => Some(item),
            Self::Head(_) => None,
        }
    }

    /// The head, `None` for an item.
    pub fn head(&self) -> Option<&ResponseHead> {
        match self {
            Self::Head(head) => Some(head),
            Self::Item(_) => None,
        }
    }
}

/// One item of a streaming ingress, as the proxy takes it: an [`IntoChunk`] value (`String`,
/// `Vec<u8>`, `Json<T>`), or a [`StreamPart`] of one (the items of a method that returns a
/// [`StreamingResponse`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be streamed over HTTP",
    note = "a streaming ingress method yields `String`, `Vec<u8>` or `Json<T>` items, or returns a `StreamingResponse` of them"
)]
pub trait IntoStreamPart: Send + 'static {
    /// The item as the proxy sends it: a head, or a chunk of the body.
    #[doc(hidden)]
    fn into_stream_part(self) -> StreamPart<Vec<u8>>;
}

impl<T: IntoChunk + Send + 'static> IntoStreamPart for T {
    fn into_stream_part(self) -> StreamPart<Vec<u8>> {
        StreamPart::Item(self.into_chunk())
    }
}

impl<T: IntoChunk + Send + 'static> IntoStreamPart for StreamPart<T> {
    fn into_stream_part(self) -> StreamPart<Vec<u8>> {
        match self {
            Self::Head(head) => StreamPart::Head(head),
            Self::Item(item) => StreamPart::Item(item.into_chunk()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_comes_first_then_the_items() {
        let response = StreamingResponse::new(futures::stream::iter(["a".to_owned()]))
            .status(StatusCode::CREATED)
            .media_type("text/plain")
            .header("X-Model", "m1")
            .media_type("text/plain; charset=utf-8");
        let parts: Vec<_> = futures::executor::block_on(response.__parts().collect());
        let head = parts[0].head().expect("the head first");
        assert_eq!(head.status(), StatusCode::CREATED);
        assert_eq!(
            head.headers(),
            [
                ("x-model".to_owned(), "m1".to_owned()),
                (
                    "content-type".to_owned(),
                    "text/plain; charset=utf-8".to_owned()
                )
            ],
            "names in lower case, the last media type wins"
        );
        assert_eq!(parts[1], StreamPart::Item("a".to_owned()));
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn a_fallible_stream_keeps_its_error_after_the_head() {
        let items = futures::stream::iter([Ok::<_, String>(1), Err("boom".to_owned())]);
        let parts: Vec<_> =
            futures::executor::block_on(StreamingResponse::new(items).__fallible_parts().collect());
        assert!(matches!(&parts[0], Ok(StreamPart::Head(h)) if h.status() == StatusCode::OK));
        assert_eq!(parts[1], Ok(StreamPart::Item(1)));
        assert_eq!(parts[2], Err("boom".to_owned()));
    }

    #[test]
    fn chunks_and_parts_become_stream_parts() {
        assert_eq!(
            "x".to_owned().into_stream_part(),
            StreamPart::Item(b"x".to_vec())
        );
        let head = StreamPart::<String>::Head(ResponseHead::default());
        assert_eq!(
            head.into_stream_part(),
            StreamPart::Head(ResponseHead::default())
        );
    }
}
