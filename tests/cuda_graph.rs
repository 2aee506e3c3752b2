//! CUDA graphs (src/cuda_graph.rs) on the test device (GRAN_TEST_DEVICE): on the CPU, capture is
//! refused cleanly and the eager path is untouched; on CUDA (gpu/check.sh), graphed sampling
//! gives what eager sampling gives, for new latents at each replay and after training.

use gran::data::Dataset;
use gran::{train, ErrorKind, Model, ModelConfig, TrainConfig};
use gran::{CudaGraph, GraphedSampler};
use tch::{Device, Tensor};

mod common;

fn tiny() -> ModelConfig {
    ModelConfig {
        drawing_steps: 3,
        width_scale: 0.125,
        z_dim: 16,
        hidden_dim: 16,
        device: common::test_device(),
        seed: 3,
        ..Default::default()
    }
}

fn data() -> Dataset {
    let v: Vec<u8> = (0..64 * 784).map(|i| ((i * 37) % 251) as u8).collect();
    Dataset::new(Tensor::from_slice(&v).view([64, 1, 28, 28]), None).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn capture_is_refused_cleanly_off_cuda() {
    let mut ran = false;
    let e = CudaGraph::capture(Device::Cpu, || {
        ran = true;
        Ok(())
    })
    .err()
    .unwrap();
    assert_eq!(e.kind, ErrorKind::Device, "{}", e.message);
    assert!(!ran, "the closure ran although nothing can be captured");
}

#[test]
fn graphed_sampling_is_eager_sampling_on_cuda_and_refused_elsewhere() {
    let m = Model::new(&tiny()).unwrap();
    train(&m, &data(), &TrainConfig { iterations: 2, batch_size: 16, ..Default::default() }, &mut |_| false).unwrap();
    let z1 = m.latents(1, 0, 8).unwrap();
    let z2 = m.latents(2, 0, 8).unwrap();
    let eager1 = m.generate(&z1, 8, false).unwrap().images;
    if !m.device().is_cuda() {
        let e = GraphedSampler::new(&m, 8).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Device, "{}", e.message);
        assert!(e.message.contains("CUDA"), "{}", e.message);
        // Refusing changed nothing: eager sampling gives the same images as before.
        assert_eq!(max_abs_diff(&m.generate(&z1, 8, false).unwrap().images, &eager1), 0.0);
        return;
    }
    let g = GraphedSampler::new(&m, 8).unwrap();
    assert_eq!(g.count(), 8);
    let close = |a: &Tensor, b: &Tensor| max_abs_diff(a, b) < 1e-5;
    let r1 = g.generate(&z1).unwrap();
    assert_eq!(r1.size(), eager1.size());
    assert!(close(&r1, &eager1), "{}", max_abs_diff(&r1, &eager1));
    // New latents in the same graph: new images, those of eager sampling.
    let r2 = g.generate(&z2).unwrap();
    assert!(close(&r2, &m.generate(&z2, 8, false).unwrap().images));
    assert!(max_abs_diff(&r1, &r2) > 1e-3);
    // Training updates the weights in place: the graph draws with the trained ones.
    train(&m, &data(), &TrainConfig { iterations: 2, batch_size: 16, ..Default::default() }, &mut |_| false).unwrap();
    let after = m.generate(&z1, 8, false).unwrap().images;
    assert!(max_abs_diff(&after, &eager1) > 1e-6, "training changed nothing");
    assert!(close(&g.generate(&z1).unwrap(), &after));
    // Wrong sizes and values are refused before anything runs.
    assert_eq!(g.generate(&z1[..16]).err().unwrap().kind, ErrorKind::InvalidArgument);
    let mut bad = z1.clone();
    bad[5] = f32::NAN;
    assert_eq!(g.generate(&bad).err().unwrap().kind, ErrorKind::InvalidArgument);
}

