//! The Rust core end to end: shapes and ranges, the canvas, determinism and batch independence,
//! checkpoints (round trip, exact resume, corrupt files), training control and learning on MNIST.

use gran::checkpoint;
use gran::data::Dataset;
use gran::BnMode;
use gran::Choice;
use gran::{train, DeviceSpec, ErrorKind, Model, ModelConfig, Precision, TrainConfig, Upsampling};
use std::path::PathBuf;
use tch::{Kind, Tensor};

mod common;
use common::{synthetic, test_device, tiny};

fn mnist_train() -> Dataset {
    let dir = common::mnist_dir();
    gran::data::idx::load_idx(&dir.join("train-images-idx3-ubyte.gz"), Some(&dir.join("train-labels-idx1-ubyte.gz")))
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gran-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn short(iterations: u64) -> TrainConfig {
    TrainConfig { iterations, batch_size: 16, report_every: 0, seed: 11, ..Default::default() }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to(tch::Device::Cpu) - b.to(tch::Device::Cpu)).abs().max().double_value(&[])
}

fn all_tensors(m: &Model) -> Vec<(String, Tensor)> {
    // As a checkpoint holds them: the averaged generator's statistics estimated for its weights.
    let mut v: Vec<_> = m.read_fresh().unwrap().named_tensors().into_iter().map(|(n, t)| (n, t.copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn samples_have_the_right_shape_and_range() {
    for steps in [1, 3] {
        let m = Model::new(&tiny(steps)).unwrap();
        let s = m.sample(3, 5, true).unwrap();
        assert_eq!(s.images.size(), vec![5, 1, 28, 28]);
        assert_eq!(s.canvases.as_ref().unwrap().size(), vec![steps as i64, 5, 1, 28, 28]);
        let (lo, hi) = (s.images.min().double_value(&[]), s.images.max().double_value(&[]));
        assert!(lo >= 0.0 && hi <= 1.0, "pixels in [{lo}, {hi}]");
        // The last canvas is the image.
        assert_eq!(max_abs_diff(&s.canvases.unwrap().get(steps as i64 - 1), &s.images), 0.0);
    }
    let c = ModelConfig { height: 32, width: 32, channels: 3, ..tiny(2) };
    let s = Model::new(&c).unwrap().sample(0, 2, false).unwrap();
    assert_eq!(s.images.size(), vec![2, 3, 32, 32]);
}

#[test]
fn canvas_is_the_sigmoid_of_the_summed_step_outputs() {
    let m = Model::new(&tiny(4)).unwrap();
    let z = Tensor::from_slice(&m.latents(9, 0, 6).unwrap()).view([6, 16]).to_device(m.device());
    let d = tch::no_grad(|| m.read().gen.forward(&z, gran::BnMode::Eval, true)).unwrap();
    assert_eq!(d.deltas.len(), 4);
    let mut sum = d.deltas[0].zeros_like();
    for (t, delta) in d.deltas.iter().enumerate() {
        sum += delta;
        assert!(max_abs_diff(&d.canvases[t], &sum.sigmoid()) < 1e-6, "step {t}");
    }
    // Steps really add something: the canvases differ from one step to the next.
    assert!(max_abs_diff(&d.canvases[0], &d.canvases[1]) > 1e-4);
}

#[test]
fn weights_are_shared_across_steps() {
    let (g1, d1) = Model::new(&tiny(1)).unwrap().parameter_counts();
    let (g5, d5) = Model::new(&tiny(5)).unwrap().parameter_counts();
    assert_eq!((g1, d1), (g5, d5));
    // The reference 28x28 model's discriminator: conv 1->80, 80->40 (5x5, no bias), BN, 1960->100, 100->1.
    let (_, d) = Model::new(&ModelConfig { device: test_device(), ..Default::default() }).unwrap().parameter_counts();
    assert_eq!(d, 80 * 25 + 2 * 80 + 80 * 40 * 25 + 2 * 40 + 1960 * 100 + 100 + 100);
}

#[test]
fn sampling_is_deterministic_and_independent_of_the_batch() {
    let m = Model::new(&tiny(3)).unwrap();
    // Move the batch-norm statistics away from their initial values first.
    train(&m, &synthetic(64), &short(3), &mut |_| false).unwrap();
    let a = m.sample(42, 300, false).unwrap().images; // more than one internal chunk
    let b = m.sample(42, 3, false).unwrap().images;
    assert!(max_abs_diff(&a.narrow(0, 0, 3), &b) <= common::other_kernels(1e-6));
    assert_eq!(max_abs_diff(&m.sample(42, 3, false).unwrap().images, &b), 0.0);
    assert!(max_abs_diff(&m.sample(43, 3, false).unwrap().images, &b) > 0.0);
    // Image 280 (second chunk) alone, from its latents.
    let z = m.latents(42, 280, 1).unwrap();
    assert_eq!(z, m.latents(42, 0, 281).unwrap()[280 * 16..]);
    let one = m.generate(&z, 1, false).unwrap().images;
    assert!(max_abs_diff(&a.narrow(0, 280, 1), &one) <= common::other_kernels(1e-6));
}

#[test]
fn sampling_follows_the_weights_as_they_change() {
    // Sampling draws through a form of the generator prepared from its weights (gran::lean);
    // after training steps, a different generator choice or a load it must be prepared anew.
    let m = Model::new(&tiny(3)).unwrap();
    let z = Tensor::from_slice(&m.latents(5, 0, 4).unwrap()).view([4, 16]).to_device(m.device());
    let eval = |choice| {
        let st = m.read_fresh().unwrap();
        tch::no_grad(|| st.generator(choice).forward(&z, BnMode::Eval, false)).unwrap().image
    };
    let tc = TrainConfig { ema_decay: 0.5, ema_start: 0, ..short(2) };
    let mut before: Option<Tensor> = None;
    for round in 0..2 {
        for choice in [Choice::Raw, Choice::Averaged, Choice::Raw] {
            m.set_generator_choice(choice);
            let now = m.sample(5, 4, false).unwrap().images;
            assert!(max_abs_diff(&eval(choice), &now) < 1e-5, "round {round}, {choice:?}: not the weights now held");
            if let Some(b) = &before {
                assert!(max_abs_diff(b, &now) > 1e-4, "round {round}, {choice:?}: the images of the first weights");
            }
        }
        if round == 0 {
            before = Some(m.sample(5, 4, false).unwrap().images);
            train(&m, &synthetic(64), &tc, &mut |_| false).unwrap();
        }
    }
    assert!(max_abs_diff(&eval(Choice::Raw), &eval(Choice::Averaged)) > 1e-4, "the two generators differ");
}

#[test]
fn generate_checks_its_latents() {
    let m = Model::new(&tiny(1)).unwrap();
    assert_eq!(m.generate(&[0.0; 15], 1, false).err().unwrap().kind, ErrorKind::InvalidArgument);
    let mut z = vec![0.0f32; 32];
    z[20] = f32::NAN;
    let e = m.generate(&z, 2, false).err().unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("20"), "{}", e.message);
    assert_eq!(m.sample(1, 0, false).err().unwrap().kind, ErrorKind::InvalidArgument);
}

#[test]
fn checkpoint_round_trip_gives_the_same_samples() {
    let dir = temp_dir("roundtrip");
    let m = Model::new(&tiny(2)).unwrap();
    train(&m, &synthetic(64), &short(4), &mut |_| false).unwrap();
    let path = dir.join("m.gran");
    checkpoint::save(&m, &path).unwrap();
    let l = checkpoint::load(&path, None).unwrap();
    assert_eq!(l.config(), m.config());
    assert_eq!(l.step(), 4);
    assert_eq!(max_abs_diff(&l.sample(7, 8, false).unwrap().images, &m.sample(7, 8, false).unwrap().images), 0.0);
    let p: Vec<f32> = l.discriminate(&synthetic(4).float_images(tch::Device::Cpu).unwrap()).unwrap();
    assert_eq!(p, m.discriminate(&synthetic(4).float_images(tch::Device::Cpu).unwrap()).unwrap());
    // No temporary files are left beside it.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn discriminator_scoring_with_running_or_batch_statistics() {
    use gran::Scoring::{BatchStatistics, RunningStatistics};
    let m = Model::new(&tiny(2)).unwrap();
    train(&m, &synthetic(64), &short(6), &mut |_| false).unwrap();
    let before = all_tensors(&m);
    let x = synthetic(10).float_images(tch::Device::Cpu).unwrap();
    let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-6);
    // Running statistics: an image's score does not depend on what is scored with it.
    let alone = m.discriminate_with(&x, RunningStatistics).unwrap();
    assert_eq!(alone, m.discriminate(&x).unwrap());
    assert!(close(&alone[..3], &m.discriminate_with(&x.narrow(0, 0, 3), RunningStatistics).unwrap()));
    // Batch statistics in balanced chunks of at most 4: 10 images are scored as 4 + 3 + 3.
    let chunked = m.discriminate_with(&x, BatchStatistics(4)).unwrap();
    assert_eq!(chunked.len(), 10);
    for (start, len) in [(0usize, 4usize), (4, 3), (7, 3)] {
        let part = m.discriminate_with(&x.narrow(0, start as i64, len as i64), BatchStatistics(len)).unwrap();
        assert!(close(&chunked[start..start + len], &part), "chunk at {start}");
    }
    // ... which is another normalisation than the running statistics, and depends on the chunk.
    assert!(alone.iter().zip(&chunked).any(|(a, b)| (a - b).abs() > 1e-4));
    let whole = m.discriminate_with(&x, BatchStatistics(10)).unwrap();
    assert!(whole.iter().zip(&chunked).any(|(a, b)| (a - b).abs() > 1e-4));
    assert!(chunked.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)));
    // Scoring changes nothing in the model (batch-norm running statistics included).
    let after = all_tensors(&m);
    assert!(before.iter().zip(&after).all(|(a, b)| a.0 == b.0 && max_abs_diff(&a.1, &b.1) == 0.0));
    assert_eq!(m.discriminate_with(&x, BatchStatistics(0)).err().unwrap().kind, ErrorKind::InvalidArgument);
    assert!(m.discriminate_with(&x.narrow(0, 0, 0), BatchStatistics(4)).unwrap().is_empty());
}

