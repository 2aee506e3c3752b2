//! Class-conditional models in libgran_runtime: files with a class embedding load (and files
//! that do not fit their configuration do not), each image is of the class it is asked for and
//! depends only on (weights, seed or latents, index, class), the class arithmetic is the
//! decoder's e(y) columns, and every class request the C functions refuse leaves the caller's
//! buffer untouched.
//!
//! The models are synthetic (runtime/tests/files) or the tiny test models widened into
//! conditional ones. No test here changes the thread count: comparisons of two calls are exact.

mod files;

use files::{parts, synthetic_export, Parts, Rng, Synthetic, Tensor};
use gran_common::abi::*;
use gran_runtime::ffi::*;
use gran_runtime::{drawn_class, Classes, Latents, Model, PixelFormat};
use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};

const CLASSES: u32 = 10;

/// 32x32x3 (4 channels at 4x4 after the linear layer: 512 features), T = 3.
const CONDITIONAL: Synthetic =
    Synthetic { size: 32, channels: 3, steps: 3, z: 8, h: 8, scale: 0.03125, classes: CLASSES as u64 };

fn conditional_file() -> Vec<u8> {
    synthetic_export(CONDITIONAL, 11)
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn test_file(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load(bytes: &[u8]) -> Model {
    Model::from_bytes(bytes).unwrap_or_else(|e| panic!("{}", e.message))
}

/// `count` images of `latents` and `classes` as floats (F32_CHW).
fn draw(m: &Model, latents: Latents, classes: Classes, count: usize) -> gran_runtime::Result<Vec<f32>> {
    let mut out = vec![0u8; m.pixel_bytes(PixelFormat::F32Chw, count, false)?];
    m.draw_pixels(latents, classes, count, false, PixelFormat::F32Chw, &mut out)?;
    Ok(out.chunks_exact(4).map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A model file written to a folder of this test and loaded through gran_model_load.
struct CModel {
    handle: GranModel,
    dir: PathBuf,
}

impl CModel {
    fn new(bytes: &[u8], tag: &str) -> CModel {
        let dir = std::env::temp_dir().join(format!("gran-runtime-classes-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        std::fs::write(&path, bytes).unwrap();
        let c = CString::new(path.to_str().unwrap()).unwrap();
        let mut handle = 0;
        // SAFETY: a NUL-terminated path and a valid out pointer.
        let s = unsafe { gran_model_load(c.as_ptr(), std::ptr::null(), &mut handle) };
        assert_eq!(s, GRAN_STATUS_OK, "{}", last_error());
        CModel { handle, dir }
    }
}

impl Drop for CModel {
    fn drop(&mut self) {
        gran_model_free(self.handle);
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn last_error() -> String {
    let mut buf = [0 as c_char; 1024];
    // SAFETY: gran_last_error writes at most buf.len() bytes, NUL-terminated.
    unsafe { gran_last_error(buf.as_mut_ptr(), buf.len()) };
    // SAFETY: NUL-terminated.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// Every value of tensor `name` of `p` as float32 (F32 or BF16).
fn values(p: &Parts, name: &str) -> Vec<f32> {
    let t = &p.tensors[name];
    match t.dtype.as_str() {
        "F32" => t.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        _ => {
            t.bytes.chunks_exact(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)).collect()
        }
    }
}

/// A tensor of `dtype` holding `v` (BF16: the upper half of each float32, exact for values that
/// came from BF16).
fn tensor(dtype: &str, shape: Vec<u64>, v: &[f32]) -> Tensor {
    let bytes = match dtype {
        "F32" => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        _ => v.iter().flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes()).collect(),
    };
    Tensor { dtype: dtype.into(), shape, bytes }
}

/// Each row of `w` (`cols` wide) as `pick` makes it: columns removed, inserted or reordered.
fn columns(w: &[f32], cols: usize, pick: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    w.chunks_exact(cols).flat_map(pick).collect()
}

/// The unconditional file `p` (a tiny test model) made conditional with `classes` classes whose
/// decoder columns are zero: every generator (raw, averaged) gets an embedding and a decoder
/// reading [h_z, e(y) = 0 columns, h_c]; a checkpoint also the discriminator's embedding and
/// both optimizers' moments of the new parameters.
fn widened(p: &Parts, classes: u64) -> Parts {
    let mut q = p.clone();
    q.meta.insert("classes".into(), classes.to_string());
    let h: usize = p.meta["hidden_dim"].parse().unwrap();
    let mut rng = Rng(classes);
    let mut random = |n: usize| -> Vec<f32> {
        (0..n).map(|_| ((rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0).collect()
    };
    for prefix in ["", "ema.", "adam_g.m.", "adam_g.v."] {
        let name = format!("{prefix}g.dec.fc.weight");
        let Some(t) = p.tensors.get(&name) else { continue };
        let wide = columns(&values(p, &name), 2 * h, |r| [&r[..h], &vec![0.0; h][..], &r[h..]].concat());
        q.tensors.insert(name, tensor(&t.dtype, vec![t.shape[0], 3 * h as u64], &wide));
        let e = if prefix.starts_with("adam") { vec![0.0; classes as usize * h] } else { random(classes as usize * h) };
        q.tensors.insert(format!("{prefix}g.embed.weight"), tensor(&t.dtype, vec![classes, h as u64], &e));
    }
    if p.tensors.contains_key("d.fc.weight") {
        let n = classes as usize * 100;
        q.tensors.insert("d.embed.weight".into(), tensor("F32", vec![classes, 100], &random(n)));
        for m in ["m", "v"] {
            q.tensors.insert(format!("adam_d.{m}.d.embed.weight"), tensor("F32", vec![classes, 100], &vec![0.0; n]));
        }
    }
    q
}

/// (a) Image i of (seed, class) is the same whatever the count, the chunks (more than one
/// chunk of 64) and the other images' classes.
#[test]
fn an_image_depends_only_on_its_seed_index_and_class() {
    let m = load(&conditional_file());
    let n = 70;
    let each: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % CLASSES).collect();
    let many = draw(&m, Latents::Seed(5), Classes::Each(&each), n).unwrap();
    let len = 3 * 32 * 32;
    for i in [0, 2, 63, 64, 69] {
        // The same image from a request of i + 1 images all of its class.
        let alone = draw(&m, Latents::Seed(5), Classes::All(each[i]), i + 1).unwrap();
        let d = max_diff(&many[i * len..(i + 1) * len], &alone[i * len..]);
        assert!(d < 1e-5, "image {i}: {d}");
    }
    // Another class for every other image leaves image 2 as it was.
    let mut other = each.clone();
    for (i, k) in other.iter_mut().enumerate() {
        if i != 2 {
            *k = (*k + 1) % CLASSES;
        }
    }
    let changed = draw(&m, Latents::Seed(5), Classes::Each(&other), n).unwrap();
    assert!(max_diff(&changed[2 * len..3 * len], &many[2 * len..3 * len]) < 1e-5);
    assert!(max_diff(&changed[..len], &many[..len]) > 1e-3, "image 0 did not change with its class");
}

/// (b) Each class draws its own images from the same latents.
#[test]
fn different_classes_give_different_images() {
    let m = load(&conditional_file());
    let images: Vec<Vec<f32>> = (0..CLASSES).map(|k| draw(&m, Latents::Seed(9), Classes::All(k), 2).unwrap()).collect();
    for a in 0..images.len() {
        for b in a + 1..images.len() {
            let d = max_diff(&images[a], &images[b]);
            assert!(d > 1e-3, "classes {a} and {b} draw the same images (max difference {d})");
        }
    }
}

/// The class term is e(y) times the decoder's columns h..2h: a class's images equal those of
/// an unconditional model whose decoder reads [h_z, h_c] (columns 0..h and 2h..3h) with
/// e(y) W_e^T folded into its bias.
#[test]
fn a_class_is_its_embedding_through_the_decoders_middle_columns() {
    let bytes = conditional_file();
    let p = parts(&bytes);
    let m = load(&bytes);
    let h = CONDITIONAL.h as usize;
    let (e, w, b) = (values(&p, "g.embed.weight"), values(&p, "g.dec.fc.weight"), values(&p, "g.dec.fc.bias"));
    let features = b.len();
    for k in [0usize, 7] {
        let mut q = p.clone();
        q.meta.remove("classes");
        q.tensors.remove("g.embed.weight");
        let narrow = columns(&w, 3 * h, |r| [&r[..h], &r[2 * h..]].concat());
        q.tensors.insert("g.dec.fc.weight".into(), tensor("F32", vec![features as u64, 2 * h as u64], &narrow));
        let shifted: Vec<f32> = (0..features)
            .map(|f| {
                let term: f64 = (0..h).map(|j| e[k * h + j] as f64 * w[f * 3 * h + h + j] as f64).sum();
                (b[f] as f64 + term) as f32
            })
            .collect();
        q.tensors.insert("g.dec.fc.bias".into(), tensor("F32", vec![features as u64], &shifted));
        let plain = load(&q.build());
        assert_eq!(plain.config().classes, 0);
        let want = draw(&plain, Latents::Seed(3), Classes::Drawn, 4).unwrap();
        let got = draw(&m, Latents::Seed(3), Classes::All(k as u32), 4).unwrap();
        let d = max_diff(&want, &got);
        assert!(d < 1e-5, "class {k}: {d}");
    }
}

/// (d) The tiny test models (unconditional: no "classes" field) made conditional with zero
/// class columns draw exactly their images, for every class: the h_c columns are read at 2h.
/// Exports of both storages and a checkpoint (with its averaged generator and the
/// discriminator's and optimizers' new tensors) load.
#[test]
fn zero_class_columns_draw_the_unconditional_models_images() {
    for f in ["tiny_t3_fp32.safetensors", "tiny_t3_bf16.safetensors", "tiny_t3_checkpoint.safetensors"] {
        let bytes = test_file(f);
        let plain = load(&bytes);
        assert_eq!(plain.config().classes, 0, "{f}");
        let cond = load(&widened(&parts(&bytes), 4).build());
        assert_eq!((cond.config().classes, cond.has_averaged()), (4, plain.has_averaged()), "{f}");
        let want = draw(&plain, Latents::Seed(2), Classes::Drawn, 3).unwrap();
        for k in 0..4 {
            assert_eq!(draw(&cond, Latents::Seed(2), Classes::All(k), 3).unwrap(), want, "{f}, class {k}");
        }
        assert_eq!(draw(&cond, Latents::Seed(2), Classes::Drawn, 3).unwrap(), want, "{f}, drawn classes");
    }
}

/// Files whose tensors do not fit their "classes" field, or with a bad one, are FORMAT.
#[test]
fn files_that_do_not_fit_their_classes_are_format() {
    let format = |bytes: Vec<u8>, what: &str| match Model::from_bytes(&bytes) {
        Err(e) if e.status == GRAN_STATUS_FORMAT => {}
        Err(e) => panic!("{what}: status {} ({})", e.status, e.message),
        Ok(_) => panic!("{what}: loaded"),
    };
    let cond = parts(&conditional_file());
    for v in ["1", "257", "11", "9", "0", "-1", "x", ""] {
        format(cond.with_meta("classes", v).build(), &format!("a 10-class export claiming classes '{v}'"));
    }
    let mut q = cond.clone();
    q.meta.remove("classes");
    format(q.build(), "a 10-class export without 'classes'");
    let mut q = cond.clone();
    q.tensors.remove("g.embed.weight");
    format(q.build(), "an export without g.embed.weight");
    let plain = parts(&test_file("tiny_t3_fp32.safetensors"));
    format(plain.with_meta("classes", "10").build(), "an unconditional export claiming 10 classes");
    let ckpt = widened(&parts(&test_file("tiny_t3_checkpoint.safetensors")), 4);
    load(&ckpt.build());
    for t in ["d.embed.weight", "adam_d.v.d.embed.weight", "adam_g.m.g.embed.weight", "ema.g.embed.weight"] {
        let mut q = ckpt.clone();
        q.tensors.remove(t);
        format(q.build(), &format!("a conditional checkpoint without {t}"));
    }
    // 256 classes is the most.
    let big = Synthetic { size: 28, channels: 1, steps: 1, z: 2, h: 2, scale: 0.03125, classes: 256 };
    assert_eq!(load(&synthetic_export(big, 1)).config().classes, 256);
}

/// (e) gran_sample on a conditional model draws image i as the class `drawn_class(seed, i)`:
/// the same as gran_sample_class and gran_generate_class with those classes (and the seed's
/// latents), for the images and for every step's canvas. gran_model_config reports the classes.
#[test]
fn gran_sample_draws_the_classes_of_the_seed() {
    let m = CModel::new(&conditional_file(), "drawn");
    let mut cfg = GranModelConfig::DEFAULT;
    // SAFETY: a valid GranModelConfig.
    assert_eq!(unsafe { gran_model_config(m.handle, &mut cfg) }, GRAN_STATUS_OK);
    assert_eq!(cfg.classes, CLASSES);
    let (seed, n) = (12u64, 9u32);
    let ys: Vec<u32> = (0..n as u64).map(|i| drawn_class(seed, i, CLASSES)).collect();
    assert!(ys.iter().collect::<std::collections::BTreeSet<_>>().len() > 2, "{ys:?}");
    let len = n as usize * 32 * 32 * 3;
    let (mut a, mut b, mut c) = (vec![0u8; len], vec![1u8; len], vec![2u8; len]);
    let (mut sa, mut sb) = (vec![0u8; 3 * len], vec![1u8; 3 * len]);
    let mut z = vec![0f32; n as usize * 8];
    // SAFETY: every buffer holds what it is said to.
    unsafe {
        assert_eq!(gran_sample(m.handle, seed, n, 0, a.as_mut_ptr().cast(), len), GRAN_STATUS_OK);
        let s = gran_sample_class(m.handle, seed, n, ys.as_ptr(), n, 0, b.as_mut_ptr().cast(), len);
        assert_eq!(s, GRAN_STATUS_OK, "{}", last_error());
        assert_eq!(gran_latents(m.handle, seed, n, z.as_mut_ptr(), z.len()), GRAN_STATUS_OK);
        let s = gran_generate_class(m.handle, z.as_ptr(), n, ys.as_ptr(), n, 0, c.as_mut_ptr().cast(), len);
        assert_eq!(s, GRAN_STATUS_OK, "{}", last_error());
        assert_eq!(gran_sample_steps(m.handle, seed, n, 0, sa.as_mut_ptr().cast(), 3 * len), GRAN_STATUS_OK);
        let s = gran_sample_steps_class(m.handle, seed, n, ys.as_ptr(), n, 0, sb.as_mut_ptr().cast(), 3 * len);
        assert_eq!(s, GRAN_STATUS_OK, "{}", last_error());
    }
    assert!(a == b, "gran_sample differs from gran_sample_class with the drawn classes");
    assert!(a == c, "gran_sample differs from gran_generate_class with the seed's latents and classes");
    assert!(sa == sb, "gran_sample_steps differs from gran_sample_steps_class");
    assert!(sa[2 * len..] == a[..], "the last step is not the image");
    // One class for all: every image of it.
    let mut one = vec![0u8; len];
    // SAFETY: as above.
    let s = unsafe { gran_sample_class(m.handle, seed, n, &3, 1, 0, one.as_mut_ptr().cast(), len) };
    assert_eq!(s, GRAN_STATUS_OK);
    let threes = vec![3u32; n as usize];
    let mut each = vec![0u8; len];
    // SAFETY: as above.
    let s = unsafe { gran_sample_class(m.handle, seed, n, threes.as_ptr(), n, 0, each.as_mut_ptr().cast(), len) };
    assert_eq!(s, GRAN_STATUS_OK);
    assert!(one == each, "classes_len 1 differs from the same class given per image");
}

/// (c) Requests of classes the model cannot draw are INVALID_ARGUMENT and leave `out` as it was:
/// a class out of range (named with its image), a classes_len other than 1 or count, NULL
/// classes, no classes for caller latents of a conditional model, and any class for an
/// unconditional model.
#[test]
fn refused_class_requests_leave_the_output_untouched() {
    let cond = CModel::new(&conditional_file(), "refused");
    let plain = CModel::new(&test_file("tiny_t3_fp32.safetensors"), "refused-plain");
    let n = 3u32;
    let (len, plain_len) = (n as usize * 32 * 32 * 3, n as usize * 28 * 28);
    let z = vec![0.5f32; n as usize * 16];
    let mut out = vec![0xA5u8; 4 * len];
    let p: *mut std::ffi::c_void = out.as_mut_ptr().cast();
    let good = [1u32, 2, 3];
    type Call<'a> = Box<dyn Fn() -> GranStatus + 'a>;
    let cases: Vec<(&str, Call, Option<&str>)> = vec![
        // SAFETY (every case): the pointers are valid for the lengths given, or NULL.
        (
            "class 10 for all",
            Box::new(|| unsafe { gran_sample_class(cond.handle, 1, n, &CLASSES, 1, 0, p, len) }),
            Some("class 10 is out of range"),
        ),
        (
            "class 10 for image 2",
            Box::new(|| unsafe { gran_sample_class(cond.handle, 1, n, [0, 9, 10].as_ptr(), 3, 0, p, len) }),
            Some("class 10 of image 2"),
        ),
        (
            "u32::MAX for image 1 (steps)",
            Box::new(|| unsafe {
                gran_sample_steps_class(cond.handle, 1, n, [0, u32::MAX, 1].as_ptr(), 3, 0, p, 3 * len)
            }),
            Some("of image 1"),
        ),
        (
            "class 12 for image 0 (generate)",
            Box::new(|| unsafe { gran_generate_class(cond.handle, z.as_ptr(), n, [12, 0, 0].as_ptr(), 3, 0, p, len) }),
            Some("class 12 of image 0"),
        ),
        (
            "classes_len 2 for 3 images",
            Box::new(|| unsafe { gran_sample_class(cond.handle, 1, n, good.as_ptr(), 2, 0, p, len) }),
            Some("classes_len is 2"),
        ),
        (
            "classes_len 0",
            Box::new(|| unsafe { gran_sample_class(cond.handle, 1, n, good.as_ptr(), 0, 0, p, len) }),
            Some("classes_len is 0"),
        ),
        (
            "classes_len 4 for 3 images (steps)",
            Box::new(|| unsafe { gran_sample_steps_class(cond.handle, 1, n, good.as_ptr(), 4, 0, p, 3 * len) }),
            None,
        ),
        (
            "NULL classes",
            Box::new(|| unsafe { gran_sample_class(cond.handle, 1, n, std::ptr::null(), 3, 0, p, len) }),
            None,
        ),
        (
            "NULL classes (generate)",
            Box::new(|| unsafe { gran_generate_class(cond.handle, z.as_ptr(), n, std::ptr::null(), 1, 0, p, len) }),
            None,
        ),
        (
            "gran_generate on a conditional model",
            Box::new(|| unsafe { gran_generate(cond.handle, z.as_ptr(), n, 0, p, len) }),
            Some("class-conditional"),
        ),
        (
            "a class for an unconditional model",
            Box::new(|| unsafe { gran_sample_class(plain.handle, 1, n, good.as_ptr(), 3, 0, p, plain_len) }),
            Some("unconditional"),
        ),
        (
            "one class for an unconditional model (steps)",
            Box::new(|| unsafe { gran_sample_steps_class(plain.handle, 1, n, &0, 1, 0, p, 3 * plain_len) }),
            Some("unconditional"),
        ),
        (
            "classes for an unconditional model (generate)",
            Box::new(|| unsafe { gran_generate_class(plain.handle, z.as_ptr(), n, &0, 1, 0, p, plain_len) }),
            Some("unconditional"),
        ),
    ];
    for (what, call, says) in &cases {
        let s = call();
        let msg = last_error();
        assert_eq!(s, GRAN_STATUS_INVALID_ARGUMENT, "{what}: {msg}");
        if let Some(text) = says {
            assert!(msg.contains(text), "{what}: the message '{msg}' lacks '{text}'");
        }
        assert!(out.iter().all(|&b| b == 0xA5), "{what}: the output was written");
    }
    // The same through the Rust interface: a list of the wrong length, Drawn for caller latents.
    let m = load(&conditional_file());
    let e = draw(&m, Latents::Seed(1), Classes::Each(&[1, 2]), 3).unwrap_err();
    assert!(e.status == GRAN_STATUS_INVALID_ARGUMENT && e.message.contains("2 classes given for 3 images"));
    let e = draw(&m, Latents::Given(&[0.0; 3 * 8]), Classes::Drawn, 3).unwrap_err();
    assert!(e.status == GRAN_STATUS_INVALID_ARGUMENT && e.message.contains("give a class"), "{}", e.message);
    // And the unconditional model samples as it did.
    // SAFETY: `out` holds 4 * len >= plain_len bytes.
    let s = unsafe { gran_sample(plain.handle, 1, n, 0, out.as_mut_ptr().cast(), plain_len) };
    assert_eq!(s, GRAN_STATUS_OK);
}
