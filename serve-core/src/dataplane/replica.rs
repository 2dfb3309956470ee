//! A replica as the request path sees it: the [`Replica`] interface, the slot accounting every
//! replica shares ([`Slots`]), and the replica that runs in this process ([`LocalReplica`]).
//!
//! The picker and the queue only ever ask a replica three things: how loaded it is, whether it
//! takes one more request (reserving a slot), and whether it is still in routing. Running the call
//! is the replica's [`Endpoint`]: the instance itself for a replica of this process, whose calls
//! move their values and are never serialised. A replica in another process implements the same
//! trait with a remote endpoint (its load is what this process has sent it and not had answered),
//! so the router, the picker and the queue do not change when replicas leave the process.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slab::Slab;

use crate::error::ServeError;
use crate::request::context::ReplicaInfo;
use crate::request::response;
use crate::transport::RemoteEndpoint;
use crate::util::sync::Lock;

/// One replica of a deployment, in this process or (in cluster mode) another.
pub(crate) trait Replica<D>: Send + Sync {
    /// Its application, deployment and id, and the resources it was given.
    fn info(&self) -> &Arc<ReplicaInfo>;
    /// Its slots: how many requests it runs, which ones, and whether it left routing.
    fn slots(&self) -> &Slots;
    /// Where the calls it accepts run.
    fn endpoint(&self) -> Endpoint<'_, D>;
}

/// Where a replica runs the calls it accepts.
pub(crate) enum Endpoint<'a, D> {
    /// In this process: the deployment's instance, called directly.
    Local(&'a Arc<D>),
    /// In another process: arguments and results are encoded and cross the request plane.
    Remote(&'a Arc<dyn RemoteEndpoint>),
}

/// A request running on a replica, as the replica's shutdown sees it.
pub(crate) trait Stop: Send + Sync {
    /// Fails the request with `err` (if it has not finished) and stops its task; returns whether
    /// it was still going.
    fn stop(&self, err: ServeError) -> bool;
}

impl<T: Send> Stop for response::Cell<T> {
    fn stop(&self, err: ServeError) -> bool {
        response::Cell::stop(self, err)
    }
}

/// The capacity accounting of one replica: its requests in flight (each holds a slot), the set of
/// requests running on it (so a replica stopped past its graceful shutdown timeout can fail them),
/// and whether it was retired (taken out of routing).
pub(crate) struct Slots {
    in_flight: AtomicUsize,
    /// Keyed by the slot's entry (see `Slot::track`); a short, per-replica lock.
    running: Mutex<Slab<Arc<dyn Stop>>>,
    /// Set when it leaves routing; from then on its last request signals `idle`.
    retired: AtomicBool,
    idle: tokio::sync::Notify,
}

impl Default for Slots {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            running: Mutex::new(Slab::new()),
            retired: AtomicBool::new(false),
            idle: tokio::sync::Notify::new(),
        }
    }
}

impl Slots {
    /// Requests it runs now.
    #[inline]
    pub(crate) fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Takes a slot if one of `max` is free and the replica is not retired.
    #[inline]
    pub(crate) fn try_reserve(&self, max: usize) -> bool {
        let mut current = self.in_flight.load(Ordering::SeqCst);
        while current < max {
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    // Routing may have read the replica list just before the replica left it.
                    // `retire` sets `retired` then reads `in_flight`; this the other way round:
                    // either it waits for this slot, or this sees `retired` and gives it back.
                    if !self.retired.load(Ordering::SeqCst) {
                        return true;
                    }
                    self.release();
                    return false;
                }
                Err(now) => current = now,
            }
        }
        false
    }

    /// Gives one slot back; the last one of a retired replica says it is idle.
    #[inline]
    pub(crate) fn release(&self) {
        let left = self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        if left == 0 && self.retired.load(Ordering::SeqCst) {
            self.idle.notify_one();
        }
    }

    /// Records a request running in one of its slots; returns the key to [`untrack`](Self::untrack) it.
    #[inline(always)]
    pub(crate) fn track(&self, request: Arc<dyn Stop>) -> usize {
        self.running.locked().insert(request)
    }

    /// Forgets a request that finished.
    #[inline(always)]
    pub(crate) fn untrack(&self, key: usize) {
        let request = self.running.locked().try_remove(key);
        drop(request); // outside the lock
    }

    /// Takes it out of routing: it takes no new request from now on. Returns whether it still
    /// runs requests (then [`idle`](Self::idle) says when the last one finished).
    pub(crate) fn retire(&self) -> bool {
        self.retired.store(true, Ordering::SeqCst);
        self.in_flight.load(Ordering::SeqCst) > 0
    }

    /// Resolves once a retired replica runs no request.
    pub(crate) async fn idle(&self) {
        // `retired` was set before this check, and a finishing request checks `retired` after it
        // frees its slot: one of the two sees the other (a missed wake-up is stored by
        // `notify_one`).
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            self.idle.notified().await;
        }
    }

    /// Fails every request running on replica `info` (its graceful shutdown timeout passed);
    /// returns how many were still going.
    pub(crate) fn stop_running(&self, info: &ReplicaInfo, timeout: Duration) -> usize {
        let running: Vec<_> = {
            let running = self.running.locked();
            running.iter().map(|(_, r)| r.clone()).collect()
        };
        let mut stopped = 0;
        for request in &running {
            let err = ServeError::shut_down()
                .with_message(format!(
                    "replica {} was stopped: the request did not finish within its graceful \
                     shutdown timeout ({timeout:?})",
                    info.replica_id
                ))
                .in_deployment(&info.deployment);
            stopped += usize::from(request.stop(err));
        }
        stopped
    }
}

