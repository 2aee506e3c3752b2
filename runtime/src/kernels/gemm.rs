//! Matrix products through the `gemm` crate (pure Rust, runtime-dispatched AVX2/FMA kernels on
//! x86-64, portable kernels elsewhere, WebAssembly included), always on the calling thread.
//! Chosen by measurement against `matrixmultiply`: BENCHMARKS.md, "Runtime".

/// A read-only strided matrix view: element (i, j) at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

/// A writable strided matrix view.
pub(crate) struct MatMut<'a> {
    pub(crate) data: &'a mut [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major `cols x rows` matrix, as `rows x cols`.
    pub(crate) fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: 1, cs: rows }
    }
}

impl<'a> MatMut<'a> {
    pub(crate) fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut { data, rows, cols, rs: cols, cs: 1 }
    }
}

/// The index one past the last element a strided view can touch (0 for an empty one).
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `c = a * b` (`accumulate`: `c += a * b`).
///
/// Panics (a bug, turned into GRAN_STATUS_INTERNAL at the boundary) when the shapes disagree or
/// a view reaches past its slice: the bounds are checked here, before the unchecked kernel.
pub(crate) fn gemm(a: Mat, b: Mat, c: MatMut, accumulate: bool) {
    assert!(a.cols == b.rows && a.rows == c.rows && b.cols == c.cols, "matrix product of mismatched shapes");
    assert!(extent(a.rows, a.cols, a.rs, a.cs) <= a.data.len(), "left operand out of bounds");
    assert!(extent(b.rows, b.cols, b.rs, b.cs) <= b.data.len(), "right operand out of bounds");
    assert!(extent(c.rows, c.cols, c.rs, c.cs) <= c.data.len(), "output out of bounds");
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    if cfg!(target_arch = "wasm32") && a.rows == 1 {
        return vector_times_matrix(a, b, c, accumulate);
    }
    // SAFETY: every index the kernel touches is below the extents checked above, and `c` is
    // borrowed mutably (no aliasing with `a` or `b`). Strides fit in isize: each is bounded by
    // a slice length. gemm computes dst = alpha * dst + beta * lhs * rhs, reading dst only
    // when asked to.
    unsafe {
        gemm::gemm(
            c.rows,
            c.cols,
            a.cols,
            c.data.as_mut_ptr(),
            c.cs as isize,
            c.rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `c = a * b` for one row `a` (a linear layer for one image), in WebAssembly: gemm's general
/// path costs there what its kernels save. Loops over contiguous slices that the compiler
/// vectorises (simd128): a sum of rows of `b` when its rows are contiguous, else independent
/// partial sums of each column.
fn vector_times_matrix(a: Mat, b: Mat, c: MatMut, accumulate: bool) {
    let x = |k: usize| a.data[k * a.cs];
    let out = |j: usize| j * c.cs;
    if b.cs == 1 {
        // Four rows of `b` at a time: the partial sums are read and written a quarter as often.
        let mut acc = vec![0f32; b.cols];
        let row = |k: usize| &b.data[k * b.rs..k * b.rs + b.cols];
        let mut k = 0;
        while k + 4 <= b.rows {
            let (x0, x1, x2, x3) = (x(k), x(k + 1), x(k + 2), x(k + 3));
            let (r0, r1, r2, r3) = (row(k), row(k + 1), row(k + 2), row(k + 3));
            for ((((s, &w0), &w1), &w2), &w3) in acc.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
                *s += x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3;
            }
            k += 4;
        }
        for k in k..b.rows {
            let xk = x(k);
            for (s, &w) in acc.iter_mut().zip(row(k)) {
                *s += xk * w;
            }
        }
        for (j, v) in acc.into_iter().enumerate() {
            let d = &mut c.data[out(j)];
            *d = if accumulate { *d + v } else { v };
        }
    } else if b.rs == 1 && a.cs == 1 {
        let xs = &a.data[..b.rows];
        for j in 0..b.cols {
            let col = &b.data[j * b.cs..j * b.cs + b.rows];
            let mut lanes = [0f32; 8];
            let (xc, wc) = (xs.chunks_exact(8), col.chunks_exact(8));
            let (xr, wr) = (xc.remainder(), wc.remainder());
            for (xv, wv) in xc.zip(wc) {
                for l in 0..8 {
                    lanes[l] += xv[l] * wv[l];
                }
            }
            let v = lanes.iter().sum::<f32>() + xr.iter().zip(wr).map(|(p, q)| p * q).sum::<f32>();
            let d = &mut c.data[out(j)];
            *d = if accumulate { *d + v } else { v };
        }
    } else {
        for j in 0..b.cols {
            let v: f32 = (0..b.rows).map(|k| x(k) * b.data[k * b.rs + j * b.cs]).sum();
            let d = &mut c.data[out(j)];
            *d = if accumulate { *d + v } else { v };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_the_definition_for_every_layout() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut want = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        let mut c = vec![0f32; m * n];
        gemm(Mat::rows(&a, m, k), Mat::rows(&b, k, n), MatMut::rows(&mut c, m, n), false);
        assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5));
        // b stored transposed ([n, k] row-major) gives the same product.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = vec![1f32; m * n];
        gemm(Mat::rows(&a, m, k), Mat::transposed(&bt, k, n), MatMut::rows(&mut c2, m, n), true);
        assert!(c2.iter().zip(&want).all(|(x, y)| (x - 1.0 - y).abs() < 1e-5));
    }

    #[test]
    fn one_row_products_match_the_general_ones() {
        // The WebAssembly path, run here too.
        let (k, n) = (37, 21);
        let a: Vec<f32> = (0..k).map(|i| (i as f32 * 0.3).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.17).cos()).collect();
        for (bm, label) in [(Mat::rows(&b, k, n), "rows"), (Mat::transposed(&b, k, n), "columns")] {
            let mut want = vec![0f32; n];
            gemm(Mat::rows(&a, 1, k), bm, MatMut::rows(&mut want, 1, n), false);
            let mut got = vec![1f32; n];
            vector_times_matrix(Mat::rows(&a, 1, k), bm, MatMut::rows(&mut got, 1, n), true);
            assert!(got.iter().zip(&want).all(|(g, w)| (g - 1.0 - w).abs() < 1e-4), "{label}");
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0f32; 5];
        let mut c = vec![0f32; 4];
        gemm(Mat::rows(&a, 2, 3), Mat::rows(&a, 3, 2), MatMut::rows(&mut c, 2, 2), false);
    }
}
