//! Handle registries: opaque 64-bit identifiers for the objects C holds (models, datasets, ...).
//!
//! One counter feeds every registry of a library and is never reset, so an identifier is never
//! reused: a stale, freed, forged or cross-type handle finds nothing and is
//! `GRAN_STATUS_INVALID_HANDLE`. Objects are held by `Arc`: freeing removes the entry at once
//! (new calls fail) while calls in flight keep their reference, and the memory goes when the
//! last one ends.

use crate::abi::GRAN_STATUS_INVALID_HANDLE;
use crate::boundary::Failure;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct Registry<T> {
    what: &'static str,
    items: OnceLock<Mutex<HashMap<u64, Arc<T>>>>,
}

impl<T> Registry<T> {
    pub const fn new(what: &'static str) -> Self {
        Registry { what, items: OnceLock::new() }
    }

    /// The table. Its lock is held only to insert, look up or remove (never across a call
    /// into other code), so a poisoned lock still holds a consistent table.
    fn items(&self) -> MutexGuard<'_, HashMap<u64, Arc<T>>> {
        let m = self.items.get_or_init(|| Mutex::new(HashMap::new()));
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers `item` under a fresh identifier (never 0, never reused).
    pub fn insert(&self, item: T) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.items().insert(id, Arc::new(item));
        id
    }

    /// The object behind `id`, kept alive for as long as the caller holds the `Arc`.
    pub fn get(&self, id: u64) -> Result<Arc<T>, Failure> {
        self.items().get(&id).cloned().ok_or_else(|| self.invalid(id))
    }

    /// Removes `id`; returns the object so the caller can act on it (e.g. cancel its training).
    pub fn remove(&self, id: u64) -> Result<Arc<T>, Failure> {
        self.items().remove(&id).ok_or_else(|| self.invalid(id))
    }

    fn invalid(&self, id: u64) -> Failure {
        let why = if id == 0 {
            "0 is never a valid handle"
        } else {
            "not a live handle (freed, never issued, or of another type)"
        };
        Failure::new(GRAN_STATUS_INVALID_HANDLE, format!("{} handle {id}: {why}", self.what))
    }
}
