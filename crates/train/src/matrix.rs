//! A small dense row-major matrix of `f32` and the vector kernels the heads and losses need.
//!
//! Written by hand so the crate stays light; the sizes involved (batches of tens of rows,
//! 1280 inputs, a few hundred outputs) do not need a BLAS.

use crate::error::{Result, TrainError};

/// Dense row-major matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Wraps row-major data; fails when the length is not `rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(TrainError::WrongDimension {
                expected: rows * cols,
                got: data.len(),
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// Stacks equally long rows; fails on ragged input. An empty slice gives a 0 x 0 matrix.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Self> {
        let cols = rows.first().map_or(0, |r| r.as_ref().len());
        let mut data = Vec::with_capacity(rows.len() * cols);
        for r in rows {
            let r = r.as_ref();
            if r.len() != cols {
                return Err(TrainError::WrongDimension {
                    expected: cols,
                    got: r.len(),
                });
            }
            data.extend_from_slice(r);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i` as a mutable slice.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// All values, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the matrix and returns its row-major values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The rows selected by `indices`, in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Matrix {
        let mut out = Matrix::zeros(indices.len(), self.cols);
        for (k, &i) in indices.iter().enumerate() {
            out.row_mut(k).copy_from_slice(self.row(i));
        }
        out
    }

    /// L2-normalises every row in place (zero rows stay zero).
    pub fn normalize_rows(&mut self) {
        for i in 0..self.rows {
            l2_normalize(self.row_mut(i));
        }
    }

    /// True when every value is finite.
    pub fn is_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}

pub use embed::head::{dot, l2_normalize};

/// `y += alpha * x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `x * w^T`: `x` is `n x k`, `w` is `m x k`, the result `n x m`. Both operands are read
/// along rows, which keeps the inner loop contiguous.
pub fn matmul_nt(x: &Matrix, w: &Matrix) -> Matrix {
    debug_assert_eq!(x.cols(), w.cols());
    let mut out = Matrix::zeros(x.rows(), w.rows());
    for i in 0..x.rows() {
        let xi = x.row(i);
        let oi = out.row_mut(i);
        for (o, v) in oi.iter_mut().enumerate() {
            *v = dot(xi, w.row(o));
        }
    }
    out
}

/// Cosine similarity matrix of the rows of `a` against the rows of `b` (rows are normalised
/// on copies first, so the inputs need not be unit length).
pub fn cosine_matrix(a: &Matrix, b: &Matrix) -> Matrix {
    let mut na = a.clone();
    na.normalize_rows();
    let mut nb = b.clone();
    nb.normalize_rows();
    matmul_nt(&na, &nb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_rows_rejects_ragged_input() {
        let err = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).unwrap_err();
        assert!(matches!(
            err,
            TrainError::WrongDimension {
                expected: 2,
                got: 1
            }
        ));
        assert!(Matrix::from_vec(2, 2, vec![0.0; 3]).is_err());
    }

    #[test]
    fn dot_matches_naive_sum_on_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn matmul_nt_small_case() {
        let x = Matrix::from_rows(&[[1.0, 2.0], [3.0, 4.0]]).unwrap();
        let w = Matrix::from_rows(&[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).unwrap();
        let y = matmul_nt(&x, &w);
        assert_eq!(y.as_slice(), &[1.0, 2.0, 3.0, 3.0, 4.0, 7.0]);
    }

    #[test]
    fn normalize_keeps_zero_vectors() {
        let mut v = vec![0.0, 0.0];
        assert_eq!(l2_normalize(&mut v), 0.0);
        assert_eq!(v, vec![0.0, 0.0]);
        let mut w = vec![3.0, 4.0];
        assert_eq!(l2_normalize(&mut w), 5.0);
        assert!((w[0] - 0.6).abs() < 1e-6 && (w[1] - 0.8).abs() < 1e-6);
    }
}
