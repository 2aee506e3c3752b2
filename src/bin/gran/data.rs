//! Finding and loading data: which loader of `gran::data` a path needs, and which split.

use crate::opts::{DataArgs, Format, ImageFileArgs, Stream};

/// How a streamed source is described.
const STREAMED: &str = "read from the file as training goes";
use gran::data::{load_cifar10, load_idx, load_image_source, load_npy, Fit, FolderLabels, ImageShape};
use gran::{Dataset, Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Training images (train-*, data_batch_*).
    Train,
    /// Held-out images (t10k-*, test_batch.bin).
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "training",
            Split::Test => "held-out",
        }
    }
}

/// A loaded set and where it came from.
pub struct Loaded {
    pub data: Dataset,
    pub source: String,
}

/// IDX image files of one split in a folder: the first of these names that exists.
fn idx_images(dir: &Path, split: Split) -> Option<PathBuf> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    [format!("{prefix}-images-idx3-ubyte"), format!("{prefix}-images-idx3-ubyte.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// The labels beside an IDX image file (`...images-idx3...` -> `...labels-idx1...`), if present.
fn idx_labels(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    let labels = images.with_file_name(name.replace("images-idx3", "labels-idx1"));
    (labels != images && labels.is_file()).then_some(labels)
}

fn has_cifar(dir: &Path) -> bool {
    (1..=5).any(|i| dir.join(format!("data_batch_{i}.bin")).is_file()) || dir.join("test_batch.bin").is_file()
}

fn missing(path: &Path) -> Error {
    Error::new(ErrorKind::Io, format!("{}: no such file or folder", path.display()))
}

/// What `path` holds when `--format auto`.
pub fn detect(path: &Path) -> Result<Format> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing(path),
        _ => Error::io(path.display(), e),
    })?;
    if meta.is_dir() {
        if idx_images(path, Split::Train).is_some() || idx_images(path, Split::Test).is_some() {
            Ok(Format::Idx)
        } else if has_cifar(path) {
            Ok(Format::Cifar)
        } else {
            Ok(Format::Images)
        }
    } else if path.extension().is_some_and(|e| e == "bin") {
        Ok(Format::Cifar)
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        Ok(Format::Images)
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        Ok(Format::Npy)
    } else {
        Ok(Format::Idx)
    }
}

/// The training split of an IDX or CIFAR-10 source, as records read front to back (`gran
/// pack`); `None` for the other formats.
pub fn records(path: &Path, format: Format) -> Result<Option<Box<dyn gran::data::RecordReader>>> {
    Ok(match format {
        Format::Idx => {
            let images = if path.is_dir() {
                idx_images(path, Split::Train).ok_or_else(|| {
                    Error::invalid(format!("{}: no train-images-idx3-ubyte[.gz] in this folder", path.display()))
                })?
            } else {
                path.to_path_buf()
            };
            let labels = idx_labels(&images);
            Some(Box::new(gran::data::IdxRecords::open(&images, labels.as_deref())?))
        }
        Format::Cifar => Some(Box::new(gran::data::CifarRecords::open(path)?)),
        _ => None,
    })
}

/// Loads one split of `args.data`. `shape`: (height, width, channels) an image folder is resized
/// to when --image-size / --channels do not say.
pub fn load(args: &DataArgs, split: Split, shape: (u32, u32, u32)) -> Result<Loaded> {
    let path = &args.data;
    let format = match args.format {
        Format::Auto => detect(path)?,
        f => f,
    };
    let shown = path.display();
    let (data, source) = match format {
        Format::Idx if path.is_dir() => {
            let images = idx_images(path, split).ok_or_else(|| {
                let which = if split == Split::Train { "train" } else { "t10k" };
                Error::invalid(format!(
                    "{shown}: no {} split ({which}-images-idx3-ubyte[.gz]) in this folder",
                    split.name()
                ))
            })?;
            let labels = idx_labels(&images);
            (load_idx(&images, labels.as_deref())?, images.display().to_string())
        }
        Format::Idx => (load_idx(path, idx_labels(path).as_deref())?, shown.to_string()),
        Format::Cifar if path.is_dir() && split == Split::Test => {
            let test = path.join("test_batch.bin");
            if !test.is_file() {
                return Err(Error::invalid(format!(
                    "{shown}: no held-out split (test_batch.bin) in this CIFAR-10 folder"
                )));
            }
            (load_cifar10(&test)?, test.display().to_string())
        }
        Format::Cifar => (load_cifar10(path)?, shown.to_string()),
        Format::Images => {
            let side = args.files.image_size.unwrap_or(shape.0);
            let shape = image_shape(&args.files, side, args.files.channels.unwrap_or(shape.2));
            let labels = if args.files.class_folders { FolderLabels::Classes } else { FolderLabels::Auto };
            match args.stream {
                Stream::On => (Dataset::open_image_source(path, shape, labels)?, format!("{shown}, {STREAMED}")),
                _ => (load_image_source(path, shape, labels)?, shown.to_string()),
            }
        }
        Format::Npy if args.stream == Stream::Off => (load_npy(path)?, shown.to_string()),
        Format::Npy => (Dataset::open_npy(path)?, format!("{shown}, {STREAMED}")),
        Format::Auto => unreachable!("resolved above"),
    };
    let data = match args.limit {
        Some(n) if (n as usize) < data.count() => data.subset(0, n as usize)?,
        _ => data,
    };
    Ok(Loaded { data, source })
}

/// The shape image files are decoded to: `side x side`, `channels`, cropped or stretched as
/// `args` say.
pub fn image_shape(args: &ImageFileArgs, side: u32, channels: u32) -> ImageShape {
    let fit = if args.center_crop { Fit::CenterCrop } else { Fit::Stretch };
    ImageShape { height: side, width: side, channels, fit }
}

/// "9000 images of 28x28x1, labelled (10 classes)".
pub fn describe(d: &Dataset) -> String {
    let labels = match d.labels() {
        Some(l) => format!(", labelled ({} classes)", l.iter().max().map_or(0, |&m| m as usize + 1)),
        None => ", no labels".into(),
    };
    format!("{} images of {}x{}x{}{labels}", d.count(), d.height(), d.width(), d.channels())
}

pub fn to_json(d: &Dataset) -> serde_json::Value {
    serde_json::json!({
        "count": d.count(), "height": d.height(), "width": d.width(), "channels": d.channels(),
        "labelled": d.labels().is_some(),
        "classes": d.labels().and_then(|l| l.iter().max().map(|&m| m as usize + 1)),
    })
}
