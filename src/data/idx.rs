//! The IDX format of the MNIST distribution: a big-endian header (a magic number whose third
//! byte is the element type, 0x08 for `u8`, and whose fourth is the number of dimensions, then
//! one `u32` per dimension) followed by the elements. Files may be plain or gzip-compressed;
//! compression is recognised by its magic bytes, not by the file name.

use super::pixels::{self, PixelFormat};
use super::records::RecordReader;
use super::Dataset;
use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Magic number of an IDX file of `u8` images: N x rows x columns.
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels: N.
const LABELS_MAGIC: u32 = 0x0000_0801;
/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The largest payload a header may declare (4 GiB): a forged header must not make us try to
/// hold absurd amounts of memory.
const MAX_PAYLOAD: u64 = 4 << 30;

/// Loads MNIST-style IDX images (`u8`, magic 0x00000803) and, optionally, their labels (`u8`,
/// magic 0x00000801) into a `[N, 1, rows, cols]` `Uint8` dataset. Either file may be plain or
/// gzip-compressed. Labels may hold any byte value.
///
/// # Errors
/// `Io` (naming the path) when a file cannot be opened or read; `Format` for a wrong magic
/// number, a header declaring no images, a zero row or column count or more than 4 GiB of
/// data, a payload shorter or longer than its header declares (with the expected and found
/// byte counts), corrupt gzip data, or a label count that differs from the image count.
pub fn load_idx(images_path: &Path, labels_path: Option<&Path>) -> Result<Dataset> {
    let mut records = IdxRecords::open(images_path, labels_path)?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    records.read(records.count, &mut pixels, &mut labels)?;
    records.finish()?;
    let labels = records.labels.is_some().then_some(labels);
    let images = pixels::to_tensor(&pixels, records.count, 1, records.rows, records.cols, PixelFormat::U8Chw)?;
    Dataset::new(images, labels)
}

/// IDX images read a chunk at a time ([`RecordReader`]): the header is checked on opening and
/// the labels file (N bytes) is read whole; the images are never all in memory.
pub struct IdxRecords {
    reader: IdxReader,
    count: usize,
    rows: u32,
    cols: u32,
    labels: Option<Vec<u8>>,
    read: usize,
}

impl IdxRecords {
    /// Opens `images_path` (and its labels, checked to be one per image) as `load_idx` does.
    pub fn open(images_path: &Path, labels_path: Option<&Path>) -> Result<IdxRecords> {
        let (reader, dims, _) = open_idx(images_path, IMAGES_MAGIC, "images")?;
        let (count, rows, cols) = (dims[0], dims[1], dims[2]);
        if count == 0 || rows == 0 || cols == 0 {
            return Err(Error::format(format!(
                "{}: header declares {count} images of {rows}x{cols}: expected at least one image of at least 1x1",
                images_path.display()
            )));
        }
        let labels = match labels_path {
            None => None,
            Some(lp) => {
                let (label_dims, labels) = read_idx(lp, LABELS_MAGIC, "labels")?;
                if label_dims[0] != count {
                    return Err(Error::format(format!(
                        "{} holds {} labels but {} holds {count} images: expected one label per image",
                        lp.display(),
                        label_dims[0],
                        images_path.display()
                    )));
                }
                Some(labels)
            }
        };
        Ok(IdxRecords { reader, count: count as usize, rows, cols, labels, read: 0 })
    }
}

impl RecordReader for IdxRecords {
    fn count(&self) -> usize {
        self.count
    }

    fn shape(&self) -> (u32, u32, u32) {
        (self.rows, self.cols, 1)
    }

    fn read(&mut self, k: usize, images: &mut Vec<u8>, labels: &mut Vec<u8>) -> Result<()> {
        let k = k.min(self.count - self.read);
        let image = (self.rows * self.cols) as usize;
        let chunk = self.reader.read_up_to((k * image) as u64)?;
        if chunk.len() < k * image {
            return Err(Error::format(format!(
                "{}: truncated: the header declares {} bytes of data, found {}",
                self.reader.path.display(),
                self.count * image,
                self.read * image + chunk.len()
            )));
        }
        images.extend_from_slice(&chunk);
        if let Some(l) = &self.labels {
            labels.extend_from_slice(&l[self.read..self.read + k]);
        }
        self.read += k;
        Ok(())
    }

    fn labelled(&self) -> bool {
        self.labels.is_some()
    }

    fn finish(&mut self) -> Result<()> {
        if !self.reader.read_up_to(1)?.is_empty() {
            return Err(Error::format(format!(
                "{}: the header declares {} bytes of data but the file holds more",
                self.reader.path.display(),
                self.count * (self.rows * self.cols) as usize
            )));
        }
        Ok(())
    }
}

