//! [`Counted`]: one unit of a shared count, held for as long as something lasts.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Adds one to a count when made and takes it off when dropped, so the count is right however
/// the holder ends (returns early, fails, is cancelled). `C` is `&AtomicUsize` for a guard that
/// lives in a stack frame, `Arc<AtomicUsize>` for one that travels.
pub(crate) struct Counted<C: Deref<Target = AtomicUsize>>(C);

impl<C: Deref<Target = AtomicUsize>> Counted<C> {
    pub(crate) fn new(count: C) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl<C: Deref<Target = AtomicUsize>> Drop for Counted<C> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
