//! Makes a 32x32x3 dataset of real colour images: crops of public-domain / CC0 photographs that
//! ship inside the scikit-image wheel on PyPI (astronaut, chelsea, coffee, hubble_deep_field,
//! retina, rocket). `make colour-data` fetches the wheel and runs this; the result is written in
//! the CIFAR-10 binary format (one label byte, then 3072 bytes of R, G, B planes), so
//! `gran_dataset_load_cifar10` reads it:
//!
//!   data/colour32/data_batch_1.bin   9000 training crops
//!   data/colour32/test_batch.bin     1002 held-out crops (167 a photograph)
//!
//! The label of a crop is the index of its photograph (0..5, in the order above), so the quality
//! evaluator can be trained on it like on digits. Each photograph is split before cropping: its
//! left 80% gives the training crops, its right 20% the held-out ones, so no held-out crop
//! overlaps a training one. Crops come from three zooms (shorter side resized to 64, 96 and 128
//! pixels), at positions from a fixed-seed generator: the output is the same on every run.
//!
//!   cargo run --release --example colour_patches -- <folder with the photos> <output folder> [64]
//!
//! With `64`: 64x64x3 crops (zooms twice as large), 500 training and 100 held-out a photograph
//! (3,000 and 600: a small set), as gran's packed numpy arrays: `data/colour64/train.npy` and
//! `test.npy`, (N, 64, 64, 3) uint8, labels in `train.labels.npy` and `test.labels.npy`.
//!
//! With `128`: 128x128x3 crops (zooms four times as large), 250 training and 50 held-out a
//! photograph, as PNG files in one folder per photograph (`train/0/00000.png`, ...; `test/...`):
//! image files as users have them, which `gran pack --class-folders` packs.

use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, RgbImage};
use std::path::Path;

const PHOTOS: [&str; 6] =
    ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "retina.jpg", "rocket.jpg"];
/// Crops per photograph (training, held out) and the zooms' shorter sides, for 32x32 crops.
const PER_PHOTO_32: (usize, usize) = (1500, 167);
const PER_PHOTO_64: (usize, usize) = (500, 100);
const PER_PHOTO_128: (usize, usize) = (250, 50);
const ZOOMS_32: [u32; 3] = [64, 96, 128];

/// SplitMix64: a small, fixed generator (the crops must not depend on a library's version).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % n as u64) as u32
    }
}

/// `count` crops of `side` x `side` from `part` (already split off its photograph), as
/// CIFAR-10 records.
fn crops(part: &DynamicImage, side: u32, label: u8, count: usize, rng: &mut Rng, out: &mut Vec<u8>) {
    let zoomed: Vec<RgbImage> = ZOOMS_32
        .iter()
        .map(|&short| short * side / 32)
        .map(|short| {
            let (w, h) = part.dimensions();
            let s = short as f64 / w.min(h) as f64;
            let (nw, nh) = (((w as f64 * s).round() as u32).max(side), ((h as f64 * s).round() as u32).max(side));
            part.resize_exact(nw, nh, FilterType::Lanczos3).to_rgb8()
        })
        .collect();
    for i in 0..count {
        let img = &zoomed[i % zoomed.len()];
        let (x, y) = (rng.below(img.width() - side + 1), rng.below(img.height() - side + 1));
        out.push(label);
        for c in 0..3 {
            for yy in 0..side {
                for xx in 0..side {
                    out.push(img.get_pixel(x + xx, y + yy)[c]);
                }
            }
        }
    }
}

/// CIFAR-layout records as PNG files, one folder per label: `dir/<label>/<index>.png`.
fn write_pngs(dir: &Path, records: &[u8], side: u32) {
    let plane = (side * side) as usize;
    for (i, r) in records.chunks_exact(1 + 3 * plane).enumerate() {
        let folder = dir.join(r[0].to_string());
        std::fs::create_dir_all(&folder).expect("creating a class folder");
        let img = RgbImage::from_fn(side, side, |x, y| {
            let p = (y * side + x) as usize;
            image::Rgb([r[1 + p], r[1 + plane + p], r[1 + 2 * plane + p]])
        });
        img.save(folder.join(format!("{i:05}.png"))).expect("writing a PNG");
    }
}

