//! Reading gran files: generator exports (`gran export`, `gran_model_export`) and the generator
//! part of training checkpoints (`gran_model_save`), in the order that never trusts a byte
//! before it is checked, as libgran reads them (src/io/container.rs):
//! 1. the 8-byte header length (at most 16 MiB and within the file), then the JSON header alone;
//! 2. the format tag, version and configuration;
//! 3. the whole tensor table: every generator tensor present with its exact shape and the
//!    file's storage type, byte ranges that tile the data exactly, and the file's length equal
//!    to what the table implies;
//! 4. then the data, tensor by tensor in name order: the checksum over all of it, and every
//!    value (finite; variances and Adam second moments >= 0).
//!
//! Any file that is not an intact gran file is FORMAT; a file that cannot be read is IO.

use super::config::{checkpoint_layout, field, generator_layout, Config};
use crate::error::{format, io, with_capacity, zeros, Result};
use gran_common::checksum::Checksum;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};

/// The largest JSON header accepted (libgran's MAX_CHECKPOINT_HEADER).
const MAX_HEADER: u64 = 16 << 20;

/// How a file stores its floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    F32,
    Bf16,
}

impl Storage {
    fn tag(self) -> &'static str {
        match self {
            Storage::F32 => "F32",
            Storage::Bf16 => "BF16",
        }
    }
    fn bytes(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::Bf16 => 2,
        }
    }
}

/// What a loaded file holds for drawing.
pub(crate) struct Loaded {
    pub(crate) config: Config,
    pub(crate) step: u64,
    pub(crate) storage: Storage,
    /// The raw generator's tensors ("g.*"), as float32.
    pub(crate) raw: HashMap<String, Vec<f32>>,
    /// A checkpoint's averaged generator ("ema.g.*", renamed "g.*") when it has one with
    /// statistics estimated for its weights.
    pub(crate) averaged: Option<HashMap<String, Vec<f32>>>,
    /// Whether the file is a generator export (else a training checkpoint).
    pub(crate) export: bool,
}

/// A byte source of known length: a file, or bytes in memory (WebAssembly has no files).
pub(crate) trait Source: Read + Seek {}
impl<T: Read + Seek> Source for T {}

