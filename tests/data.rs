//! Data loading, pixel conversion and PNG grids, through the public API.

use gran::data::pixels::{self, PixelFormat};
use gran::data::RecordReader;
use gran::data::{load_cifar10, load_idx, load_images, Dataset};
use gran::png;
use gran::ErrorKind;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// A fresh folder under the system temp folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gran-data-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mnist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k").join(name)
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open")).read_to_end(&mut out).expect("gunzip");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn kind_of<T: std::fmt::Debug>(r: gran::Result<T>) -> ErrorKind {
    r.expect_err("expected an error").kind
}

fn byte_at(t: &Tensor, idx: &[i64]) -> i64 {
    t.int64_value(idx)
}

// ---------------------------------------------------------------------------------- MNIST IDX

#[test]
fn mnist_train_and_test_sets() {
    let train =
        load_idx(&mnist("train-images-idx3-ubyte.gz"), Some(&mnist("train-labels-idx1-ubyte.gz"))).expect("train");
    assert_eq!((train.count(), train.channels(), train.height(), train.width()), (9000, 1, 28, 28));
    assert_eq!(train.image_len(), 784);
    assert_eq!(train.images().unwrap().size(), vec![9000, 1, 28, 28]);
    assert_eq!(train.images().unwrap().kind(), Kind::Uint8);
    let labels = train.labels().expect("labels");
    assert_eq!(labels.len(), 9000);
    for class in 0..10u8 {
        assert!(labels.contains(&class), "class {class} missing");
    }
    assert!(labels.iter().all(|&l| l < 10));

    let floats = train.float_images(Device::Cpu).expect("floats");
    assert_eq!(floats.size(), vec![9000, 1, 28, 28]);
    assert_eq!(floats.kind(), Kind::Float);
    let mean = floats.mean(Kind::Float).double_value(&[]);
    assert!((0.10..0.16).contains(&mean), "pixel mean {mean}");
    assert!(floats.min().double_value(&[]) >= 0.0 && floats.max().double_value(&[]) <= 1.0);

    let test = load_idx(&mnist("t10k-images-idx3-ubyte.gz"), Some(&mnist("t10k-labels-idx1-ubyte.gz"))).expect("test");
    assert_eq!((test.count(), test.channels(), test.height(), test.width()), (1000, 1, 28, 28));
    assert_eq!(test.labels().map(<[u8]>::len), Some(1000));

    let unlabelled = load_idx(&mnist("t10k-images-idx3-ubyte.gz"), None).expect("no labels");
    assert!(unlabelled.labels().is_none());
}

#[test]
fn mnist_plain_equals_gzip() {
    let tmp = TempDir::new("mnist_plain");
    let images = tmp.write("images", &gunzip(&mnist("t10k-images-idx3-ubyte.gz")));
    let labels = tmp.write("labels.gz-not-really", &gunzip(&mnist("t10k-labels-idx1-ubyte.gz")));
    let plain = load_idx(&images, Some(&labels)).expect("plain");
    let gz = load_idx(&mnist("t10k-images-idx3-ubyte.gz"), Some(&mnist("t10k-labels-idx1-ubyte.gz"))).expect("gz");
    assert!(plain.images().unwrap().equal(gz.images().unwrap()));
    assert_eq!(plain.labels(), gz.labels());

    // Compression is recognised by content: a gzip file named without .gz loads too.
    let renamed = tmp.write("images-plain-name", &std::fs::read(mnist("t10k-images-idx3-ubyte.gz")).unwrap());
    assert!(load_idx(&renamed, None).expect("renamed").images().unwrap().equal(gz.images().unwrap()));
}

