//! The generator's convolutions (5x5 with stride 2 and padding 2, and a resizing decoder's 3x3
//! after upsampling by 2), as matrix products over activations laid out channels-last,
//! `[N][H][W][C]`: the feature maps here are small (7x7 to 64x64) and the channels many, so
//! every loop that is not a matrix product runs over a pixel's channels, contiguous.
//!
//! - [`conv5x5_s2`] (the encoder's, halving the size): im2col (each output position's 25 input
//!   pixels, each `cin` contiguous values), then `cols [P, 25*cin] x W^T`, a block of output
//!   rows at a time so the column buffer stays small.
//! - [`upconv3x3`] (a resizing decoder's layer): the same over the input upsampled by 2, its
//!   columns read straight from the input, 3x3 with stride 1.
//! - [`deconv5x5_s2`] (the decoder's transposed convolution, output padding 1, doubling the
//!   size): `X [N*h*w, cin] x W [cin, 25*cb]` gives each input pixel's contribution through each
//!   tap to a block of `cb` output channels; each output pixel then sums the (at most 9) taps
//!   that land on it. Blocks of images and of output channels bound the buffer.

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

/// The shape of a (forward) convolution: a `k x k` kernel with `stride` and `pad`, over the input
/// as it is or, with `upsample`, over the input upsampled by 2 (each pixel repeated 2 x 2).
#[derive(Clone, Copy)]
struct Shape {
    k: usize,
    stride: usize,
    pad: usize,
    upsample: bool,
}

/// The encoder's convolution, 5x5 with stride 2 and padding 2: `x` `[n][h][w][cin]` into `out`
/// `[n][h/2][w/2][cout]` (every value written), with `weight` `[cout][ky][kx][cin]` (libgran's
/// `[cout, cin, 5, 5]` reordered). Returns the output geometry.
pub(crate) fn conv5x5_s2(
    x: &[f32],
    cin: usize,
    g: Geometry,
    weight: &[f32],
    cout: usize,
    out: &mut [f32],
    cols: &mut Vec<f32>,
) -> Result<Geometry> {
    let og = Geometry { n: g.n, h: g.h.div_ceil(2), w: g.w.div_ceil(2) };
    conv(x, cin, g, og, Shape { k: K, stride: 2, pad: PAD, upsample: false }, weight, cout, out, cols)?;
    Ok(og)
}

/// Taps of a resizing layer's kernel (3x3).
pub(crate) const UP_TAPS: usize = 9;

