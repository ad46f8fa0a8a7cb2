//! Readers for the TEXMEX vector files (`.fvecs`, `.ivecs`) used by ann-benchmarks' datasets.
//!
//! Each record is a little-endian `i32` dimension followed by that many 4-byte values (`f32` in
//! `.fvecs`, `i32` in `.ivecs`). Every record of a file must have the same dimension.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::path::Path;

use crate::BenchError;

/// A dense row-major matrix read from a TEXMEX file.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    pub dim: usize,
    pub data: Vec<T>,
}

impl<T> Matrix<T> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// True when the matrix has no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i`; panics when `i` is out of range, like slice indexing.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Calls `each` with every row of `path` (at most `limit` rows), without holding the whole file
/// in memory, so that the caller can copy the rows straight into its own storage and the peak
/// memory measured afterwards is the caller's, not this reader's. Returns the row count.
pub fn for_each_row(
    path: &Path,
    limit: Option<usize>,
    mut each: impl FnMut(&[[u8; 4]]),
) -> Result<usize, BenchError> {
    let io_err = |source| BenchError::Io {
        path: path.to_owned(),
        source,
    };
    let format_err = |reason: String| BenchError::Format {
        path: path.to_owned(),
        reason,
    };
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
    let mut expected_dim: Option<usize> = None;
    let mut row: Vec<[u8; 4]> = Vec::new();
    let mut rows = 0usize;
    while limit.is_none_or(|l| rows < l) {
        let mut header = [0u8; 4];
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_err(e)),
        }
        let dim = i32::from_le_bytes(header);
        if dim <= 0 {
            return Err(format_err(format!("row {rows} has dimension {dim}")));
        }
        let dim = dim as usize;
        match expected_dim {
            None => expected_dim = Some(dim),
            Some(d) if d != dim => {
                return Err(format_err(format!(
                    "row {rows} has dimension {dim}, earlier rows {d}"
                )))
            }
            Some(_) => {}
        }
        row.resize(dim, [0; 4]);
        reader
            .read_exact(row.as_flattened_mut())
            .map_err(|e| match e.kind() {
                ErrorKind::UnexpectedEof => format_err(format!("row {rows} is truncated")),
                _ => io_err(e),
            })?;
        each(&row);
        rows += 1;
    }
    Ok(rows)
}

/// Reads a whole `.fvecs` file (at most `limit` rows).
pub fn read_fvecs(path: &Path, limit: Option<usize>) -> Result<Matrix<f32>, BenchError> {
    let mut m = Matrix {
        dim: 0,
        data: Vec::new(),
    };
    for_each_row(path, limit, |row| {
        m.dim = row.len();
        m.data.extend(row.iter().map(|b| f32::from_le_bytes(*b)));
    })?;
    Ok(m)
}

/// Reads a whole `.ivecs` file (at most `limit` rows).
pub fn read_ivecs(path: &Path, limit: Option<usize>) -> Result<Matrix<i32>, BenchError> {
    let mut m = Matrix {
        dim: 0,
        data: Vec::new(),
    };
    for_each_row(path, limit, |row| {
        m.dim = row.len();
        m.data.extend(row.iter().map(|b| i32::from_le_bytes(*b)));
    })?;
    Ok(m)
}

/// Writes `rows` (each `dim` values of 4 bytes, as `to_le` gives them) as a TEXMEX file: the
/// layout `read_fvecs` and `read_ivecs` read, and ann-benchmarks' tools write.
fn write_rows<T: Copy>(
    path: &Path,
    dim: usize,
    data: &[T],
    to_le: impl Fn(T) -> [u8; 4],
) -> Result<(), BenchError> {
    let io = |source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = std::io::BufWriter::new(File::create(path).map_err(io)?);
    for row in data.chunks_exact(dim.max(1)) {
        out.write_all(&(dim as i32).to_le_bytes()).map_err(io)?;
        for &v in row {
            out.write_all(&to_le(v)).map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

/// Writes a `.fvecs` file of rows of `dim` floats.
pub fn write_fvecs(path: &Path, dim: usize, data: &[f32]) -> Result<(), BenchError> {
    write_rows(path, dim, data, f32::to_le_bytes)
}

/// Writes an `.ivecs` file of rows of `dim` integers.
pub fn write_ivecs(path: &Path, dim: usize, data: &[i32]) -> Result<(), BenchError> {
    write_rows(path, dim, data, i32::to_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (f, i) = (dir.path().join("a.fvecs"), dir.path().join("a.ivecs"));
        write_fvecs(&f, 3, &[1.0, -2.5, 3.0, 0.0, 4.0, 5.5]).unwrap();
        write_ivecs(&i, 2, &[7, -1, 0, 9]).unwrap();
        let back = read_fvecs(&f, None).unwrap();
        assert_eq!((back.dim, back.len()), (3, 2));
        assert_eq!(back.row(1), &[0.0, 4.0, 5.5]);
        assert_eq!(read_ivecs(&i, None).unwrap().data, vec![7, -1, 0, 9]);
    }
    use std::io::Write;

    fn write_raw(rows: &[(i32, Vec<u32>)]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for (dim, values) in rows {
            f.write_all(&dim.to_le_bytes()).unwrap();
            for v in values {
                f.write_all(&v.to_le_bytes()).unwrap();
            }
        }
        f.flush().unwrap();
        f
    }

    #[test]
    fn reads_fvecs_and_ivecs() {
        let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let f = write_raw(&[(3, bits(&[1.0, 2.5, -3.0])), (3, bits(&[0.0, 4.0, 5.0]))]);
        let m = read_fvecs(f.path(), None).unwrap();
        assert_eq!(m.dim, 3);
        assert_eq!(m.len(), 2);
        assert_eq!(m.row(1), &[0.0, 4.0, 5.0]);
        assert_eq!(read_fvecs(f.path(), Some(1)).unwrap().len(), 1);

        let g = write_raw(&[(2, vec![7, 9]), (2, vec![1, 0])]);
        let m = read_ivecs(g.path(), None).unwrap();
        assert_eq!(m.data, vec![7, 9, 1, 0]);
    }

    #[test]
    fn rejects_mixed_dimensions_truncation_and_bad_headers() {
        let f = write_raw(&[(2, vec![1, 2]), (3, vec![1, 2, 3])]);
        assert!(matches!(
            read_ivecs(f.path(), None),
            Err(BenchError::Format { .. })
        ));
        let f = write_raw(&[(4, vec![1, 2])]);
        let err = read_ivecs(f.path(), None).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let f = write_raw(&[(0, vec![])]);
        assert!(matches!(
            read_fvecs(f.path(), None),
            Err(BenchError::Format { .. })
        ));
        assert!(matches!(
            read_fvecs(Path::new("/nonexistent/x.fvecs"), None),
            Err(BenchError::Io { .. })
        ));
    }
}
