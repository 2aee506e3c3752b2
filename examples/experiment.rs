//! Reproduces docs/RESULTS.md: GRAN with T = 1, 3 and 5 trained on data/mnist10k with the same
//! budget for several seeds, then the quality evaluator's measures for each model and the GAM
//! comparison of every pair trained with the same seed.
//!
//!   cargo run --release --example experiment -- [--iterations N] [--width-scale S] [--seeds a,b,c]
//!       [--t 1,3,5] [--lr-d X] [--lr-g X] [--trace N] [--no-gam] [--data mnist10k|colour32]
//!       [--precision fp32|bf16] [--seconds S] [--out DIR] [--evaluator-epochs N]
//!       [--ema-decay X] [--ema-start N] [--lr-schedule constant|inverse-epoch|linear]
//!       [--beta1 X] [--batch-size N] [--distributed] [--train-count N]
//!       [--augment off|ada|P] [--augment-target X] [--augment-speed N] [--flip] [--r1 G] [--r1-every N]
//!       [--canvas-penalty W] [--recompute] [--save] [--conditional] [--upsampling transposed|resize]
//!
//! `--trace N` prints the training losses and D's mean outputs every N steps (to see when and how
//! a run goes wrong); `--no-gam` skips the GAM table; `--data colour32` uses the 32x32x3 crops of
//! `make colour-data` (labels: the photograph a crop comes from) instead of the MNIST digits.
//! `--precision bf16` trains and samples in bfloat16 mixed precision; each model's line is then
//! followed by the FD of its samples drawn in the other precision (the same latents).
//! `--seconds S` trains each model for S seconds of wall time instead of a number of steps (the
//! steps done are printed; gpu/check.sh's MNIST run); `--out DIR` is where the sample grids go
//! (default `out`); `--evaluator-epochs N` trains the evaluator's classifier N epochs (default 5).
//! `--ema-decay`, `--ema-start` and `--lr-schedule` set the averaged generator and the schedule
//! (TrainConfig's defaults otherwise; `--ema-decay 0`: no averaged generator); `--beta1` sets
//! both networks' Adam beta1. With an averaged generator the table's FD is the averaged one's
//! and the last column the raw generator's. `--distributed`, under torchrun, trains every model
//! data-parallel across the processes it starts (`--batch-size` stays the global batch):
//! `OMP_NUM_THREADS=1 .venv/bin/torchrun --no-python --nproc-per-node=2 --local-ranks-filter 0
//! target/release/examples/experiment --distributed ...`.
//!
//! `--data shapes` is the synthetic set of tests/support/shapes.rs (3,000 training and 1,000
//! held-out 32x32x3 images, 6 classes); `--data colour64` the 64x64 crops of `make colour-data`.
//! `--train-count N` trains on the first N training images (the evaluator still learns from
//! all of them). `--augment` sets the discriminator's augmentation: `off`, `ada` (adaptive, the
//! default) or a fixed probability; `--r1 G` adds the R1 penalty every `--r1-every` steps;
//! `--canvas-penalty W` the canvas penalty of weight W (crate::train::canvas_penalty).
//! `--recompute` trains with per-step recomputation of the generator (TrainConfig::recompute);
//! `--save` writes each trained model beside its sample grid (`.gran` checkpoints).
//! `--conditional` trains class-conditional models on the data's labels and reports, per
//! model, the evaluator's per-class accuracy on samples drawn over uniform classes (mean,
//! worst class, and every class), and writes a grid of one row per class.

