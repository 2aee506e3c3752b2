//! Where a model lives: the CPU, a CUDA device by index, or "auto" (CUDA 0 when there is one).
//! Asking for a CUDA device that is not there is an error, never a silent fall-back.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Whether the host program chose cuDNN's mode through `set_deterministic`.
static CHOSEN: AtomicBool = AtomicBool::new(false);
static CUDA_POLICY: Once = Once::new();

/// Makes CUDA results repeat bit for bit (`true`: cuDNN's deterministic engines only) or lets
/// cuDNN use faster engines whose sums are ordered differently from one call to the next
/// (`false`). This is libtorch's process-wide flag (PyTorch's
/// `torch.backends.cudnn.deterministic`): it affects every user of libtorch in the process.
/// Once called, gran no longer sets the flag itself (see `apply_cuda_policy`).
pub(crate) fn set_deterministic(on: bool) {
    CHOSEN.store(true, Ordering::SeqCst);
    crate::sys::torch_ext::set_cudnn_deterministic(on);
}

/// Whether CUDA computations are deterministic now: cuDNN's deterministic flag is on and its
/// benchmark mode (engines chosen by timing) is off. Always true on the CPU.
pub fn deterministic() -> bool {
    crate::sys::torch_ext::cudnn_deterministic() && !crate::sys::torch_ext::cudnn_benchmark()
}

/// gran's promise that a seed gives the same images and that resuming from a checkpoint gives
/// the weights of a run that never stopped needs cuDNN's deterministic engines on CUDA (without
/// them, two identical float32 sampling calls can differ in their last bits, and so can a
/// resumed run from one that never stopped). So the
/// first time a model is placed on a CUDA device, gran turns the flag on, unless the host
/// program already chose with `set_deterministic`. Nothing is set for CPU-only use.
fn apply_cuda_policy() {
    CUDA_POLICY.call_once(|| {
        if !CHOSEN.load(Ordering::SeqCst) {
            crate::sys::torch_ext::set_cudnn_deterministic(true);
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(u32),
    Auto,
}

/// The number of CUDA devices libtorch can use in this process (0 on a machine without one).
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    }
}

impl DeviceSpec {
    /// The concrete device, checked against what this machine has. The first CUDA device
    /// resolved applies gran's cuDNN policy (`apply_cuda_policy`).
    pub fn resolve(self) -> Result<tch::Device> {
        let device = self.resolve_only()?;
        if device.is_cuda() {
            apply_cuda_policy();
        }
        Ok(device)
    }

    fn resolve_only(self) -> Result<tch::Device> {
        match self {
            DeviceSpec::Cpu => Ok(tch::Device::Cpu),
            DeviceSpec::Auto => Ok(if cuda_device_count() > 0 { tch::Device::Cuda(0) } else { tch::Device::Cpu }),
            DeviceSpec::Cuda(i) => {
                let n = cuda_device_count();
                if n == 0 {
                    Err(Error::device(format!("CUDA device {i} requested but CUDA is not available in this process")))
                } else if i as usize >= n {
                    Err(Error::device(format!("CUDA device {i} requested but only {n} CUDA device(s) are present")))
                } else {
                    Ok(tch::Device::Cuda(i as usize))
                }
            }
        }
    }

    /// The spec that names a concrete device.
    pub(crate) fn of(device: tch::Device) -> Self {
        match device {
            tch::Device::Cuda(i) => DeviceSpec::Cuda(i as u32),
            _ => DeviceSpec::Cpu,
        }
    }
}

/// "auto", "cpu" or "cuda:N": the text files and the command line use.
impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// "auto", "cpu", "cuda" (device 0) or "cuda:N".
impl std::str::FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<u32>().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| Error::invalid(format!("'{s}' is not a device: auto, cpu, cuda or cuda:N"))),
        }
    }
}
