//! The generator's two convolutions, both 5x5 with stride 2 and padding 2, as matrix products.
//!
//! Activations are laid out channel-major over the whole batch, `[C][N][H][W]`, so that one
//! matrix product covers every image of a chunk (its columns are images x positions):
//! - [`conv5x5_s2`] (the encoder's, halving the size): im2col, then `W [cout, cin*25] x cols`,
//!   a block of output positions at a time so the column buffer stays small;
//! - [`deconv5x5_s2`] (the decoder's transposed convolution, output padding 1, doubling the
//!   size): `W^T [cout*25, cin] x X [cin, N*h*w]`, then col2im adds each tap into place, a block
//!   of output channels at a time.

use super::gemm::{gemm, Mat, MatMut};
use crate::error::{out_of_memory, zeros, Result};

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
    let block = (COLS_BUDGET / k).clamp(16, total.max(16)).min(total);
    ensure(cols, k * block)?;
    let (hw, ohw) = (g.h * g.w, oh * ow);
    let mut pos: Vec<(usize, isize, isize)> = Vec::new();
    pos.try_reserve_exact(block)
        .map_err(|_| out_of_memory::<(usize, isize, isize)>(block, "a convolution's positions"))?;
    let mut p0 = 0;
    while p0 < total {
        let pb = block.min(total - p0);
        // Where each output position of the block reads: its image's offset and the top-left
        // input corner of its 5x5 window (possibly outside the image: padding).
        pos.clear();
        pos.extend((p0..p0 + pb).map(|p| {
            let (img, rest) = (p / ohw, p % ohw);
            (img * hw, (rest / ow * 2) as isize - PAD, (rest % ow * 2) as isize - PAD)
        }));
        // im2col for output positions p0 .. p0 + pb.
        for ci in 0..cin {
            let plane = &x[ci * g.plane()..(ci + 1) * g.plane()];
            for ky in 0..K {
                for kx in 0..K {
                    let row = &mut cols[((ci * K + ky) * K + kx) * pb..][..pb];
                    for (v, &(base, y0, x0)) in row.iter_mut().zip(pos.iter()) {
                        let (iy, ix) = (y0 + ky as isize, x0 + kx as isize);
                        *v = if (iy as usize) < g.h && (ix as usize) < g.w {
                            plane[base + iy as usize * g.w + ix as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        let c = MatMut { data: &mut out[p0..], rows: cout, cols: pb, rs: total, cs: 1 };
        gemm(Mat::rows(weight, cout, k), Mat::rows(&cols[..k * pb], k, pb), c, false);
        p0 += pb;
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
    let mut c0 = 0;
    while c0 < cout {
        let cb = block.min(cout - c0);
        // The columns of channels c0 .. c0 + cb: W^T rows (co, tap) against every input position.
        let wt = Mat { data: &weight[c0 * TAPS..], rows: cb * TAPS, cols: cin, rs: 1, cs: cout * TAPS };
        gemm(wt, Mat::rows(&x[..cin * q], cin, q), MatMut::rows(&mut cols[..cb * TAPS * q], cb * TAPS, q), false);
        for co in c0..c0 + cb {
            let dst = &mut out[co * oplane..(co + 1) * oplane];
            dst.fill(bias[co]);
            for tap in 0..TAPS {
                let (ky, kx) = (tap / K, tap % K);
                let src = &cols[((co - c0) * TAPS + tap) * q..][..q];
                for img in 0..g.n {
                    for iy in 0..g.h {
                        let oy = (iy * 2) as isize - PAD + ky as isize;
                        if oy < 0 || oy as usize >= og.h {
                            continue;
                        }
                        let row = &src[img * hw + iy * g.w..][..g.w];
                        let line = &mut dst[img * ohw + oy as usize * og.w..][..og.w];
                        // ox = 2 ix - 2 + kx: the input columns that land inside the row.
                        let first = (PAD as usize).saturating_sub(kx).div_ceil(2);
                        for (ix, &v) in row.iter().enumerate().skip(first) {
                            let ox = 2 * ix + kx - PAD as usize;
                            if ox >= og.w {
                                break;
                            }
                            line[ox] += v;
                        }
                    }
                }
            }
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
