//! The request plane: how a call reaches a replica in another process, behind one interface.
//!
//! The data plane (one layer up) sees a remote replica only as a [`RemoteEndpoint`]: send a method
//! name and its encoded argument tuple, get the encoded result (or a stream of encoded items)
//! back; drop the future (or the stream) to cancel the request on the far side. The far side sees
//! what it serves only as [`Served`]: a call by method name with encoded arguments, which the
//! generated handle of each deployment answers (`DeploymentHandle::call_encoded`).
//!
//! A stream argument crosses the other way round: the caller's plane lends the stream while it
//! encodes the arguments ([`RemoteEndpoint::encode`]), and the serving node's plane pulls its items
//! from the caller as the method reads them (`request::crossing`).
//!
//! Today one implementation carries both: NATS ([`nats`], behind the `cluster` feature), which
//! also carries discovery and liveness. A direct data plane between nodes (TCP, as NVIDIA Dynamo
//! moved to for latency) is a second implementation of these two traits; handles, routers and
//! the control plane do not change.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;

use crate::error::ServeError;
use crate::request::crossing::LentStreams;
use crate::request::encoded::EncodedResponse;
use crate::request::response::Cancel;

#[cfg(feature = "cluster")]
pub(crate) mod frame;
#[cfg(feature = "cluster")]
pub(crate) mod nats;

/// How a remote unary call ended.
#[derive(Debug)]
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) enum Outcome {
    /// The replica answered (a value or its error), or the call failed on the way and may have
    /// run (its node went away, the connection dropped). For a call sent for a multiplexed model
    /// id, the model ids the replica holds now, if it said.
    Replied(Result<Bytes, ServeError>, Option<Vec<Arc<str>>>),
    /// The call reached no node (nobody listens where its replica was): it never ran, so it may
    /// be sent to another replica.
    Undelivered(ServeError),
}

impl Outcome {
    /// The reply, an undelivered call being an error like any other.
    pub(crate) fn into_result(self) -> Result<Bytes, ServeError> {
        match self {
            Outcome::Replied(result, _) => result,
            Outcome::Undelivered(e) => Err(e),
        }
    }
}

/// What a remote unary call does with its outcome (decode it, free the slot, complete the
/// request, or send it elsewhere): called once, by the request plane, when the reply arrives or
/// the call fails.
pub(crate) type OnReply = Box<dyn FnOnce(Outcome) + Send>;

/// The encoded items of a remote streaming call. Dropping it cancels the remote request.
pub(crate) type RemoteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ServeError>> + Send>>;

/// A call's encoded argument tuple, and the stream arguments it lent to the request plane (held
/// for the serving node to pull until the call ends).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) struct Args {
    pub(crate) bytes: Vec<u8>,
    pub(crate) lent: LentStreams,
}

/// One replica in another process, as a caller reaches it.
pub(crate) trait RemoteEndpoint: Send + Sync {
    /// Runs `encode` (a call's argument encoder) with this plane as the lender of the stream
    /// arguments it meets.
    fn encode(&self, encode: &dyn Fn() -> Result<Vec<u8>, ServeError>) -> Result<Args, ServeError>;
    /// Calls the unary `method` with its encoded argument tuple (sent for multiplexed model
    /// `model_id`, if any); `on_reply` gets the outcome. No task waits for the reply: the plane
    /// hands it to `on_reply` as it arrives. The handle returned cancels the call, on the far
    /// side too. The streams the arguments lent are released when the call ends.
    fn call(
        &self,
        method: &'static str,
        args: Args,
        model_id: Option<&str>,
        on_reply: OnReply,
    ) -> Arc<dyn Cancel>;
    /// Calls the streaming `method` with its encoded argument tuple; items arrive as they are
    /// produced, and the producer runs at most a bounded window ahead of this consumer.
    fn call_stream(&self, method: &'static str, args: Args, model_id: Option<&str>)
    -> RemoteStream;
    /// The node it runs on, for errors and `status`.
    fn node(&self) -> &str;
    /// Runs the replica's `check_health` on its node.
    fn check_health(&self) -> BoxFuture<'static, Result<(), ServeError>>;
    /// Hands the replica's `reconfigure` a new `user_config` on its node.
    fn reconfigure(&self, config: &serde_json::Value)
    -> BoxFuture<'static, Result<(), ServeError>>;
}

/// What a node serves to callers in other processes: one replica, called by method name with
/// encoded arguments.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) trait Served: Send + Sync {
    /// Starts `method` with its encoded argument tuple, sent for multiplexed model `model_id`
    /// if any.
    fn call_encoded(
        &self,
        method: &str,
        args: &[u8],
        model_id: Option<&str>,
    ) -> Result<EncodedResponse, ServeError>;
    /// The multiplexed model ids the replica holds now (`None`: it has no loader, or loaded none
    /// yet).
    fn model_ids(&self) -> Option<Arc<Vec<Arc<str>>>>;
    /// Runs the replica's `check_health` (passes if it has none).
    fn check_health(&self) -> BoxFuture<'static, Result<(), ServeError>>;
    /// Hands the replica's `reconfigure` a new `user_config`.
    fn reconfigure(&self, config: serde_json::Value) -> BoxFuture<'static, Result<(), ServeError>>;
}
