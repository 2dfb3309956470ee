//! The request layer: what one request is, on the caller's side and on the replica's.
//!
//! * [`response`]: a unary request's result cell, written once by the replica (a `Completer`) and
//!   read by every [`DeploymentResponse`](response::DeploymentResponse) and
//!   [`ObjectRef`](response::ObjectRef) of it; cancelling it cancels what it started;
//! * [`generator`]: a streaming request's bounded channel and the caller's
//!   [`DeploymentResponseGenerator`](generator::DeploymentResponseGenerator);
//! * [`arg_stream`]: stream arguments, [`ArgStream`](arg_stream::ArgStream) (streams into
//!   streams), and [`crossing`]: how one crosses to a replica in another process (lent by the
//!   caller, pulled by the serving node);
//! * [`args`]: a call's arguments, values or responses still to resolve (chaining);
//! * [`encoded`]: a call by method name with encoded arguments, as a replica serves a caller in
//!   another process;
//! * [`multiplex`]: a replica's cache of multiplexed models, and the model ids it holds;
//! * [`context`]: the request and replica a piece of code runs for (request ids, recursive
//!   cancellation, `replica_context()`).
//!
//! Nothing here knows how a request finds a replica: that is the data plane, one layer up.

pub(crate) mod arg_stream;
pub(crate) mod args;
pub(crate) mod codec;
pub(crate) mod context;
pub(crate) mod crossing;
pub(crate) mod encoded;
pub(crate) mod generator;
pub(crate) mod multiplex;
pub(crate) mod response;
