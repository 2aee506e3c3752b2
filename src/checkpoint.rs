//! Checkpoints: one safetensors file with the configuration, both networks (parameters and
//! batch-norm statistics), both optimizers' moments and the step counter, so training resumes
//! exactly. Never pickle: nothing in a checkpoint can execute.
//!
//! Writing is atomic (a temporary file in the same folder, flushed to disk, then renamed over the
//! target), so a crash or a full disk during a save leaves the previous file intact. Reading
//! checks the container, the format tag and version, every configuration field, the name, type
//! and shape of every tensor, and a checksum over all tensor bytes: any file that is not an
//! intact gran checkpoint is a `Format` error.

use crate::config::ModelConfig;
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::model::Model;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use tch::{Device, Kind, Tensor};

const FORMAT_TAG: &str = "gran-checkpoint";
const FORMAT_VERSION: &str = "1";

/// A 64-bit checksum of a byte stream (word-wise multiply-xorshift; detects corruption, not
/// tampering).
#[derive(Clone, Copy)]
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Checksum(0x243F_6A88_85A3_08D3)
    }
    fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ (bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h ^ w).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            h ^= h >> 29;
        }
        for &b in chunks.remainder() {
            h = (h ^ b as u64).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        }
        self.0 = h;
    }
}

fn device_name(d: DeviceSpec) -> String {
    match d {
        DeviceSpec::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    }
}

fn tensor_bytes(t: &Tensor) -> Result<(Vec<usize>, Vec<u8>)> {
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(t.f_flatten(0, -1)?)?;
    Ok((shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
}

/// Writes `bytes` to `path` atomically: temporary file beside it, fsync, rename, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::invalid(format!("{}: not a file path", path.display())))?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.{}.{n}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("writing {}", path.display()), e)
    })
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The safetensors layout (8-byte little-endian header length, JSON header padded with spaces
/// to a multiple of 8, then the tensor bytes), written with sorted keys so that the same state
/// always gives the same bytes.
fn serialize(tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>, meta: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = String::from("{\"__metadata__\":{");
    let fields: Vec<String> = meta.iter().map(|(k, v)| format!("{}:{}", json_string(k), json_string(v))).collect();
    header.push_str(&fields.join(","));
    header.push('}');
    let mut offset = 0usize;
    for (name, (shape, bytes)) in tensors {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            json_string(name),
            dims.join(","),
            offset,
            offset + bytes.len()
        ));
        offset += bytes.len();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(header.as_bytes());
    for (_, bytes) in tensors.values() {
        out.extend(bytes);
    }
    out
}

/// Saves the model's current state (a consistent snapshot between two training steps).
pub fn save(model: &Model, path: &Path) -> Result<()> {
    let cfg = model.config();
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    {
        let st = model.read();
        for (name, t) in st.named_tensors() {
            tensors.insert(name, tensor_bytes(&t)?);
        }
        meta.insert("step".into(), st.step.to_string());
        meta.insert("adam_g_t".into(), st.opt_g.t.to_string());
        meta.insert("adam_d_t".into(), st.opt_d.t.to_string());
    }
    let mut sum = Checksum::new();
    for (name, (_, bytes)) in &tensors {
        sum.update(name.as_bytes());
        sum.update(bytes);
    }
    for (k, v) in [
        ("format", FORMAT_TAG.to_string()),
        ("version", FORMAT_VERSION.to_string()),
        ("height", cfg.height.to_string()),
        ("width", cfg.width.to_string()),
        ("channels", cfg.channels.to_string()),
        ("steps", cfg.steps.to_string()),
        ("z_dim", cfg.z_dim.to_string()),
        ("hidden_dim", cfg.hidden_dim.to_string()),
        ("width_scale", cfg.width_scale.to_string()),
        ("leaky_relu", cfg.leaky_relu.to_string()),
        ("device", device_name(cfg.device)),
        ("seed", cfg.seed.to_string()),
        ("checksum", format!("{:016x}", sum.0)),
    ] {
        meta.insert(k.to_string(), v);
    }
    write_atomic(path, &serialize(&tensors, &meta))
}

