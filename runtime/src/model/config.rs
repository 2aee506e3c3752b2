//! A generator's configuration, as gran files store it in their metadata, and the layer sizes
//! it implies: the same table as libgran's (src/config.rs, from shared/design/model.md).

use crate::error::{format, Result};
use std::collections::HashMap;

/// The generator's shape, as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    /// Drawing steps T.
    pub steps: u32,
    pub z_dim: u32,
    pub hidden_dim: u32,
    pub width_scale: f32,
    /// Not used for drawing (the discriminator's); reported back through the configuration.
    pub leaky_relu: bool,
    /// The seed of the trained model's initial weights, reported back.
    pub seed: u64,
    /// Classes of a class-conditional model (2..=256): each image is drawn as a class. 0:
    /// unconditional (files without the field, as all files before conditional models).
    pub classes: u32,
    /// How the decoder doubles its feature maps (files without the field: transposed).
    pub upsampling: Upsampling,
}

pub use gran_common::upsampling::{Upsampling, RESIZE_KERNEL};

/// The layer sizes a configuration implies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Architecture {
    /// The decoder's first feature map is `base x base` (7 for 28x28, 4 otherwise).
    pub(crate) base: usize,
    /// Decoder channels: `dec[0]` at the base size, then one per transposed convolution; the
    /// last is the image's channel count.
    pub(crate) dec: Vec<usize>,
}

const MAX_STEPS: u32 = 64;
const MAX_DIM: u32 = 4096;
const MAX_WIDTH_SCALE: f32 = 8.0;
/// libgran's MAX_CLASSES (labels are one byte per image).
const MAX_CLASSES: u32 = 256;

/// Field `key` of a file's metadata, parsed; FORMAT when it is missing or malformed.
pub(crate) fn field<T: std::str::FromStr>(meta: &HashMap<String, String>, key: &str) -> Result<T> {
    let v = meta.get(key).ok_or_else(|| format(format!("the file lacks the field '{key}'")))?;
    v.parse().map_err(|_| format(format!("the file's field '{key}' has a bad value '{v}'")))
}

impl Config {
    /// The configuration fields of a gran file's metadata, checked as libgran checks them.
    pub(crate) fn from_meta(meta: &HashMap<String, String>) -> Result<Config> {
        let device: String = field(meta, "device")?;
        // Where it was trained: not used for drawing, but checked as libgran checks it.
        let device_ok = device == "cpu"
            || device == "cuda"
            || device.strip_prefix("cuda:").is_some_and(|i| i.parse::<u32>().is_ok());
        if !device_ok {
            return Err(format("the file's field 'device' has a bad value"));
        }
        let c = Config {
            height: field(meta, "height")?,
            width: field(meta, "width")?,
            channels: field(meta, "channels")?,
            steps: field(meta, "steps")?,
            z_dim: field(meta, "z_dim")?,
            hidden_dim: field(meta, "hidden_dim")?,
            width_scale: field(meta, "width_scale")?,
            leaky_relu: field(meta, "leaky_relu")?,
            seed: field(meta, "seed")?,
            // Only a conditional model's file has "classes".
            classes: match meta.get("classes") {
                Some(_) => field(meta, "classes")?,
                None => 0,
            },
            // Only a resizing generator's file has "upsampling".
            upsampling: match meta.get("upsampling") {
                None => Upsampling::Transposed,
                Some(v) => Upsampling::from_name(v)
                    .ok_or_else(|| format(format!("the file's field 'upsampling' has a bad value '{v}'")))?,
            },
        };
        c.check().map_err(|why| format(format!("bad configuration: {why}")))?;
        Ok(c)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.height != self.width || ![28, 32, 64, 128].contains(&self.height) {
            return Err(format!("image size {}x{} is not supported", self.height, self.width));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(format!("channels is {}: must be 1 or 3", self.channels));
        }
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(format!("drawing_steps is {}: must be 1..={MAX_STEPS}", self.steps));
        }
        if self.z_dim == 0 || self.z_dim > MAX_DIM {
            return Err(format!("z_dim is {}: must be 1..={MAX_DIM}", self.z_dim));
        }
        if self.hidden_dim == 0 || self.hidden_dim > MAX_DIM {
            return Err(format!("hidden_dim is {}: must be 1..={MAX_DIM}", self.hidden_dim));
        }
        if !(self.width_scale.is_finite() && self.width_scale > 0.0 && self.width_scale <= MAX_WIDTH_SCALE) {
            return Err(format!("width_scale is {}: must be in (0, {MAX_WIDTH_SCALE}]", self.width_scale));
        }
        if self.classes == 1 || self.classes > MAX_CLASSES {
            return Err(format!("classes is {}: must be 0 (unconditional) or 2..={MAX_CLASSES}", self.classes));
        }
        Ok(())
    }

    /// Layer sizes from the reference table, scaled by `width_scale` (as libgran rounds them).
    pub(crate) fn architecture(&self) -> Architecture {
        let scaled = |r: usize| ((r as f64 * self.width_scale as f64).round() as usize).max(1);
        let (base, reference): (usize, &[usize]) = match self.height {
            28 => (7, &[256, 128]),
            32 => (4, &[1024, 512, 256]),
            64 => (4, &[172, 1376, 688, 344]),
            _ => (4, &[172, 1376, 688, 344, 172]),
        };
        let mut dec: Vec<usize> = reference.iter().map(|&r| scaled(r)).collect();
        dec.push(self.channels as usize);
        Architecture { base, dec }
    }

    /// Values in one image (channels x height x width).
    pub fn image_len(&self) -> usize {
        (self.channels * self.height * self.width) as usize
    }
}

