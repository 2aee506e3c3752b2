//! The generator's two convolutions, both 5x5 with stride 2 and padding 2, as matrix products.
//!
//! Activations are laid out channel-major over the whole batch, `[C][N][H][W]`, so that one
//! matrix product covers every image of a chunk (its columns are images x positions):
//! - [`conv5x5_s2`] (the encoder's, halving the size): im2col, then `W [cout, cin*25] x cols`,
//!   a block of output positions at a time so the column buffer stays small;
//! - [`deconv5x5_s2`] (the decoder's transposed convolution, output padding 1, doubling the
//!   size): `W^T [cout*25, cin] x X [cin, N*h*w]`, then col2im gathers the taps of each output
//!   row (row by row, even and odd columns apart, so that its loops are contiguous), a block of
//!   output channels at a time.

use super::gemm::{gemm, Mat, MatMut};
use crate::error::{zeros, Result};

const K: usize = 5;
const TAPS: usize = K * K;
const PAD: isize = 2;
/// Floats a column buffer may hold (1 MiB): big enough for efficient products, small enough to
/// stay in cache and to bound memory.
const COLS_BUDGET: usize = 1 << 18;

/// A batch of feature maps: `n` images of `h x w`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) n: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
}

impl Geometry {
    pub(crate) fn plane(&self) -> usize {
        self.n * self.h * self.w
    }
}

/// The encoder's convolution: `x` `[cin][n][h][w]` into `out` `[cout][n][h/2][w/2]` (every
/// value written), with `weight` `[cout, cin, 5, 5]`. Returns the output geometry.
///
/// The columns are built a block of whole output rows at a time: for each (input channel, tap)
/// and output row, one input row read with stride 2, or zeros where the row is padding.
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
    let total = og.plane();
    let k = cin * TAPS;
    let rows_total = g.n * oh;
    let rows_per_block = (COLS_BUDGET / (k * ow)).clamp(1, rows_total);
    ensure(cols, k * rows_per_block * ow)?;
    let mut r0 = 0;
    while r0 < rows_total {
        let rb = rows_per_block.min(rows_total - r0);
        let pb = rb * ow;
        for ci in 0..cin {
            let plane = &x[ci * g.plane()..(ci + 1) * g.plane()];
            for ky in 0..K {
                for kx in 0..K {
                    let dst_row = &mut cols[((ci * K + ky) * K + kx) * pb..][..pb];
                    // Output columns whose input column 2 ox - 2 + kx is inside the image.
                    let first = (PAD as usize).saturating_sub(kx).div_ceil(2);
                    let last = ((g.w + PAD as usize - kx).div_ceil(2)).min(ow);
                    for (j, dst) in dst_row.chunks_exact_mut(ow).enumerate() {
                        let (img, oy) = ((r0 + j) / oh, (r0 + j) % oh);
                        let iy = (oy * 2 + ky) as isize - PAD;
                        if iy < 0 || iy as usize >= g.h {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[img * g.h * g.w + iy as usize * g.w..][..g.w];
                        dst[..first].fill(0.0);
                        for (ox, d) in dst.iter_mut().enumerate().take(last).skip(first) {
                            *d = src[2 * ox + kx - PAD as usize];
                        }
                        dst[last.max(first)..].fill(0.0);
                    }
                }
            }
        }
        let c = MatMut { data: &mut out[r0 * ow..], rows: cout, cols: pb, rs: total, cs: 1 };
        gemm(Mat::rows(weight, cout, k), Mat::rows(&cols[..k * pb], k, pb), c, false);
        r0 += rb;
    }
    Ok(og)
}

/// The decoder's transposed convolution: `x` `[cin][n][h][w]` into `out` `[cout][n][2h][2w]`,
/// with `weight` `[cin, cout, 5, 5]` and `bias` `[cout]` (every value written). Returns the
/// output geometry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn deconv5x5_s2(
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
    let (q, oplane) = (g.plane(), og.plane());
    let block = (COLS_BUDGET / (TAPS * q)).clamp(1, cout);
    ensure(cols, block * TAPS * q)?;
    let (hw, ohw) = (g.h * g.w, og.h * og.w);
    let (mut even, mut odd) = (Vec::new(), Vec::new());
    ensure(&mut even, g.w)?;
    ensure(&mut odd, g.w)?;
    let mut c0 = 0;
    while c0 < cout {
        let cb = block.min(cout - c0);
        // The columns of channels c0 .. c0 + cb: W^T rows (co, tap) against every input position.
        let wt = Mat { data: &weight[c0 * TAPS..], rows: cb * TAPS, cols: cin, rs: 1, cs: cout * TAPS };
        gemm(wt, Mat::rows(&x[..cin * q], cin, q), MatMut::rows(&mut cols[..cb * TAPS * q], cb * TAPS, q), false);
        for co in c0..c0 + cb {
            // Tap (ky, kx) of this channel, over every input position.
            let tap = |ky: usize, kx: usize| &cols[((co - c0) * TAPS + ky * K + kx) * q..][..q];
            for img in 0..g.n {
                for oy in 0..og.h {
                    // Output row oy, as its even and odd columns: each the sum of the input rows
                    // and taps that land on it (ox = 2 ix - 2 + kx, oy = 2 iy - 2 + ky), so
                    // every output value is written once and every loop runs over contiguous rows.
                    even[..g.w].fill(bias[co]);
                    odd[..g.w].fill(bias[co]);
                    for ky in (oy % 2..K).step_by(2) {
                        let iy2 = oy + PAD as usize;
                        if iy2 < ky || (iy2 - ky) / 2 >= g.h {
                            continue;
                        }
                        let at = img * hw + (iy2 - ky) / 2 * g.w;
                        let row = |kx: usize| &tap(ky, kx)[at..at + g.w];
                        let w = g.w;
                        // even[m] += c0[m + 1] + c2[m] + c4[m - 1]; odd[m] += c1[m + 1] + c3[m].
                        add(&mut even[..w], row(2));
                        add(&mut even[..w - 1], &row(0)[1..]);
                        add(&mut even[1..w], &row(4)[..w - 1]);
                        add(&mut odd[..w - 1], &row(1)[1..]);
                        add(&mut odd[..w], row(3));
                    }
                    let line = &mut out[co * oplane + img * ohw + oy * og.w..][..og.w];
                    for (pair, (&e, &o)) in line.chunks_exact_mut(2).zip(even.iter().zip(odd.iter())) {
                        pair[0] = e;
                        pair[1] = o;
                    }
                }
            }
        }
        c0 += cb;
    }
    Ok(og)
}

