//! Streaming handle calls: the Ray Serve guide's `stream.py`.
//!
//! A method that returns `impl Stream<Item = T>` is a streaming method; its stub returns a
//! `DeploymentResponseGenerator<T>`. The type system replaces Ray's `handle.options(stream=True)`:
//! there is nothing to switch on, and a generator cannot be passed to another handle call.
//!
//! ```python
//! # File name: stream.py
//! from typing import AsyncGenerator, Generator
//!
//! from ray import serve
//! from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
//!
//!
//! @serve.deployment
//! class Streamer:
//!     def __call__(self, limit: int) -> Generator[int, None, None]:
//!         for i in range(limit):
//!             yield i
//!
//!
//! @serve.deployment
//! class Caller:
//!     def __init__(self, streamer: DeploymentHandle):
//!         self._streamer = streamer.options(
//!             # Must set `stream=True` on the handle, then the output will be a
//!             # response generator.
//!             stream=True,
//!         )
//!
//!     async def __call__(self, limit: int) -> AsyncGenerator[int, None]:
//!         # Response generator can be used in an `async for` block.
//!         r: DeploymentResponseGenerator = self._streamer.remote(limit)
//!         async for i in r:
//!             yield i
//!
//!
//! app = Caller.bind(Streamer.bind())
//!
//! handle: DeploymentHandle = serve.run(app).options(
//!     stream=True,
//! )
//!
//! # Response generator can also be used as a regular generator in a sync context.
//! r: DeploymentResponseGenerator = handle.remote(10)
//! assert list(r) == list(range(10))
//! ```
//!
//! Run it with `cargo run --example stream`; it prints `[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]`.

use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Streamer;

#[deployment]
impl Streamer {
    /// Yields `0..limit`. The stream borrows nothing from `self`, hence `use<>`.
    pub fn call(&self, limit: u32) -> impl Stream<Item = u32> + Send + use<> {
        futures::stream::iter(0..limit)
    }
}

#[deployment]
pub struct Caller {
    streamer: DeploymentHandle<Streamer>,
}

#[deployment]
impl Caller {
    pub fn new(streamer: DeploymentHandle<Streamer>) -> Self {
        Self { streamer }
    }

    /// Re-streams the streamer's items. Each item arrives as a `Result<u32, ServeError>`; `?` in a
    /// `try_stream!` ends this stream with the error, and the caller receives it as an item.
    pub fn call(&self, limit: u32) -> impl Stream<Item = Result<u32, ServeError>> + Send + '_ {
        try_stream! {
            // A generator is a `futures::Stream`: the `async for` of Python.
            let mut items: DeploymentResponseGenerator<u32> = self.streamer.remote(limit);
            while let Some(i) = items.next().await {
                yield i?;
            }
        }
    }
}

fn main() -> Result<(), ServeError> {
    let app = Caller::bind(Streamer::bind());
    let handle: DeploymentHandle<Caller> = serve_core::run(app)?;

    // A generator can also be used as a regular (blocking) iterator in synchronous code.
    let r: DeploymentResponseGenerator<u32> = handle.remote(10);
    let items: Vec<u32> = r.into_iter().collect::<Result<_, _>>()?;
    assert_eq!(items, (0..10).collect::<Vec<_>>());
    println!("{items:?}");

    serve_core::shutdown();
    Ok(())
}
