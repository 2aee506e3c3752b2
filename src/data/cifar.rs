//! The CIFAR-10 binary format: files of 3073-byte records, each a label byte (0..=9) followed by
//! a 32x32 RGB image stored planar (1024 red bytes, then green, then blue; rows top to bottom).

use super::pixels::{self, PixelFormat};
use super::records::RecordReader;
use super::Dataset;
use crate::error::{Error, ErrorKind, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Image side in pixels.
const SIDE: u32 = 32;
/// Bytes of one image: 3 x 32 x 32.
const IMAGE_BYTES: usize = 3 * (SIDE * SIDE) as usize;
/// Bytes of one record: the label, then the image.
const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Number of classes: labels are below this.
const CLASSES: u8 = 10;
/// The training batches of the distribution, in order.
const TRAIN_BATCHES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test batch, used when a folder has no training batches.
const TEST_BATCH: &str = "test_batch.bin";

/// Loads CIFAR-10 binary data into a labelled `[N, 3, 32, 32]` `Uint8` dataset.
///
/// `path` is either one batch file, or a folder: then the training batches
/// `data_batch_1.bin` .. `data_batch_5.bin` that exist are read, in that order, or
/// `test_batch.bin` when there are none.
///
/// # Errors
/// `Io` when `path` or a batch cannot be read, or a folder holds none of those files;
/// `Format` when a file's length is not a non-zero multiple of 3073 bytes, or a label is 10 or
/// more (the file, record and label are named).
pub fn load_cifar10(path: &Path) -> Result<Dataset> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let files = if meta.is_dir() { batch_files(path)? } else { vec![path.to_path_buf()] };
    let mut labels = Vec::new();
    let mut images = Vec::new();
    for file in &files {
        read_batch(file, &mut labels, &mut images)?;
    }
    let tensor = pixels::to_tensor(&images, labels.len(), 3, SIDE, SIDE, PixelFormat::U8Chw)?;
    Dataset::new(tensor, Some(labels))
}

/// CIFAR-10 records read a chunk at a time ([`RecordReader`]), file after file, as
/// `load_cifar10` orders them; every file's length is checked on opening.
pub struct CifarRecords {
    files: Vec<PathBuf>,
    /// The file being read, and its index in `files`.
    current: Option<(std::io::BufReader<std::fs::File>, usize)>,
    count: usize,
    /// Records read so far, and of them in the current file.
    read: usize,
    in_file: usize,
}

impl CifarRecords {
    pub fn open(path: &Path) -> Result<CifarRecords> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let files = if meta.is_dir() { batch_files(path)? } else { vec![path.to_path_buf()] };
        let mut count = 0;
        for f in &files {
            let (_, len) = crate::limits::open_regular(f)?;
            let len = len as usize;
            if len == 0 || len % RECORD_BYTES != 0 {
                return Err(Error::format(format!(
                    "{}: {len} bytes: expected a non-zero multiple of {RECORD_BYTES} (records of a label byte and a 3x32x32 image)",
                    f.display()
                )));
            }
            count += len / RECORD_BYTES;
        }
        Ok(CifarRecords { files, current: None, count, read: 0, in_file: 0 })
    }

    /// The next record's bytes into `record`, moving to the next file at the end of one.
    fn next_record(&mut self, record: &mut [u8; RECORD_BYTES]) -> Result<()> {
        loop {
            let next = match &mut self.current {
                None => 0,
                Some((reader, i)) => match reader.read_exact(record) {
                    Ok(()) => {
                        self.in_file += 1;
                        return Ok(());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => *i + 1,
                    Err(e) => return Err(Error::io(format!("reading {}", self.files[*i].display()), e)),
                },
            };
            let path = self
                .files
                .get(next)
                .ok_or_else(|| Error::format("the CIFAR-10 files ended early (changed while read?)"))?;
            let (file, _) = crate::limits::open_regular(path)?;
            self.current = Some((std::io::BufReader::new(file), next));
            self.in_file = 0;
        }
    }
}

impl RecordReader for CifarRecords {
    fn count(&self) -> usize {
        self.count
    }

    fn shape(&self) -> (u32, u32, u32) {
        (SIDE, SIDE, 3)
    }

    fn read(&mut self, k: usize, images: &mut Vec<u8>, labels: &mut Vec<u8>) -> Result<()> {
        let mut record = [0u8; RECORD_BYTES];
        for _ in 0..k.min(self.count - self.read) {
            self.next_record(&mut record)?;
            if record[0] >= CLASSES {
                let file = self.current.as_ref().map_or(Path::new(""), |(_, i)| &self.files[*i]);
                return Err(Error::format(format!(
                    "{}: record {} has label {}: expected 0..={}",
                    file.display(),
                    self.in_file - 1,
                    record[0],
                    CLASSES - 1
                )));
            }
            labels.push(record[0]);
            images.extend_from_slice(&record[1..]);
            self.read += 1;
        }
        Ok(())
    }

    fn labelled(&self) -> bool {
        true
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The batch files of a CIFAR-10 folder, in reading order.
fn batch_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let train: Vec<PathBuf> = TRAIN_BATCHES.iter().map(|name| dir.join(name)).filter(|p| p.is_file()).collect();
    if !train.is_empty() {
        return Ok(train);
    }
    let test = dir.join(TEST_BATCH);
    if test.is_file() {
        return Ok(vec![test]);
    }
    Err(Error::new(
        ErrorKind::Io,
        format!(
            "{}: no CIFAR-10 batch files in this folder (expected data_batch_1.bin .. data_batch_5.bin or {TEST_BATCH})",
            dir.display()
        ),
    ))
}

/// Appends the labels and image bytes of one batch file.
fn read_batch(path: &Path, labels: &mut Vec<u8>, images: &mut Vec<u8>) -> Result<()> {
    let bytes = crate::limits::read_regular(path, crate::limits::MAX_FILE_BYTES, "a CIFAR-10 batch")?;
    if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
        return Err(Error::format(format!(
            "{}: {} bytes: expected a non-zero multiple of {RECORD_BYTES} (records of a label byte and a 3x32x32 image)",
            path.display(),
            bytes.len()
        )));
    }
    crate::limits::reserve(labels, bytes.len() / RECORD_BYTES, "the labels")?;
    crate::limits::reserve(images, bytes.len() / RECORD_BYTES * IMAGE_BYTES, "the images")?;
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if label >= CLASSES {
            return Err(Error::format(format!(
                "{}: record {i} has label {label}: expected 0..={}",
                path.display(),
                CLASSES - 1
            )));
        }
        labels.push(label);
        images.extend_from_slice(&record[1..]);
    }
    Ok(())
}