/// `dst[i] += src[i]`.
#[inline]
fn add(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
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

    /// The definition of a 5x5 stride-2 padding-2 convolution, one output at a time.
    fn conv_ref(x: &[f32], cin: usize, g: Geometry, w: &[f32], cout: usize) -> Vec<f32> {
        let (oh, ow) = (g.h.div_ceil(2), g.w.div_ceil(2));
        let mut out = vec![0f32; cout * g.n * oh * ow];
        for co in 0..cout {
            for img in 0..g.n {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = 0f32;
                        for ci in 0..cin {
                            for ky in 0..5 {
                                for kx in 0..5 {
                                    let (iy, ix) = (2 * oy as isize - 2 + ky, 2 * ox as isize - 2 + kx);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                        let xv = x[ci * g.plane() + img * g.h * g.w + iy as usize * g.w + ix as usize];
                                        s += xv * w[((co * cin + ci) * 5 + ky as usize) * 5 + kx as usize];
                                    }
                                }
                            }
                        }
                        out[co * g.n * oh * ow + img * oh * ow + oy * ow + ox] = s;
                    }
                }
            }
        }
        out
    }

    /// The definition of the transposed convolution: each input scatters its 5x5 taps.
    fn deconv_ref(x: &[f32], cin: usize, g: Geometry, w: &[f32], b: &[f32], cout: usize) -> Vec<f32> {
        let (oh, ow) = (2 * g.h, 2 * g.w);
        let mut out = vec![0f32; cout * g.n * oh * ow];
        for co in 0..cout {
            for img in 0..g.n {
                for p in 0..oh * ow {
                    out[co * g.n * oh * ow + img * oh * ow + p] = b[co];
                }
            }
        }
        for ci in 0..cin {
            for img in 0..g.n {
                for iy in 0..g.h {
                    for ix in 0..g.w {
                        let xv = x[ci * g.plane() + img * g.h * g.w + iy * g.w + ix];
                        for co in 0..cout {
                            for ky in 0..5 {
                                for kx in 0..5 {
                                    let (oy, ox) = (2 * iy as isize - 2 + ky, 2 * ix as isize - 2 + kx);
                                    if oy >= 0 && ox >= 0 && (oy as usize) < oh && (ox as usize) < ow {
                                        out[co * g.n * oh * ow + img * oh * ow + oy as usize * ow + ox as usize] +=
                                            xv * w[((ci * cout + co) * 5 + ky as usize) * 5 + kx as usize];
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

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
    }

    #[test]
    fn convolutions_match_their_definitions() {
        let mut cols = Vec::new();
        for (cin, cout, g) in [
            (3, 4, Geometry { n: 2, h: 8, w: 8 }),
            (2, 5, Geometry { n: 3, h: 7, w: 7 }),
            (40, 3, Geometry { n: 1, h: 14, w: 14 }),
        ] {
            let x = values(cin * g.plane(), 1.0);
            let w = values(cout * cin * 25, 2.0);
            let mut out = vec![f32::NAN; cout * g.n * g.h.div_ceil(2) * g.w.div_ceil(2)];
            conv5x5_s2(&x, cin, g, &w, cout, &mut out, &mut cols).unwrap();
            assert!(close(&out, &conv_ref(&x, cin, g, &w, cout)), "conv {cin}->{cout} {g:?}");
            let b = values(cout, 3.0);
            let mut out = vec![f32::NAN; cout * g.n * 4 * g.h * g.w];
            deconv5x5_s2(&x, cin, g, &w, &b, cout, &mut out, &mut cols).unwrap();
            assert!(close(&out, &deconv_ref(&x, cin, g, &w, &b, cout)), "deconv {cin}->{cout} {g:?}");
        }
    }

    #[test]
    fn blocks_smaller_than_the_work_give_the_same_result() {
        // Enough positions and channels that both functions work in several blocks.
        let (cin, cout, g) = (48, 600, Geometry { n: 4, h: 16, w: 16 });
        let x = values(cin * g.plane(), 5.0);
        let w = values(cout * cin * 25, 6.0);
        let b = values(cout, 7.0);
        let mut cols = Vec::new();
        let mut out = vec![f32::NAN; cout * g.n * 4 * g.h * g.w];
        deconv5x5_s2(&x, cin, g, &w, &b, cout, &mut out, &mut cols).unwrap();
        assert!(close(&out, &deconv_ref(&x, cin, g, &w, &b, cout)));
        let mut out = vec![f32::NAN; cout * g.n * 64];
        conv5x5_s2(&x, cin, g, &w, cout, &mut out, &mut cols).unwrap();
        assert!(close(&out, &conv_ref(&x, cin, g, &w, cout)));
    }
}
