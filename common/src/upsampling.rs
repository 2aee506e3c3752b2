//! How a generator's decoder doubles the size of its feature maps: one definition for libgran
//! and libgran_runtime, so that both read the same files the same way.

use crate::abi::{GranUpsampling, GRAN_UPSAMPLING_RESIZE, GRAN_UPSAMPLING_TRANSPOSED};

/// The kernel size k of a resizing layer's convolution (odd; padding (k - 1) / 2, so the size
/// stays doubled). Its weight is `[out, in, k, k]`.
pub const RESIZE_KERNEL: usize = 5;

/// How each decoder layer of the generator doubles the size of its feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Upsampling {
    /// A 5x5 transposed convolution of stride 2 (the paper's and DCGAN's). Weight
    /// `[in, out, 5, 5]`.
    #[default]
    Transposed,
    /// Nearest-neighbour upsampling by 2, then a [`RESIZE_KERNEL`] x [`RESIZE_KERNEL`]
    /// convolution of stride 1 (Odena, Dumoulin and Olah, "Deconvolution and checkerboard
    /// artifacts", 2016). Every output pixel sees the same taps, so the generator cannot draw
    /// the checkerboard that a stride-2 transposed convolution's uneven overlap makes easy.
    Resize,
}

impl Upsampling {
    /// The name files and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Upsampling::Transposed => "transposed",
            Upsampling::Resize => "resize",
        }
    }

    /// The kind a name stands for.
    pub fn from_name(name: &str) -> Option<Upsampling> {
        [Upsampling::Transposed, Upsampling::Resize].into_iter().find(|u| u.name() == name)
    }

    /// Its C constant.
    pub fn to_abi(self) -> GranUpsampling {
        match self {
            Upsampling::Transposed => GRAN_UPSAMPLING_TRANSPOSED,
            Upsampling::Resize => GRAN_UPSAMPLING_RESIZE,
        }
    }

    /// The kind a C constant stands for; `None` for any other value.
    pub fn from_abi(value: GranUpsampling) -> Option<Upsampling> {
        match value {
            GRAN_UPSAMPLING_TRANSPOSED => Some(Upsampling::Transposed),
            GRAN_UPSAMPLING_RESIZE => Some(Upsampling::Resize),
            _ => None,
        }
    }
}

impl std::fmt::Display for Upsampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no kind of upsampling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownUpsampling(pub String);

impl std::fmt::Display for UnknownUpsampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upsampling '{}': must be 'transposed' or 'resize'", self.0)
    }
}

impl std::error::Error for UnknownUpsampling {}

impl std::str::FromStr for Upsampling {
    type Err = UnknownUpsampling;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Upsampling::from_name(s).ok_or_else(|| UnknownUpsampling(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_constants_map_both_ways() {
        for u in [Upsampling::Transposed, Upsampling::Resize] {
            assert_eq!(u.name().parse::<Upsampling>(), Ok(u));
            assert_eq!(Upsampling::from_abi(u.to_abi()), Some(u));
        }
        assert_eq!(Upsampling::default().to_abi(), 0, "zero, the value of code from before the field, is transposed");
        assert_eq!(Upsampling::from_abi(2), None);
        for bad in ["", "Resize", "bilinear", "resize "] {
            let e = bad.parse::<Upsampling>().unwrap_err();
            assert!(e.to_string().contains("must be 'transposed' or 'resize'"), "{e}");
        }
    }
}