/// Opens one IDX file of `u8` elements whose magic must be `magic` and reads its header, whose
/// dimensions must describe at most [`MAX_PAYLOAD`] bytes. Returns the reader at the data,
/// the dimensions and the bytes of data they declare.
fn open_idx(path: &Path, magic: u32, what: &str) -> Result<(IdxReader, Vec<u32>, u64)> {
    let mut reader = IdxReader::open(path)?;
    let found = reader.read_u32("magic number")?;
    if found != magic {
        return Err(Error::format(format!(
            "{}: magic number 0x{found:08x}: expected 0x{magic:08x} for an IDX file of {what}",
            path.display()
        )));
    }
    let ndims = (magic & 0xff) as usize;
    let dims = (0..ndims).map(|_| reader.read_u32("dimension")).collect::<Result<Vec<u32>>>()?;
    let expected = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d))).filter(|&n| n <= MAX_PAYLOAD);
    let expected = expected.ok_or_else(|| {
        Error::format(format!(
            "{}: header declares dimensions {dims:?}: more than the 4 GiB of data accepted",
            path.display()
        ))
    })?;
    Ok((reader, dims, expected))
}

/// Reads one IDX file of `u8` elements whose magic must be `magic` (`what` names its contents
/// in messages). Returns the dimensions and the elements, whose number is checked to be
/// exactly the product of the dimensions.
fn read_idx(path: &Path, magic: u32, what: &str) -> Result<(Vec<u32>, Vec<u8>)> {
    let (mut reader, dims, expected) = open_idx(path, magic, what)?;
    let payload = reader.read_payload(expected)?;
    Ok((dims, payload))
}

/// A plain or gzip-decompressing reader over one file, whose errors name the file.
struct IdxReader {
    path: std::path::PathBuf,
    inner: Box<dyn Read>,
    gzip: bool,
}

impl IdxReader {
    /// Opens `path` and recognises gzip compression by its first two bytes.
    fn open(path: &Path) -> Result<Self> {
        let io_err = |e| Error::io(format!("reading {}", path.display()), e);
        let (file, _) = crate::limits::open_regular(path)?;
        let mut file = BufReader::new(file);
        let gzip = file.fill_buf().map_err(io_err)?.starts_with(&GZIP_MAGIC);
        let inner: Box<dyn Read> = if gzip { Box::new(MultiGzDecoder::new(file)) } else { Box::new(file) };
        Ok(IdxReader { path: path.to_path_buf(), inner, gzip })
    }

    /// Maps a read error: corrupt compressed data is a `Format` error, anything else `Io`.
    fn error(&self, e: std::io::Error) -> Error {
        if self.gzip {
            Error::format(format!("{}: corrupt gzip data: {e}", self.path.display()))
        } else {
            Error::io(format!("reading {}", self.path.display()), e)
        }
    }

    /// Reads at most `limit` bytes, stopping early only at the end of the data. The buffer grows
    /// with the data that actually arrives (fallibly, doubling), never past `limit`, which the
    /// header bounds by [`MAX_PAYLOAD`]: a small file declaring a large payload costs nothing.
    fn read_up_to(&mut self, limit: u64) -> Result<Vec<u8>> {
        let mut buf: Vec<u8> = Vec::new();
        let mut block = [0u8; 1 << 16];
        loop {
            let n = match (&mut self.inner).take(limit - buf.len() as u64).read(&mut block) {
                Ok(0) => return Ok(buf),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(e)),
            };
            if buf.capacity() - buf.len() < n {
                let room = (buf.capacity().max(1 << 16) as u64).min(limit - buf.len() as u64) as usize;
                crate::limits::reserve(&mut buf, room.max(n), "the IDX data")?;
            }
            buf.extend_from_slice(&block[..n]);
        }
    }

    /// Reads one big-endian `u32` of the header (`field` names it in messages).
    fn read_u32(&mut self, field: &str) -> Result<u32> {
        let bytes = self.read_up_to(4)?;
        let bytes: [u8; 4] = bytes.try_into().map_err(|_| {
            Error::format(format!("{}: file ends inside its header (reading the {field})", self.path.display()))
        })?;
        Ok(u32::from_be_bytes(bytes))
    }

    /// Reads the rest of the file, which must be exactly `expected` bytes.
    fn read_payload(&mut self, expected: u64) -> Result<Vec<u8>> {
        // One byte more than expected tells a file with trailing data from an exact one.
        let payload = self.read_up_to(expected + 1)?;
        let found = payload.len() as u64;
        if found < expected {
            return Err(Error::format(format!(
                "{}: truncated: the header declares {expected} bytes of data, found {found}",
                self.path.display()
            )));
        }
        if found > expected {
            return Err(Error::format(format!(
                "{}: the header declares {expected} bytes of data but the file holds more",
                self.path.display()
            )));
        }
        Ok(payload)
    }
}
