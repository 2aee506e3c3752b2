//! Model configuration and the architecture it implies (channel widths and sizes of every
//! layer), following the reference table of the design (shared/design/model.md).

use crate::device::DeviceSpec;
use crate::error::{Error, Result};

/// Image sizes the architecture supports: 28x28 (base 7) and 32/64/128 (base 4), square.
pub(crate) const SUPPORTED_SIZES: [u32; 4] = [28, 32, 64, 128];

/// Everything that fixes a model's shape and its initial weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub height: u32,
    pub width: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u32,
    /// Drawing steps T >= 1; T = 1 is the single-step DCGAN-style baseline.
    pub drawing_steps: u32,
    pub z_dim: u32,
    pub hidden_dim: u32,
    /// Multiplies every reference channel count of the convolutional layers (1.0 = the paper's).
    pub width_scale: f32,
    /// Leaky ReLU (slope 0.2) in the discriminator (DCGAN) instead of the official plain ReLU.
    /// On by default: it gives better, more diverse samples on the built-in digits
    /// (docs/RESULTS.md).
    pub leaky_relu: bool,
    pub device: DeviceSpec,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Classes of a class-conditional model (the generator draws the class it is given, the
    /// discriminator judges an image as a member of its class); 0: unconditional.
    pub classes: u32,
    /// How the generator's decoder doubles its feature maps.
    pub upsampling: Upsampling,
}

pub use gran_common::upsampling::Upsampling;

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            height: 28,
            width: 28,
            channels: 1,
            drawing_steps: 3,
            z_dim: 100,
            hidden_dim: 100,
            width_scale: 1.0,
            leaky_relu: true,
            device: DeviceSpec::Auto,
            seed: 0,
            classes: 0,
            upsampling: Upsampling::Transposed,
        }
    }
}

/// Upper bounds that keep a configuration from asking for absurd allocations.
pub(crate) const MAX_STEPS: u32 = 64;
pub(crate) const MAX_DIM: u32 = 4096;
pub(crate) const MAX_WIDTH_SCALE: f32 = 8.0;
/// Labels are stored as one byte per image (crate::data), so at most 256 classes.
pub const MAX_CLASSES: u32 = 256;

/// The layer sizes a configuration implies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Architecture {
    /// Spatial size of the decoder's first feature map (7 for 28x28, 4 otherwise).
    pub(crate) base: i64,
    /// Decoder channels: `dec[0]` at the base size, then one entry per transposed convolution;
    /// the last entry is the image's channel count.
    pub(crate) dec: Vec<i64>,
    /// Discriminator convolution output channels, one per stride-2 convolution.
    pub(crate) disc: Vec<i64>,
    /// Discriminator hidden units before the final logit.
    pub(crate) disc_hidden: i64,
}

fn scaled(reference: i64, scale: f32) -> i64 {
    ((reference as f64 * scale as f64).round() as i64).max(1)
}

