//! Checkpoints: one safetensors file with the configuration, both networks (parameters and
//! batch-norm statistics), both optimizers' moments and the step counter, so training resumes
//! exactly. Never pickle: nothing in a checkpoint can execute.
//!
//! Writing is atomic (`atomic_file`: a temporary file in the same folder, flushed to disk, then
//! renamed over the target), so a crash or a full disk during a save leaves the previous file
//! intact. Reading checks the container, the format tag and version, every configuration field,
//! the name, type, shape and byte range of every tensor and the file's length, all before the
//! tensor data is read; then a checksum over all tensor bytes and every value, before a model is
//! built: any file that is not an intact gran checkpoint is a `Format` error.

use super::container::{self, field, Opened, Storage, TensorBytes};
use crate::device::DeviceSpec;
use crate::error::Result;
use crate::model::Model;
use std::path::Path;

pub(crate) const FORMAT_TAG: &str = "gran-checkpoint";
const FORMAT_VERSION: &str = "1";

/// Saves the model's current state (a consistent snapshot between two training steps).
pub fn save(model: &Model, path: &Path) -> Result<()> {
    model.require_full("saving a training checkpoint (gran_model_export writes a generator export)")?;
    let mut tags = vec![("format", FORMAT_TAG.to_string()), ("version", FORMAT_VERSION.to_string())];
    let mut tensors = TensorBytes::new();
    {
        let st = model.read_fresh()?;
        for (name, t) in st.named_tensors() {
            tensors.insert(name, container::tensor_bytes(&t, Storage::F32)?);
        }
        tags.push(("step", st.step.to_string()));
        tags.push(("adam_g_t", st.opt_g.t.to_string()));
        tags.push(("adam_d_t", st.opt_d.t.to_string()));
        if st.augment != Default::default() {
            // Absent where no run augmented adaptively (and in files of earlier versions).
            // Rust prints a float as the shortest text that reads back as the same bits.
            tags.push(("augment_p", st.augment.p.to_string()));
            tags.push(("augment_sign_sum", st.augment.sign_sum.to_string()));
            tags.push(("augment_sign_steps", st.augment.steps.to_string()));
        }
        if let Some(ema) = &st.ema {
            // Absent in files without an averaged generator (and in those of earlier versions).
            tags.push(("averaged", "1".into()));
            tags.push(("averaged_stats_batch", ema.stats_batch.to_string()));
            if let Some(s) = ema.stats_step {
                tags.push(("averaged_stats_step", s.to_string()));
            }
        }
    }
    container::write(path, &tensors, tags, model.config(), Storage::F32)
}

/// Loads the checkpoint whose header crate::io::load has read (`file` is positioned after
/// it). The configuration and the whole
/// tensor table (names, types, shapes, byte ranges, the file's length) are checked before the
/// tensor data is read; the checksum and every value (finite weights, statistics and moments;
/// non-negative variances and second moments; Adam's update counts equal to the step counter)
/// before a model is built.
pub(crate) fn load(file: Opened, device: Option<DeviceSpec>) -> Result<Model> {
    file.check_version(FORMAT_VERSION, "checkpoint format")?;
    let (meta, not_ours) = (file.meta(), file.not_ours);
    let cfg = container::config_from(meta, device, not_ours)?;
    let step: u64 = field(meta, "step")?;
    let (adam_g_t, adam_d_t): (u64, u64) = (field(meta, "adam_g_t")?, field(meta, "adam_d_t")?);
    if adam_g_t != step || adam_d_t != step {
        return Err(not_ours(format!(
            "Adam's update counts ({adam_g_t} for G, {adam_d_t} for D) differ from the step counter {step}"
        )));
    }

    // The tensor table against the configuration, then the data, then its values.
    let averaged = match meta.get("averaged").map(String::as_str) {
        None => false,
        Some("1") => true,
        Some(v) => return Err(not_ours(format!("bad 'averaged' field '{v}'"))),
    };
    let stats_batch: u32 = if averaged { field(meta, "averaged_stats_batch")? } else { 0 };
    // The batch the averaged generator's statistics are estimated with on a later sample:
    // bounded, so that a file cannot make that estimate allocate without limit.
    if averaged && !(2..=crate::nn::ema::MAX_STATS_BATCH).contains(&stats_batch) {
        return Err(not_ours(format!(
            "averaged_stats_batch {stats_batch} is outside 2..={}",
            crate::nn::ema::MAX_STATS_BATCH
        )));
    }
    let stats_step: Option<u64> = match meta.get("averaged_stats_step") {
        Some(_) => Some(field(meta, "averaged_stats_step")?),
        None => None,
    };
    let augment = match meta.get("augment_p") {
        None => crate::train::Adaptive::default(),
        Some(_) => crate::train::Adaptive {
            p: field(meta, "augment_p")?,
            sign_sum: field(meta, "augment_sign_sum")?,
            steps: field(meta, "augment_sign_steps")?,
        },
    };
    augment.validate().map_err(|e| not_ours(e.message))?;
    let data = file.read_tensors(Model::layout(&cfg, averaged)?, Storage::F32)?;

    let model = Model::new_uninit_with(&cfg, averaged)?;
    {
        let mut state = model.write();
        data.fill(state.named_tensors())?;
        state.step = step;
        state.opt_g.t = adam_g_t;
        state.opt_d.t = adam_d_t;
        state.augment = augment;
        if let Some(ema) = &mut state.ema {
            (ema.stats_step, ema.stats_batch, ema.batch) = (stats_step, stats_batch, stats_batch.max(2));
        }
    }
    Ok(model)
}
