//! The generator's convolutions, all of stride 2, as matrix products over activations laid out
//! channels-last, `[N][H][W][C]`: the feature maps here are small (7x7 to 64x64) and the
//! channels many, so every loop that is not a matrix product runs over a pixel's channels,
//! contiguous.
//!
//! - [`conv5x5_s2`] (the encoder's, halving the size): im2col (each output position's 25 input
//!   pixels, each `cin` contiguous values), then `cols [P, 25*cin] x W^T`, a block of output
//!   rows at a time so the column buffer stays small.
//! - [`deconv_s2`] (a decoder layer, doubling the size): a transposed convolution, 5x5 with
//!   padding 2 and output padding 1, or 6x6 with padding 2, the form a resizing layer
//!   (nearest-neighbour upsampling, then a 5x5 convolution) takes ([`DeconvWeight::resize`]).
//!   `X [N*h*w, cin] x W [cin, k*k*cb]` gives each input pixel's contribution through each tap
//!   to a block of `cb` output channels; each output pixel then sums the taps that land on it
//!   (at most 9). Blocks of images and of output channels bound the buffer.

use super::gemm::{gemm, Mat, MatMut};
use crate::error::{zeros, Result};

const K: usize = 5;
/// Taps of a kernel.
pub(crate) const TAPS: usize = K * K;
const PAD: usize = 2;
/// Floats a column buffer may hold (1 MiB): big enough for efficient products, small enough to
/// stay in cache and to bound memory.
pub(crate) const COLS_BUDGET: usize = 1 << 18;

/// A batch of feature maps: `n` images of `h x w`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) n: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
}

impl Geometry {
    /// Pixels over the batch.
    pub(crate) fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }
}

/// The encoder's convolution: `x` `[n][h][w][cin]` into `out` `[n][h/2][w/2][cout]` (every
/// value written), with `weight` `[cout][ky][kx][cin]` (libgran's `[cout, cin, 5, 5]`
/// reordered). Returns the output geometry.
pub(crate) fn conv5x5_s2(
    x: &[f32],
    cin: usize,
    g: Geometry,
    weight: &[f32],
    cout: usize,
    out: &mut [f32],
    cols: &mut Vec<f32>,
) -> Result<Geometry> {
    let (oh, ow) = (g.h.div_ceil(2), g.w.div_ceil(2));
    let og = Geometry { n: g.n, h: oh, w: ow };
    let k = cin * TAPS;
    let rows_total = g.n * oh;
    let rows_per_block = (COLS_BUDGET / (k * ow)).clamp(1, rows_total);
    ensure(cols, k * rows_per_block * ow)?;
    let mut r0 = 0;
    while r0 < rows_total {
        let rb = rows_per_block.min(rows_total - r0);
        let pb = rb * ow;
        for (j, block) in cols[..pb * k].chunks_exact_mut(ow * k).enumerate() {
            let (img, oy) = ((r0 + j) / oh, (r0 + j) % oh);
            for (ox, col) in block.chunks_exact_mut(k).enumerate() {
                for ky in 0..K {
                    let iy = (oy * 2 + ky).wrapping_sub(PAD);
                    for kx in 0..K {
                        let ix = (ox * 2 + kx).wrapping_sub(PAD);
                        let dst = &mut col[(ky * K + kx) * cin..][..cin];
                        if iy < g.h && ix < g.w {
                            dst.copy_from_slice(&x[((img * g.h + iy) * g.w + ix) * cin..][..cin]);
                        } else {
                            dst.fill(0.0);
                        }
                    }
                }
            }
        }
        let c = MatMut::rows(&mut out[r0 * ow * cout..(r0 * ow + pb) * cout], pb, cout);
        gemm(Mat::rows(&cols[..pb * k], pb, k), Mat::transposed(weight, k, cout), c, false);
        r0 += rb;
    }
    Ok(og)
}

/// How a transposed convolution's weight is laid out: `[cin][block][tap][co]`, the output
/// channels in blocks of `block` (the last may be smaller), so that each block is one matrix
/// `[cin, k * k * cb]` (row stride `k * k * cout`). The kernel is `k x k` with padding `pad`
/// and stride 2, and doubles the size (output padding `2 + 2 * pad - k`).
pub(crate) struct DeconvWeight {
    pub(crate) cin: usize,
    pub(crate) cout: usize,
    k: usize,
    pad: usize,
    block: usize,
    data: Vec<f32>,
}

impl DeconvWeight {
    /// From libgran's `[cin, cout, 5, 5]` (padding 2), with blocks sized for inputs of `h x w`.
    pub(crate) fn new(w: &[f32], cin: usize, cout: usize, h: usize, wd: usize) -> Result<DeconvWeight> {
        Self::with_kernel(w, cin, cout, K, PAD, h, wd)
    }

