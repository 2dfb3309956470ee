//! Blocking waits for synchronous callers, and the check that keeps them off async threads.
//!
//! Ray Serve raises "Sync methods should not be called from within an asyncio event loop" when
//! `.result()` is used inside an async deployment. We do the same: a blocking wait on a thread
//! that is running a tokio runtime's async code fails (with `ErrorKind::BlockingInAsync`, see
//! `request::response`) instead of blocking, which could starve or deadlock the runtime. Threads
//! on which blocking is fine are those outside any runtime, and the blocking-pool threads on which
//! the runtime runs synchronous deployment methods, constructors and tasks (marked by
//! [`allow_blocking`]). A short synchronous method may also run in place on an async worker
//! ([`run_inline`]); a blocking wait there first moves the worker's other tasks to another
//! thread (`tokio::task::block_in_place`), so it is allowed too.

use std::cell::Cell;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

thread_local! {
    static BLOCKING_ALLOWED: Cell<bool> = const { Cell::new(false) };
    /// The serve runtime this thread belongs to (see [`mark_serve_thread`]); 0 for none.
    static SERVE_RUNTIME: Cell<u64> = const { Cell::new(0) };
    static INLINE_SYNC: Cell<bool> = const { Cell::new(false) };
    /// Set when synchronous user code running in place blocked (see [`take_inline_blocked`]).
    static INLINE_BLOCKED: Cell<bool> = const { Cell::new(false) };
}

/// A new serve runtime's token, for [`mark_serve_thread`]: never 0, never handed out twice.
pub(crate) fn new_runtime_token() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Marks the current thread as one of the threads of the serve runtime `token`.
pub(crate) fn mark_serve_thread(token: u64) {
    SERVE_RUNTIME.with(|t| t.set(token));
}

/// Whether the current thread is one of a serve instance's runtime threads.
pub(crate) fn on_serve_thread() -> bool {
    SERVE_RUNTIME.with(Cell::get) != 0
}

/// Whether the current thread runs a serve instance's async code (where blocking on the instance
/// itself could deadlock it).
pub(crate) fn on_serve_async_thread() -> bool {
    on_serve_thread() && !BLOCKING_ALLOWED.with(Cell::get)
}

/// The token of the serve runtime whose async code the current thread runs, outside any
/// synchronous user code; 0 when it runs none (or runs synchronous user code).
#[inline]
pub(crate) fn serve_async_runtime() -> u64 {
    if BLOCKING_ALLOWED.with(Cell::get) || INLINE_SYNC.with(Cell::get) {
        return 0;
    }
    SERVE_RUNTIME.with(Cell::get)
}

/// The token of the serve runtime the current thread belongs to; 0 for none.
#[inline]
pub(crate) fn serve_runtime() -> u64 {
    SERVE_RUNTIME.with(Cell::get)
}

/// Runs `f` with blocking waits allowed on this thread (used for synchronous user code that the
/// runtime runs on its blocking pool).
pub(crate) fn allow_blocking<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            BLOCKING_ALLOWED.with(|b| b.set(self.0));
        }
    }
    let _reset = Reset(BLOCKING_ALLOWED.with(|b| b.replace(true)));
    f()
}

/// Runs synchronous user code in place on a multi-threaded runtime's async worker (a short sync
/// method, see `dataplane::sync_policy`): a blocking wait in it leaves the worker first
/// (see [`block_on_poll`]).
pub(crate) fn run_inline<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            INLINE_SYNC.with(|b| b.set(self.0));
        }
    }
    let _reset = Reset(INLINE_SYNC.with(|b| b.replace(true)));
    INLINE_BLOCKED.with(|b| b.set(false));
    f()
}

/// Whether the synchronous user code that last ran in place on this thread blocked (left the
/// worker for a blocking wait); clears the mark.
pub(crate) fn take_inline_blocked() -> bool {
    INLINE_BLOCKED.with(|b| b.replace(false))
}

/// Whether the current thread may block: it runs no async code of a tokio runtime, or it runs
/// synchronous user code in place (which leaves the worker before it blocks).
pub(crate) fn may_block() -> bool {
    tokio::runtime::Handle::try_current().is_err()
        || BLOCKING_ALLOWED.with(Cell::get)
        || INLINE_SYNC.with(Cell::get)
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `poll` on the current thread, parking between polls, until it is ready or `deadline` passes
/// (`None` when it passed).
///
/// In synchronous user code running in place on an async worker ([`run_inline`]), the worker's
/// other tasks first move to another thread, unless `poll` is ready at once.
pub(crate) fn block_on_poll<R>(
    poll: &mut dyn FnMut(&mut Context<'_>) -> Poll<R>,
    deadline: Option<Instant>,
) -> Option<R> {
    if INLINE_SYNC.with(Cell::get) && !BLOCKING_ALLOWED.with(Cell::get) {
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        if let Poll::Ready(r) = poll(&mut Context::from_waker(&waker)) {
            return Some(r);
        }
        INLINE_BLOCKED.with(|b| b.set(true));
        return tokio::task::block_in_place(|| allow_blocking(|| park_on_poll(poll, deadline)));
    }
    park_on_poll(poll, deadline)
}

fn park_on_poll<R>(
    poll: &mut dyn FnMut(&mut Context<'_>) -> Poll<R>,
    deadline: Option<Instant>,
) -> Option<R> {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(r) = poll(&mut cx) {
            return Some(r);
        }
        match deadline {
            None => std::thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_is_refused_on_a_runtime_thread_but_allowed_in_blocking_sections() {
        assert!(may_block());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(!may_block());
            assert!(allow_blocking(may_block));
            assert!(!may_block(), "the allowance is scoped");
        });
    }
}
