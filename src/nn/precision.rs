//! Compute precision: float32 throughout, or bfloat16 mixed precision (autocast).
//!
//! With `Bf16`, convolutions and linear layers run in bfloat16 while the weights, their
//! gradients, the Adam moments, batch-norm statistics, losses and the images handed back stay
//! float32 (libtorch's autocast, as `torch.autocast(dtype=torch.bfloat16)`). bfloat16 has
//! float32's range, so no loss scaling is needed. It pays where the hardware has bfloat16 matrix
//! units (CUDA GPUs from Ampere on; CPUs with AVX-512 BF16 or AMX): measured in BENCHMARKS.md.
//! Elsewhere it still works, more slowly.

use crate::error::Result;
use crate::sys::torch_ext;
use tch::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// float32 everywhere (the default).
    #[default]
    Fp32,
    /// bfloat16 autocast for the networks' matrix work; float32 state.
    Bf16,
}

impl Precision {
    /// Runs `f` in this precision on `device`'s kind of device, on this thread; the thread's
    /// autocast state is as before afterwards, whatever `f` returns (or if it panics).
    pub(crate) fn run<T>(self, device: Device, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self == Precision::Fp32 {
            return f();
        }
        let _region = Region(torch_ext::autocast_enter(device.is_cuda())?);
        f()
    }
}

/// "fp32" or "bf16", as the benchmark and experiment programs take it.
impl std::str::FromStr for Precision {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(crate::error::Error::invalid(format!("precision {s:?} is unknown: fp32 or bf16"))),
        }
    }
}

/// An autocast region, ended when dropped.
struct Region(torch_ext::AutocastState);

impl Drop for Region {
    fn drop(&mut self) {
        // Cannot fail in practice (it sets thread-local flags); nothing to report it to in a drop.
        let _ = torch_ext::autocast_exit(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn bf16_runs_matrix_work_in_bfloat16_and_ends_where_it_began() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        assert!(!torch_ext::autocast_enabled(false));
        let (kind, on) =
            Precision::Bf16.run(Device::Cpu, || Ok((a.matmul(&a).kind(), torch_ext::autocast_enabled(false)))).unwrap();
        assert_eq!((kind, on), (Kind::BFloat16, true));
        assert!(!torch_ext::autocast_enabled(false));
        assert_eq!(Precision::Fp32.run(Device::Cpu, || Ok(a.matmul(&a).kind())).unwrap(), Kind::Float);
        // Nested regions: the inner end leaves the outer one on.
        Precision::Bf16
            .run(Device::Cpu, || {
                Precision::Bf16.run(Device::Cpu, || Ok(()))?;
                assert!(torch_ext::autocast_enabled(false));
                assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
                Ok(())
            })
            .unwrap();
        assert!(!torch_ext::autocast_enabled(false));
        // An error inside still ends the region.
        let e = Precision::Bf16.run(Device::Cpu, || -> Result<()> { Err(crate::error::Error::invalid("inside")) });
        assert_eq!(e.unwrap_err().message, "inside");
        assert!(!torch_ext::autocast_enabled(false));
        // So does a panic (the FFI boundary turns it into a status; the thread goes on).
        let p = std::panic::catch_unwind(|| Precision::Bf16.run(Device::Cpu, || -> Result<()> { panic!("inside") }));
        assert!(p.is_err());
        assert!(!torch_ext::autocast_enabled(false));
    }
}