impl ModelConfig {
    /// Every field by name, as text (`DeviceSpec`'s text form for the device): what files store
    /// and what the command-line tool reports.
    pub fn fields(&self) -> [(&'static str, String); 12] {
        [
            ("height", self.height.to_string()),
            ("width", self.width.to_string()),
            ("channels", self.channels.to_string()),
            ("drawing_steps", self.drawing_steps.to_string()),
            ("z_dim", self.z_dim.to_string()),
            ("hidden_dim", self.hidden_dim.to_string()),
            ("width_scale", self.width_scale.to_string()),
            ("leaky_relu", self.leaky_relu.to_string()),
            ("device", self.device.to_string()),
            ("seed", self.seed.to_string()),
            ("classes", self.classes.to_string()),
            ("upsampling", self.upsampling.to_string()),
        ]
    }

    /// Checks every field; the message names the field and the accepted range.
    pub fn validate(&self) -> Result<()> {
        if self.height != self.width || !SUPPORTED_SIZES.contains(&self.height) {
            return Err(Error::invalid(format!(
                "image size {}x{} is not supported: use a square size of 28, 32, 64 or 128",
                self.height, self.width
            )));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::invalid(format!("channels is {}: must be 1 or 3", self.channels)));
        }
        if self.drawing_steps == 0 || self.drawing_steps > MAX_STEPS {
            return Err(Error::invalid(format!("drawing_steps is {}: must be 1..={MAX_STEPS}", self.drawing_steps)));
        }
        if self.z_dim == 0 || self.z_dim > MAX_DIM {
            return Err(Error::invalid(format!("z_dim is {}: must be 1..={MAX_DIM}", self.z_dim)));
        }
        if self.hidden_dim == 0 || self.hidden_dim > MAX_DIM {
            return Err(Error::invalid(format!("hidden_dim is {}: must be 1..={MAX_DIM}", self.hidden_dim)));
        }
        if !(self.width_scale.is_finite() && self.width_scale > 0.0 && self.width_scale <= MAX_WIDTH_SCALE) {
            return Err(Error::invalid(format!(
                "width_scale is {}: must be in (0, {MAX_WIDTH_SCALE}]",
                self.width_scale
            )));
        }
        if self.classes == 1 || self.classes > MAX_CLASSES {
            return Err(Error::invalid(format!(
                "classes is {}: must be 0 (unconditional) or 2..={MAX_CLASSES}",
                self.classes
            )));
        }
        Ok(())
    }

    /// Whether the model draws and judges images of a given class.
    pub fn conditional(&self) -> bool {
        self.classes > 0
    }

    /// Layer sizes from the reference table of model.md, scaled by `width_scale`.
    pub(crate) fn architecture(&self) -> Result<Architecture> {
        self.validate()?;
        let s = self.width_scale;
        let c = self.channels as i64;
        // Reference channel counts (before scaling), from the official code where it fixes
        // them; 64 and 128 discriminators follow the same halving pattern (our choice).
        let (base, dec_ref, disc_ref): (i64, Vec<i64>, Vec<i64>) = match self.height {
            28 => (7, vec![256, 128], vec![80, 40]),
            32 => (4, vec![1024, 512, 256], vec![1024, 512, 256]),
            64 => (4, vec![172, 1376, 688, 344], vec![1024, 512, 256, 128]),
            128 => (4, vec![172, 1376, 688, 344, 172], vec![1024, 512, 256, 128, 64]),
            _ => unreachable!("validated above"),
        };
        let mut dec: Vec<i64> = dec_ref.iter().map(|&r| scaled(r, s)).collect();
        dec.push(c);
        Ok(Architecture { base, dec, disc: disc_ref.iter().map(|&r| scaled(r, s)).collect(), disc_hidden: 100 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_widths_match_the_design_table() {
        let a = ModelConfig::default().architecture().unwrap();
        assert_eq!((a.base, a.dec.clone(), a.disc.clone()), (7, vec![256, 128, 1], vec![80, 40]));
        let c = ModelConfig { height: 32, width: 32, channels: 3, ..Default::default() };
        let a = c.architecture().unwrap();
        assert_eq!((a.base, a.dec, a.disc), (4, vec![1024, 512, 256, 3], vec![1024, 512, 256]));
        let q = ModelConfig { width_scale: 0.25, ..Default::default() }.architecture().unwrap();
        assert_eq!((q.dec, q.disc), (vec![64, 32, 1], vec![20, 10]));
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        for (cfg, word) in [
            (ModelConfig { height: 30, width: 30, ..Default::default() }, "image size"),
            (ModelConfig { height: 28, width: 32, ..Default::default() }, "image size"),
            (ModelConfig { channels: 2, ..Default::default() }, "channels"),
            (ModelConfig { drawing_steps: 0, ..Default::default() }, "drawing_steps"),
            (ModelConfig { z_dim: 0, ..Default::default() }, "z_dim"),
            (ModelConfig { width_scale: f32::NAN, ..Default::default() }, "width_scale"),
            (ModelConfig { classes: 1, ..Default::default() }, "classes"),
            (ModelConfig { classes: MAX_CLASSES + 1, ..Default::default() }, "classes"),
        ] {
            let e = cfg.validate().unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidArgument);
            assert!(e.message.contains(word), "{}", e.message);
        }
    }
}