use gran::data::idx::load_idx;
use gran::train::LrSchedule;
use gran::{gam, GamConfig, Verdict};
use gran::{train, DeviceSpec, ErrorKind, Model, ModelConfig, Precision, TrainConfig};
use gran::{Evaluator, EvaluatorConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "../tests/support/shapes.rs"]
mod shapes;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: &str| -> String {
        args.iter().position(|a| a == name).map(|i| args[i + 1].clone()).unwrap_or_else(|| default.to_string())
    };
    let iterations: u64 = opt("--iterations", "2000").parse().expect("--iterations");
    let scale: f32 = opt("--width-scale", "0.25").parse().expect("--width-scale");
    let seeds: Vec<u64> = opt("--seeds", "1,2,3").split(',').map(|s| s.parse().expect("--seeds")).collect();
    let t_list: Vec<u32> = opt("--t", "1,3,5").split(',').map(|s| s.parse().expect("--t")).collect();
    let defaults = TrainConfig::default();
    let lr_d: f64 = opt("--lr-d", &defaults.lr_d.to_string()).parse().expect("--lr-d");
    let lr_g: f64 = opt("--lr-g", &defaults.lr_g.to_string()).parse().expect("--lr-g");
    let trace: u64 = opt("--trace", "0").parse().expect("--trace");
    let with_gam = !args.iter().any(|a| a == "--no-gam");
    let data_name = opt("--data", "mnist10k");
    let precision: Precision = opt("--precision", "fp32").parse().expect("--precision");
    let seconds: f64 = opt("--seconds", "0").parse().expect("--seconds");
    let out_dir = opt("--out", "out");
    // Other ranks of a --distributed run write their (identical) grids beside rank 0's.
    let out_dir = match std::env::var("RANK") {
        Ok(r) if args.iter().any(|a| a == "--distributed") && r != "0" => format!("{out_dir}/rank{r}"),
        _ => out_dir,
    };
    let ema_decay: f64 = opt("--ema-decay", &defaults.ema_decay.to_string()).parse().expect("--ema-decay");
    let ema_start: u64 = opt("--ema-start", &defaults.ema_start.to_string()).parse().expect("--ema-start");
    let lr_schedule = match opt("--lr-schedule", "constant").as_str() {
        "constant" => LrSchedule::Constant,
        "inverse-epoch" => LrSchedule::InverseEpoch,
        "linear" => LrSchedule::Linear,
        s => panic!("--lr-schedule {s}: constant, inverse-epoch or linear"),
    };
    let beta1: f64 = opt("--beta1", &defaults.beta1_g.to_string()).parse().expect("--beta1");
    let batch_size: u32 = opt("--batch-size", &defaults.batch_size.to_string()).parse().expect("--batch-size");
    let evaluator_epochs: u32 =
        opt("--evaluator-epochs", &EvaluatorConfig::default().epochs.to_string()).parse().expect("--evaluator-epochs");
    // With --seconds, a step budget no run reaches: the time limit stops it.
    let iterations = if seconds > 0.0 { 1 << 40 } else { iterations };
    let dir = Path::new("data").join(&data_name);
    let budget = if seconds > 0.0 { format!("{seconds} s per model") } else { format!("iterations {iterations}") };
    println!("# data {data_name}, {budget}, width scale {scale}, lr_d {lr_d}, lr_g {lr_g}, T {t_list:?}, seeds {seeds:?}, precision {precision:?}");
    println!("# ema_decay {ema_decay}, ema_start {ema_start}, lr_schedule {lr_schedule:?}, beta1 {beta1}, batch {batch_size}");
    let (train_d, test_d) = if data_name == "colour64" {
        let load = |f: &str| gran::data::load_npy(&dir.join(f)).expect("run `make colour-data` first");
        (load("train.npy"), load("test.npy"))
    } else if data_name == "colour32" {
        let load = |f: &str| gran::data::cifar::load_cifar10(&dir.join(f)).expect("run `make colour-data` first");
        (load("data_batch_1.bin"), load("test_batch.bin"))
    } else if data_name == "shapes" {
        (shapes::shapes_dataset(3000, 32, 1), shapes::shapes_dataset(1000, 32, 2))
    } else {
        let load = |w: &str| {
            load_idx(
                &dir.join(format!("{w}-images-idx3-ubyte.gz")),
                Some(&dir.join(format!("{w}-labels-idx1-ubyte.gz"))),
            )
            .unwrap()
        };
        (load("train"), load("t10k"))
    };
    let train_count: usize = opt("--train-count", "0").parse().expect("--train-count");
    // The images the models train on: the first --train-count, or all without a copy.
    let subset = (train_count > 0).then(|| train_d.subset(0, train_count).unwrap());
    let fit_d = subset.as_ref().unwrap_or(&train_d);
    let augment = match opt("--augment", "ada").as_str() {
        "off" => gran::train::Augment::Off,
        "ada" => gran::train::Augment::Adaptive {
            target: opt("--augment-target", &gran::train::DEFAULT_AUGMENT_TARGET.to_string())
                .parse()
                .expect("--augment-target"),
            floor: opt("--augment-floor", &gran::train::DEFAULT_AUGMENT_FLOOR.to_string())
                .parse()
                .expect("--augment-floor"),
        },
        p => gran::train::Augment::Fixed(p.parse().expect("--augment off|ada|P")),
    };
    let augment_speed: f64 =
        opt("--augment-speed", &defaults.augment_speed.to_string()).parse().expect("--augment-speed");
    let r1_gamma: Option<f64> = args.iter().any(|a| a == "--r1").then(|| opt("--r1", "").parse().expect("--r1"));
    let r1_every: u32 = opt("--r1-every", &defaults.r1_every.to_string()).parse().expect("--r1-every");
    let canvas_penalty: Option<f64> = args
        .iter()
        .any(|a| a == "--canvas-penalty")
        .then(|| opt("--canvas-penalty", "").parse().expect("--canvas-penalty"));
    let augment_flip = args.iter().any(|a| a == "--flip");
    let recompute = args.iter().any(|a| a == "--recompute");
    let save = args.iter().any(|a| a == "--save");
    let conditional = args.iter().any(|a| a == "--conditional");
    let upsampling: gran::Upsampling = opt("--upsampling", "transposed").parse().expect("--upsampling");
    println!(
        "# training images {}, augment {augment:?} (speed {augment_speed}, flip {augment_flip}), r1 {r1_gamma:?} (None: by image size) every {r1_every}, canvas penalty {canvas_penalty:?}",
        fit_d.count()
    );
    // --distributed (under torchrun): every model trains data-parallel in the group torchrun
    // describes (--batch-size is the global batch). Every rank runs the whole program (the
    // evaluator and the scores too: the same numbers); show one with torchrun --local-ranks-filter 0.
    let group = args.iter().any(|a| a == "--distributed").then(|| {
        let s = gran::dist::GroupSettings::from_env(gran::dist::Backend::Auto, Duration::from_secs(900))
            .expect("--distributed: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (run under torchrun)");
        std::sync::Arc::new(gran::dist::ProcessGroup::new(&s).expect("joining the process group"))
    });
    if let Some(g) = &group {
        println!("# distributed: rank {} of {}", g.rank(), g.world_size());
    }
    let device = DeviceSpec::Auto.resolve().unwrap();
    println!("# device {device:?}");
    let ev = Evaluator::train(&train_d, &EvaluatorConfig { epochs: evaluator_epochs, ..Default::default() }, device)
        .unwrap();
    println!("evaluator held-out accuracy: {:.4}", ev.accuracy(&test_d).unwrap());
    let real = ev.quality(&train_d.float_slice(0, 1000, tch::Device::Cpu).unwrap(), &test_d, Some(&train_d)).unwrap();
    let real_images = train_d.float_slice(0, 1000, tch::Device::Cpu).unwrap();
    println!("real training images: saturated channels {:.1}%", 100.0 * saturated_share(&real_images));
    println!(
        "| real training images (1000) | - | {:.1} | {:.2} | {} | {:.2} |",
        real.frechet_distance,
        real.classifier_score,
        real.class_shares.iter().filter(|&&s| s >= 0.02).count(),
        real.nearest_train_distance / real.reference_nearest_train_distance
    );
    println!("\n| model | seed | FD | classifier score | classes >= 2% | min class share | NN ratio | D(x) | D(G(z)) | train s | FD raw |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut models: BTreeMap<(u64, u32), Model> = BTreeMap::new();
    for &seed in &seeds {
        for &steps in &t_list {
            let cfg = ModelConfig {
                height: train_d.height(),
                width: train_d.width(),
                channels: train_d.channels(),
                drawing_steps: steps,
                width_scale: scale,
                device: DeviceSpec::Auto,
                seed,
                classes: if conditional {
                    fit_d
                        .labels()
                        .expect("--conditional: the data has labels")
                        .iter()
                        .max()
                        .map_or(0, |&k| u32::from(k) + 1)
                } else {
                    0
                },
                upsampling,
                ..Default::default()
            };
            let m = Model::new(&cfg).unwrap();
            m.set_precision(precision);
            let t0 = Instant::now();
            // With --seconds: a report every step, to stop on time.
            let report_every = if seconds > 0.0 { 1 } else { trace };
            let mut last = None;
            let run = train(
                &m,
                fit_d,
                &TrainConfig {
                    iterations,
                    seed,
                    report_every,
                    lr_d,
                    lr_g,
                    precision,
                    ema_decay,
                    ema_start,
                    lr_schedule,
                    beta1_g: beta1,
                    beta1_d: beta1,
                    batch_size,
                    augment,
                    augment_speed,
                    augment_flip,
                    r1_gamma,
                    r1_every,
                    canvas_penalty,
                    recompute,
                    group: group.clone().map(gran::train::Group),
                    ..Default::default()
                },
                &mut |p| {
                    if trace > 0 && p.step % trace == 0 {
                        println!(
                            "  T={steps} seed {seed} step {:>6}: D loss {:.3}  G loss {:.3}  D(x) {:.3}  D(G(z)) {:.3}  p {:.3}",
                            p.step, p.d_loss, p.g_loss, p.d_real, p.d_fake, p.augment_p
                        );
                    }
                    last = Some(p.clone());
                    seconds > 0.0 && t0.elapsed().as_secs_f64() >= seconds
                },
            );
            let p = match run {
                Ok(p) => p,
                // Stopped by the time limit: the model keeps the steps done.
                Err(e) if e.kind == ErrorKind::Cancelled && seconds > 0.0 => last.expect("a report before the stop"),
                Err(e) => panic!("training T={steps} seed {seed}: {}", e.message),
            };
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "  T={steps} seed {seed}: augment p at the end {:.3}, {:.1} ms per step",
                p.augment_p,
                1e3 * secs / m.step().max(1) as f64
            );
            if seconds > 0.0 {
                println!(
                    "  T={steps} seed {seed}: {} steps in {secs:.1} s ({:.1} steps/s, {:.0} images/s)",
                    m.step(),
                    m.step() as f64 / secs,
                    p.images_per_s
                );
            }
            let q = ev.model_quality(&m, seed, 1000, &test_d, Some(&train_d)).unwrap();
            let saturated = |m: &Model| 100.0 * saturated_share(&m.sample(seed, 1000, false).unwrap().images);
            let mut sat_line = format!("{:.1}%", saturated(&m));
            let raw_fd = if m.has_averaged() {
                m.set_generator_choice(gran::Choice::Raw);
                let raw = ev.model_quality(&m, seed, 1000, &test_d, Some(&train_d)).unwrap();
                sat_line += &format!(" (raw generator {:.1}%)", saturated(&m));
                m.set_generator_choice(gran::Choice::Averaged);
                format!("{:.1}", raw.frechet_distance)
            } else {
                "-".to_string()
            };
            println!("  T={steps} seed {seed}: saturated channels {sat_line}");
            // Diagnostic: the same latents drawn with batch statistics (minibatches of 64, as in
            // training) instead of the running statistics that sampling uses.
            if let Some((mean, worst)) = q.accuracy_summary() {
                let each: Vec<String> = q.class_accuracy.iter().map(|a| format!("{a:.3}")).collect();
                println!(
                    "  T={steps} seed {seed}: class accuracy mean {mean:.4}, worst {worst:.4}; per class {}",
                    each.join(" ")
                );
            }
            let batch_fd = if conditional {
                f64::NAN
            } else {
                let z = m.latents(seed, 0, 1000).unwrap();
                let st = m.read();
                let _g = tch::no_grad_guard();
                let parts: Vec<tch::Tensor> = z
                    .chunks(64 * cfg.z_dim as usize)
                    .map(|c| {
                        let zt = tch::Tensor::from_slice(c).view([-1, cfg.z_dim as i64]).to_device(m.device());
                        st.gen
                            .forward(&zt, gran::BnMode::TrainFrozenStats, false)
                            .unwrap()
                            .image
                            .to_device(tch::Device::Cpu)
                    })
                    .collect();
                drop(st);
                ev.quality(&tch::Tensor::cat(&parts, 0), &test_d, None).unwrap().frechet_distance
            };
            println!("  T={steps} seed {seed}: FD of samples drawn with batch statistics: {batch_fd:.1}");
            if precision != Precision::Fp32 {
                m.set_precision(Precision::Fp32);
                let other = ev.model_quality(&m, seed, 1000, &test_d, Some(&train_d)).unwrap();
                m.set_precision(precision);
                println!(
                    "  T={steps} seed {seed}: the same latents drawn in float32: FD {:.1}, classifier score {:.2}",
                    other.frechet_distance, other.classifier_score
                );
            }
            println!(
                "| GRAN T={steps} | {seed} | {:.1} | {:.2} | {} | {:.3} | {:.2} | {:.2} | {:.2} | {secs:.0} | {raw_fd} |",
                q.frechet_distance,
                q.classifier_score,
                q.class_shares.iter().filter(|&&s| s >= 0.02).count(),
                q.class_shares.iter().cloned().fold(1.0, f64::min),
                q.nearest_train_distance / q.reference_nearest_train_distance,
                p.d_real,
                p.d_fake
            );
            let grid = format!("{out_dir}/experiment_{data_name}_t{steps}_seed{seed}.png");
            std::fs::create_dir_all(&out_dir).unwrap();
            gran::png::write_grid(Path::new(&grid), &m.sample(seed, 64, false).unwrap().images, 8).unwrap();
            if conditional {
                let n = 10usize;
                let z = m.latents(seed, 0, n).unwrap();
                let all: Vec<f32> = (0..cfg.classes).flat_map(|_| z.iter().copied()).collect();
                let labels: Vec<u32> = (0..cfg.classes).flat_map(|k| std::iter::repeat(k).take(n)).collect();
                let images =
                    m.generate_classes(&all, labels.len(), gran::Classes::Each(&labels), false).unwrap().images;
                let per_class = format!("{out_dir}/experiment_{data_name}_t{steps}_seed{seed}_per_class.png");
                gran::png::write_grid(Path::new(&per_class), &images, n as u32).unwrap();
            }
            if save {
                let path = format!("{out_dir}/experiment_{data_name}_t{steps}_seed{seed}.gran");
                gran::checkpoint::save(&m, Path::new(&path)).unwrap();
            }
            models.insert((seed, steps), m);
        }
    }
    println!(
        "\n| A vs B | seed | test err A | test err B | r_test | sample err A | sample err B | r_sample | verdict \
         | r_test (acc.) | r_sample (acc.) | verdict (acc.) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &seed in &seeds {
        let pairs = t_list.iter().enumerate().flat_map(|(i, &b)| t_list[i + 1..].iter().map(move |&a| (a, b)));
        for (a, b) in pairs.filter(|_| with_gam) {
            let r = gam(&models[&(seed, a)], &models[&(seed, b)], &test_d, &GamConfig { seed, ..Default::default() })
                .unwrap();
            let verdict = match r.verdict {
                Verdict::AWins => format!("T={a} wins"),
                Verdict::BWins => format!("T={b} wins"),
                Verdict::Tie => "tie".into(),
                Verdict::Undecided => "undecided".into(),
            };
            // The authors' accuracy form, judged with the same tolerance on its r_test.
            let (acc_test, acc_sample) = (r.accuracy.r_test, r.accuracy.r_sample);
            let acc_verdict = if (acc_test - 1.0).abs() > GamConfig::default().tolerance {
                "undecided".to_string()
            } else if acc_sample > 1.0 {
                format!("T={a} wins")
            } else if acc_sample < 1.0 {
                format!("T={b} wins")
            } else {
                "tie".into()
            };
            println!(
                "| T={a} vs T={b} | {seed} | {:.3} | {:.3} | {:.2} | {:.3} | {:.3} | {:.2} | {verdict} | {acc_test:.2} \
                 | {acc_sample:.2} | {acc_verdict} |",
                r.test_error_a, r.test_error_b, r.r_test, r.sample_error_a, r.sample_error_b, r.r_sample
            );
        }
    }
}

/// The share of an image batch's channel values within 2/255 of 0 or 1: a generator whose
/// canvas has run far past the sigmoid's range draws mostly such values (docs/RESULTS.md,
/// section 21), where real photographs have a few percent.
fn saturated_share(images: &tch::Tensor) -> f64 {
    let (lo, hi) = (2.0 / 255.0, 253.0 / 255.0);
    let edge = images.le(lo).logical_or(&images.ge(hi));
    edge.to_kind(tch::Kind::Float).mean(tch::Kind::Float).double_value(&[])
}
