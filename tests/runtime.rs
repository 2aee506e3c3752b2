//! libgran_runtime against libgran on the same files: the latents bit for bit, the pixels
//! within 1/255, for T = 1, 3 and 5, 28x28x1, 32x32x3 and 64x64x3, float32 and bfloat16
//! exports and a training checkpoint's two generators; and the runtime's own promises (an image
//! independent of the count and of the threads, to float rounding).
//!
//! The runtime is the shared library `make runtime` builds (target/release/libgran_runtime.so),
//! opened with dlopen: it exports the same gran_* names as libgran, which this test links.

use gran::checkpoint::{self, Storage};
use gran::data::{pixels, Dataset, PixelFormat};
use gran::{train, Choice, DeviceSpec, Model, ModelConfig, TrainConfig, Upsampling};
use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};

mod common;

type Status = i32;

/// The runtime's functions, looked up by name in its shared library.
struct Runtime {
    load: unsafe extern "C" fn(*const c_char, *const c_void, *mut u64) -> Status,
    free: unsafe extern "C" fn(u64) -> Status,
    sample: unsafe extern "C" fn(u64, u64, u32, u32, *mut c_void, usize) -> Status,
    sample_steps: unsafe extern "C" fn(u64, u64, u32, u32, *mut c_void, usize) -> Status,
    latents: unsafe extern "C" fn(u64, u64, u32, *mut f32, usize) -> Status,
    set_generator: unsafe extern "C" fn(u64, u32) -> Status,
    set_threads: unsafe extern "C" fn(i32) -> Status,
    last_error: unsafe extern "C" fn(*mut c_char, usize) -> usize,
}

const F32_CHW: u32 = 2;
const U8_HWC: u32 = 0;

