//! Handle registries (gran_common::registry, shared with libgran_runtime), with the core's
//! error type.

use crate::error::Result;
use std::sync::Arc;

pub(crate) struct Registry<T>(gran_common::registry::Registry<T>);

impl<T> Registry<T> {
    pub(crate) const fn new(what: &'static str) -> Self {
        Registry(gran_common::registry::Registry::new(what))
    }

    /// Registers `item` under a fresh identifier (never 0, never reused).
    pub(crate) fn insert(&self, item: T) -> u64 {
        self.0.insert(item)
    }

    /// The object behind `id`, kept alive for as long as the caller holds the `Arc`.
    pub(crate) fn get(&self, id: u64) -> Result<Arc<T>> {
        Ok(self.0.get(id)?)
    }

    /// Removes `id`; returns the object so the caller can act on it (e.g. cancel its training).
    pub(crate) fn remove(&self, id: u64) -> Result<Arc<T>> {
        Ok(self.0.remove(id)?)
    }
}
