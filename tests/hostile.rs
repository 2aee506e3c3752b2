//! Hostile input: sizes, files and values that are legal on their face must come back as a
//! status, never as a signal, a hang or unbounded memory.
//!
//! Every case runs in a child process (this program run again with `--case NAME`), under a
//! time limit, so an abort, a crash or a hang fails that case instead of killing the runner.
//! Cases that need a memory limit set `RLIMIT_AS` in their own child. The fuzz cases mutate
//! real checkpoints and IDX files with a fixed seed; `GRAN_FUZZ_TRIES=N` runs more by hand.
//!
//! Runs without the test harness (`harness = false`): it prints one line per case and closes
//! with "hostile: N passed, N failed".

use gran::ffi::dataset::{gran_dataset_free, gran_dataset_from_pixels};
use gran::ffi::evaluator::{gran_evaluate_model, gran_evaluator_train, GranEvaluatorConfig, GranQuality};
use gran::ffi::gam::{gran_gam, gran_gam_config_init, GranGamConfig, GranGamResult};
use gran::ffi::model::{gran_model_config_init, gran_model_create, gran_model_free};
use gran::ffi::sample::{gran_discriminate, gran_generate, gran_latents, gran_sample, gran_write_png};
use gran::ffi::status::*;
use gran::ffi::types::*;
use gran::{checkpoint, train, DeviceSpec, ErrorKind, Model, ModelConfig, TrainConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/child.rs"]
mod child;

/// A case that runs longer than this is a hang.
const HANG_LIMIT: Duration = Duration::from_secs(120);

/// An edit of a checkpoint's parts, for the hostile-file cases.
type Edit = Box<dyn Fn(&mut Parts)>;
type Case = fn() -> Result<String, String>;

const CASES: &[(&str, Case)] = &[
    ("sample_count_past_the_buffer", sample_count_past_the_buffer),
    ("sample_many_images_under_a_memory_limit", sample_many_images_under_a_memory_limit),
    ("gam_and_evaluation_with_u32_max_samples", gam_and_evaluation_with_u32_max_samples),
    ("pixels_and_png_with_u32_max_dimensions", pixels_and_png_with_u32_max_dimensions),
    ("model_create_under_a_memory_limit_is_out_of_memory", model_create_under_a_memory_limit_is_out_of_memory),
    ("small_checkpoint_claiming_a_large_model", small_checkpoint_claiming_a_large_model),
    ("non_regular_files_are_io_errors", non_regular_files_are_io_errors),
    ("checkpoint_values_are_validated", checkpoint_values_are_validated),
    ("step_counter_at_its_maximum", step_counter_at_its_maximum),
    ("idx_gzip_declaring_gigabytes", idx_gzip_declaring_gigabytes),
    ("zip_claiming_more_than_it_holds", zip_claiming_more_than_it_holds),
    ("fuzz_checkpoints", fuzz_checkpoints),
    ("fuzz_idx", fuzz_idx),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let name = args.get(i + 1).map(String::as_str).unwrap_or("");
        let case = CASES.iter().find(|(n, _)| *n == name).map(|c| c.1);
        if name == "save_forever" {
            save_forever(Path::new(&args[i + 2]));
        }
        child::report(name, case.map(|f| f()));
    }
    // The harness's own filter: `cargo test --test hostile -- NAME` runs the cases matching NAME.
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned().unwrap_or_default();
    let (mut passed, mut failed) = (0, 0);
    let mut run = |name: &str, outcome: Result<String, String>| match outcome {
        Ok(detail) => {
            passed += 1;
            println!("case {name} ... ok: {detail}");
        }
        Err(why) => {
            failed += 1;
            println!("case {name} ... FAILED: {why}");
        }
    };
    for (name, _) in CASES.iter().filter(|(n, _)| n.contains(&filter)) {
        run(name, in_child(name, &[]));
    }
    if "kill_during_save".contains(&filter) {
        run("kill_during_save", kill_during_save());
    }
    println!("hostile: {passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// Runs case `name` in a child process (tests/support/child.rs), under [`HANG_LIMIT`].
fn in_child(name: &str, extra: &[&str]) -> Result<String, String> {
    child::in_child(name, extra, HANG_LIMIT)
}

// ---------------------------------------------------------------------------------------------
// Helpers of the child cases

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

fn expect_status(got: GranStatus, want: GranStatus, what: &str) -> Result<(), String> {
    let mut buf = [0 as std::ffi::c_char; 512];
    // SAFETY: gran_last_error writes at most buf.len() bytes, NUL-terminated.
    unsafe { gran::ffi::version::gran_last_error(buf.as_mut_ptr(), buf.len()) };
    let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
    ensure(got == want, || format!("{what}: status {got} ({msg}), expected {want}"))
}

fn expect_kind<T>(got: gran::Result<T>, want: ErrorKind, what: &str) -> Result<String, String> {
    match got {
        Err(e) if e.kind == want => Ok(e.message),
        Err(e) => Err(format!("{what}: {:?} ({}), expected {want:?}", e.kind, e.message)),
        Ok(_) => Err(format!("{what}: succeeded, expected {want:?}")),
    }
}

/// The value of a line of /proc/self/status, in KiB (VmRSS, VmHWM, VmSize).
fn proc_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident size (VmHWM) to the current one, so a later VmHWM reading is the
/// peak of what ran in between.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}

/// Limits this process's address space to what it uses now plus `mib` MiB.
fn limit_memory(mib: u64) {
    let limit = proc_kib("VmSize") * 1024 + (mib << 20);
    let r = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: a valid rlimit for this process.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) };
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gran-hostile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny(z_dim: u32) -> ModelConfig {
    ModelConfig {
        drawing_steps: 1,
        width_scale: 0.0625,
        z_dim,
        hidden_dim: 8,
        device: DeviceSpec::Cpu,
        seed: 3,
        ..Default::default()
    }
}

fn c_model(z_dim: u32) -> Result<GranModel, String> {
    let mut mc: GranModelConfig = unsafe { std::mem::zeroed() };
    let mut m: GranModel = 0;
    // SAFETY: valid pointers to a config and a handle.
    unsafe {
        gran_model_config_init(&mut mc);
        (mc.z_dim, mc.hidden_dim, mc.width_scale, mc.steps) = (z_dim, 8, 0.0625, 1);
        mc.device = GranDevice { kind: GRAN_DEVICE_CPU, index: 0 };
        expect_status(gran_model_create(&mc, &mut m), GRAN_STATUS_OK, "gran_model_create")?;
    }
    Ok(m)
}

/// A labelled dataset of `count` synthetic 28x28 digits-like squares (labels 0..9).
fn c_dataset(count: usize) -> Result<GranDataset, String> {
    let mut px = vec![0u8; count * 784];
    for (i, img) in px.chunks_exact_mut(784).enumerate() {
        let (oy, ox) = (2 + i % 14, 2 + (i / 14) % 14);
        for y in oy..oy + 12 {
            img[y * 28 + ox..y * 28 + ox + 12].fill(255);
        }
    }
    let mut d: GranDataset = 0;
    // SAFETY: `px` holds count 28x28x1 images.
    let s = unsafe { gran_dataset_from_pixels(px.as_ptr().cast(), count, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &mut d) };
    expect_status(s, GRAN_STATUS_OK, "gran_dataset_from_pixels")?;
    Ok(d)
}

fn trained_checkpoint(dir: &Path) -> PathBuf {
    let m = Model::new(&tiny(8)).unwrap();
    let data =
        gran::Dataset::new(tch::Tensor::rand([64, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu)), None).unwrap();
    let cfg = TrainConfig { iterations: 3, batch_size: 16, report_every: 0, ..Default::default() };
    train(&m, &data, &cfg, &mut |_| false).unwrap();
    let path = dir.join("ok.safetensors");
    checkpoint::save(&m, &path).unwrap();
    path
}

/// A checkpoint's parts, for editing: metadata and each tensor's shape and values.
struct Parts {
    meta: BTreeMap<String, String>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

fn read_parts(path: &Path) -> Parts {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap().into_iter().collect();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let values = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            (name, (v.shape().to_vec(), values))
        })
        .collect();
    Parts { meta, tensors }
}

