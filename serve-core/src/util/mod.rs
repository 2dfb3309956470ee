//! The bottom layer: small helpers every other layer may use, and that use nothing of the crate.
//!
//! * [`sync`]: locking that survives a panicked holder;
//! * [`time`]: seconds (as config files and Ray write them) to [`Duration`](std::time::Duration);
//! * [`panic`]: running user code so that its panic fails one request, not the runtime;
//! * [`blocking`]: which threads may block, and blocking waits for synchronous callers;
//! * [`counted`]: a count held for as long as a guard lives.

pub(crate) mod blocking;
pub(crate) mod counted;
pub(crate) mod panic;
pub(crate) mod sync;
pub(crate) mod time;
