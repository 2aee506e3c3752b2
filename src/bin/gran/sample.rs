//! `gran sample` (a PNG grid, or one PNG per image) and `gran steps` (the step-by-step picture,
//! and the drawing as a GIF).

use crate::opts::RunArgs;
use crate::output::make_parent;
use crate::output::Out;
use gran::{gif, png, Error, Result};
use std::path::PathBuf;

/// The most images one command draws.
const MAX_COUNT: u32 = 100_000;

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct SampleArgs {
    /// A gran checkpoint
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The PNG grid to write
    #[arg(short, long, value_name = "FILE", default_value = "samples.png")]
    pub out: PathBuf,
    /// Write one PNG per image into this folder (sample_00000.png, ...) instead of a grid
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "columns"])]
    pub out_dir: Option<PathBuf>,
    /// Number of images
    #[arg(short = 'n', long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=MAX_COUNT as i64))]
    pub count: u32,
    /// Seed of the latents: image i of a seed is always the same, whatever the count
    #[arg(short, long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Images per row of the grid [default: the square root of the count, rounded up]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub columns: Option<u32>,
    /// A class-conditional model: every image of this class [default: image i of a class
    /// drawn from the seed]
    #[arg(long = "class", value_name = "K", conflicts_with = "per_class")]
    pub class: Option<u32>,
    /// A class-conditional model: a grid of one row per class, N images each; column j is
    /// image j of the seed's latents drawn as each class
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "10",
          conflicts_with_all = ["count", "columns", "out_dir"],
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub per_class: Option<u32>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct StepsArgs {
    /// A gran checkpoint
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The PNG to write [default: steps.png, unless --animate is given]
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also (or, without -o, only) write the drawing as a looping GIF: frame t is the grid of
    /// the canvases after drawing step t
    #[arg(long, value_name = "FILE")]
    pub animate: Option<PathBuf>,
    /// Milliseconds each frame of --animate shows
    #[arg(long, value_name = "MS", default_value_t = 400, requires = "animate",
          value_parser = clap::value_parser!(u32).range(1..=gif::MAX_DELAY_MS as i64))]
    pub delay: u32,
    /// Milliseconds the last frame of --animate (the finished images) shows
    #[arg(long, value_name = "MS", default_value_t = 2000, requires = "animate",
          value_parser = clap::value_parser!(u32).range(1..=gif::MAX_DELAY_MS as i64))]
    pub hold: u32,
    /// Images per row of the --animate grid [default: the square root of the count, rounded up]
    #[arg(long, value_name = "N", requires = "animate", value_parser = clap::value_parser!(u32).range(1..))]
    pub columns: Option<u32>,
    /// Number of images (rows of the PNG)
    #[arg(short = 'n', long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub count: u32,
    /// Seed of the latents (the same images as `gran sample` with this seed)
    #[arg(short, long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// A class-conditional model: every image of this class [default: as `gran sample`]
    #[arg(long = "class", value_name = "K")]
    pub class: Option<u32>,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn square_columns(n: u32) -> u32 {
    (n as f64).sqrt().ceil().max(1.0) as u32
}

/// `--per-class N`: N images of each class of `model`, class by class; image j of each class
/// from latent j of `seed`.
fn per_class(model: &gran::Model, seed: u64, n: u32) -> Result<tch::Tensor> {
    let classes = model.config().classes;
    if classes == 0 {
        return Err(Error::invalid("--per-class needs a class-conditional model; this one has no classes"));
    }
    let z = model.latents(seed, 0, n as usize)?;
    let all: Vec<f32> = (0..classes).flat_map(|_| z.iter().copied()).collect();
    let labels: Vec<u32> = (0..classes).flat_map(|k| std::iter::repeat(k).take(n as usize)).collect();
    Ok(model.generate_classes(&all, labels.len(), gran::Classes::Each(&labels), false)?.images)
}