    /// A resizing layer (libgran's `[cout, cin, k, k]`, k odd: nearest-neighbour upsampling by
    /// 2, then a k x k convolution of padding (k - 1) / 2) as the transposed convolution it
    /// equals: kernel k + 1, the same padding, per axis taps `[w_{k-1}, w_{k-2} + w_{k-1}, ...,
    /// w_0 + w_1, w_0]`, summed in libgran's order (rows, then columns) so that the kernel is
    /// libgran's to the bit (src/nn/layers.rs, `resize_as_transposed`).
    pub(crate) fn resize(w: &[f32], cin: usize, cout: usize, k: usize, h: usize, wd: usize) -> Result<DeconvWeight> {
        let (taps, big) = (k * k, (k + 1) * (k + 1));
        // One axis: k taps (stride `step` in `src`) into k + 1 (stride `step` in `dst`).
        let widen = |src: &[f32], step: usize, dst: &mut [f32]| {
            dst[0] = src[(k - 1) * step];
            for j in 1..k {
                dst[j * step] = src[(k - 1 - j) * step] + src[(k - j) * step];
            }
            dst[k * step] = src[0];
        };
        let mut out = zeros(cin * cout * big, "a resizing layer's weight")?;
        let mut rows = vec![0f32; (k + 1) * k];
        for co in 0..cout {
            for ci in 0..cin {
                let src = &w[(co * cin + ci) * taps..][..taps];
                // Along the rows (ky) first: [k + 1][k], then along the columns (kx).
                for kx in 0..k {
                    widen(&src[kx..], k, &mut rows[kx..]);
                }
                let dst = &mut out[(ci * cout + co) * big..][..big];
                for a in 0..=k {
                    widen(&rows[a * k..][..k], 1, &mut dst[a * (k + 1)..][..k + 1]);
                }
            }
        }
        Self::with_kernel(&out, cin, cout, k + 1, (k - 1) / 2, h, wd)
    }

    /// From `[cin, cout, k, k]`.
    fn with_kernel(w: &[f32], cin: usize, cout: usize, k: usize, pad: usize, h: usize, wd: usize) -> Result<Self> {
        let taps = k * k;
        // Per image, the contributions of a block take h * w * taps * cb floats.
        let block = (COLS_BUDGET / (h * wd * taps)).clamp(1, cout);
        let mut data = zeros(cin * taps * cout, "a transposed convolution's weight")?;
        for ci in 0..cin {
            for co in 0..cout {
                let (b0, cb) = (co / block * block, block.min(cout - co / block * block));
                for tap in 0..taps {
                    data[ci * taps * cout + b0 * taps + tap * cb + (co - b0)] = w[(ci * cout + co) * taps + tap];
                }
            }
        }
        Ok(DeconvWeight { cin, cout, k, pad, block, data })
    }
}

/// A decoder layer: `x` `[n][h][w][cin]` into `out` `[n][2h][2w][cout]` (every value written),
/// with `bias` `[cout]`. Returns the output geometry.
pub(crate) fn deconv_s2(
    x: &[f32],
    g: Geometry,
    weight: &DeconvWeight,
    bias: &[f32],
    out: &mut [f32],
    cols: &mut Vec<f32>,
) -> Result<Geometry> {
    let (cin, cout, k, pad) = (weight.cin, weight.cout, weight.k, weight.pad);
    let taps = k * k;
    let og = Geometry { n: g.n, h: 2 * g.h, w: 2 * g.w };
    let hw = g.h * g.w;
    let images_per_pass = (COLS_BUDGET / (hw * taps * weight.block)).clamp(1, g.n);
    ensure(cols, images_per_pass * hw * taps * weight.block)?;
    let mut c0 = 0;
    while c0 < cout {
        let cb = weight.block.min(cout - c0);
        let wb = Mat { data: &weight.data[c0 * taps..], rows: cin, cols: taps * cb, rs: taps * cout, cs: 1 };
        let mut i0 = 0;
        while i0 < g.n {
            let nb = images_per_pass.min(g.n - i0);
            let q = nb * hw;
            let contributions = &mut cols[..q * taps * cb];
            let xs = Mat::rows(&x[i0 * hw * cin..(i0 * hw + q) * cin], q, cin);
            gemm(xs, wb, MatMut::rows(contributions, q, taps * cb), false);
            let contributions = &cols[..q * taps * cb];
            for img in 0..nb {
                for oy in 0..og.h {
                    for ox in 0..og.w {
                        let dst = &mut out[(((i0 + img) * og.h + oy) * og.w + ox) * cout + c0..][..cb];
                        dst.copy_from_slice(&bias[c0..c0 + cb]);
                        // oy = 2 iy - pad + ky: the taps of oy + pad's parity, from the rows inside.
                        for ky in ((oy + pad) % 2..k).step_by(2) {
                            let iy = (oy + pad - ky) / 2;
                            if oy + pad < ky || iy >= g.h {
                                continue;
                            }
                            for kx in ((ox + pad) % 2..k).step_by(2) {
                                let ix = (ox + pad - kx) / 2;
                                if ox + pad < kx || ix >= g.w {
                                    continue;
                                }
                                let src = &contributions
                                    [((img * g.h + iy) * g.w + ix) * taps * cb + (ky * k + kx) * cb..][..cb];
                                for (d, s) in dst.iter_mut().zip(src) {
                                    *d += s;
                                }
                            }
                        }
                    }
                }
            }
            i0 += nb;
        }
        c0 += cb;
    }
    Ok(og)
}

