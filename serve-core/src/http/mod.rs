//! HTTP ingress: serve an application over HTTP.
//!
//! The application's root deployment is its *ingress*: its `call` method takes a [`Request`] and
//! returns anything that is [`IntoHttpResponse`] (`String`, [`Json<T>`], [`HttpResponse`],
//! `(StatusCode, body)`, or a `Result` whose error is an [`HttpError`] for a 4xx). A streaming
//! `call` (`impl Stream<Item = T>`, with `T` a `String`, `Vec<u8>` or `Json<U>`) answers with a
//! chunked body, flushed item by item, or Server-Sent Events when the client sends
//! `Accept: text/event-stream`. The response head goes out with the first item. To set its
//! status, headers and media type, return a [`StreamingResponse`] of the stream instead.
//!
//! A failed `call` answers with a status that says why: an [`HttpError`] anywhere in the error's
//! source chain keeps its status; a failure of the ingress request itself is the proxy's to answer
//! (its request timeout `408`, its full queue or a stopping instance `503`); a downstream call's
//! [`ServeError`](crate::ServeError) that `call` passes on (with `?`, or as the source of its own
//! error) answers by its kind: `503` for back pressure (`Request dropped due to backpressure`) or
//! a stopping instance, `504 Gateway Timeout` for a per-call `.timeout(..)` that ran out. Anything
//! else is a `500` with the error's one line. A stream that fails before its first item gets the
//! same statuses; after it, a chunked body is cut off and Server-Sent Events end with an `error`
//! event.
//!
//! The request timeout ([`Serve::set_http_request_timeout`]) covers the whole request, streaming
//! or not: a request that has not answered by then (for a stream: not yielded its first item) is
//! cancelled with everything it started and answered `408 Request Timeout`; a stream that has is
//! dropped, which stops its producer, and its body ends as on an error mid-stream (an `error`
//! event saying the request timed out, for Server-Sent Events).
//!
//! [`Serve::set_http_request_timeout`]: crate::Serve::set_http_request_timeout
//!
//! For an API of several routes, put `#[ingress]` on the impl block instead of `#[deployment]`:
//! methods with `#[get("/users/{id}")]`, `#[post("/users")]`, ... take typed path, query and
//! `Json<T>` body arguments, and `GET /openapi.json` describes them (see [`ingress`](crate::ingress)).
//!
//! ```
//! use serve_core::http::{HttpError, Request};
//! use serve_core::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Greeting { name: String }
//!
//! #[deployment]
//! #[derive(Default)]
//! pub struct Hello;
//!
//! #[deployment]
//! impl Hello {
//!     pub fn call(&self, req: Request) -> Result<String, HttpError> {
//!         let greeting: Greeting = req.json()?; // 400 / 422 on a bad body
//!         Ok(format!("Hello {}", greeting.name))
//!     }
//! }
//!
//! let serve = Serve::start()?;
//! let addr = serve.start_http("127.0.0.1:0")?; // port 0: any free port
//! serve.run_http(Hello::bind(), "/")?;
//! println!("listening on http://{addr}");
//! serve.shutdown();
//! # Ok::<(), ServeError>(())
//! ```

mod dashboard;
pub(crate) mod ingress;
mod request;
mod response;
mod server;
mod streaming;

pub use request::Request;
pub use response::{HttpError, HttpResponse, IntoChunk, IntoHttpResponse, Json, StatusCode};
pub use server::{MAX_BODY_BYTES, MULTIPLEXED_MODEL_ID_HEADER};
pub use streaming::{IntoStreamPart, ResponseHead, StreamPart, StreamingResponse};

pub(crate) use server::{Ingress, Proxy, StreamingIngress, UnaryIngress};

/// A route prefix as the proxy mounts it (leading `/`, no trailing one); checks it before
/// anything is deployed for it.
pub(crate) fn normalized_prefix(prefix: &str) -> Result<String, crate::error::ServeError> {
    server::normalize_prefix(prefix)
}
