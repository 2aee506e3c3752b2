//! Copies of tensors that a step may have to take back: saved into buffers allocated once and
//! reused, restored in place.

use crate::error::Result;
use tch::Tensor;

#[derive(Default)]
pub(crate) struct Snapshot {
    copies: Vec<Tensor>,
}

impl Snapshot {
    /// Copies `sources` (the same list, in the same order, at every call).
    pub(crate) fn save<'a>(&mut self, sources: impl IntoIterator<Item = &'a Tensor>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let fresh = self.copies.is_empty();
        for (i, t) in sources.into_iter().enumerate() {
            if fresh {
                self.copies.push(t.f_detach()?.f_zeros_like()?);
            }
            self.copies[i].f_copy_(t)?;
        }
        Ok(())
    }

    /// Writes the saved values back into `targets` (the list given to `save`).
    pub(crate) fn restore<'a>(&self, targets: impl IntoIterator<Item = &'a Tensor>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (t, saved) in targets.into_iter().zip(&self.copies) {
            t.shallow_clone().f_copy_(saved)?;
        }
        Ok(())
    }
}
