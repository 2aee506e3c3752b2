//! The averaged generator (crate::ema) and the learning-rate schedules: the average follows its
//! definition, its batch-norm statistics are its own, resuming stays exact, sampling picks it
//! by default and the raw generator on request.

use gran::checkpoint;
use gran::rng::{stream, Stream};
use gran::train::LrSchedule;
use gran::{train, Model, Precision, TrainConfig};
use gran::{Choice, STANDING_BATCHES};
use tch::{Kind, Tensor};

mod common;
use common::{synthetic, test_device, tiny};

fn cfg(iterations: u64, ema_decay: f64, ema_start: u64) -> TrainConfig {
    TrainConfig { iterations, batch_size: 16, report_every: 0, seed: 11, ema_decay, ema_start, ..Default::default() }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Tensors by name.
type Named = Vec<(String, Tensor)>;

/// Copies of the raw generator's parameters and the averaged ones, by name (without "ema.").
fn generator_params(m: &Model) -> (Named, Named) {
    let st = m.read();
    let raw = st.g_params.iter().map(|n| (n.name.clone(), n.tensor.detach().copy())).collect();
    let avg = st
        .ema
        .as_ref()
        .map(|e| e.params.iter().map(|n| (n.name.trim_start_matches("ema.").to_string(), n.tensor.copy())).collect())
        .unwrap_or_default();
    (raw, avg)
}

#[test]
fn the_average_follows_its_definition() {
    let data = synthetic(48);
    let m = Model::new(&tiny(2)).unwrap();
    assert!(!m.has_averaged());
    let decay = 0.9;
    // Steps 0 and 1 come before ema_start = 2: the average is a copy of the raw weights.
    train(&m, &data, &cfg(2, decay, 2), &mut |_| false).unwrap();
    assert!(m.has_averaged());
    let (raw, avg) = generator_params(&m);
    assert_eq!(raw.len(), avg.len());
    for ((n, r), (na, a)) in raw.iter().zip(&avg) {
        assert_eq!(n, na);
        assert_eq!(max_abs_diff(r, a), 0.0, "{n}: before ema_start the average is the raw weights");
    }
    // Then avg <- decay * avg + (1 - decay) * w after each step, computed here by hand.
    let mut expected: Vec<Tensor> = avg.iter().map(|(_, a)| a.copy()).collect();
    for _ in 0..3 {
        train(&m, &data, &cfg(1, decay, 2), &mut |_| false).unwrap();
        let (raw, avg) = generator_params(&m);
        for ((e, (_, w)), (n, a)) in expected.iter_mut().zip(&raw).zip(&avg) {
            *e = &*e * decay + w * (1.0 - decay);
            let d = max_abs_diff(e, a);
            assert!(d < 1e-6, "{n}: the average is {d} away from its definition");
        }
    }
    assert_eq!(m.step(), 5);
    // ... and it is not the raw generator any more.
    let (raw, avg) = generator_params(&m);
    assert!(raw.iter().zip(&avg).any(|((_, r), (_, a))| max_abs_diff(r, a) > 1e-6));
}

#[test]
fn no_averaging_means_no_averaged_generator_and_the_raw_one_is_unchanged() {
    let data = synthetic(48);
    let plain = Model::new(&tiny(2)).unwrap();
    train(&plain, &data, &cfg(6, 0.0, 0), &mut |_| false).unwrap();
    assert!(!plain.has_averaged());
    let averaged = Model::new(&tiny(2)).unwrap();
    train(&averaged, &data, &cfg(6, 0.8, 0), &mut |_| false).unwrap();
    assert!(averaged.has_averaged());
    // Averaging changes nothing in the raw generator's training.
    let (a, _) = generator_params(&plain);
    let (b, _) = generator_params(&averaged);
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(max_abs_diff(x, y), 0.0, "{n}");
    }
    // Sampling: the averaged generator by default, the raw one on request (= the plain model).
    let raw_images = plain.sample(3, 8, false).unwrap().images;
    let default_images = averaged.sample(3, 8, false).unwrap().images;
    assert!(max_abs_diff(&raw_images, &default_images) > 1e-4, "the default is the averaged generator");
    averaged.set_generator_choice(Choice::Raw);
    assert_eq!(max_abs_diff(&averaged.sample(3, 8, false).unwrap().images, &raw_images), 0.0);
    averaged.set_generator_choice(Choice::Averaged);
    assert_eq!(max_abs_diff(&averaged.sample(3, 8, false).unwrap().images, &default_images), 0.0);
    // A later run without averaging keeps the averaged generator equal to the raw one.
    train(&averaged, &data, &cfg(1, 0.0, 0), &mut |_| false).unwrap();
    let (raw, avg) = generator_params(&averaged);
    for ((n, r), (_, a)) in raw.iter().zip(&avg) {
        assert_eq!(max_abs_diff(r, a), 0.0, "{n}");
    }
}

