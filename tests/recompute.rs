//! Per-step recomputation (`TrainConfig::recompute`) through whole training runs: it trains to
//! the weights of the stored pass (to float tolerance), a resumed run is exact, and data-parallel
//! runs keep working with it. The gradients themselves are compared step by step in
//! src/nn/recompute.rs.

use gran::checkpoint;
use gran::{train, Model, TrainConfig};
use std::path::PathBuf;
use tch::Tensor;

mod common;
use common::{synthetic, test_device, tiny};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gran-test-{}-recompute-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(iterations: u64, recompute: bool) -> TrainConfig {
    TrainConfig { iterations, batch_size: 16, report_every: 0, seed: 4, recompute, ..Default::default() }
}

fn all_tensors(m: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = m.read_fresh().unwrap().named_tensors().into_iter().map(|(n, t)| (n, t.copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Four steps at T = 4 with and without recomputation: the same weights, batch-norm statistics
/// and Adam moments to float tolerance, and not merely because nothing moved.
#[test]
fn recomputation_trains_to_the_stored_pass_weights() {
    let data = synthetic(48);
    let start = all_tensors(&Model::new(&tiny(4)).unwrap());
    let stored = Model::new(&tiny(4)).unwrap();
    train(&stored, &data, &run(4, false), &mut |_| false).unwrap();
    let recomputed = Model::new(&tiny(4)).unwrap();
    train(&recomputed, &data, &run(4, true), &mut |_| false).unwrap();
    let (a, b) = (all_tensors(&stored), all_tensors(&recomputed));
    assert_eq!(a.len(), b.len());
    let mut moved = 0;
    for (((name, x), (_, y)), (_, s)) in a.iter().zip(&b).zip(&start) {
        if !x.equal(s) {
            moved += 1;
        }
        let diff = (x - y).abs().max().double_value(&[]);
        let scale = x.abs().max().double_value(&[]).max(1e-3);
        assert!(diff <= 1e-4 * scale, "{name}: differs by {diff:e} (largest value {scale:e})");
    }
    assert!(moved * 2 > a.len(), "only {moved} of {} tensors changed in training", a.len());
}

/// A run saved part-way and resumed, both with recomputation, ends bit for bit where the run
/// that never stopped ends.
#[test]
fn resuming_with_recomputation_is_exact() {
    let dir = temp_dir("resume");
    let data = synthetic(40);
    let straight = Model::new(&tiny(3)).unwrap();
    train(&straight, &data, &run(6, true), &mut |_| false).unwrap();
    let first = Model::new(&tiny(3)).unwrap();
    train(&first, &data, &run(3, true), &mut |_| false).unwrap();
    let path = dir.join("half.gran");
    checkpoint::save(&first, &path).unwrap();
    let resumed = checkpoint::load(&path, Some(test_device())).unwrap();
    train(&resumed, &data, &run(3, true), &mut |_| false).unwrap();
    for ((na, ta), (nb, tb)) in all_tensors(&straight).iter().zip(&all_tensors(&resumed)) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
