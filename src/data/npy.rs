//! numpy's `.npy` format for packed image sets: what `np.save` writes and `gran pack` makes.
//!
//! The images are one C-order uint8 array `[N, H, W, C]` (numpy's image layout) or
//! `[N, C, H, W]` with C 1 or 3, or `[N, H, W]` (grey). Labels, when there are any, are a
//! second file beside it, `NAME.labels.npy`: a 1-D integer array of N values in 0..=255.
//!
//! ```python
//! np.save("faces.npy", images)          # uint8, (N, 64, 64, 3)
//! np.save("faces.labels.npy", labels)   # optional: integers, (N,)
//! ```
//!
//! A file's header is checked before its data is read: the magic string and version, a header
//! of at most 64 KiB, a dtype this module reads, C order, a shape whose size is the file's
//! length exactly (checked arithmetic: a header cannot make it allocate what the file does
//! not hold).

use super::pixels::{self, PixelFormat};
use super::Dataset;
use crate::error::{Error, Result};
use crate::io::atomic_file::AtomicWriter;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The longest header read (numpy's own are a few hundred bytes).
const MAX_HEADER: usize = 1 << 16;
/// Data starts at a multiple of this (numpy pads its headers so).
const ALIGN: usize = 64;

/// The element types read: unsigned bytes for images; any integer for labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    U8,
    /// Signed or unsigned integers of `bytes` bytes, little-endian (or one byte).
    Int {
        bytes: usize,
        signed: bool,
    },
}

impl Dtype {
    fn parse(descr: &str) -> Option<Dtype> {
        let (order, kind) = descr.split_at(1);
        let (code, size) = kind.split_at(1);
        let bytes: usize = size.parse().ok()?;
        let little = order == "<" || order == "|" || (order == "=" && cfg!(target_endian = "little"));
        if !(little || bytes == 1) {
            return None;
        }
        match (code, bytes) {
            ("u", 1) => Some(Dtype::U8),
            ("u" | "i", 1 | 2 | 4 | 8) => Some(Dtype::Int { bytes, signed: code == "i" }),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::Int { bytes, .. } => bytes,
        }
    }
}

/// A parsed header: element type, shape, and where the data starts.
#[derive(Debug)]
struct Header {
    dtype: Dtype,
    shape: Vec<usize>,
    data_offset: u64,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::format(format!("{}: not a .npy file gran reads: {why}", path.display()))
}

/// Reads and checks the header of the `.npy` file at `path` (`len` bytes long).
fn read_header(file: &mut std::fs::File, len: u64, path: &Path) -> Result<Header> {
    let io = |e| Error::io(format!("reading {}", path.display()), e);
    let mut lead = [0u8; 10];
    if len < lead.len() as u64 {
        return Err(bad(path, "shorter than a header"));
    }
    file.read_exact(&mut lead).map_err(io)?;
    if &lead[..6] != MAGIC {
        return Err(bad(path, "no \\x93NUMPY magic string"));
    }
    let size_bytes = match lead[6] {
        1 => 2,
        2 | 3 => 4,
        v => return Err(bad(path, format!("format version {v}"))),
    };
    let header_len = if size_bytes == 2 {
        u16::from_le_bytes([lead[8], lead[9]]) as usize
    } else {
        let mut more = [0u8; 2];
        file.read_exact(&mut more).map_err(io)?;
        u32::from_le_bytes([lead[8], lead[9], more[0], more[1]]) as usize
    };
    let start = 8 + size_bytes;
    if header_len > MAX_HEADER || (start + header_len) as u64 > len {
        return Err(bad(path, format!("a header of {header_len} bytes")));
    }
    let mut text = vec![0u8; header_len];
    file.read_exact(&mut text).map_err(io)?;
    let text = std::str::from_utf8(&text).map_err(|_| bad(path, "a header that is not text"))?;
    let descr = dict_value(text, "descr").ok_or_else(|| bad(path, "no 'descr' in the header"))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let dtype = Dtype::parse(descr)
        .ok_or_else(|| bad(path, format!("dtype {descr:?}: images must be uint8 ('|u1'), labels integers")))?;
    if dict_value(text, "fortran_order").map(str::trim) != Some("False") {
        return Err(bad(path, "Fortran order (save a C-ordered array: np.ascontiguousarray)"));
    }
    let shape_text = dict_value(text, "shape").ok_or_else(|| bad(path, "no 'shape' in the header"))?;
    let inner = shape_text
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad(path, "a shape that is not a tuple"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad(path, format!("shape ({inner})")))?;
    let data_offset = (start + header_len) as u64;
    let elements = crate::limits::product(&shape, "the array")?;
    let bytes = crate::limits::mul(elements, dtype.size(), "the array")? as u64;
    if data_offset + bytes != len {
        return Err(bad(
            path,
            format!("shape {shape:?} of {descr} is {bytes} bytes of data, but the file holds {}", len - data_offset),
        ));
    }
    Ok(Header { dtype, shape, data_offset })
}

