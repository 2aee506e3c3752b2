//! Image files as GAN datasets ship them: a folder tree, or a zip archive in StyleGAN2-ADA's
//! layout (`dataset_tool.py`: PNG files in numbered subfolders and a `dataset.json` of labels).
//! Listed up front (names only, sorted) and read one file at a time, so a pack or a load never
//! holds more than one encoded image.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// File extensions read (compared case-insensitively).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];
/// Folders nested deeper than this are not entered (a guard against link loops and traps).
const MAX_DEPTH: usize = 32;
/// The most image files one source lists.
pub const MAX_FILES: usize = 1 << 26;
/// StyleGAN2-ADA's label file, at the top of the folder or archive.
const LABELS_FILE: &str = "dataset.json";

/// Where a source's labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FolderLabels {
    /// `dataset.json` when the folder or archive has one (StyleGAN2-ADA's `{"labels": [[name,
    /// label], ...]}`), else none.
    #[default]
    Auto,
    /// The class subfolder: each image's label is the index of the first-level folder it is in,
    /// folders in name order (torchvision's ImageFolder). Images at the top level are refused.
    Classes,
    /// No labels.
    None,
}

enum Files {
    Folder(PathBuf),
    Zip(Box<zip::ZipArchive<std::fs::File>>, Vec<usize>),
}

/// The image files of a folder tree or a zip archive, in name order, with their labels.
pub struct ImageSource {
    files: Files,
    /// Paths relative to the root, '/'-separated.
    names: Vec<String>,
    labels: Option<Vec<u8>>,
    /// How the labels were found ("dataset.json", "class folders").
    labels_from: Option<&'static str>,
    /// Class names (the folders) under `FolderLabels::Classes`.
    classes: Vec<String>,
}

fn is_image(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

impl ImageSource {
    /// Lists the images of `path`: a folder (read recursively) or a `.zip` file.
    ///
    /// # Errors
    /// `Io` when it cannot be read; `Format` for an archive that is not a zip, or a
    /// `dataset.json` that does not parse, names a file that is not there, misses an image or
    /// has a label outside 0..=255; `InvalidArgument` when there are no images, more than
    /// [`MAX_FILES`], or images outside class folders under [`FolderLabels::Classes`].
    pub fn open(path: &Path, labels: FolderLabels) -> Result<ImageSource> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let mut source = if meta.is_dir() { Self::folder(path)? } else { Self::zip(path)? };
        if source.names.is_empty() {
            return Err(Error::invalid(format!(
                "{}: no .png, .jpg or .jpeg files in it (at any depth)",
                path.display()
            )));
        }
        match labels {
            FolderLabels::None => {}
            FolderLabels::Auto => {
                if let Some(json) = source.read_named(LABELS_FILE)? {
                    source.labels = Self::dataset_json(&json, &source.names, path)?;
                    source.labels_from = source.labels.as_ref().map(|_| LABELS_FILE);
                }
            }
            FolderLabels::Classes => source.class_folders(path)?,
        }
        Ok(source)
    }

    fn folder(root: &Path) -> Result<ImageSource> {
        let mut names = Vec::new();
        walk(root, "", 0, &mut names)?;
        sort_paths(&mut names);
        Ok(ImageSource {
            files: Files::Folder(root.to_path_buf()),
            names,
            labels: None,
            labels_from: None,
            classes: vec![],
        })
    }

    fn zip(path: &Path) -> Result<ImageSource> {
        let (file, _) = crate::limits::open_regular(path)?;
        let archive = zip::ZipArchive::new(file)
            .map_err(|e| Error::format(format!("{}: not a zip archive: {e}", path.display())))?;
        let mut entries: Vec<(String, usize)> = Vec::new();
        for i in 0..archive.len() {
            let Some(Ok(name)) = archive.name_for_index(i) else { continue };
            if !name.ends_with('/') && is_image(&name) {
                if entries.len() == MAX_FILES {
                    return Err(Error::invalid(format!("{}: more than {MAX_FILES} images", path.display())));
                }
                entries.push((name.to_string(), i));
            }
        }
        entries.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
        let (names, index) = entries.into_iter().unzip();
        Ok(ImageSource {
            files: Files::Zip(Box::new(archive), index),
            names,
            labels: None,
            labels_from: None,
            classes: vec![],
        })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no images (never, for an opened source).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Image `i`'s path relative to the root.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// One label per image, when the source has them.
    pub fn labels(&self) -> Option<&[u8]> {
        self.labels.as_deref()
    }

    /// Where the labels came from, when there are any.
    pub fn labels_from(&self) -> Option<&'static str> {
        self.labels_from
    }

    /// The class folders' names, in label order, under `FolderLabels::Classes`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Image `i`'s file bytes (at most `limits::MAX_FILE_BYTES`).
    pub fn read(&mut self, i: usize) -> Result<Vec<u8>> {
        let name = &self.names[i];
        match &mut self.files {
            Files::Folder(root) => {
                crate::limits::read_regular(&root.join(name), crate::limits::MAX_FILE_BYTES, "an image file")
            }
            Files::Zip(archive, index) => read_entry(archive, index[i], name),
        }
    }

    /// The bytes of the top-level file `name`, if there is one.
    fn read_named(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        match &mut self.files {
            Files::Folder(root) => {
                let p = root.join(name);
                if p.is_file() {
                    Ok(Some(crate::limits::read_regular(&p, crate::limits::MAX_FILE_BYTES, name)?))
                } else {
                    Ok(None)
                }
            }
            Files::Zip(archive, _) => match archive.index_for_name(name) {
                Some(i) => Ok(Some(read_entry(archive, i, name)?)),
                None => Ok(None),
            },
        }
    }

    /// StyleGAN2-ADA's labels: `{"labels": [[name, label], ...]}` (or `"labels": null`).
    fn dataset_json(json: &[u8], names: &[String], root: &Path) -> Result<Option<Vec<u8>>> {
        let bad = |why: String| Error::format(format!("{}: {LABELS_FILE}: {why}", root.display()));
        let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(format!("not JSON: {e}")))?;
        let list = match v.get("labels") {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::Array(a)) => a,
            Some(_) => return Err(bad("\"labels\" is not a list".into())),
        };
        let mut by_name = std::collections::HashMap::with_capacity(list.len());
        for (k, pair) in list.iter().enumerate() {
            let (Some(name), Some(label)) =
                (pair.get(0).and_then(|n| n.as_str()), pair.get(1).and_then(|l| l.as_i64()))
            else {
                return Err(bad(format!("entry {k} is not [file name, integer label]")));
            };
            let label = u8::try_from(label)
                .map_err(|_| bad(format!("the label of {name} is {label}: labels must be in 0..=255")))?;
            by_name.insert(name.replace('\\', "/"), label);
        }
        names
            .iter()
            .map(|n| by_name.get(n).copied().ok_or_else(|| bad(format!("no label for {n}"))))
            .collect::<Result<Vec<u8>>>()
            .map(Some)
    }

    /// ImageFolder's labels: the first path component, indexed in name order.
    fn class_folders(&mut self, root: &Path) -> Result<()> {
        let mut classes: Vec<String> = Vec::new();
        let mut labels = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let Some((class, _)) = name.split_once('/') else {
                return Err(Error::invalid(format!(
                    "{}: {name} is not in a class folder (labels from class folders: one subfolder per class)",
                    root.display()
                )));
            };
            // Names are sorted folder by folder, so the classes appear in name order.
            if classes.last().map(String::as_str) != Some(class) {
                classes.push(class.to_string());
            }
            labels.push(classes.len() - 1);
        }
        if classes.len() > 256 {
            return Err(Error::invalid(format!("{}: {} class folders: at most 256", root.display(), classes.len())));
        }
        self.labels = Some(labels.into_iter().map(|l| l as u8).collect());
        self.labels_from = Some("class folders");
        self.classes = classes;
        Ok(())
    }
}

