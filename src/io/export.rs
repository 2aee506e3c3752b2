//! Generator exports: what a game or a tool ships. One safetensors file with the configuration
//! and one generator's weights and batch-norm statistics (the averaged generator when the model
//! has one, else the raw one), stored as float32 or bfloat16. No discriminator, no optimizer
//! state: a fraction of a training checkpoint's size.
//!
//! `crate::io::load` recognises an export by its format tag and gives a sampling-only model
//! (`Model::inference_only`): sampling, step pictures, latents and the evaluator work, and give
//! the images the full model gives (float32 storage: the same bits; bfloat16: the weights
//! rounded to 8 significant bits); training, scoring with the discriminator, GAM and saving a
//! checkpoint are refused with `InvalidArgument`. Loading checks what a checkpoint's loading
//! checks: the header alone first, the configuration, the whole tensor table against the
//! generator's layout and the file's length, then a checksum and every value.

use super::container::{self, field, Opened, Storage, TensorBytes};
use crate::device::DeviceSpec;
use crate::error::Result;
use crate::model::Model;
use crate::nn::ema::Choice;
use std::path::Path;

pub(crate) const FORMAT_TAG: &str = "gran-generator";
const FORMAT_VERSION: &str = "1";

/// Writes `model`'s generator to `path` (atomically, as checkpoints) in `storage`: the averaged
/// generator when the model has one (with its own statistics), else the raw one. The tensors
/// carry the raw generator's names ("g.dec.fc.weight"), so both kinds load the same way.
pub fn export(model: &Model, path: &Path, storage: Storage) -> Result<()> {
    let mut tensors = TensorBytes::new();
    let (step, source) = {
        let st = model.read_fresh()?;
        let (params, buffers, source) = match &st.ema {
            Some(e) => (&e.params, &e.buffers, "averaged"),
            None => (&st.g_params, &st.g_buffers, "raw"),
        };
        for n in params.iter().chain(buffers) {
            let name = n.name.strip_prefix(crate::nn::ema::PREFIX).unwrap_or(&n.name).to_string();
            tensors.insert(name, container::tensor_bytes(&n.tensor, storage)?);
        }
        (st.step, source)
    };
    let tags = vec![
        ("format", FORMAT_TAG.to_string()),
        ("version", FORMAT_VERSION.to_string()),
        ("step", step.to_string()),
        ("generator", source.to_string()),
        ("storage", storage_name(storage).to_string()),
    ];
    container::write(path, &tensors, tags, model.config(), storage)
}

fn storage_name(s: Storage) -> &'static str {
    match s {
        Storage::F32 => "fp32",
        Storage::Bf16 => "bf16",
    }
}

/// Loads the export whose header crate::io::load has read (`file` is positioned after it).
pub(crate) fn load(file: Opened, device: Option<DeviceSpec>) -> Result<Model> {
    file.check_version(FORMAT_VERSION, "generator export")?;
    let (meta, not_ours) = (file.meta(), file.not_ours);
    let storage = match field::<String>(meta, "storage")?.as_str() {
        "fp32" => Storage::F32,
        "bf16" => Storage::Bf16,
        s => return Err(not_ours(format!("unknown storage '{s}'"))),
    };
    let cfg = container::config_from(meta, device, not_ours)?;
    let step: u64 = field(meta, "step")?;
    // The generator's part of a model's layout: its parameters and statistics ("g.").
    let layout = Model::layout(&cfg, false)?.into_iter().filter(|(n, _)| n.starts_with("g.")).collect();
    let data = file.read_tensors(layout, storage)?;

    let model = Model::new_inference_uninit(&cfg)?;
    {
        let mut state = model.write();
        data.fill(
            state.g_params.iter().chain(&state.g_buffers).map(|n| (n.name.clone(), n.tensor.shallow_clone())).collect(),
        )?;
        state.step = step;
    }
    model.set_generator_choice(Choice::Raw);
    Ok(model)
}
