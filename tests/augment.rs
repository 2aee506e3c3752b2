//! The discriminator's augmentation and the R1 penalty through whole training runs: adaptive p
//! follows the discriminator, checkpoints keep it, resumed runs continue it exactly, and
//! settings out of range are refused before anything changes.

use gran::checkpoint;
use gran::train::{Adaptive, Augment};
use gran::{train, ErrorKind, Model, TrainConfig};
use std::path::PathBuf;
use tch::Tensor;

mod common;
use common::{synthetic, test_device, tiny};

#[path = "support/shapes.rs"]
mod shapes;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gran-test-{}-augment-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A short run that augments adaptively, with p fast enough to move within it.
fn adaptive(iterations: u64) -> TrainConfig {
    TrainConfig {
        iterations,
        batch_size: 16,
        report_every: 0,
        seed: 11,
        augment: Augment::Adaptive { target: 0.6, floor: 0.0 },
        augment_speed: 200.0,
        ..Default::default()
    }
}

fn all_tensors(m: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = m.read_fresh().unwrap().named_tensors().into_iter().map(|(n, t)| (n, t.copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn same_tensors(a: &Model, b: &Model) {
    let (a, b) = (all_tensors(a), all_tensors(b));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs");
    }
}

/// A discriminator that learns fast on easy data is soon sure of the real images: p rises. One
/// that barely learns stays unsure: p, started high, falls.
#[test]
fn adaptive_p_follows_the_discriminator() {
    let data = synthetic(64);
    let winning = Model::new(&tiny(1)).unwrap();
    let mut seen = Vec::new();
    let p = train(&winning, &data, &TrainConfig { lr_d: 1e-2, report_every: 10, ..adaptive(60) }, &mut |p| {
        seen.push(p.augment_p);
        false
    })
    .unwrap();
    assert!(p.augment_p > 0.3, "p {} after a winning discriminator; reports {seen:?}", p.augment_p);
    assert_eq!(winning.augment_state().p, p.augment_p, "the model keeps where p stands");

    // A discriminator that calls the real images fake: trained (at a fixed p of 0.8) on the
    // squares, it is then shown flat grey images as the real ones, with rates too small to
    // learn them. Its outputs on them are far below the target, and p falls from 0.8.
    let losing = Model::new(&tiny(1)).unwrap();
    let fixed = TrainConfig { augment: Augment::Fixed(0.8), lr_d: 1e-2, ..adaptive(30) };
    assert_eq!(train(&losing, &data, &fixed, &mut |_| false).unwrap().augment_p, 0.8);
    assert_eq!(losing.augment_state().p, 0.8);
    let grey = gran::data::Dataset::new(Tensor::full([64, 1, 28, 28], 128, (tch::Kind::Uint8, tch::Device::Cpu)), None)
        .unwrap();
    let frozen = TrainConfig { lr_d: 1e-9, lr_g: 1e-9, ..adaptive(40) };
    let p = train(&losing, &grey, &frozen, &mut |_| false).unwrap();
    // 10 adjustments of 16 * 4 / 200 = 0.32: down to 0.
    assert_eq!(p.augment_p, 0.0, "p after a discriminator that loses (D(x) {})", p.d_real);

    // With a floor, the same run starts at it (the model's p, 0, is raised to it) and does not
    // fall below it.
    let mut seen = Vec::new();
    let floored = TrainConfig { augment: Augment::Adaptive { target: 0.6, floor: 0.25 }, report_every: 1, ..frozen };
    let p = train(&losing, &grey, &floored, &mut |p| {
        seen.push(p.augment_p);
        false
    })
    .unwrap();
    assert_eq!(p.augment_p, 0.25, "p at the floor after a discriminator that loses; reports {seen:?}");
    assert!(seen.iter().all(|&p| p == 0.25), "never below the floor: {seen:?}");

    // Off: p is not reported, and the model's state is left as it was.
    let before = losing.augment_state();
    let p = train(&losing, &data, &TrainConfig { augment: Augment::Off, ..adaptive(2) }, &mut |_| false).unwrap();
    assert_eq!((p.augment_p, losing.augment_state()), (0.0, before));
}

/// A run saved part-way with augmentation on and resumed from the file ends with exactly the
/// weights, and the augmentation state, of a run that never stopped.
#[test]
fn resuming_with_adaptive_augmentation_is_exact() {
    let dir = temp_dir("resume");
    let data = synthetic(40);
    let cfg = |n| TrainConfig { lr_d: 1e-2, ..adaptive(n) };
    let straight = Model::new(&tiny(3)).unwrap();
    train(&straight, &data, &cfg(14), &mut |_| false).unwrap();
    let first = Model::new(&tiny(3)).unwrap();
    // 7 steps: the state is saved between two adjustments of p (every 4 steps).
    train(&first, &data, &cfg(7), &mut |_| false).unwrap();
    let state = first.augment_state();
    assert!(state.p > 0.0 && state.steps == 3, "{state:?}");
    let path = dir.join("half.gran");
    checkpoint::save(&first, &path).unwrap();
    let resumed = checkpoint::load(&path, Some(test_device())).unwrap();
    assert_eq!(resumed.augment_state(), state, "the checkpoint keeps p and the signs since its last adjustment");
    train(&resumed, &data, &cfg(7), &mut |_| false).unwrap();
    assert_eq!(resumed.augment_state(), straight.augment_state());
    same_tensors(&straight, &resumed);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Augmenting changes training (the discriminator sees other images) and the same settings
/// give the same weights again; the R1 penalty changes the discriminator's update on the steps
/// it runs, and training stays finite with it.
#[test]
fn augmentation_and_r1_change_the_updates_reproducibly() {
    let data = shapes::shapes_dataset(32, 32, 1);
    let cfg = gran::ModelConfig { height: 32, width: 32, channels: 3, ..tiny(2) };
    let run = |c: &TrainConfig| {
        let m = Model::new(&cfg).unwrap();
        let p = train(&m, &data, c, &mut |_| false).unwrap();
        assert!(p.d_loss.is_finite() && p.g_loss.is_finite());
        m
    };
    let fixed = TrainConfig { augment: Augment::Fixed(0.9), augment_flip: true, ..adaptive(3) };
    let (a, b) = (run(&fixed), run(&fixed));
    same_tensors(&a, &b);
    let plain = run(&TrainConfig { augment: Augment::Off, ..adaptive(3) });
    let d_weight = |m: &Model| m.read().named_tensors().into_iter().find(|(n, _)| n == "d.fc.weight").unwrap().1;
    assert!(!d_weight(&a).equal(&d_weight(&plain)), "augmenting changes what D learns");
    // R1 every step, and every second step: step 0 has it in both.
    let r1 = |every| run(&TrainConfig { augment: Augment::Off, r1_gamma: Some(1.0), r1_every: every, ..adaptive(1) });
    let none = run(&TrainConfig { augment: Augment::Off, r1_gamma: Some(0.0), ..adaptive(1) });
    // By image size, 32x32 gets R1 with gamma 1, 64x64 and larger 10.
    let by = gran::train::r1_gamma_for;
    assert_eq!((by(28), by(32), by(64), by(128)), (0.0, 1.0, 10.0, 10.0));
    assert_eq!((gran::train::canvas_penalty_for(28), gran::train::canvas_penalty_for(32)), (0.0, 1.0));
    let by_size = run(&TrainConfig { augment: Augment::Off, r1_every: 1, ..adaptive(1) });
    assert!(d_weight(&by_size).equal(&d_weight(&r1(1))), "the 32x32 default is R1 with gamma 1");
    assert!(!d_weight(&r1(1)).equal(&d_weight(&none)), "R1 changes D's update");
    assert!(d_weight(&r1(2)).equal(&d_weight(&r1(2))));
}

/// The canvas penalty is zero inside its limit: from a fresh generator (its canvas well inside
/// +-5) a run with it makes the same weights as one without, bit for bit, stored or
/// recomputed. From a generator whose canvas lies beyond it (the decoder's convolutions 40
/// times stronger) it changes the generator's first update and leaves the discriminator's,
/// which comes first, alone.
#[test]
fn the_canvas_penalty_acts_beyond_its_limit_only() {
    let data = synthetic(32);
    let run = |penalty: f64, recompute: bool, saturated: bool| {
        let m = Model::new(&tiny(2)).unwrap();
        if saturated {
            tch::no_grad(|| {
                for (_, t) in m.read().named_tensors().into_iter().filter(|(n, _)| n.starts_with("g.dec.conv")) {
                    let _ = t.shallow_clone().f_mul_scalar_(40.0).unwrap();
                }
            });
        }
        let cfg = TrainConfig { canvas_penalty: Some(penalty), recompute, ..adaptive(1) };
        train(&m, &data, &cfg, &mut |_| false).unwrap();
        m
    };
    for recompute in [false, true] {
        same_tensors(&run(1.0, recompute, false), &run(0.0, recompute, false));
        let (with, without) = (run(1.0, recompute, true), run(0.0, recompute, true));
        let weight = |m: &Model, name: &str| m.read().named_tensors().into_iter().find(|(n, _)| n == name).unwrap().1;
        assert!(weight(&with, "d.fc.weight").equal(&weight(&without, "d.fc.weight")), "recompute {recompute}");
        let (a, b) = (weight(&with, "g.hz.fc.weight"), weight(&without, "g.hz.fc.weight"));
        assert!(!a.equal(&b), "recompute {recompute}: the penalty changes G's update");
    }
}

/// Settings out of range are refused with INVALID_ARGUMENT before the model changes, and a
/// checkpoint whose augmentation state is out of range is a FORMAT error.
#[test]
fn bad_augmentation_settings_and_files_are_refused() {
    let data = synthetic(32);
    let m = Model::new(&tiny(1)).unwrap();
    for (c, word) in [
        (TrainConfig { augment: Augment::Fixed(1.5), ..adaptive(1) }, "probability"),
        (TrainConfig { augment: Augment::Fixed(f64::NAN), ..adaptive(1) }, "probability"),
        (TrainConfig { augment: Augment::Adaptive { target: 1.0, floor: 0.0 }, ..adaptive(1) }, "target"),
        (TrainConfig { augment: Augment::Adaptive { target: 0.6, floor: 1.5 }, ..adaptive(1) }, "floor"),
        (TrainConfig { augment_speed: 0.0, ..adaptive(1) }, "speed"),
        (TrainConfig { r1_gamma: Some(-1.0), ..adaptive(1) }, "r1_gamma"),
        (TrainConfig { r1_gamma: Some(f64::NAN), ..adaptive(1) }, "r1_gamma"),
        (TrainConfig { r1_gamma: Some(1.0), r1_every: 0, ..adaptive(1) }, "r1_every"),
        (TrainConfig { canvas_penalty: Some(-0.5), ..adaptive(1) }, "canvas_penalty"),
        (TrainConfig { canvas_penalty: Some(f64::INFINITY), ..adaptive(1) }, "canvas_penalty"),
        (TrainConfig { r1_every: 0, ..adaptive(1) }, "r1_every"),
    ] {
        let e = train(&m, &data, &c, &mut |_| false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.message);
        assert!(e.message.contains(word), "{}", e.message);
        assert_eq!((m.step(), m.augment_state()), (0, Adaptive::default()));
    }

    let dir = temp_dir("bad");
    train(&m, &data, &TrainConfig { lr_d: 1e-2, ..adaptive(6) }, &mut |_| false).unwrap();
    let path = dir.join("m.gran");
    checkpoint::save(&m, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // The JSON header: its length in the first 8 bytes (little-endian), then the text.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap().to_string();
    let p = m.augment_state().p.to_string();
    let field = format!("\"augment_p\":\"{p}\"");
    assert!(header.contains(&field), "the header holds p: {header}");
    let mut refused = 0;
    for bad in ["2", "-1", "N"] {
        // A value of p's length keeps the header's length (and its size field) right.
        if bad.len() > p.len() {
            continue;
        }
        let value = format!("{bad:0<width$}", width = p.len());
        let edited = header.replacen(&field, &format!("\"augment_p\":\"{value}\""), 1);
        let mut out = bytes.clone();
        out[8..8 + n].copy_from_slice(edited.as_bytes());
        let bad_path = dir.join("bad.gran");
        std::fs::write(&bad_path, &out).unwrap();
        let e = checkpoint::load(&bad_path, Some(test_device())).err().expect("refused");
        assert_eq!(e.kind, ErrorKind::Format, "{value}: {}", e.message);
        refused += 1;
    }
    assert!(refused >= 1);
    std::fs::remove_dir_all(dir).unwrap();
}
