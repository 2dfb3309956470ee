//! [`SyncPolicy`]: where a deployment's synchronous (`fn`) methods run — on the async workers,
//! called in place, while its calls are short; on the runtime's blocking pool otherwise.
//!
//! A sync method that blocks (a model's `predict` on a big input, a file read, a `sleep`, a
//! `.result()` on another call) must not stall the async workers, which run every other
//! deployment's requests and the HTTP proxy: that is why sync methods used to run on the blocking
//! pool, always. But most sync methods are short (the seed's `Adder` adds one), and the blocking
//! pool costs two thread wake-ups per call (there, and back), several times the method itself.
//!
//! So each deployment measures its sync calls (wall time, two clock reads per call) and picks:
//! * A deployment starts **offloaded**: its sync calls run on the blocking pool, so a method that
//!   blocks from its first call never touches an async worker.
//! * After [`PROMOTE_AFTER`] calls in a row that each took under [`SHORT`], it runs **inline**:
//!   a call made from an async worker of the same runtime (another deployment's `async fn`, the
//!   HTTP proxy) runs right there, in the caller's code, like a function call: no task, no
//!   thread wake-up, its response ready when `.remote()` returns. A call made from anywhere else
//!   (another thread, a sync method, a call that waited in the queue) runs in a task on the
//!   async workers, like an `async fn` with no `.await`.
//! * An inline call that takes longer than [`LONG`] sends the deployment back to the blocking
//!   pool, and it needs twice as many short calls in a row to come back each time this happens
//!   (a *strike*; [`FORGIVE_AFTER`] short inline calls forgive one). A method that is short
//!   almost always but sometimes blocks therefore stalls one worker once, for that call, and then
//!   rarely if ever again; a short call that was only pre-empted by the OS costs a few offloaded
//!   calls.
//! * A blocking wait inside an inline call (`.result()` on a handle call, iterating a generator)
//!   is allowed as it is on the blocking pool: it moves the worker's other tasks to another
//!   thread first (`tokio::task::block_in_place`), and a call that waited this way counts as long
//!   (its deployment goes back to the blocking pool, where waiting costs no worker).
//!
//! Only a multi-threaded runtime (every serve instance's) runs sync calls inline; elsewhere they
//! stay on the blocking pool.
//!
//! What was weighed (`benches/chain.rs`, the seed's chain with sync leaves, 64 calls in flight,
//! against bare tokio tasks and channels of the same shape):
//! * the blocking pool for every call (before): 0.10× bare, and a sequential call 4.5 times as
//!   slow as with `async fn` leaves;
//! * a task on the async workers for every short call: 0.38×, as fast as `async fn` leaves (each
//!   call still pays a task and a wake-up);
//! * in place in the caller's code when it is an async worker of the same runtime, a task
//!   otherwise (what this does): 0.61–0.86×, a sequential call 0.76–1.01 times the `async fn`
//!   chain's;
//! * a thread (or a few) per replica running its calls in a loop was not built: with one call at
//!   a time it still pays two thread wake-ups per call, as the blocking pool does, so it cannot
//!   bring a sequential call near an `async fn` one; `block_in_place` around every call hands the
//!   worker's other tasks to a new thread per call, a thread hand-off again. Both stay the right
//!   tools for calls that block, which is why long calls go back to the blocking pool and a
//!   blocking wait in a call running in place uses `block_in_place`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::util::blocking;

/// A sync call at most this long counts towards running the deployment's calls inline (tokio's
/// guideline for the time between two `.await`s of a task is 10–100 µs).
pub(crate) const SHORT: Duration = Duration::from_micros(100);
/// An inline call longer than this sends the deployment's calls back to the blocking pool.
pub(crate) const LONG: Duration = Duration::from_millis(1);
/// Short calls in a row, on the blocking pool, before calls run inline (times two per strike).
pub(crate) const PROMOTE_AFTER: u32 = 64;
/// Short inline calls that forgive one strike.
pub(crate) const FORGIVE_AFTER: u32 = 4096;
/// At most this many strikes count (so at most `PROMOTE_AFTER << MAX_STRIKES` calls to come back).
const MAX_STRIKES: u32 = 12;

/// Where one deployment's sync methods run, and the measurements that decide it.
#[derive(Debug)]
pub(crate) struct SyncPolicy {
    /// Whether calls may ever run inline (a multi-threaded runtime).
    enabled: bool,
    inline: AtomicBool,
    /// Short calls in a row on the blocking pool.
    streak: AtomicU32,
    /// Times calls went back to the blocking pool, less those forgiven.
    strikes: AtomicU32,
    /// Short inline calls since the last strike was forgiven (counted only with strikes).
    good: AtomicU32,
    /// The token of the serve runtime its calls run on (`util::blocking`), learnt from the first
    /// call that ran inline in a task; 0 until then.
    runtime: AtomicU64,
}

