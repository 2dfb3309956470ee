//! Serve compositions of models: split an application into *deployments* (preprocessing, models,
//! business logic), scale and configure each on its own, and let them call each other through
//! typed handles — Ray Serve's composition model, native.
//!
//! ```
//! use serve_core::prelude::*;
//!
//! #[deployment]
//! pub struct Adder { increment: i32 }
//!
//! #[deployment]
//! impl Adder {
//!     pub fn new(increment: i32) -> Self { Self { increment } }
//!     pub fn call(&self, val: i32) -> i32 { val + self.increment }
//! }
//!
//! #[deployment]
//! pub struct Multiplier { multiple: i32 }
//!
//! #[deployment]
//! impl Multiplier {
//!     pub fn new(multiple: i32) -> Self { Self { multiple } }
//!     pub fn call(&self, val: i32) -> i32 { val * self.multiple }
//! }
//!
//! #[deployment(num_replicas = 2)]
//! pub struct Ingress { adder: DeploymentHandle<Adder>, multiplier: DeploymentHandle<Multiplier> }
//!
//! #[deployment]
//! impl Ingress {
//!     pub fn new(adder: DeploymentHandle<Adder>, multiplier: DeploymentHandle<Multiplier>) -> Self {
//!         Self { adder, multiplier }
//!     }
//!     pub async fn call(&self, input: i32) -> Result<i32, ServeError> {
//!         let added: DeploymentResponse<i32> = self.adder.remote(input);
//!         // Pass the response straight on: the runtime resolves it before calling the multiplier.
//!         self.multiplier.remote(added).await
//!     }
//! }
//!
//! let app = Ingress::bind(Adder::bind(1), Multiplier::bind(2));
//! let handle: DeploymentHandle<Ingress> = serve_core::run(app)?;
//! assert_eq!(handle.remote(5).result()?, 12); // (5 + 1) * 2
//! # Ok::<(), ServeError>(())
//! ```
//!
//! How the crate is built: layers that import one way only, lowest first — `util` (locks,
//! seconds, panics, blocking) → `metrics` (the Prometheus series each part holds) → `error` → [`config`] (deployment options and their one
//! validation, config files) → `request` (responses, arguments, request context) → `dataplane`
//! (the request path: replicas, picker, queue, slots, invocation) → `api` ([`Deployment`],
//! [`DeploymentHandle`]) → `control` (applications, controller, autoscaling, health, updates,
//! placement, status) → [`http`] (the proxy) → `serve` ([`Serve`], tasks) → `cli`. A test
//! (`serve-core/tests/layers.rs`) fails on an import against that order or an import cycle.
//! `ARCHITECTURE.md` at the repository's root walks one request through these files.

#![warn(missing_docs)]

extern crate self as serve_core;

mod api;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
pub mod config;
mod control;
mod dataplane;
mod error;
pub mod guide;
pub mod http;
mod metrics;
mod request;
mod serve;
mod transport;
mod util;

pub use api::deployment::Deployment;
pub use api::handle::{DeploymentHandle, HandleOptions};
#[cfg(feature = "cli")]
pub use cli::{AppsBuilder, apps, main};
#[cfg(feature = "cluster")]
pub use cluster::build_id;
pub use config::{
    AutoscalingConfig, DEFAULT_MAX_ONGOING_REQUESTS, DeploymentConfig, LoggingConfig,
    ReplicaResources,
};
pub use control::application::Application;
pub use control::autoscaling;
pub use control::bind::Bindable;
pub use control::resources::{self, InstanceResources};
pub use control::status::{ApplicationStatus, DeploymentStatus, ReplicaStatus};
pub use control::update::DeploymentUpdate;
pub use dataplane::batch::{BatchError, Batching, batching};
pub use error::{BoxError, ErrorKind, RemoteError, ServeError};
pub use metrics::snapshot::{DeploymentMetrics, LatencyHistogram, MetricsSnapshot, RouteMetrics};
pub use request::arg_stream::{ArgItem, ArgStream, IntoArgStream};
pub use request::args::{Arg, IntoArg};
pub use request::context::{ReplicaContext, replica_context};
pub use request::generator::{BlockingIter, DeploymentResponseGenerator};
pub use request::multiplex::get_multiplexed_model_id;
pub use request::response::{DeploymentResponse, ObjectRef, ObjectRefFuture};
#[cfg(feature = "cluster")]
pub use serve::cluster::Worker;
pub use serve::{DEFAULT_APP_NAME, RunOptions, Serve, ServeBuilder, run, shutdown};
pub use serve_macros::{
    batch, delete, deployment, get, ingress, multiplexed, patch, post, put, remote,
};

