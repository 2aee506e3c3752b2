//! Where a model lives: the CPU, a CUDA device by index, or "auto" (CUDA 0 when there is one).
//! Asking for a CUDA device that is not there is an error, never a silent fall-back.

use crate::error::{Error, Result};

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
    /// The concrete device, checked against what this machine has.
    pub fn resolve(self) -> Result<tch::Device> {
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
    pub fn of(device: tch::Device) -> Self {
        match device {
            tch::Device::Cuda(i) => DeviceSpec::Cuda(i as u32),
            _ => DeviceSpec::Cpu,
        }
    }
}