#[test]
fn mnist_corrupt_files_are_format_errors() {
    let tmp = TempDir::new("mnist_corrupt");
    let images = gunzip(&mnist("t10k-images-idx3-ubyte.gz"));
    let labels_path = mnist("t10k-labels-idx1-ubyte.gz");
    for cut in [0, 3, 10, 16, 17, 16 + 784, images.len() - 1] {
        let p = tmp.write(&format!("cut{cut}"), &images[..cut]);
        let err = load_idx(&p, None).expect_err("truncated");
        assert_eq!(err.kind, ErrorKind::Format, "cut at {cut}: {err}");
        // Truncated gzip files too.
        let pz = tmp.write(&format!("cut{cut}.gz"), &gzip(&images[..cut]));
        assert_eq!(kind_of(load_idx(&pz, None)), ErrorKind::Format, "gzip cut at {cut}");
    }
    let msg = load_idx(&tmp.path(&format!("cut{}", 16 + 784)), None).unwrap_err().message;
    assert!(msg.contains("784000") && msg.contains("784"), "{msg}");

    // Trailing data.
    let mut longer = images.clone();
    longer.push(0);
    assert_eq!(kind_of(load_idx(&tmp.write("long", &longer), None)), ErrorKind::Format);

    // Wrong magic: labels given as images, images given as labels.
    assert_eq!(kind_of(load_idx(&labels_path, None)), ErrorKind::Format);
    let imgs = mnist("t10k-images-idx3-ubyte.gz");
    assert_eq!(kind_of(load_idx(&imgs, Some(&imgs))), ErrorKind::Format);

    // Label count mismatch: 1000 images, 9000 labels.
    let err = load_idx(&imgs, Some(&mnist("train-labels-idx1-ubyte.gz"))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Format);
    assert!(err.message.contains("9000") && err.message.contains("1000"), "{}", err.message);

    // Gzip magic followed by garbage; a gzip file cut short.
    let garbage = tmp.write("garbage.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert_eq!(kind_of(load_idx(&garbage, None)), ErrorKind::Format);
    let gz = std::fs::read(&imgs).unwrap();
    let short = tmp.write("short.gz", &gz[..gz.len() / 2]);
    assert_eq!(kind_of(load_idx(&short, None)), ErrorKind::Format);
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    assert_eq!(kind_of(load_idx(&tmp.write("flipped.gz", &flipped), None)), ErrorKind::Format);

    // Forged headers: absurd sizes and zero dimensions are refused before reading any payload.
    let header = |n: u32, r: u32, c: u32| [0x803u32, n, r, c].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    for (n, r, c) in [(u32::MAX, u32::MAX, u32::MAX), (70_000, 256, 256), (0, 28, 28), (1, 0, 28), (1, 28, 0)] {
        let p = tmp.write("forged", &header(n, r, c));
        assert_eq!(kind_of(load_idx(&p, None)), ErrorKind::Format, "{n}x{r}x{c}");
    }
    // A valid tiny file: 2 images of 1x2.
    let mut tiny = header(2, 1, 2);
    tiny.extend_from_slice(&[0, 255, 128, 7]);
    let d = load_idx(&tmp.write("tiny", &tiny), None).expect("tiny");
    assert_eq!(d.images().unwrap().size(), vec![2, 1, 1, 2]);
    assert_eq!(byte_at(d.images().unwrap(), &[1, 0, 0, 1]), 7);
}

#[test]
fn mnist_missing_file_is_io() {
    let missing = mnist("no-such-file.gz");
    let err = load_idx(&missing, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(err.message.contains("no-such-file.gz"), "{}", err.message);
    let err = load_idx(&mnist("t10k-images-idx3-ubyte.gz"), Some(&missing)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
}

// ------------------------------------------------------------------------------------ CIFAR-10

/// `n` CIFAR records: record i has label `labels[i]` and pixel (c, y, x) = (i + c * 7 + y + x) % 256.
fn cifar_records(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        out.push(label);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    out.push(((i + c * 7 + y + x) % 256) as u8);
                }
            }
        }
    }
    out
}

#[test]
fn cifar_single_file() {
    let tmp = TempDir::new("cifar_file");
    let p = tmp.write("batch.bin", &cifar_records(&[3, 0, 9, 1, 5]));
    let d = load_cifar10(&p).expect("cifar");
    assert_eq!(d.images().unwrap().size(), vec![5, 3, 32, 32]);
    assert_eq!(d.images().unwrap().kind(), Kind::Uint8);
    assert_eq!(d.labels(), Some(&[3u8, 0, 9, 1, 5][..]));
    for &(n, c, y, x) in &[(0i64, 0i64, 0i64, 0i64), (2, 1, 5, 30), (4, 2, 31, 31), (3, 2, 10, 0)] {
        assert_eq!(byte_at(d.images().unwrap(), &[n, c, y, x]), (n + c * 7 + y + x) % 256, "[{n},{c},{y},{x}]");
    }
}

#[test]
fn cifar_bad_files() {
    let tmp = TempDir::new("cifar_bad");
    let good = cifar_records(&[1, 2]);
    assert_eq!(kind_of(load_cifar10(&tmp.write("short.bin", &good[..good.len() - 1]))), ErrorKind::Format);
    assert_eq!(kind_of(load_cifar10(&tmp.write("empty.bin", &[]))), ErrorKind::Format);
    let err = load_cifar10(&tmp.write("label.bin", &cifar_records(&[1, 10]))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Format);
    assert!(err.message.contains("record 1") && err.message.contains("10"), "{}", err.message);
    assert_eq!(kind_of(load_cifar10(&tmp.path("missing.bin"))), ErrorKind::Io);
}

#[test]
fn cifar_folder() {
    let tmp = TempDir::new("cifar_dir");
    // No batches yet.
    assert_eq!(kind_of(load_cifar10(&tmp.0)), ErrorKind::Io);
    // Only the test batch: it is used.
    tmp.write("test_batch.bin", &cifar_records(&[7]));
    assert_eq!(load_cifar10(&tmp.0).expect("test batch").labels(), Some(&[7u8][..]));
    // Training batches present (with a gap): they are used, in order, and the test batch is not.
    tmp.write("data_batch_3.bin", &cifar_records(&[4, 5, 6]));
    tmp.write("data_batch_1.bin", &cifar_records(&[1, 2]));
    let d = load_cifar10(&tmp.0).expect("folder");
    assert_eq!(d.count(), 5);
    assert_eq!(d.labels(), Some(&[1u8, 2, 4, 5, 6][..]));
    // Record 0 of data_batch_3 (image 2 overall) was generated with i = 0.
    assert_eq!(byte_at(d.images().unwrap(), &[2, 1, 3, 4]), 7 + 3 + 4);
}

/// All of a record source's images and labels, read `k` at a time.
fn read_all(r: &mut dyn gran::data::RecordReader, k: usize) -> gran::Result<(Vec<u8>, Vec<u8>)> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let mut left = r.count();
    while left > 0 {
        r.read(k, &mut images, &mut labels)?;
        left -= k.min(left);
    }
    r.finish()?;
    Ok((images, labels))
}

