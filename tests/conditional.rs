//! Class-conditional models (`ModelConfig::classes`): what a class changes and what it does
//! not. An image of class k for (seed, i) is the same whatever else is drawn with it; training
//! takes the labels with their images and resumes exactly; a bad class or unlabelled data is
//! refused before anything changes; files of unconditional models are as they were.

use gran::checkpoint;
use gran::{train, Classes, ErrorKind, Model, ModelConfig, TrainConfig};
use std::path::PathBuf;
use tch::Tensor;

mod common;
use common::{repo_dir, synthetic, test_device, tiny};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gran-test-{}-conditional-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn conditional(steps: u32, classes: u32) -> ModelConfig {
    ModelConfig { classes, ..tiny(steps) }
}

/// `count` synthetic images labelled by the square's row (0 .. 3).
fn labelled(count: i64) -> gran::data::Dataset {
    let images = synthetic(count).images().unwrap().shallow_clone();
    let labels = (0..count as usize).map(|i| ((i % 12) / 3) as u8).collect();
    gran::data::Dataset::new(images, Some(labels)).unwrap()
}

fn run(iterations: u64) -> TrainConfig {
    TrainConfig { iterations, batch_size: 8, report_every: 0, seed: 3, ..Default::default() }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn all_tensors(m: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = m.read_fresh().unwrap().named_tensors().into_iter().map(|(n, t)| (n, t.copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Image i of class k for a seed depends on (seed, i, k) alone: not on the count, nor on the
/// classes of the other images (to float rounding across batch sizes, as for unconditional
/// models: the kernels chosen depend on the batch; exactly at the same batch size); and the
/// class does change it.
#[test]
fn an_image_of_a_class_depends_only_on_its_seed_index_and_class() {
    let m = Model::new(&conditional(3, 4)).unwrap();
    train(&m, &labelled(32), &run(2), &mut |_| false).unwrap();
    let each = [2u32, 0, 3, 1, 2, 2];
    let mixed = m.sample_classes(9, 6, Classes::Each(&each), false).unwrap().images;
    // 300 images: more than one internal chunk of 256.
    let many = m.sample_classes(9, 300, Classes::All(2), false).unwrap().images;
    for i in [0i64, 4, 5] {
        assert!(max_diff(&mixed.get(i), &many.get(i)) < 1e-6, "image {i} of class 2");
    }
    let alone = m.sample_classes(9, 2, Classes::Each(&[2, 0]), false).unwrap().images;
    assert!(max_diff(&mixed.narrow(0, 0, 2), &alone) < 1e-6);
    // The same count, other classes for the other images: the same bits.
    let others = m.sample_classes(9, 6, Classes::Each(&[2, 3, 0, 0, 2, 1]), false).unwrap().images;
    for i in [0i64, 4] {
        assert_eq!(max_diff(&mixed.get(i), &others.get(i)), 0.0, "image {i}");
    }
    // The same latent as another class is another image.
    let other = m.sample_classes(9, 1, Classes::All(3), false).unwrap().images;
    assert!(max_diff(&other.get(0), &mixed.get(0)) > 1e-3);
    // Drawn classes: `sample` equals `sample_classes` with the classes it reports.
    let drawn = m.sample(9, 40, false).unwrap();
    let labels: Vec<i64> =
        Vec::try_from(drawn.labels.as_ref().expect("a conditional model reports its classes")).unwrap();
    assert!(labels.iter().all(|&k| (0..4).contains(&k)));
    assert!((0..4).all(|k| labels.contains(&k)), "40 drawn classes cover all 4: {labels:?}");
    let named: Vec<u32> = labels.iter().map(|&k| k as u32).collect();
    let again = m.sample_classes(9, 40, Classes::Each(&named), false).unwrap().images;
    assert_eq!(max_diff(&drawn.images, &again), 0.0);
    // Caller latents: the same images as the seed's latents with the same classes.
    let z = m.latents(9, 0, 6).unwrap();
    let generated = m.generate_classes(&z, 6, Classes::Each(&each), false).unwrap().images;
    assert!(max_diff(&generated, &mixed) < 1e-6);
}

/// Bad classes are refused with the reason before anything is drawn; classes given to an
/// unconditional model, and no classes for caller latents of a conditional one, too.
#[test]
fn bad_classes_are_refused() {
    let m = Model::new(&conditional(2, 4)).unwrap();
    for (classes, word) in [
        (Classes::All(4), "class 4 is out of range"),
        (Classes::Each(&[0, 1, 9]), "class 9 of image 2"),
        (Classes::Each(&[0, 1]), "2 classes given for 3 images"),
    ] {
        let e = m.sample_classes(1, 3, classes, false).err().unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains(word), "{}", e.message);
    }
    let z = m.latents(1, 0, 3).unwrap();
    let e = m.generate(&z, 3, false).err().unwrap();
    assert!(e.message.contains("class-conditional"), "{}", e.message);
    let plain = Model::new(&tiny(2)).unwrap();
    let e = plain.sample_classes(1, 3, Classes::All(0), false).err().unwrap();
    assert!(e.message.contains("unconditional"), "{}", e.message);
    assert!(plain.sample(1, 3, false).unwrap().labels.is_none());
    // A configuration of one class, or more than 256, is refused.
    for classes in [1, gran::MAX_CLASSES + 1] {
        assert_eq!(Model::new(&conditional(2, classes)).err().unwrap().kind, ErrorKind::InvalidArgument);
    }
}

/// A conditional model refuses unlabelled data, and labels past its classes, before training.
#[test]
fn training_needs_labels_within_the_classes() {
    let m = Model::new(&conditional(2, 4)).unwrap();
    let e = train(&m, &synthetic(16), &run(1), &mut |_| false).err().unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("no labels"), "{}", e.message);
    let small = Model::new(&conditional(2, 3)).unwrap();
    let e = train(&small, &labelled(16), &run(1), &mut |_| false).err().unwrap();
    assert!(e.message.contains("has label 3"), "{}", e.message);
    assert_eq!(small.step(), 0);
}

/// A conditional run saved part-way and resumed ends bit for bit where the run that never
/// stopped ends; the file carries the classes and both embeddings, which training moved.
#[test]
fn a_conditional_run_resumes_exactly() {
    let dir = temp_dir("resume");
    let data = labelled(40);
    let start = Model::new(&conditional(3, 4)).unwrap();
    let embed_before = start.read().named_tensors().into_iter().find(|(n, _)| n == "d.embed.weight").unwrap().1.copy();
    let straight = Model::new(&conditional(3, 4)).unwrap();
    train(&straight, &data, &run(6), &mut |_| false).unwrap();
    let first = Model::new(&conditional(3, 4)).unwrap();
    train(&first, &data, &run(3), &mut |_| false).unwrap();
    let path = dir.join("half.gran");
    checkpoint::save(&first, &path).unwrap();
    let resumed = checkpoint::load(&path, Some(test_device())).unwrap();
    assert_eq!(resumed.config().classes, 4);
    train(&resumed, &data, &run(3), &mut |_| false).unwrap();
    let (a, b) = (all_tensors(&straight), all_tensors(&resumed));
    assert!(a.iter().any(|(n, _)| n == "g.embed.weight"));
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs");
    }
    let embed_after = &a.iter().find(|(n, _)| n == "d.embed.weight").unwrap().1;
    assert!(max_diff(&embed_before, embed_after) > 0.0, "training moves the projection's embedding");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A file written before conditional models existed loads as an unconditional model, and
/// saved again it is the same file, byte for byte: the format of unconditional models did not
/// change (no "classes" field, the same tensors). Its samples take no classes.
#[test]
fn an_unconditional_file_loads_and_saves_as_before() {
    let dir = temp_dir("old");
    let old = repo_dir().join("runtime/tests/data/tiny_t3_checkpoint.safetensors");
    let m = checkpoint::load(&old, Some(gran::DeviceSpec::Cpu)).unwrap();
    assert_eq!(m.config().classes, 0);
    let again = dir.join("again.safetensors");
    checkpoint::save(&m, &again).unwrap();
    assert!(std::fs::read(&old).unwrap() == std::fs::read(&again).unwrap(), "the file changed when saved again");
    let s = m.sample(3, 5, false).unwrap();
    assert!(s.labels.is_none());
    assert_eq!(s.images.size(), [5, m.config().channels as i64, m.config().height as i64, m.config().width as i64]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The averaged generator of a conditional model samples by class, and its generator export
/// carries the embedding: the export samples what the checkpoint samples.
#[test]
fn a_conditional_export_samples_as_its_checkpoint() {
    let dir = temp_dir("export");
    let m = Model::new(&conditional(2, 4)).unwrap();
    let cfg = TrainConfig { ema_decay: 0.9, ema_start: 0, ..run(3) };
    train(&m, &labelled(24), &cfg, &mut |_| false).unwrap();
    assert!(m.has_averaged());
    let path = dir.join("g.safetensors");
    gran::checkpoint::export(&m, &path, gran::checkpoint::Storage::F32).unwrap();
    let e = checkpoint::load(&path, Some(test_device())).unwrap();
    assert!(e.inference_only() && e.config().classes == 4);
    let want = m.sample_classes(2, 8, Classes::All(3), false).unwrap().images;
    let got = e.sample_classes(2, 8, Classes::All(3), false).unwrap().images;
    assert!(max_diff(&want, &got) < 1e-6);
    std::fs::remove_dir_all(dir).unwrap();
}

/// GAM between two conditional models, and between a conditional and an unconditional one:
/// each discriminator judges the other's samples (a conditional judge with the classes a
/// conditional drawer of the same classes drew them as) and the labelled held-out images.
#[test]
fn gam_runs_between_conditional_and_unconditional_models() {
    let data = labelled(48);
    let (a, b) =
        (Model::new(&conditional(2, 4)).unwrap(), Model::new(&ModelConfig { seed: 6, ..conditional(2, 4) }).unwrap());
    let plain = Model::new(&tiny(2)).unwrap();
    for m in [&a, &b] {
        train(m, &data, &run(2), &mut |_| false).unwrap();
    }
    train(&plain, &synthetic(48), &run(2), &mut |_| false).unwrap();
    let cfg = gran::GamConfig { samples: 40, ..Default::default() };
    for (x, y) in [(&a, &b), (&a, &plain), (&plain, &b)] {
        let r = gran::gam(x, y, &data, &cfg).unwrap();
        for v in [r.test_error_a, r.test_error_b, r.sample_error_a, r.sample_error_b] {
            assert!((0.0..=1.0).contains(&v), "{r:?}");
        }
    }
    // A conditional discriminator judges an image as a member of the class it is given: the
    // scores of held-out images differ with the class, and unlabelled ones take the best class.
    let x = data.float_slice(0, 4, tch::Device::Cpu).unwrap();
    let scoring = gran::Scoring::RunningStatistics;
    let as_0 = a.discriminate_labelled(&x, Some(&Tensor::from_slice(&[0i64; 4])), scoring).unwrap();
    let as_3 = a.discriminate_labelled(&x, Some(&Tensor::from_slice(&[3i64; 4])), scoring).unwrap();
    let best = a.discriminate_labelled(&x, None, scoring).unwrap();
    assert_ne!(as_0, as_3);
    for i in 0..4 {
        assert!(best[i] >= as_0[i].max(as_3[i]) - 1e-6, "image {i}: {} < {} / {}", best[i], as_0[i], as_3[i]);
    }
    let e = a.discriminate_labelled(&x, Some(&Tensor::from_slice(&[0i64, 1, 2, 4])), scoring).err().unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
}
