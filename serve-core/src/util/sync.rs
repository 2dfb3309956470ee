//! Poison-tolerant locking.
//!
//! A `std::sync::Mutex` is poisoned when a thread panics while holding it. Every lock in this
//! crate guards state that stays whole across such a panic (a user's code never runs under one of
//! our locks; a panic there could only come from a waker or an allocation failure), so a poisoned
//! lock is taken as it is rather than spreading the panic to every later request.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`] that takes a poisoned lock as it is.
pub(crate) trait Lock<T: ?Sized> {
    /// Locks, recovering the guard of a poisoned lock.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> Lock<T> for Mutex<T> {
    #[inline]
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// [`RwLock::read`] / [`RwLock::write`] that take a poisoned lock as it is.
pub(crate) trait ReadWrite<T: ?Sized> {
    /// Read-locks, recovering the guard of a poisoned lock.
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    /// Write-locks, recovering the guard of a poisoned lock.
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> ReadWrite<T> for RwLock<T> {
    #[inline]
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[inline]
    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The value of a mutex owned outright (no other holder can exist), poisoned or not.
pub(crate) fn into_value<T>(mutex: &mut Mutex<T>) -> &mut T {
    mutex
        .get_mut()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_as_it_is() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *m.locked() += 1;
        assert_eq!(*m.locked(), 2);
    }
}
