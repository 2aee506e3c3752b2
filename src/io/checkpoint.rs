//! Checkpoints: one safetensors file with the configuration, both networks (parameters and
//! batch-norm statistics), both optimizers' moments and the step counter, so training resumes
//! exactly. Never pickle: nothing in a checkpoint can execute.
//!
//! Writing is atomic (`atomic_file`: a temporary file in the same folder, flushed to disk, then
//! renamed over the target), so a crash or a full disk during a save leaves the previous file
//! intact. Reading checks the container, the format tag and version, every configuration field,
//! the name, type, shape and byte range of every tensor and the file's length, all before the
//! tensor data is read; then a checksum over all tensor bytes and every value, before a model is
//! built: any file that is not an intact gran checkpoint is a `Format` error.

use crate::config::ModelConfig;
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::limits::{self, MAX_CHECKPOINT_HEADER};
use crate::model::Model;
use safetensors::tensor::{Dtype, Metadata};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use tch::{Device, Kind, Tensor};

const FORMAT_TAG: &str = "gran-checkpoint";
const FORMAT_VERSION: &str = "1";

/// How a file stores its floats: checkpoints always as float32; generator exports (crate::io::export)
/// as float32 or bfloat16 (the upper half of a float32's bits, rounded to nearest even).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    F32,
    Bf16,
}

impl Storage {
    pub(crate) fn dtype(self) -> Dtype {
        match self {
            Storage::F32 => Dtype::F32,
            Storage::Bf16 => Dtype::BF16,
        }
    }
    pub(crate) fn bytes_per_value(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::Bf16 => 2,
        }
    }
    fn tag(self) -> &'static str {
        match self {
            Storage::F32 => "F32",
            Storage::Bf16 => "BF16",
        }
    }
    /// The values of `bytes` (little-endian, this storage) as float32.
    pub(crate) fn floats(self, bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
        let step = self.bytes_per_value();
        bytes.chunks_exact(step).map(move |c| match self {
            Storage::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            Storage::Bf16 => f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16),
        })
    }
}

/// A 64-bit checksum of a byte stream (word-wise multiply-xorshift; detects corruption, not
/// tampering).
#[derive(Clone, Copy)]
pub(crate) struct Checksum(pub u64);

