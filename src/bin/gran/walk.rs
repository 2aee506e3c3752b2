//! `gran walk`: a latent walk as a looping GIF.

use crate::opts::RunArgs;
use crate::output::{make_parent, Out};
use crate::sample::square_columns;
use gran::{gif, Result, MAX_WALK_FRAMES};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// A gran checkpoint or generator export
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The GIF to write
    #[arg(short, long, value_name = "FILE", default_value = "walk.gif")]
    pub out: PathBuf,
    /// The walk starts at the images of this seed (as `gran sample --seed` draws them)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub from_seed: u64,
    /// ... and ends at the images of this seed
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub to_seed: u64,
    /// Frames from the first seed's images to the second's, both included
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(2..=MAX_WALK_FRAMES as i64))]
    pub frames: u32,
    /// Walk back to the start after the end, so the loop has no jump
    #[arg(long)]
    pub bounce: bool,
    /// Number of images walking side by side (image i walks from image i of one seed to image i
    /// of the other)
    #[arg(short = 'n', long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub count: u32,
    /// Images per row [default: the square root of the count, rounded up]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub columns: Option<u32>,
    /// A class-conditional model: every image of this class [default: image i keeps the class
    /// `gran sample --seed FROM` draws for it]
    #[arg(long = "class", value_name = "K")]
    pub class: Option<u32>,
    /// Milliseconds each frame shows
    #[arg(long, value_name = "MS", default_value_t = 80,
          value_parser = clap::value_parser!(u32).range(1..=gif::MAX_DELAY_MS as i64))]
    pub delay: u32,
    /// Milliseconds the last frame shows
    #[arg(long, value_name = "MS", default_value_t = 80,
          value_parser = clap::value_parser!(u32).range(1..=gif::MAX_DELAY_MS as i64))]
    pub hold: u32,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(a: &Args, out: &Out) -> Result<()> {
    let model = a.run.load(&a.model)?;
    let c = model.config().clone();
    let classes = a.class.map_or(gran::Classes::Drawn, gran::Classes::All);
    let mut frames = model.walk(a.from_seed, a.to_seed, a.count as usize, a.frames as usize, classes)?;
    if a.bounce {
        // The way back without repeating either end: the loop's next frame is the first.
        let back: Vec<_> = frames[1..frames.len() - 1].iter().rev().map(|f| f.shallow_clone()).collect();
        frames.extend(back);
    }
    let columns = a.columns.unwrap_or_else(|| square_columns(a.count));
    make_parent(&a.out)?;
    gif::write_animation(&a.out, &frames, columns, a.delay, a.hold)?;
    let value = serde_json::json!({
        "model": a.model.display().to_string(), "from_seed": a.from_seed, "to_seed": a.to_seed,
        "frames": frames.len(), "count": a.count, "columns": columns,
        "height": c.height, "width": c.width, "channels": c.channels, "file": a.out.display().to_string(),
    });
    out.result("walk", value, || {
        format!(
            "wrote {} ({} frames of {} images, {} per row: seed {} to seed {}{})",
            a.out.display(),
            frames.len(),
            a.count,
            columns,
            a.from_seed,
            a.to_seed,
            if a.bounce { " and back" } else { "" }
        )
    });
    Ok(())
}
