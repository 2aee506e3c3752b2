//! Generator exports (crate::export): sizes against the training checkpoint, the same images
//! as the full model (float32: bit for bit; bfloat16: within a stated tolerance), sampling-only
//! models that refuse training, scoring, GAM and checkpoints, and corrupt files refused.

use gran::checkpoint::{self, Storage};
use gran::{gam, GamConfig};
use gran::{train, ErrorKind, Model, ModelConfig, TrainConfig};
use std::path::PathBuf;
use tch::{Kind, Tensor};

mod common;
use common::{synthetic, test_device};

fn config() -> ModelConfig {
    ModelConfig { drawing_steps: 3, width_scale: 0.25, device: test_device(), seed: 3, ..Default::default() }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gran-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A model of the demo's widths trained a few steps with averaging.
fn trained() -> Model {
    let m = Model::new(&config()).unwrap();
    let cfg = TrainConfig {
        iterations: 4,
        batch_size: 16,
        report_every: 0,
        ema_start: 1,
        ema_decay: 0.9,
        ..Default::default()
    };
    train(&m, &synthetic(48), &cfg, &mut |_| false).unwrap();
    assert!(m.has_averaged());
    m
}

#[test]
fn exports_are_small_and_draw_the_same_images() {
    let dir = temp_dir("export");
    let m = trained();
    let (ckpt, f32_path, bf16_path) =
        (dir.join("model.gran"), dir.join("g_fp32.safetensors"), dir.join("g_bf16.safetensors"));
    checkpoint::save(&m, &ckpt).unwrap();
    checkpoint::export(&m, &f32_path, Storage::F32).unwrap();
    checkpoint::export(&m, &bf16_path, Storage::Bf16).unwrap();
    let size = |p: &PathBuf| std::fs::metadata(p).unwrap().len() as f64;
    let (c, f, b) = (size(&ckpt), size(&f32_path), size(&bf16_path));
    println!(
        "demo widths: checkpoint {c} bytes, float32 export {f} ({:.2}x smaller), bfloat16 {b} ({:.2}x)",
        c / f,
        c / b
    );
    assert!(c / f >= 3.0 && c / b >= 6.0, "checkpoint {c}, exports {f} and {b}");

    let full = m.sample(7, 20, true).unwrap();
    let e = checkpoint::load(&f32_path, Some(test_device())).unwrap();
    assert!(e.inference_only() && !m.inference_only());
    assert_eq!(e.step(), m.step());
    assert_eq!(e.config().drawing_steps, 3);
    // float32: the averaged generator's images and step pictures, bit for bit on the CPU; on
    // CUDA within rounding (they differed in their last bits there: BENCHMARKS.md, "CUDA").
    let got = e.sample(7, 20, true).unwrap();
    let exact = common::other_kernels(0.0);
    assert!(max_abs_diff(&full.images, &got.images) <= exact);
    assert!(max_abs_diff(full.canvases.as_ref().unwrap(), got.canvases.as_ref().unwrap()) <= exact);
    assert_eq!(e.latents(7, 3, 2).unwrap(), m.latents(7, 3, 2).unwrap());
    let z = m.latents(9, 0, 5).unwrap();
    assert!(
        max_abs_diff(&e.generate(&z, 5, false).unwrap().images, &m.generate(&z, 5, false).unwrap().images) <= exact
    );

    // bfloat16: the weights rounded to 8 significant bits; the images stay within 0.05 of the
    // full model's everywhere and within 0.005 on average (pixels in [0, 1]).
    let h = checkpoint::load(&bf16_path, Some(test_device())).unwrap();
    let hb = h.sample(7, 20, false).unwrap().images;
    let (worst, mean) =
        (max_abs_diff(&hb, &full.images), (&hb - &full.images).abs().mean(Kind::Float).double_value(&[]));
    println!("bfloat16 export against the model: max |diff| {worst:.5}, mean {mean:.6}");
    assert!(worst > 0.0 && worst < 0.05 && mean < 0.005, "{worst} {mean}");

    // An export of an export holds the same generator.
    let again = dir.join("again.safetensors");
    checkpoint::export(&e, &again, Storage::F32).unwrap();
    let a2 = checkpoint::load(&again, Some(test_device())).unwrap();
    assert!(max_abs_diff(&a2.sample(7, 20, false).unwrap().images, &full.images) <= exact);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_export_samples_only() {
    let dir = temp_dir("export-only");
    let m = trained();
    let path = dir.join("g.safetensors");
    checkpoint::export(&m, &path, Storage::F32).unwrap();
    let e = checkpoint::load(&path, Some(test_device())).unwrap();
    let data = synthetic(32);
    let said = |r: gran::Result<()>, what: &str| {
        let err = r.err().unwrap_or_else(|| panic!("{what} was not refused"));
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{what}: {}", err.message);
        assert!(err.message.contains("exported for inference"), "{what}: {}", err.message);
    };
    said(
        train(&e, &data, &TrainConfig { iterations: 1, batch_size: 16, ..Default::default() }, &mut |_| false)
            .map(|_| ()),
        "training",
    );
    let x = data.float_images(tch::Device::Cpu).unwrap();
    said(e.discriminate(&x).map(|_| ()), "discriminate");
    said(gam(&m, &e, &data, &GamConfig::default()).map(|_| ()), "GAM");
    said(checkpoint::save(&e, &dir.join("c.gran")), "save");
    assert!(!dir.join("c.gran").exists());
    assert_eq!(e.step(), m.step());
    assert_eq!(e.parameter_counts().1, 0, "no discriminator weights");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_model_without_averaging_exports_its_raw_generator() {
    let dir = temp_dir("export-raw");
    let m = Model::new(&config()).unwrap();
    train(
        &m,
        &synthetic(48),
        &TrainConfig { iterations: 2, batch_size: 16, ema_decay: 0.0, ..Default::default() },
        &mut |_| false,
    )
    .unwrap();
    assert!(!m.has_averaged());
    let path = dir.join("g.safetensors");
    checkpoint::export(&m, &path, Storage::F32).unwrap();
    let e = checkpoint::load(&path, Some(test_device())).unwrap();
    assert_eq!(max_abs_diff(&e.sample(1, 6, false).unwrap().images, &m.sample(1, 6, false).unwrap().images), 0.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn damaged_exports_are_format_errors() {
    let dir = temp_dir("export-bad");
    let m = trained();
    let path = dir.join("g.safetensors");
    checkpoint::export(&m, &path, Storage::Bf16).unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = dir.join("bad.safetensors");
    let refused = |bytes: &[u8], what: &str| {
        std::fs::write(&bad, bytes).unwrap();
        let e = checkpoint::load(&bad, Some(test_device())).err().unwrap_or_else(|| panic!("{what} loaded"));
        assert_eq!(e.kind, ErrorKind::Format, "{what}: {}", e.message);
    };
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    refused(&flipped, "a flipped data bit");
    refused(&good[..good.len() - 2], "a truncated file");
    // A NaN stored with a valid checksum (bfloat16 0x7FC0) is refused by the value check.
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&good[8..8 + n]).unwrap();
    let start = 8 + n + header["g.hz.fc.bias"]["data_offsets"][0].as_u64().unwrap() as usize;
    let mut nan = good.clone();
    nan[start..start + 2].copy_from_slice(&0x7FC0u16.to_le_bytes());
    let mut tensors: Vec<(String, Vec<u8>)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let (a, b) =
                (v["data_offsets"][0].as_u64().unwrap() as usize, v["data_offsets"][1].as_u64().unwrap() as usize);
            (k.clone(), nan[8 + n + a..8 + n + b].to_vec())
        })
        .collect();
    tensors.sort();
    let sum = format!("{:016x}", checkpoint::checksum(tensors.iter()));
    let old = header["__metadata__"]["checksum"].as_str().unwrap().to_string();
    let text = String::from_utf8(nan[8..8 + n].to_vec()).unwrap().replace(&old, &sum);
    nan[8..8 + n].copy_from_slice(text.as_bytes());
    std::fs::write(&bad, &nan).unwrap();
    let e = checkpoint::load(&bad, Some(test_device())).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Format);
    assert!(e.message.contains("g.hz.fc.bias") && e.message.contains("finite"), "{}", e.message);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Saves, exports and PNG grids through the paths a program may hand them: a symbolic link's
/// target is replaced and the link stays (so it still loads); a device, a FIFO and a folder are
/// `Io` and left as they were.
#[test]
fn saves_and_exports_respect_links_and_refuse_nodes_that_are_not_files() {
    use std::os::unix::fs::{symlink, FileTypeExt};
    let m = Model::new(&ModelConfig { width_scale: 0.125, ..config() }).unwrap();
    let dir = temp_dir("paths");
    let real = dir.join("run-7.safetensors");
    checkpoint::save(&m, &real).unwrap();
    let before = std::fs::read(&real).unwrap();
    symlink("run-7.safetensors", dir.join("latest")).unwrap();
    train(&m, &synthetic(32), &TrainConfig { iterations: 1, batch_size: 16, ..Default::default() }, &mut |_| false)
        .unwrap();
    checkpoint::save(&m, &dir.join("latest")).unwrap();
    assert!(std::fs::symlink_metadata(dir.join("latest")).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_ne!(std::fs::read(&real).unwrap(), before, "its target holds the new checkpoint");
    assert_eq!(checkpoint::load(&dir.join("latest"), None).unwrap().step(), 1);
    checkpoint::export(&m, &dir.join("latest"), Storage::F32).unwrap();
    assert!(checkpoint::load(&real, None).unwrap().inference_only());

    let images = m.sample(1, 4, false).unwrap().images;
    let fifo = dir.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for target in [std::path::Path::new("/dev/full"), &fifo, &dir] {
        let kind = |r: gran::Result<()>| r.unwrap_err().kind;
        assert_eq!(kind(checkpoint::save(&m, target)), ErrorKind::Io, "{}", target.display());
        assert_eq!(kind(checkpoint::export(&m, target, Storage::Bf16)), ErrorKind::Io, "{}", target.display());
        assert_eq!(kind(gran::png::write_grid(target, &images, 2)), ErrorKind::Io, "{}", target.display());
    }
    assert!(std::fs::symlink_metadata("/dev/full").unwrap().file_type().is_char_device(), "/dev/full is untouched");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    std::fs::remove_dir_all(&dir).unwrap();
}