/// CIFAR-layout records (a label byte, then R, G, B planes) as `path` (uint8 (N, side, side, 3))
/// and its labels file.
fn write_npy(path: &Path, records: &[u8], side: u32) {
    let plane = (side * side) as usize;
    let n = records.len() / (1 + 3 * plane);
    let mut w = gran::data::npy::NpyWriter::create(path, n, side, side, 3).expect("creating the .npy");
    let mut labels = Vec::with_capacity(n);
    let mut hwc = vec![0u8; 3 * plane];
    for r in records.chunks_exact(1 + 3 * plane) {
        labels.push(r[0]);
        for p in 0..plane {
            for c in 0..3 {
                hwc[3 * p + c] = r[1 + c * plane + p];
            }
        }
        w.push(&hwc).expect("writing an image");
    }
    w.finish().expect("writing the .npy");
    gran::data::npy::write_labels(&gran::data::npy::labels_path(path), &labels).expect("writing the labels");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let side: u32 = match args.get(3).map(String::as_str) {
        None | Some("32") => 32,
        Some("64") => 64,
        Some("128") => 128,
        Some(_) => 0,
    };
    if !(3..=4).contains(&args.len()) || side == 0 {
        eprintln!("usage: colour_patches <folder with {}> <output folder> [32|64|128]", PHOTOS.join(", "));
        std::process::exit(2);
    }
    let (train_per_photo, test_per_photo) = match side {
        64 => PER_PHOTO_64,
        128 => PER_PHOTO_128,
        _ => PER_PHOTO_32,
    };
    let (src, dst) = (Path::new(&args[1]), Path::new(&args[2]));
    let mut rng = Rng(20160216);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (label, name) in PHOTOS.iter().enumerate() {
        let photo = image::open(src.join(name)).unwrap_or_else(|e| panic!("{}: {e}", src.join(name).display()));
        let (w, h) = photo.dimensions();
        let split = w * 4 / 5;
        crops(&photo.crop_imm(0, 0, split, h), side, label as u8, train_per_photo, &mut rng, &mut train);
        crops(&photo.crop_imm(split, 0, w - split, h), side, label as u8, test_per_photo, &mut rng, &mut test);
        println!("{name}: {w}x{h}, label {label}");
    }
    // Shuffle the records so that minibatches mix the photographs.
    let record = (1 + 3 * side * side) as usize;
    for data in [&mut train, &mut test] {
        let n = data.len() / record;
        for i in (1..n).rev() {
            let j = rng.below(i as u32 + 1) as usize;
            for k in 0..record {
                data.swap(i * record + k, j * record + k);
            }
        }
    }
    std::fs::create_dir_all(dst).expect("creating the output folder");
    if side == 128 {
        for (name, data) in [("train", &train), ("test", &test)] {
            write_pngs(&dst.join(name), data, side);
        }
    } else if side == 64 {
        // gran's packed form (numpy's .npy, (N, 64, 64, 3), labels beside): what `gran train
        // --data data/colour64/train.npy` reads.
        for (name, data) in [("train", &train), ("test", &test)] {
            write_npy(&dst.join(format!("{name}.npy")), data, side);
        }
    } else {
        std::fs::write(dst.join("data_batch_1.bin"), &train).expect("writing data_batch_1.bin");
        std::fs::write(dst.join("test_batch.bin"), &test).expect("writing test_batch.bin");
    }
    println!(
        "{}: {} training and {} held-out {side}x{side}x3 crops",
        dst.display(),
        train.len() / record,
        test.len() / record
    );
}