fn field<T: FromStr>(meta: &HashMap<String, String>, key: &str) -> Result<T> {
    let v = meta.get(key).ok_or_else(|| Error::format(format!("checkpoint lacks the field '{key}'")))?;
    v.parse().map_err(|_| Error::format(format!("checkpoint field '{key}' has a bad value '{v}'")))
}

fn parse_device(s: &str) -> Result<DeviceSpec> {
    match s {
        "cpu" => Ok(DeviceSpec::Cpu),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(|| Error::format(format!("checkpoint field 'device' has a bad value '{s}'"))),
    }
}

/// Loads a checkpoint. `device`: where the model goes; `None` puts it where it was saved if that
/// device exists here, else on the automatic choice (CUDA 0 if available, else the CPU).
pub fn load(path: &Path, device: Option<DeviceSpec>) -> Result<Model> {
    let buf = fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let not_ours = |why: String| Error::format(format!("{} is not a valid gran checkpoint: {why}", path.display()));
    let st = SafeTensors::deserialize(&buf).map_err(|e| not_ours(format!("{e:?}")))?;
    let (_, header) = SafeTensors::read_metadata(&buf).map_err(|e| not_ours(format!("{e:?}")))?;
    let meta = header.metadata().clone().ok_or_else(|| not_ours("no metadata".into()))?;
    if meta.get("format").map(String::as_str) != Some(FORMAT_TAG) {
        return Err(not_ours("no gran format tag".into()));
    }
    let version: String = field(&meta, "version")?;
    if version != FORMAT_VERSION {
        return Err(Error::format(format!(
            "{}: checkpoint format version {version} is not supported (this library reads version {FORMAT_VERSION})",
            path.display()
        )));
    }
    let saved_device = parse_device(&field::<String>(&meta, "device")?)?;
    let device = match device {
        Some(d) => d,
        None if saved_device.resolve().is_ok() => saved_device,
        None => DeviceSpec::Auto,
    };
    let cfg = ModelConfig {
        height: field(&meta, "height")?,
        width: field(&meta, "width")?,
        channels: field(&meta, "channels")?,
        steps: field(&meta, "steps")?,
        z_dim: field(&meta, "z_dim")?,
        hidden_dim: field(&meta, "hidden_dim")?,
        width_scale: field(&meta, "width_scale")?,
        leaky_relu: field(&meta, "leaky_relu")?,
        seed: field(&meta, "seed")?,
        device,
    };
    cfg.validate().map_err(|e| not_ours(format!("bad configuration: {}", e.message)))?;
    let expected_sum = u64::from_str_radix(&field::<String>(&meta, "checksum")?, 16)
        .map_err(|_| not_ours("bad checksum field".into()))?;

    // Check every tensor against the shapes a model of this configuration has, before copying.
    let model = Model::new(&cfg)?;
    {
        let mut state = model.write();
        let named = state.named_tensors();
        if st.len() != named.len() {
            return Err(not_ours(format!("{} tensors where {} were expected", st.len(), named.len())));
        }
        let mut sorted: Vec<(String, Tensor)> = named;
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut sum = Checksum::new();
        let mut sources = Vec::with_capacity(sorted.len());
        for (name, t) in &sorted {
            let v = st.tensor(name).map_err(|_| not_ours(format!("tensor '{name}' is missing")))?;
            let want: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            if v.dtype() != Dtype::F32 || v.shape() != want.as_slice() {
                return Err(not_ours(format!(
                    "tensor '{name}' is {:?} {:?}, expected F32 {want:?}",
                    v.dtype(),
                    v.shape()
                )));
            }
            sum.update(name.as_bytes());
            sum.update(v.data());
            sources.push(v);
        }
        if sum.0 != expected_sum {
            return Err(not_ours("checksum mismatch: the tensor data is corrupt".into()));
        }
        let _no_grad = tch::no_grad_guard();
        for ((_, t), v) in sorted.iter().zip(&sources) {
            let values: Vec<f32> =
                v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
            let src = Tensor::f_from_slice(&values)?.f_view(t.size().as_slice())?;
            t.shallow_clone().f_copy_(&src)?;
        }
        state.step = field(&meta, "step")?;
        state.opt_g.t = field(&meta, "adam_g_t")?;
        state.opt_d.t = field(&meta, "adam_d_t")?;
    }
    Ok(model)
}