struct Entry {
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A header's metadata and tensor table, and where the tensor data starts.
struct Header {
    meta: HashMap<String, String>,
    /// Sorted by name: the checksum's order.
    table: BTreeMap<String, Entry>,
    data_start: u64,
}

/// What kind of gran file a header describes.
struct Kind {
    export: bool,
    storage: Storage,
    /// A checkpoint with an averaged generator.
    averaged: bool,
}

/// Reads and checks a gran file of `len` bytes from `src`.
pub(crate) fn load(src: &mut dyn Source, len: u64) -> Result<Loaded> {
    let Header { meta, table, data_start } = read_header(src, len)?;
    let kind = file_kind(&meta)?;
    let config = Config::from_meta(&meta)?;
    let step: u64 = field(&meta, "step")?;
    if !kind.export {
        let (g, d): (u64, u64) = (field(&meta, "adam_g_t")?, field(&meta, "adam_d_t")?);
        if g != step || d != step {
            return Err(format(format!(
                "Adam's update counts ({g} for G, {d} for D) differ from the step counter {step}"
            )));
        }
    }
    let expected_sum = meta
        .get("checksum")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .ok_or_else(|| format("no valid checksum field"))?;
    // Exactly the tensors the configuration implies: an export, the generator's; a checkpoint,
    // both networks', both optimizers' and the averaged generator's.
    let layout = if kind.export { generator_layout(&config) } else { checkpoint_layout(&config, kind.averaged) };
    check_table(&table, &layout, kind.storage, data_start, len)?;

    // The data, in name order (the checksum's order), one tensor in memory at a time besides
    // what drawing keeps: the raw generator, and the averaged one.
    let mut sum = Checksum::default();
    let (mut raw, mut ema) = (HashMap::new(), HashMap::new());
    for (name, e) in &table {
        let values = read_tensor(src, name, e, data_start, kind.storage, &mut sum)?;
        if let Some(g) = name.strip_prefix("ema.").filter(|g| g.starts_with("g.")) {
            ema.insert(g.to_string(), values);
        } else if name.starts_with("g.") {
            raw.insert(name.clone(), values);
        }
    }
    if sum.value() != expected_sum {
        return Err(format("checksum mismatch: the tensor data is corrupt"));
    }
    // libgran estimates an averaged generator's statistics when they are not those of its
    // weights (files written before they were saved fresh); the runtime samples only fresh ones.
    let fresh = kind.averaged && meta.get("averaged_stats_step").is_some_and(|s| s.parse::<u64>() == Ok(step));
    Ok(Loaded { config, step, storage: kind.storage, raw, averaged: fresh.then_some(ema), export: kind.export })
}

/// The header length (at most [`MAX_HEADER`] and within the file), then the JSON header alone.
fn read_header(src: &mut dyn Source, len: u64) -> Result<Header> {
    if len < 8 {
        return Err(format(format!("{len} bytes: shorter than a safetensors header")));
    }
    let mut word = [0u8; 8];
    src.read_exact(&mut word).map_err(read_error)?;
    let n = u64::from_le_bytes(word);
    if n > MAX_HEADER || n > len - 8 {
        return Err(format(format!(
            "its header claims {n} bytes (the file has {len}; at most {MAX_HEADER} are accepted)"
        )));
    }
    let mut json = zeros::<u8>(n as usize, "the file's header")?;
    src.read_exact(&mut json).map_err(read_error)?;
    let (meta, table) = parse_header(&json)?;
    Ok(Header { meta, table, data_start: 8 + n })
}

fn read_error(e: std::io::Error) -> crate::error::Error {
    io("reading the model file", e)
}

/// The format tag and version, the storage, and whether a checkpoint has an averaged generator.
fn file_kind(meta: &HashMap<String, String>) -> Result<Kind> {
    let export = match meta.get("format").map(String::as_str) {
        Some("gran-generator") => true,
        Some("gran-checkpoint") => false,
        _ => return Err(format("no gran format tag")),
    };
    let version = meta.get("version").map(String::as_str).unwrap_or("");
    if version != "1" {
        let kind = if export { "generator export" } else { "checkpoint format" };
        return Err(format(format!("{kind} version {version} is not supported (this library reads version 1)")));
    }
    if !export {
        let averaged = match meta.get("averaged").map(String::as_str) {
            None => false,
            Some("1") => true,
            Some(v) => return Err(format(format!("bad 'averaged' field '{v}'"))),
        };
        return Ok(Kind { export, storage: Storage::F32, averaged });
    }
    let storage = match meta.get("storage").map(String::as_str) {
        Some("fp32") => Storage::F32,
        Some("bf16") => Storage::Bf16,
        s => return Err(format(format!("unknown storage '{}'", s.unwrap_or("")))),
    };
    Ok(Kind { export, storage, averaged: false })
}

/// The table against `layout`: the same names, each with its shape and `storage`'s type, byte
/// ranges that fit their shapes and tile the data exactly, and the file ending where the data
/// does. Before a byte of tensor data is read.
fn check_table(
    table: &BTreeMap<String, Entry>,
    layout: &[(String, Vec<usize>)],
    storage: Storage,
    data_start: u64,
    len: u64,
) -> Result<()> {
    if table.len() != layout.len() {
        return Err(format(format!("{} tensors where {} were expected", table.len(), layout.len())));
    }
    for (name, shape) in layout {
        let e = table.get(name).ok_or_else(|| format(format!("tensor '{name}' is missing")))?;
        if e.dtype != storage.tag() || e.shape != *shape {
            return Err(format(format!(
                "tensor '{name}' is {} {:?}, expected {} {shape:?}",
                e.dtype,
                e.shape,
                storage.tag()
            )));
        }
    }
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(table.len());
    for (name, e) in table {
        let values = e.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if values.and_then(|v| v.checked_mul(storage.bytes())) != e.end.checked_sub(e.start) {
            return Err(format(format!("tensor '{name}' has the byte range {}..{}, not its shape", e.start, e.end)));
        }
        ranges.push((e.start, e.end));
    }
    ranges.sort_unstable();
    let mut at = 0usize;
    for (start, end) in ranges {
        if start != at {
            return Err(format(format!("tensor data is not contiguous at byte {at}")));
        }
        at = end;
    }
    if data_start.checked_add(at as u64) != Some(len) {
        return Err(format(format!(
            "the file has {len} bytes where its table implies {}",
            data_start as u128 + at as u128
        )));
    }
    Ok(())
}

/// One tensor's data (its range checked by [`check_table`]): taken into the checksum, and
/// returned as float32 values, each checked.
fn read_tensor(
    src: &mut dyn Source,
    name: &str,
    e: &Entry,
    data_start: u64,
    storage: Storage,
    sum: &mut Checksum,
) -> Result<Vec<f32>> {
    let len = e.end - e.start;
    let mut bytes = with_capacity::<u8>(len, "a tensor of the file")?;
    src.seek(SeekFrom::Start(data_start + e.start as u64)).map_err(read_error)?;
    // Read into the reserved room (no zeroing first); the table said the file holds it.
    src.take(len as u64).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() != len {
        return Err(format("the file ended inside its tensor data"));
    }
    sum.tensor(name, &bytes);
    let values = floats(&bytes, storage)?;
    check_values(name, &values)?;
    Ok(values)
}

/// The header's metadata and tensor table (sorted by name). Strict: every tensor entry is an
/// object of exactly `dtype`, `shape` and `data_offsets`.
fn parse_header(json: &[u8]) -> Result<(HashMap<String, String>, BTreeMap<String, Entry>)> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| format(format!("bad header: {e}")))?;
    let obj = value.as_object().ok_or_else(|| format("bad header: not a JSON object"))?;
    let mut meta = HashMap::new();
    let mut table = BTreeMap::new();
    for (key, v) in obj {
        if key == "__metadata__" {
            let m = v.as_object().ok_or_else(|| format("bad header: __metadata__ is not an object"))?;
            for (k, v) in m {
                let s = v.as_str().ok_or_else(|| format(format!("bad header: metadata '{k}' is not a string")))?;
                meta.insert(k.clone(), s.to_string());
            }
            continue;
        }
        let bad = || format(format!("bad header: tensor '{key}' is not described by dtype, shape and data_offsets"));
        let e = v.as_object().filter(|e| e.len() == 3).ok_or_else(bad)?;
        let dtype = e.get("dtype").and_then(|d| d.as_str()).ok_or_else(bad)?.to_string();
        let index = |v: &serde_json::Value| v.as_u64().and_then(|x| usize::try_from(x).ok());
        let shape = e.get("shape").and_then(|s| s.as_array()).ok_or_else(bad)?;
        let shape = shape.iter().map(index).collect::<Option<Vec<usize>>>().ok_or_else(bad)?;
        let offsets = e.get("data_offsets").and_then(|o| o.as_array()).filter(|o| o.len() == 2).ok_or_else(bad)?;
        let (start, end) = (index(&offsets[0]).ok_or_else(bad)?, index(&offsets[1]).ok_or_else(bad)?);
        table.insert(key.clone(), Entry { dtype, shape, start, end });
    }
    if meta.is_empty() {
        return Err(format("no metadata"));
    }
    Ok((meta, table))
}

/// Little-endian values as float32 (bfloat16: the upper half of a float32's bits).
fn floats(bytes: &[u8], storage: Storage) -> Result<Vec<f32>> {
    let mut out = with_capacity::<f32>(bytes.len() / storage.bytes(), "a tensor's values")?;
    match storage {
        Storage::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        Storage::Bf16 => {
            out.extend(bytes.chunks_exact(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)))
        }
    }
    Ok(out)
}

/// All finite; batch-norm running variances and Adam's second moments also >= 0.
fn check_values(name: &str, values: &[f32]) -> Result<()> {
    let second_moment =
        name.split_once('.').is_some_and(|(prefix, rest)| prefix.starts_with("adam_") && rest.starts_with("v."));
    let non_negative = name.contains(".running_var.") || second_moment;
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() || (non_negative && v < 0.0) {
            let rule = if non_negative { "finite and >= 0" } else { "finite" };
            return Err(format(format!("tensor '{name}' holds {v} at index {i}: its values must be {rule}")));
        }
    }
    Ok(())
}
