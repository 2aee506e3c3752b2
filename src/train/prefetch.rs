//! Minibatches of a streamed dataset (`Dataset::open_npy`), read from its file on a thread of
//! their own, a few steps ahead of training, through a bounded queue: the step finds its real
//! images waiting, and memory holds at most `AHEAD` minibatches, whatever the dataset's size.
//!
//! The thread draws the same minibatches as the in-memory path (crate::train::run): the epoch's
//! permutation from the run's shuffle stream, this process's share of the global minibatch, so
//! the images of step s are a function of (seed, step) alone and a resumed or data-parallel run
//! reads exactly what it would in memory.

use crate::data::{FileReader, Raw};
use crate::error::{Error, Result};
use crate::rng::Stream;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;
use tch::Tensor;

/// Minibatches read ahead of the step that needs them.
const AHEAD: usize = 3;

/// Which images each step takes: the global batch of `batch` images from the epoch's
/// permutation of `count`, of which this process takes `local` from `offset` on.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) shuffle: Stream,
    pub(crate) count: usize,
    pub(crate) batch: usize,
    pub(crate) local: usize,
    pub(crate) offset: usize,
    pub(crate) per_epoch: u64,
}

impl Plan {
    /// The dataset indices of step `step`'s share, given `perm`, the permutation of its epoch.
    pub(crate) fn indices(&self, step: u64, perm: &[i64]) -> Vec<usize> {
        let pos = (step % self.per_epoch) as usize * self.batch + self.offset;
        perm[pos..pos + self.local].iter().map(|&i| i as usize).collect()
    }
}

/// The reading thread and the queue it fills.
pub(crate) struct Prefetcher {
    queue: Option<Receiver<(u64, Result<Raw>)>>,
    thread: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts reading the minibatches of steps `first .. end`.
    pub(crate) fn start(reader: FileReader, plan: Plan, first: u64, end: u64) -> Result<Prefetcher> {
        let (tx, rx) = sync_channel(AHEAD);
        let thread = std::thread::Builder::new()
            .name("gran-prefetch".into())
            .spawn(move || {
                let mut perm: Option<(u64, Vec<i64>)> = None;
                for step in first..end {
                    let epoch = step / plan.per_epoch;
                    if perm.as_ref().map(|p| p.0) != Some(epoch) {
                        perm = Some((epoch, plan.shuffle.sub(epoch).permutation(plan.count)));
                    }
                    let indices = plan.indices(step, &perm.as_ref().expect("set above").1);
                    // Bytes only: the tensor is made on the training thread (ImageReader::read_raw).
                    let read = reader.read_raw(&indices);
                    let failed = read.is_err();
                    // The run ended (or failed): nobody waits for more.
                    if tx.send((step, read)).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io("starting the minibatch reader", e))?;
        Ok(Prefetcher { queue: Some(rx), thread: Some(thread) })
    }

    /// Step `step`'s real images as stored (`Uint8` `[local, C, H, W]` on the CPU).
    pub(crate) fn next(&mut self, step: u64) -> Result<Tensor> {
        let queue = self.queue.as_ref().ok_or_else(|| Error::internal("the minibatch reader is closed"))?;
        match queue.recv() {
            Ok((s, read)) if s == step => read?.into_tensor(),
            Ok((s, _)) => Err(Error::internal(format!("the minibatch reader gave step {s} for step {step}"))),
            Err(_) => Err(Error::internal(format!("the minibatch reader stopped before step {step}"))),
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the queue ends the thread at its next send (after the read in progress).
        drop(self.queue.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
