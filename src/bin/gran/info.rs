//! `gran info`: what a file or folder holds. A gran checkpoint is loaded and checked in full
//! (on the CPU); anything else is read as data.

use crate::data::{self, Split};
use crate::opts::{DataArgs, Format};
use crate::output::config_json;
use crate::output::Out;
use gran::{checkpoint, DeviceSpec, Error, ErrorKind, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// A checkpoint, a data file, or a data folder
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// Whether `path` starts as a safetensors file does (a little-endian header length that fits the
/// file, then a JSON object).
fn looks_like_safetensors(path: &Path, size: u64) -> bool {
    let mut head = [0u8; 9];
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    if f.read_exact(&mut head).is_err() {
        return false;
    }
    let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    head[8] == b'{' && n <= size.saturating_sub(8)
}

pub fn run(a: &Args, out: &Out) -> Result<()> {
    let path = &a.path;
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::new(ErrorKind::Io, format!("{}: no such file or folder", path.display()))
        }
        _ => Error::io(path.display(), e),
    })?;
    if meta.is_file() && looks_like_safetensors(path, meta.len()) {
        let m = checkpoint::load(path, Some(DeviceSpec::Cpu))?;
        let c = m.config().clone();
        let (pg, pd) = m.parameter_counts();
        let value = serde_json::json!({
            "path": path.display().to_string(),
            "kind": if m.inference_only() { "export" } else { "checkpoint" }, "bytes": meta.len(),
            "step": m.step(), "parameters": {"generator": pg, "discriminator": pd},
            "averaged_generator": m.has_averaged(), "export": m.inference_only(),
            "config": config_json(&c),
        });
        out.result("info", value, || {
            format!(
                "{}: {}, {:.1} MiB, intact\n\
                 images:      {}x{}x{}\n\
                 drawing steps T: {}\n\
                 classes:     {}\n\
                 z_dim {}, hidden_dim {}, width scale {}, generator upsampling {}, discriminator {}\n\
                 weights seed {}\n\
                 trained:     {} steps\n\
                 parameters:  {} (generator) + {} (discriminator)\n\
                 averaged generator: {}",
                path.display(),
                if m.inference_only() { "gran generator export (sampling only)" } else { "gran checkpoint" },
                meta.len() as f64 / (1 << 20) as f64,
                c.height,
                c.width,
                c.channels,
                c.drawing_steps,
                if c.classes > 0 {
                    format!("{} (class-conditional: gran sample --class K, --per-class)", c.classes)
                } else {
                    "none (unconditional)".to_string()
                },
                c.z_dim,
                c.hidden_dim,
                c.width_scale,
                c.upsampling,
                if c.leaky_relu { "leaky ReLU" } else { "plain ReLU" },
                c.seed,
                m.step(),
                pg,
                pd,
                if m.has_averaged() { "yes (sampling uses it; --raw for the raw one)" } else { "no" }
            )
        });
        return Ok(());
    }
    // Data: each split the path holds.
    let format = data::detect(path)?;
    let args = DataArgs {
        data: path.clone(),
        format,
        files: Default::default(),
        stream: crate::opts::Stream::Off,
        limit: None,
    };
    let kind = match format {
        Format::Idx => "idx",
        Format::Cifar => "cifar10",
        Format::Images => "images",
        Format::Npy => "npy",
        Format::Auto => unreachable!("detect resolves the format"),
    };
    let splits: &[Split] =
        if meta.is_dir() && format != Format::Images { &[Split::Train, Split::Test] } else { &[Split::Train] };
    let mut sets = Vec::new();
    for &split in splits {
        match data::load(&args, split, (32, 32, 3)) {
            Ok(l) => sets.push((split, l)),
            // A folder may hold one split only.
            Err(e) if e.kind == ErrorKind::InvalidArgument && splits.len() > 1 => continue,
            Err(e) if e.kind == ErrorKind::Format || e.kind == ErrorKind::InvalidArgument => {
                return Err(Error::format(format!(
                    "{}: neither a gran checkpoint nor data gran reads ({})",
                    path.display(),
                    crate::exit::one_line(&e.message)
                )))
            }
            Err(e) => return Err(e),
        }
    }
    let value = serde_json::json!({
        "path": path.display().to_string(), "kind": kind,
        "sets": sets.iter().map(|(s, l)| {
            let mut v = data::to_json(&l.data);
            v["split"] = if splits.len() > 1 { s.name() } else { "all" }.into();
            v["source"] = l.source.clone().into();
            v
        }).collect::<Vec<_>>(),
    });
    out.result("info", value, || {
        let mut text = format!("{}: {} data\n", path.display(), kind);
        for (s, l) in &sets {
            let label = if splits.len() > 1 { s.name() } else { "images" };
            text += &format!("{label}: {} ({})\n", data::describe(&l.data), l.source);
        }
        if format == Format::Images {
            text += "(image files are resized when loaded: 32x32x3 here; --image-size and --channels choose)\n";
        }
        text
    });
    Ok(())
}