/// The library's own sampling draws small batches on CUDA through cached graphs
/// (`GraphCache`): the images of the eager path (a batch above `MAX_COUNT` runs eagerly),
/// after training too; on the CPU the cache never applies.
#[test]
fn small_batches_sample_through_cached_graphs_on_cuda_only() {
    use gran::GraphCache;
    let m = Model::new(&tiny()).unwrap();
    let cache = GraphCache::default();
    assert!(!cache.applies(Device::Cpu, 1));
    assert!(!cache.applies(Device::Cuda(0), GraphCache::MAX_COUNT + 1));
    let eager = m.sample(4, GraphCache::MAX_COUNT + 36, false).unwrap().images;
    for count in [1usize, 5, 1, 64] {
        let small = m.sample(4, count, false).unwrap().images;
        let d = max_abs_diff(&small, &eager.narrow(0, 0, count as i64));
        assert!(d <= common::other_kernels(1e-5), "count {count}: {d} from the eager images");
    }
    // The graphs read the weights in place: after training they draw the trained model.
    train(&m, &data(), &TrainConfig { iterations: 2, batch_size: 16, ..Default::default() }, &mut |_| false).unwrap();
    let eager = m.sample(4, GraphCache::MAX_COUNT + 36, false).unwrap().images;
    let small = m.sample(4, 5, false).unwrap().images;
    assert!(max_abs_diff(&small, &eager.narrow(0, 0, 5)) <= common::other_kernels(1e-5));
}

/// Every tensor of a model's state (weights, statistics, Adam moments, the averaged generator).
fn state_of(m: &Model) -> Vec<(String, Tensor)> {
    m.read_fresh().unwrap().named_tensors().into_iter().map(|(n, t)| (n, t.detach().to(Device::Cpu))).collect()
}

/// A captured training step (`TrainConfig::cuda_graph`) trains as the eager step does: on the
/// CPU the setting runs the eager path (bit-identical to it being off); on CUDA (gpu/check.sh)
/// the replayed steps give the eager run's weights and Adam state to float tolerance, through a
/// learning-rate schedule (the rates are refilled before each replay), with augmentation (its
/// parameters too) and past the warm-up.
#[test]
fn a_captured_training_step_trains_as_the_eager_one() {
    let run = |graph: bool| {
        let m = Model::new(&tiny()).unwrap();
        let cfg = TrainConfig {
            iterations: 8,
            batch_size: 16,
            report_every: 1,
            lr_schedule: gran::train::LrSchedule::Linear,
            ema_start: 2,
            cuda_graph: graph,
            // The augmentation parameters are static inputs of the captured step.
            augment: gran::train::Augment::Fixed(0.5),
            ..Default::default()
        };
        let mut losses = Vec::new();
        train(&m, &data(), &cfg, &mut |p| {
            losses.push((p.d_loss, p.g_loss));
            false
        })
        .unwrap();
        (m.step(), losses, state_of(&m))
    };
    let (eager_step, eager_losses, eager) = run(false);
    let (graph_step, graph_losses, graphed) = run(true);
    assert_eq!((eager_step, graph_step), (8, 8));
    assert_eq!(eager.len(), graphed.len());
    let on_cuda = common::test_torch_device().is_cuda();
    for ((name, a), (other, b)) in eager.iter().zip(&graphed) {
        assert_eq!(name, other);
        let d = max_abs_diff(a, b);
        if on_cuda {
            assert!(d <= 1e-4 * (1.0 + a.abs().max().double_value(&[])), "{name}: differs by {d}");
        } else {
            assert_eq!(d, 0.0, "{name}: the CPU runs the eager step either way");
        }
    }
    for (i, (a, b)) in eager_losses.iter().zip(&graph_losses).enumerate() {
        let tol = if on_cuda { 1e-3 } else { 0.0 };
        assert!((a.0 - b.0).abs() <= tol && (a.1 - b.1).abs() <= tol, "step {i}: losses {a:?} against {b:?}");
    }
    // The run changed the weights (a comparison of two untouched models proves nothing).
    let fresh = state_of(&Model::new(&tiny()).unwrap());
    let changed = fresh.iter().zip(&eager).filter(|((n, a), (_, b))| n.starts_with("g.") && max_abs_diff(a, b) > 0.0);
    assert!(changed.count() > 0);
}