/// A replica running in this process: the deployment's instance, shared by its concurrent
/// requests.
pub(crate) struct LocalReplica<D> {
    info: Arc<ReplicaInfo>,
    instance: Arc<D>,
    slots: Slots,
    /// What it holds for its lifetime (its resource reservation), given back when it is dropped,
    /// after its last request.
    _held: Option<Box<dyn Any + Send + Sync>>,
}

impl<D> LocalReplica<D> {
    /// A replica `info` of `instance`, holding `held` until it is dropped.
    pub(crate) fn new(
        info: Arc<ReplicaInfo>,
        instance: Arc<D>,
        held: Option<Box<dyn Any + Send + Sync>>,
    ) -> Self {
        Self {
            info,
            instance,
            slots: Slots::default(),
            _held: held,
        }
    }
}

#[cfg(test)]
impl LocalReplica<()> {
    /// A replica numbered `replica_id` that holds no resources, for the data plane's own tests.
    pub(crate) fn unplaced(replica_id: usize) -> Arc<dyn Replica<()>> {
        use crate::request::context::Assignment;
        let info = ReplicaInfo::new("App".into(), "T".into(), replica_id, Assignment::none());
        Arc::new(LocalReplica::new(Arc::new(info), Arc::new(()), None))
    }
}

impl<D: Send + Sync + 'static> Replica<D> for LocalReplica<D> {
    #[inline]
    fn info(&self) -> &Arc<ReplicaInfo> {
        &self.info
    }

    #[inline]
    fn slots(&self) -> &Slots {
        &self.slots
    }

    #[inline]
    fn endpoint(&self) -> Endpoint<'_, D> {
        Endpoint::Local(&self.instance)
    }
}

/// A replica in another process: calls to it cross the request plane. Its load is what this
/// process has sent it and not had answered (each caller counts its own).
pub(crate) struct RemoteReplica {
    info: Arc<ReplicaInfo>,
    endpoint: Arc<dyn RemoteEndpoint>,
    slots: Slots,
    /// What it holds for its lifetime (the head's record of its node's resources, and the order
    /// to stop it), given back when it is dropped, after its last request.
    _held: Option<Box<dyn Any + Send + Sync>>,
}

impl RemoteReplica {
    /// Replica `info`, reached through `endpoint`, holding `held` until it is dropped.
    pub(crate) fn new(
        info: Arc<ReplicaInfo>,
        endpoint: Arc<dyn RemoteEndpoint>,
        held: Option<Box<dyn Any + Send + Sync>>,
    ) -> Self {
        Self {
            info,
            endpoint,
            slots: Slots::default(),
            _held: held,
        }
    }
}

impl<D> Replica<D> for RemoteReplica {
    #[inline]
    fn info(&self) -> &Arc<ReplicaInfo> {
        &self.info
    }

    #[inline]
    fn slots(&self) -> &Slots {
        &self.slots
    }

    #[inline]
    fn endpoint(&self) -> Endpoint<'_, D> {
        Endpoint::Remote(&self.endpoint)
    }
}
