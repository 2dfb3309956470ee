//! [`Slot`]: a reserved place on one replica, held by the request that runs in it and released
//! when that request completes *or is dropped* (cancelled, aborted, the runtime shut down), never
//! by a bookkeeping call that could be forgotten.

use std::sync::Arc;

use super::replica::{Endpoint, Replica, Stop};
use super::sync_policy::SyncPolicy;
use crate::error::ServeError;

/// A request waiting for a free slot (type-erased): in the queue, or sent back by a remote
/// replica it never reached.
pub(crate) trait Job<D>: Send {
    /// Nobody wants the result any more: the job is dropped without running or taking a slot.
    fn abandoned(&self) -> bool;
    /// Fails the request without running it.
    fn fail(self: Box<Self>, err: ServeError);
    /// Runs the request in `slot`.
    fn run(self: Box<Self>, slot: Slot<D>);
}

/// Whoever hands out slots (a deployment's router), as the slots see it.
pub(crate) trait SlotSource<D>: Send + Sync {
    /// The deployment's name, for errors and logs.
    fn deployment(&self) -> &Arc<str>;
    /// The runtime the deployment's requests run on.
    fn runtime(&self) -> &tokio::runtime::Handle;
    /// Where the deployment's sync methods run.
    fn sync_policy(&self) -> &SyncPolicy;
    /// Whether requests wait for a slot.
    fn has_waiting(&self) -> bool;
    /// A slot was given back: hand free slots to the waiting requests, oldest first.
    fn slot_freed(self: Arc<Self>);
    /// `replica` cannot be reached (a call to it reached no node): take it out of routing.
    fn evict(&self, replica: &Arc<dyn Replica<D>>, why: &ServeError);
    /// Runs `job` again, on whichever replica has a slot (it never ran where it was sent).
    fn requeue(self: Arc<Self>, job: Box<dyn Job<D>>);
}

/// A reserved place on one replica, released on drop.
pub(crate) struct Slot<D> {
    source: Arc<dyn SlotSource<D>>,
    replica: Arc<dyn Replica<D>>,
    /// The request's entry in the replica's running set, once tracked.
    key: Option<usize>,
}

impl<D> Slot<D> {
    /// A slot already reserved on `replica` (see `Slots::try_reserve`).
    #[inline]
    pub(crate) fn new(source: Arc<dyn SlotSource<D>>, replica: Arc<dyn Replica<D>>) -> Self {
        Self {
            source,
            replica,
            key: None,
        }
    }

    /// Who handed it out.
    #[inline]
    pub(crate) fn source(&self) -> &Arc<dyn SlotSource<D>> {
        &self.source
    }

    /// The replica it is on.
    #[inline]
    pub(crate) fn replica(&self) -> &Arc<dyn Replica<D>> {
        &self.replica
    }

    /// Where the request runs.
    #[inline]
    pub(crate) fn endpoint(&self) -> Endpoint<'_, D> {
        self.replica.endpoint()
    }

    /// The deployment's name.
    #[inline]
    pub(crate) fn deployment(&self) -> &Arc<str> {
        self.source.deployment()
    }

    /// The runtime the request runs on.
    #[inline]
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        self.source.runtime()
    }

    /// Records the request running in this slot, so stopping the replica can fail it.
    #[inline]
    pub(crate) fn track(&mut self, request: Arc<dyn Stop>) {
        self.key = Some(self.replica.slots().track(request));
    }
}

impl<D> Drop for Slot<D> {
    fn drop(&mut self) {
        let slots = self.replica.slots();
        if let Some(key) = self.key {
            slots.untrack(key);
        }
        slots.release();
        if self.source.has_waiting() {
            self.source.clone().slot_freed();
        }
    }
}