/// The text of `key`'s value in a header's Python dict literal (up to the next top-level
/// comma or the closing brace).
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("'{key}'")).or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = &text[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// The labels file beside an images file: `NAME.npy` -> `NAME.labels.npy`.
pub fn labels_path(images: &Path) -> PathBuf {
    let stem = images.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    images.with_file_name(format!("{stem}.labels.npy"))
}

/// The layout of an images array: (count, channels, height, width, pixel format).
fn image_layout(shape: &[usize], path: &Path) -> Result<(usize, u32, u32, u32, PixelFormat)> {
    let side = |v: usize| u32::try_from(v).map_err(|_| bad(path, format!("a side of {v} pixels")));
    let (n, c, h, w, format) = match *shape {
        [n, h, w] => (n, 1, h, w, PixelFormat::U8Hwc),
        [n, h, w, c] if c == 1 || c == 3 => (n, c, h, w, PixelFormat::U8Hwc),
        [n, c, h, w] if c == 1 || c == 3 => (n, c, h, w, PixelFormat::U8Chw),
        _ => {
            return Err(bad(
                path,
                format!("images of shape {shape:?}: expected (N, H, W, C) or (N, C, H, W) with C 1 or 3, or (N, H, W)"),
            ))
        }
    };
    if n == 0 {
        return Err(bad(path, "no images (N is 0)"));
    }
    Ok((n, side(c)?, side(h)?, side(w)?, format))
}

/// Loads a packed image set: `path` (uint8 images, see the module's documentation) and, when
/// it exists, `labels_path(path)`.
///
/// # Errors
/// `Io` when a file cannot be read; `Format` for a file that is not a `.npy` this module reads
/// (the reason is named), labels that are not 1-D, not one per image, or outside 0..=255;
/// `InvalidArgument` for image sizes `Dataset` refuses; `OutOfMemory`.
pub fn load_npy(path: &Path) -> Result<Dataset> {
    let (images, labels) = open_images(path)?;
    let all = images.read(&(0..images.count).collect::<Vec<_>>())?;
    Dataset::new(all, labels)
}

/// An images `.npy` file opened for reading images on demand (`Dataset::open_npy`): its header
/// checked, its file kept open; each read is a positioned read (`pread`) of whole images, so
/// nothing but the images asked for is ever in memory (not even in the page tables, as a memory
/// map's pages would be).
#[derive(Debug)]
pub(crate) struct NpyImages {
    file: std::fs::File,
    path: PathBuf,
    data_offset: u64,
    pub(crate) count: usize,
    pub(crate) channels: u32,
    pub(crate) height: u32,
    pub(crate) width: u32,
    format: PixelFormat,
}

impl super::ImageReader for NpyImages {
    fn read_raw(&self, indices: &[usize]) -> Result<super::Raw> {
        NpyImages::read_raw(self, indices)
    }
}

impl NpyImages {
    /// Opens `path` and checks its header (the data itself is not read).
    pub(crate) fn open(path: &Path) -> Result<NpyImages> {
        let (mut file, len) = crate::limits::open_regular(path)?;
        let h = read_header(&mut file, len, path)?;
        if h.dtype != Dtype::U8 {
            return Err(bad(path, "images must be uint8 ('|u1'): convert with images.astype(np.uint8)"));
        }
        let (count, channels, height, width, format) = image_layout(&h.shape, path)?;
        pixels::check_dims(count, channels, height, width)?;
        Ok(NpyImages {
            file,
            path: path.to_path_buf(),
            data_offset: h.data_offset,
            count,
            channels,
            height,
            width,
            format,
        })
    }

    fn image_bytes(&self) -> usize {
        (self.channels * self.height * self.width) as usize
    }

    /// Images `indices` (each below `count`) as a `Uint8` `[k, C, H, W]` tensor, read from the
    /// file in the order given (runs of consecutive indices in one read each).
    pub(crate) fn read(&self, indices: &[usize]) -> Result<tch::Tensor> {
        self.read_raw(indices)?.into_tensor()
    }

    /// Images `indices` as the file's bytes (no libtorch call).
    pub(crate) fn read_raw(&self, indices: &[usize]) -> Result<super::Raw> {
        use std::os::unix::fs::FileExt;
        let size = self.image_bytes();
        let mut data =
            crate::limits::vec_filled(crate::limits::mul(indices.len(), size, "a minibatch")?, 0u8, "a minibatch")?;
        let mut k = 0;
        while k < indices.len() {
            let first = indices[k];
            let mut run = 1;
            while k + run < indices.len() && indices[k + run] == first + run {
                run += 1;
            }
            if first + run > self.count {
                return Err(Error::invalid(format!("image {} of a file of {} images", first + run - 1, self.count)));
            }
            let at = self.data_offset + (first * size) as u64;
            self.file.read_exact_at(&mut data[k * size..(k + run) * size], at).map_err(|e| {
                Error::io(format!("reading images {first}..{} of {}", first + run, self.path.display()), e)
            })?;
            k += run;
        }
        Ok(super::Raw {
            pixels: data,
            count: indices.len(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            format: self.format,
        })
    }
}

/// Opens a packed image set for reading on demand: the header of `path` and, when it exists,
/// the labels of `labels_path(path)` (small: read now).
pub(crate) fn open_images(path: &Path) -> Result<(NpyImages, Option<Vec<u8>>)> {
    let images = NpyImages::open(path)?;
    let labels_file = labels_path(path);
    let labels = if labels_file.is_file() { Some(load_labels(&labels_file, images.count)?) } else { None };
    Ok((images, labels))
}

/// A labels file: `count` integers in 0..=255.
fn load_labels(path: &Path, count: usize) -> Result<Vec<u8>> {
    let (mut file, len) = crate::limits::open_regular(path)?;
    let h = read_header(&mut file, len, path)?;
    if h.shape != [count] {
        return Err(bad(path, format!("labels of shape {:?} for {count} images: expected ({count},)", h.shape)));
    }
    let mut raw = crate::limits::vec_filled((len - h.data_offset) as usize, 0u8, "the labels")?;
    file.seek(SeekFrom::Start(h.data_offset)).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    file.read_exact(&mut raw).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let size = h.dtype.size();
    raw.chunks_exact(size)
        .enumerate()
        .map(|(i, b)| {
            let mut le = [0u8; 8];
            le[..size].copy_from_slice(b);
            let v = match h.dtype {
                Dtype::Int { signed: true, .. } if b[size - 1] & 0x80 != 0 => -1,
                _ => i64::from_le_bytes(le),
            };
            u8::try_from(v).map_err(|_| bad(path, format!("label {i} is {v}: labels must be in 0..=255")))
        })
        .collect()
}

/// Writes a `.npy` file of uint8 images `[count, height, width, channels]` image by image,
/// without holding the set: the header first (the count is known up front), then each image's
/// interleaved bytes as [`NpyWriter::push`] receives them; [`NpyWriter::finish`] checks the
/// count and puts the file in place atomically (an interrupted pack leaves no partial file).
pub struct NpyWriter {
    file: AtomicWriter,
    path: PathBuf,
    image_bytes: usize,
    count: usize,
    written: usize,
}

impl NpyWriter {
    /// Starts `path` for `count` images of `height x width x channels`.
    pub fn create(path: &Path, count: usize, height: u32, width: u32, channels: u32) -> Result<NpyWriter> {
        pixels::check_dims(count, channels, height, width)?;
        let image_bytes = pixels::bytes_for(PixelFormat::U8Hwc, 1, channels, height, width)?;
        let header = npy_header("|u1", &format!("({count}, {height}, {width}, {channels})"));
        let mut file = AtomicWriter::create(path)?;
        file.write_all(&header).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(NpyWriter { file, path: path.to_path_buf(), image_bytes, count, written: 0 })
    }

    /// Appends one image: `height * width * channels` interleaved bytes.
    pub fn push(&mut self, image: &[u8]) -> Result<()> {
        if image.len() != self.image_bytes || self.written == self.count {
            return Err(Error::invalid(format!(
                "image {} of {} bytes for a file of {} images of {} bytes",
                self.written,
                image.len(),
                self.count,
                self.image_bytes
            )));
        }
        self.file.write_all(image).map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        self.written += 1;
        Ok(())
    }

    /// Puts the file in place, once every image was pushed.
    pub fn finish(self) -> Result<()> {
        if self.written != self.count {
            return Err(Error::invalid(format!("{} of {} images written", self.written, self.count)));
        }
        Ok(self.file.commit()?)
    }
}

/// Writes `labels` to `path` as a 1-D uint8 `.npy` array (atomically).
pub fn write_labels(path: &Path, labels: &[u8]) -> Result<()> {
    let mut bytes = npy_header("|u1", &format!("({},)", labels.len()));
    bytes.extend_from_slice(labels);
    crate::io::atomic_file::write_atomic(path, &bytes)
}

/// A version 1.0 header for `descr` and `shape` (a Python tuple), padded as numpy pads it.
fn npy_header(descr: &str, shape: &str) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat((ALIGN - unpadded % ALIGN) % ALIGN));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gran-npy-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    /// What numpy 1.26's np.save writes for np.zeros((2, 3, 4, 1), np.uint8), byte for byte in
    /// its header (numpy pads to 64 bytes and ends with a newline).
    #[test]
    fn the_header_is_numpys() {
        let h = npy_header("|u1", "(2, 3, 4, 1)");
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..10], b"\x93NUMPY\x01\x00\x76\x00");
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4, 1), }"));
        assert!(text.ends_with(" \n"));
    }

    #[test]
    fn images_and_labels_round_trip_in_every_layout() {
        let path = temp("round.npy");
        let mut w = NpyWriter::create(&path, 2, 2, 3, 3).unwrap();
        let images: Vec<u8> = (0..36).collect();
        w.push(&images[..18]).unwrap();
        w.push(&images[18..]).unwrap();
        w.finish().unwrap();
        write_labels(&labels_path(&path), &[7, 200]).unwrap();
        let d = load_npy(&path).unwrap();
        assert_eq!((d.count(), d.channels(), d.height(), d.width()), (2, 3, 2, 3));
        assert_eq!(d.labels(), Some(&[7u8, 200][..]));
        // Image 1, channel 2, row 1, column 0: byte 18 + (1 * 3 + 0) * 3 + 2 = 29.
        let t = d.images().unwrap();
        assert_eq!(t.int64_value(&[1, 2, 1, 0]), 29);

        // (N, C, H, W) and (N, H, W), as np.save writes them.
        let chw = temp("chw.npy");
        let mut bytes = npy_header("|u1", "(1, 3, 2, 2)");
        bytes.extend(0..12u8);
        std::fs::write(&chw, &bytes).unwrap();
        let d = load_npy(&chw).unwrap();
        assert_eq!((d.channels(), d.images().unwrap().int64_value(&[0, 2, 1, 0])), (3, 10));
        let grey = temp("grey.npy");
        let mut bytes = npy_header("<u1", "(3, 2, 2)");
        bytes.extend(0..12u8);
        std::fs::write(&grey, &bytes).unwrap();
        assert_eq!(load_npy(&grey).unwrap().channels(), 1);
        // int64 labels, as np.save(labels.astype(np.int64)).
        let mut bytes = npy_header("<i8", "(3,)");
        for v in [0i64, 9, 255] {
            bytes.extend(v.to_le_bytes());
        }
        std::fs::write(labels_path(&grey), &bytes).unwrap();
        assert_eq!(load_npy(&grey).unwrap().labels(), Some(&[0u8, 9, 255][..]));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        // np.save of a Fortran-ordered array: the same header with True (padding shortened).
        let mut fortran = npy_header("|u1", "(1, 2, 2, 1)");
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        let cases: [(&str, Vec<u8>, &str); 7] = [
            ("magic", b"NUMPY\x01\x00\x10\x00".to_vec(), "magic"),
            ("float", [npy_header("<f4", "(1, 2, 2, 1)"), vec![0; 16]].concat(), "dtype"),
            ("fortran", [fortran, vec![0; 4]].concat(), "Fortran order"),
            ("short", [npy_header("|u1", "(2, 2, 2, 1)"), vec![0; 7]].concat(), "bytes of data"),
            // A header claiming far more than the file holds (and more than memory).
            ("huge", npy_header("|u1", "(4000000000, 4000000000, 4000000000, 3)"), "array"),
            ("shape", [npy_header("|u1", "(1, 2, 2, 2)"), vec![0; 8]].concat(), "shape"),
            ("empty", npy_header("|u1", "(0, 2, 2, 1)"), "no images"),
        ];
        for (name, bytes, why) in cases {
            let path = temp(&format!("bad-{name}.npy"));
            std::fs::write(&path, &bytes).unwrap();
            let e = load_npy(&path).unwrap_err();
            assert!(
                matches!(e.kind, ErrorKind::Format | ErrorKind::InvalidArgument | ErrorKind::OutOfMemory),
                "{name}: {e:?}"
            );
            assert!(e.message.contains(why), "{name}: {}", e.message);
        }
        // Labels that do not fit a byte, or do not match the count.
        let path = temp("labels-bad.npy");
        std::fs::write(&path, [npy_header("|u1", "(2, 1, 1)"), vec![0; 2]].concat()).unwrap();
        let mut l = npy_header("<i4", "(2,)");
        l.extend(3i32.to_le_bytes());
        l.extend(256i32.to_le_bytes());
        std::fs::write(labels_path(&path), &l).unwrap();
        assert!(load_npy(&path).unwrap_err().message.contains("label 1 is 256"));
        std::fs::write(labels_path(&path), [npy_header("|u1", "(3,)"), vec![0; 3]].concat()).unwrap();
        assert!(load_npy(&path).unwrap_err().message.contains("for 2 images"));
    }
}