/// The names and shapes of every tensor of a training checkpoint, as libgran writes them: the
/// generator's, the discriminator's, both optimizers' moments, and with `averaged` the averaged
/// generator's ("ema.g.*").
pub(crate) fn checkpoint_layout(c: &Config, averaged: bool) -> Vec<(String, Vec<usize>)> {
    let g = generator_layout(c);
    let d = discriminator_layout(c);
    let is_param = |n: &String| !n.contains(".running_");
    let mut out = g.clone();
    out.extend(d.iter().cloned());
    for (prefix, set) in [("adam_g", &g), ("adam_d", &d)] {
        for (name, shape) in set.iter().filter(|(n, _)| is_param(n)) {
            out.push((format!("{prefix}.m.{name}"), shape.clone()));
            out.push((format!("{prefix}.v.{name}"), shape.clone()));
        }
    }
    if averaged {
        out.extend(g.iter().map(|(n, s)| (format!("ema.{n}"), s.clone())));
    }
    out
}

/// The discriminator's tensors: 5x5 stride-2 convolutions without bias, each with a batch norm
/// (one statistics slot), then a linear layer to 100 and one to the logit (no bias); a
/// conditional one's class embedding (its projection term) of the 100 features' size.
fn discriminator_layout(c: &Config) -> Vec<(String, Vec<usize>)> {
    let scaled = |r: usize| ((r as f64 * c.width_scale as f64).round() as usize).max(1);
    let reference: &[usize] = match c.height {
        28 => &[80, 40],
        32 => &[1024, 512, 256],
        64 => &[1024, 512, 256, 128],
        _ => &[1024, 512, 256, 128, 64],
    };
    let (mut channels, mut size) = (c.channels as usize, c.height as usize);
    let mut out = Vec::new();
    for (i, &r) in reference.iter().enumerate() {
        let o = scaled(r);
        out.push((format!("d.conv{i}.weight"), vec![o, channels, 5, 5]));
        for part in ["weight", "bias", "running_mean.0", "running_var.0"] {
            out.push((format!("d.bn{i}.{part}"), vec![o]));
        }
        channels = o;
        size = size.div_ceil(2);
    }
    const HIDDEN: usize = 100;
    out.push(("d.fc.weight".into(), vec![HIDDEN, channels * size * size]));
    out.push(("d.fc.bias".into(), vec![HIDDEN]));
    out.push(("d.out.weight".into(), vec![1, HIDDEN]));
    if c.classes > 0 {
        out.push(("d.embed.weight".into(), vec![c.classes as usize, HIDDEN]));
    }
    out
}

