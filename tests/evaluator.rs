//! The quality evaluator on real MNIST: the classifier's held-out accuracy, and the measures
//! ranking real digits far above noise and blurred digits, collapse and copying made visible.

use gran::data::idx::load_idx;
use gran::data::Dataset;
use gran::{frechet_distance, Evaluator, EvaluatorConfig};
use tch::{Device, Kind, Tensor};

mod common;

fn mnist(which: &str) -> Dataset {
    let d = common::mnist_dir();
    load_idx(&d.join(format!("{which}-images-idx3-ubyte.gz")), Some(&d.join(format!("{which}-labels-idx1-ubyte.gz"))))
        .unwrap()
}

#[test]
fn evaluator_ranks_real_digits_above_noise_blur_collapse_and_copies() {
    let (train, test) = (mnist("train"), mnist("t10k"));
    let ev = Evaluator::train(&train, &EvaluatorConfig::default(), common::test_torch_device()).unwrap();
    let acc = ev.accuracy(&test).unwrap();
    println!("held-out accuracy {acc:.4}");
    assert!(acc > 0.98, "held-out accuracy {acc}");

    // Reference: the second half of the held-out digits; candidates: the first half, noise,
    // and a blurred copy of the first half.
    let reference = test.subset(500, 500).unwrap();
    let real = test.float_images(Device::Cpu).unwrap().narrow(0, 0, 500);
    let noise = Tensor::rand([500, 1, 28, 28], (Kind::Float, Device::Cpu));
    let blurred = real.avg_pool2d([5, 5], [1, 1], [2, 2], false, true, None::<i64>);
    let q_real = ev.quality(&real, &reference, Some(&train)).unwrap();
    let q_noise = ev.quality(&noise, &reference, None).unwrap();
    let q_blur = ev.quality(&blurred, &reference, None).unwrap();
    println!(
        "FD real {:.2} blur {:.2} noise {:.2}",
        q_real.frechet_distance, q_blur.frechet_distance, q_noise.frechet_distance
    );
    println!(
        "score real {:.2} blur {:.2} noise {:.2}",
        q_real.classifier_score, q_blur.classifier_score, q_noise.classifier_score
    );
    assert!(q_real.frechet_distance * 5.0 < q_blur.frechet_distance);
    assert!(q_blur.frechet_distance < q_noise.frechet_distance);
    assert!(q_real.classifier_score > 8.0 && q_real.classifier_score > 2.0 * q_noise.classifier_score);
    assert!(q_real.classifier_score > q_blur.classifier_score);
    // Every class is present among real digits, in roughly equal shares.
    assert_eq!(q_real.class_shares.len(), 10);
    assert!(q_real.class_shares.iter().all(|&s| (0.05..0.16).contains(&s)), "{:?}", q_real.class_shares);
    assert!((q_real.class_shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);

    // A "model" that outputs one image: one class takes everything, the score collapses to 1.
    let one = real.narrow(0, 0, 1).repeat([300, 1, 1, 1]);
    let q_one = ev.quality(&one, &reference, None).unwrap();
    assert!(q_one.class_shares.contains(&1.0), "{:?}", q_one.class_shares);
    assert!(q_one.classifier_score < 1.01, "{}", q_one.classifier_score);
    assert!(q_one.frechet_distance > 5.0 * q_real.frechet_distance);

    // Copy check: held-out digits sit at some distance from their nearest training digit;
    // copies of training digits sit at 0.
    assert!(
        (q_real.nearest_train_distance - q_real.reference_nearest_train_distance).abs()
            < 0.5 * q_real.reference_nearest_train_distance
    );
    let copies = train.float_slice(100, 200, Device::Cpu).unwrap();
    let q_copy = ev.quality(&copies, &reference, Some(&train)).unwrap();
    assert!(q_copy.nearest_train_distance < 1e-2, "{}", q_copy.nearest_train_distance);
    assert!(q_copy.reference_nearest_train_distance > 1.0);
}

#[test]
fn frechet_distance_matches_the_closed_form_for_gaussians() {
    // Identical sets: 0. Shifted by a constant vector c: |c|^2 (covariances equal).
    let a = Tensor::randn([400, 6], (Kind::Double, Device::Cpu));
    assert!(frechet_distance(&a, &a).unwrap() < 1e-6);
    let shift = Tensor::from_slice(&[1.0f64, -2.0, 0.5, 0.0, 0.0, 3.0]);
    let d = frechet_distance(&a, &(&a + &shift)).unwrap();
    assert!((d - (1.0 + 4.0 + 0.25 + 9.0)).abs() < 1e-6, "{d}");
    // Scaled by 2 (zero-mean, identity-like covariance S): Tr(S + 4S - 2*2S) = Tr(S).
    let d = frechet_distance(&a, &(&a * 2.0)).unwrap();
    let s = a.transpose(0, 1).cov(1, None::<Tensor>, None::<Tensor>);
    let mu = a.mean_dim(&[0i64][..], false, Kind::Double);
    let expected = s.trace().double_value(&[]) + mu.dot(&mu).double_value(&[]);
    assert!((d - expected).abs() < 1e-6 * expected.max(1.0), "{d} vs {expected}");
}
