//! gran files written by hand for the runtime's tests (the runtime cannot make models): a file
//! taken apart into metadata and tensors and put back together with a fresh checksum, and
//! synthetic generator exports of any configuration, class-conditional ones included.

#![allow(dead_code)] // Each test program uses its part.

use gran_common::checksum::tensor_checksum;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A model file taken apart: its metadata, and each tensor's dtype, shape and bytes.
#[derive(Clone)]
pub struct Parts {
    pub meta: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, Tensor>,
}

#[derive(Clone)]
pub struct Tensor {
    pub dtype: String,
    pub shape: Vec<u64>,
    pub bytes: Vec<u8>,
}

/// The header of a file as JSON, and where its data starts.
pub fn header(bytes: &[u8]) -> (Value, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).expect("a test file's header"), 8 + n)
}

pub fn parts(bytes: &[u8]) -> Parts {
    let (h, start) = header(bytes);
    let mut p = Parts { meta: BTreeMap::new(), tensors: BTreeMap::new() };
    for (k, v) in h.as_object().unwrap() {
        if k == "__metadata__" {
            for (mk, mv) in v.as_object().unwrap() {
                p.meta.insert(mk.clone(), mv.as_str().unwrap().to_string());
            }
            continue;
        }
        let o = v["data_offsets"].as_array().unwrap();
        let (a, b) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
        p.tensors.insert(
            k.clone(),
            Tensor {
                dtype: v["dtype"].as_str().unwrap().to_string(),
                shape: v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect(),
                bytes: bytes[start + a..start + b].to_vec(),
            },
        );
    }
    p
}

impl Parts {
    /// The file: tensors laid out in name order, contiguous, with a fresh checksum.
    pub fn build(&self) -> Vec<u8> {
        let sum = tensor_checksum(self.tensors.iter().map(|(n, t)| (n.as_str(), t.bytes.as_slice())));
        let mut meta = self.meta.clone();
        meta.insert("checksum".into(), format!("{sum:016x}"));
        let mut h = Map::new();
        h.insert("__metadata__".into(), json!(meta));
        let mut data = Vec::new();
        for (n, t) in &self.tensors {
            let start = data.len();
            data.extend_from_slice(&t.bytes);
            h.insert(n.clone(), json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [start, data.len()]}));
        }
        raw_file(serde_json::to_vec(&Value::Object(h)).unwrap().as_slice(), &data)
    }

    pub fn with_meta(&self, key: &str, value: &str) -> Parts {
        let mut p = self.clone();
        p.meta.insert(key.into(), value.into());
        p
    }

    /// The first tensor whose name contains `part`.
    pub fn find(&self, part: &str) -> String {
        self.tensors.keys().find(|n| n.contains(part)).cloned().unwrap_or_else(|| panic!("no tensor {part}"))
    }

    /// Sets value `index` of tensor `name` (in its dtype) and returns the file.
    pub fn with_value(&self, name: &str, index: usize, v: f32) -> Vec<u8> {
        let mut p = self.clone();
        let t = p.tensors.get_mut(name).unwrap();
        match t.dtype.as_str() {
            "F32" => t.bytes[index * 4..index * 4 + 4].copy_from_slice(&v.to_le_bytes()),
            _ => t.bytes[index * 2..index * 2 + 2].copy_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes()),
        }
        p.build()
    }
}

/// A file from a header's bytes and data.
pub fn raw_file(json: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json);
    out.extend_from_slice(data);
    out
}

/// A small deterministic generator (splitmix64): the fuzz case's mutations, synthetic weights.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0 .. n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// The configuration of a synthetic generator export.
#[derive(Clone, Copy, Debug)]
pub struct Synthetic {
    pub size: u32,
    pub channels: u32,
    pub steps: u32,
    pub z: u64,
    pub h: u64,
    pub scale: f64,
    /// 0: unconditional (no "classes" field, no embedding).
    pub classes: u64,
}

