//! Helpers shared by the integration tests: signals that tests and deployments use to wait for
//! each other (instead of sleeping), and counters to observe what ran.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a test waits for something that should happen promptly before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A one-way signal: closed until [`open`](Gate::open)ed, then open for good. Waitable from async
/// and from blocking code. Clones share the gate.
#[derive(Clone, Default)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Default)]
struct GateInner {
    open: Mutex<bool>,
    cond: Condvar,
    notify: tokio::sync::Notify,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the gate, waking every waiter.
    pub fn open(&self) {
        *self.inner.open.lock().unwrap() = true;
        self.inner.cond.notify_all();
        self.inner.notify.notify_waiters();
    }

    /// Whether the gate has been opened.
    pub fn is_open(&self) -> bool {
        *self.inner.open.lock().unwrap()
    }

    /// Waits (async) until the gate is open.
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_open() {
                return;
            }
            notified.await;
        }
    }

    /// Waits (async) up to [`PATIENCE`]; panics (fails the test) if the gate stays closed.
    pub async fn expect_open(&self, what: &str) {
        if tokio::time::timeout(PATIENCE, self.wait()).await.is_err() {
            panic!("timed out waiting for: {what}");
        }
    }

    /// Blocks until the gate is open, up to [`PATIENCE`]; returns whether it opened.
    pub fn wait_blocking(&self) -> bool {
        let guard = self.inner.open.lock().unwrap();
        let (guard, _) = self
            .inner
            .cond
            .wait_timeout_while(guard, PATIENCE, |open| !*open)
            .unwrap();
        *guard
    }
}

/// A shared counter.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one and returns the value before.
    pub fn incr(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    /// Subtracts one.
    pub fn decr(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }

    /// The current value.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Tracks how many things run at once, and the most that ever did.
#[derive(Clone, Default)]
pub struct Concurrency {
    current: Counter,
    max: Arc<AtomicUsize>,
}

impl Concurrency {
    /// Starts tracking.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks one more running until the guard drops.
    pub fn enter(&self) -> ConcurrencyGuard {
        let now = self.current.incr() + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        ConcurrencyGuard(self.current.clone())
    }

    /// The most that ever ran at once.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// Returned by [`Concurrency::enter`].
pub struct ConcurrencyGuard(Counter);

impl Drop for ConcurrencyGuard {
    fn drop(&mut self) {
        self.0.decr();
    }
}

/// Opens a gate when dropped: lets a test observe that a future or stream was dropped.
pub struct OpenOnDrop(pub Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}
