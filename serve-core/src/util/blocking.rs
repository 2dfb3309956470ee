//! Blocking waits for synchronous callers, and the check that keeps them off async threads.
//!
//! Ray Serve raises "Sync methods should not be called from within an asyncio event loop" when
//! `.result()` is used inside an async deployment. We do the same: a blocking wait on a thread
//! that is running a tokio runtime's async code fails (with `ErrorKind::BlockingInAsync`, see
//! `request::response`) instead of blocking, which could starve or deadlock the runtime. Threads
//! on which blocking is fine are those outside any runtime, and the blocking-pool threads on which
//! the runtime runs synchronous deployment methods, constructors and tasks (marked by
//! [`allow_blocking`]).

use std::cell::Cell;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

thread_local! {
    static BLOCKING_ALLOWED: Cell<bool> = const { Cell::new(false) };
    static SERVE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as one of a serve instance's runtime threads.
pub(crate) fn mark_serve_thread() {
    SERVE_THREAD.with(|t| t.set(true));
}

/// Whether the current thread is one of a serve instance's runtime threads.
pub(crate) fn on_serve_thread() -> bool {
    SERVE_THREAD.with(Cell::get)
}

/// Whether the current thread runs a serve instance's async code (where blocking on the instance
/// itself could deadlock it).
pub(crate) fn on_serve_async_thread() -> bool {
    SERVE_THREAD.with(Cell::get) && !BLOCKING_ALLOWED.with(Cell::get)
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

/// Whether the current thread may block: it runs no async code of a tokio runtime.
pub(crate) fn may_block() -> bool {
    tokio::runtime::Handle::try_current().is_err() || BLOCKING_ALLOWED.with(Cell::get)
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
pub(crate) fn block_on_poll<R>(
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
