//! Counter-based random numbers: every draw is a pure function of (seed, stream, counter).
//!
//! This is what makes gran reproducible without global state: image i of a seeded request, the
//! latents of training step s and the minibatch of epoch e are each computed from their own
//! coordinates, so they do not depend on batch sizes, on chunking, on threads, or on the device,
//! and a resumed training run draws exactly what an uninterrupted one would.

/// Stream identifiers, one per purpose, so that no two purposes ever share numbers.
pub mod stream {
    pub const INIT: u64 = 1;
    pub const SAMPLE: u64 = 2;
    pub const TRAIN_Z_D: u64 = 3;
    pub const TRAIN_Z_G: u64 = 4;
    pub const SHUFFLE: u64 = 5;
    pub const EVAL: u64 = 6;
    /// Latents of the averaged generator's standing batch-norm statistics (crate::nn::ema).
    pub const STANDING: u64 = 7;
    /// Parameters of the discriminator's input augmentation (gran's crate::train::augment).
    pub const AUGMENT: u64 = 8;
    /// The classes a conditional model draws when a seeded request names none: image i of seed
    /// s is of class `Stream::new(s, SAMPLE_CLASS).below(i, classes)` (libgran and the runtime).
    pub const SAMPLE_CLASS: u64 = 9;
    /// Classes of the generated minibatches of a conditional model's training steps (D's and
    /// G's updates), and of the averaged generator's standing statistics.
    pub const TRAIN_Y_D: u64 = 10;
    pub const TRAIN_Y_G: u64 = 11;
    pub const STANDING_CLASS: u64 = 12;
}

#[inline]
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A keyed position in the random sequence: `key` mixes the seed and the stream.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    key: u64,
}

impl Stream {
    pub fn new(seed: u64, stream: u64) -> Self {
        Stream { key: splitmix64(splitmix64(seed) ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)) }
    }

    /// A sub-stream, e.g. one per training step or per parameter tensor.
    pub fn sub(&self, index: u64) -> Self {
        Stream { key: splitmix64(self.key ^ splitmix64(index.wrapping_add(0x632B_E59B_D9B4_E019))) }
    }

    /// 64 random bits at `counter`.
    #[inline]
    pub fn bits(&self, counter: u64) -> u64 {
        splitmix64(self.key ^ splitmix64(counter))
    }

    /// Uniform in the open interval (0, 1).
    #[inline]
    pub fn uniform(&self, counter: u64) -> f64 {
        ((self.bits(counter) >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal at `counter` (Box-Muller on two independent uniforms).
    ///
    /// The logarithm and cosine are `libm`'s, not the platform's: IEEE arithmetic plus the
    /// same portable code give the same bits on every target, WebAssembly included (platform
    /// libms may differ in the last place).
    #[inline]
    pub fn normal(&self, counter: u64) -> f32 {
        let u1 = self.uniform(counter.wrapping_mul(2));
        let u2 = self.uniform(counter.wrapping_mul(2).wrapping_add(1));
        ((-2.0 * libm::log(u1)).sqrt() * libm::cos(std::f64::consts::TAU * u2)) as f32
    }

    /// `n` normals at counters `start .. start + n`.
    pub fn normals(&self, start: u64, n: usize) -> Vec<f32> {
        (0..n as u64).map(|i| self.normal(start + i)).collect()
    }

    /// A uniform integer in `0..n` (n > 0), by Lemire's multiply-shift (bias < 2^-32 for n < 2^32).
    #[inline]
    pub fn below(&self, counter: u64, n: u64) -> u64 {
        ((self.bits(counter) as u128 * n as u128) >> 64) as u64
    }

    /// A permutation of `0..n` (Fisher-Yates driven by this stream).
    pub fn permutation(&self, n: usize) -> Vec<i64> {
        let mut p: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64, i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pure_functions_of_their_coordinates() {
        let a = Stream::new(7, stream::SAMPLE);
        let b = Stream::new(7, stream::SAMPLE);
        assert_eq!(a.normals(100, 10), b.normals(100, 10));
        assert_ne!(a.normals(0, 10), Stream::new(8, stream::SAMPLE).normals(0, 10));
        assert_ne!(a.normals(0, 10), Stream::new(7, stream::TRAIN_Z_D).normals(0, 10));
        assert_ne!(a.sub(1).bits(0), a.sub(2).bits(0));
    }

    #[test]
    fn normals_have_unit_moments() {
        let v = Stream::new(1, 0).normals(0, 200_000);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = Stream::new(3, stream::SHUFFLE).permutation(1000);
        assert_ne!(p, (0..1000).collect::<Vec<i64>>());
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<i64>>());
    }
}
