//! The main job: train a T = 3 GRAN on the built-in MNIST digits (on the CPU unless a GPU is
//! present), then write a checkpoint, an 8x8 grid of samples and a step-by-step picture (rows:
//! images; columns: the canvas after each drawing step).
//!
//!     cargo run --release --example demo -- [--data DIR] [--out DIR] [--iterations N]
//!                                           [--steps T] [--width-scale S] [--seed N]

use gran::data::idx::load_idx;
use gran::{checkpoint, png, train, DeviceSpec, Model, ModelConfig, TrainConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    data: PathBuf,
    out: PathBuf,
    iterations: u64,
    steps: u32,
    width_scale: f32,
    seed: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        data: "data/mnist10k".into(),
        out: "out".into(),
        iterations: 2000,
        steps: 3,
        width_scale: 0.25,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--data" => a.data = value.clone().into(),
            "--out" => a.out = value.clone().into(),
            "--iterations" => a.iterations = value.parse().map_err(|_| bad())?,
            "--steps" => a.steps = value.parse().map_err(|_| bad())?,
            "--width-scale" => a.width_scale = value.parse().map_err(|_| bad())?,
            "--seed" => a.seed = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

fn run(a: &Args) -> gran::Result<()> {
    let t0 = Instant::now();
    let data = load_idx(&a.data.join("train-images-idx3-ubyte.gz"), Some(&a.data.join("train-labels-idx1-ubyte.gz")))?;
    println!("data: {} images of {}x{} from {}", data.count(), data.height(), data.width(), a.data.display());
    let cfg = ModelConfig {
        steps: a.steps,
        width_scale: a.width_scale,
        device: DeviceSpec::Auto,
        seed: a.seed,
        ..Default::default()
    };
    let model = Model::new(&cfg)?;
    let (g, d) = model.parameter_counts();
    println!("model: T = {}, width scale {}, {g} + {d} parameters, on {:?}", a.steps, a.width_scale, model.device());
    let tc = TrainConfig { iterations: a.iterations, seed: a.seed, report_every: 200, ..Default::default() };
    let last = train(&model, &data, &tc, &mut |p| {
        println!(
            "step {:5}/{}  D loss {:.3}  G loss {:.3}  D(x) {:.2}  D(G(z)) {:.2}  {:.0} img/s{}",
            p.step,
            p.total_steps,
            p.d_loss,
            p.g_loss,
            p.d_real,
            p.d_fake,
            p.images_per_s,
            if p.d_dominates { "  (D wins outright)" } else { "" }
        );
        false
    })?;
    std::fs::create_dir_all(&a.out).map_err(|e| gran::Error::io(a.out.display(), e))?;
    let tag = format!("t{}", a.steps);
    let ckpt = a.out.join(format!("gran_{tag}.safetensors"));
    checkpoint::save(&model, &ckpt)?;
    let samples = model.sample(a.seed, 64, true)?;
    let grid = a.out.join(format!("samples_{tag}.png"));
    png::write_grid(&grid, &samples.images, 8)?;
    // Rows: 8 images; columns: the canvas after each step.
    let canvases = samples.canvases.expect("asked for steps").narrow(1, 0, 8).transpose(0, 1);
    let canvases = canvases.reshape([8 * a.steps as i64, 1, 28, 28]);
    let steps = a.out.join(format!("steps_{tag}.png"));
    png::write_grid(&steps, &canvases, a.steps)?;
    println!("final: D(x) {:.2}, D(G(z)) {:.2}", last.d_real, last.d_fake);
    println!("wrote {}, {} and {}", ckpt.display(), grid.display(), steps.display());
    println!("wall time {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