impl SyncPolicy {
    /// The policy of a deployment whose requests run on `rt`.
    pub(crate) fn new(rt: &tokio::runtime::Handle) -> Self {
        Self::with_inline_allowed(rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    }

    pub(crate) fn with_inline_allowed(enabled: bool) -> Self {
        Self {
            enabled,
            inline: AtomicBool::new(false),
            streak: AtomicU32::new(0),
            strikes: AtomicU32::new(0),
            good: AtomicU32::new(0),
            runtime: AtomicU64::new(0),
        }
    }

    /// Whether a call made on this thread may run in place, right in the caller's code: the
    /// thread is an async worker of the deployment's own runtime, outside any synchronous user
    /// code (so calls run this way never nest, and a queue drained by a call's end never recurses).
    #[inline]
    pub(crate) fn runs_here(&self) -> bool {
        let here = blocking::serve_async_runtime();
        here != 0 && here == self.runtime.load(Ordering::Relaxed)
    }

    /// Records the runtime the current thread belongs to (called from the deployment's own
    /// runtime).
    #[inline]
    pub(crate) fn learn_runtime(&self) {
        if self.runtime.load(Ordering::Relaxed) == 0 {
            self.runtime
                .store(blocking::serve_runtime(), Ordering::Relaxed);
        }
    }

    /// Whether the next call runs inline.
    #[inline]
    pub(crate) fn inline(&self) -> bool {
        self.inline.load(Ordering::Relaxed)
    }

    /// A call ran on the blocking pool for `took`; returns whether calls run inline from now on.
    #[inline]
    pub(crate) fn ran_offloaded(&self, took: Duration) -> bool {
        if !self.enabled {
            return false;
        }
        if took > SHORT {
            self.streak.store(0, Ordering::Relaxed);
            return false;
        }
        let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        let strikes = self.strikes.load(Ordering::Relaxed).min(MAX_STRIKES);
        if streak >= PROMOTE_AFTER << strikes && !self.inline.swap(true, Ordering::Relaxed) {
            self.good.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A call ran inline for `took`; returns whether calls go back to the blocking pool.
    #[inline]
    pub(crate) fn ran_inline(&self, took: Duration) -> bool {
        if took > LONG {
            if self.inline.swap(false, Ordering::Relaxed) {
                self.streak.store(0, Ordering::Relaxed);
                let _ = self
                    .strikes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                        Some((s + 1).min(MAX_STRIKES))
                    });
                return true;
            }
            return false;
        }
        if self.strikes.load(Ordering::Relaxed) > 0
            && took <= SHORT
            && self.good.fetch_add(1, Ordering::Relaxed) + 1 >= FORGIVE_AFTER
        {
            self.good.store(0, Ordering::Relaxed);
            let _ = self
                .strikes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
        }
        false
    }

    /// Strikes not yet forgiven (for tests).
    #[cfg(test)]
    pub(crate) fn strikes(&self) -> u32 {
        self.strikes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_micros(1);
    const SLOW: Duration = Duration::from_millis(5);

    fn promote(policy: &SyncPolicy) -> u32 {
        let mut calls = 0;
        while !policy.inline() {
            calls += 1;
            policy.ran_offloaded(FAST);
            assert!(calls < 1_000_000, "never promoted");
        }
        calls
    }

    #[test]
    fn starts_offloaded_and_goes_inline_after_a_run_of_short_calls() {
        let policy = SyncPolicy::with_inline_allowed(true);
        assert!(!policy.inline());
        for _ in 0..PROMOTE_AFTER - 1 {
            assert!(!policy.ran_offloaded(FAST));
        }
        // A long call breaks the run.
        assert!(!policy.ran_offloaded(SLOW));
        assert!(!policy.inline());
        assert_eq!(promote(&policy), PROMOTE_AFTER);
    }

    #[test]
    fn a_long_inline_call_goes_back_and_each_strike_doubles_the_run_needed() {
        let policy = SyncPolicy::with_inline_allowed(true);
        promote(&policy);
        assert!(!policy.ran_inline(Duration::from_micros(500)), "not long");
        assert!(policy.ran_inline(SLOW));
        assert!(!policy.inline());
        assert_eq!(promote(&policy), PROMOTE_AFTER << 1);
        assert!(policy.ran_inline(SLOW));
        assert_eq!(promote(&policy), PROMOTE_AFTER << 2);
        assert_eq!(policy.strikes(), 2);
        // Short inline calls forgive strikes.
        for _ in 0..FORGIVE_AFTER {
            policy.ran_inline(FAST);
        }
        assert_eq!(policy.strikes(), 1);
    }

    #[test]
    fn a_method_that_always_blocks_never_runs_inline() {
        let policy = SyncPolicy::with_inline_allowed(true);
        for _ in 0..10_000 {
            assert!(!policy.ran_offloaded(SLOW));
        }
        assert!(!policy.inline());
    }

    #[test]
    fn without_a_multi_threaded_runtime_calls_never_run_inline() {
        let policy = SyncPolicy::with_inline_allowed(false);
        for _ in 0..10_000 {
            policy.ran_offloaded(FAST);
        }
        assert!(!policy.inline());
    }
}
