//! The safetensors container that training checkpoints and generator exports share: writing
//! (sorted keys, so the same state always gives the same bytes; a checksum over every
//! tensor; the configuration in the metadata), and reading in the order that never trusts a
//! byte before it is checked (the header alone, the configuration, the whole tensor table
//! against the layout the configuration implies and the file's length, then the data, its
//! checksum and every value). What differs between the two kinds of file is theirs
//! (crate::io::checkpoint, crate::io::export).

use crate::config::{ModelConfig, Upsampling};
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::limits::{self, MAX_CHECKPOINT_HEADER};
use gran_common::checksum::tensor_checksum;
use safetensors::tensor::{Dtype, Metadata};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use tch::{Device, Kind, Tensor};

/// A file's tensors by name: shape and little-endian bytes.
pub(crate) type TensorBytes = BTreeMap<String, (Vec<usize>, Vec<u8>)>;

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
    /// The libtorch kind of the stored values.
    pub(crate) fn kind(self) -> Kind {
        match self {
            Storage::F32 => Kind::Float,
            Storage::Bf16 => Kind::BFloat16,
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

/// The checksum a checkpoint stores: over each tensor's name and little-endian bytes, in name
/// order (as `tensors` must be given). Public so that tools editing checkpoints can restamp it.
pub fn checksum<'a>(tensors: impl Iterator<Item = &'a (String, Vec<u8>)>) -> u64 {
    tensor_checksum(tensors.map(|(name, bytes)| (name.as_str(), bytes.as_slice())))
}

/// A tensor's shape and little-endian bytes in `storage` (bfloat16: rounded to nearest even).
pub(crate) fn tensor_bytes(t: &Tensor, storage: Storage) -> Result<(Vec<usize>, Vec<u8>)> {
    let t =
        t.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_to_kind(storage.kind())?.f_contiguous()?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let n = t.numel();
    let len = limits::mul(n, storage.bytes_per_value(), "a checkpoint tensor")?;
    let mut bytes = limits::vec_filled(len, 0u8, "a checkpoint tensor")?;
    // Native-endian values: little-endian, as safetensors stores them, on every supported host.
    t.f_copy_data_u8(&mut bytes, n)?;
    Ok((shape, bytes))
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
/// always gives the same bytes; every tensor in `storage`.
fn serialize(
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

pub(crate) fn field<T: FromStr>(meta: &HashMap<String, String>, key: &str) -> Result<T> {
    let v = meta.get(key).ok_or_else(|| Error::format(format!("checkpoint lacks the field '{key}'")))?;
    v.parse().map_err(|_| Error::format(format!("checkpoint field '{key}' has a bad value '{v}'")))
}

/// The header of a checkpoint file, read and checked without reading its tensor data.
pub(crate) struct Header {
    /// Bytes before the tensor data (8 + the JSON header's length).
    pub(crate) data_start: u64,
    pub(crate) meta: HashMap<String, String>,
    tensors: HashMap<String, HeaderEntry>,
}

/// One tensor of a checkpoint's header: dtype, shape, and data offsets relative to the data
/// start.
type HeaderEntry = (Dtype, Vec<usize>, (usize, usize));

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
/// `storage`'s dtype, shapes, byte ranges that tile the data exactly) and that the file is
/// exactly as long as that: before a byte of tensor data is read or a model is built. Returns
/// the byte range of each tensor of `layout`, in its order.
fn check_table(
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
/// checksum against `expected_sum` and every value (`check_values`): nothing is built from
/// data that fails either.
#[allow(clippy::too_many_arguments)]
fn read_checked_data(
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
    let sum =
        tensor_checksum(layout.iter().zip(ranges).map(|((name, _), &(start, end))| (name.as_str(), &data[start..end])));
    if sum != expected_sum {
        return Err(not_ours("checksum mismatch: the tensor data is corrupt".into()));
    }
    for ((name, _), &(start, end)) in layout.iter().zip(ranges) {
        check_values(name, &data[start..end], storage, not_ours)?;
    }
    Ok(data)
}

/// Checks the values of every tensor (native floats from the file's little-endian bytes): all
/// finite; batch-norm running variances and Adam's second moments also >= 0.
/// (`storage`: how the file stores them).
fn check_values(name: &str, bytes: &[u8], storage: Storage, not_ours: &dyn Fn(String) -> Error) -> Result<()> {
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
    let saved_device = match field::<String>(meta, "device")?.parse::<DeviceSpec>() {
        Ok(DeviceSpec::Auto) | Err(_) => return Err(Error::format("checkpoint field 'device' has a bad value")),
        Ok(d) => d,
    };
    let device = match device {
        Some(d) => d,
        None if saved_device.resolve().is_ok() => saved_device,
        None => DeviceSpec::Auto,
    };
    let cfg = ModelConfig {
        height: field(meta, "height")?,
        width: field(meta, "width")?,
        channels: field(meta, "channels")?,
        drawing_steps: field(meta, "steps")?,
        z_dim: field(meta, "z_dim")?,
        hidden_dim: field(meta, "hidden_dim")?,
        width_scale: field(meta, "width_scale")?,
        leaky_relu: field(meta, "leaky_relu")?,
        seed: field(meta, "seed")?,
        // Files of unconditional models, older ones included, have no "classes".
        classes: match meta.get("classes") {
            Some(_) => field(meta, "classes")?,
            None => 0,
        },
        // Files of models with transposed convolutions, older ones included, have no
        // "upsampling".
        upsampling: match meta.get("upsampling") {
            Some(text) => text
                .parse()
                .map_err(|e: gran_common::upsampling::UnknownUpsampling| not_ours(format!("bad configuration: {e}")))?,
            None => Upsampling::Transposed,
        },
        device,
    };
    cfg.validate().map_err(|e| not_ours(format!("bad configuration: {}", e.message)))?;
    Ok(cfg)
}

/// The configuration fields every gran file's metadata holds.
/// (The drawing steps are stored as "steps", the name files have always used.)
/// "classes" only for a conditional model and "upsampling" only for a resizing generator: a
/// model without them has the same file as before they existed, and older readers load it
/// (an older reader refuses a resizing generator's file: its tensors have other shapes).
fn config_meta(cfg: &ModelConfig) -> Vec<(&'static str, String)> {
    cfg.fields()
        .into_iter()
        .filter(|(name, _)| match *name {
            "classes" => cfg.conditional(),
            "upsampling" => cfg.upsampling != Upsampling::Transposed,
            _ => true,
        })
        .map(|(name, value)| (if name == "drawing_steps" { "steps" } else { name }, value))
        .collect()
}

/// Writes `tensors` (in `storage`) to `path` atomically, with `tags`, the configuration's fields
/// and the checksum in the metadata.
pub(crate) fn write(
    path: &Path,
    tensors: &TensorBytes,
    tags: Vec<(&'static str, String)>,
    cfg: &ModelConfig,
    storage: Storage,
) -> Result<()> {
    let sum = tensor_checksum(tensors.iter().map(|(name, (_, bytes))| (name.as_str(), bytes.as_slice())));
    let meta: BTreeMap<String, String> = tags
        .into_iter()
        .chain(config_meta(cfg))
        .chain([("checksum", format!("{sum:016x}"))])
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    crate::io::atomic_file::write_atomic(path, &serialize(tensors, &meta, storage)?)
}

/// The checksum a file's metadata declares.
fn declared_checksum(meta: &HashMap<String, String>, not_ours: &dyn Fn(String) -> Error) -> Result<u64> {
    u64::from_str_radix(&field::<String>(meta, "checksum")?, 16).map_err(|_| not_ours("bad checksum field".into()))
}

/// Copies the checked `data` into a model's tensors: `named` (sorted by name) against `layout`
/// (sorted the same way) and the byte `ranges` of each.
fn fill(
    named: &[(String, Tensor)],
    layout: &[(String, Vec<i64>)],
    ranges: &[(usize, usize)],
    data: &[u8],
    storage: Storage,
) -> Result<()> {
    let kind = storage.kind();
    let _no_grad = tch::no_grad_guard();
    for (((name, t), (expected, _)), &(start, end)) in named.iter().zip(layout).zip(ranges) {
        if name != expected {
            return Err(Error::internal(format!("model tensor '{name}' where the layout has '{expected}'")));
        }
        let src = Tensor::f_from_data_size(&data[start..end], t.size().as_slice(), kind)?;
        t.shallow_clone().f_copy_(&src)?;
    }
    Ok(())
}

/// A gran file opened and its header read (crate::io::load); its tensor data not yet.
pub(crate) struct Opened<'a> {
    pub(crate) path: &'a Path,
    pub(crate) header: Header,
    pub(crate) file: fs::File,
    pub(crate) len: u64,
    /// The `Format` error for a file that is not what its loader reads.
    pub(crate) not_ours: &'a dyn Fn(String) -> Error,
}

impl Opened<'_> {
    pub(crate) fn meta(&self) -> &HashMap<String, String> {
        &self.header.meta
    }

    /// `Format` unless the file is of version `supported` of the format `kind` names.
    pub(crate) fn check_version(&self, supported: &str, kind: &str) -> Result<()> {
        let version: String = field(self.meta(), "version")?;
        if version != supported {
            return Err(Error::format(format!(
                "{}: {kind} version {version} is not supported (this library reads version {supported})",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// The tensor data, checked: the table against `layout` (the tensors a configuration
    /// implies, in any order) and the file's length first, then the data's checksum and every
    /// value, all before anything is built from it.
    pub(crate) fn read_tensors(self, mut layout: Vec<(String, Vec<i64>)>, storage: Storage) -> Result<CheckedData> {
        let expected_sum = declared_checksum(self.meta(), self.not_ours)?;
        layout.sort_by(|a, b| a.0.cmp(&b.0));
        let ranges = check_table(&self.header, &layout, self.len, storage, self.not_ours)?;
        let data = read_checked_data(
            self.file,
            self.path,
            self.len,
            &self.header,
            &layout,
            &ranges,
            expected_sum,
            storage,
            self.not_ours,
        )?;
        Ok(CheckedData { layout, ranges, data, storage })
    }
}

/// A file's tensor data after every check, ready to fill a model.
pub(crate) struct CheckedData {
    /// Sorted by name.
    layout: Vec<(String, Vec<i64>)>,
    ranges: Vec<(usize, usize)>,
    data: Vec<u8>,
    storage: Storage,
}

impl CheckedData {
    /// Copies the data into a model's tensors, `named` (those of the layout, in any order).
    pub(crate) fn fill(&self, mut named: Vec<(String, Tensor)>) -> Result<()> {
        named.sort_by(|a, b| a.0.cmp(&b.0));
        fill(&named, &self.layout, &self.ranges, &self.data, self.storage)
    }
}