#[test]
fn the_averaged_generator_has_batch_norm_statistics_of_its_own() {
    let data = synthetic(48);
    let m = Model::new(&tiny(2)).unwrap();
    train(&m, &data, &cfg(8, 0.7, 0), &mut |_| false).unwrap();
    let st = m.read_fresh().unwrap();
    let ema = st.ema.as_ref().unwrap();
    assert_eq!(ema.stats_step, Some(8));
    assert_eq!(ema.stats_batch, 16);
    let find = |set: &[gran::Named], name: &str| {
        set.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no {name}")).tensor.copy()
    };
    // They differ from the raw generator's running statistics ...
    let raw_names: Vec<String> = st.g_buffers.iter().map(|n| n.name.clone()).collect();
    assert!(raw_names
        .iter()
        .any(|n| max_abs_diff(&find(&st.g_buffers, n), &find(&ema.buffers, &format!("ema.{n}"))) > 1e-4));
    // ... and are, by definition, the average over the standing batches of the batch statistics
    // of the averaged generator's own layers: checked by hand at its first batch norm, which
    // normalises hz_fc(z) (mean; variance: the unbiased one, as batch norm keeps it).
    let (w, b) = (find(&ema.params, "ema.g.hz.fc.weight"), find(&ema.params, "ema.g.hz.fc.bias"));
    let s = Stream::new(0, stream::STANDING);
    let (mut mean, mut var) =
        (Tensor::zeros([16], (Kind::Float, w.device())), Tensor::zeros([16], (Kind::Float, w.device())));
    for k in 0..STANDING_BATCHES {
        let z = Tensor::from_slice(&s.sub(u64::from(k)).normals(0, 16 * 16)).view([16, 16]).to_device(w.device());
        let h = z.linear(&w, Some(&b));
        mean += h.mean_dim(0, false, Kind::Float);
        var += h.var_dim(0, true, false);
    }
    let k = f64::from(STANDING_BATCHES);
    let (mean, var) = (mean / k, var / k);
    let d_mean = max_abs_diff(&mean, &find(&ema.buffers, "ema.g.hz.bn.running_mean.0"));
    let d_var = max_abs_diff(&var, &find(&ema.buffers, "ema.g.hz.bn.running_var.0"));
    assert!(d_mean < 1e-5 && d_var < 1e-5, "standing statistics off by {d_mean} (mean), {d_var} (variance)");
    drop(st);
    // Estimated again from the same weights: the same values, bit for bit.
    let before: Vec<Tensor> = m.read().ema.as_ref().unwrap().buffers.iter().map(|n| n.tensor.copy()).collect();
    m.write().ema.as_mut().unwrap().stats_step = None;
    let st = m.read_fresh().unwrap();
    for (x, n) in before.iter().zip(&st.ema.as_ref().unwrap().buffers) {
        assert_eq!(max_abs_diff(x, &n.tensor), 0.0, "{}", n.name);
    }
}

