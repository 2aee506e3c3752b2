//! `gran export`: a checkpoint's generator in a file to ship (the averaged generator when the
//! model has one), float32 or bfloat16, a few times smaller than the checkpoint. `gran sample`,
//! `gran steps`, `gran eval` and `gran info` read it; training and GAM need the checkpoint.

use crate::output::Out;
use gran::checkpoint::Storage;
use gran::{checkpoint, DeviceSpec, Result};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageArg {
    /// float32: the model's images, bit for bit
    Fp32,
    /// bfloat16: half the size; images within a few 1/1000 of the float32 ones
    Bf16,
}

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// The training checkpoint (or an export, to convert its storage)
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The file to write
    #[arg(short, long, value_name = "FILE")]
    pub out: PathBuf,
    /// How the weights are stored
    #[arg(long, value_enum, default_value_t = StorageArg::Fp32)]
    pub storage: StorageArg,
}

pub fn run(a: &Args, out: &Out) -> Result<()> {
    let m = checkpoint::load(&a.model, Some(DeviceSpec::Cpu))?;
    let storage = match a.storage {
        StorageArg::Fp32 => Storage::F32,
        StorageArg::Bf16 => Storage::Bf16,
    };
    crate::output::make_parent(&a.out)?;
    checkpoint::export(&m, &a.out, storage)?;
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (from, to) = (size(&a.model), size(&a.out));
    let generator = if m.has_averaged() { "averaged" } else { "raw" };
    let value = serde_json::json!({
        "model": a.model.display().to_string(), "export": a.out.display().to_string(),
        "storage": format!("{:?}", a.storage).to_lowercase(), "generator": generator,
        "bytes": to, "model_bytes": from, "step": m.step(),
    });
    out.result("export", value, || {
        format!(
            "{}: the {generator} generator at step {}, {} storage, {:.2} MiB ({:.1}x smaller than {})",
            a.out.display(),
            m.step(),
            format!("{:?}", a.storage).to_lowercase(),
            to as f64 / (1 << 20) as f64,
            from as f64 / to.max(1) as f64,
            a.model.display()
        )
    });
    Ok(())
}