/// The names and shapes of a generator's tensors ("g." + ...), as libgran names them. A
/// conditional generator has a class embedding of h_z's size, and its decoder's linear layer
/// reads [h_z, e(y), h_c] (3 * hidden inputs) where an unconditional one reads [h_z, h_c]. A
/// resizing generator's decoder convolutions are [out, in, 5, 5] where transposed ones are
/// [in, out, 5, 5].
pub(crate) fn generator_layout(c: &Config) -> Vec<(String, Vec<usize>)> {
    let a = c.architecture();
    let (h, z, t) = (c.hidden_dim as usize, c.z_dim as usize, c.steps as usize);
    let f = a.dec[0] * a.base * a.base;
    let mut out = Vec::new();
    let bn = |out: &mut Vec<(String, Vec<usize>)>, name: &str, ch: usize, slots: usize| {
        out.push((format!("{name}.weight"), vec![ch]));
        out.push((format!("{name}.bias"), vec![ch]));
        for s in 0..slots {
            out.push((format!("{name}.running_mean.{s}"), vec![ch]));
            out.push((format!("{name}.running_var.{s}"), vec![ch]));
        }
    };
    out.push(("g.hz.fc.weight".into(), vec![h, z]));
    out.push(("g.hz.fc.bias".into(), vec![h]));
    bn(&mut out, "g.hz.bn", h, 1);
    let inputs = if c.classes > 0 {
        out.push(("g.embed.weight".into(), vec![c.classes as usize, h]));
        3 * h
    } else {
        2 * h
    };
    out.push(("g.dec.fc.weight".into(), vec![f, inputs]));
    out.push(("g.dec.fc.bias".into(), vec![f]));
    bn(&mut out, "g.dec.bn", f, t);
    for (i, w) in a.dec.windows(2).enumerate() {
        out.push((
            format!("g.dec.conv{i}.weight"),
            match c.upsampling {
                Upsampling::Transposed => vec![w[0], w[1], 5, 5],
                Upsampling::Resize => vec![w[1], w[0], RESIZE_KERNEL, RESIZE_KERNEL],
            },
        ));
        out.push((format!("g.dec.conv{i}.bias"), vec![w[1]]));
    }
    let rev: Vec<usize> = a.dec.iter().rev().copied().collect();
    let n_enc = rev.len() - 1;
    for (i, w) in rev.windows(2).enumerate() {
        out.push((format!("g.enc.conv{i}.weight"), vec![w[1], w[0], 5, 5]));
        if i + 1 == n_enc {
            out.push((format!("g.enc.conv{i}.bias"), vec![w[1]]));
        } else {
            bn(&mut out, &format!("g.enc.bn{i}"), w[1], t);
        }
    }
    out.push(("g.enc.fc.weight".into(), vec![h, f]));
    out.push(("g.enc.fc.bias".into(), vec![h]));
    bn(&mut out, "g.enc.bn", h, t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(classes: Option<&str>) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("device", "cpu"),
            ("height", "28"),
            ("width", "28"),
            ("channels", "1"),
            ("steps", "3"),
            ("z_dim", "16"),
            ("hidden_dim", "16"),
            ("width_scale", "0.0625"),
            ("leaky_relu", "true"),
            ("seed", "4"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(k) = classes {
            m.insert("classes".into(), k.into());
        }
        m
    }

    #[test]
    fn classes_are_read_and_checked() {
        assert_eq!(Config::from_meta(&meta(None)).unwrap().classes, 0);
        assert_eq!(Config::from_meta(&meta(Some("0"))).unwrap().classes, 0);
        assert_eq!(Config::from_meta(&meta(Some("10"))).unwrap().classes, 10);
        assert_eq!(Config::from_meta(&meta(Some("256"))).unwrap().classes, 256);
        for bad in ["1", "257", "-1", "x", "", "4294967296"] {
            let e = Config::from_meta(&meta(Some(bad))).unwrap_err();
            assert_eq!(e.status, gran_common::abi::GRAN_STATUS_FORMAT, "classes '{bad}'");
        }
    }

    #[test]
    fn a_conditional_layout_adds_the_embeddings_and_widens_the_decoder() {
        let plain = Config::from_meta(&meta(None)).unwrap();
        let cond = Config { classes: 10, ..plain.clone() };
        let f = 16 * 7 * 7; // dec[0] = round(256 / 16) channels at 7x7
        let shape = |l: &[(String, Vec<usize>)], n: &str| l.iter().find(|(m, _)| m == n).map(|(_, s)| s.clone());
        let (p, c) = (checkpoint_layout(&plain, true), checkpoint_layout(&cond, true));
        assert_eq!(shape(&p, "g.dec.fc.weight"), Some(vec![f, 32]));
        assert_eq!(shape(&c, "g.dec.fc.weight"), Some(vec![f, 48]));
        for (name, want) in [
            ("g.embed.weight", vec![10, 16]),
            ("ema.g.embed.weight", vec![10, 16]),
            ("adam_g.m.g.embed.weight", vec![10, 16]),
            ("adam_g.v.g.embed.weight", vec![10, 16]),
            ("ema.g.dec.fc.weight", vec![f, 48]),
            ("adam_g.v.g.dec.fc.weight", vec![f, 48]),
            ("d.embed.weight", vec![10, 100]),
            ("adam_d.m.d.embed.weight", vec![10, 100]),
            ("adam_d.v.d.embed.weight", vec![10, 100]),
        ] {
            assert_eq!(shape(&c, name), Some(want), "{name}");
            assert!(!name.contains("embed") || shape(&p, name).is_none(), "{name} in an unconditional layout");
        }
        assert_eq!(c.len(), p.len() + 7);
        assert_eq!(generator_layout(&cond).len(), generator_layout(&plain).len() + 1);
    }
}
