//! The data plane: the request path of a deployment, from a stub call to the replica and back.
//!
//! A handle call (`handle.method.remote(x)`, see [`RequestRouter::call_sync`] and its siblings):
//!
//! 1. builds its argument tuple (`request::args`); if an argument is a pending response, a small
//!    task first waits for it, and fails the call with an upstream error if it failed;
//! 2. reserves a slot on a replica ([`picker`]: power of two choices on in-flight counts; a call
//!    sent for a multiplexed model id prefers a replica that holds the model, [`multiplexed`]);
//!    a replica has `max_ongoing_requests` slots ([`replica::Slots`]);
//! 3. when every replica is full, waits in one FIFO [`queue`] (bounded by `max_queued_requests`:
//!    past it the call fails at once with a back-pressure error); a request that finishes hands
//!    its [`slot`] to the head of the queue;
//! 4. runs ([`call`], [`invoke`]): an `async fn` method as a task on the async workers, a
//!    synchronous `fn` in such a task while its deployment's sync calls are short and on the
//!    blocking pool otherwise ([`sync_policy`]), a streaming method into a bounded channel
//!    through a [`sink`]; the outcome goes into the request's result cell (`request::response`),
//!    and the replica writes its [`access`] line (`CALL say_hello OK 0.5ms`).
//!
//! The slot is a guard that travels with the request and is released when the request completes
//! *or is dropped* (cancelled, aborted, runtime shut down). Panics in user code are caught and
//! fail that one request; the replica goes on serving.
//!
//! What the request path sees of a replica is the [`Replica`](replica::Replica) interface: its
//! load, a slot, whether it is still in routing, and where its calls run. The replicas of this
//! process implement it ([`LocalReplica`](replica::LocalReplica)); replicas in other processes
//! implement it too, so this layer does not change when a deployment spreads over machines.
//!
//! Which replicas exist, and when one is added, replaced or retired, is the control plane's
//! business (`control`); this layer only offers the operations (`add_replica`, `remove_where`).

pub(crate) mod access;
pub(crate) mod batch;
pub(crate) mod call;
pub(crate) mod invoke;
pub(crate) mod multiplexed;
pub(crate) mod picker;
pub(crate) mod queue;
pub(crate) mod remote;
pub(crate) mod replica;
pub(crate) mod router;
pub(crate) mod sink;
pub(crate) mod slot;
pub(crate) mod sync_policy;
