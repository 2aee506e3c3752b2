//! How many threads drawing uses: a process-wide setting the caller makes
//! (`gran_set_num_threads`), 1 by default. There is no pool: a call that draws on several
//! threads starts them (scoped) and joins them before it returns, so nothing runs while the
//! library is not called. Threads split a call's images between them; one image is drawn by
//! one thread.

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// The most threads a call may use.
pub const MAX_THREADS: usize = 256;

/// Sets the threads of later drawing calls (clamped to 1 ..= MAX_THREADS); calls in flight
/// keep theirs.
pub fn set(n: usize) {
    THREADS.store(n.clamp(1, MAX_THREADS), Ordering::Relaxed);
}

pub fn get() -> usize {
    THREADS.load(Ordering::Relaxed)
}