impl Checksum {
    pub(crate) fn new() -> Self {
        Checksum(0x243F_6A88_85A3_08D3)
    }
    pub(crate) fn update(&mut self, bytes: &[u8]) {
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

/// The checksum a checkpoint stores: over each tensor's name and little-endian bytes, in name
/// order (as `tensors` must be given). Public so that tools editing checkpoints can restamp it.
pub fn checksum<'a>(tensors: impl Iterator<Item = &'a (String, Vec<u8>)>) -> u64 {
    let mut sum = Checksum::new();
    for (name, bytes) in tensors {
        sum.update(name.as_bytes());
        sum.update(bytes);
    }
    sum.0
}

pub(crate) fn device_name(d: DeviceSpec) -> String {
    match d {
        DeviceSpec::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    }
}

fn tensor_bytes(t: &Tensor) -> Result<(Vec<usize>, Vec<u8>)> {
    tensor_bytes_as(t, Storage::F32)
}

/// A tensor's shape and little-endian bytes in `storage` (bfloat16: rounded to nearest even).
pub(crate) fn tensor_bytes_as(t: &Tensor, storage: Storage) -> Result<(Vec<usize>, Vec<u8>)> {
    let kind = match storage {
        Storage::F32 => Kind::Float,
        Storage::Bf16 => Kind::BFloat16,
    };
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_to_kind(kind)?.f_contiguous()?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let n = t.numel();
    let len = limits::mul(n, storage.bytes_per_value(), "a checkpoint tensor")?;
    let mut bytes = limits::vec_filled(len, 0u8, "a checkpoint tensor")?;
    // Native-endian values: little-endian, as safetensors stores them, on every supported host.
    t.f_copy_data_u8(&mut bytes, n)?;
    Ok((shape, bytes))
}

pub(crate) use crate::io::atomic_file::write_atomic;

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
fn serialize(tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>, meta: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    serialize_as(tensors, meta, Storage::F32)
}

/// `serialize` with every tensor in `storage`.
pub(crate) fn serialize_as(
    tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>,
    meta: &BTreeMap<String, String>,
    storage: Storage,
) -> Result<Vec<u8>> {
    let mut header = String::from("{\"__metadata__\":{");
    let fields: Vec<String> = meta.iter().map(|(k, v)| format!("{}:{}", json_string(k), json_string(v))).collect();
    header.push_str(&fields.join(","));
    header.push('}');
    let mut offset = 0usize;
    for (name, (shape, bytes)) in tensors {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            json_string(name),
            storage.tag(),
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
    let mut out = limits::vec_with_capacity(8 + header.len() + offset, "the checkpoint file")?;
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(header.as_bytes());
    for (_, bytes) in tensors.values() {
        out.extend(bytes);
    }
    Ok(out)
}

/// Saves the model's current state (a consistent snapshot between two training steps).
pub fn save(model: &Model, path: &Path) -> Result<()> {
    model.require_full("saving a training checkpoint (gran_model_export writes a generator export)")?;
    let cfg = model.config();
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    {
        let st = model.read_fresh()?;
        for (name, t) in st.named_tensors() {
            tensors.insert(name, tensor_bytes(&t)?);
        }
        meta.insert("step".into(), st.step.to_string());
        meta.insert("adam_g_t".into(), st.opt_g.t.to_string());
        meta.insert("adam_d_t".into(), st.opt_d.t.to_string());
        if let Some(ema) = &st.ema {
            // Absent in files without an averaged generator (and in those of earlier versions).
            meta.insert("averaged".into(), "1".into());
            meta.insert("averaged_stats_batch".into(), ema.stats_batch.to_string());
            if let Some(s) = ema.stats_step {
                meta.insert("averaged_stats_step".into(), s.to_string());
            }
        }
    }
    let mut sum = Checksum::new();
    for (name, (_, bytes)) in &tensors {
        sum.update(name.as_bytes());
        sum.update(bytes);
    }
    let tags = [("format", FORMAT_TAG.to_string()), ("version", FORMAT_VERSION.to_string())];
    for (k, v) in tags.into_iter().chain(config_meta(cfg)).chain([("checksum", format!("{:016x}", sum.0))]) {
        meta.insert(k.to_string(), v);
    }
    write_atomic(path, &serialize(&tensors, &meta)?)
}

pub(crate) fn field<T: FromStr>(meta: &HashMap<String, String>, key: &str) -> Result<T> {
    let v = meta.get(key).ok_or_else(|| Error::format(format!("checkpoint lacks the field '{key}'")))?;
    v.parse().map_err(|_| Error::format(format!("checkpoint field '{key}' has a bad value '{v}'")))
}

pub(crate) fn parse_device(s: &str) -> Result<DeviceSpec> {
    match s {
        "cpu" => Ok(DeviceSpec::Cpu),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(|| Error::format(format!("checkpoint field 'device' has a bad value '{s}'"))),
    }
}

/// The header of a checkpoint file, read and checked without reading its tensor data.
pub(crate) struct Header {
    /// Bytes before the tensor data (8 + the JSON header's length).
    pub(crate) data_start: u64,
    pub(crate) meta: HashMap<String, String>,
    /// Name -> (dtype, shape, data offsets relative to the data start).
    tensors: HashMap<String, (Dtype, Vec<usize>, (usize, usize))>,
}

pub(crate) fn read_header(file: &mut fs::File, len: u64, not_ours: &dyn Fn(String) -> Error) -> Result<Header> {
    if len < 8 {
        return Err(not_ours(format!("{len} bytes: shorter than a safetensors header")));
    }
    let io = |e| Error::io("reading a checkpoint", e);
    let mut word = [0u8; 8];
    file.read_exact(&mut word).map_err(io)?;
    let n = u64::from_le_bytes(word);
    if n > MAX_CHECKPOINT_HEADER || n > len - 8 {
        return Err(not_ours(format!(
            "its header claims {n} bytes (the file has {len}; at most {MAX_CHECKPOINT_HEADER} are accepted)"
        )));
    }
    let mut json = limits::vec_filled(n as usize, 0u8, "the checkpoint header")?;
    file.read_exact(&mut json).map_err(io)?;
    let parsed: Metadata = serde_json::from_slice(&json).map_err(|e| not_ours(format!("bad header: {e}")))?;
    let meta = parsed.metadata().clone().ok_or_else(|| not_ours("no metadata".into()))?;
    let tensors = parsed
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, (info.dtype, info.shape.clone(), info.data_offsets)))
        .collect();
    Ok(Header { data_start: 8 + n, meta, tensors })
}

/// Checks the tensor table of `header` against the `layout` a configuration implies (names,
/// F32, shapes, byte ranges that tile the data exactly) and that the file is exactly as long
/// as that: before a byte of tensor data is read or a model is built. Returns the byte range
/// of each tensor of `layout`, in its order.
fn check_table(
    header: &Header,
    layout: &[(String, Vec<i64>)],
    file_len: u64,
    not_ours: &dyn Fn(String) -> Error,
) -> Result<Vec<(usize, usize)>> {
    check_table_as(header, layout, file_len, Storage::F32, not_ours)
}

