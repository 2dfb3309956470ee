//! [`RequestQueue`]: where a request waits when every replica is full — one FIFO queue per
//! deployment, bounded by `max_queued_requests`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::replica::Replica;
use super::slot::Job;
use crate::error::ServeError;
use crate::util::sync::Lock;

/// A waiting request and the slot's replica it got.
pub(crate) type Dequeued<D> = (Box<dyn Job<D>>, Arc<dyn Replica<D>>);

/// The waiting requests of one deployment, oldest first.
pub(crate) struct RequestQueue<D> {
    jobs: Mutex<VecDeque<Box<dyn Job<D>>>>,
    /// `jobs.len()`, readable without the lock. Together with a replica's in-flight count it forms
    /// a Dekker-style handshake (both `SeqCst`): a dispatcher publishes "queued" then retries
    /// slots; a finishing request frees its slot then checks "queued". One of the two always sees
    /// the other.
    len: AtomicUsize,
    /// Past this many waiting requests a call fails at once (back pressure); `usize::MAX`:
    /// unlimited. Changed in place by a new version of the application.
    max: AtomicUsize,
    /// Calls refused at a full queue since it was last purged of abandoned jobs (changed under
    /// the `jobs` lock).
    refused_since_purge: AtomicUsize,
}

impl<D> RequestQueue<D> {
    /// An empty queue of at most `max` jobs (`None`: unlimited).
    pub(crate) fn new(max: Option<usize>) -> Self {
        Self {
            jobs: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            max: AtomicUsize::new(max.unwrap_or(usize::MAX)),
            refused_since_purge: AtomicUsize::new(0),
        }
    }

    /// Sets how many requests may wait (`None`: unlimited); those waiting already keep their
    /// places.
    pub(crate) fn set_max(&self, max: Option<usize>) {
        self.max.store(max.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// How many requests wait.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    /// Appends `job`, or hands it back with the back-pressure error when the queue is full.
    pub(crate) fn push(&self, job: Box<dyn Job<D>>) -> Result<(), (Box<dyn Job<D>>, ServeError)> {
        let mut jobs = self.jobs.locked();
        let max = self.max.load(Ordering::Relaxed);
        if jobs.len() >= max {
            // Requests cancelled while they waited no longer count against the cap. Looking for
            // them costs a pass over the queue, so under a flood of refusals it is done once per
            // `len / 8` refusals (at every refusal for a queue of up to 15).
            let refused = self.refused_since_purge.fetch_add(1, Ordering::Relaxed) + 1;
            if refused >= (jobs.len() / 8).max(1) {
                self.refused_since_purge.store(0, Ordering::Relaxed);
                let before = jobs.len();
                jobs.retain(|job| !job.abandoned());
                self.len.fetch_sub(before - jobs.len(), Ordering::SeqCst);
            }
            if jobs.len() >= max {
                return Err((job, ServeError::back_pressure(max)));
            }
        }
        jobs.push_back(job);
        self.len.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The oldest job that is still wanted, with a slot `reserve` found for it (abandoned jobs met
    /// on the way are dropped); `None` when the queue is empty or `reserve` finds no slot.
    pub(crate) fn pop_with(
        &self,
        reserve: impl Fn() -> Option<Arc<dyn Replica<D>>>,
    ) -> Option<Dequeued<D>> {
        let mut jobs = self.jobs.locked();
        loop {
            let front = jobs.front()?;
            if front.abandoned() {
                jobs.pop_front();
                self.len.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let replica = reserve()?;
            let job = jobs.pop_front()?;
            self.len.fetch_sub(1, Ordering::SeqCst);
            return Some((job, replica));
        }
    }

    /// Takes every waiting job out (a stopping deployment fails them).
    pub(crate) fn take_all(&self) -> Vec<Box<dyn Job<D>>> {
        let mut jobs = self.jobs.locked();
        self.len.fetch_sub(jobs.len(), Ordering::SeqCst);
        jobs.drain(..).collect()
    }
}
