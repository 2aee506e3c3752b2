//! A loaded model: its configuration and its generator(s), folded for drawing.

mod config;
mod file;
mod generator;

pub use config::{Config, Upsampling};
pub use file::Storage;
pub(crate) use generator::{Generator, Scratch};

use crate::error::{self, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What `gran_model_load` gives in the runtime: a model that draws.
pub struct Model {
    config: Config,
    step: u64,
    storage: Storage,
    export: bool,
    raw: Generator,
    averaged: Option<Generator>,
    /// Draw with the raw generator even when an averaged one is there.
    use_raw: AtomicBool,
    /// Working memory of earlier drawing threads, reused by later calls (one per thread that
    /// ran at once): a call does not allocate and fault in its buffers again.
    scratch: Mutex<Vec<Scratch>>,
}

impl Model {
    /// Loads a generator export or a training checkpoint from `path` (see [`Model::from_bytes`]).
    pub fn load(path: &Path) -> Result<Model> {
        let io = |e| error::io(format!("reading {}", path.display()), e);
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(error::with_status(
                gran_common::abi::GRAN_STATUS_IO,
                format!("{} is not a regular file", path.display()),
            ));
        }
        let mut f = std::fs::File::open(path).map_err(io)?;
        Self::read(&mut f, meta.len(), &format!("{} is", path.display()))
    }

    /// Loads a generator export or a training checkpoint held in memory (what WebAssembly
    /// passes): the generator export's weights, or a checkpoint's generator (its averaged one
    /// when it has one, as libgran samples by default; `set_raw` chooses the other).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Self::read(&mut std::io::Cursor::new(bytes), bytes.len() as u64, "these bytes are")
    }

    /// `subject`: what the message names ("PATH is", "these bytes are").
    fn read(src: &mut dyn file::Source, len: u64, subject: &str) -> Result<Model> {
        let loaded = file::load(src, len).map_err(|mut e| {
            if e.status == gran_common::abi::GRAN_STATUS_FORMAT {
                e.message = format!("{subject} not a valid gran generator export or checkpoint: {}", e.message);
            }
            e
        })?;
        let raw = Generator::new(&loaded.config, loaded.raw)?;
        let averaged = loaded.averaged.map(|t| Generator::new(&loaded.config, t)).transpose()?;
        Ok(Model {
            config: loaded.config,
            step: loaded.step,
            storage: loaded.storage,
            export: loaded.export,
            raw,
            averaged,
            use_raw: AtomicBool::new(false),
            scratch: Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The training step the weights are from.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// Whether the file was a generator export (else a training checkpoint).
    pub fn is_export(&self) -> bool {
        self.export
    }

    /// Whether the model has an averaged generator besides the raw one (a checkpoint of a run
    /// with weight averaging).
    pub fn has_averaged(&self) -> bool {
        self.averaged.is_some()
    }

    /// Chooses the raw generator (`true`) or the averaged one when there is one (`false`, the
    /// default).
    pub fn set_raw(&self, raw: bool) {
        self.use_raw.store(raw, Ordering::Relaxed);
    }

    /// Working memory for one drawing thread: one that an earlier call left, or a new one.
    pub(crate) fn take_scratch(&self) -> Scratch {
        self.scratch.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default()
    }

    /// Returns working memory for later calls.
    pub(crate) fn give_scratch(&self, s: Scratch) {
        self.scratch.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    /// The generator drawing uses now.
    pub(crate) fn generator(&self) -> &Generator {
        match &self.averaged {
            Some(a) if !self.use_raw.load(Ordering::Relaxed) => a,
            _ => &self.raw,
        }
    }
}