/// `check_table` for a file whose tensors are all in `storage`.
pub(crate) fn check_table_as(
    header: &Header,
    layout: &[(String, Vec<i64>)],
    file_len: u64,
    storage: Storage,
    not_ours: &dyn Fn(String) -> Error,
) -> Result<Vec<(usize, usize)>> {
    if header.tensors.len() != layout.len() {
        return Err(not_ours(format!("{} tensors where {} were expected", header.tensors.len(), layout.len())));
    }
    let mut ranges = Vec::with_capacity(layout.len());
    for (name, shape) in layout {
        let (dtype, found, (start, end)) =
            header.tensors.get(name).ok_or_else(|| not_ours(format!("tensor '{name}' is missing")))?;
        let want: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        if *dtype != storage.dtype() || *found != want {
            return Err(not_ours(format!(
                "tensor '{name}' is {dtype:?} {found:?}, expected {:?} {want:?}",
                storage.dtype()
            )));
        }
        let bytes = limits::product(&want, name)?.checked_mul(storage.bytes_per_value());
        if end.checked_sub(*start) != bytes {
            return Err(not_ours(format!("tensor '{name}' has the byte range {start}..{end}, not {want:?} values")));
        }
        ranges.push((*start, *end));
    }
    // The ranges must tile 0..total without gaps or overlaps, and the file end there.
    let mut sorted = ranges.clone();
    sorted.sort_unstable();
    let mut at = 0usize;
    for (start, end) in &sorted {
        if *start != at {
            return Err(not_ours(format!("tensor data is not contiguous at byte {at}")));
        }
        at = *end;
    }
    if header.data_start.checked_add(at as u64) != Some(file_len) {
        return Err(not_ours(format!(
            "the file has {file_len} bytes where its table implies {}",
            header.data_start as u128 + at as u128
        )));
    }
    Ok(ranges)
}

/// Reads the tensor data after the header (the table already checked), then checks its
/// checksum against `expected_sum` and every value (`check_values_as`): nothing is built from
/// data that fails either.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_checked_data(
    file: fs::File,
    path: &Path,
    len: u64,
    header: &Header,
    layout: &[(String, Vec<i64>)],
    ranges: &[(usize, usize)],
    expected_sum: u64,
    storage: Storage,
    not_ours: &dyn Fn(String) -> Error,
) -> Result<Vec<u8>> {
    let data = limits::read_exact_len(file, len - header.data_start, path)?;
    let mut sum = Checksum::new();
    for ((name, _), &(start, end)) in layout.iter().zip(ranges) {
        sum.update(name.as_bytes());
        sum.update(&data[start..end]);
    }
    if sum.0 != expected_sum {
        return Err(not_ours("checksum mismatch: the tensor data is corrupt".into()));
    }
    for ((name, _), &(start, end)) in layout.iter().zip(ranges) {
        check_values_as(name, &data[start..end], storage, not_ours)?;
    }
    Ok(data)
}

/// Checks the values of every tensor (native floats from the file's little-endian bytes): all
/// finite; batch-norm running variances and Adam's second moments also >= 0.
/// (`storage`: how the file stores them).
pub(crate) fn check_values_as(
    name: &str,
    bytes: &[u8],
    storage: Storage,
    not_ours: &dyn Fn(String) -> Error,
) -> Result<()> {
    let non_negative = name.contains(".running_var.") || crate::nn::adam::is_second_moment(name);
    for (i, v) in storage.floats(bytes).enumerate() {
        if !v.is_finite() || (non_negative && v < 0.0) {
            let rule = if non_negative { "finite and >= 0" } else { "finite" };
            return Err(not_ours(format!("tensor '{name}' holds {v} at index {i}: its values must be {rule}")));
        }
    }
    Ok(())
}

/// The model configuration a file's metadata holds, checked, placed on `device` (`None`: where
/// it was saved if that device exists here, else the automatic choice).
pub(crate) fn config_from(
    meta: &HashMap<String, String>,
    device: Option<DeviceSpec>,
    not_ours: &dyn Fn(String) -> Error,
) -> Result<ModelConfig> {
    let saved_device = parse_device(&field::<String>(meta, "device")?)?;
    let device = match device {
        Some(d) => d,
        None if saved_device.resolve().is_ok() => saved_device,
        None => DeviceSpec::Auto,
    };
    let cfg = ModelConfig {
        height: field(meta, "height")?,
        width: field(meta, "width")?,
        channels: field(meta, "channels")?,
        steps: field(meta, "steps")?,
        z_dim: field(meta, "z_dim")?,
        hidden_dim: field(meta, "hidden_dim")?,
        width_scale: field(meta, "width_scale")?,
        leaky_relu: field(meta, "leaky_relu")?,
        seed: field(meta, "seed")?,
        device,
    };
    cfg.validate().map_err(|e| not_ours(format!("bad configuration: {}", e.message)))?;
    Ok(cfg)
}