/// CIFAR-10 and IDX read a chunk at a time (`gran pack`) give the bytes and labels the whole
/// loaders give, across file boundaries and chunks that straddle them; bad records are
/// refused as the loaders refuse them.
#[test]
fn record_readers_read_what_the_loaders_load() {
    let tmp = TempDir::new("records");
    tmp.write("data_batch_1.bin", &cifar_records(&[1, 2, 3]));
    tmp.write("data_batch_2.bin", &cifar_records(&[4, 5]));
    let whole = load_cifar10(&tmp.0).unwrap();
    let mut r = gran::data::CifarRecords::open(&tmp.0).unwrap();
    assert_eq!((r.count(), r.shape(), r.labelled()), (5, (32, 32, 3), true));
    let (images, labels) = read_all(&mut r, 2).unwrap();
    assert_eq!(Some(&labels[..]), whole.labels());
    assert_eq!(images, Vec::<u8>::try_from(whole.images().unwrap().flatten(0, -1)).unwrap());
    let bad = tmp.write("bad.bin", &cifar_records(&[1, 10]));
    let e = read_all(&mut gran::data::CifarRecords::open(&bad).unwrap(), 4).unwrap_err();
    assert!(e.kind == ErrorKind::Format && e.message.contains("record 1"), "{}", e.message);
    let short = tmp.write("short.bin", &cifar_records(&[1])[..100]);
    assert_eq!(gran::data::CifarRecords::open(&short).err().map(|e| e.kind), Some(ErrorKind::Format));

    let (ip, lp) = (mnist("t10k-images-idx3-ubyte.gz"), mnist("t10k-labels-idx1-ubyte.gz"));
    let whole = load_idx(&ip, Some(&lp)).unwrap();
    let mut r = gran::data::IdxRecords::open(&ip, Some(&lp)).unwrap();
    assert_eq!((r.count(), r.shape()), (1000, (28, 28, 1)));
    let (images, labels) = read_all(&mut r, 300).unwrap();
    assert_eq!(Some(&labels[..]), whole.labels());
    assert_eq!(images, Vec::<u8>::try_from(whole.images().unwrap().flatten(0, -1)).unwrap());
    // A plain IDX file with one image fewer than its header declares, or one more.
    let raw = |n: u32, extra: usize| {
        let mut v = vec![0, 0, 8, 3];
        for d in [n, 2, 2] {
            v.extend(d.to_be_bytes());
        }
        v.extend(vec![7u8; (n as usize) * 4 + extra]);
        v
    };
    let truncated = tmp.write("short-idx", &raw(3, 0)[..16 + 8]);
    let e = read_all(&mut gran::data::IdxRecords::open(&truncated, None).unwrap(), 2).unwrap_err();
    assert!(e.kind == ErrorKind::Format && e.message.contains("truncated"), "{}", e.message);
    let long = tmp.write("long-idx", &raw(3, 4));
    let e = read_all(&mut gran::data::IdxRecords::open(&long, None).unwrap(), 2).unwrap_err();
    assert!(e.kind == ErrorKind::Format && e.message.contains("holds more"), "{}", e.message);
}

// --------------------------------------------------------------------------------- image files

fn solid(w: u32, h: u32, rgb: [u8; 3]) -> image::RgbImage {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
}

#[test]
fn image_folder() {
    let tmp = TempDir::new("images");
    solid(10, 6, [255, 0, 0]).save(tmp.path("a_red.png")).expect("png");
    solid(7, 9, [0, 255, 0]).save_with_format(tmp.path("b_green.JPG"), image::ImageFormat::Jpeg).expect("jpg");
    solid(3, 3, [0, 0, 255]).save_with_format(tmp.path("c_blue.jpeg"), image::ImageFormat::Jpeg).expect("jpeg");
    tmp.write("notes.txt", b"not an image");
    std::fs::create_dir(tmp.path("sub.png")).expect("subfolder");

    let rgb = load_images(&tmp.0, 8, 8, 3).expect("rgb");
    assert_eq!(rgb.images().unwrap().size(), vec![3, 3, 8, 8]);
    assert!(rgb.labels().is_none());
    let expect = [[255, 0, 0], [0, 255, 0], [0, 0, 255]];
    for (n, colour) in expect.iter().enumerate() {
        for (c, &v) in colour.iter().enumerate() {
            for &(y, x) in &[(0, 0), (4, 3), (7, 7)] {
                let got = byte_at(rgb.images().unwrap(), &[n as i64, c as i64, y, x]);
                let tolerance = if n == 0 { 0 } else { 8 }; // PNG is exact, JPEG approximate
                assert!((got - v).abs() <= tolerance, "image {n} channel {c} at ({y},{x}): {got}, expected {v}");
            }
        }
    }

    let grey = load_images(&tmp.0, 8, 8, 1).expect("grey");
    assert_eq!(grey.images().unwrap().size(), vec![3, 1, 8, 8]);
    // Rec. 709 luma of pure red: 0.2126 * 255.
    assert_eq!(byte_at(grey.images().unwrap(), &[0, 0, 5, 5]), 54);
}