/// A resizing decoder layer: `x` `[n][h][w][cin]` upsampled by 2 (nearest neighbour), then a
/// 3x3 convolution of stride 1 and padding 1 with `weight` `[cout][ky][kx][cin]` (libgran's
/// `[cout, cin, 3, 3]` reordered) and `bias` `[cout]`, into `out` `[n][2h][2w][cout]` (every
/// value written). The upsampled input is never built: its columns read the input pixel each
/// upsampled one repeats. Returns the output geometry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn upconv3x3(
    x: &[f32],
    cin: usize,
    g: Geometry,
    weight: &[f32],
    bias: &[f32],
    cout: usize,
    out: &mut [f32],
    cols: &mut Vec<f32>,
) -> Result<Geometry> {
    let og = Geometry { n: g.n, h: 2 * g.h, w: 2 * g.w };
    conv(x, cin, g, og, Shape { k: 3, stride: 1, pad: 1, upsample: true }, weight, cout, out, cols)?;
    for px in out[..og.pixels() * cout].chunks_exact_mut(cout) {
        px.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    Ok(og)
}

/// A convolution of shape `sh` as im2col (each output position's `k * k` input pixels, each
/// `cin` contiguous values) and `cols [P, k*k*cin] x W^T`, a block of output rows at a time so
/// the column buffer stays small. `og` is the output geometry the shape implies.
#[allow(clippy::too_many_arguments)]
fn conv(
    x: &[f32],
    cin: usize,
    g: Geometry,
    og: Geometry,
    sh: Shape,
    weight: &[f32],
    cout: usize,
    out: &mut [f32],
    cols: &mut Vec<f32>,
) -> Result<()> {
    let (oh, ow) = (og.h, og.w);
    // The grid the kernel runs over: the input, or the input upsampled by 2.
    let up = usize::from(sh.upsample);
    let (gh, gw) = (g.h << up, g.w << up);
    let k = cin * sh.k * sh.k;
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
                for ky in 0..sh.k {
                    let iy = (oy * sh.stride + ky).wrapping_sub(sh.pad);
                    for kx in 0..sh.k {
                        let ix = (ox * sh.stride + kx).wrapping_sub(sh.pad);
                        let dst = &mut col[(ky * sh.k + kx) * cin..][..cin];
                        if iy < gh && ix < gw {
                            let (sy, sx) = (iy >> up, ix >> up);
                            dst.copy_from_slice(&x[((img * g.h + sy) * g.w + sx) * cin..][..cin]);
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
    Ok(())
}

/// libgran's convolution weight `[cout, cin, k, k]` (`taps` = k * k) as `[cout][ky][kx][cin]`,
/// the layout [`conv5x5_s2`] and [`upconv3x3`] take.
pub(crate) fn reorder_conv_weight(raw: &[f32], cin: usize, cout: usize, taps: usize) -> Result<Vec<f32>> {
    let mut weight = zeros(raw.len(), "a convolution's weight")?;
    for co in 0..cout {
        for ci in 0..cin {
            for tap in 0..taps {
                weight[(co * taps + tap) * cin + ci] = raw[(co * cin + ci) * taps + tap];
            }
        }
    }
    Ok(weight)
}

/// How a transposed convolution's weight is laid out: `[cin][block][tap][co]`, the output
/// channels in blocks of `block` (the last may be smaller), so that each block is one matrix
/// `[cin, 25 * cb]` (row stride `25 * cout`).
pub(crate) struct DeconvWeight {
    pub(crate) cin: usize,
    pub(crate) cout: usize,
    pub(crate) block: usize,
    pub(crate) data: Vec<f32>,
}

impl DeconvWeight {
    /// From libgran's `[cin, cout, 5, 5]`, with blocks sized for inputs of `h x w`.
    pub(crate) fn new(w: &[f32], cin: usize, cout: usize, h: usize, wd: usize) -> Result<DeconvWeight> {
        // Per image, the contributions of a block take h * w * 25 * cb floats.
        let block = (COLS_BUDGET / (h * wd * TAPS)).clamp(1, cout);
        let mut data = zeros(cin * TAPS * cout, "a transposed convolution's weight")?;
        for ci in 0..cin {
            for co in 0..cout {
                let (b0, cb) = (co / block * block, block.min(cout - co / block * block));
                for tap in 0..TAPS {
                    data[ci * TAPS * cout + b0 * TAPS + tap * cb + (co - b0)] = w[(ci * cout + co) * TAPS + tap];
                }
            }
        }
        Ok(DeconvWeight { cin, cout, block, data })
    }
}

/// The decoder's transposed convolution: `x` `[n][h][w][cin]` into `out` `[n][2h][2w][cout]`
/// (every value written), with `bias` `[cout]`. Returns the output geometry.
pub(crate) fn deconv5x5_s2(
    x: &[f32],
    g: Geometry,
    weight: &DeconvWeight,
    bias: &[f32],
    out: &mut [f32],
    cols: &mut Vec<f32>,
) -> Result<Geometry> {
    let (cin, cout) = (weight.cin, weight.cout);
    let og = Geometry { n: g.n, h: 2 * g.h, w: 2 * g.w };
    let hw = g.h * g.w;
    let images_per_pass = (COLS_BUDGET / (hw * TAPS * weight.block)).clamp(1, g.n);
    ensure(cols, images_per_pass * hw * TAPS * weight.block)?;
    let mut c0 = 0;
    while c0 < cout {
        let cb = weight.block.min(cout - c0);
        let wb = Mat { data: &weight.data[c0 * TAPS..], rows: cin, cols: TAPS * cb, rs: TAPS * cout, cs: 1 };
        let mut i0 = 0;
        while i0 < g.n {
            let nb = images_per_pass.min(g.n - i0);
            let q = nb * hw;
            let contributions = &mut cols[..q * TAPS * cb];
            let xs = Mat::rows(&x[i0 * hw * cin..(i0 * hw + q) * cin], q, cin);
            gemm(xs, wb, MatMut::rows(contributions, q, TAPS * cb), false);
            let contributions = &cols[..q * TAPS * cb];
            for img in 0..nb {
                for oy in 0..og.h {
                    for ox in 0..og.w {
                        let dst = &mut out[(((i0 + img) * og.h + oy) * og.w + ox) * cout + c0..][..cb];
                        dst.copy_from_slice(&bias[c0..c0 + cb]);
                        // oy = 2 iy - 2 + ky: the taps of oy's parity, from the rows inside.
                        for ky in ((oy % 2)..K).step_by(2) {
                            let iy = (oy + PAD - ky) / 2;
                            if oy + PAD < ky || iy >= g.h {
                                continue;
                            }
                            for kx in ((ox % 2)..K).step_by(2) {
                                let ix = (ox + PAD - kx) / 2;
                                if ox + PAD < kx || ix >= g.w {
                                    continue;
                                }
                                let src = &contributions
                                    [((img * g.h + iy) * g.w + ix) * TAPS * cb + (ky * K + kx) * cb..][..cb];
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
        reorder_conv_weight(w, cin, cout, TAPS).unwrap()
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
        deconv5x5_s2(&x, g, &dw, &b, &mut out, &mut cols).unwrap();
        assert!(close(&out, &deconv_ref(&x, cin, g, &w, &b, cout)), "deconv {cin}->{cout} {g:?}");
    }

    /// The definition of a resizing layer: nearest-neighbour upsampling by 2, then a 3x3
    /// convolution of stride 1 and padding 1 (weight `[cout, cin, 3, 3]`) plus the bias.
    fn upconv_ref(x: &[f32], cin: usize, g: Geometry, w: &[f32], b: &[f32], cout: usize) -> Vec<f32> {
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
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (y, xx) = (oy as isize - 1 + ky as isize, ox as isize - 1 + kx as isize);
                                    s += at(&up, ug, cin, img, y, xx, ci) * w[((co * cin + ci) * 3 + ky) * 3 + kx];
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
            // Enough output rows and columns for several blocks of rows.
            (96, 8, Geometry { n: 2, h: 16, w: 16 }),
        ] {
            let x = values(g.pixels() * cin, 1.0);
            let w = values(cout * cin * 9, 2.0);
            let b = values(cout, 3.0);
            let mut cols = Vec::new();
            let mut out = vec![f32::NAN; g.pixels() * 4 * cout];
            let weight = reorder_conv_weight(&w, cin, cout, UP_TAPS).unwrap();
            let og = upconv3x3(&x, cin, g, &weight, &b, cout, &mut out, &mut cols).unwrap();
            assert_eq!((og.h, og.w), (2 * g.h, 2 * g.w));
            assert!(close(&out, &upconv_ref(&x, cin, g, &w, &b, cout)), "upconv {cin}->{cout} {g:?}");
        }
        // 96 * 9 values a column and 32 x 32 outputs an image: more than one block of rows.
        assert!(COLS_BUDGET / (96 * 9 * 32) < 2 * 32);
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