/// Sorts '/'-separated paths folder by folder (so "cat/1.png" comes before "cat-x/1.png", as
/// the folder names "cat" < "cat-x" sort).
fn sort_paths(names: &mut [String]) {
    names.sort_by(|a, b| a.split('/').cmp(b.split('/')));
}

/// Entry `i` of a zip archive, read whole but never past `limits::MAX_FILE_BYTES` (whatever its
/// header claims).
fn read_entry(archive: &mut zip::ZipArchive<std::fs::File>, i: usize, name: &str) -> Result<Vec<u8>> {
    let limit = crate::limits::MAX_FILE_BYTES;
    let entry = archive.by_index(i).map_err(|e| Error::format(format!("{name} in the archive: {e}")))?;
    if entry.size() > limit {
        return Err(Error::format(format!("{name} in the archive is {} bytes: more than {limit}", entry.size())));
    }
    let mut bytes = crate::limits::vec_with_capacity(entry.size() as usize, name)?;
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::format(format!("{name} in the archive does not decompress: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(Error::format(format!("{name} in the archive is more than {limit} bytes")));
    }
    Ok(bytes)
}

/// Adds the image files under `dir` (relative names with `prefix`) to `names`. Links to
/// folders are not followed (a loop would never end); links to files are read.
fn walk(dir: &Path, prefix: &str, depth: usize, names: &mut Vec<String>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid(format!("{}: folders nested deeper than {MAX_DEPTH}", dir.display())));
    }
    let io_err = |e| Error::io(format!("reading folder {}", dir.display()), e);
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let kind = entry.file_type().map_err(io_err)?;
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        if kind.is_dir() {
            walk(&entry.path(), &rel, depth + 1, names)?;
        } else if is_image(&name) && entry.path().is_file() {
            if names.len() == MAX_FILES {
                return Err(Error::invalid(format!("more than {MAX_FILES} images")));
            }
            names.push(rel);
        }
    }
    Ok(())
}