impl Runtime {
    fn open() -> Runtime {
        let path = common::repo_dir().join("target/release/libgran_runtime.so");
        assert!(path.exists(), "{} is missing: build it with `make runtime`", path.display());
        let c = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; RTLD_LOCAL keeps its gran_* names apart from libgran's.
        let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!lib.is_null(), "dlopen {} failed", path.display());
        let sym = |name: &str| {
            let n = CString::new(name).unwrap();
            // SAFETY: a library handle from dlopen and a NUL-terminated name.
            let p = unsafe { libc::dlsym(lib, n.as_ptr()) };
            assert!(!p.is_null(), "the runtime does not export {name}");
            p
        };
        // SAFETY: each symbol is the function of that name in include/gran_runtime.h, whose
        // signature the field's type repeats (the field's type is each transmute's annotation).
        #[allow(clippy::missing_transmute_annotations)]
        unsafe {
            Runtime {
                load: std::mem::transmute(sym("gran_model_load")),
                free: std::mem::transmute(sym("gran_model_free")),
                sample: std::mem::transmute(sym("gran_sample")),
                sample_steps: std::mem::transmute(sym("gran_sample_steps")),
                latents: std::mem::transmute(sym("gran_latents")),
                set_generator: std::mem::transmute(sym("gran_model_set_generator")),
                set_threads: std::mem::transmute(sym("gran_set_num_threads")),
                last_error: std::mem::transmute(sym("gran_last_error")),
            }
        }
    }

    fn check(&self, s: Status) {
        if s != 0 {
            let mut buf = vec![0u8; 1024];
            // SAFETY: a buffer of its stated length.
            let n = unsafe { (self.last_error)(buf.as_mut_ptr() as *mut c_char, buf.len()) };
            panic!("runtime status {s}: {}", String::from_utf8_lossy(&buf[..n.min(1023)]));
        }
    }

    fn load(&self, path: &Path) -> u64 {
        let c = CString::new(path.to_str().unwrap()).unwrap();
        let mut m = 0u64;
        // SAFETY: a NUL-terminated path, NULL device, a valid out pointer.
        self.check(unsafe { (self.load)(c.as_ptr(), std::ptr::null(), &mut m) });
        m
    }

    /// `count` images (or with `steps` their T canvases) of `seed` in `format`.
    fn draw(&self, m: u64, seed: u64, count: u32, format: u32, bytes: usize, steps: bool) -> Vec<u8> {
        let mut out = vec![0u8; bytes];
        let f = if steps { self.sample_steps } else { self.sample };
        // SAFETY: `out` holds `bytes` writable bytes.
        self.check(unsafe { f(m, seed, count, format, out.as_mut_ptr() as *mut c_void, bytes) });
        out
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `count` images of `size x size x channels` with structure (bars and a gradient), for a few
/// training steps that move every batch-norm statistic.
fn dataset(count: usize, size: usize, channels: usize) -> Dataset {
    let mut v = vec![0u8; count * channels * size * size];
    for (i, px) in v.iter_mut().enumerate() {
        let (img, rest) = (i / (channels * size * size), i % (channels * size * size));
        let (c, y, x) = (rest / (size * size), rest % (size * size) / size, rest % size);
        *px = if (x + 3 * img + c) % 9 < 4 { 230 } else { (y * 255 / size) as u8 / 3 };
    }
    let t = tch::Tensor::from_slice(&v).view([count as i64, channels as i64, size as i64, size as i64]);
    Dataset::new(t, None).unwrap()
}

fn trained(size: u32, channels: u32, steps: u32, width_scale: f32) -> Model {
    trained_with_classes(size, channels, steps, width_scale, 0)
}

/// `trained`, class-conditional with `classes` classes (0: unconditional) on labels `i % classes`.
fn trained_with_classes(size: u32, channels: u32, steps: u32, width_scale: f32, classes: u32) -> Model {
    trained_as(config(size, channels, steps, width_scale, classes))
}

fn config(size: u32, channels: u32, steps: u32, width_scale: f32, classes: u32) -> ModelConfig {
    ModelConfig {
        classes,
        height: size,
        width: size,
        channels,
        drawing_steps: steps,
        width_scale,
        device: DeviceSpec::Cpu,
        seed: 9,
        ..Default::default()
    }
}

/// A model of `cfg` after 3 training steps (labels `i % classes` when conditional).
fn trained_as(cfg: ModelConfig) -> Model {
    let classes = cfg.classes;
    let (size, channels) = (cfg.height, cfg.channels);
    let m = Model::new(&cfg).unwrap();
    let tc = TrainConfig {
        iterations: 3,
        batch_size: 8,
        report_every: 0,
        ema_start: 1,
        ema_decay: 0.5,
        ..Default::default()
    };
    let mut data = dataset(32, size as usize, channels as usize);
    if classes > 0 {
        let labels = (0..32).map(|i| (i % classes) as u8).collect();
        data = Dataset::new(data.images().unwrap().shallow_clone(), Some(labels)).unwrap();
    }
    train(&m, &data, &tc, &mut |_| false).unwrap();
    m
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gran-runtime-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The runtime's images and canvases of `path` against libgran's model `reference`, for seed
/// 7: the latents bit for bit, floats within 1/255, bytes within 1. Returns the largest float
/// difference.
fn compare(rt: &Runtime, m: u64, reference: &Model, what: &str) -> f32 {
    let (count, seed) = (5usize, 7u64);
    let cfg = reference.config().clone();
    let image = (cfg.channels * cfg.height * cfg.width) as usize;
    let mut z = vec![0f32; count * cfg.z_dim as usize];
    // SAFETY: `z` holds its length in floats.
    rt.check(unsafe { (rt.latents)(m, seed, count as u32, z.as_mut_ptr(), z.len()) });
    let want_z = reference.latents(seed, 0, count).unwrap();
    assert!(z.iter().zip(&want_z).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: latents differ");

    let want = reference.sample(seed, count, true).unwrap();
    let want_images: Vec<f32> = want.images.flatten(0, -1).try_into().unwrap();
    let want_canvases: Vec<f32> = want.canvases.unwrap().flatten(0, -1).try_into().unwrap();
    let images = floats(&rt.draw(m, seed, count as u32, F32_CHW, count * image * 4, false));
    let canvases =
        floats(&rt.draw(m, seed, count as u32, F32_CHW, cfg.drawing_steps as usize * count * image * 4, true));
    let (d_img, d_steps) = (max_diff(&images, &want_images), max_diff(&canvases, &want_canvases));
    assert!(d_img < 1.0 / 255.0 && d_steps < 1.0 / 255.0, "{what}: images differ by {d_img}, canvases by {d_steps}");
    let bytes = rt.draw(m, seed, count as u32, U8_HWC, count * image, false);
    let want_bytes = pixels::from_tensor(&want.images, PixelFormat::U8Hwc).unwrap();
    let worst = bytes.iter().zip(&want_bytes).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "{what}: bytes differ by {worst}");
    println!("{what}: largest difference {d_img:.2e} (images), {d_steps:.2e} (canvases), {worst}/255 (bytes)");
    d_img.max(d_steps)
}

#[test]
fn exports_draw_what_libgran_draws() {
    let rt = Runtime::open();
    let dir = temp_dir("exports");
    for (size, channels, steps, scale) in
        [(28, 1, 1, 0.25), (28, 1, 3, 0.25), (28, 1, 5, 0.25), (32, 3, 3, 0.125), (64, 3, 3, 0.0625)]
    {
        let model = trained(size, channels, steps, scale);
        for storage in [Storage::F32, Storage::Bf16] {
            let what = format!("{size}x{size}x{channels} T={steps} {storage:?}");
            let path = dir.join(format!("g{size}_{channels}_{steps}_{storage:?}.safetensors"));
            checkpoint::export(&model, &path, storage).unwrap();
            let reference = checkpoint::load(&path, Some(DeviceSpec::Cpu)).unwrap();
            let m = rt.load(&path);
            compare(&rt, m, &reference, &what);
            rt.check(unsafe { (rt.free)(m) });
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_draws_with_either_generator() {
    let rt = Runtime::open();
    let dir = temp_dir("checkpoint");
    // Each size has its own discriminator and optimizer layout, which the runtime checks too.
    for (size, channels, scale) in [(28, 1, 0.25), (32, 3, 0.125), (64, 3, 0.0625)] {
        let model = trained(size, channels, 3, scale);
        let path = dir.join(format!("model{size}.gran"));
        checkpoint::save(&model, &path).unwrap();
        let reference = checkpoint::load(&path, Some(DeviceSpec::Cpu)).unwrap();
        assert!(reference.has_averaged());
        let m = rt.load(&path);
        compare(&rt, m, &reference, &format!("{size}x{size}x{channels} checkpoint, averaged generator"));
        reference.set_generator_choice(Choice::Raw);
        rt.check(unsafe { (rt.set_generator)(m, 1) });
        compare(&rt, m, &reference, &format!("{size}x{size}x{channels} checkpoint, raw generator"));
        rt.check(unsafe { (rt.free)(m) });
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A class-conditional model: the runtime draws the classes libgran draws for each (seed, i),
/// and the same pixels, from an export and from a checkpoint.
#[test]
fn conditional_models_draw_what_libgran_draws() {
    let rt = Runtime::open();
    let dir = temp_dir("conditional");
    for (size, channels, classes) in [(28, 1, 10), (32, 3, 4)] {
        let model = trained_with_classes(size, channels, 3, 0.125, classes);
        let export = dir.join(format!("c{size}.safetensors"));
        checkpoint::export(&model, &export, Storage::F32).unwrap();
        let full = dir.join(format!("c{size}.gran"));
        checkpoint::save(&model, &full).unwrap();
        for path in [&export, &full] {
            let reference = checkpoint::load(path, Some(DeviceSpec::Cpu)).unwrap();
            assert_eq!(reference.config().classes, classes);
            let m = rt.load(path);
            compare(&rt, m, &reference, &format!("{size}x{size}x{channels}, {classes} classes, {}", path.display()));
            rt.check(unsafe { (rt.free)(m) });
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A generator that upsamples and convolves instead of transposed convolutions: the runtime
/// reads its layout and draws libgran's pixels, from an export and from a checkpoint.
#[test]
fn resizing_generators_draw_what_libgran_draws() {
    let rt = Runtime::open();
    let dir = temp_dir("resize");
    for (size, channels, steps, scale) in [(28, 1, 3, 0.25), (32, 3, 2, 0.125), (64, 3, 1, 0.0625)] {
        let cfg = ModelConfig { upsampling: Upsampling::Resize, ..config(size, channels, steps, scale, 0) };
        let model = trained_as(cfg);
        let export = dir.join(format!("r{size}.safetensors"));
        checkpoint::export(&model, &export, Storage::F32).unwrap();
        let full = dir.join(format!("r{size}.gran"));
        checkpoint::save(&model, &full).unwrap();
        for path in [&export, &full] {
            let reference = checkpoint::load(path, Some(DeviceSpec::Cpu)).unwrap();
            assert_eq!(reference.config().upsampling, Upsampling::Resize);
            let m = rt.load(path);
            compare(&rt, m, &reference, &format!("{size}x{size}x{channels} resizing, {}", path.display()));
            rt.check(unsafe { (rt.free)(m) });
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_image_depends_on_its_seed_and_index_alone() {
    let rt = Runtime::open();
    let dir = temp_dir("independent");
    let path = dir.join("g.safetensors");
    checkpoint::export(&trained(32, 3, 2, 0.125), &path, Storage::F32).unwrap();
    let m = rt.load(&path);
    let image = 3 * 32 * 32 * 4;
    rt.check(unsafe { (rt.set_threads)(1) });
    let nine = rt.draw(m, 3, 9, F32_CHW, 2 * 9 * image, true);
    let two = rt.draw(m, 3, 2, F32_CHW, 2 * image, false);
    rt.check(unsafe { (rt.set_threads)(4) });
    let threaded = rt.draw(m, 3, 9, F32_CHW, 2 * 9 * image, true);
    rt.check(unsafe { (rt.set_threads)(1) });
    // Float rounding aside (the products' blocking follows the batch a thread draws), as in
    // libgran.
    let d = max_diff(&floats(&nine), &floats(&threaded));
    assert!(d < 1e-6, "threads change an image by {d}");
    // The last block of the canvases is the images; their first two are those of a count of 2.
    let d = max_diff(&floats(&nine[9 * image..11 * image]), &floats(&two));
    assert!(d < 1e-6, "the count changes an image by {d}");
    assert!(floats(&nine[..image]) != floats(&nine[9 * image..10 * image]), "the canvases differ by step");
    rt.check(unsafe { (rt.free)(m) });
    std::fs::remove_dir_all(&dir).unwrap();
}
