//! Writes what the native runtime draws for one model, seed and count, as raw little-endian
//! files, so that another build of the runtime (the WebAssembly module in Node,
//! bindings/js/test.mjs) can be compared with it value for value.
//!
//!     cargo run --release -p gran-runtime --example dump -- MODEL SEED COUNT OUT_DIR
//!
//! OUT_DIR receives:
//!   latents.f32        count x z_dim floats (the latents of images 0 .. count-1 of SEED)
//!   images.f32         count images, F32_CHW
//!   steps.f32          the canvas after each step, [T][count][C][H][W], F32_CHW
//!   images.u8          count images, U8_HWC
//!   steps.u8           [T][count][H][W][C], U8_HWC
//!   meta.json          the model path, seed, count, the configuration, and the median time of
//!                      one image (one thread), for the comparison's report
//! Floats are float32 little-endian whatever the host's byte order.

use gran_runtime::{latents_into, Classes, Latents, Model, PixelFormat};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

fn usage() -> ExitCode {
    eprintln!("usage: dump MODEL SEED COUNT OUT_DIR");
    ExitCode::from(2)
}

/// `count` images (or their T canvases) in `format`, as the C functions write them.
fn draw(model: &Model, seed: u64, count: usize, every_step: bool, format: PixelFormat) -> Result<Vec<u8>, String> {
    let len = model.pixel_bytes(format, count, every_step).map_err(|e| e.message)?;
    let mut out = vec![0u8; len];
    model
        .draw_pixels(Latents::Seed(seed), Classes::Drawn, count, every_step, format, &mut out)
        .map_err(|e| e.message)?;
    if format == PixelFormat::F32Chw {
        // The runtime writes native-endian floats; the files hold little-endian ones.
        for v in out.chunks_exact_mut(4) {
            let x = f32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
            v.copy_from_slice(&x.to_le_bytes());
        }
    }
    Ok(out)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The median wall time of one image (one thread, after a warm-up), in milliseconds.
fn one_image_ms(model: &Model, seed: u64) -> Result<f64, String> {
    let len = model.pixel_bytes(PixelFormat::U8Hwc, 1, false).map_err(|e| e.message)?;
    let mut out = vec![0u8; len];
    let mut times = Vec::with_capacity(50);
    for i in 0..60 {
        let start = Instant::now();
        model
            .draw_pixels(Latents::Seed(seed), Classes::Drawn, 1, false, PixelFormat::U8Hwc, &mut out)
            .map_err(|e| e.message)?;
        if i >= 10 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn run(model_path: &Path, seed: u64, count: usize, dir: &Path) -> Result<(), String> {
    let model = Model::load(model_path).map_err(|e| e.message)?;
    let c = model.config().clone();
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;

    let mut z = vec![0f32; count * c.z_dim as usize];
    latents_into(seed, c.z_dim as usize, 0, &mut z);
    let z_bytes: Vec<u8> = z.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(dir, "latents.f32", &z_bytes)?;
    write(dir, "images.f32", &draw(&model, seed, count, false, PixelFormat::F32Chw)?)?;
    write(dir, "steps.f32", &draw(&model, seed, count, true, PixelFormat::F32Chw)?)?;
    write(dir, "images.u8", &draw(&model, seed, count, false, PixelFormat::U8Hwc)?)?;
    write(dir, "steps.u8", &draw(&model, seed, count, true, PixelFormat::U8Hwc)?)?;

    gran_runtime::set_num_threads(1);
    let ms = one_image_ms(&model, seed)?;
    // The path goes into JSON: escape what JSON requires (quotes, backslashes, controls).
    let path: String = model_path
        .display()
        .to_string()
        .chars()
        .flat_map(|ch| match ch {
            '"' | '\\' => vec!['\\', ch],
            ch if ch.is_control() => format!("\\u{:04x}", ch as u32).chars().collect(),
            ch => vec![ch],
        })
        .collect();
    // The seed is a string: JSON numbers lose integers past 2^53.
    let meta = format!(
        "{{\n  \"model\": \"{path}\",\n  \"seed\": \"{seed}\",\n  \"count\": {count},\n  \"height\": {},\n  \
         \"width\": {},\n  \"channels\": {},\n  \"steps\": {},\n  \"z_dim\": {},\n  \"native_one_image_ms\": {ms:.4}\n}}\n",
        c.height, c.width, c.channels, c.steps, c.z_dim
    );
    write(dir, "meta.json", meta.as_bytes())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, seed, count, dir] = args.as_slice() else {
        return usage();
    };
    let (Ok(seed), Ok(count)) = (seed.parse::<u64>(), count.parse::<usize>()) else {
        return usage();
    };
    if count == 0 {
        eprintln!("dump: COUNT must be at least 1");
        return ExitCode::from(2);
    }
    match run(Path::new(model), seed, count, &PathBuf::from(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dump: {e}");
            ExitCode::FAILURE
        }
    }
}
