//! What the integration tests share: the device their models live on and the repository's data.

#![allow(dead_code)] // each test crate uses a part of it

use gran::DeviceSpec;
use std::path::PathBuf;

/// The device of the tests' models and evaluators: `GRAN_TEST_DEVICE=cuda` (CUDA device 0) or
/// `cuda:N`; the CPU when it is unset, empty or `cpu`. Anything else is a mistake in the
/// environment and stops the test rather than quietly testing the CPU.
pub fn test_device() -> DeviceSpec {
    let v = std::env::var("GRAN_TEST_DEVICE").unwrap_or_default();
    match v.trim() {
        "" | "cpu" => DeviceSpec::Cpu,
        "cuda" => DeviceSpec::Cuda(0),
        s => match s.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => DeviceSpec::Cuda(i),
            None => panic!("GRAN_TEST_DEVICE={v:?}: expected cpu, cuda or cuda:N"),
        },
    }
}

/// The concrete test device (a requested CUDA device that is missing fails the test).
pub fn test_torch_device() -> tch::Device {
    test_device().resolve().unwrap_or_else(|e| panic!("GRAN_TEST_DEVICE: {}", e.message))
}

/// How far two computations of the same images may differ when libtorch may have run them
/// through other kernels (batches of other sizes, a captured graph against the eager pass, a
/// model loaded anew): nothing beyond `cpu` on the CPU, whose kernels do not depend on these;
/// on CUDA, where libtorch chooses kernels by batch size, the last float bits (include/gran.h,
/// `gran_sample`).
pub fn other_kernels(cpu: f64) -> f64 {
    if test_torch_device().is_cuda() {
        1e-4
    } else {
        cpu
    }
}

/// The repository's root: `CARGO_MANIFEST_DIR` as cargo sets it when it runs the tests, or as it
/// was at build time. A test binary carried to another machine (gpu/check.sh) is run with it
/// set to that copy of the repository.
pub fn repo_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// data/mnist10k of the repository.
pub fn mnist_dir() -> PathBuf {
    repo_dir().join("data/mnist10k")
}

/// A small model for the tests: `steps` drawing steps, width scale 1/8, z and h of 16, on the
/// test device.
pub fn tiny(steps: u32) -> gran::ModelConfig {
    gran::ModelConfig {
        drawing_steps: steps,
        width_scale: 0.125,
        z_dim: 16,
        hidden_dim: 16,
        device: test_device(),
        seed: 5,
        ..Default::default()
    }
}

/// `count` synthetic 28x28 images: a bright square at a position that varies with the index.
pub fn synthetic(count: i64) -> gran::data::Dataset {
    let mut v = vec![0u8; (count * 28 * 28) as usize];
    for i in 0..count as usize {
        let (oy, ox) = (4 + i % 12, 4 + (i / 12) % 12);
        for y in oy..oy + 10 {
            for x in ox..ox + 10 {
                v[i * 784 + y * 28 + x] = 255;
            }
        }
    }
    gran::data::Dataset::new(tch::Tensor::from_slice(&v).view([count, 1, 28, 28]), None).unwrap()
}
