//! criterion benchmarks of the Rust side: the cost of crossing the C boundary (a call that does
//! no work), single-image latency, sampling throughput, and one training step.
//!
//!     make bench-rust      (cargo bench --features bench --bench gran)

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gran::data::Dataset;
use gran::ffi::model::{gran_model_create, gran_model_free, gran_model_step};
use gran::ffi::types::GranModelConfig;
use gran::{train, DeviceSpec, Model, ModelConfig, TrainConfig};
use std::hint::black_box;
use tch::{Kind, Tensor};

fn config(steps: u32) -> ModelConfig {
    ModelConfig { drawing_steps: steps, device: DeviceSpec::Cpu, ..Default::default() }
}

fn ffi_boundary(c: &mut Criterion) {
    let mut cfg: GranModelConfig = unsafe { std::mem::zeroed() };
    unsafe { gran::ffi::model::gran_model_config_init(&mut cfg) };
    cfg.width_scale = 0.125;
    let mut m = 0u64;
    assert_eq!(unsafe { gran_model_create(&cfg, &mut m) }, 0);
    let mut step = 0u64;
    // Registry look-up, panic boundary, status mapping: everything a call pays besides its work.
    c.bench_function("ffi/gran_model_step", |b| b.iter(|| unsafe { gran_model_step(black_box(m), &mut step) }));
    c.bench_function("ffi/gran_abi_version", |b| b.iter(|| black_box(gran::ffi::version::gran_abi_version())));
    gran_model_free(m);
}

fn sampling(c: &mut Criterion) {
    let model = Model::new(&config(3)).unwrap();
    let mut g = c.benchmark_group("sample_28x28_T3");
    for count in [1usize, 64, 1024] {
        g.throughput(Throughput::Elements(count as u64));
        g.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, &n| {
            b.iter(|| black_box(model.sample(1, n, false).unwrap().images))
        });
    }
    g.finish();
}

fn training(c: &mut Criterion) {
    let images = Tensor::randint(256, [512, 1, 28, 28], (Kind::Uint8, tch::Device::Cpu));
    let data = Dataset::new(images, None).unwrap();
    let mut g = c.benchmark_group("train_step_28x28_batch64");
    g.sample_size(10);
    for steps in [1u32, 3, 5] {
        let model = Model::new(&config(steps)).unwrap();
        let tc = TrainConfig { iterations: 1, report_every: 0, ..Default::default() };
        g.bench_with_input(BenchmarkId::new("T", steps), &steps, |b, _| {
            b.iter(|| train(&model, &data, &tc, &mut |_| false).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, ffi_boundary, sampling, training);
criterion_main!(benches);
