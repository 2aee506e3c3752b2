//! Handle registries: opaque 64-bit identifiers for models and datasets.
//!
//! One counter feeds both registries and is never reset, so an identifier is never reused: a
//! stale, freed, forged or cross-type handle finds nothing and is `INVALID_HANDLE`. Objects are
//! held by `Arc`: freeing removes the entry at once (new calls fail) while calls in flight keep
//! their reference, and the memory goes when the last one ends.

use crate::error::{Error, ErrorKind, Result};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Registry<T> {
    what: &'static str,
    items: Lazy<Mutex<HashMap<u64, Arc<T>>>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new(what: &'static str) -> Self {
        Registry { what, items: Lazy::new(|| Mutex::new(HashMap::new())) }
    }

    /// Registers `item` under a fresh identifier (never 0, never reused).
    pub(crate) fn insert(&self, item: T) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.items.lock().insert(id, Arc::new(item));
        id
    }

    /// The object behind `id`, kept alive for as long as the caller holds the `Arc`.
    pub(crate) fn get(&self, id: u64) -> Result<Arc<T>> {
        self.items.lock().get(&id).cloned().ok_or_else(|| self.invalid(id))
    }

    /// Removes `id`; returns the object so the caller can act on it (e.g. cancel its training).
    pub(crate) fn remove(&self, id: u64) -> Result<Arc<T>> {
        self.items.lock().remove(&id).ok_or_else(|| self.invalid(id))
    }

    fn invalid(&self, id: u64) -> Error {
        let why = if id == 0 {
            "0 is never a valid handle"
        } else {
            "not a live handle (freed, never issued, or of another type)"
        };
        Error::new(ErrorKind::InvalidHandle, format!("{} handle {id}: {why}", self.what))
    }
}