pub fn run_sample(a: &SampleArgs, out: &Out) -> Result<()> {
    let model = a.run.load(&a.model)?;
    let c = model.config().clone();
    let (images, count) = match a.per_class {
        Some(n) => (per_class(&model, a.seed, n)?, n * c.classes),
        None => {
            let classes = a.class.map_or(gran::Classes::Drawn, gran::Classes::All);
            (model.sample_classes(a.seed, a.count as usize, classes, false)?.images, a.count)
        }
    };
    let (files, columns) = match &a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            let mut files = Vec::with_capacity(count as usize);
            for i in 0..count as i64 {
                let path = dir.join(format!("sample_{i:05}.png"));
                png::write_grid(&path, &images.f_narrow(0, i, 1)?, 1)?;
                files.push(path.display().to_string());
            }
            (files, 1)
        }
        None => {
            let columns = a.per_class.or(a.columns).unwrap_or_else(|| square_columns(count));
            make_parent(&a.out)?;
            png::write_grid(&a.out, &images, columns)?;
            (vec![a.out.display().to_string()], columns)
        }
    };
    let value = serde_json::json!({
        "model": a.model.display().to_string(), "count": count, "seed": a.seed,
        "height": c.height, "width": c.width, "channels": c.channels,
        "columns": columns, "grid": a.out_dir.is_none(), "files": files,
        "class": a.class, "per_class": a.per_class, "classes": c.classes,
    });
    out.result("sample", value, || match &a.out_dir {
        Some(dir) => {
            format!("wrote {} images of {}x{}x{} to {}/", count, c.height, c.width, c.channels, dir.display())
        }
        None if a.per_class.is_some() => format!(
            "wrote {} ({} classes, one per row, {} images each of {}x{}x{}, seed {})",
            a.out.display(),
            c.classes,
            columns,
            c.height,
            c.width,
            c.channels,
            a.seed
        ),
        None => format!(
            "wrote {} ({} images of {}x{}x{}, {} per row, seed {})",
            a.out.display(),
            count,
            c.height,
            c.width,
            c.channels,
            columns,
            a.seed
        ),
    });
    Ok(())
}

pub fn run_steps(a: &StepsArgs, out: &Out) -> Result<()> {
    let model = a.run.load(&a.model)?;
    let c = model.config().clone();
    let classes = a.class.map_or(gran::Classes::Drawn, gran::Classes::All);
    let canvases = model
        .sample_classes(a.seed, a.count as usize, classes, true)?
        .canvases
        .ok_or_else(|| Error::internal("sampling with steps gave no canvases"))?;
    let png_path = match (&a.out, &a.animate) {
        (Some(p), _) => Some(p.clone()),
        (None, None) => Some(PathBuf::from("steps.png")),
        (None, Some(_)) => None,
    };
    let mut files = Vec::new();
    if let Some(path) = &png_path {
        // [T, N, C, H, W] -> [N, T, C, H, W]: one row per image, one column per step.
        let s = canvases.size();
        let rows = canvases.f_transpose(0, 1)?.f_contiguous()?.f_view([s[0] * s[1], s[2], s[3], s[4]])?;
        make_parent(path)?;
        png::write_grid(path, &rows, c.drawing_steps)?;
        files.push(path.display().to_string());
    }
    let columns = a.columns.unwrap_or_else(|| square_columns(a.count));
    if let Some(path) = &a.animate {
        let frames: Vec<_> =
            (0..c.drawing_steps as i64).map(|t| canvases.f_get(t)).collect::<std::result::Result<_, _>>()?;
        make_parent(path)?;
        gif::write_animation(path, &frames, columns, a.delay, a.hold)?;
        files.push(path.display().to_string());
    }
    let value = serde_json::json!({
        "model": a.model.display().to_string(), "count": a.count, "seed": a.seed, "drawing_steps": c.drawing_steps,
        "height": c.height, "width": c.width, "channels": c.channels, "files": files,
    });
    out.result("steps", value, || {
        let mut lines = Vec::new();
        if let Some(p) = &png_path {
            lines.push(format!(
                "wrote {} ({} rows of images x {} columns, the canvas after each drawing step)",
                p.display(),
                a.count,
                c.drawing_steps
            ));
        }
        if let Some(p) = &a.animate {
            lines.push(format!(
                "wrote {} ({} frames of {} images, {} per row: the canvas after each drawing step)",
                p.display(),
                c.drawing_steps,
                a.count,
                columns
            ));
        }
        lines.join("\n")
    });
    Ok(())
}
