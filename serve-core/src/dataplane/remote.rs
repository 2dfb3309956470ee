//! How a request runs on a replica in another process: its argument tuple is encoded, crosses
//! the request plane (`transport`), and the result (or each item of a stream) is decoded on the
//! way back. The request holds its slot on the remote replica until the answer is in, exactly as
//! a local request holds its slot until the method returns, so power of two choices sees remote
//! load the way it sees local load. Cancelling the request drops the remote call, which cancels
//! it on the far side.

use tokio::task::AbortHandle;

use super::call::UnaryCall;
use super::invoke::Invoke;
use super::replica::Endpoint;
use super::slot::Slot;
use crate::error::ServeError;
use crate::request::codec::CallWire;
use crate::request::generator::GeneratorSender;
use crate::request::response::Cancel as _;
use crate::transport::{OnReply, Outcome, RemoteEndpoint};

/// The remote endpoint of a slot on a remote replica.
fn endpoint<D>(slot: &Slot<D>) -> Option<&std::sync::Arc<dyn RemoteEndpoint>> {
    match slot.endpoint() {
        Endpoint::Remote(endpoint) => Some(endpoint),
        Endpoint::Local(_) => None,
    }
}

/// An error that happened on the way: it names the deployment and method like any other.
fn located(err: ServeError, deployment: &std::sync::Arc<str>, method: &'static str) -> ServeError {
    if err.deployment().is_some() {
        err
    } else {
        err.at(deployment, method)
    }
}

fn not_remote() -> ServeError {
    ServeError::new(crate::error::ErrorKind::Runtime).with_message("the replica is not remote")
}

/// Sends a unary call to the slot's remote replica. No task waits for it: the request plane
/// hands the reply to a closure that decodes it, frees the slot and completes the request. The
/// remote call is adopted by the request, so cancelling the request cancels it on the far side.
///
/// A call that reached no node (its replica's node is gone, and not yet declared dead) never
/// ran: the replica leaves this router's routing at once, and the request goes back to the
/// router, to another replica. Each such retry takes a replica out, so retries end.
pub(crate) fn unary<D, T, I, V>(call: UnaryCall<T, I, V>, values: V, slot: Slot<D>)
where
    D: 'static,
    T: Send + 'static,
    V: Send + 'static,
    I: Invoke<D, V, T>,
{
    let (method, wire) = (call.method, call.wire);
    let deployment = slot.deployment().clone();
    let (endpoint, args) = match (endpoint(&slot), (wire.args)(&values)) {
        (Some(endpoint), Ok(args)) => (endpoint.clone(), args),
        (None, _) => {
            drop(slot);
            call.completer
                .complete(Err(located(not_remote(), &deployment, method)));
            return;
        }
        (_, Err(e)) => {
            drop(slot);
            call.completer
                .complete(Err(located(e, &deployment, method)));
            return;
        }
    };
    let cell = call.completer.cell().clone();
    let on_reply: OnReply = Box::new(move |outcome| match outcome {
        Outcome::Undelivered(why) if !call.completer.cell().is_done() => {
            let source = slot.source().clone();
            source.evict(slot.replica(), &why);
            drop(slot);
            source.requeue(Box::new((call, values)));
        }
        outcome => {
            let result = outcome
                .into_result()
                .and_then(|bytes| (wire.result)(&bytes))
                .map_err(|e| located(e, &deployment, method));
            drop(values);
            drop(slot); // free the slot before the caller sees the result
            call.completer.complete(result);
        }
    });
    let sent = endpoint.call(method, args, on_reply);
    cell.adopt(sent);
}

/// Runs a streaming call on the slot's remote replica, forwarding decoded items into `sender`
/// as the consumer takes them; returns the handle that stops it.
pub(crate) fn stream<D, V, T>(
    values: V,
    slot: Slot<D>,
    sender: GeneratorSender<T>,
    method: &'static str,
    wire: CallWire<V, T>,
) -> AbortHandle
where
    D: 'static,
    V: Send + 'static,
    T: Send + 'static,
{
    use futures::StreamExt;
    let task = slot.runtime().clone().spawn(async move {
        let tx = sender.tx.clone();
        let items = match (endpoint(&slot), (wire.args)(&values)) {
            (Some(endpoint), Ok(args)) => Ok(endpoint.call_stream(method, args)),
            (None, _) => Err(not_remote()),
            (_, Err(e)) => Err(e),
        };
        drop(values);
        let mut items = match items {
            Ok(items) => items,
            Err(e) => {
                let err = located(e, slot.deployment(), method);
                drop(slot);
                let _ = tx.send(Err(err)).await;
                return;
            }
        };
        loop {
            let item = tokio::select! {
                biased;
                // The consumer left: dropping the remote stream cancels the producer.
                _ = tx.closed() => return,
                item = items.next() => item,
            };
            let item = match item {
                None => break,
                Some(item) => item.and_then(|bytes| (wire.result)(&bytes)),
            };
            let failed = item.is_err();
            let item = item.map_err(|e| located(e, slot.deployment(), method));
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
        drop(slot);
        sender.finish();
    });
    task.abort_handle()
}
