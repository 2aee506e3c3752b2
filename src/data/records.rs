//! Fixed-size images read in file order, a chunk at a time: how `gran pack` converts IDX and
//! CIFAR-10 files without holding them whole (the loaders of those formats read them whole,
//! for training).

use crate::error::Result;

/// A file (or files) of fixed-size `u8` images, read front to back.
pub trait RecordReader {
    /// Images in the source, known from its headers or lengths before any image is read.
    fn count(&self) -> usize;
    /// (height, width, channels) of every image.
    fn shape(&self) -> (u32, u32, u32);
    /// Appends the next `k` images to `images` (each channels x height x width) and, when the
    /// source is labelled, their labels to `labels`. `Format` for a truncated or corrupt source.
    fn read(&mut self, k: usize, images: &mut Vec<u8>, labels: &mut Vec<u8>) -> Result<()>;
    /// Whether the images come with labels.
    fn labelled(&self) -> bool;
    /// After the last image: `Format` when the source holds more than its header declared.
    fn finish(&mut self) -> Result<()>;
}