#[test]
fn resuming_with_averaging_and_a_schedule_is_exact() {
    let dir = std::env::temp_dir().join(format!("gran-test-{}-ema-resume", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = synthetic(40); // 2 batches per epoch at batch 16
    let run = |iterations| TrainConfig { lr_schedule: LrSchedule::Linear, ..cfg(iterations, 0.8, 2) };
    let straight = Model::new(&tiny(3)).unwrap();
    train(&straight, &data, &run(10), &mut |_| false).unwrap();
    let first = Model::new(&tiny(3)).unwrap();
    // The linear schedule ends at the run's end: the first half is a run that ends at step 10,
    // stopped at step 5 (as Ctrl-C or a crash would), then resumed with the 5 steps left.
    let stop = train(&first, &data, &TrainConfig { report_every: 1, ..run(10) }, &mut |p| p.step == 5);
    assert_eq!(stop.err().unwrap().kind, gran::ErrorKind::Cancelled);
    assert_eq!(first.step(), 5);
    let path = dir.join("half.gran");
    checkpoint::save(&first, &path).unwrap();
    let resumed = checkpoint::load(&path, Some(test_device())).unwrap();
    assert!(resumed.has_averaged());
    train(&resumed, &data, &TrainConfig { lr_schedule: LrSchedule::Linear, ..cfg(5, 0.8, 2) }, &mut |_| false).unwrap();
    let all = |m: &Model| -> Vec<(String, Tensor)> {
        let mut v: Vec<_> =
            m.read_fresh().unwrap().named_tensors().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (a, b) = (all(&straight), all(&resumed));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|(n, _)| n.starts_with("ema.")));
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(max_abs_diff(ta, tb), 0.0, "{na} differs after resume");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn schedules_are_functions_of_the_step() {
    // 100 steps per epoch, a run ending at step 1000.
    let f = |s: LrSchedule, step| s.factor(step, 1000, 100);
    assert_eq!(f(LrSchedule::Constant, 0), 1.0);
    assert_eq!(f(LrSchedule::Constant, 999), 1.0);
    assert_eq!(f(LrSchedule::InverseEpoch, 99), 1.0);
    assert_eq!(f(LrSchedule::InverseEpoch, 100), 1.0 / 1.02);
    assert_eq!(f(LrSchedule::InverseEpoch, 5000), 1.0 / 2.0);
    assert_eq!(f(LrSchedule::Linear, 0), 1.0);
    assert_eq!(f(LrSchedule::Linear, 250), 0.75);
    assert_eq!(f(LrSchedule::Linear, 999), 0.001);
    // A schedule changes training; a constant one is today's training.
    let data = synthetic(48);
    let trained = |s| {
        let m = Model::new(&tiny(1)).unwrap();
        train(&m, &data, &TrainConfig { lr_schedule: s, ..cfg(4, 0.0, 0) }, &mut |_| false).unwrap();
        generator_params(&m).0
    };
    let (c, l) = (trained(LrSchedule::Constant), trained(LrSchedule::Linear));
    assert!(c.iter().zip(&l).any(|((_, x), (_, y))| max_abs_diff(x, y) > 0.0));
}

#[test]
fn bf16_training_with_averaging() {
    let data = synthetic(48);
    let m = Model::new(&tiny(3)).unwrap();
    train(&m, &data, &TrainConfig { precision: Precision::Bf16, ..cfg(4, 0.5, 1) }, &mut |_| false).unwrap();
    let st = m.read_fresh().unwrap();
    let ema = st.ema.as_ref().unwrap();
    for n in ema.params.iter().chain(&ema.buffers) {
        assert_eq!(n.tensor.kind(), Kind::Float, "{}", n.name);
        assert_eq!(n.tensor.isfinite().all().int64_value(&[]), 1, "{}", n.name);
    }
    drop(st);
    let images = m.sample(1, 4, false).unwrap().images;
    assert_eq!(images.size(), [4, 1, 28, 28]);
}