#[test]
fn resuming_from_a_checkpoint_is_exact() {
    let dir = temp_dir("resume");
    let data = synthetic(40); // 2 batches per epoch: the resume crosses epoch boundaries
    let straight = Model::new(&tiny(3)).unwrap();
    // On CUDA, bit-exact resumption needs cuDNN's deterministic engines: gran's default there.
    assert!(!straight.device().is_cuda() || gran::deterministic());
    train(&straight, &data, &short(10), &mut |_| false).unwrap();
    let first = Model::new(&tiny(3)).unwrap();
    train(&first, &data, &short(5), &mut |_| false).unwrap();
    let path = dir.join("half.gran");
    checkpoint::save(&first, &path).unwrap();
    drop(first);
    let resumed = checkpoint::load(&path, Some(test_device())).unwrap();
    train(&resumed, &data, &short(5), &mut |_| false).unwrap();
    assert_eq!(resumed.step(), 10);
    let (a, b) = (all_tensors(&straight), all_tensors(&resumed));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(max_abs_diff(ta, tb), 0.0, "{na} differs after resume");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A generator that upsamples and convolves: decoder weights [out, in, 5, 5], its kind in
/// the checkpoint, exact resumption, and a file naming an unknown kind refused.
#[test]
fn a_resizing_generator_trains_saves_and_resumes() {
    let dir = temp_dir("resize");
    let cfg = ModelConfig { upsampling: Upsampling::Resize, ..tiny(2) };
    let data = synthetic(40);
    let straight = Model::new(&cfg).unwrap();
    let shapes: Vec<(String, Vec<i64>)> = all_tensors(&straight)
        .into_iter()
        .filter(|(n, _)| n.starts_with("g.dec.conv"))
        .map(|(n, t)| (n, t.size()))
        .collect();
    // tiny: width 1/8 of the reference 256 -> 128 -> 1 decoder (28x28).
    assert!(shapes.contains(&("g.dec.conv0.weight".into(), vec![16, 32, 5, 5])), "{shapes:?}");
    assert!(shapes.contains(&("g.dec.conv1.weight".into(), vec![1, 16, 5, 5])), "{shapes:?}");
    train(&straight, &data, &short(6), &mut |_| false).unwrap();
    let first = Model::new(&cfg).unwrap();
    train(&first, &data, &short(3), &mut |_| false).unwrap();
    let path = dir.join("half.gran");
    checkpoint::save(&first, &path).unwrap();
    let resumed = checkpoint::load(&path, Some(test_device())).unwrap();
    assert_eq!(resumed.config(), first.config());
    let images = |m: &Model| m.sample(4, 6, false).unwrap().images;
    assert_eq!(max_abs_diff(&images(&resumed), &images(&first)), 0.0);
    train(&resumed, &data, &short(3), &mut |_| false).unwrap();
    for ((na, ta), (nb, tb)) in all_tensors(&straight).iter().zip(&all_tensors(&resumed)) {
        assert_eq!(na, nb);
        assert_eq!(max_abs_diff(ta, tb), 0.0, "{na} differs after resume");
    }
    // The file names the kind; another value is refused, as is a transposed reading of it.
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    assert!(header.contains("\"upsampling\":\"resize\""), "{header}");
    for (to, word) in [("\"upsampling\":\"resizX\"", "upsampling"), ("\"upsampling\":\"transposed\"", "expected F32")] {
        let h = header.replace("\"upsampling\":\"resize\"", to);
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend(h.as_bytes());
        b.extend(&bytes[8 + header_len..]);
        let bad = dir.join("bad.gran");
        std::fs::write(&bad, &b).unwrap();
        let e = checkpoint::load(&bad, None).err().unwrap_or_else(|| panic!("{to} loaded"));
        assert_eq!(e.kind, ErrorKind::Format, "{to}: {}", e.message);
        assert!(e.message.contains(word), "{}", e.message);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_checkpoints_are_format_errors() {
    let dir = temp_dir("corrupt");
    let m = Model::new(&tiny(1)).unwrap();
    let good = dir.join("good.gran");
    checkpoint::save(&m, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.join("bad.gran");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("eight bytes", bytes[..8].to_vec()),
        ("half", bytes[..bytes.len() / 2].to_vec()),
        ("one byte short", bytes[..bytes.len() - 1].to_vec()),
        ("foreign bytes", b"\x89PNG\r\n\x1a\n not a checkpoint at all".to_vec()),
        ("random", (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()),
    ];
    let mut flipped = bytes.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x40;
    cases.push(("flipped data bit", flipped));
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    for (what, from, to) in [
        ("tag", "gran-checkpoint", "gran-checkpoinX"),
        ("version", "\"version\":\"1\"", "\"version\":\"9\""),
        ("steps", "\"steps\":\"1\"", "\"steps\":\"0\""),
    ] {
        assert!(header.contains(from), "{what}: {header}");
        let h = header.replace(from, to);
        let mut b = bytes[..8].to_vec();
        b.extend(h.as_bytes());
        b.extend(&bytes[8 + header_len..]);
        cases.push((what, b));
    }
    for (what, b) in cases {
        std::fs::write(&bad, &b).unwrap();
        let e = checkpoint::load(&bad, None).err().unwrap_or_else(|| panic!("{what} loaded"));
        assert_eq!(e.kind, ErrorKind::Format, "{what}: {}", e.message);
    }
    let e = checkpoint::load(&dir.join("missing.gran"), None).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Io);
    // A failed save (the folder does not exist) leaves nothing behind and reports Io.
    let e = checkpoint::save(&m, &dir.join("no/such/dir/m.gran")).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Io);
    // Saving over an existing checkpoint replaces it whole.
    checkpoint::save(&m, &bad).unwrap();
    assert_eq!(std::fs::read(&bad).unwrap(), bytes);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn training_reports_progress_and_obeys_stop_requests() {
    let data = synthetic(64);
    let m = Model::new(&tiny(2)).unwrap();
    let mut seen = Vec::new();
    let cfg = TrainConfig { report_every: 2, ..short(6) };
    let last = train(&m, &data, &cfg, &mut |p| {
        seen.push((p.step, p.total_steps, p.epoch));
        assert!(p.d_loss.is_finite() && p.g_loss.is_finite());
        assert!((0.0..=1.0).contains(&p.d_real) && (0.0..=1.0).contains(&p.d_fake));
        assert!(p.images_per_s > 0.0);
        false
    })
    .unwrap();
    assert_eq!(seen, vec![(2, 6, 0), (4, 6, 0), (6, 6, 1)]);
    assert_eq!(last.step, 6);

    // The callback stops the run; the model keeps the steps done.
    let e = train(&m, &data, &cfg, &mut |p| p.step >= 8).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Cancelled);
    assert_eq!(m.step(), 8);

    // Cancel from another thread: takes effect before the next step.
    let e = train(&m, &data, &cfg, &mut |_| {
        std::thread::scope(|s| {
            s.spawn(|| m.cancel());
        });
        false
    })
    .err()
    .unwrap();
    assert_eq!(e.kind, ErrorKind::Cancelled);
    assert_eq!(m.step(), 10);

    // A second training run on a model that is training is refused; sampling is fine.
    let mut inner = None;
    train(&m, &data, &TrainConfig { report_every: 1, ..short(1) }, &mut |_| {
        inner = Some(train(&m, &data, &short(1), &mut |_| false).err().unwrap().kind);
        assert!(m.sample(1, 2, false).is_ok());
        false
    })
    .unwrap();
    assert_eq!(inner, Some(ErrorKind::Busy));
    // A stale cancel request does not stop the next run.
    m.cancel();
    train(&m, &data, &short(1), &mut |_| false).unwrap();
    assert_eq!(m.step(), 12);
}

#[test]
fn bad_training_input_is_refused_before_anything_changes() {
    let m = Model::new(&tiny(1)).unwrap();
    let data = synthetic(8);
    let before = m.sample(0, 2, false).unwrap().images;
    for (cfg, word) in [
        (TrainConfig { batch_size: 1, ..short(1) }, "batch_size"),
        (TrainConfig { batch_size: 9, ..short(1) }, "larger than the dataset"),
        (TrainConfig { lr_g: -1.0, ..short(1) }, "learning rate"),
        (TrainConfig { beta1_d: 1.0, ..short(1) }, "beta1"),
        (TrainConfig { iterations: 0, epochs: 0, ..short(1) }, "nothing to train"),
    ] {
        let e = train(&m, &data, &cfg, &mut |_| false).err().unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains(word), "{}", e.message);
    }
    let nowhere = TrainConfig { checkpoint_path: Some("/nonexistent/folder/m.gran".into()), batch_size: 4, ..short(1) };
    assert_eq!(train(&m, &data, &nowhere, &mut |_| false).err().unwrap().kind, ErrorKind::Io);
    let colour = Dataset::new(Tensor::zeros([4, 3, 28, 28], (Kind::Uint8, tch::Device::Cpu)), None).unwrap();
    let e = train(&m, &colour, &short(1), &mut |_| false).err().unwrap();
    assert!(e.message.contains("3x28x28"), "{}", e.message);
    assert_eq!(m.step(), 0);
    assert_eq!(max_abs_diff(&m.sample(0, 2, false).unwrap().images, &before), 0.0);
}

#[test]
fn divergence_stops_training_with_the_last_finite_weights() {
    // Absurd learning rates: with 1e30 the first step already gives a non-finite loss, with 2e18
    // (on this model and data) a later one.
    for lr in [1e30, 2e18] {
        let m = Model::new(&tiny(1)).unwrap();
        let cfg = TrainConfig { lr_g: lr, lr_d: lr, ..short(50) };
        let (result, last) = gran::train::train_reporting(&m, &synthetic(32), &cfg, &mut |_| false);
        let e = result.err().unwrap();
        assert_eq!(e.kind, ErrorKind::Diverged, "{}", e.message);
        assert!(e.message.contains(&format!("step {}", m.step())), "{}", e.message);
        assert!(m.step() < 50);
        // The report of where the run stopped: the model's step, and the run's end (also when
        // it diverged at its first step, before any report).
        let last = last.expect("a run that diverged reports where it stopped");
        assert_eq!((last.step, last.total_steps), (m.step(), 50), "lr {lr}");
        for (name, t) in m.read().named_tensors() {
            assert!(t.isfinite().all().int64_value(&[]) == 1, "{name} is not finite");
        }
        // Nothing of the diverged step stays: the model is bit for bit (weights, batch-norm
        // statistics, Adam moments and update counts, as a checkpoint holds them) the model of a
        // run that stopped just before it.
        let stopped = Model::new(&tiny(1)).unwrap();
        if m.step() > 0 {
            train(&stopped, &synthetic(32), &TrainConfig { iterations: m.step(), ..cfg }, &mut |_| false).unwrap();
        }
        for ((n, x), (_, y)) in all_tensors(&m).iter().zip(all_tensors(&stopped)) {
            assert_eq!(max_abs_diff(x, &y), 0.0, "lr {lr}: {n} differs (diverged at step {})", m.step());
        }
        let dir = temp_dir("diverged");
        let (a, b) = (dir.join("diverged.gran"), dir.join("stopped.gran"));
        checkpoint::save(&m, &a).unwrap();
        checkpoint::save(&stopped, &b).unwrap();
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "lr {lr}: checkpoints differ");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The tests' models live where GRAN_TEST_DEVICE says (gpu/check.sh runs this suite on CUDA),
/// and so do their weights and optimizer state.
#[test]
fn models_live_on_the_test_device() {
    let want = common::test_torch_device();
    let m = Model::new(&tiny(2)).unwrap();
    assert_eq!(m.device(), want);
    train(&m, &synthetic(32), &short(1), &mut |_| false).unwrap();
    for (name, t) in all_tensors(&m) {
        assert_eq!(t.device(), want, "{name}");
    }
}

#[test]
fn missing_cuda_device_is_an_error_not_a_fallback() {
    let n = gran::cuda_device_count() as u32;
    let e = Model::new(&ModelConfig { device: DeviceSpec::Cuda(n), ..tiny(1) }).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Device);
    let auto = Model::new(&ModelConfig { device: DeviceSpec::Auto, ..tiny(1) }).unwrap();
    assert_eq!(auto.device() == tch::Device::Cpu, n == 0);
}

/// A small model trained a few hundred steps on real MNIST moves toward the data: at
/// initialisation every pixel is about 0.5 with almost no spread; after training the samples'
/// mean and spread approach MNIST's (about 0.13 and 0.31), and the discriminator (scoring as GAM
/// does, each set normalised by its own batch statistics) tells held-out real digits from
/// samples, but less than perfectly: it scores the real ones higher on average, and some
/// images of one kind or the other fall on the wrong side of 0.5.
#[test]
fn training_on_mnist_moves_samples_toward_the_data() {
    let data = mnist_train();
    let real = data.float_images(tch::Device::Cpu).unwrap();
    let (data_mean, data_std) = (real.mean(Kind::Float).double_value(&[]), real.std(true).double_value(&[]));
    let m =
        Model::new(&ModelConfig { drawing_steps: 3, width_scale: 0.25, device: test_device(), ..Default::default() })
            .unwrap();
    let s0 = m.sample(1, 256, false).unwrap().images;
    let (m0, s0) = (s0.mean(Kind::Float).double_value(&[]), s0.std(true).double_value(&[]));
    assert!((m0 - 0.5).abs() < 0.05 && s0 < 0.05, "initial samples: mean {m0}, std {s0}");
    train(&m, &data, &TrainConfig { iterations: 200, batch_size: 64, seed: 1, ..Default::default() }, &mut |_| false)
        .unwrap();
    let s = m.sample(1, 256, false).unwrap().images;
    let (m1, s1) = (s.mean(Kind::Float).double_value(&[]), s.std(true).double_value(&[]));
    assert!((m1 - data_mean).abs() < 0.1, "sample mean {m1} vs data {data_mean}");
    assert!(s1 > 0.5 * data_std, "sample std {s1} vs data {data_std}");
    println!("initial mean {m0:.3} std {s0:.3}; after 200 steps mean {m1:.3} std {s1:.3}; data mean {data_mean:.3} std {data_std:.3}");
    // Closer to the data in pixel mean and spread than at initialisation, by a wide margin.
    assert!((m1 - data_mean).abs() + (s1 - data_std).abs() < 0.3 * ((m0 - data_mean).abs() + (s0 - data_std).abs()));

    let dir = common::mnist_dir();
    let held_out = gran::data::idx::load_idx(&dir.join("t10k-images-idx3-ubyte.gz"), None).unwrap();
    let real = held_out.float_images(tch::Device::Cpu).unwrap().narrow(0, 0, 256);
    let score = |x: &tch::Tensor| m.discriminate_with(x, gran::Scoring::BatchStatistics(128)).unwrap();
    let (d_real, d_fake) = (score(&real), score(&s));
    let mean = |v: &[f32]| v.iter().map(|&p| f64::from(p)).sum::<f64>() / v.len() as f64;
    let wrong = d_real.iter().filter(|&&p| p <= 0.5).count() + d_fake.iter().filter(|&&p| p > 0.5).count();
    println!(
        "D: mean {:.3} on held-out digits, {:.3} on samples; {wrong} of 512 on the wrong side",
        mean(&d_real),
        mean(&d_fake)
    );
    assert!(
        mean(&d_real) > mean(&d_fake),
        "D scores samples ({}) above real digits ({})",
        mean(&d_fake),
        mean(&d_real)
    );
    assert!(wrong > 0, "D tells every sample from every real digit: the generator fools it not at all");
}

/// bfloat16 training: reproducible, float32 state, close to a float32 run without being it; and
/// the thread's autocast state is off again afterwards. bfloat16 sampling: close to float32.
#[test]
fn bf16_training_and_sampling_stay_close_to_float32() {
    let data = synthetic(64);
    let run = |precision| {
        let m = Model::new(&tiny(3)).unwrap();
        // The rates of the first defaults: at the faster default rates, ten steps already
        // amplify bfloat16's rounding past what this comparison is about.
        let cfg = TrainConfig { precision, lr_g: 2e-4, lr_d: 4e-4, ..short(10) };
        train(&m, &data, &cfg, &mut |_| false).unwrap();
        m
    };
    let (a, b, f) = (run(Precision::Bf16), run(Precision::Bf16), run(Precision::Fp32));
    assert!(!gran::autocast_enabled(false));
    let (ta, tb, tf) = (all_tensors(&a), all_tensors(&b), all_tensors(&f));
    let mut differs = false;
    for (((name, x), (_, y)), (_, z)) in ta.iter().zip(&tb).zip(&tf) {
        assert_eq!(x.kind(), Kind::Float, "{name}");
        assert!(x.equal(y), "{name}: two bfloat16 runs differ");
        differs |= !x.equal(z);
    }
    assert!(differs, "the bfloat16 run computed exactly what the float32 run did");
    let (sa, sf) = (a.sample(3, 32, false).unwrap().images, f.sample(3, 32, false).unwrap().images);
    let trained = max_abs_diff(&sa, &sf);
    // Sampling the float32-trained model in bfloat16: other bits, nearby values, float32 images.
    f.set_precision(Precision::Bf16);
    let sb = f.sample(3, 32, false).unwrap().images;
    f.set_precision(Precision::Fp32);
    assert_eq!(sb.kind(), Kind::Float);
    let sampled = max_abs_diff(&sb, &sf);
    let mean = (&sb - &sf).abs().mean(Kind::Float).double_value(&[]);
    println!("max |bf16 - fp32|: trained {trained:.5}, sampled {sampled:.5} (mean {mean:.6})");
    assert!(trained > 0.0 && trained < 0.05, "{trained}");
    assert!(sampled > 0.0 && sampled < 0.05 && mean < 0.005, "{sampled} {mean}");
    assert!(f.sample(3, 32, false).unwrap().images.equal(&sf), "float32 sampling changed after bfloat16");
}

/// A run keeps byte images as bytes on the model's device (a quarter of the float size) and
/// converts each minibatch there; float images stay floats. Results are those of converting the
/// whole dataset first (the same values per pixel): exact resume and determinism tests above.
#[test]
fn training_keeps_byte_images_as_bytes_on_the_device() {
    let m = Model::new(&tiny(1)).unwrap();
    let bytes = synthetic(40);
    let cfg = short(2);
    let t = gran::train::Trainer::new(&m, &bytes, &cfg).unwrap();
    assert_eq!(t.data_bytes(), 40 * 28 * 28, "one byte per pixel");
    // The model is marked as training while a run's owner exists.
    assert_eq!(train(&m, &bytes, &cfg, &mut |_| false).err().unwrap().kind, ErrorKind::Busy);
    t.run(&mut |_| false).unwrap();
    assert_eq!(m.step(), 2);
    let floats = Dataset::new(bytes.float_images(tch::Device::Cpu).unwrap(), None).unwrap();
    let t = gran::train::Trainer::new(&m, &floats, &cfg).unwrap();
    assert_eq!(t.data_bytes(), 40 * 28 * 28 * 4);
    drop(t);
    // Trained on the same pixels as bytes or as floats: the same weights.
    let (a, b) = (Model::new(&tiny(1)).unwrap(), Model::new(&tiny(1)).unwrap());
    train(&a, &bytes, &cfg, &mut |_| false).unwrap();
    train(&b, &floats, &cfg, &mut |_| false).unwrap();
    for ((n, x), (_, y)) in all_tensors(&a).iter().zip(all_tensors(&b)) {
        assert_eq!(max_abs_diff(x, &y), 0.0, "{n}");
    }
}