/// libgran's convolution weight `[cout, cin, 5, 5]` as `[cout][ky][kx][cin]`, the layout
/// [`conv5x5_s2`] takes.
pub(crate) fn reorder_conv_weight(raw: &[f32], cin: usize, cout: usize) -> Result<Vec<f32>> {
    let mut weight = zeros(raw.len(), "a convolution's weight")?;
    for co in 0..cout {
        for ci in 0..cin {
            for tap in 0..TAPS {
                weight[(co * TAPS + tap) * cin + ci] = raw[(co * cin + ci) * TAPS + tap];
            }
        }
    }
    Ok(weight)
}

/// Grows a scratch buffer to `n` floats (fallibly).
pub(crate) fn ensure(buf: &mut Vec<f32>, n: usize) -> Result<()> {
    if buf.len() < n {
        *buf = zeros(n, "a convolution's columns")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.7316).sin()).collect()
    }

    /// `x` `[n][h][w][c]` at (img, y, x, ch), zero outside the image.
    fn at(x: &[f32], g: Geometry, c: usize, img: usize, y: isize, xx: isize, ch: usize) -> f32 {
        if y < 0 || xx < 0 || y as usize >= g.h || xx as usize >= g.w {
            return 0.0;
        }
        x[((img * g.h + y as usize) * g.w + xx as usize) * c + ch]
    }

    /// The definition of a 5x5 stride-2 padding-2 convolution, libgran's weight `[cout, cin, 5, 5]`.
    fn conv_ref(x: &[f32], cin: usize, g: Geometry, w: &[f32], cout: usize) -> Vec<f32> {
        let (oh, ow) = (g.h.div_ceil(2), g.w.div_ceil(2));
        let mut out = vec![0f32; g.n * oh * ow * cout];
        for img in 0..g.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for co in 0..cout {
                        let mut s = 0f32;
                        for ci in 0..cin {
                            for ky in 0..5 {
                                for kx in 0..5 {
                                    let v = at(
                                        x,
                                        g,
                                        cin,
                                        img,
                                        2 * oy as isize - 2 + ky as isize,
                                        2 * ox as isize - 2 + kx as isize,
                                        ci,
                                    );
                                    s += v * w[((co * cin + ci) * 5 + ky) * 5 + kx];
                                }
                            }
                        }
                        out[((img * oh + oy) * ow + ox) * cout + co] = s;
                    }
                }
            }
        }
        out
    }

    /// The definition of the transposed convolution (weight `[cin, cout, 5, 5]`): each input
    /// scatters its 5x5 taps.
    fn deconv_ref(x: &[f32], cin: usize, g: Geometry, w: &[f32], b: &[f32], cout: usize) -> Vec<f32> {
        let (oh, ow) = (2 * g.h, 2 * g.w);
        let mut out: Vec<f32> = (0..g.n * oh * ow * cout).map(|i| b[i % cout]).collect();
        for img in 0..g.n {
            for iy in 0..g.h {
                for ix in 0..g.w {
                    for ci in 0..cin {
                        let v = x[((img * g.h + iy) * g.w + ix) * cin + ci];
                        for co in 0..cout {
                            for ky in 0..5 {
                                for kx in 0..5 {
                                    let (oy, ox) =
                                        (2 * iy as isize - 2 + ky as isize, 2 * ix as isize - 2 + kx as isize);
                                    if oy >= 0 && ox >= 0 && (oy as usize) < oh && (ox as usize) < ow {
                                        out[((img * oh + oy as usize) * ow + ox as usize) * cout + co] +=
                                            v * w[((ci * cout + co) * 5 + ky) * 5 + kx];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// libgran's `[cout, cin, 5, 5]` as this module's `[cout][ky][kx][cin]`.
    fn conv_weight(w: &[f32], cin: usize, cout: usize) -> Vec<f32> {
        reorder_conv_weight(w, cin, cout).unwrap()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
    }

    fn check(cin: usize, cout: usize, g: Geometry) {
        let mut cols = Vec::new();
        let x = values(g.pixels() * cin, 1.0);
        let w = values(cout * cin * 25, 2.0);
        let mut out = vec![f32::NAN; g.n * g.h.div_ceil(2) * g.w.div_ceil(2) * cout];
        conv5x5_s2(&x, cin, g, &conv_weight(&w, cin, cout), cout, &mut out, &mut cols).unwrap();
        assert!(close(&out, &conv_ref(&x, cin, g, &w, cout)), "conv {cin}->{cout} {g:?}");
        let b = values(cout, 3.0);
        let mut out = vec![f32::NAN; g.n * 4 * g.h * g.w * cout];
        let dw = DeconvWeight::new(&w, cin, cout, g.h, g.w).unwrap();
        deconv_s2(&x, g, &dw, &b, &mut out, &mut cols).unwrap();
        assert!(close(&out, &deconv_ref(&x, cin, g, &w, &b, cout)), "deconv {cin}->{cout} {g:?}");
    }

    /// The definition of a resizing layer: nearest-neighbour upsampling by 2, then a k x k
    /// convolution of stride 1 and padding (k - 1) / 2 (weight `[cout, cin, k, k]`) plus the bias.
    fn upconv_ref(x: &[f32], cin: usize, g: Geometry, w: &[f32], b: &[f32], cout: usize, k: usize) -> Vec<f32> {
        let ug = Geometry { n: g.n, h: 2 * g.h, w: 2 * g.w };
        let mut up = vec![0f32; ug.pixels() * cin];
        for img in 0..g.n {
            for y in 0..ug.h {
                for xx in 0..ug.w {
                    for ci in 0..cin {
                        up[((img * ug.h + y) * ug.w + xx) * cin + ci] =
                            x[((img * g.h + y / 2) * g.w + xx / 2) * cin + ci];
                    }
                }
            }
        }
        let mut out = vec![0f32; ug.pixels() * cout];
        for img in 0..g.n {
            for oy in 0..ug.h {
                for ox in 0..ug.w {
                    for co in 0..cout {
                        let mut s = b[co];
                        for ci in 0..cin {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let p = (k as isize - 1) / 2;
                                    let (y, xx) = (oy as isize - p + ky as isize, ox as isize - p + kx as isize);
                                    s += at(&up, ug, cin, img, y, xx, ci) * w[((co * cin + ci) * k + ky) * k + kx];
                                }
                            }
                        }
                        out[((img * ug.h + oy) * ug.w + ox) * cout + co] = s;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_resizing_layer_matches_its_definition() {
        for (cin, cout, g) in [
            (3, 4, Geometry { n: 2, h: 4, w: 4 }),
            (5, 1, Geometry { n: 1, h: 7, w: 7 }),
            (2, 3, Geometry { n: 3, h: 14, w: 14 }),
            // Enough work for several blocks of output channels and of images.
            (96, 8, Geometry { n: 2, h: 16, w: 16 }),
            (4, 600, Geometry { n: 3, h: 8, w: 8 }),
        ] {
            for k in [5, 3, 1] {
                let x = values(g.pixels() * cin, 1.0);
                let w = values(cout * cin * k * k, 2.0);
                let b = values(cout, 3.0);
                let mut cols = Vec::new();
                let mut out = vec![f32::NAN; g.pixels() * 4 * cout];
                let weight = DeconvWeight::resize(&w, cin, cout, k, g.h, g.w).unwrap();
                let og = deconv_s2(&x, g, &weight, &b, &mut out, &mut cols).unwrap();
                assert_eq!((og.h, og.w), (2 * g.h, 2 * g.w));
                assert!(close(&out, &upconv_ref(&x, cin, g, &w, &b, cout, k)), "k={k} {cin}->{cout} {g:?}");
            }
        }
        // 8 x 8 inputs of 36 taps: blocks of fewer than the 600 output channels.
        assert!(DeconvWeight::resize(&values(600 * 4 * 25, 0.0), 4, 600, 5, 8, 8).unwrap().block < 600);
    }

    #[test]
    fn convolutions_match_their_definitions() {
        check(3, 4, Geometry { n: 2, h: 8, w: 8 });
        check(2, 5, Geometry { n: 3, h: 7, w: 7 });
        check(40, 3, Geometry { n: 1, h: 14, w: 14 });
        check(1, 9, Geometry { n: 2, h: 28, w: 28 });
    }

    #[test]
    fn blocks_smaller_than_the_work_give_the_same_result() {
        // Enough positions and channels that both functions work in several blocks of images,
        // rows and output channels.
        let (cin, cout, g) = (48, 600, Geometry { n: 4, h: 16, w: 16 });
        assert!(DeconvWeight::new(&values(cin * cout * 25, 0.0), cin, cout, g.h, g.w).unwrap().block < cout);
        check(cin, cout, g);
    }
}
