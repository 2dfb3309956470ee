//! How a request runs on a replica in another process: its argument tuple is encoded (by the
//! endpoint, which lends the call's stream arguments to the request plane), crosses the request
//! plane (`transport`), and the result (or each item of a stream) is decoded on the way back. The request holds its slot on the remote replica until the answer is in, exactly as
//! a local request holds its slot until the method returns, so power of two choices sees remote
//! load the way it sees local load. Cancelling the request drops the remote call, which cancels
//! it on the far side.

use tokio::task::AbortHandle;

use super::replica::Endpoint;
use super::slot::Slot;
use crate::error::ServeError;
use crate::request::codec::CallWire;
use crate::request::generator::{Forwarded, GeneratorSender};
use crate::transport::RemoteEndpoint;

/// The remote endpoint of a slot on a remote replica.
pub(crate) fn endpoint<D>(slot: &Slot<D>) -> Option<&std::sync::Arc<dyn RemoteEndpoint>> {
    match slot.endpoint() {
        Endpoint::Remote(endpoint) => Some(endpoint),
        Endpoint::Local(_) => None,
    }
}

/// An error that happened on the way: it names the deployment and method like any other.
pub(crate) fn located(
    err: ServeError,
    deployment: &std::sync::Arc<str>,
    method: &'static str,
) -> ServeError {
    if err.deployment().is_some() {
        err
    } else {
        err.at(deployment, method)
    }
}

/// Records the multiplexed model ids a remote replica reported holding (with its reply to a
/// call sent for a model id), for routing and `status`.
pub(crate) fn loaded_models<D>(
    replica: &std::sync::Arc<dyn super::replica::Replica<D>>,
    models: &[std::sync::Arc<str>],
) {
    use crate::request::multiplex::{LOADED_MODELS, LoadedModels};
    replica
        .info()
        .state
        .get_or_init(LOADED_MODELS, LoadedModels::default)
        .set(models.to_vec());
}

pub(crate) fn not_remote() -> ServeError {
    ServeError::new(crate::error::ErrorKind::Runtime).with_message("the replica is not remote")
}

/// Runs a streaming call on the slot's remote replica, forwarding decoded items into `sender`
/// (in batches of what has arrived, like a local stream) as the consumer takes them; returns the
/// handle that stops it.
pub(crate) fn stream<D, V, T>(
    values: V,
    slot: Slot<D>,
    sender: GeneratorSender<T>,
    method: &'static str,
    wire: CallWire<V, T>,
    model_id: Option<std::sync::Arc<str>>,
) -> AbortHandle
where
    D: 'static,
    V: Send + 'static,
    T: Send + 'static,
{
    use futures::StreamExt;
    let task = slot.runtime().clone().spawn(async move {
        let items = match endpoint(&slot) {
            Some(endpoint) => endpoint
                .encode(&|| (wire.args)(&values))
                .map(|args| endpoint.call_stream(method, args, model_id.as_deref())),
            None => Err(not_remote()),
        };
        drop(values);
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                let err = located(e, slot.deployment(), method);
                drop(slot);
                sender.errors().send(err).await;
                return;
            }
        };
        let deployment = slot.deployment().clone();
        let items = items.map(|item| {
            item.and_then(|bytes| (wire.result)(&bytes))
                .map_err(|e| located(e, &deployment, method))
        });
        // The consumer leaving drops the remote stream, which cancels the producer.
        if sender.forward(items).await == Forwarded::Ended {
            drop(slot);
            sender.finish();
        }
    });
    task.abort_handle()
}