/// Writes `parts` as a checkpoint with a correct checksum (so only the edit is wrong).
fn write_parts(parts: &Parts, path: &Path) {
    let mut meta = parts.meta.clone();
    meta.insert("checksum".into(), format!("{:016x}", checkpoint::checksum(parts_bytes(parts).iter())));
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = parts
        .tensors
        .iter()
        .map(|(n, (shape, v))| (n.clone(), shape.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, shape, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap())
        })
        .collect();
    let meta: std::collections::HashMap<String, String> = meta.into_iter().collect();
    std::fs::write(path, safetensors::serialize(views, &Some(meta)).unwrap()).unwrap();
}

fn parts_bytes(parts: &Parts) -> Vec<(String, Vec<u8>)> {
    parts.tensors.iter().map(|(n, (_, v))| (n.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect()
}

// ---------------------------------------------------------------------------------------------
// The cases

/// Counts up to u32::MAX against buffers that cannot hold them: BUFFER_TOO_SMALL, decided
/// before any work (the latents of 2^32 - 1 images at z_dim 4096 would be 70 TB).
fn sample_count_past_the_buffer() -> Result<String, String> {
    let m = c_model(4096)?;
    let mut px = [0u8; 64];
    let mut z = [0f32; 16];
    let mut p = [0f32; 4];
    // SAFETY: every buffer is as long as the length passed with it.
    unsafe {
        let s = gran_sample(m, 1, u32::MAX, GRAN_PIXEL_FORMAT_U8_HWC, px.as_mut_ptr().cast(), px.len());
        expect_status(s, GRAN_STATUS_BUFFER_TOO_SMALL, "gran_sample")?;
        let s = gran_latents(m, 1, u32::MAX, z.as_mut_ptr(), z.len());
        expect_status(s, GRAN_STATUS_BUFFER_TOO_SMALL, "gran_latents")?;
        let s = gran_generate(m, z.as_ptr(), u32::MAX, GRAN_PIXEL_FORMAT_F32_CHW, px.as_mut_ptr().cast(), px.len());
        expect_status(s, GRAN_STATUS_BUFFER_TOO_SMALL, "gran_generate")?;
        // Scoring more images than one chunk: each image scored alone, so the first of 300
        // scores as it does alone.
        let many = vec![90u8; 300 * 784];
        let mut scores = vec![0f32; 300];
        let s = gran_discriminate(m, many.as_ptr().cast(), 300, GRAN_PIXEL_FORMAT_U8_HWC, scores.as_mut_ptr());
        expect_status(s, GRAN_STATUS_OK, "gran_discriminate 300")?;
        let s = gran_discriminate(m, many.as_ptr().cast(), 1, GRAN_PIXEL_FORMAT_U8_HWC, p.as_mut_ptr());
        expect_status(s, GRAN_STATUS_OK, "gran_discriminate 1")?;
        ensure(scores.iter().all(|&x| (x - p[0]).abs() < 1e-5), || format!("{} vs {}", scores[299], p[0]))?;
    }
    gran_model_free(m);
    Ok("BUFFER_TOO_SMALL before any work".into())
}

/// An honest caller with a correctly sized buffer for many images of a z_dim-4096 model, under
/// an address-space limit far below what all their latents would take at once (15,000 x 4096
/// floats = 246 MB): chunked sampling needs a chunk's worth, so it succeeds.
fn sample_many_images_under_a_memory_limit() -> Result<String, String> {
    let m = c_model(4096)?;
    let count = 15_000u32;
    let mut out = vec![0u8; count as usize * 784];
    let mut first = vec![0u8; 784];
    // SAFETY: the buffers are as long as the lengths passed.
    unsafe {
        expect_status(
            gran_sample(m, 7, 1, GRAN_PIXEL_FORMAT_U8_HWC, first.as_mut_ptr().cast(), first.len()),
            GRAN_STATUS_OK,
            "one image",
        )?;
        reset_peak();
        let rss = proc_kib("VmRSS");
        limit_memory(192);
        let s = gran_sample(m, 7, count, GRAN_PIXEL_FORMAT_U8_HWC, out.as_mut_ptr().cast(), out.len());
        expect_status(s, GRAN_STATUS_OK, "15,000 images under a 192 MiB limit")?;
        let grown = proc_kib("VmHWM").saturating_sub(rss) / 1024;
        ensure(out[..784] == first[..], || "image 0 differs from the same image drawn alone".into())?;
        // The output buffer itself (11.8 MB) is touched as it fills; the rest is the library's.
        ensure(grown < 160, || format!("peak resident memory grew by {grown} MiB"))?;
        gran_model_free(m);
        Ok(format!("peak resident memory +{grown} MiB for 15,000 images (11 MiB of them the output)"))
    }
}

/// GAM and the evaluator with samples = 2^32 - 1, and GAM with score_batch = 2^32 - 1:
/// INVALID_ARGUMENT naming the limit, before any sample is drawn.
fn gam_and_evaluation_with_u32_max_samples() -> Result<String, String> {
    let (a, b) = (c_model(8)?, c_model(8)?);
    let data = c_dataset(40)?;
    // SAFETY: valid structs and handles.
    unsafe {
        let mut cfg: GranGamConfig = std::mem::zeroed();
        gran_gam_config_init(&mut cfg);
        cfg.samples = u32::MAX;
        let mut r: GranGamResult = std::mem::zeroed();
        r.struct_size = std::mem::size_of::<GranGamResult>() as u32;
        expect_status(gran_gam(a, b, data, &cfg, &mut r), GRAN_STATUS_INVALID_ARGUMENT, "gam samples")?;
        cfg.samples = 100;
        cfg.score_batch = u32::MAX;
        expect_status(gran_gam(a, b, data, &cfg, &mut r), GRAN_STATUS_INVALID_ARGUMENT, "gam score_batch")?;
        let mut ec: GranEvaluatorConfig = std::mem::zeroed();
        gran::ffi::evaluator::gran_evaluator_config_init(&mut ec);
        (ec.epochs, ec.batch_size) = (1, 8);
        ec.device = GranDevice { kind: GRAN_DEVICE_CPU, index: 0 };
        let labelled = labelled_dataset(40)?;
        let mut e = 0;
        expect_status(gran_evaluator_train(labelled, &ec, &mut e), GRAN_STATUS_OK, "evaluator")?;
        let mut q: GranQuality = std::mem::zeroed();
        q.struct_size = std::mem::size_of::<GranQuality>() as u32;
        let s = gran_evaluate_model(e, a, 1, u32::MAX, data, 0, &mut q);
        expect_status(s, GRAN_STATUS_INVALID_ARGUMENT, "evaluate samples")?;
        ensure(q.count == 0, || "the result was written on failure".into())?;
        let s = gran_evaluate_model(e, a, 1, 300, data, 0, &mut q);
        expect_status(s, GRAN_STATUS_OK, "evaluate 300 samples (more than one chunk)")?;
        ensure(q.count == 300 && q.frechet_distance.is_finite(), || {
            format!("count {} FD {}", q.count, q.frechet_distance)
        })?;
        gran_dataset_free(labelled);
    }
    gran_dataset_free(data);
    Ok("INVALID_ARGUMENT before work; 300 samples evaluated chunk by chunk".into())
}

/// A labelled dataset through the C API: `count` random images and labels 0..9 as IDX files.
fn labelled_dataset(count: usize) -> Result<GranDataset, String> {
    let dir = scratch("labelled");
    let (images, labels) = (dir.join("i-idx3-ubyte"), dir.join("l-idx1-ubyte"));
    let rng = gran::rng::Stream::new(1, 1);
    let mut img = Vec::new();
    for w in [0x0803u32, count as u32, 28, 28] {
        img.extend(w.to_be_bytes());
    }
    img.extend((0..count * 784).map(|i| rng.below(i as u64, 256) as u8));
    let mut lab = Vec::new();
    for w in [0x0801u32, count as u32] {
        lab.extend(w.to_be_bytes());
    }
    lab.extend((0..count).map(|i| (i % 10) as u8));
    std::fs::write(&images, img).unwrap();
    std::fs::write(&labels, lab).unwrap();
    let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let mut d = 0;
    // SAFETY: NUL-terminated paths and a valid handle pointer.
    let s = unsafe { gran::ffi::dataset::gran_dataset_load_idx(c(&images).as_ptr(), c(&labels).as_ptr(), &mut d) };
    expect_status(s, GRAN_STATUS_OK, "gran_dataset_load_idx")?;
    std::fs::remove_dir_all(dir).ok();
    Ok(d)
}

/// 2^32 - 1 as dimensions of caller pixels and of a PNG grid: INVALID_ARGUMENT (the size
/// arithmetic is checked, not saturated), with no read of the (small) buffer passed.
fn pixels_and_png_with_u32_max_dimensions() -> Result<String, String> {
    let px = [0u8; 16];
    let dir = scratch("png");
    let path = std::ffi::CString::new(dir.join("g.png").to_str().unwrap()).unwrap();
    let big = u32::MAX;
    // SAFETY: the calls must refuse these sizes before reading `px`.
    unsafe {
        let mut d = 0;
        for (c, h, w) in [(3, big, big), (1, big, 1), (1, 28, 28)] {
            let count = if h == 28 { usize::MAX / 784 + 1 } else { 1 };
            let s = gran_dataset_from_pixels(px.as_ptr().cast(), count, h, w, c, GRAN_PIXEL_FORMAT_F32_CHW, &mut d);
            expect_status(s, GRAN_STATUS_INVALID_ARGUMENT, &format!("dataset {count} x {c}x{h}x{w}"))?;
        }
        for (count, c, h, w) in [(1, 3, big, big), (big, 1, 28, 28), (big, 3, 1, 1)] {
            let s = gran_write_png(path.as_ptr(), px.as_ptr().cast(), count, h, w, c, GRAN_PIXEL_FORMAT_U8_HWC, 8);
            expect_status(s, GRAN_STATUS_INVALID_ARGUMENT, &format!("png {count} x {c}x{h}x{w}"))?;
        }
    }
    ensure(!dir.join("g.png").exists(), || "a PNG was written".into())?;
    std::fs::remove_dir_all(dir).ok();
    Ok("INVALID_ARGUMENT for every size".into())
}

/// The largest valid configuration under an address-space limit: OUT_OF_MEMORY with the
/// message, and the library still works afterwards.
fn model_create_under_a_memory_limit_is_out_of_memory() -> Result<String, String> {
    let mut mc: GranModelConfig = unsafe { std::mem::zeroed() };
    let mut m: GranModel = 0;
    // SAFETY: valid pointers.
    unsafe {
        gran_model_config_init(&mut mc);
        (mc.height, mc.width, mc.channels, mc.z_dim, mc.hidden_dim, mc.width_scale) = (128, 128, 3, 4096, 4096, 8.0);
        mc.device = GranDevice { kind: GRAN_DEVICE_CPU, index: 0 };
        limit_memory(512);
        expect_status(gran_model_create(&mc, &mut m), GRAN_STATUS_OUT_OF_MEMORY, "a huge model under 512 MiB")?;
        ensure(m == 0, || "a handle was written on failure".into())?;
    }
    let small = c_model(8)?;
    gran_model_free(small);
    Ok("OUT_OF_MEMORY; a small model still works".into())
}

/// A file of a few hundred bytes holding only a large in-range configuration and no tensors:
/// FORMAT, before any model is built (a few MB at most, well under a second).
fn small_checkpoint_claiming_a_large_model() -> Result<String, String> {
    let dir = scratch("claim");
    let path = dir.join("claim.safetensors");
    let meta: Vec<(&str, String)> = vec![
        ("format", "gran-checkpoint".into()),
        ("version", "1".into()),
        ("height", "128".into()),
        ("width", "128".into()),
        ("channels", "3".into()),
        ("steps", "64".into()),
        ("z_dim", "4096".into()),
        ("hidden_dim", "4096".into()),
        ("width_scale", "8".into()),
        ("leaky_relu", "true".into()),
        ("device", "cpu".into()),
        ("seed", "0".into()),
        ("step", "0".into()),
        ("adam_g_t", "0".into()),
        ("adam_d_t", "0".into()),
        ("checksum", "0".into()),
    ];
    let meta: std::collections::HashMap<String, String> = meta.into_iter().map(|(k, v)| (k.into(), v)).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = Vec::new();
    std::fs::write(&path, safetensors::serialize(views, &Some(meta)).unwrap()).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    reset_peak();
    let rss = proc_kib("VmRSS");
    let started = Instant::now();
    let msg = expect_kind(checkpoint::load(&path, None), ErrorKind::Format, "claiming checkpoint")?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let grown = proc_kib("VmHWM").saturating_sub(rss) / 1024;
    ensure(grown < 32, || format!("peak memory grew by {grown} MiB"))?;
    ensure(msg.contains("tensors where"), || msg.clone())?;
    std::fs::remove_dir_all(dir).ok();
    Ok(format!("{size}-byte file: FORMAT in {ms:.1} ms, peak memory +{grown} MiB"))
}

/// A FIFO, /dev/zero and a folder as checkpoints and as IDX files: IO at once, no hang, no
/// endless read.
fn non_regular_files_are_io_errors() -> Result<String, String> {
    let dir = scratch("fifo");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    ensure(unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0, || "mkfifo failed".into())?;
    for p in [fifo.as_path(), Path::new("/dev/zero"), dir.as_path()] {
        expect_kind(checkpoint::load(p, None), ErrorKind::Io, &format!("checkpoint {}", p.display()))?;
        expect_kind(gran::data::idx::load_idx(p, None), ErrorKind::Io, &format!("idx {}", p.display()))?;
        expect_kind(gran::data::cifar::load_cifar10(p), ErrorKind::Io, &format!("cifar {}", p.display()))
            .or_else(|e| if p == dir { Ok(e) } else { Err(e) })?;
    }
    std::fs::remove_dir_all(dir).ok();
    Ok("IO for a FIFO, /dev/zero and a folder".into())
}

/// Non-finite weights, negative running variances, NaN or negative Adam moments and
/// inconsistent update counts, each with a correct checksum: FORMAT naming the tensor.
fn checkpoint_values_are_validated() -> Result<String, String> {
    let dir = scratch("values");
    let good = trained_checkpoint(&dir);
    let base = read_parts(&good);
    // The rewrite itself is faithful: the unedited parts load.
    let same = dir.join("same.safetensors");
    write_parts(&base, &same);
    checkpoint::load(&same, None).map_err(|e| format!("unedited rewrite: {}", e.message))?;
    let name_with = |part: &str| base.tensors.keys().find(|k| k.contains(part)).cloned().unwrap();
    let edits: Vec<(String, Edit)> = vec![
        (
            "NaN weight".into(),
            Box::new(move |p: &mut Parts| p.tensors.get_mut("g.dec.fc.weight").unwrap().1[3] = f32::NAN),
        ),
        (
            "infinite weight".into(),
            Box::new(|p: &mut Parts| p.tensors.get_mut("d.out.weight").unwrap().1[0] = f32::INFINITY),
        ),
        ("negative running variance".into(), {
            let n = name_with(".running_var.");
            Box::new(move |p: &mut Parts| p.tensors.get_mut(&n).unwrap().1[0] = -1.0)
        }),
        ("NaN first moment".into(), {
            let n = name_with("adam_g.m.");
            Box::new(move |p: &mut Parts| p.tensors.get_mut(&n).unwrap().1[0] = f32::NAN)
        }),
        ("negative second moment".into(), {
            let n = name_with("adam_d.v.");
            Box::new(move |p: &mut Parts| p.tensors.get_mut(&n).unwrap().1[0] = -1e-3)
        }),
        (
            "Adam count 2^64 - 1".into(),
            Box::new(|p: &mut Parts| {
                p.meta.insert("adam_g_t".into(), u64::MAX.to_string());
            }),
        ),
        (
            "Adam count behind the step".into(),
            Box::new(|p: &mut Parts| {
                p.meta.insert("adam_d_t".into(), "1".into());
            }),
        ),
    ];
    // The averaged generator's statistics batch: a later sample estimates its statistics with
    // a batch this size, so a file must not choose it without bound.
    let mut edits = edits;
    for v in ["4294967295", "65537", "1", "0", "-5", "99999999999"] {
        edits.push((
            format!("averaged_stats_batch {v}"),
            Box::new(move |p: &mut Parts| {
                p.meta.insert("averaged_stats_batch".into(), v.into());
            }),
        ));
    }
    ensure(base.meta.get("averaged").map(String::as_str) == Some("1"), || {
        "the trained model has no averaged generator".into()
    })?;
    for (what, edit) in &edits {
        let mut parts = read_parts(&good);
        edit(&mut parts);
        let path = dir.join("edited.safetensors");
        write_parts(&parts, &path);
        let msg = expect_kind(checkpoint::load(&path, None), ErrorKind::Format, what)?;
        ensure(msg.contains("must be") || msg.contains("Adam") || msg.contains("averaged_stats_batch"), || {
            format!("{what}: {msg}")
        })?;
    }
    std::fs::remove_dir_all(dir).ok();
    Ok(format!("{} kinds of bad values refused", edits.len()))
}

/// A consistent checkpoint whose step counter is 2^64 - 2: it loads, and training it further
/// is INVALID_ARGUMENT (the counter would pass 2^64 - 1) with every weight as it was.
fn step_counter_at_its_maximum() -> Result<String, String> {
    let dir = scratch("maxstep");
    let good = trained_checkpoint(&dir);
    let mut parts = read_parts(&good);
    let top = (u64::MAX - 1).to_string();
    for k in ["step", "adam_g_t", "adam_d_t"] {
        parts.meta.insert(k.into(), top.clone());
    }
    let path = dir.join("top.safetensors");
    write_parts(&parts, &path);
    let m = checkpoint::load(&path, None).map_err(|e| e.message)?;
    let data =
        gran::Dataset::new(tch::Tensor::rand([32, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu)), None).unwrap();
    let cfg = TrainConfig { iterations: 2, batch_size: 16, report_every: 0, ..Default::default() };
    expect_kind(train(&m, &data, &cfg, &mut |_| false), ErrorKind::InvalidArgument, "training past 2^64 - 1")?;
    // One step is still possible; it must leave finite weights.
    let one = TrainConfig { iterations: 1, ..cfg };
    train(&m, &data, &one, &mut |_| false).map_err(|e| e.message)?;
    let after = dir.join("after.safetensors");
    checkpoint::save(&m, &after).map_err(|e| e.message)?;
    checkpoint::load(&after, None).map_err(|e| format!("the model after the last step: {}", e.message))?;
    std::fs::remove_dir_all(dir).ok();
    Ok("INVALID_ARGUMENT past the counter; the last step leaves a valid model".into())
}

/// A gzip file of a few bytes whose IDX header declares 3.9 GB: FORMAT (truncated), with
/// memory bounded by the data that arrives, not by the declaration.
fn idx_gzip_declaring_gigabytes() -> Result<String, String> {
    let dir = scratch("idx");
    let path = dir.join("claim-idx3-ubyte.gz");
    let mut raw = Vec::new();
    for w in [0x0000_0803u32, 60_000, 256, 256] {
        raw.extend(w.to_be_bytes());
    }
    raw.extend([7u8; 1000]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    reset_peak();
    let rss = proc_kib("VmRSS");
    let msg = expect_kind(gran::data::idx::load_idx(&path, None), ErrorKind::Format, "idx claim")?;
    let grown = proc_kib("VmHWM").saturating_sub(rss) / 1024;
    ensure(msg.contains("truncated"), || msg.clone())?;
    ensure(grown < 32, || format!("peak memory grew by {grown} MiB"))?;
    std::fs::remove_dir_all(dir).ok();
    Ok(format!("FORMAT (truncated), peak memory +{grown} MiB"))
}

/// A small zip of PNGs (StyleGAN2-ADA's layout) as bytes.
fn small_zip() -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for i in 0..3u8 {
        let img = image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * 30 + y + u32::from(i) * 50) as u8]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        z.start_file(format!("00000/img{i:08}.png"), opts).unwrap();
        z.write_all(png.get_ref()).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// An archive whose zip64 end-of-directory records claim 2^62 entries and a directory of
/// 2^40 bytes at offset 0, followed by the ordinary record (whose fields say "see zip64").
fn zip64_claim() -> Vec<u8> {
    let mut b = Vec::new();
    let z64 = b.len() as u64;
    b.extend(0x0606_4b50u32.to_le_bytes());
    b.extend(44u64.to_le_bytes());
    b.extend([45u8, 0, 45, 0]);
    b.extend([0u8; 8]);
    b.extend((1u64 << 62).to_le_bytes());
    b.extend((1u64 << 62).to_le_bytes());
    b.extend((1u64 << 40).to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(0x0706_4b50u32.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(z64.to_le_bytes());
    b.extend(1u32.to_le_bytes());
    b.extend(0x0605_4b50u32.to_le_bytes());
    b.extend([0xffu8; 4]);
    b.extend([0xffu8; 4]);
    b.extend([0xffu8; 8]);
    b.extend([0u8; 2]);
    b
}

/// Zip archives that claim more than they hold: 2^62 entries (zip64), 65,535 entries in a
/// directory of three, and fixed-seed mutations of a real archive. Opening and reading each
/// returns OK or an error, under a 1 GiB memory limit, and never aborts.
fn zip_claiming_more_than_it_holds() -> Result<String, String> {
    let dir = scratch("zip");
    let good = small_zip();
    let path = dir.join("set.zip");
    std::fs::write(&path, zip64_claim()).unwrap();
    limit_memory(1024);
    let open = |p: &Path| gran::data::ImageSource::open(p, gran::data::FolderLabels::Auto);
    let claim = match open(&path) {
        Ok(s) => return Err(format!("the zip64 claim opened with {} images", s.len())),
        Err(e) => format!("{:?}", e.kind),
    };
    // The ordinary end record's entry counts set to 65,535 over a directory of three.
    let mut many = good.clone();
    let eocd = many.windows(4).rposition(|w| w == 0x0605_4b50u32.to_le_bytes()).unwrap();
    many[eocd + 8..eocd + 12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    std::fs::write(&path, &many).unwrap();
    let counted = match open(&path) {
        Ok(s) => format!("opened with {} images", s.len()),
        Err(e) => format!("{:?}", e.kind),
    };
    let rng = gran::rng::Stream::new(7, 31);
    let tries = fuzz_tries(400);
    let (mut opened, mut refused) = (0, 0);
    for i in 0..tries {
        std::fs::write(&path, mutate(&good, &rng, i)).unwrap();
        match open(&path) {
            Ok(mut s) => {
                opened += 1;
                for k in 0..s.len() {
                    let _ = s.read(k);
                }
            }
            Err(_) => refused += 1,
        }
    }
    std::fs::remove_dir_all(dir).ok();
    Ok(format!(
        "2^62 entries: {claim}; 65,535 entries: {counted}; {tries} mutations: {opened} opened and read, {refused} refused"
    ))
}

/// Fixed-seed mutations of a real checkpoint: every load returns OK or FORMAT.
fn fuzz_checkpoints() -> Result<String, String> {
    let dir = scratch("fuzzck");
    let good = std::fs::read(trained_checkpoint(&dir)).unwrap();
    let tries = fuzz_tries(1500);
    let path = dir.join("f.safetensors");
    let (mut ok, mut format) = (0, 0);
    let rng = gran::rng::Stream::new(42, 99);
    for i in 0..tries {
        let bytes = mutate(&good, &rng, i);
        std::fs::write(&path, &bytes).unwrap();
        match checkpoint::load(&path, Some(DeviceSpec::Cpu)) {
            Ok(_) => ok += 1,
            Err(e) if e.kind == ErrorKind::Format => format += 1,
            Err(e) => return Err(format!("try {i}: {:?} {}", e.kind, e.message)),
        }
    }
    std::fs::remove_dir_all(dir).ok();
    Ok(format!("{tries} tries: {ok} OK, {format} FORMAT, 0 crashes, 0 hangs"))
}

/// Fixed-seed mutations of real IDX files (plain and gzip): every load returns OK or FORMAT.
fn fuzz_idx() -> Result<String, String> {
    let dir = scratch("fuzzidx");
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k/t10k-images-idx3-ubyte.gz");
    let mut full = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(mnist).unwrap()), &mut full)
        .unwrap();
    // The header and 20 images, plain and compressed.
    let mut plain = full[..16 + 20 * 784].to_vec();
    plain[4..8].copy_from_slice(&20u32.to_be_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let packed = gz.finish().unwrap();
    let tries = fuzz_tries(1500);
    let path = dir.join("f-idx3-ubyte");
    let (mut ok, mut format) = (0, 0);
    let rng = gran::rng::Stream::new(7, 99);
    for i in 0..tries {
        let bytes = mutate(if i % 2 == 0 { &plain } else { &packed }, &rng, i);
        std::fs::write(&path, &bytes).unwrap();
        match gran::data::idx::load_idx(&path, None) {
            Ok(_) => ok += 1,
            Err(e) if e.kind == ErrorKind::Format => format += 1,
            Err(e) => return Err(format!("try {i}: {:?} {}", e.kind, e.message)),
        }
    }
    std::fs::remove_dir_all(dir).ok();
    Ok(format!("{tries} tries: {ok} OK, {format} FORMAT, 0 crashes, 0 hangs"))
}

fn fuzz_tries(default: usize) -> usize {
    std::env::var("GRAN_FUZZ_TRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One mutation of `input`: flipped bits, overwritten bytes (often in the header), a cut, an
/// insertion, or a header length word replaced.
fn mutate(input: &[u8], rng: &gran::rng::Stream, i: usize) -> Vec<u8> {
    let mut b = input.to_vec();
    let mut k = 0u64;
    let mut next = |n: usize| {
        k += 1;
        rng.below((i as u64) << 16 | k, n.max(1) as u64) as usize
    };
    let head = b.len().min(600);
    match next(6) {
        0 => {
            for _ in 0..1 + next(8) {
                let at = next(b.len());
                b[at] ^= 1 << next(8);
            }
        }
        1 => {
            for _ in 0..1 + next(4) {
                let at = next(head);
                b[at] = next(256) as u8;
            }
        }
        2 => b.truncate(next(b.len())),
        3 => {
            let at = next(b.len());
            let extra: Vec<u8> = (0..1 + next(64)).map(|_| next(256) as u8).collect();
            b.splice(at..at, extra);
        }
        4 => {
            let v = [0u64, 1, 7, u32::MAX as u64, u64::MAX, (b.len() as u64).wrapping_sub(8)][next(6)];
            let n = 8.min(b.len());
            b[..n].copy_from_slice(&v.to_le_bytes()[..n]);
        }
        _ => {
            // A digit of the header's text changed (counts, shapes, offsets, configuration).
            let digits: Vec<usize> = (0..head).filter(|&j| b[j].is_ascii_digit()).collect();
            if !digits.is_empty() {
                let at = digits[next(digits.len())];
                b[at] = b'0' + next(10) as u8;
            }
        }
    }
    b
}

/// Child of `kill_during_save`: saves a model to `path` over and over, saying when the first
/// save is done.
fn save_forever(path: &Path) -> ! {
    let m = Model::new(&ModelConfig { width_scale: 0.5, ..tiny(8) }).unwrap();
    checkpoint::save(&m, path).unwrap();
    println!("saved");
    std::io::stdout().flush().ok();
    loop {
        checkpoint::save(&m, path).unwrap();
    }
}

/// Writers killed (SIGKILL) in the middle of saves: the checkpoint always loads, and the next
/// save removes the temporary files they left.
fn kill_during_save() -> Result<String, String> {
    let dir = scratch("kill");
    let path = dir.join("m.safetensors");
    let rng = gran::rng::Stream::new(5, 5);
    let rounds = 8;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--case", "save_forever", path.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).ok();
        ensure(line.trim() == "saved", || format!("round {round}: child said {line:?}"))?;
        std::thread::sleep(Duration::from_millis(rng.below(round, 40)));
        child.kill().ok();
        child.wait().ok();
        checkpoint::load(&path, None).map_err(|e| format!("round {round}: {}", e.message))?;
    }
    let temporaries = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    };
    let left = temporaries(&dir);
    let m = checkpoint::load(&path, None).map_err(|e| e.message)?;
    checkpoint::save(&m, &path).map_err(|e| e.message)?;
    let after = temporaries(&dir);
    ensure(after == 0, || format!("{after} temporary files left after a new save"))?;
    std::fs::remove_dir_all(dir).ok();
    Ok(format!("{rounds} kills: the checkpoint loaded every time; {left} temporaries left, 0 after the next save"))
}
