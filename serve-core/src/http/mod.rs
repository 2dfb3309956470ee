//! HTTP ingress: serve an application over HTTP.
//!
//! The application's root deployment is its *ingress*: its `call` method takes a [`Request`] and
//! returns anything that is [`IntoHttpResponse`] (`String`, [`Json<T>`], [`HttpResponse`],
//! `(StatusCode, body)`, or a `Result` whose error is an [`HttpError`] for a 4xx). A streaming
//! `call` (`impl Stream<Item = T>`, with `T` a `String`, `Vec<u8>` or `Json<U>`) answers with a
//! chunked body, flushed item by item, or Server-Sent Events when the client sends
//! `Accept: text/event-stream`.
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

pub(crate) mod ingress;
mod request;
mod response;
mod server;

pub use request::Request;
pub use response::{HttpError, HttpResponse, IntoChunk, IntoHttpResponse, Json, StatusCode};
pub use server::MAX_BODY_BYTES;

pub(crate) use server::{Ingress, Proxy, StreamingIngress, UnaryIngress};

/// Checks a route prefix before anything is deployed for it.
pub(crate) fn server_prefix_check(prefix: &str) -> Result<(), crate::ServeError> {
    server::normalize_prefix(prefix).map(drop)
}