/// Re-exported for writing streaming methods: `stream!` / `try_stream!` build an
/// `impl Stream` from a block with `yield`.
pub use async_stream::{stream, try_stream};
/// Re-exported so users need no `futures` dependency of their own for stream types and combinators.
pub use futures;

/// Everything a deployment author needs: `use serve_core::prelude::*;`.
pub mod prelude {
    /// Stream arguments: a parameter that takes a stream.
    pub use crate::ArgStream;
    pub use crate::{
        Application, DeploymentConfig, DeploymentHandle, DeploymentResponse,
        DeploymentResponseGenerator, ErrorKind, IntoArg, ObjectRef, Serve, ServeError, batch,
        deployment, multiplexed, remote, stream, try_stream,
    };
    /// `#[ingress]` and its route attributes.
    pub use crate::{delete, get, ingress, patch, post, put};
    pub use futures::{Stream, StreamExt};
}

/// What the macros' expansions use. Not public API: names and signatures change without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::api::deployment::{
        Deployment, DeploymentDefaults, Hook, assert_deployment_type, hook_async, hook_sync,
        user_config,
    };
    pub use crate::api::deployment::{HandleStubs, unknown_method};
    pub use crate::api::handle::{CallOne, CallStream};
    pub use crate::config::{AutoscalingConfig, DeploymentConfig};
    pub use crate::control::application::{AppRef, Application, BuildContext, Constructor};
    pub use crate::control::bind::Bindable;
    pub use crate::dataplane::batch::{
        BatchFn, BatchFuture, BatchSpec, call_batched, declare_batch,
    };
    pub use crate::dataplane::router::CallTarget;
    pub use crate::dataplane::router::RequestRouter;
    pub use crate::dataplane::sink::StreamSink;
    pub use crate::error::{BoxError, ServeError};
    pub use crate::request::arg_stream::IntoArgStream;
    pub use crate::request::args::{Arg, ArgList, IntoArg, assert_arg};
    pub use crate::request::codec::{CallWire, Wire, WireFallback, WireViaSerde};
    pub use crate::request::encoded::{EncodedResponse, EncodedUnary};
    pub use crate::request::generator::DeploymentResponseGenerator;
    /// A stream's channel sizes, for tests that bound what a pipeline of streams holds.
    pub use crate::request::generator::{BATCH_MAX, STREAM_BUFFER};
    pub use crate::request::multiplex::{multiplexed_async, multiplexed_sync};
    pub use crate::request::response::{DeploymentResponse, ObjectRef};
    pub use crate::serve::task::{spawn_task_async, spawn_task_sync};
    /// Items a stream crossing processes may have in flight (cluster mode), for the same tests.
    #[cfg(feature = "cluster")]
    pub use crate::transport::nats::STREAM_WINDOW;
    pub use serde_json::Value as JsonValue;
    pub use std::sync::Arc;
    // `#[ingress]`: the routing `call` and its route table (see `http::ingress`).
    pub use crate::http::ingress::{
        Dispatch, OpenApi, Operation, ParamType, ParseFallback, ParseViaFromStr, ParseViaSerde,
        PathParams, QueryParams, RespondAsIs, RespondFallback, RespondServerError, Responder,
        Route, RouteTable, Segment, json_body, reject, run_sync, unknown_route,
    };
    pub use crate::http::{HttpResponse, Request, StreamPart, StreamingResponse};

    /// The outcome of a method that returns a plain value.
    #[inline]
    pub fn infallible<T>(value: T) -> Result<T, BoxError> {
        Ok(value)
    }

    /// The outcome of a method that returns `Result<T, E>`.
    #[inline]
    pub fn fallible<T, E: Into<BoxError>>(result: Result<T, E>) -> Result<T, BoxError> {
        result.map_err(Into::into)
    }
}

/// The README's Rust snippets run as doc tests, so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