/// A generator export of configuration `c` (libgran's names and shapes, as
/// runtime/src/model/config.rs lists them), with values seeded by `seed`: small weights,
/// variances in [0.5, 1.5], and for a conditional one a class embedding of order one (libgran
/// draws it from N(0, 1)) and the decoder's linear layer reading [h_z, e(y), h_c].
pub fn synthetic_export(c: Synthetic, seed: u64) -> Vec<u8> {
    let Synthetic { size, channels, steps, z, h, scale, classes } = c;
    let scaled = |r: u64| ((r as f64 * scale).round() as u64).max(1);
    let (base, reference): (u64, &[u64]) = match size {
        28 => (7, &[256, 128]),
        32 => (4, &[1024, 512, 256]),
        64 => (4, &[172, 1376, 688, 344]),
        _ => (4, &[172, 1376, 688, 344, 172]),
    };
    let mut dec: Vec<u64> = reference.iter().map(|&r| scaled(r)).collect();
    dec.push(channels as u64);
    let (f, t) = (dec[0] * base * base, steps as usize);
    let mut layout: Vec<(String, Vec<u64>)> = Vec::new();
    let bn = |l: &mut Vec<(String, Vec<u64>)>, name: &str, ch: u64, slots: usize| {
        l.push((format!("{name}.weight"), vec![ch]));
        l.push((format!("{name}.bias"), vec![ch]));
        for s in 0..slots {
            l.push((format!("{name}.running_mean.{s}"), vec![ch]));
            l.push((format!("{name}.running_var.{s}"), vec![ch]));
        }
    };
    layout.push(("g.hz.fc.weight".into(), vec![h, z]));
    layout.push(("g.hz.fc.bias".into(), vec![h]));
    bn(&mut layout, "g.hz.bn", h, 1);
    if classes > 0 {
        layout.push(("g.embed.weight".into(), vec![classes, h]));
    }
    let inputs = if classes > 0 { 3 * h } else { 2 * h };
    layout.push(("g.dec.fc.weight".into(), vec![f, inputs]));
    layout.push(("g.dec.fc.bias".into(), vec![f]));
    bn(&mut layout, "g.dec.bn", f, t);
    for (i, w) in dec.windows(2).enumerate() {
        layout.push((format!("g.dec.conv{i}.weight"), vec![w[0], w[1], 5, 5]));
        layout.push((format!("g.dec.conv{i}.bias"), vec![w[1]]));
    }
    let rev: Vec<u64> = dec.iter().rev().copied().collect();
    for (i, w) in rev.windows(2).enumerate() {
        layout.push((format!("g.enc.conv{i}.weight"), vec![w[1], w[0], 5, 5]));
        if i + 2 == rev.len() {
            layout.push((format!("g.enc.conv{i}.bias"), vec![w[1]]));
        } else {
            bn(&mut layout, &format!("g.enc.bn{i}"), w[1], t);
        }
    }
    layout.push(("g.enc.fc.weight".into(), vec![h, f]));
    layout.push(("g.enc.fc.bias".into(), vec![h]));
    bn(&mut layout, "g.enc.bn", h, t);
    let mut rng = Rng(seed);
    let mut p = Parts { meta: BTreeMap::new(), tensors: BTreeMap::new() };
    for (n, shape) in layout {
        let count: u64 = shape.iter().product();
        let bytes = (0..count)
            .flat_map(|_| {
                let u = (rng.next() >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
                let v = if n.contains(".running_var.") {
                    0.5 + u
                } else if n.ends_with("bn.weight") || n.contains(".bn0.weight") || n.contains(".bn1.weight") {
                    0.8 + 0.4 * u
                } else if n == "g.embed.weight" {
                    (u - 0.5) * 4.0
                } else {
                    (u - 0.5) * 0.2
                };
                v.to_le_bytes()
            })
            .collect();
        p.tensors.insert(n, Tensor { dtype: "F32".into(), shape, bytes });
    }
    for (k, v) in [
        ("format", "gran-generator".to_string()),
        ("version", "1".into()),
        ("storage", "fp32".into()),
        ("height", size.to_string()),
        ("width", size.to_string()),
        ("channels", channels.to_string()),
        ("steps", steps.to_string()),
        ("z_dim", z.to_string()),
        ("hidden_dim", h.to_string()),
        ("width_scale", scale.to_string()),
        ("leaky_relu", "true".into()),
        ("seed", "0".into()),
        ("step", "0".into()),
        ("device", "cpu".into()),
    ] {
        p.meta.insert(k.into(), v);
    }
    if classes > 0 {
        p.meta.insert("classes".into(), classes.to_string());
    }
    p.build()
}