#[test]
fn image_folder_errors() {
    let tmp = TempDir::new("images_bad");
    let err = load_images(&tmp.0, 8, 8, 3).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains(&*tmp.0.to_string_lossy()), "{}", err.message);

    solid(4, 4, [1, 2, 3]).save(tmp.path("ok.png")).expect("png");
    tmp.write("broken.png", b"\x89PNG but not really");
    let err = load_images(&tmp.0, 8, 8, 3).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Format);
    assert!(err.message.contains("broken.png"), "{}", err.message);

    for (h, w, c) in [(0, 8, 3), (8, 0, 3), (4097, 8, 3), (8, 8, 2), (8, 8, 4)] {
        assert_eq!(kind_of(load_images(&tmp.0, h, w, c)), ErrorKind::InvalidArgument, "{h}x{w}x{c}");
    }
    assert_eq!(kind_of(load_images(&tmp.path("missing"), 8, 8, 3)), ErrorKind::Io);
}

// ------------------------------------------------------- folder trees, zips, class folders, npy

fn png_bytes(img: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

/// A zip in StyleGAN2-ADA's dataset_tool layout: images in numbered folders, dataset.json labels
/// (listed in another order than the archive's entries).
fn stylegan_zip(path: &Path, labels: Option<&str>) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, rgb) in [
        ("00001/img00001000.png", [0, 0, 255]),
        ("00000/img00000000.png", [255, 0, 0]),
        ("00000/img00000001.png", [0, 255, 0]),
    ] {
        z.start_file(name, opts).unwrap();
        z.write_all(&png_bytes(&solid(4, 4, rgb))).unwrap();
    }
    z.start_file("readme.txt", opts).unwrap();
    z.write_all(b"not an image").unwrap();
    if let Some(json) = labels {
        z.start_file("dataset.json", opts).unwrap();
        z.write_all(json.as_bytes()).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn a_stylegan_zip_loads_in_name_order_with_its_labels() {
    use gran::data::{load_image_source, Fit, FolderLabels, ImageShape};
    let tmp = TempDir::new("zip");
    let json =
        r#"{"labels": [["00001/img00001000.png", 2], ["00000/img00000000.png", 0], ["00000/img00000001.png", 7]]}"#;
    let zip = tmp.path("set.zip");
    stylegan_zip(&zip, Some(json));
    let shape = ImageShape { height: 4, width: 4, channels: 3, fit: Fit::Stretch };
    let d = load_image_source(&zip, shape, FolderLabels::Auto).unwrap();
    assert_eq!(d.count(), 3);
    assert_eq!(d.labels(), Some(&[0u8, 7, 2][..]));
    // Red, green, blue: the order of the names, exact (PNG, no resize).
    for (n, c) in [(0, 0), (1, 1), (2, 2)] {
        assert_eq!(byte_at(d.images().unwrap(), &[n, c, 3, 3]), 255, "image {n}");
    }
    assert!(load_image_source(&zip, shape, FolderLabels::None).unwrap().labels().is_none());

    // Unzipped, the same set loads the same from the folder tree (dataset.json included).
    let dir = tmp.path("unzipped");
    for (i, rgb) in [[255, 0, 0], [0, 255, 0]].iter().enumerate() {
        std::fs::create_dir_all(dir.join("00000")).unwrap();
        solid(4, 4, *rgb).save(dir.join(format!("00000/img0000000{i}.png"))).unwrap();
    }
    std::fs::create_dir_all(dir.join("00001")).unwrap();
    solid(4, 4, [0, 0, 255]).save(dir.join("00001/img00001000.png")).unwrap();
    std::fs::write(dir.join("dataset.json"), json).unwrap();
    let f = load_images(&dir, 4, 4, 3).unwrap();
    assert!(f.images().unwrap().equal(d.images().unwrap()) && f.labels() == d.labels());

    // A label file that misses an image, or holds a label past a byte, and archives that are not.
    stylegan_zip(&zip, Some(r#"{"labels": [["00000/img00000000.png", 0]]}"#));
    let e = load_image_source(&zip, shape, FolderLabels::Auto).unwrap_err();
    assert!(e.kind == ErrorKind::Format && e.message.contains("no label for 00000/img00000001.png"), "{}", e.message);
    stylegan_zip(&zip, Some(r#"{"labels": [["00000/img00000000.png", 300]]}"#));
    assert!(load_image_source(&zip, shape, FolderLabels::Auto).unwrap_err().message.contains("0..=255"));
    stylegan_zip(&zip, Some(r#"{"labels": null}"#));
    assert!(load_image_source(&zip, shape, FolderLabels::Auto).unwrap().labels().is_none());
    let not_zip = tmp.write("fake.zip", b"PK\x03\x04 and then nothing");
    assert_eq!(kind_of(load_image_source(&not_zip, shape, FolderLabels::Auto)), ErrorKind::Format);
    let empty = tmp.path("empty.zip");
    zip::ZipWriter::new(std::fs::File::create(&empty).unwrap()).finish().unwrap();
    let e = load_image_source(&empty, shape, FolderLabels::Auto).unwrap_err();
    assert!(e.kind == ErrorKind::InvalidArgument && e.message.contains("no .png"), "{}", e.message);
}

#[test]
fn class_folders_label_by_folder_and_centre_crops_keep_the_middle() {
    use gran::data::{load_image_source, Fit, FolderLabels, ImageShape};
    let tmp = TempDir::new("classes");
    // Classes "cat" and "cat-x" ("cat" sorts first as a folder name), images at depth 2 too.
    for (class, file, rgb) in
        [("cat-x", "a.png", [0, 0, 255]), ("cat", "deep/b.png", [255, 0, 0]), ("cat", "a.png", [0, 255, 0])]
    {
        let p = tmp.path(class).join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        solid(4, 4, rgb).save(p).unwrap();
    }
    let shape = ImageShape { height: 4, width: 4, channels: 3, fit: Fit::Stretch };
    let d = load_image_source(&tmp.0, shape, FolderLabels::Classes).unwrap();
    // cat/a.png (green), cat/deep/b.png (red), cat-x/a.png (blue).
    assert_eq!(d.labels(), Some(&[0u8, 0, 1][..]));
    assert_eq!(
        (
            byte_at(d.images().unwrap(), &[0, 1, 0, 0]),
            byte_at(d.images().unwrap(), &[1, 0, 0, 0]),
            byte_at(d.images().unwrap(), &[2, 2, 0, 0])
        ),
        (255, 255, 255)
    );
    // An image outside the class folders is refused under class labels.
    solid(4, 4, [1, 1, 1]).save(tmp.path("stray.png")).unwrap();
    let e = load_image_source(&tmp.0, shape, FolderLabels::Classes).unwrap_err();
    assert!(e.kind == ErrorKind::InvalidArgument && e.message.contains("stray.png"), "{}", e.message);

    // A 6x2 image: red, then white 2x2 in the middle, then blue. The centre crop to a square
    // keeps the white middle; stretching keeps all three.
    let crop = TempDir::new("crop");
    let mut img = solid(6, 2, [255, 0, 0]);
    for y in 0..2 {
        for x in 2..4 {
            img.put_pixel(x, y, image::Rgb([255, 255, 255]));
        }
        for x in 4..6 {
            img.put_pixel(x, y, image::Rgb([0, 0, 255]));
        }
    }
    img.save(crop.path("wide.png")).unwrap();
    let sq = ImageShape { height: 2, width: 2, channels: 3, fit: Fit::CenterCrop };
    let c = load_image_source(&crop.0, sq, FolderLabels::Auto).unwrap();
    assert!(c.images().unwrap().equal(&Tensor::full([1, 3, 2, 2], 255, (Kind::Uint8, Device::Cpu))));
    let s = load_image_source(&crop.0, ImageShape { fit: Fit::Stretch, ..sq }, FolderLabels::Auto).unwrap();
    assert!(!s.images().unwrap().equal(c.images().unwrap()));
}

// -------------------------------------------------------------------------------------- pixels

/// One 1x2 RGB image: pixel 0 is (10, 20, 30), pixel 1 is (40, 50, 60).
const HWC: [u8; 6] = [10, 20, 30, 40, 50, 60];
const CHW: [u8; 6] = [10, 40, 20, 50, 30, 60];

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn pixel_round_trips() {
    assert_eq!(pixels::bytes_per_image(PixelFormat::U8Hwc, 3, 1, 2), Ok(6));
    assert_eq!(pixels::bytes_per_image(PixelFormat::F32Chw, 3, 1, 2), Ok(24));
    // Checked, not saturated: a size past usize is an error naming the image, never usize::MAX.
    let e = pixels::bytes_per_image(PixelFormat::F32Chw, u32::MAX, u32::MAX, u32::MAX).unwrap_err();
    assert_eq!(e.kind, gran::ErrorKind::InvalidArgument);
    assert!(e.message.contains("larger than this machine can address"), "{}", e.message);
    let e = pixels::bytes_for(PixelFormat::U8Hwc, usize::MAX / 2, 3, 28, 28).unwrap_err();
    assert_eq!(e.kind, gran::ErrorKind::InvalidArgument);

    let from_hwc = pixels::to_tensor(&HWC, 1, 3, 1, 2, PixelFormat::U8Hwc).expect("hwc");
    assert_eq!(from_hwc.size(), vec![1, 3, 1, 2]);
    assert_eq!(from_hwc.kind(), Kind::Uint8);
    assert_eq!(byte_at(&from_hwc, &[0, 1, 0, 1]), 50);
    assert_eq!(pixels::from_tensor(&from_hwc, PixelFormat::U8Chw).unwrap(), CHW);

    let from_chw = pixels::to_tensor(&CHW, 1, 3, 1, 2, PixelFormat::U8Chw).expect("chw");
    assert!(from_chw.equal(&from_hwc));
    assert_eq!(pixels::from_tensor(&from_chw, PixelFormat::U8Hwc).unwrap(), HWC);

    // Through floats: bytes / 255, and back by rounding.
    let floats = from_chw.to_kind(Kind::Float) / 255.0;
    assert_eq!(pixels::from_tensor(&floats, PixelFormat::U8Hwc).unwrap(), HWC);
    assert_eq!(pixels::from_tensor(&floats, PixelFormat::U8Chw).unwrap(), CHW);
    let f32_out = f32_values(&pixels::from_tensor(&floats, PixelFormat::F32Chw).unwrap());
    for (got, &b) in f32_out.iter().zip(CHW.iter()) {
        assert!((got - f32::from(b) / 255.0).abs() < 1e-6, "{got} vs {b}");
    }
    // Uint8 tensors give F32 too.
    assert_eq!(f32_values(&pixels::from_tensor(&from_chw, PixelFormat::F32Chw).unwrap()), f32_out);

    let f32_in: Vec<f32> = CHW.iter().map(|&b| f32::from(b) / 255.0).collect();
    let t = pixels::to_tensor(&f32_bytes(&f32_in), 1, 3, 1, 2, PixelFormat::F32Chw).expect("f32");
    assert_eq!(t.kind(), Kind::Float);
    assert_eq!(pixels::from_tensor(&t, PixelFormat::U8Hwc).unwrap(), HWC);
    // An unaligned f32 buffer is fine.
    let mut shifted = vec![0u8];
    shifted.extend(f32_bytes(&f32_in));
    let t2 = pixels::to_tensor(&shifted[1..], 1, 3, 1, 2, PixelFormat::F32Chw).expect("unaligned");
    assert!(t2.equal(&t));

    // Clamping and rounding: NaN -> 0, inf -> 255.
    let odd = Tensor::from_slice(&[-0.5f32, 0.0, 0.2, 0.999, 1.7, f32::NAN, f32::INFINITY, 1.0]).view([2, 1, 2, 2]);
    assert_eq!(pixels::from_tensor(&odd, PixelFormat::U8Chw).unwrap(), [0, 0, 51, 255, 255, 0, 255, 255]);
    assert_eq!(f32_values(&pixels::from_tensor(&odd, PixelFormat::F32Chw).unwrap())[..2], [0.0, 0.0]);
}

#[test]
fn pixel_errors() {
    let inv = ErrorKind::InvalidArgument;
    assert_eq!(kind_of(pixels::to_tensor(&HWC[..5], 1, 3, 1, 2, PixelFormat::U8Hwc)), inv);
    let err = pixels::to_tensor(&HWC, 2, 3, 1, 2, PixelFormat::U8Chw).unwrap_err();
    assert!(err.message.contains("12") && err.message.contains('6'), "{}", err.message);
    assert_eq!(kind_of(pixels::to_tensor(&[], 0, 3, 1, 2, PixelFormat::U8Hwc)), inv);
    assert_eq!(kind_of(pixels::to_tensor(&HWC, 1, 2, 1, 3, PixelFormat::U8Hwc)), inv);
    assert_eq!(kind_of(pixels::to_tensor(&[], 1, 3, 0, 2, PixelFormat::U8Hwc)), inv);

    let mut values = [0.5f32; 6];
    values[3] = f32::NAN;
    let err = pixels::to_tensor(&f32_bytes(&values), 1, 3, 1, 2, PixelFormat::F32Chw).unwrap_err();
    assert_eq!(err.kind, inv);
    assert!(err.message.contains(" 3 ") && err.message.contains("NaN"), "{}", err.message);
    values[3] = 0.5;
    values[4] = 1.5;
    let err = pixels::to_tensor(&f32_bytes(&values), 1, 3, 1, 2, PixelFormat::F32Chw).unwrap_err();
    assert!(err.message.contains(" 4 ") && err.message.contains("1.5"), "{}", err.message);
    values[4] = f32::NEG_INFINITY;
    assert_eq!(kind_of(pixels::to_tensor(&f32_bytes(&values), 1, 3, 1, 2, PixelFormat::F32Chw)), inv);

    // Output buffers.
    let t = pixels::to_tensor(&CHW, 1, 3, 1, 2, PixelFormat::U8Chw).unwrap();
    let mut small = [0u8; 23];
    let err = pixels::write_from_tensor(&t, PixelFormat::F32Chw, &mut small).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BufferTooSmall);
    assert!(err.message.contains("24"), "{}", err.message);
    let mut big = [0xAAu8; 8];
    pixels::write_from_tensor(&t, PixelFormat::U8Hwc, &mut big).expect("larger buffer");
    assert_eq!(big, [10, 20, 30, 40, 50, 60, 0xAA, 0xAA]);
    assert_eq!(
        kind_of(pixels::from_tensor(&Tensor::zeros([3, 2, 2], (Kind::Float, Device::Cpu)), PixelFormat::U8Chw)),
        inv
    );
    assert_eq!(
        kind_of(pixels::from_tensor(&Tensor::zeros([1, 2, 2, 2], (Kind::Float, Device::Cpu)), PixelFormat::U8Chw)),
        inv
    );
    assert_eq!(
        kind_of(pixels::from_tensor(&Tensor::zeros([1, 1, 2, 2], (Kind::Int64, Device::Cpu)), PixelFormat::U8Chw)),
        inv
    );
}

// ------------------------------------------------------------------------------------- Dataset

#[test]
fn dataset_checks_and_slices() {
    let inv = ErrorKind::InvalidArgument;
    let values: Vec<f32> = (0..24).map(|i| i as f32 / 23.0).collect();
    let floats = Tensor::from_slice(&values).view([4, 1, 2, 3]);
    let d = Dataset::new(floats.shallow_clone(), Some(vec![0, 1, 2, 3])).expect("float dataset");
    assert_eq!((d.count(), d.channels(), d.height(), d.width(), d.image_len()), (4, 1, 2, 3, 6));

    let sub = d.subset(1, 2).expect("subset");
    assert_eq!(sub.count(), 2);
    assert_eq!(sub.labels(), Some(&[1u8, 2][..]));
    assert!(sub.images().unwrap().equal(&floats.narrow(0, 1, 2)));
    let slice = d.float_slice(3, 1, Device::Cpu).expect("slice");
    assert!(slice.equal(&floats.narrow(0, 3, 1)));
    for (start, count) in [(0, 0), (4, 1), (3, 2), (usize::MAX, 2)] {
        assert_eq!(kind_of(d.subset(start, count)), inv, "subset {start} {count}");
        assert_eq!(kind_of(d.float_slice(start, count, Device::Cpu)), inv, "slice {start} {count}");
    }

    let bytes = Tensor::from_slice(&[0u8, 51, 255, 102]).view([1, 1, 2, 2]);
    let d8 = Dataset::new(bytes, None).expect("u8 dataset");
    let f = d8.float_images(Device::Cpu).unwrap();
    assert_eq!(f.kind(), Kind::Float);
    assert!((f.double_value(&[0, 0, 0, 1]) - 0.2).abs() < 1e-6);
    assert_eq!(f.double_value(&[0, 0, 1, 0]), 1.0);

    let mut bad = values.clone();
    bad[7] = 1.25;
    let err = Dataset::new(Tensor::from_slice(&bad).view([4, 1, 2, 3]), None).unwrap_err();
    assert_eq!(err.kind, inv);
    assert!(err.message.contains(" 7 ") && err.message.contains("1.25"), "{}", err.message);
    bad[7] = f32::NAN;
    assert_eq!(kind_of(Dataset::new(Tensor::from_slice(&bad).view([4, 1, 2, 3]), None)), inv);
    assert_eq!(kind_of(Dataset::new(floats.shallow_clone(), Some(vec![1, 2, 3]))), inv);
    assert_eq!(kind_of(Dataset::new(floats.view([4, 6]), None)), inv);
    assert_eq!(kind_of(Dataset::new(floats.view([2, 2, 2, 3]), None)), inv);
    assert_eq!(kind_of(Dataset::new(floats.to_kind(Kind::Double), None)), inv);
    assert_eq!(kind_of(Dataset::new(Tensor::zeros([0, 1, 2, 2], (Kind::Uint8, Device::Cpu)), None)), inv);
}

// ----------------------------------------------------------------------------------------- PNG

#[test]
fn png_grids() {
    let tmp = TempDir::new("png");
    // 3 grey images of 4x5 (H x W), image i filled with i * 0.25 and one marked pixel.
    let images = Tensor::zeros([3, 1, 4, 5], (Kind::Float, Device::Cpu));
    for i in 0..3 {
        let _ = images.get(i).fill_(i as f64 * 0.25);
    }
    let _ = images.get(2).get(0).get(3).get(1).fill_(1.0);
    let path = tmp.path("grid.png");
    png::write_grid(&path, &images, 2).expect("grid");
    let grid = image::open(&path).expect("read png");
    assert_eq!(grid.color(), image::ColorType::L8);
    let grid = grid.to_luma8();
    // 2 columns x 2 rows of 5x4 tiles with a 2-pixel border between them.
    assert_eq!(grid.dimensions(), (2 * 5 + 2, 2 * 4 + 2));
    assert_eq!(grid.get_pixel(1, 1).0, [0]); // tile 0
    assert_eq!(grid.get_pixel(7 + 4, 3).0, [64]); // tile 1, round(0.25 * 255)
    assert_eq!(grid.get_pixel(5, 0).0, [0]); // border
    assert_eq!(grid.get_pixel(0, 6).0, [128]); // tile 2 (row 1, column 0)
    assert_eq!(grid.get_pixel(1, 6 + 3).0, [255]); // its marked pixel
    assert_eq!(grid.get_pixel(7 + 2, 6 + 2).0, [0]); // the empty fourth tile

    // More columns than images: one row of 3.
    let wide = png::encode_grid(&images, 10).expect("wide");
    assert_eq!((wide.width(), wide.height()), (3 * 5 + 2 * 2, 4));

    // RGB through caller pixels: two 1x2 images side by side.
    let mut hwc = HWC.to_vec();
    hwc.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    let rgb_path = tmp.path("rgb.png");
    png::write_grid_pixels(&rgb_path, &hwc, 2, 1, 2, 3, PixelFormat::U8Hwc, 2).expect("rgb grid");
    let rgb = image::open(&rgb_path).expect("read rgb").to_rgb8();
    assert_eq!(rgb.dimensions(), (2 + 2 + 2, 1));
    assert_eq!(rgb.get_pixel(1, 0).0, [40, 50, 60]);
    assert_eq!(rgb.get_pixel(4, 0).0, [1, 2, 3]);
    // No temporary files are left beside the pictures.
    assert_eq!(std::fs::read_dir(&tmp.0).unwrap().count(), 2);

    assert_eq!(kind_of(png::write_grid(&path, &images, 0)), ErrorKind::InvalidArgument);
    assert_eq!(
        kind_of(png::write_grid_pixels(&path, &hwc[..11], 2, 1, 2, 3, PixelFormat::U8Hwc, 2)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(kind_of(png::write_grid(&tmp.path("missing/grid.png"), &images, 2)), ErrorKind::Io);
}

// ------------------------------------------------------------------------------- streamed .npy

/// 40 synthetic 28x28 grey images with labels, packed as gran pack writes them.
fn packed_digits(dir: &TempDir) -> PathBuf {
    let path = dir.path("set.npy");
    let mut w = gran::data::npy::NpyWriter::create(&path, 40, 28, 28, 1).unwrap();
    for i in 0..40u32 {
        let img: Vec<u8> = (0..784u32).map(|p| ((p * 7 + i * 13) % 256) as u8).collect();
        w.push(&img).unwrap();
    }
    w.finish().unwrap();
    gran::data::npy::write_labels(&gran::data::npy::labels_path(&path), &(0..40u8).map(|i| i % 10).collect::<Vec<_>>())
        .unwrap();
    path
}

/// A streamed dataset reads what the in-memory one holds: slices, subsets (without a copy),
/// the whole set, and it trains to bit-identical weights (the same minibatches, read from the
/// file ahead of each step).
#[test]
fn a_streamed_npy_trains_exactly_as_in_memory() {
    let tmp = TempDir::new("streamed");
    let path = packed_digits(&tmp);
    let memory = gran::data::load_npy(&path).unwrap();
    let streamed = Dataset::open_npy(&path).unwrap();
    assert!(streamed.streamed() && !memory.streamed());
    assert_eq!((streamed.count(), streamed.labels()), (40, memory.labels()));
    let a = memory.float_slice(5, 7, Device::Cpu).unwrap();
    assert!(a.equal(&streamed.float_slice(5, 7, Device::Cpu).unwrap()));
    let sub = streamed.subset(10, 20).unwrap();
    assert!(sub.streamed() && sub.labels() == Some(&memory.labels().unwrap()[10..30]));
    assert!(sub.images().unwrap().equal(&memory.images().unwrap().narrow(0, 10, 20)));
    assert!(streamed.images().unwrap().equal(memory.images().unwrap()));
    assert_eq!(kind_of(streamed.float_slice(39, 2, Device::Cpu)), ErrorKind::InvalidArgument);

    let cfg = gran::TrainConfig { iterations: 7, batch_size: 8, report_every: 0, seed: 3, ..Default::default() };
    let model_cfg = gran::ModelConfig {
        drawing_steps: 2,
        width_scale: 0.0625,
        z_dim: 8,
        hidden_dim: 8,
        device: gran::DeviceSpec::Cpu,
        seed: 2,
        ..Default::default()
    };
    let trained = |data: &Dataset| {
        let m = gran::Model::new(&model_cfg).unwrap();
        gran::train(&m, data, &cfg, &mut |_| false).unwrap();
        let tensors = m.read_fresh().unwrap().named_tensors();
        tensors
    };
    // 7 steps of 8 over 40 images: past the first epoch's end.
    for ((n, x), (_, y)) in trained(&memory).iter().zip(&trained(&Dataset::open_npy(&path).unwrap())) {
        assert!(x.equal(y), "{n} differs between the streamed and the in-memory run");
    }
}

/// A file cut short after it was opened fails the run with IO, whatever step needs the lost
/// images, and the process lives on.
#[test]
fn a_streamed_file_cut_short_fails_the_run_cleanly() {
    let tmp = TempDir::new("streamed_cut");
    let path = packed_digits(&tmp);
    let streamed = Dataset::open_npy(&path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 784 * 30).unwrap();
    let m = gran::Model::new(&gran::ModelConfig {
        width_scale: 0.0625,
        device: gran::DeviceSpec::Cpu,
        ..Default::default()
    })
    .unwrap();
    let cfg = gran::TrainConfig { iterations: 10, batch_size: 8, report_every: 0, ..Default::default() };
    let e = gran::train(&m, &streamed, &cfg, &mut |_| false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io, "{}", e.message);
    assert!(e.message.contains("set.npy"), "{}", e.message);
    assert_eq!(kind_of(streamed.images()), ErrorKind::Io);
}

/// Image files decoded a minibatch at a time train exactly as the decoded set does.
#[test]
fn a_streamed_image_folder_trains_exactly_as_decoded() {
    use gran::data::{load_image_source, Fit, FolderLabels, ImageShape};
    let tmp = TempDir::new("streamed_images");
    for i in 0..24u32 {
        let img = image::GrayImage::from_fn(30, 30, |x, y| image::Luma([((x * 7 + y * 3 + i * 11) % 256) as u8]));
        img.save(tmp.path(&format!("{i:03}.png"))).unwrap();
    }
    let shape = ImageShape { height: 28, width: 28, channels: 1, fit: Fit::CenterCrop };
    let decoded = load_image_source(&tmp.0, shape, FolderLabels::None).unwrap();
    let streamed = Dataset::open_image_source(&tmp.0, shape, FolderLabels::None).unwrap();
    assert!(streamed.streamed());
    assert!(streamed.float_slice(3, 5, Device::Cpu).unwrap().equal(&decoded.float_slice(3, 5, Device::Cpu).unwrap()));
    let cfg = gran::TrainConfig { iterations: 4, batch_size: 8, report_every: 0, seed: 9, ..Default::default() };
    let model_cfg = gran::ModelConfig {
        width_scale: 0.0625,
        z_dim: 8,
        hidden_dim: 8,
        device: gran::DeviceSpec::Cpu,
        ..Default::default()
    };
    let trained = |data: &Dataset| {
        let m = gran::Model::new(&model_cfg).unwrap();
        gran::train(&m, data, &cfg, &mut |_| false).unwrap();
        let tensors = m.read_fresh().unwrap().named_tensors();
        tensors
    };
    for ((n, x), (_, y)) in trained(&decoded).iter().zip(&trained(&streamed)) {
        assert!(x.equal(y), "{n} differs between the streamed and the decoded run");
    }
}