/// The configuration fields every gran file's metadata holds.
pub(crate) fn config_meta(cfg: &ModelConfig) -> Vec<(&'static str, String)> {
    vec![
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
    ]
}

/// Loads a checkpoint. `device`: where the model goes; `None` puts it where it was saved if that
/// device exists here, else on the automatic choice (CUDA 0 if available, else the CPU).
///
/// Everything is checked before the work it would justify: only a regular file is opened; the
/// header (at most [`MAX_CHECKPOINT_HEADER`] bytes), the configuration and the whole tensor
/// table (names, types, shapes, byte ranges, the file's length) before the tensor data is read;
/// the checksum and every value (finite weights, statistics and moments; non-negative variances
/// and second moments; Adam's update counts equal to the step counter) before a model is built.
pub fn load(path: &Path, device: Option<DeviceSpec>) -> Result<Model> {
    let not_ours = |why: String| Error::format(format!("{} is not a valid gran checkpoint: {why}", path.display()));
    let (mut file, len) = limits::open_regular(path)?;
    let header = read_header(&mut file, len, &not_ours)?;
    let meta = &header.meta;
    if meta.get("format").map(String::as_str) == Some(crate::io::export::FORMAT_TAG) {
        return crate::io::export::load(path, header, file, len, device);
    }
    if meta.get("format").map(String::as_str) != Some(FORMAT_TAG) {
        return Err(not_ours("no gran format tag".into()));
    }
    let version: String = field(meta, "version")?;
    if version != FORMAT_VERSION {
        return Err(Error::format(format!(
            "{}: checkpoint format version {version} is not supported (this library reads version {FORMAT_VERSION})",
            path.display()
        )));
    }
    let cfg = config_from(meta, device, &not_ours)?;
    let expected_sum = u64::from_str_radix(&field::<String>(meta, "checksum")?, 16)
        .map_err(|_| not_ours("bad checksum field".into()))?;
    let step: u64 = field(meta, "step")?;
    let (adam_g_t, adam_d_t): (u64, u64) = (field(meta, "adam_g_t")?, field(meta, "adam_d_t")?);
    if adam_g_t != step || adam_d_t != step {
        return Err(not_ours(format!(
            "Adam's update counts ({adam_g_t} for G, {adam_d_t} for D) differ from the step counter {step}"
        )));
    }

    // The tensor table against the configuration, then the data, then its values.
    let averaged = match meta.get("averaged").map(String::as_str) {
        None => false,
        Some("1") => true,
        Some(v) => return Err(not_ours(format!("bad 'averaged' field '{v}'"))),
    };
    let stats_batch: u32 = if averaged { field(meta, "averaged_stats_batch")? } else { 0 };
    // The batch the averaged generator's statistics are estimated with on a later sample:
    // bounded, so that a file cannot make that estimate allocate without limit.
    if averaged && !(2..=crate::nn::ema::MAX_STATS_BATCH).contains(&stats_batch) {
        return Err(not_ours(format!(
            "averaged_stats_batch {stats_batch} is outside 2..={}",
            crate::nn::ema::MAX_STATS_BATCH
        )));
    }
    let stats_step: Option<u64> = match meta.get("averaged_stats_step") {
        Some(_) => Some(field(meta, "averaged_stats_step")?),
        None => None,
    };
    let mut layout = Model::layout(&cfg, averaged)?;
    layout.sort_by(|a, b| a.0.cmp(&b.0));
    let ranges = check_table(&header, &layout, len, &not_ours)?;
    let data = read_checked_data(file, path, len, &header, &layout, &ranges, expected_sum, Storage::F32, &not_ours)?;

    let model = Model::new_uninit_with(&cfg, averaged)?;
    {
        let mut state = model.write();
        let mut named = state.named_tensors();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let _no_grad = tch::no_grad_guard();
        for (((name, t), (expected, _)), &(start, end)) in named.iter().zip(&layout).zip(&ranges) {
            if name != expected {
                return Err(Error::internal(format!("model tensor '{name}' where the layout has '{expected}'")));
            }
            let src = Tensor::f_from_data_size(&data[start..end], t.size().as_slice(), Kind::Float)?;
            t.shallow_clone().f_copy_(&src)?;
        }
        state.step = step;
        state.opt_g.t = adam_g_t;
        state.opt_d.t = adam_d_t;
        if let Some(ema) = &mut state.ema {
            (ema.stats_step, ema.stats_batch, ema.batch) = (stats_step, stats_batch, stats_batch.max(2));
        }
    }
    Ok(model)
}
