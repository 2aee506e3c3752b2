//! A synthetic colour dataset of the kind gran's users bring: discs and squares in three
//! colours on a black background, at random places and sizes. Shared by the tests and the
//! `experiment` example (included with `#[path]`).
//!
//! Labels: shape * 3 + colour (6 classes). Every image is a function of (seed, index).

use gran::rng::Stream;

/// The colours, as RGB.
const COLOURS: [[u8; 3]; 3] = [[220, 40, 40], [40, 200, 60], [50, 90, 230]];

/// `count` images of `size` x `size` x 3 as bytes in N, C, H, W order, and their labels.
pub fn shapes(count: usize, size: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let s = Stream::new(seed, 0x5348_4150_4553);
    let plane = size * size;
    let mut pixels = vec![0u8; count * 3 * plane];
    let mut labels = Vec::with_capacity(count);
    for (i, img) in pixels.chunks_exact_mut(3 * plane).enumerate() {
        let c = i as u64 * 8;
        let (shape, colour) = (s.below(c, 2) as usize, s.below(c + 1, 3) as usize);
        // Half-size between size/8 and size/3; centre keeps the shape inside the image.
        let half = size as f64 * (0.125 + s.uniform(c + 2) * (1.0 / 3.0 - 0.125));
        let room = size as f64 - 2.0 * half;
        let (cx, cy) = (half + s.uniform(c + 3) * room, half + s.uniform(c + 4) * room);
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                let inside = match shape {
                    0 => dx * dx + dy * dy <= half * half,
                    _ => dx.abs() <= half && dy.abs() <= half,
                };
                if inside {
                    for ch in 0..3 {
                        img[ch * plane + y * size + x] = COLOURS[colour][ch];
                    }
                }
            }
        }
        labels.push((shape * 3 + colour) as u8);
    }
    (pixels, labels)
}

/// The same as a dataset.
pub fn shapes_dataset(count: usize, size: usize, seed: u64) -> gran::data::Dataset {
    let (pixels, labels) = shapes(count, size, seed);
    let t = tch::Tensor::from_slice(&pixels).view([count as i64, 3, size as i64, size as i64]);
    gran::data::Dataset::new(t, Some(labels)).expect("a valid dataset")
}
